//! A flow of one message keeps it in its slot instead of a feature block,
//! and replays it when a second message comes or its record is made
//! (issue 19). The form is a matter of memory only: a classifier that keeps
//! a block for every flow from its first packet gives the same events, in
//! the same order, every field, on Skype calls with clients recognised by
//! their endpoints, on a link-like mix of mostly short flows and on a
//! flood of one-message flows.

use skype_dpi::classifier::{Classifier, Event};
use skype_dpi::config::FlowTableConfig;
use skype_dpi::linkmix::{LinkMix, LinkMixConfig};
use skype_dpi::model::Model;
use skype_dpi::packet::{RawPacket, Timestamp};
use skype_dpi::synth::{Generator, SynthConfig};

fn raw(f: &(i64, Vec<u8>)) -> RawPacket<'_> {
    RawPacket {
        ts: Timestamp(f.0),
        link_type: 1,
        data: &f.1,
        orig_len: f.1.len() as u32,
    }
}

/// Every event of a run, pushed in bursts of 64, then the open flows ended;
/// `table`: the flow table's settings (a small one evicts).
fn run(frames: &[(i64, Vec<u8>)], keep_blocks: bool, table: FlowTableConfig) -> Vec<Event> {
    let model = Model::default_model().expect("the shipped model loads");
    let mut c = Classifier::with_table(model, table);
    c.keep_evidence_for_records(true);
    c.keep_feature_blocks(keep_blocks);
    let mut out = Vec::new();
    for chunk in frames.chunks(64) {
        let raws: Vec<RawPacket<'_>> = chunk.iter().map(raw).collect();
        c.push_burst(&raws);
        out.extend(c.drain_events());
    }
    c.finish_all();
    out.extend(c.drain_events());
    out
}

fn same_events(frames: &[(i64, Vec<u8>)], table: FlowTableConfig, what: &str) -> Vec<Event> {
    let with_form = run(frames, false, table.clone());
    let with_blocks = run(frames, true, table);
    assert_eq!(with_form.len(), with_blocks.len(), "{what}: event counts");
    for (i, (a, b)) in with_form.iter().zip(&with_blocks).enumerate() {
        assert_eq!(a, b, "{what}: event {i}");
    }
    with_form
}

#[test]
fn skype_calls_and_endpoints_give_the_same_events() {
    let cfg = SynthConfig {
        seed: 23,
        flows_per_profile: 3,
        call_seconds: 20.0,
        spread_seconds: 5.0,
        signalling_clients: 6,
        ..SynthConfig::default()
    };
    let frames = skype_dpi::synth::frames(&mut Generator::new(&cfg), usize::MAX);
    let events = same_events(&frames, FlowTableConfig::default(), "calls");
    // Not vacuous: Skype verdicts, some of them an endpoint's, and flows of
    // one message among the records.
    let verdicts = events
        .iter()
        .filter(|e| matches!(e, Event::Verdict { .. }))
        .count();
    let one_message = events
        .iter()
        .filter(|e| match e {
            Event::FlowEnded(r) => {
                r.directions
                    .iter()
                    .map(|d| d.evidence.messages)
                    .sum::<u32>()
                    == 1
            }
            _ => false,
        })
        .count();
    assert!(verdicts > 10, "{verdicts} verdicts");
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::EndpointRecognised(_))),
        "no endpoint recognised"
    );
    assert!(one_message > 0, "no flow of one message");
}

#[test]
fn a_link_mix_and_a_flood_give_the_same_events() {
    let frames =
        skype_dpi::linkmix::frames(&mut LinkMix::new(&LinkMixConfig::link(3_000)), usize::MAX);
    let events = same_events(&frames, FlowTableConfig::default(), "link mix");
    assert!(events.len() >= 3_000, "{} events", events.len());
    // A table of 500 flows: most flows are evicted, their records made
    // from the first-message form.
    let mut small = FlowTableConfig::default();
    small.max_flows = 500;
    same_events(&frames, small.clone(), "link mix, small table");
    let flood =
        skype_dpi::linkmix::frames(&mut LinkMix::new(&LinkMixConfig::flood(5_000)), usize::MAX);
    same_events(&flood, small, "flood");
}
