//! Endpoint correlation: the evidence of a UDP endpoint (address and port),
//! aggregated over all its flows.
//!
//! A classic Skype client sends all its UDP through one port to many peers,
//! in flows of 1 to 5 packets: too short for a per-flow test, while the port
//! as a whole carries hundreds of messages of one framing (method.md §6). The
//! endpoint signature is built from that framing:
//! - nearly every message carries a known FUNC value in byte 2,
//! - the FUNC byte's low nibble (group 4) is deterministic,
//! - the encrypted body, bytes 3 to 7 (groups 6-15), is random,
//! - the endpoint talks to many distinct peers,
//! - and it is not a server: its port is not a well-known one, and its flows
//!   do not all go to one remote service port.
//!
//! The numbers are in [`crate::config::EndpointConfig`].

use ahash::RandomState;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use serde::Serialize;

use crate::config::{CscConfig, EndpointConfig, CSC_BYTES, CSC_GROUPS, FUNC_MASK};
use crate::csc::chi_squares;
use crate::features::{FuncCounts, NibbleCounts};
use crate::packet::Timestamp;

/// A UDP endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct EndpointKey {
    /// Address.
    pub ip: IpAddr,
    /// UDP port.
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
    /// Messages with >= 8 bytes, all windows.
    pub sampled: u32,
    /// Messages with a FUNC byte.
    pub func_messages: u32,
    /// ... of which with a known FUNC value.
    pub known: u32,
    peers: [u32; PEER_SLOTS],
    peer_count: u8,
    peer_ports: [u16; PEER_SLOTS],
    peer_port_counts: [u16; PEER_SLOTS],
    /// Flows seen (first packet of a flow at this endpoint).
    pub flows: u32,
    last_seen: Timestamp,
    recognised: bool,
}

impl EndpointState {
    fn new(now: Timestamp) -> Self {
        EndpointState {
            nibbles: NibbleCounts::default(),
            sampled: 0,
            func_messages: 0,
            known: 0,
            peers: [0; PEER_SLOTS],
            peer_count: 0,
            peer_ports: [0; PEER_SLOTS],
            peer_port_counts: [0; PEER_SLOTS],
            flows: 0,
            last_seen: now,
            recognised: false,
        }
    }

    /// Distinct peers seen (saturates at 16).
    pub fn peers(&self) -> u32 {
        u32::from(self.peer_count)
    }

    /// The chi2 of the current window's 16 groups.
    pub fn chi2(&self) -> [f64; CSC_GROUPS] {
        chi_squares(&self.nibbles)
    }

    /// The largest share of this endpoint's flows that go to one remote port.
    pub fn same_peer_port_share(&self) -> f64 {
        let max = self.peer_port_counts.iter().copied().max().unwrap_or(0);
        if self.flows == 0 {
            0.0
        } else {
            f64::from(max) / f64::from(self.flows)
        }
    }
}

/// Why an endpoint does or does not match the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndpointCheck {
    /// Every condition holds.
    Skype,
    /// Fewer messages than `min_packets`.
    TooFewMessages,
    /// Fewer peers than `min_peers`.
    TooFewPeers,
    /// A well-known port or one dominant remote service port.
    Server,
    /// Too few known FUNC values.
    UnknownFunc,
    /// The FUNC nibble is not deterministic.
    FuncNotFixed,
    /// The body is not random.
    BodyNotRandom,
}

/// Checks an endpoint against the signature.
pub fn check(
    key: &EndpointKey,
    s: &EndpointState,
    cfg: &EndpointConfig,
    csc: &CscConfig,
) -> EndpointCheck {
    if s.sampled < cfg.min_packets || s.nibbles.samples() < cfg.min_packets {
        return EndpointCheck::TooFewMessages;
    }
    if s.peers() < cfg.min_peers {
        return EndpointCheck::TooFewPeers;
    }
    if key.port <= cfg.server_port_max || s.same_peer_port_share() > cfg.max_same_peer_port_share {
        return EndpointCheck::Server;
    }
    if s.func_messages == 0
        || f64::from(s.known) < cfg.min_known_func_share * f64::from(s.func_messages)
    {
        return EndpointCheck::UnknownFunc;
    }
    let chi2 = s.chi2();
    if chi2[cfg.func_group] < csc.deterministic_threshold {
        return EndpointCheck::FuncNotFixed;
    }
    let (lo, hi) = cfg.body_groups;
    if chi2[lo..=hi]
        .iter()
        .any(|&x| x >= csc.deterministic_threshold)
    {
        return EndpointCheck::BodyNotRandom;
    }
    EndpointCheck::Skype
}

/// The endpoints of a capture or a live link, bounded in number.
pub struct EndpointTable {
    config: EndpointConfig,
    csc: CscConfig,
    known_mask: u32,
    map: HashMap<EndpointKey, EndpointState, RandomState>,
    /// Endpoints recognised so far (kept after they are forgotten, so that
    /// flows reported later still get their verdict).
    recognised: HashSet<EndpointKey, RandomState>,
    hasher: RandomState,
}

impl EndpointTable {
    /// An empty table.
    pub fn new(config: EndpointConfig, csc: CscConfig, known_func: &[u8]) -> Self {
        EndpointTable {
            config,
            csc,
            known_mask: crate::features::func_mask(known_func),
            map: HashMap::with_hasher(RandomState::new()),
            recognised: HashSet::with_hasher(RandomState::new()),
            hasher: RandomState::new(),
        }
    }

    /// Endpoints held.
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

    /// Endpoints recognised so far.
    pub fn recognised(&self) -> impl Iterator<Item = &EndpointKey> {
        self.recognised.iter()
    }

    /// The state of an endpoint, if held.
    pub fn get(&self, key: &EndpointKey) -> Option<&EndpointState> {
        self.map.get(key)
    }

    fn peer_hash(&self, ip: &IpAddr) -> u32 {
        (self.hasher.hash_one(ip) as u32) | 1
    }

    /// Makes room: forgets idle endpoints, then the oldest quarter.
    fn make_room(&mut self, now: Timestamp) {
        let timeout = self.config.idle_timeout_seconds;
        self.map
            .retain(|_, s| now.secs_since(s.last_seen) < timeout);
        if self.map.len() >= self.config.max_endpoints {
            let mut ages: Vec<Timestamp> = self.map.values().map(|s| s.last_seen).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 4];
            self.map.retain(|_, s| s.last_seen > cut);
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
        if !self.map.contains_key(&local) && self.map.len() >= self.config.max_endpoints.max(1) {
            self.make_room(now);
        }
        let peer_hash = self.peer_hash(&peer.ip);
        let known_mask = self.known_mask;
        let s = self
            .map
            .entry(local)
            .or_insert_with(|| EndpointState::new(now));
        if now.secs_since(s.last_seen) >= self.config.idle_timeout_seconds {
            *s = EndpointState::new(now);
        }
        if now > s.last_seen {
            s.last_seen = now;
        }
        s.func_messages = s.func_messages.saturating_add(1);
        if known_mask & (1u32 << FuncCounts::slot(payload[2] & FUNC_MASK)) != 0 {
            s.known = s.known.saturating_add(1);
        }
        if let Some(head) = payload
            .get(..CSC_BYTES)
            .and_then(|h| <&[u8; CSC_BYTES]>::try_from(h).ok())
        {
            if s.nibbles.is_full() {
                s.nibbles.clear();
            }
            s.nibbles.add(head);
            s.sampled = s.sampled.saturating_add(1);
        }
        if new_flow {
            s.flows = s.flows.saturating_add(1);
            let n = usize::from(s.peer_count);
            if n < PEER_SLOTS && !s.peers[..n].contains(&peer_hash) {
                s.peers[n] = peer_hash;
                s.peer_count += 1;
            }
            if let Some(i) = s.peer_ports.iter().position(|&p| p == peer.port) {
                s.peer_port_counts[i] = s.peer_port_counts[i].saturating_add(1);
            } else if let Some(i) = s.peer_port_counts.iter().position(|&c| c == 0) {
                s.peer_ports[i] = peer.port;
                s.peer_port_counts[i] = 1;
            }
        }
        if s.recognised {
            return false;
        }
        if check(&local, s, &self.config, &self.csc) == EndpointCheck::Skype {
            s.recognised = true;
            self.recognised.insert(local);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let d = crate::config::DftConfig::default();
        EndpointTable::new(
            EndpointConfig::default(),
            CscConfig::default(),
            &d.func_known,
        )
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

    #[test]
    fn dns_server_and_random_udp_are_not() {
        let mut t = table();
        let mut r = Rng(5);
        let dns = ep(53, 53);
        let game = ep(7, 27015);
        for i in 0..200u16 {
            let id = r.bytes();
            let q = [id[0], id[1], 0x01, 0x00, 0x00, 0x01, 0x00, 0x00];
            let client = ep((i % 50) as u8, 50000 + i);
            t.observe(Timestamp(i64::from(i)), dns, client, true, &q);
            t.observe(Timestamp(i64::from(i)), game, client, i < 50, &r.bytes());
        }
        assert!(!t.is_recognised(&dns));
        assert!(!t.is_recognised(&game));
        let s = t.get(&game).unwrap();
        assert_eq!(
            check(&game, s, &EndpointConfig::default(), &CscConfig::default()),
            EndpointCheck::UnknownFunc
        );
    }

    #[test]
    fn server_guard() {
        // Skype-like framing, but every flow goes to one service port: a
        // server for many clients, not a Skype client.
        let mut t = table();
        let mut r = Rng(11);
        let me = ep(1, 40000);
        for i in 0..100u8 {
            let mut m = r.bytes();
            m[2] = 0x02;
            t.observe(Timestamp(i64::from(i)), me, ep(i, 3478), true, &m);
        }
        assert!(!t.is_recognised(&me));
        assert_eq!(
            check(
                &me,
                t.get(&me).unwrap(),
                &EndpointConfig::default(),
                &CscConfig::default()
            ),
            EndpointCheck::Server
        );
    }

    #[test]
    fn bounded_memory() {
        let cfg = EndpointConfig {
            max_endpoints: 100,
            ..EndpointConfig::default()
        };
        let mut t = EndpointTable::new(cfg, CscConfig::default(), &[2]);
        for i in 0..1000u32 {
            let k = EndpointKey {
                ip: IpAddr::from(i.to_be_bytes()),
                port: 5000,
            };
            t.observe(Timestamp(i64::from(i)), k, ep(1, 1), true, &[1, 2, 3, 4]);
            assert!(t.len() <= 100);
        }
    }
}
