//! Training: window features from labelled captures, a fitted Naive Bayes
//! model, and its provenance.
//!
//! Every direction of a labelled flow gives its completed 30-message rhythm
//! windows, voice and video; windows of media flows (voice/video calls of
//! any protocol) are the media class, windows of every other labelled flow
//! the other class. Each window kind has a model of its own.
//! Inputs are read in the order given and flows in capture order, so the
//! same inputs give the same model, byte for byte.

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::capture::Capture;
use crate::config::{FlowTableConfig, MethodConfig};
use crate::features::{DirectionFeatures, FuncSet, WindowFeatures, WindowKind};
use crate::flow::{EndedFlow, FlowKey, FlowTable};
use crate::labels::{load_spec, CaptureLabels, LabelClass, LabelError};
use crate::model::{Model, Provenance, TrainingInput};
use crate::nbc::{FitError, NbcModel, WindowModel};
use crate::packet::decode;

/// The windows of one flow.
#[derive(Debug, Clone)]
pub struct FlowWindows {
    /// The flow.
    pub key: FlowKey,
    /// Completed windows, both directions, in order, with their kinds.
    pub windows: Vec<(WindowKind, WindowFeatures)>,
}

#[derive(Default)]
struct Extract {
    dirs: [DirectionFeatures; 2],
    windows: Vec<(WindowKind, WindowFeatures)>,
}

/// What went wrong in training.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A label spec or file.
    #[error(transparent)]
    Labels(#[from] LabelError),
    /// A capture.
    #[error(transparent)]
    Capture(#[from] crate::capture::CaptureError),
    /// The fit.
    #[error(transparent)]
    Fit(#[from] FitError),
    /// A file could not be hashed.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What happened.
        message: String,
    },
}

/// Reads a capture and returns the rhythm windows of every flow. A capture
/// that ends early gives the windows read so far.
pub fn capture_windows(
    path: &Path,
    config: &MethodConfig,
) -> Result<Vec<FlowWindows>, crate::capture::CaptureError> {
    let mut cap = Capture::open_file(path, None)?;
    let mut table: FlowTable<Extract> = FlowTable::new(FlowTableConfig::default());
    let mut out = Vec::new();
    let known = FuncSet::of(&config.dft.func_known);
    let mut done = |f: EndedFlow<Extract>| {
        out.push(FlowWindows {
            key: f.key,
            windows: f.state.windows,
        })
    };
    let _ = cap.for_each(|raw| {
        if let Ok(p) = decode(raw) {
            let u = table.update(&p, Extract::default, &mut done);
            let d = &mut u.state.dirs[u.direction.index()];
            let obs = d.observe(
                p.ts,
                p.transport,
                p.payload,
                p.payload_len,
                known,
                &config.dft,
                &config.nbc,
            );
            if let Some(w) = obs.window {
                u.state.windows.push(w);
            }
        }
        true
    });
    table.drain(&mut done);
    // In key order (flows of one key in time order), so that the model does
    // not depend on the order in which the table happens to end flows.
    out.sort_by_key(|f| f.key);
    Ok(out)
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<String, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    let digest = Sha256::digest(&bytes);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

/// The training windows of one kind, in input order.
#[derive(Debug, Default)]
pub struct KindWindows {
    /// Windows.
    pub windows: Vec<WindowFeatures>,
    /// Whether each window is media.
    pub media: Vec<bool>,
}

impl KindWindows {
    /// Windows of the media class.
    pub fn media_count(&self) -> usize {
        self.media.iter().filter(|&&m| m).count()
    }

    /// Windows of the other class.
    pub fn other_count(&self) -> usize {
        self.media.len() - self.media_count()
    }
}

/// The training set gathered from label specs.
#[derive(Debug, Default)]
pub struct TrainingSet {
    /// Voice windows.
    pub voice: KindWindows,
    /// Video windows.
    pub video: KindWindows,
    /// Media flows that gave windows.
    pub flows_media: usize,
    /// Other flows that gave windows.
    pub flows_other: usize,
    /// Inputs with checksums.
    pub inputs: Vec<TrainingInput>,
}

/// Whether a labelled flow trains the media class (Some(true)), the other
/// class (Some(false)), or nothing (None: classic Skype signalling and
/// unconfirmed TCP are not rhythm examples either way).
pub fn training_class(class: LabelClass, media: bool) -> Option<bool> {
    match class {
        LabelClass::ClassicSkypeTcpUnconfirmed => None,
        LabelClass::ClassicSkype => media.then_some(true),
        _ => Some(media),
    }
}

/// Gathers the windows of every labelled flow of the specs.
pub fn gather(
    specs: &[String],
    config: &MethodConfig,
    spec_name: impl Fn(&str) -> String,
) -> Result<TrainingSet, TrainError> {
    let mut set = TrainingSet::default();
    for spec in specs {
        let captures: Vec<CaptureLabels> = load_spec(spec)?;
        for cl in captures {
            let synthetic = spec.starts_with("synth-calls:");
            set.inputs.push(TrainingInput {
                spec: if synthetic {
                    spec.clone()
                } else {
                    spec_name(&format!("{}@{}", cl.capture.display(), spec))
                },
                capture_sha256: sha256_file(&cl.capture)?,
            });
            let flows = match capture_windows(&cl.capture, config) {
                Ok(f) => f,
                Err(_) => continue,
            };
            for fw in flows {
                let Some(label) = cl.label_of(&fw.key) else {
                    continue;
                };
                let Some(media) = training_class(label.class, label.media) else {
                    continue;
                };
                if fw.windows.is_empty() {
                    continue;
                }
                if media {
                    set.flows_media += 1;
                } else {
                    set.flows_other += 1;
                }
                for (kind, w) in fw.windows {
                    let k = match kind {
                        WindowKind::Voice => &mut set.voice,
                        WindowKind::Video => &mut set.video,
                    };
                    k.windows.push(w);
                    k.media.push(media);
                }
            }
            if synthetic {
                let _ = std::fs::remove_file(&cl.capture);
            }
        }
    }
    Ok(set)
}

/// Trains a model from label specs. `command` and `notes` go into the
/// provenance; `spec_name` rewrites paths for it (e.g. relative to the
/// datasets root).
pub fn train(
    specs: &[String],
    config: MethodConfig,
    command: &str,
    notes: &str,
    spec_name: impl Fn(&str) -> String,
) -> Result<Model, TrainError> {
    let set = gather(specs, &config, spec_name)?;
    let v = config.nbc.min_variance;
    let nbc = NbcModel {
        voice: WindowModel::fit(WindowKind::Voice, &set.voice.windows, &set.voice.media, v)?,
        video: WindowModel::fit(WindowKind::Video, &set.video.windows, &set.video.media, v)?,
    };
    let provenance = Provenance {
        command: command.to_string(),
        windows_media: set.voice.media_count(),
        windows_other: set.voice.other_count(),
        video_windows_media: set.video.media_count(),
        video_windows_other: set.video.other_count(),
        flows_media: set.flows_media,
        flows_other: set.flows_other,
        inputs: set.inputs,
        notes: notes.to_string(),
    };
    Ok(Model::new(config, nbc, provenance))
}
