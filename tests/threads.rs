//! Sharding flows over worker threads gives the same verdicts as one thread:
//! on the project's sample, on synthetic traffic with signalling spread over
//! many flows, and on the real classic captures (endpoint evidence spans the
//! shards and is replayed in capture order).

use std::path::Path;

use skype_dpi::analyze::{analyze_file, analyze_file_parallel};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::Model;
use skype_dpi::synth::{write_labels, write_pcap, Generator, SynthConfig};

fn verdicts(path: &Path, threads: usize, model: &Model) -> Vec<String> {
    let r = if threads == 1 {
        analyze_file(path, None, model, FlowTableConfig::default())
    } else {
        analyze_file_parallel(path, None, model, FlowTableConfig::default(), threads)
    }
    .unwrap();
    let mut v: Vec<String> = r
        .records
        .iter()
        .map(|r| {
            format!(
                "{:?} {} {} {:?} {:?} {:?}",
                r.key,
                r.first_seen.0,
                r.packets(),
                r.verdict.label,
                r.verdict.kind,
                r.verdict.via
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn threads_give_the_verdicts_of_one() {
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
        let one = verdicts(cap, 1, &model);
        assert!(one.iter().any(|v| v.contains("Skype")), "{}", cap.display());
        for threads in [2, 3] {
            assert_eq!(
                verdicts(cap, threads, &model),
                one,
                "{} with {threads} threads",
                cap.display()
            );
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
