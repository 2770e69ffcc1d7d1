//! Synthetic traffic from the published description of the protocol
//! (method.md §1 and §4): classic Skype calls of each kind and look-alike
//! negatives, interleaved in time as on a real link, streamed to a pcap with
//! a label CSV. Seeded and reproducible. This is the project's own data;
//! every table that uses it says so.
//!
//! Skype kinds: E2E voice (codec profiles iSAC 30/60 ms, iLBC 20/30 ms,
//! G.729, SILK, iPCM-wb, with jitter, loss and silence), E2E voice with
//! video, E2O SkypeOut, TCP-relayed voice, and signalling through one client
//! port to many peers. Look-alikes: RTP, SRTP, WebRTC (STUN, DTLS, SRTP),
//! QUIC, WireGuard, OpenVPN, IPsec NAT-T, DNS, and fully random UDP (at voice
//! rhythm and in bulk) and TCP (in bulk).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use etherparse::PacketBuilder;

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
}

/// A voice codec profile as Skype sent it: frame interval and message sizes
/// (codec frame plus Skype's header, method.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    /// Name for labels and reports.
    pub name: &'static str,
    /// Milliseconds between messages.
    pub frame_ms: u32,
    /// Smallest message (payload bytes).
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
    /// Skype E2E voice with a codec.
    SkypeVoice(Codec),
    /// Skype E2E voice with video in the same flow.
    SkypeVideo(Codec),
    /// Skype E2O (SkypeOut) to a gateway.
    SkypeOut,
    /// Skype voice relayed over TCP.
    SkypeTcp(Codec),
    /// One flow of a client's signalling (1 to 5 messages to one peer).
    SkypeSignalling,
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
}

impl Profile {
    /// The label written to the CSV.
    pub fn label(&self) -> &'static str {
        match self {
            Profile::SkypeVoice(_)
            | Profile::SkypeVideo(_)
            | Profile::SkypeOut
            | Profile::SkypeTcp(_)
            | Profile::SkypeSignalling => "skype",
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
        }
    }

    /// The Skype kind ("e2e", "e2o", "tcp", "signalling"), empty otherwise.
    pub fn kind(&self) -> &'static str {
        match self {
            Profile::SkypeVoice(_) | Profile::SkypeVideo(_) => "e2e",
            Profile::SkypeOut => "e2o",
            Profile::SkypeTcp(_) => "tcp",
            Profile::SkypeSignalling => "signalling",
            _ => "",
        }
    }

    /// The codec name, if any.
    pub fn codec(&self) -> Option<&'static str> {
        match self {
            Profile::SkypeVoice(c) | Profile::SkypeVideo(c) | Profile::SkypeTcp(c) => Some(c.name),
            _ => None,
        }
    }

    /// TCP or UDP.
    pub fn transport(&self) -> Transport {
        match self {
            Profile::SkypeTcp(_) | Profile::RandomTcpBulk => Transport::Tcp,
            _ => Transport::Udp,
        }
    }

    /// The look-alike profiles.
    pub const LOOK_ALIKES: [Profile; 11] = [
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

/// The state of one flow being generated.
struct FlowGen {
    flow: SynthFlow,
    /// Next message time per direction (forward, backward); None when done.
    next: [Option<i64>; 2],
    end: i64,
    /// Messages sent per direction.
    sent: [u32; 2],
    /// Per-direction constants: connection IDs, SSRCs, SPIs, counters.
    ids: [u64; 2],
    vlan: Option<u16>,
    /// Signalling: messages left per direction.
    left: [u32; 2],
    /// Silence until this time, per direction.
    silent_until: [i64; 2],
    seq: [u32; 2],
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
    /// Skype clients whose signalling is generated, each to `peers` peers.
    pub signalling_clients: u32,
    /// Peers per signalling client.
    pub peers: u32,
    /// Share of flows over IPv6.
    pub ipv6_share: f64,
    /// Share of flows with a VLAN tag.
    pub vlan_share: f64,
    /// Share of voice messages lost.
    pub loss: f64,
    /// Whether to add the look-alike negatives.
    pub look_alikes: bool,
    /// Whether to add Skype video, E2O and TCP flows beside the voice calls.
    pub skype_extras: bool,
    /// Seconds a bulk transfer (QUIC, random UDP/TCP bulk) lasts.
    pub bulk_seconds: f64,
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
            ipv6_share: 0.25,
            vlan_share: 0.25,
            loss: 0.01,
            look_alikes: true,
            skype_extras: true,
            bulk_seconds: 6.0,
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

impl FlowGen {
    fn new(rng: &mut Rng, flow: SynthFlow, start: i64, seconds: f64, vlan: Option<u16>) -> Self {
        let end = start + (seconds * 1e6) as i64;
        let (next_b, left) = match flow.profile {
            Profile::SkypeSignalling => {
                let n = rng.range(1, 5) as u32;
                let replies = rng.below(u64::from(n) + 1) as u32;
                (
                    Some(start + rng.range(20_000, 200_000) as i64),
                    [n, replies],
                )
            }
            Profile::Dns => (Some(start + rng.range(5_000, 50_000) as i64), [1, 1]),
            Profile::RandomUdpBulk | Profile::Quic => {
                (Some(start + rng.range(1_000, 20_000) as i64), [0, 0])
            }
            _ => (Some(start + rng.range(0, 30_000) as i64), [0, 0]),
        };
        FlowGen {
            flow,
            next: [Some(start), next_b],
            end,
            sent: [0, 0],
            ids: [rng.next_u64(), rng.next_u64()],
            vlan,
            left,
            silent_until: [0, 0],
            seq: [rng.next_u64() as u32, rng.next_u64() as u32],
        }
    }

    /// The earlier of the two directions' next times.
    fn next_time(&self) -> Option<(i64, usize)> {
        match (self.next[0], self.next[1]) {
            (Some(a), Some(b)) if b < a => Some((b, 1)),
            (Some(a), _) => Some((a, 0)),
            (None, Some(b)) => Some((b, 1)),
            (None, None) => None,
        }
    }

    /// Makes the message of direction `d` at time `ts` into `payload`, and
    /// schedules the next. Returns false for a lost message (nothing sent).
    fn emit(&mut self, rng: &mut Rng, d: usize, ts: i64, payload: &mut Vec<u8>, loss: f64) -> bool {
        payload.clear();
        let p = self.flow.profile;
        let mut gap_us: i64;
        let jitter = |rng: &mut Rng| rng.range(0, 4_000) as i64 - 2_000;
        let mut send = true;
        match p {
            Profile::SkypeVoice(c) | Profile::SkypeVideo(c) | Profile::SkypeTcp(c) => {
                gap_us = i64::from(c.frame_ms) * 1000 + jitter(rng);
                // Silence: Skype keeps sending through it, with smaller messages.
                if ts >= self.silent_until[d] && rng.chance(0.02) {
                    self.silent_until[d] = ts + rng.range(500_000, 3_000_000) as i64;
                }
                let silent = ts < self.silent_until[d];
                let mut len = if silent {
                    c.min_bytes
                } else {
                    rng.range(u64::from(c.min_bytes), u64::from(c.max_bytes)) as u32
                } as usize;
                // Redundant frames now and then: a larger message.
                if !silent && rng.chance(0.05) {
                    len = len * 3 / 2;
                }
                if let Profile::SkypeVideo(_) = p {
                    // Between voice frames, a video frame split in band-sized
                    // messages (about 15 frames per second).
                    if rng.chance(0.6) {
                        len = if rng.chance(0.5) {
                            rng.range(400, 490)
                        } else {
                            rng.range(800, 980)
                        } as usize;
                        gap_us = rng.range(5_000, 15_000) as i64;
                    }
                }
                payload.resize(len, 0);
                rng.fill(payload);
                if p.transport() == Transport::Udp {
                    payload[2] = (payload[2] & 0x70) | 0x0D;
                }
                send = !rng.chance(loss);
            }
            Profile::SkypeOut => {
                gap_us = 20_000 + jitter(rng);
                let len = rng.range(29, 60) as usize;
                payload.resize(len, 0);
                rng.fill(payload);
                payload[..4].copy_from_slice(&(self.ids[d] as u32).to_be_bytes());
                send = !rng.chance(loss);
            }
            Profile::SkypeSignalling => {
                gap_us = rng.range(30_000, 1_500_000) as i64;
                let len = rng.range(18, 120) as usize;
                payload.resize(len, 0);
                rng.fill(payload);
                // A 2-byte message ID that counts, FUNC values of signalling.
                let id = (self.ids[d] as u16).wrapping_add(self.sent[d] as u16);
                payload[..2].copy_from_slice(&id.to_be_bytes());
                let func = [0x02u8, 0x02, 0x02, 0x03, 0x07][rng.below(5) as usize];
                payload[2] = (payload[2] & 0x70) | func;
                self.left[d] = self.left[d].saturating_sub(1);
            }
            Profile::Rtp | Profile::Srtp | Profile::WebRtc => {
                gap_us = 20_000 + jitter(rng);
                let n = self.sent[d];
                let stun_phase = p == Profile::WebRtc && n < 4;
                let dtls_phase = p == Profile::WebRtc && (4..8).contains(&n);
                if stun_phase {
                    // STUN binding request/response: type, length, magic cookie, ID.
                    payload.resize(20 + 40, 0);
                    rng.fill(payload);
                    payload[..2].copy_from_slice(if d == 0 {
                        &[0x00, 0x01]
                    } else {
                        &[0x01, 0x01]
                    });
                    payload[2..4].copy_from_slice(&40u16.to_be_bytes());
                    payload[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
                    gap_us = 50_000;
                } else if dtls_phase {
                    // DTLS 1.2 handshake record header.
                    payload.resize(rng.range(100, 300) as usize, 0);
                    rng.fill(payload);
                    payload[..3].copy_from_slice(&[0x16, 0xFE, 0xFD]);
                    payload[3..5].copy_from_slice(&[0, 0]);
                    gap_us = 30_000;
                } else {
                    let len = if p == Profile::Rtp {
                        172
                    } else {
                        rng.range(60, 140) as usize
                    };
                    payload.resize(len, 0);
                    rng.fill(&mut payload[12..]);
                    payload[0] = 0x80;
                    payload[1] = if p == Profile::Rtp { 0x08 } else { 0x6F };
                    self.seq[d] = self.seq[d].wrapping_add(1);
                    payload[2..4].copy_from_slice(&(self.seq[d] as u16).to_be_bytes());
                    payload[4..8].copy_from_slice(&(n.wrapping_mul(160)).to_be_bytes());
                    payload[8..12].copy_from_slice(&(self.ids[d] as u32).to_be_bytes());
                }
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
                payload[1..9].copy_from_slice(&self.ids[1 - d].to_be_bytes());
            }
            Profile::WireGuard | Profile::OpenVpn | Profile::IpsecNatT => {
                gap_us = 20_000 + jitter(rng);
                let len = rng.range(110, 200) as usize;
                payload.resize(len, 0);
                rng.fill(payload);
                let counter = u64::from(self.sent[d]);
                match p {
                    Profile::WireGuard => {
                        payload[..4].copy_from_slice(&[4, 0, 0, 0]);
                        payload[4..8].copy_from_slice(&(self.ids[d] as u32).to_le_bytes());
                        payload[8..16].copy_from_slice(&counter.to_le_bytes());
                    }
                    Profile::OpenVpn => {
                        payload[0] = 0x48;
                        payload[1..9].copy_from_slice(&self.ids[d].to_be_bytes());
                        payload[9..13].copy_from_slice(&(counter as u32).to_be_bytes());
                    }
                    _ => {
                        payload[..4].copy_from_slice(&(self.ids[d] as u32).to_be_bytes());
                        payload[4..8].copy_from_slice(&(counter as u32 + 1).to_be_bytes());
                    }
                }
            }
            Profile::Dns => {
                gap_us = 0;
                let id = self.ids[0] as u16;
                payload.extend_from_slice(&id.to_be_bytes());
                payload.extend_from_slice(if d == 0 { &[0x01, 0x00] } else { &[0x81, 0x80] });
                payload.extend_from_slice(&[0, 1, 0, u8::from(d == 1), 0, 0, 0, 0, 7]);
                payload.extend_from_slice(b"example\x03com\x00\x00\x01\x00\x01");
                if d == 1 {
                    payload.extend_from_slice(&[
                        0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0x0E, 0x10, 0, 4, 93, 184, 216, 34,
                    ]);
                }
                self.left[d] = 0;
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
        self.sent[d] += 1;
        let next = ts + gap_us.max(100);
        let finite = matches!(p, Profile::SkypeSignalling | Profile::Dns);
        self.next[d] = if finite {
            (self.left[d] > 0).then_some(next)
        } else {
            (next < self.end).then_some(next)
        };
        send
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
    // Draw order gap, size, bytes: the committed sample capture depends on it.
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
}

impl Generator {
    /// Plans the flows of a capture.
    pub fn new(cfg: &SynthConfig) -> Generator {
        let mut rng = Rng::new(cfg.seed);
        let mut plan: Vec<Profile> = Vec::new();
        for _ in 0..cfg.flows_per_profile {
            for c in CODECS {
                plan.push(Profile::SkypeVoice(c));
            }
            if cfg.skype_extras {
                plan.push(Profile::SkypeVideo(
                    CODECS[rng.below(CODECS.len() as u64) as usize],
                ));
                plan.push(Profile::SkypeOut);
                plan.push(Profile::SkypeTcp(
                    CODECS[rng.below(CODECS.len() as u64) as usize],
                ));
            }
            if cfg.look_alikes {
                plan.extend(Profile::LOOK_ALIKES);
            }
        }
        let mut flows = Vec::new();
        let spread = (cfg.spread_seconds * 1e6) as u64;
        for p in plan {
            let v6 = rng.chance(cfg.ipv6_share);
            let vlan = rng
                .chance(cfg.vlan_share)
                .then(|| rng.range(2, 4000) as u16);
            let a = (addr(&mut rng, v6, true), high_port(&mut rng));
            let b_port = match p {
                Profile::Dns => 53,
                Profile::Quic => 443,
                Profile::OpenVpn => 1194,
                Profile::IpsecNatT => 4500,
                Profile::WireGuard => 51820,
                Profile::RandomTcpBulk => 443,
                _ => high_port(&mut rng),
            };
            let b = (addr(&mut rng, v6, false), b_port);
            let start = cfg.start + rng.below(spread) as i64;
            let secs = cfg.call_seconds * (0.5 + 0.5 * (rng.below(1000) as f64 / 1000.0));
            let secs = if matches!(
                p,
                Profile::RandomUdpBulk | Profile::RandomTcpBulk | Profile::Quic
            ) {
                cfg.bulk_seconds
            } else {
                secs
            };
            flows.push(FlowGen::new(
                &mut rng,
                SynthFlow { a, b, profile: p },
                start,
                secs,
                vlan,
            ));
        }
        // Signalling: one client port, many peers, flows of 1 to 5 messages.
        for _ in 0..cfg.signalling_clients {
            let v6 = rng.chance(cfg.ipv6_share);
            let client = (addr(&mut rng, v6, true), high_port(&mut rng));
            let vlan = rng
                .chance(cfg.vlan_share)
                .then(|| rng.range(2, 4000) as u16);
            for _ in 0..cfg.peers {
                let peer = (addr(&mut rng, v6, false), high_port(&mut rng));
                let start = cfg.start + rng.below(spread * 2) as i64;
                let flow = SynthFlow {
                    a: client,
                    b: peer,
                    profile: Profile::SkypeSignalling,
                };
                flows.push(FlowGen::new(&mut rng, flow, start, 10.0, vlan));
            }
        }
        let mut heap = BinaryHeap::new();
        for (i, f) in flows.iter().enumerate() {
            if let Some((t, _)) = f.next_time() {
                heap.push(Reverse((t, i as u32)));
            }
        }
        Generator {
            rng,
            flows,
            heap,
            loss: cfg.loss,
        }
    }

    /// The flows planned, with their labels.
    pub fn flows(&self) -> impl Iterator<Item = &SynthFlow> {
        self.flows.iter().map(|f| &f.flow)
    }

    /// The next message into `msg` (its payload buffer is reused); false at
    /// the end.
    pub fn next_into(&mut self, msg: &mut Message) -> bool {
        while let Some(Reverse((t, i))) = self.heap.pop() {
            let f = &mut self.flows[i as usize];
            let Some((ts, d)) = f.next_time() else {
                continue;
            };
            debug_assert_eq!(ts, t);
            let sent = f.emit(&mut self.rng, d, ts, &mut msg.payload, self.loss);
            if let Some((nt, _)) = f.next_time() {
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

/// The next `limit` messages as Ethernet frames with their timestamps (for
/// benchmarks and tests that feed the classifier without a file).
pub fn frames(gen: &mut Generator, limit: usize) -> Vec<(i64, Vec<u8>)> {
    let mut msg = Message {
        ts: 0,
        src: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        dst: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        transport: Transport::Udp,
        payload: Vec::with_capacity(2048),
        vlan: None,
    };
    let mut out = Vec::new();
    while out.len() < limit && gen.next_into(&mut msg) {
        let mut f = Vec::with_capacity(msg.payload.len() + 62);
        if frame_of(&msg, &mut f) {
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
    let pe = |e: pcap::Error| SynthError::Pcap(path.display().to_string(), e.to_string());
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(pe)?;
    let mut save = dead.savefile(path).map_err(pe)?;
    let mut frame = Vec::with_capacity(2048);
    let mut msg = Message {
        ts: 0,
        src: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        dst: (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        transport: Transport::Udp,
        payload: Vec::with_capacity(2048),
        vlan: None,
    };
    let mut n = 0u64;
    while max_messages.is_none_or(|m| n < m) && gen.next_into(&mut msg) {
        if !frame_of(&msg, &mut frame) {
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

/// Writes the label CSV (`transport,src_ip,src_port,dst_ip,dst_port,label,kind`
/// plus a `codec` column).
pub fn write_labels<'a>(
    path: &Path,
    flows: impl Iterator<Item = &'a SynthFlow>,
) -> Result<(), SynthError> {
    let io = |e| SynthError::Io(path.display().to_string(), e);
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(
        f,
        "transport,src_ip,src_port,dst_ip,dst_port,label,kind,codec"
    )
    .map_err(io)?;
    for fl in flows {
        writeln!(
            f,
            "{},{},{},{},{},{},{},{}",
            fl.profile.transport().as_str(),
            fl.a.0,
            fl.a.1,
            fl.b.0,
            fl.b.1,
            fl.profile.label(),
            fl.profile.kind(),
            fl.profile.codec().unwrap_or("")
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
        call_seconds: 9.0,
        bulk_seconds: 1.2,
        flows_per_profile: 1,
        signalling_clients: 1,
        peers: 30,
        ..SynthConfig::default()
    }
}

/// The settings of the synthetic Skype calls that `synth-calls:SEED` label
/// specs train on: one UDP voice call per codec profile (the published frame
/// sizes and intervals, which the real captures lack for low-rate codecs),
/// no video, E2O, TCP, look-alikes or signalling.
pub fn training_calls_config(seed: u64) -> SynthConfig {
    SynthConfig {
        seed,
        spread_seconds: 20.0,
        call_seconds: 20.0,
        flows_per_profile: 1,
        signalling_clients: 0,
        look_alikes: false,
        skype_extras: false,
        ..SynthConfig::default()
    }
}
