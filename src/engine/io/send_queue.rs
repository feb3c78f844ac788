//! Send buffers: a pool of fixed-size chunks and a per-connection queue of them.
//!
//! `send` copies the caller's bytes into the tail chunk of the connection's queue (taking
//! chunks from the pool as needed), so the caller's buffer is free at once and the backend
//! writes from memory it owns. A chunk's heap block never moves while it is queued, which is
//! what the io_uring backend needs: the kernel holds a pointer into the front chunk until the
//! send's completion arrives. The pool grows to the high-water mark of bytes queued and then
//! recycles, so the steady state allocates nothing. The io_uring backend registers its first
//! chunks with the ring (`IORING_REGISTER_BUFFERS`); those remember their index.

use std::collections::VecDeque;

/// Bytes in one chunk. 64 KiB: large enough that a bulk transfer is a few sends per
/// megabyte, small enough that an idle connection's last partial chunk wastes little (a guess,
/// not measured yet).
pub(crate) const SEND_CHUNK_LEN: usize = 64 * 1024;

/// Free chunks kept beyond the registered ones; more are freed (bounds idle memory).
const POOL_FREE_MAX: usize = 256;

/// One send buffer.
pub(crate) struct SendChunk {
    buf: Box<[u8]>,
    filled: usize,
    sent: usize,
    /// The chunk's index among the ring's registered buffers, if it is one of them.
    pub(crate) registered: Option<u16>,
}

impl SendChunk {
    pub(crate) fn new(registered: Option<u16>) -> SendChunk {
        SendChunk { buf: vec![0u8; SEND_CHUNK_LEN].into_boxed_slice(), filled: 0, sent: 0, registered }
    }

    /// The chunk's memory, for registering it with the ring. The heap block never moves.
    pub(crate) fn iovec(&mut self) -> libc::iovec {
        libc::iovec { iov_base: self.buf.as_mut_ptr().cast(), iov_len: self.buf.len() }
    }

    /// The bytes filled and not yet sent.
    pub(crate) fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..self.filled]
    }

    fn room(&self) -> usize {
        self.buf.len() - self.filled
    }
}

/// Free chunks shared by all connections of one backend.
pub(crate) struct SendPool {
    free: Vec<SendChunk>,
}

impl SendPool {
    pub(crate) fn new() -> SendPool {
        SendPool::with_chunks(Vec::new())
    }

    /// A pool that starts with `chunks` (the registered ones, which it never frees).
    pub(crate) fn with_chunks(mut chunks: Vec<SendChunk>) -> SendPool {
        chunks.reserve(POOL_FREE_MAX);
        SendPool { free: chunks }
    }

    fn take(&mut self) -> SendChunk {
        // Allocation happens only when the pool is empty: growth to the high-water mark (cold).
        self.free.pop().unwrap_or_else(|| SendChunk::new(None))
    }

    pub(crate) fn give(&mut self, mut chunk: SendChunk) {
        chunk.filled = 0;
        chunk.sent = 0;
        if chunk.registered.is_some() || self.free.len() < POOL_FREE_MAX {
            self.free.push(chunk);
        }
    }

    #[cfg(test)]
    pub(crate) fn free_chunks(&self) -> usize {
        self.free.len()
    }
}

/// A connection's queued bytes, in order.
pub(crate) struct SendQueue {
    chunks: VecDeque<SendChunk>,
    queued: usize,
    /// Bytes of the front chunk handed to the kernel and not yet completed (io_uring).
    in_flight: usize,
    /// `send` refused bytes since the last drain: report `Writable` when below half the cap.
    pub(crate) refused: bool,
}

impl SendQueue {
    pub(crate) fn new(max_bytes: usize) -> SendQueue {
        let chunks = VecDeque::with_capacity(max_bytes / SEND_CHUNK_LEN + 2);
        SendQueue { chunks, queued: 0, in_flight: 0, refused: false }
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Appends `bytes`. Never appends into a chunk the kernel is reading from.
    pub(crate) fn push(&mut self, bytes: &[u8], pool: &mut SendPool) {
        let mut rest = bytes;
        while !rest.is_empty() {
            let tail_usable = self.in_flight == 0 || self.chunks.len() > 1;
            let need_chunk = match self.chunks.back() {
                Some(tail) => !tail_usable || tail.room() == 0,
                None => true,
            };
            if need_chunk {
                self.chunks.push_back(pool.take());
            }
            let tail = self.chunks.back_mut().expect("a tail chunk was just ensured");
            let n = rest.len().min(tail.room());
            tail.buf[tail.filled..tail.filled + n].copy_from_slice(&rest[..n]);
            tail.filled += n;
            self.queued += n;
            rest = &rest[n..];
        }
    }

    /// The front chunk, if it has unsent bytes.
    pub(crate) fn front(&self) -> Option<&SendChunk> {
        self.chunks.front().filter(|chunk| chunk.sent < chunk.filled)
    }

    /// Marks `len` bytes of the front chunk as handed to the kernel (io_uring).
    pub(crate) fn begin_flight(&mut self, len: usize) {
        debug_assert_eq!(self.in_flight, 0, "one send in flight per connection");
        self.in_flight = len;
    }

    /// The kernel finished with the in-flight bytes, having sent `sent` of them.
    pub(crate) fn end_flight(&mut self, sent: usize, pool: &mut SendPool) {
        debug_assert!(sent <= self.in_flight, "the kernel cannot send more than it was given");
        self.in_flight = 0;
        self.advance(sent, pool);
    }

    /// `n` bytes from the front were sent.
    pub(crate) fn advance(&mut self, n: usize, pool: &mut SendPool) {
        let front = self.chunks.front_mut().expect("bytes were sent from a front chunk");
        front.sent += n;
        self.queued -= n;
        if front.sent == front.filled {
            let done = self.chunks.pop_front().expect("front exists");
            pool.give(done);
        }
    }

    /// Empties an idle queue for reuse by another connection (keeps its capacity).
    pub(crate) fn reset(&mut self, pool: &mut SendPool) {
        debug_assert_eq!(self.in_flight, 0, "a queue with bytes in flight belongs to its connection");
        self.discard_unsent(pool);
        self.refused = false;
    }

    /// Drops the bytes not handed to the kernel; keeps an in-flight chunk (its memory is the
    /// kernel's until the completion arrives).
    pub(crate) fn discard_unsent(&mut self, pool: &mut SendPool) {
        let keep = usize::from(self.in_flight > 0);
        while self.chunks.len() > keep {
            let chunk = self.chunks.pop_back().expect("len > keep");
            pool.give(chunk);
        }
        if let Some(front) = self.chunks.front_mut() {
            front.filled = front.sent + self.in_flight;
        }
        self.queued = self.in_flight;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(queue: &mut SendQueue, pool: &mut SendPool) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(front) = queue.front() {
            let bytes = front.unsent().to_vec();
            out.extend_from_slice(&bytes);
            queue.advance(bytes.len(), pool);
        }
        out
    }

    #[test]
    fn bytes_come_out_in_order_across_chunks_and_chunks_return_to_the_pool() {
        let mut pool = SendPool::new();
        let mut queue = SendQueue::new(1 << 20);
        let data: Vec<u8> = (0..(SEND_CHUNK_LEN * 2 + 123)).map(|i| (i % 251) as u8).collect();
        queue.push(&data[..1000], &mut pool);
        queue.push(&data[1000..], &mut pool);
        assert_eq!(queue.queued(), data.len());
        assert_eq!(drain(&mut queue, &mut pool), data);
        assert_eq!(queue.queued(), 0);
        assert_eq!(pool.free_chunks(), 3, "all three chunks are back in the pool");
    }

    #[test]
    fn bytes_pushed_during_a_flight_do_not_touch_the_in_flight_chunk() {
        let mut pool = SendPool::new();
        let mut queue = SendQueue::new(1 << 20);
        queue.push(b"abc", &mut pool);
        queue.begin_flight(3);
        queue.push(b"def", &mut pool);
        assert_eq!(queue.front().map(|c| c.unsent().to_vec()), Some(b"abc".to_vec()));
        queue.end_flight(3, &mut pool);
        assert_eq!(drain(&mut queue, &mut pool), b"def");
    }

    #[test]
    fn discarding_keeps_only_the_in_flight_bytes() {
        let mut pool = SendPool::new();
        let mut queue = SendQueue::new(1 << 20);
        queue.push(&[7u8; 100], &mut pool);
        queue.begin_flight(40);
        queue.push(&[8u8; 100], &mut pool);
        queue.discard_unsent(&mut pool);
        assert_eq!(queue.queued(), 40);
        queue.end_flight(40, &mut pool);
        assert_eq!(queue.queued(), 0);
        assert!(queue.front().is_none());
    }
}
