//! Frame decoding for every supported link type, with every tunnel opened
//! and with none: never panics; the packet record made straight from the
//! frame (the `--threads` reader) equals the one made from the general
//! decoder, tunnel included; a tunneled packet's tunnel is within the depth
//! bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skype_dpi::config::{CscConfig, TunnelConfig};
use skype_dpi::csc::GroupTests;
use skype_dpi::endpoint::encrypted_from_first_byte;
use skype_dpi::packet::{decode_with, PacketRecord, RawPacket, Timestamp};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, frame)) = data.split_first() else {
        return;
    };
    static TESTS: std::sync::OnceLock<GroupTests> = std::sync::OnceLock::new();
    let tests = TESTS.get_or_init(|| GroupTests::new(&CscConfig::default()));
    let judge = |b: &[u8]| encrypted_from_first_byte(b, tests);
    let raw = RawPacket {
        ts: Timestamp(1_700_000_000_000_000),
        link_type: common::link_type(selector),
        data: frame,
        orig_len: frame.len() as u32,
    };
    for tunnels in [TunnelConfig::STANDARD, TunnelConfig::NONE] {
        let decoded = decode_with(&raw, &tunnels);
        if let Ok(p) = &decoded {
            if let Some(t) = p.tunnel {
                assert!(t.depth >= 1 && t.depth <= tunnels.max_depth);
            }
        }
        let direct = PacketRecord::of_frame(&raw, &tunnels, judge);
        assert_eq!(
            direct,
            decoded.map(|p| (PacketRecord::of(&p, judge), p.tunnel))
        );
    }
});
