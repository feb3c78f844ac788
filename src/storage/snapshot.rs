//! Snapshot files: the state as of one log position, so that recovery replays only the
//! records after it.
//!
//! ```text
//! magic "BHSS" u32 · version u32 (1) · through_seq u64 · head_hash [32]
//! · state_len u64 · state bytes · BLAKE3 over everything before [32]
//! ```
//!
//! `head_hash` is the record hash of record `through_seq` (zeros when 0), so the log
//! after the snapshot is chained to it even once older segments are deleted.

use super::record::RecordHash;

const SNAPSHOT_MAGIC: u32 = u32::from_le_bytes(*b"BHSS");
const SNAPSHOT_VERSION: u32 = 1;
const FIXED_LEN: usize = 4 + 4 + 8 + 32 + 8;
const TRAILER_LEN: usize = 32;

/// A snapshot of the host's state through one log position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The last record the state includes.
    pub through_seq: u64,
    /// That record's hash.
    pub head_hash: RecordHash,
    /// The host's state, opaque to the log.
    pub state: Vec<u8>,
}

/// Why a snapshot file was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotDamage {
    /// Too short, wrong magic or version, or a length that does not match the file.
    Malformed,
    /// The trailing hash does not match.
    BadHash,
}

/// Encodes `snapshot` as the bytes of a snapshot file.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    let mut out = Vec::with_capacity(FIXED_LEN + snapshot.state.len() + TRAILER_LEN);
    out.extend_from_slice(&SNAPSHOT_MAGIC.to_le_bytes());
    out.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
    out.extend_from_slice(&snapshot.through_seq.to_le_bytes());
    out.extend_from_slice(&snapshot.head_hash);
    out.extend_from_slice(&(snapshot.state.len() as u64).to_le_bytes());
    out.extend_from_slice(&snapshot.state);
    let hash = blake3::hash(&out);
    out.extend_from_slice(hash.as_bytes());
    out
}

/// Decodes a snapshot file. The state's length must match the file exactly, so no
/// allocation exceeds the input's size.
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot, SnapshotDamage> {
    if bytes.len() < FIXED_LEN + TRAILER_LEN {
        return Err(SnapshotDamage::Malformed);
    }
    let word = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    let long = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    if word(0) != SNAPSHOT_MAGIC || word(4) != SNAPSHOT_VERSION {
        return Err(SnapshotDamage::Malformed);
    }
    let state_len = long(48);
    if state_len != (bytes.len() - FIXED_LEN - TRAILER_LEN) as u64 {
        return Err(SnapshotDamage::Malformed);
    }
    let body_end = bytes.len() - TRAILER_LEN;
    if blake3::hash(&bytes[..body_end]).as_bytes()[..] != bytes[body_end..] {
        return Err(SnapshotDamage::BadHash);
    }
    let head_hash: RecordHash = bytes[16..48].try_into().expect("32 bytes");
    Ok(Snapshot { through_seq: long(8), head_hash, state: bytes[FIXED_LEN..body_end].to_vec() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_snapshot_round_trips_and_any_flip_is_caught() {
        let snapshot = Snapshot { through_seq: 42, head_hash: [7; 32], state: b"state".to_vec() };
        let bytes = encode_snapshot(&snapshot);
        assert_eq!(decode_snapshot(&bytes), Ok(snapshot));
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x40;
            assert!(decode_snapshot(&flipped).is_err(), "flip at byte {at} went unnoticed");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_snapshot(&bytes);
        }
    }
}
