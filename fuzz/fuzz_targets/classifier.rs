//! The whole per-packet path, from a sequence of raw frames with
//! timestamps (which may go backwards) to events: never panics; every frame
//! is accounted for (a TCP/UDP packet or skipped with a reason); the table
//! stays within its bound; pushing the frames in bursts, or decoding them
//! into bursts that keep only what the classifiers read, gives the events
//! of pushing them one by one; ending every flow reports each one once.
//!
//! Input: records of [selector, ts delta in ms (2 bytes, signed), length
//! (2 bytes), frame].
#![no_main]

use libfuzzer_sys::fuzz_target;
use skype_dpi::classifier::{Classifier, DecodedBurst, Event};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};

#[path = "common.rs"]
mod common;

const MAX_FLOWS: usize = 8;

fuzz_target!(|data: &[u8]| {
    static MODEL: std::sync::OnceLock<Option<Model>> = std::sync::OnceLock::new();
    // The provenance (hundreds of training inputs) is dropped once: the
    // classifier does not read it, and cloning it would dominate a run.
    let model = MODEL.get_or_init(|| {
        Model::default_model().ok().map(|mut m| {
            m.provenance = Default::default();
            m
        })
    });
    let Some(model) = model.clone() else {
        return;
    };
    let mut frames: Vec<(i64, u32, &[u8])> = Vec::new();
    let mut ts = 1_700_000_000_000_000i64;
    let mut rest = data;
    while rest.len() >= 5 {
        let selector = rest[0];
        let delta = i64::from(i16::from_le_bytes([rest[1], rest[2]]));
        let len = usize::from(u16::from_le_bytes([rest[3], rest[4]])).min(rest.len() - 5);
        ts += delta * 1_000;
        frames.push((ts, common::link_type(selector), &rest[5..5 + len]));
        rest = &rest[5 + len..];
    }
    let raws: Vec<RawPacket<'_>> = frames
        .iter()
        .map(|&(ts, link_type, f)| RawPacket {
            ts: Timestamp(ts),
            link_type,
            data: f,
            orig_len: f.len() as u32,
        })
        .collect();
    let table = FlowTableConfig::with_max_flows(MAX_FLOWS);
    let mut one = Classifier::with_table(model.clone(), table.clone());
    let mut burst = Classifier::with_table(model.clone(), table.clone());
    let mut decoded = Classifier::with_table(model, table);
    let mut events_one = Vec::new();
    for raw in &raws {
        let _ = one.push(raw);
        assert!(one.open_flows() <= MAX_FLOWS);
        events_one.extend(one.drain_events());
    }
    burst.push_burst(&raws);
    let mut events_burst: Vec<Event> = burst.drain_events().collect();
    let mut b = DecodedBurst::new(5);
    let mut events_decoded = Vec::new();
    for raw in &raws {
        let _ = b.decode(raw, decoded.tunnels());
        if b.is_full() {
            decoded.push_decoded_burst(&mut b);
            events_decoded.extend(decoded.drain_events());
        }
    }
    decoded.push_decoded_burst(&mut b);
    one.finish_all();
    burst.finish_all();
    decoded.finish_all();
    events_one.extend(one.drain_events());
    events_burst.extend(burst.drain_events());
    events_decoded.extend(decoded.drain_events());
    assert_eq!(events_one, events_burst);
    assert_eq!(events_one, events_decoded);
    assert_eq!(one.stats(), decoded.stats());
    let s = one.stats();
    assert_eq!(s.frames, raws.len() as u64);
    assert_eq!(s.frames, s.packets + s.skipped.total());
    let ended = events_one
        .iter()
        .filter(|e| matches!(e, Event::FlowEnded(_)))
        .count() as u64;
    assert_eq!(ended, s.flows, "every flow reported once");
});
