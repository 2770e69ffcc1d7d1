//! Ethernet II with 802.1Q / 802.1ad (QinQ) VLAN tags.

use super::{be16, WireError};

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;
/// EtherType of an 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// EtherType of an 802.1ad service tag (QinQ).
pub const ETHERTYPE_QINQ: u16 = 0x88A8;
/// Pre-standard QinQ tag used by some switches.
pub const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// EtherType of a PPPoE session.
pub const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
/// EtherType of MPLS unicast.
pub const ETHERTYPE_MPLS: u16 = 0x8847;

/// Most VLAN tags followed before giving up.
const MAX_TAGS: usize = 4;

/// A checked view of an Ethernet II frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    /// EtherType after the VLAN tags.
    ethertype: u16,
    /// Offset of the payload after the VLAN tags.
    payload_at: usize,
    /// Outermost VLAN ID, if tagged.
    vlan: Option<u16>,
}

impl<'a> Frame<'a> {
    /// Length of the untagged header.
    pub const HEADER_LEN: usize = 14;

    /// Checks the header and walks the VLAN tags.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let mut ethertype = be16(bytes, 12);
        let mut at = Self::HEADER_LEN;
        let mut vlan = None;
        let mut tags = 0;
        while matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            tags += 1;
            if tags > MAX_TAGS {
                return Err(WireError::Unsupported);
            }
            if bytes.len() < at + 4 {
                return Err(WireError::Truncated);
            }
            if vlan.is_none() {
                vlan = Some(be16(bytes, at) & 0x0FFF);
            }
            ethertype = be16(bytes, at + 2);
            at += 4;
        }
        Ok(Frame {
            bytes,
            ethertype,
            payload_at: at,
            vlan,
        })
    }

    /// The EtherType of the payload (after any VLAN tags).
    pub fn ethertype(&self) -> u16 {
        self.ethertype
    }

    /// The outermost VLAN ID, if the frame is tagged.
    pub fn vlan(&self) -> Option<u16> {
        self.vlan
    }

    /// The bytes after the header and tags.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.payload_at..]
    }

    /// Offset of the payload in the frame.
    pub fn payload_offset(&self) -> usize {
        self.payload_at
    }
}

/// Skips an MPLS label stack; returns the offset of the payload.
pub fn mpls_payload_offset(bytes: &[u8]) -> Result<usize, WireError> {
    let mut at = 0;
    loop {
        if bytes.len() < at + 4 {
            return Err(WireError::Truncated);
        }
        let bottom = bytes[at + 2] & 0x01 != 0;
        at += 4;
        if bottom {
            return Ok(at);
        }
        if at > 64 {
            return Err(WireError::Unsupported);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ethertype_chain: &[u16]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        for (i, t) in ethertype_chain.iter().enumerate() {
            f.extend_from_slice(&t.to_be_bytes());
            if i + 1 < ethertype_chain.len() {
                f.extend_from_slice(&(100 + i as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(&[0x45, 0]);
        f
    }

    #[test]
    fn untagged() {
        let f = frame(&[ETHERTYPE_IPV4]);
        let v = Frame::new_checked(&f).unwrap();
        assert_eq!(v.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(v.vlan(), None);
        assert_eq!(v.payload(), &[0x45, 0]);
    }

    #[test]
    fn dot1q_and_qinq() {
        let f = frame(&[ETHERTYPE_VLAN, ETHERTYPE_IPV6]);
        let v = Frame::new_checked(&f).unwrap();
        assert_eq!(v.ethertype(), ETHERTYPE_IPV6);
        assert_eq!(v.vlan(), Some(100));
        assert_eq!(v.payload_offset(), 18);
        let f = frame(&[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_IPV4]);
        let v = Frame::new_checked(&f).unwrap();
        assert_eq!(v.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(v.vlan(), Some(100));
        assert_eq!(v.payload_offset(), 22);
    }

    #[test]
    fn truncated_tag_and_header() {
        assert_eq!(
            Frame::new_checked(&[0u8; 13]).unwrap_err(),
            WireError::Truncated
        );
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
        f.extend_from_slice(&[0, 1]);
        assert_eq!(Frame::new_checked(&f).unwrap_err(), WireError::Truncated);
    }

    #[test]
    fn endless_tags_are_refused() {
        let f = frame(&[ETHERTYPE_VLAN; 8]);
        assert_eq!(Frame::new_checked(&f).unwrap_err(), WireError::Unsupported);
    }
}
