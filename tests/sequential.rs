//! The sequential decisions through the streaming API: a verdict reached
//! early is revised by contradicting evidence within the confirmation
//! window and the change is reported; a confirmed verdict is final; a flow's
//! own verdict is never overridden by an endpoint's.

use std::net::{IpAddr, Ipv4Addr};

use skype_dpi::classifier::{revise_with, Classifier, Event, FlowRecord};
use skype_dpi::endpoint::{EndpointKey, EndpointTable};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp, Transport};
use skype_dpi::synth::{frame_of, Message, Rng};
use skype_dpi::verdict::{contradiction_of, Kind, Label, Via};

const A: (IpAddr, u16) = (IpAddr::V4(Ipv4Addr::new(10, 99, 0, 1)), 40000);
const B: (IpAddr, u16) = (IpAddr::V4(Ipv4Addr::new(10, 99, 0, 2)), 50000);

/// Pushes one UDP message of `len` bytes whose first bytes come from `head`.
fn push(c: &mut Classifier, ts: i64, from_a: bool, payload: &[u8]) -> Vec<Event> {
    let (src, dst) = if from_a { (A, B) } else { (B, A) };
    let m = Message {
        ts,
        src,
        dst,
        transport: Transport::Udp,
        payload: payload.to_vec(),
        vlan: None,
    };
    let mut frame = Vec::new();
    assert!(frame_of(&m, &mut frame));
    let raw = RawPacket {
        ts: Timestamp(ts),
        link_type: 1,
        data: &frame,
        orig_len: frame.len() as u32,
    };
    c.push(&raw).unwrap();
    c.drain_events().collect()
}

/// A Skype E2E voice message (FUNC 0x0D, random elsewhere) of 60 bytes.
fn voice(rng: &mut Rng) -> Vec<u8> {
    let mut p = vec![0u8; 60];
    rng.fill(&mut p);
    p[2] = (p[2] & 0x70) | 0x0D;
    p
}

fn verdicts(events: &[Event]) -> Vec<(Label, Option<Kind>, Option<Via>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Verdict { verdict, .. } => Some((verdict.label, verdict.kind, verdict.via)),
            _ => None,
        })
        .collect()
}

fn ended(events: &[Event]) -> Option<FlowRecord> {
    events.iter().find_map(|e| match e {
        Event::FlowEnded(r) => Some((**r).clone()),
        _ => None,
    })
}

/// A call decided early, whose later messages turn out structured (group 0
/// constant) before the paper's full window: the verdict is revised to
/// "not_skype", an event says so, and the record keeps what it was.
#[test]
fn an_early_verdict_is_revised_by_contradicting_evidence() {
    let mut c = Classifier::new(Model::default_model().unwrap());
    let mut rng = Rng::new(5);
    let mut got = Vec::new();
    let mut t = 1_000_000_000_000i64;
    let mut skype_at = None;
    for i in 0..400 {
        let mut p = voice(&mut rng);
        if skype_at.is_some_and(|at| i >= at + 20) {
            // From here on byte 0 is constant: group 0, which must be
            // random in E2E, is structured.
            p[0] = 0x42;
        }
        for from_a in [true, false] {
            let ev = push(&mut c, t, from_a, &p);
            let v = verdicts(&ev);
            if skype_at.is_none() && v.iter().any(|x| x.0 == Label::Skype) {
                skype_at = Some(i);
            }
            got.extend(v);
            t += 10_000;
        }
    }
    let at = skype_at.expect("a Skype verdict");
    assert!(at < 60, "decided after {at} messages a direction");
    assert_eq!(
        got,
        vec![
            (Label::Skype, Some(Kind::E2e), Some(Via::Flow)),
            (Label::NotSkype, None, Some(Via::Flow)),
        ]
    );
    c.finish_all();
    let rec = ended(&c.drain_events().collect::<Vec<_>>()).unwrap();
    assert_eq!(rec.verdict.label, Label::NotSkype);
    assert_eq!(rec.revised_from, Some(Label::Skype));
}

/// The same call without the change: Skype, confirmed over 255 samples,
/// final (no further event), and its record is the Skype verdict.
#[test]
fn a_confirmed_verdict_is_final() {
    let mut c = Classifier::new(Model::default_model().unwrap());
    let mut rng = Rng::new(6);
    let mut got = Vec::new();
    let mut t = 1_000_000_000_000i64;
    for i in 0..600 {
        let mut p = voice(&mut rng);
        if i > 300 {
            // After the confirmation nothing changes the verdict.
            p[0] = 0x42;
        }
        for from_a in [true, false] {
            got.extend(verdicts(&push(&mut c, t, from_a, &p)));
            t += 10_000;
        }
    }
    assert_eq!(got, vec![(Label::Skype, Some(Kind::E2e), Some(Via::Flow))]);
    c.finish_all();
    let rec = ended(&c.drain_events().collect::<Vec<_>>()).unwrap();
    assert_eq!(rec.verdict.label, Label::Skype);
    assert_eq!(rec.revised_from, None);
    assert!(rec.evidence_released, "the features were released");
}

/// Random messages (no Skype framing) at a voice rhythm are judged not
/// Skype once the evidence contradicts both UDP signatures (the FUNC byte
/// is not Skype's, the prefix is not a connection ID: at least 10 messages,
/// as the prefix test needs 9 changes), and the verdict event carries that
/// evidence; two messages are undecided.
#[test]
fn not_skype_needs_a_contradiction() {
    let model = Model::default_model().unwrap();
    let mut c = Classifier::new(model.clone());
    let mut rng = Rng::new(7);
    let mut t = 1_000_000_000_000i64;
    let mut first = None;
    for i in 0..100 {
        let mut p = vec![0u8; 80];
        rng.fill(&mut p);
        for e in push(&mut c, t, true, &p) {
            if let Event::Verdict {
                verdict,
                evidence: Some(ev),
                ..
            } = e
            {
                assert_eq!(verdict.label, Label::NotSkype);
                let why = contradiction_of(&ev, Transport::Udp, &model.config);
                assert!(why.is_some(), "{ev:?}");
                first.get_or_insert((i + 1, why));
            }
        }
        t += 20_000;
    }
    let (at, why) = first.expect("judged");
    eprintln!("not_skype after {at} messages: {why:?}");
    assert!((10..40).contains(&at), "not_skype after {at} messages");
    let mut d = Classifier::new(Model::default_model().unwrap());
    push(&mut d, t, true, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    push(&mut d, t + 1, false, &[9, 8, 7, 6, 5, 4, 3, 2, 1]);
    d.finish_all();
    let rec = ended(&d.drain_events().collect::<Vec<_>>()).unwrap();
    assert_eq!(rec.verdict.label, Label::Undecided);
}

/// An endpoint's verdict goes only to undecided flows: a flow decided on
/// its own evidence keeps its verdict and its kind.
#[test]
fn an_endpoint_never_overrides_a_flows_own_verdict() {
    let model = Model::default_model().unwrap();
    let mut c = Classifier::new(model.clone());
    let mut rng = Rng::new(8);
    let mut t = 1_000_000_000_000i64;
    for _ in 0..300 {
        let p = voice(&mut rng);
        push(&mut c, t, true, &p);
        push(&mut c, t + 5_000, false, &p);
        t += 20_000;
    }
    c.finish_all();
    let skype = ended(&c.drain_events().collect::<Vec<_>>()).unwrap();
    assert_eq!(skype.verdict.kind, Some(Kind::E2e));
    // A table in which the flow's end A is a recognised Skype client.
    let mut table = EndpointTable::new(&model.config);
    let a = EndpointKey { ip: A.0, port: A.1 };
    for i in 0..60u8 {
        let mut m = voice(&mut rng);
        m[2] = (m[2] & 0x70) | 0x02;
        let peer = EndpointKey {
            ip: IpAddr::V4(Ipv4Addr::new(10, 99, 1, i)),
            port: 30000,
        };
        table.observe(Timestamp(i64::from(i)), a, peer, true, &m);
    }
    assert!(table.is_recognised(&a));
    let mut r = skype.clone();
    assert!(!revise_with(&mut r, &mut table));
    assert_eq!(r, skype);
    // A flow rejected on its own evidence stays rejected.
    let mut rejected = skype.clone();
    rejected.verdict.label = Label::NotSkype;
    rejected.verdict.kind = None;
    let before = rejected.clone();
    assert!(!revise_with(&mut rejected, &mut table));
    assert_eq!(rejected, before);
    // An undecided one takes the endpoint's verdict.
    let mut open = skype.clone();
    open.verdict = Default::default();
    assert!(revise_with(&mut open, &mut table));
    assert_eq!(open.verdict.kind, Some(Kind::Signalling));
    assert_eq!(open.verdict.via, Some(Via::Endpoint));
    assert_eq!(open.revised_from, Some(Label::Undecided));
}
