//! Model files: the embedded default, saving and loading, retraining it
//! from its recorded inputs, and clear errors for bad files.

use std::path::{Path, PathBuf};

use skype_dpi::config::MethodConfig;
use skype_dpi::labels::datasets_dir;
use skype_dpi::model::{Model, FORMAT_VERSION};
use skype_dpi::train::train;

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("skype-dpi-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn default_model_loads_and_round_trips() {
    let m = Model::default_model().unwrap();
    assert_eq!(m.format_version, FORMAT_VERSION);
    assert_eq!(
        m.config,
        MethodConfig::default(),
        "models/default.json carries the documented defaults"
    );
    let dir = scratch("roundtrip");
    let p = dir.join("m.json");
    std::fs::write(&p, m.to_json()).unwrap();
    let back = Model::load(&p).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.to_json(), m.to_json());
    assert_eq!(
        m.to_json(),
        skype_dpi::model::DEFAULT_MODEL_JSON,
        "default.json is in canonical form"
    );
}

fn load_err(name: &str, text: &str) -> String {
    let dir = scratch(name);
    let p = dir.join(format!("{name}.json"));
    std::fs::write(&p, text).unwrap();
    let e = Model::load(&p).unwrap_err().to_string();
    assert!(
        e.contains(&p.display().to_string()),
        "error names the file: {e}"
    );
    e
}

#[test]
fn bad_model_files_are_clear_errors() {
    let good = Model::default_model().unwrap().to_json();
    let e = load_err("truncated", &good[..good.len() / 2]);
    assert!(e.contains("not valid JSON"), "{e}");
    let e = load_err(
        "version",
        &good.replace(
            &format!("\"format_version\": {FORMAT_VERSION}"),
            "\"format_version\": 99",
        ),
    );
    assert!(e.contains("format version 99 is not supported"), "{e}");
    let e = load_err(
        "format",
        &good.replace("\"skype-dpi-model\"", "\"something-else\""),
    );
    assert!(e.contains("format is \"something-else\""), "{e}");
    let e = load_err("noformat", "{\"a\": 1}");
    assert!(e.contains("no \"format\" field"), "{e}");
    let e = load_err(
        "field",
        &good.replace("\"mixed_threshold\"", "\"mixd_threshold\""),
    );
    assert!(e.contains("does not match the model format"), "{e}");
    let v: serde_json::Value = serde_json::from_str(&good).unwrap();
    let mut bad = v.clone();
    bad["nbc"]["voice"]["media"]["variance"][0] = serde_json::json!(-1.0);
    let e = load_err("variance", &serde_json::to_string(&bad).unwrap());
    assert!(e.contains("variance"), "{e}");
    let mut bad = v;
    bad["config"]["dft"]["min_share"] = serde_json::json!(1.5);
    let e = load_err("share", &serde_json::to_string(&bad).unwrap());
    assert!(e.contains("dft.min_share"), "{e}");
    let missing = Model::load(Path::new("/nonexistent/model.json"))
        .unwrap_err()
        .to_string();
    assert!(
        missing.contains("/nonexistent/model.json") && missing.contains("cannot be read"),
        "{missing}"
    );
}

/// Retraining `models/default.json` from its recorded inputs gives the same
/// bytes.
#[test]
fn default_model_retrains_to_the_same_bytes() {
    let root = datasets_dir();
    if !root.join("ndpi/pcap").is_dir() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "datasets missing at {} with CI=true",
            root.display()
        );
        eprintln!("skipping: no datasets");
        return;
    }
    let m = Model::default_model().unwrap();
    // The recorded command: --labels 'SPEC' ... --out FILE.
    let specs: Vec<String> = m
        .provenance
        .command
        .split("--labels '")
        .skip(1)
        .filter_map(|s| s.split('\'').next())
        .map(|s| s.replace("$SKYPE_DPI_DATASETS", &root.display().to_string()))
        .collect();
    assert!(!specs.is_empty(), "no specs in {:?}", m.provenance.command);
    let root_s = root.display().to_string();
    let root_c = std::fs::canonicalize(&root)
        .map(|p| p.display().to_string())
        .unwrap_or(root_s.clone());
    let name = |s: &str| {
        s.replace(&root_c, "$SKYPE_DPI_DATASETS")
            .replace(&root_s, "$SKYPE_DPI_DATASETS")
    };
    let again = train(
        &specs,
        MethodConfig::default(),
        &m.provenance.command,
        &m.provenance.notes,
        name,
    )
    .unwrap();
    assert_eq!(again.to_json(), m.to_json());
}

/// Every rule of a model file's check, each broken on its own: the load
/// fails, naming the file, the field and the rule (issue 16).
#[test]
fn every_model_rule_is_checked() {
    let good: serde_json::Value =
        serde_json::from_str(&Model::default_model().unwrap().to_json()).unwrap();
    let cases: &[(&str, serde_json::Value, &str)] = &[
        (
            "csc.deterministic_threshold",
            serde_json::json!(0.0),
            "above 0",
        ),
        (
            "csc.deterministic_threshold",
            serde_json::json!(-5.0),
            "above 0",
        ),
        (
            "csc.mixed_threshold",
            serde_json::json!(500.0),
            "at most csc.deterministic_threshold",
        ),
        (
            "csc.group_alpha",
            serde_json::json!(0.0),
            "strictly between 0 and 1",
        ),
        (
            "csc.group_alpha",
            serde_json::json!(1.0),
            "strictly between 0 and 1",
        ),
        ("csc.dirichlet_prior", serde_json::json!(0.0), "above 0"),
        (
            "csc.fixed_bit_slip",
            serde_json::json!(0.5),
            "strictly between 0 and 0.5",
        ),
        ("csc.random_min_samples", serde_json::json!(0), "at least 1"),
        ("dft.min_packets", serde_json::json!(0), "at least 1"),
        ("dft.min_matching", serde_json::json!(0), "at least 1"),
        (
            "dft.min_share",
            serde_json::json!(1.0),
            "strictly between 0 and 1",
        ),
        ("dft.min_voice_share", serde_json::json!(1.5), "in [0, 1]"),
        ("dft.func_known", serde_json::json!([]), "a non-empty list"),
        (
            "dft.contradiction_alpha",
            serde_json::json!(2.0),
            "strictly between 0 and 1",
        ),
        (
            "dft.contradiction_rate",
            serde_json::json!(0.05),
            "above 1 - dft.min_share",
        ),
        ("nbc.voice_max_bytes", serde_json::json!(0), "at least 1"),
        (
            "nbc.video_bands",
            serde_json::json!([[490, 400]]),
            "low end at most its high end",
        ),
        ("nbc.video_share", serde_json::json!(-0.1), "in [0, 1]"),
        (
            "nbc.media_alpha",
            serde_json::json!(0.0),
            "strictly between 0 and 1",
        ),
        (
            "nbc.other_alpha",
            serde_json::json!(1.0),
            "strictly between 0 and 1",
        ),
        (
            "nbc.window_log_odds_clamp",
            serde_json::json!(0.0),
            "above 0",
        ),
        ("nbc.min_variance", serde_json::json!(-1.0), "above 0"),
        ("nbc.max_gap_seconds", serde_json::json!(0.0), "above 0"),
        (
            "verdict.confirm_samples",
            serde_json::json!(0),
            "at least 1",
        ),
        ("endpoint.max_endpoints", serde_json::json!(0), "at least 1"),
        (
            "endpoint.max_recognised",
            serde_json::json!(0),
            "at least 1",
        ),
        (
            "endpoint.idle_timeout_seconds",
            serde_json::json!(0.0),
            "above 0",
        ),
        ("endpoint.min_packets", serde_json::json!(0), "at least 1"),
        (
            "endpoint.max_messages_per_flow",
            serde_json::json!(0),
            "at least 1",
        ),
        ("endpoint.min_peers", serde_json::json!(0), "at least 1"),
        (
            "endpoint.min_known_func_share",
            serde_json::json!(1.1),
            "in [0, 1]",
        ),
        (
            "endpoint.min_id_change_share",
            serde_json::json!(-1.0),
            "in [0, 1]",
        ),
        (
            "endpoint.body_groups",
            serde_json::json!([6, 16]),
            "within 0..=15",
        ),
        (
            "endpoint.func_group",
            serde_json::json!(16),
            "within 0..=15",
        ),
    ];
    for (field, value, rule) in cases {
        let mut bad = good.clone();
        let mut at = &mut bad["config"];
        for part in field.split('.') {
            at = &mut at[part];
        }
        *at = value.clone();
        let e = load_err(
            &format!("rule-{}", field.replace('.', "-")),
            &bad.to_string(),
        );
        assert!(
            e.contains(&format!("config.{field}")) && e.contains(rule),
            "{field} = {value}: {e}"
        );
    }
    // JSON cannot carry NaN or infinity: such a number is not a number.
    let text = good
        .to_string()
        .replace("\"group_alpha\":1e-6", "\"group_alpha\":NaN");
    let e = load_err("nan", &text);
    assert!(e.contains("not valid JSON"), "{e}");
    // The fitted parameters.
    for (path, value, words) in [
        (
            ["nbc", "voice", "media", "prior"],
            serde_json::json!(0.0),
            "prior",
        ),
        (
            ["nbc", "video", "other", "variance"],
            serde_json::json!([1.0]),
            "means and variances",
        ),
        (
            ["nbc", "voice", "other", "mean"],
            serde_json::json!([1.0, 2.0]),
            "means and variances",
        ),
    ] {
        let mut bad = good.clone();
        bad[path[0]][path[1]][path[2]][path[3]] = value;
        let e = load_err("fitted", &bad.to_string());
        assert!(e.contains(words), "{path:?}: {e}");
    }
}

/// A model whose endpoint table holds one endpoint (the smallest the rules
/// allow) runs on the classic capture without a panic (issue 16: 0 passed
/// validation and then panicked).
#[test]
fn the_smallest_endpoint_table_runs() {
    let root = datasets_dir().join("ndpi/legacy-skype/pcap/skype.pcap");
    if !root.exists() {
        return;
    }
    let mut m = Model::default_model().unwrap();
    m.config.endpoint.max_endpoints = 1;
    m.config.endpoint.max_recognised = 1;
    let r = skype_dpi::analyze::analyze_file(&root, None, &m, Default::default()).unwrap();
    assert!(!r.records.is_empty());
}
