//! Setting up an io_uring ring for the backend: probing what it supports and registering
//! send buffers within RLIMIT_MEMLOCK (docs/adr/030-io-backends.md says why each inference).

use std::io;

use io_uring::{opcode, IoUring, Probe};

use super::send_queue::{SendChunk, SEND_CHUNK_LEN};

/// What a ring supports, from `IORING_REGISTER_PROBE`.
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
pub struct ProbeReport {
    /// The single-shot opcodes this backend cannot do without (accept, connect, send, recv,
    /// read, timeout, async cancel) are all supported.
    pub basic_ops: bool,
    /// Multishot accept (Linux 5.19). It is a flag of `IORING_OP_ACCEPT`, which the opcode
    /// probe cannot see, so it is inferred from `IORING_OP_SOCKET`, added in the same release;
    /// an EINVAL at run time still turns it off.
    pub multishot_accept: bool,
    /// Multishot recv (Linux 6.0), inferred likewise from `IORING_OP_SEND_ZC` (same release).
    pub multishot_recv: bool,
    /// `IORING_OP_SEND_ZC`, which accepts a registered buffer index for sockets.
    pub send_zc: bool,
}

/// Probes `ring` for the operations this backend uses.
pub fn probe(ring: &IoUring) -> io::Result<ProbeReport> {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let basic = [
        opcode::Accept::CODE,
        opcode::Connect::CODE,
        opcode::Send::CODE,
        opcode::Recv::CODE,
        opcode::Read::CODE,
        opcode::Timeout::CODE,
        opcode::AsyncCancel::CODE,
    ];
    Ok(ProbeReport {
        basic_ops: basic.iter().all(|&code| probe.is_supported(code)),
        multishot_accept: probe.is_supported(opcode::Socket::CODE),
        multishot_recv: probe.is_supported(opcode::SendZc::CODE),
        send_zc: probe.is_supported(opcode::SendZc::CODE),
    })
}

/// The soft RLIMIT_MEMLOCK in bytes (`usize::MAX` when unlimited or unknown).
fn memlock_limit() -> usize {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: passes a pointer to a live rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return usize::MAX;
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Allocates send chunks and registers them with the ring: at most `wanted` bytes and a
/// quarter of RLIMIT_MEMLOCK (other rings and shards pin memory too). Returns none if the
/// kernel refuses (ENOMEM, EPERM): sends then copy from unregistered chunks.
pub(crate) fn register_send_chunks(ring: &IoUring, wanted: usize) -> Vec<SendChunk> {
    let bytes = wanted.min(memlock_limit() / 4);
    let count = (bytes / SEND_CHUNK_LEN).min(usize::from(u16::MAX));
    if count == 0 {
        return Vec::new();
    }
    let mut chunks: Vec<SendChunk> = (0..count).map(|i| SendChunk::new(Some(i as u16))).collect();
    let iovecs: Vec<libc::iovec> = chunks.iter_mut().map(SendChunk::iovec).collect();
    // SAFETY: each iovec covers a chunk's heap block, which never moves and is freed only
    // after the ring (the backend declares the ring first, and the pool never frees
    // registered chunks).
    match unsafe { ring.submitter().register_buffers(&iovecs) } {
        Ok(()) => chunks,
        Err(_) => Vec::new(),
    }
}
