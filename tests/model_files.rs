//! Model files: the embedded default, saving and loading, retraining it
//! from its recorded inputs, and clear errors for bad files.

use std::path::{Path, PathBuf};

use skype_dpi::config::MethodConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::{Model, FORMAT_VERSION};
use skype_dpi::train::train;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("skype-dpi-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn default_model_loads_and_round_trips() {
    let m = Model::default_model().unwrap();
    assert_eq!(m.format_version, FORMAT_VERSION);
    assert_eq!(
        m.config,
        MethodConfig::default(),
        "models/default.json carries the documented defaults"
    );
    let dir = scratch("roundtrip");
    let p = dir.join("m.json");
    std::fs::write(&p, m.to_json()).unwrap();
    let back = Model::load(&p).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.to_json(), m.to_json());
    assert_eq!(
        m.to_json(),
        skype_dpi::model::DEFAULT_MODEL_JSON,
        "default.json is in canonical form"
    );
}

fn load_err(name: &str, text: &str) -> String {
    let dir = scratch(name);
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, text).unwrap();
    let e = Model::load(&p).unwrap_err().to_string();
    assert!(
        e.contains(&p.display().to_string()),
        "error names the file: {e}"
    );
    e
}

#[test]
fn bad_model_files_are_clear_errors() {
    let good = Model::default_model().unwrap().to_json();
    let e = load_err("truncated", &good[..good.len() / 2]);
    assert!(e.contains("not valid JSON"), "{e}");
    let e = load_err(
        "version",
        &good.replace(
            &format!("\"format_version\": {FORMAT_VERSION}"),
            "\"format_version\": 99",
        ),
    );
    assert!(e.contains("format version 99 is not supported"), "{e}");
    let e = load_err(
        "format",
        &good.replace("\"skype-dpi-model\"", "\"something-else\""),
    );
    assert!(e.contains("format is \"something-else\""), "{e}");
    let e = load_err("noformat", "{\"a\": 1}");
    assert!(e.contains("no \"format\" field"), "{e}");
    let e = load_err(
        "field",
        &good.replace("\"mixed_threshold\"", "\"mixd_threshold\""),
    );
    assert!(e.contains("does not match the model format"), "{e}");
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let mut bad = v.clone();
    bad["nbc"]["voice"]["media"]["variance"][0] = serde_json::json!(-1.0);
    let e = load_err("variance", &serde_json::to_string(&bad).unwrap());
    assert!(e.contains("variance"), "{e}");
    let mut bad = v;
    bad["config"]["dft"]["min_share"] = serde_json::json!(1.5);
    let e = load_err("share", &serde_json::to_string(&bad).unwrap());
    assert!(e.contains("dft.min_share"), "{e}");
    let missing = Model::load(Path::new("/nonexistent/model.json"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/nonexistent/model.json") && missing.contains("cannot be read"),
        "{missing}"
    );
}

/// Retraining `models/default.json` from its recorded inputs gives the same
/// bytes.
#[test]
fn default_model_retrains_to_the_same_bytes() {
    let root = datasets_dir();
    if !root.join("ndpi/pcap").is_dir() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "datasets missing at {} with CI=true",
            root.display()
        );
        eprintln!("skipping: no datasets");
        return;
    }
    let m = Model::default_model().unwrap();
    // The recorded command: --labels 'SPEC' ... --out FILE.
    let specs: Vec<String> = m
        .provenance
        .command
        .split("--labels '")
        .skip(1)
        .filter_map(|s| s.split('\'').next())
        .map(|s| s.replace("$SKYPE_DPI_DATASETS", &root.display().to_string()))
        .collect();
    assert!(!specs.is_empty(), "no specs in {:?}", m.provenance.command);
    let root_s = root.display().to_string();
    let root_c = std::fs::canonicalize(&root)
        .map(|p| p.display().to_string())
        .unwrap_or(root_s.clone());
    let name = |s: &str| {
        s.replace(&root_c, "$SKYPE_DPI_DATASETS")
            .replace(&root_s, "$SKYPE_DPI_DATASETS")
    };
    let again = train(
        &specs,
        MethodConfig::default(),
        &m.provenance.command,
        &m.provenance.notes,
        name,
    )
    .unwrap();
    assert_eq!(again.to_json(), m.to_json());
}
