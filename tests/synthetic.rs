//! Synthetic traffic (the project's own generator, on seeds the default
//! model never saw: it trains on `synth-calls:1000`): calls of every codec
//! and kind are found early and never called "not_skype", every look-alike
//! stays negative, and the README's time-to-verdict figures come from here.

use std::collections::BTreeMap;
use std::path::PathBuf;

use skype_dpi::analyze::analyze_file;
use skype_dpi::classifier::FlowRecord;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::{load_spec, FlowLabel};
use skype_dpi::model::Model;
use skype_dpi::synth::{write_labels, write_pcap, Generator, SynthConfig};
use skype_dpi::verdict::{Label, Via};

/// A labelled record of a synthetic capture.
struct Flow {
    label: FlowLabel,
    codec: String,
    record: FlowRecord,
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("skype-dpi-synth-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Generates, classifies and labels one synthetic capture.
fn classify(cfg: &SynthConfig, name: &str) -> Vec<Flow> {
    let model = Model::default_model().unwrap();
    let dir = scratch();
    let (pcap, csv) = (
        dir.join(format!("{name}.pcap")),
        dir.join(format!("{name}.csv")),
    );
    let mut gen = Generator::new(cfg);
    write_labels(&csv, gen.flows()).unwrap();
    write_pcap(&pcap, &mut gen, None).unwrap();
    let labels = load_spec(&format!("{}@{}", pcap.display(), csv.display()))
        .unwrap()
        .remove(0);
    // The codec column, by the flow's unordered endpoints.
    let codec_of: BTreeMap<String, String> = std::fs::read_to_string(&csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (endpoints(f[1], f[2], f[3], f[4]), f[7].to_string())
        })
        .collect();
    let report = analyze_file(&pcap, None, &model, FlowTableConfig::default()).unwrap();
    assert_eq!(report.stats.skipped.total(), 0);
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_file(&csv).ok();
    report
        .records
        .into_iter()
        .map(|r| {
            let label = labels.label_of(&r.key).expect("labelled").clone();
            let codec = codec_of
                .get(&endpoints(
                    &r.key.src_ip.to_string(),
                    &r.key.src_port.to_string(),
                    &r.key.dst_ip.to_string(),
                    &r.key.dst_port.to_string(),
                ))
                .cloned()
                .unwrap_or_default();
            Flow {
                label,
                codec,
                record: r,
            }
        })
        .collect()
}

fn endpoints(a: &str, ap: &str, b: &str, bp: &str) -> String {
    let (x, y) = (format!("{a}:{ap}"), format!("{b}:{bp}"));
    if x <= y {
        format!("{x}-{y}")
    } else {
        format!("{y}-{x}")
    }
}

/// The calls of issue 13: every codec and kind, ringing before the media,
/// with and without pauses, on seeds not used in training.
fn calls() -> Vec<Flow> {
    let mut all = Vec::new();
    for (seed, pauses) in [(7u64, true), (8, true), (9, false), (10, true), (11, false)] {
        let cfg = SynthConfig {
            seed,
            flows_per_profile: 2,
            call_seconds: 20.0,
            bulk_seconds: 3.0,
            signalling_clients: 0,
            late_clients: 0,
            peer_look_alike_clients: 0,
            ipv6_share: 0.3,
            vlan_share: 0.3,
            loss: 0.02,
            pauses,
            ..SynthConfig::default()
        };
        all.extend(classify(&cfg, &format!("calls{seed}")));
    }
    all
}

fn quantile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

#[test]
fn calls_are_found_early_and_never_rejected() {
    let flows = calls();
    let skype: Vec<&Flow> = flows.iter().filter(|f| f.label.label == "skype").collect();
    let mut seconds = Vec::new();
    let mut per_variant: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut per_codec: BTreeMap<String, Vec<(u64, f64)>> = BTreeMap::new();
    let mut short: BTreeMap<&str, u32> = BTreeMap::new();
    for f in &skype {
        let r = &f.record;
        let variant = f.label.variant.clone().unwrap_or_default();
        // Never "not_skype" by default: no call, short or long, is rejected.
        assert_ne!(
            r.verdict.label,
            Label::NotSkype,
            "{variant} {} {:?}: {:?}",
            f.codec,
            r.key,
            r.directions.map(|d| d.evidence)
        );
        if variant == "short_call" {
            // 20 to 99 media messages a direction: found when the tests
            // have had the messages they need, else undecided.
            let e = short.entry(r.verdict.label.as_str()).or_insert(0);
            *e += 1;
            if r.verdict.label != Label::Skype {
                continue;
            }
        }
        assert_eq!(r.verdict.label, Label::Skype, "{variant} {:?}", r.key);
        // Found on its own evidence, with its own kind.
        assert_eq!(r.verdict.via, Some(Via::Flow), "{variant} {:?}", r.key);
        assert_eq!(
            r.verdict.kind.map(|k| k.as_str()),
            f.label.kind.as_deref(),
            "{variant} {:?}",
            r.key
        );
        let s = f64::from(r.verdict.decided_after_seconds.unwrap_or(f32::INFINITY));
        if variant != "short_call" {
            seconds.push(s);
        }
        per_variant.entry(variant.clone()).or_default().push(s);
        if variant == "voice" {
            per_codec
                .entry(f.codec.clone())
                .or_default()
                .push((r.verdict.decided_at_packet.unwrap_or(0), s));
        }
    }
    eprintln!("short calls (20-99 media messages a direction): {short:?}");
    let n = seconds.len() as f64;
    let within = |t: f64| seconds.iter().filter(|&&s| s <= t).count() as f64 / n;
    let (w1, w2, w5) = (within(1.0), within(2.0), within(5.0));
    let median = quantile(&mut seconds.clone(), 0.5);
    let p95 = quantile(&mut seconds.clone(), 0.95);
    eprintln!(
        "{} calls: median {median:.2} s, 95th percentile {p95:.2} s, within 1 / 2 / 5 s: {:.1} / {:.1} / {:.1} %",
        seconds.len(),
        100.0 * w1,
        100.0 * w2,
        100.0 * w5
    );
    eprintln!("| kind | calls | median s | 95th pct s | within 1 s | within 2 s | within 5 s |");
    for (v, s) in per_variant.iter_mut() {
        let k = s.len() as f64;
        let w = |t: f64| 100.0 * s.iter().filter(|&&x| x <= t).count() as f64 / k;
        let (a, b, c) = (w(1.0), w(2.0), w(5.0));
        eprintln!(
            "| {v} | {} | {:.2} | {:.2} | {a:.0} % | {b:.0} % | {c:.0} % |",
            s.len(),
            quantile(s, 0.5),
            quantile(s, 0.95),
        );
    }
    eprintln!("| codec (voice) | calls | median packets | median s |");
    for (c, v) in &per_codec {
        let mut p: Vec<f64> = v.iter().map(|x| x.0 as f64).collect();
        let mut s: Vec<f64> = v.iter().map(|x| x.1).collect();
        eprintln!(
            "| {c} | {} | {:.0} | {:.2} |",
            v.len(),
            quantile(&mut p, 0.5),
            quantile(&mut s, 0.5)
        );
    }
    // Issue 13: >= 95 % within 5 s of the first packet, median <= 3 s
    // (short calls apart: none is "not_skype", checked above).
    assert!(w5 >= 0.95, "{:.1} % within 5 s", 100.0 * w5);
    assert!(median <= 3.0, "median {median:.2} s");
    for v in [
        "voice",
        "video",
        "video_only",
        "short_call",
        "e2o",
        "tcp_voice",
    ] {
        assert!(per_variant.contains_key(v), "no {v} calls: {per_variant:?}");
    }
    assert_eq!(per_codec.len(), 7, "every codec: {per_codec:?}");
    // The video-only flows carry the video flag.
    for f in skype
        .iter()
        .filter(|f| f.label.variant.as_deref() == Some("video_only"))
    {
        assert!(f.record.directions.iter().any(|d| d.evidence.video));
    }
}

#[test]
fn look_alikes_stay_negative() {
    let mut per_label: BTreeMap<String, (u32, u32, u32)> = BTreeMap::new();
    for seed in [7u64, 8, 9] {
        let cfg = SynthConfig {
            seed,
            flows_per_profile: 2,
            call_seconds: 30.0,
            bulk_seconds: 3.0,
            signalling_clients: 1,
            late_clients: 1,
            peer_look_alike_clients: 2,
            peers: 40,
            ..SynthConfig::default()
        };
        for f in classify(&cfg, &format!("look{seed}")) {
            if f.label.label == "skype" {
                continue;
            }
            let e = per_label.entry(f.label.label.clone()).or_default();
            e.0 += 1;
            e.1 += u32::from(f.record.verdict.label == Label::NotSkype);
            e.2 += u32::from(f.record.verdict.label == Label::Skype);
        }
    }
    eprintln!("look-alike: (flows, judged not Skype, called Skype)");
    for (l, v) in &per_label {
        eprintln!("  {l}: {v:?}");
    }
    assert_eq!(per_label.len(), 18, "{per_label:?}");
    for (l, (n, _, fp)) in &per_label {
        assert!(*n > 0);
        assert_eq!(*fp, 0, "{l}: {fp} of {n} called Skype");
    }
    // The game traffic, close to E2O and to a voice rhythm, is judged and
    // rejected, not left undecided.
    let (n, judged, _) = per_label["game"];
    assert_eq!(judged, n, "games judged not Skype");
}
