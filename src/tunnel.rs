//! Tunnels: which tunnel carried a packet (the innermost, and how deep it
//! was nested), and the index that numbers the tunnels with open flows, so
//! that a flow's key names its tunnel in three bytes.
//!
//! Two flows with the same inner 5-tuple in two tunnels are two flows. A
//! tunnel's identity is its kind, its outer endpoints (either order: both
//! directions of a flow travel the same tunnel) and its identifier where
//! that is the same both ways: the VNI of VXLAN and Geneve, the key of GRE,
//! the session of ERSPAN. GTP-U's TEID names the receiving end, so the two
//! directions of one flow carry two TEIDs; PPTP's call ID likewise. Those
//! are reported, not keyed: a GTP-U flow is keyed by its outer endpoints
//! (the base station and the gateway) and its inner 5-tuple.

use std::collections::HashMap;
use std::net::IpAddr;

use ahash::RandomState;

/// The kind of a tunnel.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TunnelKind {
    /// GTP-U (3GPP TS 29.281): mobile networks' user plane.
    GtpU,
    /// GRE (RFC 2784, 2890) carrying IP or Ethernet.
    Gre,
    /// ERSPAN types I, II and III over GRE: mirrored frames.
    Erspan,
    /// PPTP's enhanced GRE (RFC 2637) carrying PPP.
    Pptp,
    /// VXLAN (RFC 7348).
    Vxlan,
    /// Geneve (RFC 8926).
    Geneve,
    /// IPv4 or IPv6 in IPv4 or IPv6 (IP protocols 4 and 41).
    IpInIp,
    /// CAPWAP data (RFC 5415): wireless access points' frames.
    Capwap,
}

impl TunnelKind {
    /// Every kind, in report order.
    pub const ALL: [TunnelKind; 8] = [
        TunnelKind::GtpU,
        TunnelKind::Gre,
        TunnelKind::Erspan,
        TunnelKind::Pptp,
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::IpInIp,
        TunnelKind::Capwap,
    ];

    /// The name in flow records: `gtp_u`, `gre`, `erspan`, `pptp`, `vxlan`,
    /// `geneve`, `ip_in_ip`, `capwap`.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::GtpU => "gtp_u",
            TunnelKind::Gre => "gre",
            TunnelKind::Erspan => "erspan",
            TunnelKind::Pptp => "pptp",
            TunnelKind::Vxlan => "vxlan",
            TunnelKind::Geneve => "geneve",
            TunnelKind::IpInIp => "ip_in_ip",
            TunnelKind::Capwap => "capwap",
        }
    }

    /// Index into a counter array ([`TunnelKind::ALL`]'s order).
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the tunnel's identifier is the same in both directions, and
    /// so part of the flow key.
    pub(crate) fn id_is_shared(self) -> bool {
        !matches!(self, TunnelKind::GtpU | TunnelKind::Pptp)
    }
}

impl std::str::FromStr for TunnelKind {
    type Err = String;
    /// A kind by its name in flow records ([`TunnelKind::as_str`]).
    fn from_str(s: &str) -> Result<Self, String> {
        TunnelKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = TunnelKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown tunnel {s:?}: use one of {}", names.join(", "))
            })
    }
}

/// The tunnel that carried a packet: the innermost, when tunnels nest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tunnel {
    /// What kind.
    pub kind: TunnelKind,
    /// Its identifier: the TEID of the receiving end (GTP-U), the VNI
    /// (VXLAN, Geneve), the key (GRE), the session (ERSPAN II and III), the
    /// call ID (PPTP); none for the others.
    pub id: Option<u32>,
    /// The outer source address (of the packet; of the flow's first packet
    /// in a flow record).
    pub outer_src: IpAddr,
    /// The outer destination address.
    pub outer_dst: IpAddr,
    /// How many tunnels the packet was in: 1 when the frame carried the
    /// tunnel directly.
    pub depth: u8,
}

impl Tunnel {
    /// The same tunnel seen from its other end.
    pub fn reversed(&self) -> Tunnel {
        Tunnel {
            outer_src: self.outer_dst,
            outer_dst: self.outer_src,
            ..*self
        }
    }

    fn identity(&self) -> TunnelIdentity {
        let (lo, hi) = if self.outer_src <= self.outer_dst {
            (self.outer_src, self.outer_dst)
        } else {
            (self.outer_dst, self.outer_src)
        };
        TunnelIdentity {
            kind: self.kind,
            id: if self.kind.id_is_shared() {
                self.id
            } else {
                None
            },
            lo,
            hi,
            depth: self.depth,
        }
    }
}

/// What tells two tunnels apart (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TunnelIdentity {
    kind: TunnelKind,
    id: Option<u32>,
    lo: IpAddr,
    hi: IpAddr,
    depth: u8,
}

/// The number of "no tunnel" in a flow key.
pub(crate) const NO_TUNNEL: u32 = 0;
/// The number of a tunnel not (yet) in the index: no flow has it.
pub(crate) const UNNUMBERED: u32 = (1 << 24) - 1;

struct Entry {
    /// As first seen.
    tunnel: Tunnel,
    identity: TunnelIdentity,
    /// Flows keyed with this number.
    flows: u32,
}

/// Numbers the tunnels that have open flows: 1 to 2^24 - 2, each held while
/// a flow is keyed with it. A table holds fewer flows than that, so a
/// number is always free for a new tunnel.
#[derive(Default)]
pub(crate) struct TunnelIndex {
    numbers: HashMap<TunnelIdentity, u32, RandomState>,
    /// Entry `n - 1` is tunnel number `n`.
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    /// The identifier of each open flow (by its slot) in a tunnel whose
    /// identifier is not shared by the whole tunnel (GTP-U's TEID, PPTP's
    /// call ID): as its first packet carried it.
    flow_ids: HashMap<u32, u32, RandomState>,
}

impl TunnelIndex {
    /// The number of `t`, or [`UNNUMBERED`].
    #[inline]
    pub(crate) fn find(&self, t: &Tunnel) -> u32 {
        self.numbers
            .get(&t.identity())
            .copied()
            .unwrap_or(UNNUMBERED)
    }

    /// Whether number `n` is `t`'s (a lookup made earlier is still good).
    #[inline]
    pub(crate) fn is(&self, n: u32, t: &Tunnel) -> bool {
        self.entry(n).is_some_and(|e| e.identity == t.identity())
    }

    /// Takes a number for a new flow in `t` (the tunnel's, or a new one).
    pub(crate) fn acquire(&mut self, t: &Tunnel) -> u32 {
        let identity = t.identity();
        if let Some(&n) = self.numbers.get(&identity) {
            if let Some(e) = self.entry_mut(n) {
                e.flows += 1;
            }
            return n;
        }
        let entry = Entry {
            tunnel: *t,
            identity,
            flows: 1,
        };
        let n = match self.free.pop() {
            Some(n) => {
                if let Some(slot) = self.entries.get_mut(n as usize - 1) {
                    *slot = Some(entry);
                }
                n
            }
            None => {
                self.entries.push(Some(entry));
                self.entries.len() as u32
            }
        };
        debug_assert!(n < UNNUMBERED);
        self.numbers.insert(identity, n);
        n
    }

    /// A flow keyed with number `n` ended.
    pub(crate) fn release(&mut self, n: u32) {
        let Some(e) = self.entry_mut(n) else { return };
        e.flows -= 1;
        if e.flows == 0 {
            let identity = e.identity;
            self.numbers.remove(&identity);
            if let Some(slot) = self.entries.get_mut(n as usize - 1) {
                *slot = None;
            }
            self.free.push(n);
        }
    }

    /// The tunnel of number `n`, as first seen.
    #[inline]
    pub(crate) fn tunnel(&self, n: u32) -> Option<&Tunnel> {
        self.entry(n).map(|e| &e.tunnel)
    }

    /// Notes the identifier of the flow in slot `slot`, when its tunnel's
    /// identifier is its own.
    pub(crate) fn note_flow(&mut self, slot: u32, t: &Tunnel) {
        if !t.kind.id_is_shared() {
            if let Some(id) = t.id {
                self.flow_ids.insert(slot, id);
            }
        }
    }

    /// The tunnel of the flow in slot `slot`, keyed with number `n`, as its
    /// first packet went through it (`reversed`: the other way from the
    /// tunnel as first seen).
    pub(crate) fn flow_tunnel(&self, n: u32, slot: u32, reversed: bool) -> Option<Tunnel> {
        let mut t = *self.tunnel(n)?;
        if reversed {
            t = t.reversed();
        }
        if !t.kind.id_is_shared() {
            t.id = self.flow_ids.get(&slot).copied();
        }
        Some(t)
    }

    /// The flow in slot `slot`, keyed with number `n`, ended: its tunnel.
    pub(crate) fn end_flow(&mut self, n: u32, slot: u32, reversed: bool) -> Option<Tunnel> {
        let t = self.flow_tunnel(n, slot, reversed);
        self.flow_ids.remove(&slot);
        self.release(n);
        t
    }

    /// Tunnels numbered now.
    pub(crate) fn len(&self) -> usize {
        self.numbers.len()
    }

    fn entry(&self, n: u32) -> Option<&Entry> {
        if n == NO_TUNNEL {
            return None;
        }
        self.entries.get(n as usize - 1)?.as_ref()
    }

    fn entry_mut(&mut self, n: u32) -> Option<&mut Entry> {
        if n == NO_TUNNEL {
            return None;
        }
        self.entries.get_mut(n as usize - 1)?.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gtp(teid: u32, a: [u8; 4], b: [u8; 4]) -> Tunnel {
        Tunnel {
            kind: TunnelKind::GtpU,
            id: Some(teid),
            outer_src: IpAddr::from(a),
            outer_dst: IpAddr::from(b),
            depth: 1,
        }
    }

    #[test]
    fn both_directions_are_one_tunnel() {
        let mut ix = TunnelIndex::default();
        let up = gtp(7, [10, 0, 0, 1], [10, 0, 0, 2]);
        // The downlink carries the other end's TEID.
        let down = gtp(9, [10, 0, 0, 2], [10, 0, 0, 1]);
        let n = ix.acquire(&up);
        assert_eq!(ix.find(&down), n);
        let vx = |vni| Tunnel {
            kind: TunnelKind::Vxlan,
            id: Some(vni),
            ..up
        };
        // VXLAN's VNI is keyed: two VNIs, two tunnels.
        let a = ix.acquire(&vx(1));
        assert_ne!(a, n);
        assert_eq!(ix.find(&vx(2)), UNNUMBERED);
        assert_eq!(ix.find(&vx(1).reversed()), a);
    }

    #[test]
    fn numbers_are_held_while_flows_use_them() {
        let mut ix = TunnelIndex::default();
        let t = gtp(1, [10, 0, 0, 1], [10, 0, 0, 2]);
        let n = ix.acquire(&t);
        assert_eq!(ix.acquire(&t), n);
        ix.release(n);
        assert!(ix.is(n, &t));
        ix.release(n);
        assert!(!ix.is(n, &t));
        assert_eq!(ix.find(&t), UNNUMBERED);
        assert_eq!(ix.len(), 0);
        // The number is reused.
        let u = gtp(1, [10, 0, 0, 3], [10, 0, 0, 2]);
        assert_eq!(ix.acquire(&u), n);
        assert_eq!(ix.tunnel(n), Some(&u));
        // Releasing what is not held changes nothing.
        ix.release(NO_TUNNEL);
        ix.release(12345);
    }
}
