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
/// Bytes of a TCP flow's first payload whose nibbles the test of
/// randomness from the first byte reads
/// ([`crate::endpoint::encrypted_from_first_byte`]): Skype's TCP is RC4 from
/// its first byte (method.md §1); 127 bytes are 254 nibbles, about 16
/// expected counts for each of the 16 values. Project choice (issues 13 and
/// 14, where the test came in); readers that keep only a message's first
/// bytes keep this many of a TCP payload.
pub const TCP_FIRST_PAYLOAD_BYTES: usize = 127;
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

/// The chi-square classifier: the paper's group labels, and the sequential
/// tests that decide as samples arrive (method.md §2 and §8; README "The
/// sequential tests").
///
/// Each group of a direction is tested against the uniform law by a test
/// martingale: the Bayes factor of a Dirichlet mixture over the window's
/// counts (the Krichevsky-Trofimov estimator, prior `dirichlet_prior`)
/// against the uniform law. Under a random group its expectation is 1 at
/// every sample size, so by Ville's inequality the chance that it ever
/// reaches `1 / group_alpha`, however often it is looked at, is at most
/// `group_alpha`; no asymptotic law is involved (Pearson's chi-square law is
/// far off in its tails below about 80 samples). Windows are independent
/// tests, and the threshold of the w-th window adds ln(pi^2 w^2 / 6) so that
/// the alphas of all windows sum to `group_alpha`.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CscConfig {
    /// The paper's label "deterministic" for a group's chi2 (records, pictures,
    /// and the endpoint signature): 150 \[Tstat\]. A random group exceeds it
    /// with probability ~2e-24.
    pub deterministic_threshold: f64,
    /// The paper's label "mixed" (group 5: one fixed bit, three random):
    /// chi2 >= 100 \[Tstat\]. One fixed bit gives chi2 ~ N.
    pub mixed_threshold: f64,
    /// Chance that a random group is ever called structured, per group and
    /// direction, over all looks and windows: 1e-6 \[project\]. A Skype
    /// direction has at most 14 groups that must be random, so the chance
    /// that chance alone contradicts it is at most 1.4e-5.
    pub group_alpha: f64,
    /// The Dirichlet prior of the mixture: 0.5 (Jeffreys; the
    /// Krichevsky-Trofimov estimator) \[project\]. With it a constant group
    /// is called structured after 10 samples, two fixed bits after 21-22, one
    /// fixed bit after 43 in the median, 49 at most (10^4 simulated groups).
    pub dirichlet_prior: f64,
    /// Group 5 (the FUNC byte's high nibble: bit 7 fixed, bits 6-4 random) is
    /// tested for one fixed bit by the likelihood ratio of "one of the 4 bits
    /// is fixed, the others uniform" (a mixture over the 8 bit/value pairs)
    /// against uniform, at the same alpha (method.md §8: it gains ln 2 a
    /// sample). A sample against the fixed bit costs ln(2 * slip) instead of
    /// being impossible, so one stray message does not reset the test: 0.01
    /// \[project\]. Decides after 24 samples.
    pub fixed_bit_slip: f64,
    /// A signature's random groups count as random only from this many
    /// samples: by then a group with two fixed bits (chi2 ~ 3N, the weakest
    /// structure the paper's threshold calls deterministic at its 50 to 100
    /// samples) has been called structured in every one of 10^4 simulated
    /// directions (at 21-22 samples): 24 \[project\]. This is the power of
    /// the test against structured look-alikes; the paper's fixed minimums
    /// were 10 (E2O), 100 (E2E) and 50 (TCP).
    pub random_min_samples: u32,
}

impl Default for CscConfig {
    fn default() -> Self {
        CscConfig {
            deterministic_threshold: 150.0,
            mixed_threshold: 100.0,
            group_alpha: 1e-6,
            dirichlet_prior: 0.5,
            fixed_bit_slip: 0.01,
            random_min_samples: 24,
        }
    }
}

/// The deterministic header check (DFT) \[Tstat\], method.md §3, made
/// sequential (method.md §8).
///
/// E2E header: the FUNC byte (`byte2 & 0x8F`) is one of Skype's known values
/// in more than `min_share` of the messages, and voice data (FUNC 0x0D) in
/// at least `min_matching` of them and more than `min_voice_share`; E2O
/// header: the first 4 bytes repeat the previous message's in more than
/// `min_share` and at least `min_matching` messages. Tstat asks for more
/// than 100 voice messages, 90 % of the direction; the set-up messages of a
/// call that rings first (FUNC 0x02, 0x03, ...) are known values, not voice,
/// which is why the share is of known values.
///
/// Contradiction: Wald's sequential probability ratio test of a mismatch
/// rate of `1 - min_share` (Skype) against `contradiction_rate`, on the
/// messages whose FUNC value is unknown (E2E) or whose prefix changed (E2O).
/// Under Skype its likelihood ratio is a supermartingale, so the chance of
/// ever crossing `1 / contradiction_alpha` is at most that alpha (Ville).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DftConfig {
    /// Directions with fewer packets are not judged: 10 \[Tstat\].
    pub min_packets: u32,
    /// A rule needs at least this many matching messages: 10 [project;
    /// Tstat: more than 100]. Under random bytes (FUNC known with
    /// probability 7/32) the chance that 90 % of n >= 10 messages carry known
    /// values is below 1e-5 summed over every n (binomial tails, tested).
    pub min_matching: u32,
    /// ... and they must be more than this share of the direction: 0.9 \[Tstat\].
    pub min_share: f64,
    /// Voice data must be more than this share of the FUNC messages: 0.5
    /// \[project\]: a call's media dominates its set-up messages.
    pub min_voice_share: f64,
    /// FUNC value of voice/video data: 0x0D \[WS\], \[Tstat\].
    pub func_voice: u8,
    /// A 0x0D message of this many payload bytes or fewer is a keep-alive, not
    /// voice: 4 \[Tstat\].
    pub keepalive_max_bytes: u32,
    /// FUNC values that Skype signalling uses: 0x02 (payload/first packet),
    /// 0x03 (resend/fragment), 0x05 (NAT info), 0x07 (NAT repeat),
    /// 0x0D (data), 0x0F and 0x00 (seen, meaning unknown) \[WS\], \[Tstat\].
    pub func_known: Vec<u8>,
    /// Chance that a Skype direction is ever contradicted by the header
    /// test: 1e-6 \[project\].
    pub contradiction_alpha: f64,
    /// The mismatch rate the contradiction test is against: 0.5
    /// \[project\]. Random bytes (unknown FUNC 25 times in 32) are
    /// contradicted after about 12 messages.
    pub contradiction_rate: f64,
}

impl Default for DftConfig {
    fn default() -> Self {
        DftConfig {
            min_packets: 10,
            min_matching: 10,
            min_share: 0.9,
            min_voice_share: 0.5,
            func_voice: 0x0D,
            keepalive_max_bytes: 4,
            func_known: vec![0x00, 0x02, 0x03, 0x05, 0x07, 0x0D, 0x0F],
            contradiction_alpha: 1e-6,
            contradiction_rate: 0.5,
        }
    }
}

/// The rhythm test (NBC): window bands, and the sequential decision over
/// windows [BMM07 §4.2], \[Tstat\], method.md §4 and §8.
///
/// Each completed window gives a log-odds (media over other) from the
/// fitted Gaussian model; a direction adds them (each clamped to
/// `+-window_log_odds_clamp`) in Wald's sequential probability ratio test:
/// media when the sum reaches ln(1 / `media_alpha`), other when it falls to
/// -ln(1 / `other_alpha`). Were the model's likelihoods exact, those would
/// be the two error rates (up to a factor of 1 + e^-clamp a window); they
/// are a model's, so the README gives the rates measured as well.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NbcConfig {
    /// UDP payloads below this size are voice-band messages, and go to the
    /// voice windows; the others to the video windows: 400 \[Tstat\].
    pub voice_max_bytes: u32,
    /// Video bands: payloads in 400-490 or 800-980 bytes \[Tstat\].
    pub video_bands: Vec<(u32, u32)>,
    /// A direction is flagged as carrying video when more than this share of
    /// its packets is in a video band: 0.10 \[Tstat\], method.md §5.
    pub video_share: f64,
    /// Chance, under the model, that other traffic is accepted as media:
    /// 0.05 \[project\] (a boundary of 3.0). The rhythm test is a gate that
    /// rejects bulk and irregular traffic (windows of -10 and below); it
    /// cannot tell a voice-rhythm look-alike (a game, a VPN carrying a
    /// call) from a call, which the structural tests reject. A window of
    /// Skype voice scores 2 to 4 (README), so a window from each direction
    /// decides.
    pub media_alpha: f64,
    /// Chance, under the model, that media is rejected: 1e-6 \[project\]
    /// (a boundary of -13.8: at least two clearly non-media windows, so a
    /// call's first window, with its ringing, cannot reject it alone).
    pub other_alpha: f64,
    /// Bound on one window's log-odds in the sum, so that one window far
    /// from the training data cannot outweigh the rest: 10 \[project\].
    pub window_log_odds_clamp: f64,
    /// Smallest variance of a feature in a fitted class. The features are on
    /// comparable unit scales (logs, coefficients of variation, shares), and a
    /// feature that happens to be constant in the training windows of a class
    /// (the video share of pure voice calls) must not make every other value
    /// impossible: 0.01, a standard deviation of 0.1 \[project\].
    pub min_variance: f64,
    /// Gaps longer than this (seconds) are a pause or a call's set-up, not
    /// rhythm: the window's gap statistics skip them. 0.25 s [project; codec
    /// frames are 10-60 ms apart, method.md §4; with 1 s, the first window
    /// of a call that rang scored -0.4 in the median, with 0.25 s 2.6].
    pub max_gap_seconds: f64,
}

impl Default for NbcConfig {
    fn default() -> Self {
        NbcConfig {
            voice_max_bytes: 400,
            video_bands: vec![(400, 490), (800, 980)],
            video_share: 0.10,
            media_alpha: 0.05,
            other_alpha: 1e-6,
            window_log_odds_clamp: 10.0,
            min_variance: 0.01,
            max_gap_seconds: 0.25,
        }
    }
}

/// Endpoint correlation of classic Skype (issues 8 and 14): a Skype client
/// sends all its UDP through one port to many peers, in flows far too short
/// for a per-flow test, and its port also carries its short TCP
/// connections. See the README section "Endpoint correlation".
///
/// The endpoint signature is Skype's framing, tested over the endpoint's
/// messages with the sequential group tests of [`CscConfig`] (no port rule):
/// known FUNC values in nearly every message, the FUNC byte's low nibble
/// structured, the encrypted body random, a message ID that changes from
/// message to message, many distinct peers.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Whether endpoint correlation runs at all.
    pub enabled: bool,
    /// Most endpoints tracked at once. When full, the endpoint seen in
    /// one message longest ago makes room for a new one; when every
    /// endpoint has had two, the idle ones go, then the quarter idle
    /// longest.
    pub max_endpoints: usize,
    /// Most endpoints remembered as recognised Skype clients, and as their
    /// Skype peers (each set); beyond it the oldest is forgotten first, and
    /// counted: 65536 \[project\].
    pub max_recognised: usize,
    /// An endpoint idle this long (seconds) is forgotten.
    pub idle_timeout_seconds: f64,
    /// Minimum sampled messages (>= 8 payload bytes) at the endpoint: 24, the
    /// sequential tests' `random_min_samples` \[project\].
    pub min_packets: u32,
    /// Only the first this many messages of each flow direction feed its
    /// endpoints, and only until then is an open flow given an endpoint's
    /// verdict (offline, every flow gets it at the end of the run). The
    /// endpoint evidence is that of many short flows (signalling flows are 1
    /// to 5 messages, method.md §6); long flows are judged on their own, and
    /// this bounds the endpoint cost per flow: 8 \[project\].
    pub max_messages_per_flow: u32,
    /// Minimum distinct peers (addresses) seen from the endpoint, in either
    /// direction (one-way traffic counts): 5 \[project\].
    pub min_peers: u32,
    /// Share of the endpoint's messages whose FUNC value is a known Skype
    /// one: 0.9 \[project\] (random bytes give 7/32).
    pub min_known_func_share: f64,
    /// The encrypted body (groups 6-15, bytes 3-7) must be random: none of
    /// those groups called structured by the sequential test.
    pub body_groups: (usize, usize),
    /// The FUNC byte's low nibble (group 4) must be structured.
    pub func_group: usize,
    /// Share of the endpoint's consecutive messages whose 16-bit message ID
    /// (bytes 0-1) differs from the previous message's: Skype numbers its
    /// messages (random in calls, counting in signalling, method.md §1 and
    /// §6), where the client of a single service repeats its protocol's
    /// constant magic or header there: 0.9 \[project\].
    pub min_id_change_share: f64,
    /// A TCP flow is tied to a Skype client when one of its ends is a
    /// recognised client's address and Skype port (a classic client listens
    /// on the same port number for TCP as for UDP) or a Skype peer of one,
    /// or when it goes from a recognised client's address to a port its
    /// Skype peers use (late-era supernodes listen on a range of a few
    /// dozen ports, method.md §9); with this set, any port of a recognised
    /// client's address ties it ("host-level evidence"): off, as it calls
    /// Skype every encrypted TCP flow of another program on the client's
    /// host, BitTorrent's among them (the README gives the measurement)
    /// \[project\].
    pub host_level_tcp: bool,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            enabled: true,
            max_endpoints: 65_536,
            max_recognised: 65_536,
            idle_timeout_seconds: 600.0,
            min_packets: 24,
            max_messages_per_flow: 8,
            min_peers: 5,
            min_known_func_share: 0.9,
            body_groups: (6, 15),
            func_group: 4,
            min_id_change_share: 0.9,
            host_level_tcp: false,
        }
    }
}

/// How the classifiers' answers combine into a verdict (method.md §5).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerdictConfig {
    /// For UDP, the DFT must agree with the CSC class (E2E with E2E, E2O with
    /// E2O) before a direction is Skype: true, as Tstat does \[Tstat\].
    pub require_dft_for_udp: bool,
    /// After a Skype verdict the tests keep watching the flow until the
    /// direction that decided has this many samples (the paper's fixed
    /// window): a contradiction until then revises the verdict (an event
    /// says so); after it the verdict is final and the flow's state is
    /// released: 255 \[project\].
    pub confirm_samples: u32,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            require_dft_for_udp: true,
            confirm_samples: 255,
        }
    }
}

/// All tunable numbers of the method; part of every model file.
#[non_exhaustive]
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
#[non_exhaustive]
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
    /// Which tunnels the front end opens, so that the flows inside them are
    /// classified (and keyed with the tunnel that carried them).
    pub tunnels: TunnelConfig,
}

/// Which tunnels the front end opens (issue 17): all by default. A packet
/// of a tunnel that is not opened is the tunnel's own flow (UDP) or
/// skipped as `not_tcp_udp` (GRE, IP in IP), as before tunnels were read.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelConfig {
    /// GTP-U (mobile networks), UDP port `gtp_u_port`.
    pub gtp_u: bool,
    /// GRE (IP protocol 47): IP, Ethernet bridging, ERSPAN I/II/III, PPTP.
    pub gre: bool,
    /// VXLAN, UDP ports `vxlan_ports`.
    pub vxlan: bool,
    /// Geneve, UDP port `geneve_port`.
    pub geneve: bool,
    /// IPv4 and IPv6 in IPv4 or IPv6 (IP protocols 4 and 41).
    pub ip_in_ip: bool,
    /// CAPWAP data, UDP port `capwap_data_port`.
    pub capwap: bool,
    /// Most tunnels one packet may be nested in: 4 \[project\]; a deeper
    /// packet is skipped as `tunnel_too_deep`.
    pub max_depth: u8,
    /// 2152 (3GPP TS 29.281).
    pub gtp_u_port: u16,
    /// 4789 (IANA, RFC 7348) and 8472 (Linux's default).
    pub vxlan_ports: [u16; 2],
    /// 6081 (IANA, RFC 8926).
    pub geneve_port: u16,
    /// 5247 (IANA, RFC 5415).
    pub capwap_data_port: u16,
}

impl TunnelConfig {
    /// Every tunnel opened, at the usual ports (the default).
    pub const STANDARD: TunnelConfig = TunnelConfig {
        gtp_u: true,
        gre: true,
        vxlan: true,
        geneve: true,
        ip_in_ip: true,
        capwap: true,
        max_depth: 4,
        gtp_u_port: crate::wire::gtp::PORT,
        vxlan_ports: [crate::wire::vxlan::PORT, crate::wire::vxlan::LINUX_PORT],
        geneve_port: crate::wire::geneve::PORT,
        capwap_data_port: crate::wire::capwap::DATA_PORT,
    };

    /// Every tunnel closed: packets are read as they were before tunnels.
    pub const NONE: TunnelConfig = TunnelConfig {
        gtp_u: false,
        gre: false,
        vxlan: false,
        geneve: false,
        ip_in_ip: false,
        capwap: false,
        ..TunnelConfig::STANDARD
    };

    /// The deepest nesting followed whatever `max_depth` says (each level
    /// is a call on the stack).
    pub const DEEPEST: u8 = 16;

    /// Whether a UDP datagram between these ports may be a tunnel that is
    /// opened (its header then decides).
    #[inline]
    pub fn udp_port_may_tunnel(&self, src: u16, dst: u16) -> bool {
        (self.gtp_u && (dst == self.gtp_u_port || src == self.gtp_u_port))
            || (self.vxlan && self.vxlan_ports.contains(&dst))
            || (self.geneve && dst == self.geneve_port)
            || (self.capwap && (dst == self.capwap_data_port || src == self.capwap_data_port))
    }
}

impl Default for TunnelConfig {
    fn default() -> Self {
        TunnelConfig::STANDARD
    }
}

/// `all`, `none`, or a comma-separated list of the tunnels to open:
/// `gtp_u`, `gre` (with ERSPAN and PPTP), `vxlan`, `geneve`, `ip_in_ip`,
/// `capwap` (the other settings at their defaults).
impl std::str::FromStr for TunnelConfig {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "all" => return Ok(TunnelConfig::STANDARD),
            "none" => return Ok(TunnelConfig::NONE),
            _ => {}
        }
        let mut c = TunnelConfig::NONE;
        for name in s.split(',').map(str::trim) {
            match name {
                "gtp_u" | "gtp" => c.gtp_u = true,
                "gre" => c.gre = true,
                "vxlan" => c.vxlan = true,
                "geneve" => c.geneve = true,
                "ip_in_ip" => c.ip_in_ip = true,
                "capwap" => c.capwap = true,
                other => {
                    return Err(format!(
                        "unknown tunnel {other:?}: use all, none, or a list of gtp_u, gre, vxlan, geneve, ip_in_ip, capwap"
                    ))
                }
            }
        }
        Ok(c)
    }
}

impl FlowTableConfig {
    /// The default settings with at most `max_flows` flows held at once.
    pub fn with_max_flows(max_flows: usize) -> Self {
        FlowTableConfig {
            max_flows,
            ..FlowTableConfig::default()
        }
    }
}

impl Default for FlowTableConfig {
    fn default() -> Self {
        FlowTableConfig {
            udp_idle_timeout: 120.0,
            tcp_idle_timeout: 300.0,
            tcp_close_linger: 10.0,
            max_flows: 1 << 20,
            tunnels: TunnelConfig::default(),
        }
    }
}
