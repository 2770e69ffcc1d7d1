//! Packet decoding: from a captured frame to the TCP or UDP message that the
//! flow table and the classifiers work on, or a counted reason to skip it.
//!
//! Link layers come from [`crate::wire`]; IPv4, IPv6 (with extension headers),
//! TCP and UDP from `etherparse`'s lax slicers, so that snap-length-truncated
//! packets still give their captured payload bytes and their original sizes.

use std::net::IpAddr;

use etherparse::{IpNumber, LaxIpSlice, TcpSlice, UdpSlice};

use crate::config::TunnelConfig;
use crate::tunnel::{Tunnel, TunnelKind};
use crate::wire::link::{by_ethertype, by_ppp, network_of, LinkError, Network};
use crate::wire::{capwap, geneve, gre, gtp, vxlan, WireError};

/// A capture timestamp in microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// From seconds and microseconds, as pcap gives them.
    pub fn from_parts(secs: i64, micros: i64) -> Self {
        Timestamp(secs.saturating_mul(1_000_000).saturating_add(micros))
    }

    /// Seconds since the epoch, as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Seconds from `earlier` to `self` (negative if `earlier` is later).
    pub fn secs_since(self, earlier: Timestamp) -> f64 {
        (self.0.saturating_sub(earlier.0)) as f64 / 1e6
    }
}

/// One captured frame, as the capture layer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct RawPacket<'a> {
    /// When the frame was captured.
    pub ts: Timestamp,
    /// The capture's pcap link-type number.
    pub link_type: u32,
    /// The captured bytes (possibly fewer than the frame had).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP (IP protocol 17).
    Udp,
    /// TCP (IP protocol 6).
    Tcp,
}

impl Transport {
    /// "udp" or "tcp", as in the flow records.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// The IP protocol number.
    pub fn ip_number(self) -> u8 {
        match self {
            Transport::Udp => 17,
            Transport::Tcp => 6,
        }
    }
}

/// TCP flags that end a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    /// SYN set.
    pub syn: bool,
    /// ACK set.
    pub ack: bool,
    /// FIN set.
    pub fin: bool,
    /// RST set.
    pub rst: bool,
}

impl TcpFlags {
    /// The flags of a TCP header's flags byte (its 14th).
    #[inline]
    pub fn of_header_byte(b: u8) -> TcpFlags {
        TcpFlags {
            syn: b & 0x02 != 0,
            ack: b & 0x10 != 0,
            fin: b & 0x01 != 0,
            rst: b & 0x04 != 0,
        }
    }
}

/// A decoded TCP or UDP message.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Capture time.
    pub ts: Timestamp,
    /// Sender address.
    pub src_ip: IpAddr,
    /// Receiver address.
    pub dst_ip: IpAddr,
    /// Sender port.
    pub src_port: u16,
    /// Receiver port.
    pub dst_port: u16,
    /// TCP or UDP.
    pub transport: Transport,
    /// The payload bytes that were captured (a prefix of the payload when the
    /// capture's snap length cut the frame).
    pub payload: &'a [u8],
    /// The payload's length on the wire, from the IP/UDP length fields.
    pub payload_len: u32,
    /// TCP flags (all false for UDP).
    pub tcp_flags: TcpFlags,
    /// Whether the payload is random from its first byte, when the reader
    /// that kept only the first bytes already judged it (a
    /// [`PacketRecord`] of a TCP payload); None: judged from `payload`.
    pub random_head: Option<bool>,
    /// The tunnel that carried the packet (the innermost), if any.
    pub tunnel: Option<Tunnel>,
}

impl<'a> Packet<'a> {
    /// The packet with `payload` in its place (a prefix of the captured
    /// payload that a reader kept, for one whose buffer the next read
    /// reuses); every other field as it is.
    #[inline]
    pub fn with_payload<'b>(&self, payload: &'b [u8]) -> Packet<'b> {
        Packet {
            ts: self.ts,
            src_ip: self.src_ip,
            dst_ip: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            transport: self.transport,
            payload,
            payload_len: self.payload_len,
            tcp_flags: self.tcp_flags,
            random_head: self.random_head,
            tunnel: self.tunnel,
        }
    }
}

/// The most payload bytes any classifier reads from one message: the CSC's
/// [`CSC_BYTES`](crate::config::CSC_BYTES) (the DFT's FUNC byte and prefix,
/// and the endpoint's signature, lie within them).
pub const INSPECTED_PAYLOAD_BYTES: usize = crate::config::CSC_BYTES;

/// A decoded packet in 64 bytes, owning the payload bytes the classifiers
/// read (the first [`INSPECTED_PAYLOAD_BYTES`]): what a sharded reader hands
/// a worker instead of the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRecord {
    ts: i64,
    src: [u8; 16],
    dst: [u8; 16],
    src_port: u16,
    dst_port: u16,
    payload_len: u32,
    head: [u8; INSPECTED_PAYLOAD_BYTES],
    head_len: u8,
    /// `RECORD_*` bits.
    flags: u8,
    /// Zero: spells out what would be padding, so that the record is 64
    /// initialised bytes that can be copied as whole words.
    spare: [u8; 6],
}

/// The first [`INSPECTED_PAYLOAD_BYTES`] of a payload (zero-padded) and how
/// many there were: a fixed-size copy in the usual case.
#[inline(always)]
pub(crate) fn head_of(payload: &[u8]) -> ([u8; INSPECTED_PAYLOAD_BYTES], u8) {
    let mut head = [0u8; INSPECTED_PAYLOAD_BYTES];
    match payload.first_chunk::<INSPECTED_PAYLOAD_BYTES>() {
        Some(h) => (*h, INSPECTED_PAYLOAD_BYTES as u8),
        None => {
            for (o, i) in head.iter_mut().zip(payload) {
                *o = *i;
            }
            (head, payload.len() as u8)
        }
    }
}

const RECORD_TCP: u8 = 1;
const RECORD_V6: u8 = 2;
const RECORD_SYN: u8 = 4;
const RECORD_ACK: u8 = 8;
const RECORD_FIN: u8 = 16;
const RECORD_RST: u8 = 32;
/// A TCP payload random from its first byte (judged by the reader, which
/// saw the whole payload).
const RECORD_RANDOM_HEAD: u8 = 64;
/// The packet came through a tunnel (which travels beside the record).
const RECORD_TUNNEL: u8 = 128;

fn addr_bytes(ip: &IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

impl PacketRecord {
    /// The record of `p`. A TCP payload is judged by `random_head` (is it
    /// random from its first byte?) while the whole payload is at hand: the
    /// record keeps only its first bytes.
    #[inline]
    pub fn of(p: &Packet<'_>, random_head: impl Fn(&[u8]) -> bool) -> PacketRecord {
        PacketRecord::with(
            p.ts,
            (addr_bytes(&p.src_ip), p.src_port),
            (addr_bytes(&p.dst_ip), p.dst_port),
            p.transport,
            p.src_ip.is_ipv6(),
            p.tcp_flags,
            p.payload,
            p.payload_len,
            random_head,
        )
        .tunneled(p.tunnel.is_some())
    }

    fn tunneled(mut self, yes: bool) -> PacketRecord {
        if yes {
            self.flags |= RECORD_TUNNEL;
        }
        self
    }

    /// Whether the packet came through a tunnel.
    #[inline]
    pub fn is_tunneled(&self) -> bool {
        self.flags & RECORD_TUNNEL != 0
    }

    /// A record of its fields (addresses as in the record: IPv4 in the
    /// first 4 bytes).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn with(
        ts: Timestamp,
        (src, src_port): ([u8; 16], u16),
        (dst, dst_port): ([u8; 16], u16),
        transport: Transport,
        v6: bool,
        f: TcpFlags,
        payload: &[u8],
        payload_len: u32,
        judge: impl Fn(&[u8]) -> bool,
    ) -> PacketRecord {
        let (head, head_len) = head_of(payload);
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        let random_head = transport == Transport::Tcp && !payload.is_empty() && judge(payload);
        PacketRecord {
            ts: ts.0,
            src,
            dst,
            src_port,
            dst_port,
            payload_len,
            head,
            head_len,
            flags: bit(transport == Transport::Tcp, RECORD_TCP)
                | bit(v6, RECORD_V6)
                | bit(f.syn, RECORD_SYN)
                | bit(f.ack, RECORD_ACK)
                | bit(f.fin, RECORD_FIN)
                | bit(f.rst, RECORD_RST)
                | bit(random_head, RECORD_RANDOM_HEAD),
            spare: [0; 6],
        }
    }

    /// The record of a frame, and the tunnel that carried it: [`decode_with`]
    /// and [`PacketRecord::of`] in one, the common case ([`decode_common`])
    /// written straight from the frame's bytes. A test holds the two ways
    /// equal on every frame of the real and synthetic captures.
    #[inline]
    pub fn of_frame(
        raw: &RawPacket<'_>,
        tunnels: &TunnelConfig,
        random_head: impl Fn(&[u8]) -> bool,
    ) -> Result<(PacketRecord, Option<Tunnel>), SkipReason> {
        let ip_bytes = match network_of(raw.link_type, raw.data)? {
            Network::Ip(b) => b,
            Network::NotIp(_) => return Err(SkipReason::NotIp),
        };
        if let Some(v) = CommonView::of(ip_bytes) {
            if !v.may_tunnel(tunnels) {
                let r = PacketRecord::with(
                    raw.ts,
                    (v.src, v.src_port),
                    (v.dst, v.dst_port),
                    v.transport,
                    v.v6,
                    v.tcp_flags,
                    v.data,
                    v.data.len() as u32,
                    random_head,
                );
                return Ok((r, None));
            }
        }
        decode_ip_with(raw.ts, ip_bytes, tunnels)
            .map(|p| (PacketRecord::of(&p, random_head), p.tunnel))
    }

    /// The record's two endpoints as words (an address's halves and a
    /// port, each) and its protocol bits: what the sharding hash reads
    /// ([`crate::flow::FlowHasher::record_hash`]).
    #[inline]
    pub(crate) fn hash_words(&self) -> ([u64; 3], [u64; 3], u64) {
        let word = |a: &[u8; 16], half: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&a[half * 8..half * 8 + 8]);
            u64::from_le_bytes(w)
        };
        (
            [
                word(&self.src, 0),
                word(&self.src, 1),
                u64::from(self.src_port),
            ],
            [
                word(&self.dst, 0),
                word(&self.dst, 1),
                u64::from(self.dst_port),
            ],
            u64::from(self.flags & (RECORD_TCP | RECORD_V6)),
        )
    }

    /// The packet's capture time.
    #[inline]
    pub fn ts(&self) -> Timestamp {
        Timestamp(self.ts)
    }

    /// The packet, its payload cut to the bytes kept.
    #[inline]
    pub fn packet(&self) -> Packet<'_> {
        let on = |b: u8| self.flags & b != 0;
        let addr = |x: &[u8; 16]| -> IpAddr {
            if on(RECORD_V6) {
                IpAddr::from(*x)
            } else {
                IpAddr::from([x[0], x[1], x[2], x[3]])
            }
        };
        Packet {
            ts: Timestamp(self.ts),
            src_ip: addr(&self.src),
            dst_ip: addr(&self.dst),
            src_port: self.src_port,
            dst_port: self.dst_port,
            transport: if on(RECORD_TCP) {
                Transport::Tcp
            } else {
                Transport::Udp
            },
            payload: &self.head[..usize::from(self.head_len).min(INSPECTED_PAYLOAD_BYTES)],
            payload_len: self.payload_len,
            tcp_flags: TcpFlags {
                syn: on(RECORD_SYN),
                ack: on(RECORD_ACK),
                fin: on(RECORD_FIN),
                rst: on(RECORD_RST),
            },
            random_head: (on(RECORD_TCP) && self.payload_len > 0).then_some(on(RECORD_RANDOM_HEAD)),
            tunnel: None,
        }
    }
}

/// Why a frame was not turned into a [`Packet`]. Every skipped frame is
/// counted under one of these.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// The capture's link type is not decoded.
    UnsupportedLinkType,
    /// A header is cut short (snap length or a damaged frame).
    Truncated,
    /// A header field is invalid (bad IP version or header length, ...).
    Malformed,
    /// The frame does not carry IP (ARP, LLDP, ...).
    NotIp,
    /// IP, but neither TCP nor UDP (ICMP, IGMP, ESP, ...).
    NotTcpUdp,
    /// A later IP fragment: its bytes belong to a datagram whose ports only
    /// the first fragment carries.
    NonFirstFragment,
    /// Nested in more tunnels than [`TunnelConfig::max_depth`].
    TunnelTooDeep,
    /// A tunnel's header (GRE, ERSPAN) that cannot be read: an unknown
    /// version, obsolete source routing, a bad ERSPAN version.
    MalformedTunnel,
}

impl SkipReason {
    /// All reasons, in report order.
    pub const ALL: [SkipReason; 8] = [
        SkipReason::UnsupportedLinkType,
        SkipReason::Truncated,
        SkipReason::Malformed,
        SkipReason::NotIp,
        SkipReason::NotTcpUdp,
        SkipReason::NonFirstFragment,
        SkipReason::TunnelTooDeep,
        SkipReason::MalformedTunnel,
    ];

    /// A short snake-case name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::UnsupportedLinkType => "unsupported_link_type",
            SkipReason::Truncated => "truncated",
            SkipReason::Malformed => "malformed",
            SkipReason::NotIp => "not_ip",
            SkipReason::NotTcpUdp => "not_tcp_udp",
            SkipReason::NonFirstFragment => "non_first_fragment",
            SkipReason::TunnelTooDeep => "tunnel_too_deep",
            SkipReason::MalformedTunnel => "malformed_tunnel",
        }
    }

    /// Index into a counter array.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Counts of skipped frames by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounts([u64; SkipReason::ALL.len()]);

impl SkipCounts {
    /// Adds one frame skipped for `reason`.
    pub fn add(&mut self, reason: SkipReason) {
        self.0[reason.index()] += 1;
    }

    /// Frames skipped for `reason`.
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.0[reason.index()]
    }

    /// All skipped frames.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &SkipCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }
}

impl From<LinkError> for SkipReason {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::UnsupportedLinkType(_) => SkipReason::UnsupportedLinkType,
            LinkError::Truncated => SkipReason::Truncated,
            LinkError::Malformed => SkipReason::Malformed,
        }
    }
}

/// IPv6 extension headers that may precede a fragment header.
const IPV6_HOP_BY_HOP: u8 = 0;
const IPV6_ROUTING: u8 = 43;
const IPV6_FRAGMENT: u8 = 44;
const IPV6_AUTH: u8 = 51;
const IPV6_DEST_OPTS: u8 = 60;

/// Finds the fragment offset (in 8-byte units) of an IPv6 packet whose
/// extension headers `exts` start with header type `first`; 0 when there is
/// no fragment header.
fn ipv6_fragment_offset(first: u8, exts: &[u8]) -> u16 {
    let mut next = first;
    let mut at = 0usize;
    while at + 8 <= exts.len() {
        match next {
            IPV6_FRAGMENT => return u16::from_be_bytes([exts[at + 2], exts[at + 3]]) >> 3,
            IPV6_HOP_BY_HOP | IPV6_ROUTING | IPV6_DEST_OPTS => {
                next = exts[at];
                at += (usize::from(exts[at + 1]) + 1) * 8;
            }
            IPV6_AUTH => {
                next = exts[at];
                at += (usize::from(exts[at + 1]) + 2) * 4;
            }
            _ => return 0,
        }
    }
    0
}

/// Decodes one frame, opening every tunnel ([`TunnelConfig::default`]).
/// Never panics, whatever the bytes.
#[inline(always)]
pub fn decode<'a>(raw: &RawPacket<'a>) -> Result<Packet<'a>, SkipReason> {
    decode_with(raw, &TunnelConfig::STANDARD)
}

/// Decodes one frame, opening the tunnels that `tunnels` names. Never
/// panics, whatever the bytes.
#[inline(always)]
pub fn decode_with<'a>(
    raw: &RawPacket<'a>,
    tunnels: &TunnelConfig,
) -> Result<Packet<'a>, SkipReason> {
    let ip_bytes = match network_of(raw.link_type, raw.data)? {
        Network::Ip(b) => b,
        Network::NotIp(_) => return Err(SkipReason::NotIp),
    };
    decode_network(raw.ts, ip_bytes, tunnels)
}

/// Decodes an IP packet: the common case directly, the rest (and whatever
/// may be a tunnel) through [`decode_ip_with`].
#[inline(always)]
pub(crate) fn decode_network<'a>(
    ts: Timestamp,
    ip_bytes: &'a [u8],
    tunnels: &TunnelConfig,
) -> Result<Packet<'a>, SkipReason> {
    if let Some(v) = CommonView::of(ip_bytes) {
        if !v.may_tunnel(tunnels) {
            return Ok(v.packet(ts));
        }
    }
    decode_ip_with(ts, ip_bytes, tunnels)
}

/// The common case, read directly: IPv4 without options or fragmentation,
/// or IPv6 without extension headers, carrying a complete UDP or TCP
/// header, with every length field consistent. Anything else returns None
/// and goes through `etherparse` ([`decode_ip`]), which gives the same
/// answer for these packets (a test compares the two on every frame of the
/// real captures): this only skips the general machinery on the per-packet
/// path.
#[inline]
#[doc(hidden)]
pub fn decode_common(ts: Timestamp, b: &[u8]) -> Option<Packet<'_>> {
    CommonView::of(b).map(|v| v.packet(ts))
}

/// The fields of a packet of the common case ([`decode_common`]), still in
/// the frame's bytes: what both a [`Packet`] and a [`PacketRecord`] are
/// built from.
struct CommonView<'a> {
    v6: bool,
    /// The addresses as in a [`PacketRecord`]: IPv4 in the first 4 bytes,
    /// the rest zero.
    src: [u8; 16],
    dst: [u8; 16],
    transport: Transport,
    src_port: u16,
    dst_port: u16,
    /// The transport payload.
    data: &'a [u8],
    /// None set for UDP.
    tcp_flags: TcpFlags,
}

impl<'a> CommonView<'a> {
    /// Whether it is a UDP datagram on a port of a tunnel that is opened
    /// (its header then decides, on the general path).
    #[inline(always)]
    fn may_tunnel(&self, tunnels: &TunnelConfig) -> bool {
        self.transport == Transport::Udp
            && tunnels.udp_port_may_tunnel(self.src_port, self.dst_port)
    }

    /// The packet.
    #[inline(always)]
    fn packet(&self, ts: Timestamp) -> Packet<'a> {
        let v6 = self.v6;
        let addr = |a: [u8; 16]| -> IpAddr {
            if v6 {
                IpAddr::from(a)
            } else {
                IpAddr::from([a[0], a[1], a[2], a[3]])
            }
        };
        Packet {
            ts,
            src_ip: addr(self.src),
            dst_ip: addr(self.dst),
            src_port: self.src_port,
            dst_port: self.dst_port,
            transport: self.transport,
            payload: self.data,
            payload_len: self.data.len() as u32,
            tcp_flags: self.tcp_flags,
            random_head: None,
            tunnel: None,
        }
    }

    #[inline(always)]
    fn of(b: &'a [u8]) -> Option<CommonView<'a>> {
        let first = *b.first()?;
        let (v6, src, dst, proto, payload) = match first {
            0x45 => {
                let h: &[u8; 20] = b.get(..20)?.try_into().ok()?;
                let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
                let frag = u16::from_be_bytes([h[6], h[7]]);
                if total < 20 || total > b.len() || frag & 0x3FFF != 0 {
                    return None;
                }
                let v4 = |at: usize| {
                    let mut a = [0u8; 16];
                    a[..4].copy_from_slice(&h[at..at + 4]);
                    a
                };
                (false, v4(12), v4(16), h[9], b.get(20..total)?)
            }
            f if f >> 4 == 6 => {
                let h: &[u8; 40] = b.get(..40)?.try_into().ok()?;
                let plen = usize::from(u16::from_be_bytes([h[4], h[5]]));
                if plen == 0 || 40 + plen > b.len() {
                    return None;
                }
                let v6 = |at: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&h[at..at + 16]);
                    a
                };
                (true, v6(8), v6(24), h[6], b.get(40..40 + plen)?)
            }
            _ => return None,
        };
        let port = |at: usize| {
            Some(u16::from_be_bytes([
                *payload.get(at)?,
                *payload.get(at + 1)?,
            ]))
        };
        // The transport header's length and flags; its payload follows it.
        let (transport, data, tcp_flags) = match proto {
            17 => {
                let udp_len = usize::from(port(4)?);
                if udp_len < 8 || udp_len > payload.len() {
                    return None;
                }
                (
                    Transport::Udp,
                    payload.get(8..udp_len)?,
                    TcpFlags::default(),
                )
            }
            6 => {
                let header = usize::from(*payload.get(12)? >> 4) * 4;
                if header < 20 || header > payload.len() {
                    return None;
                }
                (
                    Transport::Tcp,
                    payload.get(header..)?,
                    TcpFlags::of_header_byte(*payload.get(13)?),
                )
            }
            _ => return None,
        };
        Some(CommonView {
            v6,
            src,
            dst,
            transport,
            src_port: port(0)?,
            dst_port: port(2)?,
            data,
            tcp_flags,
        })
    }
}

/// Decodes an IP packet (either version) with `etherparse`'s lax slicers:
/// options, extension headers, fragments and cut lengths included. Opens
/// no tunnel: the packet as it is on the wire.
#[doc(hidden)]
pub fn decode_ip(ts: Timestamp, ip_bytes: &[u8]) -> Result<Packet<'_>, SkipReason> {
    decode_ip_at(ts, ip_bytes, &TunnelConfig::NONE, 0)
}

/// [`decode_ip`], opening the tunnels that `tunnels` names.
#[doc(hidden)]
pub fn decode_ip_with<'a>(
    ts: Timestamp,
    ip_bytes: &'a [u8],
    tunnels: &TunnelConfig,
) -> Result<Packet<'a>, SkipReason> {
    decode_ip_at(ts, ip_bytes, tunnels, 0)
}

/// What a tunnel carries: where its inner packet starts.
enum Inner<'a> {
    /// An IP packet.
    Ip(&'a [u8]),
    /// An Ethernet frame.
    Ethernet(&'a [u8]),
    /// A payload of this EtherType.
    Ethertype(u16, &'a [u8]),
    /// A PPP frame.
    Ppp(&'a [u8]),
}

/// The packet inside a tunnel (`depth` tunnels deep, counting this one):
/// its own tunnel if it is in a deeper one, else `tunnel`.
fn enter<'a>(
    ts: Timestamp,
    inner: Inner<'a>,
    tunnel: Tunnel,
    tunnels: &TunnelConfig,
) -> Result<Packet<'a>, SkipReason> {
    if tunnel.depth > tunnels.max_depth.min(TunnelConfig::DEEPEST) {
        return Err(SkipReason::TunnelTooDeep);
    }
    let network = match inner {
        Inner::Ip(b) => Network::Ip(b),
        Inner::Ethernet(b) => network_of(1, b)?,
        Inner::Ethertype(t, b) => by_ethertype(t, b)?,
        Inner::Ppp(b) => by_ppp(crate::wire::ppp::Frame::new_checked(b).map_err(LinkError::from)?)?,
    };
    let Network::Ip(ip) = network else {
        return Err(SkipReason::NotIp);
    };
    let mut p = match CommonView::of(ip) {
        Some(v) if !v.may_tunnel(tunnels) => v.packet(ts),
        _ => decode_ip_at(ts, ip, tunnels, tunnel.depth)?,
    };
    if p.tunnel.is_none() {
        p.tunnel = Some(tunnel);
    }
    Ok(p)
}

/// A UDP datagram's tunnel, if its ports and header say it is one that is
/// opened: the tunnel's kind and identifier, and what it carries. A header
/// that does not pass the checks leaves the datagram as it is (a
/// stranger's flow on a tunnel's port is not mangled).
fn udp_tunnel<'a>(
    tunnels: &TunnelConfig,
    (src_port, dst_port): (u16, u16),
    payload: &'a [u8],
    declared: usize,
) -> Option<(TunnelKind, Option<u32>, Inner<'a>)> {
    if tunnels.gtp_u && (dst_port == tunnels.gtp_u_port || src_port == tunnels.gtp_u_port) {
        if let Ok(h) = gtp::Header::new_checked(payload, declared) {
            let inner = h.payload();
            // A G-PDU carries IP: its first nibble says which version.
            if matches!(inner.first().map(|b| b >> 4), Some(4) | Some(6)) {
                return Some((TunnelKind::GtpU, Some(h.teid()), Inner::Ip(inner)));
            }
        }
    }
    if tunnels.vxlan && tunnels.vxlan_ports.contains(&dst_port) {
        if let Ok(h) = vxlan::Header::new_checked(payload) {
            return Some((
                TunnelKind::Vxlan,
                Some(h.vni()),
                Inner::Ethernet(h.payload()),
            ));
        }
    }
    if tunnels.geneve && dst_port == tunnels.geneve_port {
        if let Ok(h) = geneve::Header::new_checked(payload) {
            let inner = match h.protocol() {
                gre::PROTO_TEB => Inner::Ethernet(h.payload()),
                t => Inner::Ethertype(t, h.payload()),
            };
            return Some((TunnelKind::Geneve, Some(h.vni()), inner));
        }
    }
    if tunnels.capwap
        && (dst_port == tunnels.capwap_data_port || src_port == tunnels.capwap_data_port)
    {
        match capwap::carried(payload) {
            Ok(capwap::Carried::Ethernet(f)) => {
                return Some((TunnelKind::Capwap, None, Inner::Ethernet(f)))
            }
            Ok(capwap::Carried::Ethertype(t, b)) => {
                return Some((TunnelKind::Capwap, None, Inner::Ethertype(t, b)))
            }
            Err(_) => {}
        }
    }
    None
}

/// A GRE packet's tunnel: kind, identifier and what it carries.
fn gre_tunnel(bytes: &[u8]) -> Result<(TunnelKind, Option<u32>, Inner<'_>), SkipReason> {
    let malformed = |e: WireError| match e {
        WireError::Truncated => SkipReason::Truncated,
        WireError::Unsupported => SkipReason::MalformedTunnel,
    };
    let h = gre::Header::new_checked(bytes).map_err(malformed)?;
    let payload = h.payload();
    Ok(match (h.version(), h.protocol()) {
        (1, _) => (TunnelKind::Pptp, h.key(), Inner::Ppp(payload)),
        (_, gre::PROTO_TEB) => (TunnelKind::Gre, h.key(), Inner::Ethernet(payload)),
        (_, gre::PROTO_ERSPAN_II) if !h.sequenced() => {
            // Type I: the mirrored frame straight after GRE.
            (TunnelKind::Erspan, None, Inner::Ethernet(payload))
        }
        (_, t @ (gre::PROTO_ERSPAN_II | gre::PROTO_ERSPAN_III)) => {
            let e =
                gre::Erspan::new_checked(payload, t == gre::PROTO_ERSPAN_III).map_err(malformed)?;
            (
                TunnelKind::Erspan,
                Some(e.session()),
                Inner::Ethernet(e.payload()),
            )
        }
        (_, t) => (TunnelKind::Gre, h.key(), Inner::Ethertype(t, payload)),
    })
}

/// [`decode_ip_with`] for a packet `depth` tunnels deep.
fn decode_ip_at<'a>(
    ts: Timestamp,
    ip_bytes: &'a [u8],
    tunnels: &TunnelConfig,
    depth: u8,
) -> Result<Packet<'a>, SkipReason> {
    let (ip, _ext_err) = LaxIpSlice::from_slice(ip_bytes).map_err(|e| match e {
        etherparse::err::ip::LaxHeaderSliceError::Len(_) => SkipReason::Truncated,
        etherparse::err::ip::LaxHeaderSliceError::Content(_) => SkipReason::Malformed,
    })?;
    // The payload length the IP header declares (original, before any
    // snap-length cut), and whether this is a first fragment.
    let (declared_payload, first_fragment, fragmented) = match &ip {
        LaxIpSlice::Ipv4(v4) => {
            let h = v4.header();
            let declared = usize::from(h.total_len()).saturating_sub(h.slice().len());
            let offset = h.fragments_offset().value();
            (declared, offset == 0, h.is_fragmenting_payload())
        }
        LaxIpSlice::Ipv6(v6) => {
            let h = v6.header();
            let exts = v6.extensions().slice();
            let declared = usize::from(h.payload_length()).saturating_sub(exts.len());
            let fragmented = v6.is_payload_fragmented();
            let offset = if fragmented {
                ipv6_fragment_offset(h.next_header().0, exts)
            } else {
                0
            };
            (declared, offset == 0, fragmented)
        }
    };
    let payload = ip.payload();
    let src_ip = ip.source_addr();
    let dst_ip = ip.destination_addr();
    let tunnel = |kind: TunnelKind, id: Option<u32>| Tunnel {
        kind,
        id,
        outer_src: src_ip,
        outer_dst: dst_ip,
        depth: depth.saturating_add(1),
    };
    let transport = match payload.ip_number {
        IpNumber::UDP => Transport::Udp,
        IpNumber::TCP => Transport::Tcp,
        IpNumber::IPV4 | IpNumber::IPV6 if tunnels.ip_in_ip => {
            if fragmented && !first_fragment {
                return Err(SkipReason::NonFirstFragment);
            }
            return enter(
                ts,
                Inner::Ip(payload.payload),
                tunnel(TunnelKind::IpInIp, None),
                tunnels,
            );
        }
        IpNumber::GRE if tunnels.gre => {
            if fragmented && !first_fragment {
                return Err(SkipReason::NonFirstFragment);
            }
            let (kind, id, inner) = gre_tunnel(payload.payload)?;
            return enter(ts, inner, tunnel(kind, id), tunnels);
        }
        _ => return Err(SkipReason::NotTcpUdp),
    };
    if fragmented && !first_fragment {
        return Err(SkipReason::NonFirstFragment);
    }
    let bytes = payload.payload;
    match transport {
        Transport::Udp => {
            let udp = UdpSlice::from_slice_lax(bytes).map_err(|_| SkipReason::Truncated)?;
            let udp_len = usize::from(udp.length());
            // The UDP length covers the whole datagram even in a first
            // fragment; fall back to the IP length when it is implausible.
            let payload_len = if udp_len >= 8 {
                udp_len - 8
            } else {
                declared_payload.saturating_sub(8)
            };
            let captured = udp.payload();
            let captured = &captured[..captured.len().min(payload_len)];
            let ports = (udp.source_port(), udp.destination_port());
            if !fragmented && tunnels.udp_port_may_tunnel(ports.0, ports.1) {
                if let Some((kind, id, inner)) = udp_tunnel(tunnels, ports, captured, payload_len) {
                    return enter(ts, inner, tunnel(kind, id), tunnels);
                }
            }
            Ok(Packet {
                ts,
                src_ip,
                dst_ip,
                src_port: ports.0,
                dst_port: ports.1,
                transport,
                payload: captured,
                payload_len: payload_len as u32,
                tcp_flags: TcpFlags::default(),
                random_head: None,
                tunnel: None,
            })
        }
        Transport::Tcp => {
            let tcp = TcpSlice::from_slice(bytes).map_err(|e| match e {
                etherparse::err::tcp::HeaderSliceError::Len(_) => SkipReason::Truncated,
                etherparse::err::tcp::HeaderSliceError::Content(_) => SkipReason::Malformed,
            })?;
            let header_len = tcp.header_slice().len();
            let payload_len = declared_payload.max(bytes.len()).saturating_sub(header_len);
            let payload_len = if fragmented {
                // A first fragment: only what was sent in it is known.
                bytes.len().saturating_sub(header_len)
            } else {
                payload_len
            };
            let captured = tcp.payload();
            Ok(Packet {
                ts,
                src_ip,
                dst_ip,
                src_port: tcp.source_port(),
                dst_port: tcp.destination_port(),
                transport,
                payload: &captured[..captured.len().min(payload_len)],
                payload_len: payload_len as u32,
                tcp_flags: TcpFlags {
                    syn: tcp.syn(),
                    ack: tcp.ack(),
                    fin: tcp.fin(),
                    rst: tcp.rst(),
                },
                random_head: None,
                tunnel: None,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    #[test]
    fn a_record_keeps_what_the_classifiers_read() {
        let payload: Vec<u8> = (0u8..20).collect();
        let cases = [
            Packet {
                ts: Timestamp(1_700_000_000_123_456),
                src_ip: IpAddr::from([10, 0, 0, 1]),
                dst_ip: IpAddr::from([192, 168, 1, 2]),
                src_port: 40000,
                dst_port: 443,
                transport: Transport::Tcp,
                payload: &payload,
                payload_len: 1400,
                tcp_flags: TcpFlags {
                    syn: false,
                    ack: true,
                    fin: true,
                    rst: false,
                },
                random_head: None,
                tunnel: None,
            },
            Packet {
                ts: Timestamp(-5),
                src_ip: "2001:db8::1".parse().unwrap(),
                dst_ip: "::ffff:10.0.0.1".parse().unwrap(),
                src_port: 3478,
                dst_port: 5000,
                transport: Transport::Udp,
                payload: &payload[..3],
                payload_len: 3,
                tcp_flags: TcpFlags::default(),
                random_head: None,
                tunnel: None,
            },
        ];
        let tests = crate::csc::GroupTests::new(&crate::config::CscConfig::default());
        let judge = |b: &[u8]| crate::endpoint::encrypted_from_first_byte(b, &tests);
        for p in cases {
            let r = PacketRecord::of(&p, judge);
            let q = r.packet();
            let n = p.payload.len().min(INSPECTED_PAYLOAD_BYTES);
            assert_eq!(q.payload, &p.payload[..n]);
            assert_eq!(
                (q.ts, q.src_ip, q.dst_ip, q.src_port, q.dst_port),
                (p.ts, p.src_ip, p.dst_ip, p.src_port, p.dst_port)
            );
            assert_eq!(q.transport, p.transport);
            assert_eq!(q.payload_len, p.payload_len);
            assert_eq!(q.tcp_flags, p.tcp_flags);
            // The TCP payload was judged while all of it was at hand.
            let judged = (p.transport == Transport::Tcp)
                .then(|| crate::endpoint::encrypted_from_first_byte(p.payload, &tests));
            assert_eq!(q.random_head, judged);
        }
        assert_eq!(std::mem::size_of::<PacketRecord>(), 64);
    }

    /// Records made straight from frames equal those of decoding first, for
    /// the common case and for the frames that take the general path.
    #[test]
    fn a_record_of_a_frame_is_that_of_its_packet() {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for n in [0usize, 3, 8, 20] {
            let payload: Vec<u8> = (0..n as u8).collect();
            frames.push(udp4(&payload));
            let mut v = Vec::new();
            PacketBuilder::ipv6([1; 16], [2; 16], 64)
                .tcp(443, 50000, 7, 1000)
                .syn()
                .ack(9)
                .write(&mut v, &payload)
                .unwrap();
            frames.push(v);
            let mut v = Vec::new();
            PacketBuilder::ipv4([1, 2, 3, 4], [5, 6, 7, 8], 9)
                .tcp(1, 2, 3, 4)
                .fin()
                .rst()
                .options(&[const { etherparse::TcpOptionElement::Noop }; 4])
                .unwrap()
                .write(&mut v, &payload)
                .unwrap();
            frames.push(v);
        }
        // Off the common path: IPv4 options, a fragment, cut frames, ICMP.
        let mut with_options = udp4(b"abcdefghij");
        with_options[0] = 0x46;
        with_options.splice(20..20, [1u8, 1, 1, 1]);
        frames.push(with_options);
        let mut fragment = udp4(b"abcdefghij");
        fragment[6] = 0x20;
        frames.push(fragment);
        let whole = udp4(b"abcdefghij");
        for cut in [0, 1, 19, 20, 27, 28, 30] {
            frames.push(whole[..cut].to_vec());
        }
        let mut icmp = udp4(b"abcdefghij");
        icmp[9] = 1;
        frames.push(icmp);
        let tests = crate::csc::GroupTests::new(&crate::config::CscConfig::default());
        let judge = |b: &[u8]| crate::endpoint::encrypted_from_first_byte(b, &tests);
        for f in &frames {
            let r = raw(101, f);
            let direct = PacketRecord::of_frame(&r, &TunnelConfig::STANDARD, judge);
            let decoded = decode(&r).map(|p| (PacketRecord::of(&p, judge), p.tunnel));
            assert_eq!(direct, decoded, "frame {f:?}");
        }
    }

    fn udp4(payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1000, 2000);
        let mut v = Vec::new();
        b.write(&mut v, payload).unwrap();
        v
    }

    fn raw(link_type: u32, data: &[u8]) -> RawPacket<'_> {
        RawPacket {
            ts: Timestamp(0),
            link_type,
            data,
            orig_len: data.len() as u32,
        }
    }

    #[test]
    fn udp_over_raw_ip() {
        let bytes = udp4(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        let p = decode(&raw(101, &bytes)).unwrap();
        assert_eq!(p.transport, Transport::Udp);
        assert_eq!(p.src_port, 1000);
        assert_eq!(p.dst_port, 2000);
        assert_eq!(p.payload, &[1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(p.payload_len, 9);
    }

    #[test]
    fn tcp_over_ipv6_with_flags() {
        let b = PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .tcp(443, 50000, 7, 1000)
            .fin()
            .ack(1);
        let mut v = Vec::new();
        b.write(&mut v, &[9; 20]).unwrap();
        let p = decode(&raw(229, &v)).unwrap();
        assert_eq!(p.transport, Transport::Tcp);
        assert!(p.tcp_flags.fin && p.tcp_flags.ack && !p.tcp_flags.rst);
        assert_eq!(p.payload_len, 20);
        assert_eq!(p.src_ip, IpAddr::from([1u8; 16]));
    }

    #[test]
    fn snap_length_keeps_original_sizes() {
        let bytes = udp4(&[7u8; 200]);
        let cut = &bytes[..28 + 10];
        let r = RawPacket {
            ts: Timestamp(0),
            link_type: 101,
            data: cut,
            orig_len: bytes.len() as u32,
        };
        let p = decode(&r).unwrap();
        assert_eq!(p.payload.len(), 10);
        assert_eq!(p.payload_len, 200);
    }

    #[test]
    fn truncated_headers_are_skipped_with_reason() {
        let bytes = udp4(&[1; 8]);
        assert_eq!(
            decode(&raw(101, &bytes[..24])).unwrap_err(),
            SkipReason::Truncated
        );
        assert_eq!(
            decode(&raw(101, &bytes[..10])).unwrap_err(),
            SkipReason::Truncated
        );
        assert_eq!(
            decode(&raw(101, &[0x15, 0, 0])).unwrap_err(),
            SkipReason::Malformed
        );
        assert_eq!(
            decode(&raw(147, &bytes)).unwrap_err(),
            SkipReason::UnsupportedLinkType
        );
    }

    #[test]
    fn icmp_is_not_tcp_udp() {
        let b = PacketBuilder::ipv4([1, 1, 1, 1], [2, 2, 2, 2], 9).icmpv4_echo_request(1, 1);
        let mut v = Vec::new();
        b.write(&mut v, &[0; 4]).unwrap();
        assert_eq!(decode(&raw(101, &v)).unwrap_err(), SkipReason::NotTcpUdp);
    }

    fn fragment(mut ip: Vec<u8>, offset_units: u16, more: bool) -> Vec<u8> {
        let flags = if more { 0x2000 } else { 0 };
        let v = (flags | offset_units).to_be_bytes();
        ip[6] = v[0];
        ip[7] = v[1];
        ip
    }

    #[test]
    fn ipv4_fragments() {
        // First fragment: carries the UDP header, counts for its flow.
        let first = fragment(udp4(&[5u8; 64]), 0, true);
        let p = decode(&raw(101, &first)).unwrap();
        assert_eq!(p.dst_port, 2000);
        // A later fragment: counted apart, never a new flow.
        let later = fragment(udp4(&[5u8; 64]), 3, false);
        assert_eq!(
            decode(&raw(101, &later)).unwrap_err(),
            SkipReason::NonFirstFragment
        );
    }

    #[test]
    fn ipv6_later_fragment() {
        // IPv6 header, then a fragment header with offset 8 units.
        let mut v = vec![0x60, 0, 0, 0, 0, 16, 44, 64];
        v.extend_from_slice(&[1; 16]);
        v.extend_from_slice(&[2; 16]);
        v.extend_from_slice(&[17, 0, 0, 64, 0, 0, 0, 1]);
        v.extend_from_slice(&[0; 8]);
        assert_eq!(
            decode(&raw(229, &v)).unwrap_err(),
            SkipReason::NonFirstFragment
        );
    }

    #[test]
    fn ipv6_extension_headers_are_followed() {
        let mut v = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        v.extend_from_slice(&[1; 16]);
        v.extend_from_slice(&[2; 16]);
        // Hop-by-hop options (8 bytes), next header UDP.
        v.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        v.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 12, 0, 0, 0xAB, 0xCD, 0xEF, 0x01]);
        let plen = (v.len() - 40) as u16;
        v[4..6].copy_from_slice(&plen.to_be_bytes());
        let p = decode(&raw(229, &v)).unwrap();
        assert_eq!(p.src_port, 5000);
        assert_eq!(p.dst_port, 53);
        assert_eq!(p.payload, &[0xAB, 0xCD, 0xEF, 0x01]);
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 0x1234_5678u32;
        for len in 0..400usize {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    (state >> 8) as u8
                })
                .collect();
            for lt in [0u32, 1, 9, 12, 51, 104, 108, 113, 192, 228, 229, 276] {
                let _ = decode(&raw(lt, &bytes));
            }
        }
    }
}
