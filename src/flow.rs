//! The flow table: one entry per bidirectional 5-tuple, with idle timeouts,
//! TCP close, a bound on the number of flows, and nothing dropped silently.
//!
//! The table is generic over the per-flow state `T` it carries, so it knows
//! nothing of the classifiers. Entries live in a slab; a hash map finds
//! them (keyed with random keys by `ahash`: crafted 5-tuples cannot flood
//! one bucket), and an intrusive list ordered by last activity gives idle expiry and
//! eviction of the longest idle in O(1) per packet.

use ahash::RandomState;
use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::FlowTableConfig;
use crate::packet::{Packet, Timestamp, Transport};

/// A flow's 5-tuple, with the initiator (sender of the first packet seen) as
/// `src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// TCP or UDP.
    pub transport: Transport,
    /// Initiator address.
    pub src_ip: IpAddr,
    /// Initiator port.
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port.
    pub dst_port: u16,
}

impl FlowKey {
    /// The key of a packet, its sender as `src`.
    pub fn of(p: &Packet<'_>) -> FlowKey {
        FlowKey {
            transport: p.transport,
            src_ip: p.src_ip,
            src_port: p.src_port,
            dst_ip: p.dst_ip,
            dst_port: p.dst_port,
        }
    }

    /// The same flow seen from the other side.
    pub fn reversed(&self) -> FlowKey {
        FlowKey {
            transport: self.transport,
            src_ip: self.dst_ip,
            src_port: self.dst_port,
            dst_ip: self.src_ip,
            dst_port: self.src_port,
        }
    }

    /// A direction-free form: the lower (address, port) first. Both
    /// directions of a flow have the same canonical key.
    pub fn canonical(&self) -> FlowKey {
        if (self.src_ip, self.src_port) <= (self.dst_ip, self.dst_port) {
            *self
        } else {
            self.reversed()
        }
    }

    /// A hash that is the same for both directions, for sharding flows over
    /// worker threads. Keyed with `seed` so shards cannot be targeted.
    pub fn symmetric_hash(&self, state: &RandomState) -> u64 {
        state.hash_one(self.canonical())
    }
}

/// The canonical key packed into integers for the table's index: both
/// addresses as 128-bit numbers (IPv4 mapped into IPv6), lower endpoint
/// first. Hashing and comparing it costs a few instructions, where the
/// `IpAddr` enums of [`FlowKey`] cost a branch per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PackedKey {
    lo: u128,
    hi: u128,
    /// Low port in the upper half, high port in the lower, then transport.
    ports: u32,
    transport: u8,
}

fn addr_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)) | (0xFFFF << 32),
        IpAddr::V6(a) => u128::from(*a),
    }
}

impl PackedKey {
    #[inline]
    fn of(transport: Transport, a: &IpAddr, ap: u16, b: &IpAddr, bp: u16) -> PackedKey {
        let (x, y) = ((addr_bits(a), ap), (addr_bits(b), bp));
        let ((lo, lp), (hi, hp)) = if x <= y { (x, y) } else { (y, x) };
        PackedKey {
            lo,
            hi,
            ports: (u32::from(lp) << 16) | u32::from(hp),
            transport: transport as u8,
        }
    }

    fn of_key(k: &FlowKey) -> PackedKey {
        Self::of(k.transport, &k.src_ip, k.src_port, &k.dst_ip, k.dst_port)
    }
}

/// Which way a packet travels in its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the initiator (`src`) to the responder.
    Forward = 0,
    /// From the responder back to the initiator.
    Backward = 1,
}

impl Direction {
    /// 0 for forward, 1 for backward.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a flow ended. The names are those of the flow records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// No packet for the idle timeout.
    Idle,
    /// TCP FIN from both sides (after a short linger for late packets).
    Fin,
    /// TCP RST.
    Rst,
    /// Pushed out by a newer flow when the table was full.
    Evicted,
    /// Still open when the capture ended.
    CaptureEnd,
}

impl EndReason {
    /// "idle", "fin", "rst", "evicted" or "capture_end".
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Fin => "fin",
            EndReason::Rst => "rst",
            EndReason::Evicted => "evicted",
            EndReason::CaptureEnd => "capture_end",
        }
    }
}

/// Counters of one flow that the table itself keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FlowCounters {
    /// First packet time.
    pub first_seen: Timestamp,
    /// Last packet time.
    pub last_seen: Timestamp,
    /// Packets per direction (forward, backward).
    pub packets: [u32; 2],
    /// Payload bytes (original lengths) per direction.
    pub payload_bytes: [u64; 2],
}

impl FlowCounters {
    /// Packets in both directions.
    pub fn total_packets(&self) -> u64 {
        u64::from(self.packets[0]) + u64::from(self.packets[1])
    }

    /// Payload bytes in both directions.
    pub fn total_payload_bytes(&self) -> u64 {
        self.payload_bytes[0] + self.payload_bytes[1]
    }
}

/// TCP close tracking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct TcpClose {
    fin: [bool; 2],
    rst: bool,
}

const NIL: u32 = u32::MAX;

/// The activity lists: one per timeout, so that each is ordered by expiry.
const LIST_UDP: usize = 0;
const LIST_TCP: usize = 1;
const LIST_CLOSED: usize = 2;
const LISTS: usize = 3;

/// A flow is moved to the tail of its list at most once per this many
/// microseconds of capture time: the lists stay ordered to within a second
/// (the granularity of idle expiry), and most packets touch only their own
/// slot.
const RELINK_MICROS: i64 = 1_000_000;

struct Slot<T> {
    key: FlowKey,
    counters: FlowCounters,
    close: TcpClose,
    /// When the slot was last put at the tail of its list.
    linked_at: Timestamp,
    list: u8,
    prev: u32,
    next: u32,
    state: T,
}

impl<T> Slot<T> {
    fn closed(&self) -> bool {
        self.close.rst || (self.close.fin[0] && self.close.fin[1])
    }

    fn list_now(&self) -> usize {
        match self.key.transport {
            Transport::Udp => LIST_UDP,
            Transport::Tcp if self.closed() => LIST_CLOSED,
            Transport::Tcp => LIST_TCP,
        }
    }
}

/// A flow that left the table, with its state.
#[derive(Debug)]
pub struct EndedFlow<T> {
    /// Its 5-tuple.
    pub key: FlowKey,
    /// Its counters.
    pub counters: FlowCounters,
    /// Why it ended.
    pub end: EndReason,
    /// The per-flow state it carried.
    pub state: T,
}

/// What [`FlowTable::update`] hands back for one packet.
pub struct Update<'t, T> {
    /// The flow's key.
    pub key: FlowKey,
    /// The packet's direction in its flow.
    pub direction: Direction,
    /// Whether this packet created the flow.
    pub new_flow: bool,
    /// The flow's counters, already counting this packet.
    pub counters: FlowCounters,
    /// The flow's state, for the caller to update.
    pub state: &'t mut T,
}

/// The bidirectional flow table.
pub struct FlowTable<T> {
    config: FlowTableConfig,
    index: HashMap<PackedKey, u32, RandomState>,
    slots: Vec<Option<Slot<T>>>,
    free: Vec<u32>,
    /// Least recently active at the head of each list.
    head: [u32; LISTS],
    tail: [u32; LISTS],
    now: Timestamp,
    peak: usize,
    /// The shortest idle timeout, in microseconds.
    shortest_timeout_micros: i64,
}

impl<T> FlowTable<T> {
    /// An empty table.
    pub fn new(config: FlowTableConfig) -> Self {
        FlowTable {
            index: HashMap::with_hasher(RandomState::new()),
            slots: Vec::new(),
            free: Vec::new(),
            head: [NIL; LISTS],
            tail: [NIL; LISTS],
            now: Timestamp(i64::MIN),
            peak: 0,
            shortest_timeout_micros: (config.udp_idle_timeout.min(config.tcp_idle_timeout) * 1e6)
                as i64,
            config,
        }
    }

    /// Bytes the table itself spends per flow: the slab slot with its state
    /// value, and the index entry (key and slot number, hashbrown's control
    /// byte, at its maximum load of 7/8). Heap memory the state points to is
    /// not included.
    pub fn bytes_per_flow() -> usize {
        let slot = std::mem::size_of::<Option<Slot<T>>>();
        let entry = std::mem::size_of::<(PackedKey, u32)>() + 1;
        slot + entry * 8 / 7
    }

    /// Flows currently held.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Most flows held at once so far.
    pub fn peak(&self) -> usize {
        self.peak
    }

    /// The latest packet time seen.
    pub fn now(&self) -> Timestamp {
        self.now
    }

    fn slot(&self, i: u32) -> Option<&Slot<T>> {
        self.slots.get(i as usize).and_then(|s| s.as_ref())
    }

    fn slot_mut(&mut self, i: u32) -> Option<&mut Slot<T>> {
        self.slots.get_mut(i as usize).and_then(|s| s.as_mut())
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, l) = match self.slot(i) {
            Some(s) => (s.prev, s.next, usize::from(s.list)),
            None => return,
        };
        match self.slot_mut(prev) {
            Some(p) => p.next = next,
            None => self.head[l] = next,
        }
        match self.slot_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail[l] = prev,
        }
    }

    /// Appends slot `i` to the list its state calls for.
    fn push_tail(&mut self, i: u32) {
        let l = match self.slot(i) {
            Some(s) => s.list_now(),
            None => return,
        };
        let tail = self.tail[l];
        if let Some(s) = self.slot_mut(i) {
            s.prev = tail;
            s.next = NIL;
            s.list = l as u8;
        }
        match self.slot_mut(tail) {
            Some(t) => t.next = i,
            None => self.head[l] = i,
        }
        self.tail[l] = i;
    }

    /// The least recently active flow of all lists.
    fn oldest(&self) -> u32 {
        let mut best = NIL;
        let mut best_ts = Timestamp(i64::MAX);
        for &h in &self.head {
            if let Some(s) = self.slot(h) {
                if s.counters.last_seen < best_ts {
                    best_ts = s.counters.last_seen;
                    best = h;
                }
            }
        }
        best
    }

    fn remove(&mut self, i: u32, end: EndReason) -> Option<EndedFlow<T>> {
        self.unlink(i);
        let slot = self.slots.get_mut(i as usize)?.take()?;
        self.index.remove(&PackedKey::of_key(&slot.key));
        self.free.push(i);
        Some(EndedFlow {
            key: slot.key,
            counters: slot.counters,
            end,
            state: slot.state,
        })
    }

    /// Why the flow in slot `i` is over at time `now`, if it is.
    fn expiry(&self, s: &Slot<T>, now: Timestamp) -> Option<EndReason> {
        let idle = now.secs_since(s.counters.last_seen);
        let closed = s.closed();
        if s.key.transport == Transport::Tcp && closed && idle >= self.config.tcp_close_linger {
            return Some(if s.close.rst {
                EndReason::Rst
            } else {
                EndReason::Fin
            });
        }
        let timeout = match s.key.transport {
            Transport::Udp => self.config.udp_idle_timeout,
            Transport::Tcp => self.config.tcp_idle_timeout,
        };
        (idle >= timeout).then_some(if closed {
            if s.close.rst {
                EndReason::Rst
            } else {
                EndReason::Fin
            }
        } else {
            EndReason::Idle
        })
    }

    /// The timeout of list `l`.
    fn list_timeout(&self, l: usize) -> f64 {
        match l {
            LIST_UDP => self.config.udp_idle_timeout,
            LIST_TCP => self.config.tcp_idle_timeout,
            _ => self.config.tcp_close_linger,
        }
    }

    /// Ends the flows that are over at time `now` (idle, or closed and past
    /// their linger), handing each to `ended`. Each list holds flows of one
    /// timeout ordered by when they were linked; a flow at the head that was
    /// active since is moved to the tail, and the scan stops at the first
    /// flow linked too recently to be over: the cost is the number of flows
    /// ended or moved, plus three.
    pub fn expire(&mut self, now: Timestamp, ended: &mut impl FnMut(EndedFlow<T>)) {
        for l in 0..LISTS {
            let timeout = self.list_timeout(l);
            loop {
                let i = self.head[l];
                let (reason, stale) = match self.slot(i) {
                    Some(s) => (self.expiry(s, now), now.secs_since(s.linked_at) >= timeout),
                    None => break,
                };
                if let Some(reason) = reason {
                    match self.remove(i, reason) {
                        Some(f) => ended(f),
                        None => break,
                    }
                } else if stale {
                    // Active since it was linked: move it to the tail.
                    self.unlink(i);
                    self.push_tail(i);
                    if let Some(s) = self.slot_mut(i) {
                        s.linked_at = s.counters.last_seen;
                    }
                } else {
                    break;
                }
            }
        }
    }

    /// Accounts one packet: finds or creates its flow, updates the counters
    /// and hands back the flow's state. Flows that end meanwhile (a closed TCP
    /// connection reopened by a SYN, or the longest idle flow evicted to make
    /// room) go to `ended` first. `new_state` makes the state of a new flow.
    pub fn update<'t>(
        &'t mut self,
        p: &Packet<'_>,
        new_state: impl FnOnce(&FlowKey) -> T,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> Update<'t, T> {
        let canon = PackedKey::of(p.transport, &p.src_ip, p.src_port, &p.dst_ip, p.dst_port);
        let found = self.index.get(&canon).copied();
        self.update_found(p, canon, found, new_state, ended)
    }

    fn update_found<'t>(
        &'t mut self,
        p: &Packet<'_>,
        canon: PackedKey,
        mut found: Option<u32>,
        new_state: impl FnOnce(&FlowKey) -> T,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> Update<'t, T> {
        if p.ts > self.now {
            self.now = p.ts;
        }
        // A SYN (without ACK) on a closed connection opens a new one.
        if let Some(i) = found {
            if let Some(s) = self.slot(i) {
                let closed = s.closed();
                // Cheap test first: most packets come well within every timeout.
                let idle_micros = p.ts.0.saturating_sub(s.counters.last_seen.0);
                let idle = if closed || idle_micros >= self.shortest_timeout_micros {
                    self.expiry(s, p.ts.max(s.counters.last_seen))
                } else {
                    None
                };
                if (closed && p.tcp_flags.syn && !p.tcp_flags.ack) || idle.is_some() {
                    let reason = idle.unwrap_or(if s.close.rst {
                        EndReason::Rst
                    } else {
                        EndReason::Fin
                    });
                    if let Some(f) = self.remove(i, reason) {
                        ended(f);
                    }
                    found = None;
                }
            }
        }
        let (i, new_flow) = match found {
            Some(i) => (i, false),
            None => {
                if self.index.len() >= self.config.max_flows.max(1) {
                    let oldest = self.oldest();
                    if let Some(f) = self.remove(oldest, EndReason::Evicted) {
                        ended(f);
                    }
                }
                let key = FlowKey::of(p);
                let slot = Slot {
                    key,
                    counters: FlowCounters {
                        first_seen: p.ts,
                        last_seen: p.ts,
                        packets: [0, 0],
                        payload_bytes: [0, 0],
                    },
                    close: TcpClose::default(),
                    linked_at: p.ts,
                    list: 0,
                    prev: NIL,
                    next: NIL,
                    state: new_state(&key),
                };
                let i = match self.free.pop() {
                    Some(i) => {
                        self.slots[i as usize] = Some(slot);
                        i
                    }
                    None => {
                        self.slots.push(Some(slot));
                        (self.slots.len() - 1) as u32
                    }
                };
                self.index.insert(canon, i);
                self.peak = self.peak.max(self.index.len());
                (i, true)
            }
        };
        let slot = match self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) {
            Some(s) => s,
            // Unreachable: `i` was just found or inserted.
            None => unreachable!("flow slot vanished"),
        };
        let direction = if slot.key.src_ip == p.src_ip && slot.key.src_port == p.src_port {
            Direction::Forward
        } else {
            Direction::Backward
        };
        let d = direction.index();
        let c = &mut slot.counters;
        if p.ts > c.last_seen {
            c.last_seen = p.ts;
        }
        c.packets[d] = c.packets[d].saturating_add(1);
        c.payload_bytes[d] = c.payload_bytes[d].saturating_add(u64::from(p.payload_len));
        if p.tcp_flags.fin {
            slot.close.fin[d] = true;
        }
        if p.tcp_flags.rst {
            slot.close.rst = true;
        }
        // Re-link at the tail of the list its (possibly new) state calls for,
        // when new, when its list changes, or once per RELINK_MICROS.
        let relink = new_flow
            || usize::from(slot.list) != slot.list_now()
            || p.ts.0.saturating_sub(slot.linked_at.0) >= RELINK_MICROS;
        if relink {
            slot.linked_at = p.ts.max(slot.linked_at);
            if !new_flow {
                self.unlink(i);
            }
            self.push_tail(i);
        }
        let slot = match self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) {
            Some(s) => s,
            None => unreachable!("flow slot vanished"),
        };
        Update {
            key: slot.key,
            direction,
            new_flow,
            counters: slot.counters,
            state: &mut slot.state,
        }
    }

    /// Visits every flow still held.
    pub fn for_each(&self, mut f: impl FnMut(&FlowKey, &FlowCounters, &T)) {
        for s in self.slots.iter().flatten() {
            f(&s.key, &s.counters, &s.state);
        }
    }

    /// Visits every flow still held, mutably.
    pub fn for_each_mut(&mut self, mut f: impl FnMut(&FlowKey, &FlowCounters, &mut T)) {
        for s in self.slots.iter_mut().flatten() {
            f(&s.key, &s.counters, &mut s.state);
        }
    }

    /// Ends every flow still held, with reason `capture_end` (or `fin`/`rst`
    /// for closed TCP connections), least recently active first.
    pub fn drain(&mut self, ended: &mut impl FnMut(EndedFlow<T>)) {
        loop {
            let i = self.oldest();
            if i == NIL {
                break;
            }
            let reason = match self.slot(i) {
                Some(s) if s.close.rst => EndReason::Rst,
                Some(s) if s.close.fin[0] && s.close.fin[1] => EndReason::Fin,
                _ => EndReason::CaptureEnd,
            };
            match self.remove(i, reason) {
                Some(f) => ended(f),
                None => break,
            }
        }
        self.slots.clear();
        self.free.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::TcpFlags;

    fn pkt(t: f64, src: (u8, u16), dst: (u8, u16), transport: Transport) -> Packet<'static> {
        Packet {
            ts: Timestamp((t * 1e6) as i64),
            src_ip: IpAddr::from([10, 0, 0, src.0]),
            dst_ip: IpAddr::from([10, 0, 0, dst.0]),
            src_port: src.1,
            dst_port: dst.1,
            transport,
            payload: &[],
            payload_len: 10,
            tcp_flags: TcpFlags::default(),
        }
    }

    fn run(table: &mut FlowTable<u32>, p: &Packet<'_>, out: &mut Vec<EndedFlow<u32>>) -> Direction {
        table.expire(p.ts, &mut |f| out.push(f));
        let u = table.update(p, |_| 0, &mut |f| out.push(f));
        *u.state += 1;
        u.direction
    }

    #[test]
    fn both_directions_one_flow_initiator_is_src() {
        let mut t = FlowTable::new(FlowTableConfig::default());
        let mut out = Vec::new();
        let a = pkt(0.0, (2, 5000), (1, 53), Transport::Udp);
        let b = pkt(0.1, (1, 53), (2, 5000), Transport::Udp);
        assert_eq!(run(&mut t, &a, &mut out), Direction::Forward);
        assert_eq!(run(&mut t, &b, &mut out), Direction::Backward);
        assert_eq!(t.len(), 1);
        t.drain(&mut |f| out.push(f));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.src_port, 5000);
        assert_eq!(out[0].counters.packets, [1, 1]);
        assert_eq!(out[0].end, EndReason::CaptureEnd);
        assert_eq!(out[0].state, 2);
    }

    #[test]
    fn idle_timeouts_per_transport() {
        let mut t = FlowTable::new(FlowTableConfig::default());
        let mut out = Vec::new();
        run(&mut t, &pkt(0.0, (1, 1), (2, 2), Transport::Udp), &mut out);
        run(&mut t, &pkt(0.0, (1, 1), (2, 2), Transport::Tcp), &mut out);
        // 119 s later the UDP flow lives; at 121 s it is gone, TCP lives.
        t.expire(Timestamp(119_000_000), &mut |f| out.push(f));
        assert!(out.is_empty());
        run(
            &mut t,
            &pkt(121.0, (3, 3), (4, 4), Transport::Udp),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key.transport, Transport::Udp);
        assert_eq!(out[0].end, EndReason::Idle);
        t.expire(Timestamp(301_000_000), &mut |f| out.push(f));
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|f| f.end == EndReason::Idle));
    }

    #[test]
    fn same_tuple_after_timeout_is_a_new_flow() {
        let mut t = FlowTable::new(FlowTableConfig::default());
        let mut out = Vec::new();
        run(&mut t, &pkt(0.0, (1, 1), (2, 2), Transport::Udp), &mut out);
        // No expire() call in between: update() itself notices.
        let u = t.update(
            &pkt(500.0, (2, 2), (1, 1), Transport::Udp),
            |_| 0,
            &mut |f| out.push(f),
        );
        assert!(u.new_flow);
        assert_eq!(u.key.src_port, 2);
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn tcp_fin_rst_and_linger() {
        let mut t = FlowTable::new(FlowTableConfig::default());
        let mut out = Vec::new();
        let mut fin_a = pkt(0.0, (1, 1), (2, 2), Transport::Tcp);
        fin_a.tcp_flags.fin = true;
        let mut fin_b = pkt(0.1, (2, 2), (1, 1), Transport::Tcp);
        fin_b.tcp_flags.fin = true;
        run(&mut t, &fin_a, &mut out);
        run(&mut t, &fin_b, &mut out);
        // The last ACK, within the linger, stays in the flow.
        run(&mut t, &pkt(0.2, (1, 1), (2, 2), Transport::Tcp), &mut out);
        assert!(out.is_empty());
        t.expire(Timestamp(20_000_000), &mut |f| out.push(f));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, EndReason::Fin);
        assert_eq!(out[0].counters.total_packets(), 3);
        // RST, then a new SYN on the same tuple: two flows.
        let mut rst = pkt(30.0, (1, 9), (2, 9), Transport::Tcp);
        rst.tcp_flags.rst = true;
        run(&mut t, &rst, &mut out);
        let mut syn = pkt(30.5, (1, 9), (2, 9), Transport::Tcp);
        syn.tcp_flags.syn = true;
        run(&mut t, &syn, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].end, EndReason::Rst);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn eviction_takes_the_longest_idle() {
        let config = FlowTableConfig {
            max_flows: 3,
            ..FlowTableConfig::default()
        };
        let mut t = FlowTable::new(config);
        let mut out = Vec::new();
        for i in 0..3u8 {
            run(
                &mut t,
                &pkt(f64::from(i), (i, 1), (100, 1), Transport::Udp),
                &mut out,
            );
        }
        // Touch flow 0 again: flow 1 becomes the longest idle.
        run(
            &mut t,
            &pkt(3.0, (0, 1), (100, 1), Transport::Udp),
            &mut out,
        );
        run(
            &mut t,
            &pkt(4.0, (9, 1), (100, 1), Transport::Udp),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].end, EndReason::Evicted);
        assert_eq!(out[0].key.src_ip, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(t.len(), 3);
        let mut n = 0;
        t.drain(&mut |_| n += 1);
        assert_eq!(n, 3);
        assert_eq!(t.peak(), 3);
    }

    #[test]
    fn symmetric_hash_is_symmetric() {
        let s = RandomState::new();
        let k = FlowKey::of(&pkt(0.0, (1, 1000), (2, 53), Transport::Udp));
        assert_eq!(k.symmetric_hash(&s), k.reversed().symmetric_hash(&s));
        assert_eq!(k.canonical(), k.reversed().canonical());
    }
}
