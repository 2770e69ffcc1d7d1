//! Frame decoding for every supported link type: never panics, and the
//! packet record made straight from the frame (the `--threads` reader)
//! equals the one made from the general decoder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skype_dpi::config::CscConfig;
use skype_dpi::csc::GroupTests;
use skype_dpi::endpoint::encrypted_from_first_byte;
use skype_dpi::packet::{decode, PacketRecord, RawPacket, Timestamp};

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
    let decoded = decode(&raw);
    let direct = PacketRecord::of_frame(&raw, judge);
    assert_eq!(direct, decoded.map(|p| PacketRecord::of(&p, judge)));
});
