//! What a flow costs in memory (the README's figures come from here).

use skype_dpi::classifier::flow_memory;

#[test]
fn flow_memory_is_bounded() {
    let m = flow_memory();
    eprintln!(
        "per flow: undecided {} bytes, of one message so far {} bytes, decided {} bytes (plus {} of evidence when kept for the record); per tracked endpoint {} bytes",
        m.undecided, m.one_message, m.decided, m.decided_evidence, m.endpoint
    );
    assert!(m.endpoint <= 1024, "endpoint: {} bytes", m.endpoint);
    assert!(m.undecided <= 1024, "undecided flow: {} bytes", m.undecided);
    assert!(m.decided <= 128, "decided flow: {} bytes", m.decided);
    // A flow of one message (most flows of a link) costs no more than a
    // decided one: the message lives in its slot.
    assert!(
        m.one_message <= 128,
        "one-message flow: {} bytes",
        m.one_message
    );
}
