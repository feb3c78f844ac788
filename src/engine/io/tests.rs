//! One test suite, run against both backends (`suite!` instantiates it per backend): every
//! behaviour the engine loop relies on, over real loopback sockets. A failure names the backend;
//! reproduce with `cargo test --lib engine::io::tests::<backend>::<test>`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use super::*;

/// An owned copy of an [`IoEvent`], so tests can keep what they saw.
#[derive(Debug)]
enum Seen {
    Accepted(ConnId),
    Connected(ConnId),
    ConnectFailed(ConnId, io::ErrorKind),
    Received(ConnId, Vec<u8>),
    Writable(ConnId),
    Closed(ConnId, Option<io::ErrorKind>),
    Wake,
}

/// A backend to run the suite against: mio, io_uring with every feature the probe finds, and
/// io_uring restricted to the single-shot operations of kernels before 5.19.
#[derive(Copy, Clone, Debug)]
enum Flavor {
    Mio,
    IoUring,
    IoUringSingleShot,
}

const LIMIT: Duration = Duration::from_secs(10);

struct Harness {
    backend: Box<dyn Backend>,
    seen: Vec<Seen>,
}

impl Harness {
    fn open(flavor: Flavor) -> Harness {
        Harness::with_config(flavor, IoConfig::default())
    }

    fn with_config(flavor: Flavor, config: IoConfig) -> Harness {
        let opened: io::Result<Box<dyn Backend>> = match flavor {
            Flavor::Mio => open_backend(&IoConfig { choice: BackendChoice::Mio, ..config }),
            Flavor::IoUring => open_backend(&IoConfig { choice: BackendChoice::IoUring, ..config }),
            Flavor::IoUringSingleShot => {
                let basic = uring::ProbeReport { basic_ops: true, ..uring::ProbeReport::default() };
                uring::UringBackend::with_features(&config, basic).map(|b| Box::new(b) as Box<dyn Backend>)
            }
        };
        let backend = opened.unwrap_or_else(|e| panic!("open {flavor:?}: {e}"));
        Harness { backend, seen: Vec::new() }
    }

    fn name(&self) -> &'static str {
        self.backend.stats().kind_name()
    }

    fn poll(&mut self, timeout: Option<Duration>) {
        let seen = &mut self.seen;
        let mut sink = |event: IoEvent<'_>| {
            seen.push(match event {
                IoEvent::Accepted { conn, .. } => Seen::Accepted(conn),
                IoEvent::Connected { conn } => Seen::Connected(conn),
                IoEvent::ConnectFailed { conn, error } => Seen::ConnectFailed(conn, error.kind()),
                IoEvent::Received { conn, data } => Seen::Received(conn, data.to_vec()),
                IoEvent::Writable { conn } => Seen::Writable(conn),
                IoEvent::Closed { conn, error } => Seen::Closed(conn, error.map(|e| e.kind())),
                IoEvent::Wake => Seen::Wake,
            })
        };
        self.backend.poll(timeout, &mut sink).unwrap_or_else(|e| panic!("poll failed: {e}"));
    }

    /// Polls until `done(seen)` holds; panics after [`LIMIT`].
    fn until(&mut self, what: &str, done: impl Fn(&[Seen]) -> bool) {
        let start = Instant::now();
        while !done(&self.seen) {
            assert!(start.elapsed() < LIMIT, "{}: timed out waiting for {what}; saw {:?}", self.name(), self.seen);
            self.poll(Some(Duration::from_millis(50)));
        }
    }

    fn received(&self, conn: ConnId) -> Vec<u8> {
        let mut bytes = Vec::new();
        for seen in &self.seen {
            if let Seen::Received(c, data) = seen {
                if *c == conn {
                    bytes.extend_from_slice(data);
                }
            }
        }
        bytes
    }

    fn accepted(&self) -> Vec<ConnId> {
        self.seen.iter().filter_map(|s| if let Seen::Accepted(c) = s { Some(*c) } else { None }).collect()
    }

    fn closed(&self, conn: ConnId) -> Option<Option<io::ErrorKind>> {
        self.seen.iter().find_map(|s| match s {
            Seen::Closed(c, error) if *c == conn => Some(*error),
            _ => None,
        })
    }

    /// Connects to its own listener; returns (client side, server side).
    fn pair(&mut self, listen: SocketAddr) -> (ConnId, ConnId) {
        let already = self.accepted().len();
        let client = self.backend.connect(listen).expect("connect");
        self.until("connect and accept", |seen| {
            seen.iter().any(|s| matches!(s, Seen::Connected(c) if *c == client))
                && seen.iter().filter(|s| matches!(s, Seen::Accepted(_))).count() > already
        });
        let server = self.accepted()[already];
        (client, server)
    }

    /// Sends all of `bytes`, polling whenever the queue is full.
    fn send_all(&mut self, conn: ConnId, bytes: &[u8]) {
        let start = Instant::now();
        for piece in bytes.chunks(32 * 1024) {
            loop {
                match self.backend.send(conn, piece) {
                    Ok(()) => break,
                    Err(SendError::Full) => self.poll(Some(Duration::from_millis(10))),
                    Err(error) => panic!("{}: send failed: {error}", self.name()),
                }
                assert!(start.elapsed() < LIMIT, "{}: send_all stuck", self.name());
            }
        }
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().expect("literal address")
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

fn echo_over_loopback(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let addr = h.backend.listen(loopback()).expect("listen");
    assert_ne!(addr.port(), 0, "the bound port is returned");
    let (client, server) = h.pair(addr);
    h.backend.send(client, b"hello").expect("send");
    h.until("server receives hello", |seen| {
        seen.iter()
            .filter_map(|s| if let Seen::Received(c, d) = s { (*c == server).then_some(d.len()) } else { None })
            .sum::<usize>()
            >= 5
    });
    assert_eq!(h.received(server), b"hello", "{}", h.name());
    h.backend.send(server, b"hello").expect("echo");
    h.until("client receives echo", |seen| seen.iter().any(|s| matches!(s, Seen::Received(c, _) if *c == client)));
    assert_eq!(h.received(client), b"hello", "{}", h.name());
    let stats = h.backend.stats();
    assert!(stats.bytes_in >= 10 && stats.bytes_out >= 10, "{}: byte counters {stats:?}", h.name());
    assert_eq!(stats.connections_open, 2);
}

fn megabyte_both_directions(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let addr = h.backend.listen(loopback()).expect("listen");
    let (client, server) = h.pair(addr);
    let up = pattern(1 << 20, 1);
    let down = pattern(1 << 20, 2);
    h.send_all(client, &up);
    h.send_all(server, &down);
    let len = |h: &Harness, c: ConnId| h.received(c).len();
    let start = Instant::now();
    while len(&h, server) < up.len() || len(&h, client) < down.len() {
        assert!(start.elapsed() < LIMIT, "{}: transfer stuck", h.name());
        h.poll(Some(Duration::from_millis(50)));
    }
    assert!(h.received(server) == up, "{}: upstream bytes differ", h.name());
    assert!(h.received(client) == down, "{}: downstream bytes differ", h.name());
    let stats = h.backend.stats();
    if stats.features.registered_buffer_bytes > 0 {
        assert!(stats.zero_copy_sends > 0, "{}: large sends use the registered buffers: {stats:?}", h.name());
    }
}

fn fifty_connections(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let addr = h.backend.listen(loopback()).expect("listen");
    let clients: Vec<ConnId> = (0..50).map(|_| h.backend.connect(addr).expect("connect")).collect();
    for (i, &client) in clients.iter().enumerate() {
        h.backend.send(client, &[i as u8]).expect("queued before the connection completes");
    }
    h.until("50 accepts and 50 bytes", |seen| {
        seen.iter().filter(|s| matches!(s, Seen::Accepted(_))).count() == 50
            && seen
                .iter()
                .filter_map(|s| if let Seen::Received(_, d) = s { Some(d.len()) } else { None })
                .sum::<usize>()
                >= 50
    });
    for server in h.accepted() {
        let byte = h.received(server);
        assert_eq!(byte.len(), 1, "{}: one byte per connection", h.name());
        h.backend.send(server, &byte).expect("echo");
    }
    h.until("50 echoes", |seen| {
        seen.iter().filter(|s| matches!(s, Seen::Received(c, _) if clients.contains(c))).count() >= 50
    });
    for (i, &client) in clients.iter().enumerate() {
        assert_eq!(h.received(client), vec![i as u8], "{}: connection {i} got its own byte back", h.name());
    }
    assert_eq!(h.backend.stats().connections_open, 100);
}

fn peer_close_is_detected(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let addr = h.backend.listen(loopback()).expect("listen");
    let mut peer = TcpStream::connect(addr).expect("std connect");
    h.until("accept", |seen| seen.iter().any(|s| matches!(s, Seen::Accepted(_))));
    let server = h.accepted()[0];
    peer.write_all(b"bye").expect("write");
    drop(peer);
    h.until("closed", |seen| seen.iter().any(|s| matches!(s, Seen::Closed(c, _) if *c == server)));
    assert_eq!(h.received(server), b"bye", "{}: bytes before the close arrive first", h.name());
    assert_eq!(h.closed(server), Some(None), "{}: an orderly close carries no error", h.name());
    assert_eq!(h.backend.send(server, b"x"), Err(SendError::Unknown), "the id is dead");
    assert_eq!(h.backend.stats().connections_open, 0);
}

fn close_with_queued_data(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let listener = TcpListener::bind(loopback()).expect("std listen");
    let conn = h.backend.connect(listener.local_addr().expect("addr")).expect("connect");
    let (mut peer, _) = listener.accept().expect("std accept");
    h.until("connected", |seen| seen.iter().any(|s| matches!(s, Seen::Connected(c) if *c == conn)));
    // The peer does not read, so most of this stays queued in the backend.
    let data = pattern(3 << 20, 3);
    for piece in data.chunks(64 * 1024) {
        h.backend.send(conn, piece).expect("within the cap");
    }
    h.poll(Some(Duration::ZERO));
    h.backend.close(conn);
    h.until("closed", |seen| seen.iter().any(|s| matches!(s, Seen::Closed(c, _) if *c == conn)));
    assert_eq!(h.closed(conn), Some(None), "{}: close() reports an orderly close", h.name());
    assert_eq!(h.backend.queued_bytes(conn), 0);
    assert_eq!(h.backend.send(conn, b"x"), Err(SendError::Unknown));
    assert_eq!(h.backend.stats().connections_open, 0);
    // The peer sees a prefix of the data, then end of stream or a reset: never more, never other.
    peer.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut got = Vec::new();
    let _ = peer.read_to_end(&mut got);
    assert!(got.len() <= data.len() && got == data[..got.len()], "{}: the peer got a prefix", h.name());
}

fn back_pressure_refuses_then_releases(flavor: Flavor) {
    let cap = 256 * 1024;
    let mut h = Harness::with_config(flavor, IoConfig { max_send_queue_bytes: cap, ..IoConfig::default() });
    let listener = TcpListener::bind(loopback()).expect("std listen");
    let conn = h.backend.connect(listener.local_addr().expect("addr")).expect("connect");
    let (mut peer, _) = listener.accept().expect("std accept");
    h.until("connected", |seen| seen.iter().any(|s| matches!(s, Seen::Connected(c) if *c == conn)));
    let piece = vec![7u8; 64 * 1024];
    let mut sent = 0usize;
    let start = Instant::now();
    loop {
        match h.backend.send(conn, &piece) {
            Ok(()) => sent += piece.len(),
            Err(SendError::Full) => {
                if h.backend.queued_bytes(conn) + piece.len() > cap {
                    break;
                }
            }
            Err(error) => panic!("{}: {error}", h.name()),
        }
        h.poll(Some(Duration::ZERO));
        assert!(start.elapsed() < LIMIT, "{}: the kernel buffers never filled", h.name());
    }
    assert!(h.backend.queued_bytes(conn) <= cap, "{}: the cap holds", h.name());
    assert_eq!(h.backend.send(conn, &piece), Err(SendError::Full));
    assert!(!h.seen.iter().any(|s| matches!(s, Seen::Writable(_))), "no Writable before draining");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        // Reads until the backend closes, so the peer's own close cannot race the test.
        loop {
            match peer.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    });
    h.until("writable", |seen| seen.iter().any(|s| matches!(s, Seen::Writable(c) if *c == conn)));
    assert!(h.backend.queued_bytes(conn) < cap / 2, "{}: Writable means below half the cap", h.name());
    h.backend.send(conn, &piece).expect("room again after Writable");
    let start = Instant::now();
    while h.backend.queued_bytes(conn) > 0 {
        assert!(start.elapsed() < LIMIT, "{}: never drained", h.name());
        h.poll(Some(Duration::from_millis(10)));
    }
    h.backend.close(conn);
    h.until("closed", |seen| seen.iter().any(|s| matches!(s, Seen::Closed(c, _) if *c == conn)));
    let read = reader.join().expect("reader thread");
    assert_eq!(read, sent + piece.len(), "{}: the peer read every byte accepted by send", h.name());
}

fn waker_from_another_thread(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let waker = h.backend.waker();
    let start = Instant::now();
    let thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        waker.wake();
    });
    while !h.seen.iter().any(|s| matches!(s, Seen::Wake)) {
        assert!(start.elapsed() < LIMIT, "{}: wake never arrived", h.name());
        h.poll(None);
    }
    assert!(start.elapsed() >= Duration::from_millis(40), "{}: woke before the wake", h.name());
    thread.join().expect("waker thread");
    // Wakes may coalesce, never multiply: two wakes give one or two events, then quiet.
    h.seen.clear();
    h.backend.waker().wake();
    h.backend.waker().wake();
    h.poll(Some(Duration::from_millis(200)));
    h.poll(Some(Duration::from_millis(50)));
    let wakes = h.seen.iter().filter(|s| matches!(s, Seen::Wake)).count();
    assert!((1..=2).contains(&wakes), "{}: two wakes, {wakes} events: {:?}", h.name(), h.seen);
    h.seen.clear();
    h.poll(Some(Duration::from_millis(50)));
    assert!(h.seen.is_empty(), "{}: no wake, no event: {:?}", h.name(), h.seen);
}

fn timeout_returns_in_time(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    h.backend.listen(loopback()).expect("listen");
    for wait_ms in [0u64, 30, 100] {
        let start = Instant::now();
        h.poll(Some(Duration::from_millis(wait_ms)));
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(wait_ms.saturating_sub(2)), "{}: returned early: {took:?}", h.name());
        assert!(took < Duration::from_millis(wait_ms + 500), "{}: returned late: {took:?}", h.name());
    }
    assert!(h.seen.is_empty(), "{}: nothing happened, nothing reported: {:?}", h.name(), h.seen);
}

fn connect_to_a_closed_port_fails(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let closed = TcpListener::bind(loopback()).expect("bind").local_addr().expect("addr");
    let conn = h.backend.connect(closed).expect("the attempt starts");
    h.until("connect failure", |seen| seen.iter().any(|s| matches!(s, Seen::ConnectFailed(c, _) if *c == conn)));
    let kind = h.seen.iter().find_map(|s| if let Seen::ConnectFailed(_, k) = s { Some(*k) } else { None });
    assert_eq!(kind, Some(io::ErrorKind::ConnectionRefused), "{}", h.name());
    assert_eq!(h.backend.send(conn, b"x"), Err(SendError::Unknown));
    assert_eq!(h.backend.stats().connections_open, 0);
}

fn stale_ids_are_harmless(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let addr = h.backend.listen(loopback()).expect("listen");
    let (client, _server) = h.pair(addr);
    h.backend.close(client);
    h.until("closed", |seen| seen.iter().any(|s| matches!(s, Seen::Closed(c, _) if *c == client)));
    h.backend.close(client);
    assert_eq!(h.backend.send(client, b"x"), Err(SendError::Unknown));
    assert_eq!(h.backend.queued_bytes(client), 0);
    let (again, _) = h.pair(addr);
    assert_ne!(again, client, "a reused slot has a new generation");
}

fn connections_beyond_the_cap_are_refused(flavor: Flavor) {
    let mut h = Harness::with_config(flavor, IoConfig { max_connections: 2, ..IoConfig::default() });
    let addr = h.backend.listen(loopback()).expect("listen");
    let peers: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(addr).expect("std connect")).collect();
    let start = Instant::now();
    while h.backend.stats().connections_refused < 1 || h.accepted().len() < 2 {
        assert!(start.elapsed() < LIMIT, "{}: expected 2 accepted and 1 refused: {:?}", h.name(), h.backend.stats());
        h.poll(Some(Duration::from_millis(20)));
    }
    assert_eq!(h.accepted().len(), 2, "{}", h.name());
    assert!(h.backend.connect(addr).is_err(), "{}: connect refuses when the table is full", h.name());
    drop(peers);
}

fn dropping_a_backend_with_sends_in_flight_is_prompt(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let listener = TcpListener::bind(loopback()).expect("std listen");
    let conn = h.backend.connect(listener.local_addr().expect("addr")).expect("connect");
    let (mut peer, _) = listener.accept().expect("std accept");
    h.until("connected", |seen| seen.iter().any(|s| matches!(s, Seen::Connected(c) if *c == conn)));
    let data = pattern(3 << 20, 5);
    h.backend.send(conn, &data).expect("within the cap");
    h.poll(Some(Duration::from_millis(20)));
    let start = Instant::now();
    drop(h);
    assert!(start.elapsed() < Duration::from_secs(2), "{flavor:?}: drop took {:?}", start.elapsed());
    peer.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut got = Vec::new();
    let _ = peer.read_to_end(&mut got);
    assert!(got.len() <= data.len() && got == data[..got.len()], "{flavor:?}: the peer got a prefix, then the end");
}

fn a_small_receive_ring_still_delivers_everything(flavor: Flavor) {
    // 4 buffers of 1 KiB: the provided-buffer ring runs dry (ENOBUFS) again and again.
    let config = IoConfig { recv_buffers: 4, recv_buffer_len: 1024, ..IoConfig::default() };
    let mut h = Harness::with_config(flavor, config);
    let addr = h.backend.listen(loopback()).expect("listen");
    let (client, server) = h.pair(addr);
    let data = pattern(256 * 1024, 9);
    h.send_all(client, &data);
    let start = Instant::now();
    while h.received(server).len() < data.len() {
        assert!(start.elapsed() < LIMIT, "{}: stuck at {} bytes", h.name(), h.received(server).len());
        h.poll(Some(Duration::from_millis(20)));
    }
    assert!(h.received(server) == data, "{}: bytes differ", h.name());
    let largest = h.seen.iter().filter_map(|s| if let Seen::Received(_, d) = s { Some(d.len()) } else { None }).max();
    assert!(largest <= Some(1024), "{}: a receive is at most one buffer", h.name());
}

fn echo_over_ipv6_loopback(flavor: Flavor) {
    let mut h = Harness::open(flavor);
    let Ok(addr) = h.backend.listen("[::1]:0".parse().expect("literal")) else {
        eprintln!("skipped: no IPv6 loopback in this environment");
        return;
    };
    let (client, server) = h.pair(addr);
    h.backend.send(client, b"six").expect("send");
    h.until("server receives", |seen| seen.iter().any(|s| matches!(s, Seen::Received(c, _) if *c == server)));
    assert_eq!(h.received(server), b"six", "{}", h.name());
}

macro_rules! suite {
    ($name:ident, $choice:expr) => {
        mod $name {
            use super::*;
            #[test]
            fn echo_over_loopback() {
                super::echo_over_loopback($choice)
            }
            #[test]
            fn megabyte_both_directions() {
                super::megabyte_both_directions($choice)
            }
            #[test]
            fn fifty_connections() {
                super::fifty_connections($choice)
            }
            #[test]
            fn peer_close_is_detected() {
                super::peer_close_is_detected($choice)
            }
            #[test]
            fn close_with_queued_data() {
                super::close_with_queued_data($choice)
            }
            #[test]
            fn back_pressure_refuses_then_releases() {
                super::back_pressure_refuses_then_releases($choice)
            }
            #[test]
            fn waker_from_another_thread() {
                super::waker_from_another_thread($choice)
            }
            #[test]
            fn timeout_returns_in_time() {
                super::timeout_returns_in_time($choice)
            }
            #[test]
            fn connect_to_a_closed_port_fails() {
                super::connect_to_a_closed_port_fails($choice)
            }
            #[test]
            fn a_small_receive_ring_still_delivers_everything() {
                super::a_small_receive_ring_still_delivers_everything($choice)
            }
            #[test]
            fn echo_over_ipv6_loopback() {
                super::echo_over_ipv6_loopback($choice)
            }
            #[test]
            fn stale_ids_are_harmless() {
                super::stale_ids_are_harmless($choice)
            }
            #[test]
            fn connections_beyond_the_cap_are_refused() {
                super::connections_beyond_the_cap_are_refused($choice)
            }
            #[test]
            fn dropping_a_backend_with_sends_in_flight_is_prompt() {
                super::dropping_a_backend_with_sends_in_flight_is_prompt($choice)
            }
        }
    };
}

suite!(mio, Flavor::Mio);
suite!(io_uring, Flavor::IoUring);
suite!(io_uring_single_shot, Flavor::IoUringSingleShot);

#[test]
fn auto_falls_back_to_mio_on_eperm_enosys_einval_and_says_why() {
    for errno in [libc::EPERM, libc::ENOSYS, libc::EINVAL] {
        let config = IoConfig { simulated_uring_setup_errno: Some(errno), ..IoConfig::default() };
        let backend = open_backend(&config).expect("Auto falls back");
        assert_eq!(backend.kind(), BackendKind::Mio);
        let stats = backend.stats();
        assert_eq!(stats.kind_name(), "mio");
        let reason = stats.fallback_reason.expect("the reason is in the stats");
        let expected = io::Error::from_raw_os_error(errno).to_string();
        assert!(reason.contains(&expected), "reason {reason:?} names errno {errno}");
    }
}

#[test]
fn other_setup_errors_and_a_forced_io_uring_do_not_fall_back() {
    let config = IoConfig { simulated_uring_setup_errno: Some(libc::ENOMEM), ..IoConfig::default() };
    assert!(open_backend(&config).is_err(), "ENOMEM is not a reason to fall back");
    let forced = IoConfig { choice: BackendChoice::IoUring, simulated_uring_setup_errno: Some(libc::EPERM), ..config };
    let error = open_backend(&forced).err().expect("a forced io_uring fails");
    assert_eq!(error.raw_os_error(), Some(libc::EPERM));
}

#[test]
fn auto_uses_io_uring_where_the_ring_works_and_reports_the_probe() {
    let backend = open_backend(&IoConfig::default()).expect("open");
    let stats = backend.stats();
    eprintln!("backend {} features {:?} fallback {:?}", backend.kind(), stats.features, stats.fallback_reason);
    if backend.kind() == BackendKind::IoUring {
        assert!(stats.fallback_reason.is_none());
        assert_eq!(stats.features.multishot_recv, stats.features.provided_buffers);
    } else {
        assert!(stats.fallback_reason.is_some(), "a fallback always says why");
    }
    assert_eq!(format!("{}", BackendKind::IoUring), "io_uring");
    assert_eq!(format!("{}", BackendKind::Mio), "mio");
}
