//! The verdict: combines the chi-square class, the header check and the
//! rhythm test of each direction into one answer per flow (method.md §5).
//!
//! A direction is Skype when a signature holds (the CSC's groups and, for
//! UDP, the header check) AND the rhythm test says media; it is
//! contradicted when the rhythm test says other or every signature of its
//! transport is contradicted (a group that must be random is structured,
//! the FUNC byte is not Skype's, the prefix is not constant). A flow is
//! Skype when either direction is (TCP: when both carry the call). Too few
//! messages are "undecided", never "not_skype".

use serde::{Deserialize, Serialize};

use crate::config::{MethodConfig, CSC_GROUPS};
use crate::csc::{ChiSquareSignature, CscClass, CscState, SignatureState};
use crate::dft::{DftClass, HeaderJudgement};
use crate::nbc::{NbcDecision, NbcScore};
use crate::packet::Transport;

/// The answer for a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// Classic Skype.
    Skype,
    /// Judged, and not Skype.
    NotSkype,
    /// Too little traffic to judge.
    #[default]
    Undecided,
}

impl Label {
    /// "skype", "not_skype" or "undecided".
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Skype => "skype",
            Label::NotSkype => "not_skype",
            Label::Undecided => "undecided",
        }
    }
}

/// Which kind of Skype traffic.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// End-to-end UDP voice/video between clients.
    E2e,
    /// End-to-out UDP (SkypeOut) to a phone gateway.
    E2o,
    /// Skype over TCP.
    Tcp,
    /// Signalling, recognised at the client's endpoint.
    Signalling,
}

impl Kind {
    /// Snake-case name for records.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::E2e => "e2e",
            Kind::E2o => "e2o",
            Kind::Tcp => "tcp",
            Kind::Signalling => "signalling",
        }
    }

    /// The kind of a CSC class (None for no signature).
    pub fn of(class: CscClass) -> Option<Kind> {
        match class {
            CscClass::E2e => Some(Kind::E2e),
            CscClass::E2o => Some(Kind::E2o),
            CscClass::Tcp => Some(Kind::Tcp),
            CscClass::None => None,
        }
    }
}

/// Where a verdict came from.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Via {
    /// The flow's own evidence.
    Flow,
    /// The evidence of one of its UDP endpoints (issue 8).
    Endpoint,
}

impl Via {
    /// "flow" or "endpoint".
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Flow => "flow",
            Via::Endpoint => "endpoint",
        }
    }
}

/// A flow's verdict with its confidence and timing.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Verdict {
    /// The answer.
    pub label: Label,
    /// The kind of Skype, when Skype.
    pub kind: Option<Kind>,
    /// In [0, 1]: how sure, from both classifiers (0 when undecided).
    pub confidence: f64,
    /// The flow's packet count when the verdict was first reached (for
    /// "skype": the first packet at which every condition held).
    pub decided_at_packet: Option<u64>,
    /// Seconds from the flow's first packet to the decision.
    pub decided_after_seconds: Option<f32>,
    /// Where it came from.
    pub via: Option<Via>,
}

/// The evidence of one direction, as the verdict reads it.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DirectionEvidence {
    /// Messages (packets with payload).
    pub messages: u32,
    /// The CSC's class: the chi-square signature that holds now (without
    /// the header check), else none.
    pub csc: CscClass,
    /// The groups called structured, and group 5's fixed bit.
    pub groups: CscState,
    /// The DFT class.
    pub dft: DftClass,
    /// The header rules and their contradictions.
    pub header: HeaderJudgement,
    /// The rhythm test.
    pub nbc: NbcScore,
    /// Messages sampled by the CSC, all windows.
    pub sampled: u32,
    /// Messages sampled in the window the chi2 values come from.
    pub window_sampled: u32,
    /// The chi2 values of the latest window.
    pub chi2: [f32; CSC_GROUPS],
    /// Flow packet count when a chi-square signature first held.
    pub csc_first_at: Option<u32>,
    /// More than `video_share` of the direction's messages are in a video
    /// band (method.md §5).
    pub video: bool,
}

/// The evidence of a flow: its two directions (forward, backward) and the
/// rhythm test over the windows of both (a call's rhythm goes both ways, so
/// both directions' windows are evidence about the flow: at 60 ms frames a
/// window takes 1.8 s, and one from each direction decides about twice as
/// soon as one direction alone).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FlowEvidence {
    /// Forward (initiator to responder) and backward.
    pub directions: [DirectionEvidence; 2],
    /// The rhythm test over both directions' windows.
    pub rhythm: NbcScore,
}

/// The logistic function.
fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// What contradicts Skype in a direction.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contradiction {
    /// The rhythm test rejected the rhythm: not a call's.
    Rhythm,
    /// A group that the signatures need random is structured.
    Structure {
        /// The first such group.
        group: u8,
    },
    /// The FUNC byte is not Skype's.
    FuncByte,
    /// The 4-byte prefix is not a constant connection ID.
    Prefix,
}

impl Contradiction {
    /// A short code for records: "rhythm", "group_N", "func_byte", "prefix".
    pub fn as_str(self) -> &'static str {
        const GROUPS: [&str; CSC_GROUPS] = [
            "group_0", "group_1", "group_2", "group_3", "group_4", "group_5", "group_6", "group_7",
            "group_8", "group_9", "group_10", "group_11", "group_12", "group_13", "group_14",
            "group_15",
        ];
        match self {
            Contradiction::Rhythm => "rhythm",
            Contradiction::Structure { group } => GROUPS[usize::from(group) % CSC_GROUPS],
            Contradiction::FuncByte => "func_byte",
            Contradiction::Prefix => "prefix",
        }
    }
}

/// The state of one direction for the verdict.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectionState {
    /// Every condition of a signature holds, and the rhythm is a call's.
    Skype(Kind),
    /// The evidence contradicts every Skype signature of the transport, or
    /// the rhythm.
    Contradicted(Contradiction),
    /// Not enough evidence either way.
    Pending,
}

impl DirectionState {
    /// "skype", "contradicted" or "pending".
    pub fn as_str(self) -> &'static str {
        match self {
            DirectionState::Skype(_) => "skype",
            DirectionState::Contradicted(_) => "contradicted",
            DirectionState::Pending => "pending",
        }
    }

    /// The contradiction, when contradicted.
    pub fn contradiction(self) -> Option<Contradiction> {
        match self {
            DirectionState::Contradicted(c) => Some(c),
            _ => None,
        }
    }
}

/// The signatures a transport's directions are tested for, in the order
/// they are tried.
pub(crate) fn signatures(transport: Transport) -> &'static [ChiSquareSignature] {
    match transport {
        Transport::Udp => &[ChiSquareSignature::E2o, ChiSquareSignature::E2e],
        Transport::Tcp => &[ChiSquareSignature::Tcp],
    }
}

/// Where a signature stands for a direction, the header check included
/// (for UDP, when the configuration requires it), with the reason when
/// contradicted.
pub(crate) fn signature_state(
    sig: ChiSquareSignature,
    e: &DirectionEvidence,
    config: &MethodConfig,
) -> (SignatureState, Option<Contradiction>) {
    let csc = sig.state(&e.groups, e.sampled, &config.csc);
    if let Some(g) = sig.contradicting_group(&e.groups) {
        return (
            SignatureState::Contradicted,
            Some(Contradiction::Structure { group: g as u8 }),
        );
    }
    let (header_holds, header_contradiction) = match sig {
        ChiSquareSignature::E2e => (
            e.header.e2e,
            e.header
                .func_contradicted
                .then_some(Contradiction::FuncByte),
        ),
        ChiSquareSignature::E2o => (
            e.header.e2o,
            e.header
                .prefix_contradicted
                .then_some(Contradiction::Prefix),
        ),
        ChiSquareSignature::Tcp => (true, None),
    };
    if !config.verdict.require_dft_for_udp {
        return (csc, None);
    }
    if let Some(c) = header_contradiction {
        return (SignatureState::Contradicted, Some(c));
    }
    match csc {
        SignatureState::Holds if !header_holds => (SignatureState::Pending, None),
        s => (s, None),
    }
}

/// The signature that holds for a direction, the header check included.
pub(crate) fn holding_signature(
    e: &DirectionEvidence,
    transport: Transport,
    config: &MethodConfig,
) -> Option<ChiSquareSignature> {
    signatures(transport)
        .iter()
        .copied()
        .find(|&s| signature_state(s, e, config).0 == SignatureState::Holds)
}

/// Judges one direction, with the flow's rhythm test: Skype when a
/// signature holds and the rhythm test says media (the strict AND,
/// method.md §5); contradicted when the rhythm test (the flow's, or the
/// direction's own) says other, or every signature of the transport is
/// contradicted; else pending. Too few messages are never a contradiction.
pub(crate) fn judge_direction(
    e: &DirectionEvidence,
    rhythm: &NbcScore,
    transport: Transport,
    config: &MethodConfig,
) -> DirectionState {
    if e.nbc.decision == NbcDecision::Other || rhythm.decision == NbcDecision::Other {
        return DirectionState::Contradicted(Contradiction::Rhythm);
    }
    let mut reason = None;
    let mut all_contradicted = true;
    for &sig in signatures(transport) {
        match signature_state(sig, e, config) {
            (SignatureState::Holds, _) if rhythm.decision == NbcDecision::Media => {
                return DirectionState::Skype(Kind::of(sig.class()).unwrap_or(Kind::Tcp));
            }
            // The reason of the last signature tried (E2E for UDP).
            (SignatureState::Contradicted, c) => reason = c.or(reason),
            _ => all_contradicted = false,
        }
    }
    match (all_contradicted, reason) {
        (true, Some(c)) => DirectionState::Contradicted(c),
        _ => DirectionState::Pending,
    }
}

/// Confidence in a Skype direction: the rhythm test's probability of media
/// (the logistic of its log-odds sum) times the CSC's support, which grows
/// from 0.75 at `random_min_samples` to 1 at twice as many.
fn skype_confidence(e: &DirectionEvidence, rhythm: &NbcScore, config: &MethodConfig) -> f64 {
    let min = config.csc.random_min_samples.max(1);
    let support = (0.5 + 0.5 * f64::from(e.sampled) / f64::from(2 * min)).min(1.0);
    logistic(f64::from(rhythm.sum_log_odds)) * support
}

/// Confidence in a contradiction: for the rhythm, the rhythm test's
/// probability of other; for the structure and the header, one minus the
/// alpha of the test that made it.
fn contradiction_confidence(
    c: Contradiction,
    e: &DirectionEvidence,
    rhythm: &NbcScore,
    config: &MethodConfig,
) -> f64 {
    match c {
        Contradiction::Rhythm => {
            1.0 - logistic(f64::from(e.nbc.sum_log_odds.min(rhythm.sum_log_odds)))
        }
        Contradiction::Structure { .. } => 1.0 - config.csc.group_alpha,
        Contradiction::FuncByte | Contradiction::Prefix => 1.0 - config.dft.contradiction_alpha,
    }
}

/// The first contradiction in a flow's evidence, if any: what a "not_skype"
/// verdict rests on.
pub fn contradiction_of(
    flow: &FlowEvidence,
    transport: Transport,
    config: &MethodConfig,
) -> Option<Contradiction> {
    contradiction_in(
        &flow
            .directions
            .map(|d| judge_direction(&d, &flow.rhythm, transport, config)),
    )
}

/// [`contradiction_of`] from the directions' states already judged.
pub(crate) fn contradiction_in(states: &[DirectionState; 2]) -> Option<Contradiction> {
    states.iter().find_map(|s| match s {
        DirectionState::Contradicted(c) => Some(*c),
        _ => None,
    })
}

/// What [`judge_flow`] gives a flow none of whose directions may decide
/// ([`direction_may_decide`]) and whose rhythm test has not said "other":
/// undecided, not settled, both directions pending.
pub(crate) fn undecided_judgement() -> FlowJudgement {
    FlowJudgement {
        verdict: Verdict::default(),
        settled: false,
        states: [DirectionState::Pending; 2],
    }
}

/// Whether a direction's tests could let [`judge_flow`] give a verdict,
/// Skype or not: Skype needs a signature that holds, and no signature holds
/// before `random_min_samples` samples ([`ChiSquareSignature::state`]); not
/// Skype needs a contradiction, and every contradiction is a structured
/// group, a header contradiction or the rhythm test's "other". A flow whose
/// directions have none of these, and whose own rhythm test has not said
/// "other", is undecided whatever the rest of its evidence: judging it can
/// wait for a packet that changes one of them (issue 19: most flows of a
/// link never get there, and their evidence need not be built per packet).
pub(crate) fn direction_may_decide(
    groups: &CscState,
    func_contradicted: bool,
    prefix_contradicted: bool,
    nbc: NbcDecision,
    sampled: u32,
    config: &MethodConfig,
) -> bool {
    groups.structured != 0
        || func_contradicted
        || prefix_contradicted
        || nbc == NbcDecision::Other
        || sampled >= config.csc.random_min_samples
}

/// A flow's verdict and whether it is final while the flow is open.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FlowJudgement {
    /// The verdict (its timing fields are the caller's).
    pub verdict: Verdict,
    /// For "not_skype": every direction that carries messages is
    /// contradicted (UDP), or one is (TCP): nothing the flow may still send
    /// can change it.
    pub settled: bool,
    /// Each direction's state, as [`judge_direction`] gives it.
    pub states: [DirectionState; 2],
}

/// Judges a flow from its two directions. `open` says the flow may still
/// send packets; at its end it is false. The timing fields are left for
/// the caller, who knows the packet.
///
/// UDP: Skype when either direction is. Not Skype when a direction is
/// contradicted and none is Skype or has a holding signature waiting for
/// its rhythm (at the end), or when every direction with messages is
/// contradicted (while open: settled).
///
/// TCP: a call is a conversation carried both ways in one connection
/// (Skype keeps sending through silence, \[BMM07\]): a contradicted
/// direction vetoes the flow, and while the flow is open a Skype decision
/// waits until both directions have given the rhythm test a window.
pub(crate) fn judge_flow(
    flow: &FlowEvidence,
    transport: Transport,
    config: &MethodConfig,
    open: bool,
) -> FlowJudgement {
    let dirs = &flow.directions;
    let rhythm = &flow.rhythm;
    let states = [
        judge_direction(&dirs[0], rhythm, transport, config),
        judge_direction(&dirs[1], rhythm, transport, config),
    ];
    let contradicted = |d: usize| match states[d] {
        DirectionState::Contradicted(c) => Some(c),
        _ => None,
    };
    let not_skype = |settled: bool| {
        let confidence = (0..2)
            .filter_map(|d| {
                contradicted(d).map(|c| contradiction_confidence(c, &dirs[d], rhythm, config))
            })
            .fold(0.0, f64::max);
        FlowJudgement {
            verdict: Verdict {
                label: Label::NotSkype,
                confidence,
                via: Some(Via::Flow),
                ..Verdict::default()
            },
            settled,
            states,
        }
    };
    let undecided = FlowJudgement {
        verdict: Verdict::default(),
        settled: false,
        states,
    };
    if transport == Transport::Tcp && (0..2).any(|d| contradicted(d).is_some()) {
        return not_skype(true);
    }
    let skype = (0..2)
        .filter(|&d| matches!(states[d], DirectionState::Skype(_)))
        .max_by(|&a, &b| {
            skype_confidence(&dirs[a], rhythm, config)
                .total_cmp(&skype_confidence(&dirs[b], rhythm, config))
        });
    if let Some(best) = skype {
        let both_ways = dirs.iter().all(|d| d.nbc.windows > 0);
        if transport == Transport::Tcp && open && !both_ways {
            return undecided;
        }
        let kind = match states[best] {
            DirectionState::Skype(k) => Some(k),
            _ => None,
        };
        return FlowJudgement {
            verdict: Verdict {
                label: Label::Skype,
                kind,
                confidence: skype_confidence(&dirs[best], rhythm, config),
                via: Some(Via::Flow),
                ..Verdict::default()
            },
            settled: false,
            states,
        };
    }
    let any_contradicted = (0..2).any(|d| contradicted(d).is_some());
    let all_settled = (0..2).all(|d| dirs[d].messages == 0 || contradicted(d).is_some());
    if any_contradicted && all_settled {
        return not_skype(true);
    }
    let waiting = (0..2).any(|d| {
        contradicted(d).is_none() && holding_signature(&dirs[d], transport, config).is_some()
    });
    if !open && any_contradicted && !waiting {
        return not_skype(false);
    }
    undecided
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csc::ChiSquareSignature as Sig;

    /// Evidence whose signature `sig` holds (header included), with a rhythm
    /// decision.
    fn holding(sig: Sig, nbc: NbcDecision, sum: f32) -> DirectionEvidence {
        DirectionEvidence {
            messages: 60,
            csc: sig.class(),
            groups: CscState {
                structured: sig.structured_groups(),
                fixed_bit: true,
            },
            header: HeaderJudgement {
                e2e: sig == Sig::E2e,
                e2o: sig == Sig::E2o,
                ..HeaderJudgement::default()
            },
            nbc: NbcScore {
                windows: 2,
                passed: 2,
                sum_log_odds: sum,
                decision: nbc,
            },
            sampled: 60,
            window_sampled: 60,
            ..DirectionEvidence::default()
        }
    }

    #[test]
    fn a_flow_no_direction_of_which_may_decide_is_undecided() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let config = MethodConfig::default();
        let decision = |r: u64| match r % 3 {
            0 => NbcDecision::Pending,
            1 => NbcDecision::Media,
            _ => NbcDecision::Other,
        };
        let (mut quiet, mut decided) = (0, 0);
        for _ in 0..200_000 {
            let mut dir = || {
                let r = next();
                DirectionEvidence {
                    messages: (r % 40) as u32,
                    groups: CscState {
                        // Mostly none structured, else any.
                        structured: if r >> 8 & 3 == 0 { (r >> 16) as u16 } else { 0 },
                        fixed_bit: r >> 10 & 1 == 1,
                    },
                    header: HeaderJudgement {
                        e2e: r >> 11 & 1 == 1,
                        e2o: r >> 12 & 1 == 1,
                        func_contradicted: r >> 13 & 7 == 0,
                        prefix_contradicted: r >> 16 & 7 == 0,
                    },
                    nbc: NbcScore {
                        windows: (r >> 20 & 3) as u16,
                        passed: (r >> 22 & 1) as u16,
                        sum_log_odds: (r >> 24 & 15) as f32 - 7.0,
                        decision: decision(r >> 28),
                    },
                    sampled: (r >> 32 & 31) as u32,
                    ..DirectionEvidence::default()
                }
            };
            let dirs = [dir(), dir()];
            let r = next();
            let rhythm = NbcScore {
                windows: (r & 3) as u16,
                decision: decision(r >> 2),
                ..NbcScore::default()
            };
            let may = |d: &DirectionEvidence| {
                direction_may_decide(
                    &d.groups,
                    d.header.func_contradicted,
                    d.header.prefix_contradicted,
                    d.nbc.decision,
                    d.sampled,
                    &config,
                )
            };
            let f = FlowEvidence {
                directions: dirs,
                rhythm,
            };
            for t in [Transport::Udp, Transport::Tcp] {
                for open in [true, false] {
                    let j = judge_flow(&f, t, &config, open);
                    if rhythm.decision != NbcDecision::Other && !may(&dirs[0]) && !may(&dirs[1]) {
                        quiet += 1;
                        assert_eq!(j.verdict.label, Label::Undecided, "{f:?} {t:?}");
                        assert!(!j.settled);
                        assert_eq!(j, undecided_judgement(), "{f:?} {t:?}");
                    } else if j.verdict.label != Label::Undecided {
                        decided += 1;
                    }
                }
            }
        }
        // Neither side of the implication is empty.
        assert!(quiet > 10_000 && decided > 10_000, "{quiet} {decided}");
    }

    /// The flow of two directions, its rhythm that of the first (doubled
    /// when both have windows).
    fn flow(d: [DirectionEvidence; 2]) -> FlowEvidence {
        let mut rhythm = d[0].nbc;
        if d[1].nbc.decision == NbcDecision::Other {
            rhythm = d[1].nbc;
        }
        FlowEvidence {
            directions: d,
            rhythm,
        }
    }

    fn label(d: [DirectionEvidence; 2], t: Transport, open: bool) -> Label {
        judge_flow(&flow(d), t, &MethodConfig::default(), open)
            .verdict
            .label
    }

    fn direction(e: &DirectionEvidence, t: Transport) -> DirectionState {
        judge_direction(e, &e.nbc, t, &MethodConfig::default())
    }

    #[test]
    fn strict_and() {
        let c = MethodConfig::default();
        let none = DirectionEvidence::default();
        let e2e = holding(Sig::E2e, NbcDecision::Media, 12.0);
        let v = judge_flow(&flow([e2e, none]), Transport::Udp, &c, true).verdict;
        assert_eq!((v.label, v.kind), (Label::Skype, Some(Kind::E2e)));
        assert!(v.confidence > 0.5 && v.confidence <= 1.0);
        // The rhythm is not yet decided: pending, never not Skype.
        let pending = holding(Sig::E2e, NbcDecision::Pending, 3.0);
        assert_eq!(
            label([pending, none], Transport::Udp, false),
            Label::Undecided
        );
        // The rhythm is rejected: not Skype, settled.
        let rejected = holding(Sig::E2e, NbcDecision::Other, -20.0);
        let j = judge_flow(&flow([rejected, none]), Transport::Udp, &c, true);
        assert_eq!((j.verdict.label, j.settled), (Label::NotSkype, true));
        // The header rule does not hold yet: pending.
        let mut no_header = e2e;
        no_header.header.e2e = false;
        assert_eq!(
            label([no_header, none], Transport::Udp, true),
            Label::Undecided
        );
        // ... or is contradicted: E2E is; E2O pending keeps the direction pending.
        no_header.header.func_contradicted = true;
        assert_eq!(
            direction(&no_header, Transport::Udp),
            DirectionState::Pending
        );
        // Both contradicted: not Skype.
        no_header.header.prefix_contradicted = true;
        assert_eq!(
            direction(&no_header, Transport::Udp),
            DirectionState::Contradicted(Contradiction::FuncByte)
        );
        // A structured random group contradicts E2E.
        let mut structured = e2e;
        structured.groups.structured |= 1 << 7;
        assert_eq!(
            signature_state(Sig::E2e, &structured, &c),
            (
                SignatureState::Contradicted,
                Some(Contradiction::Structure { group: 7 })
            )
        );
    }

    #[test]
    fn tcp_needs_both_directions() {
        let c = MethodConfig::default();
        let tcp = holding(Sig::Tcp, NbcDecision::Media, 10.0);
        let quiet = holding(Sig::Tcp, NbcDecision::Pending, 1.0);
        // Open: waits for a window of the other direction.
        let mut silent = quiet;
        silent.nbc.windows = 0;
        assert_eq!(label([tcp, silent], Transport::Tcp, true), Label::Undecided);
        assert_eq!(label([tcp, quiet], Transport::Tcp, true), Label::Skype);
        assert_eq!(label([tcp, tcp], Transport::Tcp, true), Label::Skype);
        // At the end, one Skype direction and a silent one: Skype.
        assert_eq!(label([tcp, silent], Transport::Tcp, false), Label::Skype);
        // A rejected reverse direction vetoes, settled.
        let back = holding(Sig::Tcp, NbcDecision::Other, -20.0);
        let j = judge_flow(&flow([tcp, back]), Transport::Tcp, &c, true);
        assert_eq!((j.verdict.label, j.settled), (Label::NotSkype, true));
        assert_eq!(
            direction(&tcp, Transport::Tcp),
            DirectionState::Skype(Kind::Tcp)
        );
    }

    #[test]
    fn few_messages_are_never_not_skype() {
        let c = MethodConfig::default();
        let none = DirectionEvidence::default();
        assert_eq!(label([none, none], Transport::Udp, false), Label::Undecided);
        // 23 samples of perfect E2E framing and no rhythm yet: pending.
        let mut short = holding(Sig::E2e, NbcDecision::Pending, 0.0);
        short.sampled = 23;
        assert_eq!(
            signature_state(Sig::E2e, &short, &c).0,
            SignatureState::Pending
        );
        assert_eq!(
            label([short, short], Transport::Udp, false),
            Label::Undecided
        );
        // A contradicted direction with a short, pending reverse: not Skype
        // at the end, not settled while open.
        let mut bad = none;
        bad.messages = 40;
        bad.groups.structured = 0xFFFF;
        let mut reply = none;
        reply.messages = 2;
        let j = judge_flow(&flow([bad, reply]), Transport::Udp, &c, true);
        assert_eq!(j.verdict.label, Label::Undecided);
        assert_eq!(label([bad, reply], Transport::Udp, false), Label::NotSkype);
        assert_eq!(label([bad, none], Transport::Udp, true), Label::NotSkype);
        // ... but a reverse whose signature holds, waiting for its rhythm,
        // keeps the flow undecided.
        assert_eq!(
            label([bad, short_holding()], Transport::Udp, false),
            Label::Undecided
        );
    }

    fn short_holding() -> DirectionEvidence {
        holding(Sig::E2o, NbcDecision::Pending, 2.0)
    }

    #[test]
    fn contradiction_codes() {
        assert_eq!(Contradiction::Structure { group: 12 }.as_str(), "group_12");
        assert_eq!(Contradiction::Rhythm.as_str(), "rhythm");
    }
}
