//! The native half of the Python package `skype_dpi` (its Python half,
//! `python/skype_dpi/__init__.py`, is the documented API).
//!
//! Flow records cross the boundary as an Arrow IPC stream (the columns of
//! `skype_dpi::columnar`), which pyarrow opens without copying the columns
//! again; events, statistics and evaluations cross as JSON text. Long work
//! (a capture, training, an evaluation) runs without the GIL, so that
//! threads of the caller (and Dask's threaded workers) go on meanwhile.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use arrow_array::RecordBatch;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use serde_json::{json, Value};

use skype_dpi::analyze::{analyze_capture_parallel, CaptureReport};
use skype_dpi::capture::Capture;
use skype_dpi::classifier::{Classifier as CoreClassifier, Event, RunStats};
use skype_dpi::columnar::{schema, RecordBatchBuilder};
use skype_dpi::config::{FlowTableConfig, MethodConfig, TunnelConfig};
use skype_dpi::model::Model;
use skype_dpi::output::{RecordJson, VerdictJson};
use skype_dpi::packet::{RawPacket, SkipReason, Timestamp};
use skype_dpi::tunnel::TunnelKind;

create_exception!(_native, Error, PyException, "An error of skype-dpi.");
create_exception!(
    _native,
    ModelError,
    Error,
    "A model file that cannot be read or breaks a rule."
);
create_exception!(
    _native,
    CaptureError,
    Error,
    "A capture that cannot be opened or read to its end."
);
create_exception!(
    _native,
    TrainError,
    Error,
    "Training or evaluation failed (labels, captures)."
);

/// Models loaded so far, by file (and its size and modification time, so
/// that a rewritten file is read again); `None`: the embedded default.
/// Loading and checking a model costs milliseconds, as much as classifying
/// a small capture: an archive's tasks load each model once per worker.
type ModelCache = HashMap<Option<(PathBuf, u64, Option<SystemTime>)>, Model>;

static MODELS: Mutex<Option<ModelCache>> = Mutex::new(None);

/// Models kept at most (a caller that walks through many model files
/// starts afresh past this).
const MODELS_KEPT: usize = 16;

fn load_model(path: Option<&Path>) -> PyResult<Model> {
    let key = match path {
        None => None,
        Some(p) => {
            let meta = std::fs::metadata(p).ok();
            Some((
                p.to_path_buf(),
                meta.as_ref().map_or(0, |m| m.len()),
                meta.and_then(|m| m.modified().ok()),
            ))
        }
    };
    if let Ok(guard) = MODELS.lock() {
        if let Some(m) = guard.as_ref().and_then(|c| c.get(&key)) {
            return Ok(m.clone());
        }
    }
    let model = match path {
        Some(p) => Model::load(p),
        None => Model::default_model(),
    }
    .map_err(|e| ModelError::new_err(e.to_string()))?;
    if let Ok(mut guard) = MODELS.lock() {
        let cache = guard.get_or_insert_with(HashMap::new);
        if cache.len() >= MODELS_KEPT {
            cache.clear();
        }
        cache.insert(key, model.clone());
    }
    Ok(model)
}

fn table_config(max_flows: Option<usize>, tunnels: Option<&str>) -> PyResult<FlowTableConfig> {
    let mut table = FlowTableConfig::default();
    if let Some(n) = max_flows {
        if n == 0 {
            return Err(PyValueError::new_err("max_flows must be at least 1"));
        }
        table.max_flows = n;
    }
    if let Some(t) = tunnels {
        table.tunnels = t.parse::<TunnelConfig>().map_err(PyValueError::new_err)?;
    }
    Ok(table)
}

fn ipc_stream(batch: &RecordBatch) -> PyResult<Vec<u8>> {
    let err = |e: arrow_schema::ArrowError| Error::new_err(e.to_string());
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), &schema()).map_err(err)?;
    w.write(batch).map_err(err)?;
    w.finish().map_err(err)?;
    w.into_inner().map_err(err)
}

fn stats_json(s: &RunStats) -> Value {
    let skipped: serde_json::Map<String, Value> = SkipReason::ALL
        .iter()
        .filter(|r| s.skipped.get(**r) > 0)
        .map(|r| (r.as_str().to_string(), json!(s.skipped.get(*r))))
        .collect();
    let tunneled: serde_json::Map<String, Value> = TunnelKind::ALL
        .iter()
        .filter(|k| s.tunneled.packets(**k) > 0)
        .map(|k| {
            (
                k.as_str().to_string(),
                json!({"packets": s.tunneled.packets(*k), "payload_bytes": s.tunneled.payload_bytes(*k)}),
            )
        })
        .collect();
    json!({
        "frames": s.frames,
        "packets": s.packets,
        "flows": s.flows,
        "peak_flows": s.peak_flows,
        "skipped": skipped,
        "skipped_total": s.skipped.total(),
        "tunneled": tunneled,
    })
}

/// Classifies one capture file: (Arrow IPC stream of the records, run
/// statistics as JSON, the error that stopped reading or None, worker
/// failures, seconds).
#[pyfunction]
#[pyo3(signature = (path, model=None, bpf=None, max_flows=None, tunnels=None, threads=1))]
#[allow(clippy::type_complexity)]
fn analyze(
    py: Python<'_>,
    path: PathBuf,
    model: Option<PathBuf>,
    bpf: Option<String>,
    max_flows: Option<usize>,
    tunnels: Option<String>,
    threads: usize,
) -> PyResult<(Py<PyBytes>, String, Option<String>, Vec<String>, f64)> {
    let model = load_model(model.as_deref())?;
    let table = table_config(max_flows, tunnels.as_deref())?;
    let cap = Capture::open_file(&path, bpf.as_deref())
        .map_err(|e| CaptureError::new_err(e.to_string()))?;
    let report: CaptureReport =
        py.detach(|| analyze_capture_parallel(cap, &model, table, threads.max(1)));
    let mut rows = RecordBatchBuilder::new();
    for r in &report.records {
        rows.push(&report.capture, r);
    }
    let batch = rows.finish().map_err(|e| Error::new_err(e.to_string()))?;
    let bytes = ipc_stream(&batch)?;
    Ok((
        PyBytes::new(py, &bytes).unbind(),
        stats_json(&report.stats).to_string(),
        report.error.map(|e| e.to_string()),
        report.failures,
        report.elapsed.as_secs_f64(),
    ))
}

/// The schema of flow records, as an (empty) Arrow IPC stream.
#[pyfunction]
fn empty_records(py: Python<'_>) -> PyResult<Py<PyBytes>> {
    let batch = RecordBatchBuilder::new()
        .finish()
        .map_err(|e| Error::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &ipc_stream(&batch)?).unbind())
}

/// Trains a model from label specs; returns the model file's text.
#[pyfunction]
#[pyo3(signature = (labels, notes=String::new()))]
fn train(py: Python<'_>, labels: Vec<String>, notes: String) -> PyResult<String> {
    let specs = skype_dpi::labels::DatasetSpecs::new(&labels);
    let command = format!(
        "python: skype_dpi.train({:?}, notes={:?})",
        specs.recorded(),
        notes
    );
    let model = py
        .detach(|| {
            skype_dpi::train::train(
                specs.expanded(),
                MethodConfig::default(),
                &command,
                &notes,
                |s| specs.name(s),
            )
        })
        .map_err(|e| TrainError::new_err(e.to_string()))?;
    Ok(model.to_json())
}

/// Evaluates a model on label specs; returns the evaluation as JSON and
/// as the text `evaluate` prints.
#[pyfunction]
#[pyo3(signature = (labels, model=None))]
fn evaluate(
    py: Python<'_>,
    labels: Vec<String>,
    model: Option<PathBuf>,
) -> PyResult<(String, String)> {
    let model = load_model(model.as_deref())?;
    let specs = skype_dpi::labels::DatasetSpecs::new(&labels);
    let eval = py
        .detach(|| skype_dpi::evaluate::evaluate(&model, specs.expanded()))
        .map_err(|e| TrainError::new_err(e.to_string()))?;
    let text = eval.text();
    let value = serde_json::to_string(&eval).map_err(|e| Error::new_err(e.to_string()))?;
    Ok((value, text))
}

/// Seconds since the epoch as a timestamp (microseconds).
fn timestamp(secs: f64, what: &str) -> PyResult<Timestamp> {
    if !secs.is_finite() {
        return Err(PyValueError::new_err(format!(
            "{what} must be a finite number of seconds"
        )));
    }
    Ok(Timestamp((secs * 1e6).round() as i64))
}

/// The streaming classifier: frames in, events out.
#[pyclass(module = "skype_dpi._native", name = "Classifier")]
struct Classifier {
    inner: CoreClassifier,
    name: String,
}

#[pymethods]
impl Classifier {
    #[new]
    #[pyo3(signature = (model=None, max_flows=None, tunnels=None, name=String::from("stream")))]
    fn new(
        model: Option<PathBuf>,
        max_flows: Option<usize>,
        tunnels: Option<String>,
        name: String,
    ) -> PyResult<Self> {
        let model = load_model(model.as_deref())?;
        let table = table_config(max_flows, tunnels.as_deref())?;
        let mut inner = CoreClassifier::with_table(model, table);
        inner.keep_evidence_for_records(true);
        Ok(Classifier { inner, name })
    }

    /// Pushes one frame; returns the reason it was skipped, or None.
    #[pyo3(signature = (frame, ts, linktype=1, orig_len=None))]
    fn push(
        &mut self,
        frame: &[u8],
        ts: f64,
        linktype: u32,
        orig_len: Option<u32>,
    ) -> PyResult<Option<&'static str>> {
        if !ts.is_finite() {
            return Err(PyValueError::new_err(
                "ts must be a finite number of seconds",
            ));
        }
        let micros = (ts * 1e6).round();
        let raw = RawPacket {
            ts: Timestamp(micros as i64),
            link_type: linktype,
            data: frame,
            orig_len: orig_len.unwrap_or(u32::try_from(frame.len()).unwrap_or(u32::MAX)),
        };
        Ok(self.inner.push(&raw).err().map(|r| r.as_str()))
    }

    /// Ends the flows idle at `now` (seconds).
    fn expire(&mut self, now: f64) -> PyResult<()> {
        self.inner.expire(timestamp(now, "now")?);
        Ok(())
    }

    /// Ends every open flow (their records come as events).
    fn finish(&mut self) {
        self.inner.finish_all();
    }

    /// Flows held open.
    fn open_flows(&self) -> usize {
        self.inner.open_flows()
    }

    /// The run's counters, as JSON.
    fn stats(&self) -> String {
        stats_json(&self.inner.stats()).to_string()
    }

    /// Takes the events reached so far, each as JSON text.
    fn events(&mut self) -> Vec<String> {
        let name = self.name.as_str();
        let mut out = Vec::new();
        for e in self.inner.drain_events() {
            let v = match e {
                Event::Verdict {
                    key,
                    tunnel,
                    verdict,
                    ..
                } => {
                    let mut v = json!({"event": "verdict"});
                    if let (Value::Object(m), Ok(Value::Object(fields))) = (
                        &mut v,
                        serde_json::to_value(VerdictJson::new(&key, tunnel.as_ref(), &verdict)),
                    ) {
                        m.extend(fields);
                    }
                    v
                }
                Event::FlowEnded(r) => {
                    json!({"event": "flow_ended", "record": RecordJson::new(name, &r)})
                }
                Event::Revised(r) => {
                    json!({"event": "revised", "record": RecordJson::new(name, &r)})
                }
                Event::EndpointRecognised(ep) => {
                    json!({"event": "endpoint", "ip": ep.ip.to_string(), "port": ep.port})
                }
                _ => continue,
            };
            out.push(v.to_string());
        }
        out
    }
}

/// The native module.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("ModelError", m.py().get_type::<ModelError>())?;
    m.add("CaptureError", m.py().get_type::<CaptureError>())?;
    m.add("TrainError", m.py().get_type::<TrainError>())?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(empty_records, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add_class::<Classifier>()?;
    Ok(())
}
