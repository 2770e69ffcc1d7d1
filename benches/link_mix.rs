//! The streaming API on traffic that looks like a link: many short flows
//! (`skype_dpi::linkmix`: heavy-tailed flow sizes, a mean of about 20
//! packets, two flows in three of one or two packets, random payloads, UDP
//! and TCP), the frames held in memory and pushed one by one through a
//! fresh classifier, every event drained. Beside it, the long flows of the
//! synthetic calls (`packet_path`'s mix), so that the two shapes compare
//! in one run. `cargo bench --bench link_mix`; the whole-process figures
//! (libpcap's read floor, `classify`, peak memory, ndpiReader when
//! installed) come from `benches/scripts/link_mix.sh`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use skype_dpi::classifier::Classifier;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::linkmix::{frames, LinkMix, LinkMixConfig};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::synth::{Generator, SynthConfig};

/// Flows of the link-like mix held in memory (about 200,000 frames).
const LINK_FLOWS: u64 = 10_000;

fn push_all(c: &mut Classifier, frames: &[(i64, Vec<u8>)]) {
    for (ts, f) in frames {
        let raw = RawPacket {
            ts: Timestamp(*ts),
            link_type: 1,
            data: f,
            orig_len: f.len() as u32,
        };
        let _ = black_box(c.push(&raw));
        if c.has_events() {
            c.drain_events().for_each(|e| drop(black_box(e)));
        }
    }
    c.finish_all();
    c.drain_events().for_each(|e| drop(black_box(e)));
}

fn link_mix(cr: &mut Criterion) {
    let model = Model::default_model().expect("the default model loads");
    let link = frames(
        &mut LinkMix::new(&LinkMixConfig::link(LINK_FLOWS)),
        usize::MAX,
    );
    let calls = skype_dpi::synth::frames(
        &mut Generator::new(&SynthConfig {
            flows_per_profile: 2,
            ..SynthConfig::default()
        }),
        link.len(),
    );
    let mut g = cr.benchmark_group("link_mix");
    g.sample_size(10);
    for (name, frames) in [
        ("short_flows_link_like", &link),
        ("long_flows_calls", &calls),
    ] {
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || Classifier::with_table(model.clone(), FlowTableConfig::default()),
                |mut c| push_all(&mut c, frames),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, link_mix);
criterion_main!(benches);
