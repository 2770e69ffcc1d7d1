//! Records as Arrow columns and Parquet: the JSON lines' fields in their
//! order, the same values, and a Parquet file that reads back equal.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt64Type};
use arrow_array::Array;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use skype_dpi::analyze::analyze_file;
use skype_dpi::columnar::{schema, ParquetRecordWriter, RecordBatchBuilder};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;
use skype_dpi::output::RecordJson;

fn sample() -> skype_dpi::analyze::CaptureReport {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let model = Model::default_model().expect("the default model loads");
    analyze_file(&path, None, &model, FlowTableConfig::default()).expect("the sample opens")
}

#[test]
fn columns_are_the_json_fields_in_their_order() {
    let report = sample();
    let json = serde_json::to_string(&RecordJson::new("c", &report.records[0])).unwrap();
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let object = value.as_object().unwrap();
    let s = schema();
    assert_eq!(s.fields().len(), object.len());
    let mut last = 0;
    for f in s.fields() {
        assert!(
            object.contains_key(f.name()),
            "{} is not a JSON field",
            f.name()
        );
        // Top-level keys come before the nested objects that reuse names.
        let at = json
            .find(&format!("\"{}\":", f.name()))
            .unwrap_or_else(|| panic!("{} not in {json}", f.name()));
        assert!(at >= last, "{} out of order", f.name());
        last = at;
    }
}

#[test]
fn a_batch_holds_the_json_values() {
    let report = sample();
    let mut b = RecordBatchBuilder::new();
    for r in &report.records {
        b.push(&report.capture, r);
    }
    let batch = b.finish().unwrap();
    assert!(b.is_empty());
    assert_eq!(batch.num_rows(), report.records.len());
    let packets = batch
        .column_by_name("packets")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let confidence = batch
        .column_by_name("confidence")
        .unwrap()
        .as_primitive::<Float64Type>();
    let kind = batch.column_by_name("kind").unwrap().as_string::<i32>();
    let fwd = batch.column_by_name("fwd").unwrap().as_struct();
    let chi2 = fwd.column_by_name("chi2").unwrap().as_fixed_size_list();
    for (i, r) in report.records.iter().enumerate() {
        let j = RecordJson::new(&report.capture, r);
        assert_eq!(packets.value(i), j.packets);
        assert_eq!(confidence.value(i), j.confidence);
        assert_eq!(kind.is_null(i), j.kind.is_none());
        if let Some(k) = j.kind {
            assert_eq!(kind.value(i), k);
        }
        let c = chi2.value(i);
        let c = c.as_primitive::<arrow_array::types::Float32Type>();
        assert_eq!(c.values().to_vec(), j.fwd.chi2.to_vec());
    }
}

#[test]
fn parquet_reads_back_equal() {
    let report = sample();
    let dir = std::env::temp_dir().join(format!("skype-dpi-columnar-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("flows.parquet");
    let mut w = ParquetRecordWriter::create(&path).unwrap();
    let mut b = RecordBatchBuilder::new();
    for r in &report.records {
        w.write(&report.capture, r).unwrap();
        b.push(&report.capture, r);
    }
    w.finish().unwrap();
    let want = b.finish().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0], want);
    std::fs::remove_dir_all(&dir).unwrap();
    let err = ParquetRecordWriter::create(Path::new("/nonexistent-dir/x.parquet"))
        .err()
        .unwrap();
    assert!(
        err.to_string().contains("/nonexistent-dir/x.parquet"),
        "{err}"
    );
}
