//! One classifier per core, as a firewall with several NIC queues runs it:
//! the frames of a synthetic mix are split by a hash of the 5-tuple that
//! both directions share (a NIC's symmetric RSS hash does the same), and
//! each worker thread owns a `Classifier` (it is `Send`) and reports its
//! verdicts.
//!
//! cargo run --release --example per_core -- [--threads N] [--packets N]

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::mpsc;

use skype_dpi::classifier::{Classifier, Event};
use skype_dpi::model::Model;
use skype_dpi::packet::{decode, RawPacket, Timestamp};
use skype_dpi::synth::{frames, Generator, SynthConfig};
use skype_dpi::verdict::Label;

/// A hash of the frame's two endpoints that does not depend on their order.
fn symmetric(a: (IpAddr, u16), b: (IpAddr, u16)) -> u64 {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = DefaultHasher::new();
    (lo, hi).hash(&mut h);
    h.finish()
}

fn main() {
    let mut threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut packets = 200_000usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let value = it.next().and_then(|v| v.parse().ok());
        match (a.as_str(), value) {
            ("--threads", Some(n)) => threads = n,
            ("--packets", Some(n)) => packets = n,
            _ => {
                eprintln!("usage: per_core [--threads N] [--packets N]");
                std::process::exit(2);
            }
        }
    }
    let model = match Model::default_model() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("per_core: {e}");
            std::process::exit(2);
        }
    };
    let mut workers = Vec::new();
    let mut queues = Vec::new();
    for _ in 0..threads.max(1) {
        let (tx, rx) = mpsc::sync_channel::<(i64, Vec<u8>)>(1024);
        queues.push(tx);
        let mut c = Classifier::new(model.clone());
        workers.push(std::thread::spawn(move || {
            let mut skype = 0u64;
            for (ts, frame) in rx {
                let raw = RawPacket {
                    ts: Timestamp(ts),
                    link_type: 1,
                    data: &frame,
                    orig_len: frame.len() as u32,
                };
                let _ = c.push(&raw);
                for e in c.drain_events() {
                    if let Event::Verdict { verdict, .. } = e {
                        skype += u64::from(verdict.label == Label::Skype);
                    }
                }
            }
            c.finish_all();
            (c.stats(), skype)
        }));
    }
    let cfg = SynthConfig {
        seed: 3,
        ..SynthConfig::default()
    };
    for (ts, frame) in frames(&mut Generator::new(&cfg), packets) {
        let raw = RawPacket {
            ts: Timestamp(ts),
            link_type: 1,
            data: &frame,
            orig_len: frame.len() as u32,
        };
        let Ok(p) = decode(&raw) else { continue };
        let h = symmetric((p.src_ip, p.src_port), (p.dst_ip, p.dst_port));
        let q = &queues[(h % queues.len() as u64) as usize];
        if q.send((ts, frame)).is_err() {
            break;
        }
    }
    drop(queues);
    for (i, w) in workers.into_iter().enumerate() {
        match w.join() {
            Ok((stats, skype)) => println!(
                "worker {i}: {} packets, {} flows, {skype} Skype verdicts",
                stats.packets, stats.flows
            ),
            Err(_) => eprintln!("per_core: worker {i} failed"),
        }
    }
}
