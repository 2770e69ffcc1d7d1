//! Geneve (RFC 8926), the generic encapsulation of virtual networks, on UDP
//! port 6081: an 8-byte header (version 0, the options' length, a control
//! flag, the carried protocol as an EtherType, a 24-bit VNI), options, then
//! the packet.

use super::{be16, WireError};

/// The IANA port of Geneve.
pub const PORT: u16 = 6081;

/// A checked view of a Geneve data packet.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    bytes: &'a [u8],
    payload_at: usize,
}

impl<'a> Header<'a> {
    /// The fixed part.
    pub const MIN_LEN: usize = 8;

    /// Checks the header: version 0, not a control message (O flag),
    /// options within the packet. The options are skipped.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let h = bytes.first_chunk::<8>().ok_or(WireError::Truncated)?;
        // Version (top 2 bits) 0; O (0x80 of byte 1) marks control
        // messages, which carry no user packet; byte 7 is reserved.
        if h[0] >> 6 != 0 || h[1] & 0x80 != 0 || h[1] & 0x3F != 0 || h[7] != 0 {
            return Err(WireError::Unsupported);
        }
        let payload_at = Self::MIN_LEN + usize::from(h[0] & 0x3F) * 4;
        if bytes.len() < payload_at {
            return Err(WireError::Truncated);
        }
        Ok(Header { bytes, payload_at })
    }

    /// The carried protocol, an EtherType (0x6558: an Ethernet frame).
    pub fn protocol(&self) -> u16 {
        be16(self.bytes, 2)
    }

    /// The 24-bit virtual network identifier.
    pub fn vni(&self) -> u32 {
        u32::from_be_bytes([0, self.bytes[4], self.bytes[5], self.bytes[6]])
    }

    /// The packet carried.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.payload_at..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_skipped() {
        // One 4-byte option word.
        let m = [0x01, 0, 0x65, 0x58, 0, 0, 7, 0, 1, 2, 3, 4, 0xAA];
        let h = Header::new_checked(&m).unwrap();
        assert_eq!(h.protocol(), 0x6558);
        assert_eq!(h.vni(), 7);
        assert_eq!(h.payload(), &[0xAA]);
        assert!(Header::new_checked(&m[..10]).is_err());
        // A control message, another version.
        assert!(Header::new_checked(&[0, 0x80, 0x65, 0x58, 0, 0, 7, 0]).is_err());
        assert!(Header::new_checked(&[0x40, 0, 0x65, 0x58, 0, 0, 7, 0]).is_err());
    }
}
