//! Offline analysis: a capture file in, its flow records out.
//!
//! Runs the streaming [`Classifier`] over a whole file and hands out the
//! record of every flow (ended, evicted or open at the end). Records go
//! through a [`RevisionWindow`], so that an endpoint recognised after a
//! flow ended still revises it and the offline answer is the one the whole
//! capture supports, while memory stays bounded by the flow table and the
//! window, not by the capture ([`analyze_capture_streaming`]; with the
//! reading on a second thread, [`Reading::OwnThread`], the same records);
//! [`analyze_capture`] keeps every record in memory. With several threads
//! ([`analyze_capture_parallel`]) the endpoint evidence of the shards is
//! replayed in capture order at the end, which keeps every record.

use std::collections::{HashMap, VecDeque};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::capture::{Capture, CaptureError};
use crate::classifier::{
    may_be_revised, replay_and_revise, Classifier, DecodedBurst, Event, FlowRecord, MemoryUse,
    RunStats,
};
use crate::config::{FlowTableConfig, TunnelConfig};
use crate::endpoint::EndpointKey;
use crate::flow::{FlowHasher, FlowKey};
use crate::model::Model;
use crate::packet::{PacketRecord, Timestamp};
use crate::tunnel::Tunnel;

/// For tests: the frame number at which a worker of a multi-threaded run
/// panics (0: never), to check that a failing worker is reported and its
/// flows are not lost.
#[doc(hidden)]
pub static FAULT_AT_FRAME: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

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
    /// Worker threads that failed (a panic), each with its cause; their
    /// flows are reported all the same (ended where the worker failed, the
    /// rest as new flows).
    pub failures: Vec<String>,
    /// Wall-clock time of the analysis.
    pub elapsed: Duration,
    /// Endpoints recognised as Skype clients.
    pub endpoints: Vec<EndpointKey>,
}

/// Analyses one capture to its end, every record in memory
/// ([`analyze_capture_streaming`] with a window that never fills).
pub fn analyze_capture(cap: Capture, model: &Model, table: FlowTableConfig) -> CaptureReport {
    let mut records = Vec::new();
    let report = analyze_capture_streaming(cap, model, table, usize::MAX, &mut |r| {
        records.push(r.clone());
        true
    });
    CaptureReport {
        capture: report.capture,
        records,
        stats: report.stats,
        error: report.error,
        failures: Vec::new(),
        elapsed: report.elapsed,
        endpoints: report.endpoints,
    }
}

/// The result of [`analyze_capture_streaming`]: everything but the
/// records, which went to the sink.
pub struct StreamReport {
    /// The capture's name (its path as given).
    pub capture: String,
    /// Frame and flow counters.
    pub stats: RunStats,
    /// Set when reading stopped early; the records written are those of
    /// the flows read before.
    pub error: Option<CaptureError>,
    /// Wall-clock time of the analysis.
    pub elapsed: Duration,
    /// Endpoints recognised as Skype clients.
    pub endpoints: Vec<EndpointKey>,
    /// What the revision window did ([`WindowCounts`]).
    pub window: WindowCounts,
    /// The sink refused a record (a write failed): the analysis stopped
    /// there.
    pub sink_stopped: bool,
    /// What the classifier held at its busiest: looked at each time the
    /// flow table had grown by an eighth since the last look, and at the
    /// last frame (before the open flows ended); the look with the most.
    pub memory_at_peak: MemoryUse,
    /// What the revision window held then, in bytes, and how many records.
    pub window_bytes_at_peak: usize,
    /// See `window_bytes_at_peak`.
    pub window_records_at_peak: usize,
}

/// What a [`RevisionWindow`] did in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Records written.
    pub written: u64,
    /// Records that left the window before the capture ended (written then,
    /// revised by the endpoints recognised so far).
    pub left_early: u64,
    /// Revisions of records that had already left the window (not
    /// applied: each record is written once). Zero whenever `left_early`
    /// is.
    pub revisions_missed: u64,
    /// Most records held at once.
    pub peak_held: u64,
}

impl RevisionWindow {
    /// Records held now.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Heap bytes the window holds now: its records, its queue and its
    /// index at their capacity.
    pub fn heap_bytes(&self) -> usize {
        self.held.len() * std::mem::size_of::<FlowRecord>()
            + self.held.capacity() * std::mem::size_of::<Box<FlowRecord>>()
            + self.index.capacity()
                * (std::mem::size_of::<((FlowKey, Option<Tunnel>, Timestamp), u64)>() + 1)
    }
}

/// The records of ended flows, held back in the order they ended so that
/// an endpoint recognised after a flow ended can still revise it (what
/// offline analysis adds to streaming use, whose [`Event::Revised`] reaches
/// only the last [`crate::classifier::RECENT_ENDED_CAPACITY`] such flows).
/// At most `capacity` are held: beyond, the oldest leaves the window, is
/// revised by the endpoints recognised so far and is written. At the end of
/// the capture the records still held are revised by every endpoint the
/// capture revealed, and written in the order of their first packet.
///
/// Costs: a held record is a [`FlowRecord`] plus, for one an endpoint may
/// still revise (undecided, its messages agreeing with Skype's), an index
/// entry; the
/// `--revision-window` of `classify` defaults to the flow table's
/// `max_flows`, so that offline memory is bounded by about twice the flow
/// table's, whatever the capture's length. A capture whose records all
/// fit gets the same records as a run that holds everything; the README's
/// "Offline memory" section measures what a smaller window changes.
pub struct RevisionWindow {
    held: VecDeque<Box<FlowRecord>>,
    /// Position (in records ever held) of each held record that may be
    /// revised.
    index: HashMap<(FlowKey, Option<Tunnel>, Timestamp), u64, ahash::RandomState>,
    /// Records that have left the window.
    left: u64,
    capacity: usize,
    counts: WindowCounts,
}

impl RevisionWindow {
    /// A window holding at most `capacity` records (at least one).
    pub fn new(capacity: usize) -> RevisionWindow {
        RevisionWindow {
            held: VecDeque::new(),
            index: HashMap::with_hasher(ahash::RandomState::new()),
            left: 0,
            capacity: capacity.max(1),
            counts: WindowCounts::default(),
        }
    }

    fn id(r: &FlowRecord) -> (FlowKey, Option<Tunnel>, Timestamp) {
        (r.key, r.tunnel, r.first_seen)
    }

    /// Holds an ended flow's record; returns the oldest record when it
    /// leaves the window to make room. `revisable`: whether a later
    /// [`Event::Revised`] may name it ([`may_be_revised`]; only those are
    /// indexed).
    pub fn hold(&mut self, r: Box<FlowRecord>, revisable: bool) -> Option<Box<FlowRecord>> {
        if revisable {
            let at = self.left + self.held.len() as u64;
            self.index.insert(Self::id(&r), at);
        }
        self.held.push_back(r);
        self.counts.peak_held = self.counts.peak_held.max(self.held.len() as u64);
        if self.held.len() <= self.capacity {
            return None;
        }
        let out = self.held.pop_front()?;
        self.forget(&out, self.left);
        self.left += 1;
        self.counts.left_early += 1;
        Some(out)
    }

    fn forget(&mut self, r: &FlowRecord, at: u64) {
        let id = Self::id(r);
        if self.index.get(&id) == Some(&at) {
            self.index.remove(&id);
        }
    }

    /// Replaces the held record of a revised flow; counts a revision that
    /// comes too late.
    pub fn revise(&mut self, r: Box<FlowRecord>) {
        let Some(&at) = self.index.get(&Self::id(&r)) else {
            self.counts.revisions_missed += 1;
            return;
        };
        let slot = at
            .checked_sub(self.left)
            .and_then(|i| self.held.get_mut(i as usize));
        match slot {
            Some(held) => *held = r,
            None => self.counts.revisions_missed += 1,
        }
    }

    /// The end of the capture: the records still held, revised by the
    /// classifier's endpoints and in the order of their first packet.
    pub fn settle(mut self, c: &mut Classifier) -> (Vec<Box<FlowRecord>>, WindowCounts) {
        let mut rest: Vec<Box<FlowRecord>> = self.held.drain(..).collect();
        c.revise_records(&mut rest);
        // The keys sorted, then the boxes moved: a record is hundreds of
        // bytes, a sort that moved them would copy each one many times.
        rest.sort_by_cached_key(|r| (r.first_seen, r.key));
        (rest, self.counts)
    }
}

/// Frames per burst: a few of [`crate::classifier::BURST_GROUP`].
const OFFLINE_BURST: usize = 4 * crate::classifier::BURST_GROUP;

/// Analyses one capture to its end, each flow's record to `sink` (which
/// returns false to stop, when it cannot write), through a
/// [`RevisionWindow`] of `window` records: memory is bounded by the flow
/// table and the window, not by the capture. Endpoint evidence is applied
/// as packets arrive (as the streaming API does); the records are those of
/// [`analyze_capture_parallel`] with any number of threads, every field,
/// as long as no record leaves the window early.
pub fn analyze_capture_streaming(
    cap: Capture,
    model: &Model,
    table: FlowTableConfig,
    window: usize,
    sink: &mut dyn FnMut(&FlowRecord) -> bool,
) -> StreamReport {
    analyze_capture_streaming_reading(cap, model, table, window, Reading::SameThread, sink)
}

/// Where [`analyze_capture_streaming_reading`] reads and decodes the frames.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reading {
    /// On the calling thread, between the classifier's bursts: one thread.
    #[default]
    SameThread,
    /// On a thread of its own, a few bursts ahead of the classifier, which
    /// stays on the calling thread: two threads, the same records and
    /// counters as one, byte for byte (the classifier gets the same bursts
    /// in the same order), in the same bounded memory plus the bursts in
    /// flight ([`READ_AHEAD_BURSTS`] at most, under 2 MiB). Reading and
    /// decoding no longer add to the classifier's time. The thread is
    /// named `skype-dpi-read`; where none can be started, the calling
    /// thread reads.
    OwnThread,
}

/// Bursts the reading thread of [`Reading::OwnThread`] hands over at a time.
const HANDOVER_BURSTS: usize = 16;

/// Hand-overs in flight, at most, besides the one being classified.
const HANDOVERS_IN_FLIGHT: usize = 4;

/// Bursts that [`Reading::OwnThread`] holds at most: those in flight, the
/// one being classified and the one being filled.
pub const READ_AHEAD_BURSTS: usize = (HANDOVERS_IN_FLIGHT + 2) * HANDOVER_BURSTS;

/// [`analyze_capture_streaming`], reading as `reading` says.
pub fn analyze_capture_streaming_reading(
    mut cap: Capture,
    model: &Model,
    table: FlowTableConfig,
    window: usize,
    reading: Reading,
    sink: &mut dyn FnMut(&FlowRecord) -> bool,
) -> StreamReport {
    let start = Instant::now();
    let mut run = StreamingRun::new(model, table, window);
    let tunnels = run.classifier.tunnels().clone();
    let on_own_thread = match reading {
        Reading::OwnThread => read_on_own_thread(&mut cap, &tunnels, &mut run, sink),
        Reading::SameThread => None,
    };
    let result = match on_own_thread {
        Some(result) => result,
        None => {
            // Each frame decoded as it is read, while it is in libpcap's
            // buffer: the burst keeps what the classifiers read, not the
            // frame.
            let mut burst = DecodedBurst::new(OFFLINE_BURST);
            let result = cap.for_each(|raw| {
                let _ = burst.decode(raw, &tunnels);
                if burst.is_full() {
                    run.push(&mut burst, sink);
                }
                run.go_on
            });
            run.last(&mut burst, sink);
            result
        }
    };
    run.end(cap.name(), result, start, sink)
}

/// The classifier's side of [`analyze_capture_streaming_reading`], whichever
/// thread reads: the bursts pushed in order, the records through the
/// window to the sink, the memory looked at.
struct StreamingRun<'m> {
    model: &'m Model,
    classifier: Classifier,
    held: RevisionWindow,
    /// Records leaving the window, on their way to the sink (boxed as the
    /// window holds them: unboxing would copy each).
    #[allow(clippy::vec_box)]
    leaving: Vec<Box<FlowRecord>>,
    /// Whether the sink takes more.
    go_on: bool,
    /// The most the analysis held, looked at each time the table has grown
    /// by an eighth since the last look (the walks cost about eight times
    /// the peak's flows in all) and at the last frame: what it held, the
    /// window's bytes and records.
    busiest: (MemoryUse, usize, usize),
    next_look: usize,
}

impl<'m> StreamingRun<'m> {
    fn new(model: &'m Model, table: FlowTableConfig, window: usize) -> Self {
        let mut classifier = Classifier::with_table(model.clone(), table);
        classifier.keep_evidence_for_records(true);
        StreamingRun {
            model,
            classifier,
            held: RevisionWindow::new(window),
            leaving: Vec::new(),
            go_on: true,
            busiest: (MemoryUse::default(), 0, 0),
            next_look: 1024,
        }
    }

    /// A full burst: its frames go to the classifier in groups
    /// ([`Classifier::push_burst`]: the same events as one by one, the
    /// memory latency of one flow overlapped with the work on others; with
    /// many concurrent flows most of a packet's time is that latency).
    fn push(&mut self, burst: &mut DecodedBurst, sink: &mut dyn FnMut(&FlowRecord) -> bool) {
        self.classifier.push_decoded_burst(burst);
        self.collect(sink);
        if self.classifier.open_flows() >= self.next_look {
            self.look();
            let open = self.classifier.open_flows();
            self.next_look = open + open / 8;
        }
    }

    /// The last burst of the capture (not full, possibly empty).
    fn last(&mut self, burst: &mut DecodedBurst, sink: &mut dyn FnMut(&FlowRecord) -> bool) {
        self.classifier.push_decoded_burst(burst);
        self.collect(sink);
        self.look();
    }

    fn look(&mut self) {
        let m = (
            self.classifier.memory_use(),
            self.held.heap_bytes(),
            self.held.len(),
        );
        if m.0.total() + m.1 >= self.busiest.0.total() + self.busiest.1 {
            self.busiest = m;
        }
    }

    /// Ended records into the window; the ones that leave it, revised by
    /// what the endpoints know now, to the sink.
    fn collect(&mut self, sink: &mut dyn FnMut(&FlowRecord) -> bool) {
        let c = &mut self.classifier;
        if !c.has_events() {
            return;
        }
        for e in c.drain_events() {
            match e {
                Event::FlowEnded(r) => {
                    let revisable = may_be_revised(&r, &self.model.config);
                    self.leaving.extend(self.held.hold(r, revisable))
                }
                Event::Revised(r) => self.held.revise(r),
                _ => {}
            }
        }
        for mut out in self.leaving.drain(..) {
            c.revise(&mut out);
            self.held.counts.written += 1;
            if self.go_on {
                self.go_on = sink(&out);
            }
        }
    }

    /// The end of the capture: the flows still open end a batch at a time,
    /// each batch's records into the window before the next (no transient
    /// copy of the table); then the window's records, revised by every
    /// endpoint the capture revealed, in the order of their first packet.
    fn end(
        mut self,
        capture: &str,
        result: Result<(), CaptureError>,
        start: Instant,
        sink: &mut dyn FnMut(&FlowRecord) -> bool,
    ) -> StreamReport {
        let (memory_at_peak, window_bytes_at_peak, window_records_at_peak) = self.busiest;
        while self.classifier.finish_some(OFFLINE_BURST) > 0 {
            self.collect(sink);
        }
        self.collect(sink);
        let mut classifier = self.classifier;
        let (rest, mut counts) = self.held.settle(&mut classifier);
        let mut go_on = self.go_on;
        for r in &rest {
            if !go_on {
                break;
            }
            counts.written += 1;
            go_on = sink(r);
        }
        let mut endpoints: Vec<EndpointKey> =
            classifier.endpoints().recognised().copied().collect();
        endpoints.sort();
        StreamReport {
            capture: capture.to_string(),
            stats: classifier.stats(),
            error: result.err(),
            elapsed: start.elapsed(),
            endpoints,
            window: counts,
            sink_stopped: !go_on,
            memory_at_peak,
            window_bytes_at_peak,
            window_records_at_peak,
        }
    }
}

/// [`Reading::OwnThread`]: a scoped thread reads and decodes the frames
/// into bursts and hands them over [`HANDOVER_BURSTS`] at a time through a
/// bounded channel; this thread pushes them, in order, exactly as
/// [`Reading::SameThread`] does, and hands the emptied bursts back. When the
/// sink stops, so does the reader, at its next frame. None when no thread
/// could be started (nothing was read: the caller reads on its own thread).
fn read_on_own_thread(
    cap: &mut Capture,
    tunnels: &TunnelConfig,
    run: &mut StreamingRun<'_>,
    sink: &mut dyn FnMut(&FlowRecord) -> bool,
) -> Option<Result<(), CaptureError>> {
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;
    let (full_tx, full_rx) = mpsc::sync_channel::<Vec<DecodedBurst>>(HANDOVERS_IN_FLIGHT);
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<DecodedBurst>>();
    let stop = AtomicBool::new(false);
    let (result, mut last) = std::thread::scope(|s| {
        let stopped = &stop;
        let reader = std::thread::Builder::new()
            .name("skype-dpi-read".to_string())
            .spawn_scoped(s, move || {
                // Emptied bursts and hand-over vectors come back to be
                // filled again: none is made once the pipeline is full.
                let mut spare: Vec<DecodedBurst> = Vec::new();
                let mut spare_handovers: Vec<Vec<DecodedBurst>> = Vec::new();
                let mut handover: Vec<DecodedBurst> = Vec::with_capacity(HANDOVER_BURSTS);
                let mut burst = DecodedBurst::new(OFFLINE_BURST);
                let result = cap.for_each(|raw| {
                    let _ = burst.decode(raw, tunnels);
                    if burst.is_full() {
                        while let Ok(mut back) = empty_rx.try_recv() {
                            spare.append(&mut back);
                            spare_handovers.push(back);
                        }
                        let next = spare
                            .pop()
                            .unwrap_or_else(|| DecodedBurst::new(OFFLINE_BURST));
                        handover.push(std::mem::replace(&mut burst, next));
                        if handover.len() >= HANDOVER_BURSTS {
                            let empty = spare_handovers
                                .pop()
                                .unwrap_or_else(|| Vec::with_capacity(HANDOVER_BURSTS));
                            let full = std::mem::replace(&mut handover, empty);
                            if full_tx.send(full).is_err() {
                                return false;
                            }
                        }
                    }
                    !stopped.load(Ordering::Relaxed)
                });
                if !handover.is_empty() {
                    let _ = full_tx.send(handover);
                }
                drop(full_tx);
                (result, burst)
            });
        // No thread to be had: nothing was read, the caller reads here.
        let Ok(reader) = reader else {
            return None;
        };
        // As on one thread, no burst is pushed after the one during which
        // the sink stopped: what the reader read beyond it (and any error
        // it met there) is dropped.
        for mut handover in full_rx {
            for burst in handover.iter_mut() {
                run.push(burst, sink);
                if !run.go_on {
                    break;
                }
            }
            if !run.go_on {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            let _ = empty_tx.send(handover);
        }
        match reader.join() {
            Ok(done) => Some(done),
            Err(cause) => std::panic::resume_unwind(cause),
        }
    })?;
    if !run.go_on {
        last.clear();
        run.last(&mut last, sink);
        return Some(Ok(()));
    }
    run.last(&mut last, sink);
    Some(result)
}

/// The end of a multi-threaded run: the endpoint evidence replayed in
/// capture order, the records revised by it, in the order of their first
/// packet (then key), and the recognised endpoints sorted.
fn settle(
    mut records: Vec<FlowRecord>,
    log: Vec<crate::classifier::EndpointObservation>,
    model: &Model,
) -> (Vec<FlowRecord>, Vec<EndpointKey>) {
    let table = replay_and_revise(&mut records, log, &model.config);
    records.sort_by_key(|r| (r.first_seen, r.key));
    let mut endpoints: Vec<EndpointKey> = table.recognised().copied().collect();
    endpoints.sort();
    (records, endpoints)
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

/// What the reader hands a worker: records, their frame numbers, and the
/// tunnels of the tunneled ones (by position: few records have one).
struct Batch {
    records: Vec<RecordLine>,
    seqs: Vec<u64>,
    tunnels: Vec<(u32, Tunnel)>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            records: Vec::with_capacity(BATCH_PACKETS),
            seqs: Vec::with_capacity(BATCH_PACKETS),
            tunnels: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.records.len()
    }

    fn clear(&mut self) {
        self.records.clear();
        self.seqs.clear();
        self.tunnels.clear();
    }

    #[inline]
    fn push(&mut self, r: PacketRecord, tunnel: Option<Tunnel>, seq: u64) {
        if let Some(t) = tunnel {
            self.tunnels.push((self.records.len() as u32, t));
        }
        self.records.push(RecordLine(r));
        self.seqs.push(seq);
    }

    /// The tunnel of record `i`, if it has one.
    #[inline]
    fn tunnel_of(&self, i: usize, cursor: &mut usize) -> Option<Tunnel> {
        let (at, t) = *self.tunnels.get(*cursor)?;
        if at as usize == i {
            *cursor += 1;
            Some(t)
        } else {
            None
        }
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
    failures: Vec<String>,
}

/// Ends a worker's classifier: its open flows' records, counters and
/// endpoint log go to the shard (under `catch_unwind`: a classifier that
/// failed may fail again, and then what it had is lost, and said).
fn retire(c: &mut Classifier, shard: &mut Shard, end: Timestamp) {
    let done = catch_unwind(AssertUnwindSafe(|| {
        c.finish_all_at(end);
        let records: Vec<FlowRecord> = c
            .drain_events()
            .filter_map(|e| match e {
                Event::FlowEnded(r) => Some(*r),
                _ => None,
            })
            .collect();
        (records, c.stats(), c.take_endpoint_log())
    }));
    match done {
        Ok((records, stats, log)) => {
            shard.records.extend(records);
            shard.stats.merge(&stats);
            shard.log.extend(log);
        }
        Err(cause) => shard.failures.push(format!(
            "{} (while ending its flows: those still open were lost)",
            panic_message(&cause)
        )),
    }
}

/// A panic's message.
fn panic_message(cause: &Box<dyn std::any::Any + Send>) -> String {
    cause
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| cause.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
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
    let tunnels = table.tunnels.clone();
    let table = FlowTableConfig {
        max_flows: table.max_flows.div_ceil(threads).max(1),
        ..table
    };
    let (pool_tx, pool_rx) = mpsc::channel::<Batch>();
    // The capture's last packet time, which every worker ends its flows at.
    let end = std::sync::Arc::new(AtomicI64::new(i64::MIN));
    let mut senders = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for _ in 0..threads {
        let (tx, rx) = mpsc::sync_channel::<Batch>(2);
        senders.push(tx);
        let pool_tx = pool_tx.clone();
        let model = model.clone();
        let table = table.clone();
        let end_ts = end.clone();
        handles.push(std::thread::spawn(move || {
            let fresh = || {
                let mut c = Classifier::with_table(model.clone(), table.clone());
                c.keep_evidence_for_records(true);
                c.log_endpoints();
                c
            };
            let mut shard = Shard {
                records: Vec::new(),
                stats: RunStats::default(),
                log: Vec::new(),
                failures: Vec::new(),
            };
            let mut c = fresh();
            let fault = FAULT_AT_FRAME.load(Ordering::Relaxed);
            while let Ok(mut batch) = rx.recv() {
                let mut next = 0;
                while next < batch.len() {
                    let mut cursor = batch
                        .tunnels
                        .partition_point(|(at, _)| (*at as usize) < next);
                    let pushed = catch_unwind(AssertUnwindSafe(|| {
                        for (r, seq) in batch.records[next..].iter().zip(&batch.seqs[next..]) {
                            if *seq == fault {
                                panic!("injected fault at frame {seq}");
                            }
                            let tunnel = if r.0.is_tunneled() {
                                batch.tunnel_of(next, &mut cursor)
                            } else {
                                None
                            };
                            c.push_record(&r.0, tunnel, *seq);
                            next += 1;
                        }
                    }));
                    if let Err(cause) = pushed {
                        // The classifier may be half-way through the packet:
                        // end its flows as they stand, keep what it had, and
                        // go on with a fresh one after that packet.
                        shard.failures.push(panic_message(&cause));
                        let at = batch
                            .records
                            .get(next)
                            .map_or(Timestamp(i64::MIN), |r| r.0.ts());
                        retire(&mut c, &mut shard, at);
                        c = fresh();
                        next += 1;
                    }
                }
                for e in c.drain_events() {
                    if let Event::FlowEnded(r) = e {
                        shard.records.push(*r);
                    }
                }
                batch.clear();
                let _ = pool_tx.send(batch);
            }
            retire(
                &mut c,
                &mut shard,
                Timestamp(end_ts.load(Ordering::Acquire)),
            );
            shard
        }));
    }
    drop(pool_tx);
    let mut current: Vec<Batch> = (0..threads).map(|_| Batch::new()).collect();
    let mut reader_stats = RunStats::default();
    let mut seq = 0u64;
    let mut last_ts = i64::MIN;
    let result = cap.for_each(|raw| {
        seq += 1;
        let judge = |b: &[u8]| crate::endpoint::encrypted_from_first_byte(b, &tests);
        let (r, tunnel) = match PacketRecord::of_frame(raw, &tunnels, judge) {
            Ok(r) => r,
            Err(reason) => {
                reader_stats.frames += 1;
                reader_stats.skipped.add(reason);
                return true;
            }
        };
        last_ts = last_ts.max(r.ts().0);
        let shard = shard_of(hasher.record_hash(&r), threads);
        let Some(b) = current.get_mut(shard) else {
            return false;
        };
        b.push(r, tunnel, seq);
        if b.len() >= BATCH_PACKETS {
            let fresh = pool_rx.try_recv().unwrap_or_else(|_| Batch::new());
            let full = std::mem::replace(b, fresh);
            if senders[shard].send(full).is_err() {
                return false;
            }
        }
        true
    });
    end.store(last_ts, Ordering::Release);
    for (shard, b) in current.into_iter().enumerate() {
        if b.len() > 0 {
            let _ = senders[shard].send(b);
        }
    }
    drop(senders);
    let mut records = Vec::new();
    let mut log = Vec::new();
    let mut stats = reader_stats;
    let mut failures = Vec::new();
    let mut peak = 0;
    for (i, h) in handles.into_iter().enumerate() {
        match h.join() {
            Ok(s) => {
                records.extend(s.records);
                log.extend(s.log);
                peak += s.stats.peak_flows;
                stats.merge(&s.stats);
                failures.extend(s.failures.into_iter().map(|f| format!("worker {i}: {f}")));
            }
            Err(cause) => failures.push(format!(
                "worker {i}: {} (its flows were lost)",
                panic_message(&cause)
            )),
        }
    }
    stats.peak_flows = peak;
    let (records, endpoints) = settle(records, log, model);
    CaptureReport {
        capture: cap.name().to_string(),
        records,
        stats,
        error: result.err(),
        failures,
        elapsed: start.elapsed(),
        endpoints,
    }
}
