//! Per-Packet Information header (`LINKTYPE_PPI`, 192): a little-endian
//! length and the link type of the frame that follows.

use super::WireError;

/// A checked view of a PPI header.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    header_len: usize,
    inner_link_type: u32,
}

impl<'a> Frame<'a> {
    /// Length of the fixed part: version, flags, length, link type.
    pub const FIXED_LEN: usize = 8;

    /// Checks the header.
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        if bytes.len() < Self::FIXED_LEN {
            return Err(WireError::Truncated);
        }
        let header_len = usize::from(u16::from_le_bytes([bytes[2], bytes[3]]));
        if header_len < Self::FIXED_LEN {
            return Err(WireError::Unsupported);
        }
        if bytes.len() < header_len {
            return Err(WireError::Truncated);
        }
        let inner_link_type = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        Ok(Frame {
            bytes,
            header_len,
            inner_link_type,
        })
    }

    /// The link type of the encapsulated frame.
    pub fn inner_link_type(&self) -> u32 {
        self.inner_link_type
    }

    /// The encapsulated frame.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[self.header_len..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header() {
        let b = [0, 0, 8, 0, 1, 0, 0, 0, 0xAA];
        let f = Frame::new_checked(&b).unwrap();
        assert_eq!(f.inner_link_type(), 1);
        assert_eq!(f.payload(), &[0xAA]);
        assert!(Frame::new_checked(&[0, 0, 20, 0, 1, 0, 0, 0]).is_err());
        assert!(Frame::new_checked(&[0, 0, 4, 0, 1, 0, 0, 0]).is_err());
    }
}
