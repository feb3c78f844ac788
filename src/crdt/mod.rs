//! Conflict-free replicated data types, delta-state (Almeida, Shoker, Baquero: "Delta
//! State Replicated Data Types", JPDC 2018).
//!
//! Every type is a join-semilattice: [`Crdt::merge`] is the join, so it is idempotent,
//! commutative and associative, and replicas that have merged the same states hold the
//! same state whatever the order, duplication or grouping of the merges. Every mutator
//! returns a *delta*: a small state of the same type that, joined into any replica,
//! has the effect of the mutation. The delta travels, not the whole state; deltas
//! joined together form a *delta group* that can be re-sent as one when some were lost
//! (the paper's anti-entropy Algorithm 2).
//!
//! - [`GCounter`], [`PnCounter`]: grow-only and increment/decrement counters
//!   (Shapiro et al., "A comprehensive study of CRDTs", 2011);
//! - [`LwwRegister`]: last-writer-wins on hybrid logical time, node as tiebreak;
//! - [`MvRegister`]: multi-value register, concurrent writes all kept;
//! - [`OrSet`]: add-wins observed-remove set without tombstones, by dots and a
//!   causal context (Bieniusa et al. 2012; Almeida et al. §7);
//! - [`LwwMap`]: a map of last-writer-wins slots;
//! - [`resolver`]: per-category conflict resolution with a bounded conflict log.
//!
//! Every type has one compact, versioned binary encoding ([`codec`]).

pub mod any;
pub mod codec;
pub mod conflict_log;
pub mod dot;
pub mod gcounter;
pub mod lww_map;
pub mod lww_register;
pub mod mv_register;
pub mod orset;
pub mod pncounter;
pub mod resolver;

use std::fmt;

pub use any::AnyCrdt;
pub use codec::{CrdtKind, FORMAT_VERSION, MAX_ENTRIES};
pub use conflict_log::{ConflictLog, ConflictRecord, Outcome};
pub use dot::{CausalContext, Dot};
pub use gcounter::GCounter;
pub use lww_map::LwwMap;
pub use lww_register::{LwwRegister, Stamp};
pub use mv_register::MvRegister;
pub use orset::OrSet;
pub use pncounter::PnCounter;
pub use resolver::{CustomResolver, Resolution, ResolveError, Resolved, Resolver, Side, Strategy, VersionedValue};

use crate::time::codec::{DecodeError, Reader};

/// The longest element of an [`OrSet`] and key of an [`LwwMap`]: the key bound of
/// the state layer.
pub const MAX_ELEMENT_LEN: usize = crate::state::MAX_KEY_LEN;

/// Why a mutation or a merge of encoded values was refused.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CrdtError {
    /// A value is longer than [`crate::state::MAX_VALUE_LEN`].
    ValueTooLong {
        /// Its length.
        len: usize,
    },
    /// An element or map key is longer than [`MAX_ELEMENT_LEN`].
    ElementTooLong {
        /// Its length.
        len: usize,
    },
    /// The collection already holds [`MAX_ENTRIES`] entries.
    TooManyEntries,
    /// A counter would pass `u64::MAX`.
    CounterOverflow,
    /// A node's dot counter is exhausted.
    DotsExhausted,
    /// Two encoded values are CRDTs of different kinds.
    KindMismatch {
        /// The kind of the first value.
        left: CrdtKind,
        /// The kind of the second value.
        right: CrdtKind,
    },
    /// An encoded value did not decode.
    Decode(DecodeError),
}

impl fmt::Display for CrdtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrdtError::ValueTooLong { len } => {
                write!(f, "value of {len} bytes exceeds {}", crate::state::MAX_VALUE_LEN)
            }
            CrdtError::ElementTooLong { len } => write!(f, "element of {len} bytes exceeds {MAX_ELEMENT_LEN}"),
            CrdtError::TooManyEntries => write!(f, "collection holds {MAX_ENTRIES} entries already"),
            CrdtError::CounterOverflow => f.write_str("counter overflow"),
            CrdtError::DotsExhausted => f.write_str("dot counter exhausted"),
            CrdtError::KindMismatch { left, right } => write!(f, "cannot merge {left:?} with {right:?}"),
            CrdtError::Decode(error) => write!(f, "malformed CRDT encoding: {error}"),
        }
    }
}

impl std::error::Error for CrdtError {}

impl From<DecodeError> for CrdtError {
    fn from(error: DecodeError) -> Self {
        CrdtError::Decode(error)
    }
}

/// A delta-state CRDT.
///
/// Deltas are values of the type itself (Almeida et al. §3: a delta-mutator returns a
/// state of the same lattice), so applying one is a join, and a group of deltas joined
/// together is again a delta.
pub trait Crdt: Clone + PartialEq + fmt::Debug + Default {
    /// The tag of the encoding.
    const KIND: CrdtKind;

    /// Joins `other` into `self`: the least upper bound of both states.
    fn merge(&mut self, other: &Self);

    /// Applies a delta produced by a mutator (at this or another replica).
    fn merge_delta(&mut self, delta: &Self) {
        self.merge(delta);
    }

    /// Appends the body of the encoding (after the two header bytes).
    fn encode_body(&self, out: &mut Vec<u8>);

    /// Reads the body of the encoding.
    fn decode_body(reader: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// The encoding: format version, kind, body.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        codec::write_header(&mut out, Self::KIND);
        self.encode_body(&mut out);
        out
    }

    /// Decodes exactly one value of this type.
    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let kind = codec::read_header(&mut reader)?;
        if kind != Self::KIND {
            return Err(DecodeError::WrongKind { expected: Self::KIND as u8, found: kind as u8 });
        }
        let value = Self::decode_body(&mut reader)?;
        reader.finish()?;
        Ok(value)
    }
}
