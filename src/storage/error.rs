//! The storage layer's typed errors. Every error says what failed, where, and whether
//! anything on disk was changed (recovery never changes anything when it refuses).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a record in the middle of the log cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptReason {
    /// A record whose checksum holds sits where another sequence number was due
    /// (a reordered or duplicated record).
    WrongSequence {
        /// The sequence number the chain needed next.
        expected: u64,
        /// The sequence number the record carries.
        found: u64,
    },
    /// A record whose checksum holds does not carry the hash of the record before it.
    BrokenChain,
    /// A damaged record followed by intact ones: not a torn tail, damage in the middle.
    DamagedBeforeValidRecords,
    /// A damaged record in a segment that is not the last one.
    DamagedInEarlierSegment,
    /// A segment's file name does not match the first record it holds, or segments
    /// do not follow each other without a gap.
    SegmentGap {
        /// The first sequence number the segment should start with.
        expected: u64,
        /// The one its name says.
        found: u64,
    },
    /// The snapshot names a log position whose record hash differs, or that the log
    /// does not reach.
    SnapshotMismatch,
    /// The log starts after record 1 and no snapshot covers the records before it.
    MissingPrefix,
}

impl fmt::Display for CorruptReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongSequence { expected, found } => {
                write!(f, "record {found} found where record {expected} was due (reordered or duplicated)")
            }
            Self::BrokenChain => write!(f, "record does not carry the hash of the record before it"),
            Self::DamagedBeforeValidRecords => write!(f, "damaged record followed by intact records"),
            Self::DamagedInEarlierSegment => write!(f, "damaged record in a segment that is not the last"),
            Self::SegmentGap { expected, found } => write!(f, "segment starts at record {found}, expected {expected}"),
            Self::SnapshotMismatch => write!(f, "the snapshot does not match the log"),
            Self::MissingPrefix => write!(f, "the log starts after record 1 and no snapshot covers the start"),
        }
    }
}

/// An error of the durable log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// Another process (or another `Log` in this one) holds the directory's LOCK.
    Locked {
        /// The data directory.
        dir: PathBuf,
    },
    /// The disk (or the file-size limit) is full: the write was not made durable and
    /// nothing in it was acknowledged.
    DiskFull {
        /// The file being written.
        path: PathBuf,
        /// The operating system's message.
        message: String,
    },
    /// Any other input/output error.
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error's kind.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// Recovery found damage that is not a torn tail; it refused and changed nothing.
    Corrupt {
        /// The segment or snapshot file.
        path: PathBuf,
        /// Byte offset of the offending record in that file.
        offset: u64,
        /// What is wrong.
        reason: CorruptReason,
    },
    /// A payload larger than `LogConfig::record_bytes_max`.
    RecordTooLarge {
        /// The payload's length.
        len: usize,
        /// The configured bound.
        max: u32,
    },
    /// A snapshot was asked for a position that is not durable yet.
    NotDurable {
        /// The position asked for.
        seq: u64,
        /// The highest durable record.
        durable_seq: u64,
    },
    /// An earlier write failed; this log acknowledges nothing more. Reopen the
    /// directory (recovery keeps exactly what was made durable).
    Failed {
        /// The first failure, as text.
        first_error: String,
    },
}

impl StorageError {
    /// Maps an `io::Error` from `op` on `path`, recognising a full disk or quota and
    /// a file-size limit (EFBIG) as [`StorageError::DiskFull`].
    pub fn io(op: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        let path = path.into();
        let full = matches!(error.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EFBIG) | Some(libc::EDQUOT));
        if full {
            return Self::DiskFull { path, message: error.to_string() };
        }
        Self::Io { op, path, kind: error.kind(), message: error.to_string() }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Locked { dir } => write!(f, "data directory {} is in use by another node (LOCK held)", dir.display()),
            Self::DiskFull { path, message } => {
                write!(f, "disk full writing {}: {message}; the write was not acknowledged", path.display())
            }
            Self::Io { op, path, message, .. } => write!(f, "{op} {}: {message}", path.display()),
            Self::Corrupt { path, offset, reason } => write!(
                f,
                "log corrupt in the middle: {} at byte {offset}: {reason}; recovery refused and changed nothing",
                path.display()
            ),
            Self::RecordTooLarge { len, max } => write!(f, "record of {len} bytes exceeds the bound of {max} bytes"),
            Self::NotDurable { seq, durable_seq } => {
                write!(f, "snapshot through record {seq} asked but only {durable_seq} is durable")
            }
            Self::Failed { first_error } => {
                write!(f, "log stopped after a failed write ({first_error}); reopen the directory")
            }
        }
    }
}

impl std::error::Error for StorageError {}
