//! Inline and live use, tested for real in two network namespaces joined by
//! a veth pair (addresses of 10.99.0.0/24 inside them only): the project's
//! generator plays a Skype call and a look-alike (an online game) from one
//! namespace to the other, in real time, through
//! - the NFQUEUE firewall (`examples/nfqueue.rs`, drop mode): the Skype
//!   flow's packets stop from the packet on which its verdict is reached,
//!   every packet of the look-alike arrives; the per-packet verdict latency
//!   is printed (the README's figures);
//! - live capture (`classify --interface`): verdicts printed as flows are
//!   decided, every open flow reported on SIGINT, exit 0.
//!
//! Needs root, iproute2 and iptables: with CI=true their absence fails the
//! test, elsewhere it is skipped with a message.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use skype_dpi::synth::{Generator, Message, Profile, SynthConfig, CODECS};

const A_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const B_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    profile_dir.join("examples").join(name)
}

/// Whether this machine can run the test; with CI=true it must.
fn can_run() -> bool {
    let root = unsafe { libc::geteuid() } == 0;
    let tool = |t: &str| {
        Command::new(t)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            || Command::new(t)
                .arg("-V")
                .output()
                .is_ok_and(|o| o.status.success())
    };
    let ok = root && tool("ip") && tool("iptables");
    if !ok {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true: the namespace tests need root, iproute2 and iptables (.ci/run installs them)"
        );
        eprintln!("skipping: needs root, iproute2 and iptables");
    }
    ok
}

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair; removed on drop.
struct Namespaces {
    a: String,
    b: String,
    veth_b: String,
}

impl Namespaces {
    fn new(tag: &str) -> Namespaces {
        let id = std::process::id() % 100_000;
        let (a, b) = (format!("skdpi{tag}a{id}"), format!("skdpi{tag}b{id}"));
        let (va, vb) = (format!("va{tag}{id}"), format!("vb{tag}{id}"));
        let ns = Namespaces {
            a: a.clone(),
            b: b.clone(),
            veth_b: vb.clone(),
        };
        run(&["ip", "netns", "add", &a]);
        run(&["ip", "netns", "add", &b]);
        run(&[
            "ip", "link", "add", &va, "type", "veth", "peer", "name", &vb,
        ]);
        run(&["ip", "link", "set", &va, "netns", &a]);
        run(&["ip", "link", "set", &vb, "netns", &b]);
        for (ns, dev, ip) in [(&a, &va, "10.99.0.1/24"), (&b, &vb, "10.99.0.2/24")] {
            run(&["ip", "-n", ns, "addr", "add", ip, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
            run(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        ns
    }

    /// Runs `f` on a thread that lives in namespace `name`: sockets it
    /// makes belong to that namespace.
    fn inside<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns on this thread only, with an open namespace file.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}");
            f()
        })
        .join()
        .unwrap()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// A flow to play: its two sockets (A side, B side) and what arrived.
struct Played {
    sent: [u32; 2],
    received: [u32; 2],
}

/// Plays `gen`'s messages in real time between the namespaces: flow i's
/// initiator is 10.99.0.1:(40000 + i) in `ns.a`, its responder
/// 10.99.0.2:(50000 + i) in `ns.b`. Returns per flow what was sent and
/// received each way.
fn play(ns: &Namespaces, gen: &mut Generator) -> Vec<Played> {
    let flows: Vec<_> = gen.flows().cloned().collect();
    let n = flows.len();
    let bind = |ip: Ipv4Addr, base: u16| {
        move || -> Vec<UdpSocket> {
            (0..n)
                .map(|i| {
                    let s =
                        UdpSocket::bind(SocketAddr::new(IpAddr::V4(ip), base + i as u16)).unwrap();
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    s
                })
                .collect()
        }
    };
    let a_socks = Namespaces::inside(&ns.a, bind(A_IP, 40000));
    let b_socks = Namespaces::inside(&ns.b, bind(B_IP, 50000));
    // Receivers: count datagrams per flow and direction.
    let (tx, rx) = mpsc::channel::<(usize, usize)>();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut threads = Vec::new();
    for (dir, socks) in [(1usize, &a_socks), (0usize, &b_socks)] {
        for (i, s) in socks.iter().enumerate() {
            let s = s.try_clone().unwrap();
            let (tx, stop) = (tx.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    if s.recv(&mut buf).is_ok() {
                        let _ = tx.send((i, dir));
                    }
                }
            }));
        }
    }
    let mut msgs: Vec<(i64, usize, usize, Vec<u8>)> = Vec::new();
    let mut m = Message {
        ts: 0,
        src: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        dst: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        transport: skype_dpi::packet::Transport::Udp,
        payload: Vec::new(),
        vlan: None,
    };
    let index: HashMap<_, _> = flows
        .iter()
        .enumerate()
        .flat_map(|(i, f)| [((f.a, f.b), (i, 0usize)), ((f.b, f.a), (i, 1usize))])
        .collect();
    while gen.next_into(&mut m) {
        if let Some(&(i, d)) = index.get(&(m.src, m.dst)) {
            msgs.push((m.ts, i, d, m.payload.clone()));
        }
    }
    let t0 = msgs.first().map_or(0, |x| x.0);
    let start = Instant::now();
    let mut played: Vec<Played> = (0..n)
        .map(|_| Played {
            sent: [0; 2],
            received: [0; 2],
        })
        .collect();
    for (ts, i, d, payload) in &msgs {
        let due = Duration::from_micros((ts - t0).max(0) as u64);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let (sock, to) = if *d == 0 {
            (
                &a_socks[*i],
                SocketAddr::new(IpAddr::V4(B_IP), 50000 + *i as u16),
            )
        } else {
            (
                &b_socks[*i],
                SocketAddr::new(IpAddr::V4(A_IP), 40000 + *i as u16),
            )
        };
        if sock.send_to(payload, to).is_ok() {
            played[*i].sent[*d] += 1;
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drop(tx);
    for t in threads {
        let _ = t.join();
    }
    for (i, d) in rx.try_iter() {
        played[i].received[d] += 1;
    }
    played
}

/// A call (SILK, ringing first) and an online game, a few seconds each,
/// without loss.
fn call_and_game() -> Generator {
    let cfg = SynthConfig {
        seed: 11,
        call_seconds: 6.0,
        spread_seconds: 0.2,
        ipv6_share: 0.0,
        vlan_share: 0.0,
        loss: 0.0,
        ..SynthConfig::default()
    };
    Generator::of_profiles(&cfg, &[Profile::SkypeVoice(CODECS[5]), Profile::Game])
}

/// Reads a child's stderr lines on a thread.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn interrupt(child: &Child) {
    // SAFETY: signalling a child process we spawned.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
}

#[test]
fn nfqueue_drops_a_skype_call_from_its_verdict_on() {
    if !can_run() {
        return;
    }
    let ns = Namespaces::new("q");
    for rule in [
        ["-A", "OUTPUT", "-p", "udp", "-d", "10.99.0.2"],
        ["-A", "INPUT", "-p", "udp", "-s", "10.99.0.2"],
    ] {
        let mut args = vec!["ip", "netns", "exec", &ns.a, "iptables"];
        args.extend(rule);
        args.extend(["-j", "NFQUEUE", "--queue-num", "7"]);
        run(&args);
    }
    let mut fw = Command::new("ip")
        .args(["netns", "exec", &ns.a])
        .arg(example("nfqueue"))
        .args(["--queue", "7", "--action", "drop"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut fw);
    let first = lines
        .recv_timeout(Duration::from_secs(10))
        .unwrap_or_default();
    assert!(first.contains("listening"), "nfqueue: {first}");
    let played = play(&ns, &mut call_and_game());
    interrupt(&fw);
    let status = fw.wait().unwrap();
    let log: Vec<String> = lines.iter().collect();
    eprintln!("{}", log.join("\n"));
    assert!(status.success(), "nfqueue exit: {status}");
    // The call: a Skype verdict at packet N; the N - 1 packets before it
    // arrived, none from it on.
    let verdict = log
        .iter()
        .find(|l| l.starts_with("verdict:") && l.contains("40000") && l.contains(" skype "))
        .expect("a Skype verdict for the call");
    let at: u32 = verdict
        .rsplit(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("the packet of the verdict");
    let call = &played[0];
    let (sent, received) = (
        call.sent[0] + call.sent[1],
        call.received[0] + call.received[1],
    );
    eprintln!("call: {sent} sent, {received} arrived, verdict at packet {at}");
    assert!(sent > at + 50, "the call went on after its verdict");
    assert_eq!(received, at - 1, "packets of the call that arrived");
    // The game: never Skype, every packet arrives.
    let game = &played[1];
    assert!(!log
        .iter()
        .any(|l| l.contains("40001") && l.contains(" skype ")));
    assert_eq!(game.received, game.sent, "the game's packets");
    assert!(game.sent[0] > 100);
    let summary = log
        .iter()
        .find(|l| l.starts_with("summary:"))
        .expect("a summary");
    assert!(summary.contains("latency p50"), "{summary}");
}

#[test]
fn live_capture_in_a_namespace_reports_on_sigint() {
    if !can_run() {
        return;
    }
    let ns = Namespaces::new("l");
    let mut cap = Command::new("ip")
        .args(["netns", "exec", &ns.b])
        .arg(example("classify"))
        .args([
            "--interface",
            &ns.veth_b,
            "--format",
            "jsonl",
            "--filter",
            "udp",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut cap);
    std::thread::sleep(Duration::from_millis(800));
    let played = play(&ns, &mut call_and_game());
    // The call's verdict was printed while it went on.
    let early: Vec<String> = lines.try_iter().collect();
    interrupt(&cap);
    let out = cap.wait_with_output().unwrap();
    let late: Vec<String> = lines.iter().collect();
    eprintln!("{}\n{}", early.join("\n"), late.join("\n"));
    assert!(out.status.success(), "classify exit: {}", out.status);
    assert!(
        early
            .iter()
            .any(|l| l.starts_with("verdict:") && l.contains(":40000") && l.contains(" skype ")),
        "a Skype verdict printed before the end"
    );
    let records: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let flow = |port: u64| {
        records
            .iter()
            .find(|r| r["src_port"] == port || r["dst_port"] == port)
            .unwrap_or_else(|| panic!("no record of port {port}: {records:?}"))
    };
    let call = flow(40000);
    assert_eq!(call["verdict"], "skype");
    assert_eq!(call["kind"], "e2e");
    assert_eq!(call["end"], "capture_end");
    let sent = played[0].sent[0] + played[0].sent[1];
    assert_eq!(call["packets"], u64::from(sent));
    let game = flow(40001);
    assert_ne!(game["verdict"], "skype");
    assert!(late.iter().any(|l| l.starts_with("summary:")));
}
