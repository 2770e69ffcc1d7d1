//! Writing flow records: JSON lines, CSV and Parquet, records per second.
//!
//! The records are those of the sample capture and of the generator's
//! sample settings (a mix of Skype and other flows, IPv4 and IPv6, evidence
//! in every field), written again and again to a sink, so that only the
//! formatting is timed. `cargo bench --bench record_output`.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use skype_dpi::analyze::analyze_file;
use skype_dpi::classifier::FlowRecord;
use skype_dpi::columnar::ParquetRecordWriter;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;
use skype_dpi::output::{Format, RecordWriter};

fn records() -> Vec<FlowRecord> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/sample.pcap");
    let model = Model::default_model().expect("the default model loads");
    analyze_file(&path, None, &model, FlowTableConfig::default())
        .expect("the sample opens")
        .records
}

fn output(c: &mut Criterion) {
    let records = records();
    let mut g = c.benchmark_group("record_output");
    g.throughput(Throughput::Elements(records.len() as u64));
    for (name, format) in [("jsonl", Format::Jsonl), ("csv", Format::Csv)] {
        g.bench_function(name, |b| {
            let mut w = RecordWriter::new(std::io::sink(), format);
            b.iter(|| {
                for r in &records {
                    w.write(black_box("datasets/sample.pcap"), r).unwrap();
                }
            })
        });
    }
    g.bench_function("parquet", |b| {
        b.iter(|| {
            let mut w = ParquetRecordWriter::new(std::io::sink()).unwrap();
            for r in &records {
                w.write(black_box("datasets/sample.pcap"), r).unwrap();
            }
            w.finish().unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, output);
criterion_main!(benches);
