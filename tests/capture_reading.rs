//! Reading a capture file in larger blocks ([`Capture::open_file_reading`],
//! [`skype_dpi::capture::FILE_READ_BUFFER`]) hands over the very frames
//! libpcap reads by itself: the same count, times, lengths and bytes, in
//! the same order, on pcap and pcapng files, on a truncated file (with the
//! same error after the same frames) and on a file smaller than the block.
//! Reading on a thread of its own ([`Reading::OwnThread`]) gives the
//! records, counters and error of reading on the classifier's thread.

use std::path::{Path, PathBuf};

use skype_dpi::analyze::{analyze_capture_streaming_reading, Reading, StreamReport};
use skype_dpi::capture::{Capture, FILE_READ_BUFFER};
use skype_dpi::classifier::FlowRecord;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::linkmix::{write_pcap, LinkMix, LinkMixConfig};
use skype_dpi::model::Model;

/// Each frame's time, length on the wire and captured bytes.
type Frame = (i64, u32, Vec<u8>);

/// Every frame, and the error reading ended with.
fn frames(path: &Path, read_buffer: usize) -> (Vec<Frame>, Option<String>) {
    let mut cap = Capture::open_file_reading(path, None, read_buffer).unwrap();
    let mut out = Vec::new();
    let r = cap.for_each(|raw| {
        out.push((raw.ts.0, raw.orig_len, raw.data.to_vec()));
        true
    });
    (out, r.err().map(|e| e.to_string()))
}

fn captures() -> Vec<PathBuf> {
    let mut v = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap")];
    let root = datasets_dir().join("ndpi");
    for name in [
        "legacy-skype/pcap/skype.pcap",
        "pcap/1kxun.pcap",
        "pcap/opera-vpn.pcapng",
        "pcap/telegram_videocall.pcapng",
    ] {
        let p = root.join(name);
        if p.exists() {
            v.push(p);
        } else if std::env::var("CI").is_ok_and(|x| x == "true") {
            panic!("{} is missing with CI=true", p.display());
        }
    }
    v
}

#[test]
fn larger_blocks_read_the_frames_libpcap_reads() {
    for path in captures() {
        let by_itself = frames(&path, 0);
        assert!(
            by_itself.1.is_none(),
            "{}: {:?}",
            path.display(),
            by_itself.1
        );
        assert!(!by_itself.0.is_empty(), "{}", path.display());
        // 8 KiB: many block boundaries inside frames; the default: few.
        for read_buffer in [8192, 65536, FILE_READ_BUFFER] {
            let blocks = frames(&path, read_buffer);
            assert_eq!(
                blocks.0.len(),
                by_itself.0.len(),
                "{}: {read_buffer}-byte blocks",
                path.display()
            );
            assert!(
                blocks == by_itself,
                "{}: {read_buffer}-byte blocks read other frames",
                path.display()
            );
        }
    }
}

#[test]
fn a_truncated_file_read_in_blocks_ends_where_libpcap_ends() {
    let whole = std::fs::read(captures().last().unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("skype-dpi-reading-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Cut inside a frame, past the first block of 8 KiB.
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len().min(20_000) - 7]).unwrap();
    let by_itself = frames(&cut, 0);
    assert!(by_itself.1.is_some(), "the cut file reads to its end");
    for read_buffer in [8192, FILE_READ_BUFFER] {
        assert!(
            frames(&cut, read_buffer) == by_itself,
            "{read_buffer}-byte blocks"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `classify` example beside the test binaries.
fn classify_example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    profile_dir.join("examples").join("classify")
}

#[test]
fn the_standard_input_reads_as_the_file_does() {
    let path = captures().last().unwrap().clone();
    let run = |stdin_file: bool| {
        let mut cmd = std::process::Command::new(classify_example());
        cmd.args(["--format", "jsonl"]);
        if stdin_file {
            cmd.arg("-").stdin(std::fs::File::open(&path).unwrap());
        } else {
            cmd.arg(&path);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each record without its capture's name.
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("capture");
                v
            })
            .collect::<Vec<_>>()
    };
    let from_file = run(false);
    assert!(!from_file.is_empty());
    assert_eq!(run(true), from_file);
}

/// The records a run writes, up to `stop_after` of them (then the sink
/// says stop), and its report.
fn analysed(
    path: &Path,
    reading: Reading,
    window: usize,
    stop_after: usize,
) -> (Vec<FlowRecord>, StreamReport) {
    let model = Model::default_model().unwrap();
    let cap = Capture::open_file(path, None).unwrap();
    let mut records = Vec::new();
    let report = analyze_capture_streaming_reading(
        cap,
        &model,
        FlowTableConfig::with_max_flows(2_000),
        window,
        reading,
        &mut |r| {
            records.push(r.clone());
            records.len() < stop_after
        },
    );
    (records, report)
}

/// The parts of two reports that must agree, whichever thread read.
fn same_run(a: &StreamReport, b: &StreamReport, what: &str) {
    assert_eq!(a.stats, b.stats, "{what}: counters");
    assert_eq!(
        a.error.as_ref().map(|e| e.to_string()),
        b.error.as_ref().map(|e| e.to_string()),
        "{what}: error"
    );
    assert_eq!(a.endpoints, b.endpoints, "{what}: endpoints");
    assert_eq!(a.window, b.window, "{what}: window");
    assert_eq!(a.sink_stopped, b.sink_stopped, "{what}");
}

#[test]
fn reading_on_its_own_thread_gives_the_records_of_one_thread() {
    // A link-like mix of many short flows through a small table and window
    // (evictions, records leaving the window early: their revisions depend
    // on when each burst is pushed), and the real captures.
    let dir = std::env::temp_dir().join(format!("skype-dpi-reader-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mix = dir.join("mix.pcap");
    // About 150,000 frames: over a hundred hand-overs of bursts.
    let frames = write_pcap(&mix, &mut LinkMix::new(&LinkMixConfig::link(6_000))).unwrap();
    assert!(frames > 100_000, "{frames} frames");
    let mut paths = captures();
    paths.push(mix);
    for path in &paths {
        for window in [usize::MAX, 20] {
            let what = format!("{}, window {window}", path.display());
            let (one, a) = analysed(path, Reading::SameThread, window, usize::MAX);
            let (two, b) = analysed(path, Reading::OwnThread, window, usize::MAX);
            assert!(!one.is_empty(), "{what}");
            assert!(one == two, "{what}: the records differ");
            same_run(&a, &b, &what);
        }
    }
    // A sink that stops, at the end or while frames are still read (a
    // window of 20 lets records go as flows end): the same records up to
    // there, and the same counters (no frame pushed past the stop).
    let last = paths.last().unwrap();
    for window in [usize::MAX, 20] {
        let (one, a) = analysed(last, Reading::SameThread, window, 100);
        let (two, b) = analysed(last, Reading::OwnThread, window, 100);
        assert_eq!(one.len(), 100);
        assert!(one == two, "window {window}");
        assert!(a.sink_stopped && b.sink_stopped);
        same_run(&a, &b, &format!("a sink that stops, window {window}"));
        if window == 20 {
            assert!(a.stats.frames < frames, "the sink stopped while reading");
        }
    }
    // A truncated file: the same records and the same error.
    let whole = std::fs::read(last).unwrap();
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() / 2 - 3]).unwrap();
    let (one, a) = analysed(&cut, Reading::SameThread, usize::MAX, usize::MAX);
    let (two, b) = analysed(&cut, Reading::OwnThread, usize::MAX, usize::MAX);
    assert!(a.error.is_some(), "the cut file reads to its end");
    assert!(!one.is_empty() && one == two);
    same_run(&a, &b, "the cut file");
    let _ = std::fs::remove_dir_all(&dir);
}
