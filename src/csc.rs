//! The chi-square classifier (CSC): is each nibble group of a direction's
//! first 8 payload bytes random, or structured, and do the groups match one
//! of Skype's signatures?
//!
//! Pearson's chi-square of each group against the uniform law is computed
//! for the records and the pictures (the paper's statistic and labels,
//! method.md §2). The decisions are sequential (method.md §8): each group is
//! tested by a test martingale, the Bayes factor of a Dirichlet mixture
//! against the uniform law ([`GroupTests`]), whose chance of ever crossing
//! its boundary under a random group is bounded by Ville's inequality however
//! often it is looked at; group 5 (one fixed bit) by a likelihood ratio made
//! for that alternative. A group called structured stays so ([`CscState`]);
//! a signature holds when its structured groups are, its random groups have
//! not been and have had the samples to be ([`ChiSquareSignature::state`]).
//! The numbers are in [`CscConfig`].

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};
use statrs::function::gamma::ln_gamma;

use crate::config::{
    CscConfig, CSC_DEGREES_OF_FREEDOM, CSC_GROUPS, CSC_WINDOW_PACKETS, NIBBLE_VALUES,
};
use crate::features::NibbleCounts;

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
    let n = counts.samples();
    if n == 0 {
        return out;
    }
    let n = f64::from(n);
    for (o, s) in out.iter_mut().zip(counts.all_sum_squares()) {
        // As group_chi_square computes it.
        *o = NIBBLE_VALUES as f64 * f64::from(s) / n - n;
    }
    out
}

/// The asymptotic p-value of a group's chi-square under the uniform law
/// (15 degrees of freedom, survival function, which keeps precision where
/// `1 - cdf` rounds to 0). For reports: the sequential decisions do not use
/// it, as the chi-square law is far off in its tails at small samples (at
/// 10 samples a value seen 7 times gives chi2 >= 67, p = 4e-8 by the law,
/// while its exact chance is about 7e-6).
pub fn p_value(chi2: f64) -> f64 {
    match ChiSquared::new(CSC_DEGREES_OF_FREEDOM) {
        Ok(d) => d.sf(chi2.max(0.0)),
        Err(_) => f64::NAN,
    }
}

/// The CSC's class of a direction: the signature that holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CscClass {
    /// No signature holds.
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

/// The sequential tests of the 16 groups, with their boundaries: tables of
/// the Dirichlet mixture's log-gamma terms for window counts up to 255, and
/// the per-sample terms of the fixed-bit likelihood ratio. Built once per
/// classifier from the configuration.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub struct GroupTests {
    /// ln Gamma(k + a) - ln Gamma(a), for a count k.
    ln_gamma_count: [f64; 256],
    /// n ln 16 + ln Gamma(16 a) - ln Gamma(n + 16 a), for n samples.
    base: [f64; 256],
    /// ln(1 / alpha).
    ln_inv_alpha: f64,
    /// ln(2 (1 - slip)) and ln(2 slip): a sample with and against the fixed bit.
    with_bit: f64,
    against_bit: f64,
    /// For a window of n samples: the largest sum of squared counts of a
    /// group whose e-value cannot reach even the first window's boundary
    /// (see [`GroupTests::quiet_squares`]).
    quiet_squares: [u32; 256],
    /// The fewest samples at which the fixed-bit ratio can reach the first
    /// window's boundary.
    fixed_bit_min_samples: u32,
    /// The boundaries of the first [`BOUNDARIES_KEPT`] windows.
    boundaries: [f64; BOUNDARIES_KEPT],
}

/// Windows whose boundary [`GroupTests`] keeps computed (a direction past
/// them computes its own).
const BOUNDARIES_KEPT: usize = 16;

/// The absolute margin, in nats, by which a group's bound must stay below
/// the boundary for its exact e-value to be skipped: far above the rounding
/// error of a sum of 17 table terms (about 1e-12 at these magnitudes).
const QUIET_MARGIN: f64 = 1e-6;

impl GroupTests {
    /// The tests of a configuration.
    pub fn new(config: &CscConfig) -> Self {
        let a = config.dirichlet_prior;
        let k = NIBBLE_VALUES as f64;
        let mut ln_gamma_count = [0.0; 256];
        let mut base = [0.0; 256];
        let lg_a = ln_gamma(a);
        let lg_ka = ln_gamma(k * a);
        for (c, (l, b)) in ln_gamma_count.iter_mut().zip(base.iter_mut()).enumerate() {
            let c = c as f64;
            *l = ln_gamma(c + a) - lg_a;
            *b = c * k.ln() + lg_ka - ln_gamma(c + k * a);
        }
        let slip = config.fixed_bit_slip;
        let mut tests = GroupTests {
            ln_gamma_count,
            base,
            ln_inv_alpha: -config.group_alpha.ln(),
            with_bit: (2.0 * (1.0 - slip)).ln(),
            against_bit: (2.0 * slip).ln(),
            quiet_squares: [0; 256],
            fixed_bit_min_samples: 0,
            boundaries: [0.0; BOUNDARIES_KEPT],
        };
        for (w, b) in tests.boundaries.iter_mut().enumerate() {
            *b = boundary_of(tests.ln_inv_alpha, w as u32 + 1);
        }
        let first = tests.boundaries[0];
        tests.quiet_squares = quiet_squares_table(&tests, config, first);
        // The ratio is at most its largest term, at most n times the larger
        // of ln(2 (1 - slip)) and ln(2 slip).
        let per_sample = tests.with_bit.max(tests.against_bit);
        tests.fixed_bit_min_samples = if per_sample > 0.0 && first.is_finite() {
            ((first - QUIET_MARGIN) / per_sample)
                .floor()
                .clamp(0.0, 255.0) as u32
        } else {
            0
        };
        tests
    }

    /// For a window of `n` samples, the largest sum of squared counts of a
    /// group (sum over its 16 values of count^2, n^2 / 16 for a perfectly
    /// even group, n^2 for a constant one) at which the group's log e-value
    /// is surely below the first window's boundary, and so below every
    /// window's: a look computes the e-value only of groups above it. A
    /// random group's sum of squares is about n^2 / 16 + n, well below:
    /// at the defaults no random group of 10^4 simulated ones at any n was
    /// above it, so a look at random data computes no e-value.
    pub fn quiet_squares(&self, n: u32) -> u32 {
        self.quiet_squares[(n as usize).min(255)]
    }

    /// The log e-value of group `g` of a window: the log Bayes factor of the
    /// Dirichlet mixture over the window's counts against the uniform law.
    /// Its expectation under a random group is 1 at every sample size: it
    /// is the product of the mixture's predictive probabilities over the
    /// uniform ones, a martingale.
    #[inline]
    pub fn log_e_value(&self, counts: &NibbleCounts, g: usize) -> f64 {
        self.log_e_value_of(&counts.group(g))
    }

    /// The log e-value of 16 value counts (at most 255 samples in all).
    #[inline]
    pub fn log_e_value_of(&self, counts: &[u32; NIBBLE_VALUES]) -> f64 {
        let n: u32 = counts.iter().sum();
        let mut s = self.base[(n as usize).min(255)];
        for &v in counts {
            s += self.ln_gamma_count[(v as usize).min(255)];
        }
        s
    }

    /// The 8 terms of the fixed-bit ratio of group `g`: for each bit and
    /// value, the log likelihood ratio of "this bit has this value, the
    /// others are uniform" against the uniform law.
    fn fixed_bit_terms(&self, counts: &NibbleCounts, g: usize) -> [f64; 8] {
        let c = counts.group(g);
        let n = f64::from(counts.samples());
        let mut terms = [0.0f64; 8];
        for bit in 0..4 {
            let set: u32 = c
                .iter()
                .enumerate()
                .filter(|(v, _)| v & (1 << bit) != 0)
                .map(|(_, &x)| x)
                .sum();
            for (k, with) in [f64::from(set), n - f64::from(set)].into_iter().enumerate() {
                terms[2 * bit + k] = with * self.with_bit + (n - with) * self.against_bit;
            }
        }
        terms
    }

    /// The log-mean of the exponentials of the terms (at most the largest).
    fn log_mean_exp(terms: &[f64; 8]) -> f64 {
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        max + (terms.iter().map(|t| (t - max).exp()).sum::<f64>() / 8.0).ln()
    }

    /// The log likelihood ratio that one of the 4 bits of group `g` is fixed
    /// (the others uniform), a mixture over the 8 bit and value pairs with
    /// equal weights, against the uniform law.
    pub fn fixed_bit_log_lr(&self, counts: &NibbleCounts, g: usize) -> f64 {
        Self::log_mean_exp(&self.fixed_bit_terms(counts, g))
    }

    /// Whether the fixed-bit ratio of group `g` reaches `boundary` (computed
    /// only when the samples could reach it): the ratio is a log-mean of 8
    /// terms, at most the largest, so the exponentials are computed only
    /// when the largest term reaches it.
    pub fn fixed_bit_crosses(
        &self,
        counts: &NibbleCounts,
        g: usize,
        boundary: impl FnOnce() -> f64,
    ) -> bool {
        if counts.samples() < self.fixed_bit_min_samples {
            return false;
        }
        let terms = self.fixed_bit_terms(counts, g);
        let largest = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let boundary = boundary();
        largest >= boundary && Self::log_mean_exp(&terms) >= boundary
    }

    /// The boundary of the `window`-th window (1-based): ln(1 / alpha) plus
    /// ln(pi^2 w^2 / 6), so that the windows' alphas sum to alpha.
    #[inline]
    pub fn boundary(&self, window: u32) -> f64 {
        match self.boundaries.get(window.max(1) as usize - 1) {
            Some(&b) => b,
            None => boundary_of(self.ln_inv_alpha, window),
        }
    }
}

/// Quiet-squares tables computed in this process, by the bits of the
/// configuration's prior, alpha and slip (a few at most: one per model in
/// use), newest last.
#[allow(clippy::type_complexity)]
static QUIET_TABLES: Mutex<Vec<([u64; 2], Box<[u32; 256]>)>> = Mutex::new(Vec::new());

/// Most tables [`QUIET_TABLES`] keeps.
const QUIET_TABLES_KEPT: usize = 8;

/// [`GroupTests::quiet_squares`] for every window size, computed once per
/// configuration in a process.
fn quiet_squares_table(tests: &GroupTests, config: &CscConfig, boundary: f64) -> [u32; 256] {
    let key = [
        config.dirichlet_prior.to_bits(),
        config.group_alpha.to_bits(),
    ];
    if let Ok(tables) = QUIET_TABLES.lock() {
        if let Some((_, t)) = tables.iter().find(|(k, _)| *k == key) {
            return **t;
        }
    }
    let mut table = [0u32; 256];
    let mut beta = None;
    for (n, q) in table.iter_mut().enumerate() {
        let (quiet, best) = quiet_squares_of(tests, n, boundary, beta);
        *q = quiet;
        beta = best.or(beta);
    }
    if let Ok(mut tables) = QUIET_TABLES.lock() {
        if tables.len() >= QUIET_TABLES_KEPT {
            tables.remove(0);
        }
        tables.push((key, Box::new(table)));
    }
    table
}

/// The largest sum of squared counts S of a group of `n` samples whose log
/// e-value is surely below `boundary`, from a quadratic majorant of the
/// count terms: for any beta > 0, with
/// alpha = max over c in 1..=n of (L(c) - beta c^2) / c (L the table of
/// ln Gamma(c + a) - ln Gamma(a), L(0) = 0), every count c in 0..=n has
/// L(c) <= alpha c + beta c^2, so the log e-value
/// base(n) + sum L(c_v) <= base(n) + alpha n + beta S. Any beta gives a
/// sound bound; the one that admits the largest S is searched for by golden
/// section (S(beta) is quasi-concave: a concave function of beta over
/// beta), near the previous n's best (`near`) when there is one. Returns
/// the bound (0 where none helps, so that every group is computed;
/// `u32::MAX` where no window of n samples can reach the boundary at all)
/// and the beta used.
fn quiet_squares_of(
    tests: &GroupTests,
    n: usize,
    boundary: f64,
    near: Option<f64>,
) -> (u32, Option<f64>) {
    let (Some(&base), Some(terms)) = (tests.base.get(n), tests.ln_gamma_count.get(1..=n)) else {
        return (0, None);
    };
    if n == 0 || !boundary.is_finite() {
        return (0, None);
    }
    let limit = boundary - QUIET_MARGIN;
    // The most concentrated window (one value n times) has the largest
    // e-value of all (a convex sum is largest at a vertex of the simplex).
    if terms.last().is_some_and(|&l| base + l < limit) {
        return (u32::MAX, None);
    }
    let n_f = n as f64;
    let squares_bound = |beta: f64| -> f64 {
        let alpha = terms
            .iter()
            .enumerate()
            .map(|(i, &l)| {
                let c = (i + 1) as f64;
                (l - beta * c * c) / c
            })
            .fold(f64::NEG_INFINITY, f64::max);
        // Rounding of alpha: a hair up keeps the majorant above.
        let alpha = alpha + 1e-12 * alpha.abs().max(1.0);
        (limit - base - alpha * n_f) / beta
    };
    let ((mut lo, mut hi), steps) = match near {
        Some(b) if b.is_finite() && b > 0.0 => ((b / 4.0, b * 4.0), 20),
        _ => ((1e-4f64, 4.0f64), 48),
    };
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..steps {
        let m1 = hi - phi * (hi - lo);
        let m2 = lo + phi * (hi - lo);
        if squares_bound(m1) < squares_bound(m2) {
            lo = m1;
        } else {
            hi = m2;
        }
    }
    let beta = (lo + hi) / 2.0;
    let s = squares_bound(beta);
    if s.is_finite() && s >= 1.0 {
        // S is an integer: below s means at most ceil(s) - 1.
        (
            (s.ceil() - 1.0).min(f64::from(u32::MAX - 1)) as u32,
            Some(beta),
        )
    } else {
        (0, None)
    }
}

/// ln(1 / alpha) plus ln(pi^2 w^2 / 6) for the `window`-th window.
fn boundary_of(ln_inv_alpha: f64, window: u32) -> f64 {
    let w = f64::from(window.max(1));
    ln_inv_alpha + (std::f64::consts::PI * std::f64::consts::PI * w * w / 6.0).ln()
}

/// The window (1-based) that a direction's current counts belong to.
#[doc(hidden)]
pub fn window_index(counts: &NibbleCounts, sampled_total: u32) -> u32 {
    sampled_total.saturating_sub(counts.samples()) / u32::from(CSC_WINDOW_PACKETS) + 1
}

/// What the sequential tests have decided about a direction's groups: each
/// decision, once made, stands (it was made at its alpha).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CscState {
    /// Bit g: group g has been called structured (not random).
    pub structured: u16,
    /// Group 5 has been shown to have a fixed bit.
    pub fixed_bit: bool,
}

/// The group whose fixed bit the E2E signature asks for (the FUNC byte's
/// high nibble, bit 7 fixed).
pub const FIXED_BIT_GROUP: usize = 5;

impl CscState {
    /// One look at a window's counts: calls structured the groups whose
    /// e-value crosses the window's boundary, and group 5's fixed bit.
    /// The e-value is computed only for the groups whose sum of squared
    /// counts is above [`GroupTests::quiet_squares`] (the others are surely
    /// below the boundary), so the decisions are those of computing every
    /// group's.
    #[inline]
    pub fn look(&mut self, counts: &NibbleCounts, window: u32, tests: &GroupTests) {
        let quiet = tests.quiet_squares(counts.samples());
        if quiet != u32::MAX && self.structured != u16::MAX {
            let squares = counts.all_sum_squares();
            for (g, &s) in squares.iter().enumerate() {
                if self.structured & (1 << g) == 0
                    && s > quiet
                    && tests.log_e_value(counts, g) >= tests.boundary(window)
                {
                    self.structured |= 1 << g;
                }
            }
        }
        if !self.fixed_bit
            && tests.fixed_bit_crosses(counts, FIXED_BIT_GROUP, || tests.boundary(window))
        {
            self.fixed_bit = true;
        }
    }
}

/// Where a signature stands for a direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignatureState {
    /// Not enough evidence either way.
    #[default]
    Pending,
    /// Every condition holds.
    Holds,
    /// The evidence contradicts it (a group that must be random is not).
    Contradicted,
}

/// The three signatures of classic Skype over the 16 groups (method.md §2,
/// from \[BMM07\] and Tstat).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChiSquareSignature {
    /// Groups 0-7 deterministic (a 4-byte connection ID), 8-15 random.
    E2o,
    /// Groups 0-3 random (message ID), 4 deterministic (FUNC low nibble),
    /// 5 mixed (one fixed bit), 6-15 random.
    E2e,
    /// All 16 groups random (RC4 stream).
    Tcp,
}

impl ChiSquareSignature {
    /// The groups that must be random, as a bit mask.
    pub const fn random_groups(self) -> u16 {
        match self {
            ChiSquareSignature::E2o => 0xFF00,
            ChiSquareSignature::E2e => !(0b11 << 4),
            ChiSquareSignature::Tcp => 0xFFFF,
        }
    }

    /// The groups that must be structured, as a bit mask.
    pub const fn structured_groups(self) -> u16 {
        match self {
            ChiSquareSignature::E2o => 0x00FF,
            ChiSquareSignature::E2e => 1 << 4,
            ChiSquareSignature::Tcp => 0,
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

    /// Where this signature stands, from the group decisions and the
    /// samples taken: contradicted as soon as a group that must be random
    /// has been called structured; holding once every group that must be
    /// structured is, group 5 has its fixed bit (E2E), and the samples reach
    /// `random_min_samples` (the power to see structure in the random ones).
    pub fn state(self, csc: &CscState, sampled: u32, config: &CscConfig) -> SignatureState {
        if csc.structured & self.random_groups() != 0 {
            return SignatureState::Contradicted;
        }
        let structured = self.structured_groups();
        if sampled >= config.random_min_samples
            && csc.structured & structured == structured
            && (self != ChiSquareSignature::E2e || csc.fixed_bit)
        {
            SignatureState::Holds
        } else {
            SignatureState::Pending
        }
    }

    /// The first group that contradicts this signature, if one does.
    pub fn contradicting_group(self, csc: &CscState) -> Option<usize> {
        let bad = csc.structured & self.random_groups();
        (bad != 0).then(|| bad.trailing_zeros() as usize)
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
            // All groups at once: the very values, bit for bit.
            let all = chi_squares(&c);
            for (g, x) in all.iter().enumerate() {
                assert_eq!(x.to_bits(), group_chi_square(&c, g).to_bits());
            }
        }
        assert_eq!(chi_squares(&NibbleCounts::default()), [0.0; CSC_GROUPS]);
    }

    /// The e-value is the product of the mixture's predictive probabilities
    /// over the uniform ones: computed sample by sample, it equals the
    /// closed form over the counts.
    #[test]
    fn e_value_is_the_product_of_predictive_ratios() {
        let cfg = CscConfig::default();
        let t = GroupTests::new(&cfg);
        let mut rng = Rng(11);
        let mut c = NibbleCounts::default();
        let mut running = [0.0f64; 16];
        let a = cfg.dirichlet_prior;
        for _ in 0..255 {
            let mut h = rng.bytes();
            h[1] &= 0x33; // groups 2 and 3 with two fixed bits
            let n = f64::from(c.samples());
            for (k, &b) in h.iter().enumerate() {
                for (g, v) in [(2 * k, b & 15), (2 * k + 1, b >> 4)] {
                    let before = f64::from(c.count(g, usize::from(v)));
                    running[g] += (16.0 * (before + a) / (n + 16.0 * a)).ln();
                }
            }
            c.add(&h);
            for (g, r) in running.iter().enumerate() {
                assert!((t.log_e_value(&c, g) - r).abs() < 1e-6, "group {g}");
            }
        }
    }

    /// Ville's inequality, measured: over 4000 random directions looked at
    /// after every one of 255 samples, no group is ever called structured
    /// (the bound allows 1e-6 per group: 0.064 expected in 64000 groups).
    /// The largest log e-value reached stays far below the boundary.
    #[test]
    fn random_groups_are_never_called_structured() {
        let cfg = CscConfig::default();
        let t = GroupTests::new(&cfg);
        let mut rng = Rng(2024);
        let mut highest = f64::NEG_INFINITY;
        for _ in 0..4000 {
            let mut c = NibbleCounts::default();
            let mut s = CscState::default();
            for _ in 0..255 {
                c.add(&rng.bytes());
                s.look(&c, 1, &t);
                for g in 0..16 {
                    highest = highest.max(t.log_e_value(&c, g));
                }
            }
            assert_eq!(s.structured, 0);
            assert!(!s.fixed_bit);
        }
        eprintln!(
            "highest log e-value of 64000 random groups: {highest:.2} (boundary {:.2})",
            t.boundary(1)
        );
        assert!(highest < t.boundary(1) - 3.0);
    }

    /// When structure is called, in samples: every one of 10^4 simulated
    /// groups, for each kind of structure (the README's figures).
    fn detection(make: fn(&mut Rng) -> u8, fixed_bit: bool) -> (u32, u32) {
        let cfg = CscConfig::default();
        let t = GroupTests::new(&cfg);
        let mut rng = Rng(77);
        let mut at = Vec::new();
        for _ in 0..10_000 {
            let mut c = NibbleCounts::default();
            let mut s = CscState::default();
            let mut n = 0;
            while n < 255 {
                let mut h = rng.bytes();
                h[2] = make(&mut rng);
                c.add(&h);
                n += 1;
                s.look(&c, 1, &t);
                let hit = if fixed_bit {
                    s.fixed_bit
                } else {
                    s.structured & (1 << 5) != 0
                };
                if hit {
                    break;
                }
            }
            at.push(n);
        }
        at.sort_unstable();
        (at[at.len() / 2], at[at.len() - 1])
    }

    #[test]
    fn structure_is_called_within_the_documented_samples() {
        // Group 5 is byte 2's high nibble.
        let (med, max) = detection(|r| (r.next() as u8 & 0x0F) | 0xA0, false);
        eprintln!("constant group: median {med}, max {max}");
        assert_eq!(max, 10);
        let (med, max) = detection(|r| (r.next() as u8 & 0x3F) | 0x40, false);
        eprintln!("two fixed bits: median {med}, max {max}");
        assert!(max <= 22, "two fixed bits at {max}");
        let cfg = CscConfig::default();
        assert!(cfg.random_min_samples > max);
        let (med, max) = detection(|r| r.next() as u8 & 0x7F, false);
        eprintln!("one fixed bit (Dirichlet mixture): median {med}, max {max}");
        assert!((40..=50).contains(&med));
        // The fixed-bit likelihood ratio: ln 2 a sample, 24 samples.
        let (med, max) = detection(|r| r.next() as u8 & 0x7F, true);
        eprintln!("one fixed bit (likelihood ratio): median {med}, max {max}");
        assert_eq!((med, max), (24, 24));
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

    /// The signature states of a stream of messages, sample by sample.
    fn states(
        make: &mut dyn FnMut(&mut Rng, u32) -> [u8; 8],
        sig: ChiSquareSignature,
        n: u32,
        seed: u64,
    ) -> Vec<SignatureState> {
        let cfg = CscConfig::default();
        let t = GroupTests::new(&cfg);
        let mut rng = Rng(seed);
        let mut c = NibbleCounts::default();
        let mut s = CscState::default();
        let mut out = Vec::new();
        for i in 0..n {
            if c.is_full() {
                c.clear();
            }
            c.add(&make(&mut rng, i));
            s.look(&c, window_index(&c, i + 1), &t);
            out.push(sig.state(&s, i + 1, &cfg));
        }
        out
    }

    #[test]
    fn skype_signatures_hold_from_24_samples() {
        for seed in 1..50 {
            for (make, sig) in [
                (
                    e2e_message as fn(&mut Rng) -> [u8; 8],
                    ChiSquareSignature::E2e,
                ),
                (e2o_message, ChiSquareSignature::E2o),
                (|r: &mut Rng| r.bytes(), ChiSquareSignature::Tcp),
            ] {
                let seq = states(&mut |r, _| make(r), sig, 2000, seed);
                for (i, s) in seq.iter().enumerate() {
                    let want = if i + 1 >= 24 {
                        SignatureState::Holds
                    } else {
                        SignatureState::Pending
                    };
                    assert_eq!(*s, want, "{sig:?} seed {seed} at {}", i + 1);
                }
            }
        }
    }

    /// Look-alikes never hold E2E or E2O, up to 10,000 samples, and each is
    /// contradicted (a group that must be random is structured).
    #[test]
    fn look_alikes_never_hold_e2e_or_e2o() {
        type Maker = Box<dyn FnMut(&mut Rng, u32) -> [u8; 8]>;
        let mut makers: Vec<(&str, Maker)> = vec![
            (
                "RTP",
                Box::new(|r, i| {
                    let seq = (i as u16).wrapping_add(1000).to_be_bytes();
                    let ts = (i.wrapping_mul(160)).to_be_bytes();
                    let _ = r.next();
                    [0x80, 0x00, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3]]
                }),
            ),
            (
                "SRTP",
                Box::new(|r, i| {
                    let seq = (i as u16).to_be_bytes();
                    let ts = (i.wrapping_mul(960)).to_be_bytes();
                    let m = if r.next() % 50 == 0 { 0x80 } else { 0 };
                    [0x80, 0x6F | m, seq[0], seq[1], ts[0], ts[1], ts[2], ts[3]]
                }),
            ),
            (
                "DNS",
                Box::new(|r, _| {
                    let id = r.next().to_le_bytes();
                    [id[0], id[1], 0x01, 0x00, 0x00, 0x01, 0x00, 0x00]
                }),
            ),
            (
                "QUIC",
                Box::new(|r, _| {
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
                }),
            ),
            (
                "WireGuard",
                Box::new(|_, i| {
                    let c = i.to_le_bytes();
                    [4, 0, 0, 0, 0xDE, 0xAD, 0xBE, c[0]]
                }),
            ),
            (
                "game (constant prefix, counters)",
                Box::new(|r, i| {
                    let seq = (i as u16).wrapping_add(7).to_be_bytes();
                    let ack = (i as u16).wrapping_add(300).to_be_bytes();
                    let _ = r.next();
                    [0x3A, 0x91, seq[0], seq[1], ack[0], ack[1], 0x01, 0x04]
                }),
            ),
        ];
        for (name, make) in makers.iter_mut() {
            for sig in [ChiSquareSignature::E2e, ChiSquareSignature::E2o] {
                let seq = states(make.as_mut(), sig, 10_000, 42);
                assert!(
                    seq.iter().all(|s| *s != SignatureState::Holds),
                    "{name} holds {sig:?}"
                );
                assert_eq!(
                    seq.last(),
                    Some(&SignatureState::Contradicted),
                    "{name} {sig:?}"
                );
            }
        }
        // Random UDP contradicts neither here (the header test does, see
        // `dft`), and never holds E2E or E2O.
        for sig in [ChiSquareSignature::E2e, ChiSquareSignature::E2o] {
            let seq = states(&mut |r, _| r.bytes(), sig, 10_000, 42);
            assert!(seq.iter().all(|s| *s == SignatureState::Pending));
        }
    }

    #[test]
    fn window_index_counts_windows() {
        let mut c = NibbleCounts::default();
        assert_eq!(window_index(&c, 0), 1);
        for i in 1..=600u32 {
            if c.is_full() {
                c.clear();
            }
            c.add(&[0; 8]);
            let want = (i - 1) / 255 + 1;
            assert_eq!(window_index(&c, i), want, "sample {i}");
        }
        let t = GroupTests::new(&CscConfig::default());
        assert!(
            (t.boundary(1) - (1e6f64.ln() + (std::f64::consts::PI.powi(2) / 6.0).ln())).abs()
                < 1e-9
        );
        assert!(t.boundary(2) > t.boundary(1));
        for w in 1..40 {
            assert_eq!(t.boundary(w), boundary_of(t.ln_inv_alpha, w), "window {w}");
        }
    }

    /// A look that computes every group's e-value and the fixed-bit ratio
    /// in full: what [`CscState::look`] must decide the same as.
    fn look_in_full(s: &mut CscState, counts: &NibbleCounts, window: u32, t: &GroupTests) {
        let boundary = t.boundary(window);
        for g in 0..CSC_GROUPS {
            if t.log_e_value(counts, g) >= boundary {
                s.structured |= 1 << g;
            }
        }
        if t.fixed_bit_log_lr(counts, FIXED_BIT_GROUP) >= boundary {
            s.fixed_bit = true;
        }
    }

    /// Count vectors of n samples from even to constant: n spread as evenly
    /// as can be over k values (k = 1..16), then moved one sample at a time
    /// from the lightest to the heaviest value, and random ones.
    fn shapes(n: u32, rng: &mut Rng) -> Vec<[u32; NIBBLE_VALUES]> {
        let mut out = Vec::new();
        for k in 1..=NIBBLE_VALUES as u32 {
            let mut c = [0u32; NIBBLE_VALUES];
            for i in 0..n {
                c[(i % k) as usize] += 1;
            }
            out.push(c);
            for _ in 0..n {
                let (lo, _) = c
                    .iter()
                    .enumerate()
                    .filter(|(_, &x)| x > 0)
                    .min_by_key(|(_, &x)| x)
                    .unwrap_or((0, &0));
                if lo == 0 {
                    break;
                }
                c[lo] -= 1;
                c[0] += 1;
                out.push(c);
            }
        }
        for _ in 0..200 {
            let mut c = [0u32; NIBBLE_VALUES];
            // Skewed: values drawn from a random subset, some weighted.
            let mask = (rng.next() as u16) | 1;
            for _ in 0..n {
                let mut v = (rng.next() % 16) as usize;
                while mask & (1 << v) == 0 {
                    v = (v + 1) % 16;
                }
                c[v] += 1;
            }
            out.push(c);
        }
        out
    }

    #[test]
    fn quiet_squares_never_hide_a_crossing() {
        let mut rng = Rng(2024);
        for config in [
            CscConfig::default(),
            CscConfig {
                dirichlet_prior: 1.0,
                group_alpha: 1e-2,
                ..CscConfig::default()
            },
            CscConfig {
                dirichlet_prior: 0.1,
                group_alpha: 1e-9,
                ..CscConfig::default()
            },
        ] {
            let t = GroupTests::new(&config);
            let first = t.boundary(1);
            let mut computed = 0;
            for n in 1..=255u32 {
                let quiet = t.quiet_squares(n);
                for c in shapes(n, &mut rng) {
                    assert_eq!(c.iter().sum::<u32>(), n);
                    let squares: u32 = c.iter().map(|x| x * x).sum();
                    if squares <= quiet {
                        let e = t.log_e_value_of(&c);
                        assert!(
                            e < first,
                            "n {n}: S {squares} <= {quiet} but e {e} >= {first}"
                        );
                    } else {
                        computed += 1;
                    }
                }
            }
            assert!(
                computed > 0,
                "the bound must let concentrated groups through"
            );
        }
    }

    #[test]
    fn quiet_squares_spare_random_groups_from_the_e_value() {
        // The point of the bound: at the defaults a random group's sum of
        // squares (about n^2/16 + 15n/16) is below it at every n.
        let t = GroupTests::new(&CscConfig::default());
        let mut rng = Rng(5);
        for n in [10u32, 16, 24, 40, 64, 128, 200, 255] {
            let mut above = 0;
            for _ in 0..1000 {
                let mut c = [0u32; NIBBLE_VALUES];
                for _ in 0..n {
                    c[(rng.next() % 16) as usize] += 1;
                }
                let squares: u32 = c.iter().map(|x| x * x).sum();
                above += u32::from(squares > t.quiet_squares(n));
            }
            assert!(above <= 10, "n {n}: {above} of 1000 random groups computed");
        }
        // Below 10 samples no group can be called structured at all.
        assert_eq!(t.quiet_squares(9), u32::MAX);
        assert!(t.quiet_squares(10) < 100);
    }

    #[test]
    fn look_decides_as_computing_every_group() {
        let t = GroupTests::new(&CscConfig::default());
        let mut rng = Rng(77);
        let makers: [fn(&mut Rng) -> [u8; 8]; 5] = [
            |r| r.bytes(),
            e2e_message,
            e2o_message,
            |r| {
                let mut b = r.bytes();
                b[0] &= 0xF3; // two fixed bits
                b[5] |= 0x80;
                b
            },
            |r| {
                let mut b = r.bytes();
                b[3] = if r.next() % 64 == 0 { b[3] } else { 0x42 }; // nearly constant
                b
            },
        ];
        for make in makers {
            for _ in 0..20 {
                let (mut fast, mut full) = (CscState::default(), CscState::default());
                let mut counts = NibbleCounts::default();
                for total in 1..=600u32 {
                    if counts.is_full() {
                        counts.clear();
                    }
                    counts.add(&make(&mut rng));
                    let w = window_index(&counts, total);
                    fast.look(&counts, w, &t);
                    look_in_full(&mut full, &counts, w, &t);
                    assert_eq!(fast, full, "sample {total}");
                }
            }
        }
    }
}
