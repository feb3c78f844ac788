//! Conflict resolution per category (DESIGN.md §3, "merge (lww | a CRDT kind |
//! custom)").
//!
//! Two versions of one key conflict when neither has seen the other. The category's
//! [`Strategy`] decides: last-writer-wins on `(hlc, origin, counter)`
//! ([`Version::lww_cmp`]); a CRDT join of both values; or the host's function, which
//! returns the winner or a merged value. Every decision is appended to the bounded
//! [`ConflictLog`]. When a decision cannot be made (no host function, the function
//! fails, panics, or returns a value over [`MAX_VALUE_LEN`], values that are not
//! CRDTs of one kind) the result is [`Resolved::KeepBoth`] with the error: nothing is
//! lost, the error is reported, and the host can resolve later.
//!
//! A merged value is returned as bytes; the caller stamps it with a new version (its
//! own HLC time, origin and counter), which then supersedes both inputs.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::any::merge_encoded;
use super::conflict_log::{ConflictLog, ConflictRecord, Outcome};
use super::CrdtError;
use crate::state::{Version, MAX_KEY_LEN, MAX_VALUE_LEN};

/// How a category resolves conflicts: the category's merge rule.
pub use crate::state::MergeRule as Strategy;

/// Default number of records the conflict log keeps. A guess: enough for a host that
/// polls every second through a burst of a few thousand conflicts per second.
pub const DEFAULT_LOG_CAPACITY: usize = 4096;

/// One version of one key's value.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VersionedValue {
    /// The value bytes (a CRDT encoding in "merge" categories).
    pub value: Vec<u8>,
    /// Its version.
    pub version: Version,
}

/// Which of the two versions.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    /// The version already stored here.
    Local,
    /// The version that arrived from a peer.
    Remote,
}

/// What a host resolver returns.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Resolution {
    /// Keep this version, drop the other.
    Winner(Side),
    /// Replace both with this value.
    Merged(Vec<u8>),
}

/// The host's resolver: `(local, remote) → resolution`, or an error text.
pub type CustomResolver = Box<dyn Fn(&VersionedValue, &VersionedValue) -> Result<Resolution, String> + Send + Sync>;

/// Why no decision was made.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum ResolveError {
    /// The category asks for a custom resolver and the host registered none.
    NoCustomResolver,
    /// The host's resolver returned an error.
    ResolverFailed(String),
    /// The host's resolver panicked.
    ResolverPanicked,
    /// A merged value is longer than [`MAX_VALUE_LEN`].
    MergedValueTooLong {
        /// Its length.
        len: usize,
    },
    /// The key is longer than [`MAX_KEY_LEN`].
    KeyTooLong {
        /// Its length.
        len: usize,
    },
    /// The CRDT merge failed (malformed value, kinds differ, result too long).
    Crdt(CrdtError),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::NoCustomResolver => f.write_str("no custom resolver registered"),
            ResolveError::ResolverFailed(text) => write!(f, "custom resolver failed: {text}"),
            ResolveError::ResolverPanicked => f.write_str("custom resolver panicked"),
            ResolveError::MergedValueTooLong { len } => {
                write!(f, "merged value of {len} bytes exceeds {MAX_VALUE_LEN}")
            }
            ResolveError::KeyTooLong { len } => write!(f, "key of {len} bytes exceeds {MAX_KEY_LEN}"),
            ResolveError::Crdt(error) => write!(f, "CRDT merge failed: {error}"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// What to store after a conflict.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Resolved {
    /// Keep this side's version only.
    Keep(Side),
    /// Store this merged value under a new version.
    Merged(Vec<u8>),
    /// Keep both versions; nothing was decided because of `error`.
    KeepBoth {
        /// Why.
        error: ResolveError,
    },
}

/// Resolves conflicts and logs every resolution.
pub struct Resolver {
    custom: Option<CustomResolver>,
    log: ConflictLog,
    unresolved_count: u64,
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resolver")
            .field("custom", &self.custom.is_some())
            .field("log", &self.log)
            .field("unresolved_count", &self.unresolved_count)
            .finish()
    }
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::new(DEFAULT_LOG_CAPACITY)
    }
}

impl Resolver {
    /// A resolver without a host function whose log keeps `log_capacity` records.
    pub fn new(log_capacity: usize) -> Self {
        Resolver { custom: None, log: ConflictLog::new(log_capacity), unresolved_count: 0 }
    }

    /// The conflict log.
    pub fn log(&self) -> &ConflictLog {
        &self.log
    }

    /// Conflicts left unresolved so far.
    pub fn unresolved_count(&self) -> u64 {
        self.unresolved_count
    }

    /// Registers (or replaces) the host's resolver for "custom" categories.
    pub fn set_custom(&mut self, resolver: CustomResolver) {
        self.custom = Some(resolver);
    }

    /// Resolves a conflict on `key` between the stored `local` and the arriving
    /// `remote` version, logs it, and says what to store.
    pub fn resolve(
        &mut self,
        strategy: Strategy,
        key: &[u8],
        local: &VersionedValue,
        remote: &VersionedValue,
    ) -> Resolved {
        let resolved = if key.len() > MAX_KEY_LEN {
            Resolved::KeepBoth { error: ResolveError::KeyTooLong { len: key.len() } }
        } else {
            match strategy {
                Strategy::LastWriterWins => Self::last_writer_wins(local, remote),
                Strategy::Crdt => match merge_encoded(&local.value, &remote.value) {
                    Ok(merged) => Resolved::Merged(merged),
                    Err(error) => Resolved::KeepBoth { error: ResolveError::Crdt(error) },
                },
                Strategy::Custom => self.custom(local, remote),
            }
        };
        self.record(strategy, key, local, remote, &resolved);
        resolved
    }

    fn last_writer_wins(local: &VersionedValue, remote: &VersionedValue) -> Resolved {
        if remote.version.lww_cmp(&local.version).is_gt() {
            Resolved::Keep(Side::Remote)
        } else {
            Resolved::Keep(Side::Local)
        }
    }

    fn custom(&self, local: &VersionedValue, remote: &VersionedValue) -> Resolved {
        let Some(resolver) = &self.custom else {
            return Resolved::KeepBoth { error: ResolveError::NoCustomResolver };
        };
        // A host bug must not take the node down: a panic is caught and reported.
        match catch_unwind(AssertUnwindSafe(|| resolver(local, remote))) {
            Ok(Ok(Resolution::Winner(side))) => Resolved::Keep(side),
            Ok(Ok(Resolution::Merged(value))) if value.len() > MAX_VALUE_LEN => {
                Resolved::KeepBoth { error: ResolveError::MergedValueTooLong { len: value.len() } }
            }
            Ok(Ok(Resolution::Merged(value))) => Resolved::Merged(value),
            Ok(Err(text)) => Resolved::KeepBoth { error: ResolveError::ResolverFailed(text) },
            Err(_) => Resolved::KeepBoth { error: ResolveError::ResolverPanicked },
        }
    }

    fn record(
        &mut self,
        strategy: Strategy,
        key: &[u8],
        local: &VersionedValue,
        remote: &VersionedValue,
        resolved: &Resolved,
    ) {
        let outcome = match resolved {
            Resolved::Keep(Side::Local) => Outcome::KeptLocal,
            Resolved::Keep(Side::Remote) => Outcome::KeptRemote,
            Resolved::Merged(value) => Outcome::Merged { len: value.len() },
            Resolved::KeepBoth { error } => {
                self.unresolved_count += 1;
                Outcome::Unresolved { error: error.to_string() }
            }
        };
        let key = key[..key.len().min(MAX_KEY_LEN)].to_vec();
        self.log.append(ConflictRecord {
            sequence: 0,
            key,
            local: local.version,
            remote: remote.version,
            local_value_hash: *blake3::hash(&local.value).as_bytes(),
            remote_value_hash: *blake3::hash(&remote.value).as_bytes(),
            strategy,
            outcome,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{Crdt, GCounter};
    use crate::state::NodeId;

    fn versioned(value: &[u8], hlc: u64, origin: u8) -> VersionedValue {
        let version = Version { hlc, origin: NodeId([origin; 32]), counter: 1, tombstone: false };
        VersionedValue { value: value.to_vec(), version }
    }

    #[test]
    fn last_writer_wins_by_hlc_then_origin() {
        let mut resolver = Resolver::default();
        let (old, new) = (versioned(b"a", 1, 9), versioned(b"b", 2, 1));
        assert_eq!(resolver.resolve(Strategy::LastWriterWins, b"k", &old, &new), Resolved::Keep(Side::Remote));
        assert_eq!(resolver.resolve(Strategy::LastWriterWins, b"k", &new, &old), Resolved::Keep(Side::Local));
        let tie = versioned(b"c", 2, 2);
        assert_eq!(resolver.resolve(Strategy::LastWriterWins, b"k", &new, &tie), Resolved::Keep(Side::Remote));
        assert_eq!(resolver.log().len(), 3);
        let first = resolver.log().iter().next().unwrap();
        assert_eq!(
            (first.outcome.clone(), first.strategy, first.key.clone()),
            (Outcome::KeptRemote, Strategy::LastWriterWins, b"k".to_vec())
        );
    }

    #[test]
    fn crdt_strategy_joins_values_and_keeps_both_on_garbage() {
        let mut resolver = Resolver::default();
        let node = NodeId([1; 32]);
        let (mut a, mut b) = (GCounter::new(), GCounter::new());
        a.increment(node, 3).unwrap();
        b.increment(NodeId([2; 32]), 4).unwrap();
        let resolved =
            resolver.resolve(Strategy::Crdt, b"c", &versioned(&a.encode(), 1, 1), &versioned(&b.encode(), 1, 2));
        let Resolved::Merged(bytes) = resolved else { panic!("merged") };
        assert_eq!(GCounter::decode(&bytes).unwrap().value(), 7);
        let garbage = resolver.resolve(Strategy::Crdt, b"c", &versioned(b"\xff", 1, 1), &versioned(&b.encode(), 1, 2));
        assert!(matches!(garbage, Resolved::KeepBoth { error: ResolveError::Crdt(CrdtError::Decode(_)) }));
        assert_eq!(resolver.unresolved_count(), 1);
    }

    #[test]
    fn custom_resolver_decides_and_its_failures_keep_both() {
        let mut resolver = Resolver::default();
        let (local, remote) = (versioned(b"left", 1, 1), versioned(b"right", 1, 2));
        let missing = resolver.resolve(Strategy::Custom, b"k", &local, &remote);
        assert_eq!(missing, Resolved::KeepBoth { error: ResolveError::NoCustomResolver });
        resolver.set_custom(Box::new(|l, r| match (l.value.as_slice(), r.value.as_slice()) {
            (b"left", b"right") => Ok(Resolution::Merged(b"both".to_vec())),
            (b"fail", _) => Err("cannot decide".to_string()),
            (b"huge", _) => Ok(Resolution::Merged(vec![0; MAX_VALUE_LEN + 1])),
            (b"panic", _) => panic!("host bug"),
            _ => Ok(Resolution::Winner(Side::Remote)),
        }));
        assert_eq!(resolver.resolve(Strategy::Custom, b"k", &local, &remote), Resolved::Merged(b"both".to_vec()));
        assert_eq!(resolver.resolve(Strategy::Custom, b"k", &remote, &local), Resolved::Keep(Side::Remote));
        let failed = resolver.resolve(Strategy::Custom, b"k", &versioned(b"fail", 1, 1), &remote);
        assert_eq!(failed, Resolved::KeepBoth { error: ResolveError::ResolverFailed("cannot decide".into()) });
        let huge = resolver.resolve(Strategy::Custom, b"k", &versioned(b"huge", 1, 1), &remote);
        assert_eq!(huge, Resolved::KeepBoth { error: ResolveError::MergedValueTooLong { len: MAX_VALUE_LEN + 1 } });
        let panicked = resolver.resolve(Strategy::Custom, b"k", &versioned(b"panic", 1, 1), &remote);
        assert_eq!(panicked, Resolved::KeepBoth { error: ResolveError::ResolverPanicked });
        assert_eq!(resolver.unresolved_count(), 4);
        let last = resolver.log().iter().last().unwrap();
        assert_eq!(last.outcome, Outcome::Unresolved { error: "custom resolver panicked".into() });
        assert_eq!(last.local_value_hash, *blake3::hash(b"panic").as_bytes());
    }

    #[test]
    fn over_long_keys_are_not_resolved() {
        let mut resolver = Resolver::new(1);
        let value = versioned(b"v", 1, 1);
        let resolved = resolver.resolve(Strategy::LastWriterWins, &[0; MAX_KEY_LEN + 1], &value, &value);
        assert_eq!(resolved, Resolved::KeepBoth { error: ResolveError::KeyTooLong { len: MAX_KEY_LEN + 1 } });
        assert_eq!(resolver.log().iter().next().unwrap().key.len(), MAX_KEY_LEN);
        assert!(format!("{resolver:?}").contains("unresolved_count: 1"));
    }
}
