//! The engine's IO layer: TCP listen / connect / send / receive, a waker and a timed wait,
//! behind one [`Backend`] trait with two implementations.
//!
//! - [`uring`]: one io_uring ring per shard (io-uring 0.7). Multishot accept and multishot
//!   recv into a provided-buffer ring where the probe says the ring supports them, single-shot
//!   operations re-armed otherwise; sends from a pool of buffers, the first of them registered
//!   with the ring where RLIMIT_MEMLOCK allows and sent with `SEND_ZC` when large; the poll
//!   timeout is an `IORING_OP_TIMEOUT`; all the submissions of one poll go to the kernel in one
//!   `io_uring_enter`.
//! - [`mio_backend`]: mio's `Poll` (epoll), edge-triggered, reads until `WouldBlock`.
//!
//! [`open_backend`] applies the fallback rule of DESIGN.md §2: `Auto` tries io_uring and
//! falls back to mio when ring setup fails with EPERM, ENOSYS or EINVAL (seccomp, old kernels,
//! `kernel.io_uring_disabled`), and [`IoStats::fallback_reason`] says why. The design follows
//! TigerBeetle's IO layer (one interface, an io_uring and an epoll backend); decisions are in
//! docs/adr/030-io-backends.md.
//!
//! Both backends are single-threaded: one shard thread owns one backend. Other threads reach
//! it only through a [`Waker`]. Received bytes are lent to the event sink, never copied; send
//! buffers come from a pool that grows to its high-water mark and is then reused, so the
//! steady state allocates nothing.

mod buf_ring;
mod conn_table;
pub mod mio_backend;
mod send_queue;
mod sockaddr;
pub mod uring;
mod uring_setup;
mod waker;

#[cfg(test)]
mod tests;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

pub use conn_table::ConnId;
pub use waker::Waker;

/// Which backend [`open_backend`] opens.
#[derive(Copy, Clone, Debug, Eq, PartialEq, Default)]
pub enum BackendChoice {
    /// io_uring, falling back to mio when ring setup fails with EPERM, ENOSYS or EINVAL.
    #[default]
    Auto,
    /// io_uring or an error.
    IoUring,
    /// mio (epoll).
    Mio,
}

/// The backend that runs.
#[derive(Copy, Clone, Debug, Eq, PartialEq, Hash)]
pub enum BackendKind {
    /// An io_uring ring.
    IoUring,
    /// mio over epoll.
    Mio,
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendKind::IoUring => "io_uring",
            BackendKind::Mio => "mio",
        })
    }
}

/// Configuration of one backend (one shard).
#[derive(Clone, Debug)]
pub struct IoConfig {
    /// Which backend to open.
    pub choice: BackendChoice,
    /// Submission queue entries of the ring (rounded up to a power of two by the kernel).
    pub ring_entries: u32,
    /// Length of one receive buffer; a receive delivers at most this many bytes.
    pub recv_buffer_len: usize,
    /// Receive buffers in the provided-buffer ring (rounded up to a power of two, ≤ 32768).
    pub recv_buffers: u16,
    /// Bytes a connection may have queued for sending; `send` refuses beyond.
    pub max_send_queue_bytes: usize,
    /// Connections (incoming and outgoing) open at once; beyond, accepts are closed at once
    /// and `connect` fails.
    pub max_connections: usize,
    /// io_uring: bytes of send buffers to register with the ring (pinned memory, counted
    /// against RLIMIT_MEMLOCK; the backend takes at most a quarter of the limit). 0: none.
    pub registered_send_bytes: usize,
    /// Testing aid: makes io_uring setup fail with this errno, as a seccomp filter or an old
    /// kernel would, so the fallback rule can be shown. `None` in production.
    pub simulated_uring_setup_errno: Option<i32>,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            choice: BackendChoice::Auto,
            ring_entries: 256,
            recv_buffer_len: 16 * 1024,
            recv_buffers: 256,
            max_send_queue_bytes: 4 * 1024 * 1024,
            max_connections: 1024,
            registered_send_bytes: 1024 * 1024,
            simulated_uring_setup_errno: None,
        }
    }
}

/// What the backend reports to the event sink of [`Backend::poll`].
#[derive(Debug)]
pub enum IoEvent<'a> {
    /// A listener accepted a connection.
    Accepted {
        /// The new connection.
        conn: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// An outgoing connection finished connecting.
    Connected {
        /// The connection returned by [`Backend::connect`].
        conn: ConnId,
    },
    /// An outgoing connection failed; its id is dead from now on.
    ConnectFailed {
        /// The connection returned by [`Backend::connect`].
        conn: ConnId,
        /// Why (e.g. `ConnectionRefused`).
        error: io::Error,
    },
    /// Bytes arrived. They are borrowed from the backend's receive buffer, valid during the call.
    Received {
        /// The connection.
        conn: ConnId,
        /// The bytes, in order.
        data: &'a [u8],
    },
    /// The send queue of a connection that refused a send drained below half its cap.
    Writable {
        /// The connection.
        conn: ConnId,
    },
    /// The connection is gone (peer closed, error, or after [`Backend::close`]); its id is dead.
    Closed {
        /// The connection.
        conn: ConnId,
        /// `None` for an orderly close by either side.
        error: Option<io::Error>,
    },
    /// A [`Waker`] was triggered (several wakes may coalesce into one event).
    Wake,
}

/// Why [`Backend::send`] refused bytes.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub enum SendError {
    /// The send queue would exceed `max_send_queue_bytes`; wait for [`IoEvent::Writable`].
    Full,
    /// The connection is closing: its `Closed` event is coming.
    Closed,
    /// No such connection (stale or never issued id).
    Unknown,
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SendError::Full => "send queue full",
            SendError::Closed => "connection closing",
            SendError::Unknown => "unknown connection",
        })
    }
}

impl std::error::Error for SendError {}

/// What the ring supports, found by probing it (io_uring only; all false for mio).
#[derive(Copy, Clone, Debug, Default, Eq, PartialEq)]
pub struct RingFeatures {
    /// `IORING_OP_ACCEPT` with `IORING_ACCEPT_MULTISHOT` is used.
    pub multishot_accept: bool,
    /// `IORING_OP_RECV` multishot with a provided-buffer ring is used.
    pub multishot_recv: bool,
    /// A provided-buffer ring (`IORING_REGISTER_PBUF_RING`) is registered.
    pub provided_buffers: bool,
    /// `IORING_OP_SEND_ZC` is available (large sends from registered buffers use it).
    pub send_zc: bool,
    /// Send buffers registered with `IORING_REGISTER_BUFFERS` (bytes; 0 when none).
    pub registered_buffer_bytes: usize,
}

/// Counters of one backend, for metrics.
#[derive(Clone, Debug, Default)]
pub struct IoStats {
    /// The backend in use ("io_uring" / "mio" via `Display`).
    pub kind: Option<BackendKind>,
    /// Why io_uring is not in use, when `Auto` fell back to mio.
    pub fallback_reason: Option<String>,
    /// The probe results (io_uring).
    pub features: RingFeatures,
    /// Operations submitted (SQEs for io_uring; syscalls that do IO for mio).
    pub submissions: u64,
    /// Calls into the kernel to submit or wait (`io_uring_enter` / `epoll_wait`).
    pub syscalls: u64,
    /// Sends that went out with `SEND_ZC` from a registered buffer (io_uring).
    pub zero_copy_sends: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Connections open now.
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_accepted: u64,
    /// Accepted connections closed at once because `max_connections` was reached.
    pub connections_refused: u64,
}

impl IoStats {
    /// The backend's name, "io_uring" or "mio".
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Some(BackendKind::IoUring) => "io_uring",
            Some(BackendKind::Mio) => "mio",
            None => "none",
        }
    }
}

/// One shard's IO: TCP listeners and connections, a waker, a timed wait.
pub trait Backend: Send {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// Listens on `addr` (port 0 allowed); returns the bound address.
    fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr>;
    /// Starts connecting to `addr`; [`IoEvent::Connected`] or [`IoEvent::ConnectFailed`] follows.
    /// Bytes sent before the connection completes are queued.
    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId>;
    /// Copies `bytes` into the connection's send queue (pooled buffers).
    fn send(&mut self, conn: ConnId, bytes: &[u8]) -> Result<(), SendError>;
    /// Bytes queued and not yet acknowledged by the kernel (0 for unknown connections).
    fn queued_bytes(&self, conn: ConnId) -> usize;
    /// Closes the connection, discarding bytes not yet handed to the kernel; a
    /// [`IoEvent::Closed`] with `error: None` follows. A stale id is ignored.
    fn close(&mut self, conn: ConnId);
    /// Submits queued work and waits up to `timeout` (`None`: until an event), calling `sink`
    /// for each event. Returns after the first batch of events or at the timeout.
    fn poll(&mut self, timeout: Option<Duration>, sink: &mut dyn FnMut(IoEvent<'_>)) -> io::Result<()>;
    /// A handle that wakes `poll` from any thread.
    fn waker(&self) -> Waker;
    /// Counters for metrics.
    fn stats(&self) -> IoStats;
}

/// How long a listener pauses after accept failed for lack of resources (EMFILE, ENFILE,
/// ENOBUFS, ENOMEM): retrying at once would spin while the descriptor table is full. Tokio
/// and Go's net package pause likewise; the length is a guess.
pub(crate) const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// True for the accept errors that pause the listener (see [`ACCEPT_RETRY_DELAY`]).
pub(crate) fn is_accept_resource_error(errno: i32) -> bool {
    matches!(errno, libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
}

/// True for the errors after which `Auto` falls back from io_uring to mio.
pub fn is_fallback_error(error: &io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS) | Some(libc::EINVAL))
}

/// Opens the backend `config.choice` asks for, applying the fallback rule for `Auto`.
pub fn open_backend(config: &IoConfig) -> io::Result<Box<dyn Backend>> {
    match config.choice {
        BackendChoice::Mio => Ok(Box::new(mio_backend::MioBackend::new(config, None)?)),
        BackendChoice::IoUring => Ok(Box::new(uring::UringBackend::new(config)?)),
        BackendChoice::Auto => match uring::UringBackend::new(config) {
            Ok(backend) => Ok(Box::new(backend)),
            Err(error) if is_fallback_error(&error) => {
                let reason = format!("io_uring setup failed: {error}");
                Ok(Box::new(mio_backend::MioBackend::new(config, Some(reason))?))
            }
            Err(error) => Err(error),
        },
    }
}
