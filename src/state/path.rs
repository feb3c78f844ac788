//! Paths into the trie: a string of up to 64 bits, read from the root (bit 0 first).
//! They name nodes for subtree comparison ("compare trees", "sync subtree").

use std::fmt;

/// A node's address: the first `len` bits of the key positions below it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TreePath {
    /// The bits, left-aligned: bit 0 of the path is the most significant bit.
    bits: u64,
    len: u8,
}

impl TreePath {
    /// The longest path.
    pub const MAX_LEN: u32 = 64;

    /// The root.
    pub const ROOT: TreePath = TreePath { bits: 0, len: 0 };

    /// The path made of the first `len` bits of `bits` (left-aligned); `None` when
    /// `len` is over [`TreePath::MAX_LEN`]. Bits past `len` are ignored.
    pub fn new(bits: u64, len: u32) -> Option<TreePath> {
        if len > Self::MAX_LEN {
            return None;
        }
        let mask = if len == 0 { 0 } else { u64::MAX << (64 - len) };
        Some(TreePath { bits: bits & mask, len: len as u8 })
    }

    /// The path of the node at depth `len` above a key with position prefix `position`.
    pub fn of_position(position: u64, len: u32) -> TreePath {
        TreePath::new(position, len.min(Self::MAX_LEN)).unwrap_or(TreePath::ROOT)
    }

    /// Number of bits.
    pub fn len(&self) -> u32 {
        self.len as u32
    }

    /// Whether this is the root path.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bits, left-aligned.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Bit `index` (0 = first step from the root).
    pub fn bit(&self, index: u32) -> bool {
        debug_assert!(index < self.len());
        (self.bits >> (63 - index)) & 1 == 1
    }

    /// The child path one step further: `false` is left, `true` is right.
    pub fn child(&self, right: bool) -> TreePath {
        debug_assert!(self.len() < Self::MAX_LEN);
        let bits = self.bits | ((right as u64) << (63 - self.len()));
        TreePath { bits, len: self.len + 1 }
    }

    /// Whether a key with this position prefix lies below this path.
    pub fn contains(&self, position: u64) -> bool {
        self.len == 0 || (self.bits ^ position) >> (64 - self.len()) == 0
    }
}

impl fmt::Debug for TreePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("/")?;
        for index in 0..self.len() {
            f.write_str(if self.bit(index) { "1" } else { "0" })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_masks_bits_past_the_length_and_refuses_over_64() {
        assert_eq!(TreePath::new(u64::MAX, 2).unwrap().bits(), 0b11 << 62);
        assert_eq!(TreePath::new(u64::MAX, 0).unwrap(), TreePath::ROOT);
        assert!(TreePath::new(0, 65).is_none());
    }

    #[test]
    fn child_appends_one_bit_and_contains_checks_the_prefix() {
        let path = TreePath::ROOT.child(true).child(false);
        assert_eq!(path.len(), 2);
        assert!(path.bit(0) && !path.bit(1));
        assert!(path.contains(0b10 << 62));
        assert!(!path.contains(0b11 << 62));
        assert!(TreePath::ROOT.contains(12345));
        assert_eq!(format!("{path:?}"), "/10");
    }
}
