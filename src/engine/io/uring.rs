//! The io_uring backend: one ring per shard.
//!
//! Every operation is an SQE whose `user_data` names the operation kind, the connection slot
//! and its generation ([`UserData`]), so a completion for a connection that has since closed
//! is recognised and dropped. SQEs are only queued by `listen`, `connect`, `send` and
//! `close`; `poll` hands them to the kernel together with the timer in one
//! `io_uring_enter(submit, wait ≥ 1)`.
//!
//! What the ring supports is found by probing it ([`probe`]), not from the kernel version:
//! multishot accept and multishot recv with a provided-buffer ring where available, single-shot
//! operations re-armed after each completion otherwise (and also if a multishot op is refused
//! with EINVAL at run time).
//!
//! Memory the kernel may touch is never freed while an operation on it is in flight: a
//! connection's slot (with its send queue, its single-shot receive buffer and its connect
//! address) is released only when none of its operations is armed any more. `close` shuts the
//! socket down and cancels the operations, then waits for their completions.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use super::buf_ring::BufRing;
use super::conn_table::{ConnId, ConnTable};
use super::send_queue::{SendPool, SendQueue, SEND_CHUNK_LEN};
use super::sockaddr::{peer_addr, RawAddr};
use super::uring_setup::register_send_chunks;
pub use super::uring_setup::{probe, ProbeReport};
use super::{
    is_accept_resource_error, Backend, BackendKind, IoConfig, IoEvent, IoStats, RingFeatures, SendError, Waker,
    ACCEPT_RETRY_DELAY,
};

/// The buffer group id of the provided-buffer ring.
const RECV_GROUP: u16 = 0;

/// Operation kinds carried in `user_data`.
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
#[repr(u8)]
enum Op {
    Accept = 1,
    Recv = 2,
    Send = 3,
    Connect = 4,
    Wake = 5,
    Timer = 6,
    Cancel = 7,
}

/// `user_data` layout: kind (8 bits) | slot index (24 bits) | generation (32 bits).
#[derive(Copy, Clone, Debug, Eq, PartialEq)]
struct UserData {
    op: Op,
    index: u32,
    generation: u32,
}

impl UserData {
    fn conn(op: Op, id: ConnId) -> u64 {
        UserData { op, index: id.index(), generation: id.generation() }.encode()
    }

    fn encode(self) -> u64 {
        debug_assert!(self.index < (1 << 24), "slot index fits 24 bits");
        u64::from(self.generation) << 32 | u64::from(self.index) << 8 | self.op as u64
    }

    fn decode(raw: u64) -> Option<UserData> {
        let op = match raw & 0xff {
            1 => Op::Accept,
            2 => Op::Recv,
            3 => Op::Send,
            4 => Op::Connect,
            5 => Op::Wake,
            6 => Op::Timer,
            7 => Op::Cancel,
            _ => return None,
        };
        Some(UserData { op, index: ((raw >> 8) & 0xff_ffff) as u32, generation: (raw >> 32) as u32 })
    }
}

#[derive(Copy, Clone, Debug, Eq, PartialEq)]
enum ConnState {
    Connecting,
    Open,
    /// Shut down; the slot is released once no operation is armed.
    Closing,
}

/// How a closing connection is reported once released.
enum Farewell {
    Closed(Option<io::Error>),
    ConnectFailed(io::Error),
}

struct UringConn {
    fd: OwnedFd,
    state: ConnState,
    recv_armed: bool,
    send_armed: bool,
    connect_armed: bool,
    /// The first completion's result of a zero-copy send awaiting its notification.
    zero_copy_result: i32,
    /// Single-shot receive buffer (only without multishot recv).
    recv_buf: Option<Box<[u8]>>,
    /// The destination of an outgoing connect; the kernel reads it while the SQE is submitted.
    connect_addr: Option<Box<RawAddr>>,
    queue: SendQueue,
    farewell: Option<Farewell>,
}

impl UringConn {
    fn armed(&self) -> bool {
        self.recv_armed || self.send_armed || self.connect_armed
    }
}

struct Listener {
    socket: TcpListener,
    /// Peer address of a single-shot accept (boxed: the kernel writes it at completion).
    addr: Box<RawAddr>,
    armed: bool,
    /// Paused after a resource error: re-armed by `poll` from this instant.
    retry_at: Option<Instant>,
}

/// An io_uring ring with its listeners, connections and buffers.
pub struct UringBackend {
    // Field order matters: the ring is dropped (and the kernel's references with it) before
    // the memory it pointed at. `Drop` also drains in-flight operations first.
    ring: IoUring,
    recv_ring: Option<BufRing>,
    listeners: Vec<Listener>,
    conns: ConnTable<UringConn>,
    pool: SendPool,
    /// Connections released, to report at the next reap.
    farewells: Vec<(ConnId, Farewell)>,
    /// Send queues of released connections, reused by new ones.
    spare_queues: Vec<SendQueue>,
    /// SQEs that found the submission queue full while the kernel refused to take more.
    backlog: Vec<squeue::Entry>,
    waker: Waker,
    wake_buf: Box<u64>,
    wake_armed: bool,
    timespec: Box<types::Timespec>,
    timer_seq: u32,
    timer_fired: bool,
    features: RingFeatures,
    recv_buffer_len: usize,
    max_send_queue_bytes: usize,
    stats: IoStats,
}

impl UringBackend {
    /// Sets up a ring, probes it and registers the provided-buffer ring. Fails with the setup
    /// errno (EPERM, ENOSYS, EINVAL, …) or ENOSYS when a required opcode is missing.
    pub fn new(config: &IoConfig) -> io::Result<UringBackend> {
        let all = ProbeReport { basic_ops: true, multishot_accept: true, multishot_recv: true, send_zc: true };
        UringBackend::with_features(config, all)
    }

    /// Like [`UringBackend::new`], using only the features in `allowed` that the probe also
    /// finds (tests run the single-shot paths of older kernels with this).
    pub(crate) fn with_features(config: &IoConfig, allowed: ProbeReport) -> io::Result<UringBackend> {
        assert!(config.recv_buffer_len > 0 && config.max_send_queue_bytes > 0, "buffer sizes must be positive");
        if let Some(errno) = config.simulated_uring_setup_errno {
            return Err(io::Error::from_raw_os_error(errno));
        }
        let entries = config.ring_entries.max(8);
        let ring = IoUring::builder().setup_cqsize(entries.saturating_mul(4)).build(entries)?;
        let found = probe(&ring)?;
        let report = ProbeReport {
            basic_ops: found.basic_ops,
            multishot_accept: found.multishot_accept && allowed.multishot_accept,
            multishot_recv: found.multishot_recv && allowed.multishot_recv,
            send_zc: found.send_zc && allowed.send_zc,
        };
        if !report.basic_ops {
            return Err(io::Error::from_raw_os_error(libc::ENOSYS));
        }
        let recv_ring = if report.multishot_recv {
            BufRing::register(&ring, config.recv_buffers, config.recv_buffer_len, RECV_GROUP).ok()
        } else {
            None
        };
        let registered =
            if report.send_zc { register_send_chunks(&ring, config.registered_send_bytes) } else { Vec::new() };
        let features = RingFeatures {
            multishot_accept: report.multishot_accept,
            multishot_recv: recv_ring.is_some(),
            provided_buffers: recv_ring.is_some(),
            send_zc: report.send_zc,
            registered_buffer_bytes: registered.len() * SEND_CHUNK_LEN,
        };
        let stats = IoStats { kind: Some(BackendKind::IoUring), features, ..IoStats::default() };
        Ok(UringBackend {
            ring,
            recv_ring,
            listeners: Vec::new(),
            conns: ConnTable::with_capacity(config.max_connections),
            pool: SendPool::with_chunks(registered),
            farewells: Vec::with_capacity(config.max_connections),
            backlog: Vec::new(),
            spare_queues: Vec::with_capacity(config.max_connections),
            waker: Waker::eventfd()?,
            wake_buf: Box::new(0),
            wake_armed: false,
            timespec: Box::new(types::Timespec::new()),
            timer_seq: 0,
            timer_fired: false,
            features,
            recv_buffer_len: config.recv_buffer_len,
            max_send_queue_bytes: config.max_send_queue_bytes,
            stats,
        })
    }

    /// Queues one SQE. When the submission queue is full, submits what is queued; if the
    /// kernel refuses (EBUSY: completions must be reaped first), the SQE waits in the backlog
    /// until the next poll (cold path).
    fn push(&mut self, entry: squeue::Entry) {
        self.stats.submissions += 1;
        if self.backlog.is_empty() && self.try_push(&entry) {
            return;
        }
        self.stats.syscalls += 1;
        let _ = self.ring.submit();
        if self.backlog.is_empty() && self.try_push(&entry) {
            return;
        }
        self.backlog.push(entry);
    }

    fn try_push(&mut self, entry: &squeue::Entry) -> bool {
        // SAFETY: every entry built by this backend points only at memory that outlives the
        // operation (see the module doc); the call sites say which.
        unsafe { self.ring.submission().push(entry) }.is_ok()
    }

    /// Moves SQEs that did not fit earlier into the submission queue.
    fn push_backlog(&mut self) {
        while !self.backlog.is_empty() {
            let entry = self.backlog[0].clone();
            if !self.try_push(&entry) {
                return;
            }
            self.backlog.remove(0);
        }
    }

    fn arm_accept(&mut self, index: usize) {
        let Some(listener) = self.listeners.get_mut(index) else { return };
        if listener.armed {
            return;
        }
        listener.armed = true;
        let fd = types::Fd(listener.socket.as_raw_fd());
        let user_data = UserData { op: Op::Accept, index: index as u32, generation: 0 }.encode();
        let entry = if self.features.multishot_accept {
            opcode::AcceptMulti::new(fd).flags(libc::SOCK_CLOEXEC).build()
        } else {
            listener.addr.len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            let addr = (&mut listener.addr.storage as *mut libc::sockaddr_storage).cast();
            // The address lives in the listener's box, which lives as long as the backend.
            opcode::Accept::new(fd, addr, &mut listener.addr.len).flags(libc::SOCK_CLOEXEC).build()
        };
        self.push(entry.user_data(user_data));
    }

    fn arm_recv(&mut self, id: ConnId) {
        let multishot = self.features.multishot_recv;
        let recv_buffer_len = self.recv_buffer_len;
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.recv_armed || conn.state != ConnState::Open {
            return;
        }
        conn.recv_armed = true;
        let fd = types::Fd(conn.fd.as_raw_fd());
        let entry = if multishot {
            opcode::RecvMulti::new(fd, RECV_GROUP).build()
        } else {
            let buf = conn.recv_buf.get_or_insert_with(|| vec![0u8; recv_buffer_len].into_boxed_slice());
            // The buffer lives in the connection, which is not released while recv is armed.
            opcode::Recv::new(fd, buf.as_mut_ptr(), buf.len() as u32).build()
        };
        self.push(entry.user_data(UserData::conn(Op::Recv, id)));
    }

    fn arm_send(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.send_armed || conn.state != ConnState::Open {
            return;
        }
        let Some(front) = conn.queue.front() else { return };
        let bytes = front.unsent();
        let len = bytes.len().min(u32::MAX as usize);
        let fd = types::Fd(conn.fd.as_raw_fd());
        // The chunk stays in the queue (and the queue in the connection) until this send's
        // last completion; bytes pushed meanwhile go to other chunks.
        let entry = match front.registered {
            Some(index) if len >= ZERO_COPY_MIN_BYTES => {
                self.stats.zero_copy_sends += 1;
                opcode::SendZc::new(fd, bytes.as_ptr(), len as u32)
                    .buf_index(Some(index))
                    .flags(libc::MSG_NOSIGNAL)
                    .build()
            }
            _ => opcode::Send::new(fd, bytes.as_ptr(), len as u32).flags(libc::MSG_NOSIGNAL).build(),
        };
        conn.queue.begin_flight(len);
        conn.send_armed = true;
        self.push(entry.user_data(UserData::conn(Op::Send, id)));
    }

    fn arm_wake(&mut self) {
        if self.wake_armed {
            return;
        }
        let Some(fd) = self.waker.raw_fd() else { return };
        self.wake_armed = true;
        let buf = (&mut *self.wake_buf as *mut u64).cast::<u8>();
        // The 8-byte buffer is boxed in the backend and outlives the read (drained in Drop).
        let entry = opcode::Read::new(types::Fd(fd), buf, 8)
            .build()
            .user_data(UserData { op: Op::Wake, index: 0, generation: 0 }.encode());
        self.push(entry);
    }

    fn arm_timer(&mut self, timeout: Duration) {
        self.timer_seq = self.timer_seq.wrapping_add(1);
        *self.timespec = types::Timespec::from(timeout);
        // count = 1: the timer also ends at the first other completion, so a stale timer
        // never outlives the wait it was armed for. The kernel copies the timespec at submit.
        let entry = opcode::Timeout::new(&*self.timespec)
            .count(1)
            .build()
            .user_data(UserData { op: Op::Timer, index: 0, generation: self.timer_seq }.encode());
        self.push(entry);
    }

    fn cancel(&mut self, target: u64) {
        let user_data = UserData { op: Op::Cancel, index: 0, generation: 0 }.encode();
        self.push(opcode::AsyncCancel::new(target).build().user_data(user_data));
    }

    /// Starts closing: drops unsent bytes, shuts the socket down, cancels armed operations.
    fn begin_close(&mut self, id: ConnId, farewell: Farewell) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        if conn.state == ConnState::Closing {
            return;
        }
        conn.state = ConnState::Closing;
        conn.farewell = Some(farewell);
        conn.queue.discard_unsent(&mut self.pool);
        // SAFETY: shutdown takes no pointers; the descriptor is owned by the connection.
        unsafe { libc::shutdown(conn.fd.as_raw_fd(), libc::SHUT_RDWR) };
        let armed = [(conn.recv_armed, Op::Recv), (conn.send_armed, Op::Send), (conn.connect_armed, Op::Connect)];
        for (is_armed, op) in armed {
            if is_armed {
                self.cancel(UserData::conn(op, id));
            }
        }
        self.try_release(id);
    }

    /// Releases a closing connection once the kernel holds nothing of it.
    fn try_release(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(id) else { return };
        if conn.state != ConnState::Closing || conn.armed() {
            return;
        }
        let Some(mut conn) = self.conns.remove(id) else { return };
        conn.queue.reset(&mut self.pool);
        self.spare_queues.push(conn.queue);
        let farewell = conn.farewell.take().unwrap_or(Farewell::Closed(None));
        self.farewells.push((id, farewell));
        self.stats.connections_open = self.conns.len() as u64;
        // Dropping `conn` closes the descriptor.
    }

    fn add_conn(&mut self, fd: OwnedFd, state: ConnState, connect_addr: Option<Box<RawAddr>>) -> Option<ConnId> {
        // Frames are small and latency matters more than segment count.
        set_nodelay(fd.as_raw_fd());
        // Queues of closed connections are reused: accepting allocates nothing in steady state.
        let queue = self.spare_queues.pop().unwrap_or_else(|| SendQueue::new(self.max_send_queue_bytes));
        let conn = UringConn {
            fd,
            state,
            recv_armed: false,
            send_armed: false,
            connect_armed: false,
            zero_copy_result: 0,
            recv_buf: None,
            connect_addr,
            queue,
            farewell: None,
        };
        let id = self.conns.insert_with(|_| conn)?;
        self.stats.connections_open = self.conns.len() as u64;
        Some(id)
    }

    fn on_accept(&mut self, index: usize, result: i32, flags: u32, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let multishot = self.features.multishot_accept;
        if let Some(listener) = self.listeners.get_mut(index) {
            listener.armed = multishot && cqueue::more(flags);
        }
        if result == -libc::EINVAL && multishot {
            // The probe guessed wrong (a kernel with IORING_OP_SOCKET but no multishot accept).
            self.features.multishot_accept = false;
            self.stats.features.multishot_accept = false;
        }
        if result >= 0 {
            // SAFETY: a non-negative accept result is a new descriptor that nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(result) };
            self.on_accepted(index, fd, multishot, sink);
        }
        if result < 0 && is_accept_resource_error(-result) {
            if let Some(listener) = self.listeners.get_mut(index) {
                if !listener.armed {
                    listener.retry_at = Some(Instant::now() + ACCEPT_RETRY_DELAY);
                }
            }
            return;
        }
        self.arm_accept(index);
    }

    /// Re-arms the listeners whose pause is over; returns the earliest pause still running.
    fn resume_listeners(&mut self, now: Instant) -> Option<Instant> {
        let mut next = None;
        for index in 0..self.listeners.len() {
            match self.listeners[index].retry_at {
                Some(at) if at <= now => {
                    self.listeners[index].retry_at = None;
                    self.arm_accept(index);
                }
                Some(at) => next = Some(next.map_or(at, |n: Instant| n.min(at))),
                None => {}
            }
        }
        next
    }

    fn on_accepted(&mut self, index: usize, fd: OwnedFd, multishot: bool, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let peer = if multishot {
            peer_addr(fd.as_raw_fd())
        } else {
            self.listeners.get(index).map_or(Err(io::ErrorKind::InvalidData.into()), |l| l.addr.to_socket_addr())
        };
        let Ok(peer) = peer else { return }; // Reset before we looked: nothing to report.
        if self.conns.is_full() {
            self.stats.connections_refused += 1;
            return; // Dropping `fd` closes it.
        }
        if let Some(id) = self.add_conn(fd, ConnState::Open, None) {
            self.stats.connections_accepted += 1;
            sink(IoEvent::Accepted { conn: id, peer });
            self.arm_recv(id);
            self.arm_send(id);
        }
    }

    fn on_connect(&mut self, id: ConnId, result: i32, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        conn.connect_armed = false;
        conn.connect_addr = None;
        if conn.state == ConnState::Closing {
            self.try_release(id);
            return;
        }
        if result < 0 {
            self.begin_close(id, Farewell::ConnectFailed(io::Error::from_raw_os_error(-result)));
            return;
        }
        conn.state = ConnState::Open;
        sink(IoEvent::Connected { conn: id });
        self.arm_recv(id);
        self.arm_send(id);
    }

    fn on_recv(&mut self, id: ConnId, result: i32, flags: u32, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        let more = self.features.multishot_recv && cqueue::more(flags);
        conn.recv_armed = more;
        let open = conn.state == ConnState::Open;
        if result > 0 {
            let len = result as usize;
            self.stats.bytes_in += len as u64;
            match (cqueue::buffer_select(flags), self.recv_ring.as_mut()) {
                (Some(bid), Some(ring)) => {
                    if open {
                        sink(IoEvent::Received { conn: id, data: ring.filled(bid, len) });
                    }
                    ring.recycle(bid);
                }
                _ => {
                    let conn = self.conns.get(id).expect("looked up above");
                    if let (true, Some(buf)) = (open, conn.recv_buf.as_deref()) {
                        sink(IoEvent::Received { conn: id, data: &buf[..len.min(buf.len())] });
                    }
                }
            }
        }
        self.after_recv(id, result, more);
    }

    /// Re-arms, closes on end of stream or error, or releases a closing connection.
    fn after_recv(&mut self, id: ConnId, result: i32, more: bool) {
        let Some(conn) = self.conns.get(id) else { return };
        if conn.state == ConnState::Closing {
            self.try_release(id);
            return;
        }
        match result {
            0 => self.begin_close(id, Farewell::Closed(None)),
            r if r > 0 || r == -libc::ENOBUFS || r == -libc::EINTR => {
                if !more {
                    self.arm_recv(id);
                }
            }
            r if r == -libc::EINVAL && self.features.multishot_recv => {
                // Multishot recv refused at run time: go single-shot from now on.
                self.features.multishot_recv = false;
                self.stats.features.multishot_recv = false;
                self.arm_recv(id);
            }
            r => self.begin_close(id, Farewell::Closed(Some(io::Error::from_raw_os_error(-r)))),
        }
    }

    fn on_send(&mut self, id: ConnId, result: i32, flags: u32, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let Some(conn) = self.conns.get_mut(id) else { return };
        // SEND_ZC completes twice: the result (flagged MORE), then a notification once the
        // kernel no longer reads the buffer. The buffer is ours again only after the second.
        if cqueue::more(flags) {
            conn.zero_copy_result = result;
            return;
        }
        let result = if cqueue::notif(flags) { conn.zero_copy_result } else { result };
        conn.send_armed = false;
        let sent = usize::try_from(result).unwrap_or(0).min(conn.queue.in_flight());
        conn.queue.end_flight(sent, &mut self.pool);
        self.stats.bytes_out += sent as u64;
        if conn.state == ConnState::Closing {
            self.try_release(id);
            return;
        }
        if result < 0 {
            self.begin_close(id, Farewell::Closed(Some(io::Error::from_raw_os_error(-result))));
            return;
        }
        if conn.queue.refused && conn.queue.queued() < self.max_send_queue_bytes / 2 {
            conn.queue.refused = false;
            sink(IoEvent::Writable { conn: id });
        }
        self.arm_send(id);
    }

    fn dispatch(&mut self, user_data: u64, result: i32, flags: u32, sink: &mut dyn FnMut(IoEvent<'_>)) {
        let Some(data) = UserData::decode(user_data) else { return };
        let id = ConnId::new(data.index, data.generation);
        match data.op {
            Op::Accept => self.on_accept(data.index as usize, result, flags, sink),
            Op::Recv => self.on_recv(id, result, flags, sink),
            Op::Send => self.on_send(id, result, flags, sink),
            Op::Connect => self.on_connect(id, result, sink),
            Op::Wake => {
                self.wake_armed = false;
                if result > 0 {
                    sink(IoEvent::Wake);
                }
                self.arm_wake();
            }
            Op::Timer => self.timer_fired |= data.generation == self.timer_seq && result == -libc::ETIME,
            Op::Cancel => {}
        }
    }

    /// Handles every completion in the queue, then reports released connections.
    fn reap(&mut self, sink: &mut dyn FnMut(IoEvent<'_>)) {
        loop {
            let next = self.ring.completion().next();
            let Some(cqe) = next else { break };
            self.dispatch(cqe.user_data(), cqe.result(), cqe.flags(), sink);
        }
        for (conn, farewell) in self.farewells.drain(..) {
            match farewell {
                Farewell::Closed(error) => sink(IoEvent::Closed { conn, error }),
                Farewell::ConnectFailed(error) => sink(IoEvent::ConnectFailed { conn, error }),
            }
        }
    }

    /// One `io_uring_enter`: submits everything queued and waits for `want` completions.
    fn enter(&mut self, want: usize) -> io::Result<()> {
        self.push_backlog();
        self.stats.syscalls += 1;
        match self.ring.submit_and_wait(want) {
            Ok(_) => Ok(()),
            Err(error) if matches!(error.raw_os_error(), Some(libc::EINTR) | Some(libc::EBUSY)) => Ok(()),
            Err(error) if error.raw_os_error() == Some(libc::ETIME) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Sends at least this long from a registered buffer go out with `SEND_ZC`: below it, the
/// zero-copy bookkeeping (a second completion, the notification) costs more than the copy it
/// saves (the kernel documentation's advice; the exact threshold is a guess, not measured).
const ZERO_COPY_MIN_BYTES: usize = 16 * 1024;

fn set_nodelay(fd: RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: passes a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// A new TCP socket of `addr`'s family, close-on-exec, blocking (io_uring polls internally).
fn tcp_socket(addr: &SocketAddr) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() { libc::AF_INET } else { libc::AF_INET6 };
    // SAFETY: socket takes no pointers; the result is checked.
    let raw = unsafe { libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

impl Backend for UringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::IoUring
    }

    fn listen(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let socket = TcpListener::bind(addr)?;
        let bound = socket.local_addr()?;
        self.listeners.push(Listener { socket, addr: Box::new(RawAddr::empty()), armed: false, retry_at: None });
        self.arm_accept(self.listeners.len() - 1);
        Ok(bound)
    }

    fn connect(&mut self, addr: SocketAddr) -> io::Result<ConnId> {
        if self.conns.is_full() {
            return Err(io::Error::other("max_connections reached"));
        }
        let fd = tcp_socket(&addr)?;
        let raw_addr = Box::new(RawAddr::from_socket_addr(addr));
        let (addr_ptr, addr_len) = (raw_addr.as_ptr(), raw_addr.len);
        let raw_fd = fd.as_raw_fd();
        let id = self.add_conn(fd, ConnState::Connecting, Some(raw_addr)).expect("room was checked");
        if let Some(conn) = self.conns.get_mut(id) {
            conn.connect_armed = true;
        }
        // The address is boxed in the connection, which is not released while connect is armed.
        let entry = opcode::Connect::new(types::Fd(raw_fd), addr_ptr, addr_len)
            .build()
            .user_data(UserData::conn(Op::Connect, id));
        self.push(entry);
        // Connects are rare: the SYN leaves now rather than at the next poll, as with mio.
        self.stats.syscalls += 1;
        self.ring.submit()?;
        Ok(id)
    }

    fn send(&mut self, id: ConnId, bytes: &[u8]) -> Result<(), SendError> {
        let max = self.max_send_queue_bytes;
        let conn = self.conns.get_mut(id).ok_or(SendError::Unknown)?;
        if conn.state == ConnState::Closing {
            return Err(SendError::Closed);
        }
        if conn.queue.queued() + bytes.len() > max {
            conn.queue.refused = true;
            return Err(SendError::Full);
        }
        conn.queue.push(bytes, &mut self.pool);
        self.arm_send(id);
        Ok(())
    }

    fn queued_bytes(&self, id: ConnId) -> usize {
        self.conns.get(id).map_or(0, |conn| conn.queue.queued())
    }

    fn close(&mut self, id: ConnId) {
        self.begin_close(id, Farewell::Closed(None));
    }

    fn poll(&mut self, timeout: Option<Duration>, sink: &mut dyn FnMut(IoEvent<'_>)) -> io::Result<()> {
        let delivered = std::cell::Cell::new(0usize);
        let mut counting = |event: IoEvent<'_>| {
            delivered.set(delivered.get() + 1);
            sink(event)
        };
        self.push_backlog();
        self.arm_wake();
        self.reap(&mut counting); // Completions left over and connections closed by `close`.
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let now = Instant::now();
            let resume_at = self.resume_listeners(now);
            let remaining = deadline.map(|d| d.saturating_duration_since(now));
            if delivered.get() > 0 || remaining == Some(Duration::ZERO) {
                self.enter(0)?;
                self.reap(&mut counting);
                return Ok(());
            }
            // The timer ends the wait at the deadline, or earlier to resume a paused listener
            // (then the loop goes on waiting).
            let resume = resume_at.map(|at| at.saturating_duration_since(now));
            let wait = match (remaining, resume) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.timer_fired = false;
            if let Some(wait) = wait {
                self.arm_timer(wait);
            }
            self.enter(1)?;
            self.reap(&mut counting);
            if self.timer_fired && deadline.is_some_and(|d| Instant::now() >= d) {
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

impl Drop for UringBackend {
    /// Cancels every operation and waits (bounded) for the completions, so the kernel holds no
    /// pointer into memory that is about to be freed.
    fn drop(&mut self) {
        let ids: Vec<ConnId> = self.conns.ids().collect();
        for id in ids {
            self.begin_close(id, Farewell::Closed(None));
        }
        for index in 0..self.listeners.len() {
            if self.listeners[index].armed {
                self.cancel(UserData { op: Op::Accept, index: index as u32, generation: 0 }.encode());
            }
        }
        if self.wake_armed {
            self.cancel(UserData { op: Op::Wake, index: 0, generation: 0 }.encode());
        }
        let mut ignore = |_: IoEvent<'_>| {};
        for _ in 0..100 {
            let busy = self.conns.len() > 0 || self.wake_armed || self.listeners.iter().any(|l| l.armed);
            if !busy {
                break;
            }
            self.arm_timer(Duration::from_millis(10));
            if self.enter(1).is_err() {
                break;
            }
            // Completions of cancelled operations arrive here; nothing is re-armed because the
            // connections are closing, and listeners and the waker re-arm only below.
            self.reap_for_drop(&mut ignore);
        }
    }
}

impl UringBackend {
    fn reap_for_drop(&mut self, sink: &mut dyn FnMut(IoEvent<'_>)) {
        loop {
            let next = self.ring.completion().next();
            let Some(cqe) = next else { break };
            let Some(data) = UserData::decode(cqe.user_data()) else { continue };
            match data.op {
                Op::Accept => {
                    if let Some(listener) = self.listeners.get_mut(data.index as usize) {
                        listener.armed = cqueue::more(cqe.flags());
                    }
                    if cqe.result() >= 0 {
                        // SAFETY: a non-negative accept result is a descriptor nothing owns.
                        drop(unsafe { OwnedFd::from_raw_fd(cqe.result()) });
                    }
                }
                Op::Wake => self.wake_armed = false,
                _ => self.dispatch(cqe.user_data(), cqe.result(), cqe.flags(), sink),
            }
        }
        self.farewells.clear();
    }
}
