//! The record writer's JSON lines and CSV are, byte for byte, the text of
//! the plain renderings (serde_json over `RecordJson`; a `String` per CSV
//! field): on every real capture, the generator's flows in tunnels, and
//! capture names that need escaping or quoting.

use std::path::{Path, PathBuf};

use skype_dpi::analyze::analyze_file;
use skype_dpi::classifier::FlowRecord;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::Model;
use skype_dpi::output::{reference_csv_line, reference_json_line, Format, RecordWriter};
use skype_dpi::synth::{write_pcap, Generator, SynthConfig};
use skype_dpi::tunnel::TunnelKind;

fn captures_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures_under(&p, out);
        } else if matches!(
            p.extension().and_then(|x| x.to_str()),
            Some("pcap" | "pcapng" | "cap")
        ) {
            out.push(p);
        }
    }
}

fn check(capture: &str, records: &[FlowRecord]) -> usize {
    for (format, reference) in [
        (
            Format::Jsonl,
            reference_json_line as fn(&str, &FlowRecord) -> String,
        ),
        (Format::Csv, reference_csv_line),
    ] {
        let mut w = RecordWriter::new(Vec::new(), format);
        let mut want = String::new();
        if format == Format::Csv && !records.is_empty() {
            want.push_str(&skype_dpi::output::CSV_COLUMNS.join(","));
            want.push('\n');
        }
        for r in records {
            w.write(capture, r).unwrap();
            want.push_str(&reference(capture, r));
        }
        let mut got = Vec::new();
        std::mem::swap(&mut got, w.get_mut());
        let got = String::from_utf8(got).unwrap();
        if got != want {
            let (g, w): (Vec<_>, Vec<_>) = (got.lines().collect(), want.lines().collect());
            for (a, b) in g.iter().zip(&w) {
                assert_eq!(a, b, "{capture} ({format:?})");
            }
            panic!(
                "{capture} ({format:?}): {} lines, want {}",
                g.len(),
                w.len()
            );
        }
    }
    records.len()
}

#[test]
fn every_real_capture_writes_the_reference_text() {
    let model = Model::default_model().unwrap();
    let mut caps = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap")];
    let ndpi = datasets_dir().join("ndpi");
    if std::env::var("CI").as_deref() == Ok("true") {
        assert!(
            ndpi.is_dir(),
            "the datasets are missing at {}",
            ndpi.display()
        );
    }
    captures_under(&ndpi, &mut caps);
    let mut rows = 0;
    for c in &caps {
        let Ok(report) = analyze_file(c, None, &model, FlowTableConfig::default()) else {
            continue;
        };
        rows += check(&report.capture, &report.records);
    }
    assert!(rows > 300, "{rows} records");
}

#[test]
fn tunnels_and_odd_capture_names_write_the_reference_text() {
    let model = Model::default_model().unwrap();
    let dir = std::env::temp_dir().join(format!("skype-dpi-record-text-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, tunnel) in [None, Some(TunnelKind::GtpU), Some(TunnelKind::Vxlan)]
        .into_iter()
        .enumerate()
    {
        let cfg = SynthConfig {
            seed: 40 + i as u64,
            flows_per_profile: 1,
            call_seconds: 8.0,
            bulk_seconds: 2.0,
            ipv6_share: 0.3,
            tunnel,
            ..SynthConfig::default()
        };
        let path = dir.join(format!("t{i}.pcap"));
        write_pcap(&path, &mut Generator::new(&cfg), None).unwrap();
        let report = analyze_file(&path, None, &model, FlowTableConfig::default()).unwrap();
        assert!(report.records.iter().any(|r| r.tunnel.is_some()) == tunnel.is_some());
        for name in [
            report.capture.as_str(),
            "a \"quoted\", name",
            "back\\slash\ttab\nnewline\u{1}é",
        ] {
            check(name, &report.records);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
