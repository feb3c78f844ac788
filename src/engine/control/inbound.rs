//! What each socket event does: accepted connections, received bytes (decrypted and
//! framed in place, handed to the core), the end of a handshake, and every kind of
//! misbehaviour, scored and counted.

use std::net::SocketAddr;

use super::Control;
use crate::engine::io::{ConnId, IoEvent};
use crate::engine::peer_link::{Direction, PeerLink};
use crate::node::{Channel, MachineFault, PeerFault};
use crate::state::NodeId;
use crate::wire::{FrameKind, GoAwayReason, Offence, SessionEvent, Verdict, WireError};

impl Control {
    /// One socket event, from inside the backend's poll.
    pub fn on_io(&mut self, now: u64, event: IoEvent<'_>) {
        match event {
            IoEvent::Received { conn, data } => self.on_received(now, conn, data),
            IoEvent::Accepted { conn, peer } => self.on_accepted(conn, peer, now),
            IoEvent::Connected { conn } | IoEvent::Writable { conn } => self.dirty.push(conn),
            IoEvent::ConnectFailed { conn, .. } => {
                self.metrics.dial_failures += 1;
                self.on_closed(conn, now);
            }
            IoEvent::Closed { conn, .. } => self.on_closed(conn, now),
            IoEvent::Wake => {}
        }
    }

    fn on_accepted(&mut self, conn: ConnId, peer: SocketAddr, now: u64) {
        self.metrics.accepted += 1;
        if self.links.len() >= self.config.limits.wire.max_peers {
            self.metrics.refused_max_peers += 1;
            self.to_close.push((conn, GoAwayReason::TooManyPeers));
            return;
        }
        if !self.handshakes.allow(now, peer.ip()) {
            self.metrics.refused_handshake_rate += 1;
            self.to_close.push((conn, GoAwayReason::RateLimited));
            return;
        }
        self.open_link(conn, peer, Direction::Inbound, None, now);
    }

    fn on_received(&mut self, now: u64, conn: ConnId, data: &[u8]) {
        self.metrics.bytes_in += data.len() as u64;
        let Some(link) = self.links.get_mut(&conn) else { return };
        if let Some(peer) = link.peer {
            self.telemetry.on_peer_bytes(peer, now, data.len() as u64, 0);
        }
        let Some(link) = self.links.get_mut(&conn) else { return };
        if link.closing {
            return;
        }
        link.last_rx_ms = now;
        if link.peer.is_some() && check_bytes(link, now, data.len()) == Err(Verdict::Disconnect) {
            self.disconnect_misbehaving(conn);
            return;
        }
        // Fed in pieces no larger than the session takes at once, draining frames in
        // between, so one large read never overflows the session's bounded buffer.
        let mut rest = data;
        while !rest.is_empty() {
            let Some(link) = self.links.get_mut(&conn) else { return };
            if link.closing {
                return;
            }
            let take = link.session.receive_capacity().min(rest.len()).max(1);
            let (chunk, tail) = rest.split_at(take);
            rest = tail;
            if let Err(error) = link.session.handle_bytes(chunk) {
                self.on_session_error(conn, error, now);
                return;
            }
            self.drain_session(conn, now);
        }
        self.dirty.push(conn);
    }

    /// Handles whatever the session produced: the end of the handshake, then frames.
    fn drain_session(&mut self, conn: ConnId, now: u64) {
        loop {
            let Some(link) = self.links.get_mut(&conn) else { return };
            if link.closing {
                return;
            }
            if let Some(SessionEvent::Established { peer, negotiated }) = link.session.poll_event() {
                // Where the peer listens, proved by this handshake: the address dialled,
                // or the remote IP with the listen port of its Hello.
                let listens_on = match link.direction {
                    Direction::Outbound => Some(link.addr),
                    Direction::Inbound => negotiated.peer_listen_port.map(|port| SocketAddr::new(link.addr.ip(), port)),
                };
                self.on_established(conn, peer, listens_on, now);
                continue;
            }
            let Some(peer) = link.peer else { return };
            let frame = match link.session.next_frame() {
                None => return,
                Some(Err(error)) => {
                    self.on_session_error(conn, error, now);
                    return;
                }
                Some(Ok(frame)) => frame,
            };
            self.metrics.frames_in += 1;
            if let Some(channel) = channel_of(frame.kind) {
                if !link.limits.requests.try_take(now, 1) {
                    if link.limits.record(now, Offence::Flood) == Verdict::Disconnect {
                        self.disconnect_misbehaving(conn);
                    }
                } else if let Err(fault) = self.machine.handle_message(now, peer, channel, frame.payload) {
                    self.on_machine_fault(conn, fault, now);
                }
                continue;
            }
            match frame.kind {
                FrameKind::Ping => {
                    let payload = frame.payload.to_vec();
                    let _ = link.session.send_frame(FrameKind::Pong, &payload);
                    self.dirty.push(conn);
                }
                FrameKind::Pong => {}
                FrameKind::GoAway => {
                    link.closing = true;
                    self.to_close.push((conn, GoAwayReason::Normal));
                    return;
                }
                FrameKind::Data
                | FrameKind::Membership
                | FrameKind::Chain
                | FrameKind::Time
                | FrameKind::Addresses
                | FrameKind::Gossip => {}
            }
        }
    }

    fn on_established(&mut self, conn: ConnId, peer: NodeId, listens_on: Option<SocketAddr>, now: u64) {
        self.metrics.handshakes_completed += 1;
        if self.blocked.contains(&peer) {
            self.to_close.push((conn, GoAwayReason::Normal));
            return;
        }
        let Some(direction) = self.links.get(&conn).map(|link| link.direction) else { return };
        if let Some(&existing) = self.by_peer.get(&peer) {
            if !self.keep_new_link(peer, direction, existing) {
                self.metrics.duplicate_links += 1;
                self.to_close.push((conn, GoAwayReason::Normal));
                return;
            }
            self.metrics.duplicate_links += 1;
            self.by_peer.remove(&peer);
            if let Some(old) = self.links.get_mut(&existing) {
                // The old link is replaced, not lost: the core keeps the peer.
                old.peer = None;
            }
            self.to_close.push((existing, GoAwayReason::Normal));
        }
        if let Some(link) = self.links.get_mut(&conn) {
            link.peer = Some(peer);
            if let Some(slot) = link.dial_slot {
                self.dialer.established(slot);
                if self.dialer.is_pinned(slot) {
                    self.machine.pin(peer);
                }
            }
        }
        self.by_peer.insert(peer, conn);
        // Idempotent: a replaced link keeps the node's session.
        self.machine.handle_link_up(now, peer, listens_on);
    }

    /// Two links to one peer (both dialled at once, or a reconnect): both ends keep the
    /// one opened by the smaller node id, so they agree without talking; between two
    /// links opened by the same side, the newer wins (the older is likely half-dead).
    fn keep_new_link(&self, peer: NodeId, new: Direction, existing: ConnId) -> bool {
        let me = self.identity.node_id();
        let opener = |direction: Direction| if direction == Direction::Outbound { me } else { peer };
        let Some(old) = self.links.get(&existing).map(|link| link.direction) else { return true };
        opener(new) <= opener(old)
    }

    fn on_session_error(&mut self, conn: ConnId, error: WireError, now: u64) {
        let established = self.links.get(&conn).is_some_and(|link| link.peer.is_some());
        match error {
            WireError::NotAllowed(_) => self.metrics.refused_allowlist += 1,
            _ if !established => self.metrics.handshakes_failed += 1,
            _ => self.metrics.bad_frames += 1,
        }
        if let Some(link) = self.links.get_mut(&conn) {
            link.limits.record(now, Offence::BadFrame);
            link.closing = true;
        }
        self.to_close.push((conn, GoAwayReason::ProtocolError));
    }

    fn on_machine_fault(&mut self, conn: ConnId, fault: MachineFault, now: u64) {
        match fault {
            MachineFault::Core(fault) => self.on_peer_fault(conn, fault, now),
            other => {
                tracing::debug!(fault = %other, "a role's frame refused");
                self.on_peer_fault(conn, PeerFault::Protocol(other.to_string()), now)
            }
        }
    }

    fn on_peer_fault(&mut self, conn: ConnId, fault: PeerFault, now: u64) {
        self.metrics.peer_faults += 1;
        let offence = match fault {
            PeerFault::Malformed(_) | PeerFault::Oversized | PeerFault::Protocol(_) => Offence::MalformedMessage,
            PeerFault::InvalidItem(_) | PeerFault::DigestMismatch => Offence::InvalidItem,
            PeerFault::Flood => Offence::Flood,
            PeerFault::UnknownCategory(_) => Offence::Other(5),
        };
        let verdict = self.links.get_mut(&conn).map(|link| link.limits.record(now, offence));
        if verdict == Some(Verdict::Disconnect) {
            self.disconnect_misbehaving(conn);
        }
    }

    fn disconnect_misbehaving(&mut self, conn: ConnId) {
        if let Some(link) = self.links.get_mut(&conn) {
            if !link.closing {
                let who = link.peer.map(|peer| peer.short()).unwrap_or_else(|| "unauthenticated".into());
                tracing::warn!(peer = %who, addr = %link.addr, "disconnected for misbehaviour");
                link.closing = true;
                self.metrics.disconnected_misbehaviour += 1;
                self.to_close.push((conn, GoAwayReason::Misbehaviour));
            }
        }
    }
}

fn check_bytes(link: &mut PeerLink, now: u64, len: usize) -> Result<(), Verdict> {
    if link.limits.bytes.try_take(now, len as u64) {
        return Ok(());
    }
    Err(link.limits.record(now, Offence::Flood))
}

/// The node's channel a frame kind carries (`None` for the link's own control frames).
fn channel_of(kind: FrameKind) -> Option<Channel> {
    match kind {
        FrameKind::Data => Some(Channel::Core),
        FrameKind::Membership => Some(Channel::Membership),
        FrameKind::Chain => Some(Channel::Chain),
        FrameKind::Time => Some(Channel::Time),
        FrameKind::Addresses => Some(Channel::Addresses),
        FrameKind::Gossip => Some(Channel::Gossip),
        FrameKind::Ping | FrameKind::Pong | FrameKind::GoAway => None,
    }
}
