//! The evaluation's arithmetic on a labelled capture whose answer is known by
//! construction: the project's sample, with two labels deliberately swapped
//! (a Skype call labelled DNS, the RTP call labelled Skype), so that exactly
//! one false positive and one miss must appear, and every rate follows.

use skype_dpi::evaluate::evaluate;
use skype_dpi::model::Model;

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample.pcap");
const LABELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/datasets/sample-labels.csv");

#[test]
fn metrics_on_swapped_labels() {
    let text = std::fs::read_to_string(LABELS).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let call = lines
        .iter()
        .position(|l| l.contains(",skype,e2e,ilbc20"))
        .unwrap();
    let rtp = lines.iter().position(|l| l.contains(",rtp,")).unwrap();
    lines[call] = lines[call].replace(",skype,e2e,ilbc20", ",dns,,");
    lines[rtp] = lines[rtp].replace(",rtp,", ",skype,e2e,");
    let positives = lines.iter().filter(|l| l.contains(",skype,")).count() as u64;
    let negatives = (lines.len() - 1) as u64 - positives;
    let dir = std::env::temp_dir().join(format!("skype-dpi-eval-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let csv = dir.join("swapped.csv");
    std::fs::write(&csv, lines.join("\n")).unwrap();

    let model = Model::default_model().unwrap();
    let spec = format!("{SAMPLE}@{}", csv.display());
    let ev = evaluate(&model, std::slice::from_ref(&spec)).unwrap();
    let m = &ev.sets[0];
    assert_eq!(m.positives.flows, positives);
    assert_eq!(m.negatives.flows, negatives);
    // Everything right but the two swapped flows.
    assert_eq!(m.positives.skype, positives - 1);
    assert_eq!(m.negatives.skype, 1);
    assert_eq!(ev.false_positives.len(), 1);
    assert_eq!(ev.false_positives[0].label, "dns");
    assert_eq!(ev.misses.len(), 1);
    assert_eq!(ev.misses[0].label, "skype");
    let close = |a: Option<f64>, b: f64| (a.unwrap() - b).abs() < 1e-12;
    assert!(close(m.recall, (positives - 1) as f64 / positives as f64));
    assert!(close(
        m.precision,
        (positives - 1) as f64 / positives as f64
    ));
    assert!(close(m.fpr, 1.0 / negatives as f64));
    // Per byte: the false positive's bytes over all negative bytes.
    let fp_bytes = m.negatives.skype_bytes as f64;
    assert!(fp_bytes > 0.0);
    assert!(close(m.fpr_bytes, fp_bytes / m.negatives.bytes as f64));
    assert!(close(
        m.recall_bytes,
        m.positives.skype_bytes as f64 / m.positives.bytes as f64
    ));
    // Signalling, login and short TCP flows are found only through their
    // endpoint.
    let via_endpoint = lines
        .iter()
        .filter(|l| l.contains(",signalling,") || l.contains(",short_tcp,"))
        .count() as u64;
    assert!(close(
        m.recall_without_endpoints,
        (positives - 1 - via_endpoint) as f64 / positives as f64
    ));
    assert!(m.median_packets_to_verdict.is_some());

    // The report: JSON and three pictures.
    ev.write_report(&dir.join("report")).unwrap();
    for f in [
        "evaluation.json",
        "report.md",
        "chi2_profile.svg",
        "nbc_log_odds.svg",
        "time_to_verdict.svg",
    ] {
        let p = dir.join("report").join(f);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.len() > 500, "{f} is too small");
        if f.ends_with(".svg") {
            assert!(text.starts_with("<svg") && text.contains("</svg>"), "{f}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}
