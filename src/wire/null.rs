//! BSD loopback encapsulation: `LINKTYPE_NULL` (0, address family in the
//! capturing host's byte order) and `LINKTYPE_LOOP` (108, network order).

use super::WireError;

/// What the 4-byte family field says the payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// AF_INET.
    Ipv4,
    /// AF_INET6 (24 on NetBSD/OpenBSD, 28 on FreeBSD, 30 on macOS, 10 on Linux).
    Ipv6,
    /// Any other family.
    Other(u32),
}

fn family_of(v: u32) -> Family {
    match v {
        2 => Family::Ipv4,
        10 | 24 | 28 | 30 => Family::Ipv6,
        other => Family::Other(other),
    }
}

/// A checked view of a loopback header.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    bytes: &'a [u8],
    family: Family,
}

impl<'a> Frame<'a> {
    /// Header length.
    pub const HEADER_LEN: usize = 4;

    /// Checks the header. The byte order of `LINKTYPE_NULL` is that of the
    /// capturing host, which the file does not record: both orders are tried
    /// (family values are small, so only one reading is plausible).
    pub fn new_checked(bytes: &'a [u8], network_order: bool) -> Result<Self, WireError> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let raw = [bytes[0], bytes[1], bytes[2], bytes[3]];
        let be = u32::from_be_bytes(raw);
        let family = if network_order {
            family_of(be)
        } else {
            let le = u32::from_le_bytes(raw);
            match family_of(le) {
                Family::Other(_) => family_of(be),
                known => known,
            }
        };
        Ok(Frame { bytes, family })
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.family
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[Self::HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_byte_orders() {
        let le = [2, 0, 0, 0, 0x45];
        assert_eq!(
            Frame::new_checked(&le, false).unwrap().family(),
            Family::Ipv4
        );
        let be = [0, 0, 0, 30, 0x60];
        assert_eq!(
            Frame::new_checked(&be, false).unwrap().family(),
            Family::Ipv6
        );
        assert_eq!(
            Frame::new_checked(&be, true).unwrap().family(),
            Family::Ipv6
        );
        assert_eq!(Frame::new_checked(&be, true).unwrap().payload(), &[0x60]);
        assert!(Frame::new_checked(&[2, 0, 0], false).is_err());
    }
}
