//! Writes a synthetic capture and its label CSV.
//!
//! cargo run --release --example synth -- [--seed N] --out FILE.pcap --labels FILE.csv

use std::path::PathBuf;
use std::process::ExitCode;

use skype_dpi::synth::{sample, write_labels, write_pcap};

fn main() -> ExitCode {
    let mut seed = 1u64;
    let mut out = None;
    let mut labels = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--seed" => seed = it.next().and_then(|s| s.parse().ok()).unwrap_or(1),
            "--out" => out = it.next().map(PathBuf::from),
            "--labels" => labels = it.next().map(PathBuf::from),
            other => {
                eprintln!("synth: unknown argument {other:?}\nusage: synth [--seed N] --out FILE.pcap --labels FILE.csv");
                return ExitCode::from(2);
            }
        }
    }
    let (Some(out), Some(labels)) = (out, labels) else {
        eprintln!("usage: synth [--seed N] --out FILE.pcap --labels FILE.csv");
        return ExitCode::from(2);
    };
    let (msgs, flows) = sample(seed);
    if let Err(e) = write_pcap(&out, &msgs).and_then(|_| write_labels(&labels, &flows)) {
        eprintln!("synth: {e}");
        return ExitCode::FAILURE;
    }
    eprintln!(
        "synth: wrote {} messages in {} flows to {}",
        msgs.len(),
        flows.len(),
        out.display()
    );
    ExitCode::SUCCESS
}
