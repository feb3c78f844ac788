//! A raw TCP client against a running node (issue 6, "Bad input"): garbage before and
//! after the handshake, a frame announcing 4 GiB, a slowloris client, a handshake flood,
//! an unknown key while an allowlist is set. After each, the node is still up, still
//! serves an honest peer, counts the case in its metrics, and its memory stays bounded.
//!
//! Reproduce with `cargo test --test engine_bad_input -- --nocapture`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bhsync::engine::io::BackendChoice;
use bhsync::engine::metrics::EngineMetrics;
use bhsync::node::{Limits, Node, NodeConfig};
use bhsync::wire::{FrameHeader, FrameKind, Identity, Session, WireConfig};

fn secret(index: u8) -> [u8; 32] {
    let mut secret = [9u8; 32];
    secret[1] = index;
    secret
}

fn config(index: u8, encryption: bool) -> NodeConfig {
    NodeConfig {
        identity_secret: Some(secret(index)),
        encryption,
        io_backend: BackendChoice::Auto,
        limits: Limits {
            handshake_timeout: Duration::from_millis(400),
            idle_timeout: Duration::from_millis(900),
            ..Limits::default()
        },
        ..NodeConfig::default()
    }
}

/// A node under attack and an honest peer connected to it.
struct Fixture {
    target: Node,
    honest: Node,
}

impl Fixture {
    fn new(target: NodeConfig, encryption: bool) -> Fixture {
        let target = Node::open(target).expect("target node");
        let mut honest = config(2, encryption);
        honest.peers = vec![target.local_addr()];
        let honest = Node::open(honest).expect("honest node");
        wait_until("the honest peer connects", || !target.peers().expect("peers").is_empty());
        Fixture { target, honest }
    }

    fn metrics(&self) -> EngineMetrics {
        self.target.metrics().expect("metrics").engine
    }

    /// The honest peer's write reaches the target: the node still serves.
    fn assert_still_serving(&self, tag: &str) {
        let key = format!("after-{tag}");
        self.honest.put("default", key.as_bytes(), b"still here").expect("put");
        wait_until(&format!("the honest write after {tag} arrives"), || {
            self.target.get("default", key.as_bytes()).expect("get").is_some()
        });
    }
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether the node closed the connection within `limit` (reads until EOF or error).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let start = Instant::now();
    let mut buffer = [0u8; 4096];
    while start.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(error)
                if error.kind() == std::io::ErrorKind::WouldBlock || error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Runs a real handshake as `identity` over a blocking socket; returns the socket and
/// the established session (or the session's error).
fn handshake(addr: SocketAddr, identity: &Identity, plaintext: bool) -> Result<(TcpStream, Session), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let wire = WireConfig { plaintext, ..WireConfig::default() };
    let mut session = Session::initiator(identity, &wire).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    let mut buffer = [0u8; 4096];
    while !session.is_established() {
        while session.poll_transmit(&mut out) {
            stream.write_all(&out).map_err(|e| e.to_string())?;
            out.clear();
        }
        let n = stream.read(&mut buffer).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed by the node".into());
        }
        session.handle_bytes(&buffer[..n]).map_err(|e| e.to_string())?;
    }
    while session.poll_transmit(&mut out) {
        stream.write_all(&out).map_err(|e| e.to_string())?;
        out.clear();
    }
    Ok((stream, session))
}

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn garbage_before_the_handshake_is_refused_and_counted() {
    let fixture = Fixture::new(config(1, true), true);
    for seed in 1..=5 {
        let mut stream = TcpStream::connect(fixture.target.local_addr()).expect("connect");
        stream.write_all(&garbage(2048, seed)).ok();
        assert!(closed_within(&mut stream, Duration::from_secs(3)), "garbage seed {seed}: the node kept the link");
    }
    wait_until("the failures are counted", || fixture.metrics().handshakes_failed >= 5);
    fixture.assert_still_serving("garbage before the handshake");
}

#[test]
fn garbage_after_the_handshake_disconnects_the_peer() {
    let fixture = Fixture::new(config(1, true), true);
    let intruder = Identity::from_secret(secret(77));
    let (mut stream, _session) = handshake(fixture.target.local_addr(), &intruder, false).expect("handshake");
    // More than one largest Noise message (65,535 bytes), so the garbage cannot pass for
    // the start of a message still arriving.
    stream.write_all(&garbage(128 << 10, 42)).ok();
    assert!(closed_within(&mut stream, Duration::from_secs(3)), "the node kept a link that sent garbage");
    wait_until("the bad frame is counted", || fixture.metrics().bad_frames >= 1);
    fixture.assert_still_serving("garbage after the handshake");
}

#[test]
fn a_peer_stalling_in_the_middle_of_a_message_is_cut_when_idle() {
    let fixture = Fixture::new(config(1, true), true);
    let intruder = Identity::from_secret(secret(79));
    let (mut stream, _session) = handshake(fixture.target.local_addr(), &intruder, false).expect("handshake");
    // A length prefix announcing a full Noise message, a few bytes of it, then silence.
    stream.write_all(&[0xff, 0xff, 1, 2, 3]).expect("partial message");
    assert!(closed_within(&mut stream, Duration::from_secs(5)), "a stalled peer kept its link");
    wait_until("the idle timeout is counted", || fixture.metrics().idle_timeouts >= 1);
    fixture.assert_still_serving("a stalled peer");
}

#[test]
fn a_frame_announcing_4_gib_is_refused_without_allocating_it() {
    // Plaintext transport, so the test can write a raw header; the encrypted path runs
    // the same frame decoder after decryption.
    let fixture = Fixture::new(config(1, false), false);
    let before = resident_bytes();
    let intruder = Identity::from_secret(secret(78));
    let (mut stream, _session) = handshake(fixture.target.local_addr(), &intruder, true).expect("handshake");
    let header = FrameHeader::new(FrameKind::Data, 0, u32::MAX);
    stream.write_all(header.as_bytes()).expect("write header");
    stream.write_all(&[0u8; 1024]).ok();
    assert!(closed_within(&mut stream, Duration::from_secs(3)), "the node kept a link announcing 4 GiB");
    wait_until("the oversized frame is counted", || fixture.metrics().bad_frames >= 1);
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 256 << 20, "memory grew by {grown} bytes after a 4 GiB announcement");
    fixture.assert_still_serving("a 4 GiB frame");
}

#[test]
fn a_slowloris_client_is_cut_at_the_handshake_deadline() {
    let fixture = Fixture::new(config(1, true), true);
    let mut stream = TcpStream::connect(fixture.target.local_addr()).expect("connect");
    // A valid-looking length prefix, then one byte at a time, never finishing.
    stream.write_all(&[0x00, 0x40]).expect("prefix");
    let start = Instant::now();
    let mut cut = false;
    while start.elapsed() < Duration::from_secs(5) {
        if stream.write_all(&[0x55]).is_err() || closed_within(&mut stream, Duration::from_millis(100)) {
            cut = true;
            break;
        }
    }
    assert!(cut, "a client trickling its handshake was never cut");
    wait_until("the timeout is counted", || fixture.metrics().handshake_timeouts >= 1);
    fixture.assert_still_serving("a slowloris client");
}

#[test]
fn a_handshake_flood_is_rate_limited_and_honest_peers_keep_syncing() {
    let fixture = Fixture::new(config(1, true), true);
    let before = resident_bytes();
    let mut streams = Vec::new();
    for seed in 0..300u64 {
        if let Ok(mut stream) = TcpStream::connect(fixture.target.local_addr()) {
            stream.write_all(&garbage(64, seed + 1)).ok();
            streams.push(stream);
        }
    }
    wait_until("refusals are counted", || fixture.metrics().refused_handshake_rate > 0);
    fixture.assert_still_serving("a handshake flood");
    drop(streams);
    let grown = resident_bytes().saturating_sub(before);
    assert!(grown < 128 << 20, "memory grew by {grown} bytes during the flood");
    let metrics = fixture.metrics();
    eprintln!("after the flood: {metrics:?}");
}

#[test]
fn an_unknown_key_is_refused_while_an_allowlist_is_set() {
    let honest_id = Identity::from_secret(secret(2)).node_id();
    let mut target = config(1, true);
    target.allowlist = Some(vec![honest_id]);
    let fixture = Fixture::new(target, true);
    let stranger = Identity::from_secret(secret(99));
    // The handshake may fail outright, or the initiator may finish before the responder
    // reads its last message; then the node closes the link as soon as it does.
    if let Ok((mut stream, mut session)) = handshake(fixture.target.local_addr(), &stranger, false) {
        session.send_frame(FrameKind::Ping, b"hello?").ok();
        let mut out = Vec::new();
        while session.poll_transmit(&mut out) {
            stream.write_all(&out).ok();
            out.clear();
        }
        assert!(closed_within(&mut stream, Duration::from_secs(3)), "a stranger kept its link");
    }
    wait_until("the refusal is counted", || fixture.metrics().refused_allowlist >= 1);
    assert!(fixture.target.peers().expect("peers").iter().all(|peer| *peer == honest_id));
    fixture.assert_still_serving("a stranger's handshake");
}
