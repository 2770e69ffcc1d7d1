//! Offline analysis: a capture file in, its flow records out.
//!
//! Runs the streaming [`Classifier`] over a whole file, collects the record
//! of every flow (ended, evicted or open at the end), and, once the capture
//! is read, revises the flows of endpoints recognised after those flows
//! ended, so that the offline answer is the one the whole capture supports.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::capture::{Capture, CaptureError};
use crate::classifier::{Classifier, Event, FlowRecord, RunStats};
use crate::config::FlowTableConfig;
use crate::endpoint::EndpointKey;
use crate::model::Model;

/// The result of analysing one capture.
pub struct CaptureReport {
    /// The capture's name (its path as given).
    pub capture: String,
    /// Every flow, in the order they ended.
    pub records: Vec<FlowRecord>,
    /// Frame and flow counters.
    pub stats: RunStats,
    /// Set when reading stopped early; the records are those read before.
    pub error: Option<CaptureError>,
    /// Wall-clock time of the analysis.
    pub elapsed: Duration,
    /// Endpoints recognised as Skype clients.
    pub endpoints: Vec<EndpointKey>,
}

/// Analyses one capture to its end.
pub fn analyze_capture(mut cap: Capture, model: &Model, table: FlowTableConfig) -> CaptureReport {
    let start = Instant::now();
    let mut classifier = Classifier::with_table(model.clone(), table);
    let mut records = Vec::new();
    let collect = |c: &mut Classifier, records: &mut Vec<FlowRecord>| {
        for e in c.drain_events() {
            if let Event::FlowEnded(r) = e {
                records.push(*r);
            }
        }
    };
    let result = cap.for_each(|raw| {
        let _ = classifier.push(raw);
        collect(&mut classifier, &mut records);
        true
    });
    classifier.finish_all();
    collect(&mut classifier, &mut records);
    for r in records.iter_mut() {
        classifier.revise(r);
    }
    let mut endpoints: Vec<EndpointKey> = classifier.endpoints().recognised().copied().collect();
    endpoints.sort();
    CaptureReport {
        capture: cap.name().to_string(),
        records,
        stats: classifier.stats(),
        error: result.err(),
        elapsed: start.elapsed(),
        endpoints,
    }
}

/// Opens and analyses a capture file.
pub fn analyze_file(
    path: &Path,
    filter: Option<&str>,
    model: &Model,
    table: FlowTableConfig,
) -> Result<CaptureReport, CaptureError> {
    let cap = Capture::open_file(path, filter)?;
    Ok(analyze_capture(cap, model, table))
}
