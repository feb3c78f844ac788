//! The small file interface the log runs on, and its real implementations.
//!
//! Recovery and group commit reach the disk only through [`Disk`] and [`AppendFile`],
//! so a simulator can put a fault-injecting disk (torn writes, full disks, lost
//! unsynced data) under the same code, as TigerBeetle's VOPR does with its storage.
//! [`FsDisk`] is the real one: plain system calls (`pwrite` + `fdatasync`), or an
//! io_uring ring per segment file (a WRITE linked to an FSYNC with the DATASYNC flag:
//! one submission, one wait) that falls back to plain calls when the ring cannot be
//! set up (seccomp, old kernels), as the engine's mio fallback does.

use std::any::Any;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Which system-call path writes a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// `pwrite` then `fdatasync`.
    Plain,
    /// An io_uring WRITE linked to an FSYNC(DATASYNC); plain calls if the ring fails.
    Uring,
}

/// A segment file open for appending.
pub trait AppendFile: Send {
    /// Bytes in the file.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Writes `bytes` at the end and returns only once they are durable (data synced).
    fn append_durable(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts the file back to `len` and syncs (after a failed append).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
    /// The path actually used (a ring that failed to set up reports `Plain`).
    fn backend(&self) -> IoBackend;
}

/// The directory operations the log needs.
pub trait Disk: Send + Sync {
    /// Creates `dir` and its parents.
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive, non-blocking lock on `path`; the lock lasts as long as the
    /// returned guard. `Ok(None)` when someone else holds it.
    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>>;
    /// File names in `dir`.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// The whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Opens `path` for appending, creating it (and syncing its directory) if absent.
    fn open_append(&self, path: &Path, backend: IoBackend) -> io::Result<Box<dyn AppendFile>>;
    /// Cuts `path` to `len` bytes and syncs it.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Writes `bytes` to `path` atomically: a temporary file, synced, renamed over it,
    /// and the directory synced.
    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// Removes `path`.
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Syncs the directory `dir` (makes creations, renames and removals durable).
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct FsDisk;

impl Disk for FsDisk {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn lock(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        // SAFETY: flock on a descriptor we own; the lock dies with the file.
        let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if result == 0 {
            return Ok(Some(Box::new(file)));
        }
        let error = io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Ok(None);
        }
        Err(error)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            names.push(entry?.file_name().to_string_lossy().into_owned());
        }
        Ok(names)
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn open_append(&self, path: &Path, backend: IoBackend) -> io::Result<Box<dyn AppendFile>> {
        let existed = path.exists();
        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(path)?;
        if !existed {
            file.sync_all()?;
            self.sync_dir(parent_of(path))?;
        }
        let len = file.metadata()?.len();
        if backend == IoBackend::Uring {
            if let Ok(ring) = io_uring::IoUring::new(4) {
                return Ok(Box::new(UringFile { file, ring, len }));
            }
        }
        Ok(Box::new(PlainFile { file, len }))
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let temporary = path.with_extension("tmp");
        let file = OpenOptions::new().write(true).create(true).truncate(true).open(&temporary)?;
        file.write_all_at(bytes, 0)?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)?;
        self.sync_dir(parent_of(path))
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
}

fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn fdatasync(file: &File) -> io::Result<()> {
    // SAFETY: a plain system call on a descriptor we own.
    if unsafe { libc::fdatasync(file.as_raw_fd()) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `pwrite` + `fdatasync`.
struct PlainFile {
    file: File,
    len: u64,
}

impl AppendFile for PlainFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn append_durable(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all_at(bytes, self.len)?;
        fdatasync(&self.file)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        fdatasync(&self.file)?;
        self.len = len;
        Ok(())
    }

    fn backend(&self) -> IoBackend {
        IoBackend::Plain
    }
}

/// An io_uring WRITE linked to an FSYNC(DATASYNC): one `io_uring_enter` per batch.
struct UringFile {
    file: File,
    ring: io_uring::IoUring,
    len: u64,
}

impl UringFile {
    /// Submits the linked pair and returns (bytes written, fsync result).
    fn write_and_sync(&mut self, bytes: &[u8]) -> io::Result<(usize, i32)> {
        use io_uring::{opcode, squeue, types};
        let fd = types::Fd(self.file.as_raw_fd());
        let write = opcode::Write::new(fd, bytes.as_ptr(), bytes.len() as u32)
            .offset(self.len)
            .build()
            .flags(squeue::Flags::IO_LINK)
            .user_data(1);
        let sync = opcode::Fsync::new(fd).flags(types::FsyncFlags::DATASYNC).build().user_data(2);
        // SAFETY: `bytes` and the descriptor outlive the submission: we wait for both
        // completions below before returning.
        unsafe {
            let mut queue = self.ring.submission();
            queue.push(&write).map_err(|_| io::Error::other("io_uring submission queue full"))?;
            queue.push(&sync).map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.ring.submit_and_wait(2)?;
        let (mut written, mut synced) = (None, None);
        while written.is_none() || synced.is_none() {
            let Some(done) = self.ring.completion().next() else {
                self.ring.submit_and_wait(1)?;
                continue;
            };
            match done.user_data() {
                1 => written = Some(done.result()),
                _ => synced = Some(done.result()),
            }
        }
        let written = written.unwrap_or(-libc::EIO);
        if written < 0 {
            return Err(io::Error::from_raw_os_error(-written));
        }
        Ok((written as usize, synced.unwrap_or(-libc::EIO)))
    }
}

impl AppendFile for UringFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn append_durable(&mut self, bytes: &[u8]) -> io::Result<()> {
        assert!(bytes.len() <= u32::MAX as usize, "batches are bounded well below 4 GiB");
        let (written, synced) = self.write_and_sync(bytes)?;
        if written == bytes.len() && synced == 0 {
            self.len += bytes.len() as u64;
            return Ok(());
        }
        if written == bytes.len() && synced != -libc::ECANCELED {
            return Err(io::Error::from_raw_os_error(-synced));
        }
        // A short write cancels the linked sync: finish with plain calls, which
        // report the real error (ENOSPC, EFBIG) if there is one.
        self.file.write_all_at(&bytes[written..], self.len + written as u64)?;
        fdatasync(&self.file)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        fdatasync(&self.file)?;
        self.len = len;
        Ok(())
    }

    fn backend(&self) -> IoBackend {
        IoBackend::Uring
    }
}

/// The path of segment `first_seq` in `log_dir`.
pub fn segment_path(log_dir: &Path, first_seq: u64) -> PathBuf {
    log_dir.join(format!("{first_seq:020}.seg"))
}

/// The path of the snapshot through `seq` in `snapshot_dir`.
pub fn snapshot_path(snapshot_dir: &Path, seq: u64) -> PathBuf {
    snapshot_dir.join(format!("{seq:020}.snap"))
}

/// The number in a file name `NNN….ext`, if it has that shape.
pub fn parse_numbered(name: &str, extension: &str) -> Option<u64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}
