//! Errors of the state layer. They become `bhs_status` codes only at the C boundary.

use std::fmt;

/// Everything that can go wrong in the state layer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum StateError {
    /// A key is longer than [`super::MAX_KEY_LEN`].
    KeyTooLong {
        /// Length given.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A value is longer than [`super::MAX_VALUE_LEN`].
    ValueTooLong {
        /// Length given.
        len: usize,
        /// The bound.
        max: usize,
    },
    /// A category name is empty, too long or not printable ASCII.
    InvalidCategoryName {
        /// Length given.
        len: usize,
    },
    /// No category of that name exists.
    UnknownCategory(String),
    /// The shard count is outside 1..=[`super::MAX_SHARDS`].
    InvalidShardCount(usize),
    /// A proof could not be decoded.
    MalformedProof(&'static str),
    /// A proof decoded but does not lead to the expected root.
    ProofMismatch,
    /// A diff was produced for another category.
    DiffCategoryMismatch,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::KeyTooLong { len, max } => {
                write!(f, "key is {len} bytes, over the limit of {max}: use a shorter key or hash it")
            }
            StateError::ValueTooLong { len, max } => write!(
                f,
                "value is {len} bytes, over the limit of {max}: split it or store a reference to it"
            ),
            StateError::InvalidCategoryName { len } => write!(
                f,
                "category name of {len} bytes is invalid: use 1 to 64 printable ASCII characters"
            ),
            StateError::UnknownCategory(name) => {
                write!(f, "unknown category {name:?}: add it to the configuration first")
            }
            StateError::InvalidShardCount(count) => {
                write!(f, "shard count {count} is invalid: use 1 to {}", super::MAX_SHARDS)
            }
            StateError::MalformedProof(why) => write!(f, "malformed proof: {why}"),
            StateError::ProofMismatch => {
                write!(f, "proof does not lead to the given root: the entry is not in that state")
            }
            StateError::DiffCategoryMismatch => write!(f, "diff belongs to another category"),
        }
    }
}

impl std::error::Error for StateError {}
