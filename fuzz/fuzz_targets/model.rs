//! Model loading from arbitrary text: never panics; a model that loads
//! passes its checks and round-trips through its JSON.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use skype_dpi::model::Model;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Model::from_json(text, Path::new("fuzz.json")) {
        assert!(m.check().is_ok());
        let again = Model::from_json(&m.to_json(), Path::new("again.json"));
        assert_eq!(again.ok().as_ref(), Some(&m));
    }
});
