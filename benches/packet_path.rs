//! Criterion benchmarks of the per-packet path: decode, flow lookup, feature
//! update, chi-square classification, the whole classifier, and a whole
//! capture (the project's sample) from file to records.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use skype_dpi::analyze::analyze_file;
use skype_dpi::classifier::Classifier;
use skype_dpi::config::{DftConfig, FlowTableConfig, NbcConfig};
use skype_dpi::csc::{CscState, GroupTests};
use skype_dpi::features::{DirectionFeatures, FuncSet, NibbleCounts};
use skype_dpi::flow::FlowTable;
use skype_dpi::model::Model;
use skype_dpi::packet::{decode, RawPacket, Timestamp};
use skype_dpi::synth::{Generator, SynthConfig};
use skype_dpi::tunnel::TunnelKind;

fn frames(n: usize) -> Vec<(i64, Vec<u8>)> {
    frames_in(n, None)
}

/// The same traffic, wrapped in a tunnel (issue 17) when given.
fn frames_in(n: usize, tunnel: Option<TunnelKind>) -> Vec<(i64, Vec<u8>)> {
    let cfg = SynthConfig {
        seed: 11,
        flows_per_profile: 3,
        tunnel,
        ..SynthConfig::default()
    };
    skype_dpi::synth::frames(&mut Generator::new(&cfg), n)
}

fn raw(ts: i64, f: &[u8]) -> RawPacket<'_> {
    RawPacket {
        ts: Timestamp(ts),
        link_type: 1,
        data: f,
        orig_len: f.len() as u32,
    }
}

fn per_packet(c: &mut Criterion) {
    let frames = frames(200_000);
    let n = frames.len() as u64;
    let mut g = c.benchmark_group("per_packet");
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode", |b| {
        b.iter(|| {
            for (ts, f) in &frames {
                let _ = black_box(decode(&raw(*ts, f)));
            }
        })
    });
    g.bench_function("decode+flow_lookup", |b| {
        b.iter(|| {
            let mut t: FlowTable<u32> = FlowTable::new(FlowTableConfig::default());
            for (ts, f) in &frames {
                if let Ok(p) = decode(&raw(*ts, f)) {
                    let u = t.update(&p, || 0, &mut |_| {});
                    *u.state += 1;
                }
            }
            black_box(t.len())
        })
    });
    let dft = DftConfig::default();
    let nbc = NbcConfig::default();
    let mask = FuncSet::of(&dft.func_known);
    let decoded: Vec<_> = frames
        .iter()
        .filter_map(|(ts, f)| decode(&raw(*ts, f)).ok())
        .collect();
    g.bench_function("feature_update", |b| {
        b.iter(|| {
            let mut d = DirectionFeatures::default();
            for p in &decoded {
                black_box(d.observe(
                    p.ts,
                    p.transport,
                    p.payload,
                    p.payload_len,
                    mask,
                    &dft,
                    &nbc,
                ));
            }
        })
    });
    g.bench_function("classifier_push", |b| {
        let model = Model::default_model().unwrap();
        b.iter(|| {
            let mut c = Classifier::new(model.clone());
            for (ts, f) in &frames {
                let _ = c.push(&raw(*ts, f));
                c.drain_events().for_each(drop);
            }
            black_box(c.open_flows())
        })
    });
    g.finish();

    // The same traffic inside tunnels: what opening them costs a packet.
    let mut g = c.benchmark_group("per_packet_in_tunnels");
    g.throughput(Throughput::Elements(n));
    for kind in [TunnelKind::GtpU, TunnelKind::Vxlan, TunnelKind::Gre] {
        let wrapped = frames_in(200_000, Some(kind));
        g.bench_function(format!("decode/{}", kind.as_str()), |b| {
            b.iter(|| {
                for (ts, f) in &wrapped {
                    let _ = black_box(decode(&raw(*ts, f)));
                }
            })
        });
        g.bench_function(format!("classifier_push/{}", kind.as_str()), |b| {
            let model = Model::default_model().unwrap();
            b.iter(|| {
                let mut c = Classifier::new(model.clone());
                for (ts, f) in &wrapped {
                    let _ = c.push(&raw(*ts, f));
                    c.drain_events().for_each(drop);
                }
                black_box(c.open_flows())
            })
        });
    }
    g.finish();

    let mut counts = NibbleCounts::default();
    let mut x = 0x1234_5678_9abc_def0u64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mut h = x.to_le_bytes();
        h[2] = (h[2] & 0x70) | 0x0D;
        counts.add(&h);
    }
    let tests = GroupTests::new(&skype_dpi::config::CscConfig::default());
    c.bench_function("sequential_group_tests_e2e_window", |b| {
        b.iter(|| {
            let mut s = CscState::default();
            s.look(black_box(&counts), 1, &tests);
            black_box(s)
        })
    });
}

fn whole_capture(c: &mut Criterion) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let model = Model::default_model().unwrap();
    let frames = analyze_file(&sample, None, &model, FlowTableConfig::default())
        .map(|r| r.stats.frames)
        .unwrap_or(1);
    let mut g = c.benchmark_group("whole_capture");
    g.throughput(Throughput::Elements(frames));
    g.sample_size(20);
    g.bench_function("sample.pcap", |b| {
        b.iter(|| {
            black_box(
                analyze_file(&sample, None, &model, FlowTableConfig::default())
                    .map(|r| r.records.len()),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, per_packet, whole_capture);
criterion_main!(benches);
