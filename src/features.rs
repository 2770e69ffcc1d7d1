//! Per-direction raw material of the method: nibble counts for the chi-square
//! test, FUNC and prefix counts for the header check, and the running sums
//! of the rhythm windows. Small, fixed-size, allocation-free.

use crate::config::{
    DftConfig, NbcConfig, CSC_BYTES, CSC_GROUPS, CSC_WINDOW_PACKETS, FUNC_MASK, FUNC_VALUES,
    NBC_WINDOW_PACKETS, NIBBLE_VALUES,
};
use crate::packet::{Timestamp, Transport};

/// Counts of each 4-bit value in each of the 16 groups of the first 8
/// payload bytes, over one window of at most [`CSC_WINDOW_PACKETS`] samples.
///
/// Group `2k` is the low nibble of byte `k`, group `2k+1` its high nibble,
/// whatever the host's byte order (method.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NibbleCounts {
    counts: [[u8; NIBBLE_VALUES]; CSC_GROUPS],
    samples: u8,
}

impl Default for NibbleCounts {
    fn default() -> Self {
        NibbleCounts {
            counts: [[0; NIBBLE_VALUES]; CSC_GROUPS],
            samples: 0,
        }
    }
}

/// The group that holds bit `bit` (0 = least significant) of payload byte
/// `byte`: the low nibble of byte k is group 2k, the high nibble 2k+1.
pub const fn group_of_bit(byte: usize, bit: u32) -> usize {
    2 * byte + (bit as usize / 4)
}

impl NibbleCounts {
    /// Samples in the window.
    pub fn samples(&self) -> u32 {
        u32::from(self.samples)
    }

    /// Whether the window is full.
    pub fn is_full(&self) -> bool {
        u16::from(self.samples) >= CSC_WINDOW_PACKETS
    }

    /// Empties the window.
    pub fn clear(&mut self) {
        *self = NibbleCounts::default();
    }

    /// Adds the first [`CSC_BYTES`] bytes of a payload. The caller checks the
    /// length and clears a full window first (see
    /// [`DirectionFeatures::observe`]); a sample added to a full window is
    /// ignored. No count can then exceed the samples, at most 255, so the
    /// one-byte counts need no overflow check.
    #[inline]
    pub fn add(&mut self, head: &[u8; CSC_BYTES]) {
        if self.samples == u8::MAX {
            return;
        }
        for (k, &b) in head.iter().enumerate() {
            let lo = usize::from(b & 0x0F);
            let hi = usize::from(b >> 4);
            self.counts[2 * k][lo] = self.counts[2 * k][lo].wrapping_add(1);
            self.counts[2 * k + 1][hi] = self.counts[2 * k + 1][hi].wrapping_add(1);
        }
        self.samples += 1;
    }

    /// The count of value `v` in group `g`.
    pub fn count(&self, g: usize, v: usize) -> u32 {
        self.counts
            .get(g)
            .and_then(|c| c.get(v))
            .map_or(0, |&c| u32::from(c))
    }

    /// The sum of the squared counts of group `g`: with it, Pearson's chi2
    /// against the uniform law is 16 * S / N - N exactly.
    #[inline]
    pub fn sum_squares(&self, g: usize) -> u32 {
        self.counts
            .get(g)
            .map_or(0, |c| c.iter().map(|&v| u32::from(v) * u32::from(v)).sum())
    }

    /// The 16 counts of group `g`, widened.
    pub fn group(&self, g: usize) -> [u32; NIBBLE_VALUES] {
        let mut out = [0u32; NIBBLE_VALUES];
        if let Some(c) = self.counts.get(g) {
            for (o, &v) in out.iter_mut().zip(c.iter()) {
                *o = u32::from(v);
            }
        }
        out
    }
}

/// Counts of the FUNC values (`byte2 & 0x8F`) over the current chi-square
/// window (one byte each, reset with the nibble counts), folded to 32 slots:
/// bit 7 selects the upper half, the low nibble the slot within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncCounts(pub [u8; FUNC_VALUES]);

impl Default for FuncCounts {
    fn default() -> Self {
        FuncCounts([0; FUNC_VALUES])
    }
}

impl FuncCounts {
    /// The slot of a FUNC value.
    #[inline]
    pub fn slot(func: u8) -> usize {
        let f = func & FUNC_MASK;
        usize::from(f & 0x0F) | (usize::from(f >> 7) << 4)
    }

    /// Counts one value.
    #[inline]
    pub fn add(&mut self, func: u8) {
        let s = Self::slot(func);
        self.0[s] = self.0[s].saturating_add(1);
    }

    /// The count of a FUNC value.
    pub fn get(&self, func: u8) -> u32 {
        u32::from(self.0[Self::slot(func)])
    }
}

/// The counters of the per-packet header check (DFT, method.md §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DftCounts {
    /// Packets with a payload.
    pub packets: u32,
    /// FUNC 0x0D messages of more than 4 bytes: voice or video data.
    pub voice: u32,
    /// Messages with a known Skype FUNC value.
    pub known: u32,
    /// Messages whose first 4 bytes repeat those of the previous message.
    pub prefix_repeats: u32,
    /// The first 4 bytes of the previous message (if it had 4).
    pub prev_prefix: Option<[u8; 4]>,
}

impl DftCounts {
    /// Accounts one payload.
    #[inline]
    pub fn add(&mut self, payload: &[u8], payload_len: u32, known_mask: u32, config: &DftConfig) {
        self.packets = self.packets.saturating_add(1);
        if let Some(&b2) = payload.get(2) {
            let func = b2 & FUNC_MASK;
            if func == config.func_voice && payload_len > config.keepalive_max_bytes {
                self.voice = self.voice.saturating_add(1);
            }
            if known_mask & (1u32 << FuncCounts::slot(func)) != 0 {
                self.known = self.known.saturating_add(1);
            }
        }
        let prefix = payload.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok());
        if let (Some(now), Some(prev)) = (prefix, self.prev_prefix) {
            if now == prev {
                self.prefix_repeats = self.prefix_repeats.saturating_add(1);
            }
        }
        self.prev_prefix = prefix;
    }
}

/// A bit mask over FUNC slots of the values in `values`.
pub fn func_mask(values: &[u8]) -> u32 {
    values
        .iter()
        .fold(0u32, |m, &v| m | (1u32 << FuncCounts::slot(v)))
}

/// The features of one rhythm window (method.md §4), as the Naive Bayes
/// classifier reads them. A window is 30 rhythm messages: for UDP those
/// under 400 bytes (the voice band), for TCP every segment with payload.
/// Features: the rhythm messages' mean size and mean gap on a log scale
/// (where their spread is closer to the Gaussian the classifier assumes) and
/// their spreads as coefficients of variation (a voice codec paces small,
/// regular frames); then, of all the messages during the window, the share in
/// a video band and the share of other large messages.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFeatures(pub [f64; WindowFeatures::LEN]);

impl WindowFeatures {
    /// Number of features.
    pub const LEN: usize = 6;
    /// Feature names, in order.
    pub const NAMES: [&'static str; WindowFeatures::LEN] = [
        "ln_mean_payload",
        "cv_payload",
        "ln_mean_gap_ms",
        "cv_gap",
        "video_share",
        "large_share",
    ];
}

/// Running sums of the current rhythm window of one direction.
#[derive(Debug, Clone, PartialEq)]
pub struct RhythmWindow {
    n: u16,
    video: u16,
    large: u16,
    gaps: u16,
    sum_size: f32,
    sum_size2: f32,
    sum_gap: f32,
    sum_gap2: f32,
    /// Time of the last rhythm message (`i64::MIN` before the first).
    last: i64,
}

impl Default for RhythmWindow {
    fn default() -> Self {
        RhythmWindow {
            n: 0,
            video: 0,
            large: 0,
            gaps: 0,
            sum_size: 0.0,
            sum_size2: 0.0,
            sum_gap: 0.0,
            sum_gap2: 0.0,
            last: i64::MIN,
        }
    }
}

/// ln(1 + mean) and the coefficient of variation (sd / mean, 0 for mean 0).
fn ln_mean_cv(n: f64, sum: f64, sum2: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 0.0);
    }
    let mean = sum / n;
    let var = (sum2 / n - mean * mean).max(0.0);
    let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    ((1.0 + mean).ln(), cv)
}

/// Whether a payload length is in one of the video bands.
#[inline]
pub fn in_video_band(payload_len: u32, config: &NbcConfig) -> bool {
    config
        .video_bands
        .iter()
        .any(|&(lo, hi)| payload_len >= lo && payload_len <= hi)
}

impl RhythmWindow {
    /// Adds one message; returns the window's features when it completes.
    /// `rhythm` says whether the message is a rhythm message (UDP voice band,
    /// or any TCP segment); the others are only counted.
    #[inline]
    pub fn add(
        &mut self,
        ts: Timestamp,
        payload_len: u32,
        rhythm: bool,
        config: &NbcConfig,
    ) -> Option<WindowFeatures> {
        if !rhythm {
            if in_video_band(payload_len, config) {
                self.video = self.video.saturating_add(1);
            } else {
                self.large = self.large.saturating_add(1);
            }
            return None;
        }
        let size = payload_len as f32;
        self.n += 1;
        self.sum_size += size;
        self.sum_size2 += size * size;
        if self.last != i64::MIN {
            let gap = ts.secs_since(Timestamp(self.last));
            if (0.0..=config.max_gap_seconds).contains(&gap) {
                let ms = (gap * 1000.0) as f32;
                self.gaps += 1;
                self.sum_gap += ms;
                self.sum_gap2 += ms * ms;
            }
        }
        self.last = ts.0;
        if self.n < NBC_WINDOW_PACKETS {
            return None;
        }
        let n = f64::from(self.n);
        let (ms, ss) = ln_mean_cv(n, f64::from(self.sum_size), f64::from(self.sum_size2));
        let (mg, sg) = if self.gaps > 0 {
            ln_mean_cv(
                f64::from(self.gaps),
                f64::from(self.sum_gap),
                f64::from(self.sum_gap2),
            )
        } else {
            // Every gap was a pause: the slowest rhythm there is.
            ((1.0 + 1000.0 * config.max_gap_seconds).ln(), 0.0)
        };
        let all = n + f64::from(self.video) + f64::from(self.large);
        let features = WindowFeatures([
            ms,
            ss,
            mg,
            sg,
            f64::from(self.video) / all,
            f64::from(self.large) / all,
        ]);
        let last = self.last;
        *self = RhythmWindow::default();
        self.last = last;
        Some(features)
    }

    /// Rhythm messages in the current (incomplete) window.
    pub fn len(&self) -> u16 {
        self.n
    }

    /// Whether the current window is empty.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
}

/// What one packet changed in a direction's features.
#[derive(Debug, Clone, Copy, Default)]
pub struct Observed {
    /// The packet was sampled by the chi-square test.
    pub sampled: bool,
    /// A rhythm window completed with these features.
    pub window: Option<WindowFeatures>,
}

/// The features of one direction of a flow.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DirectionFeatures {
    /// Chi-square window.
    pub nibbles: NibbleCounts,
    /// Samples over all windows.
    pub sampled_total: u32,
    /// Packets in a video band.
    pub video_packets: u32,
    /// FUNC value counts.
    pub func: FuncCounts,
    /// Header-check counters.
    pub dft: DftCounts,
    /// Current rhythm window.
    pub rhythm: RhythmWindow,
}

impl DirectionFeatures {
    /// Accounts one packet of this direction. Packets without payload (TCP
    /// ACKs) carry no message and are ignored.
    #[inline]
    #[allow(clippy::too_many_arguments)]
    pub fn observe(
        &mut self,
        ts: Timestamp,
        transport: Transport,
        payload: &[u8],
        payload_len: u32,
        known_mask: u32,
        dft: &DftConfig,
        nbc: &NbcConfig,
    ) -> Observed {
        if payload_len == 0 {
            return Observed::default();
        }
        if in_video_band(payload_len, nbc) {
            self.video_packets = self.video_packets.saturating_add(1);
        }
        if let Some(&b2) = payload.get(2) {
            if self.nibbles.is_full() {
                self.func = FuncCounts::default();
            }
            self.func.add(b2);
        }
        self.dft.add(payload, payload_len, known_mask, dft);
        let mut sampled = false;
        if let Some(head) = payload
            .get(..CSC_BYTES)
            .and_then(|h| <&[u8; CSC_BYTES]>::try_from(h).ok())
        {
            if self.nibbles.is_full() {
                self.nibbles.clear();
            }
            self.nibbles.add(head);
            self.sampled_total = self.sampled_total.saturating_add(1);
            sampled = true;
        }
        let rhythm = transport == Transport::Tcp || payload_len < nbc.voice_max_bytes;
        let window = self.rhythm.add(ts, payload_len, rhythm, nbc);
        Observed { sampled, window }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_of_each_bit_is_fixed() {
        // A single set bit lands in the group the method names, whatever the
        // host byte order: value 1 << (bit % 4) in group 2k + bit / 4.
        for byte in 0..CSC_BYTES {
            for bit in 0..8u32 {
                let mut head = [0u8; CSC_BYTES];
                head[byte] = 1 << bit;
                let mut c = NibbleCounts::default();
                c.add(&head);
                let g = group_of_bit(byte, bit);
                assert_eq!(c.count(g, 1 << (bit % 4)), 1, "byte {byte} bit {bit}");
                for other in (0..CSC_GROUPS).filter(|&o| o != g) {
                    assert_eq!(c.count(other, 0), 1);
                }
            }
        }
        assert_eq!(group_of_bit(2, 0), 4);
        assert_eq!(group_of_bit(2, 7), 5);
    }

    #[test]
    fn window_restarts_when_full() {
        let mut d = DirectionFeatures::default();
        let dft = DftConfig::default();
        let nbc = NbcConfig::default();
        for i in 0..(u32::from(CSC_WINDOW_PACKETS) + 3) {
            d.observe(
                Timestamp(i64::from(i) * 20_000),
                Transport::Udp,
                &[1; 8],
                8,
                0,
                &dft,
                &nbc,
            );
        }
        assert_eq!(d.nibbles.samples(), 3);
        assert_eq!(d.sampled_total, u32::from(CSC_WINDOW_PACKETS) + 3);
    }

    #[test]
    fn func_slots_and_dft_counts() {
        assert_eq!(FuncCounts::slot(0x0D), 0x0D);
        assert_eq!(FuncCounts::slot(0x7D), 0x0D);
        assert_eq!(FuncCounts::slot(0x8D), 0x1D);
        let cfg = DftConfig::default();
        let mask = func_mask(&cfg.func_known);
        let mut d = DftCounts::default();
        d.add(&[1, 2, 0x3D, 4, 5], 60, mask, &cfg);
        d.add(&[1, 2, 0x5D, 4], 4, mask, &cfg); // keep-alive: 4 bytes
        d.add(&[1, 3, 0x5D, 4, 9], 60, mask, &cfg);
        d.add(&[9, 9], 2, mask, &cfg);
        assert_eq!(d.packets, 4);
        assert_eq!(d.voice, 2);
        assert_eq!(d.known, 3);
        assert_eq!(d.prefix_repeats, 0);
        let mut e = DftCounts::default();
        for _ in 0..5 {
            e.add(&[7, 7, 7, 7, 1], 30, mask, &cfg);
        }
        assert_eq!(e.prefix_repeats, 4);
    }

    #[test]
    fn rhythm_window_features() {
        let mut w = RhythmWindow::default();
        let cfg = NbcConfig::default();
        let mut out = None;
        for i in 0..30 {
            out = w.add(Timestamp(i * 20_000), 100, true, &cfg);
            // A video message between the voice frames is only counted.
            assert!(w
                .add(Timestamp(i * 20_000 + 5_000), 450, false, &cfg)
                .is_none());
            if i < 29 {
                assert!(out.is_none());
            }
        }
        let f = out.unwrap().0;
        assert!((f[0] - 101f64.ln()).abs() < 1e-6);
        assert!(f[1].abs() < 1e-6);
        assert!((f[2] - 21f64.ln()).abs() < 1e-3);
        assert!(f[3].abs() < 1e-3);
        assert!((f[4] - 0.5).abs() < 0.02, "video share {}", f[4]);
        assert_eq!(f[5], 0.0);
        assert!(w.is_empty());
    }
}
