//! How memory grows with concurrent flows: holds 10 thousand, 100 thousand
//! and 1 million open UDP flows (two messages each, undecided) in one
//! classifier and prints the resident memory; then 100 thousand and 1
//! million open TCP flows whose verdict is final (not Skype: 130 segments
//! each, until the rhythm classifier settles them). `cargo bench --bench
//! concurrent_flows`. Each size runs in a fresh process so the figures do
//! not include the previous size's freed memory.

use std::net::Ipv4Addr;
use std::process::Command;

use etherparse::PacketBuilder;
use skype_dpi::classifier::{flow_memory, Classifier, Event};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn hold(n: u32) {
    let mut c = Classifier::new(Model::default_model().expect("model"));
    let base = rss_kib();
    let mut frame = Vec::with_capacity(128);
    let payload = [0x5Au8; 60];
    for i in 0..n {
        for dir in 0..2u32 {
            frame.clear();
            let a = Ipv4Addr::from(0x0A00_0000 | (i >> 8));
            let b = Ipv4Addr::from(0xC633_6400 | (i & 0xFF));
            let (s, d, sp, dp) = if dir == 0 {
                (a, b, 40000, 3478)
            } else {
                (b, a, 3478, 40000)
            };
            let builder = PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4(s.octets(), d.octets(), 64)
                .udp(sp, dp);
            if builder.write(&mut frame, &payload).is_err() {
                continue;
            }
            let raw = RawPacket {
                ts: Timestamp(1_700_000_000_000_000 + i64::from(i) * 10),
                link_type: 1,
                data: &frame,
                orig_len: frame.len() as u32,
            };
            let _ = c.push(&raw);
            c.drain_events().for_each(drop);
        }
    }
    let held = c.open_flows();
    let rss = rss_kib();
    let per_flow = (rss.saturating_sub(base)) as f64 * 1024.0 / held.max(1) as f64;
    println!(
        "{held:>9} concurrent flows: resident {:>8.1} MiB (+{:.1} MiB, {per_flow:.0} bytes per flow; type sizes: {} bytes undecided)",
        rss as f64 / 1024.0,
        (rss - base) as f64 / 1024.0,
        flow_memory().undecided
    );
}

/// Holds `n` open TCP flows, each pushed one way until its verdict is final.
fn hold_decided(n: u32) {
    let mut c = Classifier::new(Model::default_model().expect("model"));
    let base = rss_kib();
    let mut frame = Vec::with_capacity(1500);
    let mut payload = [0u8; 1400];
    let mut decided = 0u64;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..n {
        let a = Ipv4Addr::from(0x0A00_0000 | (i >> 8));
        let b = Ipv4Addr::from(0xC633_6400 | (i & 0xFF));
        let mut ts = 1_700_000_000_000_000i64 + i64::from(i);
        for k in 0..130u32 {
            // Bulk transfer: random leading bytes (no CSC signature; the
            // classifiers read no further), random sizes and gaps (no voice
            // rhythm).
            let len = 100 + (next() % 1300) as usize;
            payload[..8].copy_from_slice(&next().to_le_bytes());
            ts += (next() % 40_000) as i64;
            frame.clear();
            let builder = PacketBuilder::ethernet2([2; 6], [4; 6])
                .ipv4(a.octets(), b.octets(), 64)
                .tcp(40000, 443, k, 65535)
                .ack(1);
            if builder.write(&mut frame, &payload[..len]).is_err() {
                continue;
            }
            let raw = RawPacket {
                ts: Timestamp(ts),
                link_type: 1,
                data: &frame,
                orig_len: frame.len() as u32,
            };
            let _ = c.push(&raw);
            for e in c.drain_events() {
                if matches!(e, Event::Verdict { .. }) {
                    decided += 1;
                }
            }
        }
    }
    let held = c.open_flows();
    let rss = rss_kib();
    let per_flow = (rss.saturating_sub(base)) as f64 * 1024.0 / held.max(1) as f64;
    println!(
        "{held:>9} concurrent flows ({decided} with a final verdict): resident {:>8.1} MiB (+{:.1} MiB, {per_flow:.0} bytes per flow; type sizes: {} bytes decided)",
        rss as f64 / 1024.0,
        (rss - base) as f64 / 1024.0,
        flow_memory().decided
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    if let Some(n) = args.next().and_then(|a| a.parse::<u32>().ok()) {
        if args.next().as_deref() == Some("decided") {
            hold_decided(n);
        } else {
            hold(n);
        }
        return;
    }
    // Under `cargo bench --no-run` nothing runs; under `cargo bench`, each
    // size in its own process.
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(_) => return,
    };
    for n in [10_000u32, 100_000, 1_000_000] {
        let _ = Command::new(&exe).arg(n.to_string()).status();
    }
    for n in [100_000u32, 1_000_000] {
        let _ = Command::new(&exe)
            .args([n.to_string(), "decided".to_string()])
            .status();
    }
}
