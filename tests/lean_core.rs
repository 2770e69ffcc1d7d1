//! The core alone (`cargo test --no-default-features --test lean_core`):
//! the streaming API classifies frames built here by hand, with the
//! embedded model, and none of the faces' dependencies is needed.

use etherparse::PacketBuilder;

use skype_dpi::classifier::{Classifier, Event};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::verdict::{Kind, Label};

/// An Ethernet frame of a UDP message from `a` to `b`.
fn frame(a: ([u8; 4], u16), b: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4(a.0, b.0, 64)
        .udp(a.1, b.1)
        .write(&mut out, payload)
        .expect("a frame");
    out
}

#[test]
fn the_streaming_api_works_from_the_core() {
    let mut c = Classifier::new(Model::default_model().expect("the embedded model"));
    let (a, b) = (([10, 99, 0, 1], 40000), ([10, 99, 0, 2], 50000));
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut skype_at = None;
    for i in 0..200u32 {
        // Skype E2E voice: FUNC 0x0D in byte 2, random elsewhere, 20 ms.
        let mut payload = [0u8; 60];
        for chunk in payload.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        payload[2] = (payload[2] & 0x70) | 0x0D;
        for (from, to, t) in [(a, b, 0), (b, a, 7_000)] {
            let f = frame(from, to, &payload);
            let raw = RawPacket {
                ts: Timestamp(1_700_000_000_000_000 + i64::from(i) * 20_000 + t),
                link_type: 1,
                data: &f,
                orig_len: f.len() as u32,
            };
            c.push(&raw).expect("a UDP packet");
            for e in c.drain_events() {
                if let Event::Verdict { verdict, .. } = e {
                    assert_eq!(
                        (verdict.label, verdict.kind),
                        (Label::Skype, Some(Kind::E2e))
                    );
                    skype_at.get_or_insert(i);
                }
            }
            if skype_at.is_some() {
                assert_eq!(c.last_label(), Label::Skype);
            }
        }
    }
    let at = skype_at.expect("a Skype verdict");
    assert!(at < 40, "decided after {at} messages a direction");
    assert_eq!(c.stats().flows, 1);
}
