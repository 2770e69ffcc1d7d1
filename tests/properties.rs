//! Properties of the packet path over arbitrary input (issue 16), with
//! proptest: arbitrary and mutated frames of every link type never panic
//! the decoder or the classifier; every frame is accounted for (a TCP/UDP
//! packet, or skipped with a reason); the flow table never holds more than
//! its bound and reports every flow it held exactly once; pushing frames in
//! bursts, or decoding them into bursts that keep only what the
//! classifiers read, gives the events of pushing them one by one; any
//! thread count gives the same records.

use std::path::Path;

use proptest::prelude::*;

use skype_dpi::analyze::{analyze_file, analyze_file_parallel};
use skype_dpi::classifier::{Classifier, DecodedBurst, Event};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;
use skype_dpi::output::RecordJson;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::synth::{frames, write_pcap, Generator, SynthConfig};

/// Every link type the decoder reads, and one it does not.
const LINK_TYPES: [u32; 16] = [
    1, 113, 276, 12, 14, 101, 228, 229, 0, 108, 9, 50, 51, 104, 192, 147,
];

fn model() -> Model {
    static M: std::sync::OnceLock<Model> = std::sync::OnceLock::new();
    M.get_or_init(|| Model::default_model().unwrap()).clone()
}

/// Frames of the generator, to mutate.
fn synthetic(seed: u64, n: usize) -> Vec<(i64, Vec<u8>)> {
    let cfg = SynthConfig {
        seed,
        flows_per_profile: 1,
        call_seconds: 3.0,
        bulk_seconds: 0.2,
        peers: 6,
        late_servers: (5, 8),
        short_tcp_per_client: 2,
        ..SynthConfig::default()
    };
    frames(&mut Generator::new(&cfg), n)
}

/// Pushes frames one by one and in bursts into two classifiers bounded at
/// `max_flows`, and checks the properties.
fn check_path(raws: &[RawPacket<'_>], max_flows: usize) -> Result<(), TestCaseError> {
    let table = FlowTableConfig::with_max_flows(max_flows);
    let mut one = Classifier::with_table(model(), table.clone());
    let mut burst = Classifier::with_table(model(), table.clone());
    let mut decoded = Classifier::with_table(model(), table);
    let mut events_one = Vec::new();
    for raw in raws {
        let _ = one.push(raw);
        prop_assert!(one.open_flows() <= max_flows);
        events_one.extend(one.drain_events());
    }
    burst.push_burst(raws);
    let mut events_burst: Vec<Event> = burst.drain_events().collect();
    // Bursts of 7 decoded frames: groups cut short, bursts across groups.
    let mut b = DecodedBurst::new(7);
    let mut events_decoded = Vec::new();
    for raw in raws {
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
    prop_assert_eq!(&events_one, &events_burst);
    prop_assert_eq!(&events_one, &events_decoded);
    prop_assert_eq!(one.stats(), decoded.stats());
    let s = one.stats();
    prop_assert_eq!(s.frames, raws.len() as u64);
    prop_assert_eq!(s.frames, s.packets + s.skipped.total());
    let ended = events_one
        .iter()
        .filter(|e| matches!(e, Event::FlowEnded(_)))
        .count() as u64;
    prop_assert_eq!(ended, s.flows);
    prop_assert_eq!(one.open_flows(), 0);
    Ok(())
}

fn raw_of<'a>(ts: i64, link_type: u32, data: &'a [u8]) -> RawPacket<'a> {
    RawPacket {
        ts: Timestamp(ts),
        link_type,
        data,
        orig_len: data.len() as u32,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Arbitrary bytes under every link type, with timestamps that may go
    /// backwards.
    #[test]
    fn arbitrary_frames(frames in prop::collection::vec(
        (0usize..LINK_TYPES.len(), prop::collection::vec(any::<u8>(), 0..200), -2000i64..5000),
        0..60,
    ), max_flows in 1usize..6) {
        let mut ts = 1_700_000_000_000_000i64;
        let owned: Vec<(i64, u32, Vec<u8>)> = frames
            .into_iter()
            .map(|(l, d, dt)| {
                ts += dt * 1000;
                (ts, LINK_TYPES[l], d)
            })
            .collect();
        let raws: Vec<RawPacket<'_>> = owned.iter().map(|(t, l, d)| raw_of(*t, *l, d)).collect();
        check_path(&raws, max_flows)?;
    }

    /// The generator's frames with bytes flipped, cut, duplicated and
    /// reordered in time: they reach deep into the decoder and the tests.
    #[test]
    fn mutated_frames(seed in 1u64..1000, flips in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 0..40),
                      cuts in prop::collection::vec((any::<prop::sample::Index>(), 0usize..80), 0..10),
                      dups in prop::collection::vec(any::<prop::sample::Index>(), 0..10),
                      max_flows in 1usize..40) {
        let mut f = synthetic(seed, 300);
        let n = f.len();
        for (i, j, x) in flips {
            let frame = &mut f[i.index(n)].1;
            if !frame.is_empty() {
                let k = j.index(frame.len());
                frame[k] ^= x;
            }
        }
        for (i, keep) in cuts {
            let frame = &mut f[i.index(n)].1;
            frame.truncate(keep.min(frame.len()));
        }
        for i in dups {
            let d = f[i.index(f.len())].clone();
            f.push((d.0 - 5_000_000, d.1));
        }
        let raws: Vec<RawPacket<'_>> = f.iter().map(|(t, d)| raw_of(*t, 1, d)).collect();
        check_path(&raws, max_flows)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, .. ProptestConfig::default() })]

    /// Any thread count gives the records of one thread, every field, in
    /// the same order, on random synthetic captures.
    #[test]
    fn thread_counts_give_identical_records(seed in 1u64..100_000, threads in 2usize..5) {
        let dir = std::env::temp_dir().join(format!("skype-dpi-prop-{}-{seed}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pcap = dir.join("p.pcap");
        let cfg = SynthConfig { seed, call_seconds: 6.0, bulk_seconds: 0.3, peers: 20, ..SynthConfig::default() };
        write_pcap(&pcap, &mut Generator::new(&cfg), Some(20_000)).unwrap();
        let json = |r: skype_dpi::analyze::CaptureReport| -> Vec<String> {
            r.records.iter().map(|x| serde_json::to_string(&RecordJson::new("c", x)).unwrap()).collect()
        };
        let table = FlowTableConfig::default();
        let one = json(analyze_file(Path::new(&pcap), None, &model(), table.clone()).unwrap());
        let many = json(analyze_file_parallel(Path::new(&pcap), None, &model(), table, threads).unwrap());
        std::fs::remove_dir_all(&dir).ok();
        prop_assert_eq!(one.len(), many.len());
        for (a, b) in one.iter().zip(&many) {
            prop_assert_eq!(a, b);
        }
    }
}
