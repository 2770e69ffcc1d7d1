//! The flow table: one entry per bidirectional 5-tuple, with idle timeouts,
//! TCP close, a bound on the number of flows, and nothing dropped silently.
//!
//! The table is generic over the per-flow state `T` it carries, so it knows
//! nothing of the classifiers. Each flow's key, counters and state live in
//! one slab slot; an index of 4-byte slot numbers finds them (open
//! addressing under a hash with secret random keys: crafted 5-tuples cannot
//! flood one bucket), and intrusive lists ordered by last activity, one per
//! timeout, give idle expiry and eviction of the longest idle in O(1) per
//! packet. A lookup can be prefetched in stages (index entry, slot, state)
//! for bursts of packets ([`FlowTable::prefetch_index`]).

use ahash::RandomState;
use std::net::IpAddr;

use crate::config::FlowTableConfig;
use crate::packet::{Packet, Timestamp, Transport};
use crate::tunnel::{Tunnel, TunnelIndex, NO_TUNNEL, UNNUMBERED};

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

impl std::fmt::Display for FlowKey {
    /// `udp 10.0.0.1:5000 -> [2001:db8::1]:443`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ep = |ip: &std::net::IpAddr, port: u16| match ip {
            std::net::IpAddr::V4(a) => format!("{a}:{port}"),
            std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
        };
        write!(
            f,
            "{} {} -> {}",
            self.transport.as_str(),
            ep(&self.src_ip, self.src_port),
            ep(&self.dst_ip, self.dst_port)
        )
    }
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
}

/// The canonical 5-tuple as the table stores and indexes it: both addresses
/// as 128-bit numbers (IPv4 mapped into IPv6), the lower (address, port)
/// first, then the ports, and a word with the transport, the tunnel's
/// number ([`crate::tunnel`]) and the slot's flags. Hashing and comparing
/// it costs a few instructions, where the `IpAddr` enums of [`FlowKey`] cost
/// a branch per field. It is stored once per flow, in the flow's slot; the
/// index holds only slot numbers. The slot's flags are not part of its
/// identity.
#[derive(Debug, Clone, Copy)]
struct PackedKey {
    lo: [u64; 2],
    hi: [u64; 2],
    /// Low port in the upper half, high port in the lower.
    ports: u32,
    /// Bit 0: TCP; bit 1: IPv6 (so that an IPv6 flow between IPv4-mapped
    /// addresses is not an IPv4 flow); bits 2-7: the slot's `FLAG_*` bits
    /// (0 in a packet's key); bits 8-31: the tunnel's number (0: none).
    tail: u32,
}

impl PartialEq for PackedKey {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        self.lo == other.lo
            && self.hi == other.hi
            && self.ports == other.ports
            && (self.tail ^ other.tail) & !FLAG_MASK == 0
    }
}

const TAIL_TCP: u32 = 1;
const TAIL_V6: u32 = 2;
const TUNNEL_SHIFT: u32 = 8;

fn addr_bits(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(*a)) | (0xFFFF << 32),
        IpAddr::V6(a) => u128::from(*a),
    }
}

fn split(x: u128) -> [u64; 2] {
    [(x >> 64) as u64, x as u64]
}

fn join(x: [u64; 2]) -> u128 {
    (u128::from(x[0]) << 64) | u128::from(x[1])
}

impl PackedKey {
    /// The canonical key of a packet from `a`:`ap` to `b`:`bp`, and whether
    /// `a`:`ap` is the lower endpoint.
    #[inline]
    fn of(
        transport: Transport,
        a: &IpAddr,
        ap: u16,
        b: &IpAddr,
        bp: u16,
        tunnel: u32,
    ) -> (PackedKey, bool) {
        let (x, y) = ((addr_bits(a), ap), (addr_bits(b), bp));
        let a_is_lo = x <= y;
        let ((lo, lp), (hi, hp)) = if a_is_lo { (x, y) } else { (y, x) };
        let v6 = if a.is_ipv6() { TAIL_V6 } else { 0 };
        let tcp = if transport == Transport::Tcp {
            TAIL_TCP
        } else {
            0
        };
        let key = PackedKey {
            lo: split(lo),
            hi: split(hi),
            ports: (u32::from(lp) << 16) | u32::from(hp),
            tail: (tunnel << TUNNEL_SHIFT) | tcp | v6,
        };
        (key, a_is_lo)
    }

    /// The number of the flow's tunnel (0: none).
    #[inline]
    fn tunnel(&self) -> u32 {
        self.tail >> TUNNEL_SHIFT
    }

    #[inline]
    fn flags(&self) -> u32 {
        self.tail & FLAG_MASK
    }

    #[inline]
    fn hash(&self, hasher: &FlowHasher) -> u64 {
        hasher.hash(self)
    }

    fn transport(&self) -> Transport {
        if self.tail & TAIL_TCP != 0 {
            Transport::Tcp
        } else {
            Transport::Udp
        }
    }

    fn addr(&self, bits: [u64; 2]) -> IpAddr {
        let x = join(bits);
        if self.tail & TAIL_V6 != 0 {
            IpAddr::V6(x.into())
        } else {
            IpAddr::V4((x as u32).into())
        }
    }

    /// The flow key, the lower endpoint as `src` when `lo_first`.
    fn flow_key(&self, lo_first: bool) -> FlowKey {
        let (lo, hi) = (self.addr(self.lo), self.addr(self.hi));
        let (lp, hp) = ((self.ports >> 16) as u16, self.ports as u16);
        let k = FlowKey {
            transport: self.transport(),
            src_ip: lo,
            src_port: lp,
            dst_ip: hi,
            dst_port: hp,
        };
        if lo_first {
            k
        } else {
            k.reversed()
        }
    }
}

/// A packet's flow as the table finds it: the canonical key, which end sent
/// the packet, and the keyed hash of the key (the same for both directions).
/// Made once per packet by the table ([`FlowTable::lookup`]).
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct FlowLookup {
    key: PackedKey,
    hash: u64,
    src_is_lo: bool,
}

impl FlowLookup {
    /// The keyed hash of the flow's key (tests of the hash's spread).
    #[doc(hidden)]
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// The lookup of `p` with `hasher`. A table's index takes the entry's
    /// position from the hash's low bits and its tag from the top 8.
    #[inline]
    pub fn of(p: &Packet<'_>, hasher: &FlowHasher) -> FlowLookup {
        let tunnel = if p.tunnel.is_some() {
            UNNUMBERED
        } else {
            NO_TUNNEL
        };
        Self::in_tunnel(p, hasher, tunnel)
    }

    /// The lookup of `p` in the tunnel numbered `tunnel` (a table's
    /// [`FlowTable::lookup`] numbers it; [`FlowLookup::of`] cannot, and
    /// leaves a tunneled packet's lookup for the table to complete).
    #[inline]
    fn in_tunnel(p: &Packet<'_>, hasher: &FlowHasher, tunnel: u32) -> FlowLookup {
        let (key, src_is_lo) = PackedKey::of(
            p.transport,
            &p.src_ip,
            p.src_port,
            &p.dst_ip,
            p.dst_port,
            tunnel,
        );
        FlowLookup {
            hash: key.hash(hasher),
            key,
            src_is_lo,
        }
    }
}

/// Asks the CPU to bring the `len` bytes at `r` into cache: a hint that
/// never faults and changes nothing observable.
#[inline]
pub(crate) fn prefetch_lines<T: ?Sized>(r: &T, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let base = (r as *const T).cast::<i8>();
        // From the start of the line that holds the first byte, so that
        // the line of the last byte is reached too when `r` is not aligned.
        let lead = base as usize % 64;
        let (base, len) = (base.wrapping_sub(lead), len + lead);
        let mut off = 0;
        while off < len {
            // SAFETY: `_mm_prefetch` is a hint: it does not access memory in
            // the language's sense and cannot fault, whatever the address;
            // `wrapping_add` keeps the pointer arithmetic defined.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    base.wrapping_add(off),
                );
            }
            off += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (r, len);
    }
}

/// The keyed hash of the flow index: folded 64x64-bit multiplies of the
/// key's words mixed with secret random keys (the construction of `ahash`'s
/// and wyhash's portable paths), specialised to the five words of a flow
/// key. Without the keys, crafted 5-tuples cannot be made to collide, so
/// they cannot flood one bucket.
#[derive(Debug, Clone)]
#[doc(hidden)]
pub struct FlowHasher {
    k: [u64; 7],
}

#[inline]
fn fold(a: u64, b: u64) -> u64 {
    let m = u128::from(a) * u128::from(b);
    (m as u64) ^ ((m >> 64) as u64)
}

impl FlowHasher {
    /// A hasher with keys from the operating system's random source (by way
    /// of `ahash`'s random state).
    pub fn new() -> Self {
        let rs = RandomState::new();
        let mut k = [0u64; 7];
        for (i, x) in k.iter_mut().enumerate() {
            // Odd keys: a multiplier of zero would lose a word.
            *x = rs.hash_one(i as u64) | 1;
        }
        FlowHasher { k }
    }

    /// A hasher with the given keys (made odd, as [`FlowHasher::new`]
    /// makes them): for tests and benchmarks that play an attacker who
    /// knows or guessed the keys. A table in use takes [`FlowHasher::new`].
    #[doc(hidden)]
    pub fn with_keys(keys: [u64; 7]) -> Self {
        FlowHasher {
            k: keys.map(|x| x | 1),
        }
    }

    #[inline]
    fn hash(&self, key: &PackedKey) -> u64 {
        let k = &self.k;
        let ports = (u64::from(key.ports) << 32) | u64::from(key.tail & !FLAG_MASK);
        let x = fold(key.lo[0] ^ k[0], key.lo[1] ^ k[1]);
        let y = fold(key.hi[0] ^ k[2], key.hi[1] ^ k[3]);
        let z = fold(ports ^ k[4], k[5]);
        fold(x ^ y.rotate_left(21) ^ z.rotate_left(42), k[6])
    }

    /// A hash of two endpoints (three words each: an address's halves and a
    /// port) and the protocol that does not depend on their order: the sum
    /// of one keyed hash per endpoint, mixed with the protocol. For sharding
    /// (both directions of a flow to the same worker) where building the
    /// canonical key would cost more.
    #[inline]
    pub fn endpoint_pair(&self, a: [u64; 3], b: [u64; 3], proto: u64) -> u64 {
        let k = &self.k;
        let one = |e: [u64; 3]| fold(e[0] ^ k[0], e[1] ^ k[1]) ^ fold(e[2] ^ k[2], k[3]);
        fold(one(a).wrapping_add(one(b)) ^ proto ^ k[4], k[5])
    }

    /// A keyed hash of a packet record's 5-tuple that is the same for both
    /// directions ([`FlowHasher::endpoint_pair`]): what a sharded reader
    /// picks the worker by, without building the flow's key.
    #[inline]
    pub fn record_hash(&self, r: &crate::packet::PacketRecord) -> u64 {
        let (a, b, proto) = r.hash_words();
        self.endpoint_pair(a, b, proto)
    }
}

/// The attack on the flow hash, for the tests and the benchmark that show
/// it fails: `n` distinct UDP 5-tuples (IPv6) that all get the same hash
/// under `keys`. Each of the hash's first two multiplies takes an address's
/// low half xor a key word; an address whose low half is that key word
/// makes the product zero whatever its high half, so the high halves are
/// free and every tuple hashes alike. Against a table whose keys are not
/// these (the secret random keys of [`FlowHasher::new`]), the tuples
/// spread like any others.
#[doc(hidden)]
pub fn colliding_keys(keys: &[u64; 7], n: u64) -> Vec<FlowKey> {
    let k = keys.map(|x| x | 1);
    (0..n.min(1 << 63))
        .map(|i| {
            // The lower endpoint (high half below 2^63) and the higher one.
            let lo = (u128::from(i) << 64) | u128::from(k[1]);
            let hi = (u128::from(i | (1 << 63)) << 64) | u128::from(k[3]);
            FlowKey {
                transport: Transport::Udp,
                src_ip: IpAddr::V6(lo.into()),
                src_port: 40000,
                dst_ip: IpAddr::V6(hi.into()),
                dst_port: 3478,
            }
        })
        .collect()
}

impl Default for FlowHasher {
    fn default() -> Self {
        Self::new()
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
#[non_exhaustive]
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

/// Bits of the slot's flags (kept in `PackedKey::tail`).
const FLAG_LO_FIRST: u32 = 4; // the initiator is the lower endpoint
const FLAG_FIN_LO: u32 = 8; // FIN seen from the lower endpoint
const FLAG_FIN_HI: u32 = 16; // FIN seen from the higher endpoint
const FLAG_RST: u32 = 32;
/// The flow's first packet went the other way through its tunnel from the
/// tunnel as first seen (its record's outer addresses are swapped).
const FLAG_OUTER_REVERSED: u32 = 64;
const FLAG_MASK: u32 = 0xFC;

const NIL: u32 = u32::MAX;

/// The activity lists: one per timeout, so that each is ordered by expiry.
const LIST_UDP: usize = 0;
const LIST_TCP: usize = 1;
const LIST_CLOSED: usize = 2;
const LISTS: usize = 3;

/// A flow is moved to the tail of its list when its activity enters a new
/// period of 2^20 microseconds (1.05 s) of capture time: the lists stay
/// ordered by last activity to within that period (about the one-second
/// granularity of idle expiry), and most packets touch only their own slot.
const RELINK_PERIOD_SHIFT: u32 = 20;

/// One flow in the slab: its key (stored once), counters, TCP close state,
/// activity-list links and the caller's state. Without the state it is 88
/// bytes.
struct Slot<T> {
    /// The key, with the `FLAG_*` bits.
    key: PackedKey,
    counters: FlowCounters,
    prev: u32,
    next: u32,
    state: T,
}

impl<T> Slot<T> {
    fn rst(&self) -> bool {
        self.key.flags() & FLAG_RST != 0
    }

    fn closed(&self) -> bool {
        let fins = FLAG_FIN_LO | FLAG_FIN_HI;
        self.rst() || self.key.flags() & fins == fins
    }

    fn transport(&self) -> Transport {
        self.key.transport()
    }

    /// The list the flow belongs in now.
    fn list(&self) -> usize {
        match self.transport() {
            Transport::Udp => LIST_UDP,
            Transport::Tcp if self.closed() => LIST_CLOSED,
            Transport::Tcp => LIST_TCP,
        }
    }

    fn flow_key(&self) -> FlowKey {
        self.key.flow_key(self.key.flags() & FLAG_LO_FIRST != 0)
    }

    /// How a closed connection ended.
    fn close_reason(&self) -> EndReason {
        if self.rst() {
            EndReason::Rst
        } else {
            EndReason::Fin
        }
    }
}

/// A flow that left the table, with its state.
#[derive(Debug)]
#[doc(hidden)]
pub struct EndedFlow<T> {
    /// Its 5-tuple.
    pub key: FlowKey,
    /// The tunnel that carried it, as its first packet went through it.
    pub tunnel: Option<Tunnel>,
    /// Its counters.
    pub counters: FlowCounters,
    /// Why it ended.
    pub end: EndReason,
    /// The per-flow state it carried.
    pub state: T,
}

/// What [`FlowTable::update`] hands back for one packet: views into the
/// flow's slot, nothing copied.
#[doc(hidden)]
pub struct Update<'t, T> {
    /// The packet's direction in its flow.
    pub direction: Direction,
    /// Whether this packet created the flow.
    pub new_flow: bool,
    /// The flow's counters, already counting this packet.
    pub counters: &'t FlowCounters,
    /// The flow's state, for the caller to update.
    pub state: &'t mut T,
    /// The flow's key as stored.
    pub key: KeyRef<'t>,
}

/// A view of a flow's key as the table stores it.
#[derive(Clone, Copy)]
#[doc(hidden)]
pub struct KeyRef<'t> {
    key: &'t PackedKey,
    lo_first: bool,
    slot: u32,
    tunnels: &'t TunnelIndex,
}

impl KeyRef<'_> {
    /// The tunnel that carried the flow, as its first packet went through
    /// it.
    pub fn tunnel(&self) -> Option<Tunnel> {
        let reversed = self.key.flags() & FLAG_OUTER_REVERSED != 0;
        self.tunnels
            .flow_tunnel(self.key.tunnel(), self.slot, reversed)
    }

    /// The flow's key, initiator first.
    pub fn flow_key(&self) -> FlowKey {
        self.key.flow_key(self.lo_first)
    }

    /// The flow's transport.
    pub fn transport(&self) -> Transport {
        self.key.transport()
    }
}

/// Most flows one table holds: its index keeps slot numbers in 24 bits.
pub const MAX_FLOWS_PER_TABLE: usize = (1 << 24) - 2;

const INDEX_SLOT_MASK: u32 = (1 << 24) - 1;

/// The flow index's maximum load, as a fraction: 3/4 (project, issue 19).
/// Probe runs grow as 1/(1-load)^2: at 7/8, with plain linear probing, a
/// removal's backward shift rehashed about 30 following entries, each a
/// read of a random slot (`FlowTable::remove` was a quarter of a flood of
/// new flows); at 3/4 runs are about 8 long, and a stored distance of 3
/// bits saturates for few entries, for 0.8 bytes more per flow (4/3 of a
/// 4-byte entry instead of 8/7), which keeps a decided flow within issue
/// 6's 128 bytes.
const INDEX_MAX_LOAD: (usize, usize) = (3, 4);

/// Bits of an index entry: the slot number plus one (0 marks a free entry)
/// in the low 24, the entry's distance from its home position in the next
/// [`INDEX_DIST_BITS`] (saturating: [`INDEX_DIST_SAT`] means at least that
/// far, and the true distance is found from the slot's hash), and the top
/// bits of the flow's hash as a tag in the rest.
const INDEX_DIST_BITS: u32 = 3;
const INDEX_DIST_SAT: u32 = (1 << INDEX_DIST_BITS) - 1;
const INDEX_TAG_SHIFT: u32 = 24 + INDEX_DIST_BITS;

/// The index of a flow table: open addressing with Robin Hood linear
/// probing over 32-bit entries (slot, distance from home, tag: see
/// [`INDEX_DIST_BITS`]), at most [`INDEX_MAX_LOAD`] full. Entries of a run
/// are kept in the order of their home positions (an entry farther from
/// its home displaces a nearer one), so a lookup stops at the first entry
/// nearer its home than the sought key would be, and compares keys only
/// where tag and distance both match (about 1 in 100 for a stranger). A
/// removal shifts the following entries back by one until one is at home
/// or the run ends, reading only the entries' stored distances (a slot is
/// read only for a distance that saturated, rare at this load): no
/// tombstone, and no cache miss on the slots as plain linear probing's
/// rehash of the run took (a tenth of a flood of new flows, issue 19). The
/// entry's position is known from the hash alone, so it can be prefetched
/// before the lookup ([`FlowTable::prefetch_index`]).
#[derive(Debug)]
struct FlowIndex {
    entries: Vec<u32>,
    len: usize,
}

impl FlowIndex {
    fn new() -> Self {
        FlowIndex {
            entries: vec![0; 16],
            len: 0,
        }
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    #[inline]
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    #[inline]
    fn tag(hash: u64) -> u32 {
        (hash >> (64 - (32 - INDEX_TAG_SHIFT))) as u32
    }

    /// An entry for `slot` with `hash`'s tag at distance `dist` from home.
    #[inline]
    fn entry(tag: u32, dist: u32, slot: u32) -> u32 {
        (tag << INDEX_TAG_SHIFT) | (dist.min(INDEX_DIST_SAT) << 24) | ((slot + 1) & INDEX_SLOT_MASK)
    }

    #[inline]
    fn slot_of(e: u32) -> u32 {
        (e & INDEX_SLOT_MASK).wrapping_sub(1)
    }

    #[inline]
    fn stored_dist(e: u32) -> u32 {
        (e >> 24) & INDEX_DIST_SAT
    }

    /// The entry's true distance from its home, at position `pos`.
    #[inline]
    fn dist(&self, e: u32, pos: usize, hash_of: &impl Fn(u32) -> u64) -> u32 {
        match Self::stored_dist(e) {
            INDEX_DIST_SAT => {
                (pos.wrapping_sub(self.home(hash_of(Self::slot_of(e)))) & self.mask()) as u32
            }
            d => d,
        }
    }

    /// The slot whose entry has `hash`'s tag and for which `eq` holds.
    #[inline]
    fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = Self::tag(hash);
        let mask = self.mask();
        let mut pos = self.home(hash);
        let mut d = 0u32;
        loop {
            let e = *self.entries.get(pos)?;
            if e == 0 {
                return None;
            }
            let ed = Self::stored_dist(e);
            let want = d.min(INDEX_DIST_SAT);
            // Nearer its home than the key would be: the key is absent.
            if ed < want {
                return None;
            }
            if ed == want && e >> INDEX_TAG_SHIFT == tag && eq(Self::slot_of(e)) {
                return Some(Self::slot_of(e));
            }
            pos = (pos + 1) & mask;
            d += 1;
        }
    }

    /// The first slot whose entry has `hash`'s tag and distance: the
    /// likely flow, for prefetching (no key is compared).
    #[inline]
    fn candidate(&self, hash: u64) -> Option<u32> {
        self.find(hash, |_| true)
    }

    /// Adds `slot` under `hash` (not already present), growing first when
    /// the index would be more than [`INDEX_MAX_LOAD`] full; `hash_of`
    /// gives the hash of a slot already indexed.
    fn insert(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        let (num, den) = INDEX_MAX_LOAD;
        if (self.len + 1) * den > self.entries.len() * num {
            let bigger = vec![0; self.entries.len() * 2];
            let old = std::mem::replace(&mut self.entries, bigger);
            for e in old.into_iter().filter(|&e| e != 0) {
                let s = Self::slot_of(e);
                self.place(hash_of(s), s, &hash_of);
            }
        }
        self.place(hash, slot, &hash_of);
        self.len += 1;
    }

    /// Robin Hood placement: walks from home, and where the resident entry
    /// is nearer its home than the one being placed, puts that one there
    /// and carries the resident on.
    fn place(&mut self, hash: u64, slot: u32, hash_of: &impl Fn(u32) -> u64) {
        let mask = self.mask();
        let mut pos = self.home(hash);
        let (mut tag, mut slot, mut d) = (Self::tag(hash), slot, 0u32);
        for _ in 0..self.entries.len() {
            let Some(&cur) = self.entries.get(pos) else {
                return;
            };
            if cur == 0 {
                self.entries[pos] = Self::entry(tag, d, slot);
                return;
            }
            let cd = self.dist(cur, pos, hash_of);
            if cd < d {
                self.entries[pos] = Self::entry(tag, d, slot);
                (tag, slot, d) = (cur >> INDEX_TAG_SHIFT, Self::slot_of(cur), cd);
            }
            pos = (pos + 1) & mask;
            d += 1;
        }
    }

    /// Removes `slot`, indexed under `hash`; `hash_of` gives the hash of a
    /// slot still indexed (read only for distances that saturated).
    fn remove(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        let mask = self.mask();
        let mut hole = self.home(hash);
        loop {
            match self.entries.get(hole) {
                Some(0) | None => return,
                Some(&e) if Self::slot_of(e) == slot => break,
                Some(_) => hole = (hole + 1) & mask,
            }
        }
        self.entries[hole] = 0;
        self.len -= 1;
        // Shift back the rest of the run, up to an entry at its home.
        loop {
            let j = (hole + 1) & mask;
            let e = self.entries[j];
            if e == 0 {
                return;
            }
            let d = self.dist(e, j, &hash_of);
            if d == 0 {
                return;
            }
            self.entries[hole] = Self::entry(e >> INDEX_TAG_SHIFT, d - 1, Self::slot_of(e));
            self.entries[j] = 0;
            hole = j;
        }
    }

    /// The address of the entry a lookup of `hash` reads first.
    #[inline]
    fn home_entry(&self, hash: u64) -> Option<&u32> {
        self.entries.get(self.home(hash))
    }
}

/// The bidirectional flow table.
#[doc(hidden)]
pub struct FlowTable<T> {
    config: FlowTableConfig,
    /// Slot numbers, found by the hash of the slot's key.
    index: FlowIndex,
    hasher: FlowHasher,
    /// The tunnels of the flows held, numbered for their keys.
    tunnels: TunnelIndex,
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
        Self::with_hasher(config, FlowHasher::new())
    }

    /// An empty table whose index uses `hasher` (tables that share a hasher
    /// accept each other's [`FlowLookup`]s).
    pub fn with_hasher(config: FlowTableConfig, hasher: FlowHasher) -> Self {
        FlowTable {
            index: FlowIndex::new(),
            hasher,
            tunnels: TunnelIndex::default(),
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
    /// value, and the 4-byte index entry at the index's maximum load
    /// ([`INDEX_MAX_LOAD`]).
    /// Heap memory the state points to is not included.
    pub fn bytes_per_flow() -> usize {
        let slot = std::mem::size_of::<Option<Slot<T>>>();
        let entry = std::mem::size_of::<u32>();
        let (num, den) = INDEX_MAX_LOAD;
        slot + (entry * den).div_ceil(num)
    }

    /// Heap bytes the table itself holds now: its slots and index at their
    /// capacity, and its free list (what the states point to is not
    /// included; [`FlowTable::states`] walks them).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Option<Slot<T>>>()
            + self.index.entries.capacity() * std::mem::size_of::<u32>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    /// The states of the flows held, in slot order (for reports: a walk of
    /// the whole table).
    pub fn states(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten().map(|s| &s.state)
    }

    /// Flows currently held.
    pub fn len(&self) -> usize {
        self.index.len
    }

    /// Whether no flow is held.
    pub fn is_empty(&self) -> bool {
        self.index.len == 0
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

    /// Takes slot `i` out of list `l`.
    fn unlink(&mut self, i: u32, l: usize) {
        let (prev, next) = match self.slot(i) {
            Some(s) => (s.prev, s.next),
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

    /// Appends slot `i` to list `l`.
    fn push_tail(&mut self, i: u32, l: usize) {
        let tail = self.tail[l];
        if let Some(s) = self.slot_mut(i) {
            s.prev = tail;
            s.next = NIL;
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
        let l = self.slot(i)?.list();
        self.unlink(i, l);
        let slot = self.slots.get_mut(i as usize)?.take()?;
        let (slots, hasher) = (&self.slots, &self.hasher);
        let hash_of = |j: u32| {
            slots
                .get(j as usize)
                .and_then(|s| s.as_ref())
                .map_or(0, |s| s.key.hash(hasher))
        };
        self.index.remove(slot.key.hash(hasher), i, hash_of);
        self.free.push(i);
        let reversed = slot.key.flags() & FLAG_OUTER_REVERSED != 0;
        let tunnel = self.tunnels.end_flow(slot.key.tunnel(), i, reversed);
        Some(EndedFlow {
            key: slot.flow_key(),
            tunnel,
            counters: slot.counters,
            end,
            state: slot.state,
        })
    }

    /// Why the flow in slot `s` is over at time `now`, if it is.
    fn expiry(&self, s: &Slot<T>, now: Timestamp) -> Option<EndReason> {
        let idle = now.secs_since(s.counters.last_seen);
        let closed = s.closed();
        let transport = s.transport();
        if transport == Transport::Tcp && closed && idle >= self.config.tcp_close_linger {
            return Some(s.close_reason());
        }
        let timeout = match transport {
            Transport::Udp => self.config.udp_idle_timeout,
            Transport::Tcp => self.config.tcp_idle_timeout,
        };
        (idle >= timeout).then_some(if closed {
            s.close_reason()
        } else {
            EndReason::Idle
        })
    }

    /// Ends the flows that are over at time `now` (idle, or closed and past
    /// their linger), handing each to `ended`. Each list holds flows of one
    /// timeout, ordered by last activity to within a relink period; the scan
    /// stops at the first flow that is not over: the cost is the number of
    /// flows ended, plus three. A flow is ended at most a relink period after
    /// its time (a packet arriving meanwhile still starts a new flow, as
    /// [`FlowTable::update`] checks the idle time exactly).
    pub fn expire(&mut self, now: Timestamp, ended: &mut impl FnMut(EndedFlow<T>)) {
        self.expire_up_to(now, usize::MAX, ended);
    }

    /// [`FlowTable::expire`], ending at most `max` flows (in the same
    /// order: a further call goes on where this one stopped). Returns the
    /// flows ended.
    pub fn expire_up_to(
        &mut self,
        now: Timestamp,
        max: usize,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> usize {
        let mut n = 0;
        for l in 0..LISTS {
            while n < max {
                let i = self.head[l];
                let reason = match self.slot(i) {
                    Some(s) => self.expiry(s, now),
                    None => break,
                };
                match reason.and_then(|r| self.remove(i, r)) {
                    Some(f) => {
                        n += 1;
                        ended(f)
                    }
                    None => break,
                }
            }
        }
        n
    }

    /// Accounts one packet: finds or creates its flow, updates the counters
    /// and hands back the flow's state. Flows that end meanwhile (a closed TCP
    /// connection reopened by a SYN, or the longest idle flow evicted to make
    /// room) go to `ended` first. `new_state` makes the state of a new flow.
    pub fn update<'t>(
        &'t mut self,
        p: &Packet<'_>,
        new_state: impl FnOnce() -> T,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> Update<'t, T> {
        let lookup = self.lookup(p);
        self.update_with(p, &lookup, new_state, ended)
    }

    /// The lookup of a packet's flow with this table's hasher (and its
    /// tunnel's number).
    #[inline]
    pub fn lookup(&self, p: &Packet<'_>) -> FlowLookup {
        let tunnel = match &p.tunnel {
            None => NO_TUNNEL,
            Some(t) => self.tunnels.find(t),
        };
        FlowLookup::in_tunnel(p, &self.hasher, tunnel)
    }

    /// Tunnels that flows held now travel in.
    pub fn tunnels_held(&self) -> usize {
        self.tunnels.len()
    }

    fn find(&self, l: &FlowLookup) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(l.hash, |i| {
            slots
                .get(i as usize)
                .and_then(|s| s.as_ref())
                .is_some_and(|s| s.key == l.key)
        })
    }

    /// Asks the CPU to bring the index entries a lookup of `l` reads into
    /// cache (the first stage of a prefetched lookup).
    #[inline]
    pub fn prefetch_index(&self, l: &FlowLookup) {
        if let Some(e) = self.index.home_entry(l.hash) {
            prefetch_lines(e, 4);
        }
    }

    /// Reads the index (prefetched by [`FlowTable::prefetch_index`]) for
    /// the likely slot of `l`'s flow and asks the CPU to bring that slot
    /// into cache (the second stage). Returns the slot number: a hint only,
    /// as packets accounted meanwhile may end or create flows.
    #[inline]
    pub fn prefetch_slot(&self, l: &FlowLookup) -> Option<u32> {
        let i = self.index.candidate(l.hash)?;
        let s = self.slots.get(i as usize)?;
        prefetch_lines(s, std::mem::size_of::<Option<Slot<T>>>());
        Some(i)
    }

    /// The state in slot `i` and the direction of `l`'s packets in it, if
    /// the slot holds `l`'s flow (the third stage: the slot prefetched by
    /// [`FlowTable::prefetch_slot`], for prefetching what the state points
    /// to).
    #[inline]
    pub fn state_at(&self, i: u32, l: &FlowLookup) -> Option<(&T, Direction)> {
        self.entry_at(i, l)
            .map(|(state, direction, _)| (state, direction))
    }

    /// [`FlowTable::state_at`] with the flow's counters (what the packet
    /// will add to), for prefetching what the packet will touch.
    #[inline]
    pub fn entry_at(&self, i: u32, l: &FlowLookup) -> Option<(&T, Direction, &FlowCounters)> {
        let s = self.slot(i)?;
        if s.key != l.key {
            return None;
        }
        let direction = if l.src_is_lo == (s.key.flags() & FLAG_LO_FIRST != 0) {
            Direction::Forward
        } else {
            Direction::Backward
        };
        Some((&s.state, direction, &s.counters))
    }

    /// [`FlowTable::update`] with the packet's lookup already made (by
    /// [`FlowTable::lookup`], or [`FlowLookup::of`] with this table's
    /// hasher).
    #[inline]
    pub fn update_with<'t>(
        &'t mut self,
        p: &Packet<'_>,
        lookup: &FlowLookup,
        new_state: impl FnOnce() -> T,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> Update<'t, T> {
        if p.ts > self.now {
            self.now = p.ts;
        }
        // A tunneled packet's lookup made before its tunnel had a number
        // (or, in a burst, before an earlier packet ended the tunnel's last
        // flow) is made again.
        let relooked;
        let lookup = match &p.tunnel {
            Some(t) if !self.tunnels.is(lookup.key.tunnel(), t) => {
                relooked = self.lookup(p);
                &relooked
            }
            _ => lookup,
        };
        let found = self.find(lookup).and_then(|i| {
            let s = self.slot(i)?;
            // A flow that is over (idle, or closed and reopened by a SYN
            // without ACK) ends here, and the packet opens a new one. Cheap
            // test first: most packets come well within every timeout.
            let closed = s.closed();
            let idle_micros = p.ts.0.saturating_sub(s.counters.last_seen.0);
            if !closed && idle_micros < self.shortest_timeout_micros {
                return Some(i);
            }
            let idle = self.expiry(s, p.ts.max(s.counters.last_seen));
            let reopened = closed && p.tcp_flags.syn && !p.tcp_flags.ack;
            let reason = match idle {
                Some(r) => r,
                None if reopened => s.close_reason(),
                None => return Some(i),
            };
            if let Some(f) = self.remove(i, reason) {
                ended(f);
            }
            None
        });
        let (i, new_flow) = match found {
            Some(i) => (i, false),
            None => (self.insert(p, lookup, new_state, ended), true),
        };
        let Some(slot) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) else {
            // Unreachable: `i` was just found or inserted.
            unreachable!("flow slot vanished")
        };
        let src_is_lo = lookup.src_is_lo;
        let lo_first = slot.key.flags() & FLAG_LO_FIRST != 0;
        let direction = if src_is_lo == lo_first {
            Direction::Forward
        } else {
            Direction::Backward
        };
        let d = direction.index();
        let list_before = slot.list();
        let c = &mut slot.counters;
        let period_before = c.last_seen.0 >> RELINK_PERIOD_SHIFT;
        if p.ts > c.last_seen {
            c.last_seen = p.ts;
        }
        c.packets[d] = c.packets[d].saturating_add(1);
        c.payload_bytes[d] = c.payload_bytes[d].saturating_add(u64::from(p.payload_len));
        let period_now = c.last_seen.0 >> RELINK_PERIOD_SHIFT;
        if p.tcp_flags.fin {
            slot.key.tail |= if src_is_lo { FLAG_FIN_LO } else { FLAG_FIN_HI };
        }
        if p.tcp_flags.rst {
            slot.key.tail |= FLAG_RST;
        }
        // Re-link at the tail of the list its (possibly new) state calls for,
        // when its list changes (a FIN or RST, also on a flow's first
        // packet) or its activity enters a new period.
        let list_now = slot.list();
        if list_now != list_before || (!new_flow && period_now != period_before) {
            self.unlink(i, list_before);
            self.push_tail(i, list_now);
        }
        let Some(slot) = self.slots.get_mut(i as usize).and_then(|s| s.as_mut()) else {
            unreachable!("flow slot vanished")
        };
        Update {
            direction,
            new_flow,
            counters: &slot.counters,
            state: &mut slot.state,
            key: KeyRef {
                key: &slot.key,
                lo_first,
                slot: i,
                tunnels: &self.tunnels,
            },
        }
    }

    /// Makes a new flow for a packet not in the table (evicting the longest
    /// idle one when full) and returns its slot number.
    fn insert(
        &mut self,
        p: &Packet<'_>,
        lookup: &FlowLookup,
        new_state: impl FnOnce() -> T,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> u32 {
        if self.index.len >= self.config.max_flows.clamp(1, MAX_FLOWS_PER_TABLE) {
            let oldest = self.oldest();
            if let Some(f) = self.remove(oldest, EndReason::Evicted) {
                ended(f);
            }
        }
        let mut key = lookup.key;
        let mut hash = lookup.hash;
        key.tail |= if lookup.src_is_lo { FLAG_LO_FIRST } else { 0 };
        if let Some(t) = &p.tunnel {
            // The tunnel's number (after any eviction, which may have freed
            // one), and the key and hash with it.
            let n = self.tunnels.acquire(t);
            if self
                .tunnels
                .tunnel(n)
                .is_some_and(|first| first.outer_src != t.outer_src)
            {
                key.tail |= FLAG_OUTER_REVERSED;
            }
            key.tail = (key.tail & !(UNNUMBERED << TUNNEL_SHIFT)) | (n << TUNNEL_SHIFT);
            hash = key.hash(&self.hasher);
        }
        let slot = Slot {
            key,
            counters: FlowCounters {
                first_seen: p.ts,
                last_seen: p.ts,
                packets: [0, 0],
                payload_bytes: [0, 0],
            },
            prev: NIL,
            next: NIL,
            state: new_state(),
        };
        let list = slot.list();
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
        if let Some(t) = &p.tunnel {
            self.tunnels.note_flow(i, t);
        }
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert(hash, i, |j| {
            slots
                .get(j as usize)
                .and_then(|s| s.as_ref())
                .map_or(0, |s| s.key.hash(hasher))
        });
        self.peak = self.peak.max(self.index.len);
        self.push_tail(i, list);
        i
    }

    /// Ends every flow still held, least recently active first: with the
    /// reason an expiry at the last packet's time gives it (`idle`, or
    /// `fin`/`rst` for a closed TCP connection past its linger), else
    /// `capture_end` (or `fin`/`rst`). The reason depends on the flow
    /// alone, not on where it stands in the activity lists (which captures
    /// whose timestamps go backwards leave out of time order).
    pub fn drain(&mut self, ended: &mut impl FnMut(EndedFlow<T>)) {
        let now = self.now;
        self.drain_up_to(now, usize::MAX, ended);
    }

    /// [`FlowTable::drain`] as of `now`, ending at most `max` flows (in the
    /// same order: a further call goes on where this one stopped). Returns
    /// the flows ended.
    pub fn drain_up_to(
        &mut self,
        now: Timestamp,
        max: usize,
        ended: &mut impl FnMut(EndedFlow<T>),
    ) -> usize {
        let mut n = 0;
        while n < max {
            let i = self.oldest();
            if i == NIL {
                break;
            }
            let reason = match self.slot(i) {
                Some(s) => self.expiry(s, now).unwrap_or(if s.closed() {
                    s.close_reason()
                } else {
                    EndReason::CaptureEnd
                }),
                None => EndReason::CaptureEnd,
            };
            match self.remove(i, reason) {
                Some(f) => {
                    n += 1;
                    ended(f)
                }
                None => break,
            }
        }
        if self.index.len == 0 {
            self.slots.clear();
            self.free.clear();
        }
        n
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
            random_head: None,
            tunnel: None,
        }
    }

    fn run(table: &mut FlowTable<u32>, p: &Packet<'_>, out: &mut Vec<EndedFlow<u32>>) -> Direction {
        table.expire(p.ts, &mut |f| out.push(f));
        let u = table.update(p, || 0, &mut |f| out.push(f));
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

    /// A capture whose time goes backwards leaves the activity lists out of
    /// time order; a flow idle past its timeout at the end still ends as
    /// idle, wherever it stands (before, the walk from the head stopped at
    /// a recent flow and the idle one behind it ended as `capture_end`).
    #[test]
    fn the_end_reason_does_not_depend_on_list_order() {
        let mut t = FlowTable::new(FlowTableConfig::default());
        let mut out = Vec::new();
        let late = pkt(1000.0, (1, 1), (2, 2), Transport::Udp);
        let early = pkt(0.0, (3, 3), (4, 4), Transport::Udp);
        t.update(&late, || 0, &mut |f| out.push(f));
        t.update(&early, || 0, &mut |f| out.push(f));
        t.expire(t.now(), &mut |f| out.push(f));
        t.drain(&mut |f| out.push(f));
        let end_of = |port: u16| out.iter().find(|f| f.key.src_port == port).map(|f| f.end);
        assert_eq!(end_of(3), Some(EndReason::Idle));
        assert_eq!(end_of(1), Some(EndReason::CaptureEnd));
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
            || 0,
            &mut |f| out.push(f),
        );
        assert!(u.new_flow);
        assert_eq!(u.key.flow_key().src_port, 2);
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
    fn index_agrees_with_a_map_under_random_inserts_and_removals() {
        // Hashes chosen to collide often: few home positions, few tags.
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut hashes: Vec<u64> = Vec::new();
        let mut present = std::collections::HashSet::new();
        let mut index = FlowIndex::new();
        let mut max_saturated = 0;
        for step in 0..20_000u32 {
            let remove = !present.is_empty() && next() % 3 == 0;
            if remove {
                let slot = *present.iter().next().unwrap();
                present.remove(&slot);
                let h = hashes[slot as usize];
                index.remove(h, slot, |j| hashes[j as usize]);
            } else {
                let slot = hashes.len() as u32;
                let h = (next() % 64) | ((next() % 4) << 56) | (u64::from(step) << 20);
                hashes.push(h);
                present.insert(slot);
                index.insert(h, slot, |j| hashes[j as usize]);
            }
            assert_eq!(index.len, present.len());
            if step % 499 == 0 {
                // Every entry's stored distance is its true one (or
                // saturated at or beyond), its tag the hash's, and along a
                // run the distance grows by at most one from entry to
                // entry (the Robin Hood order).
                let mask = index.mask();
                let mut saturated = 0;
                let mut prev: Option<u32> = None;
                for (pos, &e) in index.entries.iter().enumerate() {
                    if e == 0 {
                        prev = None;
                        continue;
                    }
                    let h = hashes[FlowIndex::slot_of(e) as usize];
                    let d = (pos.wrapping_sub(index.home(h)) & mask) as u32;
                    let stored = FlowIndex::stored_dist(e);
                    assert_eq!(stored, d.min(INDEX_DIST_SAT), "step {step} pos {pos}");
                    assert_eq!(e >> INDEX_TAG_SHIFT, FlowIndex::tag(h));
                    saturated += usize::from(stored == INDEX_DIST_SAT);
                    if let Some(p) = prev {
                        assert!(d <= p + 1, "step {step}: pos {pos} at {d} after {p}");
                    }
                    prev = Some(d);
                }
                max_saturated = max_saturated.max(saturated);
            }
            if step % 997 == 0 {
                for (slot, &h) in hashes.iter().enumerate() {
                    let slot = slot as u32;
                    let found = index.find(h, |j| j == slot);
                    assert_eq!(found.is_some(), present.contains(&slot), "step {step}");
                }
            }
        }
        // The crowded homes exercise distances past the stored bits.
        assert!(max_saturated > 0);
    }

    /// Tuples crafted to collide under a guessed key collide under it
    /// (the attack is real), and spread like any others under a table's own
    /// random keys: no bucket of a 2^16 index gets more than a handful.
    #[test]
    fn crafted_collisions_need_the_key() {
        let guessed = [0x0123_4567_89AB_CDEF; 7];
        let keys = colliding_keys(&guessed, 4096);
        let packet = |k: &FlowKey| Packet {
            ts: Timestamp(0),
            src_ip: k.src_ip,
            dst_ip: k.dst_ip,
            src_port: k.src_port,
            dst_port: k.dst_port,
            transport: k.transport,
            payload: &[],
            payload_len: 0,
            tcp_flags: TcpFlags::default(),
            random_head: None,
            tunnel: None,
        };
        let hashes = |h: &FlowHasher| -> Vec<u64> {
            keys.iter()
                .map(|k| FlowLookup::of(&packet(k), h).hash())
                .collect()
        };
        let distinct: std::collections::HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        let under_guess = hashes(&FlowHasher::with_keys(guessed));
        assert!(under_guess.iter().all(|&h| h == under_guess[0]));
        for _ in 0..4 {
            let mut buckets = std::collections::HashMap::new();
            for h in hashes(&FlowHasher::new()) {
                *buckets.entry(h & 0xFFFF).or_insert(0u32) += 1;
            }
            // 4096 keys in 65536 buckets: the fullest holds 2 or 3 (the
            // chance of more than 6 is below 1e-7).
            let fullest = buckets.values().copied().max().unwrap_or(0);
            assert!(fullest <= 6, "a bucket got {fullest}");
        }
    }

    /// Both directions of a flow have the same shard hash; other flows,
    /// and the same flow under other keys, almost never do.
    #[test]
    fn the_shard_hash_is_symmetric() {
        use crate::packet::PacketRecord;
        let h = FlowHasher::new();
        let g = FlowHasher::new();
        let payload = [1u8; 12];
        let packet = |src: &str, sp: u16, dst: &str, dp: u16, t: Transport| Packet {
            ts: Timestamp(0),
            src_ip: src.parse().unwrap(),
            dst_ip: dst.parse().unwrap(),
            src_port: sp,
            dst_port: dp,
            transport: t,
            payload: &payload,
            payload_len: 12,
            tcp_flags: TcpFlags::default(),
            random_head: None,
            tunnel: None,
        };
        let mut seen = std::collections::HashSet::new();
        for (i, (a, b)) in [
            ("10.0.0.1", "192.168.7.9"),
            ("2001:db8::1", "2001:db8::2:1"),
            ("::ffff:10.0.0.1", "fe80::1"),
        ]
        .into_iter()
        .enumerate()
        {
            for (sp, dp) in [(1000u16, 2000u16), (2000, 1000), (53, 53), (0, 65535)] {
                for t in [Transport::Udp, Transport::Tcp] {
                    let fwd = PacketRecord::of(&packet(a, sp, b, dp, t), |_| false);
                    let back = PacketRecord::of(&packet(b, dp, a, sp, t), |_| false);
                    assert_eq!(h.record_hash(&fwd), h.record_hash(&back));
                    assert_ne!(h.record_hash(&fwd), g.record_hash(&fwd));
                    assert!(seen.insert(h.record_hash(&fwd)), "case {i}: collision");
                }
            }
        }
        let k = FlowKey::of(&pkt(0.0, (1, 1000), (2, 53), Transport::Udp));
        assert_eq!(k.canonical(), k.reversed().canonical());
    }
}
