//! Categories: named keyspaces, each with its consistency mode, merge rule, priority and
//! partition policy (DESIGN.md §3).

use super::digest;
use super::error::StateError;

/// The longest category name, in bytes.
pub const MAX_CATEGORY_NAME_LEN: usize = 64;

/// The 8-byte identifier of a category, derived from its name; it is part of every leaf
/// digest, so equal keys in two categories never share a digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct CategoryId(pub [u8; 8]);

impl CategoryId {
    /// The identifier of the category named `name`.
    pub fn of(name: &str) -> Self {
        CategoryId(digest::category_id(name))
    }
}

/// How a category is kept consistent across nodes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum Mode {
    /// Gossip plus anti-entropy; every node accepts writes.
    #[default]
    Eventual,
    /// Writes go through consensus.
    Strong,
    /// A hash-chained log of blocks.
    Chain,
}

/// What happens when two versions of a key are concurrent.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum MergeRule {
    /// The version with the larger (hybrid logical time, origin) wins.
    #[default]
    LastWriterWins,
    /// The values are CRDT states and are merged.
    Crdt,
    /// The host's resolver decides.
    Custom,
}

/// The order in which categories are synchronized (critical first; low is never starved).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug, Default)]
pub enum Priority {
    /// Security updates and the like.
    Critical,
    /// User data.
    High,
    /// Metadata.
    #[default]
    Medium,
    /// Everything else.
    Low,
}

/// What a category does on the minority side of a partition.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum PartitionPolicy {
    /// Keep accepting writes and merge on heal (eventual categories).
    #[default]
    KeepWriting,
    /// Refuse writes until the partition heals (strong categories).
    ReadOnly,
}

/// The configuration of one category.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CategorySpec {
    /// Consistency mode.
    pub mode: Mode,
    /// Merge rule for concurrent versions.
    pub merge: MergeRule,
    /// Synchronization priority.
    pub priority: Priority,
    /// Behaviour on the minority side of a partition.
    pub partition_policy: PartitionPolicy,
}

/// Checks a category name: 1 to [`MAX_CATEGORY_NAME_LEN`] bytes of printable ASCII.
pub fn validate_name(name: &str) -> Result<(), StateError> {
    let printable = name.bytes().all(|b| b.is_ascii_graphic());
    if name.is_empty() || name.len() > MAX_CATEGORY_NAME_LEN || !printable {
        return Err(StateError::InvalidCategoryName { len: name.len() });
    }
    Ok(())
}
