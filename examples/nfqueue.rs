//! A small inline firewall over Linux NFQUEUE: every packet that iptables
//! queues (`-j NFQUEUE --queue-num N`) goes through the classifier, and the
//! packets of a flow called Skype get the action from the packet on which
//! the verdict is reached: dropped, or accepted with a mark; the rest are
//! accepted. On SIGINT or SIGTERM it prints a summary (packets, actions,
//! Skype flows, the per-packet verdict latency) and exits 0.
//!
//! cargo run --release --example nfqueue -- [--queue N] [--action drop|mark]
//!     [--mark M] [--model FILE] [--max-flows N]
//!
//! Needs root (or CAP_NET_ADMIN), e.g. with
//! `iptables -A OUTPUT -p udp -j NFQUEUE --queue-num 0` (and INPUT for the
//! other direction). The queue hands over IP packets (pcap link type 101).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use nfq::{Queue, Verdict};
use skype_dpi::classifier::{Classifier, Event};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::verdict::Label;

const USAGE: &str =
    "usage: nfqueue [--queue N] [--action drop|mark] [--mark M] [--model FILE] [--max-flows N]";

/// pcap's link type of a packet that starts with its IP header.
const LINKTYPE_RAW: u32 = 101;
/// Latency samples kept (the most recent ones).
const LATENCY_SAMPLES: usize = 1 << 20;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// SIGINT and SIGTERM interrupt the blocking receive (no SA_RESTART), so
/// the loop sees the flag at once.
fn catch_signals() {
    // SAFETY: the handler only stores to an atomic (async-signal-safe);
    // the struct is zeroed, then filled.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Action {
    Drop,
    Mark(u32),
}

struct Args {
    queue: u16,
    action: Action,
    model: Option<PathBuf>,
    max_flows: Option<usize>,
}

fn parse() -> Result<Args, String> {
    let mut a = Args {
        queue: 0,
        action: Action::Drop,
        model: None,
        max_flows: None,
    };
    let mut mark = 1u32;
    let mut mark_mode = false;
    let mut it = std::env::args().skip(1);
    while let Some(s) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match s.as_str() {
            "--queue" => {
                a.queue = value("--queue")?
                    .parse()
                    .map_err(|_| "--queue needs a number")?
            }
            "--action" => match value("--action")?.as_str() {
                "drop" => mark_mode = false,
                "mark" => mark_mode = true,
                other => return Err(format!("--action {other:?}: use drop or mark")),
            },
            "--mark" => {
                mark = value("--mark")?
                    .parse()
                    .map_err(|_| "--mark needs a number")?
            }
            "--model" => a.model = Some(PathBuf::from(value("--model")?)),
            "--max-flows" => {
                a.max_flows = Some(
                    value("--max-flows")?
                        .parse()
                        .map_err(|_| "--max-flows needs a number")?,
                )
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if mark_mode {
        a.action = Action::Mark(mark);
    }
    Ok(a)
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

fn percentile(sorted: &[u32], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    f64::from(sorted[i]) / 1000.0
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("nfqueue: {e}\n{USAGE}");
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
            eprintln!("nfqueue: {e}");
            return ExitCode::from(2);
        }
    };
    let mut table = FlowTableConfig::default();
    if let Some(n) = args.max_flows {
        table.max_flows = n.max(1);
    }
    let mut queue = match Queue::open().and_then(|mut q| q.bind(args.queue).map(|_| q)) {
        Ok(q) => q,
        Err(e) => {
            eprintln!(
                "nfqueue: cannot bind queue {}: {e} (needs root or CAP_NET_ADMIN, and the nfnetlink_queue module)",
                args.queue
            );
            return ExitCode::FAILURE;
        }
    };
    catch_signals();
    let mut c = Classifier::with_table(model, table);
    let mut latency: Vec<u32> = Vec::with_capacity(LATENCY_SAMPLES);
    let (mut packets, mut acted, mut skype_flows) = (0u64, 0u64, 0u64);
    eprintln!("nfqueue: listening on queue {}", args.queue);
    while !STOP.load(Ordering::Relaxed) {
        let mut msg = match queue.recv() {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("nfqueue: receive failed: {e}");
                break;
            }
        };
        let start = Instant::now();
        let ts = msg
            .get_timestamp()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or_else(micros_now, |d| {
                i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
            });
        let payload = msg.get_payload();
        let raw = RawPacket {
            ts: Timestamp(ts),
            link_type: LINKTYPE_RAW,
            data: payload,
            orig_len: msg.get_original_len() as u32,
        };
        let _ = c.push(&raw);
        let skype = c.last_label() == Label::Skype;
        match (skype, args.action) {
            (true, Action::Drop) => msg.set_verdict(Verdict::Drop),
            (true, Action::Mark(m)) => {
                msg.set_nfmark(m);
                msg.set_verdict(Verdict::Accept);
            }
            (false, _) => msg.set_verdict(Verdict::Accept),
        }
        let sent = queue.verdict(msg);
        let nanos = u32::try_from(start.elapsed().as_nanos()).unwrap_or(u32::MAX);
        if latency.len() < LATENCY_SAMPLES {
            latency.push(nanos);
        } else {
            latency[(packets as usize) % LATENCY_SAMPLES] = nanos;
        }
        packets += 1;
        acted += u64::from(skype);
        if let Err(e) = sent {
            eprintln!("nfqueue: cannot send a verdict: {e}");
            break;
        }
        if c.has_events() {
            for e in c.drain_events() {
                if let Event::Verdict { key, verdict, .. } = e {
                    skype_flows += u64::from(verdict.label == Label::Skype);
                    eprintln!(
                        "verdict: {key} {} {} at packet {}",
                        verdict.label.as_str(),
                        verdict.kind.map_or("-", |k| k.as_str()),
                        verdict.decided_at_packet.unwrap_or(0)
                    );
                }
            }
        }
    }
    latency.sort_unstable();
    let action = match args.action {
        Action::Drop => "dropped".to_string(),
        Action::Mark(m) => format!("marked {m}"),
    };
    eprintln!(
        "summary: {packets} packets, {acted} {action}, {} accepted, {skype_flows} Skype verdicts; verdict latency p50 {:.1} us, p99 {:.1} us, max {:.1} us over {} packets",
        packets - acted,
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        percentile(&latency, 1.0),
        latency.len()
    );
    ExitCode::SUCCESS
}
