//! Yardsticks for the speed of offline analysis: what reading a capture
//! costs, and what reading it and following its flows cost, with nothing
//! classified.
//!
//! [`read_frames`] is the read floor that no tool reading through libpcap
//! can beat (`classify --read-only`). [`follow_flows`] is the floor of any
//! flow classifier on one thread (`classify --flows-only`): each frame read
//! and decoded as the classifier decodes it, and its flow found or made in
//! the classifier's [`FlowTable`], which ends flows as the classifier's
//! does (idle timeouts looked at once per second of capture time, the
//! table's bound, the end of the capture), every flow holding two packet
//! counts and nothing else. The distance between this floor and a full
//! run is what the method costs; the distance between it and the read
//! floor is what following flows costs (README, Performance).

use crate::capture::{Capture, CaptureError};
use crate::classifier::{BURST_GROUP, EXPIRY_INTERVAL_MICROS};
use crate::config::FlowTableConfig;
use crate::flow::{EndedFlow, FlowTable};
use crate::packet::{decode_with, Packet, Timestamp};

/// What [`read_frames`] read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadCounts {
    /// Frames read.
    pub frames: u64,
    /// Their captured bytes.
    pub captured_bytes: u64,
}

impl std::ops::AddAssign for ReadCounts {
    fn add_assign(&mut self, o: ReadCounts) {
        self.frames += o.frames;
        self.captured_bytes += o.captured_bytes;
    }
}

/// Reads every frame of `cap` and does nothing else; the frames read
/// before a failure are counted either way.
pub fn read_frames(cap: &mut Capture) -> (ReadCounts, Result<(), CaptureError>) {
    let mut counts = ReadCounts::default();
    let result = cap.for_each(|raw| {
        counts.frames += 1;
        counts.captured_bytes += raw.data.len() as u64;
        true
    });
    (counts, result)
}

/// What [`follow_flows`] saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowCounts {
    /// Frames read.
    pub frames: u64,
    /// TCP and UDP packets decoded (the classifier's packets).
    pub packets: u64,
    /// Frames the decoder skipped (not IP, not TCP or UDP, malformed).
    pub skipped: u64,
    /// Flows made (the classifier's flows, with the same table settings).
    pub flows: u64,
    /// Flows ended, by idle timeout, eviction, FIN/RST or the capture's
    /// end: all of them, once the capture has been read.
    pub ended: u64,
    /// Packets counted in the flows that ended (all the packets, once the
    /// capture has been read: what makes sure the work is not optimised
    /// away).
    pub ended_packets: u64,
}

impl std::ops::AddAssign for FlowCounts {
    fn add_assign(&mut self, o: FlowCounts) {
        self.frames += o.frames;
        self.packets += o.packets;
        self.skipped += o.skipped;
        self.flows += o.flows;
        self.ended += o.ended;
        self.ended_packets += o.ended_packets;
    }
}

/// Reads every frame of `cap`, decodes it as the classifier does and
/// follows its flow in a [`FlowTable`] of `table`'s settings, with the
/// classifier's look-ahead (the frames of a burst decoded, then their
/// table entries prefetched [`BURST_GROUP`] at a time before they are
/// accounted), then ends every flow still open: the work every flow
/// classifier does before it looks at a packet. The frames read before a
/// failure are counted either way.
pub fn follow_flows(
    cap: &mut Capture,
    table: FlowTableConfig,
) -> (FlowCounts, Result<(), CaptureError>) {
    let tunnels = table.tunnels.clone();
    let mut follow = Following {
        table: FlowTable::new(table),
        counts: FlowCounts::default(),
        last_expiry: Timestamp(i64::MIN),
        burst: Vec::with_capacity(FOLLOW_BURST),
    };
    let result = cap.for_each(|raw| {
        follow.counts.frames += 1;
        match decode_with(raw, &tunnels) {
            // The payload is not read: the packet is kept without it.
            Ok(p) => follow.burst.push(p.with_payload(&[])),
            Err(_) => follow.counts.skipped += 1,
        }
        if follow.burst.len() == FOLLOW_BURST {
            follow.account_burst();
        }
        true
    });
    follow.account_burst();
    let Following {
        mut table,
        mut counts,
        ..
    } = follow;
    table.drain(&mut |f| counts.end(&f));
    (counts, result)
}

/// Frames [`follow_flows`] decodes before accounting them (the offline
/// classifier's burst).
const FOLLOW_BURST: usize = 4 * BURST_GROUP;

/// The state of [`follow_flows`].
struct Following {
    table: FlowTable<[u32; 2]>,
    counts: FlowCounts,
    last_expiry: Timestamp,
    burst: Vec<Packet<'static>>,
}

impl FlowCounts {
    fn end(&mut self, f: &EndedFlow<[u32; 2]>) {
        self.ended += 1;
        self.ended_packets += u64::from(f.state[0]) + u64::from(f.state[1]);
    }
}

impl Following {
    /// The burst's packets into the table, [`BURST_GROUP`] at a time: their
    /// index entries prefetched, then their slots, then accounted.
    fn account_burst(&mut self) {
        let Following {
            table,
            counts,
            last_expiry,
            burst,
        } = self;
        for group in burst.chunks(BURST_GROUP) {
            let mut lookups = [None; BURST_GROUP];
            for (p, l) in group.iter().zip(lookups.iter_mut()) {
                let lookup = table.lookup(p);
                table.prefetch_index(&lookup);
                *l = Some(lookup);
            }
            for lookup in lookups.iter().flatten() {
                table.prefetch_slot(lookup);
            }
            for (p, lookup) in group.iter().zip(lookups.iter()) {
                let Some(lookup) = lookup else { continue };
                counts.packets += 1;
                if p.ts.0.saturating_sub(last_expiry.0) >= EXPIRY_INTERVAL_MICROS {
                    *last_expiry = p.ts;
                    table.expire(p.ts, &mut |f| counts.end(&f));
                }
                let update = table.update_with(p, lookup, || [0; 2], &mut |f| counts.end(&f));
                if update.new_flow {
                    counts.flows += 1;
                }
                let d = update.direction.index();
                update.state[d] = update.state[d].saturating_add(1);
            }
        }
        burst.clear();
    }
}
