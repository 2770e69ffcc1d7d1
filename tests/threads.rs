//! Sharding flows over worker threads gives the records of one thread, every
//! field, in the same order: on the project's sample, on synthetic traffic
//! with signalling spread over many flows, and on the real classic captures
//! (endpoint evidence spans the shards and is replayed in capture order).

use std::path::Path;

use skype_dpi::analyze::{analyze_file, analyze_file_parallel};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::Model;
use skype_dpi::output::RecordJson;
use skype_dpi::synth::{write_labels, write_pcap, Generator, SynthConfig};

/// Every record of a run, every field, as `classify --format jsonl` prints
/// it, in the run's order.
fn records(path: &Path, threads: usize, model: &Model) -> Vec<String> {
    let r = if threads == 1 {
        analyze_file(path, None, model, FlowTableConfig::default())
    } else {
        analyze_file_parallel(path, None, model, FlowTableConfig::default(), threads)
    }
    .unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    r.records
        .iter()
        .map(|rec| serde_json::to_string(&RecordJson::new("capture", rec)).unwrap())
        .collect()
}

#[test]
fn threads_give_the_records_of_one() {
    let model = Model::default_model().unwrap();
    let dir = std::env::temp_dir().join(format!("skype-dpi-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let synth = dir.join("s.pcap");
    let mut gen = Generator::new(&SynthConfig {
        seed: 21,
        signalling_clients: 4,
        peers: 60,
        ..SynthConfig::default()
    });
    write_labels(&dir.join("s.csv"), gen.flows()).unwrap();
    write_pcap(&synth, &mut gen, None).unwrap();
    let mut captures = vec![
        synth,
        Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap"),
    ];
    let classic = datasets_dir().join("ndpi/legacy-skype/pcap/skype.pcap");
    if classic.exists() {
        captures.push(classic);
    }
    for cap in &captures {
        let one = records(cap, 1, &model);
        assert!(
            one.iter().any(|v| v.contains("\"verdict\":\"skype\"")),
            "{}",
            cap.display()
        );
        for threads in [2, 3] {
            let many = records(cap, threads, &model);
            assert_eq!(
                many.len(),
                one.len(),
                "{} with {threads} threads",
                cap.display()
            );
            for (a, b) in one.iter().zip(&many) {
                assert_eq!(a, b, "{} with {threads} threads", cap.display());
            }
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `max_flows` bounds the whole run, not each worker: with 2 workers and a
/// bound of 40 flows, at most 40 are held at once (each worker holding 20),
/// and the flows beyond are evicted, not kept.
#[test]
fn the_flow_bound_holds_for_the_whole_run() {
    let model = Model::default_model().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let table = FlowTableConfig::with_max_flows(40);
    let one = analyze_file(&sample, None, &model, FlowTableConfig::default()).unwrap();
    assert!(
        one.stats.peak_flows > 40,
        "the sample holds {} flows",
        one.stats.peak_flows
    );
    let r = analyze_file_parallel(&sample, None, &model, table, 2).unwrap();
    assert!(
        r.stats.peak_flows <= 40,
        "{} flows held",
        r.stats.peak_flows
    );
    assert!(r
        .records
        .iter()
        .any(|f| f.end == skype_dpi::flow::EndReason::Evicted));
}

/// `classify --threads N` prints the same bytes for every N.
#[test]
fn classify_prints_the_same_bytes_with_any_thread_count() {
    let exe = std::env::current_exe().unwrap();
    let classify = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples/classify");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let run = |threads: &str| {
        let out = std::process::Command::new(&classify)
            .args(["--format", "jsonl", "--threads", threads])
            .arg(&sample)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let one = String::from_utf8(run("1")).unwrap();
    assert!(one.lines().count() > 100);
    for threads in ["2", "3"] {
        let many = String::from_utf8(run(threads)).unwrap();
        for (i, (a, b)) in one.lines().zip(many.lines()).enumerate() {
            assert_eq!(a, b, "line {i} with {threads} threads");
        }
        assert_eq!(one.lines().count(), many.lines().count());
    }
}
