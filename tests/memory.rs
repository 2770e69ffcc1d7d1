//! What a flow costs in memory (the README's figures come from here).

use skype_dpi::classifier::flow_memory;

#[test]
fn flow_memory_is_bounded() {
    let m = flow_memory();
    eprintln!(
        "per flow: undecided {} bytes, decided {} bytes (of which {} of evidence for the record)",
        m.undecided, m.decided, m.decided_evidence
    );
    assert!(m.undecided <= 1024, "undecided flow: {} bytes", m.undecided);
    assert!(m.decided <= 128, "decided flow: {} bytes", m.decided);
}
