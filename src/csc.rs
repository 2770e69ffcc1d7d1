//! The chi-square classifier (CSC) and the per-packet header check (DFT).
//!
//! The CSC tests each of the 16 nibble groups of a direction's first 8
//! payload bytes against the uniform law with Pearson's chi-square, labels
//! the groups random / mixed / deterministic, and matches the labels against
//! the three signatures of classic Skype (method.md §2). The DFT counts the
//! packets whose header says Skype (method.md §3). Both read only the counts
//! of [`crate::features`].

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::config::{CscConfig, DftConfig, CSC_DEGREES_OF_FREEDOM, CSC_GROUPS, NIBBLE_VALUES};
use crate::features::{DftCounts, NibbleCounts};
use crate::packet::Transport;

/// Pearson's chi-square of one group against the uniform law over the `n`
/// samples actually taken: sum over v of (O_v - E)^2 / E with E = n / 16.
pub fn chi_square(counts: &[u32; NIBBLE_VALUES], n: u32) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let e = f64::from(n) / NIBBLE_VALUES as f64;
    counts
        .iter()
        .map(|&o| {
            let d = f64::from(o) - e;
            d * d
        })
        .sum::<f64>()
        / e
}

/// The chi-square of group `g` of a window, from its sum of squared counts:
/// sum (O - E)^2 / E = (16 / N) * sum O^2 - N, with E = N / 16. Exact, and
/// the same value as [`chi_square`] on the group's counts.
#[inline]
pub fn group_chi_square(counts: &NibbleCounts, g: usize) -> f64 {
    let n = counts.samples();
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    NIBBLE_VALUES as f64 * f64::from(counts.sum_squares(g)) / n - n
}

/// The 16 chi-square values of a window of nibble counts.
pub fn chi_squares(counts: &NibbleCounts) -> [f64; CSC_GROUPS] {
    let mut out = [0.0; CSC_GROUPS];
    for (g, o) in out.iter_mut().enumerate() {
        *o = group_chi_square(counts, g);
    }
    out
}

/// The p-value of a group's chi-square under the uniform law: the chance
/// that a random group gives at least this value (15 degrees of freedom,
/// survival function, which keeps precision where `1 - cdf` rounds to 0).
pub fn p_value(chi2: f64) -> f64 {
    match ChiSquared::new(CSC_DEGREES_OF_FREEDOM) {
        Ok(d) => d.sf(chi2.max(0.0)),
        Err(_) => f64::NAN,
    }
}

/// The label of one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupLabel {
    /// chi2 below the mixed threshold.
    Random,
    /// chi2 at least the mixed threshold, below the deterministic one.
    Mixed,
    /// chi2 at least the deterministic threshold.
    Deterministic,
}

/// Labels a chi-square value.
pub fn label(chi2: f64, config: &CscConfig) -> GroupLabel {
    if chi2 >= config.deterministic_threshold {
        GroupLabel::Deterministic
    } else if chi2 >= config.mixed_threshold {
        GroupLabel::Mixed
    } else {
        GroupLabel::Random
    }
}

/// The CSC's class of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CscClass {
    /// No signature matches.
    #[default]
    None,
    /// End-to-end UDP (client to client).
    E2e,
    /// End-to-out UDP (SkypeOut to a phone gateway).
    E2o,
    /// TCP: every group random.
    Tcp,
}

impl CscClass {
    /// "e2e", "e2o", "tcp" or "none".
    pub fn as_str(self) -> &'static str {
        match self {
            CscClass::None => "none",
            CscClass::E2e => "e2e",
            CscClass::E2o => "e2o",
            CscClass::Tcp => "tcp",
        }
    }

    /// Whether this is a Skype signature.
    pub fn is_skype(self) -> bool {
        self != CscClass::None
    }
}

/// The three signatures of classic Skype over the 16 group labels
/// (method.md §2, from \[BMM07\] and Tstat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChiSquareSignature {
    /// Groups 0-7 deterministic (a 4-byte connection ID), 8-15 random.
    E2o,
    /// Groups 0-3 random (message ID), 4 deterministic (FUNC low nibble),
    /// 5 at least mixed (one fixed bit), 6-15 random.
    E2e,
    /// All 16 groups random (RC4 stream).
    Tcp,
}

impl ChiSquareSignature {
    /// Whether the chi-square values match this signature.
    pub fn matches(self, chi2: &[f64; CSC_GROUPS], config: &CscConfig) -> bool {
        let det = |g: usize| chi2[g] >= config.deterministic_threshold;
        let random = |g: usize| chi2[g] < config.deterministic_threshold;
        match self {
            ChiSquareSignature::E2o => (0..8).all(det) && (8..16).all(random),
            ChiSquareSignature::E2e => {
                (0..4).all(random)
                    && det(4)
                    && chi2[5] >= config.mixed_threshold
                    && (6..16).all(random)
            }
            ChiSquareSignature::Tcp => (0..16).all(random),
        }
    }

    /// The sampled packets this signature needs.
    pub fn min_packets(self, config: &CscConfig) -> u32 {
        match self {
            ChiSquareSignature::E2o => config.e2o_min_packets,
            ChiSquareSignature::E2e => config.e2e_min_packets,
            ChiSquareSignature::Tcp => config.tcp_min_packets,
        }
    }

    /// The class this signature gives.
    pub fn class(self) -> CscClass {
        match self {
            ChiSquareSignature::E2o => CscClass::E2o,
            ChiSquareSignature::E2e => CscClass::E2e,
            ChiSquareSignature::Tcp => CscClass::Tcp,
        }
    }
}

/// Chi-square values of a window, computed group by group on demand: most
/// windows of non-Skype traffic fail a signature on their first group, so
/// the per-packet test rarely needs all sixteen.
pub struct LazyChi2<'a> {
    counts: &'a NibbleCounts,
    values: [f64; CSC_GROUPS],
    known: u16,
}

impl<'a> LazyChi2<'a> {
    /// A lazy view of a window.
    pub fn new(counts: &'a NibbleCounts) -> Self {
        LazyChi2 {
            counts,
            values: [0.0; CSC_GROUPS],
            known: 0,
        }
    }

    /// The chi2 of group `g`.
    #[inline]
    pub fn get(&mut self, g: usize) -> f64 {
        if self.known & (1 << g) == 0 {
            self.values[g] = group_chi_square(self.counts, g);
            self.known |= 1 << g;
        }
        self.values[g]
    }
}

/// Classifies a window of nibble counts, computing only the groups the
/// signatures need, in the order they are tested; same answer as
/// [`classify`] on the full chi-square values.
pub fn classify_counts(
    counts: &NibbleCounts,
    transport: Transport,
    config: &CscConfig,
) -> CscClass {
    let n = counts.samples();
    let mut c = LazyChi2::new(counts);
    let t = config.deterministic_threshold;
    match transport {
        Transport::Udp => {
            if n >= config.e2o_min_packets
                && (0..8).all(|g| c.get(g) >= t)
                && (8..16).all(|g| c.get(g) < t)
            {
                return CscClass::E2o;
            }
            if n >= config.e2e_min_packets
                && c.get(4) >= t
                && c.get(5) >= config.mixed_threshold
                && (0..4).all(|g| c.get(g) < t)
                && (6..16).all(|g| c.get(g) < t)
            {
                return CscClass::E2e;
            }
            CscClass::None
        }
        Transport::Tcp => {
            if n >= config.tcp_min_packets && (0..16).all(|g| c.get(g) < t) {
                CscClass::Tcp
            } else {
                CscClass::None
            }
        }
    }
}

/// Classifies a window of chi-square values taken over `n` samples of a
/// direction of `transport`. UDP tests E2O first, then E2E; TCP tests TCP.
/// A signature counts only once its minimum packets are sampled.
pub fn classify(
    chi2: &[f64; CSC_GROUPS],
    n: u32,
    transport: Transport,
    config: &CscConfig,
) -> CscClass {
    let candidates: &[ChiSquareSignature] = match transport {
        Transport::Udp => &[ChiSquareSignature::E2o, ChiSquareSignature::E2e],
        Transport::Tcp => &[ChiSquareSignature::Tcp],
    };
    candidates
        .iter()
        .find(|s| n >= s.min_packets(config) && s.matches(chi2, config))
        .map_or(CscClass::None, |s| s.class())
}

/// The DFT's class of a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DftClass {
    /// Too few packets to judge.
    #[default]
    Undecided,
    /// No rule holds.
    None,
    /// More than 100 FUNC 0x0D data messages, over 90 % of the direction.
    E2e,
    /// More than 100 messages repeating the previous 4-byte prefix, over 90 %.
    E2o,
    /// Over 90 % of messages carry known FUNC values.
    Signalling,
}

impl DftClass {
    /// Snake-case name for records.
    pub fn as_str(self) -> &'static str {
        match self {
            DftClass::Undecided => "undecided",
            DftClass::None => "none",
            DftClass::E2e => "e2e",
            DftClass::E2o => "e2o",
            DftClass::Signalling => "signalling",
        }
    }

    /// Whether the DFT agrees with a CSC class (method.md §5: Tstat requires
    /// it for UDP). Signalling agrees with nothing per flow.
    pub fn agrees_with(self, csc: CscClass) -> bool {
        matches!(
            (self, csc),
            (DftClass::E2e, CscClass::E2e) | (DftClass::E2o, CscClass::E2o)
        )
    }
}

/// Applies the DFT rules to a direction's counters.
pub fn dft_class(c: &DftCounts, config: &DftConfig) -> DftClass {
    if c.packets < config.min_packets {
        return DftClass::Undecided;
    }
    let total = f64::from(c.packets);
    let holds = |matching: u32| {
        matching > config.min_matching && f64::from(matching) > config.min_share * total
    };
    if holds(c.voice) {
        DftClass::E2e
    } else if holds(c.prefix_repeats) {
        DftClass::E2o
    } else if f64::from(c.known) > config.min_share * total {
        DftClass::Signalling
    } else {
        DftClass::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CSC_BYTES;

    /// xorshift64*: deterministic test randomness.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn bytes(&mut self) -> [u8; CSC_BYTES] {
            self.next().to_le_bytes()
        }
    }

    /// Unbounded counts for the statistics tests (the flow windows stop at 255).
    struct Counts {
        c: [[u32; 16]; 16],
        n: u32,
    }
    impl Counts {
        fn new() -> Self {
            Counts {
                c: [[0; 16]; 16],
                n: 0,
            }
        }
        fn add(&mut self, h: &[u8; 8]) {
            for (k, &b) in h.iter().enumerate() {
                self.c[2 * k][usize::from(b & 15)] += 1;
                self.c[2 * k + 1][usize::from(b >> 4)] += 1;
            }
            self.n += 1;
        }
        fn chi2(&self) -> [f64; 16] {
            let mut o = [0.0; 16];
            for (x, c) in o.iter_mut().zip(self.c.iter()) {
                *x = chi_square(c, self.n);
            }
            o
        }
    }

    #[test]
    fn random_groups_give_chi2_near_15_for_any_n() {
        let mut rng = Rng(7);
        for &n in &[16u32, 160, 1600, 16000] {
            let mut c = Counts::new();
            let mut means = 0.0;
            let trials = 40;
            for _ in 0..trials {
                c = Counts::new();
                for _ in 0..n {
                    c.add(&rng.bytes());
                }
                means += c.chi2().iter().sum::<f64>() / 16.0;
            }
            let mean = means / f64::from(trials);
            // Mean of 640 chi2(15) draws: sd about 5.5 / sqrt(640) = 0.22.
            assert!((mean - 15.0).abs() < 1.5, "n={n} mean chi2 {mean}");
            assert!(c.chi2().iter().all(|&x| x < 150.0));
        }
    }

    #[test]
    fn p_values_of_random_groups_are_uniform() {
        let mut rng = Rng(99);
        let mut below = [0u32; 10];
        let mut total = 0u32;
        for _ in 0..400 {
            let mut c = Counts::new();
            for _ in 0..256 {
                c.add(&rng.bytes());
            }
            for x in c.chi2() {
                let p = p_value(x);
                below[((p * 10.0) as usize).min(9)] += 1;
                total += 1;
            }
        }
        // 6400 p-values in 10 bins: 640 each, sd about 24.
        for (i, &b) in below.iter().enumerate() {
            assert!(
                (b as f64 - f64::from(total) / 10.0).abs() < 120.0,
                "bin {i}: {b}"
            );
        }
        assert!(p_value(150.0) < 1e-20 && p_value(150.0) > 0.0);
        assert!((p_value(0.0) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn constant_group_gives_15n_and_one_fixed_bit_about_n() {
        let mut rng = Rng(3);
        for &n in &[50u32, 500, 5000] {
            let mut c = Counts::new();
            for _ in 0..n {
                let mut h = rng.bytes();
                h[0] = 0x5A; // groups 0 and 1 constant
                h[1] &= 0x7F; // group 3: one fixed bit (bit 7)
                c.add(&h);
            }
            let x = c.chi2();
            assert!((x[0] - 15.0 * f64::from(n)).abs() < 1e-6);
            assert!((x[1] - 15.0 * f64::from(n)).abs() < 1e-6);
            // One fixed bit: chi2 = N plus the chi2(7)-like noise of the
            // three random bits (mean about 15).
            let ratio = (x[3] - 15.0) / f64::from(n);
            assert!(
                (0.7..1.3).contains(&ratio),
                "n={n} one fixed bit (chi2-15)/N = {ratio}"
            );
        }
    }

    fn e2e_message(rng: &mut Rng) -> [u8; 8] {
        let mut h = rng.bytes();
        h[2] = (h[2] & 0x70) | 0x0D; // FUNC 0x0D, bit 7 zero
        h
    }

    fn e2o_message(rng: &mut Rng) -> [u8; 8] {
        let mut h = rng.bytes();
        h[..4].copy_from_slice(&[0x12, 0x34, 0xAB, 0xCD]);
        h
    }

    /// The first N at which `make` messages are classified as `want`.
    fn first_n(
        make: fn(&mut Rng) -> [u8; 8],
        transport: Transport,
        seed: u64,
    ) -> Vec<(u32, CscClass)> {
        let cfg = CscConfig::default();
        let mut rng = Rng(seed);
        let mut c = NibbleCounts::default();
        let mut out = Vec::new();
        for _ in 0..250 {
            c.add(&make(&mut rng));
            out.push((
                c.samples(),
                classify(&chi_squares(&c), c.samples(), transport, &cfg),
            ));
        }
        out
    }

    #[test]
    fn e2o_is_recognised_at_10_packets_not_before() {
        for seed in 1..20 {
            let seq = first_n(e2o_message, Transport::Udp, seed);
            for (n, class) in seq {
                if n < 10 {
                    assert_eq!(class, CscClass::None, "n={n}");
                } else {
                    assert_eq!(class, CscClass::E2o, "seed {seed} n={n}");
                }
            }
        }
    }

    #[test]
    fn e2e_is_recognised_from_100_packets_not_before() {
        let mut first = Vec::new();
        for seed in 1..30 {
            let seq = first_n(e2e_message, Transport::Udp, seed);
            let at = seq
                .iter()
                .find(|(_, c)| *c == CscClass::E2e)
                .map(|(n, _)| *n);
            let at = at.expect("E2E never reached");
            assert!(at >= 100, "seed {seed}: E2E at {at}");
            first.push(at);
            // Once group 5 has clearly passed 100 (chi2 ~ N), it holds.
            assert!(seq
                .iter()
                .filter(|(n, _)| *n >= 160)
                .all(|(_, c)| *c == CscClass::E2e));
        }
        first.sort_unstable();
        let median = first[first.len() / 2];
        assert!((100..140).contains(&median), "median E2E at {median}");
    }

    #[test]
    fn sum_of_squares_form_is_exact() {
        let mut rng = Rng(5);
        let mut c = NibbleCounts::default();
        for _ in 0..200 {
            let mut h = rng.bytes();
            h[3] &= 0x3F;
            c.add(&h);
            for g in 0..16 {
                let direct = chi_square(&c.group(g), c.samples());
                assert!((group_chi_square(&c, g) - direct).abs() < 1e-9 * (1.0 + direct));
            }
        }
    }

    #[test]
    fn lazy_classification_agrees_with_full() {
        let cfg = CscConfig::default();
        let mut rng = Rng(77);
        let makers: [fn(&mut Rng) -> [u8; 8]; 3] = [e2e_message, e2o_message, |r| r.bytes()];
        for make in makers {
            for transport in [Transport::Udp, Transport::Tcp] {
                let mut c = NibbleCounts::default();
                for _ in 0..255 {
                    c.add(&make(&mut rng));
                    let full = classify(&chi_squares(&c), c.samples(), transport, &cfg);
                    assert_eq!(classify_counts(&c, transport, &cfg), full);
                }
            }
        }
    }

    #[test]
    fn tcp_is_recognised_at_50_segments_not_before() {
        let seq = first_n(|r| r.bytes(), Transport::Tcp, 5);
        for (n, class) in seq {
            assert_eq!(class == CscClass::Tcp, n >= 50, "n={n}");
        }
        // Random UDP is not TCP, nor anything else.
        let seq = first_n(|r| r.bytes(), Transport::Udp, 5);
        assert!(seq.iter().all(|(_, c)| *c == CscClass::None));
    }

    /// Look-alikes never give E2E or E2O, at any N up to 10,000.
    fn never_udp_skype(make: &mut dyn FnMut(&mut Rng, u32) -> [u8; 8], name: &str) {
        let cfg = CscConfig::default();
        let mut rng = Rng(42);
        let mut c = Counts::new();
        for i in 0..10_000u32 {
            c.add(&make(&mut rng, i));
            let class = classify(&c.chi2(), c.n, Transport::Udp, &cfg);
            assert_eq!(class, CscClass::None, "{name} at N={}", c.n);
        }
    }

    #[test]
    fn look_alikes_are_never_e2e_or_e2o() {
        // RTP: V=2, PT fixed, sequence number counting, timestamp, SSRC.
        never_udp_skype(
            &mut |r, i| {
                let seq = (i as u16).wrapping_add(1000).to_be_bytes();
                let ts = (i.wrapping_mul(160)).to_be_bytes();
                let _ = r.next();
                [0x80, 0x00, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3]]
            },
            "RTP",
        );
        // SRTP: same header (encrypted payload after it).
        never_udp_skype(
            &mut |r, i| {
                let seq = (i as u16).to_be_bytes();
                let ts = (i.wrapping_mul(960)).to_be_bytes();
                let m = if r.next() % 50 == 0 { 0x80 } else { 0 };
                [0x80, 0x6F | m, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3]]
            },
            "SRTP",
        );
        // DNS: random ID, constant flags and counts.
        never_udp_skype(
            &mut |r, _| {
                let id = r.next().to_le_bytes();
                [id[0], id[1], 0x01, 0x00, 0x00, 0x01, 0x00, 0x00]
            },
            "DNS",
        );
        // QUIC short header: fixed first bits, constant connection ID.
        never_udp_skype(
            &mut |r, _| {
                let b = r.next().to_le_bytes();
                [
                    0x40 | (b[0] & 0x3F),
                    0xC3,
                    0x5E,
                    0x11,
                    0x9A,
                    0x07,
                    0x2B,
                    b[7],
                ]
            },
            "QUIC",
        );
        // WireGuard transport data: type 4, 3 zero bytes, receiver index, counter.
        never_udp_skype(
            &mut |_, i| {
                let c = i.to_le_bytes();
                [4, 0, 0, 0, 0xDE, 0xAD, 0xBE, c[0]]
            },
            "WireGuard",
        );
        never_udp_skype(&mut |r, _| r.bytes(), "random UDP");
    }

    #[test]
    fn dft_rules() {
        let cfg = DftConfig::default();
        let mut c = DftCounts {
            packets: 9,
            ..DftCounts::default()
        };
        assert_eq!(dft_class(&c, &cfg), DftClass::Undecided);
        c.packets = 110;
        c.voice = 100;
        // 100 is not more than 100.
        assert_eq!(dft_class(&c, &cfg), DftClass::None);
        c.voice = 101;
        c.packets = 112;
        assert_eq!(dft_class(&c, &cfg), DftClass::E2e);
        c.voice = 0;
        c.prefix_repeats = 111;
        assert_eq!(dft_class(&c, &cfg), DftClass::E2o);
        c.prefix_repeats = 0;
        c.known = 102;
        assert_eq!(dft_class(&c, &cfg), DftClass::Signalling);
        assert!(DftClass::E2e.agrees_with(CscClass::E2e));
        assert!(!DftClass::E2o.agrees_with(CscClass::E2e));
    }
}
