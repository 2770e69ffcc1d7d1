//! CAPWAP data channel (RFC 5415, RFC 5416): wireless access points send
//! their stations' frames to the controller over UDP port 5247, as IEEE
//! 802.3 frames or as native IEEE 802.11 data frames. The DTLS-protected
//! channel and fragmented messages are not opened.

use super::{be16, WireError};

/// The UDP port of the CAPWAP data channel.
pub const DATA_PORT: u16 = 5247;

/// Wireless binding 1: IEEE 802.11.
const WBID_IEEE_80211: u8 = 1;

/// What a CAPWAP data message carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carried<'a> {
    /// An Ethernet (IEEE 802.3) frame.
    Ethernet(&'a [u8]),
    /// The payload of an 802.11 data frame after LLC/SNAP, with its
    /// EtherType.
    Ethertype(u16, &'a [u8]),
}

/// Reads a CAPWAP data message (a UDP payload). `Err(Unsupported)` for
/// DTLS, keep-alives, fragments, other bindings, and 802.11 frames that are
/// not unprotected data with an LLC/SNAP header.
pub fn carried(bytes: &[u8]) -> Result<Carried<'_>, WireError> {
    let h = bytes.first_chunk::<8>().ok_or(WireError::Truncated)?;
    // Preamble: version 0, type 0 (1 is DTLS).
    if h[0] != 0 {
        return Err(WireError::Unsupported);
    }
    // HLEN (5 bits, 4-byte words) | RID (5) | WBID (5) | T F L W M K | flags (3).
    let bits = u32::from_be_bytes([0, h[1], h[2], h[3]]);
    let hlen = ((bits >> 19) & 0x1F) as usize * 4;
    let wbid = ((bits >> 9) & 0x1F) as u8;
    let t = bits & 0x100 != 0;
    let fragment = bits & 0x80 != 0;
    let keep_alive = bits & 0x08 != 0;
    if hlen < 8 || fragment || keep_alive {
        return Err(WireError::Unsupported);
    }
    let frame = bytes.get(hlen..).ok_or(WireError::Truncated)?;
    if !t {
        return Ok(Carried::Ethernet(frame));
    }
    if wbid != WBID_IEEE_80211 {
        return Err(WireError::Unsupported);
    }
    ieee80211_data(frame)
}

/// The LLC/SNAP payload of an unprotected IEEE 802.11 data frame. Some
/// access points (Cisco's among them) send the frame control field with
/// its two bytes swapped: when the field as sent is not a data frame's, the
/// swapped one is tried, and taken only if an LLC/SNAP header follows the
/// header it implies.
fn ieee80211_data(f: &[u8]) -> Result<Carried<'_>, WireError> {
    let fc = f.first_chunk::<2>().ok_or(WireError::Truncated)?;
    match ieee80211_data_as(f, fc[0], fc[1]) {
        Err(WireError::Unsupported) => ieee80211_data_as(f, fc[1], fc[0]),
        other => other,
    }
}

/// [`ieee80211_data`] with frame control bytes `fc0` (version, type,
/// subtype) and `flags`.
fn ieee80211_data_as(f: &[u8], fc0: u8, flags: u8) -> Result<Carried<'_>, WireError> {
    let (kind, subtype) = ((fc0 >> 2) & 0x03, fc0 >> 4);
    // Version 0, type 2 (data), with data (subtypes 4-7 and 12-15 carry
    // none), not protected (0x40).
    if fc0 & 0x03 != 0 || kind != 2 || subtype & 0x04 != 0 || flags & 0x40 != 0 {
        return Err(WireError::Unsupported);
    }
    let mut at = 24;
    // To DS and From DS: a fourth address.
    if flags & 0x03 == 0x03 {
        at += 6;
    }
    // QoS data: QoS control; with +HTC/Order, an HT control field.
    if subtype & 0x08 != 0 {
        at += 2;
        if flags & 0x80 != 0 {
            at += 4;
        }
    }
    let llc = f.get(at..at + 8).ok_or(WireError::Truncated)?;
    if llc[..6] != [0xAA, 0xAA, 0x03, 0, 0, 0] {
        return Err(WireError::Unsupported);
    }
    Ok(Carried::Ethertype(be16(llc, 6), &f[at + 8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CAPWAP data header of 2 words with T and WBID as given.
    fn header(t: bool, wbid: u8) -> Vec<u8> {
        let bits: u32 = (2 << 19) | (u32::from(wbid) << 9) | if t { 0x100 } else { 0 };
        let b = bits.to_be_bytes();
        vec![0, b[1], b[2], b[3], 0, 0, 0, 0]
    }

    #[test]
    fn ethernet_and_80211_frames() {
        let mut m = header(false, 1);
        m.extend_from_slice(&[0xEE; 14]);
        assert_eq!(carried(&m), Ok(Carried::Ethernet(&[0xEE; 14][..])));
        // An 802.11 QoS data frame from the station (To DS), then LLC/SNAP
        // and IPv4.
        let mut m = header(true, 1);
        m.extend_from_slice(&[0x88, 0x01]);
        m.extend_from_slice(&[0u8; 22]);
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&[0xAA, 0xAA, 0x03, 0, 0, 0, 0x08, 0x00, 0x45]);
        assert_eq!(carried(&m), Ok(Carried::Ethertype(0x0800, &[0x45][..])));
        // The frame control's bytes swapped, as some access points send it.
        let mut swapped = m.clone();
        swapped.swap(8, 9);
        assert_eq!(carried(&swapped), carried(&m));
        // Protected: not opened.
        let at = 8 + 1;
        m[at] |= 0x40;
        assert!(carried(&m).is_err());
        // DTLS, a keep-alive.
        assert!(carried(&[0x01, 0, 0, 0, 0, 0, 0, 0]).is_err());
        let mut k = header(false, 1);
        k[3] |= 0x08;
        assert!(carried(&k).is_err());
    }
}
