//! Writes a synthetic capture (pcap, through libpcap) and its label CSV.
//!
//! cargo run --release --example synth -- --out FILE.pcap --labels FILE.csv
//!     [--sample] [--seed N] [--flows-per-profile N] [--call-seconds S]
//!     [--spread-seconds S] [--signalling-clients N] [--peers N]
//!     [--ipv6-share F] [--vlan-share F] [--loss F] [--bulk-seconds S] [--packets N]
//! cargo run --release --example synth -- --out FILE.pcap --mix link|flood --flows N [--seed N]
//!
//! `--sample` gives the settings of `datasets/sample.pcap`. `--packets N`
//! stops after N messages (the capture is streamed: any size fits).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use skype_dpi::linkmix::{LinkMix, LinkMixConfig};
use skype_dpi::synth::{sample_config, write_labels, write_pcap, Generator, SynthConfig};

const USAGE: &str = "usage: synth --out FILE.pcap --labels FILE.csv [--sample] [--seed N] [--flows-per-profile N] [--call-seconds S] [--spread-seconds S] [--signalling-clients N] [--peers N] [--ipv6-share F] [--vlan-share F] [--loss F] [--bulk-seconds S] [--packets N] [--tunnel gtp_u|gre|vxlan|ip_in_ip]
       synth --out FILE.pcap --mix link|flood --flows N [--seed N]
  --mix link: a link-like mix of N flows (heavy-tailed sizes, mean about 20 packets, two thirds of flows one or two packets; random payloads, UDP and TCP); --mix flood: N one-message UDP flows, each from a new source (benchmarks; no labels)";

fn main() -> ExitCode {
    let mut cfg = SynthConfig::default();
    let (mut out, mut labels, mut packets) = (None, None, None);
    let mut it = std::env::args().skip(1);
    let mut bad = None;
    let (mut mix, mut flows) = (None, None);
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> Option<f64> {
            let v = it.next().and_then(|s| s.parse::<f64>().ok());
            if v.is_none() {
                bad = Some(format!("{name} needs a number"));
            }
            v
        };
        match a.as_str() {
            "--out" => out = it.next().map(PathBuf::from),
            "--labels" => labels = it.next().map(PathBuf::from),
            "--sample" => cfg = sample_config(),
            "--seed" => cfg.seed = num("--seed").unwrap_or(1.0) as u64,
            "--flows-per-profile" => {
                cfg.flows_per_profile = num("--flows-per-profile").unwrap_or(1.0) as u32
            }
            "--call-seconds" => cfg.call_seconds = num("--call-seconds").unwrap_or(30.0),
            "--spread-seconds" => cfg.spread_seconds = num("--spread-seconds").unwrap_or(10.0),
            "--signalling-clients" => {
                cfg.signalling_clients = num("--signalling-clients").unwrap_or(1.0) as u32
            }
            "--peers" => cfg.peers = num("--peers").unwrap_or(40.0) as u32,
            "--ipv6-share" => cfg.ipv6_share = num("--ipv6-share").unwrap_or(0.0),
            "--vlan-share" => cfg.vlan_share = num("--vlan-share").unwrap_or(0.0),
            "--loss" => cfg.loss = num("--loss").unwrap_or(0.0),
            "--bulk-seconds" => cfg.bulk_seconds = num("--bulk-seconds").unwrap_or(6.0),
            "--mix" => mix = it.next(),
            "--flows" => flows = num("--flows").map(|n| n as u64),
            "--packets" => packets = num("--packets").map(|n| n as u64),
            "--tunnel" => match it.next().map(|k| k.parse()) {
                Some(Ok(kind)) => cfg.tunnel = Some(kind),
                Some(Err(e)) => bad = Some(e),
                None => bad = Some("--tunnel needs a kind".to_string()),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            other => bad = Some(format!("unknown argument {other:?}")),
        }
        if bad.is_some() {
            break;
        }
    }
    if let Some(b) = bad {
        eprintln!("synth: {b}\n{USAGE}");
        return ExitCode::from(2);
    }
    if let Some(kind) = mix {
        let Some(out) = out else {
            eprintln!("synth: --out is required\n{USAGE}");
            return ExitCode::from(2);
        };
        let n = flows.unwrap_or(100_000);
        let mut mcfg = match kind.as_str() {
            "link" => LinkMixConfig::link(n),
            "flood" => LinkMixConfig::flood(n),
            other => {
                eprintln!("synth: --mix is link or flood, not {other:?}\n{USAGE}");
                return ExitCode::from(2);
            }
        };
        mcfg.seed = cfg.seed;
        let start = Instant::now();
        let mut gen = LinkMix::new(&mcfg);
        return match skype_dpi::linkmix::write_pcap(&out, &mut gen) {
            Ok(n) => {
                eprintln!(
                    "synth: wrote {n} packets in {} flows (mean {:.1} packets) to {} in {:.2} s",
                    gen.flows(),
                    n as f64 / gen.flows().max(1) as f64,
                    out.display(),
                    start.elapsed().as_secs_f64()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("synth: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (Some(out), Some(labels)) = (out, labels) else {
        eprintln!("synth: --out and --labels are required\n{USAGE}");
        return ExitCode::from(2);
    };
    let start = Instant::now();
    let mut gen = Generator::new(&cfg);
    if let Err(e) = write_labels(&labels, gen.flows()) {
        eprintln!("synth: {e}");
        return ExitCode::FAILURE;
    }
    match write_pcap(&out, &mut gen, packets) {
        Ok(n) => {
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "synth: wrote {n} packets in {} flows to {} in {secs:.2} s ({:.0} packets/s)",
                gen.flows().count(),
                out.display(),
                n as f64 / secs.max(1e-9)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("synth: {e}");
            ExitCode::FAILURE
        }
    }
}
