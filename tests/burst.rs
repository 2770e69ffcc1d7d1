//! Pushing frames in bursts (`Classifier::push_burst`, which looks flows up
//! and prefetches them ahead) gives exactly the events of pushing them one
//! by one, in the same order, whatever the burst sizes.

use skype_dpi::classifier::{Classifier, Event};
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

#[test]
fn bursts_give_the_events_of_single_pushes() {
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
    let model = Model::default_model().unwrap();

    let mut one = Classifier::new(model.clone());
    let mut by_one = Vec::new();
    for f in &frames {
        let _ = one.push(&raw(f));
        events(&mut one, &mut by_one);
    }
    one.finish_all();
    events(&mut one, &mut by_one);

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
