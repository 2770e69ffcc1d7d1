//! Flow records as Arrow columns and Parquet files.
//!
//! One row per flow, with the columns of the JSON-lines records, in their
//! order and with their values (the same rounding): the public field set of
//! [`crate::output::RecordJson`]. The evidence of each direction (`fwd`,
//! `bwd`) is a struct column whose fields are those of the JSON object, and
//! `chi2` a fixed-size list of 16 `float32`. Absent JSON values (`null`) are
//! nulls. Integers keep their width and sign (`src_port` is `uint16`,
//! `packets` `uint64`). The Python bindings return these tables, and
//! `classify --format parquet` writes them.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::builder::StringBuilder;
use arrow_array::{
    ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Float64Array, RecordBatch,
    StringArray, StructArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use crate::classifier::FlowRecord;
use crate::output::{DirectionJson, RecordJson};

/// Rows per record batch (and per Parquet row group) when writing.
pub const ROWS_PER_BATCH: usize = 65_536;

/// The fields of one direction's evidence, in the JSON object's order.
fn direction_fields() -> Fields {
    let chi2_item = Arc::new(Field::new("item", DataType::Float32, false));
    Fields::from(vec![
        Field::new("packets", DataType::UInt32, false),
        Field::new("payload_bytes", DataType::UInt64, false),
        Field::new("csc_class", DataType::Utf8, false),
        Field::new("chi2", DataType::FixedSizeList(chi2_item, 16), false),
        Field::new("window_sampled", DataType::UInt32, false),
        Field::new("sampled", DataType::UInt32, false),
        Field::new("csc_first_at_packet", DataType::UInt64, true),
        Field::new("dft_class", DataType::Utf8, false),
        Field::new("nbc_windows", DataType::UInt16, false),
        Field::new("nbc_passed", DataType::UInt16, false),
        Field::new("nbc_mean_log_odds", DataType::Float64, false),
        Field::new("video", DataType::Boolean, false),
        Field::new("state", DataType::Utf8, true),
        Field::new("contradiction", DataType::Utf8, true),
        Field::new("structured_groups", DataType::UInt16, false),
        Field::new("nbc_decision", DataType::Utf8, false),
        Field::new("nbc_log_odds_sum", DataType::Float64, false),
    ])
}

/// The schema of flow records: the JSON-lines fields, in their order.
pub fn schema() -> SchemaRef {
    let s = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Arc::new(Schema::new(vec![
        s("capture", false),
        s("transport", false),
        s("src_ip", false),
        Field::new("src_port", DataType::UInt16, false),
        s("dst_ip", false),
        Field::new("dst_port", DataType::UInt16, false),
        Field::new("first_seen", DataType::Float64, false),
        Field::new("last_seen", DataType::Float64, false),
        Field::new("packets", DataType::UInt64, false),
        Field::new("payload_bytes", DataType::UInt64, false),
        s("end", false),
        s("verdict", false),
        s("kind", true),
        Field::new("confidence", DataType::Float64, false),
        Field::new("decided_at_packet", DataType::UInt64, true),
        s("community_id", false),
        s("via", true),
        Field::new("decided_after_seconds", DataType::Float64, true),
        s("revised_from", true),
        s("contradiction", true),
        Field::new("first_payload_random", DataType::Boolean, true),
        s("rhythm_decision", false),
        Field::new("rhythm_windows", DataType::UInt16, false),
        Field::new("rhythm_log_odds_sum", DataType::Float64, false),
        s("tunnel", true),
        Field::new("tunnel_id", DataType::UInt32, true),
        s("outer_src_ip", true),
        s("outer_dst_ip", true),
        Field::new("tunnel_depth", DataType::UInt8, true),
        Field::new("fwd", DataType::Struct(direction_fields()), false),
        Field::new("bwd", DataType::Struct(direction_fields()), false),
    ]))
}

/// Flow records gathered into columns: push records, take a batch.
#[derive(Default)]
pub struct RecordBatchBuilder {
    captures: Vec<String>,
    rows: Vec<RecordJson<'static>>,
}

impl RecordBatchBuilder {
    /// An empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one flow record of a capture.
    pub fn push(&mut self, capture: &str, record: &FlowRecord) {
        match self.captures.last() {
            Some(c) if c == capture => self.captures.push(c.clone()),
            _ => self.captures.push(capture.to_string()),
        }
        self.rows.push(RecordJson::new("", record));
    }

    /// Rows gathered so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether no row was gathered.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The rows gathered as one record batch (of [`schema`]); the builder
    /// is empty afterwards.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let captures = std::mem::take(&mut self.captures);
        let rows = std::mem::take(&mut self.rows);
        let r = &rows;
        let strings = |f: &dyn for<'b> Fn(&'b RecordJson<'static>) -> &'b str| -> ArrayRef {
            Arc::new(StringArray::from_iter_values(r.iter().map(f)))
        };
        let opt_strings =
            |f: &dyn for<'b> Fn(&'b RecordJson<'static>) -> Option<&'b str>| -> ArrayRef {
                Arc::new(r.iter().map(f).collect::<StringArray>())
            };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(captures.iter())),
            strings(&|j| j.transport),
            ips(r.iter().map(|j| Some(j.src_ip))),
            Arc::new(UInt16Array::from_iter_values(r.iter().map(|j| j.src_port))),
            ips(r.iter().map(|j| Some(j.dst_ip))),
            Arc::new(UInt16Array::from_iter_values(r.iter().map(|j| j.dst_port))),
            Arc::new(Float64Array::from_iter_values(
                r.iter().map(|j| j.first_seen),
            )),
            Arc::new(Float64Array::from_iter_values(
                r.iter().map(|j| j.last_seen),
            )),
            Arc::new(UInt64Array::from_iter_values(r.iter().map(|j| j.packets))),
            Arc::new(UInt64Array::from_iter_values(
                r.iter().map(|j| j.payload_bytes),
            )),
            strings(&|j| j.end),
            strings(&|j| j.verdict),
            opt_strings(&|j| j.kind),
            Arc::new(Float64Array::from_iter_values(
                r.iter().map(|j| j.confidence),
            )),
            Arc::new(
                r.iter()
                    .map(|j| j.decided_at_packet)
                    .collect::<UInt64Array>(),
            ),
            strings(&|j| j.community_id.as_str()),
            opt_strings(&|j| j.via),
            Arc::new(
                r.iter()
                    .map(|j| j.decided_after_seconds)
                    .collect::<Float64Array>(),
            ),
            opt_strings(&|j| j.revised_from),
            opt_strings(&|j| j.contradiction),
            Arc::new(
                r.iter()
                    .map(|j| j.first_payload_random)
                    .collect::<BooleanArray>(),
            ),
            strings(&|j| j.rhythm_decision),
            Arc::new(UInt16Array::from_iter_values(
                r.iter().map(|j| j.rhythm_windows),
            )),
            Arc::new(Float64Array::from_iter_values(
                r.iter().map(|j| j.rhythm_log_odds_sum),
            )),
            opt_strings(&|j| j.tunnel),
            Arc::new(r.iter().map(|j| j.tunnel_id).collect::<UInt32Array>()),
            ips(r.iter().map(|j| j.outer_src_ip)),
            ips(r.iter().map(|j| j.outer_dst_ip)),
            Arc::new(r.iter().map(|j| j.tunnel_depth).collect::<UInt8Array>()),
            direction_column(r.iter().map(|j| &j.fwd))?,
            direction_column(r.iter().map(|j| &j.bwd))?,
        ];
        RecordBatch::try_new(schema(), columns)
    }
}

/// Addresses as text (null for `None`).
fn ips(values: impl Iterator<Item = Option<std::net::IpAddr>>) -> ArrayRef {
    let mut b = StringBuilder::new();
    for v in values {
        match v {
            Some(ip) => {
                // Writing into the builder's value buffer cannot fail.
                let _ = write!(b, "{ip}");
                b.append_value("");
            }
            None => b.append_null(),
        }
    }
    Arc::new(b.finish())
}

/// One direction's evidence over the rows, as a struct column.
fn direction_column<'a>(
    dirs: impl Iterator<Item = &'a DirectionJson> + Clone,
) -> Result<ArrayRef, ArrowError> {
    let d = dirs;
    let strings = |f: &dyn Fn(&DirectionJson) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(d.clone().map(f)))
    };
    let opt_strings = |f: &dyn Fn(&DirectionJson) -> Option<&str>| -> ArrayRef {
        Arc::new(d.clone().map(f).collect::<StringArray>())
    };
    let chi2_values = Float32Array::from_iter_values(d.clone().flat_map(|x| x.chi2));
    let chi2_item = Arc::new(Field::new("item", DataType::Float32, false));
    let chi2 = FixedSizeListArray::try_new(chi2_item, 16, Arc::new(chi2_values), None)?;
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(d.clone().map(|x| x.packets))),
        Arc::new(UInt64Array::from_iter_values(
            d.clone().map(|x| x.payload_bytes),
        )),
        strings(&|x| x.csc_class),
        Arc::new(chi2),
        Arc::new(UInt32Array::from_iter_values(
            d.clone().map(|x| x.window_sampled),
        )),
        Arc::new(UInt32Array::from_iter_values(d.clone().map(|x| x.sampled))),
        Arc::new(
            d.clone()
                .map(|x| x.csc_first_at_packet)
                .collect::<UInt64Array>(),
        ),
        strings(&|x| x.dft_class),
        Arc::new(UInt16Array::from_iter_values(
            d.clone().map(|x| x.nbc_windows),
        )),
        Arc::new(UInt16Array::from_iter_values(
            d.clone().map(|x| x.nbc_passed),
        )),
        Arc::new(Float64Array::from_iter_values(
            d.clone().map(|x| x.nbc_mean_log_odds),
        )),
        Arc::new(d.clone().map(|x| Some(x.video)).collect::<BooleanArray>()),
        opt_strings(&|x| x.state),
        opt_strings(&|x| x.contradiction),
        Arc::new(UInt16Array::from_iter_values(
            d.clone().map(|x| x.structured_groups),
        )),
        strings(&|x| x.nbc_decision),
        Arc::new(Float64Array::from_iter_values(
            d.clone().map(|x| x.nbc_log_odds_sum),
        )),
    ];
    Ok(Arc::new(StructArray::try_new(
        direction_fields(),
        columns,
        None,
    )?))
}

/// Why Parquet output failed.
#[derive(Debug, thiserror::Error)]
pub enum ParquetError {
    /// The output file could not be created.
    #[error("cannot create {path}: {source}")]
    Create {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing failed (disk full, closed pipe, ...).
    #[error("cannot write Parquet: {0}")]
    Write(String),
}

impl From<parquet::errors::ParquetError> for ParquetError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        ParquetError::Write(e.to_string())
    }
}

impl From<ArrowError> for ParquetError {
    fn from(e: ArrowError) -> Self {
        ParquetError::Write(e.to_string())
    }
}

/// Writes flow records to a Parquet file (Snappy-compressed), a row group
/// per [`ROWS_PER_BATCH`] records.
pub struct ParquetRecordWriter<W: Write + Send> {
    writer: ArrowWriter<W>,
    pending: RecordBatchBuilder,
}

impl ParquetRecordWriter<File> {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<Self, ParquetError> {
        let file = File::create(path).map_err(|source| ParquetError::Create {
            path: path.display().to_string(),
            source,
        })?;
        Self::new(file)
    }
}

impl<W: Write + Send> ParquetRecordWriter<W> {
    /// A writer to `out`.
    pub fn new(out: W) -> Result<Self, ParquetError> {
        let props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_max_row_group_row_count(Some(ROWS_PER_BATCH))
            .build();
        Ok(ParquetRecordWriter {
            writer: ArrowWriter::try_new(out, schema(), Some(props))?,
            pending: RecordBatchBuilder::new(),
        })
    }

    /// Writes one record (buffered until a batch is full).
    pub fn write(&mut self, capture: &str, record: &FlowRecord) -> Result<(), ParquetError> {
        self.pending.push(capture, record);
        if self.pending.len() >= ROWS_PER_BATCH {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<(), ParquetError> {
        if !self.pending.is_empty() {
            let batch = self.pending.finish()?;
            self.writer.write(&batch)?;
        }
        Ok(())
    }

    /// Writes what is buffered and the file's footer; returns the output.
    pub fn finish(mut self) -> Result<W, ParquetError> {
        self.flush_batch()?;
        Ok(self.writer.into_inner()?)
    }
}
