//! Durability: an append-only, segmented, hash-chained log with group commit,
//! snapshots and crash recovery (DESIGN.md §6, issue 7, docs/adr/040-storage-log.md).
//!
//! - [`record`]: the record format (checksum + BLAKE3 hash of the record before);
//! - [`scan`]: verifying a segment's bytes, telling a torn tail from corruption;
//! - [`snapshot`]: snapshot files, so recovery replays only the tail;
//! - [`recovery`]: from a directory to a verified head, refusing a corrupt middle;
//! - [`disk`]: the small file interface, with plain-syscall and io_uring backends;
//! - [`log`]: [`Log`], the group-commit writer that acknowledges only durable records.
//!
//! The format, the scan and the recovery decisions are pure functions over bytes and a
//! [`Disk`]; only [`FsDisk`] touches files, so a simulated disk can stand in for it.

pub mod disk;
pub mod error;
pub mod log;
pub mod record;
pub mod recovery;
pub mod scan;
pub mod snapshot;

#[cfg(test)]
pub(crate) mod tests;

pub use disk::{AppendFile, Disk, FsDisk, IoBackend};
pub use error::{CorruptReason, StorageError};
pub use log::{Log, LogConfig, LogStats};
pub use record::{RecordHash, GENESIS_HASH};
pub use recovery::{LogRecord, Recovery, TornTail};
pub use snapshot::Snapshot;
