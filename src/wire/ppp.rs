//! PPP (`LINKTYPE_PPP` 9, `LINKTYPE_PPP_HDLC` 50), PPPoE sessions
//! (`LINKTYPE_PPP_ETHER` 51 and EtherType 0x8864) and Cisco HDLC
//! (`LINKTYPE_C_HDLC` 104).

use super::{be16, WireError};

/// PPP protocol number of IPv4.
pub const PPP_IPV4: u16 = 0x0021;
/// PPP protocol number of IPv6.
pub const PPP_IPV6: u16 = 0x0057;

/// A checked view of a PPP frame (with or without the HDLC address and
/// control bytes `FF 03`, with a one- or two-byte protocol field).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    protocol: u16,
    payload_at: usize,
}

impl<'a> Frame<'a> {
    /// Checks the header.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let mut at = 0;
        if bytes.len() >= 2 && bytes[0] == 0xFF && bytes[1] == 0x03 {
            at = 2;
        }
        let first = *bytes.get(at).ok_or(WireError::Truncated)?;
        // Protocol field compression: an odd first byte is a one-byte field.
        let (protocol, len) = if first & 0x01 == 1 {
            (u16::from(first), 1)
        } else {
            if bytes.len() < at + 2 {
                return Err(WireError::Truncated);
            }
            (be16(bytes, at), 2)
        };
        Ok(Frame {
            bytes,
            protocol,
            payload_at: at + len,
        })
    }

    /// Checks a PPPoE session header (6 bytes) followed by PPP.
    pub fn new_checked_pppoe(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < 8 {
            return Err(WireError::Truncated);
        }
        let inner = Self::new_checked(&bytes[6..])?;
        Ok(Frame {
            bytes,
            protocol: inner.protocol,
            payload_at: 6 + inner.payload_at,
        })
    }

    /// Checks a Cisco HDLC header: address, control, EtherType.
    pub fn new_checked_chdlc(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < 4 {
            return Err(WireError::Truncated);
        }
        let ethertype = be16(bytes, 2);
        let protocol = match ethertype {
            0x0800 => PPP_IPV4,
            0x86DD => PPP_IPV6,
            _ => ethertype,
        };
        Ok(Frame {
            bytes,
            protocol,
            payload_at: 4,
        })
    }

    /// The PPP protocol number.
    pub fn protocol(&self) -> u16 {
        self.protocol
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.payload_at..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_and_without_hdlc_bytes() {
        let f = Frame::new_checked(&[0xFF, 0x03, 0x00, 0x21, 0x45]).unwrap();
        assert_eq!(f.protocol(), PPP_IPV4);
        assert_eq!(f.payload(), &[0x45]);
        let f = Frame::new_checked(&[0x00, 0x57, 0x60]).unwrap();
        assert_eq!(f.protocol(), PPP_IPV6);
        let f = Frame::new_checked(&[0x21, 0x45]).unwrap();
        assert_eq!(f.protocol(), PPP_IPV4);
        assert_eq!(f.payload(), &[0x45]);
        assert!(Frame::new_checked(&[0xFF, 0x03, 0x00]).is_err());
        assert!(Frame::new_checked(&[]).is_err());
    }

    #[test]
    fn pppoe_and_chdlc() {
        let f = Frame::new_checked_pppoe(&[0x11, 0, 0, 1, 0, 3, 0x00, 0x21, 0x45]).unwrap();
        assert_eq!(f.protocol(), PPP_IPV4);
        assert_eq!(f.payload(), &[0x45]);
        let f = Frame::new_checked_chdlc(&[0x0F, 0x00, 0x86, 0xDD, 0x60]).unwrap();
        assert_eq!(f.protocol(), PPP_IPV6);
        assert_eq!(f.payload(), &[0x60]);
    }
}
