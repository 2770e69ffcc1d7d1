//! Offline analysis in memory bounded by the flow table, not by the
//! capture (issue 19): `analyze_capture_streaming` writes each record as it
//! leaves the revision window, so a flood of ten times more flows through
//! the same `max_flows` and window peaks at the same memory.
//!
//! Each flood runs in a child process (this test binary, re-run with
//! `SKYPE_DPI_OFFLINE_FLOOD=N`), so that its peak resident memory
//! (`VmHWM`) is its own; with `SKYPE_DPI_OFFLINE_READING=own` the frames
//! are read on a thread of their own (`Reading::OwnThread`), whose bursts
//! in flight are bounded too.

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use skype_dpi::analyze::{analyze_capture_streaming_reading, Reading};
use skype_dpi::capture::Capture;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::linkmix::{write_pcap, LinkMix, LinkMixConfig};
use skype_dpi::model::Model;
use skype_dpi::output::{Format, RecordWriter};

/// The flow table's cap and the revision window in the children.
const CAP: usize = 5_000;

fn peak_resident_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// The child: writes a flood of `flows` one-message flows to a capture,
/// classifies it with a small table and window, records to JSONL in a
/// sink, and prints its peak memory.
fn child(flows: u64, reading: Reading) {
    let dir = std::env::temp_dir().join(format!("skype-dpi-offline-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flood.pcap");
    let mut mix = LinkMix::new(&LinkMixConfig::flood(flows));
    assert_eq!(write_pcap(&path, &mut mix).unwrap(), flows);
    // What the capture file took is not the analysis's: start the peak
    // count afresh (Linux: writing 5 to clear_refs resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let model = Model::default_model().unwrap();
    let mut out = RecordWriter::new(std::io::sink(), Format::Jsonl);
    let mut seen = HashSet::new();
    let cap = Capture::open_file(Path::new(&path), None).unwrap();
    let report = analyze_capture_streaming_reading(
        cap,
        &model,
        FlowTableConfig::with_max_flows(CAP),
        CAP,
        reading,
        &mut |r| {
            // Each flow's record once (the flood's flows all differ),
            // looked for among the last records only: the test's own
            // memory must not grow with the flows either.
            if seen.len() >= 4 * CAP {
                seen.clear();
            }
            assert!(seen.insert((r.key, r.first_seen)), "{} twice", r.key);
            out.write("flood", r).is_ok()
        },
    );
    assert!(report.error.is_none());
    assert_eq!(
        report.window.written, flows,
        "every flow's record is written"
    );
    assert!(report.stats.peak_flows <= CAP as u64);
    assert!(report.window.peak_held <= CAP as u64 + 1);
    assert_eq!(report.window.left_early, flows.saturating_sub(CAP as u64));
    println!("peak_kib={}", peak_resident_kib());
    let _ = std::fs::remove_dir_all(&dir);
}

fn peak_of(flows: u64, reading: &str) -> u64 {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "offline_memory_is_bounded_by_the_flow_table",
            "--nocapture",
        ])
        .env("SKYPE_DPI_OFFLINE_FLOOD", flows.to_string())
        .env("SKYPE_DPI_OFFLINE_READING", reading)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child with {flows} flows failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .find_map(|l| l.strip_prefix("peak_kib="))
        .and_then(|v| v.trim().parse().ok())
        .expect("the child prints its peak")
}

#[test]
fn offline_memory_is_bounded_by_the_flow_table() {
    if let Some(n) = std::env::var("SKYPE_DPI_OFFLINE_FLOOD")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        let reading = match std::env::var("SKYPE_DPI_OFFLINE_READING").as_deref() {
            Ok("own") => Reading::OwnThread,
            _ => Reading::SameThread,
        };
        child(n, reading);
        return;
    }
    for (reading, on) in [
        ("same", "the classifier's thread"),
        ("own", "a thread of its own"),
    ] {
        let small = peak_of(50_000, reading);
        let large = peak_of(500_000, reading);
        eprintln!("peak resident memory, reading on {on}: 50,000 flows {small} KiB, 500,000 flows {large} KiB (table and window {CAP})");
        // Ten times the flows, the same bound: within a quarter (the
        // allocator's own rounding), far below the tenfold of keeping them.
        assert!(
            large * 4 <= small * 5,
            "reading on {on}: 50,000 flows peaked at {small} KiB, 500,000 at {large} KiB"
        );
    }
}
