//! GTP-U, the user plane of GPRS, UMTS, LTE and 5G mobile networks
//! (3GPP TS 29.281), on UDP port 2152: an 8-byte header with a version, a
//! message type and a tunnel endpoint identifier (TEID), then optional
//! sequence and N-PDU fields and a chain of extension headers, then the
//! user's IP packet (message type 255, G-PDU).

use super::{be16, WireError};

/// The UDP port of GTP-U.
pub const PORT: u16 = 2152;
/// The message type that carries a user packet (G-PDU).
pub const G_PDU: u8 = 0xFF;
/// Most extension headers followed before the header is called malformed.
const MAX_EXTENSIONS: usize = 16;

/// A checked view of a GTP-U message carrying a user packet.
#[derive(Debug, Clone, Copy)]
pub struct Header<'a> {
    bytes: &'a [u8],
    teid: u32,
    payload_at: usize,
    payload_end: usize,
}

impl<'a> Header<'a> {
    /// The mandatory part.
    pub const MIN_LEN: usize = 8;

    /// Checks that `bytes` (a UDP payload) is a G-PDU: version 1, protocol
    /// type GTP, message type 255, a length that fits the datagram, and
    /// well-formed optional fields and extension headers.
    /// `Err(Unsupported)` when it is not a G-PDU (another message type, or
    /// not GTP-U at all), `Err(Truncated)` when it is cut short.
    pub fn new_checked(bytes: &'a [u8], datagram_len: usize) -> Result<Self, WireError> {
        let h = bytes.first_chunk::<8>().ok_or(WireError::Truncated)?;
        let flags = h[0];
        // Version (top 3 bits) 1, protocol type (bit 4) GTP.
        if flags >> 5 != 1 || flags & 0x10 == 0 || h[1] != G_PDU {
            return Err(WireError::Unsupported);
        }
        let length = usize::from(be16(h, 2));
        // The length counts what follows the mandatory 8 bytes; it must fit
        // the datagram (as declared: the capture may have cut it).
        if Self::MIN_LEN + length > datagram_len {
            return Err(WireError::Unsupported);
        }
        let teid = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        let mut at = Self::MIN_LEN;
        // E, S or PN set: sequence number, N-PDU number, next extension.
        if flags & 0x07 != 0 {
            let opt = bytes.get(at..at + 4).ok_or(WireError::Truncated)?;
            let mut next = opt[3];
            at += 4;
            // Extension headers only when E is set.
            if flags & 0x04 == 0 {
                next = 0;
            }
            let mut count = 0;
            while next != 0 {
                count += 1;
                if count > MAX_EXTENSIONS {
                    return Err(WireError::Unsupported);
                }
                // Length in 4-byte units, covering the length byte and the
                // next-type byte.
                let units = usize::from(*bytes.get(at).ok_or(WireError::Truncated)?);
                if units == 0 {
                    return Err(WireError::Unsupported);
                }
                let end = at + units * 4;
                next = *bytes.get(end - 1).ok_or(WireError::Truncated)?;
                at = end;
            }
        }
        let payload_end = Self::MIN_LEN + length;
        if at > payload_end {
            return Err(WireError::Unsupported);
        }
        Ok(Header {
            bytes,
            teid,
            payload_at: at,
            payload_end,
        })
    }

    /// The tunnel endpoint identifier (of the receiving end).
    pub fn teid(&self) -> u32 {
        self.teid
    }

    /// The user packet (as captured: possibly cut short).
    pub fn payload(&self) -> &'a [u8] {
        let end = self.payload_end.min(self.bytes.len());
        self.bytes.get(self.payload_at..end).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_g_pdu() {
        let mut m = vec![0x30, 0xFF, 0, 4, 0, 0, 0x12, 0x34, 0x45, 0, 0, 0];
        let h = Header::new_checked(&m, m.len()).unwrap();
        assert_eq!(h.teid(), 0x1234);
        assert_eq!(h.payload(), &[0x45, 0, 0, 0]);
        // Another message type (echo request) is not opened.
        m[1] = 1;
        assert_eq!(
            Header::new_checked(&m, m.len()).unwrap_err(),
            WireError::Unsupported
        );
    }

    #[test]
    fn sequence_and_extension_headers() {
        // E and S set; one PDU session container (type 0x85, 1 unit).
        let m = [
            0x36, 0xFF, 0, 12, 0, 0, 0, 1, // mandatory
            0, 7, 0, 0x85, // sequence, N-PDU, next = 0x85
            1, 0x10, 0x01, 0x00, // extension: 1 unit, next 0
            0x60, 0, 0, 0, // the user packet begins
        ];
        let h = Header::new_checked(&m, m.len()).unwrap();
        assert_eq!(h.payload(), &[0x60, 0, 0, 0]);
        // An extension of length 0 is malformed; a chain cut short is
        // truncated.
        let mut bad = m;
        bad[12] = 0;
        assert!(Header::new_checked(&bad, bad.len()).is_err());
        assert_eq!(
            Header::new_checked(&m[..13], m.len()).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn a_length_beyond_the_datagram_is_not_gtp() {
        let m = [0x30, 0xFF, 0, 200, 0, 0, 0, 1, 0x45];
        assert!(Header::new_checked(&m, m.len()).is_err());
        assert!(Header::new_checked(&[0x30, 0xFF], 2).is_err());
    }
}
