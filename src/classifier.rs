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
use crate::flow::{Direction, EndReason, EndedFlow, FlowKey, FlowTable};
use crate::model::Model;
use crate::nbc::NbcScore;
use crate::packet::{self, RawPacket, SkipCounts, SkipReason, Timestamp, Transport};
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

/// A flow's verdict once it has one, kept out of line so that undecided
/// flows do not carry it.
#[derive(Debug, Clone, Default)]
struct Decided {
    verdict: Verdict,
    /// The evidence when the verdict became final (kept for the record);
    /// None while the features are still kept.
    evidence: Option<[DirectionEvidence; 2]>,
    /// The verdict an endpoint revised, if it did.
    revised_from: Option<Label>,
}

/// The per-flow state the classifier keeps in the flow table.
#[derive(Debug, Clone, Default)]
pub struct FlowState {
    /// Features, released once the verdict is final.
    dirs: Option<Box<[DirState; 2]>>,
    /// The verdict, once there is one.
    decided: Option<Box<Decided>>,
    /// Messages of 3 bytes or more, and those with a known FUNC value.
    func_messages: u32,
    known_func: u32,
}

impl FlowState {
    fn verdict(&self) -> Verdict {
        self.decided.as_ref().map(|d| d.verdict).unwrap_or_default()
    }

    /// Records a final verdict with its evidence and releases the features.
    fn finalize(&mut self, verdict: Verdict, evidence: [DirectionEvidence; 2]) {
        let revised_from = self.decided.as_ref().and_then(|d| d.revised_from);
        self.decided = Some(Box::new(Decided {
            verdict,
            evidence: Some(evidence),
            revised_from,
        }));
        self.dirs = None;
    }
}

/// What a flow costs in memory, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMemory {
    /// An undecided flow: table slot and index entry plus its features.
    pub undecided: usize,
    /// A flow with a final verdict: slot and index entry plus the evidence
    /// kept for its record.
    pub decided: usize,
    /// Of `decided`, the evidence kept for the record (chi2 values, classes).
    pub decided_evidence: usize,
}

/// The memory a flow costs, from the sizes of the types (heap allocations
/// are counted at their size; the allocator's own rounding is not).
pub fn flow_memory() -> FlowMemory {
    let table = FlowTable::<FlowState>::bytes_per_flow();
    let features = std::mem::size_of::<[DirState; 2]>();
    let decided = std::mem::size_of::<Decided>();
    FlowMemory {
        undecided: table + features,
        decided: table + decided,
        decided_evidence: decided,
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
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A flow was recognised as Skype while still open.
    Verdict {
        /// The flow.
        key: FlowKey,
        /// Its verdict.
        verdict: Verdict,
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
        }
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

    /// Pushes one frame; events go to the buffer ([`Classifier::drain_events`]).
    /// Returns the skip reason when the frame was not a TCP/UDP packet.
    pub fn push(&mut self, raw: &RawPacket<'_>) -> Result<(), SkipReason> {
        self.stats.frames += 1;
        let p = match packet::decode(raw) {
            Ok(p) => p,
            Err(reason) => {
                self.stats.skipped.add(reason);
                return Err(reason);
            }
        };
        self.push_decoded(&p);
        Ok(())
    }

    fn push_decoded(&mut self, p: &packet::Packet<'_>) {
        let p = *p;
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
            ..
        } = self;
        let mut ended_here: Vec<EndedFlow<FlowState>> = Vec::new();
        let update = table.update(
            &p,
            |_| FlowState {
                dirs: Some(Box::default()),
                ..FlowState::default()
            },
            &mut |f| ended_here.push(f),
        );
        if update.new_flow {
            stats.flows += 1;
        }
        let key = update.key;
        let counters = update.counters;
        let direction = update.direction;
        let state = update.state;
        if p.payload.len() >= 3 {
            state.func_messages = state.func_messages.saturating_add(1);
            if *known_mask & (1u32 << crate::features::FuncCounts::slot(p.payload[2])) != 0 {
                state.known_func = state.known_func.saturating_add(1);
            }
        }
        if let Some(dirs) = state.dirs.as_mut() {
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
                if n >= verdict::min_judged_samples(key.transport, config) {
                    let class =
                        csc::classify_counts(&d.features.nibbles, key.transport, &config.csc);
                    if !d.csc.is_skype() {
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
            if changed && (dirs[0].csc.is_skype() || dirs[1].csc.is_skype()) {
                let ev = [dirs[0].evidence(config), dirs[1].evidence(config)];
                let mut v = verdict::judge_flow(&ev, key.transport, config, true);
                if v.label == Label::Skype {
                    v.decided_at_packet = Some(counters.total_packets());
                    v.decided_after_seconds =
                        Some(counters.last_seen.secs_since(counters.first_seen) as f32);
                    state.finalize(v, ev);
                    events.push(Event::Verdict { key, verdict: v });
                }
            }
            // A flow whose every active direction is settled as not Skype is
            // final: its state is released.
            if changed && state.dirs.is_some() {
                if let Some(dirs) = state.dirs.as_ref() {
                    let settled = |d: &DirState| {
                        d.features.dft.packets == 0
                            || (!d.csc.is_skype()
                                && d.features.sampled_total >= u32::from(CSC_WINDOW_PACKETS))
                            || (d.nbc.windows >= config.verdict.settle_nbc_windows
                                && !d.nbc.passes(&config.nbc))
                    };
                    if dirs.iter().all(settled) {
                        let ev = [dirs[0].evidence(config), dirs[1].evidence(config)];
                        let mut v = verdict::judge_flow(&ev, key.transport, config, false);
                        if v.label != Label::Skype {
                            v.label = Label::NotSkype;
                            v.via = Some(Via::Flow);
                            v.decided_at_packet = Some(counters.total_packets());
                            v.decided_after_seconds =
                                Some(counters.last_seen.secs_since(counters.first_seen) as f32);
                            state.finalize(v, ev);
                            events.push(Event::Verdict { key, verdict: v });
                        }
                    }
                }
            }
        }
        // Endpoint correlation: both UDP endpoints see the message.
        if key.transport == Transport::Udp
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
            if state.verdict().label != Label::Skype
                && (endpoints.is_recognised(&local_fwd) || endpoints.is_recognised(&remote_fwd))
                && flow_agrees(state.func_messages, state.known_func, &config.endpoint)
            {
                let previous = state.verdict().label;
                let v = Verdict {
                    label: Label::Skype,
                    kind: Some(Kind::Signalling),
                    confidence: endpoint_confidence(state.func_messages, state.known_func),
                    decided_at_packet: Some(counters.total_packets()),
                    decided_after_seconds: Some(
                        counters.last_seen.secs_since(counters.first_seen) as f32
                    ),
                    via: Some(Via::Endpoint),
                };
                let d = state.decided.get_or_insert_with(Box::default);
                if previous == Label::NotSkype {
                    d.revised_from = Some(Label::NotSkype);
                }
                d.verdict = v;
                events.push(Event::Verdict { key, verdict: v });
            }
        }
        for f in ended_here {
            self.finish(f);
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
        let frozen = state.decided.as_ref().and_then(|d| d.evidence);
        let (evidence, csc_at, verdict) = match (frozen, &state.dirs) {
            (Some(fr), _) => (
                fr,
                [
                    fr[0].csc_first_at.map(u64::from),
                    fr[1].csc_first_at.map(u64::from),
                ],
                state.verdict(),
            ),
            (None, Some(dirs)) => {
                let ev = [
                    dirs[0].evidence(&self.config),
                    dirs[1].evidence(&self.config),
                ];
                let mut v = if state.verdict().label == Label::Skype {
                    state.verdict()
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
            (None, None) => (
                [DirectionEvidence::default(); 2],
                [None, None],
                state.verdict(),
            ),
        };
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
            revised_from: state.decided.as_ref().and_then(|d| d.revised_from),
            directions: [dir(Direction::Forward), dir(Direction::Backward)],
            func_messages: state.func_messages,
            known_func: state.known_func,
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
