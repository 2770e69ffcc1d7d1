//! Every number of the method, in one place.
//!
//! Each constant is named, documented and cited. The values that a model may
//! change travel inside the model file ([`MethodConfig`], serialized with
//! the model); the ones that define the data layout (8 bytes, 16 groups) are
//! compile-time constants because the per-flow state is sized by them.
//!
//! Sources, abbreviated in the docs below:
//! - **\[BMM07\]** Bonfiglio, Mellia, Meo, Rossi, Tofanelli, "Revealing Skype
//!   Traffic: When Randomness Plays with You", ACM SIGCOMM 2007.
//! - **\[Tstat\]** the constants of Tstat, the authors' monitoring tool that
//!   implements \[BMM07\] (numbers learned, no code taken).
//! - **\[WS\]** Wireshark's Skype dissector (header layout).
//! - **\[DATA\]** measured by this project on `../shared/datasets/ndpi`
//!   (see the README's accuracy section for the commands).

use serde::{Deserialize, Serialize};

/// Payload bytes sampled per message by the chi-square classifier [BMM07 §4.1].
pub const CSC_BYTES: usize = 8;
/// Number of 4-bit groups: two per sampled byte [BMM07 §4.1].
pub const CSC_GROUPS: usize = 2 * CSC_BYTES;
/// Values a 4-bit group can take.
pub const NIBBLE_VALUES: usize = 16;
/// Degrees of freedom of the chi-square law of one random group (16 values - 1).
pub const CSC_DEGREES_OF_FREEDOM: f64 = (NIBBLE_VALUES - 1) as f64;
/// Mask giving the FUNC value of byte 2 of a UDP Skype message: bit 7 and the
/// low nibble are fixed, bits 6-4 are encrypted \[WS\], [BMM07 Fig. 2].
pub const FUNC_MASK: u8 = 0x8F;
/// Number of distinct FUNC values (`byte2 & 0x8F`: bit 7 times 16 low values).
pub const FUNC_VALUES: usize = 32;
/// Packets per Naive Bayes window [BMM07 §4.2], \[Tstat\].
pub const NBC_WINDOW_PACKETS: u16 = 30;
/// Sampled packets per chi-square window. Counts are one byte each, so a
/// window holds at most 255 samples; a direction's verdict is evaluated at
/// every sample inside the window and the window restarts when full.
/// 255 is above every minimum of the method (10 / 100 / 50), so no signature
/// is cut short. Project choice, sized for memory (the 16 x 16 counts of a
/// direction fit in 256 bytes).
pub const CSC_WINDOW_PACKETS: u16 = 255;

/// The chi-square classifier's thresholds and minimums [BMM07 §4.1], \[Tstat\].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CscConfig {
    /// A group is deterministic when its chi2 is at least this, random below
    /// it. 150 \[Tstat\]. A random group exceeds it with probability ~2e-24.
    pub deterministic_threshold: f64,
    /// Group 5 (high nibble of the FUNC byte: one fixed bit, three random) is
    /// "mixed" when its chi2 is at least this. 100 \[Tstat\]. One fixed bit
    /// gives chi2 ~ N, so the E2E signature needs about 100 packets.
    pub mixed_threshold: f64,
    /// Minimum sampled packets for the E2O signature: 10 \[Tstat\].
    pub e2o_min_packets: u32,
    /// Minimum sampled packets for the E2E signature: 100 \[Tstat\].
    pub e2e_min_packets: u32,
    /// Minimum sampled segments for the TCP signature: 50 \[Tstat\].
    pub tcp_min_packets: u32,
}

impl Default for CscConfig {
    fn default() -> Self {
        CscConfig {
            deterministic_threshold: 150.0,
            mixed_threshold: 100.0,
            e2o_min_packets: 10,
            e2e_min_packets: 100,
            tcp_min_packets: 50,
        }
    }
}

/// The deterministic header check (DFT) \[Tstat\], method.md §3.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DftConfig {
    /// Directions with fewer packets are not judged: 10 \[Tstat\].
    pub min_packets: u32,
    /// A rule needs more than this many matching packets: 100 \[Tstat\].
    pub min_matching: u32,
    /// ... and they must be more than this share of the direction: 0.9 \[Tstat\].
    pub min_share: f64,
    /// FUNC value of voice/video data: 0x0D \[WS\], \[Tstat\].
    pub func_voice: u8,
    /// A 0x0D message of this many payload bytes or fewer is a keep-alive, not
    /// voice: 4 \[Tstat\].
    pub keepalive_max_bytes: u32,
    /// FUNC values that Skype signalling uses: 0x02 (payload/first packet),
    /// 0x03 (resend/fragment), 0x05 (NAT info), 0x07 (NAT repeat),
    /// 0x0D (data), 0x0F and 0x00 (seen, meaning unknown) \[WS\], \[Tstat\].
    pub func_known: Vec<u8>,
}

impl Default for DftConfig {
    fn default() -> Self {
        DftConfig {
            min_packets: 10,
            min_matching: 100,
            min_share: 0.9,
            func_voice: 0x0D,
            keepalive_max_bytes: 4,
            func_known: vec![0x00, 0x02, 0x03, 0x05, 0x07, 0x0D, 0x0F],
        }
    }
}

/// Packet-size bands of the Naive Bayes features [BMM07 §4.2], \[Tstat\].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NbcConfig {
    /// UDP payloads below this size are voice-band messages: 400 \[Tstat\].
    pub voice_max_bytes: u32,
    /// Video bands: payloads in 400-490 or 800-980 bytes \[Tstat\].
    pub video_bands: Vec<(u32, u32)>,
    /// A direction is flagged as carrying video when more than this share of
    /// its packets is in a video band: 0.10 \[Tstat\], method.md §5.
    pub video_share: f64,
    /// A window passes when the media-vs-other log-odds is at least this.
    /// 0 = the Bayes decision with the trained priors \[project\].
    pub window_log_odds_threshold: f64,
    /// A direction passes when at least this share of its windows pass and
    /// its mean log-odds reaches the window threshold. Plays the role of
    /// Tstat's "average log-likelihood >= -3.5" gate on the flow; 0.5 = a
    /// majority of windows \[project\].
    pub min_window_pass_share: f64,
    /// ... over at least this many windows: one 30-packet window is a single
    /// sample of the rhythm, and its Bayes error is too high for a firewall;
    /// two windows (60 messages) [project, measured in the README].
    pub min_windows: u16,
    /// Smallest variance of a feature in a fitted class. The features are on
    /// comparable unit scales (logs, coefficients of variation, shares), and a
    /// feature that happens to be constant in the training windows of a class
    /// (the video share of pure voice calls) must not make every other value
    /// impossible: 0.01, a standard deviation of 0.1 \[project\].
    pub min_variance: f64,
    /// Gaps longer than this (seconds) are silence or a pause, not rhythm: the
    /// window's gap statistics skip them. 1 s [project; voice frames are
    /// 10-60 ms apart, method.md §4].
    pub max_gap_seconds: f64,
}

impl Default for NbcConfig {
    fn default() -> Self {
        NbcConfig {
            voice_max_bytes: 400,
            video_bands: vec![(400, 490), (800, 980)],
            video_share: 0.10,
            window_log_odds_threshold: 0.0,
            min_window_pass_share: 0.5,
            min_windows: 2,
            min_variance: 0.01,
            max_gap_seconds: 1.0,
        }
    }
}

/// Endpoint correlation of classic Skype signalling (issue 8): a Skype client
/// sends all its UDP through one port to many peers, in flows far too short
/// for a per-flow test. See the README section "Endpoint correlation".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Whether endpoint correlation runs at all.
    pub enabled: bool,
    /// Most endpoints tracked at once; the longest idle is evicted.
    pub max_endpoints: usize,
    /// An endpoint idle this long (seconds) is forgotten.
    pub idle_timeout_seconds: f64,
    /// Minimum sampled messages (>= 8 payload bytes) at the endpoint.
    pub min_packets: u32,
    /// Only the first this many messages of each flow direction feed its
    /// endpoints, and only until then is an open flow given an endpoint's
    /// verdict (offline, every flow gets it at the end of the run). The
    /// endpoint evidence is that of many short flows (signalling flows are 1
    /// to 5 messages, method.md §6); long flows are judged on their own, and
    /// this bounds the endpoint cost per flow: 8 \[project\].
    pub max_messages_per_flow: u32,
    /// Minimum distinct peers (addresses) seen from the endpoint.
    pub min_peers: u32,
    /// Share of the endpoint's messages whose FUNC value is a known Skype one.
    pub min_known_func_share: f64,
    /// The encrypted body (groups 6-15, bytes 3-7) must look random: every one
    /// of those groups below the CSC's deterministic threshold, computed over
    /// the endpoint's messages.
    pub body_groups: (usize, usize),
    /// The FUNC byte's low nibble (group 4) must be deterministic.
    pub func_group: usize,
    /// Server guard: an endpoint is a server for many clients, not a Skype
    /// client, when more than this share of its peers reached it on its
    /// well-known side (port below 1024) ...
    pub server_port_max: u16,
    /// ... or when one remote peer port (the same service port) carries more
    /// than this share of its flows.
    pub max_same_peer_port_share: f64,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            enabled: true,
            max_endpoints: 65_536,
            idle_timeout_seconds: 600.0,
            min_packets: 20,
            max_messages_per_flow: 8,
            min_peers: 5,
            min_known_func_share: 0.9,
            body_groups: (6, 15),
            func_group: 4,
            server_port_max: 1023,
            max_same_peer_port_share: 0.5,
        }
    }
}

/// How the classifiers' answers combine into a verdict (method.md §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictConfig {
    /// For UDP, the DFT must agree with the CSC class (E2E with E2E, E2O with
    /// E2O) before a direction is Skype: true, as Tstat does \[Tstat\].
    pub require_dft_for_udp: bool,
    /// A direction whose rhythm the NBC has rejected over this many windows
    /// is settled as not Skype; with a full CSC window (255 messages) without
    /// a signature, the other way to settle. When every direction that
    /// carries messages is settled, the flow is final "not_skype" and its
    /// state is released: 4 windows, 120 messages \[project\].
    pub settle_nbc_windows: u16,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            require_dft_for_udp: true,
            settle_nbc_windows: 4,
        }
    }
}

/// All tunable numbers of the method; part of every model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MethodConfig {
    /// Chi-square classifier.
    pub csc: CscConfig,
    /// Deterministic header check.
    pub dft: DftConfig,
    /// Naive Bayes features and decision.
    pub nbc: NbcConfig,
    /// Combination into a verdict.
    pub verdict: VerdictConfig,
    /// Endpoint correlation.
    pub endpoint: EndpointConfig,
}

/// Flow-table settings: operational, not part of the method; not in the model.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowTableConfig {
    /// UDP idle timeout, seconds: 120 (issue 2).
    pub udp_idle_timeout: f64,
    /// TCP idle timeout, seconds: 300 (issue 2).
    pub tcp_idle_timeout: f64,
    /// After FIN from both sides or an RST, late packets of the same 5-tuple
    /// (final ACKs, retransmitted FINs) still belong to the flow for this
    /// long, seconds, unless a new SYN opens a new connection.
    pub tcp_close_linger: f64,
    /// Most flows held at once; beyond it the longest idle is evicted. A
    /// table holds at most [`MAX_FLOWS_PER_TABLE`](crate::flow::MAX_FLOWS_PER_TABLE)
    /// whatever this says.
    pub max_flows: usize,
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            udp_idle_timeout: 120.0,
            tcp_idle_timeout: 300.0,
            tcp_close_linger: 10.0,
            max_flows: 1 << 20,
        }
    }
}
