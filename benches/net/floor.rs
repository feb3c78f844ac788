//! The floors the network benchmark compares against, measured in the same run: what
//! the machine does with the same bytes and no protocol at all.
//!
//! - bulk: a plain loopback TCP copy of the entries' bytes, plus one BLAKE3 pass over
//!   the entries on the receiver, plus (encrypted case) one ChaCha20-Poly1305 pass, done
//!   with snow's own cipher state so it is the cipher the sessions use;
//! - latency: half the round trip of a raw TCP ping-pong of a small message.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Copies `data` over a loopback TCP connection; the receiver hashes every
/// `record_len`-byte entry with BLAKE3 and, when `encrypt`, seals every 65,519-byte
/// chunk with ChaCha20-Poly1305 on the sender side. Returns the elapsed time.
pub fn bulk_floor(data: &[u8], record_len: usize, encrypt: bool) -> Duration {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let total = data.len();
    let start = Instant::now();
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut buffer = vec![0u8; 1 << 20];
        let mut pending: Vec<u8> = Vec::with_capacity(record_len);
        let mut received = 0usize;
        let mut checksum = 0u8;
        while received < total {
            let n = stream.read(&mut buffer).expect("read");
            if n == 0 {
                break;
            }
            received += n;
            checksum ^= hash_records(&buffer[..n], record_len, &mut pending);
        }
        checksum
    });
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).ok();
    if encrypt {
        let mut cipher = CipherPair::new();
        let mut sealed = vec![0u8; 65_535];
        for chunk in data.chunks(65_519) {
            let len = cipher.seal(chunk, &mut sealed);
            // The plaintext is what travels, so both cases move the same bytes; the
            // seal is the cost being added.
            std::hint::black_box(&sealed[..len]);
            stream.write_all(chunk).expect("write");
        }
    } else {
        stream.write_all(data).expect("write");
    }
    drop(stream);
    std::hint::black_box(receiver.join().expect("receiver"));
    start.elapsed()
}

fn hash_records(bytes: &[u8], record_len: usize, pending: &mut Vec<u8>) -> u8 {
    let mut checksum = 0u8;
    let mut rest = bytes;
    if !pending.is_empty() {
        let take = (record_len - pending.len()).min(rest.len());
        pending.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        if pending.len() == record_len {
            checksum ^= blake3::hash(pending).as_bytes()[0];
            pending.clear();
        }
    }
    let mut chunks = rest.chunks_exact(record_len);
    for record in &mut chunks {
        checksum ^= blake3::hash(record).as_bytes()[0];
    }
    pending.extend_from_slice(chunks.remainder());
    checksum
}

/// A Noise transport pair, used only for its ChaCha20-Poly1305 cipher.
struct CipherPair {
    sender: snow::TransportState,
}

impl CipherPair {
    fn new() -> CipherPair {
        let params: snow::params::NoiseParams = "Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().expect("params");
        let mut initiator = snow::Builder::new(params.clone()).build_initiator().expect("initiator");
        let mut responder = snow::Builder::new(params).build_responder().expect("responder");
        let mut message = [0u8; 1024];
        let mut payload = [0u8; 1024];
        let len = initiator.write_message(&[], &mut message).expect("e");
        responder.read_message(&message[..len], &mut payload).expect("read e");
        let len = responder.write_message(&[], &mut message).expect("e, ee");
        initiator.read_message(&message[..len], &mut payload).expect("read e, ee");
        CipherPair { sender: initiator.into_transport_mode().expect("transport") }
    }

    fn seal(&mut self, plaintext: &[u8], out: &mut [u8]) -> usize {
        self.sender.write_message(plaintext, out).expect("seal")
    }
}

/// Half the round trip of a raw TCP ping-pong of `message_len` bytes, `rounds` times,
/// in microseconds.
pub fn one_way_floor(rounds: usize, message_len: usize) -> Histogram<u64> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let echo = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        stream.set_nodelay(true).ok();
        let mut buffer = vec![0u8; message_len];
        while stream.read_exact(&mut buffer).is_ok() {
            if stream.write_all(&buffer).is_err() {
                break;
            }
        }
    });
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_nodelay(true).ok();
    let mut histogram = Histogram::<u64>::new(3).expect("histogram");
    let message = vec![7u8; message_len];
    let mut reply = vec![0u8; message_len];
    for _ in 0..rounds {
        let start = Instant::now();
        stream.write_all(&message).expect("ping");
        stream.read_exact(&mut reply).expect("pong");
        let half_us = (start.elapsed().as_nanos() / 2_000).max(1) as u64;
        histogram.record(half_us).ok();
    }
    drop(stream);
    echo.join().ok();
    histogram
}
