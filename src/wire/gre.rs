//! GRE (RFC 2784 and 2890; IP protocol 47) and what it carries here: IP,
//! Ethernet frames (transparent Ethernet bridging), the mirrored frames of
//! ERSPAN types I, II and III, and PPP in PPTP's enhanced GRE (RFC 2637).

use super::{be16, WireError};

/// The IP protocol number of GRE.
pub const IP_PROTOCOL: u8 = 47;
/// GRE protocol type of an Ethernet frame (transparent Ethernet bridging).
pub const PROTO_TEB: u16 = 0x6558;
/// GRE protocol type of ERSPAN types I and II.
pub const PROTO_ERSPAN_II: u16 = 0x88BE;
/// GRE protocol type of ERSPAN type III.
pub const PROTO_ERSPAN_III: u16 = 0x22EB;
/// GRE protocol type of PPP (PPTP).
pub const PROTO_PPP: u16 = 0x880B;

const FLAG_CHECKSUM: u8 = 0x80;
const FLAG_ROUTING: u8 = 0x40;
const FLAG_KEY: u8 = 0x20;
const FLAG_SEQUENCE: u8 = 0x10;
/// Enhanced GRE (version 1): an acknowledgement number follows.
const FLAG_ACK: u8 = 0x80;

/// A checked view of a GRE header.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    bytes: &'a [u8],
    key: Option<u32>,
    sequenced: bool,
    version: u8,
    payload_at: usize,
}

impl<'a> Header<'a> {
    /// The fixed part.
    pub const MIN_LEN: usize = 4;

    /// Checks the header: version 0 (with optional checksum, key and
    /// sequence number; source routing is obsolete and refused) or version
    /// 1 (PPTP: key and protocol PPP).
    pub fn new_checked(bytes: &'a [u8]) -> Result<Self, WireError> {
        let h = bytes.first_chunk::<4>().ok_or(WireError::Truncated)?;
        let (flags, version) = (h[0], h[1] & 0x07);
        let mut at = Self::MIN_LEN;
        let word = |at: usize| -> Result<u32, WireError> {
            bytes
                .get(at..at + 4)
                .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                .ok_or(WireError::Truncated)
        };
        let key;
        match version {
            0 => {
                if flags & FLAG_ROUTING != 0 || h[0] & 0x07 != 0 {
                    return Err(WireError::Unsupported);
                }
                if flags & FLAG_CHECKSUM != 0 {
                    word(at)?;
                    at += 4;
                }
                key = if flags & FLAG_KEY != 0 {
                    let k = word(at)?;
                    at += 4;
                    Some(k)
                } else {
                    None
                };
                if flags & FLAG_SEQUENCE != 0 {
                    word(at)?;
                    at += 4;
                }
            }
            1 => {
                // PPTP: no checksum or routing, the key present (payload
                // length and call ID), protocol PPP.
                if flags & (FLAG_CHECKSUM | FLAG_ROUTING) != 0
                    || flags & FLAG_KEY == 0
                    || be16(h, 2) != PROTO_PPP
                {
                    return Err(WireError::Unsupported);
                }
                // The call ID (low 16 bits of the key word).
                key = Some(word(at)? & 0xFFFF);
                at += 4;
                if flags & FLAG_SEQUENCE != 0 {
                    word(at)?;
                    at += 4;
                }
                if h[1] & FLAG_ACK != 0 {
                    word(at)?;
                    at += 4;
                }
            }
            _ => return Err(WireError::Unsupported),
        }
        Ok(Header {
            bytes,
            key,
            sequenced: flags & FLAG_SEQUENCE != 0,
            version,
            payload_at: at,
        })
    }

    /// The protocol carried, an EtherType (or [`PROTO_PPP`]).
    pub fn protocol(&self) -> u16 {
        be16(self.bytes, 2)
    }

    /// The key (version 0), or the call ID (version 1).
    pub fn key(&self) -> Option<u32> {
        self.key
    }

    /// Whether a sequence number is present (what tells ERSPAN type II from
    /// type I).
    pub fn sequenced(&self) -> bool {
        self.sequenced
    }

    /// 0, or 1 for PPTP's enhanced GRE.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// What follows the header.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.payload_at..).unwrap_or(&[])
    }
}

/// A checked view of an ERSPAN type II or III header, before the mirrored
/// Ethernet frame. (Type I has no header: the frame follows GRE.)
#[derive(Debug, Clone, Copy)]
pub struct Erspan<'a> {
    bytes: &'a [u8],
    payload_at: usize,
}

impl<'a> Erspan<'a> {
    /// Checks a type II header (8 bytes, version 1) or a type III header
    /// (12 bytes, version 2, plus an 8-byte platform subheader when its O
    /// flag is set; frame type 0, Ethernet).
    pub fn new_checked(bytes: &'a [u8], type_iii: bool) -> Result<Self, WireError> {
        let h = bytes.first_chunk::<8>().ok_or(WireError::Truncated)?;
        let version = h[0] >> 4;
        let payload_at = if type_iii {
            if version != 2 {
                return Err(WireError::Unsupported);
            }
            let t = bytes.get(..12).ok_or(WireError::Truncated)?;
            // Frame type (bits 10-14 of the last word): 0 is Ethernet.
            let frame_type = (t[10] >> 2) & 0x1F;
            if frame_type != 0 {
                return Err(WireError::Unsupported);
            }
            if t[11] & 0x01 != 0 {
                20
            } else {
                12
            }
        } else {
            if version != 1 {
                return Err(WireError::Unsupported);
            }
            8
        };
        if bytes.len() < payload_at {
            return Err(WireError::Truncated);
        }
        Ok(Erspan { bytes, payload_at })
    }

    /// The 10-bit session ID.
    pub fn session(&self) -> u32 {
        u32::from(be16(self.bytes, 2) & 0x03FF)
    }

    /// The mirrored Ethernet frame.
    pub fn payload(&self) -> &'a [u8] {
        self.bytes.get(self.payload_at..).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_keyed_and_sequenced() {
        let plain = [0, 0, 0x08, 0x00, 0x45];
        let h = Header::new_checked(&plain).unwrap();
        assert_eq!(
            (h.protocol(), h.key(), h.payload()),
            (0x0800, None, &[0x45][..])
        );
        let keyed = [0x30, 0, 0x65, 0x58, 0, 0, 0, 9, 0, 0, 0, 1, 0xAA];
        let h = Header::new_checked(&keyed).unwrap();
        assert_eq!(
            (h.protocol(), h.key(), h.sequenced()),
            (PROTO_TEB, Some(9), true)
        );
        assert_eq!(h.payload(), &[0xAA]);
        let checksummed = [0x80, 0, 0x86, 0xDD, 0, 0, 0, 0, 0x60];
        assert_eq!(
            Header::new_checked(&checksummed).unwrap().payload(),
            &[0x60]
        );
        assert_eq!(
            Header::new_checked(&keyed[..6]).unwrap_err(),
            WireError::Truncated
        );
        // Routing present, an unknown version.
        assert!(Header::new_checked(&[0x40, 0, 8, 0, 0, 0, 0, 0]).is_err());
        assert!(Header::new_checked(&[0, 2, 8, 0]).is_err());
    }

    #[test]
    fn pptp() {
        // Key and sequence, then PPP (FF 03 00 21) and IPv4.
        let m = [
            0x30, 0x01, 0x88, 0x0B, 0, 4, 0x12, 0x34, 0, 0, 0, 1, 0xFF, 0x03, 0, 0x21,
        ];
        let h = Header::new_checked(&m).unwrap();
        assert_eq!((h.version(), h.key()), (1, Some(0x1234)));
        assert_eq!(h.payload(), &[0xFF, 0x03, 0, 0x21]);
        // Version 1 without a key.
        assert!(Header::new_checked(&[0x10, 0x01, 0x88, 0x0B, 0, 0, 0, 1]).is_err());
    }

    #[test]
    fn erspan_types() {
        let ii = [0x10, 0x05, 0x00, 0x2A, 0, 0, 0, 0, 0xEE];
        let e = Erspan::new_checked(&ii, false).unwrap();
        assert_eq!((e.session(), e.payload()), (42, &[0xEE][..]));
        let iii = [0x20, 0, 0x00, 0x07, 0, 0, 0, 0, 0, 0, 0, 0, 0xEE];
        let e = Erspan::new_checked(&iii, true).unwrap();
        assert_eq!((e.session(), e.payload()), (7, &[0xEE][..]));
        let mut with_sub = iii.to_vec();
        with_sub[11] = 1;
        assert_eq!(
            Erspan::new_checked(&with_sub, true).unwrap_err(),
            WireError::Truncated
        );
        assert!(Erspan::new_checked(&ii, true).is_err());
    }
}
