//! From a link-layer frame to its IP packet, whatever the capture's link type.

use super::ethernet::{
    self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_MPLS, ETHERTYPE_PPPOE_SESSION, ETHERTYPE_VLAN,
};
use super::null::{self, Family};
use super::ppp::{self, PPP_IPV4, PPP_IPV6};
use super::{ppi, sll, WireError};

/// The link types this crate decodes, by their pcap `LINKTYPE_` / `DLT_`
/// numbers. libpcap reports some under their `DLT_` value (raw IP is 12 or 14
/// as a `DLT_` and 101 as a `LINKTYPE_`), so several numbers map to one kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    /// BSD loopback, host byte order (0).
    Null,
    /// Ethernet II (1).
    Ethernet,
    /// PPP (9) or PPP in HDLC framing (50).
    Ppp,
    /// PPPoE session (51).
    PppEther,
    /// Raw IP, version from the first nibble (12, 14, 101).
    RawIp,
    /// Cisco HDLC (104).
    CiscoHdlc,
    /// BSD loopback, network byte order (108).
    Loop,
    /// Linux cooked capture v1 (113).
    LinuxSll,
    /// Per-Packet Information header (192).
    Ppi,
    /// Raw IPv4 (228).
    Ipv4,
    /// Raw IPv6 (229).
    Ipv6,
    /// Linux cooked capture v2 (276).
    LinuxSll2,
}

impl LinkType {
    /// Maps a pcap link-type number; `None` when unsupported.
    pub fn from_number(n: u32) -> Option<LinkType> {
        Some(match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            9 | 50 => LinkType::Ppp,
            51 => LinkType::PppEther,
            12 | 14 | 101 => LinkType::RawIp,
            104 => LinkType::CiscoHdlc,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            192 => LinkType::Ppi,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

/// What a frame carries at the network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network<'a> {
    /// An IP packet (either version; the first nibble says which).
    Ip(&'a [u8]),
    /// Something else (ARP, LLDP, IPX, ...), with its protocol number.
    NotIp(u32),
}

/// Why a frame yields no network layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkError {
    /// The capture's link type is not decoded.
    UnsupportedLinkType(u32),
    /// The link header is cut short.
    Truncated,
    /// A header field this crate does not follow (too many tags, bad PPI).
    Malformed,
}

impl From<WireError> for LinkError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::Truncated => LinkError::Truncated,
            WireError::Unsupported => LinkError::Malformed,
        }
    }
}

/// The network layer of a payload of EtherType `ethertype` (IP, PPPoE,
/// MPLS).
pub(crate) fn by_ethertype(ethertype: u16, payload: &[u8]) -> Result<Network<'_>, LinkError> {
    match ethertype {
        ETHERTYPE_IPV4 | ETHERTYPE_IPV6 => Ok(Network::Ip(payload)),
        ETHERTYPE_PPPOE_SESSION => by_ppp(ppp::Frame::new_checked_pppoe(payload)?),
        ETHERTYPE_MPLS => {
            let at = ethernet::mpls_payload_offset(payload)?;
            let rest = &payload[at..];
            match rest.first().map(|b| b >> 4) {
                Some(4) | Some(6) => Ok(Network::Ip(rest)),
                Some(_) => Ok(Network::NotIp(u32::from(ETHERTYPE_MPLS))),
                None => Err(LinkError::Truncated),
            }
        }
        other => Ok(Network::NotIp(u32::from(other))),
    }
}

/// The network layer of a PPP frame.
pub(crate) fn by_ppp(frame: ppp::Frame<'_>) -> Result<Network<'_>, LinkError> {
    match frame.protocol() {
        PPP_IPV4 | PPP_IPV6 => Ok(Network::Ip(frame.payload())),
        other => Ok(Network::NotIp(u32::from(other))),
    }
}

fn by_family(frame: null::Frame<'_>) -> Network<'_> {
    match frame.family() {
        Family::Ipv4 | Family::Ipv6 => Network::Ip(frame.payload()),
        Family::Other(f) => Network::NotIp(f),
    }
}

/// Finds the network layer of a frame of link type `link_type` (a pcap
/// number). Never panics, whatever the bytes.
#[inline]
pub fn network_of(link_type: u32, bytes: &[u8]) -> Result<Network<'_>, LinkError> {
    // The common cases first, read in place: Ethernet II carrying IPv4 or
    // IPv6, untagged or under one 802.1Q tag (what the general path gives
    // for them, without its machinery).
    const LINKTYPE_ETHERNET: u32 = 1;
    if link_type == LINKTYPE_ETHERNET {
        if let Some(h) = bytes.first_chunk::<18>() {
            let is_ip = |t: u16| t == ETHERTYPE_IPV4 || t == ETHERTYPE_IPV6;
            let outer = u16::from_be_bytes([h[12], h[13]]);
            if is_ip(outer) {
                return Ok(Network::Ip(&bytes[14..]));
            }
            if outer == ETHERTYPE_VLAN && is_ip(u16::from_be_bytes([h[16], h[17]])) {
                return Ok(Network::Ip(&bytes[18..]));
            }
        }
    }
    network_of_depth(link_type, bytes, 0)
}

fn network_of_depth(link_type: u32, bytes: &[u8], depth: u8) -> Result<Network<'_>, LinkError> {
    let kind = LinkType::from_number(link_type).ok_or(LinkError::UnsupportedLinkType(link_type))?;
    match kind {
        LinkType::Ethernet => {
            let f = ethernet::Frame::new_checked(bytes)?;
            by_ethertype(f.ethertype(), f.payload())
        }
        LinkType::LinuxSll => {
            let f = sll::Frame::new_checked_v1(bytes)?;
            by_ethertype(f.protocol(), f.payload())
        }
        LinkType::LinuxSll2 => {
            let f = sll::Frame::new_checked_v2(bytes)?;
            by_ethertype(f.protocol(), f.payload())
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {
            if bytes.is_empty() {
                Err(LinkError::Truncated)
            } else {
                Ok(Network::Ip(bytes))
            }
        }
        LinkType::Null => Ok(by_family(null::Frame::new_checked(bytes, false)?)),
        LinkType::Loop => Ok(by_family(null::Frame::new_checked(bytes, true)?)),
        LinkType::Ppp => by_ppp(ppp::Frame::new_checked(bytes)?),
        LinkType::PppEther => by_ppp(ppp::Frame::new_checked_pppoe(bytes)?),
        LinkType::CiscoHdlc => by_ppp(ppp::Frame::new_checked_chdlc(bytes)?),
        LinkType::Ppi => {
            if depth > 0 {
                return Err(LinkError::Malformed);
            }
            let f = ppi::Frame::new_checked(bytes)?;
            network_of_depth(f.inner_link_type(), f.payload(), depth + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP4: [u8; 2] = [0x45, 0x00];

    #[test]
    fn the_ethernet_shortcut_agrees_with_the_general_path() {
        let frame = |ethertype: [u8; 2], rest: &[u8]| {
            let mut f = vec![0u8; 12];
            f.extend_from_slice(&ethertype);
            f.extend_from_slice(rest);
            f
        };
        let cases = [
            frame([0x08, 0x00], &IP4),
            frame([0x86, 0xDD], &[0x60, 0, 0, 0]),
            frame([0x08, 0x00], &[]),
            frame([0x81, 0x00], &[0, 5, 0x08, 0x00, 0x45, 0]),
            frame([0x81, 0x00], &[0, 5, 0x86, 0xDD]),
            frame([0x81, 0x00], &[0, 5, 0x08, 0x00]),
            frame([0x81, 0x00], &[0, 5, 0x08]),
            frame([0x81, 0x00], &[0, 5, 0x81, 0x00, 0, 6, 0x08, 0x00, 0x45, 0]),
            frame([0x88, 0xA8], &[0, 5, 0x81, 0x00, 0, 6, 0x08, 0x00, 0x45, 0]),
            frame([0x81, 0x00], &[0, 5, 0x08, 0x06, 1, 2]),
            frame([0x08, 0x00], &[0x45, 0, 0]),
            frame([0x86, 0xDD], &[]),
            frame([0x08, 0x06], &[0; 28]),
            vec![0u8; 13],
            vec![],
        ];
        for f in &cases {
            let shortcut = network_of(1, f);
            let general = network_of_depth(1, f, 0);
            assert_eq!(format!("{shortcut:?}"), format!("{general:?}"), "{f:?}");
        }
    }

    #[test]
    fn every_link_type_reaches_ip() {
        let mut eth = vec![0u8; 12];
        eth.extend_from_slice(&[0x08, 0x00]);
        eth.extend_from_slice(&IP4);
        let mut sll1 = vec![0u8; 14];
        sll1.extend_from_slice(&[0x08, 0x00]);
        sll1.extend_from_slice(&IP4);
        let mut sll2 = vec![0x08, 0x00];
        sll2.extend_from_slice(&[0u8; 18]);
        sll2.extend_from_slice(&IP4);
        let null_le = [2, 0, 0, 0, 0x45, 0x00];
        let loop_be = [0, 0, 0, 2, 0x45, 0x00];
        let ppp = [0xFF, 0x03, 0x00, 0x21, 0x45, 0x00];
        let pppoe = [0x11, 0, 0, 1, 0, 4, 0x00, 0x21, 0x45, 0x00];
        let chdlc = [0x0F, 0x00, 0x08, 0x00, 0x45, 0x00];
        let mut ppi = vec![0, 0, 8, 0, 1, 0, 0, 0];
        ppi.extend_from_slice(&eth);
        let cases: Vec<(u32, &[u8])> = vec![
            (0, &null_le),
            (1, &eth),
            (9, &ppp),
            (50, &ppp),
            (51, &pppoe),
            (12, &IP4),
            (14, &IP4),
            (101, &IP4),
            (104, &chdlc),
            (108, &loop_be),
            (113, &sll1),
            (192, &ppi),
            (228, &IP4),
            (229, &IP4),
            (276, &sll2),
        ];
        for (lt, bytes) in cases {
            assert_eq!(
                network_of(lt, bytes),
                Ok(Network::Ip(&IP4)),
                "link type {lt}"
            );
        }
    }

    #[test]
    fn not_ip_and_unsupported() {
        let mut arp = vec![0u8; 12];
        arp.extend_from_slice(&[0x08, 0x06, 1, 2]);
        assert_eq!(network_of(1, &arp), Ok(Network::NotIp(0x0806)));
        assert_eq!(
            network_of(127, &arp),
            Err(LinkError::UnsupportedLinkType(127))
        );
        assert_eq!(network_of(101, &[]), Err(LinkError::Truncated));
        assert_eq!(network_of(1, &arp[..10]), Err(LinkError::Truncated));
    }

    #[test]
    fn pppoe_and_mpls_inside_ethernet() {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x64, 0x11, 0, 0, 1, 0, 4, 0x00, 0x21, 0x45, 0x00]);
        assert_eq!(network_of(1, &f), Ok(Network::Ip(&IP4)));
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x88, 0x47, 0, 0, 0x01, 64, 0x45, 0x00]);
        assert_eq!(network_of(1, &f), Ok(Network::Ip(&IP4)));
    }
}
