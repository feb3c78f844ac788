//! Entries and versions (DESIGN.md §3): a key, a value, and the metadata that names one
//! version of it. Bounds on key and value sizes are part of the API.

use std::cmp::Ordering;

use super::error::StateError;
use super::node_id::NodeId;

/// The longest key, in bytes. Keys of length 0 are allowed.
pub const MAX_KEY_LEN: usize = 1024;
/// The longest value, in bytes (1 MiB). Values of length 0 are allowed.
pub const MAX_VALUE_LEN: usize = 1 << 20;

const FLAG_TOMBSTONE: u8 = 1;

/// The metadata of one version of an entry.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct Version {
    /// Hybrid logical timestamp of the write.
    pub hlc: u64,
    /// The node that made the write.
    pub origin: NodeId,
    /// The write's counter at its origin: `(origin, counter)` is the write's dot.
    pub counter: u64,
    /// Whether this version records a deletion.
    pub tombstone: bool,
}

impl Version {
    /// The flag byte hashed into the leaf digest.
    pub fn flags(&self) -> u8 {
        if self.tombstone {
            FLAG_TOMBSTONE
        } else {
            0
        }
    }

    /// Rebuilds a version from its stored parts; unknown flag bits are an error.
    pub fn from_parts(hlc: u64, origin: NodeId, counter: u64, flags: u8) -> Result<Self, StateError> {
        if flags & !FLAG_TOMBSTONE != 0 {
            return Err(StateError::MalformedProof("unknown version flags"));
        }
        Ok(Version { hlc, origin, counter, tombstone: flags & FLAG_TOMBSTONE != 0 })
    }

    /// Last-writer-wins order: hybrid logical time, then origin, then counter. Two
    /// different versions never compare equal.
    pub fn lww_cmp(&self, other: &Version) -> Ordering {
        (self.hlc, self.origin, self.counter, self.tombstone)
            .cmp(&(other.hlc, other.origin, other.counter, other.tombstone))
    }
}

/// An owned entry: one version of one key.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Entry {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty for a tombstone).
    pub value: Vec<u8>,
    /// Which version this is.
    pub version: Version,
}

/// A borrowed view of an entry stored in a replica.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct EntryRef<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// Which version this is.
    pub version: Version,
    /// The leaf digest of this version.
    pub digest: &'a super::digest::Digest,
}

impl EntryRef<'_> {
    /// An owned copy.
    pub fn to_entry(&self) -> Entry {
        Entry { key: self.key.to_vec(), value: self.value.to_vec(), version: self.version }
    }
}

/// Checks the size bounds of a key and a value.
pub fn check_bounds(key: &[u8], value: &[u8]) -> Result<(), StateError> {
    if key.len() > MAX_KEY_LEN {
        return Err(StateError::KeyTooLong { len: key.len(), max: MAX_KEY_LEN });
    }
    if value.len() > MAX_VALUE_LEN {
        return Err(StateError::ValueTooLong { len: value.len(), max: MAX_VALUE_LEN });
    }
    Ok(())
}
