#![allow(dead_code)]
//! What the targets share: the link types the front end supports, chosen
//! by a selector byte.

/// Every pcap link type the decoder reads, plus one it does not.
pub const LINK_TYPES: [u32; 16] = [
    1, 113, 276, 12, 14, 101, 228, 229, 0, 108, 9, 50, 51, 104, 192, 147,
];

/// The link type a selector byte names.
pub fn link_type(selector: u8) -> u32 {
    LINK_TYPES[usize::from(selector) % LINK_TYPES.len()]
}
