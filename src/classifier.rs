//! The streaming API that a firewall links: packets in, events out.
//!
//! [`Classifier::push`] takes one captured frame, decodes it, finds its flow,
//! updates the flow's features, runs the classifiers when their windows
//! allow, and appends events to a buffer the caller drains: a verdict as soon
//! as a flow is recognised, a record when a flow ends, a notice when an
//! endpoint is recognised and any revision that follows from it. The
//! per-packet path allocates only when a flow or an endpoint is created.

use crate::config::{FlowTableConfig, MethodConfig, CSC_GROUPS, CSC_WINDOW_PACKETS};
use crate::csc::{self, CscClass};
use crate::endpoint::{EndpointKey, EndpointTable};
use crate::features::{func_mask, DirectionFeatures};
use crate::flow::{Direction, EndReason, EndedFlow, FlowKey, FlowLookup, FlowTable};
use crate::model::Model;
use crate::nbc::NbcScore;
use crate::packet::{self, PacketRecord, RawPacket, SkipCounts, SkipReason, Timestamp, Transport};
use crate::verdict::{self, DirectionEvidence, Kind, Label, Verdict, Via};

/// Everything the classifiers keep for one direction while undecided.
#[derive(Debug, Clone, Default)]
struct DirState {
    features: DirectionFeatures,
    nbc: NbcScore,
    /// First Skype class reached, else the latest window's class.
    csc: CscClass,
    /// Flow packet count when the Skype class was first reached.
    csc_at: Option<u32>,
}

impl DirState {
    fn evidence(&self, config: &MethodConfig) -> DirectionEvidence {
        let dft = &config.dft;
        let chi2 = csc::chi_squares(&self.features.nibbles);
        let mut c = [0f32; CSC_GROUPS];
        for (o, x) in c.iter_mut().zip(chi2.iter()) {
            *o = *x as f32;
        }
        let dft_class = csc::dft_class(&self.features.dft, dft);
        let dft_matching = match self.csc {
            CscClass::E2e => self.features.dft.voice,
            CscClass::E2o => self.features.dft.prefix_repeats,
            _ => 0,
        };
        DirectionEvidence {
            csc: self.csc,
            dft: dft_class,
            dft_matching,
            nbc: self.nbc,
            sampled: self.features.sampled_total,
            window_sampled: self.features.nibbles.samples(),
            chi2: c,
            csc_first_at: self.csc_at,
            video: f64::from(self.features.video_packets)
                > config.nbc.video_share * f64::from(self.features.dft.packets),
        }
    }
}

/// The state of an open flow whose verdict is not final: its features,
/// kept out of line and released when the verdict becomes final.
#[derive(Debug, Clone, Default)]
struct OpenState {
    dirs: [DirState; 2],
    /// A verdict reached while the features are still kept (an endpoint's).
    verdict: Verdict,
    /// The verdict an endpoint revised, if it did.
    revised_from: Option<Label>,
    /// Messages of 3 bytes or more, and those with a known FUNC value.
    func_messages: u32,
    known_func: u32,
}

/// A verdict as a decided flow keeps it, in 16 bytes (the confidence to the
/// 4 decimals the records print, as `f32`; the packet count as `u32`,
/// saturating).
#[derive(Debug, Clone, Copy, PartialEq)]
struct CompactVerdict {
    label: Label,
    kind: Option<Kind>,
    via: Option<Via>,
    revised_from: Option<Label>,
    /// `u32::MAX` for none.
    decided_at_packet: u32,
    /// NaN for none.
    decided_after_seconds: f32,
    confidence: f32,
}

impl CompactVerdict {
    fn new(v: Verdict, revised_from: Option<Label>) -> Self {
        CompactVerdict {
            label: v.label,
            kind: v.kind,
            via: v.via,
            revised_from,
            decided_at_packet: v
                .decided_at_packet
                .map_or(u32::MAX, |n| n.min(u64::from(u32::MAX - 1)) as u32),
            decided_after_seconds: v.decided_after_seconds.unwrap_or(f32::NAN),
            // Records print it to 4 decimals: rounded first, the f32 keeps
            // exactly what they print.
            confidence: ((v.confidence * 1e4).round() / 1e4) as f32,
        }
    }

    fn verdict(&self) -> Verdict {
        Verdict {
            label: self.label,
            kind: self.kind,
            confidence: f64::from(self.confidence),
            decided_at_packet: (self.decided_at_packet != u32::MAX)
                .then_some(u64::from(self.decided_at_packet)),
            decided_after_seconds: (!self.decided_after_seconds.is_nan())
                .then_some(self.decided_after_seconds),
            via: self.via,
        }
    }
}

/// The state of a flow whose verdict is final: its features are released.
#[derive(Debug, Clone)]
struct FinalState {
    verdict: CompactVerdict,
    /// As in [`OpenState`] (an endpoint may still revise the flow).
    func_messages: u32,
    known_func: u32,
    /// The evidence at the decision, kept for the flow's record when the
    /// classifier keeps evidence ([`Classifier::keep_evidence_for_records`]).
    evidence: Option<Box<[DirectionEvidence; 2]>>,
}

/// The per-flow state the classifier keeps in the flow table: 32 bytes
/// inline, plus the boxed features while the verdict is not final.
#[derive(Debug, Clone)]
pub struct FlowState(StateInner);

#[derive(Debug, Clone)]
enum StateInner {
    Open(Box<OpenState>),
    Final(FinalState),
}

impl FlowState {
    fn open() -> Self {
        FlowState(StateInner::Open(Box::default()))
    }

    fn verdict(&self) -> Verdict {
        match &self.0 {
            StateInner::Open(o) => o.verdict,
            StateInner::Final(f) => f.verdict.verdict(),
        }
    }

    fn revised_from(&self) -> Option<Label> {
        match &self.0 {
            StateInner::Open(o) => o.revised_from,
            StateInner::Final(f) => f.verdict.revised_from,
        }
    }

    /// Messages with a FUNC byte, and those with a known FUNC value.
    fn func_counts(&self) -> (u32, u32) {
        match &self.0 {
            StateInner::Open(o) => (o.func_messages, o.known_func),
            StateInner::Final(f) => (f.func_messages, f.known_func),
        }
    }

    fn func_counts_mut(&mut self) -> (&mut u32, &mut u32) {
        match &mut self.0 {
            StateInner::Open(o) => (&mut o.func_messages, &mut o.known_func),
            StateInner::Final(f) => (&mut f.func_messages, &mut f.known_func),
        }
    }

    /// Sets a verdict without releasing the features (an endpoint's).
    fn set_verdict(&mut self, v: Verdict, revised_from: Option<Label>) {
        match &mut self.0 {
            StateInner::Open(o) => {
                o.verdict = v;
                if revised_from.is_some() {
                    o.revised_from = revised_from;
                }
            }
            StateInner::Final(f) => {
                let r = revised_from.or(f.verdict.revised_from);
                f.verdict = CompactVerdict::new(v, r);
            }
        }
    }

    /// Records a final verdict and releases the features; the evidence is
    /// kept when `keep_evidence`.
    fn finalize(
        &mut self,
        verdict: Verdict,
        evidence: [DirectionEvidence; 2],
        keep_evidence: bool,
    ) {
        let (func_messages, known_func) = self.func_counts();
        self.0 = StateInner::Final(FinalState {
            verdict: CompactVerdict::new(verdict, self.revised_from()),
            func_messages,
            known_func,
            evidence: keep_evidence.then(|| Box::new(evidence)),
        });
    }
}

/// What a flow costs in memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMemory {
    /// An undecided flow: table slot and index entry plus its features.
    pub undecided: usize,
    /// A flow with a final verdict: slot and index entry (its features are
    /// released; its evidence went out with the verdict event).
    pub decided: usize,
    /// What a decided flow adds when the classifier keeps the evidence for
    /// the flow's record ([`Classifier::keep_evidence_for_records`], as
    /// `classify` does for the chi2 values it prints).
    pub decided_evidence: usize,
}

/// The memory a flow costs, from the sizes of the types (heap allocations
/// are counted at their size; the allocator's own rounding is not).
pub fn flow_memory() -> FlowMemory {
    let table = FlowTable::<FlowState>::bytes_per_flow();
    FlowMemory {
        undecided: table + std::mem::size_of::<OpenState>(),
        decided: table,
        decided_evidence: std::mem::size_of::<[DirectionEvidence; 2]>(),
    }
}

/// Per-direction evidence in a flow record.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DirectionRecord {
    /// Packets.
    pub packets: u32,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// The CSC evidence.
    pub evidence: DirectionEvidence,
    /// Flow packet count when the CSC class was first reached.
    pub csc_first_at_packet: Option<u64>,
}

/// Everything known about a flow when it ends: the public flow record.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    /// The 5-tuple, initiator first.
    pub key: FlowKey,
    /// First packet time.
    pub first_seen: Timestamp,
    /// Last packet time.
    pub last_seen: Timestamp,
    /// Why it ended.
    pub end: EndReason,
    /// The verdict.
    pub verdict: Verdict,
    /// What the verdict was before an endpoint revised it, if it was.
    pub revised_from: Option<Label>,
    /// Forward (initiator to responder) and backward evidence.
    pub directions: [DirectionRecord; 2],
    /// Messages with a FUNC byte, and those with a known Skype FUNC value.
    pub func_messages: u32,
    /// See `func_messages`.
    pub known_func: u32,
    /// The verdict became final before the flow ended, and the classifier
    /// did not keep the evidence for the record: `directions[..].evidence`
    /// are empty, the evidence went out with the [`Event::Verdict`].
    pub evidence_released: bool,
}

impl FlowRecord {
    /// Packets in both directions.
    pub fn packets(&self) -> u64 {
        u64::from(self.directions[0].packets) + u64::from(self.directions[1].packets)
    }

    /// Payload bytes in both directions.
    pub fn payload_bytes(&self) -> u64 {
        self.directions[0].payload_bytes + self.directions[1].payload_bytes
    }

    /// The UDP endpoints of the flow (none for TCP).
    pub fn endpoints(&self) -> Option<[EndpointKey; 2]> {
        (self.key.transport == Transport::Udp).then_some([
            EndpointKey {
                ip: self.key.src_ip,
                port: self.key.src_port,
            },
            EndpointKey {
                ip: self.key.dst_ip,
                port: self.key.dst_port,
            },
        ])
    }
}

/// What the classifier reports.
// The verdict's evidence is inline: events go through a reused buffer, and
// boxing it would allocate once per verdict on the packet path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A flow was recognised as Skype while still open.
    Verdict {
        /// The flow.
        key: FlowKey,
        /// Its verdict.
        verdict: Verdict,
        /// The evidence, when the verdict came from the flow's own messages
        /// (none for an endpoint's verdict).
        evidence: Option<[DirectionEvidence; 2]>,
    },
    /// A flow ended; its final record.
    FlowEnded(Box<FlowRecord>),
    /// A UDP endpoint was recognised as a Skype client.
    EndpointRecognised(EndpointKey),
    /// A flow that had already ended is revised by an endpoint's verdict.
    Revised(Box<FlowRecord>),
}

/// Run counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Frames pushed.
    pub frames: u64,
    /// Frames decoded into TCP/UDP packets.
    pub packets: u64,
    /// Frames skipped, by reason.
    pub skipped: SkipCounts,
    /// Flows created.
    pub flows: u64,
    /// Most flows held at once.
    pub peak_flows: u64,
}

/// How many ended, not-Skype UDP flows are remembered so that an endpoint
/// recognised later can revise them in streaming use.
pub const RECENT_ENDED_CAPACITY: usize = 4096;

/// The streaming classifier.
pub struct Classifier {
    config: MethodConfig,
    model: Model,
    known_mask: u32,
    table: FlowTable<FlowState>,
    endpoints: EndpointTable,
    recent_ended: std::collections::VecDeque<FlowRecord>,
    events: Vec<Event>,
    stats: RunStats,
    last_expiry: Timestamp,
    /// When set, endpoint observations are logged here instead of applied
    /// (for sharded runs, replayed later in capture order).
    endpoint_log: Option<Vec<EndpointObservation>>,
    /// The capture-wide number of the frame being pushed (for the log).
    frame_seq: u64,
    /// Whether decided flows keep their evidence for their records.
    keep_evidence: bool,
}

/// One message as an endpoint sees it, logged by a shard for replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointObservation {
    /// Capture-wide frame number (orders the replay).
    pub seq: u64,
    /// Capture time.
    pub ts: Timestamp,
    /// The endpoint.
    pub local: EndpointKey,
    /// Its peer.
    pub remote: EndpointKey,
    /// First message of the flow at this endpoint.
    pub first: bool,
    /// The first payload bytes (up to 8).
    pub head: [u8; 8],
    /// How many of `head` are payload.
    pub len: u8,
}

impl EndpointObservation {
    /// The logged payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.head[..usize::from(self.len).min(8)]
    }
}

/// Frames that [`Classifier::push_burst`] decodes and prefetches before
/// accounting them.
pub const BURST_GROUP: usize = 16;

/// Seconds of capture time between two idle-expiry passes.
const EXPIRY_INTERVAL_MICROS: i64 = 1_000_000;

impl Classifier {
    /// A classifier with `model` and default flow-table settings.
    pub fn new(model: Model) -> Self {
        Self::with_table(model, FlowTableConfig::default())
    }

    /// A classifier with explicit flow-table settings.
    pub fn with_table(model: Model, table: FlowTableConfig) -> Self {
        let config = model.config.clone();
        let endpoints = EndpointTable::new(
            config.endpoint.clone(),
            config.csc.clone(),
            &config.dft.func_known,
        );
        Classifier {
            known_mask: func_mask(&config.dft.func_known),
            config,
            model,
            table: FlowTable::new(table),
            endpoints,
            recent_ended: std::collections::VecDeque::new(),
            events: Vec::with_capacity(16),
            stats: RunStats::default(),
            last_expiry: Timestamp(i64::MIN),
            endpoint_log: None,
            frame_seq: 0,
            keep_evidence: false,
        }
    }

    /// Keeps each decided flow's evidence until the flow ends, for its
    /// record (what offline analysis prints). Off by default: a decided flow
    /// then costs only its table slot, and its evidence goes out with the
    /// [`Event::Verdict`]; the flow's [`FlowRecord`] says
    /// `evidence_released`.
    pub fn keep_evidence_for_records(&mut self, keep: bool) {
        self.keep_evidence = keep;
    }

    /// Logs endpoint observations instead of applying them: for a shard of
    /// a multi-threaded run, whose endpoints span the other shards. Take the
    /// log with [`Classifier::take_endpoint_log`] and replay it in capture
    /// order ([`replay_endpoints`]).
    pub fn log_endpoints(&mut self) {
        self.endpoint_log = Some(Vec::new());
    }

    /// Sets the capture-wide number of the next frame (for the log).
    pub fn set_frame_seq(&mut self, seq: u64) {
        self.frame_seq = seq;
    }

    /// Takes the endpoint log.
    pub fn take_endpoint_log(&mut self) -> Vec<EndpointObservation> {
        self.endpoint_log
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// The model in use.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Counters so far.
    pub fn stats(&self) -> RunStats {
        let mut s = self.stats;
        s.peak_flows = self.table.peak() as u64;
        s
    }

    /// Flows open now.
    pub fn open_flows(&self) -> usize {
        self.table.len()
    }

    /// The endpoint table (for reports).
    pub fn endpoints(&self) -> &EndpointTable {
        &self.endpoints
    }

    /// Takes the events produced so far.
    pub fn drain_events(&mut self) -> std::vec::Drain<'_, Event> {
        self.events.drain(..)
    }

    /// Whether events wait to be drained (cheaper to ask per packet than to
    /// drain an empty buffer).
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Pushes one frame; events go to the buffer ([`Classifier::drain_events`]).
    /// Returns the skip reason when the frame was not a TCP/UDP packet.
    pub fn push(&mut self, raw: &RawPacket<'_>) -> Result<(), SkipReason> {
        self.stats.frames += 1;
        // The common case straight from its view of the frame, the rest
        // through the general decoder (`packet::decode`, the same answer).
        let decoded = match crate::wire::link::network_of(raw.link_type, raw.data) {
            Ok(crate::wire::link::Network::Ip(ip)) => match packet::decode_common(raw.ts, ip) {
                Some(p) => {
                    let lookup = self.table.lookup(&p);
                    self.push_decoded(&p, &lookup);
                    return Ok(());
                }
                None => packet::decode_ip(raw.ts, ip),
            },
            Ok(crate::wire::link::Network::NotIp(_)) => Err(SkipReason::NotIp),
            Err(e) => Err(SkipReason::from(e)),
        };
        match decoded {
            Ok(p) => {
                let lookup = self.table.lookup(&p);
                self.push_decoded(&p, &lookup);
                Ok(())
            }
            Err(reason) => {
                self.stats.skipped.add(reason);
                Err(reason)
            }
        }
    }

    /// Pushes a burst of frames (as a NIC queue or a capture ring hands
    /// them over), in order: the events are those of pushing them one by
    /// one. Each group of [`BURST_GROUP`] frames is decoded and its flows
    /// looked up first, their slots and features prefetched, and then the
    /// frames are accounted, so that the memory latency of one flow overlaps
    /// the work on others: the gain grows with the number of concurrent
    /// flows (`benches/concurrent_flows.rs`). Returns the frames skipped.
    pub fn push_burst(&mut self, frames: &[RawPacket<'_>]) -> u64 {
        let mut skipped = 0;
        for group in frames.chunks(BURST_GROUP) {
            // Decode, hash and prefetch the index entries; then read the
            // index and prefetch the slots; then read the slots and
            // prefetch the features; then account the packets. Each stage
            // works on the whole group, so the memory reads of one stage
            // have the others' work to arrive behind.
            let mut decoded = [None; BURST_GROUP];
            for (raw, d) in group.iter().zip(decoded.iter_mut()) {
                self.stats.frames += 1;
                match packet::decode(raw) {
                    Ok(p) => {
                        let lookup = self.table.lookup(&p);
                        self.table.prefetch_index(&lookup);
                        *d = Some((p, lookup));
                    }
                    Err(reason) => {
                        self.stats.skipped.add(reason);
                        skipped += 1;
                    }
                }
            }
            let mut slots = [None; BURST_GROUP];
            for (d, s) in decoded.iter().zip(slots.iter_mut()) {
                if let Some((_, lookup)) = d {
                    *s = self.table.prefetch_slot(lookup);
                }
            }
            for (d, s) in decoded.iter().zip(slots.iter()) {
                if let (Some((_, lookup)), Some(slot)) = (d, s) {
                    if let Some((FlowState(StateInner::Open(open)), direction)) =
                        self.table.state_at(*slot, lookup)
                    {
                        let d = &open.dirs[direction.index()];
                        crate::flow::prefetch_lines(d, std::mem::size_of::<DirState>());
                    }
                }
            }
            for (p, lookup) in decoded.iter().flatten() {
                self.push_decoded(p, lookup);
            }
        }
        skipped
    }

    /// Pushes a packet that a reader decoded ([`PacketRecord::of`]): what
    /// [`Classifier::push`] does after decoding, with `seq` its frame number
    /// in the capture (for the endpoint log).
    pub fn push_record(&mut self, r: &PacketRecord, seq: u64) {
        self.stats.frames += 1;
        self.frame_seq = seq;
        let p = r.packet();
        let lookup = self.table.lookup(&p);
        self.push_decoded(&p, &lookup);
    }

    #[inline]
    fn push_decoded(&mut self, p: &packet::Packet<'_>, lookup: &FlowLookup) {
        self.stats.packets += 1;
        if p.ts.0.saturating_sub(self.last_expiry.0) >= EXPIRY_INTERVAL_MICROS {
            self.last_expiry = p.ts;
            self.expire(p.ts);
        }
        let Classifier {
            config,
            model,
            known_mask,
            table,
            events,
            recent_ended,
            endpoints,
            stats,
            endpoint_log,
            frame_seq,
            keep_evidence,
            ..
        } = self;
        let mut ended_here: Vec<EndedFlow<FlowState>> = Vec::new();
        let update = table.update_with(p, lookup, FlowState::open, &mut |f| ended_here.push(f));
        if update.new_flow {
            stats.flows += 1;
        }
        let key = update.key;
        let counters = update.counters;
        let direction = update.direction;
        let state = update.state;
        if p.payload.len() >= 3 {
            let (func_messages, known_func) = state.func_counts_mut();
            *func_messages = func_messages.saturating_add(1);
            if *known_mask & (1u32 << crate::features::FuncCounts::slot(p.payload[2])) != 0 {
                *known_func = known_func.saturating_add(1);
            }
        }
        let mut final_verdict = None;
        if let StateInner::Open(open) = &mut state.0 {
            let dirs = &mut open.dirs;
            let d = &mut dirs[direction.index()];
            let obs = d.features.observe(
                p.ts,
                p.transport,
                p.payload,
                p.payload_len,
                *known_mask,
                &config.dft,
                &config.nbc,
            );
            let mut changed = false;
            if obs.sampled {
                let n = d.features.nibbles.samples();
                if n >= verdict::min_judged_samples(p.transport, config) {
                    // The first Skype class reached stays.
                    if !d.csc.is_skype() {
                        let class =
                            csc::classify_counts(&d.features.nibbles, p.transport, &config.csc);
                        d.csc = class;
                        if class.is_skype() {
                            d.csc_at =
                                Some(counters.total_packets().min(u64::from(u32::MAX)) as u32);
                        }
                    }
                    changed = true;
                }
            }
            if let Some(w) = obs.window {
                d.nbc.add(model.nbc.log_odds(&w), &config.nbc);
                changed = true;
            }
            let decided_now = |mut v: Verdict| {
                v.decided_at_packet = Some(counters.total_packets());
                v.decided_after_seconds =
                    Some(counters.last_seen.secs_since(counters.first_seen) as f32);
                v
            };
            // A Skype verdict needs a direction with a signature whose
            // rhythm the NBC has judged and passed and, for UDP, whose DFT
            // class agrees (`judge_direction`): checked first, as it is
            // cheap and the evidence is not.
            let may_be_skype = |d: &DirState| {
                d.csc.is_skype()
                    && d.nbc.judged(&config.nbc)
                    && d.nbc.passes(&config.nbc)
                    && (p.transport != Transport::Udp
                        || !config.verdict.require_dft_for_udp
                        || csc::dft_class(&d.features.dft, &config.dft).agrees_with(d.csc))
            };
            if changed && dirs.iter().any(may_be_skype) {
                let ev = [dirs[0].evidence(config), dirs[1].evidence(config)];
                let v = verdict::judge_flow(&ev, p.transport, config, true);
                if v.label == Label::Skype {
                    final_verdict = Some((decided_now(v), ev));
                }
            }
            // A flow whose every active direction is settled as not Skype is
            // final: its state is released.
            let settled = |d: &DirState| {
                d.features.dft.packets == 0
                    || (!d.csc.is_skype()
                        && d.features.sampled_total >= u32::from(CSC_WINDOW_PACKETS))
                    || (d.nbc.windows >= config.verdict.settle_nbc_windows
                        && !d.nbc.passes(&config.nbc))
            };
            if changed && final_verdict.is_none() && dirs.iter().all(settled) {
                let ev = [dirs[0].evidence(config), dirs[1].evidence(config)];
                let mut v = verdict::judge_flow(&ev, p.transport, config, false);
                if v.label != Label::Skype {
                    v.label = Label::NotSkype;
                    v.via = Some(Via::Flow);
                    final_verdict = Some((decided_now(v), ev));
                }
            }
        }
        if let Some((v, ev)) = final_verdict {
            state.finalize(v, ev, *keep_evidence);
            events.push(Event::Verdict {
                key: key.flow_key(),
                verdict: v,
                evidence: Some(ev),
            });
        }
        // Endpoint correlation: both UDP endpoints see the message.
        if p.transport == Transport::Udp
            && config.endpoint.enabled
            && p.payload.len() >= 3
            && counters.packets[direction.index()] <= config.endpoint.max_messages_per_flow
        {
            let (local_fwd, remote_fwd) = (
                EndpointKey {
                    ip: p.src_ip,
                    port: p.src_port,
                },
                EndpointKey {
                    ip: p.dst_ip,
                    port: p.dst_port,
                },
            );
            let first_from_src = counters.packets[direction.index()] == 1;
            let first_at_dst = counters.packets[1 - direction.index()] == 0 && first_from_src;
            for (local, remote, first) in [
                (local_fwd, remote_fwd, first_from_src),
                (remote_fwd, local_fwd, first_at_dst),
            ] {
                if let Some(log) = endpoint_log.as_mut() {
                    let mut head = [0u8; 8];
                    let len = p.payload.len().min(8);
                    head[..len].copy_from_slice(&p.payload[..len]);
                    log.push(EndpointObservation {
                        seq: *frame_seq,
                        ts: p.ts,
                        local,
                        remote,
                        first,
                        head,
                        len: len as u8,
                    });
                    continue;
                }
                if endpoints.observe(p.ts, local, remote, first, p.payload) {
                    events.push(Event::EndpointRecognised(local));
                    // Revise the remembered ended flows of this endpoint.
                    for rec in recent_ended.iter_mut() {
                        if rec.endpoints().is_some_and(|e| e.contains(&local))
                            && apply_endpoint(rec, &config.endpoint)
                        {
                            events.push(Event::Revised(Box::new(rec.clone())));
                        }
                    }
                    recent_ended.retain(|r| r.verdict.label != Label::Skype);
                }
            }
            // The open flow itself, if its endpoint is (now) recognised.
            let (func_messages, known_func) = state.func_counts();
            if state.verdict().label != Label::Skype
                && (endpoints.is_recognised(&local_fwd) || endpoints.is_recognised(&remote_fwd))
                && flow_agrees(func_messages, known_func, &config.endpoint)
            {
                let previous = state.verdict().label;
                let v = Verdict {
                    label: Label::Skype,
                    kind: Some(Kind::Signalling),
                    confidence: endpoint_confidence(func_messages, known_func),
                    decided_at_packet: Some(counters.total_packets()),
                    decided_after_seconds: Some(
                        counters.last_seen.secs_since(counters.first_seen) as f32
                    ),
                    via: Some(Via::Endpoint),
                };
                state.set_verdict(v, (previous == Label::NotSkype).then_some(Label::NotSkype));
                events.push(Event::Verdict {
                    key: key.flow_key(),
                    verdict: v,
                    evidence: None,
                });
            }
        }
        if !ended_here.is_empty() {
            for f in ended_here {
                self.finish(f);
            }
        }
    }

    /// Ends idle flows as of `now` (also done by `push` once per second of
    /// capture time).
    pub fn expire(&mut self, now: Timestamp) {
        let mut ended = Vec::new();
        self.table.expire(now, &mut |f| ended.push(f));
        for f in ended {
            self.finish(f);
        }
    }

    /// Ends every open flow (end of capture): their records are in the events.
    pub fn finish_all(&mut self) {
        let mut ended = Vec::new();
        self.table.drain(&mut |f| ended.push(f));
        for f in ended {
            self.finish(f);
        }
    }

    /// Revises a record with its endpoints' verdict, if one of them has been
    /// recognised and the flow's own messages agree. Returns whether it
    /// changed. For offline use at the end of a run.
    pub fn revise(&self, rec: &mut FlowRecord) -> bool {
        revise_with(
            rec,
            |e| self.endpoints.is_recognised(e),
            &self.config.endpoint,
        )
    }

    fn finish(&mut self, f: EndedFlow<FlowState>) {
        let rec = self.record(f);
        if rec.key.transport == Transport::Udp
            && rec.verdict.label != Label::Skype
            && rec.func_messages > 0
        {
            if self.recent_ended.len() >= RECENT_ENDED_CAPACITY {
                self.recent_ended.pop_front();
            }
            self.recent_ended.push_back(rec.clone());
        }
        self.events.push(Event::FlowEnded(Box::new(rec)));
    }

    fn record(&self, f: EndedFlow<FlowState>) -> FlowRecord {
        let EndedFlow {
            key,
            counters,
            end,
            state,
        } = f;
        let mut evidence_released = false;
        let (evidence, csc_at, verdict) = match &state.0 {
            StateInner::Final(f) => {
                let ev = match &f.evidence {
                    Some(ev) => **ev,
                    None => {
                        evidence_released = true;
                        [DirectionEvidence::default(); 2]
                    }
                };
                (
                    ev,
                    [
                        ev[0].csc_first_at.map(u64::from),
                        ev[1].csc_first_at.map(u64::from),
                    ],
                    state.verdict(),
                )
            }
            StateInner::Open(open) => {
                let dirs = &open.dirs;
                let ev = [
                    dirs[0].evidence(&self.config),
                    dirs[1].evidence(&self.config),
                ];
                let mut v = if open.verdict.label == Label::Skype {
                    open.verdict
                } else {
                    verdict::judge_flow(&ev, key.transport, &self.config, false)
                };
                if v.label != Label::Undecided && v.decided_at_packet.is_none() {
                    v.decided_at_packet = Some(counters.total_packets());
                    v.decided_after_seconds =
                        Some(counters.last_seen.secs_since(counters.first_seen) as f32);
                }
                (
                    ev,
                    [dirs[0].csc_at.map(u64::from), dirs[1].csc_at.map(u64::from)],
                    v,
                )
            }
        };
        let (func_messages, known_func) = state.func_counts();
        let dir = |d: Direction| DirectionRecord {
            packets: counters.packets[d.index()],
            payload_bytes: counters.payload_bytes[d.index()],
            evidence: evidence[d.index()],
            csc_first_at_packet: csc_at[d.index()],
        };
        FlowRecord {
            key,
            first_seen: counters.first_seen,
            last_seen: counters.last_seen,
            end,
            verdict,
            revised_from: state.revised_from(),
            directions: [dir(Direction::Forward), dir(Direction::Backward)],
            func_messages,
            known_func,
            evidence_released,
        }
    }
}

/// Revises a record by the endpoints `recognised` says are Skype clients,
/// when the flow's own messages agree. Returns whether it changed.
pub fn revise_with(
    rec: &mut FlowRecord,
    recognised: impl Fn(&EndpointKey) -> bool,
    cfg: &crate::config::EndpointConfig,
) -> bool {
    match rec.endpoints() {
        Some(eps) if eps.iter().any(&recognised) => apply_endpoint(rec, cfg),
        _ => false,
    }
}

/// Replays logged endpoint observations (from every shard) in capture order
/// through one endpoint table, as a single-threaded run applies them.
pub fn replay_endpoints(mut log: Vec<EndpointObservation>, config: &MethodConfig) -> EndpointTable {
    log.sort_by_key(|o| (o.seq, o.ts));
    let mut t = EndpointTable::new(
        config.endpoint.clone(),
        config.csc.clone(),
        &config.dft.func_known,
    );
    for o in &log {
        t.observe(o.ts, o.local, o.remote, o.first, o.payload());
    }
    t
}

/// Whether a flow's own messages agree with an endpoint's Skype verdict:
/// at least one message with a FUNC byte, and the known share of the
/// endpoint signature.
fn flow_agrees(func_messages: u32, known: u32, cfg: &crate::config::EndpointConfig) -> bool {
    func_messages > 0 && f64::from(known) >= cfg.min_known_func_share * f64::from(func_messages)
}

/// Confidence of an endpoint verdict for one flow: the share of its messages
/// with known FUNC values, discounted for short flows (1 message: 0.5).
fn endpoint_confidence(func_messages: u32, known: u32) -> f64 {
    if func_messages == 0 {
        return 0.0;
    }
    let share = f64::from(known) / f64::from(func_messages);
    share * (1.0 - 0.5 / f64::from(func_messages))
}

/// Applies an endpoint's Skype verdict to a record when the flow agrees.
fn apply_endpoint(rec: &mut FlowRecord, cfg: &crate::config::EndpointConfig) -> bool {
    if rec.verdict.label == Label::Skype || !flow_agrees(rec.func_messages, rec.known_func, cfg) {
        return false;
    }
    rec.revised_from = Some(rec.verdict.label);
    rec.verdict = Verdict {
        label: Label::Skype,
        kind: Some(Kind::Signalling),
        confidence: endpoint_confidence(rec.func_messages, rec.known_func),
        decided_at_packet: Some(rec.packets()),
        decided_after_seconds: Some(rec.last_seen.secs_since(rec.first_seen) as f32),
        via: Some(Via::Endpoint),
    };
    true
}
