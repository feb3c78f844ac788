//! A cross-thread waker. The io_uring backend keeps a read in flight on an eventfd it owns;
//! the mio backend uses `mio::Waker` (an eventfd registered with its epoll instance). Either
//! way `wake` never blocks, and wakes that arrive before the backend looks coalesce into one
//! [`super::IoEvent::Wake`].

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

/// Wakes a backend's `poll` from any thread. Cheap to clone; outlives the backend harmlessly.
#[derive(Clone, Debug)]
pub struct Waker {
    inner: Inner,
}

#[derive(Clone, Debug)]
enum Inner {
    EventFd(Arc<OwnedFd>),
    Mio(Arc<mio::Waker>),
}

impl Waker {
    /// A waker over a new non-blocking, close-on-exec eventfd (io_uring backend).
    pub(crate) fn eventfd() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; the result is checked before use.
        let raw = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Waker { inner: Inner::EventFd(Arc::new(fd)) })
    }

    /// A waker over mio's waker (mio backend).
    pub(crate) fn mio(waker: mio::Waker) -> Waker {
        Waker { inner: Inner::Mio(Arc::new(waker)) }
    }

    /// Wakes the backend. Never blocks; wakes coalesce.
    pub fn wake(&self) {
        match &self.inner {
            Inner::EventFd(fd) => {
                let one: u64 = 1;
                // SAFETY: writes 8 bytes from a live u64 to an eventfd we own. The only failure
                // is EAGAIN when the counter is saturated, and then a wake is pending anyway.
                unsafe { libc::write(fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
            }
            Inner::Mio(waker) => {
                // Fails only if the eventfd is gone, i.e. the backend is closed: nothing to wake.
                let _ = waker.wake();
            }
        }
    }

    /// The eventfd the io_uring backend reads (its counter resets on each read).
    pub(crate) fn raw_fd(&self) -> Option<RawFd> {
        match &self.inner {
            Inner::EventFd(fd) => Some(fd.as_raw_fd()),
            Inner::Mio(_) => None,
        }
    }
}
