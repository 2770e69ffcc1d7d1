//! A worker of a multi-threaded run that fails (a panic, injected here at
//! one frame) is an error, named with its cause, and its flows are still
//! reported: none is lost. (A test binary of its own: the fault is set for
//! the whole process.)

use std::path::Path;
use std::sync::atomic::Ordering;

use skype_dpi::analyze::{analyze_file, analyze_file_parallel, FAULT_AT_FRAME};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;

#[test]
fn a_failing_worker_is_reported_and_its_flows_are_not_lost() {
    let model = Model::default_model().unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let whole = analyze_file(&sample, None, &model, FlowTableConfig::default()).unwrap();
    FAULT_AT_FRAME.store(5000, Ordering::Relaxed);
    let r = analyze_file_parallel(&sample, None, &model, FlowTableConfig::default(), 2).unwrap();
    FAULT_AT_FRAME.store(0, Ordering::Relaxed);
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    assert!(
        r.failures[0].contains("injected fault at frame 5000"),
        "{:?}",
        r.failures
    );
    // Every flow of the whole run is still reported (the failed worker's
    // open flows end where it failed and go on as new flows): none is lost.
    let key = |x: &skype_dpi::classifier::FlowRecord| (x.key, x.first_seen);
    let reported: std::collections::HashSet<_> = r.records.iter().map(|x| x.key).collect();
    for rec in &whole.records {
        assert!(reported.contains(&rec.key), "{:?} lost", key(rec));
    }
    // Only the packet the worker failed on is lost.
    let packets =
        |rs: &[skype_dpi::classifier::FlowRecord]| rs.iter().map(|x| x.packets()).sum::<u64>();
    let lost = packets(&whole.records) - packets(&r.records);
    eprintln!("{:?}; {lost} packet not counted", r.failures);
    assert_eq!(lost, 1);
}
