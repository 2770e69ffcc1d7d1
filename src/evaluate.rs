//! Evaluation: classifies labelled captures, matches flows to labels by
//! unordered 5-tuple, applies the label policy of `datasets.md`, and measures
//! precision, recall and false-positive rates per flow and per byte, with
//! every false positive and every miss listed with its evidence.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;

use crate::analyze::analyze_file;
use crate::classifier::FlowRecord;
use crate::config::FlowTableConfig;
use crate::flow::FlowKey;
use crate::labels::{load_spec, LabelClass, LabelError};
use crate::model::Model;
use crate::nbc::{NbcDecision, NbcScore};
use crate::plots::PlotData;
use crate::train::capture_windows;
use crate::verdict::{contradiction_of, Label, Via};

/// One evaluated flow, as listed in reports.
#[derive(Debug, Clone, Serialize)]
pub struct ListedFlow {
    /// The capture file name.
    pub capture: String,
    /// "udp" or "tcp".
    pub transport: &'static str,
    /// Initiator.
    pub src: String,
    /// Responder.
    pub dst: String,
    /// The label's text.
    pub label: String,
    /// The label's class.
    pub class: &'static str,
    /// Our verdict.
    pub verdict: &'static str,
    /// Our kind.
    pub kind: Option<&'static str>,
    /// "flow" or "endpoint".
    pub via: Option<&'static str>,
    /// Packets.
    pub packets: u64,
    /// CSC classes (forward, backward).
    pub csc: [&'static str; 2],
    /// DFT classes.
    pub dft: [&'static str; 2],
    /// NBC windows.
    pub nbc_windows: [u16; 2],
    /// NBC mean log-odds.
    pub nbc_mean_log_odds: [f64; 2],
}

fn endpoint_str(ip: std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

impl ListedFlow {
    fn new(capture: &str, label: &str, class: LabelClass, r: &FlowRecord) -> Self {
        let d = &r.directions;
        let round = |x: f64| (x * 1000.0).round() / 1000.0;
        ListedFlow {
            capture: capture.to_string(),
            transport: r.key.transport.as_str(),
            src: endpoint_str(r.key.src_ip, r.key.src_port),
            dst: endpoint_str(r.key.dst_ip, r.key.dst_port),
            label: label.to_string(),
            class: class.as_str(),
            verdict: r.verdict.label.as_str(),
            kind: r.verdict.kind.map(|k| k.as_str()),
            via: r.verdict.via.map(|v| v.as_str()),
            packets: r.packets(),
            csc: [d[0].evidence.csc.as_str(), d[1].evidence.csc.as_str()],
            dft: [d[0].evidence.dft.as_str(), d[1].evidence.dft.as_str()],
            nbc_windows: [d[0].evidence.nbc.windows, d[1].evidence.nbc.windows],
            nbc_mean_log_odds: [
                round(d[0].evidence.nbc.mean_log_odds()),
                round(d[1].evidence.nbc.mean_log_odds()),
            ],
        }
    }
}

/// Counts of one class of flows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Tally {
    /// Flows.
    pub flows: u64,
    /// Payload bytes.
    pub bytes: u64,
    /// Flows called Skype.
    pub skype: u64,
    /// Bytes of flows called Skype.
    pub skype_bytes: u64,
    /// Flows called Skype by their own evidence (not through an endpoint).
    pub skype_via_flow: u64,
    /// Flows left undecided.
    pub undecided: u64,
    /// Flows judged not Skype.
    pub not_skype: u64,
}

impl Tally {
    fn add(&mut self, r: &FlowRecord) {
        self.flows += 1;
        self.bytes += r.payload_bytes();
        match r.verdict.label {
            Label::Skype => {
                self.skype += 1;
                self.skype_bytes += r.payload_bytes();
                if r.verdict.via == Some(Via::Flow) {
                    self.skype_via_flow += 1;
                }
            }
            Label::Undecided => self.undecided += 1,
            Label::NotSkype => self.not_skype += 1,
        }
    }
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The metrics of one set (one label spec).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SetMetrics {
    /// The label spec.
    pub set: String,
    /// Captures read.
    pub captures: usize,
    /// Captures that ended early (truncated).
    pub truncated_captures: usize,
    /// Classic Skype flows (positives).
    pub positives: Tally,
    /// Negative flows.
    pub negatives: Tally,
    /// Modern Skype/Teams flows (reported apart).
    pub modern_skype: Tally,
    /// Unconfirmed classic Skype TCP (reported apart).
    pub unconfirmed_tcp: Tally,
    /// Microsoft services (left out of the metrics).
    pub excluded: Tally,
    /// Flows without a label.
    pub unlabelled: u64,
    /// Recall per flow: TP / positives.
    pub recall: Option<f64>,
    /// Recall per flow without endpoint correlation.
    pub recall_without_endpoints: Option<f64>,
    /// Recall per byte.
    pub recall_bytes: Option<f64>,
    /// Precision per flow: TP / (TP + FP).
    pub precision: Option<f64>,
    /// Precision per byte.
    pub precision_bytes: Option<f64>,
    /// False-positive rate per flow: FP / negatives.
    pub fpr: Option<f64>,
    /// False-positive rate per byte.
    pub fpr_bytes: Option<f64>,
    /// Median packets to a Skype verdict (true positives).
    pub median_packets_to_verdict: Option<f64>,
    /// Median seconds to a Skype verdict (true positives).
    pub median_seconds_to_verdict: Option<f64>,
    /// Flows of any class called "not_skype" whose evidence holds no
    /// contradiction (must be 0: too little evidence is "undecided").
    pub not_skype_without_contradiction: u64,
}

/// Time to a Skype verdict from a flow's first packet, for the positives
/// of one kind (or variant) in one set.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TimeToVerdict {
    /// The label spec.
    pub set: String,
    /// The kind or variant (the label's), "classic" without one.
    pub kind: String,
    /// Positive flows.
    pub flows: u64,
    /// Of which called Skype.
    pub skype: u64,
    /// Median seconds from the first packet to the verdict (Skype flows).
    pub median_seconds: Option<f64>,
    /// 95th percentile of the same.
    pub p95_seconds: Option<f64>,
    /// Shares of all the positive flows of the row decided Skype within 1,
    /// 2 and 5 seconds of their first packet.
    pub within: [Option<f64>; 3],
    /// Median packets of the flow at the verdict.
    pub median_packets: Option<f64>,
}

/// Negatives per protocol (nDPI's label), for seeing which come close.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProtocolRow {
    /// The label.
    pub protocol: String,
    /// Flows.
    pub flows: u64,
    /// Flows with a direction the CSC calls E2E, E2O or TCP.
    pub csc_flagged: u64,
    /// Flows whose rhythm alone the NBC decided, media or other.
    pub nbc_judged: u64,
    /// Flows whose rhythm alone the NBC calls media (over all the flow's
    /// windows, whatever the other tests decided).
    pub nbc_passed: u64,
    /// Flows with a CSC-flagged direction whose rhythm the NBC alone calls
    /// media (before the DFT and TCP rules).
    pub both: u64,
    /// Flows called Skype.
    pub skype: u64,
    /// Highest mean NBC log-odds of a CSC-flagged direction (how close).
    pub closest_log_odds: Option<f64>,
}

/// Media flows (voice/video calls of other protocols, from nDPI's labels):
/// how often their rhythm passes the NBC.
#[derive(Debug, Clone, Default, Serialize)]
pub struct MediaRow {
    /// The label.
    pub protocol: String,
    /// Media flows.
    pub flows: u64,
    /// Flows whose rhythm the NBC alone decided (over all their windows).
    pub judged: u64,
    /// Flows whose rhythm the NBC alone calls media.
    pub passed: u64,
}

/// A whole evaluation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evaluation {
    /// Per set.
    pub sets: Vec<SetMetrics>,
    /// Every false positive.
    pub false_positives: Vec<ListedFlow>,
    /// Every missed positive.
    pub misses: Vec<ListedFlow>,
    /// Modern Skype/Teams flows and what we said.
    pub modern_skype: Vec<ListedFlow>,
    /// Negatives by protocol.
    pub negatives_by_protocol: Vec<ProtocolRow>,
    /// Negatives with a CSC-flagged direction.
    pub csc_flagged_negatives: Vec<ListedFlow>,
    /// Media flows of other protocols and the NBC.
    pub media_by_protocol: Vec<MediaRow>,
    /// Time to verdict per set and kind.
    pub time_to_verdict: Vec<TimeToVerdict>,
    /// The NBC threshold (window log-odds).
    pub nbc_threshold: f64,
    /// Data for the pictures.
    pub plots: PlotData,
}

/// The q-quantile (nearest rank) of values.
fn quantile(v: &[f64], q: f64) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1;
    Some(s[i])
}

fn median<T: Copy + Into<f64>>(v: &[T]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s: Vec<f64> = v.iter().map(|&x| x.into()).collect();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// What went wrong.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// Labels.
    #[error(transparent)]
    Labels(#[from] LabelError),
    /// A capture that cannot be opened.
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
}

/// The rhythm test of every flow of a capture on its own, over all the
/// windows of both directions (flows of one 5-tuple together), whatever the
/// other tests decided: what the NBC alone says of each flow. The
/// classifier stops feeding a flow's rhythm test once its verdict is final
/// (a structured group can settle a flow before its first window), so the
/// records cannot tell this.
fn rhythm_of_flows(capture: &Path, model: &Model) -> Result<HashMap<FlowKey, NbcScore>, EvalError> {
    let mut out: HashMap<FlowKey, NbcScore> = HashMap::new();
    for fw in capture_windows(capture, &model.config)? {
        let s = out.entry(fw.key).or_default();
        for (kind, w) in &fw.windows {
            s.add(model.nbc.log_odds(*kind, w), &model.config.nbc);
        }
    }
    Ok(out)
}

/// Evaluates a model on label specs.
pub fn evaluate(model: &Model, specs: &[String]) -> Result<Evaluation, EvalError> {
    let mut ev = Evaluation {
        nbc_threshold: 0.0,
        ..Evaluation::default()
    };
    let mut protocols: BTreeMap<String, ProtocolRow> = BTreeMap::new();
    let mut media: BTreeMap<String, MediaRow> = BTreeMap::new();
    for spec in specs {
        let mut m = SetMetrics {
            set: spec.clone(),
            ..SetMetrics::default()
        };
        let mut to_verdict_packets = Vec::new();
        let mut to_verdict_seconds = Vec::new();
        // Per kind: (flows, Skype seconds and packets).
        let mut times: BTreeMap<String, (u64, Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for cl in load_spec(spec)? {
            let report = analyze_file(&cl.capture, None, model, FlowTableConfig::default())?;
            let rhythm = rhythm_of_flows(&cl.capture, model)?;
            m.captures += 1;
            m.truncated_captures += usize::from(report.error.is_some());
            let capture = cl
                .capture
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            for r in &report.records {
                let Some(l) = cl.label_of(&r.key) else {
                    m.unlabelled += 1;
                    continue;
                };
                let listed = || ListedFlow::new(&capture, &l.label, l.class, r);
                let skype = r.verdict.label == Label::Skype;
                if r.verdict.label == Label::NotSkype && !r.evidence_released {
                    let flow = r.evidence();
                    if contradiction_of(&flow, r.key.transport, &model.config).is_none() {
                        m.not_skype_without_contradiction += 1;
                    }
                }
                match l.class {
                    LabelClass::ClassicSkype => {
                        m.positives.add(r);
                        let kind = l
                            .variant
                            .clone()
                            .or(l.kind.clone())
                            .unwrap_or_else(|| "classic".to_string());
                        let t = times.entry(kind).or_default();
                        t.0 += 1;
                        if let (true, Some(s), Some(p)) = (
                            skype,
                            r.verdict.decided_after_seconds,
                            r.verdict.decided_at_packet,
                        ) {
                            t.1.push(f64::from(s));
                            t.2.push(p as f64);
                        }
                        if skype {
                            if let Some(p) = r.verdict.decided_at_packet {
                                to_verdict_packets.push(p);
                                ev.plots.packets_to_verdict.push(p);
                            }
                            if let Some(s) = r.verdict.decided_after_seconds {
                                to_verdict_seconds.push(f64::from(s));
                                ev.plots.seconds_to_verdict.push(f64::from(s));
                            }
                        } else {
                            ev.misses.push(listed());
                        }
                    }
                    LabelClass::Negative => {
                        m.negatives.add(r);
                        if skype {
                            ev.false_positives.push(listed());
                        }
                        let row = protocols
                            .entry(l.label.clone())
                            .or_insert_with(|| ProtocolRow {
                                protocol: l.label.clone(),
                                ..ProtocolRow::default()
                            });
                        row.flows += 1;
                        let dirs = &r.directions;
                        let csc = dirs.iter().any(|d| d.evidence.csc.is_skype());
                        let own_rhythm = rhythm.get(&r.key).copied().unwrap_or_default();
                        let nbc = own_rhythm.decision == NbcDecision::Media;
                        let both = nbc && csc;
                        row.csc_flagged += u64::from(csc);
                        row.nbc_passed += u64::from(nbc);
                        row.nbc_judged += u64::from(own_rhythm.decision != NbcDecision::Pending);
                        row.both += u64::from(both);
                        row.skype += u64::from(skype);
                        for d in dirs
                            .iter()
                            .filter(|d| d.evidence.csc.is_skype() && d.evidence.nbc.windows > 0)
                        {
                            let lo = d.evidence.nbc.mean_log_odds();
                            row.closest_log_odds =
                                Some(row.closest_log_odds.map_or(lo, |c: f64| c.max(lo)));
                        }
                        if csc {
                            ev.csc_flagged_negatives.push(listed());
                        }
                        if l.media {
                            let row = media.entry(l.label.clone()).or_insert_with(|| MediaRow {
                                protocol: l.label.clone(),
                                ..MediaRow::default()
                            });
                            row.flows += 1;
                            row.judged += u64::from(own_rhythm.decision != NbcDecision::Pending);
                            row.passed += u64::from(nbc);
                        }
                    }
                    LabelClass::ModernSkype => {
                        m.modern_skype.add(r);
                        ev.modern_skype.push(listed());
                    }
                    LabelClass::ClassicSkypeTcpUnconfirmed => m.unconfirmed_tcp.add(r),
                    LabelClass::Excluded => m.excluded.add(r),
                }
                for d in &r.directions {
                    let e = &d.evidence;
                    if e.window_sampled >= 10 {
                        let mut c = [0.0; 16];
                        for (o, x) in c.iter_mut().zip(e.chi2.iter()) {
                            *o = (f64::from(*x) + 1.0).log10();
                        }
                        match (l.class, skype) {
                            (LabelClass::ClassicSkype, true) => ev.plots.chi2_skype.push(c),
                            (LabelClass::Negative, _) => ev.plots.chi2_other.push(c),
                            _ => {}
                        }
                    }
                    if e.nbc.windows > 0 {
                        let name = match l.class {
                            LabelClass::Negative if l.media => {
                                "negative media (other protocols' calls)"
                            }
                            LabelClass::Negative => "negative",
                            LabelClass::ClassicSkype => "classic Skype",
                            LabelClass::ModernSkype => "modern Skype/Teams",
                            _ => "other",
                        };
                        ev.plots
                            .log_odds
                            .entry(name.to_string())
                            .or_default()
                            .push(e.nbc.mean_log_odds());
                    }
                }
            }
        }
        let (p, n) = (&m.positives, &m.negatives);
        m.recall = ratio(p.skype, p.flows);
        m.recall_without_endpoints = ratio(p.skype_via_flow, p.flows);
        m.recall_bytes = ratio(p.skype_bytes, p.bytes);
        m.precision = ratio(p.skype, p.skype + n.skype);
        m.precision_bytes = ratio(p.skype_bytes, p.skype_bytes + n.skype_bytes);
        m.fpr = ratio(n.skype, n.flows);
        m.fpr_bytes = ratio(n.skype_bytes, n.bytes);
        m.median_packets_to_verdict = median(
            &to_verdict_packets
                .iter()
                .map(|&x| x as f64)
                .collect::<Vec<_>>(),
        );
        m.median_seconds_to_verdict = median(&to_verdict_seconds);
        for (kind, (flows, secs, packets)) in times {
            let within =
                |limit: f64| ratio(secs.iter().filter(|&&s| s <= limit).count() as u64, flows);
            ev.time_to_verdict.push(TimeToVerdict {
                set: spec.clone(),
                kind,
                flows,
                skype: secs.len() as u64,
                median_seconds: median(&secs),
                p95_seconds: quantile(&secs, 0.95),
                within: [within(1.0), within(2.0), within(5.0)],
                median_packets: median(&packets),
            });
        }
        ev.sets.push(m);
    }
    let mut rows: Vec<ProtocolRow> = protocols.into_values().collect();
    rows.sort_by(|a, b| {
        b.both
            .cmp(&a.both)
            .then(b.csc_flagged.cmp(&a.csc_flagged))
            .then(b.nbc_passed.cmp(&a.nbc_passed))
            .then(a.protocol.cmp(&b.protocol))
    });
    ev.negatives_by_protocol = rows;
    ev.media_by_protocol = media.into_values().collect();
    Ok(ev)
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{:.2} %", v * 100.0))
}

fn num(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.digits$}"))
}

impl Evaluation {
    /// Renames the sets (e.g. back to the specs as the user gave them).
    pub fn rename_sets(&mut self, name: impl Fn(&str) -> String) {
        for m in self.sets.iter_mut() {
            m.set = name(&m.set);
        }
        for t in self.time_to_verdict.iter_mut() {
            t.set = name(&t.set);
        }
    }

    /// The per-set table as Markdown.
    pub fn sets_table(&self) -> String {
        let mut s = String::from(
            "| set | captures | positives (flows / bytes) | TP | recall (flow / byte) | recall w/o endpoints | negatives (flows / bytes) | FP | FP rate (flow / byte) | precision (flow / byte) | undecided (pos / neg) | negatives judged not Skype | not_skype without contradiction | median packets / s to verdict |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for m in &self.sets {
            s.push_str(&format!(
                "| `{}` | {} | {} / {} | {} | {} / {} | {} | {} / {} | {} | {} / {} | {} / {} | {} / {} | {} | {} | {} / {} |\n",
                m.set,
                m.captures,
                m.positives.flows,
                m.positives.bytes,
                m.positives.skype,
                pct(m.recall),
                pct(m.recall_bytes),
                pct(m.recall_without_endpoints),
                m.negatives.flows,
                m.negatives.bytes,
                m.negatives.skype,
                pct(m.fpr),
                pct(m.fpr_bytes),
                pct(m.precision),
                pct(m.precision_bytes),
                m.positives.undecided,
                m.negatives.undecided,
                m.negatives.not_skype,
                m.not_skype_without_contradiction,
                num(m.median_packets_to_verdict, 0),
                num(m.median_seconds_to_verdict, 2),
            ));
        }
        s
    }

    /// Time to verdict from each positive flow's first packet, per set and
    /// kind, as Markdown.
    pub fn time_table(&self) -> String {
        let mut s = String::from(
            "| set | kind | flows | Skype | median s | 95th pct s | within 1 s | within 2 s | within 5 s | median packets |\n|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for t in &self.time_to_verdict {
            s.push_str(&format!(
                "| `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                t.set,
                t.kind,
                t.flows,
                t.skype,
                num(t.median_seconds, 2),
                num(t.p95_seconds, 2),
                pct(t.within[0]),
                pct(t.within[1]),
                pct(t.within[2]),
                num(t.median_packets, 0),
            ));
        }
        s
    }

    /// The full text report: sets, time to verdict, apart-reported classes,
    /// listings.
    pub fn text(&self) -> String {
        let mut s = self.sets_table();
        s.push_str("\ntime to a Skype verdict from each positive flow's first packet:\n");
        s.push_str(&self.time_table());
        for m in &self.sets {
            if m.modern_skype.flows + m.unconfirmed_tcp.flows + m.excluded.flows > 0 {
                s.push_str(&format!(
                    "\n`{}`: modern Skype/Teams {} flows ({} called Skype, reported apart); unconfirmed classic TCP {} flows ({} called Skype); Microsoft services left out: {} flows ({} called Skype); unlabelled {}\n",
                    m.set,
                    m.modern_skype.flows,
                    m.modern_skype.skype,
                    m.unconfirmed_tcp.flows,
                    m.unconfirmed_tcp.skype,
                    m.excluded.flows,
                    m.excluded.skype,
                    m.unlabelled
                ));
            }
        }
        let list = |title: &str, v: &[ListedFlow]| {
            let mut s = format!("\n{title} ({}):\n", v.len());
            for f in v {
                s.push_str(&format!(
                    "  {} {} {} -> {} label={} verdict={} kind={} via={} packets={} csc={}/{} dft={}/{} nbc_windows={}/{} nbc_log_odds={}/{}\n",
                    f.capture,
                    f.transport,
                    f.src,
                    f.dst,
                    f.label,
                    f.verdict,
                    f.kind.unwrap_or("-"),
                    f.via.unwrap_or("-"),
                    f.packets,
                    f.csc[0],
                    f.csc[1],
                    f.dft[0],
                    f.dft[1],
                    f.nbc_windows[0],
                    f.nbc_windows[1],
                    f.nbc_mean_log_odds[0],
                    f.nbc_mean_log_odds[1]
                ));
            }
            s
        };
        s.push_str(&list("false positives", &self.false_positives));
        s.push_str(&list("missed positives", &self.misses));
        s.push_str(&list(
            "negatives with a CSC-flagged direction",
            &self.csc_flagged_negatives,
        ));
        s.push_str("\nmedia flows of other protocols (nDPI's labels) and the NBC:\n");
        s.push_str(
            "| protocol | media flows | NBC could judge | NBC passed |\n|---|---|---|---|\n",
        );
        let (mut f, mut j, mut p) = (0, 0, 0);
        for r in &self.media_by_protocol {
            s.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.protocol, r.flows, r.judged, r.passed
            ));
            f += r.flows;
            j += r.judged;
            p += r.passed;
        }
        s.push_str(&format!("| all | {f} | {j} | {p} |\n"));
        let (mut c, mut n, mut j, mut b) = (0, 0, 0, 0);
        for r in &self.negatives_by_protocol {
            c += r.csc_flagged;
            n += r.nbc_passed;
            j += r.nbc_judged;
            b += r.both;
        }
        s.push_str(&format!(
            "\nnegatives flagged by the CSC alone: {c} flows; by the NBC alone: {n} flows (of {j} whose rhythm it decided); by both in one direction: {b} flows; called Skype: {} flows\n",
            self.false_positives.len()
        ));
        s.push_str("\nnegatives by protocol (protocols with a CSC- or NBC-flagged flow):\n");
        s.push_str("| protocol | flows | CSC flagged | NBC passed | both | Skype | closest NBC log-odds |\n|---|---|---|---|---|---|---|\n");
        for r in self
            .negatives_by_protocol
            .iter()
            .filter(|r| r.csc_flagged + r.nbc_passed > 0)
        {
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.protocol,
                r.flows,
                r.csc_flagged,
                r.nbc_passed,
                r.both,
                r.skype,
                num(r.closest_log_odds, 2)
            ));
        }
        s
    }

    /// Writes `evaluation.json`, `report.md` and the SVG pictures to `dir`.
    pub fn write_report(&self, dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text)
                .map_err(|e| format!("{}: {e}", dir.join(name).display()))
        };
        write("evaluation.json", &json)?;
        write("report.md", &self.text())?;
        crate::plots::chi2_profile(&dir.join("chi2_profile.svg"), &self.plots)?;
        crate::plots::log_odds(
            &dir.join("nbc_log_odds.svg"),
            &self.plots,
            self.nbc_threshold,
        )?;
        crate::plots::time_to_verdict(&dir.join("time_to_verdict.svg"), &self.plots)?;
        Ok(())
    }
}
