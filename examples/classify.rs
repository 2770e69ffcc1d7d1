//! Classifies the flows of captures (files or a live interface).
//!
//! cargo run --release --example classify -- [--format jsonl|csv|table|parquet]
//!     [--out FILE] [--filter BPF] [--interface IFACE] [--model FILE] [--max-flows N] CAPTURE...
//!
//! Records go to stdout, or to `--out FILE` (Parquet needs a file: one row
//! per flow, the columns of the JSON lines, `skype_dpi::columnar`); a summary (captures, packets, flows, skipped
//! packets by reason, time) goes to stderr, with a progress bar while a
//! file is read when stderr is a terminal. A live capture prints each
//! verdict to stderr as it is reached and each flow's record when it ends;
//! SIGINT (or `--duration`) ends it, every open flow is reported and the
//! exit code is 0. The exit code is 1 when a capture could not be read to
//! its end (its flows so far are printed).

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use skype_dpi::analyze::{
    analyze_capture_parallel, analyze_capture_streaming_reading, analyze_live, Reading,
};
use skype_dpi::capture::{Capture, CaptureError};
use skype_dpi::classifier::{Event, FlowRecord, MemoryUse, RunStats};
use skype_dpi::config::{FlowTableConfig, TunnelConfig};
use skype_dpi::model::Model;
use skype_dpi::output::{Format, RecordWriter, OUTPUT_BUFFER};
use skype_dpi::packet::SkipReason;
use skype_dpi::tunnel::TunnelKind;
use skype_dpi::verdict::Label;
use skype_dpi::yardstick;

const USAGE: &str = "usage: classify [--format jsonl|csv|table|parquet] [--out FILE] [--filter BPF] [--interface IFACE] [--model FILE] [--max-flows N] [--revision-window N] [--threads N] [--reader-thread] [--tunnels LIST] [--duration S] [--read-buffer BYTES] [--read-only | --flows-only] CAPTURE...
  --tunnels LIST: the tunnels to open, to classify the flows inside (all, none, or some of gtp_u,gre,vxlan,geneve,ip_in_ip,capwap; default all)
  --out FILE: write the records to FILE instead of stdout (needed by --format parquet)
  --duration S: stop a live capture after S seconds and report every flow
  --max-flows N: hold at most N flows at once (all workers together), evicting the longest idle
  --revision-window N: hold the records of at most N ended flows (default: --max-flows), so that an endpoint recognised later can still revise them; records are written as they leave it, and memory stays bounded however long the capture (one thread; --threads N holds every record to the end)
  --threads N: shard flows over N worker threads (same verdicts as one)
  --reader-thread: read and decode capture files on a thread of their own, ahead of the one classifier (two threads: the same records as one, byte for byte, in the same bounded memory; not with --threads N)
  --read-buffer BYTES: read capture files BYTES at a time (default 1048576; 0: libpcap's own, the file system's block size)
  --read-only: only read the frames through libpcap (the speed floor no classifier can beat)
  --flows-only: only read the frames, decode them and follow their flows in the classifier's flow table, classifying nothing (the floor of any flow classifier on one thread)";

/// Text formats go to stdout or a file; Parquet to a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutputFormat {
    Text(Format),
    Parquet,
}

/// Where the records go.
enum Sink {
    Text(RecordWriter<Box<dyn Write>>),
    #[cfg(feature = "parquet")]
    Parquet(Box<skype_dpi::columnar::ParquetRecordWriter<std::fs::File>>),
}

/// The records' way to stdout. A terminal gets them line by line, as
/// they come (std's `Stdout`). A file or a pipe gets them in blocks of
/// [`OUTPUT_BUFFER`] bytes written straight to the descriptor: `Stdout`
/// would scan each block for its last newline and write it in two calls,
/// and std's default 8 KiB buffer made a system call every five records.
fn stdout_writer() -> Box<dyn Write> {
    use std::os::fd::AsFd;
    let stdout = std::io::stdout();
    if stdout.is_terminal() {
        return Box::new(BufWriter::new(stdout));
    }
    match stdout.as_fd().try_clone_to_owned() {
        Ok(fd) => Box::new(BufWriter::with_capacity(
            OUTPUT_BUFFER,
            std::fs::File::from(fd),
        )),
        Err(_) => Box::new(BufWriter::with_capacity(OUTPUT_BUFFER, stdout)),
    }
}

impl Sink {
    fn open(format: OutputFormat, out: Option<&Path>) -> Result<Sink, String> {
        match format {
            OutputFormat::Text(f) => {
                let w: Box<dyn Write> = match out {
                    Some(p) => Box::new(BufWriter::with_capacity(
                        OUTPUT_BUFFER,
                        std::fs::File::create(p)
                            .map_err(|e| format!("cannot create {}: {e}", p.display()))?,
                    )),
                    None => stdout_writer(),
                };
                Ok(Sink::Text(RecordWriter::new(w, f)))
            }
            #[cfg(feature = "parquet")]
            OutputFormat::Parquet => {
                let p = out.ok_or("--format parquet writes a file: give --out FILE")?;
                skype_dpi::columnar::ParquetRecordWriter::create(p)
                    .map(|w| Sink::Parquet(Box::new(w)))
                    .map_err(|e| e.to_string())
            }
            #[cfg(not(feature = "parquet"))]
            OutputFormat::Parquet => {
                Err("this build has no Parquet output: build with --features parquet".to_string())
            }
        }
    }

    fn write(&mut self, capture: &str, r: &FlowRecord) -> std::io::Result<()> {
        match self {
            Sink::Text(w) => w.write(capture, r),
            #[cfg(feature = "parquet")]
            Sink::Parquet(w) => w.write(capture, r).map_err(std::io::Error::other),
        }
    }

    /// Pushes out what a live capture's reader should see now (Parquet
    /// writes its row groups as they fill).
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Text(w) => w.flush(),
            #[cfg(feature = "parquet")]
            Sink::Parquet(_) => Ok(()),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Text(mut w) => w.flush(),
            #[cfg(feature = "parquet")]
            Sink::Parquet(w) => w.finish().map(drop).map_err(std::io::Error::other),
        }
    }
}

struct Args {
    duration: Option<f64>,
    read_only: bool,
    flows_only: bool,
    threads: usize,
    reader_thread: bool,
    format: OutputFormat,
    out: Option<PathBuf>,
    filter: Option<String>,
    interface: Option<String>,
    model: Option<PathBuf>,
    max_flows: Option<usize>,
    revision_window: Option<usize>,
    read_buffer: usize,
    tunnels: TunnelConfig,
    captures: Vec<PathBuf>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        duration: None,
        read_only: false,
        flows_only: false,
        threads: 1,
        reader_thread: false,
        format: OutputFormat::Text(Format::Table),
        out: None,
        filter: None,
        interface: None,
        model: None,
        max_flows: None,
        revision_window: None,
        read_buffer: skype_dpi::capture::FILE_READ_BUFFER,
        tunnels: TunnelConfig::default(),
        captures: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match s.as_str() {
            "--format" => {
                a.format =
                    match value("--format")?.as_str() {
                        "parquet" => OutputFormat::Parquet,
                        other => OutputFormat::Text(other.parse().map_err(|e: String| {
                            e.replace("csv or table", "csv, table or parquet")
                        })?),
                    }
            }
            "--out" | "-o" => a.out = Some(PathBuf::from(value("--out")?)),
            "--filter" => a.filter = Some(value("--filter")?),
            "--interface" | "-i" => a.interface = Some(value("--interface")?),
            "--model" => a.model = Some(PathBuf::from(value("--model")?)),
            "--read-only" => a.read_only = true,
            "--flows-only" => a.flows_only = true,
            "--reader-thread" => a.reader_thread = true,
            "--duration" => {
                a.duration = Some(
                    value("--duration")?
                        .parse::<f64>()
                        .map_err(|_| "--duration needs seconds")?,
                )
            }
            "--threads" => {
                a.threads = value("--threads")?
                    .parse::<usize>()
                    .map_err(|_| "--threads needs a number")?
                    .max(1)
            }
            "--tunnels" => a.tunnels = value("--tunnels")?.parse()?,
            "--max-flows" => {
                a.max_flows = Some(
                    value("--max-flows")?
                        .parse()
                        .map_err(|_| "--max-flows needs a number")?,
                )
            }
            "--revision-window" => {
                a.revision_window = Some(
                    value("--revision-window")?
                        .parse()
                        .map_err(|_| "--revision-window needs a number of records")?,
                )
            }
            "--read-buffer" => {
                a.read_buffer = value("--read-buffer")?
                    .parse()
                    .map_err(|_| "--read-buffer needs a number of bytes")?
            }
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with("--") => return Err(format!("unknown flag {f}")),
            c => a.captures.push(PathBuf::from(c)),
        }
    }
    if a.captures.is_empty() && a.interface.is_none() {
        return Err("give a CAPTURE file or --interface IFACE".to_string());
    }
    if a.format == OutputFormat::Parquet && a.out.is_none() {
        return Err("--format parquet writes a file: give --out FILE".to_string());
    }
    if a.reader_thread && a.threads > 1 {
        return Err("--reader-thread reads ahead of one classifier: leave out --threads N (whose reading thread already reads ahead of its workers)".to_string());
    }
    if a.reader_thread && (a.interface.is_some() || a.read_only) {
        return Err("--reader-thread reads capture files for the classifier: a live capture (--interface) is classified as its frames arrive, and --read-only classifies nothing".to_string());
    }
    if a.flows_only && (a.read_only || a.interface.is_some() || a.threads > 1 || a.reader_thread) {
        return Err("--flows-only measures one thread following the flows of capture files: leave out --read-only, --interface, --threads N and --reader-thread".to_string());
    }
    Ok(a)
}

fn summary(captures: usize, stats: &RunStats, flows_reported: u64, skype: u64, secs: f64) {
    eprintln!("summary: {captures} capture(s), {} frames, {} TCP/UDP packets, {} flows ({} skype), {:.3} s ({:.0} frames/s)",
        stats.frames, stats.packets, flows_reported, skype, secs, stats.frames as f64 / secs.max(1e-9));
    let skipped: Vec<String> = SkipReason::ALL
        .iter()
        .filter(|r| stats.skipped.get(**r) > 0)
        .map(|r| format!("{}={}", r.as_str(), stats.skipped.get(*r)))
        .collect();
    eprintln!(
        "skipped: {} frames{}{}",
        stats.skipped.total(),
        if skipped.is_empty() { "" } else { ": " },
        skipped.join(" ")
    );
    let t = &stats.tunneled;
    if t.total_packets() > 0 {
        let kinds: Vec<String> = TunnelKind::ALL
            .iter()
            .filter(|k| t.packets(**k) > 0)
            .map(|k| {
                format!(
                    "{}={} packets/{} bytes",
                    k.as_str(),
                    t.packets(*k),
                    t.payload_bytes(*k)
                )
            })
            .collect();
        eprintln!(
            "tunneled: {} packets classified inside tunnels: {}",
            t.total_packets(),
            kinds.join(" ")
        );
    }
}

/// Set by SIGINT (and SIGTERM): a live capture stops and reports every
/// open flow.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Stops live capture on SIGINT and SIGTERM instead of dying.
fn catch_signals() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; sigaction's struct is zeroed and then filled.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A progress bar on stderr when it is a terminal, for a capture file.
fn progress_bar(cap: &mut Capture, path: &std::path::Path) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(path.display().to_string());
    let b = bar.clone();
    cap.report_progress(move |_, bytes| {
        if let Some(n) = bytes {
            b.set_position(n);
        }
    });
    Some(bar)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("classify: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let model = match &args.model {
        Some(p) => Model::load(p),
        None => Model::default_model(),
    };
    let model = match model {
        Ok(m) => m,
        Err(e) => {
            eprintln!("classify: {e}");
            return ExitCode::from(2);
        }
    };
    let mut table = FlowTableConfig::default();
    table.tunnels = args.tunnels.clone();
    if let Some(n) = args.max_flows {
        table.max_flows = n.max(1);
    }
    if args.read_only {
        return read_only(&args);
    }
    if args.flows_only {
        return flows_only(&args, table);
    }
    let mut out = match Sink::open(args.format, args.out.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("classify: {e}");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    let mut total = RunStats::default();
    // The capture whose analysis held the most, for the memory line.
    let mut largest: Option<Busiest> = None;
    let (mut flows, mut skype) = (0u64, 0u64);
    let mut failed = false;
    let mut write = |out: &mut Sink, capture: &str, r: &FlowRecord| {
        flows += 1;
        skype += u64::from(r.verdict.label == Label::Skype);
        out.write(capture, r)
    };

    if let Some(iface) = &args.interface {
        let mut cap = match Capture::open_live(iface, args.filter.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("classify: {e}");
                return ExitCode::FAILURE;
            }
        };
        if let Some(s) = args.duration {
            cap.stop_at(Instant::now() + std::time::Duration::from_secs_f64(s.max(0.0)));
        }
        catch_signals();
        cap.stop_on(&STOP);
        let (stats, error) = analyze_live(cap, &model, table.clone(), |e| match e {
            Event::FlowEnded(r) | Event::Revised(r) => {
                write(&mut out, iface, r).and_then(|_| out.flush()).is_ok()
            }
            Event::Verdict { key, verdict, .. } => {
                eprintln!(
                    "verdict: {key} {} {}",
                    verdict.label.as_str(),
                    verdict.kind.map_or("-", |k| k.as_str())
                );
                true
            }
            Event::EndpointRecognised(ep) => {
                eprintln!("endpoint: {ep} is a Skype client");
                true
            }
            _ => true,
        });
        if let Some(e) = error {
            eprintln!("classify: {e}");
            failed = true;
        }
        total = stats;
    }

    for path in &args.captures {
        let mut cap =
            match Capture::open_file_reading(path, args.filter.as_deref(), args.read_buffer) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("classify: {e}");
                    failed = true;
                    continue;
                }
            };
        let bar = progress_bar(&mut cap, path);
        let name = cap.name().to_string();
        if args.threads <= 1 {
            // Records are written as they leave the revision window: memory
            // is bounded by the flow table and the window.
            let window = args.revision_window.unwrap_or(table.max_flows);
            let mut write_error = None;
            let reading = if args.reader_thread {
                Reading::OwnThread
            } else {
                Reading::SameThread
            };
            let report = analyze_capture_streaming_reading(
                cap,
                &model,
                table.clone(),
                window,
                reading,
                &mut |r| match write(&mut out, &name, r) {
                    Ok(()) => true,
                    Err(e) => {
                        write_error = Some(e);
                        false
                    }
                },
            );
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if let Some(e) = write_error {
                eprintln!("classify: cannot write output: {e}");
                return ExitCode::FAILURE;
            }
            total.merge(&report.stats);
            let bytes = report.memory_at_peak.total() + report.window_bytes_at_peak;
            if largest.as_ref().is_none_or(|b| bytes > b.bytes) {
                largest = Some(Busiest {
                    bytes,
                    capture: name.clone(),
                    memory: report.memory_at_peak,
                    window: (report.window_bytes_at_peak, report.window_records_at_peak),
                    peak_flows: report.stats.peak_flows,
                });
            }
            let w = &report.window;
            if w.left_early > 0 {
                eprintln!(
                    "classify: {name}: {} of {} records left the revision window ({window} records) before the capture ended; {} revisions by endpoints recognised later did not reach them (a larger --revision-window holds more)",
                    w.left_early, w.written, w.revisions_missed
                );
            }
            if let Some(e) = report.error {
                eprintln!("classify: {e}");
                failed = true;
            }
            continue;
        }
        let report = analyze_capture_parallel(cap, &model, table.clone(), args.threads);
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        for r in &report.records {
            if let Err(e) = write(&mut out, &report.capture, r) {
                eprintln!("classify: cannot write output: {e}");
                return ExitCode::FAILURE;
            }
        }
        total.merge(&report.stats);
        for f in &report.failures {
            eprintln!(
                "classify: {}: a worker failed: {f}; its flows are reported",
                report.capture
            );
            failed = true;
        }
        if let Some(e) = report.error {
            eprintln!("classify: {e}");
            failed = true;
        }
    }
    if let Err(e) = out.finish() {
        eprintln!("classify: cannot write output: {e}");
        return ExitCode::FAILURE;
    }
    let _ = std::io::stderr().flush();
    summary(
        args.captures.len() + usize::from(args.interface.is_some()),
        &total,
        flows,
        skype,
        start.elapsed().as_secs_f64(),
    );
    if let Some(b) = largest {
        memory_line(&b.capture, &b.memory, b.window, b.peak_flows);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The capture whose analysis held the most, at its busiest.
struct Busiest {
    bytes: usize,
    capture: String,
    memory: MemoryUse,
    /// The revision window's bytes and records.
    window: (usize, usize),
    peak_flows: u64,
}

/// The process's peak resident memory, bytes (Linux; 0 elsewhere).
fn peak_resident() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<usize>().ok())
        })
        .map_or(0, |kib| kib * 1024)
}

/// What the analysis of the capture that held the most held at its
/// busiest, by part and per flow, endpoint and record, beside the process's
/// peak (the difference is the allocator's: its rounding, and memory freed
/// but kept for reuse).
fn memory_line(name: &str, m: &MemoryUse, (window, records): (usize, usize), peak_flows: u64) {
    let mib = |b: usize| b as f64 / 1048576.0;
    let per = |b: usize, n: usize| b as f64 / n.max(1) as f64;
    let total = m.total() + window;
    eprintln!(
        "memory: {name}: {:.1} MiB by account at its busiest: flow table {:.1} MiB (slots and index, sized for its peak of {peak_flows} flows: {:.0} bytes a flow), features {:.1} MiB ({} flows not final, {} of them of one message kept in the slot: {:.0} bytes for each of the others), kept evidence {:.1} MiB, endpoints {:.1} MiB ({} held, {} past one message: {:.0} bytes each), revision window {:.1} MiB ({records} records: {:.0} bytes each), events {:.1} MiB; process peak {:.1} MiB",
        mib(total),
        mib(m.table),
        per(m.table, peak_flows as usize),
        mib(m.features),
        m.open,
        m.one_message,
        per(m.features, m.open - m.one_message),
        mib(m.evidence),
        mib(m.endpoints),
        m.endpoint_count,
        m.endpoint_full,
        per(m.endpoints, m.endpoint_count),
        mib(window),
        per(window, records),
        mib(m.recent_and_events),
        mib(peak_resident())
    );
}

/// Runs a yardstick over every capture: its counts summed, whether a
/// capture failed (each failure printed), and the seconds it all took.
fn measure_captures<C: Default + std::ops::AddAssign>(
    args: &Args,
    mut measure: impl FnMut(&mut Capture) -> (C, Result<(), CaptureError>),
) -> (C, bool, f64) {
    let start = Instant::now();
    let mut all = C::default();
    let mut failed = false;
    for path in &args.captures {
        let result = Capture::open_file_reading(path, args.filter.as_deref(), args.read_buffer)
            .and_then(|mut cap| {
                let (counts, result) = measure(&mut cap);
                all += counts;
                result
            });
        if let Err(e) = result {
            eprintln!("classify: {e}");
            failed = true;
        }
    }
    (all, failed, start.elapsed().as_secs_f64())
}

fn exit_code(failed: bool) -> ExitCode {
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Reads every frame through libpcap and does nothing else: the floor.
fn read_only(args: &Args) -> ExitCode {
    let (c, failed, secs) = measure_captures(args, yardstick::read_frames);
    eprintln!(
        "read-only: {} capture(s), {} frames, {} captured bytes, {secs:.3} s ({:.0} frames/s)",
        args.captures.len(),
        c.frames,
        c.captured_bytes,
        c.frames as f64 / secs.max(1e-9)
    );
    exit_code(failed)
}

/// Reads every frame, decodes it and follows its flow, classifying
/// nothing: the floor of any flow classifier on one thread.
fn flows_only(args: &Args, table: FlowTableConfig) -> ExitCode {
    let (c, failed, secs) =
        measure_captures(args, |cap| yardstick::follow_flows(cap, table.clone()));
    eprintln!(
        "flows-only: {} capture(s), {} frames, {} TCP/UDP packets, {} flows, {} skipped, {secs:.3} s ({:.0} frames/s)",
        args.captures.len(),
        c.frames,
        c.packets,
        c.flows,
        c.skipped,
        c.frames as f64 / secs.max(1e-9)
    );
    exit_code(failed)
}
