//! The provided-buffer ring (`IORING_REGISTER_PBUF_RING`, Linux 5.19): receive buffers the
//! kernel picks from when a multishot recv completes, so no buffer is tied to an idle
//! connection. After the sink has seen a buffer's bytes, the buffer goes back to the ring by
//! writing its entry at the tail and publishing the tail with a release store.
//!
//! The entries and the buffers are raw page-aligned allocations rather than Rust-owned
//! slices: the kernel writes into them while the backend runs, so no `&mut` may exist.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::io;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::IoUring;

const PAGE: usize = 4096;

/// A registered buffer ring of `entries` buffers of `buf_len` bytes each.
pub(crate) struct BufRing {
    ring: *mut BufRingEntry,
    ring_layout: Layout,
    bufs: *mut u8,
    bufs_layout: Layout,
    entries: u16,
    buf_len: usize,
    tail: u16,
}

// SAFETY: the ring's memory is owned by this value alone (and the kernel); it moves with the
// backend to the thread that owns it and is never shared.
unsafe impl Send for BufRing {}

impl BufRing {
    /// Allocates and registers a ring; `entries` is rounded up to a power of two.
    pub(crate) fn register(ring: &IoUring, entries: u16, buf_len: usize, group: u16) -> io::Result<BufRing> {
        let entries = entries.clamp(1, 1 << 15).next_power_of_two();
        let invalid = |_| io::Error::from_raw_os_error(libc::EINVAL);
        let ring_layout = Layout::from_size_align(usize::from(entries) * std::mem::size_of::<BufRingEntry>(), PAGE)
            .map_err(invalid)?;
        let bufs_layout = Layout::from_size_align(usize::from(entries) * buf_len, PAGE).map_err(invalid)?;
        assert!(buf_len > 0 && buf_len <= u32::MAX as usize, "receive buffer length out of range");
        // SAFETY: both layouts have non-zero size (entries ≥ 1, buf_len ≥ 1).
        let ring_ptr = unsafe { alloc_zeroed(ring_layout) }.cast::<BufRingEntry>();
        // SAFETY: as above.
        let bufs = unsafe { alloc_zeroed(bufs_layout) };
        if ring_ptr.is_null() || bufs.is_null() {
            return Err(io::Error::from(io::ErrorKind::OutOfMemory));
        }
        let mut this = BufRing { ring: ring_ptr, ring_layout, bufs, bufs_layout, entries, buf_len, tail: 0 };
        // SAFETY: the entries stay allocated until Drop, which runs after the ring has been
        // unregistered or the io_uring dropped (the backend declares its ring first).
        unsafe { ring.submitter().register_buf_ring_with_flags(ring_ptr as u64, entries, group, 0)? };
        for bid in 0..entries {
            this.recycle(bid);
        }
        Ok(this)
    }

    /// The first `len` bytes of buffer `bid`, which the kernel has filled and handed back.
    pub(crate) fn filled(&self, bid: u16, len: usize) -> &[u8] {
        assert!(bid < self.entries && len <= self.buf_len, "the kernel returned a buffer of this ring");
        // SAFETY: bid and len are in bounds; the kernel does not write to buffer `bid` until
        // `recycle(bid)` hands it back, and the returned slice borrows `self` so it ends first.
        unsafe { std::slice::from_raw_parts(self.bufs.add(usize::from(bid) * self.buf_len), len) }
    }

    /// Hands buffer `bid` back to the kernel.
    pub(crate) fn recycle(&mut self, bid: u16) {
        assert!(bid < self.entries, "buffer id out of range");
        let index = usize::from(self.tail & (self.entries - 1));
        // SAFETY: index < entries; the entry at the tail is not visible to the kernel until the
        // tail store below, so writing it races with nothing.
        let entry = unsafe { &mut *self.ring.add(index) };
        // SAFETY: bid < entries, so the address is inside the buffer allocation.
        entry.set_addr(unsafe { self.bufs.add(usize::from(bid) * self.buf_len) } as u64);
        entry.set_len(self.buf_len as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field lives in the first entry, which is allocated and aligned for
        // u16; the kernel reads it with an acquire load, so a release store publishes the entry.
        let tail = unsafe { &*(BufRingEntry::tail(self.ring).cast::<AtomicU16>()) };
        tail.store(self.tail, Ordering::Release);
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with exactly these layouts, freed once.
        unsafe {
            dealloc(self.ring.cast(), self.ring_layout);
            dealloc(self.bufs, self.bufs_layout);
        }
    }
}
