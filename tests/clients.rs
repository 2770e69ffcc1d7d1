//! Classic Skype clients as they last ran (issue 14), on the project's
//! generator and seeds not used to tune: late-era login bursts to many
//! servers on one port, mostly unanswered, are found through the client's
//! endpoint; the client's short TCP connections through its port and its
//! Skype peers; the many-peer look-alikes (DNS, NTP, game probes, uTP,
//! BitTorrent TCP, P2P UDP) stay negative, also on the Skype clients' own
//! hosts; and host-level TCP evidence is measured before being left off.

use std::collections::BTreeMap;

use skype_dpi::analyze::analyze_file;
use skype_dpi::config::FlowTableConfig;
use skype_dpi::labels::load_spec;
use skype_dpi::model::Model;
use skype_dpi::synth::{write_labels, write_pcap, Generator, SynthConfig};
use skype_dpi::verdict::{Kind, Label, Via};

/// Per variant (late-era login, short TCP, signalling, or a look-alike's
/// label): (flows, called Skype).
fn run(cfg: &SynthConfig, model: &Model, name: &str) -> BTreeMap<String, (u32, u32)> {
    let dir = std::env::temp_dir().join(format!("skype-dpi-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (pcap, csv) = (
        dir.join(format!("{name}.pcap")),
        dir.join(format!("{name}.csv")),
    );
    let mut gen = Generator::new(cfg);
    write_labels(&csv, gen.flows()).unwrap();
    write_pcap(&pcap, &mut gen, None).unwrap();
    let labels = load_spec(&format!("{}@{}", pcap.display(), csv.display()))
        .unwrap()
        .remove(0);
    let report = analyze_file(&pcap, None, model, FlowTableConfig::default()).unwrap();
    let mut out: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for r in &report.records {
        let l = labels.label_of(&r.key).expect("labelled");
        let skype = r.verdict.label == Label::Skype;
        let name = if l.label == "skype" {
            let v = l.variant.clone().unwrap_or_default();
            if skype && (v == "login" || v == "short_tcp") {
                // Found through the client's endpoint, with the right kind.
                assert_eq!(r.verdict.via, Some(Via::Endpoint), "{v} {:?}", r.key);
                let kind = if v == "login" {
                    Kind::Signalling
                } else {
                    Kind::Tcp
                };
                assert_eq!(r.verdict.kind, Some(kind));
            }
            v
        } else {
            l.label.clone()
        };
        let e = out.entry(name).or_default();
        e.0 += 1;
        e.1 += u32::from(skype);
    }
    std::fs::remove_file(&pcap).ok();
    std::fs::remove_file(&csv).ok();
    out
}

fn add(total: &mut BTreeMap<String, (u32, u32)>, more: BTreeMap<String, (u32, u32)>) {
    for (k, (n, s)) in more {
        let e = total.entry(k).or_default();
        e.0 += n;
        e.1 += s;
    }
}

fn share(t: &BTreeMap<String, (u32, u32)>, k: &str) -> f64 {
    let (n, s) = t.get(k).copied().unwrap_or_default();
    assert!(n > 0, "no {k} flows");
    f64::from(s) / f64::from(n)
}

#[test]
fn late_era_clients_and_short_tcp_are_found() {
    let model = Model::default_model().unwrap();
    let mut total = BTreeMap::new();
    for (seed, reply_share) in [(31u64, 0.0), (32, 0.1), (33, 0.1), (34, 0.3), (35, 0.05)] {
        let cfg = SynthConfig {
            seed,
            flows_per_profile: 0,
            signalling_clients: 2,
            late_clients: 3,
            late_reply_share: reply_share,
            short_tcp_per_client: 10,
            peer_look_alike_clients: 2,
            peers: 40,
            ..SynthConfig::default()
        };
        add(&mut total, run(&cfg, &model, &format!("late{seed}")));
    }
    eprintln!("(flows, called Skype): {total:?}");
    let login = share(&total, "login");
    let tcp = share(&total, "short_tcp");
    eprintln!(
        "late-era login flows found: {:.2} %, short TCP: {:.2} %",
        100.0 * login,
        100.0 * tcp
    );
    assert!(login >= 0.98, "login {login}");
    assert!(tcp >= 0.90, "short TCP {tcp}");
    assert!(share(&total, "signalling") >= 0.98);
    for l in [
        "dns_poll",
        "ntp_poll",
        "game_probe",
        "utp",
        "bittorrent_tcp",
        "p2p_udp",
    ] {
        let (n, s) = total[l];
        assert!(n > 0);
        assert_eq!(s, 0, "{l}: {s} of {n} called Skype");
    }
}

/// BitTorrent and P2P clients on the Skype clients' own hosts: with the
/// default ties (the client's port, its Skype peers, its peers' ports) no
/// look-alike flow is called Skype; host-level evidence would call every
/// encrypted BitTorrent connection of the host Skype (the README's figure),
/// which is why it is off.
#[test]
fn host_level_tcp_evidence_costs_false_positives() {
    let mut model = Model::default_model().unwrap();
    let cfg = |seed| SynthConfig {
        seed,
        flows_per_profile: 0,
        signalling_clients: 2,
        late_clients: 1,
        short_tcp_per_client: 10,
        peer_look_alike_clients: 3,
        look_alikes_on_skype_hosts: true,
        peers: 40,
        ..SynthConfig::default()
    };
    let mut default = BTreeMap::new();
    let mut host = BTreeMap::new();
    for seed in [41u64, 42] {
        add(
            &mut default,
            run(&cfg(seed), &model, &format!("host{seed}")),
        );
    }
    model.config.endpoint.host_level_tcp = true;
    for seed in [41u64, 42] {
        add(
            &mut host,
            run(&cfg(seed), &model, &format!("hostlevel{seed}")),
        );
    }
    eprintln!("default ties: {default:?}");
    eprintln!("host-level ties: {host:?}");
    let (bt, bt_default) = default["bittorrent_tcp"];
    let (_, bt_host) = host["bittorrent_tcp"];
    eprintln!(
        "BitTorrent TCP on Skype hosts called Skype: {bt_default} of {bt} by default, {bt_host} of {bt} with host-level evidence; short TCP found: {:.1} % by default, {:.1} % with it",
        100.0 * share(&default, "short_tcp"),
        100.0 * share(&host, "short_tcp")
    );
    assert_eq!(bt_default, 0);
    assert!(bt_host * 2 > bt, "host-level evidence: {bt_host} of {bt}");
    for (l, (n, s)) in &default {
        if !["signalling", "login", "short_tcp"].contains(&l.as_str()) {
            assert_eq!(*s, 0, "{l}: {s} of {n} called Skype by default");
        }
    }
}
