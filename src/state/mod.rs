//! State: categories, entries, and the Merkle structure that names a node's state.
//!
//! A category is a named keyspace. Each holds one *version* per key (see [`Version`]);
//! every stored version is summarised by a 32-byte *leaf digest* ([`digest`]). The leaf
//! digests of a category form a history-independent binary Merkle trie ([`tree`]): the
//! position of a leaf is a hash of its key, and the shape of the trie is a function of
//! the set of positions alone, so the same entries give the same root whatever the
//! order in which they were inserted. This is the property Merkle search trees
//! (Auvolat and Taïani, 2019) and sparse Merkle trees rely on; bhsync gets it from a
//! canonical split rule (a node is a bucket while it holds at most
//! [`tree::BUCKET_CAPACITY`] leaves) rather than from a fixed 256-level depth.
//!
//! The keyspace is cut into [`SUBTREE_COUNT`] slices by the top bits of the key
//! position; a [`Shard`] owns a contiguous range of those slices, so each shard owns
//! whole subtrees and hashes them on its own core. [`CategoryState`] combines the
//! subtree roots with the same canonical rule, so the shard count never changes a hash.
//!
//! On top sit the in-memory [`Replica`] (several categories, last-writer-wins writes,
//! state diff and apply), [`MembershipProof`]s that verify against a root without the
//! tree, and the [`StateVector`] whose hash is the node's overall state hash.

pub mod category;
pub mod category_state;
pub mod diff;
pub mod digest;
pub mod entry;
pub mod error;
pub mod leaf;
pub mod node_id;
pub mod parallel;
pub mod path;
pub mod proof;
pub mod replica;
pub mod shard;
pub mod tree;
pub mod vector;

pub use category::{CategoryId, CategorySpec, MergeRule, Mode, PartitionPolicy, Priority};
pub use category_state::{CategoryState, NodeShape, NodeView};
pub use diff::StateDiff;
pub use digest::Digest;
pub use entry::{check_bounds, Entry, EntryRef, Version, MAX_KEY_LEN, MAX_VALUE_LEN};
pub use error::StateError;
pub use leaf::PreparedLeaf;
pub use node_id::NodeId;
pub use path::TreePath;
pub use proof::MembershipProof;
pub use replica::{ApplyOutcome, Replica};
pub use shard::{Shard, MAX_SHARDS, SUBTREE_BITS, SUBTREE_COUNT};
pub use vector::{CategoryVector, StateVector};
