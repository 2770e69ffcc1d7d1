//! The model file: one JSON document with the method's configuration, the
//! fitted Naive Bayes parameters, a format version and the model's
//! provenance. `models/default.json` is embedded in the library.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::MethodConfig;
use crate::nbc::NbcModel;

/// The `format` field of every model file.
pub const FORMAT: &str = "skype-dpi-model";
/// The format version this library reads and writes: 2 since the
/// sequential tests and the video rhythm model (version 1 had fixed-sample
/// thresholds and one rhythm model).
pub const FORMAT_VERSION: u32 = 2;

/// The embedded default model's text.
pub const DEFAULT_MODEL_JSON: &str = include_str!("../models/default.json");

/// Where a model came from: enough to retrain it.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The command that made it.
    pub command: String,
    /// Label specs, in the order given, with the SHA-256 of each capture.
    pub inputs: Vec<TrainingInput>,
    /// Voice training windows of media.
    pub windows_media: usize,
    /// Voice training windows of other traffic.
    pub windows_other: usize,
    /// Video training windows of media.
    pub video_windows_media: usize,
    /// Video training windows of other traffic.
    pub video_windows_other: usize,
    /// Flows per class that gave windows.
    pub flows_media: usize,
    /// Flows of other traffic that gave windows.
    pub flows_other: usize,
    /// Free text: what the data is and which numbers are synthetic.
    pub notes: String,
}

/// One training input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct TrainingInput {
    /// The label spec as given (paths relative to the datasets root when
    /// they were under it).
    pub spec: String,
    /// SHA-256 of the capture file, hex.
    pub capture_sha256: String,
}

/// A model: plain data that serializes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`FORMAT_VERSION`] for this library.
    pub format_version: u32,
    /// The method's numbers.
    pub config: MethodConfig,
    /// The fitted rhythm model.
    pub nbc: NbcModel,
    /// How it was made.
    pub provenance: Provenance,
}

/// What is wrong with a model file.
#[derive(Debug, thiserror::Error)]
#[error("model file {}: {problem}", path.display())]
pub struct ModelError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong, in words that say what to do.
    pub problem: String,
}

impl Model {
    /// A model from its parts, at the current format version.
    pub fn new(config: MethodConfig, nbc: NbcModel, provenance: Provenance) -> Model {
        Model {
            format: FORMAT.to_string(),
            format_version: FORMAT_VERSION,
            config,
            nbc,
            provenance,
        }
    }

    /// The embedded default model (`models/default.json`).
    pub fn default_model() -> Result<Model, ModelError> {
        Self::from_json(
            DEFAULT_MODEL_JSON,
            Path::new("models/default.json (embedded)"),
        )
    }

    /// Reads and checks a model file.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError {
            path: path.to_path_buf(),
            problem: format!("cannot be read: {e}"),
        })?;
        Self::from_json(&text, path)
    }

    /// Parses and checks a model; `path` names it in errors.
    pub fn from_json(text: &str, path: &Path) -> Result<Model, ModelError> {
        let err = |problem: String| ModelError {
            path: path.to_path_buf(),
            problem,
        };
        // Check the format and version first, so that a model of another
        // version gets that message rather than a field-by-field one.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            err(format!(
                "is not valid JSON ({e}); was it truncated? Retrain it with the `train` example"
            ))
        })?;
        match value.get("format").and_then(|f| f.as_str()) {
            Some(FORMAT) => {}
            Some(other) => return Err(err(format!("format is {other:?}, expected {FORMAT:?}"))),
            None => return Err(err(format!("has no \"format\" field: not a {FORMAT} file"))),
        }
        match value.get("format_version").and_then(|v| v.as_u64()) {
            Some(v) if v == u64::from(FORMAT_VERSION) => {}
            Some(v) => {
                return Err(err(format!(
                    "format version {v} is not supported: this library reads version {FORMAT_VERSION}; retrain the model with this version's `train` example"
                )))
            }
            None => return Err(err("has no numeric \"format_version\" field".to_string())),
        }
        let model: Model = serde_json::from_value(value)
            .map_err(|e| err(format!("does not match the model format: {e}")))?;
        model.check().map_err(err)?;
        Ok(model)
    }

    /// Checks values that the types do not: every number of the
    /// configuration against its rule (finite, in range, non-zero sizes,
    /// consistent thresholds), and the fitted parameters. The error names
    /// the field and the rule.
    pub fn check(&self) -> Result<(), String> {
        self.nbc.check().map_err(|e| format!("nbc.{e}"))?;
        check_config(&self.config)
    }

    /// The model as pretty JSON with a final newline (the bytes `train`
    /// writes).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

/// A rule a configuration value breaks: the field and the rule.
fn broken(field: &str, rule: &str, value: impl std::fmt::Display) -> String {
    format!("config.{field} must be {rule}, found {value}")
}

/// `x` is a finite number above zero.
fn positive(field: &str, x: f64) -> Result<(), String> {
    if x.is_finite() && x > 0.0 {
        Ok(())
    } else {
        Err(broken(field, "a finite number above 0", x))
    }
}

/// `x` is a probability strictly between 0 and 1.
fn open_unit(field: &str, x: f64) -> Result<(), String> {
    if x > 0.0 && x < 1.0 {
        Ok(())
    } else {
        Err(broken(field, "strictly between 0 and 1", x))
    }
}

/// `x` is a share in [0, 1].
fn share(field: &str, x: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&x) {
        Ok(())
    } else {
        Err(broken(field, "in [0, 1]", x))
    }
}

/// `x` is at least 1.
fn at_least_one(field: &str, x: u64) -> Result<(), String> {
    if x >= 1 {
        Ok(())
    } else {
        Err(broken(field, "at least 1", x))
    }
}

/// Checks every number of a method configuration (see [`Model::check`]).
pub fn check_config(c: &MethodConfig) -> Result<(), String> {
    use crate::config::CSC_GROUPS;
    positive("csc.deterministic_threshold", c.csc.deterministic_threshold)?;
    positive("csc.mixed_threshold", c.csc.mixed_threshold)?;
    if c.csc.mixed_threshold > c.csc.deterministic_threshold {
        return Err(broken(
            "csc.mixed_threshold",
            "at most csc.deterministic_threshold",
            c.csc.mixed_threshold,
        ));
    }
    open_unit("csc.group_alpha", c.csc.group_alpha)?;
    positive("csc.dirichlet_prior", c.csc.dirichlet_prior)?;
    if !(c.csc.fixed_bit_slip > 0.0 && c.csc.fixed_bit_slip < 0.5) {
        return Err(broken(
            "csc.fixed_bit_slip",
            "strictly between 0 and 0.5",
            c.csc.fixed_bit_slip,
        ));
    }
    at_least_one("csc.random_min_samples", c.csc.random_min_samples.into())?;

    at_least_one("dft.min_packets", c.dft.min_packets.into())?;
    at_least_one("dft.min_matching", c.dft.min_matching.into())?;
    open_unit("dft.min_share", c.dft.min_share)?;
    share("dft.min_voice_share", c.dft.min_voice_share)?;
    if c.dft.func_known.is_empty() {
        return Err(broken("dft.func_known", "a non-empty list", "[]"));
    }
    open_unit("dft.contradiction_alpha", c.dft.contradiction_alpha)?;
    if !(c.dft.contradiction_rate > 1.0 - c.dft.min_share && c.dft.contradiction_rate < 1.0) {
        return Err(broken(
            "dft.contradiction_rate",
            "above 1 - dft.min_share and below 1",
            c.dft.contradiction_rate,
        ));
    }

    at_least_one("nbc.voice_max_bytes", c.nbc.voice_max_bytes.into())?;
    for (i, &(lo, hi)) in c.nbc.video_bands.iter().enumerate() {
        if lo > hi {
            return Err(broken(
                &format!("nbc.video_bands[{i}]"),
                "a band with its low end at most its high end",
                format!("[{lo}, {hi}]"),
            ));
        }
    }
    share("nbc.video_share", c.nbc.video_share)?;
    open_unit("nbc.media_alpha", c.nbc.media_alpha)?;
    open_unit("nbc.other_alpha", c.nbc.other_alpha)?;
    positive("nbc.window_log_odds_clamp", c.nbc.window_log_odds_clamp)?;
    positive("nbc.min_variance", c.nbc.min_variance)?;
    positive("nbc.max_gap_seconds", c.nbc.max_gap_seconds)?;

    at_least_one("verdict.confirm_samples", c.verdict.confirm_samples.into())?;

    let e = &c.endpoint;
    at_least_one("endpoint.max_endpoints", e.max_endpoints as u64)?;
    positive("endpoint.idle_timeout_seconds", e.idle_timeout_seconds)?;
    at_least_one("endpoint.min_packets", e.min_packets.into())?;
    at_least_one(
        "endpoint.max_messages_per_flow",
        e.max_messages_per_flow.into(),
    )?;
    at_least_one("endpoint.min_peers", e.min_peers.into())?;
    share("endpoint.min_known_func_share", e.min_known_func_share)?;
    share("endpoint.min_id_change_share", e.min_id_change_share)?;
    at_least_one("endpoint.max_recognised", e.max_recognised as u64)?;
    let (lo, hi) = e.body_groups;
    if lo > hi || hi >= CSC_GROUPS {
        return Err(broken(
            "endpoint.body_groups",
            "a range of groups within 0..=15",
            format!("({lo}, {hi})"),
        ));
    }
    if e.func_group >= CSC_GROUPS {
        return Err(broken(
            "endpoint.func_group",
            "a group within 0..=15",
            e.func_group,
        ));
    }
    Ok(())
}
