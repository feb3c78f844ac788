//! The control role's state: the node core, the links to peers, the dial list, the
//! limits and the counters, and what each socket event does to them.
//!
//! Everything here runs on the control shard's thread. Socket events arrive through
//! [`Control::on_io`] (called from inside the backend's poll); anything that needs the
//! backend (closing, sending) is queued and done in [`Control::after_poll`] and
//! [`Control::flush`], once per turn.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::commands::EventQueue;
use super::dialer::Dialer;
use super::io::{Backend, ConnId, IoEvent, IoStats, SendError};
use super::metrics::EngineMetrics;
use super::peer_link::{Direction, PeerLink};
use crate::node::{NodeConfig, NodeCore, NodeEvent, PeerFault, SyncError, SyncId};
use crate::sim::SimRng;
use crate::storage::Log;
use crate::state::NodeId;
use crate::wire::{
    FrameKind, GoAwayReason, HandshakeLimiter, Identity, Offence, PeerLimits, Session, SessionEvent, Verdict,
    WireConfig, WireError,
};

/// The result of one sync with one peer, as the host receives it.
pub type SyncResult = Result<Vec<crate::node::CategoryReport>, SyncError>;

/// Called once when a sync finishes.
type SyncWaiter = Box<dyn FnOnce(SyncResult) + Send>;

/// Called once with the answer to a strong category's request.
type StrongWaiter = Box<dyn FnOnce(Result<crate::consensus::StrongAnswer, crate::node::NodeError>) + Send>;

/// The control role of a node's engine.
pub struct Control {
    /// The protocol core.
    pub core: NodeCore,
    identity: Identity,
    wire: WireConfig,
    config: NodeConfig,
    links: HashMap<ConnId, PeerLink>,
    by_peer: HashMap<NodeId, ConnId>,
    dialer: Dialer,
    handshakes: HandshakeLimiter,
    blocked: HashSet<NodeId>,
    pending_events: Vec<NodeEvent>,
    sync_waiters: HashMap<SyncId, SyncWaiter>,
    strong_waiters: HashMap<(String, crate::consensus::Ticket), StrongWaiter>,
    to_close: Vec<(ConnId, GoAwayReason)>,
    dirty: Vec<ConnId>,
    throttled: bool,
    scratch: Vec<u8>,
    started: Instant,
    epoch_ms: u64,
    /// The engine's counters.
    pub metrics: EngineMetrics,
    /// The backend's counters as of the last turn.
    pub io_stats: IoStats,
    /// Events the host did not poll in time.
    pub events_dropped: u64,
    /// Set by the close command: the loop ends after this turn.
    pub stopping: bool,
    /// The node's log, when it has a data directory (snapshots are written to it).
    pub log: Option<Arc<Log>>,
    last_snapshot_ms: u64,
}

impl Control {
    /// The control state of a node about to start.
    pub fn new(core: NodeCore, identity: Identity, wire: WireConfig, config: NodeConfig, seed: u64) -> Control {
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut dialer = Dialer::new(&config, SimRng::new(seed));
        for &addr in &config.peers {
            dialer.add(addr);
        }
        Control {
            core,
            handshakes: HandshakeLimiter::new(&config.limits.wire, epoch_ms),
            identity,
            wire,
            links: HashMap::new(),
            by_peer: HashMap::new(),
            dialer,
            blocked: HashSet::new(),
            pending_events: Vec::new(),
            sync_waiters: HashMap::new(),
            strong_waiters: HashMap::new(),
            to_close: Vec::new(),
            dirty: Vec::new(),
            throttled: false,
            scratch: Vec::with_capacity(1 << 16),
            started: Instant::now(),
            epoch_ms,
            metrics: EngineMetrics::default(),
            io_stats: IoStats::default(),
            events_dropped: 0,
            stopping: false,
            log: None,
            last_snapshot_ms: epoch_ms,
            config,
        }
    }

    /// Milliseconds since the Unix epoch, read from the monotonic clock (it never goes
    /// back, and the hybrid logical clock still sees wall time).
    pub fn now_ms(&self) -> u64 {
        self.epoch_ms + self.started.elapsed().as_millis() as u64
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.identity.node_id()
    }

    /// Adds a peer address to dial now and re-dial whenever its link drops.
    pub fn add_peer(&mut self, addr: SocketAddr) {
        self.dialer.add(addr);
    }

    /// How many peer addresses the node dials.
    pub fn configured_peers(&self) -> usize {
        self.dialer.len()
    }

    /// Cuts the links to `peers` and refuses them until the next call (a partition at
    /// the transport, for tests and the demo); an empty set heals.
    pub fn set_blocked(&mut self, peers: HashSet<NodeId>) {
        for (peer, &conn) in &self.by_peer {
            if peers.contains(peer) {
                self.to_close.push((conn, GoAwayReason::Normal));
            }
        }
        self.blocked = peers;
    }

    /// Starts anti-entropy with `peer` (or every connected peer); `done` receives the
    /// result of each. Returns how many syncs started.
    pub fn start_sync(&mut self, peer: Option<NodeId>, done: impl Fn(SyncResult) + Send + Clone + 'static) -> usize {
        let now = self.now_ms();
        let peers: Vec<NodeId> = match peer {
            Some(peer) => vec![peer],
            None => self.connected_peers(),
        };
        for &peer in &peers {
            let id = self.core.sync_with(now, peer);
            let done = done.clone();
            self.sync_waiters.insert(id, Box::new(move |result| done(result)));
        }
        peers.len()
    }

    /// The peers with an established link.
    pub fn connected_peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.by_peer.keys().copied().collect();
        peers.sort();
        peers
    }

    /// Queues an event for the host.
    pub fn emit(&mut self, event: NodeEvent) {
        self.pending_events.push(event);
    }

    /// Hands the queued events to the host.
    pub fn publish_events(&mut self, events: &EventQueue) {
        events.push_batch(&mut self.pending_events);
    }

    /// Dials what is due, closes stalled handshakes, refreshes gauges.
    pub fn housekeeping(&mut self, backend: &mut dyn Backend) {
        let now = self.now_ms();
        while let Some((slot, addr)) = self.dialer.next_due(now, self.links.len() < self.config.limits.wire.max_peers) {
            self.metrics.dials += 1;
            match backend.connect(addr) {
                Ok(conn) => {
                    self.dialer.connecting(slot, conn);
                    self.open_link(conn, addr, Direction::Outbound, Some(slot), now);
                }
                Err(_) => {
                    self.metrics.dial_failures += 1;
                    self.dialer.failed(slot, now);
                }
            }
        }
        self.close_stalled_handshakes(now);
        self.keep_alive(now);
        if now.saturating_sub(self.last_snapshot_ms) >= self.config.snapshot_interval.as_millis() as u64 {
            self.snapshot(false);
        }
        self.metrics.peers_connected = self.by_peer.len() as u64;
        self.metrics.events_dropped = self.events_dropped;
        self.io_stats = backend.stats();
    }

    fn close_stalled_handshakes(&mut self, now: u64) {
        let limit = self.config.limits.handshake_timeout.as_millis() as u64;
        for link in self.links.values() {
            if link.peer.is_none() && !link.closing && now.saturating_sub(link.opened_ms) > limit {
                self.metrics.handshake_timeouts += 1;
                self.to_close.push((link.conn, GoAwayReason::ProtocolError));
            }
        }
    }

    /// Pings quiet links and closes links silent for longer than the idle timeout: a
    /// half-open TCP connection, or a peer that stalls in the middle of a message, is
    /// noticed and re-dialled.
    fn keep_alive(&mut self, now: u64) {
        let idle = self.config.limits.idle_timeout.as_millis() as u64;
        let ping_every = idle / 3;
        for link in self.links.values_mut() {
            if link.peer.is_none() || link.closing {
                continue;
            }
            if now.saturating_sub(link.last_rx_ms) > idle {
                self.metrics.idle_timeouts += 1;
                link.closing = true;
                self.to_close.push((link.conn, GoAwayReason::Normal));
            } else if now.saturating_sub(link.last_rx_ms.max(link.last_ping_ms)) > ping_every {
                link.last_ping_ms = now;
                let _ = link.session.send_frame(FrameKind::Ping, &now.to_le_bytes());
                self.dirty.push(link.conn);
            }
        }
    }

    fn open_link(&mut self, conn: ConnId, addr: SocketAddr, direction: Direction, dial_slot: Option<usize>, now: u64) {
        let session = match direction {
            Direction::Outbound => Session::initiator(&self.identity, &self.wire),
            Direction::Inbound => Session::responder(&self.identity, &self.wire),
        };
        match session {
            Ok(session) => {
                let limits = PeerLimits::new(&self.config.limits.wire, now);
                let link = PeerLink {
                    conn,
                    direction,
                    addr,
                    session,
                    peer: None,
                    opened_ms: now,
                    last_rx_ms: now,
                    last_ping_ms: now,
                    limits,
                    closing: false,
                    dial_slot,
                };
                self.links.insert(conn, link);
                self.dirty.push(conn);
            }
            Err(_) => self.to_close.push((conn, GoAwayReason::ProtocolError)),
        }
    }

    /// When the backend should wake us at the latest.
    pub fn next_timeout(&self) -> std::time::Duration {
        let now = self.now_ms();
        let mut deadline = now + 1_000;
        if let Some(at) = self.core.poll_timeout() {
            deadline = deadline.min(at);
        }
        if let Some(at) = self.dialer.next_deadline() {
            deadline = deadline.min(at);
        }
        if self.links.values().any(|link| link.peer.is_none()) {
            deadline = deadline.min(now + 100);
        }
        if self.throttled {
            deadline = deadline.min(now + 1);
        }
        if !self.to_close.is_empty() || !self.dirty.is_empty() || self.core.strong_staged() {
            deadline = now;
        }
        std::time::Duration::from_millis(deadline.saturating_sub(now))
    }

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
            if let Some(SessionEvent::Established { peer, .. }) = link.session.poll_event() {
                self.on_established(conn, peer, now);
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
            match frame.kind {
                FrameKind::Data => {
                    if link.limits.requests.try_take(now, 1) {
                        if let Err(fault) = self.core.handle_message(now, peer, frame.payload) {
                            self.on_peer_fault(conn, fault, now);
                        }
                    } else if link.limits.record(now, Offence::Flood) == Verdict::Disconnect {
                        self.disconnect_misbehaving(conn);
                    }
                }
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
            }
        }
    }

    fn on_established(&mut self, conn: ConnId, peer: NodeId, now: u64) {
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
            }
        }
        let replaced = self.by_peer.insert(peer, conn).is_some();
        if !replaced && !self.core.connected_peers().any(|p| p == peer) {
            self.core.handle_peer_up(now, peer);
        }
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
                link.closing = true;
                self.metrics.disconnected_misbehaviour += 1;
                self.to_close.push((conn, GoAwayReason::Misbehaviour));
            }
        }
    }

    /// Closes what was queued for closing during the poll.
    pub fn after_poll(&mut self, backend: &mut dyn Backend) {
        self.close_queued(backend);
    }

    fn close_queued(&mut self, backend: &mut dyn Backend) {
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

    fn on_closed(&mut self, conn: ConnId, now: u64) {
        let Some(link) = self.links.remove(&conn) else { return };
        if let Some(peer) = link.peer {
            if self.by_peer.get(&peer) == Some(&conn) {
                self.by_peer.remove(&peer);
                self.core.handle_peer_down(now, peer);
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
            if !self.core.strong_persist() {
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
        while let Some(transmit) = self.core.poll_transmit() {
            let Some(&conn) = self.by_peer.get(&transmit.to) else { continue };
            let Some(link) = self.links.get_mut(&conn) else { continue };
            if link.session.send_frame(FrameKind::Data, &transmit.bytes).is_ok() {
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

    fn flush_link(&mut self, backend: &mut dyn Backend, conn: ConnId) {
        let Some(link) = self.links.get_mut(&conn) else { return };
        loop {
            self.scratch.clear();
            if !link.session.poll_transmit(&mut self.scratch) {
                return;
            }
            self.metrics.bytes_out += self.scratch.len() as u64;
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

    /// Calls `done` with the answer to `ticket` of a strong category's group.
    pub fn wait_strong(
        &mut self,
        category: String,
        ticket: crate::consensus::Ticket,
        done: impl FnOnce(Result<crate::consensus::StrongAnswer, crate::node::NodeError>) + Send + 'static,
    ) {
        self.strong_waiters.insert((category, ticket), Box::new(done));
    }

    /// Runs the core's timers and collects its events.
    pub fn drive_core_timers(&mut self) {
        let now = self.now_ms();
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
        }
        self.core.strong_flush();
        while let Some((category, ticket, result)) = self.core.poll_strong_outcome() {
            if let Some(waiter) = self.strong_waiters.remove(&(category, ticket)) {
                waiter(result);
            }
        }
        while let Some(event) = self.core.poll_event() {
            if let NodeEvent::SyncFinished { id, result, .. } = &event {
                if let Some(waiter) = self.sync_waiters.remove(id) {
                    waiter(result.clone());
                }
            }
            self.pending_events.push(event);
        }
    }

    /// Writes a snapshot of the whole state to the log, so that recovery replays only
    /// the records after it, and entries learnt from peers survive a restart. The state
    /// is encoded here (it is only readable on this thread) and written by a helper
    /// thread, unless `wait` (at close).
    pub fn snapshot(&mut self, wait: bool) {
        self.last_snapshot_ms = self.now_ms();
        let Some(log) = self.log.clone() else { return };
        // Records up to the head were applied before it was read: the state includes them.
        let (through, _) = log.head();
        let replica = self.core.replica();
        let mut entries = Vec::new();
        for category in replica.categories() {
            category.for_each_entry(&mut |entry| entries.push((category.name(), entry.to_entry())));
        }
        let bytes = crate::node::durable::encode_snapshot(entries.into_iter());
        let write = move || {
            if let Err(error) = log.write_snapshot(through, &bytes) {
                eprintln!("bhsync: snapshot through record {through} failed: {error}");
            }
        };
        if wait {
            write();
        } else {
            std::thread::spawn(write);
        }
    }

    /// Says goodbye to every peer and fails the syncs still waiting.
    pub fn shutdown(&mut self, backend: &mut dyn Backend) {
        self.snapshot(true);
        self.flush(backend);
        let conns: Vec<ConnId> = self.links.keys().copied().collect();
        for conn in conns {
            self.to_close.push((conn, GoAwayReason::Shutdown));
        }
        self.close_queued(backend);
        for (_, waiter) in self.sync_waiters.drain() {
            waiter(Err(SyncError::PeerDown));
        }
        for (_, waiter) in self.strong_waiters.drain() {
            waiter(Err(crate::node::NodeError::Closed));
        }
    }
}

fn check_bytes(link: &mut PeerLink, now: u64, len: usize) -> Result<(), Verdict> {
    if link.limits.bytes.try_take(now, len as u64) {
        return Ok(());
    }
    Err(link.limits.record(now, Offence::Flood))
}
