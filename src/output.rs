//! Flow records as JSON lines, CSV or a table for people.
//!
//! The JSON and CSV field names are a public interface: fields may be added,
//! never renamed or dropped.

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

use crate::classifier::{DirectionRecord, FlowRecord};
use crate::community_id::{community_id_v1_inline, CommunityId};
use crate::flow::FlowKey;
use crate::tunnel::Tunnel;
use crate::verdict::Verdict;

/// Bytes of records `classify` writes at a time to a file or a pipe
/// (project: std's default 8 KiB buffer, behind `Stdout`'s line buffering,
/// made about one `write` system call every five JSON records, 200,000
/// calls for a million flows, about 3 % of the run's time even to
/// `/dev/null`; `README.md`'s Performance, "2026-12-04, where the rest
/// goes").
pub const OUTPUT_BUFFER: usize = 1 << 20;

/// The seed of the Community ID printed in records (0, as Zeek and Suricata
/// use by default).
pub const COMMUNITY_ID_SEED: u16 = 0;

/// The Community ID of a flow.
pub fn community_id(key: &FlowKey) -> String {
    community_id_inline(key).as_str().to_string()
}

/// The Community ID of a flow, without allocating.
pub fn community_id_inline(key: &FlowKey) -> CommunityId {
    community_id_v1_inline(
        COMMUNITY_ID_SEED,
        key.transport.ip_number(),
        key.src_ip,
        key.src_port,
        key.dst_ip,
        key.dst_port,
    )
}

/// The evidence of one direction, as serialized.
#[derive(Debug, Serialize)]
pub struct DirectionJson {
    /// Packets.
    pub packets: u32,
    /// Payload bytes.
    pub payload_bytes: u64,
    /// CSC class: "e2e", "e2o", "tcp" or "none".
    pub csc_class: &'static str,
    /// The 16 chi2 values of the latest window (group 2k = low nibble of byte k).
    pub chi2: [f32; 16],
    /// The same in integer hundredths (`chi2[g]` is `k / 100` in f32), or
    /// [`NOT_HUNDREDTHS`] for a value that is not such a plain hundredth
    /// (negative zero, beyond 65,536, not finite): what the writers print
    /// from without dividing again.
    #[serde(skip)]
    pub chi2_hundredths: [u32; 16],
    /// Messages sampled in that window.
    pub window_sampled: u32,
    /// Messages sampled, all windows.
    pub sampled: u32,
    /// Flow packet count when the CSC class was first reached.
    pub csc_first_at_packet: Option<u64>,
    /// DFT class.
    pub dft_class: &'static str,
    /// NBC windows.
    pub nbc_windows: u16,
    /// NBC windows that passed.
    pub nbc_passed: u16,
    /// Mean NBC log-odds (media over other).
    pub nbc_mean_log_odds: f64,
    /// More than 10 % of the messages in a video band (method.md §5).
    pub video: bool,
    /// "skype", "contradicted" or "pending" (null when the evidence was
    /// released before the flow ended).
    pub state: Option<&'static str>,
    /// What contradicts Skype in this direction: "rhythm", "group_N" (a
    /// group that must be random is structured), "func_byte" or "prefix".
    pub contradiction: Option<&'static str>,
    /// The groups the sequential test has called structured, as a bit mask
    /// (bit g: group g).
    pub structured_groups: u16,
    /// The direction's own rhythm test: "pending", "media" or "other".
    pub nbc_decision: &'static str,
    /// The sum of its windows' clamped log-odds.
    pub nbc_log_odds_sum: f64,
}

/// In [`DirectionJson::chi2_hundredths`]: not a plain hundredth.
pub const NOT_HUNDREDTHS: u32 = u32::MAX;

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl From<&DirectionRecord> for DirectionJson {
    fn from(d: &DirectionRecord) -> Self {
        // Rounded to hundredths: the integer, and the value from it (the
        // divisions independent of each other, unlike a writer's check).
        let round = |c: f32| {
            let r = (c * 100.0).round();
            let k = if r.is_sign_positive() && r < 6_553_600.0 {
                r as u32
            } else {
                NOT_HUNDREDTHS
            };
            (r / 100.0, k)
        };
        let mut chi2 = d.evidence.chi2;
        let mut chi2_hundredths = [NOT_HUNDREDTHS; 16];
        let first = chi2[0].to_bits();
        if chi2.iter().all(|c| c.to_bits() == first) {
            // One value in every group (a direction of no or one sample):
            // rounded once.
            let (c, k) = round(chi2[0]);
            chi2 = [c; 16];
            chi2_hundredths = [k; 16];
        } else {
            for (c, k) in chi2.iter_mut().zip(chi2_hundredths.iter_mut()) {
                (*c, *k) = round(*c);
            }
        }
        DirectionJson {
            packets: d.packets,
            payload_bytes: d.payload_bytes,
            csc_class: d.evidence.csc.as_str(),
            chi2,
            chi2_hundredths,
            window_sampled: d.evidence.window_sampled,
            sampled: d.evidence.sampled,
            csc_first_at_packet: d.csc_first_at_packet,
            dft_class: d.evidence.dft.as_str(),
            nbc_windows: d.evidence.nbc.windows,
            nbc_passed: d.evidence.nbc.passed,
            nbc_mean_log_odds: (d.evidence.nbc.mean_log_odds() * 1000.0).round() / 1000.0,
            video: d.evidence.video,
            state: d.state.map(|s| s.as_str()),
            contradiction: d.state.and_then(|s| s.contradiction()).map(|c| c.as_str()),
            structured_groups: d.evidence.groups.structured,
            nbc_decision: d.evidence.nbc.decision.as_str(),
            nbc_log_odds_sum: round3(f64::from(d.evidence.nbc.sum_log_odds)),
        }
    }
}

/// One flow record as serialized: the public field set.
#[derive(Debug, Serialize)]
pub struct RecordJson<'a> {
    /// The capture file or interface.
    pub capture: &'a str,
    /// "udp" or "tcp".
    pub transport: &'static str,
    /// Initiator address.
    pub src_ip: IpAddr,
    /// Initiator port.
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port.
    pub dst_port: u16,
    /// First packet, epoch seconds.
    pub first_seen: f64,
    /// Last packet, epoch seconds.
    pub last_seen: f64,
    /// Packets, both directions.
    pub packets: u64,
    /// Payload bytes, both directions.
    pub payload_bytes: u64,
    /// "idle", "fin", "rst", "evicted" or "capture_end".
    pub end: &'static str,
    /// "skype", "not_skype" or "undecided".
    pub verdict: &'static str,
    /// "e2e", "e2o", "tcp", "signalling" or null.
    pub kind: Option<&'static str>,
    /// In [0, 1].
    pub confidence: f64,
    /// Flow packet count at the decision.
    pub decided_at_packet: Option<u64>,
    /// Community ID v1 (seed 0).
    pub community_id: CommunityId,
    /// "flow" or "endpoint" (null when undecided).
    pub via: Option<&'static str>,
    /// Seconds from the first packet to the decision.
    pub decided_after_seconds: Option<f64>,
    /// The verdict before an endpoint revised it.
    pub revised_from: Option<&'static str>,
    /// What a "not_skype" verdict rests on (see `fwd.contradiction`).
    pub contradiction: Option<&'static str>,
    /// TCP: whether the first payload was random from its first byte (no
    /// known protocol's framing), what ties a TCP flow to a Skype client.
    pub first_payload_random: Option<bool>,
    /// The rhythm test over both directions' windows: "pending", "media"
    /// or "other".
    pub rhythm_decision: &'static str,
    /// Its windows, both directions.
    pub rhythm_windows: u16,
    /// The sum of its windows' clamped log-odds.
    pub rhythm_log_odds_sum: f64,
    /// The tunnel that carried the flow (the innermost): "gtp_u", "gre",
    /// "erspan", "pptp", "vxlan", "geneve", "ip_in_ip", "capwap", or null.
    pub tunnel: Option<&'static str>,
    /// Its identifier: TEID (GTP-U, of the receiving end of the flow's
    /// first packet), VNI (VXLAN, Geneve), key (GRE), session (ERSPAN),
    /// call ID (PPTP); null where it has none.
    pub tunnel_id: Option<u32>,
    /// The tunnel's outer source address, as the flow's first packet went.
    pub outer_src_ip: Option<IpAddr>,
    /// The tunnel's outer destination address.
    pub outer_dst_ip: Option<IpAddr>,
    /// How many tunnels deep the flow travelled (1: one tunnel).
    pub tunnel_depth: Option<u8>,
    /// Forward evidence (initiator to responder).
    pub fwd: DirectionJson,
    /// Backward evidence.
    pub bwd: DirectionJson,
}

impl<'a> RecordJson<'a> {
    /// The serialized form of a record.
    pub fn new(capture: &'a str, r: &FlowRecord) -> Self {
        RecordJson {
            capture,
            transport: r.key.transport.as_str(),
            src_ip: r.key.src_ip,
            src_port: r.key.src_port,
            dst_ip: r.key.dst_ip,
            dst_port: r.key.dst_port,
            first_seen: r.first_seen.as_secs_f64(),
            last_seen: r.last_seen.as_secs_f64(),
            packets: r.packets(),
            payload_bytes: r.payload_bytes(),
            end: r.end.as_str(),
            verdict: r.verdict.label.as_str(),
            kind: r.verdict.kind.map(|k| k.as_str()),
            confidence: rounded_confidence(r.verdict.confidence),
            decided_at_packet: r.verdict.decided_at_packet,
            community_id: community_id_inline(&r.key),
            via: r.verdict.via.map(|v| v.as_str()),
            decided_after_seconds: r.verdict.decided_after_seconds.map(rounded_seconds),
            revised_from: r.revised_from.map(|l| l.as_str()),
            contradiction: r.contradiction.map(|c| c.as_str()),
            first_payload_random: r.first_payload_random,
            rhythm_decision: r.rhythm.decision.as_str(),
            rhythm_windows: r.rhythm.windows,
            rhythm_log_odds_sum: round3(f64::from(r.rhythm.sum_log_odds)),
            tunnel: r.tunnel.map(|t| t.kind.as_str()),
            tunnel_id: r.tunnel.and_then(|t| t.id),
            outer_src_ip: r.tunnel.map(|t| t.outer_src),
            outer_dst_ip: r.tunnel.map(|t| t.outer_dst),
            tunnel_depth: r.tunnel.map(|t| t.depth),
            fwd: DirectionJson::from(&r.directions[0]),
            bwd: DirectionJson::from(&r.directions[1]),
        }
    }
}

/// A verdict's confidence as records print it (four decimals).
fn rounded_confidence(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// Seconds to a decision as records print them (microseconds).
fn rounded_seconds(x: f32) -> f64 {
    (f64::from(x) * 1e6).round() / 1e6
}

/// A verdict reached while its flow is open, as serialized (the streaming
/// faces' `verdict` event): the flow, its tunnel, and the verdict's fields
/// with the names and rounding of a record's.
#[derive(Debug, Serialize)]
pub struct VerdictJson {
    /// "udp" or "tcp".
    pub transport: &'static str,
    /// Initiator address.
    pub src_ip: IpAddr,
    /// Initiator port.
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port.
    pub dst_port: u16,
    /// Community ID v1 (seed 0).
    pub community_id: CommunityId,
    /// "skype", "not_skype" or "undecided".
    pub verdict: &'static str,
    /// The kind of Skype, or null.
    pub kind: Option<&'static str>,
    /// In [0, 1].
    pub confidence: f64,
    /// Flow packet count at the decision.
    pub decided_at_packet: Option<u64>,
    /// Seconds from the first packet to the decision.
    pub decided_after_seconds: Option<f64>,
    /// "flow" or "endpoint".
    pub via: Option<&'static str>,
    /// The tunnel that carried the flow, as in records.
    pub tunnel: Option<&'static str>,
    /// Its identifier.
    pub tunnel_id: Option<u32>,
    /// The tunnel's outer source address.
    pub outer_src_ip: Option<IpAddr>,
    /// The tunnel's outer destination address.
    pub outer_dst_ip: Option<IpAddr>,
    /// How many tunnels deep.
    pub tunnel_depth: Option<u8>,
}

impl VerdictJson {
    /// The serialized form of a verdict event's fields.
    pub fn new(key: &FlowKey, tunnel: Option<&Tunnel>, v: &Verdict) -> Self {
        VerdictJson {
            transport: key.transport.as_str(),
            src_ip: key.src_ip,
            src_port: key.src_port,
            dst_ip: key.dst_ip,
            dst_port: key.dst_port,
            community_id: community_id_inline(key),
            verdict: v.label.as_str(),
            kind: v.kind.map(|k| k.as_str()),
            confidence: rounded_confidence(v.confidence),
            decided_at_packet: v.decided_at_packet,
            decided_after_seconds: v.decided_after_seconds.map(rounded_seconds),
            via: v.via.map(|x| x.as_str()),
            tunnel: tunnel.map(|t| t.kind.as_str()),
            tunnel_id: tunnel.and_then(|t| t.id),
            outer_src_ip: tunnel.map(|t| t.outer_src),
            outer_dst_ip: tunnel.map(|t| t.outer_dst),
            tunnel_depth: tunnel.map(|t| t.depth),
        }
    }
}

/// Output formats of the `classify` example.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
    /// Aligned columns for people.
    Table,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(Format::Jsonl),
            "csv" => Ok(Format::Csv),
            "table" => Ok(Format::Table),
            other => Err(format!("unknown format {other:?}: use jsonl, csv or table")),
        }
    }
}

/// CSV columns, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "capture",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "first_seen",
    "last_seen",
    "packets",
    "payload_bytes",
    "end",
    "verdict",
    "kind",
    "confidence",
    "decided_at_packet",
    "community_id",
    "via",
    "decided_after_seconds",
    "revised_from",
    "fwd_csc_class",
    "fwd_dft_class",
    "fwd_sampled",
    "fwd_nbc_windows",
    "fwd_nbc_mean_log_odds",
    "fwd_chi2",
    "bwd_csc_class",
    "bwd_dft_class",
    "bwd_sampled",
    "bwd_nbc_windows",
    "bwd_nbc_mean_log_odds",
    "bwd_chi2",
    "contradiction",
    "rhythm_decision",
    "rhythm_windows",
    "rhythm_log_odds_sum",
    "fwd_state",
    "fwd_contradiction",
    "fwd_structured_groups",
    "fwd_nbc_decision",
    "bwd_state",
    "bwd_contradiction",
    "bwd_structured_groups",
    "bwd_nbc_decision",
    "first_payload_random",
    "tunnel",
    "tunnel_id",
    "outer_src_ip",
    "outer_dst_ip",
    "tunnel_depth",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

fn chi2_list(c: &[f32; 16]) -> String {
    c.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Writes records in a format.
///
/// JSON lines and CSV are written straight into one reused line buffer:
/// integers and floats through serde_json's own number formatting (the
/// text of [`RecordJson`] serialized by serde_json, byte for byte), fixed
/// six-decimal times from their integer microseconds, no `String` per
/// field. [`reference_json_line`] and [`reference_csv_line`] are the plain
/// renderings the tests compare them with.
pub struct RecordWriter<W: Write> {
    out: W,
    format: Format,
    header_done: bool,
    line: Vec<u8>,
    /// The last capture name and its escaped (JSON) or quoted (CSV) form.
    capture: (String, Vec<u8>),
}

impl<W: Write> RecordWriter<W> {
    /// A writer to `out`.
    pub fn new(out: W, format: Format) -> Self {
        RecordWriter {
            out,
            format,
            header_done: false,
            line: Vec::with_capacity(1024),
            capture: (String::new(), Vec::new()),
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if self.header_done {
            return Ok(());
        }
        self.header_done = true;
        match self.format {
            Format::Jsonl => Ok(()),
            Format::Csv => writeln!(self.out, "{}", CSV_COLUMNS.join(",")),
            Format::Table => writeln!(
                self.out,
                "{:<5} {:<45} {:<45} {:>7} {:>10} {:<11} {:<10} {:<10} {:>5} {:>7} {:<8}",
                "proto",
                "source",
                "destination",
                "packets",
                "bytes",
                "end",
                "verdict",
                "kind",
                "conf",
                "at_pkt",
                "via"
            ),
        }
    }

    /// The capture's name as written: escaped once per capture.
    fn capture_text(&mut self, capture: &str) -> io::Result<()> {
        if self.capture.0 != capture || self.capture.1.is_empty() {
            self.capture.0.clear();
            self.capture.0.push_str(capture);
            self.capture.1.clear();
            match self.format {
                Format::Csv => self
                    .capture
                    .1
                    .extend_from_slice(csv_field(capture).as_bytes()),
                _ => {
                    serde_json::to_writer(&mut self.capture.1, capture).map_err(io::Error::other)?
                }
            }
        }
        Ok(())
    }

    /// Writes one record.
    pub fn write(&mut self, capture: &str, r: &FlowRecord) -> io::Result<()> {
        self.header()?;
        let j = RecordJson::new(capture, r);
        self.line.clear();
        match self.format {
            Format::Jsonl => {
                self.capture_text(capture)?;
                json_line(&mut self.line, &self.capture.1, &j)?;
            }
            Format::Csv => {
                self.capture_text(capture)?;
                csv_line(&mut self.line, &self.capture.1, &j)?;
            }
            Format::Table => {
                let ep = |ip: &IpAddr, port: u16| match ip {
                    IpAddr::V6(_) => format!("[{ip}]:{port}"),
                    IpAddr::V4(_) => format!("{ip}:{port}"),
                };
                writeln!(
                    self.line,
                    "{:<5} {:<45} {:<45} {:>7} {:>10} {:<11} {:<10} {:<10} {:>5.2} {:>7} {:<8}",
                    j.transport,
                    ep(&j.src_ip, j.src_port),
                    ep(&j.dst_ip, j.dst_port),
                    j.packets,
                    j.payload_bytes,
                    j.end,
                    j.verdict,
                    j.kind.unwrap_or("-"),
                    j.confidence,
                    opt(j.decided_at_packet),
                    j.via.unwrap_or("-"),
                )?;
            }
        }
        self.out.write_all(&self.line)
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The output.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }
}

/// Numbers as serde_json writes them (itoa for integers, the shortest
/// round-trip digits for floats; a float that is not finite is `null`).
mod number {
    use serde_json::ser::{CompactFormatter, Formatter};
    use std::io;

    /// `v` as serde_json writes it: below 10^8 (the records' counts, ports
    /// and packet numbers), as one 8-byte word cut back to its digits
    /// ([`super::digits_word`]); beyond, through serde_json.
    #[inline]
    pub fn u64(out: &mut Vec<u8>, v: u64) -> io::Result<()> {
        match u32::try_from(v) {
            Ok(small) if small < 100_000_000 => {
                super::digits_word(out, small);
                Ok(())
            }
            _ => CompactFormatter.write_u64(out, v),
        }
    }

    #[inline]
    pub fn f64(out: &mut Vec<u8>, v: f64) -> io::Result<()> {
        if v.is_finite() {
            CompactFormatter.write_f64(out, v)
        } else {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }

    /// A float that was rounded to hundredths (`(x * 100).round() / 100`
    /// in f32, as the chi-square values are) below 65,536: serde_json's
    /// shortest digits are then those hundredths, written here from the
    /// integer without the general float formatter (the test
    /// `hundredths_are_serde_jsons` checks every such value); any other
    /// value goes through [`f32`].
    #[cfg(test)]
    pub fn f32_hundredths(out: &mut Vec<u8>, v: f32) -> io::Result<()> {
        f32_hundredths_known(out, v, super::hundredths_of(v))
    }

    /// [`f32_hundredths`] of `v` whose hundredths `k` are known
    /// (`v == k as f32 / 100.0`, below 6,553,600), or None.
    #[inline]
    pub fn f32_hundredths_known(out: &mut Vec<u8>, v: f32, k: Option<u32>) -> io::Result<()> {
        {
            if let Some(k) = k {
                // At most "65535.99"; one decimal when the second is 0.
                let frac = k % 100;
                if frac.is_multiple_of(10) {
                    super::decimal_word(out, k / 100, frac / 10, 1);
                } else {
                    super::decimal_word(out, k / 100, frac, 2);
                }
                return Ok(());
            }
        }
        f32(out, v)
    }

    pub fn f32(out: &mut Vec<u8>, v: f32) -> io::Result<()> {
        if v.is_finite() {
            CompactFormatter.write_f32(out, v)
        } else {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// Appends `"name":` (after a comma unless first), a constant the
/// compiler copies inline.
macro_rules! key {
    ($out:expr, true, $name:literal) => {
        $out.extend_from_slice(concat!("\"", $name, "\":").as_bytes())
    };
    ($out:expr, false, $name:literal) => {
        $out.extend_from_slice(concat!(",\"", $name, "\":").as_bytes())
    };
}

/// A string that needs no escaping (the record's own names and
/// addresses), quoted.
#[inline]
fn plain(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
}

#[inline]
fn opt_plain(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => plain(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// An address as `Display` writes it; IPv4 without the formatting
/// machinery.
fn ip_text(out: &mut Vec<u8>, ip: &IpAddr) -> io::Result<()> {
    match ip {
        IpAddr::V4(a) => {
            for (i, o) in a.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if *o >= 100 {
                    out.push(b'0' + o / 100);
                }
                if *o >= 10 {
                    out.push(b'0' + (o / 10) % 10);
                }
                out.push(b'0' + o % 10);
            }
            Ok(())
        }
        IpAddr::V6(_) => write!(out, "{ip}"),
    }
}

fn ip(out: &mut Vec<u8>, ip: &IpAddr) -> io::Result<()> {
    out.push(b'"');
    ip_text(out, ip)?;
    out.push(b'"');
    Ok(())
}

fn opt_u64(out: &mut Vec<u8>, v: Option<u64>) -> io::Result<()> {
    match v {
        Some(v) => number::u64(out, v),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn direction_json(out: &mut Vec<u8>, d: &DirectionJson) -> io::Result<()> {
    out.push(b'{');
    key!(out, true, "packets");
    number::u64(out, u64::from(d.packets))?;
    key!(out, false, "payload_bytes");
    number::u64(out, d.payload_bytes)?;
    key!(out, false, "csc_class");
    plain(out, d.csc_class);
    key!(out, false, "chi2");
    out.push(b'[');
    chi2_values(
        out,
        &d.chi2,
        &d.chi2_hundredths,
        b',',
        number::f32_hundredths_known,
    )?;
    out.push(b']');
    key!(out, false, "window_sampled");
    number::u64(out, u64::from(d.window_sampled))?;
    key!(out, false, "sampled");
    number::u64(out, u64::from(d.sampled))?;
    key!(out, false, "csc_first_at_packet");
    opt_u64(out, d.csc_first_at_packet)?;
    key!(out, false, "dft_class");
    plain(out, d.dft_class);
    key!(out, false, "nbc_windows");
    number::u64(out, u64::from(d.nbc_windows))?;
    key!(out, false, "nbc_passed");
    number::u64(out, u64::from(d.nbc_passed))?;
    key!(out, false, "nbc_mean_log_odds");
    number::f64(out, d.nbc_mean_log_odds)?;
    key!(out, false, "video");
    out.extend_from_slice(if d.video { b"true" } else { b"false" });
    key!(out, false, "state");
    opt_plain(out, d.state);
    key!(out, false, "contradiction");
    opt_plain(out, d.contradiction);
    key!(out, false, "structured_groups");
    number::u64(out, u64::from(d.structured_groups))?;
    key!(out, false, "nbc_decision");
    plain(out, d.nbc_decision);
    key!(out, false, "nbc_log_odds_sum");
    number::f64(out, d.nbc_log_odds_sum)?;
    out.push(b'}');
    Ok(())
}

/// One JSON line (with its newline): the text serde_json makes of `j`,
/// with `capture` already escaped.
fn json_line(out: &mut Vec<u8>, capture: &[u8], j: &RecordJson<'_>) -> io::Result<()> {
    out.push(b'{');
    key!(out, true, "capture");
    out.extend_from_slice(capture);
    key!(out, false, "transport");
    plain(out, j.transport);
    key!(out, false, "src_ip");
    ip(out, &j.src_ip)?;
    key!(out, false, "src_port");
    number::u64(out, u64::from(j.src_port))?;
    key!(out, false, "dst_ip");
    ip(out, &j.dst_ip)?;
    key!(out, false, "dst_port");
    number::u64(out, u64::from(j.dst_port))?;
    key!(out, false, "first_seen");
    number::f64(out, j.first_seen)?;
    key!(out, false, "last_seen");
    number::f64(out, j.last_seen)?;
    key!(out, false, "packets");
    number::u64(out, j.packets)?;
    key!(out, false, "payload_bytes");
    number::u64(out, j.payload_bytes)?;
    key!(out, false, "end");
    plain(out, j.end);
    key!(out, false, "verdict");
    plain(out, j.verdict);
    key!(out, false, "kind");
    opt_plain(out, j.kind);
    key!(out, false, "confidence");
    number::f64(out, j.confidence)?;
    key!(out, false, "decided_at_packet");
    opt_u64(out, j.decided_at_packet)?;
    key!(out, false, "community_id");
    plain(out, j.community_id.as_str());
    key!(out, false, "via");
    opt_plain(out, j.via);
    key!(out, false, "decided_after_seconds");
    match j.decided_after_seconds {
        Some(x) => number::f64(out, x)?,
        None => out.extend_from_slice(b"null"),
    }
    key!(out, false, "revised_from");
    opt_plain(out, j.revised_from);
    key!(out, false, "contradiction");
    opt_plain(out, j.contradiction);
    key!(out, false, "first_payload_random");
    out.extend_from_slice(match j.first_payload_random {
        Some(true) => b"true",
        Some(false) => b"false",
        None => b"null",
    });
    key!(out, false, "rhythm_decision");
    plain(out, j.rhythm_decision);
    key!(out, false, "rhythm_windows");
    number::u64(out, u64::from(j.rhythm_windows))?;
    key!(out, false, "rhythm_log_odds_sum");
    number::f64(out, j.rhythm_log_odds_sum)?;
    key!(out, false, "tunnel");
    opt_plain(out, j.tunnel);
    key!(out, false, "tunnel_id");
    opt_u64(out, j.tunnel_id.map(u64::from))?;
    key!(out, false, "outer_src_ip");
    match &j.outer_src_ip {
        Some(a) => ip(out, a)?,
        None => out.extend_from_slice(b"null"),
    }
    key!(out, false, "outer_dst_ip");
    match &j.outer_dst_ip {
        Some(a) => ip(out, a)?,
        None => out.extend_from_slice(b"null"),
    }
    key!(out, false, "tunnel_depth");
    opt_u64(out, j.tunnel_depth.map(u64::from))?;
    key!(out, false, "fwd");
    direction_json(out, &j.fwd)?;
    key!(out, false, "bwd");
    direction_json(out, &j.bwd)?;
    out.extend_from_slice(b"}\n");
    Ok(())
}

/// Seconds with exactly six decimals, as `format!("{x:.6}")` writes them:
/// from the integer microseconds the value came from (exact below 2^32
/// seconds; beyond, and for what is not finite, through `format!`).
fn fixed6(out: &mut Vec<u8>, x: f64) -> io::Result<()> {
    if !(x.is_finite() && x.abs() < 4.0e9) {
        return write!(out, "{x:.6}");
    }
    let micros = (x * 1e6).round() as i64;
    if x.is_sign_negative() {
        out.push(b'-');
    }
    let m = micros.unsigned_abs();
    number::u64(out, m / 1_000_000)?;
    out.push(b'.');
    let frac = m % 1_000_000;
    let mut digits = [b'0'; 6];
    let mut f = frac;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (f % 10) as u8;
        f /= 10;
    }
    out.extend_from_slice(&digits);
    Ok(())
}

/// A float as Rust's `Display` writes it (shortest round-trip digits, no
/// exponent): the CSV's form.
/// `x` as `Display` writes it. A value with at most six decimals below a
/// billion (what the records' rounding to thousandths, ten-thousandths and
/// microseconds makes) is written from its integer millionths: its shortest
/// round-trip digits are those decimals, no other decimal of as few digits
/// lying within half a unit in the last place of it (the test
/// `rounded_values_are_displays` checks); anything else goes through the
/// formatter.
fn display_f64(out: &mut Vec<u8>, x: f64) -> io::Result<()> {
    if x.is_finite() && x.abs() < 1e9 && !(x == 0.0 && x.is_sign_negative()) {
        let m = (x * 1e6).round();
        if m / 1e6 == x {
            let m = m as i64;
            if m < 0 {
                out.push(b'-');
            }
            let m = m.unsigned_abs();
            number::u64(out, m / 1_000_000)?;
            let mut frac = m % 1_000_000;
            if frac != 0 {
                let mut digits = 6;
                while frac.is_multiple_of(10) {
                    frac /= 10;
                    digits -= 1;
                }
                let at = |i: usize, b: u8| u64::from(b) << (8 * i);
                let mut word = at(0, b'.');
                for i in (1..=digits).rev() {
                    word |= at(i, b'0' + (frac % 10) as u8);
                    frac /= 10;
                }
                let end = out.len() + digits + 1;
                out.extend_from_slice(&word.to_le_bytes());
                out.truncate(end);
            }
            return Ok(());
        }
    }
    write!(out, "{x}")
}

fn csv_opt(out: &mut Vec<u8>, s: Option<&str>) {
    if let Some(s) = s {
        out.extend_from_slice(s.as_bytes());
    }
}

/// The decimal digits of `v` (below 10^8, at most 8 digits), appended as
/// one 8-byte word and cut back to their count, as [`decimal_word`] does.
#[inline]
fn digits_word(out: &mut Vec<u8>, v: u32) {
    debug_assert!(v < 100_000_000);
    let digits = v.checked_ilog10().unwrap_or(0) as usize + 1;
    let mut word = 0u64;
    let mut x = v;
    for i in (0..digits).rev() {
        word |= u64::from(b'0' + (x % 10) as u8) << (8 * i);
        x /= 10;
    }
    let end = out.len() + digits;
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(end);
}

/// `int.frac` with `frac` written in `frac_digits` digits (`int` below
/// 100,000, `int` and the point and the digits at most 8 bytes): the
/// length first, then the bytes in one register, little end first,
/// appended as one 8-byte word and cut back to the length (a copy of
/// unknown length would be a call, and bytes stored one by one and read
/// back as a word would stall the read behind the stores).
fn decimal_word(out: &mut Vec<u8>, int: u32, frac: u32, frac_digits: usize) {
    // Two digits at a time from a table: a third of the divisions of
    // digit by digit.
    let pair = |x: u32| -> u64 {
        let i = 2 * (x % 100) as usize;
        u64::from(DIGIT_PAIRS[i]) | (u64::from(DIGIT_PAIRS[i + 1]) << 8)
    };
    let digit = |x: u32| u64::from(b'0' + (x % 10) as u8);
    let (int_word, int_digits) = match int {
        0..=9 => (digit(int), 1),
        10..=99 => (pair(int), 2),
        100..=999 => (digit(int / 100) | (pair(int) << 8), 3),
        1000..=9999 => (pair(int / 100) | (pair(int) << 16), 4),
        _ => (
            digit(int / 10_000) | (pair(int / 100) << 8) | (pair(int) << 24),
            5,
        ),
    };
    let frac_word = if frac_digits == 1 {
        digit(frac)
    } else {
        pair(frac)
    };
    let frac_digits = frac_digits.min(2);
    let word =
        int_word | (u64::from(b'.') << (8 * int_digits)) | (frac_word << (8 * (int_digits + 1)));
    let end = out.len() + int_digits + 1 + frac_digits;
    out.extend_from_slice(&word.to_le_bytes());
    out.truncate(end);
}

/// "00" to "99", for [`decimal_word`].
const DIGIT_PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The hundredths `k` of `v` when `v` is `k as f32 / 100.0` (non-negative,
/// below 65,536, not negative zero).
#[cfg(test)]
fn hundredths_of(v: f32) -> Option<u32> {
    if (0.0..65_536.0).contains(&v) && !(v == 0.0 && v.is_sign_negative()) {
        // v >= 0: adding a half and truncating rounds half away from
        // zero, as `round` does.
        let k = (f64::from(v) * 100.0 + 0.5) as u32;
        if k as f32 / 100.0 == v {
            return Some(k);
        }
    }
    None
}

/// The known hundredths of a chi-square value, if plain.
fn known(k: u32) -> Option<u32> {
    (k != NOT_HUNDREDTHS).then_some(k)
}

#[cfg(test)]
fn tenths(out: &mut Vec<u8>, x: f32) -> io::Result<()> {
    tenths_known(out, x, hundredths_of(x))
}

/// `format!("{x:.1}")` of a float rounded to hundredths below 65,536 (the
/// chi-square values), from its hundredths `k` when known (else None): the
/// exact binary value is rounded to tenths, a tie to the even tenth (the
/// test `tenths_are_formats` checks every such value); others through
/// `format!`.
fn tenths_known(out: &mut Vec<u8>, x: f32, k: Option<u32>) -> io::Result<()> {
    {
        if let Some(k) = k {
            // x * 100 is exact in f64 (24 + 7 bits).
            let exact = f64::from(x) * 100.0;
            let (q, r) = (k / 10, k % 10);
            let mid = f64::from(q * 10 + 5);
            let t = if r < 5 {
                q
            } else if r > 5 || exact > mid {
                q + 1
            } else if exact < mid {
                q
            } else {
                q + (q & 1)
            };
            decimal_word(out, t / 10, t % 10, 1);
            return Ok(());
        }
    }
    write!(out, "{x:.1}")
}

fn csv_chi2(out: &mut Vec<u8>, c: &[f32; 16], k: &[u32; 16]) -> io::Result<()> {
    chi2_values(out, c, k, b' ', tenths_known)
}

/// The 16 chi-square values `c` (with their hundredths `k`), `sep` between
/// them, each as `write` puts it. One value in every group (a direction of
/// no sample or one) is written once and copied.
#[inline]
fn chi2_values(
    out: &mut Vec<u8>,
    c: &[f32; 16],
    k: &[u32; 16],
    sep: u8,
    write: fn(&mut Vec<u8>, f32, Option<u32>) -> io::Result<()>,
) -> io::Result<()> {
    if k.iter().all(|&x| x == k[0]) && c.iter().all(|x| x.to_bits() == c[0].to_bits()) {
        let start = out.len();
        write(out, c[0], known(k[0]))?;
        let end = out.len();
        for _ in 1..c.len() {
            out.push(sep);
            out.extend_from_within(start..end);
        }
        return Ok(());
    }
    for (i, (x, k)) in c.iter().zip(k).enumerate() {
        if i > 0 {
            out.push(sep);
        }
        write(out, *x, known(*k))?;
    }
    Ok(())
}

/// One CSV line (with its newline), `capture` already quoted as needed.
fn csv_line(out: &mut Vec<u8>, capture: &[u8], j: &RecordJson<'_>) -> io::Result<()> {
    let sep = |out: &mut Vec<u8>| out.push(b',');
    out.extend_from_slice(capture);
    sep(out);
    out.extend_from_slice(j.transport.as_bytes());
    sep(out);
    ip_text(out, &j.src_ip)?;
    sep(out);
    number::u64(out, u64::from(j.src_port))?;
    sep(out);
    ip_text(out, &j.dst_ip)?;
    sep(out);
    number::u64(out, u64::from(j.dst_port))?;
    sep(out);
    fixed6(out, j.first_seen)?;
    sep(out);
    fixed6(out, j.last_seen)?;
    sep(out);
    number::u64(out, j.packets)?;
    sep(out);
    number::u64(out, j.payload_bytes)?;
    sep(out);
    out.extend_from_slice(j.end.as_bytes());
    sep(out);
    out.extend_from_slice(j.verdict.as_bytes());
    sep(out);
    csv_opt(out, j.kind);
    sep(out);
    display_f64(out, j.confidence)?;
    sep(out);
    if let Some(v) = j.decided_at_packet {
        number::u64(out, v)?;
    }
    sep(out);
    out.extend_from_slice(j.community_id.as_str().as_bytes());
    sep(out);
    csv_opt(out, j.via);
    sep(out);
    if let Some(x) = j.decided_after_seconds {
        display_f64(out, x)?;
    }
    sep(out);
    csv_opt(out, j.revised_from);
    for d in [&j.fwd, &j.bwd] {
        sep(out);
        out.extend_from_slice(d.csc_class.as_bytes());
        sep(out);
        out.extend_from_slice(d.dft_class.as_bytes());
        sep(out);
        number::u64(out, u64::from(d.sampled))?;
        sep(out);
        number::u64(out, u64::from(d.nbc_windows))?;
        sep(out);
        display_f64(out, d.nbc_mean_log_odds)?;
        sep(out);
        csv_chi2(out, &d.chi2, &d.chi2_hundredths)?;
    }
    sep(out);
    csv_opt(out, j.contradiction);
    sep(out);
    out.extend_from_slice(j.rhythm_decision.as_bytes());
    sep(out);
    number::u64(out, u64::from(j.rhythm_windows))?;
    sep(out);
    display_f64(out, j.rhythm_log_odds_sum)?;
    for d in [&j.fwd, &j.bwd] {
        sep(out);
        csv_opt(out, d.state);
        sep(out);
        csv_opt(out, d.contradiction);
        sep(out);
        number::u64(out, u64::from(d.structured_groups))?;
        sep(out);
        out.extend_from_slice(d.nbc_decision.as_bytes());
    }
    sep(out);
    match j.first_payload_random {
        Some(true) => out.extend_from_slice(b"true"),
        Some(false) => out.extend_from_slice(b"false"),
        None => {}
    }
    sep(out);
    csv_opt(out, j.tunnel);
    sep(out);
    if let Some(v) = j.tunnel_id {
        number::u64(out, u64::from(v))?;
    }
    sep(out);
    if let Some(a) = &j.outer_src_ip {
        write!(out, "{a}")?;
    }
    sep(out);
    if let Some(a) = &j.outer_dst_ip {
        write!(out, "{a}")?;
    }
    sep(out);
    if let Some(v) = j.tunnel_depth {
        number::u64(out, u64::from(v))?;
    }
    out.push(b'\n');
    Ok(())
}

/// A record's JSON line as serde_json makes it of [`RecordJson`] (the
/// reference the fast writer is tested against).
#[doc(hidden)]
pub fn reference_json_line(capture: &str, r: &FlowRecord) -> String {
    let mut s = serde_json::to_string(&RecordJson::new(capture, r)).unwrap_or_default();
    s.push('\n');
    s
}

/// A record's CSV line built field by field as `String`s (the reference the
/// fast writer is tested against).
#[doc(hidden)]
pub fn reference_csv_line(capture: &str, r: &FlowRecord) -> String {
    let j = RecordJson::new(capture, r);
    let fields = [
        csv_field(j.capture),
        j.transport.to_string(),
        j.src_ip.to_string(),
        j.src_port.to_string(),
        j.dst_ip.to_string(),
        j.dst_port.to_string(),
        format!("{:.6}", j.first_seen),
        format!("{:.6}", j.last_seen),
        j.packets.to_string(),
        j.payload_bytes.to_string(),
        j.end.to_string(),
        j.verdict.to_string(),
        opt(j.kind),
        j.confidence.to_string(),
        opt(j.decided_at_packet),
        j.community_id.to_string(),
        opt(j.via),
        opt(j.decided_after_seconds),
        opt(j.revised_from),
        j.fwd.csc_class.to_string(),
        j.fwd.dft_class.to_string(),
        j.fwd.sampled.to_string(),
        j.fwd.nbc_windows.to_string(),
        j.fwd.nbc_mean_log_odds.to_string(),
        chi2_list(&j.fwd.chi2),
        j.bwd.csc_class.to_string(),
        j.bwd.dft_class.to_string(),
        j.bwd.sampled.to_string(),
        j.bwd.nbc_windows.to_string(),
        j.bwd.nbc_mean_log_odds.to_string(),
        chi2_list(&j.bwd.chi2),
        opt(j.contradiction),
        j.rhythm_decision.to_string(),
        j.rhythm_windows.to_string(),
        j.rhythm_log_odds_sum.to_string(),
        opt(j.fwd.state),
        opt(j.fwd.contradiction),
        j.fwd.structured_groups.to_string(),
        j.fwd.nbc_decision.to_string(),
        opt(j.bwd.state),
        opt(j.bwd.contradiction),
        j.bwd.structured_groups.to_string(),
        j.bwd.nbc_decision.to_string(),
        opt(j.first_payload_random),
        opt(j.tunnel),
        opt(j.tunnel_id),
        opt(j.outer_src_ip),
        opt(j.outer_dst_ip),
        opt(j.tunnel_depth),
    ];
    format!("{}\n", fields.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_serde_jsons() {
        let mut values = vec![0u64, u64::MAX, u64::from(u32::MAX)];
        let mut p = 1u64;
        while let Some(next) = p.checked_mul(10) {
            values.extend([p - 1, p, p + 1]);
            p = next;
        }
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x % 200_000_000);
            values.push(x >> (x % 64));
        }
        for v in values {
            let mut out = b"x".to_vec();
            number::u64(&mut out, v).unwrap();
            assert_eq!(
                &out[1..],
                serde_json::to_string(&v).unwrap().as_bytes(),
                "{v}"
            );
        }
    }

    #[test]
    fn fixed_six_decimals_match_format() {
        for x in [
            0.0,
            -0.0,
            1.5,
            -1.5,
            1_700_000_000.123_456,
            1_234_567_890.000_001,
            0.000_001,
            -0.000_001,
            -0.000_000_1,
            3_999_999_999.999_999,
            4.5e9,
            -7.25e10,
            f64::NAN,
            f64::INFINITY,
        ] {
            let mut out = Vec::new();
            fixed6(&mut out, x).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("{x:.6}"), "{x}");
        }
        // Every microsecond of a day, from a realistic epoch.
        let base = 1_700_000_000_000_000i64;
        for m in (0..86_400_000_000i64).step_by(7_919_993) {
            let x = (base + m) as f64 / 1e6;
            let mut out = Vec::new();
            fixed6(&mut out, x).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), format!("{x:.6}"));
        }
    }

    #[test]
    fn hundredths_are_serde_jsons() {
        let mut out = Vec::with_capacity(32);
        for k in 0..6_553_600u32 {
            let x = k as f32 / 100.0;
            out.clear();
            number::f32_hundredths(&mut out, x).unwrap();
            let want = serde_json::to_string(&x).unwrap();
            assert_eq!(out, want.as_bytes(), "{k}");
        }
        for x in [
            -0.0f32,
            -1.5,
            0.001,
            1e-9,
            65_536.0,
            1e30,
            f32::NAN,
            0.333_333,
        ] {
            out.clear();
            number::f32_hundredths(&mut out, x).unwrap();
            assert_eq!(out, serde_json::to_string(&x).unwrap().as_bytes(), "{x}");
        }
    }

    #[test]
    fn tenths_are_formats() {
        let mut out = Vec::with_capacity(32);
        for k in 0..6_553_600u32 {
            let x = k as f32 / 100.0;
            out.clear();
            tenths(&mut out, x).unwrap();
            assert_eq!(out, format!("{x:.1}").as_bytes(), "{k}");
        }
        for x in [-0.0f32, -1.25, 0.001, 65_536.0, 1e30, f32::NAN, 0.333_333] {
            out.clear();
            tenths(&mut out, x).unwrap();
            assert_eq!(out, format!("{x:.1}").as_bytes(), "{x}");
        }
    }

    #[test]
    fn rounded_values_are_displays() {
        let mut out = Vec::with_capacity(64);
        let mut check = |x: f64| {
            out.clear();
            display_f64(&mut out, x).unwrap();
            assert_eq!(out, format!("{x}").as_bytes(), "{x:?}");
        };
        let mut r = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..2_000_000u64 {
            r ^= r << 13;
            r ^= r >> 7;
            r ^= r << 17;
            // Magnitudes from 1e-7 to 1e10, either sign.
            let mag = 10f64.powi((r % 18) as i32 - 8);
            let y = ((r >> 11) as f64 / (1u64 << 53) as f64)
                * mag
                * if i % 2 == 0 { 1.0 } else { -1.0 };
            check(y);
            check(round3(y));
            check(rounded_confidence(y));
            check(rounded_seconds(y as f32));
        }
        for x in [
            0.0,
            -0.0,
            1.0,
            -1.0,
            0.5,
            1e-6,
            999_999_999.999_999,
            1e9,
            1e21,
            f64::NAN,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ] {
            check(x);
        }
        for k in 0..1_000_000i64 {
            check(k as f64 / 1e6);
            check(k as f64 / 1e3);
            check(-(k as f64) / 1e4);
        }
    }

    /// The hundredths a record carries are those of its rounded values,
    /// exactly where the value is a plain hundredth.
    #[test]
    fn chi2_hundredths_are_those_of_the_values() {
        let mut r = 0x2545_F491_4F6C_DD1Du64;
        let mut d = DirectionRecord::default();
        for _ in 0..200_000 {
            for c in d.evidence.chi2.iter_mut() {
                r ^= r << 13;
                r ^= r >> 7;
                r ^= r << 17;
                let u = (r >> 40) as f32 / (1u64 << 24) as f32;
                *c = match r % 7 {
                    0 => -u,
                    1 => u * 1e6,
                    2 => -0.001 * u,
                    _ => u * 700.0,
                };
            }
            let j = DirectionJson::from(&d);
            for (v, k) in j.chi2.iter().zip(&j.chi2_hundredths) {
                assert_eq!(known(*k), hundredths_of(*v), "{v}");
            }
        }
        d.evidence.chi2 = [f32::NAN; 16];
        let j = DirectionJson::from(&d);
        assert!(j.chi2_hundredths.iter().all(|k| *k == NOT_HUNDREDTHS));
    }

    /// A direction whose 16 values are one value (no sample, one sample,
    /// or any constant) is written once and copied: the text of writing
    /// each, in both formats, and the hundredths of rounding each.
    #[test]
    fn one_value_in_every_group_is_written_as_each() {
        for v in [
            0.0f32,
            -0.0,
            15.0,
            15.004,
            0.125,
            65535.99,
            7e6,
            1e30,
            f32::NAN,
            f32::INFINITY,
        ] {
            let mut d = DirectionRecord::default();
            d.evidence.chi2 = [v; 16];
            let j = DirectionJson::from(&d);
            // Rounding each value on its own gives the same.
            let mut other = d;
            other.evidence.chi2[15] = 1.0;
            let each = DirectionJson::from(&other);
            for g in 0..15 {
                assert_eq!(j.chi2[g].to_bits(), each.chi2[g].to_bits(), "{v}");
                assert_eq!(j.chi2_hundredths[g], each.chi2_hundredths[g], "{v}");
            }
            type Write = fn(&mut Vec<u8>, f32, Option<u32>) -> io::Result<()>;
            let writers: [(u8, Write); 2] =
                [(b',', number::f32_hundredths_known), (b' ', tenths_known)];
            for (sep, write) in writers {
                let mut once = Vec::new();
                chi2_values(&mut once, &j.chi2, &j.chi2_hundredths, sep, write).unwrap();
                let mut each = Vec::new();
                for (g, (c, k)) in j.chi2.iter().zip(&j.chi2_hundredths).enumerate() {
                    if g > 0 {
                        each.push(sep);
                    }
                    write(&mut each, *c, known(*k)).unwrap();
                }
                assert_eq!(once, each, "{v}");
            }
        }
    }

    #[test]
    fn addresses_are_displays() {
        for a in [
            "0.0.0.0",
            "10.9.99.100",
            "255.255.255.255",
            "1.20.3.200",
            "2001:db8::1",
            "::ffff:1.2.3.4",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            let mut out = Vec::new();
            ip_text(&mut out, &ip).unwrap();
            assert_eq!(out, ip.to_string().as_bytes());
        }
    }

    #[test]
    fn numbers_are_serde_jsons() {
        for x in [0.0, 1.0, -2.5, 1e-7, 123456.789, 1e21, f64::NAN, f64::MAX] {
            let mut out = Vec::new();
            number::f64(&mut out, x).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&x).unwrap()
            );
        }
    }
}
