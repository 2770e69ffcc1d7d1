//! The verdict: combines the chi-square class, the header check and the
//! rhythm test of each direction into one answer per flow (method.md §5).
//!
//! A direction is Skype when the NBC passes AND the CSC gives E2E, E2O or TCP
//! (and, for UDP, the DFT agrees). A flow is Skype when either direction is.
//! Flows too short for the tests are "undecided", never "not_skype".

use serde::{Deserialize, Serialize};

use crate::config::{MethodConfig, CSC_GROUPS};
use crate::csc::{CscClass, DftClass};
use crate::nbc::NbcScore;
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
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct DirectionEvidence {
    /// The CSC class: the first Skype class reached, else the class of the
    /// latest window.
    pub csc: CscClass,
    /// The DFT class.
    pub dft: DftClass,
    /// DFT messages matching the rule of the CSC class (voice for E2E,
    /// repeated prefixes for E2O).
    pub dft_matching: u32,
    /// The rhythm score.
    pub nbc: NbcScore,
    /// Messages sampled by the CSC, all windows.
    pub sampled: u32,
    /// Messages sampled in the window the chi2 values come from.
    pub window_sampled: u32,
    /// The chi2 values of the latest window.
    pub chi2: [f32; CSC_GROUPS],
    /// Flow packet count when the CSC's Skype class was first reached.
    pub csc_first_at: Option<u32>,
    /// More than `video_share` of the direction's messages are in a video
    /// band (method.md §5).
    pub video: bool,
}

/// The logistic function.
fn logistic(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// The minimum sampled messages of the smallest signature for a transport.
pub fn min_judged_samples(transport: Transport, config: &MethodConfig) -> u32 {
    match transport {
        Transport::Udp => config.csc.e2o_min_packets.min(config.csc.e2e_min_packets),
        Transport::Tcp => config.csc.tcp_min_packets,
    }
}

/// The state of one direction for the verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DirectionState {
    /// Every condition holds.
    Skype,
    /// The tests ran and rule Skype out (for now).
    NotSkype,
    /// Some test has not had enough packets.
    TooShort,
}

/// Judges one direction.
pub fn judge_direction(
    e: &DirectionEvidence,
    transport: Transport,
    config: &MethodConfig,
) -> DirectionState {
    let csc_judged = e.sampled >= min_judged_samples(transport, config);
    if !e.csc.is_skype() {
        return if csc_judged || e.nbc.windows > 0 {
            DirectionState::NotSkype
        } else {
            DirectionState::TooShort
        };
    }
    if !e.nbc.judged(&config.nbc) {
        return DirectionState::TooShort;
    }
    if !e.nbc.passes(&config.nbc) {
        return DirectionState::NotSkype;
    }
    if transport == Transport::Udp
        && config.verdict.require_dft_for_udp
        && !e.dft.agrees_with(e.csc)
    {
        // The DFT needs more than `min_matching` messages: until then it is
        // too early, not a contradiction.
        return if e.dft_matching <= config.dft.min_matching {
            DirectionState::TooShort
        } else {
            DirectionState::NotSkype
        };
    }
    DirectionState::Skype
}

/// Confidence in a Skype direction: the NBC's probability of media (from the
/// mean log-odds) times the CSC's support, which grows from 0.75 at the
/// signature's minimum packets to 1 at twice the minimum.
fn skype_confidence(e: &DirectionEvidence, transport: Transport, config: &MethodConfig) -> f64 {
    let min = match e.csc {
        CscClass::E2e => config.csc.e2e_min_packets,
        CscClass::E2o => config.csc.e2o_min_packets,
        CscClass::Tcp | CscClass::None => min_judged_samples(transport, config),
    }
    .max(1);
    let support = (0.5 + 0.5 * f64::from(e.sampled) / f64::from(2 * min)).min(1.0);
    logistic(e.nbc.mean_log_odds()) * support
}

/// Confidence in a Not-Skype direction: the NBC's probability of other when
/// it ran, else the CSC's support for "no signature".
fn not_skype_confidence(e: &DirectionEvidence, transport: Transport, config: &MethodConfig) -> f64 {
    let csc = if e.csc.is_skype() {
        0.0
    } else {
        let min = min_judged_samples(transport, config).max(1);
        (0.5 + 0.5 * f64::from(e.sampled) / f64::from(2 * min)).min(1.0)
    };
    let nbc = if e.nbc.windows > 0 {
        1.0 - logistic(e.nbc.mean_log_odds())
    } else {
        0.0
    };
    csc.max(nbc)
}

/// Judges a flow from its two directions. `open` says the flow may still
/// send packets (an early decision); at its end it is false. The timing
/// fields are left for the caller, who knows the packet.
///
/// For TCP a call is a conversation carried both ways in one connection
/// (Skype keeps sending through silence, \[BMM07\]): a direction whose rhythm
/// the NBC has judged and rejected vetoes the flow, and while the flow is
/// open a decision waits until both directions are judged.
pub fn judge_flow(
    dirs: &[DirectionEvidence; 2],
    transport: Transport,
    config: &MethodConfig,
    open: bool,
) -> Verdict {
    let mut states = [
        judge_direction(&dirs[0], transport, config),
        judge_direction(&dirs[1], transport, config),
    ];
    if transport == Transport::Tcp && states.contains(&DirectionState::Skype) {
        let rejected =
            |d: &DirectionEvidence| d.nbc.judged(&config.nbc) && !d.nbc.passes(&config.nbc);
        if dirs.iter().any(rejected) {
            states = states.map(|s| {
                if s == DirectionState::Skype {
                    DirectionState::NotSkype
                } else {
                    s
                }
            });
        } else if open && !dirs.iter().all(|d| d.nbc.judged(&config.nbc)) {
            return Verdict::default();
        }
    }
    if let Some(best) = (0..2)
        .filter(|&d| states[d] == DirectionState::Skype)
        .max_by(|&a, &b| {
            skype_confidence(&dirs[a], transport, config)
                .total_cmp(&skype_confidence(&dirs[b], transport, config))
        })
    {
        return Verdict {
            label: Label::Skype,
            kind: Kind::of(dirs[best].csc),
            confidence: skype_confidence(&dirs[best], transport, config),
            via: Some(Via::Flow),
            ..Verdict::default()
        };
    }
    if states.contains(&DirectionState::TooShort) && !states.contains(&DirectionState::NotSkype) {
        return Verdict::default();
    }
    // At least one direction judged and none Skype. A direction still too
    // short could have turned Skype later only if it had a signature.
    let could_be = (0..2).any(|d| states[d] == DirectionState::TooShort && dirs[d].csc.is_skype());
    if could_be {
        return Verdict::default();
    }
    let confidence = (0..2)
        .filter(|&d| states[d] == DirectionState::NotSkype)
        .map(|d| not_skype_confidence(&dirs[d], transport, config))
        .fold(0.0, f64::max);
    Verdict {
        label: Label::NotSkype,
        kind: None,
        confidence,
        via: Some(Via::Flow),
        ..Verdict::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(
        csc: CscClass,
        dft: DftClass,
        windows: u16,
        passed: u16,
        sampled: u32,
    ) -> DirectionEvidence {
        DirectionEvidence {
            csc,
            dft,
            dft_matching: if dft == DftClass::None { 0 } else { 120 },
            nbc: NbcScore {
                windows,
                passed,
                sum_log_odds: f32::from(passed) * 5.0 - f32::from(windows - passed) * 5.0,
            },
            sampled,
            window_sampled: sampled,
            chi2: [0.0; 16],
            csc_first_at: None,
            video: false,
        }
    }

    #[test]
    fn strict_and() {
        let c = MethodConfig::default();
        let none = DirectionEvidence::default();
        // CSC and NBC and DFT: Skype.
        let v = judge_flow(
            &[ev(CscClass::E2e, DftClass::E2e, 4, 4, 130), none],
            Transport::Udp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::Skype);
        assert_eq!(v.kind, Some(Kind::E2e));
        assert!(v.confidence > 0.5 && v.confidence <= 1.0);
        // NBC fails: not Skype.
        let v = judge_flow(
            &[ev(CscClass::E2e, DftClass::E2e, 4, 0, 130), none],
            Transport::Udp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::NotSkype);
        // CSC fails: not Skype.
        let v = judge_flow(
            &[ev(CscClass::None, DftClass::None, 4, 4, 130), none],
            Transport::Udp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::NotSkype);
        // DFT disagrees after enough packets: not Skype.
        let mut e = ev(CscClass::E2o, DftClass::None, 20, 20, 600);
        e.dft_matching = 300;
        assert_eq!(
            judge_flow(&[e, none], Transport::Udp, &c, false).label,
            Label::NotSkype
        );
        // TCP needs no DFT.
        let v = judge_flow(
            &[ev(CscClass::Tcp, DftClass::Undecided, 2, 2, 60), none],
            Transport::Tcp,
            &c,
            false,
        );
        assert_eq!(v.kind, Some(Kind::Tcp));
        // ... but an open TCP flow waits for the other direction's rhythm,
        let v = judge_flow(
            &[ev(CscClass::Tcp, DftClass::Undecided, 2, 2, 60), none],
            Transport::Tcp,
            &c,
            true,
        );
        assert_eq!(v.label, Label::Undecided);
        // and a rejected reverse direction vetoes it.
        let back = ev(CscClass::Tcp, DftClass::Undecided, 4, 0, 120);
        let v = judge_flow(
            &[ev(CscClass::Tcp, DftClass::Undecided, 2, 2, 60), back],
            Transport::Tcp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::NotSkype);
    }

    #[test]
    fn too_short_is_undecided() {
        let c = MethodConfig::default();
        let none = DirectionEvidence::default();
        assert_eq!(
            judge_flow(&[none, none], Transport::Udp, &c, false).label,
            Label::Undecided
        );
        // E2O-like but no rhythm window yet.
        let v = judge_flow(
            &[ev(CscClass::E2o, DftClass::Undecided, 0, 0, 14), none],
            Transport::Udp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::Undecided);
        // Nine messages, no signature: too short.
        let v = judge_flow(
            &[ev(CscClass::None, DftClass::Undecided, 0, 0, 9), none],
            Transport::Udp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::Undecided);
        let v = judge_flow(
            &[ev(CscClass::None, DftClass::Undecided, 0, 0, 10), none],
            Transport::Udp,
            &c,
            false,
        );
        assert_eq!(v.label, Label::NotSkype);
    }
}
