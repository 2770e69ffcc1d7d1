//! Ground truth: label specs, nDPI result files, flow CSVs, and the label
//! policy of `../shared/docs/datasets.md`.
//!
//! A label spec names a capture and where its labels come from:
//! - `CAPTURE@RESULT.out`: nDPI's `ndpiReader` output for the capture;
//! - `CAPTURE@FLOWS.csv`: a CSV `transport,src_ip,src_port,dst_ip,dst_port,label[,kind]`;
//! - `CAPTURE=LABEL`: every flow of the capture has one label;
//! - `ndpi:DIR` and `ndpi-classic:DIR`: every capture of an nDPI test layout
//!   (`DIR/pcap/X` with `DIR/result/X.out`), labelled by the current nDPI or
//!   by the older nDPI that still had a classic-Skype dissector.
//!
//! Flows match labels by their unordered 5-tuple.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::flow::FlowKey;
use crate::packet::Transport;

/// How the evaluation counts a labelled flow (datasets.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LabelClass {
    /// Not Skype: any verdict "skype" is a false positive.
    Negative,
    /// Classic (peer-to-peer era) Skype: a positive.
    ClassicSkype,
    /// Classic Skype over TCP, likely but unconfirmed: reported apart.
    ClassicSkypeTcpUnconfirmed,
    /// Modern Skype/Teams calls: out of scope of the classic method,
    /// reported apart, never counted as false positives.
    ModernSkype,
    /// Microsoft services (web/API): neither positive nor negative.
    Excluded,
}

impl LabelClass {
    /// Snake-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelClass::Negative => "negative",
            LabelClass::ClassicSkype => "classic_skype",
            LabelClass::ClassicSkypeTcpUnconfirmed => "classic_skype_tcp_unconfirmed",
            LabelClass::ModernSkype => "modern_skype",
            LabelClass::Excluded => "excluded",
        }
    }
}

/// Which era of labels a result file comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// The current nDPI (no classic-Skype dissector).
    Current,
    /// The older nDPI whose UDP "Skype_TeamsCall" labels came from a
    /// classic-Skype byte rule.
    Classic,
    /// A CSV or whole-capture label: "skype*" positive, anything else
    /// negative, "exclude" excluded.
    Plain,
}

/// One labelled flow.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowLabel {
    /// TCP or UDP.
    pub transport: Transport,
    /// One endpoint.
    pub a: (IpAddr, u16),
    /// The other endpoint.
    pub b: (IpAddr, u16),
    /// The label as written (nDPI's `Master.App`, or the CSV's).
    pub label: String,
    /// Whether the flow carries voice or video (training positives).
    pub media: bool,
    /// How the evaluation counts it.
    pub class: LabelClass,
    /// The kind the labels give, if any (CSV `kind` column).
    pub kind: Option<String>,
    /// The variant of the kind, if any (the generator's `variant` column:
    /// voice, video, video_only, short_call, login, short_tcp, ...).
    pub variant: Option<String>,
}

/// The unordered 5-tuple flows and labels are matched by.
pub type MatchKey = (Transport, (IpAddr, u16), (IpAddr, u16));

/// The match key of endpoints.
pub fn match_key(transport: Transport, a: (IpAddr, u16), b: (IpAddr, u16)) -> MatchKey {
    if a <= b {
        (transport, a, b)
    } else {
        (transport, b, a)
    }
}

/// The match key of a flow.
pub fn flow_match_key(k: &FlowKey) -> MatchKey {
    match_key(k.transport, (k.src_ip, k.src_port), (k.dst_ip, k.dst_port))
}

/// The labels of one capture.
#[derive(Debug, Clone)]
pub struct CaptureLabels {
    /// The capture file.
    pub capture: PathBuf,
    /// The spec it came from.
    pub spec: String,
    /// Flow labels by match key (None with a whole-capture label).
    pub flows: HashMap<MatchKey, FlowLabel>,
    /// A label for every flow of the capture.
    pub whole: Option<FlowLabel>,
    /// Flow lines of the result file, TCP+UDP (for flow-count checks).
    pub result_flow_lines: usize,
}

impl CaptureLabels {
    /// The label of a flow, if any.
    pub fn label_of(&self, key: &FlowKey) -> Option<&FlowLabel> {
        self.flows.get(&flow_match_key(key)).or(self.whole.as_ref())
    }
}

/// What is wrong with a label spec or file.
#[derive(Debug, thiserror::Error)]
pub enum LabelError {
    /// The spec has none of the known forms.
    #[error("label spec {0:?}: use CAPTURE@RESULT.out, CAPTURE@FLOWS.csv, CAPTURE=LABEL, ndpi:DIR or ndpi-classic:DIR")]
    Spec(String),
    /// A file could not be read.
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What happened.
        message: String,
    },
    /// A line of a CSV is malformed.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Whether an nDPI label (with its line) marks a media flow: nDPI's
/// `[Stream Content: Audio]` or `Video`, RTP/SRTP, or a call protocol.
pub fn ndpi_is_media(label: &str, line: &str) -> bool {
    if line.contains("[Stream Content: Audio]") || line.contains("[Stream Content: Video]") {
        return true;
    }
    label.split(['.', '/', ':']).any(|part| {
        part == "RTP"
            || part == "SRTP"
            || part.contains("Call")
            || part.contains("Voip")
            || part == "FaceTime"
    })
}

/// The class of an nDPI label under a policy.
pub fn ndpi_class(
    label: &str,
    transport: Transport,
    a: (IpAddr, u16),
    b: (IpAddr, u16),
    policy: Policy,
) -> LabelClass {
    let skypeish = label.contains("Skype") || label.contains("Teams");
    match policy {
        Policy::Classic => {
            if transport == Transport::Udp && label.contains("Skype_TeamsCall") {
                LabelClass::ClassicSkype
            } else if transport == Transport::Tcp
                && label == "Unknown"
                && a.1 >= 1024
                && b.1 >= 1024
            {
                LabelClass::ClassicSkypeTcpUnconfirmed
            } else if skypeish {
                LabelClass::Excluded
            } else {
                LabelClass::Negative
            }
        }
        Policy::Current => {
            if label.contains("Skype_TeamsCall") {
                LabelClass::ModernSkype
            } else if skypeish {
                LabelClass::Excluded
            } else {
                LabelClass::Negative
            }
        }
        Policy::Plain => plain_class(label),
    }
}

fn plain_class(label: &str) -> LabelClass {
    let l = label.to_ascii_lowercase();
    if l == "exclude" || l == "excluded" {
        LabelClass::Excluded
    } else if l.starts_with("skype") {
        LabelClass::ClassicSkype
    } else {
        LabelClass::Negative
    }
}

fn parse_endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (ip, port) = if let Some(rest) = s.strip_prefix('[') {
        let (ip, port) = rest.split_once("]:")?;
        (ip, port)
    } else {
        s.rsplit_once(':')?
    };
    Some((ip.parse().ok()?, port.parse().ok()?))
}

/// Parses one flow line of an nDPI result file; None for other lines.
pub fn parse_ndpi_line(line: &str, policy: Policy) -> Option<FlowLabel> {
    let mut it = line.split_whitespace();
    it.next()?.parse::<u64>().ok()?;
    let transport = match it.next()? {
        "TCP" => Transport::Tcp,
        "UDP" => Transport::Udp,
        _ => return None,
    };
    let a = parse_endpoint(it.next()?)?;
    let arrow = it.next()?;
    if arrow != "<->" && arrow != "->" {
        return None;
    }
    let b = parse_endpoint(it.next()?)?;
    let proto_at = line.find("[proto: ")?;
    let rest = &line[proto_at + 8..];
    let proto = &rest[..rest.find(']')?];
    // "78.38/STUN.Skype_TeamsCall" -> "STUN.Skype_TeamsCall"; tunnels keep
    // their prefix ("GTP:87/RTP" -> "GTP:RTP").
    let label = match proto.split_once('/') {
        Some((num, name)) => match num.split_once(':') {
            Some((tunnel, _)) => format!("{tunnel}:{name}"),
            None => name.to_string(),
        },
        None => proto.to_string(),
    };
    let media = ndpi_is_media(&label, line);
    let class = ndpi_class(&label, transport, a, b, policy);
    Some(FlowLabel {
        transport,
        a,
        b,
        label,
        media,
        class,
        kind: None,
        variant: None,
    })
}

fn read(path: &Path) -> Result<String, LabelError> {
    let bytes = std::fs::read(path).map_err(|e| LabelError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Reads an nDPI result file.
pub fn read_ndpi_result(
    capture: &Path,
    result: &Path,
    policy: Policy,
    spec: &str,
) -> Result<CaptureLabels, LabelError> {
    let text = read(result)?;
    let mut flows = HashMap::new();
    let mut lines = 0;
    for line in text.lines() {
        if let Some(l) = parse_ndpi_line(line, policy) {
            lines += 1;
            flows.insert(match_key(l.transport, l.a, l.b), l);
        }
    }
    Ok(CaptureLabels {
        capture: capture.to_path_buf(),
        spec: spec.to_string(),
        flows,
        whole: None,
        result_flow_lines: lines,
    })
}

/// Reads a flow CSV.
pub fn read_flow_csv(capture: &Path, csv: &Path, spec: &str) -> Result<CaptureLabels, LabelError> {
    let text = read(csv)?;
    let mut flows = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("transport")) {
            continue;
        }
        let bad = |message: String| LabelError::Line {
            path: csv.to_path_buf(),
            line: i + 1,
            message,
        };
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        if f.len() < 6 {
            return Err(bad(format!(
                "expected transport,src_ip,src_port,dst_ip,dst_port,label[,kind], found {} fields",
                f.len()
            )));
        }
        let transport = match f[0].to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            other => return Err(bad(format!("transport {other:?} is not udp or tcp"))),
        };
        let ip = |s: &str| {
            s.parse::<IpAddr>()
                .map_err(|_| bad(format!("{s:?} is not an IP address")))
        };
        let port = |s: &str| {
            s.parse::<u16>()
                .map_err(|_| bad(format!("{s:?} is not a port")))
        };
        let a = (ip(f[1])?, port(f[2])?);
        let b = (ip(f[3])?, port(f[4])?);
        let label = f[5].to_string();
        let kind = f.get(6).filter(|k| !k.is_empty()).map(|k| k.to_string());
        let class = plain_class(&label);
        // An explicit `media` column (the generator's tenth) decides;
        // without it, the kinds of a call and RTP labels are media.
        let media = match f.get(9) {
            Some(m) => matches!(m.to_ascii_lowercase().as_str(), "true" | "1" | "yes"),
            None => {
                matches!(kind.as_deref(), Some("e2e") | Some("e2o") | Some("tcp"))
                    || label.contains("rtp")
            }
        };
        flows.insert(
            match_key(transport, a, b),
            FlowLabel {
                transport,
                a,
                b,
                label,
                media,
                class,
                kind,
                variant: f.get(8).filter(|v| !v.is_empty()).map(|v| v.to_string()),
            },
        );
    }
    Ok(CaptureLabels {
        capture: capture.to_path_buf(),
        spec: spec.to_string(),
        flows,
        whole: None,
        result_flow_lines: 0,
    })
}

/// Expands a label spec into the labels of its captures.
pub fn load_spec(spec: &str) -> Result<Vec<CaptureLabels>, LabelError> {
    if let Some(seed) = spec.strip_prefix("synth-calls:") {
        let seed: u64 = seed
            .parse()
            .map_err(|_| LabelError::Spec(spec.to_string()))?;
        let path = std::env::temp_dir().join(format!(
            "skype-dpi-synth-calls-{seed}-{}.pcap",
            std::process::id()
        ));
        let mut gen = crate::synth::Generator::new(&crate::synth::training_calls_config(seed));
        crate::synth::write_pcap(&path, &mut gen, None).map_err(|e| LabelError::Read {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut l = load_spec(&format!("{}=skype", path.display()))?;
        for c in l.iter_mut() {
            c.spec = spec.to_string();
        }
        return Ok(l);
    }
    for (prefix, policy) in [
        ("ndpi-classic:", Policy::Classic),
        ("ndpi:", Policy::Current),
    ] {
        if let Some(dir) = spec.strip_prefix(prefix) {
            return load_ndpi_dir(Path::new(dir), policy, spec);
        }
    }
    if let Some((cap, labels)) = spec.split_once('@') {
        let (cap, labels) = (Path::new(cap), Path::new(labels));
        return if labels.extension().is_some_and(|e| e == "csv") {
            Ok(vec![read_flow_csv(cap, labels, spec)?])
        } else {
            let policy = if labels.to_string_lossy().contains("legacy") {
                Policy::Classic
            } else {
                Policy::Current
            };
            Ok(vec![read_ndpi_result(cap, labels, policy, spec)?])
        };
    }
    if let Some((cap, label)) = spec.split_once('=') {
        let whole = FlowLabel {
            transport: Transport::Udp,
            a: (IpAddr::from([0, 0, 0, 0]), 0),
            b: (IpAddr::from([0, 0, 0, 0]), 0),
            label: label.to_string(),
            media: label.to_ascii_lowercase().contains("skype") || label.contains("rtp"),
            class: plain_class(label),
            kind: None,
            variant: None,
        };
        return Ok(vec![CaptureLabels {
            capture: PathBuf::from(cap),
            spec: spec.to_string(),
            flows: HashMap::new(),
            whole: Some(whole),
            result_flow_lines: 0,
        }]);
    }
    Err(LabelError::Spec(spec.to_string()))
}

/// Every capture of an nDPI layout with its result file, sorted by name.
pub fn load_ndpi_dir(
    dir: &Path,
    policy: Policy,
    spec: &str,
) -> Result<Vec<CaptureLabels>, LabelError> {
    let pcaps = dir.join("pcap");
    let entries = std::fs::read_dir(&pcaps).map_err(|e| LabelError::Read {
        path: pcaps.clone(),
        message: e.to_string(),
    })?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng") || n.ends_with(".cap"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let result = dir.join("result").join(format!("{n}.out"));
        if result.exists() {
            out.push(read_ndpi_result(&pcaps.join(&n), &result, policy, spec)?);
        }
    }
    Ok(out)
}

/// Where the shared datasets are: `$SKYPE_DPI_DATASETS`, else
/// `../shared/datasets` from the crate root.
pub fn datasets_dir() -> PathBuf {
    match std::env::var_os("SKYPE_DPI_DATASETS") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets"),
    }
}

/// Label specs as given, with `$SKYPE_DPI_DATASETS` expanded to
/// [`datasets_dir`] for reading, and the paths under it named relative to
/// it again for what is recorded (a model's provenance), so that a model
/// can be retrained wherever the datasets are.
#[derive(Debug, Clone)]
pub struct DatasetSpecs {
    root: String,
    root_canonical: String,
    expanded: Vec<String>,
}

impl DatasetSpecs {
    /// Expands the specs.
    pub fn new(specs: &[String]) -> Self {
        let root_dir = datasets_dir();
        let root = root_dir.display().to_string();
        let root_canonical = std::fs::canonicalize(&root_dir)
            .map(|p| p.display().to_string())
            .unwrap_or(root.clone());
        let mut d = DatasetSpecs {
            root,
            root_canonical,
            expanded: Vec::new(),
        };
        d.expanded = specs.iter().map(|s| d.expand(s)).collect();
        d
    }

    /// A spec with `$SKYPE_DPI_DATASETS` expanded.
    pub fn expand(&self, s: &str) -> String {
        s.replace("$SKYPE_DPI_DATASETS", &self.root)
    }

    /// The specs to read.
    pub fn expanded(&self) -> &[String] {
        &self.expanded
    }

    /// A path or spec with the datasets root written `$SKYPE_DPI_DATASETS`.
    pub fn name(&self, s: &str) -> String {
        s.replace(&self.root_canonical, "$SKYPE_DPI_DATASETS")
            .replace(&self.root, "$SKYPE_DPI_DATASETS")
    }

    /// The specs as recorded.
    pub fn recorded(&self) -> Vec<String> {
        self.expanded.iter().map(|s| self.name(s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ndpi_lines() {
        let l = parse_ndpi_line(
            "\t14\tUDP 192.168.1.6:51681 <-> 52.114.77.136:3478 [proto: 78.38/STUN.Skype_TeamsCall][IP: 276/Azure][14 pkts]",
            Policy::Current,
        )
        .unwrap();
        assert_eq!(l.transport, Transport::Udp);
        assert_eq!(l.a, ("192.168.1.6".parse().unwrap(), 51681));
        assert_eq!(l.label, "STUN.Skype_TeamsCall");
        assert!(l.media);
        assert_eq!(l.class, LabelClass::ModernSkype);
        let l = parse_ndpi_line(
            "\t3\tTCP [fe80::1]:443 -> [ff02::c]:1900 [proto: 91.125/TLS.Skype_Teams][IP: 0/Unknown]",
            Policy::Current,
        )
        .unwrap();
        assert_eq!(l.b.1, 1900);
        assert_eq!(l.class, LabelClass::Excluded);
        assert!(!l.media);
        let l = parse_ndpi_line(
            "\t1\tUDP 10.0.0.1:5 <-> 10.0.0.2:6 [proto: GTP:87/RTP][IP: 0/Unknown][Stream Content: Audio]",
            Policy::Current,
        )
        .unwrap();
        assert_eq!(l.label, "GTP:RTP");
        assert!(l.media);
        assert_eq!(l.class, LabelClass::Negative);
        assert!(parse_ndpi_line(
            "\t1\tICMP 1.1.1.1:0 -> 2.2.2.2:0 [proto: 81/ICMP]",
            Policy::Current
        )
        .is_none());
        assert!(parse_ndpi_line("Unknown 1567 272044 59", Policy::Current).is_none());
    }

    #[test]
    fn classic_policy() {
        let a = ("192.168.1.34".parse().unwrap(), 13021);
        let b = ("1.2.3.4".parse().unwrap(), 40000);
        assert_eq!(
            ndpi_class(
                "Skype_Teams.Skype_TeamsCall",
                Transport::Udp,
                a,
                b,
                Policy::Classic
            ),
            LabelClass::ClassicSkype
        );
        assert_eq!(
            ndpi_class("Unknown", Transport::Tcp, a, b, Policy::Classic),
            LabelClass::ClassicSkypeTcpUnconfirmed
        );
        assert_eq!(
            ndpi_class("TLS.Skype_Teams", Transport::Tcp, a, b, Policy::Classic),
            LabelClass::Excluded
        );
        assert_eq!(
            ndpi_class("DNS", Transport::Udp, a, b, Policy::Classic),
            LabelClass::Negative
        );
    }

    #[test]
    fn csv_errors_name_the_line() {
        let dir = std::env::temp_dir().join(format!("skype-dpi-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("l.csv");
        std::fs::write(&p, "transport,src_ip,src_port,dst_ip,dst_port,label\nudp,10.0.0.1,5,10.0.0.2,6,skype\nicmp,1,2,3,4,x\n").unwrap();
        let e = read_flow_csv(Path::new("x.pcap"), &p, "spec").unwrap_err();
        assert!(e.to_string().contains(":3:"), "{e}");
        std::fs::write(&p, "udp,10.0.0.1,5,10.0.0.2,6,skype,e2e\n").unwrap();
        let l = read_flow_csv(Path::new("x.pcap"), &p, "spec").unwrap();
        assert_eq!(l.flows.len(), 1);
        let v = l.flows.values().next().unwrap();
        assert_eq!(v.class, LabelClass::ClassicSkype);
        assert_eq!(v.kind.as_deref(), Some("e2e"));
        std::fs::remove_dir_all(&dir).ok();
    }
}
