//! One authenticated session per TCP connection, sans-IO: bytes from the socket in
//! ([`Session::handle_bytes`]), bytes for the socket out ([`Session::poll_transmit`]),
//! decrypted frames out ([`Session::next_frame`]). The engine moves the bytes.
//!
//! Layers, bottom up:
//!
//! 1. Noise messages, each behind a 2-byte big-endian length (the Noise spec's
//!    suggested framing, §13), at most 65,535 bytes: three handshake messages (see
//!    [`super::handshake`]), then transport messages.
//! 2. In the transport, the plaintexts of the messages, concatenated, form a stream of
//!    frames ([`super::frame`]). Frame and message boundaries are independent: small
//!    frames share a message, and a large frame spans as many as it needs.
//! 3. In plaintext mode (both ends asked for it), the frames follow the handshake
//!    directly on the stream, with no Noise framing and no tag.
//!
//! Memory is bounded per peer: the handshake accepts messages of at most
//! [`MAX_HANDSHAKE_MESSAGE`] bytes; afterwards decryption is lazy (driven by
//! `next_frame`), so the decrypted buffer never holds more than one maximal frame plus
//! one Noise message, and `handle_bytes` refuses more raw bytes than
//! [`Session::receive_capacity`]. Buffers are reused: once warm, a frame costs no
//! allocation.
//!
//! Any error poisons the session: the engine must close the connection (it may first
//! flush `poll_transmit`, which can hold the responder's last handshake message so that
//! the initiator learns why it was refused).

use super::config::WireConfig;
use super::error::WireError;
use super::frame::{Frame, FrameHeader, FrameKind, GoAwayReason, HEADER_LEN};
use super::handshake::{negotiate, Hello, Negotiated, MAX_HANDSHAKE_MESSAGE, NOISE_PARAMS, PROLOGUE};
use super::identity::Identity;
use crate::state::NodeId;
use std::collections::BTreeSet;
use std::sync::Arc;

/// The largest Noise message (spec §3).
pub const NOISE_MAX_MESSAGE: usize = 65_535;
/// The authentication tag of each transport message.
pub const NOISE_TAG_LEN: usize = 16;
/// The most plaintext one transport message carries.
pub const NOISE_MAX_PLAINTEXT: usize = NOISE_MAX_MESSAGE - NOISE_TAG_LEN;
const LEN_PREFIX: usize = 2;

/// What a session reports to the engine.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum SessionEvent {
    /// The handshake is complete: the peer is authenticated as `peer`.
    Established {
        /// The peer's static public key.
        peer: NodeId,
        /// What both ends agreed on.
        negotiated: Negotiated,
    },
}

enum Phase {
    /// Initiator: msg1 sent, waiting for msg2. Responder: waiting for msg1, then msg3.
    Handshake(Box<snow::HandshakeState>),
    Encrypted(Box<snow::TransportState>),
    Plaintext,
    Failed,
}

/// One end of an authenticated connection.
pub struct Session {
    phase: Phase,
    local: NodeId,
    hello: Hello,
    allowlist: Option<Arc<BTreeSet<NodeId>>>,
    expected_peer: Option<NodeId>,
    peer: Option<NodeId>,
    negotiated: Option<Negotiated>,
    event: Option<SessionEvent>,
    /// The largest frame payload accepted and sent: ours until negotiated.
    max_frame_len: u32,
    /// Bytes from the socket; in plaintext mode also the frame stream.
    rx_raw: Vec<u8>,
    rx_raw_start: usize,
    /// The decrypted frame stream (encrypted mode).
    rx_plain: Vec<u8>,
    rx_plain_start: usize,
    /// Encoded frames waiting to be encrypted (encrypted mode).
    tx_plain: Vec<u8>,
    /// Bytes for the socket.
    tx: Vec<u8>,
    /// Handshake payloads.
    scratch: Vec<u8>,
}

impl Session {
    /// The dialling end; its first handshake message is ready in `poll_transmit`.
    pub fn initiator(id: &Identity, cfg: &WireConfig) -> Result<Session, WireError> {
        let mut session = Session::new(id, cfg, true)?;
        let hello = session.hello.to_bytes();
        session.write_handshake(&hello)?;
        Ok(session)
    }

    /// The dialling end, refusing any peer but `expected` (the NodeId we meant to reach).
    pub fn initiator_to(id: &Identity, cfg: &WireConfig, expected: NodeId) -> Result<Session, WireError> {
        let mut session = Session::initiator(id, cfg)?;
        session.expected_peer = Some(expected);
        Ok(session)
    }

    /// The accepting end; it waits for the initiator's first message.
    pub fn responder(id: &Identity, cfg: &WireConfig) -> Result<Session, WireError> {
        Session::new(id, cfg, false)
    }

    fn new(id: &Identity, cfg: &WireConfig, initiator: bool) -> Result<Session, WireError> {
        cfg.validate()?;
        let params = NOISE_PARAMS.parse().map_err(WireError::Handshake)?;
        let builder = snow::Builder::new(params).local_private_key(id.secret()).prologue(PROLOGUE);
        let state = if initiator { builder.build_initiator() } else { builder.build_responder() };
        Ok(Session {
            phase: Phase::Handshake(Box::new(state.map_err(WireError::Handshake)?)),
            local: id.node_id(),
            hello: cfg.hello(),
            allowlist: cfg.allowlist.clone(),
            expected_peer: None,
            peer: None,
            negotiated: None,
            event: None,
            max_frame_len: cfg.max_frame_len,
            rx_raw: Vec::new(),
            rx_raw_start: 0,
            rx_plain: Vec::new(),
            rx_plain_start: 0,
            tx_plain: Vec::new(),
            tx: Vec::new(),
            scratch: Vec::new(),
        })
    }

    // ---- getters ----

    /// The authenticated peer, once the handshake is complete.
    pub fn peer(&self) -> Option<NodeId> {
        self.peer
    }

    /// What both ends agreed on, once the handshake is complete.
    pub fn negotiated(&self) -> Option<Negotiated> {
        self.negotiated
    }

    /// Whether frames can be sent and received.
    pub fn is_established(&self) -> bool {
        matches!(self.phase, Phase::Encrypted(_) | Phase::Plaintext)
    }

    /// Whether an error ended the session.
    pub fn is_failed(&self) -> bool {
        matches!(self.phase, Phase::Failed)
    }

    /// The bytes this session holds for the peer, received and to send: what the engine
    /// counts against its memory budget.
    pub fn buffered_bytes(&self) -> usize {
        (self.rx_raw.len() - self.rx_raw_start)
            + (self.rx_plain.len() - self.rx_plain_start)
            + self.tx_plain.len()
            + self.tx.len()
    }

    /// The bytes waiting to be written to the socket (for the engine's back-pressure).
    pub fn pending_transmit(&self) -> usize {
        self.tx.len() + self.tx_plain.len()
    }

    /// How many more bytes `handle_bytes` accepts now. It never drops to zero while
    /// frames are drained with `next_frame` after each call.
    pub fn receive_capacity(&self) -> usize {
        self.receive_limit().saturating_sub(self.rx_raw.len() - self.rx_raw_start)
    }

    fn receive_limit(&self) -> usize {
        self.max_frame_len as usize + HEADER_LEN + 2 * (LEN_PREFIX + NOISE_MAX_MESSAGE)
    }

    // ---- inputs ----

    /// Takes bytes read from the socket, in any chunking. During the handshake it
    /// advances the handshake; afterwards it only buffers (frames are decoded by
    /// `next_frame`). Refuses more than `receive_capacity()` bytes.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), WireError> {
        if self.is_failed() {
            return Err(WireError::Closed);
        }
        if bytes.len() > self.receive_capacity() {
            return self.fail(WireError::ReceiveBufferFull);
        }
        self.compact_raw();
        self.rx_raw.extend_from_slice(bytes);
        if let Phase::Handshake(_) = self.phase {
            if let Err(e) = self.advance_handshake() {
                return self.fail(e);
            }
        }
        Ok(())
    }

    fn fail<T>(&mut self, error: WireError) -> Result<T, WireError> {
        self.phase = Phase::Failed;
        self.tx_plain.clear();
        Err(error)
    }

    fn compact_raw(&mut self) {
        compact(&mut self.rx_raw, &mut self.rx_raw_start);
    }

    /// Processes every complete handshake message in `rx_raw`.
    fn advance_handshake(&mut self) -> Result<(), WireError> {
        while let Phase::Handshake(_) = self.phase {
            let Some(message) = take_message(&self.rx_raw, &mut self.rx_raw_start, MAX_HANDSHAKE_MESSAGE)? else {
                return Ok(());
            };
            let Phase::Handshake(state) = &mut self.phase else { return Err(WireError::Closed) };
            self.scratch.resize(MAX_HANDSHAKE_MESSAGE, 0);
            let len = state.read_message(&self.rx_raw[message], &mut self.scratch).map_err(WireError::Handshake)?;
            self.scratch.truncate(len);
            let (initiator, finished) = (state.is_initiator(), state.is_handshake_finished());
            match (initiator, finished) {
                (false, false) => self.on_initiator_hello()?,
                (true, false) => self.on_responder_hello()?,
                (false, true) => self.on_final_message()?,
                // The initiator finishes by writing msg3, never by reading: no peer
                // input reaches this arm, but a refusal is safer than a panic.
                (true, true) => return Err(WireError::Closed),
            }
        }
        Ok(())
    }

    /// Responder, msg1 read: answer with our Hello, then refuse an incompatible peer
    /// (our msg2 stays queued so the initiator can learn why).
    fn on_initiator_hello(&mut self) -> Result<(), WireError> {
        let theirs = Hello::decode(&self.scratch)?;
        let ours = self.hello.to_bytes();
        self.write_handshake(&ours)?;
        self.negotiated = Some(negotiate(&self.hello, &theirs)?);
        Ok(())
    }

    /// Initiator, msg2 read: the responder is authenticated; check it, finish.
    fn on_responder_hello(&mut self) -> Result<(), WireError> {
        let theirs = Hello::decode(&self.scratch)?;
        let negotiated = negotiate(&self.hello, &theirs)?;
        let peer = self.remote_static()?;
        self.check_peer(peer)?;
        self.write_handshake(&[])?;
        self.establish(peer, negotiated)
    }

    /// Responder, msg3 read: the initiator is authenticated; check it, finish.
    fn on_final_message(&mut self) -> Result<(), WireError> {
        let peer = self.remote_static()?;
        self.check_peer(peer)?;
        let negotiated = self.negotiated.ok_or(WireError::Closed)?;
        self.establish(peer, negotiated)
    }

    fn remote_static(&self) -> Result<NodeId, WireError> {
        let Phase::Handshake(state) = &self.phase else { return Err(WireError::Closed) };
        let key = state.get_remote_static().ok_or(WireError::BadHello("no static key"))?;
        Ok(NodeId(key.try_into().map_err(|_| WireError::BadHello("static key of the wrong length"))?))
    }

    fn check_peer(&self, peer: NodeId) -> Result<(), WireError> {
        if peer == self.local {
            return Err(WireError::SelfConnection);
        }
        if let Some(expected) = self.expected_peer {
            if expected != peer {
                return Err(WireError::UnexpectedPeer { expected, got: peer });
            }
        }
        if self.allowlist.as_ref().is_some_and(|list| !list.contains(&peer)) {
            return Err(WireError::NotAllowed(peer));
        }
        Ok(())
    }

    fn establish(&mut self, peer: NodeId, negotiated: Negotiated) -> Result<(), WireError> {
        let Phase::Handshake(state) = std::mem::replace(&mut self.phase, Phase::Failed) else {
            return Err(WireError::Closed);
        };
        self.phase = if negotiated.plaintext() {
            Phase::Plaintext
        } else {
            Phase::Encrypted(Box::new(state.into_transport_mode().map_err(WireError::Handshake)?))
        };
        self.peer = Some(peer);
        self.negotiated = Some(negotiated);
        self.max_frame_len = negotiated.max_frame_len;
        self.event = Some(SessionEvent::Established { peer, negotiated });
        self.scratch = Vec::new();
        Ok(())
    }

    fn write_handshake(&mut self, payload: &[u8]) -> Result<(), WireError> {
        let Phase::Handshake(state) = &mut self.phase else { return Err(WireError::Closed) };
        let at = self.tx.len();
        self.tx.resize(at + LEN_PREFIX + MAX_HANDSHAKE_MESSAGE, 0);
        let len = state.write_message(payload, &mut self.tx[at + LEN_PREFIX..]).map_err(WireError::Handshake)?;
        self.tx.truncate(at + LEN_PREFIX + len);
        self.tx[at..at + LEN_PREFIX].copy_from_slice(&(len as u16).to_be_bytes());
        Ok(())
    }

    // ---- mutators ----

    /// Queues one frame for the peer. The payload is copied (once) into the session's
    /// reused transmit buffer; it is encrypted when `poll_transmit` is called.
    pub fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> Result<(), WireError> {
        self.send_frame_with_flags(kind, 0, payload)
    }

    /// Queues one frame with header flags (e.g. `FLAG_ZSTD` for a compressed payload).
    pub fn send_frame_with_flags(&mut self, kind: FrameKind, flags: u8, payload: &[u8]) -> Result<(), WireError> {
        let max = self.max_frame_len;
        match self.phase {
            Phase::Encrypted(_) => Ok(super::frame::encode_frame(&mut self.tx_plain, kind, flags, payload, max)?),
            Phase::Plaintext => Ok(super::frame::encode_frame(&mut self.tx, kind, flags, payload, max)?),
            Phase::Handshake(_) => Err(WireError::NotEstablished),
            Phase::Failed => Err(WireError::Closed),
        }
    }

    /// Queues a GoAway frame: the engine flushes it and closes.
    pub fn send_goaway(&mut self, reason: GoAwayReason) -> Result<(), WireError> {
        self.send_frame(FrameKind::GoAway, &reason.to_payload())
    }

    // ---- outputs ----

    /// Moves the bytes to write to the socket into `out` (appending; if `out` is empty
    /// the buffers are swapped, so no byte is copied). Returns whether any were added.
    pub fn poll_transmit(&mut self, out: &mut Vec<u8>) -> bool {
        if let Phase::Encrypted(transport) = &mut self.phase {
            if let Err(e) = seal_all(transport, &self.tx_plain, &mut self.tx) {
                // Only nonce exhaustion (after 2^64 messages) can fail here.
                let _ = self.fail::<()>(e);
            }
            self.tx_plain.clear();
        }
        if self.tx.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut self.tx);
        } else {
            out.extend_from_slice(&self.tx);
            self.tx.clear();
        }
        true
    }

    /// The next event (the handshake's completion).
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.event.take()
    }

    /// The next complete frame, its payload borrowed from the session's receive buffer
    /// until the next call. `None` when more bytes are needed; an error poisons the
    /// session.
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, WireError>> {
        let plaintext = match self.phase {
            Phase::Plaintext => true,
            Phase::Encrypted(_) => false,
            Phase::Handshake(_) | Phase::Failed => return None,
        };
        if !plaintext {
            compact(&mut self.rx_plain, &mut self.rx_plain_start);
        }
        let found = loop {
            let (buf, start) =
                if plaintext { (&self.rx_raw, self.rx_raw_start) } else { (&self.rx_plain, self.rx_plain_start) };
            match FrameHeader::parse(&buf[start..], self.max_frame_len) {
                Some(Ok((kind, flags, len))) if buf.len() - start >= HEADER_LEN + len as usize => {
                    break (kind, flags, start + HEADER_LEN, start + HEADER_LEN + len as usize);
                }
                Some(Err(e)) => return Some(self.fail(e.into())),
                _ if plaintext => return None,
                _ => match self.open_one() {
                    Ok(true) => continue,
                    Ok(false) => return None,
                    Err(e) => return Some(self.fail(e)),
                },
            }
        };
        let (kind, flags, from, to) = found;
        let buf = if plaintext {
            self.rx_raw_start = to;
            &self.rx_raw
        } else {
            self.rx_plain_start = to;
            &self.rx_plain
        };
        Some(Ok(Frame { kind, flags, payload: &buf[from..to] }))
    }

    /// Decrypts one complete transport message from `rx_raw` onto `rx_plain`; false if
    /// none is complete yet.
    fn open_one(&mut self) -> Result<bool, WireError> {
        let Phase::Encrypted(transport) = &mut self.phase else { return Err(WireError::Closed) };
        let Some(message) = take_message(&self.rx_raw, &mut self.rx_raw_start, NOISE_MAX_MESSAGE)? else {
            return Ok(false);
        };
        let sealed = &self.rx_raw[message];
        if sealed.len() < NOISE_TAG_LEN {
            return Err(WireError::BadMessageLength(sealed.len() as u16));
        }
        let at = self.rx_plain.len();
        self.rx_plain.resize(at + sealed.len() - NOISE_TAG_LEN, 0);
        let len = transport.read_message(sealed, &mut self.rx_plain[at..]).map_err(|_| WireError::Decrypt)?;
        self.rx_plain.truncate(at + len);
        Ok(true)
    }
}

/// The range of the next complete length-prefixed message in `buf[*start..]`, advancing
/// `start` past it; None if it is not complete; an error if it announces more than `max`.
fn take_message(buf: &[u8], start: &mut usize, max: usize) -> Result<Option<std::ops::Range<usize>>, WireError> {
    let rest = &buf[*start..];
    let Some(prefix) = rest.get(..LEN_PREFIX) else { return Ok(None) };
    let len = u16::from_be_bytes([prefix[0], prefix[1]]) as usize;
    if len > max {
        return Err(WireError::HandshakeTooLarge);
    }
    if rest.len() < LEN_PREFIX + len {
        return Ok(None);
    }
    let from = *start + LEN_PREFIX;
    *start = from + len;
    Ok(Some(from..from + len))
}

/// Drops the consumed prefix of a receive buffer when that is cheap relative to what
/// it frees: all of it when nothing is unread, else once at least half is consumed.
fn compact(buf: &mut Vec<u8>, start: &mut usize) {
    if *start == buf.len() {
        buf.clear();
        *start = 0;
    } else if *start > 0 && *start >= buf.len() / 2 {
        buf.drain(..*start);
        *start = 0;
    }
}

/// Encrypts `plain` into `out` as transport messages of at most `NOISE_MAX_PLAINTEXT`
/// plaintext bytes each.
fn seal_all(transport: &mut snow::TransportState, plain: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    for chunk in plain.chunks(NOISE_MAX_PLAINTEXT) {
        let at = out.len();
        out.resize(at + LEN_PREFIX + chunk.len() + NOISE_TAG_LEN, 0);
        let len = transport.write_message(chunk, &mut out[at + LEN_PREFIX..]).map_err(WireError::Handshake)?;
        debug_assert_eq!(len, chunk.len() + NOISE_TAG_LEN);
        out[at..at + LEN_PREFIX].copy_from_slice(&(len as u16).to_be_bytes());
    }
    Ok(())
}
