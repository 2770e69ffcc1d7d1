//! Synthetic traffic from the published description of the protocol
//! (method.md §1, §4, §8 and §9): classic Skype of every kind and look-alike
//! negatives, interleaved in time as on a real link, streamed to a pcap with
//! a label CSV. Seeded and reproducible. This is the project's own data;
//! every table that uses it says so.
//!
//! Skype, one flow each: E2E voice calls (codec profiles iSAC 30/60 ms,
//! iLBC 20/30 ms, G.729, SILK, iPCM-wb) that ring before the media starts
//! (0.1 to 3 s of set-up messages), alternate talk spurts and pauses (Skype
//! keeps sending through silence, with smaller frames), lose and jitter
//! messages; short calls (20 to 99 media messages a direction); voice with
//! video in the same flow; video on a flow of its own (15 to 30 frames a
//! second, each one or two messages in the video bands, bursts at key
//! frames, a few short control messages); E2O SkypeOut; TCP-relayed voice.
//! Skype, many flows per client: the classic client's signalling through one
//! UDP port to many peers; the late-era client's login bursts (§9: one
//! message to each of 50 to 200 servers on one port or a few, mostly
//! unanswered); the client's short TCP connections (3 to 30 segments,
//! encrypted from the first byte) to and from its Skype port.
//!
//! Look-alikes, one flow each: RTP, SRTP, WebRTC (STUN, DTLS, SRTP), QUIC,
//! WireGuard, OpenVPN, IPsec NAT-T, DNS, fully random UDP (at voice rhythm
//! and in bulk) and TCP (in bulk), and online games (a per-session constant
//! prefix, counters and varying fields at a steady 20 to 60 ticks a second
//! both ways). Look-alikes of many-peer clients, one flow per peer: a DNS
//! and an NTP client polling many servers, a game client probing many
//! servers on one port, BitTorrent uTP and encrypted TCP, and a P2P client
//! with random-looking UDP to many peers.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use etherparse::PacketBuilder;

use crate::tunnel::TunnelKind;

use crate::packet::Transport;

/// xorshift64* generator: reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, n).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in [lo, hi].
    #[inline]
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability p.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Fills a buffer with random bytes.
    #[inline]
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }

    /// One element of a non-empty slice.
    #[inline]
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// A voice codec profile as Skype sent it: frame interval and message sizes
/// (codec frame plus Skype's header, method.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// Name for labels and reports.
    pub name: &'static str,
    /// Milliseconds between messages.
    pub frame_ms: u32,
    /// Smallest message (payload bytes): also the size of a silence frame.
    pub min_bytes: u32,
    /// Largest message.
    pub max_bytes: u32,
}

/// The codec profiles of the generator.
pub const CODECS: [Codec; 7] = [
    Codec {
        name: "isac30",
        frame_ms: 30,
        min_bytes: 45,
        max_bytes: 130,
    },
    Codec {
        name: "isac60",
        frame_ms: 60,
        min_bytes: 90,
        max_bytes: 250,
    },
    Codec {
        name: "ilbc20",
        frame_ms: 20,
        min_bytes: 45,
        max_bytes: 55,
    },
    Codec {
        name: "ilbc30",
        frame_ms: 30,
        min_bytes: 57,
        max_bytes: 67,
    },
    Codec {
        name: "g729",
        frame_ms: 20,
        min_bytes: 27,
        max_bytes: 35,
    },
    Codec {
        name: "silk",
        frame_ms: 20,
        min_bytes: 35,
        max_bytes: 110,
    },
    Codec {
        name: "ipcmwb",
        frame_ms: 20,
        min_bytes: 180,
        max_bytes: 260,
    },
];

/// What a synthetic flow is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Skype E2E voice with a codec: ringing, then talk spurts and pauses.
    SkypeVoice(Codec),
    /// Skype E2E voice with video in the same flow.
    SkypeVideo(Codec),
    /// Skype E2E video on a flow of its own.
    SkypeVideoOnly,
    /// A short Skype E2E call: 20 to 99 media messages a direction.
    SkypeShortCall(Codec),
    /// Skype E2O (SkypeOut) to a gateway.
    SkypeOut,
    /// Skype voice relayed over TCP.
    SkypeTcp(Codec),
    /// One flow of a classic client's signalling (1 to 5 messages to one peer).
    SkypeSignalling,
    /// One flow of a late-era client's login burst: one message to a login
    /// server, sometimes answered (method.md §9).
    SkypeLogin,
    /// A classic client's short TCP connection (3 to 30 segments, encrypted
    /// from the first byte), to or from its Skype port.
    SkypeShortTcp,
    /// RTP voice (G.711, 20 ms).
    Rtp,
    /// SRTP voice (Opus-like sizes, 20 ms).
    Srtp,
    /// WebRTC: STUN checks, a DTLS handshake, then SRTP.
    WebRtc,
    /// QUIC short-header packets (video streaming).
    Quic,
    /// WireGuard transport data at voice rhythm (a call through a tunnel).
    WireGuard,
    /// OpenVPN without HMAC at voice rhythm.
    OpenVpn,
    /// IPsec ESP in UDP (NAT-T) at voice rhythm.
    IpsecNatT,
    /// DNS query and answer.
    Dns,
    /// Fully random UDP at voice rhythm.
    RandomUdpVoice,
    /// Fully random UDP in bulk.
    RandomUdpBulk,
    /// Fully random TCP in bulk (obfuscated proxy).
    RandomTcpBulk,
    /// An online game: a per-session constant prefix of 2 to 4 bytes, then a
    /// sequence and an acknowledgement counter and varying fields, at a
    /// steady 20 to 60 messages a second both ways, for minutes.
    Game,
    /// One query of a DNS client that polls many servers from one port.
    DnsPoll,
    /// One exchange of an NTP client that polls many servers.
    NtpPoll,
    /// One probe of a game client that queries many servers on one port.
    GameProbe,
    /// One BitTorrent uTP connection of a client with many peers.
    Utp,
    /// One encrypted BitTorrent TCP connection (random from the first byte).
    BtTcp,
    /// One flow of a P2P client with random-looking UDP to many peers.
    P2pUdp,
}

impl Profile {
    /// The label written to the CSV.
    pub fn label(&self) -> &'static str {
        if self.is_skype() {
            return "skype";
        }
        match self {
            Profile::Rtp => "rtp",
            Profile::Srtp => "srtp",
            Profile::WebRtc => "webrtc",
            Profile::Quic => "quic",
            Profile::WireGuard => "wireguard",
            Profile::OpenVpn => "openvpn",
            Profile::IpsecNatT => "ipsec_natt",
            Profile::Dns => "dns",
            Profile::RandomUdpVoice => "random_udp_voice",
            Profile::RandomUdpBulk => "random_udp_bulk",
            Profile::RandomTcpBulk => "random_tcp_bulk",
            Profile::Game => "game",
            Profile::DnsPoll => "dns_poll",
            Profile::NtpPoll => "ntp_poll",
            Profile::GameProbe => "game_probe",
            Profile::Utp => "utp",
            Profile::BtTcp => "bittorrent_tcp",
            Profile::P2pUdp => "p2p_udp",
            _ => "skype",
        }
    }

    /// Whether this is a Skype profile.
    pub fn is_skype(&self) -> bool {
        matches!(
            self,
            Profile::SkypeVoice(_)
                | Profile::SkypeVideo(_)
                | Profile::SkypeVideoOnly
                | Profile::SkypeShortCall(_)
                | Profile::SkypeOut
                | Profile::SkypeTcp(_)
                | Profile::SkypeSignalling
                | Profile::SkypeLogin
                | Profile::SkypeShortTcp
        )
    }

    /// The Skype kind ("e2e", "e2o", "tcp", "signalling"), empty otherwise.
    pub fn kind(&self) -> &'static str {
        match self {
            Profile::SkypeVoice(_)
            | Profile::SkypeVideo(_)
            | Profile::SkypeVideoOnly
            | Profile::SkypeShortCall(_) => "e2e",
            Profile::SkypeOut => "e2o",
            Profile::SkypeTcp(_) | Profile::SkypeShortTcp => "tcp",
            Profile::SkypeSignalling | Profile::SkypeLogin => "signalling",
            _ => "",
        }
    }

    /// Which variant of its kind, for reports: "voice", "video" (voice with
    /// video), "video_only", "short_call", "e2o", "tcp_voice", "signalling",
    /// "login", "short_tcp", or the look-alike's label.
    pub fn variant(&self) -> &'static str {
        match self {
            Profile::SkypeVoice(_) => "voice",
            Profile::SkypeVideo(_) => "video",
            Profile::SkypeVideoOnly => "video_only",
            Profile::SkypeShortCall(_) => "short_call",
            Profile::SkypeOut => "e2o",
            Profile::SkypeTcp(_) => "tcp_voice",
            Profile::SkypeSignalling => "signalling",
            Profile::SkypeLogin => "login",
            Profile::SkypeShortTcp => "short_tcp",
            other => other.label(),
        }
    }

    /// Whether the flow carries a call's media (voice or video): what the
    /// rhythm classifier's media class is trained on.
    pub fn is_media(&self) -> bool {
        matches!(
            self,
            Profile::SkypeVoice(_)
                | Profile::SkypeVideo(_)
                | Profile::SkypeVideoOnly
                | Profile::SkypeShortCall(_)
                | Profile::SkypeOut
                | Profile::SkypeTcp(_)
                | Profile::Rtp
                | Profile::Srtp
                | Profile::WebRtc
        )
    }

    /// The codec name, if any.
    pub fn codec(&self) -> Option<&'static str> {
        match self {
            Profile::SkypeVoice(c)
            | Profile::SkypeVideo(c)
            | Profile::SkypeTcp(c)
            | Profile::SkypeShortCall(c) => Some(c.name),
            _ => None,
        }
    }

    /// TCP or UDP.
    pub fn transport(&self) -> Transport {
        match self {
            Profile::SkypeTcp(_)
            | Profile::RandomTcpBulk
            | Profile::SkypeShortTcp
            | Profile::BtTcp => Transport::Tcp,
            _ => Transport::Udp,
        }
    }

    /// The look-alike profiles of one flow each.
    pub const LOOK_ALIKES: [Profile; 12] = [
        Profile::Rtp,
        Profile::Srtp,
        Profile::WebRtc,
        Profile::Quic,
        Profile::WireGuard,
        Profile::OpenVpn,
        Profile::IpsecNatT,
        Profile::Dns,
        Profile::RandomUdpVoice,
        Profile::RandomUdpBulk,
        Profile::RandomTcpBulk,
        Profile::Game,
    ];

    /// The look-alikes of clients with many peers (one flow per peer).
    pub const PEER_LOOK_ALIKES: [Profile; 6] = [
        Profile::DnsPoll,
        Profile::NtpPoll,
        Profile::GameProbe,
        Profile::Utp,
        Profile::BtTcp,
        Profile::P2pUdp,
    ];
}

/// One synthetic message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Time, microseconds since the epoch.
    pub ts: i64,
    /// Sender.
    pub src: (IpAddr, u16),
    /// Receiver.
    pub dst: (IpAddr, u16),
    /// TCP or UDP.
    pub transport: Transport,
    /// Payload.
    pub payload: Vec<u8>,
    /// 802.1Q tag, if any.
    pub vlan: Option<u16>,
}

impl Message {
    /// A message to generate into (its payload buffer allocated once).
    pub fn empty() -> Message {
        Message {
            ts: 0,
            src: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            dst: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            transport: Transport::Udp,
            payload: Vec::with_capacity(2048),
            vlan: None,
        }
    }
}

/// A labelled synthetic flow.
#[derive(Debug, Clone)]
pub struct SynthFlow {
    /// Initiator.
    pub a: (IpAddr, u16),
    /// Responder.
    pub b: (IpAddr, u16),
    /// What it is.
    pub profile: Profile,
}

/// The main stream of a direction (voice, control, signalling, data).
const MAIN: usize = 0;
/// The video stream of a direction.
const VIDEO: usize = 1;

/// The state of one direction of a flow being generated.
#[derive(Debug, Clone, Default)]
struct DirGen {
    /// Next message time per stream (main, video); None when done.
    next: [Option<i64>; 2],
    /// Messages sent (both streams).
    sent: u32,
    /// Media messages sent (voice or video frames), for short calls.
    media_sent: u32,
    /// Finite profiles: messages left.
    left: u32,
    /// A per-direction constant: connection ID, SSRC, SPI, ...
    id: u64,
    /// A per-direction counter (RTP sequence, message ID, ...).
    seq: u32,
    /// Talking (true) or pausing, and until when.
    talking: bool,
    phase_end: i64,
    /// Video: messages left of the current frame, and the next key frame.
    frame_left: u32,
    next_key: i64,
}

/// The state of one flow being generated.
struct FlowGen {
    flow: SynthFlow,
    dirs: [DirGen; 2],
    /// When the media starts (after the ringing).
    media_start: i64,
    end: i64,
    vlan: Option<u16>,
    /// Video frames a second.
    fps: u32,
    /// Most media messages a direction (short calls), else `u32::MAX`.
    media_cap: u32,
    /// Whether the callers pause between talk spurts.
    pauses: bool,
    /// Game: the session prefix and its length, the base size and tick.
    prefix: [u8; 4],
    prefix_len: usize,
    base_len: u32,
    tick_us: i64,
}

/// Settings of a synthetic capture.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Random seed.
    pub seed: u64,
    /// Capture start, microseconds since the epoch.
    pub start: i64,
    /// Seconds over which flows start.
    pub spread_seconds: f64,
    /// Seconds a call lasts (each call draws between half and all of it).
    pub call_seconds: f64,
    /// Flows per Skype profile and per look-alike profile.
    pub flows_per_profile: u32,
    /// Classic Skype clients whose signalling is generated, each to `peers`
    /// peers.
    pub signalling_clients: u32,
    /// Peers per signalling client (and per many-peer look-alike client).
    pub peers: u32,
    /// Late-era clients (method.md §9): login bursts to many servers.
    pub late_clients: u32,
    /// Login servers per late-era client: drawn in this range.
    pub late_servers: (u32, u32),
    /// Share of login messages that get a reply.
    pub late_reply_share: f64,
    /// Short TCP connections per classic or late-era client, half to its
    /// Skype port, half from it to peers its UDP talked to.
    pub short_tcp_per_client: u32,
    /// Clients per many-peer look-alike ([`Profile::PEER_LOOK_ALIKES`]).
    pub peer_look_alike_clients: u32,
    /// Whether the many-peer look-alikes run on the hosts (addresses) of
    /// the Skype clients, as BitTorrent beside Skype on one computer.
    pub look_alikes_on_skype_hosts: bool,
    /// Share of flows over IPv6.
    pub ipv6_share: f64,
    /// Share of flows with a VLAN tag.
    pub vlan_share: f64,
    /// Share of voice messages lost.
    pub loss: f64,
    /// Whether to add the look-alike negatives.
    pub look_alikes: bool,
    /// Whether to add Skype video, video-only, short calls, E2O and TCP
    /// flows beside the voice calls.
    pub skype_extras: bool,
    /// Whether calls ring before the media starts (0.1 to 3 s of set-up
    /// messages).
    pub ringing: bool,
    /// Whether callers pause between talk spurts (silence frames); without,
    /// they talk all the time.
    pub pauses: bool,
    /// Seconds a bulk transfer (QUIC, random UDP/TCP bulk) lasts.
    pub bulk_seconds: f64,
    /// Wraps every frame in a tunnel (GTP-U, GRE, VXLAN, IP in IP) between
    /// two tunnel endpoints, 10.200.0.1 on the clients' side and 10.200.0.2
    /// beyond: what a capture on a carrier's or a data centre's link looks
    /// like. None: plain frames.
    pub tunnel: Option<TunnelKind>,
}

impl Default for SynthConfig {
    fn default() -> Self {
        SynthConfig {
            seed: 1,
            start: 1_700_000_000_000_000,
            spread_seconds: 10.0,
            call_seconds: 30.0,
            flows_per_profile: 2,
            signalling_clients: 1,
            peers: 40,
            late_clients: 1,
            late_servers: (50, 200),
            late_reply_share: 0.1,
            short_tcp_per_client: 4,
            peer_look_alike_clients: 1,
            look_alikes_on_skype_hosts: false,
            ipv6_share: 0.25,
            vlan_share: 0.25,
            loss: 0.01,
            look_alikes: true,
            skype_extras: true,
            ringing: true,
            pauses: true,
            bulk_seconds: 6.0,
            tunnel: None,
        }
    }
}

fn addr(rng: &mut Rng, v6: bool, inside: bool) -> IpAddr {
    if v6 {
        let mut o = [0u8; 16];
        rng.fill(&mut o);
        o[0] = 0x20;
        o[1] = if inside { 0x01 } else { 0x02 };
        o[2] = 0x0d;
        o[3] = 0xb8;
        IpAddr::V6(Ipv6Addr::from(o))
    } else if inside {
        IpAddr::V4(Ipv4Addr::new(
            10,
            rng.below(250) as u8,
            rng.below(250) as u8,
            1 + rng.below(250) as u8,
        ))
    } else {
        IpAddr::V4(Ipv4Addr::new(
            198,
            51 + rng.below(2) as u8 * 49,
            rng.below(250) as u8,
            1 + rng.below(250) as u8,
        ))
    }
}

fn high_port(rng: &mut Rng) -> u16 {
    1024 + rng.below(64_000) as u16
}

/// Jitter of a paced stream: +-2 ms.
fn jitter(rng: &mut Rng) -> i64 {
    rng.range(0, 4_000) as i64 - 2_000
}

/// A Skype UDP message: random bytes (the encrypted body and the random
/// message ID) with FUNC `func` in byte 2, bit 7 clear and bits 6-4 random
/// (method.md §1).
fn skype_udp(rng: &mut Rng, payload: &mut Vec<u8>, len: usize, func: u8) {
    payload.resize(len.max(3), 0);
    rng.fill(payload);
    payload[2] = (payload[2] & 0x70) | (func & 0x0F);
}

/// FUNC values of set-up and signalling messages (method.md §1).
const SETUP_FUNCS: [u8; 5] = [0x02, 0x02, 0x03, 0x05, 0x07];

/// Seconds of talk and of pause, per direction: talk spurts of 0.5 to 4 s,
/// pauses of 0.3 to 3 s.
const TALK_US: (u64, u64) = (500_000, 4_000_000);
const PAUSE_US: (u64, u64) = (300_000, 3_000_000);

impl FlowGen {
    #[allow(clippy::too_many_arguments)]
    fn new(
        rng: &mut Rng,
        flow: SynthFlow,
        start: i64,
        seconds: f64,
        vlan: Option<u16>,
        ringing: bool,
        pauses: bool,
        reply_share: f64,
    ) -> Self {
        let p = flow.profile;
        let end = start + (seconds * 1e6) as i64;
        let ring_us = if ringing
            && matches!(
                p,
                Profile::SkypeVoice(_)
                    | Profile::SkypeVideo(_)
                    | Profile::SkypeShortCall(_)
                    | Profile::SkypeOut
                    | Profile::SkypeTcp(_)
            ) {
            rng.range(100_000, 3_000_000) as i64
        } else {
            0
        };
        let mut dirs = [DirGen::default(), DirGen::default()];
        for d in dirs.iter_mut() {
            d.id = rng.next_u64();
            d.seq = rng.next_u64() as u32;
            d.talking = true;
            d.phase_end = start + ring_us + rng.range(TALK_US.0, TALK_US.1) as i64;
        }
        let b_start = match p {
            Profile::SkypeSignalling | Profile::SkypeShortTcp | Profile::P2pUdp => {
                start + rng.range(20_000, 200_000) as i64
            }
            Profile::Dns | Profile::DnsPoll | Profile::NtpPoll | Profile::GameProbe => {
                start + rng.range(5_000, 50_000) as i64
            }
            Profile::SkypeLogin => start + rng.range(20_000, 300_000) as i64,
            Profile::Utp | Profile::BtTcp => start + rng.range(30_000, 150_000) as i64,
            Profile::RandomUdpBulk | Profile::Quic => start + rng.range(1_000, 20_000) as i64,
            _ => start + rng.range(0, 30_000) as i64,
        };
        // Finite profiles: messages per direction.
        let left = match p {
            Profile::SkypeSignalling => {
                let n = rng.range(1, 5) as u32;
                [n, rng.below(u64::from(n) + 1) as u32]
            }
            Profile::SkypeLogin => [1, u32::from(rng.chance(reply_share))],
            Profile::SkypeShortTcp => {
                let n = rng.range(3, 30) as u32;
                let a = rng.range(1, u64::from(n - 1)) as u32;
                [a, n - a]
            }
            Profile::Dns => [1, 1],
            Profile::DnsPoll => [1, u32::from(rng.chance(0.8))],
            Profile::NtpPoll => [1, u32::from(rng.chance(0.9))],
            Profile::GameProbe => [1, u32::from(rng.chance(0.5))],
            Profile::Utp => {
                let replies = u32::from(rng.chance(0.7));
                [rng.range(1, 3) as u32, replies * rng.range(1, 3) as u32]
            }
            Profile::BtTcp => [rng.range(2, 8) as u32, rng.range(1, 8) as u32],
            Profile::P2pUdp => [rng.range(1, 4) as u32, rng.range(0, 3) as u32],
            _ => [0, 0],
        };
        dirs[0].left = left[0];
        dirs[1].left = left[1];
        dirs[0].next[MAIN] = (!p.is_finite() || left[0] > 0).then_some(start);
        dirs[1].next[MAIN] = (!p.is_finite() || left[1] > 0).then_some(b_start);
        let media_start = start + ring_us;
        let fps = rng.pick(&[15u32, 20, 25, 30]);
        if matches!(p, Profile::SkypeVideo(_) | Profile::SkypeVideoOnly) {
            for d in dirs.iter_mut() {
                d.next[VIDEO] = Some(media_start + rng.range(0, 60_000) as i64);
                d.next_key = media_start;
            }
        }
        let media_cap = match p {
            Profile::SkypeShortCall(_) => rng.range(20, 99) as u32,
            _ => u32::MAX,
        };
        let prefix_len = rng.range(2, 4) as usize;
        let mut prefix = [0u8; 4];
        rng.fill(&mut prefix);
        let base_len = rng.range(30, 120) as u32;
        let tick_us = 1_000_000 / rng.range(20, 60) as i64;
        FlowGen {
            flow,
            dirs,
            media_start,
            end,
            vlan,
            fps,
            media_cap,
            pauses,
            prefix,
            prefix_len,
            base_len,
            tick_us,
        }
    }

    /// The earliest next message: (time, direction, stream).
    fn next_time(&self) -> Option<(i64, usize, usize)> {
        let mut best: Option<(i64, usize, usize)> = None;
        for (d, dir) in self.dirs.iter().enumerate() {
            for (s, t) in dir.next.iter().enumerate() {
                if let Some(t) = *t {
                    if best.is_none_or(|(b, _, _)| t < b) {
                        best = Some((t, d, s));
                    }
                }
            }
        }
        best
    }

    /// Voice pacing of a direction: advances talk and pause phases and
    /// returns whether the direction is talking at `ts`.
    fn talking(&mut self, rng: &mut Rng, d: usize, ts: i64) -> bool {
        if !self.pauses {
            return true;
        }
        let dir = &mut self.dirs[d];
        while ts >= dir.phase_end {
            dir.talking = !dir.talking;
            let (lo, hi) = if dir.talking { TALK_US } else { PAUSE_US };
            dir.phase_end += rng.range(lo, hi) as i64;
        }
        dir.talking
    }

    /// One voice frame of codec `c` into `payload`; returns the gap to the
    /// next one. Silence frames in pauses (Skype keeps sending through
    /// silence, \[BMM07\]), redundant frames now and then.
    fn voice_frame(&mut self, rng: &mut Rng, d: usize, ts: i64, c: Codec) -> (usize, i64) {
        let talking = self.talking(rng, d, ts);
        let mut len = if talking {
            rng.range(u64::from(c.min_bytes), u64::from(c.max_bytes)) as usize
        } else {
            c.min_bytes as usize
        };
        if talking && rng.chance(0.05) {
            len = len * 3 / 2;
        }
        (len, i64::from(c.frame_ms) * 1000 + jitter(rng))
    }

    /// One set-up (ringing) message; returns the gap to the next one, which
    /// is never later than the start of the media.
    fn setup_gap(&self, rng: &mut Rng, ts: i64) -> i64 {
        let gap = rng.range(50_000, 700_000) as i64;
        if ts + gap >= self.media_start {
            (self.media_start - ts).max(100) + rng.range(0, 20_000) as i64
        } else {
            gap
        }
    }

    /// Makes the message of direction `d`, stream `s`, at time `ts` into
    /// `payload`, and schedules the next. Returns false for a lost message
    /// (nothing sent).
    fn emit(
        &mut self,
        rng: &mut Rng,
        d: usize,
        s: usize,
        ts: i64,
        payload: &mut Vec<u8>,
        loss: f64,
    ) -> bool {
        payload.clear();
        let p = self.flow.profile;
        if s == VIDEO {
            return self.emit_video(rng, d, ts, payload, loss);
        }
        let gap_us: i64;
        let mut send = true;
        let mut media = false;
        let ringing = ts < self.media_start;
        match p {
            Profile::SkypeVoice(c) | Profile::SkypeVideo(c) | Profile::SkypeShortCall(c) => {
                if ringing {
                    let len = rng.range(20, 120) as usize;
                    let func = rng.pick(&SETUP_FUNCS);
                    skype_udp(rng, payload, len, func);
                    gap_us = self.setup_gap(rng, ts);
                } else {
                    let (len, gap) = self.voice_frame(rng, d, ts, c);
                    skype_udp(rng, payload, len, 0x0D);
                    gap_us = gap;
                    media = true;
                    send = !rng.chance(loss);
                }
            }
            Profile::SkypeVideoOnly => {
                // A few short control messages beside the video.
                let len = rng.range(20, 150) as usize;
                let func = rng.pick(&[0x0D, 0x02, 0x03]);
                skype_udp(rng, payload, len, func);
                gap_us = rng.range(300_000, 2_000_000) as i64;
            }
            Profile::SkypeTcp(c) => {
                if ringing {
                    payload.resize(rng.range(20, 200) as usize, 0);
                    rng.fill(payload);
                    gap_us = self.setup_gap(rng, ts);
                } else {
                    let (len, gap) = self.voice_frame(rng, d, ts, c);
                    payload.resize(len, 0);
                    rng.fill(payload);
                    gap_us = gap;
                    media = true;
                }
            }
            Profile::SkypeOut => {
                let talking = ringing || self.talking(rng, d, ts);
                let len = if talking {
                    rng.range(29, 60) as usize
                } else {
                    29
                };
                payload.resize(len, 0);
                rng.fill(payload);
                payload[..4].copy_from_slice(&(self.dirs[d].id as u32).to_be_bytes());
                if ringing {
                    gap_us = self.setup_gap(rng, ts);
                } else {
                    gap_us = 20_000 + jitter(rng);
                    media = true;
                    send = !rng.chance(loss);
                }
            }
            Profile::SkypeSignalling => {
                gap_us = rng.range(30_000, 1_500_000) as i64;
                let len = rng.range(18, 120) as usize;
                let func = rng.pick(&[0x02, 0x02, 0x02, 0x03, 0x07]);
                skype_udp(rng, payload, len, func);
                // A 2-byte message ID that counts.
                let id = (self.dirs[d].id as u16).wrapping_add(self.dirs[d].sent as u16);
                payload[..2].copy_from_slice(&id.to_be_bytes());
            }
            Profile::SkypeLogin => {
                gap_us = rng.range(20_000, 200_000) as i64;
                let len = if d == 0 {
                    rng.range(22, 40)
                } else {
                    rng.range(22, 60)
                } as usize;
                let func = if d == 0 {
                    0x02
                } else {
                    rng.pick(&[0x02, 0x03])
                };
                skype_udp(rng, payload, len, func);
                // The planner gives each login message its ID (the client's
                // counter); replies carry the request's ID.
                payload[..2].copy_from_slice(&(self.dirs[0].id as u16).to_be_bytes());
            }
            Profile::SkypeShortTcp => {
                gap_us = rng.range(10_000, 400_000) as i64;
                let len = if self.dirs[d].sent == 0 {
                    rng.range(60, 600)
                } else {
                    rng.range(20, 400)
                };
                payload.resize(len as usize, 0);
                rng.fill(payload);
            }
            Profile::Rtp | Profile::Srtp | Profile::WebRtc => {
                gap_us = self.rtp_like(rng, d, payload);
                send = !rng.chance(loss);
            }
            Profile::Quic => {
                // Streaming: the server sends bursts of full packets.
                gap_us = bulk_message(
                    rng,
                    d,
                    payload,
                    (100, 3_000, 1200, 1350),
                    (10_000, 60_000, 40, 80),
                );
                payload[0] = 0x40 | (payload[0] & 0x3F);
                payload[1..9].copy_from_slice(&self.dirs[1 - d].id.to_be_bytes());
            }
            Profile::WireGuard | Profile::OpenVpn | Profile::IpsecNatT => {
                gap_us = 20_000 + jitter(rng);
                let len = rng.range(110, 200) as usize;
                payload.resize(len, 0);
                rng.fill(payload);
                let counter = u64::from(self.dirs[d].sent);
                let id = self.dirs[d].id;
                match p {
                    Profile::WireGuard => {
                        payload[..4].copy_from_slice(&[4, 0, 0, 0]);
                        payload[4..8].copy_from_slice(&(id as u32).to_le_bytes());
                        payload[8..16].copy_from_slice(&counter.to_le_bytes());
                    }
                    Profile::OpenVpn => {
                        payload[0] = 0x48;
                        payload[1..9].copy_from_slice(&id.to_be_bytes());
                        payload[9..13].copy_from_slice(&(counter as u32).to_be_bytes());
                    }
                    _ => {
                        payload[..4].copy_from_slice(&(id as u32).to_be_bytes());
                        payload[4..8].copy_from_slice(&(counter as u32 + 1).to_be_bytes());
                    }
                }
            }
            Profile::Dns | Profile::DnsPoll => {
                gap_us = 0;
                dns_message(payload, self.dirs[0].id as u16, d == 1);
            }
            Profile::NtpPoll => {
                gap_us = 0;
                payload.resize(48, 0);
                payload[0] = if d == 0 { 0x23 } else { 0x24 };
                payload[1] = if d == 0 { 0 } else { rng.range(1, 3) as u8 };
                payload[2] = 6;
                payload[3] = if d == 0 { 0xEC } else { 0xE9 };
                if d == 1 {
                    rng.fill(&mut payload[4..40]);
                }
                rng.fill(&mut payload[40..48]);
            }
            Profile::GameProbe => {
                gap_us = 0;
                payload.extend_from_slice(&[0xFF; 4]);
                if d == 0 {
                    payload.extend_from_slice(b"TSource Engine Query\x00");
                } else {
                    payload.push(0x41);
                    let mut c = [0u8; 4];
                    rng.fill(&mut c);
                    payload.extend_from_slice(&c);
                }
            }
            Profile::Utp => {
                gap_us = rng.range(5_000, 80_000) as i64;
                let dir = &self.dirs[d];
                let kind: u8 = match (d, dir.sent) {
                    (0, 0) => 0x41, // ST_SYN
                    (1, 0) => 0x21, // ST_STATE
                    _ => 0x01,      // ST_DATA
                };
                let len = if kind == 0x01 {
                    rng.range(100, 1400) as usize
                } else {
                    20
                };
                payload.resize(len, 0);
                rng.fill(payload);
                payload[0] = kind;
                payload[1] = 0;
                // Connection ID (the initiator's, plus one the other way).
                let conn = (self.dirs[0].id as u16).wrapping_add(d as u16);
                payload[2..4].copy_from_slice(&conn.to_be_bytes());
                payload[4..8].copy_from_slice(&((ts as u32) & 0x7FFF_FFFF).to_be_bytes());
                let seq = (dir.seq as u16).wrapping_add(dir.sent as u16);
                payload[16..18].copy_from_slice(&seq.to_be_bytes());
            }
            Profile::BtTcp => {
                gap_us = rng.range(5_000, 200_000) as i64;
                // Message stream encryption: a random DH key and padding,
                // then ciphertext.
                let len = if self.dirs[d].sent == 0 {
                    rng.range(96, 608)
                } else {
                    rng.range(68, 1400)
                };
                payload.resize(len as usize, 0);
                rng.fill(payload);
            }
            Profile::P2pUdp => {
                gap_us = rng.range(10_000, 500_000) as i64;
                payload.resize(rng.range(20, 1400) as usize, 0);
                rng.fill(payload);
            }
            Profile::Game => {
                gap_us = self.tick_us + jitter(rng) / 2;
                let len = (self.base_len + rng.range(0, 40) as u32) as usize;
                payload.resize(len, 0);
                rng.fill(payload);
                let n = self.prefix_len;
                payload[..n].copy_from_slice(&self.prefix[..n]);
                let seq = (self.dirs[d].seq as u16).wrapping_add(self.dirs[d].sent as u16);
                let other = &self.dirs[1 - d];
                let ack = (other.seq as u16).wrapping_add(other.sent as u16);
                payload[n..n + 2].copy_from_slice(&seq.to_be_bytes());
                payload[n + 2..n + 4].copy_from_slice(&ack.to_be_bytes());
                // A flags byte of a few values.
                payload[n + 4] = rng.pick(&[0x00, 0x01, 0x04, 0x05]);
                send = !rng.chance(loss);
            }
            Profile::RandomUdpVoice => {
                gap_us = 20_000 + jitter(rng);
                payload.resize(rng.range(60, 160) as usize, 0);
                rng.fill(payload);
            }
            Profile::RandomUdpBulk | Profile::RandomTcpBulk => {
                gap_us = bulk_message(
                    rng,
                    d,
                    payload,
                    (50, 2_000, 1000, 1400),
                    (5_000, 40_000, 40, 200),
                );
            }
        }
        let dir = &mut self.dirs[d];
        dir.sent += 1;
        if media {
            dir.media_sent += 1;
        }
        let next = ts + gap_us.max(100);
        dir.next[MAIN] = if p.is_finite() {
            dir.left = dir.left.saturating_sub(1);
            (dir.left > 0).then_some(next)
        } else if dir.media_sent >= self.media_cap {
            None
        } else {
            (next < self.end).then_some(next)
        };
        if dir.next[MAIN].is_none() && dir.media_sent >= self.media_cap {
            dir.next[VIDEO] = None;
        }
        send
    }

    /// One message of a video stream: frames at `fps`, one or two messages
    /// each in the video bands (method.md §4), four to ten at a key frame
    /// (every 2 to 10 s), sent back to back.
    fn emit_video(
        &mut self,
        rng: &mut Rng,
        d: usize,
        ts: i64,
        payload: &mut Vec<u8>,
        loss: f64,
    ) -> bool {
        let frame_us = 1_000_000 / i64::from(self.fps.max(1));
        let dir = &mut self.dirs[d];
        if dir.frame_left == 0 {
            // A new frame.
            if ts >= dir.next_key {
                dir.frame_left = rng.range(4, 10) as u32;
                dir.next_key = ts + rng.range(2_000_000, 10_000_000) as i64;
            } else {
                dir.frame_left = rng.range(1, 2) as u32;
            }
        }
        let len = match rng.below(10) {
            0..=4 => rng.range(400, 490),
            5..=8 => rng.range(800, 980),
            _ => rng.range(490, 800),
        } as usize;
        skype_udp(rng, payload, len, 0x0D);
        dir.frame_left -= 1;
        dir.sent += 1;
        dir.media_sent += 1;
        let gap = if dir.frame_left > 0 {
            rng.range(300, 2_000) as i64
        } else {
            frame_us + jitter(rng)
        };
        let next = ts + gap;
        dir.next[VIDEO] = (next < self.end && dir.media_sent < self.media_cap).then_some(next);
        !rng.chance(loss)
    }

    /// RTP, SRTP and WebRTC (STUN checks and a DTLS handshake first).
    fn rtp_like(&mut self, rng: &mut Rng, d: usize, payload: &mut Vec<u8>) -> i64 {
        let p = self.flow.profile;
        let dir = &mut self.dirs[d];
        let n = dir.sent;
        let stun_phase = p == Profile::WebRtc && n < 4;
        let dtls_phase = p == Profile::WebRtc && (4..8).contains(&n);
        if stun_phase {
            // STUN binding request/response: type, length, magic cookie, ID.
            payload.resize(20 + 40, 0);
            rng.fill(payload);
            payload[..2].copy_from_slice(if d == 0 { &[0x00, 0x01] } else { &[0x01, 0x01] });
            payload[2..4].copy_from_slice(&40u16.to_be_bytes());
            payload[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
            return 50_000;
        }
        if dtls_phase {
            // DTLS 1.2 handshake record header.
            payload.resize(rng.range(100, 300) as usize, 0);
            rng.fill(payload);
            payload[..3].copy_from_slice(&[0x16, 0xFE, 0xFD]);
            payload[3..5].copy_from_slice(&[0, 0]);
            return 30_000;
        }
        let len = if p == Profile::Rtp {
            172
        } else {
            rng.range(60, 140) as usize
        };
        payload.resize(len, 0);
        rng.fill(&mut payload[12..]);
        payload[0] = 0x80;
        payload[1] = if p == Profile::Rtp { 0x08 } else { 0x6F };
        dir.seq = dir.seq.wrapping_add(1);
        payload[2..4].copy_from_slice(&(dir.seq as u16).to_be_bytes());
        payload[4..8].copy_from_slice(&(n.wrapping_mul(160)).to_be_bytes());
        payload[8..12].copy_from_slice(&(dir.id as u32).to_be_bytes());
        20_000 + jitter(rng)
    }
}

impl Profile {
    /// Whether the flow ends after a set number of messages (rather than
    /// at its end time).
    fn is_finite(&self) -> bool {
        matches!(
            self,
            Profile::SkypeSignalling
                | Profile::SkypeLogin
                | Profile::SkypeShortTcp
                | Profile::Dns
                | Profile::DnsPoll
                | Profile::NtpPoll
                | Profile::GameProbe
                | Profile::Utp
                | Profile::BtTcp
                | Profile::P2pUdp
        )
    }
}

/// A DNS query for example.com (A), or its answer.
fn dns_message(payload: &mut Vec<u8>, id: u16, answer: bool) {
    payload.extend_from_slice(&id.to_be_bytes());
    payload.extend_from_slice(if answer { &[0x81, 0x80] } else { &[0x01, 0x00] });
    payload.extend_from_slice(&[0, 1, 0, u8::from(answer), 0, 0, 0, 0, 7]);
    payload.extend_from_slice(b"example\x03com\x00\x00\x01\x00\x01");
    if answer {
        payload.extend_from_slice(&[
            0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x0E, 0x10, 0, 4, 93, 184, 216, 34,
        ]);
    }
}

/// One random message of a bulk transfer: the responder (direction 1)
/// sends bursts of large messages, the initiator sparse small ones. Each
/// side is (smallest gap us, largest gap us, smallest size, largest size).
/// Returns the gap to the next message.
fn bulk_message(
    rng: &mut Rng,
    d: usize,
    payload: &mut Vec<u8>,
    down: (u64, u64, u64, u64),
    up: (u64, u64, u64, u64),
) -> i64 {
    let (g0, g1, s0, s1) = if d == 1 { down } else { up };
    let gap = rng.range(g0, g1) as i64;
    payload.resize(rng.range(s0, s1) as usize, 0);
    rng.fill(payload);
    gap
}

/// A stream of synthetic messages in time order, flows interleaved.
pub struct Generator {
    rng: Rng,
    flows: Vec<FlowGen>,
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    loss: f64,
    tunnel: Option<TunnelKind>,
}

/// A planned client: its endpoint, its peers, when it starts, its VLAN.
struct PlannedClient {
    endpoint: (IpAddr, u16),
    peers: Vec<(IpAddr, u16)>,
    start: i64,
    vlan: Option<u16>,
}

/// Plans flows: where they start, who talks to whom.
struct Planner<'c> {
    cfg: &'c SynthConfig,
    rng: Rng,
    flows: Vec<FlowGen>,
}

impl Planner<'_> {
    fn vlan(&mut self) -> Option<u16> {
        self.rng
            .chance(self.cfg.vlan_share)
            .then(|| self.rng.range(2, 4000) as u16)
    }

    fn add(&mut self, flow: SynthFlow, start: i64, seconds: f64, vlan: Option<u16>) {
        let f = FlowGen::new(
            &mut self.rng,
            flow,
            start,
            seconds,
            vlan,
            self.cfg.ringing,
            self.cfg.pauses,
            self.cfg.late_reply_share,
        );
        self.flows.push(f);
    }

    /// A flow of its own between two fresh endpoints.
    fn single(&mut self, p: Profile) {
        let rng = &mut self.rng;
        let cfg = self.cfg;
        let v6 = rng.chance(cfg.ipv6_share);
        let vlan = rng
            .chance(cfg.vlan_share)
            .then(|| rng.range(2, 4000) as u16);
        let a = (addr(rng, v6, true), high_port(rng));
        let b_port = match p {
            Profile::Dns => 53,
            Profile::Quic => 443,
            Profile::OpenVpn => 1194,
            Profile::IpsecNatT => 4500,
            Profile::WireGuard => 51820,
            Profile::RandomTcpBulk => 443,
            _ => high_port(rng),
        };
        let b = (addr(rng, v6, false), b_port);
        let spread = (cfg.spread_seconds * 1e6) as u64;
        let start = cfg.start + rng.below(spread) as i64;
        let secs = cfg.call_seconds * (0.5 + 0.5 * (rng.below(1000) as f64 / 1000.0));
        let secs = match p {
            Profile::RandomUdpBulk | Profile::RandomTcpBulk | Profile::Quic => cfg.bulk_seconds,
            Profile::Game => cfg.call_seconds * 2.0,
            _ => secs,
        };
        self.add(SynthFlow { a, b, profile: p }, start, secs, vlan);
    }

    /// A client with one UDP port and many peers: `per_peer` flows to
    /// `peers` peers (the peers' ports come from `peer_port`), starting
    /// within `burst_us` of the client's start. Returns the client and its
    /// peers.
    fn client(
        &mut self,
        per_peer: Profile,
        peers: u32,
        burst_us: u64,
        peer_port: &mut dyn FnMut(&mut Rng) -> u16,
        client_port: Option<u16>,
        host: Option<IpAddr>,
    ) -> PlannedClient {
        let cfg = self.cfg;
        let v6 = self.rng.chance(cfg.ipv6_share);
        let ip = addr(&mut self.rng, v6, true);
        let (ip, v6) = match host {
            Some(h) => (h, h.is_ipv6()),
            None => (ip, v6),
        };
        let port = client_port.unwrap_or_else(|| high_port(&mut self.rng));
        let client = (ip, port);
        let vlan = self.vlan();
        let spread = (cfg.spread_seconds * 1e6) as u64;
        let start = cfg.start + self.rng.below(spread.max(1)) as i64;
        let mut list = Vec::new();
        let mut id = self.rng.next_u64() as u16;
        for _ in 0..peers {
            let peer = (addr(&mut self.rng, v6, false), peer_port(&mut self.rng));
            let t = start + self.rng.below(burst_us.max(1)) as i64;
            let mut flow = SynthFlow {
                a: client,
                b: peer,
                profile: per_peer,
            };
            if per_peer.transport() == Transport::Tcp {
                // TCP connections leave from ephemeral ports.
                flow.a.1 = high_port(&mut self.rng);
            }
            self.add(flow, t, 10.0, vlan);
            if per_peer == Profile::SkypeLogin {
                // The client's message IDs count up over its login burst.
                id = id.wrapping_add(self.rng.range(1, 3) as u16);
                if let Some(f) = self.flows.last_mut() {
                    f.dirs[0].id = u64::from(id);
                }
            }
            list.push(peer);
        }
        PlannedClient {
            endpoint: client,
            peers: list,
            start,
            vlan,
        }
    }

    /// A Skype client's short TCP connections: half to its Skype port from
    /// peers, half from it to peers its UDP talked to (at their UDP port).
    fn short_tcp(
        &mut self,
        client: (IpAddr, u16),
        peers: &[(IpAddr, u16)],
        start: i64,
        vlan: Option<u16>,
    ) {
        let n = self.cfg.short_tcp_per_client;
        for k in 0..n {
            let t = start + self.rng.range(500_000, 20_000_000) as i64;
            let flow = if k % 2 == 0 || peers.is_empty() {
                let v6 = client.0.is_ipv6();
                let peer = (addr(&mut self.rng, v6, false), high_port(&mut self.rng));
                SynthFlow {
                    a: peer,
                    b: client,
                    profile: Profile::SkypeShortTcp,
                }
            } else {
                let peer = peers[self.rng.below(peers.len() as u64) as usize];
                SynthFlow {
                    a: (client.0, high_port(&mut self.rng)),
                    b: peer,
                    profile: Profile::SkypeShortTcp,
                }
            };
            self.add(flow, t, 10.0, vlan);
        }
    }
}

impl Generator {
    /// Plans the flows of a capture.
    pub fn new(cfg: &SynthConfig) -> Generator {
        let mut pl = Planner {
            cfg,
            rng: Rng::new(cfg.seed),
            flows: Vec::new(),
        };
        for _ in 0..cfg.flows_per_profile {
            for c in CODECS {
                pl.single(Profile::SkypeVoice(c));
            }
            if cfg.skype_extras {
                let c = pl.rng.pick(&CODECS);
                pl.single(Profile::SkypeVideo(c));
                pl.single(Profile::SkypeVideoOnly);
                let c = pl.rng.pick(&CODECS);
                pl.single(Profile::SkypeShortCall(c));
                pl.single(Profile::SkypeOut);
                let c = pl.rng.pick(&CODECS);
                pl.single(Profile::SkypeTcp(c));
            }
            if cfg.look_alikes {
                for p in Profile::LOOK_ALIKES {
                    pl.single(p);
                }
            }
        }
        // Classic clients: signalling from one UDP port to many peers, and
        // short TCP connections to and from that port.
        let mut skype_hosts = Vec::new();
        for _ in 0..cfg.signalling_clients {
            let spread = (cfg.spread_seconds * 2e6) as u64;
            let c = pl.client(
                Profile::SkypeSignalling,
                cfg.peers,
                spread,
                &mut |r| high_port(r),
                None,
                None,
            );
            skype_hosts.push(c.endpoint.0);
            pl.short_tcp(c.endpoint, &c.peers, c.start, c.vlan);
        }
        // Late-era clients: a login burst to many servers on one port or a
        // range of a few dozen (method.md §9).
        for _ in 0..cfg.late_clients {
            let servers = pl.rng.range(
                u64::from(cfg.late_servers.0),
                u64::from(cfg.late_servers.1.max(cfg.late_servers.0)),
            ) as u32;
            let base = pl.rng.range(1024, 60_000) as u16;
            let range = if pl.rng.chance(0.5) {
                1
            } else {
                pl.rng.range(10, 40) as u16
            };
            let burst = pl.rng.range(500_000, 3_000_000);
            let c = pl.client(
                Profile::SkypeLogin,
                servers,
                burst,
                &mut |r| base + r.below(u64::from(range)) as u16,
                None,
                None,
            );
            skype_hosts.push(c.endpoint.0);
            pl.short_tcp(c.endpoint, &c.peers, c.start, c.vlan);
        }
        // Many-peer look-alikes.
        if cfg.look_alikes {
            for k in 0..cfg.peer_look_alike_clients as usize {
                let host = (cfg.look_alikes_on_skype_hosts && !skype_hosts.is_empty())
                    .then(|| skype_hosts[k % skype_hosts.len()]);
                for p in Profile::PEER_LOOK_ALIKES {
                    let (port, client_port) = match p {
                        Profile::DnsPoll => (53, None),
                        Profile::NtpPoll => (123, Some(123)),
                        Profile::GameProbe => (27015, None),
                        _ => (0, None),
                    };
                    let burst = pl.rng.range(500_000, 5_000_000);
                    pl.client(
                        p,
                        cfg.peers,
                        burst,
                        &mut |r| if port == 0 { high_port(r) } else { port },
                        client_port,
                        host,
                    );
                }
            }
        }
        Self::of_plan(pl)
    }

    /// Exactly one flow of each of `profiles`, between fresh endpoints,
    /// starting within `spread_seconds` of the start (calls last
    /// `call_seconds`, drawn as for [`Generator::new`]): e.g. one call and
    /// one look-alike to play through a firewall.
    pub fn of_profiles(cfg: &SynthConfig, profiles: &[Profile]) -> Generator {
        let mut pl = Planner {
            cfg,
            rng: Rng::new(cfg.seed),
            flows: Vec::new(),
        };
        for &p in profiles {
            pl.single(p);
        }
        Self::of_plan(pl)
    }

    fn of_plan(pl: Planner<'_>) -> Generator {
        let loss = pl.cfg.loss;
        let tunnel = pl.cfg.tunnel;
        let Planner { rng, flows, .. } = pl;
        let mut heap = BinaryHeap::new();
        for (i, f) in flows.iter().enumerate() {
            if let Some((t, _, _)) = f.next_time() {
                heap.push(Reverse((t, i as u32)));
            }
        }
        Generator {
            rng,
            flows,
            heap,
            loss,
            tunnel,
        }
    }

    /// The tunnel its frames are wrapped in, if any.
    pub fn tunnel(&self) -> Option<TunnelKind> {
        self.tunnel
    }

    /// The flows planned, with their labels.
    pub fn flows(&self) -> impl Iterator<Item = &SynthFlow> {
        self.flows.iter().map(|f| &f.flow)
    }

    /// The next message into `msg` (its payload buffer is reused); false at
    /// the end.
    pub fn next_into(&mut self, msg: &mut Message) -> bool {
        while let Some(Reverse((_, i))) = self.heap.pop() {
            let f = &mut self.flows[i as usize];
            let Some((ts, d, s)) = f.next_time() else {
                continue;
            };
            let sent = f.emit(&mut self.rng, d, s, ts, &mut msg.payload, self.loss);
            if let Some((nt, _, _)) = f.next_time() {
                self.heap.push(Reverse((nt, i)));
            }
            if !sent {
                continue;
            }
            let (src, dst) = if d == 0 {
                (f.flow.a, f.flow.b)
            } else {
                (f.flow.b, f.flow.a)
            };
            msg.ts = ts;
            msg.src = src;
            msg.dst = dst;
            msg.transport = f.flow.profile.transport();
            msg.vlan = f.vlan;
            return true;
        }
        false
    }
}

/// What went wrong writing a synthetic capture.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// libpcap refused.
    #[error("{0}: {1}")]
    Pcap(String, String),
    /// Writing the labels.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Builds the Ethernet frame of a message into `frame`.
pub fn frame_of(m: &Message, frame: &mut Vec<u8>) -> bool {
    frame.clear();
    let eth = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let vlan = m
        .vlan
        .and_then(|v| etherparse::VlanId::try_new(v & 0x0FFF).ok());
    let ip = match (m.src.0, m.dst.0, vlan) {
        (IpAddr::V4(s), IpAddr::V4(d), None) => eth.ipv4(s.octets(), d.octets(), 64),
        (IpAddr::V4(s), IpAddr::V4(d), Some(v)) => {
            eth.single_vlan(v).ipv4(s.octets(), d.octets(), 64)
        }
        (IpAddr::V6(s), IpAddr::V6(d), None) => eth.ipv6(s.octets(), d.octets(), 64),
        (IpAddr::V6(s), IpAddr::V6(d), Some(v)) => {
            eth.single_vlan(v).ipv6(s.octets(), d.octets(), 64)
        }
        _ => return false,
    };
    let r = match m.transport {
        Transport::Udp => ip.udp(m.src.1, m.dst.1).write(frame, &m.payload),
        Transport::Tcp => ip
            .tcp(m.src.1, m.dst.1, (m.ts as u32).wrapping_mul(7), 65535)
            .ack(1)
            .psh()
            .write(frame, &m.payload),
    };
    r.is_ok()
}

/// Builds the frame of a message into `frame`, wrapped in `tunnel` if
/// given ([`wrap_in_tunnel`]).
pub fn frame_in(m: &Message, tunnel: Option<TunnelKind>, frame: &mut Vec<u8>) -> bool {
    if !frame_of(m, frame) {
        return false;
    }
    match tunnel {
        None => true,
        Some(kind) => {
            let inner = std::mem::take(frame);
            wrap_in_tunnel(kind, m, &inner, frame)
        }
    }
}

/// The tunnel endpoint on the clients' side (a base station, a VTEP).
const TUNNEL_NEAR: [u8; 4] = [10, 200, 0, 1];
/// The tunnel endpoint beyond (a gateway, a VTEP).
const TUNNEL_FAR: [u8; 4] = [10, 200, 0, 2];

/// Wraps the Ethernet frame `inner` of message `m` in a tunnel of `kind`
/// between 10.200.0.1 and 10.200.0.2 into `out`: the clients'
/// side (private or documentation-prefix addresses) sends from the near
/// end. GTP-U carries the IP packet with a TEID per client and direction
/// (as a base station and a gateway each name their end of a bearer), GRE
/// carries it with key 77, VXLAN carries the whole frame in VNI 4242, IP in
/// IP carries the IP packet. False for a kind the generator does not make.
pub fn wrap_in_tunnel(kind: TunnelKind, m: &Message, inner: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let is_near = |ip: &IpAddr| match ip {
        IpAddr::V4(a) => a.octets()[0] == 10,
        IpAddr::V6(a) => a.octets()[1] == 0x01,
    };
    let uplink = is_near(&m.src.0);
    let (src, dst) = if uplink {
        (TUNNEL_NEAR, TUNNEL_FAR)
    } else {
        (TUNNEL_FAR, TUNNEL_NEAR)
    };
    // The IP packet inside the Ethernet frame (after a VLAN tag, if any).
    let ip_at = if inner.get(12..14) == Some(&[0x81, 0x00][..]) {
        18
    } else {
        14
    };
    let Some(ip) = inner.get(ip_at..) else {
        return false;
    };
    let v6 = ip.first().is_some_and(|b| b >> 4 == 6);
    let client = if uplink { m.src.0 } else { m.dst.0 };
    let client_tag = match client {
        IpAddr::V4(a) => u32::from(a),
        IpAddr::V6(a) => {
            let o = a.octets();
            u32::from_be_bytes([o[12], o[13], o[14], o[15]])
        }
    };
    let mut body = Vec::with_capacity(inner.len() + 16);
    let (protocol, ports) = match kind {
        TunnelKind::GtpU => {
            // Version 1, GTP, no options; G-PDU; length; TEID.
            let teid = (client_tag & 0x0FFF_FFFF) | if uplink { 0x1000_0000 } else { 0x2000_0000 };
            body.extend_from_slice(&[0x30, 0xFF]);
            body.extend_from_slice(&(ip.len() as u16).to_be_bytes());
            body.extend_from_slice(&teid.to_be_bytes());
            body.extend_from_slice(ip);
            (17u8, Some((crate::wire::gtp::PORT, crate::wire::gtp::PORT)))
        }
        TunnelKind::Vxlan => {
            body.extend_from_slice(&[0x08, 0, 0, 0, 0, 0x10, 0x92, 0]);
            body.extend_from_slice(inner);
            // The source port from the inner flow, as VTEPs spread flows.
            let entropy = 49152 + ((u32::from(m.src.1) ^ u32::from(m.dst.1)) & 0x3FFF) as u16;
            (17u8, Some((entropy, crate::wire::vxlan::PORT)))
        }
        TunnelKind::Gre => {
            // Key present; the inner IP packet's EtherType.
            body.extend_from_slice(&[0x20, 0x00]);
            body.extend_from_slice(&(if v6 { 0x86DDu16 } else { 0x0800 }).to_be_bytes());
            body.extend_from_slice(&77u32.to_be_bytes());
            body.extend_from_slice(ip);
            (crate::wire::gre::IP_PROTOCOL, None)
        }
        TunnelKind::IpInIp => {
            body.extend_from_slice(ip);
            (if v6 { 41u8 } else { 4u8 }, None)
        }
        _ => return false,
    };
    let mut l4 = Vec::with_capacity(body.len() + 8);
    if let Some((sp, dp)) = ports {
        l4.extend_from_slice(&sp.to_be_bytes());
        l4.extend_from_slice(&dp.to_be_bytes());
        l4.extend_from_slice(&((body.len() + 8) as u16).to_be_bytes());
        // No UDP checksum (allowed over IPv4, as tunnels usually send).
        l4.extend_from_slice(&[0, 0]);
    }
    l4.extend_from_slice(&body);
    let total = 20 + l4.len();
    let Ok(total) = u16::try_from(total) else {
        return false;
    };
    out.extend_from_slice(&[2, 0, 0, 0, 0, 3, 2, 0, 0, 0, 0, 4, 0x08, 0x00]);
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&src);
    h[16..20].copy_from_slice(&dst);
    let sum: u32 = h
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    let folded = (sum & 0xFFFF) + (sum >> 16);
    let checksum = !(((folded & 0xFFFF) + (folded >> 16)) as u16);
    h[10..12].copy_from_slice(&checksum.to_be_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&l4);
    true
}

/// The next `limit` messages as Ethernet frames with their timestamps (for
/// benchmarks and tests that feed the classifier without a file), wrapped
/// in the generator's tunnel if it has one.
pub fn frames(gen: &mut Generator, limit: usize) -> Vec<(i64, Vec<u8>)> {
    let mut msg = Message::empty();
    let tunnel = gen.tunnel();
    let mut out = Vec::new();
    while out.len() < limit && gen.next_into(&mut msg) {
        let mut f = Vec::with_capacity(msg.payload.len() + 62);
        if frame_in(&msg, tunnel, &mut f) {
            out.push((msg.ts, f));
        }
    }
    out
}

/// Streams a generator to a pcap file; returns the messages written.
/// Stops after `max_messages` when given.
pub fn write_pcap(
    path: &Path,
    gen: &mut Generator,
    max_messages: Option<u64>,
) -> Result<u64, SynthError> {
    let tunnel = gen.tunnel();
    write_messages(path, tunnel, max_messages, |m| gen.next_into(m))
}

/// Streams messages to a pcap file (Ethernet frames, wrapped in `tunnel`
/// if given) until `next` has no more or `max_messages` are written;
/// returns the messages written.
pub fn write_messages(
    path: &Path,
    tunnel: Option<TunnelKind>,
    max_messages: Option<u64>,
    mut next: impl FnMut(&mut Message) -> bool,
) -> Result<u64, SynthError> {
    let pe = |e: pcap::Error| SynthError::Pcap(path.display().to_string(), e.to_string());
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(pe)?;
    let mut save = dead.savefile(path).map_err(pe)?;
    let mut frame = Vec::with_capacity(2048);
    let mut msg = Message::empty();
    let mut n = 0u64;
    while max_messages.is_none_or(|m| n < m) && next(&mut msg) {
        if !frame_in(&msg, tunnel, &mut frame) {
            continue;
        }
        #[allow(clippy::useless_conversion)]
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (msg.ts / 1_000_000) as libc::time_t,
                tv_usec: (msg.ts % 1_000_000) as libc::suseconds_t,
            },
            caplen: frame.len() as u32,
            len: frame.len() as u32,
        };
        save.write(&pcap::Packet::new(&header, &frame));
        n += 1;
    }
    save.flush().map_err(pe)?;
    Ok(n)
}

/// Writes the label CSV: `transport,src_ip,src_port,dst_ip,dst_port,label,kind`
/// plus `codec`, `variant` ([`Profile::variant`]) and `media` (whether the
/// flow carries a call's media, [`Profile::is_media`]).
pub fn write_labels<'a>(
    path: &Path,
    flows: impl Iterator<Item = &'a SynthFlow>,
) -> Result<(), SynthError> {
    let io = |e| SynthError::Io(path.display().to_string(), e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(
        f,
        "transport,src_ip,src_port,dst_ip,dst_port,label,kind,codec,variant,media"
    )
    .map_err(io)?;
    for fl in flows {
        writeln!(
            f,
            "{},{},{},{},{},{},{},{},{},{}",
            fl.profile.transport().as_str(),
            fl.a.0,
            fl.a.1,
            fl.b.0,
            fl.b.1,
            fl.profile.label(),
            fl.profile.kind(),
            fl.profile.codec().unwrap_or(""),
            fl.profile.variant(),
            fl.profile.is_media()
        )
        .map_err(io)?;
    }
    f.flush().map_err(io)
}

/// The settings of the small sample in `datasets/` (regenerate with
/// `cargo run --release --example synth -- --sample --out datasets/sample.pcap --labels datasets/sample-labels.csv`).
pub fn sample_config() -> SynthConfig {
    SynthConfig {
        seed: 1,
        spread_seconds: 4.0,
        call_seconds: 12.0,
        bulk_seconds: 0.5,
        flows_per_profile: 1,
        signalling_clients: 1,
        peers: 30,
        late_clients: 1,
        late_servers: (50, 80),
        short_tcp_per_client: 4,
        peer_look_alike_clients: 1,
        ..SynthConfig::default()
    }
}

/// The settings of the synthetic Skype calls that `synth-calls:SEED` label
/// specs train on: one call of every media variant per codec profile (the
/// published frame sizes and intervals, which the real captures lack for
/// low-rate codecs; voice with ringing, spurts and pauses; voice with
/// video; video alone; short calls; E2O; TCP), no look-alikes, signalling
/// or other clients.
pub fn training_calls_config(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        spread_seconds: 20.0,
        call_seconds: 20.0,
        flows_per_profile: 1,
        signalling_clients: 0,
        late_clients: 0,
        peer_look_alike_clients: 0,
        look_alikes: false,
        skype_extras: true,
        ..SynthConfig::default()
    }
}
