//! A flood of new flows through the streaming API: every frame opens a
//! flow of one UDP message (a new source endpoint each time, as a scan or
//! a flood does), in a table capped at 100,000 flows, so that the longest
//! idle is evicted for each new one once it is full. Times one batch of
//! 100,000 frames after the table has filled: the cost of creating, ending
//! (evicting) and reporting a flow, and of the endpoint bookkeeping of a
//! new peer. Once frame by frame (`Classifier::push`), once in bursts of 64
//! (`Classifier::push_burst`). `cargo bench --bench new_flows`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;

use skype_dpi::classifier::Classifier;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};

const BATCH: u32 = 100_000;
const CAP: usize = 100_000;

fn frame() -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([10, 0, 0, 0], [10, 99, 0, 2], 64)
        .udp(1024, 53)
        .write(&mut out, &[7u8; 40])
        .expect("template frame");
    out
}

/// Makes the template frame the first of flow `i`: its own source address
/// and port.
fn set_source(frame: &mut [u8], i: u32) {
    frame[26..30].copy_from_slice(&(0x0A00_0000u32 | (i >> 8)).to_be_bytes());
    frame[34..36].copy_from_slice(&(1024 + (i & 0xFF) as u16).to_be_bytes());
}

fn push_flows(c: &mut Classifier, frame: &mut [u8], first: u32, n: u32) {
    for i in first..first + n {
        set_source(frame, i);
        let raw = RawPacket {
            ts: Timestamp(1_700_000_000_000_000 + i64::from(i)),
            link_type: 1,
            data: frame,
            orig_len: frame.len() as u32,
        };
        let _ = black_box(c.push(&raw));
        if c.has_events() {
            c.drain_events().for_each(|e| drop(black_box(e)));
        }
    }
}

/// Frames per burst for [`Classifier::push_burst`] (as a NIC queue or a
/// capture ring might hand them over).
const BURST: usize = 64;

fn push_flow_bursts(c: &mut Classifier, frames: &mut [Vec<u8>], first: u32, n: u32) {
    let mut i = first;
    while i < first + n {
        let count = (BURST as u32).min(first + n - i);
        for (k, f) in frames.iter_mut().take(count as usize).enumerate() {
            let j = i + k as u32;
            set_source(f, j);
        }
        let raws: Vec<RawPacket<'_>> = frames
            .iter()
            .take(count as usize)
            .enumerate()
            .map(|(k, f)| RawPacket {
                ts: Timestamp(1_700_000_000_000_000 + i64::from(i + k as u32)),
                link_type: 1,
                data: f,
                orig_len: f.len() as u32,
            })
            .collect();
        let _ = black_box(c.push_burst(&raws));
        if c.has_events() {
            c.drain_events().for_each(|e| drop(black_box(e)));
        }
        i += count;
    }
}

fn new_flows(cr: &mut Criterion) {
    let model = Model::default_model().expect("the default model loads");
    let mut c = Classifier::with_table(model, FlowTableConfig::with_max_flows(CAP));
    let mut f = frame();
    let mut next = 0u32;
    push_flows(&mut c, &mut f, next, 2 * CAP as u32);
    next += 2 * CAP as u32;
    let mut g = cr.benchmark_group("new_flows");
    g.throughput(Throughput::Elements(u64::from(BATCH)));
    g.sample_size(20);
    g.bench_function("one_packet_flows_table_full", |b| {
        b.iter(|| {
            push_flows(&mut c, &mut f, next, BATCH);
            next = next.wrapping_add(BATCH);
        })
    });
    // The same flood handed over in bursts: the flow index entries of a
    // burst are prefetched together.
    let mut c = Classifier::with_table(
        Model::default_model().expect("the default model loads"),
        FlowTableConfig::with_max_flows(CAP),
    );
    let mut frames = vec![frame(); BURST];
    let mut next = 0u32;
    push_flow_bursts(&mut c, &mut frames, next, 2 * CAP as u32);
    next += 2 * CAP as u32;
    g.bench_function("one_packet_flows_table_full_bursts", |b| {
        b.iter(|| {
            push_flow_bursts(&mut c, &mut frames, next, BATCH);
            next = next.wrapping_add(BATCH);
        })
    });
    g.finish();
}

criterion_group!(benches, new_flows);
criterion_main!(benches);
