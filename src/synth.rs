//! Synthetic traffic from the published description of the protocol:
//! classic Skype E2E voice calls and look-alike negatives, written as a pcap
//! with a label CSV. Seeded and reproducible. The project's own data: every
//! table that uses it says so.

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

use etherparse::PacketBuilder;

/// xorshift64* generator: reproducible from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Fills a buffer with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// One synthetic UDP message.
#[derive(Debug, Clone)]
pub struct Message {
    /// Time, microseconds since the epoch.
    pub ts: i64,
    /// Sender.
    pub src: (Ipv4Addr, u16),
    /// Receiver.
    pub dst: (Ipv4Addr, u16),
    /// Payload.
    pub payload: Vec<u8>,
}

/// A labelled synthetic flow.
#[derive(Debug, Clone)]
pub struct SynthFlow {
    /// Initiator.
    pub a: (Ipv4Addr, u16),
    /// Responder.
    pub b: (Ipv4Addr, u16),
    /// "skype" or the look-alike's name.
    pub label: &'static str,
    /// "e2e" for Skype voice, empty otherwise.
    pub kind: &'static str,
}

/// A Skype E2E voice message: random 2-byte ID, FUNC 0x0D with bits 6-4
/// random and bit 7 clear, then an encrypted body (method.md §1).
pub fn skype_e2e_payload(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(8)];
    rng.fill(&mut p);
    p[2] = (p[2] & 0x70) | 0x0D;
    p
}

/// An RTP message: version 2, payload type, sequence, timestamp, SSRC.
pub fn rtp_payload(rng: &mut Rng, seq: u16, ts: u32, ssrc: u32, len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len.max(12)];
    rng.fill(&mut p[12..]);
    p[0] = 0x80;
    p[1] = 0x08;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&ts.to_be_bytes());
    p[8..12].copy_from_slice(&ssrc.to_be_bytes());
    p
}

/// A voice call of `seconds`, both directions, one message per `frame_ms`
/// with sizes around `size` bytes and jitter of a few milliseconds.
#[allow(clippy::too_many_arguments)]
pub fn voice_call(
    rng: &mut Rng,
    start: i64,
    seconds: f64,
    frame_ms: i64,
    size: usize,
    a: (Ipv4Addr, u16),
    b: (Ipv4Addr, u16),
    skype: bool,
    out: &mut Vec<Message>,
) {
    let frames = (seconds * 1000.0 / frame_ms as f64) as i64;
    let ssrc = [rng.next_u64() as u32, rng.next_u64() as u32];
    for (d, (src, dst)) in [(a, b), (b, a)].into_iter().enumerate() {
        let offset = rng.below(frame_ms as u64 * 1000) as i64;
        for i in 0..frames {
            let jitter = rng.below(4000) as i64 - 2000;
            let ts = start + offset + i * frame_ms * 1000 + jitter;
            let len = size + rng.below(size as u64 / 4 + 1) as usize;
            let payload = if skype {
                skype_e2e_payload(rng, len)
            } else {
                rtp_payload(rng, i as u16, (i * 160) as u32, ssrc[d], len)
            };
            out.push(Message {
                ts,
                src,
                dst,
                payload,
            });
        }
    }
}

/// DNS queries and answers from one client to a resolver.
pub fn dns_exchanges(
    rng: &mut Rng,
    start: i64,
    n: usize,
    client: Ipv4Addr,
    server: Ipv4Addr,
    out: &mut Vec<Message>,
    flows: &mut Vec<SynthFlow>,
) {
    for i in 0..n {
        let port = 40000 + rng.below(20000) as u16;
        let ts = start + i as i64 * 250_000;
        let id = rng.next_u64() as u16;
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[
            0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 7,
        ]);
        q.extend_from_slice(b"example\x03com\x00\x00\x01\x00\x01");
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 1;
        out.push(Message {
            ts,
            src: (client, port),
            dst: (server, 53),
            payload: q,
        });
        out.push(Message {
            ts: ts + 15_000,
            src: (server, 53),
            dst: (client, port),
            payload: r,
        });
        flows.push(SynthFlow {
            a: (client, port),
            b: (server, 53),
            label: "dns",
            kind: "",
        });
    }
}

/// The small sample of `datasets/`: one Skype E2E call (iLBC 30 ms), one
/// RTP call (G.711 20 ms) and DNS around them.
pub fn sample(seed: u64) -> (Vec<Message>, Vec<SynthFlow>) {
    let mut rng = Rng::new(seed);
    let mut msgs = Vec::new();
    let mut flows = Vec::new();
    let start = 1_700_000_000_000_000;
    let alice = (Ipv4Addr::new(10, 1, 0, 2), 33033);
    let bob = (Ipv4Addr::new(198, 51, 100, 7), 41234);
    voice_call(&mut rng, start, 10.0, 30, 50, alice, bob, true, &mut msgs);
    flows.push(SynthFlow {
        a: alice,
        b: bob,
        label: "skype",
        kind: "e2e",
    });
    let c = (Ipv4Addr::new(10, 1, 0, 3), 16384);
    let d = (Ipv4Addr::new(203, 0, 113, 9), 20000);
    voice_call(
        &mut rng,
        start + 500_000,
        6.0,
        20,
        160,
        c,
        d,
        false,
        &mut msgs,
    );
    flows.push(SynthFlow {
        a: c,
        b: d,
        label: "rtp",
        kind: "",
    });
    dns_exchanges(
        &mut rng,
        start,
        8,
        Ipv4Addr::new(10, 1, 0, 2),
        Ipv4Addr::new(10, 1, 0, 1),
        &mut msgs,
        &mut flows,
    );
    msgs.sort_by_key(|m| m.ts);
    (msgs, flows)
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

/// Writes messages as an Ethernet pcap.
pub fn write_pcap(path: &Path, msgs: &[Message]) -> Result<(), SynthError> {
    let pe = |e: pcap::Error| SynthError::Pcap(path.display().to_string(), e.to_string());
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(pe)?;
    let mut save = dead.savefile(path).map_err(pe)?;
    let mut frame = Vec::with_capacity(2048);
    for m in msgs {
        frame.clear();
        let b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(m.src.0.octets(), m.dst.0.octets(), 64)
            .udp(m.src.1, m.dst.1);
        if b.write(&mut frame, &m.payload).is_err() {
            continue;
        }
        let header = pcap::PacketHeader {
            ts: libc::timeval {
                tv_sec: (m.ts / 1_000_000) as libc::time_t,
                tv_usec: (m.ts % 1_000_000) as libc::suseconds_t,
            },
            caplen: frame.len() as u32,
            len: frame.len() as u32,
        };
        save.write(&pcap::Packet::new(&header, &frame));
    }
    save.flush().map_err(pe)
}

/// Writes the label CSV (`transport,src_ip,src_port,dst_ip,dst_port,label,kind`).
pub fn write_labels(path: &Path, flows: &[SynthFlow]) -> Result<(), SynthError> {
    let io = |e| SynthError::Io(path.display().to_string(), e);
    let mut f = std::fs::File::create(path).map_err(io)?;
    writeln!(f, "transport,src_ip,src_port,dst_ip,dst_port,label,kind").map_err(io)?;
    for fl in flows {
        writeln!(
            f,
            "udp,{},{},{},{},{},{}",
            fl.a.0, fl.a.1, fl.b.0, fl.b.1, fl.label, fl.kind
        )
        .map_err(io)?;
    }
    Ok(())
}
