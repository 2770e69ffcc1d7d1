//! Per-direction raw material of the method: nibble counts for the chi-square
//! test, FUNC and prefix counts for the header check, and the running sums
//! of the rhythm windows. Small, fixed-size, allocation-free.

use crate::config::{
    DftConfig, NbcConfig, CSC_BYTES, CSC_GROUPS, CSC_WINDOW_PACKETS, FUNC_MASK, NBC_WINDOW_PACKETS,
    NIBBLE_VALUES,
};
use crate::packet::{Timestamp, Transport};

/// Counts of each 4-bit value in each of the 16 groups of the first 8
/// payload bytes, over one window of at most [`CSC_WINDOW_PACKETS`] samples.
///
/// Group `2k` is the low nibble of byte `k`, group `2k+1` its high nibble,
/// whatever the host's byte order (method.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(hidden)]
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
#[doc(hidden)]
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

    /// The sums of squared counts of all 16 groups at once (written so that
    /// it compiles to two multiply-adds of 16-bit lanes a group).
    #[inline]
    pub fn all_sum_squares(&self) -> [u32; CSC_GROUPS] {
        let mut out = [0u32; CSC_GROUPS];
        for (o, c) in out.iter_mut().zip(self.counts.iter()) {
            *o = c.iter().map(|&v| u32::from(v) * u32::from(v)).sum();
        }
        out
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

/// A set of FUNC values (`byte2 & 0x8F`, method.md §1) as a bit mask over
/// their 32 slots: bit 7 selects the upper half, the low nibble the slot
/// within it. The one test of "is this message's FUNC value a known Skype
/// one", used by the header check, the flows' FUNC counts and the endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[doc(hidden)]
pub struct FuncSet(u32);

impl FuncSet {
    /// The set of `values` (each masked with `0x8F`).
    pub fn of(values: &[u8]) -> FuncSet {
        FuncSet(
            values
                .iter()
                .fold(0u32, |m, &v| m | (1u32 << Self::slot(v))),
        )
    }

    /// The slot of a FUNC value.
    #[inline]
    pub fn slot(byte2: u8) -> usize {
        let f = byte2 & FUNC_MASK;
        usize::from(f & 0x0F) | (usize::from(f >> 7) << 4)
    }

    /// Whether the FUNC value of a message's byte 2 is in the set.
    #[inline]
    pub fn contains(self, byte2: u8) -> bool {
        self.0 & (1u32 << Self::slot(byte2)) != 0
    }

    /// How many of the 32 FUNC values are in the set.
    pub fn len(self) -> u32 {
        self.0.count_ones()
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

/// The counters of the per-packet header check (DFT, method.md §3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[doc(hidden)]
pub struct DftCounts {
    /// Packets with a payload.
    pub packets: u32,
    /// Messages with a FUNC byte (3 bytes or more).
    pub func_messages: u32,
    /// FUNC 0x0D messages of more than 4 bytes: voice or video data.
    pub voice: u32,
    /// Messages with a known Skype FUNC value.
    pub known: u32,
    /// Messages of 4 bytes or more after the first such message: those whose
    /// prefix can repeat the previous one's.
    pub prefix_messages: u32,
    /// Messages whose first 4 bytes repeat those of the previous message.
    pub prefix_repeats: u32,
    /// The first 4 bytes of the previous message (if it had 4).
    pub prev_prefix: Option<[u8; 4]>,
}

impl DftCounts {
    /// Accounts one payload.
    #[inline]
    pub fn add(&mut self, payload: &[u8], payload_len: u32, known: FuncSet, config: &DftConfig) {
        self.packets = self.packets.saturating_add(1);
        if let Some(&b2) = payload.get(2) {
            self.func_messages = self.func_messages.saturating_add(1);
            let func = b2 & FUNC_MASK;
            if func == config.func_voice && payload_len > config.keepalive_max_bytes {
                self.voice = self.voice.saturating_add(1);
            }
            if known.contains(b2) {
                self.known = self.known.saturating_add(1);
            }
        }
        let prefix = payload.get(..4).and_then(|p| <[u8; 4]>::try_from(p).ok());
        if let (Some(now), Some(prev)) = (prefix, self.prev_prefix) {
            self.prefix_messages = self.prefix_messages.saturating_add(1);
            if now == prev {
                self.prefix_repeats = self.prefix_repeats.saturating_add(1);
            }
        }
        if prefix.is_some() {
            self.prev_prefix = prefix;
        }
    }
}

/// Which messages a rhythm window follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowKind {
    /// Voice-band messages: UDP payloads under `voice_max_bytes` (400), or
    /// every TCP segment with payload (method.md §4).
    #[default]
    Voice,
    /// Video: UDP payloads of `voice_max_bytes` or more (method.md §4 and
    /// §9: Skype video frames in the bands 400-490 and 800-980 bytes).
    Video,
}

impl WindowKind {
    /// "voice" or "video".
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Voice => "voice",
            WindowKind::Video => "video",
        }
    }

    /// The names of the features of a window of this kind, in order.
    pub fn feature_names(self) -> [&'static str; WindowFeatures::LEN] {
        match self {
            WindowKind::Voice => WindowFeatures::NAMES,
            WindowKind::Video => WindowFeatures::VIDEO_NAMES,
        }
    }
}

/// The features of one rhythm window (method.md §4), as the Naive Bayes
/// classifier reads them. A window is 30 messages of its kind
/// ([`WindowKind`]). Features: the window's messages' mean size and mean
/// gap on a log scale (where their spread is closer to the Gaussian the
/// classifier assumes) and their spreads as coefficients of variation (a
/// voice codec paces small, regular frames; video sends frames in bursts);
/// then two shares over every message of the direction during the window:
/// for a voice window, the other messages in a video band and the other
/// large ones; for a video window, its own messages in a video band and the
/// small messages beside it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowFeatures(pub [f64; WindowFeatures::LEN]);

impl WindowFeatures {
    /// Number of features.
    pub const LEN: usize = 6;
    /// Feature names of a voice window, in order.
    pub const NAMES: [&'static str; WindowFeatures::LEN] = [
        "ln_mean_payload",
        "cv_payload",
        "ln_mean_gap_ms",
        "cv_gap",
        "video_share",
        "large_share",
    ];
    /// Feature names of a video window, in order.
    pub const VIDEO_NAMES: [&'static str; WindowFeatures::LEN] = [
        "ln_mean_payload",
        "cv_payload",
        "ln_mean_gap_ms",
        "cv_gap",
        "band_share",
        "small_share",
    ];
}

/// Running sums of the current rhythm window of one direction.
#[derive(Debug, Clone, PartialEq)]
#[doc(hidden)]
pub struct RhythmWindow {
    n: u16,
    /// The first share's count (see [`WindowFeatures`]).
    a: u16,
    /// The second share's count.
    b: u16,
    /// Messages of the direction during the window that are not its own.
    others: u16,
    gaps: u16,
    sum_size: f32,
    sum_size2: f32,
    sum_gap: f32,
    sum_gap2: f32,
    /// Time of the window's last own message (`i64::MIN` before the first).
    last: i64,
}

impl Default for RhythmWindow {
    fn default() -> Self {
        RhythmWindow {
            n: 0,
            a: 0,
            b: 0,
            others: 0,
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
#[doc(hidden)]
pub fn in_video_band(payload_len: u32, config: &NbcConfig) -> bool {
    config
        .video_bands
        .iter()
        .any(|&(lo, hi)| payload_len >= lo && payload_len <= hi)
}

impl RhythmWindow {
    /// Adds one message of the direction to a window of `kind`; returns the
    /// window's features when it completes. `own` says whether the message
    /// is one the window follows; the others are only counted.
    #[inline]
    pub fn add(
        &mut self,
        kind: WindowKind,
        ts: Timestamp,
        payload_len: u32,
        own: bool,
        config: &NbcConfig,
    ) -> Option<WindowFeatures> {
        let band = in_video_band(payload_len, config);
        if !own {
            self.others = self.others.saturating_add(1);
            match kind {
                WindowKind::Voice if band => self.a = self.a.saturating_add(1),
                WindowKind::Voice | WindowKind::Video => self.b = self.b.saturating_add(1),
            }
            return None;
        }
        if kind == WindowKind::Video && band {
            self.a = self.a.saturating_add(1);
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
        let all = n + f64::from(self.others);
        let features = WindowFeatures([
            ms,
            ss,
            mg,
            sg,
            f64::from(self.a) / all,
            f64::from(self.b) / all,
        ]);
        let last = self.last;
        *self = RhythmWindow::default();
        self.last = last;
        Some(features)
    }

    /// Own messages in the current (incomplete) window.
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
#[doc(hidden)]
pub struct Observed {
    /// The packet was sampled by the chi-square test.
    pub sampled: bool,
    /// A rhythm window completed: its kind and features.
    pub window: Option<(WindowKind, WindowFeatures)>,
}

/// The features of one direction of a flow.
#[derive(Debug, Clone, Default, PartialEq)]
#[doc(hidden)]
pub struct DirectionFeatures {
    /// Chi-square window.
    pub nibbles: NibbleCounts,
    /// Samples over all windows.
    pub sampled_total: u32,
    /// Packets in a video band.
    pub video_packets: u32,
    /// Header-check counters.
    pub dft: DftCounts,
    /// Current voice window.
    pub voice: RhythmWindow,
    /// Current video window (UDP only).
    pub video: RhythmWindow,
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
        known: FuncSet,
        dft: &DftConfig,
        nbc: &NbcConfig,
    ) -> Observed {
        if payload_len == 0 {
            return Observed::default();
        }
        if in_video_band(payload_len, nbc) {
            self.video_packets = self.video_packets.saturating_add(1);
        }
        self.dft.add(payload, payload_len, known, dft);
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
        let window = match transport {
            Transport::Tcp => self
                .voice
                .add(WindowKind::Voice, ts, payload_len, true, nbc)
                .map(|w| (WindowKind::Voice, w)),
            Transport::Udp => {
                let voice = payload_len < nbc.voice_max_bytes;
                let v = self
                    .voice
                    .add(WindowKind::Voice, ts, payload_len, voice, nbc);
                let w = self
                    .video
                    .add(WindowKind::Video, ts, payload_len, !voice, nbc);
                v.map(|x| (WindowKind::Voice, x))
                    .or(w.map(|x| (WindowKind::Video, x)))
            }
        };
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
                FuncSet::default(),
                &dft,
                &nbc,
            );
        }
        assert_eq!(d.nibbles.samples(), 3);
        assert_eq!(d.sampled_total, u32::from(CSC_WINDOW_PACKETS) + 3);
    }

    #[test]
    fn func_slots_and_dft_counts() {
        assert_eq!(FuncSet::slot(0x0D), 0x0D);
        assert_eq!(FuncSet::slot(0x7D), 0x0D);
        assert_eq!(FuncSet::slot(0x8D), 0x1D);
        let cfg = DftConfig::default();
        let known = FuncSet::of(&cfg.func_known);
        assert_eq!(known.len(), 7);
        assert!(known.contains(0x72) && known.contains(0x0D) && !known.contains(0x8D));
        let mut d = DftCounts::default();
        d.add(&[1, 2, 0x3D, 4, 5], 60, known, &cfg);
        d.add(&[1, 2, 0x5D, 4], 4, known, &cfg); // keep-alive: 4 bytes
        d.add(&[1, 3, 0x5D, 4, 9], 60, known, &cfg);
        d.add(&[9, 9], 2, known, &cfg);
        assert_eq!(d.packets, 4);
        assert_eq!(d.func_messages, 3);
        assert_eq!(d.voice, 2);
        assert_eq!(d.known, 3);
        assert_eq!(d.prefix_repeats, 0);
        assert_eq!(d.prefix_messages, 2);
        let mut e = DftCounts::default();
        for _ in 0..5 {
            e.add(&[7, 7, 7, 7, 1], 30, known, &cfg);
        }
        assert_eq!(e.prefix_repeats, 4);
        assert_eq!(e.prefix_messages, 4);
    }

    #[test]
    fn rhythm_window_features() {
        let mut w = RhythmWindow::default();
        let cfg = NbcConfig::default();
        let mut out = None;
        for i in 0..30 {
            out = w.add(WindowKind::Voice, Timestamp(i * 20_000), 100, true, &cfg);
            // A video message between the voice frames is only counted.
            assert!(w
                .add(
                    WindowKind::Voice,
                    Timestamp(i * 20_000 + 5_000),
                    450,
                    false,
                    &cfg
                )
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

    #[test]
    fn video_windows_follow_the_large_messages() {
        let mut d = DirectionFeatures::default();
        let dft = DftConfig::default();
        let nbc = NbcConfig::default();
        let mut got = None;
        // 30 video messages (450 bytes every 40 ms) with a 60-byte control
        // message every third one.
        for i in 0..30i64 {
            let o = d.observe(
                Timestamp(i * 40_000),
                Transport::Udp,
                &[0; 8],
                450,
                FuncSet::default(),
                &dft,
                &nbc,
            );
            if i % 3 == 0 {
                d.observe(
                    Timestamp(i * 40_000 + 1_000),
                    Transport::Udp,
                    &[0; 8],
                    60,
                    FuncSet::default(),
                    &dft,
                    &nbc,
                );
            }
            got = got.or(o.window);
        }
        let (kind, f) = got.expect("a video window");
        assert_eq!(kind, WindowKind::Video);
        assert!((f.0[0] - 451f64.ln()).abs() < 1e-6);
        assert!((f.0[2] - 41f64.ln()).abs() < 1e-3);
        // 30 own messages in a band, 10 small ones beside them.
        assert!((f.0[4] - 0.75).abs() < 1e-9, "band share {}", f.0[4]);
        assert!((f.0[5] - 0.25).abs() < 1e-9, "small share {}", f.0[5]);
        assert_eq!(d.voice.len(), 10);
    }
}
