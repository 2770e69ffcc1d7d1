//! Offline analysis: a capture file in, its flow records out.
//!
//! Runs the streaming [`Classifier`] over a whole file, collects the record
//! of every flow (ended, evicted or open at the end), and, once the capture
//! is read, revises the flows of endpoints recognised after those flows
//! ended, so that the offline answer is the one the whole capture supports.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::capture::{Capture, CaptureError};
use crate::classifier::{
    replay_endpoints, revise_records, Classifier, Event, FlowRecord, RunStats,
};
use crate::config::FlowTableConfig;
use crate::endpoint::EndpointKey;
use crate::flow::FlowHasher;
use crate::model::Model;
use crate::packet::PacketRecord;

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
    classifier.keep_evidence_for_records(true);
    let mut records = Vec::new();
    let collect = |c: &mut Classifier, records: &mut Vec<FlowRecord>| {
        if !c.has_events() {
            return;
        }
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
    classifier.revise_records(&mut records);
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

/// Classifies a live capture until it ends, fails or is stopped
/// ([`Capture::stop_on`], [`Capture::stop_at`]): each event goes to `sink`
/// as it happens (a Skype verdict as soon as it is reached, a flow's record
/// when it ends), and at the end every flow still open is ended and
/// reported. `sink` returns false to stop early. Returns the run's counters
/// and the capture's error, if it failed.
pub fn analyze_live(
    mut cap: Capture,
    model: &Model,
    table: FlowTableConfig,
    mut sink: impl FnMut(&Event) -> bool,
) -> (RunStats, Option<CaptureError>) {
    let mut c = Classifier::with_table(model.clone(), table);
    c.keep_evidence_for_records(true);
    let mut go_on = true;
    let result = cap.for_each(|raw| {
        let _ = c.push(raw);
        for e in c.drain_events() {
            go_on &= sink(&e);
        }
        go_on
    });
    c.finish_all();
    for e in c.drain_events() {
        sink(&e);
    }
    (c.stats(), result.err())
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

/// Opens and analyses a capture file with `threads` workers
/// ([`analyze_capture_parallel`]).
pub fn analyze_file_parallel(
    path: &Path,
    filter: Option<&str>,
    model: &Model,
    table: FlowTableConfig,
    threads: usize,
) -> Result<CaptureReport, CaptureError> {
    let cap = Capture::open_file(path, filter)?;
    Ok(analyze_capture_parallel(cap, model, table, threads))
}

/// Packets per batch handed from the reader to a worker (1 MiB of records):
/// few enough batches that waking the workers (an interrupt between cores,
/// costly in a VM) stays rare.
const BATCH_PACKETS: usize = 16384;

/// A packet record alone on its cache line, so that the reader can write
/// it as one whole line.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct RecordLine(PacketRecord);

/// What the reader hands a worker: records and their frame numbers.
struct Batch {
    records: Vec<RecordLine>,
    seqs: Vec<u64>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            records: Vec::with_capacity(BATCH_PACKETS),
            seqs: Vec::with_capacity(BATCH_PACKETS),
        }
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn clear(&mut self) {
        self.records.clear();
        self.seqs.clear();
    }

    #[inline]
    fn push(&mut self, r: PacketRecord, seq: u64) {
        self.records.push(RecordLine(r));
        self.seqs.push(seq);
    }
}

const _: () = assert!(std::mem::size_of::<RecordLine>() == 64);
const _: () = assert!(std::mem::size_of::<PacketRecord>() == 64);

/// The worker of `shards` a flow's packets go to, from its symmetric hash.
#[inline]
fn shard_of(hash: u64, shards: usize) -> usize {
    (((hash >> 32) * shards as u64) >> 32) as usize
}

struct Shard {
    records: Vec<FlowRecord>,
    stats: RunStats,
    log: Vec<crate::classifier::EndpointObservation>,
}

/// Analyses one capture with `threads` workers: the reading thread turns
/// each frame into a [`PacketRecord`] ([`PacketRecord::of_frame`]), shards
/// the flow by a keyed symmetric hash of the 5-tuple (both directions go to
/// the same worker, [`FlowHasher::record_hash`]) and hands batches of
/// records to the workers, each a [`Classifier`] of its own. Endpoint
/// evidence spans shards, so the workers log it and it is replayed in
/// capture order at the end, as one thread would apply it: the verdicts are
/// those of [`analyze_capture`]. Records come in shard order. The table's
/// `max_flows` bounds the whole run: each worker holds its share (rounded
/// up), so that the run's memory does not grow with the thread count (when
/// the bound is reached, a worker evicts within its own shard).
pub fn analyze_capture_parallel(
    mut cap: Capture,
    model: &Model,
    table: FlowTableConfig,
    threads: usize,
) -> CaptureReport {
    use std::sync::mpsc;
    let threads = threads.max(1);
    if threads == 1 {
        return analyze_capture(cap, model, table);
    }
    let start = Instant::now();
    let hasher = FlowHasher::new();
    let tests = crate::csc::GroupTests::new(&model.config.csc);
    let table = FlowTableConfig {
        max_flows: table.max_flows.div_ceil(threads).max(1),
        ..table
    };
    let (pool_tx, pool_rx) = mpsc::channel::<Batch>();
    let mut senders = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, rx) = mpsc::sync_channel::<Batch>(2);
        senders.push(tx);
        let pool_tx = pool_tx.clone();
        let model = model.clone();
        let table = table.clone();
        handles.push(std::thread::spawn(move || {
            let mut c = Classifier::with_table(model, table);
            c.keep_evidence_for_records(true);
            c.log_endpoints();
            let mut records = Vec::new();
            while let Ok(mut batch) = rx.recv() {
                for (r, seq) in batch.records.iter().zip(&batch.seqs) {
                    c.push_record(&r.0, *seq);
                }
                for e in c.drain_events() {
                    if let Event::FlowEnded(r) = e {
                        records.push(*r);
                    }
                }
                batch.clear();
                let _ = pool_tx.send(batch);
            }
            c.finish_all();
            for e in c.drain_events() {
                if let Event::FlowEnded(r) = e {
                    records.push(*r);
                }
            }
            Shard {
                records,
                stats: c.stats(),
                log: c.take_endpoint_log(),
            }
        }));
    }
    drop(pool_tx);
    let mut current: Vec<Batch> = (0..threads).map(|_| Batch::new()).collect();
    let mut reader_stats = RunStats::default();
    let mut seq = 0u64;
    let result = cap.for_each(|raw| {
        seq += 1;
        let judge = |b: &[u8]| crate::endpoint::encrypted_from_first_byte(b, &tests);
        let r = match PacketRecord::of_frame(raw, judge) {
            Ok(r) => r,
            Err(reason) => {
                reader_stats.frames += 1;
                reader_stats.skipped.add(reason);
                return true;
            }
        };
        let shard = shard_of(hasher.record_hash(&r), threads);
        let Some(b) = current.get_mut(shard) else {
            return false;
        };
        b.push(r, seq);
        if b.len() >= BATCH_PACKETS {
            let fresh = pool_rx.try_recv().unwrap_or_else(|_| Batch::new());
            let full = std::mem::replace(b, fresh);
            if senders[shard].send(full).is_err() {
                return false;
            }
        }
        true
    });
    for (shard, b) in current.into_iter().enumerate() {
        if b.len() > 0 {
            let _ = senders[shard].send(b);
        }
    }
    drop(senders);
    let mut records = Vec::new();
    let mut log = Vec::new();
    let mut stats = reader_stats;
    for h in handles {
        if let Ok(s) = h.join() {
            records.extend(s.records);
            log.extend(s.log);
            stats.frames += s.stats.frames;
            stats.packets += s.stats.packets;
            stats.flows += s.stats.flows;
            stats.peak_flows += s.stats.peak_flows;
        }
    }
    let mut endpoints_table = replay_endpoints(log, &model.config);
    revise_records(&mut records, &mut endpoints_table);
    let mut endpoints: Vec<EndpointKey> = endpoints_table.recognised().copied().collect();
    endpoints.sort();
    CaptureReport {
        capture: cap.name().to_string(),
        records,
        stats,
        error: result.err(),
        elapsed: start.elapsed(),
        endpoints,
    }
}
