//! Flow records as JSON lines, CSV or a table for people.
//!
//! The JSON and CSV field names are a public interface: fields may be added,
//! never renamed or dropped.

use std::io::{self, Write};

use serde::Serialize;

use crate::classifier::{DirectionRecord, FlowRecord};
use crate::community_id::community_id_v1;
use crate::flow::FlowKey;

/// The seed of the Community ID printed in records (0, as Zeek and Suricata
/// use by default).
pub const COMMUNITY_ID_SEED: u16 = 0;

/// The Community ID of a flow.
pub fn community_id(key: &FlowKey) -> String {
    community_id_v1(
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

impl From<&DirectionRecord> for DirectionJson {
    fn from(d: &DirectionRecord) -> Self {
        let round = |x: f32| (x * 100.0).round() / 100.0;
        let mut chi2 = d.evidence.chi2;
        for c in chi2.iter_mut() {
            *c = round(*c);
        }
        DirectionJson {
            packets: d.packets,
            payload_bytes: d.payload_bytes,
            csc_class: d.evidence.csc.as_str(),
            chi2,
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
    pub src_ip: String,
    /// Initiator port.
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: String,
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
    pub community_id: String,
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
    pub outer_src_ip: Option<String>,
    /// The tunnel's outer destination address.
    pub outer_dst_ip: Option<String>,
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
        let round6 = |x: f64| (x * 1e6).round() / 1e6;
        RecordJson {
            capture,
            transport: r.key.transport.as_str(),
            src_ip: r.key.src_ip.to_string(),
            src_port: r.key.src_port,
            dst_ip: r.key.dst_ip.to_string(),
            dst_port: r.key.dst_port,
            first_seen: r.first_seen.as_secs_f64(),
            last_seen: r.last_seen.as_secs_f64(),
            packets: r.packets(),
            payload_bytes: r.payload_bytes(),
            end: r.end.as_str(),
            verdict: r.verdict.label.as_str(),
            kind: r.verdict.kind.map(|k| k.as_str()),
            confidence: (r.verdict.confidence * 1e4).round() / 1e4,
            decided_at_packet: r.verdict.decided_at_packet,
            community_id: community_id(&r.key),
            via: r.verdict.via.map(|v| v.as_str()),
            decided_after_seconds: r
                .verdict
                .decided_after_seconds
                .map(|x| round6(f64::from(x))),
            revised_from: r.revised_from.map(|l| l.as_str()),
            contradiction: r.contradiction.map(|c| c.as_str()),
            first_payload_random: r.first_payload_random,
            rhythm_decision: r.rhythm.decision.as_str(),
            rhythm_windows: r.rhythm.windows,
            rhythm_log_odds_sum: round3(f64::from(r.rhythm.sum_log_odds)),
            tunnel: r.tunnel.map(|t| t.kind.as_str()),
            tunnel_id: r.tunnel.and_then(|t| t.id),
            outer_src_ip: r.tunnel.map(|t| t.outer_src.to_string()),
            outer_dst_ip: r.tunnel.map(|t| t.outer_dst.to_string()),
            tunnel_depth: r.tunnel.map(|t| t.depth),
            fwd: DirectionJson::from(&r.directions[0]),
            bwd: DirectionJson::from(&r.directions[1]),
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
pub struct RecordWriter<W: Write> {
    out: W,
    format: Format,
    header_done: bool,
}

impl<W: Write> RecordWriter<W> {
    /// A writer to `out`.
    pub fn new(out: W, format: Format) -> Self {
        RecordWriter {
            out,
            format,
            header_done: false,
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

    /// Writes one record.
    pub fn write(&mut self, capture: &str, r: &FlowRecord) -> io::Result<()> {
        self.header()?;
        let j = RecordJson::new(capture, r);
        match self.format {
            Format::Jsonl => {
                serde_json::to_writer(&mut self.out, &j).map_err(io::Error::other)?;
                writeln!(self.out)
            }
            Format::Csv => {
                let fields = [
                    csv_field(j.capture),
                    j.transport.to_string(),
                    j.src_ip.clone(),
                    j.src_port.to_string(),
                    j.dst_ip.clone(),
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
                    j.community_id.clone(),
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
                    opt(j.outer_src_ip.as_deref()),
                    opt(j.outer_dst_ip.as_deref()),
                    opt(j.tunnel_depth),
                ];
                writeln!(self.out, "{}", fields.join(","))
            }
            Format::Table => {
                let ep = |ip: &str, port: u16| {
                    if ip.contains(':') {
                        format!("[{ip}]:{port}")
                    } else {
                        format!("{ip}:{port}")
                    }
                };
                writeln!(
                    self.out,
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
                )
            }
        }
    }

    /// Flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}
