//! Community ID v1 flow hashes, as Zeek and Suricata print them, so that a
//! verdict here can be joined with their logs.
//!
//! The hash is SHA-1 over: the seed (2 bytes, big-endian), the two addresses
//! and the protocol number, a zero byte, then the two ports (big-endian),
//! with the endpoint ordered first whose (address, port) is smaller; the
//! digest is base64-encoded and prefixed with "1:".

use std::net::IpAddr;

use sha1::{Digest, Sha1};

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len().div_ceil(3) * 4];
    let n = base64_to(bytes, &mut out);
    out[..n].iter().map(|&b| char::from(b)).collect()
}

/// Writes the standard base64 (with padding) of `bytes` to the start of
/// `out`, as much as fits; returns the bytes written.
fn base64_to(bytes: &[u8], out: &mut [u8]) -> usize {
    let mut at = 0;
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if let Some(slot) = out.get_mut(at) {
                *slot = if i <= chunk.len() {
                    B64[((n >> (18 - 6 * i)) & 63) as usize]
                } else {
                    b'='
                };
                at += 1;
            }
        }
    }
    at
}

/// A Community ID v1 as text ("1:" and the 28 base64 characters of the
/// SHA-1 digest), held inline: making one allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; 30]);

impl CommunityId {
    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever written into it.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for CommunityId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An address's bytes without allocating: 4 or 16 of them.
fn addr_bytes(ip: &IpAddr) -> ([u8; 16], usize) {
    let mut b = [0u8; 16];
    match ip {
        IpAddr::V4(a) => {
            b[..4].copy_from_slice(&a.octets());
            (b, 4)
        }
        IpAddr::V6(a) => (a.octets(), 16),
    }
}

/// The Community ID v1 of a TCP/UDP flow (`proto` 6 or 17) with `seed`,
/// without allocating.
pub fn community_id_v1_inline(
    seed: u16,
    proto: u8,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> CommunityId {
    let ((a, alen), (b, blen)) = (addr_bytes(&src), addr_bytes(&dst));
    let (a, b) = (&a[..alen], &b[..blen]);
    let (a, ap, b, bp) = if (a, sport) <= (b, dport) {
        (a, sport, b, dport)
    } else {
        (b, dport, a, sport)
    };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(a);
    h.update(b);
    h.update([proto, 0]);
    h.update(ap.to_be_bytes());
    h.update(bp.to_be_bytes());
    let mut out = [0u8; 30];
    out[..2].copy_from_slice(b"1:");
    base64_to(&h.finalize(), &mut out[2..]);
    CommunityId(out)
}

/// The Community ID v1 of a TCP/UDP flow (`proto` 6 or 17) with `seed`.
pub fn community_id_v1(
    seed: u16,
    proto: u8,
    src: IpAddr,
    sport: u16,
    dst: IpAddr,
    dport: u16,
) -> String {
    community_id_v1_inline(seed, proto, src, sport, dst, dport)
        .as_str()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// The TCP and UDP vectors of the specification's baseline (seed 0 and 1).
    #[test]
    fn specification_vectors() {
        let cases = [
            (
                0,
                6,
                "128.232.110.120",
                34855,
                "66.35.250.204",
                80,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                0,
                6,
                "66.35.250.204",
                80,
                "128.232.110.120",
                34855,
                "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            ),
            (
                0,
                17,
                "192.168.1.52",
                54585,
                "8.8.8.8",
                53,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                0,
                17,
                "8.8.8.8",
                53,
                "192.168.1.52",
                54585,
                "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            ),
            (
                0,
                6,
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                63943,
                "2607:f8b0:400c:c03::1a",
                25,
                "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            ),
            (
                1,
                6,
                "128.232.110.120",
                34855,
                "66.35.250.204",
                80,
                "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
            ),
            (
                1,
                17,
                "8.8.8.8",
                53,
                "192.168.1.52",
                54585,
                "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
            ),
            (
                1,
                6,
                "2607:f8b0:400c:c03::1a",
                25,
                "2001:470:e5bf:dead:4957:2174:e82c:4887",
                63943,
                "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
            ),
            (
                0,
                6,
                "1.2.3.4",
                1122,
                "5.6.7.8",
                3344,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                0,
                17,
                "1.2.3.4",
                1122,
                "5.6.7.8",
                3344,
                "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            ),
        ];
        for (seed, proto, s, sp, d, dp, want) in cases {
            assert_eq!(
                community_id_v1(seed, proto, ip(s), sp, ip(d), dp),
                want,
                "{s}:{sp} {d}:{dp}"
            );
        }
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
