//! Evaluates a model on labelled captures.
//!
//! cargo run --release --example evaluate -- [--model FILE] [--report DIR]
//!     [--max-fp N] [--min-recall SET=FRACTION]... LABEL_SPEC...
//!
//! LABEL_SPEC as for `train`: CAPTURE@RESULT.out, CAPTURE@FLOWS.csv,
//! CAPTURE=LABEL, ndpi:DIR, ndpi-classic:DIR ($SKYPE_DPI_DATASETS expands).
//! Prints per set flows and bytes, true and false positives, recall,
//! precision and false-positive rates per flow and per byte, undecided
//! flows and the median time to a verdict, then every false positive and
//! miss. `--max-fp` and `--min-recall` make the exit code fail (for CI).

use std::path::PathBuf;
use std::process::ExitCode;

use skype_dpi::evaluate::evaluate;
use skype_dpi::labels::DatasetSpecs;
use skype_dpi::model::Model;

const USAGE: &str = "usage: evaluate [--model FILE] [--report DIR] [--max-fp N] [--min-recall SET=FRACTION]... LABEL_SPEC...";

fn main() -> ExitCode {
    let mut model_path = None;
    let mut report = None;
    let mut max_fp: Option<u64> = None;
    let mut min_recall: Vec<(String, f64)> = Vec::new();
    let mut specs = Vec::new();
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => model_path = it.next().map(PathBuf::from),
            "--report" => report = it.next().map(PathBuf::from),
            "--max-fp" => max_fp = it.next().and_then(|s| s.parse().ok()),
            "--min-recall" => match it.next().and_then(|s| {
                let (k, v) = s.rsplit_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            }) {
                Some(x) => min_recall.push(x),
                None => {
                    eprintln!("evaluate: --min-recall needs SET=FRACTION\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with("--") => {
                eprintln!("evaluate: unknown flag {s}\n{USAGE}");
                return ExitCode::from(2);
            }
            s => specs.push(s.to_string()),
        }
    }
    if specs.is_empty() {
        eprintln!("evaluate: give at least one LABEL_SPEC\n{USAGE}");
        return ExitCode::from(2);
    }
    let given = specs;
    let specs = DatasetSpecs::new(&given);
    let model = match model_path {
        Some(p) => Model::load(&p),
        None => Model::default_model(),
    };
    let model = match model {
        Ok(m) => m,
        Err(e) => {
            eprintln!("evaluate: {e}");
            return ExitCode::from(2);
        }
    };
    let mut ev = match evaluate(&model, specs.expanded()) {
        Ok(ev) => ev,
        Err(e) => {
            eprintln!("evaluate: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Sets are named as given (`$SKYPE_DPI_DATASETS/...`), so that the
    // report carries no path of this machine.
    ev.rename_sets(|s| {
        specs
            .expanded()
            .iter()
            .position(|x| x == s)
            .map_or(s.to_string(), |i| given[i].clone())
    });
    print!("{}", specs.name(&ev.text()));
    if let Some(dir) = report {
        if let Err(e) = ev.write_report(&dir) {
            eprintln!("evaluate: cannot write the report: {e}");
            return ExitCode::FAILURE;
        }
        eprintln!("evaluate: report written to {}", dir.display());
    }
    let mut failed = false;
    let fps = ev.false_positives.len() as u64;
    if let Some(max) = max_fp {
        if fps > max {
            eprintln!("evaluate: FAIL: {fps} false positives, at most {max} allowed");
            failed = true;
        }
    }
    for (set, want) in &min_recall {
        let set_full = specs.expand(set);
        let named = |m: &&skype_dpi::evaluate::SetMetrics| {
            m.set == *set || specs.expand(&m.set) == set_full
        };
        match ev.sets.iter().find(named) {
            Some(m) => {
                let got = m.recall.unwrap_or(0.0);
                if got < *want {
                    eprintln!("evaluate: FAIL: recall {got:.4} on {set} is below {want}");
                    failed = true;
                }
            }
            None => {
                eprintln!("evaluate: FAIL: --min-recall names {set}, which is not among the specs");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
