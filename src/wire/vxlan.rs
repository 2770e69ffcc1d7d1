//! VXLAN (RFC 7348): Ethernet frames between hosts of a data centre over
//! UDP (port 4789, and 8472 where Linux kept its early default): an 8-byte
//! header whose I flag says the 24-bit network identifier (VNI) is valid,
//! then the frame.

use super::WireError;

/// The IANA port of VXLAN.
pub const PORT: u16 = 4789;
/// The port of Linux's VXLAN before IANA's (still its default).
pub const LINUX_PORT: u16 = 8472;

/// A checked view of a VXLAN header and the frame it carries.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    bytes: &'a [u8],
}

impl<'a> Header<'a> {
    /// The header's length.
    pub const LEN: usize = 8;

    /// Checks the header: the I flag set, and (so that a stranger's
    /// datagram on the port is not taken for one) the bits that RFC 7348
    /// and its group-policy extension leave reserved clear.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let h = bytes.first_chunk::<8>().ok_or(WireError::Truncated)?;
        // Flags: I (0x08); the group-policy extension adds G (0x80), D and
        // A in byte 1, and a policy ID in bytes 2-3. Byte 7 is reserved.
        if h[0] & 0x08 == 0 || h[0] & 0x77 != 0 || h[7] != 0 {
            return Err(WireError::Unsupported);
        }
        Ok(Header { bytes })
    }

    /// The 24-bit network identifier.
    pub fn vni(&self) -> u32 {
        u32::from_be_bytes([0, self.bytes[4], self.bytes[5], self.bytes[6]])
    }

    /// The Ethernet frame carried.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(Self::LEN..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_and_frame() {
        let m = [0x08, 0, 0, 0, 0, 0x01, 0x2C, 0, 0xAA];
        let h = Header::new_checked(&m).unwrap();
        assert_eq!(h.vni(), 300);
        assert_eq!(h.payload(), &[0xAA]);
        assert!(Header::new_checked(&[0x00, 0, 0, 0, 0, 0, 1, 0]).is_err());
        assert!(Header::new_checked(&[0x0C, 0, 0, 0, 0, 0, 1, 0]).is_err());
        assert!(Header::new_checked(&[0x08, 0, 0]).is_err());
    }
}
