//! The mio (epoll) backend: the fallback where io_uring is unavailable, and the baseline the
//! io_uring backend is measured against.
//!
//! Edge-triggered readiness: a readable socket is read until `WouldBlock` into one receive
//! buffer owned by the backend and lent to the sink; sends are queued by `send` and written
//! at the start of the next `poll` (one pass over the connections that have new bytes), then
//! on each writable edge until the queue is empty or the socket would block.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use super::conn_table::{ConnId, ConnTable};
use super::send_queue::{SendPool, SendQueue};
use super::{
    is_accept_resource_error, Backend, BackendKind, IoConfig, IoEvent, IoStats, SendError, Waker, ACCEPT_RETRY_DELAY,
};

const WAKER_TOKEN: Token = Token(usize::MAX);
const LISTENER_BIT: usize = 1 << 62;
const EVENTS_PER_POLL: usize = 1024;

struct MioConn {
    stream: TcpStream,
    connecting: bool,
    /// In the `dirty` list: has bytes to write at the next poll.
    dirty: bool,
    queue: SendQueue,
}

/// A mio `Poll` with its listeners and connections.
pub struct MioBackend {
    poll: Poll,
    events: Events,
    listeners: Vec<TcpListener>,
    /// Per listener: paused after a resource error until this instant.
    accept_retry_at: Vec<Option<Instant>>,
    conns: ConnTable<MioConn>,
    dirty: Vec<ConnId>,
    /// Connections closed by `close`, reported at the next poll.
    closed: Vec<ConnId>,
    pool: SendPool,
    /// Send queues of closed connections, reused by new ones.
    spare_queues: Vec<SendQueue>,
    recv_buf: Box<[u8]>,
    waker: Waker,
    max_send_queue_bytes: usize,
    stats: IoStats,
}

impl MioBackend {
    /// Opens a mio backend; `fallback_reason` says why io_uring is not in use, if it was wanted.
    pub fn new(config: &IoConfig, fallback_reason: Option<String>) -> io::Result<MioBackend> {
        assert!(config.recv_buffer_len > 0 && config.max_send_queue_bytes > 0, "buffer sizes must be positive");
        let poll = Poll::new()?;
        let waker = Waker::mio(mio::Waker::new(poll.registry(), WAKER_TOKEN)?);
        let stats = IoStats { kind: Some(BackendKind::Mio), fallback_reason, ..IoStats::default() };
        Ok(MioBackend {
            poll,
            events: Events::with_capacity(EVENTS_PER_POLL),
            listeners: Vec::new(),
            accept_retry_at: Vec::new(),
            conns: ConnTable::with_capacity(config.max_connections),
            dirty: Vec::with_capacity(config.max_connections),
            closed: Vec::with_capacity(config.max_connections),
            pool: SendPool::new(),
            spare_queues: Vec::with_capacity(config.max_connections),
            recv_buf: vec![0u8; config.recv_buffer_len].into_boxed_slice(),
            waker,
            max_send_queue_bytes: config.max_send_queue_bytes,
            stats,
        })
    }

    fn add_conn(&mut self, mut stream: TcpStream, connecting: bool) -> io::Result<ConnId> {
        // Frames are small and latency matters more than segment count.
        let _ = stream.set_nodelay(true);
        // Queues of closed connections are reused: accepting allocates nothing in steady state.
        let queue = self.spare_queues.pop().unwrap_or_else(|| SendQueue::new(self.max_send_queue_bytes));
        let Some(index) = self.conns.next_index() else {
            return Err(io::Error::other("max_connections reached"));
        };
        let interest = Interest::READABLE | Interest::WRITABLE;
        self.poll.registry().register(&mut stream, Token(index as usize), interest)?;
        let conn = MioConn { stream, connecting, dirty: false, queue };
        let id = self.conns.insert_with(|_| conn).expect("room was checked");
        debug_assert_eq!(id.index(), index, "the slot predicted is the slot used");
        self.stats.connections_open = self.conns.len() as u64;
        Ok(id)
    }

    fn drop_conn(&mut self, id: ConnId) {
        if let Some(mut conn) = self.conns.remove(id) {
            let _ = self.poll.registry().deregister(&mut conn.stream);
            conn.queue.reset(&mut self.pool);
            self.spare_queues.push(conn.queue);
        }
        self.stats.connections_open = self.conns.len() as u64;
    }

    fn accept_all(&mut self, listener_index: usize, sink: &mut dyn FnMut(IoEvent<'_>)) {
        loop {
            let accepted = match self.listeners.get(listener_index) {
                Some(listener) => listener.accept(),
                None => return,
            };
            match accepted {
                Ok((stream, peer)) => {
                    self.stats.submissions += 1;
                    if self.conns.is_full() {
                        self.stats.connections_refused += 1;
                        continue; // Dropping the stream closes it.
                    }
                    if let Ok(conn) = self.add_conn(stream, false) {
                        self.stats.connections_accepted += 1;
                        sink(IoEvent::Accepted { conn, peer });
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) if error.raw_os_error().is_some_and(is_accept_resource_error) => {
                    // The backlog keeps the connection; epoll will not report it again
                    // (edge-triggered), so `poll` retries after a pause.
                    self.accept_retry_at[listener_index] = Some(Instant::now() + ACCEPT_RETRY_DELAY);
                    return;
                }
                // The connection was reset while queued: it is lost, the listener lives on.
                Err(error) if error.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(_) => return,
            }
        }
    }

    /// Finishes a non-blocking connect; returns false if the connection is gone.
    fn finish_connect(&mut self, id: ConnId, sink: &mut dyn FnMut(IoEvent<'_>)) -> bool {
        let Some(conn) = self.conns.get_mut(id) else { return false };
        let error = match conn.stream.take_error() {
            Ok(Some(error)) | Err(error) => Some(error),
            Ok(None) => match conn.stream.peer_addr() {
                Ok(_) => None,
                Err(error) if error.kind() == io::ErrorKind::NotConnected => return true, // Not yet.
                Err(error) => Some(error),
            },
        };
        match error {
            Some(error) => {
                self.drop_conn(id);
                sink(IoEvent::ConnectFailed { conn: id, error });
                false
            }
            None => {
                conn.connecting = false;
                sink(IoEvent::Connected { conn: id });
                true
            }
        }
    }

    /// Reads until `WouldBlock`; returns false if the connection closed.
    fn read_all(&mut self, id: ConnId, sink: &mut dyn FnMut(IoEvent<'_>)) -> bool {
        loop {
            let Some(conn) = self.conns.get_mut(id) else { return false };
            self.stats.submissions += 1;
            match conn.stream.read(&mut self.recv_buf) {
                Ok(0) => {
                    self.drop_conn(id);
                    sink(IoEvent::Closed { conn: id, error: None });
                    return false;
                }
                Ok(n) => {
                    self.stats.bytes_in += n as u64;
                    sink(IoEvent::Received { conn: id, data: &self.recv_buf[..n] });
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return true,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.drop_conn(id);
                    sink(IoEvent::Closed { conn: id, error: Some(error) });
                    return false;
                }
            }
        }
    }

    /// Writes the queue until empty or `WouldBlock`; reports `Writable` and errors.
    fn flush(&mut self, id: ConnId, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.connecting {
            return;
        }
        while let Some(front) = conn.queue.front() {
            self.stats.submissions += 1;
            match conn.stream.write(front.unsent()) {
                Ok(n) => {
                    self.stats.bytes_out += n as u64;
                    conn.queue.advance(n, &mut self.pool);
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => {
                    self.drop_conn(id);
                    sink(IoEvent::Closed { conn: id, error: Some(error) });
                    return;
                }
            }
        }
        if conn.queue.refused && conn.queue.queued() < self.max_send_queue_bytes / 2 {
            conn.queue.refused = false;
            sink(IoEvent::Writable { conn: id });
        }
    }

    fn flush_dirty(&mut self, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            if let Some(conn) = self.conns.get_mut(id) {
                conn.dirty = false;
                self.flush(id, sink);
            }
        }
        dirty.clear();
        self.dirty = dirty; // Keeps the capacity: no allocation per poll.
    }

    /// One `epoll_wait`, then the readiness events.
    fn wait_and_dispatch(&mut self, wait: Option<Duration>, sink: &mut dyn FnMut(IoEvent<'_>)) -> io::Result<()> {
        let mut events = std::mem::replace(&mut self.events, Events::with_capacity(0));
        self.stats.syscalls += 1;
        let waited = match self.poll.poll(&mut events, wait) {
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
            other => other,
        };
        for event in events.iter() {
            let writable = event.is_writable() || event.is_error();
            let readable = event.is_readable() || event.is_read_closed() || event.is_error();
            self.dispatch(event.token(), readable, writable, sink);
        }
        self.events = events; // Keeps the capacity: no allocation per poll.
        waited
    }

    /// Accepts on the listeners whose pause is over; returns the earliest pause still running.
    fn resume_listeners(&mut self, now: Instant, sink: &mut dyn FnMut(IoEvent<'_>)) -> Option<Instant> {
        let mut next = None;
        for index in 0..self.accept_retry_at.len() {
            match self.accept_retry_at[index] {
                Some(at) if at <= now => {
                    self.accept_retry_at[index] = None;
                    self.accept_all(index, sink);
                }
                Some(at) => next = Some(next.map_or(at, |n: Instant| n.min(at))),
                None => {}
            }
        }
        next
    }

    fn dispatch(&mut self, token: Token, readable: bool, writable: bool, sink: &mut dyn FnMut(IoEvent<'_>)) {
        if token == WAKER_TOKEN {
            // mio's waker is edge-triggered: one event per batch of wakes, nothing to drain.
            sink(IoEvent::Wake);
            return;
        }
        if token.0 & LISTENER_BIT != 0 {
            self.accept_all(token.0 & !LISTENER_BIT, sink);
            return;
        }
        let Some(id) = self.conns.id_at(token.0 as u32) else { return };
        let connecting = self.conns.get(id).is_some_and(|conn| conn.connecting);
        if connecting && !self.finish_connect(id, sink) {
            return;
        }
        if readable && !self.read_all(id, sink) {
            return;
        }
        if writable || connecting {
            self.flush(id, sink);
        }
    }
}

impl Backend for MioBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Mio
    }

    fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let mut listener = TcpListener::bind(addr)?;
        let token = Token(LISTENER_BIT | self.listeners.len());
        self.poll.registry().register(&mut listener, token, Interest::READABLE)?;
        let bound = listener.local_addr()?;
        self.listeners.push(listener);
        self.accept_retry_at.push(None);
        Ok(bound)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        if self.conns.is_full() {
            return Err(io::Error::other("max_connections reached"));
        }
        self.stats.submissions += 1;
        let stream = TcpStream::connect(addr)?;
        self.add_conn(stream, true)
    }

    fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let max = self.max_send_queue_bytes;
        let conn = self.conns.get_mut(id).ok_or(SendError::Unknown)?;
        if conn.queue.queued() + bytes.len() > max {
            conn.queue.refused = true;
            return Err(SendError::Full);
        }
        conn.queue.push(bytes, &mut self.pool);
        if !conn.dirty {
            conn.dirty = true;
            self.dirty.push(id);
        }
        Ok(())
    }

    fn queued_bytes(&self, id: ConnId) -> usize {
        self.conns.get(id).map_or(0, |conn| conn.queue.queued())
    }

    fn close(&mut self, id: ConnId) {
        if self.conns.get(id).is_some() {
            self.drop_conn(id);
            self.closed.push(id);
        }
    }

    fn poll(&mut self, timeout: Option<Duration>, sink: &mut dyn FnMut(IoEvent<'_>)) -> io::Result<()> {
        let delivered = std::cell::Cell::new(0usize);
        let mut counting = |event: IoEvent<'_>| {
            delivered.set(delivered.get() + 1);
            sink(event)
        };
        self.flush_dirty(&mut counting);
        for id in self.closed.drain(..) {
            counting(IoEvent::Closed { conn: id, error: None });
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let now = Instant::now();
            let resume_at = self.resume_listeners(now, &mut counting);
            let remaining = deadline.map(|d| d.saturating_duration_since(now));
            // Wait until the deadline, or until a paused listener resumes (then wait on).
            let resume = resume_at.map(|at| at.saturating_duration_since(now));
            let wait = match (remaining, resume) {
                _ if delivered.get() > 0 => Some(Duration::ZERO),
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.wait_and_dispatch(wait, &mut counting)?;
            if delivered.get() > 0 || deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
        }
    }

    fn waker(&self) -> Waker {
        self.waker.clone()
    }

    fn stats(&self) -> IoStats {
        self.stats.clone()
    }
}
