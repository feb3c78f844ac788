//! What leaves the control shard each turn: the core's transmits through the sessions
//! into the backend (with back-pressure), and the links queued for closing.

use super::Control;
use crate::engine::io::{Backend, ConnId, SendError};
use crate::node::Channel;
use crate::wire::{FrameKind, GoAwayReason};

impl Control {
    /// Closes what was queued for closing during the poll.
    pub fn after_poll(&mut self, backend: &mut dyn Backend) {
        self.close_queued(backend);
    }

    pub(super) fn close_queued(&mut self, backend: &mut dyn Backend) {
        let now = self.now_ms();
        for (conn, reason) in std::mem::take(&mut self.to_close) {
            if let Some(link) = self.links.get_mut(&conn) {
                if link.session.is_established() {
                    let _ = link.session.send_goaway(reason);
                    self.scratch.clear();
                    while link.session.poll_transmit(&mut self.scratch) {}
                    let _ = backend.send(conn, &self.scratch);
                }
                link.closing = true;
            }
            backend.close(conn);
            self.on_closed(conn, now);
        }
    }

    pub(super) fn on_closed(&mut self, conn: ConnId, now: u64) {
        let Some(link) = self.links.remove(&conn) else { return };
        if let Some(peer) = link.peer {
            if self.by_peer.get(&peer) == Some(&conn) {
                self.by_peer.remove(&peer);
                self.machine.handle_link_down(now, peer);
            }
        }
        if let Some(slot) = link.dial_slot {
            self.dialer.closed(slot, conn, now);
        }
    }

    /// Moves the core's transmits into sessions and every session's bytes into the
    /// backend: one batch per turn. Then strong categories' leaders write their staged
    /// entries to their journals (their appends are on the wire meanwhile) and what
    /// that releases is sent too.
    pub fn flush(&mut self, backend: &mut dyn Backend) {
        self.flush_once(backend);
        for _ in 0..4 {
            if !self.machine.strong_persist() {
                break;
            }
            self.flush_once(backend);
        }
    }

    fn flush_once(&mut self, backend: &mut dyn Backend) {
        // Back-pressure: the core's transmits are pulled only while the link they go to
        // has room; the rest stays queued in the core (which generates bulk streams only
        // as its queues drain), and a `Writable` event resumes.
        let high_water = self.config.limits.max_send_queue / 2;
        self.throttled = false;
        while let Some((to, channel, bytes)) = self.machine.poll_transmit() {
            let Some(&conn) = self.by_peer.get(&to) else { continue };
            let Some(link) = self.links.get_mut(&conn) else { continue };
            if link.session.send_frame(frame_kind(channel), &bytes).is_ok() {
                self.metrics.frames_out += 1;
                self.dirty.push(conn);
            }
            if link.session.pending_transmit() >= 1 << 20 {
                // Encrypt and hand over what is queued before taking more.
                self.flush_link(backend, conn);
                if backend.queued_bytes(conn) >= high_water {
                    // The socket drains without telling us (no refusal, so no
                    // `Writable`): look again shortly.
                    self.throttled = true;
                    break;
                }
            }
        }
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for conn in std::mem::take(&mut self.dirty) {
            self.flush_link(backend, conn);
        }
        self.close_queued(backend);
    }

    pub(super) fn flush_link(&mut self, backend: &mut dyn Backend, conn: ConnId) {
        let Some(link) = self.links.get_mut(&conn) else { return };
        loop {
            self.scratch.clear();
            if !link.session.poll_transmit(&mut self.scratch) {
                return;
            }
            self.metrics.bytes_out += self.scratch.len() as u64;
            if let Some(peer) = link.peer {
                let now = self.epoch_ms + self.started.elapsed().as_millis() as u64;
                self.telemetry.on_peer_bytes(peer, now, 0, self.scratch.len() as u64);
            }
            match backend.send(conn, &self.scratch) {
                Ok(()) => {}
                Err(SendError::Full) => {
                    // The peer does not read: it is cut rather than allowed to grow our memory.
                    self.metrics.disconnected_slow += 1;
                    link.closing = true;
                    self.to_close.push((conn, GoAwayReason::RateLimited));
                    return;
                }
                Err(_) => return,
            }
        }
    }
}

/// The frame kind that carries a channel of the node.
fn frame_kind(channel: Channel) -> FrameKind {
    match channel {
        Channel::Core => FrameKind::Data,
        Channel::Membership => FrameKind::Membership,
        Channel::Chain => FrameKind::Chain,
        Channel::Time => FrameKind::Time,
        Channel::Addresses => FrameKind::Addresses,
        Channel::Gossip => FrameKind::Gossip,
    }
}
