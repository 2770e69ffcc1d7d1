//! Reading a capture file in larger blocks ([`Capture::open_file_reading`],
//! [`skype_dpi::capture::FILE_READ_BUFFER`]) hands over the very frames
//! libpcap reads by itself: the same count, times, lengths and bytes, in
//! the same order, on pcap and pcapng files, on a truncated file (with the
//! same error after the same frames) and on a file smaller than the block.

use std::path::{Path, PathBuf};

use skype_dpi::capture::{Capture, FILE_READ_BUFFER};
use skype_dpi::labels::datasets_dir;

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
