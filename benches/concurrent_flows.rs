//! How memory and per-packet cost grow with concurrent flows. Holds 10
//! thousand, 100 thousand and 1 million open UDP flows (undecided) in one
//! classifier, then 100 thousand and 1 million open TCP flows whose verdict
//! is final (not Skype: bulk segments, until the rhythm classifier settles
//! them), and prints the resident memory and the time per packet of a
//! steady phase in which every flow gets packets in turn (so consecutive
//! packets belong to different flows, as on a busy link). `cargo bench
//! --bench concurrent_flows`. Each size runs in a fresh process so the
//! figures do not include the previous size's freed memory.

use std::process::Command;
use std::time::Instant;

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

/// A template Ethernet + IPv4 frame with `payload`, whose addresses, ports,
/// lengths and leading payload bytes are then written in place (the
/// classifier does not check checksums).
fn template(tcp: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::new();
    let b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64);
    let written = if tcp {
        b.tcp(40000, 443, 1, 65535)
            .ack(1)
            .write(&mut frame, payload)
    } else {
        b.udp(40000, 3478).write(&mut frame, payload)
    };
    written.expect("template frame");
    frame
}

/// Flow `i`'s endpoints: 10.x.y.z:40000 and 198.51.100.w:3478 (or :443).
fn set_flow(frame: &mut [u8], i: u32, backward: bool, server_port: u16) {
    let a = (0x0A00_0000 | (i >> 8)).to_be_bytes();
    let b = (0xC633_6400 | (i & 0xFF)).to_be_bytes();
    let (s, d, sp, dp) = if backward {
        (b, a, server_port, 40000u16)
    } else {
        (a, b, 40000, server_port)
    };
    frame[26..30].copy_from_slice(&s);
    frame[30..34].copy_from_slice(&d);
    frame[34..36].copy_from_slice(&sp.to_be_bytes());
    frame[36..38].copy_from_slice(&dp.to_be_bytes());
}

fn push(c: &mut Classifier, frame: &[u8], ts: i64) -> u64 {
    let raw = RawPacket {
        ts: Timestamp(ts),
        link_type: 1,
        data: frame,
        orig_len: frame.len() as u32,
    };
    let _ = c.push(&raw);
    let mut verdicts = 0;
    for e in c.drain_events() {
        if matches!(e, Event::Verdict { .. }) {
            verdicts += 1;
        }
    }
    verdicts
}

/// Frames per burst in the burst variant of the steady phase.
const BURST: usize = 32;

/// Pushes `frames` as one burst, draining the events.
fn push_burst(c: &mut Classifier, frames: &[Vec<u8>], ts: &[i64]) {
    let raws: Vec<RawPacket<'_>> = frames
        .iter()
        .zip(ts)
        .map(|(f, &t)| RawPacket {
            ts: Timestamp(t),
            link_type: 1,
            data: f,
            orig_len: f.len() as u32,
        })
        .collect();
    c.push_burst(&raws);
    c.drain_events().for_each(drop);
}

fn report(c: &Classifier, base: u64, what: &str, type_size: usize, ns: [f64; 2]) {
    let held = c.open_flows();
    let rss = rss_kib();
    let per_flow = (rss.saturating_sub(base)) as f64 * 1024.0 / held.max(1) as f64;
    println!(
        "{held:>9} concurrent {what}: resident {:>7.1} MiB ({per_flow:.0} bytes per flow; type sizes {type_size}); steady phase per packet: {:.0} ns pushed one by one, {:.0} ns in bursts of {BURST}",
        rss as f64 / 1024.0,
        ns[0],
        ns[1],
    );
}

/// The steady phase: one more packet for each of `n` flows, pushed one by
/// one and then (the next packet) in bursts; `make` writes flow `i`'s
/// packet into a frame and gives its time.
fn steady(
    c: &mut Classifier,
    n: u32,
    frame: &[u8],
    mut make: impl FnMut(&mut Vec<u8>, u32, u32) -> i64,
) -> [f64; 2] {
    let mut one = frame.to_vec();
    let start = Instant::now();
    for i in 0..n {
        let t = make(&mut one, i, 0);
        push(c, &one, t);
    }
    let by_one = start.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    let mut frames = vec![frame.to_vec(); BURST];
    let mut times = vec![0i64; BURST];
    let start = Instant::now();
    for first in (0..n).step_by(BURST) {
        let k = (n - first).min(BURST as u32) as usize;
        for (j, (f, t)) in frames.iter_mut().zip(times.iter_mut()).take(k).enumerate() {
            *t = make(f, first + j as u32, 1);
        }
        push_burst(c, &frames[..k], &times[..k]);
    }
    let in_bursts = start.elapsed().as_nanos() as f64 / f64::from(n.max(1));
    [by_one, in_bursts]
}

/// Holds `n` open UDP flows with two messages each, then sends each a
/// third and a fourth.
fn hold(n: u32) {
    let mut c = Classifier::new(Model::default_model().expect("model"));
    let base = rss_kib();
    let mut frame = template(false, &[0x5Au8; 60]);
    let t0 = 1_700_000_000_000_000i64;
    for round in 0..2u32 {
        for i in 0..n {
            set_flow(&mut frame, i, round == 1, 3478);
            push(
                &mut c,
                &frame,
                t0 + i64::from(round) * 1_000_000 + i64::from(i),
            );
        }
    }
    let ns = steady(&mut c, n, &frame, |f, i, round| {
        set_flow(f, i, round == 1, 3478);
        t0 + i64::from(2 + round) * 1_000_000 + i64::from(i)
    });
    report(&c, base, "undecided flows", flow_memory().undecided, ns);
}

/// Holds `n` open TCP flows, each pushed one way until its verdict is
/// final, then sends each two more segments.
fn hold_decided(n: u32) {
    let mut c = Classifier::new(Model::default_model().expect("model"));
    let base = rss_kib();
    let full = template(true, &[0u8; 1400]);
    let header = 14 + 20 + 20;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // Bulk transfer: random leading bytes (no CSC signature; the
    // classifiers read no further), random sizes (no voice rhythm).
    let segment = move |frame: &mut Vec<u8>, i: u32, r: u64| {
        let len = 100 + (r % 1300) as usize;
        frame.clear();
        frame.extend_from_slice(&full[..header + len]);
        set_flow(frame, i, false, 443);
        frame[16..18].copy_from_slice(&((40 + len) as u16).to_be_bytes());
        frame[header..header + 8].copy_from_slice(&r.rotate_left(17).to_le_bytes());
    };
    let mut frame = Vec::with_capacity(1500);
    let mut decided = 0u64;
    let ts = 1_700_000_000_000_000i64;
    for i in 0..n {
        let mut t = ts + i64::from(i);
        for _ in 0..130 {
            let r = next();
            t += (r % 40_000) as i64; // random gaps
            segment(&mut frame, i, r);
            decided += push(&mut c, &frame, t);
        }
    }
    let ns = steady(&mut c, n, &frame, |f, i, round| {
        segment(f, i, next());
        ts + 10_000_000 + i64::from(round) * 1_000_000 + i64::from(i)
    });
    let what = format!("flows ({decided} with a final verdict)");
    report(&c, base, &what, flow_memory().decided, ns);
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
    for n in [10_000u32, 100_000, 1_000_000] {
        let _ = Command::new(&exe)
            .args([n.to_string(), "decided".to_string()])
            .status();
    }
}
