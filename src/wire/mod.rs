//! Zero-copy views over link-layer headers, one file per protocol.
//!
//! Each protocol has a view (`Frame`) that checks its length once in
//! `new_checked` and then reads fields without panicking, in the manner of
//! smoltcp's `wire` module. IP, TCP and UDP are read with `etherparse` in
//! [`crate::packet`]; the link layers that `etherparse` does not cover (Linux
//! cooked v2, BSD null, PPP, PPI, Cisco HDLC) are here, beside Ethernet with
//! its VLAN tags, and the tunnels the front end opens (GTP-U, GRE with
//! ERSPAN and PPTP, VXLAN, Geneve, CAPWAP data).

pub mod capwap;
pub mod ethernet;
pub mod geneve;
pub mod gre;
pub mod gtp;
pub mod link;
pub mod null;
pub mod ppi;
pub mod ppp;
pub mod sll;
pub mod vxlan;

pub use link::{network_of, LinkType, Network};

/// Why a link-layer header could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header needs.
    Truncated,
    /// A header field that this crate does not support (protocol number).
    Unsupported,
}

/// Reads a big-endian u16 at `at`; the callers have checked the length.
#[inline]
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
