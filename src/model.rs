//! The model file: one JSON document with the method's configuration, the
//! fitted Naive Bayes parameters, a format version and the model's
//! provenance. `models/default.json` is embedded in the library.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::MethodConfig;
use crate::nbc::NbcModel;

/// The `format` field of every model file.
pub const FORMAT: &str = "skype-dpi-model";
/// The format version this library reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The embedded default model's text.
pub const DEFAULT_MODEL_JSON: &str = include_str!("../models/default.json");

/// Where a model came from: enough to retrain it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The command that made it.
    pub command: String,
    /// Label specs, in the order given, with the SHA-256 of each capture.
    pub inputs: Vec<TrainingInput>,
    /// Training windows per class.
    pub windows_media: usize,
    /// Training windows of other traffic.
    pub windows_other: usize,
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

    /// Checks values that the types do not.
    pub fn check(&self) -> Result<(), String> {
        self.nbc.check().map_err(|e| format!("nbc: {e}"))?;
        let c = &self.config;
        let positive = [
            ("csc.deterministic_threshold", c.csc.deterministic_threshold),
            ("csc.mixed_threshold", c.csc.mixed_threshold),
            ("nbc.max_gap_seconds", c.nbc.max_gap_seconds),
            ("nbc.min_variance", c.nbc.min_variance),
            (
                "endpoint.idle_timeout_seconds",
                c.endpoint.idle_timeout_seconds,
            ),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!(
                    "config.{name} must be a positive number, found {v}"
                ));
            }
        }
        let shares = [
            ("dft.min_share", c.dft.min_share),
            ("nbc.video_share", c.nbc.video_share),
            ("nbc.min_window_pass_share", c.nbc.min_window_pass_share),
            (
                "endpoint.min_known_func_share",
                c.endpoint.min_known_func_share,
            ),
            (
                "endpoint.max_same_peer_port_share",
                c.endpoint.max_same_peer_port_share,
            ),
        ];
        for (name, v) in shares {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("config.{name} must be in [0, 1], found {v}"));
            }
        }
        if !c.nbc.window_log_odds_threshold.is_finite() {
            return Err("config.nbc.window_log_odds_threshold must be finite".to_string());
        }
        let (lo, hi) = c.endpoint.body_groups;
        if lo > hi
            || hi >= crate::config::CSC_GROUPS
            || c.endpoint.func_group >= crate::config::CSC_GROUPS
        {
            return Err("config.endpoint: group numbers must be within 0..=15".to_string());
        }
        Ok(())
    }

    /// The model as pretty JSON with a final newline (the bytes `train`
    /// writes).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
