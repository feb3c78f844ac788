//! The transactions' Merkle root.
//!
//! A binary BLAKE3 tree with domain separation (RFC 6962, Certificate Transparency:
//! leaves hashed with prefix 0x00, inner nodes with 0x01), so a leaf can never pass for
//! an inner node. An odd node at the end of a level is carried up unchanged instead of
//! being paired with itself, which avoids Bitcoin's duplicate-transaction ambiguity
//! (CVE-2012-2459): two different transaction lists never share a root.

/// A 32-byte BLAKE3 hash.
pub type Hash = [u8; 32];

/// The root of an empty transaction list: BLAKE3 of a third prefix (0x02), so it
/// differs from every leaf and inner hash, and so from every non-empty root.
pub fn empty_root() -> Hash {
    *blake3::hash(&[0x02]).as_bytes()
}

fn leaf_hash(transaction: &[u8]) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x00]);
    hasher.update(transaction);
    *hasher.finalize().as_bytes()
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&[0x01]);
    hasher.update(left);
    hasher.update(right);
    *hasher.finalize().as_bytes()
}

/// The Merkle root of `transactions`, in order.
pub fn transactions_root<T: AsRef<[u8]>>(transactions: &[T]) -> Hash {
    if transactions.is_empty() {
        return empty_root();
    }
    let mut level: Vec<Hash> = transactions.iter().map(|t| leaf_hash(t.as_ref())).collect();
    while level.len() > 1 {
        level =
            level.chunks(2).map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] }).collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_content_and_duplication_all_change_the_root() {
        let base = transactions_root(&[b"a".as_slice(), b"b", b"c"]);
        assert_ne!(base, transactions_root(&[b"b".as_slice(), b"a", b"c"]));
        assert_ne!(base, transactions_root(&[b"a".as_slice(), b"b", b"d"]));
        assert_ne!(base, transactions_root(&[b"a".as_slice(), b"b", b"c", b"c"]), "no duplicate-leaf ambiguity");
        assert_ne!(transactions_root::<&[u8]>(&[]), transactions_root(&[b"".as_slice()]));
    }
}
