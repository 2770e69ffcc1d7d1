//! The yardsticks do the work they claim and no less: following the flows
//! ([`follow_flows`], `classify --flows-only`) reads the frames the
//! classifier reads, decodes the packets it decodes, skips what it skips
//! and makes the very flows it makes (with the same table settings: a
//! bound that evicts too), and ends every one of them with every packet
//! counted; a truncated capture gives the counts so far and the error.

use std::path::{Path, PathBuf};
use std::process::Command;

use skype_dpi::analyze::analyze_capture_streaming;
use skype_dpi::capture::Capture;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::linkmix::{write_pcap, LinkMix, LinkMixConfig};
use skype_dpi::model::Model;
use skype_dpi::yardstick::{follow_flows, read_frames, FlowCounts};

fn captures() -> Vec<PathBuf> {
    let mut v = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap")];
    let root = datasets_dir().join("ndpi");
    let mut found = false;
    for sub in ["pcap", "legacy-skype/pcap"] {
        if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
            let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            found |= !files.is_empty();
            v.extend(files);
        }
    }
    if !found && std::env::var("CI").is_ok_and(|x| x == "true") {
        panic!(
            "the real captures are missing at {} with CI=true",
            root.display()
        );
    }
    v
}

/// The yardstick's counts and the classifier's on one capture, with the
/// same table settings; None when libpcap cannot open it.
fn both(
    path: &Path,
    table: &FlowTableConfig,
) -> Option<(FlowCounts, Option<String>, FlowCounts, Option<String>)> {
    let mut cap = Capture::open_file(path, None).ok()?;
    let (followed, error) = follow_flows(&mut cap, table.clone());
    let model = Model::default_model().unwrap();
    let cap = Capture::open_file(path, None).ok()?;
    let report = analyze_capture_streaming(cap, &model, table.clone(), usize::MAX, &mut |_| true);
    let s = report.stats;
    let classified = FlowCounts {
        frames: s.frames,
        packets: s.packets,
        skipped: s.skipped.total(),
        flows: s.flows,
        ended: s.flows,
        ended_packets: s.packets,
    };
    Some((
        followed,
        error.err().map(|e| e.to_string()),
        classified,
        report.error.map(|e| e.to_string()),
    ))
}

#[test]
fn following_flows_makes_the_classifiers_flows() {
    let dir = std::env::temp_dir().join(format!("skype-dpi-yardstick-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mix = dir.join("mix.pcap");
    let frames = write_pcap(&mix, &mut LinkMix::new(&LinkMixConfig::link(3_000))).unwrap();
    assert!(frames > 50_000, "{frames} frames");
    let mut paths = captures();
    paths.push(mix.clone());
    let (mut compared, mut flows) = (0, 0);
    for path in &paths {
        let Some((followed, e1, classified, e2)) = both(path, &FlowTableConfig::default()) else {
            continue;
        };
        let what = path.display();
        assert_eq!(followed, classified, "{what}");
        assert_eq!(e1, e2, "{what}: error");
        compared += 1;
        flows += followed.flows;
    }
    eprintln!("{compared} captures compared, {flows} flows");
    assert!(compared >= 2, "{compared} captures compared");
    assert!(flows > 3_000, "{flows} flows");
    // A small table: evictions end flows early and split them, in both.
    let small = FlowTableConfig::with_max_flows(100);
    let (followed, _, classified, _) = both(&mix, &small).unwrap();
    assert_eq!(followed, classified, "the mix through a table of 100 flows");
    let (whole, _, _, _) = both(&mix, &FlowTableConfig::default()).unwrap();
    assert!(followed.flows > whole.flows, "evictions split flows");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_truncated_capture_gives_the_counts_so_far_and_the_error() {
    let dir = std::env::temp_dir().join(format!("skype-dpi-yardstick-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mix = dir.join("mix.pcap");
    write_pcap(&mix, &mut LinkMix::new(&LinkMixConfig::link(500))).unwrap();
    let whole = std::fs::read(&mix).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() / 2 - 3]).unwrap();
    let (followed, e1, classified, e2) = both(&cut, &FlowTableConfig::default()).unwrap();
    assert!(e1.is_some(), "the cut file reads to its end");
    assert_eq!(e1, e2);
    assert_eq!(followed, classified);
    let mut cap = Capture::open_file(&cut, None).unwrap();
    let (read, e3) = read_frames(&mut cap);
    assert_eq!(read.frames, followed.frames);
    assert!(read.frames > 0 && read.captured_bytes > 0);
    assert_eq!(e3.err().map(|e| e.to_string()), e1);
    let _ = std::fs::remove_dir_all(&dir);
}

fn classify_example() -> PathBuf {
    // cargo test builds the examples beside the test binaries' deps folder.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    profile_dir.join("examples").join("classify")
}

#[test]
fn classify_flows_only_counts_the_flows_classify_reports() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let exe = classify_example();
    let flows_only = Command::new(&exe)
        .arg("--flows-only")
        .arg(&sample)
        .output()
        .unwrap();
    assert!(flows_only.status.success());
    assert!(
        flows_only.stdout.is_empty(),
        "nothing is classified, nothing written"
    );
    let text = String::from_utf8_lossy(&flows_only.stderr).to_string();
    let full = Command::new(&exe)
        .args(["--format", "jsonl"])
        .arg(&sample)
        .output()
        .unwrap();
    let records = String::from_utf8_lossy(&full.stdout).lines().count();
    let summary = String::from_utf8_lossy(&full.stderr).to_string();
    let frames = summary
        .split(", ")
        .find(|s| s.ends_with(" frames"))
        .unwrap()
        .to_string();
    assert!(text.starts_with("flows-only: 1 capture(s), "), "{text}");
    assert!(
        text.contains(&format!(", {frames}, ")),
        "{text} / {summary}"
    );
    assert!(
        text.contains(&format!(", {records} flows, ")),
        "{text}: {records} records"
    );
    for refused in [
        &["--flows-only", "--read-only"][..],
        &["--flows-only", "--threads", "2"],
        &["--flows-only", "--reader-thread"],
        &["--flows-only", "--interface", "lo"],
    ] {
        let out = Command::new(&exe)
            .args(refused)
            .arg(&sample)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{refused:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("--flows-only measures one thread"),
            "{refused:?}"
        );
    }
}
