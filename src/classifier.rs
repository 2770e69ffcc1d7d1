//! The streaming API that a firewall links: packets in, events out.
//!
//! [`Classifier::push`] takes one captured frame and runs the data path as
//! a short sequence of steps, each a function of its own module:
//! 1. decode the frame ([`crate::packet`]) and find its flow
//!    ([`crate::flow`]);
//! 2. count what an endpoint's verdict asks of the flow's own messages
//!    (the FUNC bytes of UDP, a TCP flow's random first payload,
//!    `FlowAgreement`);
//! 3. update the direction's features ([`crate::features`]) and look with
//!    the sequential tests: the groups ([`crate::csc`]), the header
//!    ([`crate::dft`]), a completed rhythm window ([`crate::nbc`]);
//! 4. judge the flow ([`crate::verdict`]) and report what changed: a Skype
//!    verdict as soon as it is reached, a revision if later evidence
//!    contradicts it, a final "not Skype" once every direction is
//!    contradicted; a verdict is final (and the flow's features released)
//!    once confirmed over the paper's full window;
//! 5. feed the flow's first messages to its UDP endpoints
//!    ([`crate::endpoint`]), whose verdict an undecided flow takes.
//!
//! Events go to a buffer the caller drains. The per-packet path allocates
//! only when a flow or an endpoint is created.

use std::borrow::BorrowMut;
use std::collections::HashMap;

use crate::config::{
    FlowTableConfig, MethodConfig, TunnelConfig, CSC_BYTES, CSC_GROUPS, TCP_FIRST_PAYLOAD_BYTES,
};
use crate::csc::{self, CscState, GroupTests, SignatureState};
use crate::dft::{self, HeaderState};
use crate::endpoint::{EndpointKey, EndpointTable};
use crate::features::{DirectionFeatures, FuncSet};
use crate::flow::{
    Direction, EndReason, EndedFlow, FlowCounters, FlowKey, FlowLookup, FlowTable, KeyRef,
};
use crate::model::Model;
use crate::nbc::{NbcDecision, NbcScore};
use crate::packet::{self, PacketRecord, RawPacket, SkipCounts, SkipReason, Timestamp, Transport};
use crate::tunnel::{Tunnel, TunnelKind};
use crate::verdict::{
    self, Contradiction, DirectionEvidence, DirectionState, FlowEvidence, Kind, Label, Verdict, Via,
};

/// What the classifier needs to judge: the method's numbers, the rhythm
/// model, the group tests' tables and the known FUNC values.
struct Method {
    config: MethodConfig,
    model: Model,
    tests: GroupTests,
    header_tests: dft::HeaderTests,
    known: FuncSet,
}

impl Method {
    fn new(model: Model) -> Self {
        let config = model.config.clone();
        Method {
            tests: GroupTests::new(&config.csc),
            header_tests: dft::HeaderTests::new(&config.dft),
            known: FuncSet::of(&config.dft.func_known),
            config,
            model,
        }
    }
}

/// What step 3 reads of a packet: its time, transport, captured payload and
/// payload length.
#[derive(Debug, Clone, Copy)]
struct Message<'a> {
    ts: Timestamp,
    transport: Transport,
    payload: &'a [u8],
    payload_len: u32,
}

impl<'a> Message<'a> {
    fn of(p: &packet::Packet<'a>) -> Self {
        Message {
            ts: p.ts,
            transport: p.transport,
            payload: p.payload,
            payload_len: p.payload_len,
        }
    }
}

/// Everything the classifiers keep for one direction while undecided.
#[derive(Debug, Clone, Default, PartialEq)]
struct DirState {
    features: DirectionFeatures,
    /// The group tests' decisions.
    groups: CscState,
    /// The header tests' decisions.
    header: HeaderState,
    /// The rhythm test.
    nbc: NbcScore,
    /// Flow packet count when a chi-square signature first held.
    csc_at: Option<u32>,
}

impl DirState {
    /// Step 3: accounts one packet of this direction in its features and
    /// looks with the sequential tests; a completed window's log-odds go to
    /// the direction's rhythm test and to the flow's (`rhythm`). Returns
    /// whether the direction's evidence changed.
    #[inline]
    fn observe(
        &mut self,
        m: Message<'_>,
        flow_packets: u64,
        rhythm: &mut NbcScore,
        method: &Method,
    ) -> bool {
        let config = &method.config;
        let obs = self.features.observe(
            m.ts,
            m.transport,
            m.payload,
            m.payload_len,
            method.known,
            &config.dft,
            &config.nbc,
        );
        if m.payload_len == 0 {
            return false;
        }
        if m.transport == Transport::Udp {
            self.header
                .look_with(&self.features.dft, &method.header_tests);
        }
        if obs.sampled {
            let f = &self.features;
            let window = csc::window_index(&f.nibbles, f.sampled_total);
            self.groups.look(&f.nibbles, window, &method.tests);
            if self.csc_at.is_none() && self.csc_class(m.transport, config).is_skype() {
                self.csc_at = Some(flow_packets.min(u64::from(u32::MAX)) as u32);
            }
        }
        if let Some((kind, w)) = obs.window {
            let log_odds = method.model.nbc.log_odds(kind, &w);
            self.nbc.add(log_odds, &config.nbc);
            rhythm.add(log_odds, &config.nbc);
        }
        true
    }

    /// Whether this direction may decide ([`verdict::direction_may_decide`]).
    #[inline]
    fn may_decide(&self, config: &MethodConfig) -> bool {
        verdict::direction_may_decide(
            &self.groups,
            self.header.func_contradicted,
            self.header.prefix_contradicted,
            self.nbc.decision,
            self.features.sampled_total,
            config,
        )
    }

    /// The chi-square signature that holds (without the header check).
    fn csc_class(&self, transport: Transport, config: &MethodConfig) -> csc::CscClass {
        verdict::signatures(transport)
            .iter()
            .find(|s| {
                s.state(&self.groups, self.features.sampled_total, &config.csc)
                    == SignatureState::Holds
            })
            .map_or(csc::CscClass::None, |s| s.class())
    }

    /// The direction's evidence; the chi2 values (for records and events,
    /// not for judging) when `chi2`.
    fn evidence(
        &self,
        transport: Transport,
        config: &MethodConfig,
        chi2: bool,
    ) -> DirectionEvidence {
        let f = &self.features;
        let mut values = [0f32; CSC_GROUPS];
        if chi2 {
            for (o, x) in values.iter_mut().zip(csc::chi_squares(&f.nibbles)) {
                *o = x as f32;
            }
        }
        DirectionEvidence {
            messages: f.dft.packets,
            csc: self.csc_class(transport, config),
            groups: self.groups,
            dft: dft::dft_class(&f.dft, &self.header, &config.dft),
            header: self.header.judge(&f.dft, &config.dft),
            nbc: self.nbc,
            sampled: f.sampled_total,
            window_sampled: f.nibbles.samples(),
            chi2: values,
            csc_first_at: self.csc_at,
            video: f64::from(f.video_packets) > config.nbc.video_share * f64::from(f.dft.packets),
        }
    }
}

/// What an endpoint's verdict asks of a flow's own messages, in 8 bytes.
/// UDP: the messages with a FUNC byte, and those with a known Skype value
/// (the flow agrees when the known share is the endpoint signature's). TCP:
/// the messages with payload, and whether the first was random from its
/// first byte (1) or not (0) (the flow agrees when it was).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FlowAgreement {
    messages: u32,
    agreeing: u32,
}

impl FlowAgreement {
    /// Step 2: counts one payload.
    #[inline]
    fn count(&mut self, p: &packet::Packet<'_>, known: FuncSet, tests: &GroupTests) {
        match p.transport {
            Transport::Udp => {
                if let Some(&b2) = p.payload.get(2) {
                    self.messages = self.messages.saturating_add(1);
                    self.agreeing = self.agreeing.saturating_add(u32::from(known.contains(b2)));
                }
            }
            Transport::Tcp if p.payload_len > 0 => {
                if self.messages == 0 {
                    let random = p.random_head.unwrap_or_else(|| {
                        crate::endpoint::encrypted_from_first_byte(p.payload, tests)
                    });
                    self.agreeing = u32::from(random);
                }
                self.messages = self.messages.saturating_add(1);
            }
            Transport::Tcp => {}
        }
    }

    /// The agreement of a record.
    fn of(rec: &FlowRecord) -> Self {
        match rec.key.transport {
            Transport::Udp => FlowAgreement {
                messages: rec.func_messages,
                agreeing: rec.known_func,
            },
            Transport::Tcp => FlowAgreement {
                messages: rec.func_messages,
                agreeing: u32::from(rec.first_payload_random == Some(true)),
            },
        }
    }

    /// Whether the flow's own messages agree with an endpoint's Skype
    /// verdict.
    fn agrees(self, transport: Transport, cfg: &crate::config::EndpointConfig) -> bool {
        self.messages > 0
            && match transport {
                Transport::Udp => {
                    f64::from(self.agreeing) >= cfg.min_known_func_share * f64::from(self.messages)
                }
                Transport::Tcp => self.agreeing == 1,
            }
    }

    /// Confidence of an endpoint verdict for the flow: the share of its
    /// messages that agree (TCP: 1 when its first payload was random),
    /// discounted for short flows (1 message: 0.5).
    fn confidence(self, transport: Transport) -> f64 {
        if self.messages == 0 {
            return 0.0;
        }
        let share = match transport {
            Transport::Udp => f64::from(self.agreeing) / f64::from(self.messages),
            Transport::Tcp => f64::from(self.agreeing),
        };
        share * (1.0 - 0.5 / f64::from(self.messages))
    }
}

/// Feature blocks of flows that ended or became final, kept for the next
/// new flows (a flood of new flows then allocates none), at most
/// [`STATE_POOL_MAX`].
// The boxes themselves are what is reused: each goes back into a flow's
// state as it is.
#[allow(clippy::vec_box)]
#[derive(Default)]
struct StatePool(Vec<Box<OpenState>>);

/// Most feature blocks a [`StatePool`] keeps (about 230 KiB).
const STATE_POOL_MAX: usize = 256;

impl StatePool {
    /// A block in its initial state.
    #[inline]
    fn take(&mut self) -> Box<OpenState> {
        match self.0.pop() {
            Some(mut b) => {
                *b = OpenState::default();
                b
            }
            None => Box::default(),
        }
    }

    /// A block no flow uses any more.
    #[inline]
    fn give(&mut self, b: Box<OpenState>) {
        if self.0.len() < STATE_POOL_MAX {
            self.0.push(b);
        }
    }
}

/// The state of an open flow whose verdict is not final: its features,
/// kept out of line and released when the verdict becomes final. What
/// every packet of the flow reads (the verdict, step 2's counts, whether a
/// direction may decide) comes first, before the directions' blocks: a
/// packet touches that head and its own direction's block, not the other
/// direction's.
#[repr(C)]
#[derive(Debug, Clone, Default, PartialEq)]
struct OpenState {
    /// The verdict so far: the flow's own Skype verdict while it is being
    /// confirmed, an endpoint's while the flow's own evidence is pending,
    /// or undecided.
    verdict: Verdict,
    /// The rhythm test over both directions' windows.
    rhythm: NbcScore,
    func: FlowAgreement,
    /// The verdict that a later one revised, if one did.
    revised_from: Option<Label>,
    /// Whether each direction may decide
    /// ([`verdict::direction_may_decide`] of its state), updated with the
    /// direction's state ([`OpenState::observe`]).
    dir_may_decide: [bool; 2],
    dirs: [DirState; 2],
}

impl OpenState {
    /// Step 3 for a message of direction `d` ([`DirState::observe`]), and
    /// whether that direction may decide now. Returns whether its evidence
    /// changed.
    #[inline]
    fn observe(
        &mut self,
        d: Direction,
        m: Message<'_>,
        flow_packets: u64,
        method: &Method,
    ) -> bool {
        let OpenState {
            dirs,
            rhythm,
            dir_may_decide,
            ..
        } = self;
        let dir = &mut dirs[d.index()];
        let changed = dir.observe(m, flow_packets, rhythm, method);
        if changed {
            dir_may_decide[d.index()] = dir.may_decide(&method.config);
        }
        changed
    }

    /// Whether judging the flow could give anything but
    /// [`verdict::undecided_judgement`] ([`verdict::direction_may_decide`]).
    /// Reads the head only: each direction's answer is kept as its state
    /// changes.
    #[inline]
    fn may_decide(&self, config: &MethodConfig) -> bool {
        debug_assert!(
            self.dirs
                .iter()
                .zip(self.dir_may_decide)
                .all(|(d, kept)| kept == d.may_decide(config)),
            "a direction's kept answer is stale"
        );
        self.rhythm.decision == NbcDecision::Other || self.dir_may_decide.iter().any(|&b| b)
    }

    /// The flow's evidence; the chi2 values when `chi2`.
    fn evidence(&self, transport: Transport, config: &MethodConfig, chi2: bool) -> FlowEvidence {
        FlowEvidence {
            directions: [
                self.dirs[0].evidence(transport, config, chi2),
                self.dirs[1].evidence(transport, config, chi2),
            ],
            rhythm: self.rhythm,
        }
    }
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
    /// As in [`OpenState`] (an endpoint may still give an undecided flow
    /// its verdict).
    func: FlowAgreement,
    /// The evidence at the decision, kept for the flow's record when the
    /// classifier keeps evidence ([`Classifier::keep_evidence_for_records`]).
    evidence: Option<Box<FlowEvidence>>,
}

/// The only message of a flow that has had at most one, kept in the
/// flow's slot instead of a feature block: on a link most flows have one
/// or two packets. The block is made when a second message comes (or an
/// endpoint gives the flow its verdict) by replaying this one through step
/// 3 ([`FirstMessage::replay`]), and a record replays it too, so the
/// evidence is what a block kept from the first packet would hold. A flow
/// is left in this form only when that one message decided nothing
/// ([`FirstMessage::of_quiet`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FirstMessage {
    ts: Timestamp,
    /// The message's payload length; 0 when the flow has had no message.
    payload_len: u32,
    /// Its first [`crate::config::CSC_BYTES`] captured bytes (fewer when
    /// fewer were captured): all that step 3 reads of a payload.
    head: [u8; crate::config::CSC_BYTES],
    head_len: u8,
    /// [`FIRST_BACKWARD`], [`FIRST_FUNC_COUNTED`], [`FIRST_FUNC_AGREEING`].
    bits: u8,
}

/// The message went backward (from the flow's responder).
const FIRST_BACKWARD: u8 = 1;
/// Step 2 counted the message ([`FlowAgreement::messages`] is 1).
const FIRST_FUNC_COUNTED: u8 = 2;
/// It agreed ([`FlowAgreement::agreeing`] is 1).
const FIRST_FUNC_AGREEING: u8 = 4;

impl FirstMessage {
    /// A new flow: no message yet.
    const NONE: FirstMessage = FirstMessage {
        ts: Timestamp(0),
        payload_len: 0,
        head: [0; crate::config::CSC_BYTES],
        head_len: 0,
        bits: 0,
    };

    /// What step 2 counted of the message.
    fn func(&self) -> FlowAgreement {
        FlowAgreement {
            messages: u32::from(self.bits & FIRST_FUNC_COUNTED != 0),
            agreeing: u32::from(self.bits & FIRST_FUNC_AGREEING != 0),
        }
    }

    /// The state of an open flow after the packet `p` (of `direction`),
    /// in this form, when it can be: the flow's only message is `p`'s
    /// payload, if any (`counters`), and that message changed nothing but
    /// what replaying it gives: no verdict (its own or an endpoint's), no
    /// revision, no signature and no completed rhythm window. None
    /// otherwise: the flow keeps its block.
    fn of_quiet(
        open: &OpenState,
        p: &packet::Packet<'_>,
        direction: Direction,
        counters: &FlowCounters,
    ) -> Option<FirstMessage> {
        // Every message adds its (non-zero) length to the payload bytes:
        // equal to this packet's, no other packet had a message.
        if counters.total_payload_bytes() != u64::from(p.payload_len) {
            return None;
        }
        let messages: u32 = open.dirs.iter().map(|d| d.features.dft.packets).sum();
        let quiet = messages <= u32::from(p.payload_len > 0)
            && open.verdict == Verdict::default()
            && open.revised_from.is_none()
            && open.rhythm == NbcScore::default()
            && open
                .dirs
                .iter()
                .all(|d| d.csc_at.is_none() && d.nbc == NbcScore::default())
            && open.func.messages <= 1
            && open.func.agreeing <= open.func.messages;
        if !quiet {
            return None;
        }
        let mut m = FirstMessage::NONE;
        if p.payload_len > 0 {
            m.ts = p.ts;
            m.payload_len = p.payload_len;
            (m.head, m.head_len) = packet::head_of(p.payload);
            if direction == Direction::Backward {
                m.bits |= FIRST_BACKWARD;
            }
        }
        if open.func.messages == 1 {
            m.bits |= FIRST_FUNC_COUNTED;
        }
        if open.func.agreeing == 1 {
            m.bits |= FIRST_FUNC_AGREEING;
        }
        Some(m)
    }

    /// Replays the message into `open` (a block in its initial state): the
    /// state the flow had after it.
    fn replay(&self, transport: Transport, method: &Method, open: &mut OpenState) {
        open.func = self.func();
        if self.payload_len == 0 {
            return;
        }
        let d = if self.bits & FIRST_BACKWARD != 0 {
            Direction::Backward
        } else {
            Direction::Forward
        };
        open.observe(
            d,
            Message {
                ts: self.ts,
                transport,
                payload: self.head.get(..usize::from(self.head_len)).unwrap_or(&[]),
                payload_len: self.payload_len,
            },
            1,
            method,
        );
    }
}

/// The per-flow state the classifier keeps in the flow table: 32 bytes
/// inline, plus the boxed features while the verdict is not final and the
/// flow has had more than one message.
#[derive(Debug, Clone)]
pub(crate) struct FlowState(StateInner);

// The first-message form fits beside the others: a flow's inline state
// stays 32 bytes (the 126-byte table entry of `flow_memory`).
const _: () = assert!(std::mem::size_of::<FlowState>() <= 32);

#[derive(Debug, Clone)]
enum StateInner {
    /// At most one message so far, nothing decided.
    First(FirstMessage),
    Open(Box<OpenState>),
    Final(FinalState),
}

impl FlowState {
    /// A new flow's state: no message yet, no block.
    fn new_flow() -> Self {
        FlowState(StateInner::First(FirstMessage::NONE))
    }

    fn verdict(&self) -> Verdict {
        match &self.0 {
            StateInner::First(_) => Verdict::default(),
            StateInner::Open(o) => o.verdict,
            StateInner::Final(f) => f.verdict.verdict(),
        }
    }

    fn revised_from(&self) -> Option<Label> {
        match &self.0 {
            StateInner::First(_) => None,
            StateInner::Open(o) => o.revised_from,
            StateInner::Final(f) => f.verdict.revised_from,
        }
    }

    fn func(&self) -> FlowAgreement {
        match &self.0 {
            StateInner::First(m) => m.func(),
            StateInner::Open(o) => o.func,
            StateInner::Final(f) => f.func,
        }
    }

    /// The counts of step 2; none while the flow is in its first-message
    /// form ([`FlowState::open_up`] first, for a packet step 2 counts).
    fn func_mut(&mut self) -> Option<&mut FlowAgreement> {
        match &mut self.0 {
            StateInner::First(_) => None,
            StateInner::Open(o) => Some(&mut o.func),
            StateInner::Final(f) => Some(&mut f.func),
        }
    }

    /// A flow in its first-message form gets its block, the message
    /// replayed into it; the open state, if the flow is not final.
    fn open_up(
        &mut self,
        transport: Transport,
        method: &Method,
        pool: &mut StatePool,
    ) -> Option<&mut OpenState> {
        if let StateInner::First(m) = self.0 {
            let mut b = pool.take();
            m.replay(transport, method, &mut b);
            self.0 = StateInner::Open(b);
        }
        match &mut self.0 {
            StateInner::Open(o) => Some(o),
            _ => None,
        }
    }

    /// Back to the first-message form after the packet `p`, when the flow
    /// can be ([`FirstMessage::of_quiet`]); the block it no longer needs.
    #[inline]
    fn close_down(
        &mut self,
        p: &packet::Packet<'_>,
        direction: Direction,
        counters: &FlowCounters,
    ) -> Option<Box<OpenState>> {
        let StateInner::Open(open) = &self.0 else {
            return None;
        };
        let m = FirstMessage::of_quiet(open, p, direction, counters)?;
        match std::mem::replace(&mut self.0, StateInner::First(m)) {
            StateInner::Open(b) => Some(b),
            _ => None,
        }
    }

    /// Records a final verdict and releases the features; the evidence is
    /// kept when `keep_evidence`.
    fn finalize(
        &mut self,
        verdict: Verdict,
        revised_from: Option<Label>,
        evidence: FlowEvidence,
        keep_evidence: bool,
    ) -> Option<Box<OpenState>> {
        let func = self.func();
        let was = std::mem::replace(
            &mut self.0,
            StateInner::Final(FinalState {
                verdict: CompactVerdict::new(verdict, revised_from),
                func,
                evidence: keep_evidence.then(|| Box::new(evidence)),
            }),
        );
        match was {
            StateInner::Open(b) => Some(b),
            StateInner::First(_) | StateInner::Final(_) => None,
        }
    }
}

/// What a flow costs in memory, in bytes.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMemory {
    /// An undecided flow: table slot and index entry plus its features.
    pub undecided: usize,
    /// A flow of at most one message so far: slot and index entry, the
    /// message kept in the slot; its features get a
    /// block at its second message.
    pub one_message: usize,
    /// A flow with a final verdict: slot and index entry (its features are
    /// released; its evidence went out with the verdict event).
    pub decided: usize,
    /// What a decided flow adds when the classifier keeps the evidence for
    /// the flow's record ([`Classifier::keep_evidence_for_records`], as
    /// `classify` does for the chi2 values it prints).
    pub decided_evidence: usize,
    /// An endpoint tracked by endpoint correlation past its first message
    /// (key, entry, state and a hash-map control byte; one seen once costs
    /// [`crate::endpoint::EndpointTable::bytes_per_newcomer`]); the table
    /// holds at most `endpoint.max_endpoints` of them, so a flood of new
    /// sources costs at most that many times this, beside the flow table's
    /// cap.
    pub endpoint: usize,
}

/// The memory a flow costs, from the sizes of the types (heap allocations
/// are counted at their size; the allocator's own rounding is not).
pub fn flow_memory() -> FlowMemory {
    let table = FlowTable::<FlowState>::bytes_per_flow();
    FlowMemory {
        undecided: table + std::mem::size_of::<OpenState>(),
        one_message: table,
        decided: table,
        decided_evidence: std::mem::size_of::<FlowEvidence>(),
        endpoint: crate::endpoint::EndpointTable::bytes_per_endpoint(),
    }
}

/// What a classifier holds in memory now, by part, in bytes (heap
/// allocations at their size; the allocator's own rounding and the pages it
/// keeps are not counted). [`Classifier::memory_use`] walks the flow table:
/// for reports, not for every packet.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Flows held, and of them those whose verdict is not final (which
    /// keep their features).
    pub flows: usize,
    /// See `flows`.
    pub open: usize,
    /// Of the `open` flows, those of at most one message so far, which keep
    /// it in their slot instead of a feature block.
    pub one_message: usize,
    /// The flow table: slots and index at their capacity (a table keeps
    /// the capacity of its busiest moment).
    pub table: usize,
    /// The features of the flows whose verdict is not final.
    pub features: usize,
    /// The decided flows' kept evidence (offline records).
    pub evidence: usize,
    /// Endpoint correlation: endpoints (newcomers and full states) and the
    /// recognised sets.
    pub endpoints: usize,
    /// Endpoints held, and of them past their first message.
    pub endpoint_count: usize,
    /// See `endpoint_count`.
    pub endpoint_full: usize,
    /// Ended flows remembered for revision, and events not yet drained.
    pub recent_and_events: usize,
}

impl MemoryUse {
    /// The sum of the parts.
    pub fn total(&self) -> usize {
        self.table + self.features + self.evidence + self.endpoints + self.recent_and_events
    }
}

/// Per-direction evidence in a flow record.
#[non_exhaustive]
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
    /// Where the direction stands (None when the evidence was released).
    pub state: Option<DirectionState>,
}

/// Everything known about a flow when it ends: the public flow record.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub struct FlowRecord {
    /// The 5-tuple, initiator first (inside its tunnel, if any).
    pub key: FlowKey,
    /// The tunnel that carried the flow (the innermost), as its first
    /// packet went through it.
    pub tunnel: Option<Tunnel>,
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
    /// The rhythm test over both directions' windows.
    pub rhythm: NbcScore,
    /// What a "not_skype" verdict rests on (from the evidence; None when
    /// nothing contradicts Skype or the evidence was released).
    pub contradiction: Option<Contradiction>,
    /// UDP: messages with a FUNC byte; TCP: messages with payload.
    pub func_messages: u32,
    /// UDP: messages with a known Skype FUNC value (0 for TCP).
    pub known_func: u32,
    /// TCP: whether the first payload was random from its first byte (no
    /// known protocol's framing); None for UDP or without payload.
    pub first_payload_random: Option<bool>,
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

    /// The flow's evidence (both directions and the rhythm test), as the
    /// verdict read it ([`crate::verdict::contradiction_of`] says what a
    /// "not_skype" rests on).
    pub fn evidence(&self) -> FlowEvidence {
        FlowEvidence {
            directions: [self.directions[0].evidence, self.directions[1].evidence],
            rhythm: self.rhythm,
        }
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
#[non_exhaustive]
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A flow was recognised as Skype while still open.
    Verdict {
        /// The flow.
        key: FlowKey,
        /// The tunnel that carried it, if any.
        tunnel: Option<Tunnel>,
        /// Its verdict.
        verdict: Verdict,
        /// The evidence, when the verdict came from the flow's own messages
        /// (none for an endpoint's verdict).
        evidence: Option<FlowEvidence>,
    },
    /// A flow ended; its final record.
    FlowEnded(Box<FlowRecord>),
    /// A UDP endpoint was recognised as a Skype client.
    EndpointRecognised(EndpointKey),
    /// A flow that had already ended is revised by an endpoint's verdict.
    Revised(Box<FlowRecord>),
}

/// Run counters.
#[non_exhaustive]
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
    /// Packets that came through tunnels, by the innermost tunnel's kind
    /// (the tunnels' own flows are not reported: their packets are these).
    pub tunneled: TunnelCounts,
}

/// Packets and their (inner) payload bytes, by tunnel kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunnelCounts {
    packets: [u64; TunnelKind::ALL.len()],
    payload_bytes: [u64; TunnelKind::ALL.len()],
}

impl TunnelCounts {
    /// Counts one packet of `kind`.
    #[inline]
    pub fn add(&mut self, kind: TunnelKind, payload_bytes: u32) {
        if let Some(p) = self.packets.get_mut(kind.index()) {
            *p += 1;
        }
        if let Some(b) = self.payload_bytes.get_mut(kind.index()) {
            *b += u64::from(payload_bytes);
        }
    }

    /// Packets that came through a tunnel of `kind`.
    pub fn packets(&self, kind: TunnelKind) -> u64 {
        self.packets.get(kind.index()).copied().unwrap_or(0)
    }

    /// Their inner payload bytes.
    pub fn payload_bytes(&self, kind: TunnelKind) -> u64 {
        self.payload_bytes.get(kind.index()).copied().unwrap_or(0)
    }

    /// Packets through any tunnel.
    pub fn total_packets(&self) -> u64 {
        self.packets.iter().sum()
    }

    /// Adds other counts.
    pub fn merge(&mut self, other: &TunnelCounts) {
        for (a, b) in self.packets.iter_mut().zip(other.packets) {
            *a += b;
        }
        for (a, b) in self.payload_bytes.iter_mut().zip(other.payload_bytes) {
            *a += b;
        }
    }
}

impl RunStats {
    /// Adds another run's counters (the peak is the larger one's).
    pub fn merge(&mut self, other: &RunStats) {
        self.frames += other.frames;
        self.packets += other.packets;
        self.tunneled.merge(&other.tunneled);
        self.skipped.merge(&other.skipped);
        self.flows += other.flows;
        self.peak_flows = self.peak_flows.max(other.peak_flows);
    }
}

/// How many ended, not-Skype UDP flows are remembered so that an endpoint
/// recognised later can revise them in streaming use.
pub const RECENT_ENDED_CAPACITY: usize = 4096;

/// The streaming classifier.
pub struct Classifier {
    method: Method,
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
    /// The label and kind of the flow of the last frame pushed, after it.
    last: (Label, Option<Kind>),
    /// Which tunnels are opened.
    tunnels: TunnelConfig,
    /// Feature blocks for new flows.
    pool: StatePool,
    /// The flows a packet ended (reused: no allocation per packet).
    ended_here: Vec<EndedFlow<FlowState>>,
    /// Whether a flow of one message keeps it in its slot
    /// ([`FirstMessage`]) rather than a feature block; off only in tests.
    first_message_form: bool,
}

/// One message as an endpoint sees it, logged by a shard for replay; or
/// (not `observed`) a packet of an undecided flow whose own messages agree,
/// logged only for when its endpoints would have given the flow their
/// verdict.
#[non_exhaustive]
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
    /// An endpoint's message, replayed into the endpoint table (else a
    /// packet logged for its timing: `local` is its sender).
    pub observed: bool,
    /// The flow's transport.
    pub transport: Transport,
    /// The flow's packets so far, this one included.
    pub flow_packets: u32,
    /// The flow's own messages so far, and those that agree with Skype
    /// (its FUNC bytes; TCP: a first payload random from its first byte).
    pub flow_messages: u32,
    /// See `flow_messages`.
    pub flow_agreeing: u32,
}

impl EndpointObservation {
    /// The logged payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.head[..usize::from(self.len).min(8)]
    }
}

/// A classifier moves to the thread that owns it: one per core or NIC
/// queue (`examples/per_core.rs`).
const _: () = {
    const fn is_send<T: Send>() {}
    is_send::<Classifier>()
};

/// Frames that [`Classifier::push_burst`] decodes and prefetches before
/// accounting them.
pub const BURST_GROUP: usize = 16;

/// Frames decoded as they are read, for a reader whose buffer the next
/// read reuses (libpcap's): a frame leaves its decoded packet and the first
/// bytes of its payload that the classifiers read ([`CSC_BYTES`]; of a TCP
/// payload [`TCP_FIRST_PAYLOAD_BYTES`], what the test of a first message's
/// randomness reads), instead of a copy of the frame.
/// [`DecodedBurst::decode`] fills it (on the reading thread, when reading
/// has one: it needs only the [`TunnelConfig`]) and
/// [`Classifier::push_decoded_burst`] pushes and empties it: the events
/// and counters are those of pushing the frames one by one.
#[derive(Debug, Clone)]
pub struct DecodedBurst {
    /// The packets, their payload left out.
    packets: Vec<packet::Packet<'static>>,
    /// Each packet's kept payload bytes, and how many there are.
    heads: Vec<([u8; TCP_FIRST_PAYLOAD_BYTES], u8)>,
    /// Frames decoded into it, skipped ones included.
    frames: usize,
    /// The frames skipped, by reason.
    skipped: SkipCounts,
    capacity: usize,
}

const _: () = assert!(TCP_FIRST_PAYLOAD_BYTES <= u8::MAX as usize);

impl DecodedBurst {
    /// A burst that is full after `capacity` frames (at least one).
    pub fn new(capacity: usize) -> DecodedBurst {
        let capacity = capacity.max(1);
        DecodedBurst {
            packets: Vec::with_capacity(capacity),
            heads: Vec::with_capacity(capacity),
            frames: 0,
            skipped: SkipCounts::default(),
            capacity,
        }
    }

    /// Decodes a frame into the burst, opening the tunnels `tunnels` names
    /// (a classifier's: [`Classifier::tunnels`]). Returns the skip reason
    /// when the frame is not a TCP/UDP packet (counted in the burst, and in
    /// the classifier's counters when the burst is pushed).
    pub fn decode(
        &mut self,
        raw: &RawPacket<'_>,
        tunnels: &TunnelConfig,
    ) -> Result<(), SkipReason> {
        self.frames += 1;
        match packet::decode_with(raw, tunnels) {
            Ok(p) => {
                self.keep(&p);
                Ok(())
            }
            Err(reason) => {
                self.skipped.add(reason);
                Err(reason)
            }
        }
    }

    /// Frames decoded into it since it was last pushed, skipped ones
    /// included.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Whether `capacity` frames have been decoded into it.
    pub fn is_full(&self) -> bool {
        self.frames >= self.capacity
    }

    /// Keeps a decoded packet. The usual payloads (at least as long as
    /// what is kept) are copied in fixed sizes, without a copy call.
    #[inline]
    fn keep(&mut self, p: &packet::Packet<'_>) {
        let mut head = [0u8; TCP_FIRST_PAYLOAD_BYTES];
        let len = match (p.transport, p.payload.first_chunk::<CSC_BYTES>()) {
            (Transport::Udp, Some(h)) => {
                head[..CSC_BYTES].copy_from_slice(h);
                CSC_BYTES
            }
            (Transport::Tcp, _) if p.payload.len() >= TCP_FIRST_PAYLOAD_BYTES => {
                if let Some(h) = p.payload.first_chunk::<TCP_FIRST_PAYLOAD_BYTES>() {
                    head = *h;
                }
                TCP_FIRST_PAYLOAD_BYTES
            }
            _ => {
                let most = match p.transport {
                    Transport::Tcp => TCP_FIRST_PAYLOAD_BYTES,
                    Transport::Udp => CSC_BYTES,
                };
                let n = p.payload.len().min(most);
                for (o, i) in head.iter_mut().zip(&p.payload[..n]) {
                    *o = *i;
                }
                n
            }
        };
        self.heads.push((head, len as u8));
        self.packets.push(p.with_payload(&[]));
    }

    /// Packet `i`, its kept payload bytes in place.
    #[inline]
    fn packet(&self, i: usize) -> Option<packet::Packet<'_>> {
        let p = self.packets.get(i)?;
        let (head, len) = self.heads.get(i)?;
        Some(p.with_payload(head.get(..usize::from(*len)).unwrap_or(&[])))
    }

    /// Empties the burst without pushing it.
    pub(crate) fn clear(&mut self) {
        self.packets.clear();
        self.heads.clear();
        self.frames = 0;
        self.skipped = SkipCounts::default();
    }
}

/// Flows an expiry pass, or the end of a run, ends at a time before it
/// makes their records (project: bounds what the pass holds besides the
/// records; any size gives the same records).
const ENDED_BATCH: usize = 256;

/// Seconds of capture time between two idle-expiry passes.
pub(crate) const EXPIRY_INTERVAL_MICROS: i64 = 1_000_000;

impl Classifier {
    /// A classifier with `model` and default flow-table settings.
    pub fn new(model: Model) -> Self {
        Self::with_table(model, FlowTableConfig::default())
    }

    /// A classifier with explicit flow-table settings.
    pub fn with_table(model: Model, table: FlowTableConfig) -> Self {
        let method = Method::new(model);
        let endpoints = EndpointTable::new(&method.config);
        let tunnels = table.tunnels.clone();
        Classifier {
            tunnels,
            method,
            table: FlowTable::new(table),
            endpoints,
            recent_ended: std::collections::VecDeque::new(),
            events: Vec::with_capacity(16),
            stats: RunStats::default(),
            last_expiry: Timestamp(i64::MIN),
            endpoint_log: None,
            frame_seq: 0,
            keep_evidence: false,
            last: (Label::Undecided, None),
            pool: StatePool::default(),
            ended_here: Vec::new(),
            first_message_form: true,
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

    /// For tests: every flow keeps a feature block from its first packet on
    /// (no first-message form), to check that the form changes no event.
    #[doc(hidden)]
    pub fn keep_feature_blocks(&mut self, keep: bool) {
        self.first_message_form = !keep;
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
        &self.method.model
    }

    /// Counters so far.
    pub fn stats(&self) -> RunStats {
        let mut s = self.stats;
        s.peak_flows = self.table.peak() as u64;
        s
    }

    /// What the classifier holds in memory now, by part (walks the flow
    /// table: for reports, not for every packet).
    pub fn memory_use(&self) -> MemoryUse {
        let mut m = MemoryUse {
            flows: self.table.len(),
            table: self.table.heap_bytes(),
            endpoints: self.endpoints.heap_bytes(),
            endpoint_count: self.endpoints.len(),
            endpoint_full: self.endpoints.full_len(),
            recent_and_events: self.recent_ended.capacity() * std::mem::size_of::<FlowRecord>()
                + self.events.capacity() * std::mem::size_of::<Event>()
                + self
                    .events
                    .iter()
                    .filter(|e| matches!(e, Event::FlowEnded(_) | Event::Revised(_)))
                    .count()
                    * std::mem::size_of::<FlowRecord>(),
            ..MemoryUse::default()
        };
        for s in self.table.states() {
            match &s.0 {
                StateInner::First(_) => {
                    m.open += 1;
                    m.one_message += 1;
                }
                StateInner::Open(_) => {
                    m.open += 1;
                    m.features += std::mem::size_of::<OpenState>();
                }
                StateInner::Final(f) => {
                    if f.evidence.is_some() {
                        m.evidence += std::mem::size_of::<FlowEvidence>();
                    }
                }
            }
        }
        m
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

    /// The verdict label of the flow of the last frame pushed, as it stands
    /// after that frame: what a firewall acts on for the frame
    /// (`Undecided` for a frame that was skipped).
    #[inline]
    pub fn last_label(&self) -> Label {
        self.last.0
    }

    /// The Skype kind of the flow of the last frame pushed, when Skype.
    #[inline]
    pub fn last_kind(&self) -> Option<Kind> {
        self.last.1
    }

    /// Pushes one frame; events go to the buffer ([`Classifier::drain_events`]).
    /// Returns the skip reason when the frame was not a TCP/UDP packet.
    pub fn push(&mut self, raw: &RawPacket<'_>) -> Result<(), SkipReason> {
        self.stats.frames += 1;
        self.last = (Label::Undecided, None);
        // The common case straight from its view of the frame, the rest
        // (and what may be a tunnel) through the general decoder.
        let decoded = match crate::wire::link::network_of(raw.link_type, raw.data) {
            Ok(crate::wire::link::Network::Ip(ip)) => {
                packet::decode_network(raw.ts, ip, &self.tunnels)
            }
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
            // Decode, hash and prefetch the index entries; then the later
            // stages ([`Classifier::push_group`]).
            let mut decoded = [None; BURST_GROUP];
            for (raw, d) in group.iter().zip(decoded.iter_mut()) {
                self.stats.frames += 1;
                match packet::decode_with(raw, &self.tunnels) {
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
            self.push_group(&decoded);
        }
        skipped
    }

    /// The tunnels this classifier opens (what [`DecodedBurst::decode`]
    /// needs).
    pub fn tunnels(&self) -> &TunnelConfig {
        &self.tunnels
    }

    /// Pushes the packets of a [`DecodedBurst`], in order, as
    /// [`Classifier::push_burst`] pushes frames (the same events as one by
    /// one), and empties it.
    pub fn push_decoded_burst(&mut self, burst: &mut DecodedBurst) {
        self.stats.frames += burst.frames as u64;
        self.stats.skipped.merge(&burst.skipped);
        for start in (0..burst.packets.len()).step_by(BURST_GROUP) {
            let mut decoded = [None; BURST_GROUP];
            for (i, d) in (start..).zip(decoded.iter_mut()) {
                if let Some(p) = burst.packet(i) {
                    let lookup = self.table.lookup(&p);
                    self.table.prefetch_index(&lookup);
                    *d = Some((p, lookup));
                }
            }
            self.push_group(&decoded);
        }
        burst.clear();
    }

    /// The later stages of a burst's group, its packets decoded and their
    /// index entries prefetched: read the index and prefetch the slots;
    /// then read the slots and prefetch the features and the endpoints;
    /// then account the packets. Each stage works on the whole group, so
    /// the memory reads of one stage have the others' work to arrive
    /// behind.
    #[inline]
    fn push_group(&mut self, decoded: &[Option<(packet::Packet<'_>, FlowLookup)>; BURST_GROUP]) {
        let mut slots = [None; BURST_GROUP];
        for (d, s) in decoded.iter().zip(slots.iter_mut()) {
            if let Some((_, lookup)) = d {
                *s = self.table.prefetch_slot(lookup);
            }
        }
        let endpoint = &self.method.config.endpoint;
        for (d, s) in decoded.iter().zip(slots.iter()) {
            let Some((p, lookup)) = d else {
                continue;
            };
            // Packets already counted in the flow, this direction (none
            // for a new flow).
            let mut before = 0;
            if let Some((state, direction, counters)) =
                s.and_then(|slot| self.table.entry_at(slot, lookup))
            {
                before = counters.packets[direction.index()];
                if let FlowState(StateInner::Open(open)) = state {
                    // The head every packet reads, and its direction's
                    // block.
                    crate::flow::prefetch_lines(&**open, std::mem::offset_of!(OpenState, dirs));
                    let d = &open.dirs[direction.index()];
                    crate::flow::prefetch_lines(d, std::mem::size_of::<DirState>());
                }
            }
            // A message step 5 will give to its two endpoints: their
            // entries read now, their states prefetched.
            if endpoint.enabled
                && p.transport == Transport::Udp
                && p.payload.len() >= 3
                && before < endpoint.max_messages_per_flow
            {
                let (a, b) = packet_endpoints(p);
                self.endpoints.prefetch(&a);
                self.endpoints.prefetch(&b);
            }
        }
        for (p, lookup) in decoded.iter().flatten() {
            self.push_decoded(p, lookup);
        }
    }

    /// Pushes a packet that a reader decoded ([`PacketRecord::of`]), with
    /// the tunnel that carried it: what [`Classifier::push`] does after
    /// decoding, with `seq` its frame number in the capture (for the
    /// endpoint log).
    pub fn push_record(&mut self, r: &PacketRecord, tunnel: Option<Tunnel>, seq: u64) {
        self.stats.frames += 1;
        self.frame_seq = seq;
        let mut p = r.packet();
        p.tunnel = tunnel;
        let lookup = self.table.lookup(&p);
        self.push_decoded(&p, &lookup);
    }

    #[inline]
    fn push_decoded(&mut self, p: &packet::Packet<'_>, lookup: &FlowLookup) {
        self.stats.packets += 1;
        if let Some(t) = &p.tunnel {
            self.stats.tunneled.add(t.kind, p.payload_len);
        }
        if p.ts.0.saturating_sub(self.last_expiry.0) >= EXPIRY_INTERVAL_MICROS {
            self.last_expiry = p.ts;
            self.expire(p.ts);
        }
        let Classifier {
            method,
            table,
            events,
            recent_ended,
            endpoints,
            stats,
            endpoint_log,
            frame_seq,
            keep_evidence,
            last,
            pool,
            ended_here,
            first_message_form,
            ..
        } = self;
        // Step 1: the flow.
        let update = table.update_with(p, lookup, FlowState::new_flow, &mut |f| ended_here.push(f));
        if update.new_flow {
            stats.flows += 1;
        }
        let (key, counters, direction, state) =
            (update.key, update.counters, update.direction, update.state);
        // A message (or what step 2 may count) for a flow of at most one
        // so far: its block, the first message replayed into it.
        if p.payload_len > 0 || !p.payload.is_empty() {
            state.open_up(p.transport, method, pool);
        }
        // Step 2: what an endpoint's verdict asks of the flow.
        if let Some(func) = state.func_mut() {
            func.count(p, method.known, &method.tests);
        }
        // Steps 3 and 4: features, tests, verdict.
        judge_packet(
            state,
            p,
            key,
            counters,
            direction,
            method,
            *keep_evidence,
            events,
            pool,
        );
        // Step 5: endpoints.
        if method.config.endpoint.enabled {
            let mut ctx = EndpointContext {
                endpoints,
                recent_ended,
                events,
                log: endpoint_log.as_mut(),
                seq: *frame_seq,
                method,
                pool,
            };
            let early =
                counters.packets[direction.index()] <= method.config.endpoint.max_messages_per_flow;
            if p.transport == Transport::Udp && p.payload.len() >= 3 && early {
                ctx.observe(p, counters, direction, state.func());
            } else {
                ctx.log_timing(p, counters, state);
            }
            ctx.give_verdict(p, key, counters, state);
        }
        // A flow whose one message decided nothing gives its block back.
        if *first_message_form {
            if let Some(b) = state.close_down(p, direction, counters) {
                pool.give(b);
            }
        }
        let v = state.verdict();
        *last = (v.label, v.kind);
        if !ended_here.is_empty() {
            let mut ended = std::mem::take(ended_here);
            for f in ended.drain(..) {
                self.finish(f);
            }
            self.ended_here = ended;
        }
    }

    /// Ends idle flows as of `now` (also done by `push` once per second of
    /// capture time).
    pub fn expire(&mut self, now: Timestamp) {
        while self.expire_some(now, ENDED_BATCH) == ENDED_BATCH {}
    }

    /// Ends at most `max` of the flows [`Classifier::expire`] ends (in the
    /// same order), through the one buffer the packets' own ended flows
    /// use: a pass that ends many flows at once (short flows going idle
    /// together) holds a batch of them, not all. Returns the flows ended.
    fn expire_some(&mut self, now: Timestamp, max: usize) -> usize {
        let mut ended = std::mem::take(&mut self.ended_here);
        let n = self.table.expire_up_to(now, max, &mut |f| ended.push(f));
        for f in ended.drain(..) {
            self.finish(f);
        }
        self.ended_here = ended;
        n
    }

    /// Ends every open flow (end of capture): their records are in the
    /// events. Flows already idle past their timeout at the last packet's
    /// time end as idle, the others as `capture_end`.
    pub fn finish_all(&mut self) {
        let now = self.table.now();
        self.finish_all_at(now);
    }

    /// [`Classifier::finish_all`] at the time `now` (a shard of a
    /// multi-threaded run ends at the capture's last packet, not its own).
    pub fn finish_all_at(&mut self, now: Timestamp) {
        while self.finish_some_at(now, ENDED_BATCH) > 0 {}
    }

    /// [`Classifier::finish_all`] a batch at a time: ends at most `max`
    /// flows (those idle past their timeout first, as idle, then the others
    /// as the capture's end, in the order `finish_all` ends them) and
    /// returns how many; 0 when none is left. Drain the events between two
    /// calls: a table of a million flows then never makes a million events
    /// (and their records) at once.
    pub fn finish_some(&mut self, max: usize) -> usize {
        let now = self.table.now();
        self.finish_some_at(now, max)
    }

    /// [`Classifier::finish_some`] as of `now`: the idle flows first, as
    /// [`Classifier::expire`] ends them, then the others.
    fn finish_some_at(&mut self, now: Timestamp, max: usize) -> usize {
        let mut n = 0;
        if now.0 > i64::MIN {
            n += self.expire_some(now, max);
        }
        if n < max {
            let mut ended = std::mem::take(&mut self.ended_here);
            n += self.table.drain_up_to(now, max - n, &mut |f| ended.push(f));
            for f in ended.drain(..) {
                self.finish(f);
            }
            self.ended_here = ended;
        }
        n
    }

    /// Revises a record with its endpoints' verdict, if one of them has been
    /// recognised and the flow's own messages agree. Returns whether it
    /// changed. For offline use at the end of a run.
    pub fn revise(&mut self, rec: &mut FlowRecord) -> bool {
        revise_with(rec, &mut self.endpoints)
    }

    /// Revises the records of a whole run ([`revise_records`]) by this
    /// classifier's endpoints.
    pub fn revise_records<R: BorrowMut<FlowRecord>>(&mut self, records: &mut [R]) -> usize {
        revise_records(records, &mut self.endpoints)
    }

    fn finish(&mut self, f: EndedFlow<FlowState>) {
        let mut rec = self.record(&f);
        if let StateInner::Open(b) = f.state.0 {
            self.pool.give(b);
        }
        // An undecided flow whose endpoint is already recognised takes its
        // verdict now (it may have had no packet since the recognition).
        if self.method.config.endpoint.enabled && self.endpoint_log.is_none() {
            revise_with(&mut rec, &mut self.endpoints);
        }
        if may_be_revised(&rec, &self.method.config) {
            if self.recent_ended.len() >= RECENT_ENDED_CAPACITY {
                self.recent_ended.pop_front();
            }
            self.recent_ended.push_back(rec.clone());
        }
        self.events.push(Event::FlowEnded(Box::new(rec)));
    }

    fn record(&self, f: &EndedFlow<FlowState>) -> FlowRecord {
        let EndedFlow {
            key,
            tunnel,
            counters,
            end,
            state,
        } = f;
        let (key, tunnel, counters, end) = (*key, *tunnel, *counters, *end);
        let config = &self.method.config;
        let mut evidence_released = false;
        let mut revised_from = state.revised_from();
        // The directions' states, when judging the flow gave them already.
        let mut states = None;
        // A flow of one message: its block as the message left it.
        let mut replayed = None;
        let open_state = match &state.0 {
            StateInner::First(m) => {
                let open = replayed.insert(OpenState::default());
                m.replay(key.transport, &self.method, open);
                Ok(&*open)
            }
            StateInner::Open(open) => Ok(&**open),
            StateInner::Final(f) => Err(f),
        };
        let (evidence, verdict) = match open_state {
            Err(f) => {
                let ev = match &f.evidence {
                    Some(ev) => **ev,
                    None => {
                        evidence_released = true;
                        FlowEvidence::default()
                    }
                };
                (ev, state.verdict())
            }
            Ok(open) => {
                let ev = open.evidence(key.transport, config, true);
                let judged = if open.may_decide(config) {
                    verdict::judge_flow(&ev, key.transport, config, false)
                } else {
                    verdict::undecided_judgement()
                };
                states = Some(judged.states);
                let own = judged.verdict;
                // The flow's own evidence first, then an endpoint's verdict.
                let mut v = match own.label {
                    Label::Skype | Label::NotSkype => own,
                    Label::Undecided => open.verdict,
                };
                if own.label == Label::NotSkype && open.verdict.label == Label::Skype {
                    revised_from = Some(Label::Skype);
                }
                if v.label == Label::Skype && open.verdict.label == Label::Skype {
                    if open.verdict.via == v.via && open.verdict.kind == v.kind {
                        v = open.verdict;
                    } else if v.decided_at_packet.is_none() {
                        v.decided_at_packet = open.verdict.decided_at_packet;
                        v.decided_after_seconds = open.verdict.decided_after_seconds;
                    }
                }
                if v.label != Label::Undecided && v.decided_at_packet.is_none() {
                    v.decided_at_packet = Some(counters.total_packets());
                    v.decided_after_seconds =
                        Some(counters.last_seen.secs_since(counters.first_seen) as f32);
                }
                (ev, v)
            }
        };
        let func = state.func();
        let dir = |d: Direction| {
            let e = &evidence.directions[d.index()];
            DirectionRecord {
                packets: counters.packets[d.index()],
                payload_bytes: counters.payload_bytes[d.index()],
                evidence: *e,
                csc_first_at_packet: e.csc_first_at.map(u64::from),
                state: (!evidence_released).then(|| match &states {
                    Some(s) => s[d.index()],
                    None => verdict::judge_direction(e, &evidence.rhythm, key.transport, config),
                }),
            }
        };
        let contradiction = match (&states, evidence_released) {
            (_, true) => None,
            (Some(s), false) => verdict::contradiction_in(s),
            (None, false) => verdict::contradiction_of(&evidence, key.transport, config),
        };
        FlowRecord {
            key,
            tunnel,
            first_seen: counters.first_seen,
            last_seen: counters.last_seen,
            end,
            verdict,
            revised_from,
            directions: [dir(Direction::Forward), dir(Direction::Backward)],
            rhythm: evidence.rhythm,
            contradiction,
            func_messages: func.messages,
            known_func: match key.transport {
                Transport::Udp => func.agreeing,
                Transport::Tcp => 0,
            },
            first_payload_random: (key.transport == Transport::Tcp && func.messages > 0)
                .then_some(func.agreeing == 1),
            evidence_released,
        }
    }
}

/// Steps 3 and 4 for one packet: the direction's features and tests, then
/// the flow's verdict, and the events that follow from a change.
#[allow(clippy::too_many_arguments)]
#[inline]
fn judge_packet(
    state: &mut FlowState,
    p: &packet::Packet<'_>,
    key: KeyRef<'_>,
    counters: &FlowCounters,
    direction: Direction,
    method: &Method,
    keep_evidence: bool,
    events: &mut Vec<Event>,
    pool: &mut StatePool,
) {
    let StateInner::Open(open) = &mut state.0 else {
        return;
    };
    let config = &method.config;
    let transport = p.transport;
    let changed = open.observe(direction, Message::of(p), counters.total_packets(), method);
    if !changed {
        return;
    }
    // Nothing that could give a verdict yet: the flow stays undecided.
    if !open.may_decide(config) {
        return;
    }
    let cheap = open.evidence(transport, config, false);
    let judged = verdict::judge_flow(&cheap, transport, config, true);
    let was = open.verdict;
    let decided_now = |mut v: Verdict| {
        v.decided_at_packet = Some(counters.total_packets());
        v.decided_after_seconds = Some(counters.last_seen.secs_since(counters.first_seen) as f32);
        v
    };
    match judged.verdict.label {
        Label::Skype => {
            let own_before = was.label == Label::Skype && was.via == Some(Via::Flow);
            let v = if own_before && was.kind == judged.verdict.kind {
                Verdict {
                    confidence: judged.verdict.confidence,
                    ..was
                }
            } else {
                decided_now(judged.verdict)
            };
            if !own_before || was.kind != v.kind {
                events.push(Event::Verdict {
                    key: key.flow_key(),
                    tunnel: key.tunnel(),
                    verdict: v,
                    evidence: Some(open.evidence(transport, config, true)),
                });
            }
            open.verdict = v;
            // Confirmed over the paper's full window: final.
            let confirmed = cheap.directions.iter().zip(judged.states).any(|(d, s)| {
                d.sampled >= config.verdict.confirm_samples
                    && matches!(s, verdict::DirectionState::Skype(_))
            });
            if confirmed {
                let revised_from = open.revised_from;
                let ev = open.evidence(transport, config, true);
                if let Some(b) = state.finalize(v, revised_from, ev, keep_evidence) {
                    pool.give(b);
                }
            }
        }
        Label::NotSkype if judged.settled => {
            let v = decided_now(judged.verdict);
            let revised_from = if was.label == Label::Skype {
                Some(Label::Skype)
            } else {
                open.revised_from
            };
            let ev = open.evidence(transport, config, true);
            events.push(Event::Verdict {
                key: key.flow_key(),
                tunnel: key.tunnel(),
                verdict: v,
                evidence: Some(ev),
            });
            if let Some(b) = state.finalize(v, revised_from, ev, keep_evidence) {
                pool.give(b);
            }
        }
        _ => {}
    }
}

/// Step 5: a UDP message as its two endpoints see it, and an endpoint's
/// verdict for the flow.
struct EndpointContext<'a> {
    endpoints: &'a mut EndpointTable,
    recent_ended: &'a mut std::collections::VecDeque<FlowRecord>,
    events: &'a mut Vec<Event>,
    log: Option<&'a mut Vec<EndpointObservation>>,
    seq: u64,
    method: &'a Method,
    pool: &'a mut StatePool,
}

impl EndpointContext<'_> {
    /// Both UDP endpoints see the message (or the shard's log does); an
    /// endpoint recognised now revises the remembered undecided flows.
    fn observe(
        &mut self,
        p: &packet::Packet<'_>,
        counters: &FlowCounters,
        direction: Direction,
        agreement: FlowAgreement,
    ) {
        let (local_fwd, remote_fwd) = packet_endpoints(p);
        let first_from_src = counters.packets[direction.index()] == 1;
        let first_at_dst = counters.packets[1 - direction.index()] == 0 && first_from_src;
        for (local, remote, first) in [
            (local_fwd, remote_fwd, first_from_src),
            (remote_fwd, local_fwd, first_at_dst),
        ] {
            if let Some(log) = self.log.as_mut() {
                let mut head = [0u8; 8];
                let len = p.payload.len().min(8);
                head[..len].copy_from_slice(&p.payload[..len]);
                log.push(EndpointObservation {
                    seq: self.seq,
                    ts: p.ts,
                    local,
                    remote,
                    first,
                    head,
                    len: len as u8,
                    observed: true,
                    transport: Transport::Udp,
                    flow_packets: counters.total_packets().min(u64::from(u32::MAX)) as u32,
                    flow_messages: agreement.messages,
                    flow_agreeing: agreement.agreeing,
                });
                continue;
            }
            if self
                .endpoints
                .observe(p.ts, local, remote, first, p.payload)
            {
                self.events.push(Event::EndpointRecognised(local));
                let n = revise_records(self.recent_ended.make_contiguous(), self.endpoints);
                if n > 0 {
                    for rec in self.recent_ended.iter() {
                        if rec.verdict.via == Some(Via::Endpoint) {
                            self.events.push(Event::Revised(Box::new(rec.clone())));
                        }
                    }
                }
                self.recent_ended
                    .retain(|r| r.verdict.label == Label::Undecided);
            }
        }
    }

    /// Logs a packet of an undecided open flow whose own messages agree
    /// (where [`EndpointContext::give_verdict`] may act), for the replay to
    /// know when its endpoints would have given it their verdict.
    fn log_timing(&mut self, p: &packet::Packet<'_>, counters: &FlowCounters, state: &FlowState) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if matches!(state.0, StateInner::Final(_))
            || state.verdict().label != Label::Undecided
            || !state
                .func()
                .agrees(p.transport, &self.method.config.endpoint)
        {
            return;
        }
        let (local, remote) = packet_endpoints(p);
        let agreement = state.func();
        log.push(EndpointObservation {
            seq: self.seq,
            ts: p.ts,
            local,
            remote,
            first: false,
            head: [0; 8],
            len: 0,
            observed: false,
            transport: p.transport,
            flow_packets: counters.total_packets().min(u64::from(u32::MAX)) as u32,
            flow_messages: agreement.messages,
            flow_agreeing: agreement.agreeing,
        });
    }

    /// An undecided open flow takes the verdict of a recognised endpoint
    /// (UDP: one of its ends; TCP: an end that is a recognised client's port
    /// or one of its Skype peers) when its own messages agree; a flow
    /// decided on its own evidence (Skype or not) keeps its own verdict.
    fn give_verdict(
        &mut self,
        p: &packet::Packet<'_>,
        key: KeyRef<'_>,
        counters: &FlowCounters,
        state: &mut FlowState,
    ) {
        if matches!(state.0, StateInner::Final(_))
            || state.verdict().label != Label::Undecided
            || !state
                .func()
                .agrees(p.transport, &self.method.config.endpoint)
        {
            return;
        }
        let (a, b) = packet_endpoints(p);
        let kind = match p.transport {
            Transport::Udp
                if self.endpoints.is_recognised(&a) || self.endpoints.is_recognised(&b) =>
            {
                for (x, y) in [(a, b), (b, a)] {
                    if self.endpoints.is_recognised(&x) {
                        self.endpoints.add_skype_peer(x, y);
                    }
                }
                Kind::Signalling
            }
            Transport::Tcp if self.endpoints.ties_tcp(&a, &b) => Kind::Tcp,
            _ => return,
        };
        let Some(open) = state.open_up(p.transport, self.method, self.pool) else {
            return;
        };
        let v = Verdict {
            label: Label::Skype,
            kind: Some(kind),
            confidence: open.func.confidence(p.transport),
            decided_at_packet: Some(counters.total_packets()),
            decided_after_seconds: Some(counters.last_seen.secs_since(counters.first_seen) as f32),
            via: Some(Via::Endpoint),
        };
        open.verdict = v;
        self.events.push(Event::Verdict {
            key: key.flow_key(),
            tunnel: key.tunnel(),
            verdict: v,
            evidence: None,
        });
    }
}

/// The packet's source and destination as UDP endpoints.
fn packet_endpoints(p: &packet::Packet<'_>) -> (EndpointKey, EndpointKey) {
    (
        EndpointKey {
            ip: p.src_ip,
            port: p.src_port,
        },
        EndpointKey {
            ip: p.dst_ip,
            port: p.dst_port,
        },
    )
}

/// Whether an endpoint recognised after this flow ended may still revise
/// its record ([`Event::Revised`]): the flow is undecided and its own
/// messages agree with Skype's.
pub fn may_be_revised(rec: &FlowRecord, config: &MethodConfig) -> bool {
    rec.verdict.label == Label::Undecided
        && FlowAgreement::of(rec).agrees(rec.key.transport, &config.endpoint)
}

/// Revises one record by the endpoints' verdicts: an undecided UDP flow
/// with a recognised end takes its verdict when its own messages agree (and
/// its other end becomes a Skype peer); an undecided TCP flow tied to a
/// client ([`EndpointTable::ties_tcp`]) when its first payload was random.
/// Returns whether it changed.
pub fn revise_with(rec: &mut FlowRecord, endpoints: &mut EndpointTable) -> bool {
    let (a, b) = record_endpoints(rec);
    let tied = match rec.key.transport {
        Transport::Udp => endpoints.is_recognised(&a) || endpoints.is_recognised(&b),
        Transport::Tcp => endpoints.ties_tcp(&a, &b),
    };
    let changed = tied && apply_endpoint(rec, endpoints.config());
    if rec.key.transport == Transport::Udp
        && rec.verdict.label == Label::Skype
        && rec.verdict.via == Some(Via::Endpoint)
    {
        for (x, y) in [(a, b), (b, a)] {
            if endpoints.is_recognised(&x) {
                endpoints.add_skype_peer(x, y);
            }
        }
    }
    changed
}

/// Revises the records of a run by its endpoints' verdicts: the UDP flows
/// first (whose agreeing flows make their peers Skype peers), then the TCP
/// flows tied to a client or a peer. Returns the records changed.
pub fn revise_records<R: BorrowMut<FlowRecord>>(
    records: &mut [R],
    endpoints: &mut EndpointTable,
) -> usize {
    let mut n = 0;
    for transport in [Transport::Udp, Transport::Tcp] {
        for r in records.iter_mut().map(|r| r.borrow_mut()) {
            if r.key.transport == transport {
                n += usize::from(revise_with(r, endpoints));
            }
        }
    }
    n
}

/// A record's two ends.
fn record_endpoints(rec: &FlowRecord) -> (EndpointKey, EndpointKey) {
    (
        EndpointKey {
            ip: rec.key.src_ip,
            port: rec.key.src_port,
        },
        EndpointKey {
            ip: rec.key.dst_ip,
            port: rec.key.dst_port,
        },
    )
}

/// Replays logged endpoint observations (from every shard) in capture order
/// into a fresh endpoint table.
pub fn replay_endpoints(mut log: Vec<EndpointObservation>, config: &MethodConfig) -> EndpointTable {
    log.sort_by_key(|o| (o.seq, o.ts));
    let mut t = EndpointTable::new(config);
    for o in log.iter().filter(|o| o.observed) {
        t.observe(o.ts, o.local, o.remote, o.first, o.payload());
    }
    t
}

/// What a run's endpoints do to its records, as one streaming classifier
/// would have done it: the logged observations are replayed in capture
/// order, and an undecided flow whose logged packet finds one of its ends
/// recognised (UDP), or tied to a recognised client (TCP), takes the
/// endpoint's verdict at that packet (its `decided_at_packet` and
/// `decided_after_seconds` are that packet's), when its own messages so
/// far agree. The flows left undecided are then revised at the end of the
/// run ([`revise_records`]). Returns the endpoint table.
pub fn replay_and_revise(
    records: &mut [FlowRecord],
    mut log: Vec<EndpointObservation>,
    config: &MethodConfig,
) -> EndpointTable {
    log.sort_by_key(|o| (o.seq, o.ts));
    let mut table = EndpointTable::new(config);
    // The records an endpoint may act on, by their two ends: the undecided
    // ones whose own messages agree (they take its verdict), and those
    // called not Skype on their own evidence (an endpoint's verdict before
    // that is the Skype verdict it contradicted, their `revised_from`).
    let mut candidates: HashMap<(Transport, EndpointKey, EndpointKey), Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let undecided = r.verdict.label == Label::Undecided
            && FlowAgreement::of(r).agrees(r.key.transport, &config.endpoint);
        let contradicted = r.verdict.label == Label::NotSkype
            && r.verdict.via == Some(Via::Flow)
            && r.revised_from.is_none();
        if undecided || contradicted {
            let (a, b) = record_endpoints(r);
            candidates
                .entry((r.key.transport, a.min(b), a.max(b)))
                .or_default()
                .push(i);
        }
    }
    for o in &log {
        if o.observed {
            table.observe(o.ts, o.local, o.remote, o.first, o.payload());
        }
        let transport = o.transport;
        let so_far = FlowAgreement {
            messages: o.flow_messages,
            agreeing: o.flow_agreeing,
        };
        if !so_far.agrees(transport, &config.endpoint) {
            continue;
        }
        let ends = (transport, o.local.min(o.remote), o.local.max(o.remote));
        let Some(list) = candidates.get(&ends) else {
            continue;
        };
        // The flow of this packet: the one whose time span holds it.
        let Some(&i) = list.iter().find(|&&i| {
            records
                .get(i)
                .is_some_and(|r| r.first_seen <= o.ts && o.ts <= r.last_seen)
        }) else {
            continue;
        };
        let Some(r) = records.get_mut(i) else {
            continue;
        };
        let open = match r.verdict.label {
            Label::Undecided => true,
            // Not yet contradicted at this packet, and not yet revised.
            Label::NotSkype => {
                r.revised_from.is_none()
                    && r.verdict
                        .decided_at_packet
                        .is_some_and(|n| u64::from(o.flow_packets) < n)
            }
            Label::Skype => false,
        };
        if !open {
            continue;
        }
        let kind = match transport {
            Transport::Udp if table.is_recognised(&o.local) || table.is_recognised(&o.remote) => {
                for (x, y) in [(o.local, o.remote), (o.remote, o.local)] {
                    if table.is_recognised(&x) {
                        table.add_skype_peer(x, y);
                    }
                }
                Kind::Signalling
            }
            Transport::Tcp if table.ties_tcp(&o.local, &o.remote) => Kind::Tcp,
            _ => continue,
        };
        if r.verdict.label == Label::NotSkype {
            r.revised_from = Some(Label::Skype);
            continue;
        }
        r.verdict = Verdict {
            label: Label::Skype,
            kind: Some(kind),
            confidence: so_far.confidence(transport),
            decided_at_packet: Some(u64::from(o.flow_packets)),
            decided_after_seconds: Some(o.ts.secs_since(r.first_seen) as f32),
            via: Some(Via::Endpoint),
        };
    }
    revise_records(records, &mut table);
    table
}

/// Applies an endpoint's Skype verdict to the record of an undecided flow
/// whose own messages agree. A flow decided on its own evidence, Skype or
/// not, keeps its verdict.
fn apply_endpoint(rec: &mut FlowRecord, cfg: &crate::config::EndpointConfig) -> bool {
    let agreement = FlowAgreement::of(rec);
    let transport = rec.key.transport;
    if rec.verdict.label != Label::Undecided || !agreement.agrees(transport, cfg) {
        return false;
    }
    rec.revised_from = Some(rec.verdict.label);
    rec.verdict = Verdict {
        label: Label::Skype,
        kind: Some(match transport {
            Transport::Udp => Kind::Signalling,
            Transport::Tcp => Kind::Tcp,
        }),
        confidence: agreement.confidence(transport),
        decided_at_packet: Some(rec.packets()),
        decided_after_seconds: Some(rec.last_seen.secs_since(rec.first_seen) as f32),
        via: Some(Via::Endpoint),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::Rng;
    use std::net::{IpAddr, Ipv4Addr};

    /// Kept in its first-message form, a flow's one message replays to
    /// the block it left, every field (features, tests' states, counts of
    /// step 2): random, structured and Skype-like heads, truncated captures,
    /// both transports and directions, with and without a head judged by
    /// the reader.
    #[test]
    fn a_first_message_replays_to_the_block_it_left() {
        let method = Method::new(Model::default_model().expect("the shipped model loads"));
        let known = method.config.dft.func_known.clone();
        let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
        let (mut kept, mut with_message) = (0, 0);
        for i in 0..20_000u32 {
            let transport = if rng.below(2) == 0 {
                Transport::Udp
            } else {
                Transport::Tcp
            };
            let captured = rng.below(24) as usize;
            let mut payload: Vec<u8> = (0..captured).map(|_| rng.next_u64() as u8).collect();
            match rng.below(3) {
                0 => payload.iter_mut().for_each(|b| *b &= 0x0F),
                1 if captured > 2 && !known.is_empty() => {
                    payload[2] = known[rng.below(known.len() as u64) as usize];
                }
                _ => {}
            }
            // The length on the wire: what was captured, or more (snap).
            let payload_len = captured as u32 + (rng.below(3) as u32) * rng.below(1500) as u32;
            let direction = if rng.below(2) == 0 {
                Direction::Forward
            } else {
                Direction::Backward
            };
            let random_head = match rng.below(3) {
                0 => None,
                1 => Some(true),
                _ => Some(false),
            };
            let ts = Timestamp(1_700_000_000_000_000 + i64::from(i) * 1_000);
            let p = packet::Packet {
                ts,
                src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
                dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
                src_port: 40_000,
                dst_port: 443,
                transport,
                payload: &payload,
                payload_len,
                tcp_flags: Default::default(),
                random_head,
                tunnel: None,
            };
            // The live path of a flow's first packet: a block in its
            // initial state, step 2, step 3.
            let mut live = OpenState::default();
            live.func.count(&p, method.known, &method.tests);
            live.observe(direction, Message::of(&p), 1, &method);
            let mut counters = FlowCounters {
                first_seen: ts,
                last_seen: ts,
                packets: [0; 2],
                payload_bytes: [0; 2],
            };
            counters.packets[direction.index()] = 1;
            counters.payload_bytes[direction.index()] = u64::from(payload_len);
            let Some(m) = FirstMessage::of_quiet(&live, &p, direction, &counters) else {
                continue;
            };
            kept += 1;
            with_message += usize::from(m.payload_len > 0);
            let mut replayed = OpenState::default();
            m.replay(transport, &method, &mut replayed);
            assert_eq!(replayed, live, "message {i}: {p:?}");
            // A second message, or an earlier one, and the form is refused.
            counters.payload_bytes[1 - direction.index()] = 1;
            assert!(FirstMessage::of_quiet(&live, &p, direction, &counters).is_none());
        }
        // One message decides nothing: every flow takes the form.
        assert_eq!(kept, 20_000);
        assert!(with_message > 15_000, "{with_message}");
    }

    /// A flow with a verdict (an endpoint's) keeps its block.
    #[test]
    fn a_flow_with_a_verdict_keeps_its_block() {
        let method = Method::new(Model::default_model().expect("the shipped model loads"));
        let payload = [0u8; 8];
        let p = packet::Packet {
            ts: Timestamp(1),
            src_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst_ip: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            src_port: 1,
            dst_port: 2,
            transport: Transport::Udp,
            payload: &payload,
            payload_len: 8,
            tcp_flags: Default::default(),
            random_head: None,
            tunnel: None,
        };
        let mut open = OpenState::default();
        open.observe(Direction::Forward, Message::of(&p), 1, &method);
        let counters = FlowCounters {
            first_seen: Timestamp(1),
            last_seen: Timestamp(1),
            packets: [1, 0],
            payload_bytes: [8, 0],
        };
        assert!(FirstMessage::of_quiet(&open, &p, Direction::Forward, &counters).is_some());
        open.verdict.label = Label::Skype;
        assert!(FirstMessage::of_quiet(&open, &p, Direction::Forward, &counters).is_none());
        open.verdict = Verdict::default();
        open.revised_from = Some(Label::Skype);
        assert!(FirstMessage::of_quiet(&open, &p, Direction::Forward, &counters).is_none());
    }
}
