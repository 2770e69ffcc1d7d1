//! Writes the seed corpora of the fuzz targets into fuzz/corpus/TARGET:
//! frames of the project's own generator (a Skype call, signalling, look-
//! alikes; IPv4 and IPv6) wrapped in every link layer the front end reads,
//! a few frame sequences for the classifier, and the default model for the
//! model loader. Nothing here comes from a third-party capture.
//!
//! cargo run --release --example fuzz_seeds

use std::path::Path;

use skype_dpi::model::DEFAULT_MODEL_JSON;
use skype_dpi::synth::{frames, Generator, SynthConfig};
use skype_dpi::tunnel::TunnelKind;

#[path = "../fuzz/fuzz_targets/common.rs"]
mod common;

/// The link layer of `link_type` around an IP packet (`v6` says which).
fn wrap(link_type: u32, ip: &[u8], v6: bool) -> Vec<u8> {
    let ethertype: [u8; 2] = if v6 { [0x86, 0xDD] } else { [0x08, 0x00] };
    let mut f = Vec::new();
    match link_type {
        1 => {
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&ethertype);
        }
        113 => {
            f.extend_from_slice(&[0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
            f.extend_from_slice(&ethertype);
        }
        276 => {
            f.extend_from_slice(&ethertype);
            f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
        }
        0 => f.extend_from_slice(&(if v6 { 10u32 } else { 2u32 }).to_ne_bytes()),
        108 => f.extend_from_slice(&(if v6 { 10u32 } else { 2u32 }).to_be_bytes()),
        9 | 50 => f.extend_from_slice(&[0xFF, 0x03, 0x00, if v6 { 0x57 } else { 0x21 }]),
        51 => f.extend_from_slice(&[
            0x11,
            0x00,
            0x00,
            0x01,
            0x00,
            0x00,
            0x00,
            if v6 { 0x57 } else { 0x21 },
        ]),
        104 => {
            f.extend_from_slice(&[0x0F, 0x00]);
            f.extend_from_slice(&ethertype);
        }
        192 => {
            let mut eth = wrap(1, ip, v6);
            f.extend_from_slice(&[0, 0, 8, 0, 1, 0, 0, 0]);
            f.append(&mut eth);
            return f;
        }
        _ => {}
    }
    f.extend_from_slice(ip);
    f
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("corpus folder");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let cfg = SynthConfig {
        seed: 4,
        flows_per_profile: 1,
        call_seconds: 4.0,
        bulk_seconds: 0.2,
        peers: 5,
        late_servers: (5, 5),
        short_tcp_per_client: 2,
        ..SynthConfig::default()
    };
    let all = frames(&mut Generator::new(&cfg), 600);
    // decode: every link type around a few IPv4 and IPv6 packets.
    for (n, (_, eth)) in all.iter().step_by(40).enumerate() {
        let (ip_at, v6) = match (eth.get(12), eth.get(13)) {
            (Some(0x81), Some(0x00)) => (18, eth.get(16) == Some(&0x86)),
            _ => (14, eth.get(12) == Some(&0x86)),
        };
        let ip = &eth[ip_at.min(eth.len())..];
        for (sel, &lt) in common::LINK_TYPES.iter().enumerate() {
            let mut seed = vec![sel as u8];
            seed.extend(wrap(lt, &ip[..ip.len().min(120)], v6));
            write(&root.join("decode"), &format!("lt{lt}-{n}"), &seed);
        }
    }
    // decode and classifier: frames inside each tunnel the generator makes
    // (the front end opens them; selector 0 is Ethernet).
    for kind in [
        TunnelKind::GtpU,
        TunnelKind::Gre,
        TunnelKind::Vxlan,
        TunnelKind::IpInIp,
    ] {
        let tunneled = frames(
            &mut Generator::new(&SynthConfig {
                tunnel: Some(kind),
                ..cfg.clone()
            }),
            200,
        );
        for (n, (_, f)) in tunneled.iter().step_by(50).enumerate() {
            let mut seed = vec![0u8];
            seed.extend_from_slice(&f[..f.len().min(160)]);
            write(
                &root.join("decode"),
                &format!("{}-{n}", kind.as_str()),
                &seed,
            );
        }
        let mut seq = Vec::new();
        for (_, f) in tunneled.iter().take(40) {
            let f = &f[..f.len().min(200)];
            seq.push(0);
            seq.extend_from_slice(&20i16.to_le_bytes());
            seq.extend_from_slice(&(f.len() as u16).to_le_bytes());
            seq.extend_from_slice(f);
        }
        write(
            &root.join("classifier"),
            &format!("{}-seq", kind.as_str()),
            &seq,
        );
    }
    // classifier: sequences of Ethernet frames with their gaps.
    for (k, chunk) in all.chunks(150).enumerate() {
        let mut seed = Vec::new();
        let mut last = chunk[0].0;
        for (ts, f) in chunk {
            let delta = i16::try_from((ts - last) / 1000).unwrap_or(i16::MAX);
            last = *ts;
            let f = &f[..f.len().min(200)];
            seed.push(0);
            seed.extend_from_slice(&delta.to_le_bytes());
            seed.extend_from_slice(&(f.len() as u16).to_le_bytes());
            seed.extend_from_slice(f);
        }
        write(&root.join("classifier"), &format!("seq{k}"), &seed);
    }
    // model: the default model.
    write(
        &root.join("model"),
        "default.json",
        DEFAULT_MODEL_JSON.as_bytes(),
    );
    eprintln!("seeds written to {}", root.display());
}
