//! Pushing frames in bursts (`Classifier::push_burst`, which looks flows up
//! and prefetches them ahead), or decoded as they are read into a
//! `DecodedBurst` that keeps only the payload bytes the classifiers read,
//! gives exactly the events of pushing them one by one, in the same order,
//! whatever the burst sizes.

use skype_dpi::classifier::{Classifier, DecodedBurst, Event};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::synth::{Generator, SynthConfig};

fn raw(f: &(i64, Vec<u8>)) -> RawPacket<'_> {
    RawPacket {
        ts: Timestamp(f.0),
        link_type: 1,
        data: &f.1,
        orig_len: f.1.len() as u32,
    }
}

fn events(c: &mut Classifier, out: &mut Vec<Event>) {
    out.extend(c.drain_events());
}

/// Synthetic calls, signalling and TCP, with 20 frames that are not TCP/UDP
/// packets among them.
fn frames() -> Vec<(i64, Vec<u8>)> {
    let cfg = SynthConfig {
        seed: 11,
        flows_per_profile: 3,
        call_seconds: 12.0,
        spread_seconds: 5.0,
        signalling_clients: 3,
        ..SynthConfig::default()
    };
    let mut frames = skype_dpi::synth::frames(&mut Generator::new(&cfg), usize::MAX);
    // A few frames that are not TCP/UDP packets, to be skipped in bursts too.
    for k in 0..20 {
        let at = (k * 7919) % frames.len();
        let ts = frames[at].0;
        frames.insert(at, (ts, vec![0xFF; 10 + k]));
    }
    frames
}

/// The events of pushing `frames` one by one, and the classifier.
fn single_pushes(frames: &[(i64, Vec<u8>)], model: &Model) -> (Vec<Event>, Classifier) {
    let mut one = Classifier::new(model.clone());
    let mut by_one = Vec::new();
    for f in frames {
        let _ = one.push(&raw(f));
        events(&mut one, &mut by_one);
    }
    one.finish_all();
    events(&mut one, &mut by_one);
    (by_one, one)
}

#[test]
fn bursts_give_the_events_of_single_pushes() {
    let frames = frames();
    let model = Model::default_model().unwrap();
    let (by_one, one) = single_pushes(&frames, &model);

    let mut burst = Classifier::new(model);
    let mut in_bursts = Vec::new();
    let (mut i, mut size, mut skipped) = (0usize, 1usize, 0u64);
    while i < frames.len() {
        let end = (i + size).min(frames.len());
        let raws: Vec<RawPacket<'_>> = frames[i..end].iter().map(raw).collect();
        skipped += burst.push_burst(&raws);
        events(&mut burst, &mut in_bursts);
        i = end;
        size = size % 45 + 1; // 1 to 45 frames, across group boundaries
    }
    burst.finish_all();
    events(&mut burst, &mut in_bursts);

    assert!(by_one.len() > 100, "{} events", by_one.len());
    assert_eq!(skipped, 20);
    assert_eq!(one.stats(), burst.stats());
    assert_eq!(by_one, in_bursts);
}

#[test]
fn decoded_bursts_give_the_events_of_single_pushes() {
    let frames = frames();
    let model = Model::default_model().unwrap();
    let (by_one, one) = single_pushes(&frames, &model);
    // TCP flows whose first payload is random from its first byte are
    // among them: what the kept prefix of a TCP payload is for.
    let random_first = by_one.iter().any(|e| match e {
        Event::FlowEnded(r) => r.first_payload_random == Some(true),
        _ => false,
    });
    assert!(random_first);

    for capacity in [1, 16, 45, 64, 1000] {
        let mut c = Classifier::new(model.clone());
        let mut burst = DecodedBurst::new(capacity);
        let mut in_bursts = Vec::new();
        let mut skipped = 0u64;
        for f in &frames {
            skipped += u64::from(burst.decode(&raw(f), c.tunnels()).is_err());
            if burst.is_full() {
                assert_eq!(burst.frames(), capacity);
                c.push_decoded_burst(&mut burst);
                assert_eq!(burst.frames(), 0);
                events(&mut c, &mut in_bursts);
            }
        }
        c.push_decoded_burst(&mut burst);
        c.finish_all();
        events(&mut c, &mut in_bursts);
        assert_eq!(skipped, 20);
        assert_eq!(one.stats(), c.stats(), "bursts of {capacity}");
        assert_eq!(by_one, in_bursts, "bursts of {capacity}");
    }
}
