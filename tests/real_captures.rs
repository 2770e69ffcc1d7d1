//! Tests on the real captures of `../shared/datasets/ndpi` (or
//! `$SKYPE_DPI_DATASETS/ndpi`). Where CI=true and they are missing, the
//! tests fail; elsewhere they say so and pass.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use skype_dpi::analyze::{analyze_file, CaptureReport};
use skype_dpi::classifier::FlowRecord;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::{
    datasets_dir, flow_match_key, load_ndpi_dir, CaptureLabels, LabelClass, Policy,
};
use skype_dpi::model::Model;
use skype_dpi::packet::Transport;
use skype_dpi::verdict::{contradiction_of, Label, Via};

fn model() -> Model {
    Model::default_model().expect("default model")
}

fn ndpi_dir() -> Option<PathBuf> {
    let d = datasets_dir().join("ndpi");
    if d.join("pcap").is_dir() {
        return Some(d);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "the real captures are missing at {} (set SKYPE_DPI_DATASETS): with CI=true that is a failure",
            d.display()
        );
    }
    eprintln!("skipping: no datasets at {}", d.display());
    None
}

struct Analysed {
    labels: CaptureLabels,
    report: CaptureReport,
}

fn run(set: &Path, policy: Policy) -> Vec<Analysed> {
    let model = Model::default_model().expect("default model");
    let labels = load_ndpi_dir(set, policy, "test").expect("labels");
    labels
        .into_iter()
        .map(|l| {
            let report = analyze_file(&l.capture, None, &model, FlowTableConfig::default())
                .unwrap_or_else(|e| {
                    panic!("{e}");
                });
            Analysed { labels: l, report }
        })
        .collect()
}

fn negatives() -> Option<&'static Vec<Analysed>> {
    static N: OnceLock<Option<Vec<Analysed>>> = OnceLock::new();
    N.get_or_init(|| ndpi_dir().map(|d| run(&d, Policy::Current)))
        .as_ref()
}

fn legacy() -> Option<&'static Vec<Analysed>> {
    static L: OnceLock<Option<Vec<Analysed>>> = OnceLock::new();
    L.get_or_init(|| ndpi_dir().map(|d| run(&d.join("legacy-skype"), Policy::Classic)))
        .as_ref()
}

fn name(a: &Analysed) -> String {
    a.labels
        .capture
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn class_of<'a>(a: &'a Analysed, r: &FlowRecord) -> Option<(LabelClass, &'a str)> {
    a.labels
        .label_of(&r.key)
        .map(|l| (l.class, l.label.as_str()))
}

/// Issue 2: every capture reads without a panic, and the TCP+UDP flows agree
/// with nDPI's flow lines. nDPI's reader does not end flows on idle gaps, so
/// flows are compared as distinct unordered 5-tuples; captures whose flows
/// were split by our idle timeouts are listed with that cause.
#[test]
fn flow_counts_agree_with_ndpi() {
    let Some(all) = negatives() else { return };
    let Some(old) = legacy() else { return };
    let (mut ours, mut distinct_total, mut theirs) = (0usize, 0usize, 0usize);
    let mut differing = Vec::new();
    for a in all.iter().chain(old.iter()) {
        let distinct: HashSet<_> = a
            .report
            .records
            .iter()
            .map(|r| flow_match_key(&r.key))
            .collect();
        ours += a.report.records.len();
        distinct_total += distinct.len();
        theirs += a.labels.result_flow_lines;
        if distinct.len() != a.labels.result_flow_lines || a.report.records.len() != distinct.len()
        {
            let n = name(a);
            // The same inner 5-tuple in two tunnels is two flows here.
            let mut tunnels_of: BTreeMap<_, HashSet<_>> = BTreeMap::new();
            for r in &a.report.records {
                tunnels_of
                    .entry(flow_match_key(&r.key))
                    .or_default()
                    .insert(r.tunnel.map(|t| {
                        (
                            t.outer_src.min(t.outer_dst),
                            t.outer_src.max(t.outer_dst),
                            t.id,
                        )
                    }));
            }
            let cause = if tunnels_of.values().any(|t| t.len() > 1) {
                "the same inner 5-tuple in two tunnels: two flows here"
            } else if a.report.records.len() > distinct.len()
                && distinct.len() == a.labels.result_flow_lines
            {
                "idle timeout splits flows nDPI keeps whole"
            } else if distinct.len() == a.labels.flows.len()
                && a.labels.flows.len() < a.labels.result_flow_lines
            {
                "nDPI lists one 5-tuple under several VLAN tags"
            } else if n.contains("fuzz") || n.contains("bad") || n.contains("crash") {
                "malformed packets nDPI drops or keeps differently"
            } else if a.report.error.is_some() {
                "capture truncated"
            } else {
                "flow keying (VLAN in nDPI's key, or packets one side skips)"
            };
            differing.push(format!(
                "{n}: ours {} flows / {} tuples, nDPI {} ({cause})",
                a.report.records.len(),
                distinct.len(),
                a.labels.result_flow_lines
            ));
        }
    }
    eprintln!(
        "{} captures differ:\n  {}",
        differing.len(),
        differing.join("\n  ")
    );
    eprintln!("flows: ours {ours}, distinct 5-tuples {distinct_total}, nDPI {theirs}");
    let gap = (distinct_total as f64 - theirs as f64).abs() / theirs as f64;
    assert!(
        gap <= 0.02,
        "distinct flows {distinct_total} vs nDPI {theirs}: {:.2} % apart",
        gap * 100.0
    );
}

/// Issue 17: in nDPI's tunnel captures, the flows inside the tunnels are
/// found: the distinct TCP/UDP 5-tuples are those nDPI lists, and the
/// tunneled ones carry their tunnel. (nDPI's lines may repeat a 5-tuple
/// under two VLAN tags, as in `capwap_data.pcapng`: it keys by VLAN, this
/// crate does not.)
#[test]
fn tunnel_captures_give_ndpis_inner_flows() {
    use skype_dpi::tunnel::TunnelKind;
    let Some(all) = negatives() else { return };
    let expected: &[(&str, TunnelKind)] = &[
        ("4in4tunnel.pcap", TunnelKind::IpInIp),
        ("4in6tunnel.pcap", TunnelKind::IpInIp),
        ("6in4tunnel.pcap", TunnelKind::IpInIp),
        ("6in6tunnel.pcap", TunnelKind::IpInIp),
        ("capwap.pcap", TunnelKind::Capwap),
        ("capwap_data.pcapng", TunnelKind::Capwap),
        ("gre.pcapng", TunnelKind::Pptp),
        ("ipv6_in_gtp.pcap", TunnelKind::GtpU),
        ("vxlan.pcap", TunnelKind::Vxlan),
    ];
    for (file, kind) in expected {
        let a = all
            .iter()
            .find(|a| name(a) == *file)
            .unwrap_or_else(|| panic!("{file} is missing"));
        let ours: HashSet<_> = a
            .report
            .records
            .iter()
            .map(|r| flow_match_key(&r.key))
            .collect();
        let theirs: HashSet<_> = a.labels.flows.keys().cloned().collect();
        assert_eq!(ours, theirs, "{file}: inner flows differ from nDPI's");
        let tunneled = a
            .report
            .records
            .iter()
            .filter(|r| r.tunnel.is_some_and(|t| t.kind == *kind))
            .count();
        assert!(tunneled > 0, "{file}: no flow inside a {kind:?} tunnel");
        assert!(
            a.report.stats.tunneled.packets(*kind) > 0,
            "{file}: no packet counted as tunneled"
        );
    }
}

/// Issue 3 and 7: over the nDPI negative set, no flow is called Skype.
#[test]
fn no_negative_is_skype() {
    let Some(all) = negatives() else { return };
    let mut fp = Vec::new();
    let mut negatives = 0;
    for a in all {
        for r in &a.report.records {
            if let Some((LabelClass::Negative, label)) = class_of(a, r) {
                negatives += 1;
                if r.verdict.label == Label::Skype {
                    fp.push(format!(
                        "{} {:?} {label} via {:?}",
                        name(a),
                        r.key,
                        r.verdict.via
                    ));
                }
            }
        }
    }
    assert!(
        negatives > 8000,
        "only {negatives} negative flows matched their labels"
    );
    assert!(
        fp.is_empty(),
        "{} negatives called Skype:\n{}",
        fp.len(),
        fp.join("\n")
    );
}

/// Issue 8: no negative becomes Skype through an endpoint.
#[test]
fn no_negative_is_skype_via_endpoint() {
    let Some(all) = negatives() else { return };
    let n: usize = all
        .iter()
        .map(|a| {
            a.report
                .records
                .iter()
                .filter(|r| r.verdict.via == Some(Via::Endpoint) && r.verdict.label == Label::Skype)
                .count()
        })
        .sum();
    assert_eq!(n, 0);
    let eps: usize = all.iter().map(|a| a.report.endpoints.len()).sum();
    assert_eq!(eps, 0, "endpoints recognised on the negative set");
}

/// Issue 7: the negative directions that the CSC labels E2E, E2O or TCP are
/// pinned (capture, transport, direction, class, DFT class). method.md §6
/// expects a handful of short UDP E2O directions and the OpenVPN capture.
#[test]
fn csc_flags_on_negatives_are_pinned() {
    let Some(all) = negatives() else { return };
    let mut got = BTreeMap::new();
    for a in all {
        for r in &a.report.records {
            if !matches!(class_of(a, r), Some((LabelClass::Negative, _))) {
                continue;
            }
            for (d, dir) in r.directions.iter().enumerate() {
                let e = &dir.evidence;
                if e.csc.is_skype() {
                    let key = format!(
                        "{} {} {}:{}->{}:{} {}",
                        name(a),
                        r.key.transport.as_str(),
                        r.key.src_ip,
                        r.key.src_port,
                        r.key.dst_ip,
                        r.key.dst_port,
                        if d == 0 { "fwd" } else { "bwd" }
                    );
                    let flow = r.evidence();
                    let why = contradiction_of(&flow, r.key.transport, &model().config)
                        .map_or("-", |c| c.as_str());
                    got.insert(
                        key,
                        format!(
                            "{} dft={} verdict={} contradiction={why}",
                            e.csc.as_str(),
                            e.dft.as_str(),
                            r.verdict.label.as_str()
                        ),
                    );
                }
            }
        }
    }
    let listing: Vec<String> = got.iter().map(|(k, v)| format!("{k} {v}")).collect();
    eprintln!(
        "CSC-flagged negative directions ({}):\n{}",
        listing.len(),
        listing.join("\n")
    );
    // method.md §6: a handful of short UDP directions E2O-like (constant first
    // 4 bytes), OpenVPN without HMAC passing the DFT's E2O rule as well, no
    // E2E; and TCP directions whose every byte is random (TLS records past
    // their header, SSH, obfuscated proxies). None of them is called Skype.
    assert_eq!(
        listing, PINNED_CSC_FLAGS,
        "the CSC-flagged negatives changed"
    );
}

/// The negative directions whose chi-square signature holds on the nDPI
/// corpus (capture, flow initiator first, direction, CSC class, DFT class,
/// the flow's verdict and the contradiction it rests on). All are TCP
/// directions whose first 8 bytes look random from 24 segments on (TLS
/// records past their header, SSH, HTTP bodies, BitTorrent); none is called
/// Skype: 13 flows are rejected by the rhythm, 2 by a structured group of
/// the other direction, 42 stay undecided (their rhythm test has not
/// decided). No UDP direction holds E2O or E2E: the DHCP and OpenVPN
/// directions that the paper's fixed thresholds labelled E2O are
/// contradicted by structure in their groups 8 to 15.
const PINNED_CSC_FLAGS: &[&str] = &[
    "1kxun.pcap tcp 192.168.115.8:49599->106.187.35.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.115.8:49600->106.187.35.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.115.8:49601->106.187.35.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.115.8:49602->106.187.35.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.115.8:49604->106.187.35.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:36636->18.64.103.30:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:36654->18.64.103.30:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:45380->161.117.13.29:80 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "1kxun.pcap tcp 192.168.2.126:45416->161.117.13.29:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:46170->172.105.121.82:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:49372->14.136.136.108:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:49380->14.136.136.108:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "1kxun.pcap tcp 192.168.2.126:49396->14.136.136.108:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "443-curl.pcap tcp 192.168.1.13:55523->178.62.197.130:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "alexa-app.pcapng tcp 172.16.42.216:51986->52.84.63.56:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "alexa-app.pcapng tcp 172.16.42.216:54411->52.85.209.216:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "bittorrent_tcp_miss.pcapng tcp 192.168.122.34:48987->178.71.206.1:6881 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "bot.pcap tcp 40.77.167.36:64768->89.31.72.220:80 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "emotet.pcap tcp 10.3.29.101:56309->104.161.127.22:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "fastcgi.pcap tcp 10.0.0.9:38254->10.0.0.11:9000 bwd tcp dft=none verdict=undecided contradiction=-",
    "git.pcap tcp 192.168.0.77:47991->5.153.231.21:9418 bwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 192.168.0.103:33936->31.13.93.52:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 192.168.0.103:38816->46.33.70.160:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 192.168.0.103:44379->82.85.26.186:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 192.168.0.103:57936->82.85.26.162:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 192.168.0.103:58052->82.85.26.162:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 2.22.236.51:80->192.168.0.103:44151 fwd tcp dft=none verdict=undecided contradiction=-",
    "instagram.pcap tcp 31.13.86.52:80->192.168.0.103:58216 fwd tcp dft=none verdict=undecided contradiction=-",
    "iphone.pcap tcp 192.168.2.17:50581->17.248.185.87:443 fwd tcp dft=none verdict=undecided contradiction=-",
    "malware.pcap tcp 192.168.0.20:41240->193.109.85.123:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "netflix.pcap tcp 192.168.1.7:53148->184.25.204.25:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "netflix.pcap tcp 192.168.1.7:53252->184.25.204.10:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "reddit.pcap tcp 2a01:cb01:2049:8b07:991d:ec85:28df:f629:43492->64:ff9b::df9:21c6:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "reddit.pcap tcp 2a01:cb01:2049:8b07:991d:ec85:28df:f629:56594->64:ff9b::9765:798c:443 bwd tcp dft=none verdict=not_skype contradiction=group_1",
    "signal.pcap tcp 192.168.2.17:57027->13.35.253.42:443 fwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "sites.pcapng tcp 192.168.1.250:39890->45.82.241.51:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "ssh.pcap tcp 172.16.238.1:58395->172.16.238.168:22 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "ssh.pcap tcp 172.16.238.1:58395->172.16.238.168:22 fwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "starcraft_battle.pcap tcp 192.168.1.100:3517->213.248.127.130:1119 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "starcraft_battle.pcap tcp 192.168.1.100:3517->213.248.127.130:1119 fwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "starcraft_battle.pcap tcp 192.168.1.100:3527->2.228.46.112:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "teams.pcap tcp 192.168.1.6:60532->52.114.77.33:443 fwd tcp dft=none verdict=undecided contradiction=-",
    "teams.pcap tcp 192.168.1.6:60543->52.114.77.33:443 fwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "telegram_videocall.pcapng tcp 192.168.12.169:37950->149.154.167.91:443 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "telegram_videocall.pcapng tcp 192.168.12.169:40830->149.154.167.222:443 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "tls_long_cert.pcap tcp 192.168.2.126:60174->104.111.215.93:443 bwd tcp dft=none verdict=not_skype contradiction=group_1",
    "trickbot.pcap tcp 10.12.29.101:61318->82.118.225.196:7080 bwd tcp dft=none verdict=undecided contradiction=-",
    "tumblr.pcap tcp 2a01:cb01:2049:8b07:991d:ec85:28df:f629:43328->64:ff9b::4a72:9a16:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "tumblr.pcap tcp 2a01:cb01:2049:8b07:991d:ec85:28df:f629:48240->64:ff9b::9765:789d:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "viber.pcap tcp 192.168.0.17:53934->54.230.93.53:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "vxlan.pcap tcp 10.10.20.4:45228->157.240.224.35:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "wa_voice.pcap tcp 192.168.2.12:50504->157.240.20.52:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "wechat.pcap tcp 192.168.1.103:54113->203.205.151.162:443 bwd tcp dft=none verdict=undecided contradiction=-",
    "weibo.pcap tcp 192.168.1.105:35803->93.188.134.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "weibo.pcap tcp 192.168.1.105:35804->93.188.134.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "weibo.pcap tcp 192.168.1.105:35807->93.188.134.246:80 bwd tcp dft=none verdict=undecided contradiction=-",
    "whatsappfiles.pcap tcp 192.168.2.29:49674->185.60.216.53:443 fwd tcp dft=none verdict=not_skype contradiction=rhythm",
    "whatsappfiles.pcap tcp 192.168.2.29:49698->185.60.216.53:443 bwd tcp dft=none verdict=not_skype contradiction=rhythm",
];

/// Issue 8: on the classic-Skype captures, at least 95 % of the UDP flows
/// the older nDPI labelled Skype are Skype here, and no flow nDPI gives to
/// another protocol is.
#[test]
fn classic_skype_signalling_is_revealed() {
    let Some(old) = legacy() else { return };
    for a in old.iter().filter(|a| name(a) != "skype_udp.pcap") {
        let (mut pos, mut hit, mut wrong) = (0, 0, Vec::new());
        for r in &a.report.records {
            match class_of(a, r) {
                Some((LabelClass::ClassicSkype, _)) => {
                    pos += 1;
                    hit += usize::from(r.verdict.label == Label::Skype);
                }
                Some((LabelClass::Negative, label)) if r.verdict.label == Label::Skype => {
                    wrong.push(format!("{:?} {label}", r.key))
                }
                Some((LabelClass::Excluded, label))
                    if r.verdict.label == Label::Skype && label != "Unknown" =>
                {
                    wrong.push(format!("{:?} {label}", r.key))
                }
                _ => {}
            }
        }
        let recall = hit as f64 / pos.max(1) as f64;
        eprintln!(
            "{}: {hit}/{pos} classic Skype UDP flows revealed ({:.1} %)",
            name(a),
            recall * 100.0
        );
        assert!(pos > 100, "{}: only {pos} labelled flows", name(a));
        assert!(recall >= 0.95, "{}: recall {recall}", name(a));
        assert!(
            wrong.is_empty(),
            "{}: other protocols called Skype: {wrong:?}",
            name(a)
        );
    }
}

/// Without endpoint correlation, per-flow tests alone reveal almost none of
/// the classic signalling (the flows are 1 to 5 packets): the value of the
/// correlation, measured.
#[test]
fn per_flow_alone_misses_classic_signalling() {
    let Some(dir) = ndpi_dir() else { return };
    let mut model = Model::default_model().expect("default model");
    model.config.endpoint.enabled = false;
    let cap = dir.join("legacy-skype/pcap/skype.pcap");
    let report = analyze_file(&cap, None, &model, FlowTableConfig::default()).expect("capture");
    let skype = report
        .records
        .iter()
        .filter(|r| r.key.transport == Transport::Udp && r.verdict.label == Label::Skype)
        .count();
    assert!(skype <= 5, "{skype} flows Skype without endpoints");
}

/// The common-case decoder gives exactly what the general `etherparse`
/// path gives, on every frame of every real capture and of the sample; and
/// the records a sharded reader makes straight from the frames are those
/// of the decoded packets.
#[test]
fn fast_decoder_agrees_with_etherparse() {
    use skype_dpi::capture::Capture;
    use skype_dpi::config::TunnelConfig;
    use skype_dpi::packet::{decode, decode_common, decode_ip, PacketRecord};
    use skype_dpi::wire::link::{network_of, Network};
    let Some(dir) = ndpi_dir() else { return };
    let tests = skype_dpi::csc::GroupTests::new(&model().config.csc);
    let mut files: Vec<std::path::PathBuf> = Vec::new();
    for sub in ["pcap", "legacy-skype/pcap"] {
        for e in std::fs::read_dir(dir.join(sub)).unwrap().flatten() {
            files.push(e.path());
        }
    }
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap"));
    let (mut fast, mut compared) = (0u64, 0u64);
    for f in files {
        let Ok(mut cap) = Capture::open_file(&f, None) else {
            continue;
        };
        let _ = cap.for_each(|raw| {
            let judge = |b: &[u8]| skype_dpi::endpoint::encrypted_from_first_byte(b, &tests);
            let direct = PacketRecord::of_frame(raw, &TunnelConfig::STANDARD, judge);
            let decoded = decode(raw).map(|p| (PacketRecord::of(&p, judge), p.tunnel));
            assert_eq!(direct, decoded, "{}: record differs", f.display());
            if let Ok(Network::Ip(b)) = network_of(raw.link_type, raw.data) {
                compared += 1;
                if let Some(p) = decode_common(raw.ts, b) {
                    fast += 1;
                    let q = decode_ip(raw.ts, b)
                        .expect("etherparse refuses a packet the fast path read");
                    let same = p.src_ip == q.src_ip
                        && p.dst_ip == q.dst_ip
                        && p.src_port == q.src_port
                        && p.dst_port == q.dst_port
                        && p.transport == q.transport
                        && p.payload == q.payload
                        && p.payload_len == q.payload_len
                        && p.tcp_flags == q.tcp_flags;
                    assert!(same, "{}: frame differs: {p:?} vs {q:?}", f.display());
                }
            }
            true
        });
    }
    eprintln!(
        "{fast} of {compared} IP frames took the fast path, all equal to etherparse's reading"
    );
    assert!(fast > compared / 2);
}

/// Issue 13: on every real capture, a "not_skype" verdict rests on
/// contradicting evidence (a structured group that must be random, a FUNC
/// byte or prefix that is not Skype's, a rhythm that is not a call's),
/// never on few messages alone; the judged flows are counted by reason.
#[test]
fn not_skype_rests_on_a_contradiction() {
    let Some(all) = negatives() else { return };
    let Some(old) = legacy() else { return };
    let model = model();
    let mut reasons: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let (mut flows, mut undecided) = (0usize, 0usize);
    for a in all.iter().chain(old.iter()) {
        for r in &a.report.records {
            flows += 1;
            match r.verdict.label {
                Label::Undecided => undecided += 1,
                Label::Skype => {}
                Label::NotSkype => {
                    assert!(!r.evidence_released);
                    let flow = r.evidence();
                    let c = contradiction_of(&flow, r.key.transport, &model.config);
                    let Some(c) = c else {
                        panic!(
                            "{} {:?}: not_skype without a contradiction: {:?}",
                            name(a),
                            r.key,
                            flow
                        );
                    };
                    let reason = match c.as_str() {
                        s if s.starts_with("group_") => "structure",
                        s => s,
                    };
                    *reasons
                        .entry((r.key.transport.as_str(), reason))
                        .or_default() += 1;
                }
            }
        }
    }
    eprintln!(
        "{flows} flows, {undecided} undecided; not_skype by transport and reason: {reasons:?}"
    );
    assert!(reasons.values().sum::<usize>() > 300);
}

/// Issue 14: the classic client's `Unknown` TCP flows (likely Skype TCP,
/// unconfirmed by nDPI) tied to the client: how many are called Skype, and
/// what ties each (the client's Skype port, a Skype peer of its UDP, or a
/// port its Skype peers use, from the client's address). None of the
/// legacy captures' other TCP flows is called Skype.
#[test]
fn unconfirmed_classic_tcp_is_reported() {
    let Some(old) = legacy() else { return };
    let mut why: BTreeMap<&str, usize> = BTreeMap::new();
    let (mut total, mut skype) = (0, 0);
    for a in old {
        let recs = &a.report.records;
        // The recognised clients, their Skype peers and the peers' ports,
        // from the records (what the endpoint table learned).
        let clients: HashSet<(std::net::IpAddr, u16)> =
            a.report.endpoints.iter().map(|e| (e.ip, e.port)).collect();
        let mut peers = HashSet::new();
        let mut peer_ports = HashSet::new();
        for r in recs.iter().filter(|r| {
            r.key.transport == Transport::Udp
                && r.verdict.label == Label::Skype
                && r.verdict.via == Some(Via::Endpoint)
        }) {
            let ends = [
                (r.key.src_ip, r.key.src_port),
                (r.key.dst_ip, r.key.dst_port),
            ];
            for (x, y) in [(ends[0], ends[1]), (ends[1], ends[0])] {
                if clients.contains(&x) {
                    peers.insert(y);
                    peer_ports.insert((x.0, y.1));
                }
            }
        }
        for r in recs.iter().filter(|r| r.key.transport == Transport::Tcp) {
            let class = class_of(a, r).map(|c| c.0);
            if class != Some(LabelClass::ClassicSkypeTcpUnconfirmed) {
                assert_ne!(r.verdict.label, Label::Skype, "{} {:?}", name(a), r.key);
                continue;
            }
            total += 1;
            if r.verdict.label != Label::Skype {
                let reason = match (r.verdict.label, r.first_payload_random) {
                    (Label::NotSkype, _) => "not Skype: its own evidence contradicts",
                    (_, Some(false)) | (_, None) => "undecided: first payload not random",
                    _ => "undecided: not tied to the client",
                };
                *why.entry(reason).or_default() += 1;
                continue;
            }
            skype += 1;
            assert_eq!(r.verdict.kind, Some(skype_dpi::verdict::Kind::Tcp));
            let ends = [
                (r.key.src_ip, r.key.src_port),
                (r.key.dst_ip, r.key.dst_port),
            ];
            let reason = if ends.iter().any(|e| clients.contains(e)) {
                "Skype: to or from the client's Skype port"
            } else if ends.iter().any(|e| peers.contains(e)) {
                "Skype: to a Skype peer of the client's UDP"
            } else {
                assert!(
                    peer_ports.contains(&(ends[0].0, ends[1].1))
                        || peer_ports.contains(&(ends[1].0, ends[0].1)),
                    "{:?} tied by nothing",
                    r.key
                );
                "Skype: from the client to a port its Skype peers use"
            };
            *why.entry(reason).or_default() += 1;
        }
    }
    eprintln!("unconfirmed classic TCP: {skype} of {total} called Skype");
    for (k, v) in &why {
        eprintln!("  {k}: {v}");
    }
    assert_eq!(total, 103);
    assert!(skype >= 35, "{skype} of {total}");
}
