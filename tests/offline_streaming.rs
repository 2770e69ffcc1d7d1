//! Offline analysis (which replays endpoint evidence in capture order, so
//! that any thread count gives the same records) gives each flow the
//! verdict a streaming classifier gives it, and at the same packet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skype_dpi::analyze::analyze_file;
use skype_dpi::capture::Capture;
use skype_dpi::classifier::{Classifier, Event, FlowRecord};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::Model;
use skype_dpi::packet::Timestamp;

type Key = (skype_dpi::flow::FlowKey, Timestamp);

/// The final record of each flow from a streaming classifier: its ended
/// record, replaced by a later revision.
fn streaming(path: &Path, model: &Model) -> BTreeMap<Key, FlowRecord> {
    let mut c = Classifier::new(model.clone());
    c.keep_evidence_for_records(true);
    let mut out = BTreeMap::new();
    let take = |c: &mut Classifier, out: &mut BTreeMap<Key, FlowRecord>| {
        for e in c.drain_events() {
            if let Event::FlowEnded(r) | Event::Revised(r) = e {
                out.insert((r.key, r.first_seen), *r);
            }
        }
    };
    let mut cap = Capture::open_file(path, None).unwrap();
    let _ = cap.for_each(|raw| {
        let _ = c.push(raw);
        take(&mut c, &mut out);
        true
    });
    c.finish_all();
    take(&mut c, &mut out);
    out
}

fn captures() -> Vec<PathBuf> {
    let mut v = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap")];
    let legacy = datasets_dir().join("ndpi/legacy-skype/pcap");
    for name in ["skype.pcap", "skype_no_unknown.pcap"] {
        if legacy.join(name).exists() {
            v.push(legacy.join(name));
        } else if std::env::var("CI").is_ok_and(|x| x == "true") {
            panic!("{} is missing with CI=true", legacy.join(name).display());
        }
    }
    v
}

#[test]
fn offline_verdicts_come_when_streaming_ones_do() {
    let model = Model::default_model().unwrap();
    for path in captures() {
        let live = streaming(&path, &model);
        let offline = analyze_file(&path, None, &model, FlowTableConfig::default()).unwrap();
        assert_eq!(offline.records.len(), live.len(), "{}", path.display());
        let mut differ = Vec::new();
        let mut endpoint = 0;
        for r in &offline.records {
            let l = &live[&(r.key, r.first_seen)];
            let v = |x: &FlowRecord| {
                (
                    x.verdict.label,
                    x.verdict.kind,
                    x.verdict.via,
                    x.verdict.decided_at_packet,
                    x.verdict.decided_after_seconds,
                    x.revised_from,
                    (x.verdict.confidence * 1e4).round() as i64,
                )
            };
            endpoint += usize::from(r.verdict.via == Some(skype_dpi::verdict::Via::Endpoint));
            if v(r) != v(l) {
                differ.push(format!("{} offline {:?} streaming {:?}", r.key, v(r), v(l)));
            }
        }
        eprintln!(
            "{}: {} flows, {endpoint} by endpoint, {} differ",
            path.display(),
            offline.records.len(),
            differ.len()
        );
        assert!(
            differ.is_empty(),
            "{}:\n{}",
            path.display(),
            differ.join("\n")
        );
    }
}
