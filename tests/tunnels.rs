//! Tunnels (issue 17): the front end opens GTP-U, GRE (with ERSPAN and
//! PPTP), VXLAN, Geneve, IP in IP and CAPWAP data, keys each inner flow
//! with its tunnel, and a Skype call inside any of them gets the verdict it
//! gets outside.

use std::collections::BTreeMap;
use std::net::IpAddr;

use etherparse::PacketBuilder;

use skype_dpi::analyze::analyze_file;
use skype_dpi::classifier::{Classifier, Event, FlowRecord};
use skype_dpi::config::{FlowTableConfig, TunnelConfig};
use skype_dpi::flow::FlowKey;
use skype_dpi::model::Model;
use skype_dpi::packet::{decode, decode_with, RawPacket, SkipReason, Timestamp, Transport};
use skype_dpi::synth::{frames, wrap_in_tunnel, Generator, Message, SynthConfig};
use skype_dpi::tunnel::TunnelKind;

fn raw(data: &[u8]) -> RawPacket<'_> {
    RawPacket {
        ts: Timestamp(1_700_000_000_000_000),
        link_type: 1,
        data,
        orig_len: data.len() as u32,
    }
}

/// An Ethernet frame with a UDP datagram from 10.1.1.1:4000 to
/// 198.51.100.7:5000 (or the other way).
fn inner_udp(back: bool, payload: &[u8]) -> Vec<u8> {
    let (a, b) = ([10, 1, 1, 1], [198, 51, 100, 7]);
    let (s, d, sp, dp) = if back {
        (b, a, 5000, 4000)
    } else {
        (a, b, 4000, 5000)
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(s, d, 64)
        .udp(sp, dp)
        .write(&mut f, payload)
        .unwrap();
    f
}

/// An outer Ethernet + IPv4 (+ UDP when `ports`) frame around `body`.
fn outer(src: [u8; 4], dst: [u8; 4], proto: u8, ports: Option<(u16, u16)>, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    let b = PacketBuilder::ethernet2([6; 6], [8; 6]).ipv4(src, dst, 64);
    match ports {
        Some((sp, dp)) => b.udp(sp, dp).write(&mut f, body).unwrap(),
        None => {
            // etherparse's builder has no GRE or IP-in-IP: an IPv4 header
            // by hand (the decoder does not check its checksum).
            f.extend_from_slice(&[6; 6]);
            f.extend_from_slice(&[8; 6]);
            f.extend_from_slice(&[0x08, 0x00]);
            let total = (20 + body.len()) as u16;
            f.extend_from_slice(&[0x45, 0]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 0, 64, proto, 0, 0]);
            f.extend_from_slice(&src);
            f.extend_from_slice(&dst);
            f.extend_from_slice(body);
        }
    }
    f
}

fn ip_of(eth: &[u8]) -> &[u8] {
    &eth[14..]
}

/// Every tunnel kind the front end opens, around the same inner datagram:
/// (what it is, the frame, the kind, the id it reports).
fn every_kind(back: bool) -> Vec<(&'static str, Vec<u8>, TunnelKind, Option<u32>)> {
    let inner = inner_udp(back, b"hello tunnel");
    let ip = ip_of(&inner).to_vec();
    let (near, far) = ([10, 200, 0, 1], [10, 200, 0, 2]);
    let (s, d) = if back { (far, near) } else { (near, far) };
    let mut v = Vec::new();
    // GTP-U: the TEID of the receiving end, so one per direction.
    let teid: u32 = if back { 0x2000_0001 } else { 0x1000_0001 };
    let mut gtp = vec![0x30, 0xFF];
    gtp.extend_from_slice(&(ip.len() as u16).to_be_bytes());
    gtp.extend_from_slice(&teid.to_be_bytes());
    gtp.extend_from_slice(&ip);
    v.push((
        "gtp_u",
        outer(s, d, 17, Some((2152, 2152)), &gtp),
        TunnelKind::GtpU,
        Some(teid),
    ));
    // GTP-U with a sequence number and a PDU session container extension.
    let mut gtp_ext = vec![0x36, 0xFF];
    gtp_ext.extend_from_slice(&((ip.len() + 8) as u16).to_be_bytes());
    gtp_ext.extend_from_slice(&teid.to_be_bytes());
    gtp_ext.extend_from_slice(&[0, 1, 0, 0x85, 1, 0x10, 0x01, 0x00]);
    gtp_ext.extend_from_slice(&ip);
    v.push((
        "gtp_u+ext",
        outer(s, d, 17, Some((2152, 2152)), &gtp_ext),
        TunnelKind::GtpU,
        Some(teid),
    ));
    // GRE, keyed and sequenced, carrying IPv4.
    let mut gre = vec![0x30, 0x00, 0x08, 0x00, 0, 0, 0, 77, 0, 0, 0, 9];
    gre.extend_from_slice(&ip);
    v.push((
        "gre",
        outer(s, d, 47, None, &gre),
        TunnelKind::Gre,
        Some(77),
    ));
    // GRE bridging Ethernet.
    let mut teb = vec![0x00, 0x00, 0x65, 0x58];
    teb.extend_from_slice(&inner);
    v.push((
        "gre+teb",
        outer(s, d, 47, None, &teb),
        TunnelKind::Gre,
        None,
    ));
    // ERSPAN I (no header), II and III.
    let mut e1 = vec![0x00, 0x00, 0x88, 0xBE];
    e1.extend_from_slice(&inner);
    v.push((
        "erspan1",
        outer(s, d, 47, None, &e1),
        TunnelKind::Erspan,
        None,
    ));
    let mut e2 = vec![
        0x10, 0x00, 0x88, 0xBE, 0, 0, 0, 1, 0x10, 0x05, 0x00, 0x2A, 0, 0, 0, 0,
    ];
    e2.extend_from_slice(&inner);
    v.push((
        "erspan2",
        outer(s, d, 47, None, &e2),
        TunnelKind::Erspan,
        Some(42),
    ));
    let mut e3 = vec![0x10, 0x00, 0x22, 0xEB, 0, 0, 0, 1];
    e3.extend_from_slice(&[0x20, 0, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0, 0]);
    e3.extend_from_slice(&inner);
    v.push((
        "erspan3",
        outer(s, d, 47, None, &e3),
        TunnelKind::Erspan,
        Some(7),
    ));
    // PPTP: enhanced GRE with the call ID, then PPP.
    let call: u16 = if back { 0x0B0B } else { 0x0A0A };
    let mut pptp = vec![0x30, 0x01, 0x88, 0x0B];
    pptp.extend_from_slice(&((ip.len() + 4) as u16).to_be_bytes());
    pptp.extend_from_slice(&call.to_be_bytes());
    pptp.extend_from_slice(&[0, 0, 0, 1, 0xFF, 0x03, 0x00, 0x21]);
    pptp.extend_from_slice(&ip);
    v.push((
        "pptp",
        outer(s, d, 47, None, &pptp),
        TunnelKind::Pptp,
        Some(u32::from(call)),
    ));
    // VXLAN (IANA port, and Linux's).
    let mut vx = vec![0x08, 0, 0, 0, 0, 0x10, 0x92, 0];
    vx.extend_from_slice(&inner);
    v.push((
        "vxlan",
        outer(s, d, 17, Some((50000, 4789)), &vx),
        TunnelKind::Vxlan,
        Some(4242),
    ));
    v.push((
        "vxlan-linux",
        outer(s, d, 17, Some((50000, 8472)), &vx),
        TunnelKind::Vxlan,
        Some(4242),
    ));
    // Geneve with one option word, carrying Ethernet.
    let mut gn = vec![0x01, 0x00, 0x65, 0x58, 0, 0, 9, 0, 1, 2, 3, 4];
    gn.extend_from_slice(&inner);
    v.push((
        "geneve",
        outer(s, d, 17, Some((50000, 6081)), &gn),
        TunnelKind::Geneve,
        Some(9),
    ));
    // IP in IP.
    v.push((
        "ip_in_ip",
        outer(s, d, 4, None, &ip),
        TunnelKind::IpInIp,
        None,
    ));
    // CAPWAP data carrying an 802.3 frame, and a native 802.11 data frame.
    let mut cw = vec![0x00, 0x10, 0x02, 0x00, 0, 0, 0, 0];
    cw.extend_from_slice(&inner);
    v.push((
        "capwap",
        outer(s, d, 17, Some((12345, 5247)), &cw),
        TunnelKind::Capwap,
        None,
    ));
    let mut cw11 = vec![0x00, 0x10, 0x03, 0x00, 0, 0, 0, 0];
    cw11.extend_from_slice(&[0x08, if back { 0x02 } else { 0x01 }]);
    cw11.extend_from_slice(&[0u8; 22]);
    cw11.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00]);
    cw11.extend_from_slice(&ip);
    v.push((
        "capwap-80211",
        outer(s, d, 17, Some((12345, 5247)), &cw11),
        TunnelKind::Capwap,
        None,
    ));
    v
}

#[test]
fn every_tunnel_kind_is_opened() {
    let plain = inner_udp(false, b"hello tunnel");
    let want = decode(&raw(&plain)).unwrap();
    for (what, frame, kind, id) in every_kind(false) {
        let p = decode(&raw(&frame)).unwrap_or_else(|e| panic!("{what}: {e:?}"));
        assert_eq!(
            (p.src_ip, p.src_port, p.dst_ip, p.dst_port, p.transport),
            (
                want.src_ip,
                want.src_port,
                want.dst_ip,
                want.dst_port,
                Transport::Udp
            ),
            "{what}"
        );
        assert_eq!(p.payload, b"hello tunnel", "{what}");
        let t = p.tunnel.unwrap_or_else(|| panic!("{what}: no tunnel"));
        assert_eq!((t.kind, t.id, t.depth), (kind, id, 1), "{what}");
        assert_eq!(t.outer_src, IpAddr::from([10, 200, 0, 1]), "{what}");
        // Closed, the frame is read as it is on the wire.
        match decode_with(&raw(&frame), &TunnelConfig::NONE) {
            Ok(q) => assert!(q.tunnel.is_none() && q.src_ip == IpAddr::from([10, 200, 0, 1])),
            Err(r) => assert_eq!(r, SkipReason::NotTcpUdp, "{what}"),
        }
    }
}

/// Both directions of an inner flow are one flow, in every tunnel kind,
/// even where the tunnel's identifier differs by direction (GTP-U's TEID,
/// PPTP's call ID); the record says which tunnel, as the first packet went.
#[test]
fn both_directions_are_one_flow_keyed_with_the_tunnel() {
    let fwd = every_kind(false);
    let back = every_kind(true);
    for ((what, f, kind, id), (_, b, _, _)) in fwd.iter().zip(&back) {
        let mut c = Classifier::new(Model::default_model().unwrap());
        for (i, frame) in [f, b, f, b].into_iter().enumerate() {
            let r = RawPacket {
                ts: Timestamp(1_700_000_000_000_000 + i as i64 * 20_000),
                ..raw(frame)
            };
            c.push(&r).unwrap();
        }
        c.finish_all();
        let recs: Vec<FlowRecord> = c
            .drain_events()
            .filter_map(|e| match e {
                Event::FlowEnded(r) => Some(*r),
                _ => None,
            })
            .collect();
        assert_eq!(recs.len(), 1, "{what}");
        let r = &recs[0];
        assert_eq!(r.directions[0].packets, 2, "{what}");
        assert_eq!(r.directions[1].packets, 2, "{what}");
        let t = r.tunnel.unwrap();
        assert_eq!((t.kind, t.id), (*kind, *id), "{what}");
        assert_eq!(
            (t.outer_src, t.outer_dst),
            (IpAddr::from([10, 200, 0, 1]), IpAddr::from([10, 200, 0, 2])),
            "{what}"
        );
        assert_eq!(c.stats().tunneled.packets(*kind), 4, "{what}");
    }
}

/// The same inner 5-tuple in two tunnels (two VNIs; two GTP-U gateway
/// pairs) is two flows, and outside any tunnel a third.
#[test]
fn equal_inner_tuples_in_two_tunnels_are_two_flows() {
    let inner = inner_udp(false, b"x");
    let vx = |vni: u8| {
        let mut b = vec![0x08, 0, 0, 0, 0, 0, vni, 0];
        b.extend_from_slice(&inner);
        outer(
            [10, 200, 0, 1],
            [10, 200, 0, 2],
            17,
            Some((50000, 4789)),
            &b,
        )
    };
    let gtp = |far: u8| {
        let ip = ip_of(&inner);
        let mut b = vec![0x30, 0xFF];
        b.extend_from_slice(&(ip.len() as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 5]);
        b.extend_from_slice(ip);
        outer(
            [10, 200, 0, 1],
            [10, 200, 0, far],
            17,
            Some((2152, 2152)),
            &b,
        )
    };
    let frames = [vx(1), vx(2), gtp(2), gtp(3), inner.clone(), vx(1), gtp(3)];
    let mut c = Classifier::new(Model::default_model().unwrap());
    for f in &frames {
        c.push(&raw(f)).unwrap();
    }
    c.finish_all();
    let mut by_tunnel = BTreeMap::new();
    for e in c.drain_events() {
        if let Event::FlowEnded(r) = e {
            let t = r.tunnel.map(|t| (t.kind.as_str(), t.id, t.outer_dst));
            *by_tunnel.entry(format!("{t:?}")).or_insert(0u64) += r.packets();
        }
    }
    assert_eq!(by_tunnel.len(), 5, "{by_tunnel:?}");
    assert_eq!(by_tunnel.values().sum::<u64>(), 7);
}

/// Nesting: GTP-U inside VXLAN inside GRE is opened to the bottom, the
/// innermost tunnel reported with its depth; a fifth level is skipped and
/// counted.
#[test]
fn nested_tunnels_and_the_depth_bound() {
    let inner = inner_udp(false, b"deep");
    let gtp = |eth: &[u8]| {
        let ip = ip_of(eth);
        let mut b = vec![0x30, 0xFF];
        b.extend_from_slice(&(ip.len() as u16).to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 5]);
        b.extend_from_slice(ip);
        outer([10, 1, 0, 1], [10, 1, 0, 2], 17, Some((2152, 2152)), &b)
    };
    let vxlan = |eth: &[u8]| {
        let mut b = vec![0x08, 0, 0, 0, 0, 0, 3, 0];
        b.extend_from_slice(eth);
        outer([10, 2, 0, 1], [10, 2, 0, 2], 17, Some((50000, 4789)), &b)
    };
    let gre = |eth: &[u8]| {
        let mut b = vec![0x00, 0x00, 0x65, 0x58];
        b.extend_from_slice(eth);
        outer([10, 3, 0, 1], [10, 3, 0, 2], 47, None, &b)
    };
    let three = gre(&vxlan(&gtp(&inner)));
    let p = decode(&raw(&three)).unwrap();
    let t = p.tunnel.unwrap();
    assert_eq!(
        (t.kind, t.depth, t.outer_src),
        (TunnelKind::GtpU, 3, IpAddr::from([10, 1, 0, 1]))
    );
    assert_eq!(p.payload, b"deep");
    let four = gre(&three);
    assert_eq!(decode(&raw(&four)).unwrap().tunnel.unwrap().depth, 4);
    let five = gre(&four);
    assert_eq!(decode(&raw(&five)).unwrap_err(), SkipReason::TunnelTooDeep);
    let mut c = Classifier::new(Model::default_model().unwrap());
    assert_eq!(c.push(&raw(&five)), Err(SkipReason::TunnelTooDeep));
    assert_eq!(c.stats().skipped.get(SkipReason::TunnelTooDeep), 1);
    // A lower bound is honoured.
    let mut shallow = TunnelConfig::default();
    shallow.max_depth = 2;
    assert_eq!(
        decode_with(&raw(&three), &shallow).unwrap_err(),
        SkipReason::TunnelTooDeep
    );
}

/// A stranger's datagram on a tunnel's port is not mangled: it stays the
/// flow it is. GTP-U messages that carry no user packet (echo) likewise. A
/// GRE header that cannot be read is counted as such.
#[test]
fn strangers_on_tunnel_ports_and_malformed_headers() {
    let (a, b) = ([192, 0, 2, 1], [192, 0, 2, 2]);
    for (port, payload) in [
        (4789u16, vec![0x17u8; 40]),
        (6081, vec![0xC0; 40]),
        (2152, vec![0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0]),
        (2152, vec![0x30, 0xFF, 0x0F, 0xFF, 0, 0, 0, 1, 0x45]),
        (5247, vec![0x01; 40]),
    ] {
        let f = outer(a, b, 17, Some((40000, port)), &payload);
        let p = decode(&raw(&f)).unwrap();
        assert!(p.tunnel.is_none(), "port {port}");
        assert_eq!((p.dst_port, p.payload), (port, &payload[..]), "port {port}");
    }
    // GRE version 2, and source routing: malformed.
    for gre in [
        vec![0x00, 0x02, 0x08, 0x00],
        vec![0x40, 0x00, 0x08, 0x00, 0, 0, 0, 0],
    ] {
        let f = outer(a, b, 47, None, &gre);
        assert_eq!(decode(&raw(&f)).unwrap_err(), SkipReason::MalformedTunnel);
    }
    // GRE carrying something that is not IP.
    let f = outer(a, b, 47, None, &[0x00, 0x00, 0x88, 0x09, 1, 2, 3]);
    assert_eq!(decode(&raw(&f)).unwrap_err(), SkipReason::NotIp);
    // Cut short inside the tunnel header.
    let f = outer(a, b, 47, None, &[0x30, 0x00, 0x08, 0x00, 0, 0]);
    assert_eq!(decode(&raw(&f)).unwrap_err(), SkipReason::Truncated);
}

fn synth(tunnel: Option<TunnelKind>) -> Vec<(i64, Vec<u8>)> {
    let cfg = SynthConfig {
        seed: 17,
        flows_per_profile: 1,
        call_seconds: 12.0,
        bulk_seconds: 3.0,
        tunnel,
        ..SynthConfig::default()
    };
    frames(&mut Generator::new(&cfg), usize::MAX)
}

fn records(frames: &[(i64, Vec<u8>)]) -> BTreeMap<FlowKey, FlowRecord> {
    let mut c = Classifier::new(Model::default_model().unwrap());
    c.keep_evidence_for_records(true);
    let mut out = BTreeMap::new();
    for (ts, f) in frames {
        let r = RawPacket {
            ts: Timestamp(*ts),
            ..raw(f)
        };
        let _ = c.push(&r);
        for e in c.drain_events() {
            if let Event::FlowEnded(r) = e {
                out.insert(r.key, *r);
            }
        }
    }
    c.finish_all();
    for e in c.drain_events() {
        if let Event::FlowEnded(r) = e {
            out.insert(r.key, *r);
        }
    }
    out
}

/// The generator's calls, signalling and look-alikes wrapped in GTP-U,
/// GRE, VXLAN and IP in IP: every flow gets the record it gets unwrapped
/// (verdict, kind, via, when decided, evidence), plus its tunnel.
#[test]
fn a_wrapped_capture_gets_the_verdicts_of_the_plain_one() {
    let plain = records(&synth(None));
    assert!(plain.values().any(|r| r.verdict.kind.is_some()));
    for kind in [
        TunnelKind::GtpU,
        TunnelKind::Gre,
        TunnelKind::Vxlan,
        TunnelKind::IpInIp,
    ] {
        let wrapped = records(&synth(Some(kind)));
        assert_eq!(wrapped.len(), plain.len(), "{kind:?}");
        for (key, p) in &plain {
            let w = wrapped
                .get(key)
                .unwrap_or_else(|| panic!("{kind:?}: {key} is missing"));
            assert_eq!(w.tunnel.map(|t| t.kind), Some(kind), "{kind:?} {key}");
            let mut unwrapped = w.clone();
            unwrapped.tunnel = None;
            assert_eq!(&unwrapped, p, "{kind:?}: {key} differs");
        }
    }
}

/// Offline, with threads: the tunnel travels beside each packet record to
/// the worker, and the records equal one thread's.
#[test]
fn threads_keep_the_tunnels() {
    let cfg = SynthConfig {
        seed: 5,
        flows_per_profile: 1,
        call_seconds: 8.0,
        bulk_seconds: 2.0,
        tunnel: Some(TunnelKind::GtpU),
        ..SynthConfig::default()
    };
    let dir = std::env::temp_dir().join(format!("skype-dpi-tunnels-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gtp.pcap");
    skype_dpi::synth::write_pcap(&path, &mut Generator::new(&cfg), None).unwrap();
    let model = Model::default_model().unwrap();
    let one = analyze_file(&path, None, &model, FlowTableConfig::default()).unwrap();
    let cap = skype_dpi::capture::Capture::open_file(&path, None).unwrap();
    let two =
        skype_dpi::analyze::analyze_capture_parallel(cap, &model, FlowTableConfig::default(), 2);
    assert!(!one.records.is_empty());
    assert!(one
        .records
        .iter()
        .all(|r| r.tunnel.is_some_and(|t| t.kind == TunnelKind::GtpU)));
    assert_eq!(one.records, two.records);
    assert_eq!(one.stats.tunneled, two.stats.tunneled);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `wrap_in_tunnel` refuses what it does not make.
#[test]
fn the_generator_wraps_only_what_it_knows() {
    let m = Message {
        ts: 0,
        src: (IpAddr::from([10, 0, 0, 1]), 1),
        dst: (IpAddr::from([198, 51, 100, 1]), 2),
        transport: Transport::Udp,
        payload: vec![1, 2, 3],
        vlan: None,
    };
    let inner = inner_udp(false, b"abc");
    let mut out = Vec::new();
    assert!(!wrap_in_tunnel(TunnelKind::Capwap, &m, &inner, &mut out));
    assert!(wrap_in_tunnel(TunnelKind::Gre, &m, &inner, &mut out));
    assert_eq!(
        decode(&raw(&out)).unwrap().tunnel.unwrap().kind,
        TunnelKind::Gre
    );
}
