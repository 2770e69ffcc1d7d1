//! Linux cooked capture, v1 (`LINKTYPE_LINUX_SLL`, 113) and v2
//! (`LINKTYPE_LINUX_SLL2`, 276).

use super::{be16, WireError};

/// A checked view of a Linux cooked header, either version.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    protocol: u16,
    header_len: usize,
}

impl<'a> Frame<'a> {
    /// Length of a v1 header: packet type, ARPHRD type, address length,
    /// 8 address bytes, protocol.
    pub const V1_LEN: usize = 16;
    /// Length of a v2 header: protocol, reserved, interface index, ARPHRD
    /// type, packet type, address length, 8 address bytes.
    pub const V2_LEN: usize = 20;

    /// Checks a v1 header.
    pub fn new_checked_v1(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < Self::V1_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Frame {
            bytes,
            protocol: be16(bytes, 14),
            header_len: Self::V1_LEN,
        })
    }

    /// Checks a v2 header.
    pub fn new_checked_v2(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < Self::V2_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Frame {
            bytes,
            protocol: be16(bytes, 0),
            header_len: Self::V2_LEN,
        })
    }

    /// The protocol field: an EtherType for IP.
    pub fn protocol(&self) -> u16 {
        self.protocol
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2() {
        let mut v1 = vec![0u8; 14];
        v1.extend_from_slice(&[0x08, 0x00, 0x45]);
        let f = Frame::new_checked_v1(&v1).unwrap();
        assert_eq!(f.protocol(), 0x0800);
        assert_eq!(f.payload(), &[0x45]);
        let mut v2 = vec![0x86, 0xDD];
        v2.extend_from_slice(&[0u8; 18]);
        v2.push(0x60);
        let f = Frame::new_checked_v2(&v2).unwrap();
        assert_eq!(f.protocol(), 0x86DD);
        assert_eq!(f.payload(), &[0x60]);
        assert!(Frame::new_checked_v1(&v1[..15]).is_err());
        assert!(Frame::new_checked_v2(&v2[..19]).is_err());
    }
}
