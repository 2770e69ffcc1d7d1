//! Trains a model from labelled captures.
//!
//! cargo run --release --example train -- --labels SPEC... --out models/NAME.json [--notes TEXT]
//!
//! SPEC is CAPTURE@RESULT.out (nDPI), CAPTURE@FLOWS.csv, CAPTURE=LABEL,
//! ndpi:DIR or ndpi-classic:DIR. Paths under the datasets root
//! ($SKYPE_DPI_DATASETS, default ../shared/datasets) are recorded relative to
//! it, as $SKYPE_DPI_DATASETS/..., so that the model can be retrained
//! anywhere the datasets are.

use std::path::PathBuf;
use std::process::ExitCode;

use skype_dpi::config::MethodConfig;
use skype_dpi::labels::DatasetSpecs;
use skype_dpi::train::train;

const USAGE: &str = "usage: train --labels SPEC... --out FILE [--notes TEXT]
  SPEC: CAPTURE@RESULT.out | CAPTURE@FLOWS.csv | CAPTURE=LABEL | ndpi:DIR | ndpi-classic:DIR
  paths may start with $SKYPE_DPI_DATASETS";

fn main() -> ExitCode {
    let mut specs = Vec::new();
    let mut out: Option<PathBuf> = None;
    let mut notes = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--labels" => match args.next() {
                Some(s) => specs.push(s),
                None => return usage("--labels needs a spec"),
            },
            "--out" => out = args.next().map(PathBuf::from),
            "--notes" => notes = args.next().unwrap_or_default(),
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if !s.starts_with("--") && !specs.is_empty() => specs.push(s.to_string()),
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    let Some(out) = out else {
        return usage("--out is required");
    };
    if specs.is_empty() {
        return usage("give at least one --labels SPEC");
    }
    let specs = DatasetSpecs::new(&specs);
    let recorded = specs.recorded();
    // Single-quoted for a POSIX shell: a quote inside becomes '\''.
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let command = format!(
        "cargo run --release --example train -- {} --out {}{}",
        recorded
            .iter()
            .map(|s| format!("--labels {}", quote(s)))
            .collect::<Vec<_>>()
            .join(" "),
        out.display(),
        if notes.is_empty() {
            String::new()
        } else {
            format!(" --notes {}", quote(&notes))
        }
    );
    let model = match train(
        specs.expanded(),
        MethodConfig::default(),
        &command,
        &notes,
        |s| specs.name(s),
    ) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("train: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = std::fs::write(&out, model.to_json()) {
        eprintln!("train: cannot write {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    eprintln!(
        "train: wrote {} ({} media windows from {} flows, {} other windows from {} flows)",
        out.display(),
        model.provenance.windows_media,
        model.provenance.flows_media,
        model.provenance.windows_other,
        model.provenance.flows_other
    );
    ExitCode::SUCCESS
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("train: {msg}\n{USAGE}");
    ExitCode::from(2)
}
