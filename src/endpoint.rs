//! Endpoint correlation: the evidence of a UDP endpoint (address and port),
//! aggregated over all its flows, and the short TCP connections tied to a
//! recognised Skype client.
//!
//! A classic Skype client sends all its UDP through one port to many peers,
//! in flows of 1 to 5 packets (method.md §6), or, late in its history, one
//! unanswered message to each of many login servers on one port (§9): too
//! short for a per-flow test, while the port as a whole carries dozens to
//! hundreds of messages of one framing. The endpoint signature is that
//! framing, with no rule on ports:
//! - nearly every message carries a known FUNC value in byte 2,
//! - the FUNC byte's low nibble (group 4) is structured,
//! - the encrypted body, bytes 3 to 7 (groups 6-15), is random,
//! - the 16-bit message ID (bytes 0-1) changes from message to message,
//! - the endpoint exchanges messages with many distinct peers (either way).
//!
//! The groups are judged by the same sequential tests as a flow's
//! ([`crate::csc::GroupTests`]). A recognised client's port also carries its
//! TCP: a TCP flow to or from it, to a peer the client's UDP showed to be
//! Skype, or from the client's address to a port its Skype peers use,
//! whose first payload is random from the first byte (no known protocol's
//! framing, [`encrypted_from_first_byte`]) is tied to it. The sets of
//! recognised clients, Skype peers and their ports are bounded, oldest
//! first.
//! The numbers are in [`crate::config::EndpointConfig`].

use ahash::RandomState;
use std::collections::hash_map::Entry as MapEntry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;

use serde::Serialize;

use crate::config::{
    EndpointConfig, MethodConfig, CSC_BYTES, CSC_GROUPS, NIBBLE_VALUES, TCP_FIRST_PAYLOAD_BYTES,
};
use crate::csc::{chi_squares, window_index, CscState, GroupTests};
use crate::features::{FuncSet, NibbleCounts};
use crate::packet::Timestamp;

/// A UDP (or TCP) endpoint: address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EndpointKey {
    /// Address.
    pub ip: IpAddr,
    /// Port.
    pub port: u16,
}

impl std::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.port),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.port),
        }
    }
}

/// Distinct peers remembered per endpoint (enough to pass `min_peers`).
const PEER_SLOTS: usize = 16;

/// The evidence of one endpoint.
#[derive(Debug, Clone)]
pub struct EndpointState {
    nibbles: NibbleCounts,
    groups: CscState,
    /// Messages with >= 8 bytes, all windows.
    pub sampled: u32,
    /// Messages with a FUNC byte.
    pub func_messages: u32,
    /// ... of which with a known FUNC value.
    pub known: u32,
    /// Consecutive messages whose ID could be compared, and those whose ID
    /// changed.
    pub id_pairs: u32,
    /// See `id_pairs`.
    pub id_changes: u32,
    last_id: Option<u16>,
    peers: [u32; PEER_SLOTS],
    peer_count: u8,
    /// Flows seen (first packet of a flow at this endpoint).
    pub flows: u32,
    last_seen: Timestamp,
    recognised: bool,
}

impl EndpointState {
    fn new(now: Timestamp) -> Self {
        EndpointState {
            nibbles: NibbleCounts::default(),
            groups: CscState::default(),
            sampled: 0,
            func_messages: 0,
            known: 0,
            id_pairs: 0,
            id_changes: 0,
            last_id: None,
            peers: [0; PEER_SLOTS],
            peer_count: 0,
            flows: 0,
            last_seen: now,
            recognised: false,
        }
    }

    /// Distinct peers seen (saturates at 16).
    pub fn peers(&self) -> u32 {
        u32::from(self.peer_count)
    }

    /// The chi2 of the current window's 16 groups (for reports).
    pub fn chi2(&self) -> [f64; CSC_GROUPS] {
        chi_squares(&self.nibbles)
    }

    /// The groups the sequential tests have called structured (bit g).
    pub fn structured_groups(&self) -> u16 {
        self.groups.structured
    }
}

/// Why an endpoint does or does not match the signature.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointCheck {
    /// Every condition holds.
    Skype,
    /// Fewer messages than `min_packets`.
    TooFewMessages,
    /// Fewer peers than `min_peers`.
    TooFewPeers,
    /// Too few known FUNC values.
    UnknownFunc,
    /// The FUNC nibble is not structured.
    FuncNotFixed,
    /// The body is not random.
    BodyNotRandom,
    /// The message ID does not change from message to message.
    IdNotChanging,
}

/// Checks an endpoint against the signature.
pub fn check(s: &EndpointState, cfg: &EndpointConfig) -> EndpointCheck {
    if s.sampled < cfg.min_packets {
        return EndpointCheck::TooFewMessages;
    }
    if s.peers() < cfg.min_peers {
        return EndpointCheck::TooFewPeers;
    }
    if s.func_messages == 0
        || f64::from(s.known) < cfg.min_known_func_share * f64::from(s.func_messages)
    {
        return EndpointCheck::UnknownFunc;
    }
    let (lo, hi) = cfg.body_groups;
    let body = (lo..=hi.min(CSC_GROUPS - 1)).fold(0u16, |m, g| m | (1 << g));
    if s.groups.structured & body != 0 {
        return EndpointCheck::BodyNotRandom;
    }
    if s.groups.structured & (1 << cfg.func_group.min(CSC_GROUPS - 1)) == 0 {
        return EndpointCheck::FuncNotFixed;
    }
    if s.id_pairs == 0 || f64::from(s.id_changes) < cfg.min_id_change_share * f64::from(s.id_pairs)
    {
        return EndpointCheck::IdNotChanging;
    }
    EndpointCheck::Skype
}

/// A set that keeps at most `capacity` members, forgetting the oldest
/// first, and counts what it forgot.
#[derive(Debug, Clone)]
pub(crate) struct BoundedSet<T: Hash + Eq + Copy> {
    members: HashSet<T, RandomState>,
    order: VecDeque<T>,
    capacity: usize,
    forgotten: u64,
}

impl<T: Hash + Eq + Copy> BoundedSet<T> {
    /// An empty set of at most `capacity` (at least 1) members.
    pub fn new(capacity: usize) -> Self {
        BoundedSet {
            members: HashSet::with_hasher(RandomState::new()),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            forgotten: 0,
        }
    }

    /// Adds a member (the oldest goes when full); false if it was there.
    pub fn insert(&mut self, x: T) -> bool {
        if self.members.contains(&x) {
            return false;
        }
        if self.order.len() >= self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.members.remove(&old);
                self.forgotten += 1;
            }
        }
        self.members.insert(x);
        self.order.push_back(x);
        true
    }

    /// Whether `x` is a member.
    pub fn contains(&self, x: &T) -> bool {
        self.members.contains(x)
    }

    /// Members, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.order.iter()
    }

    /// Members held.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Members forgotten to keep the bound.
    pub fn forgotten(&self) -> u64 {
        self.forgotten
    }
}

/// Whether a TCP flow's first payload is random from its first byte: no
/// known protocol's framing (TLS records, text protocols such as HTTP, SMTP
/// or SSH, BitTorrent's plaintext handshake) and no structure in the
/// nibbles of its first [`TCP_FIRST_PAYLOAD_BYTES`] bytes by the sequential group test (at least 16
/// bytes). Skype's TCP is RC4 from the first byte (method.md §1).
#[doc(hidden)]
pub fn encrypted_from_first_byte(payload: &[u8], tests: &GroupTests) -> bool {
    if payload.len() < 16 {
        return false;
    }
    let tls = matches!(payload, [0x14..=0x18, 0x03, 0x00..=0x04, ..]);
    let bittorrent = payload.starts_with(b"\x13BitTorrent protocol");
    let head = &payload[..payload.len().min(32)];
    let text = head
        .iter()
        .filter(|&&b| (0x20..0x7F).contains(&b) || matches!(b, b'\r' | b'\n' | b'\t'))
        .count();
    if tls || bittorrent || text * 10 >= head.len() * 9 {
        return false;
    }
    let mut counts = [0u32; NIBBLE_VALUES];
    for &b in &payload[..payload.len().min(TCP_FIRST_PAYLOAD_BYTES)] {
        counts[usize::from(b & 0x0F)] += 1;
        counts[usize::from(b >> 4)] += 1;
    }
    tests.log_e_value_of(&counts) < tests.boundary(1)
}

/// An endpoint seen in one message so far: that message, to be replayed
/// into a full [`EndpointState`] when a second one comes. Most endpoints of
/// a link never send a second (a scan, a flood, a client's one DNS query):
/// a newcomer costs a map entry instead of a 400-byte state and its group
/// tests (issue 19). The replay gives the state the very evidence it would
/// have had, as long as one message cannot make a client
/// (`min_packets` and `min_peers` at least 2, the defaults 24 and 5);
/// otherwise every endpoint gets a full state at once.
#[derive(Debug, Clone, Copy)]
struct Newcomer {
    /// Its first payload bytes (up to [`CSC_BYTES`]) and how many.
    head: [u8; CSC_BYTES],
    len: u8,
    new_flow: bool,
    peer_hash: u32,
    seen: Timestamp,
}

impl Newcomer {
    fn payload(&self) -> &[u8] {
        &self.head[..usize::from(self.len).min(CSC_BYTES)]
    }
}

/// What the table holds of an endpoint.
#[derive(Debug, Clone, Copy)]
enum Entry {
    /// One message so far.
    New(Newcomer),
    /// More: its state, in the table's slab.
    Full(u32),
}

/// The endpoints of a capture or a live link, bounded in number.
pub struct EndpointTable {
    config: EndpointConfig,
    tests: GroupTests,
    known: FuncSet,
    map: HashMap<EndpointKey, Entry, RandomState>,
    /// Newcomers in the order they came (key and first message time, to
    /// tell a newcomer still waiting from one that has since grown or gone):
    /// when the table is full, the oldest newcomer makes room, at the cost
    /// of one lookup (issue 19: a flood of one-message sources had every
    /// quarter of the table sorted by age). At most `max_endpoints`.
    arrivals: VecDeque<(EndpointKey, Timestamp)>,
    /// The states of the endpoints past their first message (a slab: no
    /// allocation per endpoint once it has grown), and its free places.
    states: Vec<EndpointState>,
    free: Vec<u32>,
    /// Recognised clients, Skype peers and their ports (below).
    /// Endpoints recognised as Skype clients (kept after their evidence is
    /// forgotten, so that flows reported later still get their verdict).
    recognised: BoundedSet<EndpointKey>,
    /// Addresses of recognised clients (for host-level TCP evidence).
    hosts: BoundedSet<IpAddr>,
    /// Endpoints that exchanged Skype messages with a recognised client.
    peers: BoundedSet<EndpointKey>,
    /// (A recognised client's address, the port of one of its Skype peers):
    /// the ports the client's Skype talks to (late-era supernodes listen on
    /// a range of a few dozen, method.md §9).
    peer_ports: BoundedSet<(IpAddr, u16)>,
    hasher: RandomState,
}

impl EndpointTable {
    /// An empty table for a method's configuration.
    pub fn new(config: &MethodConfig) -> Self {
        let e = &config.endpoint;
        EndpointTable {
            config: e.clone(),
            tests: GroupTests::new(&config.csc),
            known: FuncSet::of(&config.dft.func_known),
            map: HashMap::with_hasher(RandomState::new()),
            arrivals: VecDeque::new(),
            states: Vec::new(),
            free: Vec::new(),
            recognised: BoundedSet::new(e.max_recognised),
            hosts: BoundedSet::new(e.max_recognised),
            peers: BoundedSet::new(e.max_recognised),
            peer_ports: BoundedSet::new(e.max_recognised),
            hasher: RandomState::new(),
        }
    }

    /// The endpoint configuration.
    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    /// Endpoints held (newcomers included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Whether an endpoint has been recognised as a Skype client.
    pub fn is_recognised(&self, key: &EndpointKey) -> bool {
        self.recognised.contains(key)
    }

    /// Endpoints recognised and remembered, oldest first.
    pub fn recognised(&self) -> impl Iterator<Item = &EndpointKey> {
        self.recognised.iter()
    }

    /// Recognised clients remembered now (at most `max_recognised`).
    pub fn recognised_len(&self) -> usize {
        self.recognised.len()
    }

    /// Recognised clients, Skype peers and peer ports forgotten to keep
    /// the bound.
    pub fn forgotten(&self) -> u64 {
        self.recognised.forgotten() + self.peers.forgotten() + self.peer_ports.forgotten()
    }

    /// Records that `peer` exchanged Skype messages with the recognised
    /// client `client` (their flow took the client's verdict).
    pub fn add_skype_peer(&mut self, client: EndpointKey, peer: EndpointKey) {
        if !self.recognised.contains(&peer) {
            self.peers.insert(peer);
            self.peer_ports.insert((client.ip, peer.port));
        }
    }

    /// Whether a TCP flow between `a` and `b` is tied to a Skype client: an
    /// end is a recognised client's Skype port, or one of its Skype peers,
    /// or the flow goes from a recognised client's address to a port its
    /// Skype peers use; with `host_level_tcp`, any port of a recognised
    /// client's address ties it.
    pub fn ties_tcp(&self, a: &EndpointKey, b: &EndpointKey) -> bool {
        let end = |e: &EndpointKey| {
            self.recognised.contains(e)
                || self.peers.contains(e)
                || (self.config.host_level_tcp && self.hosts.contains(&e.ip))
        };
        end(a)
            || end(b)
            || self.peer_ports.contains(&(a.ip, b.port))
            || self.peer_ports.contains(&(b.ip, a.port))
    }

    /// Bytes an endpoint past its first message costs in the table: key,
    /// entry, state and the hash map's control byte (the map's spare
    /// capacity, up to an eighth, is not counted): the most an endpoint
    /// costs.
    pub fn bytes_per_endpoint() -> usize {
        Self::bytes_per_newcomer() + std::mem::size_of::<EndpointState>()
    }

    /// Bytes an endpoint seen in one message costs (key, entry and control
    /// byte, and its place in the order of arrival).
    pub fn bytes_per_newcomer() -> usize {
        Self::bytes_per_map_entry() + std::mem::size_of::<(EndpointKey, Timestamp)>()
    }

    /// Bytes of a map entry: key, entry and control byte.
    fn bytes_per_map_entry() -> usize {
        std::mem::size_of::<(EndpointKey, Entry)>() + 1
    }

    /// Heap bytes the table holds now: the map (at its capacity, a control
    /// byte an entry), the slab of states, and the sets of recognised
    /// clients, hosts, peers and peer ports (at their members' size).
    pub fn heap_bytes(&self) -> usize {
        let set = |n: usize, each: usize| n * (2 * each + 1);
        self.map.capacity() * Self::bytes_per_map_entry()
            + self.arrivals.capacity() * std::mem::size_of::<(EndpointKey, Timestamp)>()
            + self.states.capacity() * std::mem::size_of::<EndpointState>()
            + self.free.capacity() * std::mem::size_of::<u32>()
            + set(self.recognised.len(), std::mem::size_of::<EndpointKey>())
            + set(self.hosts.len(), std::mem::size_of::<IpAddr>())
            + set(self.peers.len(), std::mem::size_of::<EndpointKey>())
            + set(self.peer_ports.len(), std::mem::size_of::<(IpAddr, u16)>())
    }

    /// Endpoints held past their first message (with a full state).
    pub fn full_len(&self) -> usize {
        self.states.len() - self.free.len()
    }

    /// The state of an endpoint past its first message, if held.
    pub fn get(&self, key: &EndpointKey) -> Option<&EndpointState> {
        match self.map.get(key)? {
            Entry::Full(i) => self.states.get(*i as usize),
            Entry::New(_) => None,
        }
    }

    fn peer_hash(&self, ip: &IpAddr) -> u32 {
        (self.hasher.hash_one(ip) as u32) | 1
    }

    /// When an endpoint was last seen.
    fn last_seen(states: &[EndpointState], e: &Entry) -> Timestamp {
        match e {
            Entry::New(n) => n.seen,
            Entry::Full(i) => states
                .get(*i as usize)
                .map_or(Timestamp(i64::MIN), |s| s.last_seen),
        }
    }

    /// Forgets the oldest newcomer still waiting for its second message;
    /// false if there is none.
    fn forget_oldest_newcomer(&mut self) -> bool {
        while let Some((key, seen)) = self.arrivals.pop_front() {
            if let MapEntry::Occupied(o) = self.map.entry(key) {
                if matches!(o.get(), Entry::New(n) if n.seen == seen) {
                    o.remove();
                    return true;
                }
            }
        }
        false
    }

    /// Makes room: forgets idle endpoints, then the oldest quarter.
    fn make_room(&mut self, now: Timestamp) {
        let timeout = self.config.idle_timeout_seconds;
        let EndpointTable {
            map, states, free, ..
        } = self;
        let mut keep = |e: &Entry, alive: bool| {
            if !alive {
                if let Entry::Full(i) = e {
                    free.push(*i);
                }
            }
            alive
        };
        map.retain(|_, e| keep(e, now.secs_since(Self::last_seen(states, e)) < timeout));
        if map.len() >= self.config.max_endpoints {
            let mut ages: Vec<Timestamp> =
                map.values().map(|e| Self::last_seen(states, e)).collect();
            let quarter = ages.len() / 4;
            if quarter < ages.len() {
                ages.select_nth_unstable(quarter);
            }
            if let Some(&cut) = ages.get(quarter) {
                map.retain(|_, e| keep(e, Self::last_seen(states, e) > cut));
            }
        }
    }

    /// Reads `key`'s entry and prefetches its state, ahead of the
    /// [`EndpointTable::observe`] of a message it will see (a burst's
    /// look-ahead): changes nothing.
    #[inline]
    pub fn prefetch(&self, key: &EndpointKey) {
        if let Some(Entry::Full(i)) = self.map.get(key) {
            if let Some(s) = self.states.get(*i as usize) {
                crate::flow::prefetch_lines(s, std::mem::size_of::<EndpointState>());
            }
        }
    }

    /// Accounts one UDP message at endpoint `local`, exchanged with `peer`.
    /// `new_flow` says it is the flow's first message at this endpoint.
    /// Returns true when this message made the endpoint recognised.
    pub fn observe(
        &mut self,
        now: Timestamp,
        local: EndpointKey,
        peer: EndpointKey,
        new_flow: bool,
        payload: &[u8],
    ) -> bool {
        if !self.config.enabled || payload.len() < 3 {
            return false;
        }
        let max = self.config.max_endpoints.max(1);
        if self.map.len() >= max && !self.map.contains_key(&local) && !self.forget_oldest_newcomer()
        {
            self.make_room(now);
        }
        let peer_hash = self.peer_hash(&peer.ip);
        // One message cannot make a client: the first waits as a newcomer.
        let probation = self.config.min_packets >= 2 && self.config.min_peers >= 2;
        let EndpointTable {
            map,
            states,
            free,
            arrivals,
            ..
        } = self;
        let mut new_state = |at: Timestamp| match free.pop() {
            Some(i) => {
                if let Some(s) = states.get_mut(i as usize) {
                    *s = EndpointState::new(at);
                }
                i
            }
            None => {
                states.push(EndpointState::new(at));
                (states.len() - 1) as u32
            }
        };
        // One lookup: the entry, whatever it holds.
        let (index, replay) = match map.entry(local) {
            MapEntry::Occupied(mut o) => match *o.get() {
                Entry::Full(i) => (i, None),
                Entry::New(n) => {
                    let i = new_state(n.seen);
                    o.insert(Entry::Full(i));
                    (i, Some(n))
                }
            },
            MapEntry::Vacant(v) if probation => {
                let mut head = [0u8; CSC_BYTES];
                let len = payload.len().min(CSC_BYTES);
                head[..len].copy_from_slice(&payload[..len]);
                v.insert(Entry::New(Newcomer {
                    head,
                    len: len as u8,
                    new_flow,
                    peer_hash,
                    seen: now,
                }));
                if arrivals.len() >= max {
                    // The oldest loses its place (make_room still reaches it).
                    arrivals.pop_front();
                }
                arrivals.push_back((local, now));
                return false;
            }
            MapEntry::Vacant(v) => {
                let i = new_state(now);
                v.insert(Entry::Full(i));
                (i, None)
            }
        };
        let (known, tests, config) = (self.known, &self.tests, &self.config);
        let Some(s) = self.states.get_mut(index as usize) else {
            return false;
        };
        if let Some(n) = replay {
            account(
                s,
                n.seen,
                n.peer_hash,
                n.new_flow,
                n.payload(),
                known,
                tests,
                config,
            );
        }
        account(s, now, peer_hash, new_flow, payload, known, tests, config);
        if s.recognised {
            return false;
        }
        if check(s, &self.config) == EndpointCheck::Skype {
            s.recognised = true;
            self.recognised.insert(local);
            self.hosts.insert(local.ip);
            return true;
        }
        false
    }
}

/// One message's evidence into an endpoint's state (a state idle past the
/// timeout starts over).
#[allow(clippy::too_many_arguments)]
#[inline]
fn account(
    s: &mut EndpointState,
    now: Timestamp,
    peer_hash: u32,
    new_flow: bool,
    payload: &[u8],
    known: FuncSet,
    tests: &GroupTests,
    config: &EndpointConfig,
) {
    if now.secs_since(s.last_seen) >= config.idle_timeout_seconds {
        *s = EndpointState::new(now);
    }
    if now > s.last_seen {
        s.last_seen = now;
    }
    let (Some(&id0), Some(&id1), Some(&func)) = (payload.first(), payload.get(1), payload.get(2))
    else {
        return;
    };
    s.func_messages = s.func_messages.saturating_add(1);
    if known.contains(func) {
        s.known = s.known.saturating_add(1);
    }
    let id = u16::from_be_bytes([id0, id1]);
    if let Some(last) = s.last_id {
        s.id_pairs = s.id_pairs.saturating_add(1);
        s.id_changes = s.id_changes.saturating_add(u32::from(id != last));
    }
    s.last_id = Some(id);
    if let Some(head) = payload
        .get(..CSC_BYTES)
        .and_then(|h| <&[u8; CSC_BYTES]>::try_from(h).ok())
    {
        if s.nibbles.is_full() {
            s.nibbles.clear();
        }
        s.nibbles.add(head);
        s.sampled = s.sampled.saturating_add(1);
        let window = window_index(&s.nibbles, s.sampled);
        s.groups.look(&s.nibbles, window, tests);
    }
    let n = usize::from(s.peer_count);
    if n < PEER_SLOTS && !s.peers[..n].contains(&peer_hash) {
        s.peers[n] = peer_hash;
        s.peer_count += 1;
    }
    if new_flow {
        s.flows = s.flows.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CscConfig;

    fn ep(last: u8, port: u16) -> EndpointKey {
        EndpointKey {
            ip: IpAddr::from([10, 0, 0, last]),
            port,
        }
    }

    struct Rng(u64);
    impl Rng {
        fn bytes(&mut self) -> [u8; 8] {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0.to_le_bytes()
        }
    }

    fn table() -> EndpointTable {
        EndpointTable::new(&MethodConfig::default())
    }

    #[test]
    fn skype_client_port_is_recognised() {
        let mut t = table();
        let mut r = Rng(9);
        let me = ep(1, 33033);
        let mut hit = false;
        for i in 0..60u8 {
            let mut m = r.bytes();
            m[2] = 0x02;
            let peer = ep(100 + i % 30, 40000 + u16::from(i % 30));
            hit |= t.observe(Timestamp(i64::from(i) * 1000), me, peer, i < 30, &m);
        }
        assert!(hit);
        assert!(t.is_recognised(&me));
    }

    /// A late-era client: one unanswered login message to each of many
    /// servers, all on one port, IDs counting up.
    #[test]
    fn one_way_login_to_one_port_is_recognised() {
        let mut t = table();
        let mut r = Rng(3);
        let me = ep(1, 41234);
        for i in 0..40u16 {
            let mut m = r.bytes();
            m[..2].copy_from_slice(&(500 + 2 * i).to_be_bytes());
            m[2] = (m[2] & 0x70) | 0x02;
            t.observe(Timestamp(i64::from(i)), me, ep(i as u8, 33033), true, &m);
        }
        assert!(t.is_recognised(&me));
    }

    #[test]
    fn clients_of_single_services_are_not() {
        let mut t = table();
        let mut r = Rng(5);
        let dns = ep(53, 5353);
        let game = ep(7, 27016);
        let ntp = ep(8, 123);
        for i in 0..200u16 {
            let id = r.bytes();
            let q = [id[0], id[1], 0x01, 0x00, 0x00, 0x01, 0x00, 0x00];
            let server = ep((i % 50) as u8, 53);
            t.observe(Timestamp(i64::from(i)), dns, server, true, &q);
            t.observe(Timestamp(i64::from(i)), game, server, i < 50, &r.bytes());
            // NTP with poll 7: byte 2 = 0x07, a known FUNC value.
            let ntp_msg = [0x23, 0x00, 0x07, 0xEC, 0, 0, 0, 0];
            t.observe(
                Timestamp(i64::from(i)),
                ntp,
                ep(i as u8, 123),
                true,
                &ntp_msg,
            );
        }
        for (e, why) in [
            (dns, EndpointCheck::UnknownFunc),
            (game, EndpointCheck::UnknownFunc),
            (ntp, EndpointCheck::BodyNotRandom),
        ] {
            assert!(!t.is_recognised(&e));
            assert_eq!(check(t.get(&e).unwrap(), &EndpointConfig::default()), why);
        }
    }

    /// Skype-like bytes 2-7 behind a constant 2-byte magic: the ID does not
    /// change, not a Skype client.
    #[test]
    fn a_constant_id_is_not_skype() {
        let mut t = table();
        let mut r = Rng(11);
        let me = ep(1, 40000);
        for i in 0..100u8 {
            let mut m = r.bytes();
            m[0] = 0xCA;
            m[1] = 0xFE;
            m[2] = 0x02;
            t.observe(Timestamp(i64::from(i)), me, ep(i, 3478), true, &m);
        }
        assert!(!t.is_recognised(&me));
        let s = t.get(&me).unwrap();
        // Bytes 0-1 are structured, which the signature allows (the
        // classic client's counting IDs are); the ID test rejects it.
        assert_eq!(
            check(s, &EndpointConfig::default()),
            EndpointCheck::IdNotChanging
        );
    }

    #[test]
    fn bounded_memory() {
        let mut cfg = MethodConfig::default();
        cfg.endpoint.max_endpoints = 100;
        let mut t = EndpointTable::new(&cfg);
        for i in 0..1000u32 {
            let k = EndpointKey {
                ip: IpAddr::from(i.to_be_bytes()),
                port: 5000,
            };
            t.observe(Timestamp(i64::from(i)), k, ep(1, 1), true, &[1, 2, 3, 4]);
            assert!(t.len() <= 100);
        }
        // A bound of one still works.
        cfg.endpoint.max_endpoints = 1;
        let mut t = EndpointTable::new(&cfg);
        for i in 0..10u32 {
            let k = EndpointKey {
                ip: IpAddr::from(i.to_be_bytes()),
                port: 5000,
            };
            t.observe(
                Timestamp(i64::from(i) * 1_000_000_000),
                k,
                ep(1, 1),
                true,
                &[1, 2, 3],
            );
            assert!(t.len() <= 1);
        }
    }

    #[test]
    fn a_full_table_forgets_its_oldest_newcomer_first() {
        let mut cfg = MethodConfig::default();
        cfg.endpoint.max_endpoints = 10;
        let mut t = EndpointTable::new(&cfg);
        let key = |i: u32| EndpointKey {
            ip: IpAddr::from((0x0A00_0000 | i).to_be_bytes()),
            port: 5000,
        };
        let mut now = 0i64;
        let mut send = |t: &mut EndpointTable, i: u32| {
            now += 1;
            t.observe(Timestamp(now), key(i), ep(1, 1), true, &[1, 2, 3, 4]);
        };
        // Four endpoints of two messages, six newcomers: full.
        for i in 0..4 {
            send(&mut t, i);
            send(&mut t, i);
        }
        for i in 4..10 {
            send(&mut t, i);
        }
        assert_eq!((t.len(), t.full_len()), (10, 4));
        // Each stranger takes the place of the oldest newcomer.
        for i in 10..16 {
            send(&mut t, i);
            assert_eq!(t.len(), 10);
            assert!(!t.map.contains_key(&key(i - 6)), "newcomer {} stays", i - 6);
        }
        assert_eq!(t.full_len(), 4);
        for i in 0..4 {
            assert!(t.get(&key(i)).is_some(), "endpoint {i} was forgotten");
        }
        // A newcomer that grew is not forgotten for its place in line.
        send(&mut t, 10);
        send(&mut t, 16);
        assert!(t.get(&key(10)).is_some());
        assert!(!t.map.contains_key(&key(11)));
        // With no newcomer left, the idle quarter goes.
        let mut t = EndpointTable::new(&cfg);
        for i in 0..10 {
            send(&mut t, i);
            send(&mut t, i);
        }
        send(&mut t, 99);
        assert!(t.len() <= 10 && t.map.contains_key(&key(99)));
        assert!(!t.map.contains_key(&key(0)) && t.get(&key(9)).is_some());
    }

    #[test]
    fn the_recognised_set_is_bounded_oldest_first() {
        let mut s = BoundedSet::new(3);
        for i in 0..5u32 {
            assert!(s.insert(i));
        }
        assert!(!s.insert(4));
        assert_eq!(s.len(), 3);
        assert_eq!(s.forgotten(), 2);
        assert!(!s.contains(&0) && !s.contains(&1) && s.contains(&2));
        assert_eq!(s.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
    }

    #[test]
    fn first_payload_framings() {
        let tests = GroupTests::new(&CscConfig::default());
        let mut r = Rng(1);
        let mut random = Vec::new();
        for _ in 0..12 {
            random.extend_from_slice(&r.bytes());
        }
        assert!(encrypted_from_first_byte(&random, &tests));
        let mut tls = random.clone();
        tls[..3].copy_from_slice(&[0x16, 0x03, 0x01]);
        assert!(!encrypted_from_first_byte(&tls, &tests));
        let http = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        assert!(!encrypted_from_first_byte(http, &tests));
        let mut bt = b"\x13BitTorrent protocol".to_vec();
        bt.extend_from_slice(&random);
        assert!(!encrypted_from_first_byte(&bt, &tests));
        // Binary with structure: mostly zero bytes.
        let mut zeros = vec![0u8; 96];
        zeros[10] = 7;
        assert!(!encrypted_from_first_byte(&zeros, &tests));
        assert!(!encrypted_from_first_byte(&random[..15], &tests));
    }
}
