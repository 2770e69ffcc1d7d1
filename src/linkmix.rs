//! Link-like traffic for benchmarks: many short flows, as real links carry
//! them, and floods of new flows.
//!
//! The synthetic calls of [`crate::synth`] are long flows (hundreds of
//! packets each); a link is the opposite. In nDPI's test captures the mean
//! flow has 11.5 packets and two flows in three have one or two (issue 19,
//! measured with `evaluate`'s flow counts). A [`LinkMix`] draws flow sizes
//! from that shape: a share of one-packet flows, a share of two-packet
//! flows, and a Pareto tail for the rest ([`LinkMixConfig::link`] gives a
//! mean of about 20 packets); flows start as a Poisson process and overlap
//! in time; payloads are random bytes (the worst case for the randomness
//! tester: nothing is ruled out early); TCP and UDP; clients are new
//! addresses, servers come from a pool, as a link's popular services do.
//! [`LinkMixConfig::flood`] makes every flow one small UDP message from a new
//! source, as a scan or a flood does. Seeded and reproducible; the
//! project's own data, for benchmarks only (no labels: nothing here is
//! Skype, and nothing is a look-alike of it).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr};

use crate::packet::Transport;
use crate::synth::{Message, Rng};

/// Settings of a link-like mix.
#[derive(Debug, Clone)]
pub struct LinkMixConfig {
    /// Random seed.
    pub seed: u64,
    /// Capture start, microseconds since the epoch.
    pub start: i64,
    /// Flows to generate.
    pub flows: u64,
    /// New flows a second (a Poisson process).
    pub flows_per_second: f64,
    /// Share of flows of one packet.
    pub one_packet_share: f64,
    /// Share of flows of two packets (a request and its answer).
    pub two_packet_share: f64,
    /// The rest: 3 packets or more, Pareto with this shape (smaller is
    /// heavier)...
    pub tail_shape: f64,
    /// ...and at most this many packets.
    pub max_packets: u32,
    /// Mean gap between two packets of a flow, microseconds (exponential).
    pub mean_gap_us: f64,
    /// Share of flows over UDP (the rest TCP).
    pub udp_share: f64,
    /// Servers the clients talk to (a pool: popular services recur).
    pub servers: u32,
    /// Longest payload, bytes (a flood's messages are small).
    pub max_payload: usize,
}

impl LinkMixConfig {
    /// A link-like mix of `flows` flows: half of them one packet, 17 % two,
    /// the rest a Pareto tail of shape 0.85 from 3 packets, capped at
    /// 20,000 (a mean of about 20 packets a flow; two thirds of flows one
    /// or two packets, as in nDPI's captures); 40 % UDP; 20,000 servers;
    /// 40,000 new flows a second.
    pub fn link(flows: u64) -> Self {
        LinkMixConfig {
            seed: 19,
            start: 1_700_000_000_000_000,
            flows,
            flows_per_second: 40_000.0,
            one_packet_share: 0.5,
            two_packet_share: 0.17,
            tail_shape: 0.85,
            max_packets: 20_000,
            mean_gap_us: 20_000.0,
            udp_share: 0.4,
            servers: 20_000,
            max_payload: 1400,
        }
    }

    /// A flood of `flows` one-message UDP flows, each from a new source.
    pub fn flood(flows: u64) -> Self {
        LinkMixConfig {
            one_packet_share: 1.0,
            two_packet_share: 0.0,
            udp_share: 1.0,
            flows_per_second: 1_000_000.0,
            max_payload: 64,
            ..LinkMixConfig::link(flows)
        }
    }
}

/// A flow being generated.
#[derive(Debug, Clone, Copy)]
struct ActiveFlow {
    client: (IpAddr, u16),
    server: (IpAddr, u16),
    transport: Transport,
    left: u32,
    sent: u32,
}

/// The generator: messages in time order, a flow's packets interleaved
/// with the others'.
pub struct LinkMix {
    cfg: LinkMixConfig,
    rng: Rng,
    started: u64,
    next_start: i64,
    /// Next packet time of each active flow, by slot.
    due: BinaryHeap<Reverse<(i64, u32)>>,
    slots: Vec<ActiveFlow>,
    free: Vec<u32>,
    packets: u64,
}

impl LinkMix {
    /// A generator with these settings.
    pub fn new(cfg: &LinkMixConfig) -> LinkMix {
        LinkMix {
            rng: Rng::new(cfg.seed),
            next_start: cfg.start,
            cfg: cfg.clone(),
            started: 0,
            due: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            packets: 0,
        }
    }

    /// Packets generated so far.
    pub fn packets(&self) -> u64 {
        self.packets
    }

    /// Flows started so far.
    pub fn flows(&self) -> u64 {
        self.started
    }

    /// Uniform in (0, 1].
    fn unit(&mut self) -> f64 {
        ((self.rng.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }

    /// An exponential draw of mean `mean`.
    fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.unit().ln()
    }

    /// A flow size: one, two, or the Pareto tail.
    fn size(&mut self) -> u32 {
        let u = self.unit();
        let c = &self.cfg;
        if u <= c.one_packet_share {
            1
        } else if u <= c.one_packet_share + c.two_packet_share {
            2
        } else {
            let shape = c.tail_shape.max(0.01);
            let max = c.max_packets.max(3);
            let x = 3.0 * self.unit().powf(-1.0 / shape);
            (x.floor().min(f64::from(max))) as u32
        }
    }

    fn new_flow(&mut self) -> ActiveFlow {
        let transport = if self.rng.chance(self.cfg.udp_share) {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let c = self.rng.next_u64();
        let client = (
            IpAddr::V4(Ipv4Addr::new(
                10,
                (c >> 8) as u8,
                (c >> 16) as u8,
                (c >> 24) as u8,
            )),
            1024 + ((c >> 32) % 64_512) as u16,
        );
        let s = self.rng.below(u64::from(self.cfg.servers.max(1)));
        let port = match (transport, s % 4) {
            (Transport::Udp, 0) => 53,
            (Transport::Udp, 1) => 443,
            (Transport::Udp, _) => 10_000 + (s % 50_000) as u16,
            (Transport::Tcp, 3) => 80,
            (Transport::Tcp, _) => 443,
        };
        let server = (
            IpAddr::V4(Ipv4Addr::new(
                100 + (s >> 16) as u8 % 100,
                (s >> 8) as u8,
                s as u8,
                1,
            )),
            port,
        );
        let left = self.size();
        ActiveFlow {
            client,
            server,
            transport,
            left,
            sent: 0,
        }
    }

    /// The next message into `msg`; false when every flow is done.
    pub fn next_into(&mut self, msg: &mut Message) -> bool {
        loop {
            let flow_due = self.due.peek().map(|Reverse((t, _))| *t);
            let start_due = (self.started < self.cfg.flows).then_some(self.next_start);
            match (flow_due, start_due) {
                (None, None) => return false,
                (Some(t), s) if s.is_none_or(|s| t <= s) => {
                    let Some(Reverse((_, slot))) = self.due.pop() else {
                        return false;
                    };
                    if self.emit(t, slot, msg) {
                        return true;
                    }
                }
                (_, Some(s)) => {
                    self.started += 1;
                    let gap = self.exponential(1e6 / self.cfg.flows_per_second.max(1e-3));
                    self.next_start = s + gap.max(1.0) as i64;
                    let f = self.new_flow();
                    let slot = match self.free.pop() {
                        Some(i) => {
                            if let Some(x) = self.slots.get_mut(i as usize) {
                                *x = f;
                            }
                            i
                        }
                        None => {
                            self.slots.push(f);
                            (self.slots.len() - 1) as u32
                        }
                    };
                    if self.emit(s, slot, msg) {
                        return true;
                    }
                }
                (Some(_), None) => return false,
            }
        }
    }

    /// A packet of the flow in `slot` at `ts`; schedules the next one or
    /// frees the slot.
    fn emit(&mut self, ts: i64, slot: u32, msg: &mut Message) -> bool {
        let Some(mut f) = self.slots.get(slot as usize).copied() else {
            return false;
        };
        // The first packet is the client's; then both ways, the server's
        // answers a little more often and larger; TCP has pure ACKs.
        let forward = f.sent == 0 || self.rng.chance(0.45);
        let len = if f.transport == Transport::Tcp && f.sent > 0 && self.rng.chance(0.3) {
            0
        } else if self.rng.chance(if forward { 0.7 } else { 0.4 }) {
            self.rng.range(20, 200) as usize
        } else {
            self.rng.range(900, 1400) as usize
        };
        msg.ts = ts;
        (msg.src, msg.dst) = if forward {
            (f.client, f.server)
        } else {
            (f.server, f.client)
        };
        msg.transport = f.transport;
        msg.vlan = None;
        msg.payload.resize(len.min(self.cfg.max_payload), 0);
        self.rng.fill(&mut msg.payload);
        f.sent += 1;
        f.left = f.left.saturating_sub(1);
        self.packets += 1;
        if f.left == 0 {
            self.free.push(slot);
        } else {
            let gap = self.exponential(self.cfg.mean_gap_us).max(1.0) as i64;
            self.due.push(Reverse((ts + gap, slot)));
        }
        if let Some(x) = self.slots.get_mut(slot as usize) {
            *x = f;
        }
        true
    }
}

/// The mix as Ethernet frames with their timestamps (for benchmarks that
/// feed the classifier without a file), at most `limit` of them.
pub fn frames(mix: &mut LinkMix, limit: usize) -> Vec<(i64, Vec<u8>)> {
    let mut msg = Message::empty();
    let mut out = Vec::new();
    while out.len() < limit && mix.next_into(&mut msg) {
        let mut f = Vec::with_capacity(msg.payload.len() + 62);
        if crate::synth::frame_of(&msg, &mut f) {
            out.push((msg.ts, f));
        }
    }
    out
}

/// Streams the mix to a pcap file; returns the frames written.
#[cfg(feature = "capture")]
pub fn write_pcap(
    path: &std::path::Path,
    mix: &mut LinkMix,
) -> Result<u64, crate::synth::SynthError> {
    crate::synth::write_messages(path, None, None, |m| mix.next_into(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(cfg: &LinkMixConfig) -> (u64, u64) {
        let mut mix = LinkMix::new(cfg);
        let mut msg = Message::empty();
        let mut last = i64::MIN;
        while mix.next_into(&mut msg) {
            assert!(msg.ts >= last, "messages come in time order");
            last = msg.ts;
        }
        (mix.flows(), mix.packets())
    }

    #[test]
    fn link_mix_has_a_heavy_tail_of_short_flows() {
        let (flows, packets) = sizes(&LinkMixConfig::link(50_000));
        assert_eq!(flows, 50_000);
        let mean = packets as f64 / flows as f64;
        assert!((10.0..=25.0).contains(&mean), "mean flow {mean}");
    }

    #[test]
    fn a_flood_is_one_packet_per_flow() {
        let (flows, packets) = sizes(&LinkMixConfig::flood(10_000));
        assert_eq!((flows, packets), (10_000, 10_000));
    }

    #[test]
    fn the_same_seed_gives_the_same_mix() {
        let a = frames(&mut LinkMix::new(&LinkMixConfig::link(2_000)), 10_000);
        let b = frames(&mut LinkMix::new(&LinkMixConfig::link(2_000)), 10_000);
        assert_eq!(a, b);
    }
}
