//! The control shard's loop: it drives one sans-IO [`NodeCore`] over real sockets.
//!
//! Each turn of the loop runs the host's queued commands, moves the core's transmits
//! into the sessions and the sessions' bytes into the backend (one batch of submissions
//! per turn), then waits in the backend until a socket event, a wake-up from a host
//! thread, or the next timer (the core's, a re-dial, a handshake deadline). The loop
//! follows the shape quinn and iroh use around their sans-IO protocols: the protocol
//! never sees a socket, and the loop never interprets a protocol message.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::commands::{CommandQueue, EventQueue};
use super::io::{Backend, ConnId, IoEvent, SendError};
use super::metrics::EngineMetrics;
use super::peer_link::{Direction, PeerLink};
use crate::node::backoff::Backoff;
use crate::node::{NodeConfig, NodeCore, NodeEvent, SyncId, SyncResult};
use crate::sim::SimRng;
use crate::state::NodeId;
use crate::wire::{
    FrameKind, GoAwayReason, Identity, Misbehaviour, MisbehaviourKind, PeerLimits, Session, SessionEvent, TokenBucket,
    Verdict, WireConfig, WireError,
};

/// Host threads waiting for a sync to finish.
type SyncWaiter = Box<dyn FnOnce(SyncResult) + Send>;

/// A configured peer address: dialled at start and re-dialled with backoff.
struct DialSlot {
    addr: SocketAddr,
    backoff: Backoff,
    next_attempt_ms: u64,
    conn: Option<ConnId>,
}

/// Everything the control shard owns.
pub struct Driver {
    backend: Box<dyn Backend>,
    /// The protocol core (public to commands run on this thread).
    pub core: NodeCore,
    identity: Identity,
    wire: WireConfig,
    config: NodeConfig,
    links: HashMap<ConnId, PeerLink>,
    by_peer: HashMap<NodeId, ConnId>,
    dials: Vec<DialSlot>,
    handshake_rate: HashMap<IpAddr, TokenBucket>,
    blocked: HashSet<NodeId>,
    commands: Arc<CommandQueue>,
    events: Arc<EventQueue>,
    pending_events: Vec<NodeEvent>,
    sync_waiters: HashMap<SyncId, SyncWaiter>,
    to_close: Vec<(ConnId, GoAwayReason)>,
    dirty: Vec<ConnId>,
    scratch: Vec<u8>,
    rng: SimRng,
    started: Instant,
    epoch_ms: u64,
    /// The engine's counters.
    pub metrics: EngineMetrics,
    /// Set by the close command: the loop ends after this turn.
    pub stopping: bool,
}

/// What the host hands the driver thread at start.
pub struct DriverParts {
    /// The opened backend, already listening.
    pub backend: Box<dyn Backend>,
    /// The protocol core.
    pub core: NodeCore,
    /// This node's identity.
    pub identity: Identity,
    /// Session settings.
    pub wire: WireConfig,
    /// The node's configuration.
    pub config: NodeConfig,
    /// Host → engine.
    pub commands: Arc<CommandQueue>,
    /// Engine → host.
    pub events: Arc<EventQueue>,
    /// Seed of the engine's generator (jitter).
    pub seed: u64,
}

impl Driver {
    /// Builds the driver; call [`Driver::run`] on the shard's thread.
    pub fn new(parts: DriverParts) -> Driver {
        let mut rng = SimRng::new(parts.seed);
        let dials = parts
            .config
            .peers
            .iter()
            .map(|&addr| DialSlot { addr, backoff: redial_backoff(&parts.config), next_attempt_ms: 0, conn: None })
            .collect();
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        Driver {
            backend: parts.backend,
            core: parts.core,
            identity: parts.identity,
            wire: parts.wire,
            config: parts.config,
            links: HashMap::new(),
            by_peer: HashMap::new(),
            dials,
            handshake_rate: HashMap::new(),
            blocked: HashSet::new(),
            commands: parts.commands,
            events: parts.events,
            pending_events: Vec::new(),
            sync_waiters: HashMap::new(),
            to_close: Vec::new(),
            dirty: Vec::new(),
            scratch: Vec::with_capacity(1 << 16),
            rng: rng.fork(),
            started: Instant::now(),
            epoch_ms,
            metrics: EngineMetrics::default(),
            stopping: false,
        }
    }

    /// Milliseconds since the Unix epoch, read from the monotonic clock (it never goes
    /// back, and the hybrid logical clock still sees wall time).
    pub fn now_ms(&self) -> u64 {
        self.epoch_ms + self.started.elapsed().as_millis() as u64
    }

    /// Runs until a close command.
    pub fn run(mut self) {
        while !self.stopping {
            self.run_commands();
            self.housekeeping();
            self.flush();
            let timeout = self.next_timeout();
            if let Err(error) = self.poll_backend(timeout) {
                // A failing backend cannot carry the node any further.
                self.pending_events.push(NodeEvent::Fatal(error.to_string()));
                self.stopping = true;
            }
            self.drive_core_timers();
            self.publish_events();
        }
        self.shutdown();
    }

    /// Adds a peer address to dial (and re-dial).
    pub fn add_peer(&mut self, addr: SocketAddr) {
        if self.dials.iter().any(|slot| slot.addr == addr) {
            return;
        }
        let backoff = redial_backoff(&self.config);
        self.dials.push(DialSlot { addr, backoff, next_attempt_ms: 0, conn: None });
    }

    /// Cuts the links to `peers` and refuses them until the next call (a partition at
    /// the transport, for tests and the demo); an empty set heals.
    pub fn set_blocked(&mut self, peers: HashSet<NodeId>) {
        for (&peer, &conn) in &self.by_peer {
            if peers.contains(&peer) {
                self.to_close.push((conn, GoAwayReason::Normal));
            }
        }
        self.blocked = peers;
        self.close_queued();
    }

    /// Starts anti-entropy with `peer` (or every connected peer) and calls `done` with
    /// the result of each session once finished.
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
        self.by_peer.keys().copied().collect()
    }

    /// The address the node listens on.
    pub fn backend_stats(&self) -> super::io::IoStats {
        self.backend.stats()
    }

    /// Queues events for the host (from commands).
    pub fn emit(&mut self, event: NodeEvent) {
        self.pending_events.push(event);
    }

    fn run_commands(&mut self) {
        // Bounded per turn so that a host flooding commands cannot starve the network.
        for _ in 0..super::commands::MAX_COMMANDS {
            match self.commands.pop() {
                Some(command) => command(self),
                None => break,
            }
        }
    }

    fn housekeeping(&mut self) {
        let now = self.now_ms();
        self.dial_due(now);
        self.close_stalled_handshakes(now);
        self.metrics.peers_connected = self.by_peer.len() as u64;
        self.metrics.events_dropped = self.events.dropped();
    }

    fn dial_due(&mut self, now: u64) {
        for index in 0..self.dials.len() {
            let slot = &self.dials[index];
            if slot.conn.is_some() || slot.next_attempt_ms > now || self.links.len() >= self.config.limits.max_peers {
                continue;
            }
            let addr = slot.addr;
            self.metrics.dials += 1;
            match self.backend.connect(addr) {
                Ok(conn) => {
                    self.dials[index].conn = Some(conn);
                    self.open_link(conn, addr, Direction::Outbound, Some(index), now);
                }
                Err(_) => self.schedule_redial(index, now),
            }
        }
    }

    fn schedule_redial(&mut self, index: usize, now: u64) {
        self.metrics.dial_failures += 1;
        let slot = &mut self.dials[index];
        slot.conn = None;
        slot.next_attempt_ms = now + slot.backoff.next_delay_ms(&mut self.rng);
    }

    fn close_stalled_handshakes(&mut self, now: u64) {
        let limit = self.config.limits.handshake_timeout.as_millis() as u64;
        let stalled: Vec<ConnId> = self
            .links
            .values()
            .filter(|link| link.peer.is_none() && !link.closing && now.saturating_sub(link.opened_ms) > limit)
            .map(|link| link.conn)
            .collect();
        for conn in stalled {
            self.metrics.handshake_timeouts += 1;
            self.to_close.push((conn, GoAwayReason::HandshakeTimeout));
        }
    }

    fn open_link(&mut self, conn: ConnId, addr: SocketAddr, direction: Direction, dial_slot: Option<usize>, now: u64) {
        let session = match direction {
            Direction::Outbound => Session::initiator(&self.identity, &self.wire),
            Direction::Inbound => Session::responder(&self.identity, &self.wire),
        };
        let session = match session {
            Ok(session) => session,
            Err(_) => {
                self.backend.close(conn);
                return;
            }
        };
        let link = PeerLink {
            conn,
            direction,
            addr,
            session,
            peer: None,
            opened_ms: now,
            limits: PeerLimits::new(&self.wire.limits, now),
            misbehaviour: Misbehaviour::new(&self.wire.limits),
            closing: false,
            dial_slot,
        };
        self.links.insert(conn, link);
        self.dirty.push(conn);
    }

    fn next_timeout(&self) -> Duration {
        let now = self.now_ms();
        let mut deadline = now + 1_000;
        if let Some(core) = self.core.poll_timeout() {
            deadline = deadline.min(core);
        }
        for slot in &self.dials {
            if slot.conn.is_none() {
                deadline = deadline.min(slot.next_attempt_ms);
            }
        }
        if self.links.values().any(|link| link.peer.is_none()) {
            deadline = deadline.min(now + 100);
        }
        if !self.pending_events.is_empty() || !self.to_close.is_empty() {
            deadline = now;
        }
        Duration::from_millis(deadline.saturating_sub(now))
    }

    fn poll_backend(&mut self, timeout: Duration) -> std::io::Result<()> {
        let now = self.now_ms();
        let Driver { backend, .. } = self;
        let mut io_events: Vec<OwnedIoEvent> = Vec::new();
        // Received bytes are handled inside the sink, straight from the receive buffer
        // (zero copy); everything else is collected and handled after the poll.
        let mut received: Vec<(ConnId, usize)> = Vec::new();
        let links = &mut self.links;
        let metrics = &mut self.metrics;
        let mut fed_errors: Vec<(ConnId, WireError)> = Vec::new();
        backend.poll(Some(timeout), &mut |event| match event {
            IoEvent::Received { conn, data } => {
                metrics.bytes_in += data.len() as u64;
                if let Some(link) = links.get_mut(&conn) {
                    if link.closing {
                        return;
                    }
                    if !link.limits.bytes.try_take(now, data.len() as u64) {
                        // Over its byte budget: scored, and the peer is cut at the threshold.
                        if link.misbehaviour.record(now, MisbehaviourKind::Flood) == Verdict::Disconnect {
                            fed_errors.push((conn, WireError::RateLimited));
                            return;
                        }
                    }
                    match link.session.handle_bytes(data) {
                        Ok(()) => received.push((conn, data.len())),
                        Err(error) => fed_errors.push((conn, error)),
                    }
                }
            }
            other => io_events.push(OwnedIoEvent::from(other)),
        })?;
        for (conn, error) in fed_errors {
            self.on_session_error(conn, error);
        }
        for (conn, _) in received {
            self.drain_session(conn);
        }
        for event in io_events {
            self.on_io_event(event);
        }
        self.close_queued();
        Ok(())
    }

    fn on_io_event(&mut self, event: OwnedIoEvent) {
        let now = self.now_ms();
        match event {
            OwnedIoEvent::Accepted { conn, peer } => self.on_accepted(conn, peer, now),
            OwnedIoEvent::Connected { conn } => self.dirty.push(conn),
            OwnedIoEvent::ConnectFailed { conn } | OwnedIoEvent::Closed { conn } => self.on_closed(conn),
            OwnedIoEvent::Writable { conn } => self.dirty.push(conn),
            OwnedIoEvent::Wake => {}
        }
    }

    fn on_accepted(&mut self, conn: ConnId, peer: SocketAddr, now: u64) {
        self.metrics.accepted += 1;
        if self.links.len() >= self.config.limits.max_peers {
            self.metrics.refused_max_peers += 1;
            self.backend.close(conn);
            return;
        }
        let rate = self.config.limits.handshakes_per_s;
        let bucket = self.handshake_rate.entry(peer.ip()).or_insert_with(|| TokenBucket::new(rate, rate.max(1), now));
        if !bucket.try_take(now, 1) {
            self.metrics.refused_handshake_rate += 1;
            self.backend.close(conn);
            return;
        }
        self.open_link(conn, peer, Direction::Inbound, None, now);
    }

    /// Handles whatever the session produced from the bytes just fed to it: the end of
    /// the handshake, then frames.
    fn drain_session(&mut self, conn: ConnId) {
        let now = self.now_ms();
        self.dirty.push(conn);
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
                    self.on_session_error(conn, error);
                    return;
                }
                Some(Ok(frame)) => frame,
            };
            self.metrics.frames_in += 1;
            if !link.limits.frames.try_take(now, 1)
                && link.misbehaviour.record(now, MisbehaviourKind::Flood) == Verdict::Disconnect
            {
                self.disconnect_misbehaving(conn);
                return;
            }
            match frame.kind {
                FrameKind::Data => {
                    if let Err(fault) = self.core.handle_message(now, peer, frame.payload) {
                        self.metrics.peer_faults += 1;
                        let _ = fault;
                        if link.misbehaviour.record(now, MisbehaviourKind::InvalidItem) == Verdict::Disconnect {
                            self.disconnect_misbehaving(conn);
                            return;
                        }
                    }
                }
                FrameKind::Ping => {
                    let payload = frame.payload.to_vec();
                    let _ = link.session.send_frame(FrameKind::Pong, &payload);
                }
                FrameKind::Pong => {}
                FrameKind::GoAway => {
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
        let direction = match self.links.get(&conn) {
            Some(link) => link.direction,
            None => return,
        };
        if let Some(&existing) = self.by_peer.get(&peer) {
            // Two links to one peer (both dialled at once, or a reconnect): both ends keep
            // the one opened by the smaller node id, so they agree without talking.
            let me = self.identity.node_id();
            let initiator = |dir: Direction| if dir == Direction::Outbound { me } else { peer };
            let existing_dir = self.links.get(&existing).map(|link| link.direction).unwrap_or(direction);
            let keep_new = initiator(direction) < initiator(existing_dir)
                || (initiator(direction) == initiator(existing_dir));
            self.metrics.duplicate_links += 1;
            if keep_new {
                self.by_peer.remove(&peer);
                self.to_close.push((existing, GoAwayReason::Duplicate));
            } else {
                self.to_close.push((conn, GoAwayReason::Duplicate));
                return;
            }
        }
        if let Some(link) = self.links.get_mut(&conn) {
            link.peer = Some(peer);
            if let Some(slot) = link.dial_slot {
                self.dials[slot].backoff.reset();
            }
        }
        let had_peer = self.by_peer.insert(peer, conn).is_some();
        if !had_peer {
            self.core.handle_peer_up(now, peer);
        }
    }

    fn on_session_error(&mut self, conn: ConnId, error: WireError) {
        let established = self.links.get(&conn).is_some_and(|link| link.peer.is_some());
        match error {
            WireError::NotAllowed => self.metrics.refused_allowlist += 1,
            _ if !established => self.metrics.handshakes_failed += 1,
            _ => self.metrics.bad_frames += 1,
        }
        if established {
            if let Some(link) = self.links.get_mut(&conn) {
                let now = self.epoch_ms + self.started.elapsed().as_millis() as u64;
                link.misbehaviour.record(now, MisbehaviourKind::BadFrame);
            }
        }
        self.to_close.push((conn, GoAwayReason::ProtocolError));
    }

    fn disconnect_misbehaving(&mut self, conn: ConnId) {
        self.metrics.disconnected_misbehaviour += 1;
        self.to_close.push((conn, GoAwayReason::Misbehaviour));
    }

    fn close_queued(&mut self) {
        for (conn, reason) in std::mem::take(&mut self.to_close) {
            if let Some(link) = self.links.get_mut(&conn) {
                if link.closing {
                    continue;
                }
                if link.peer.is_some() {
                    let _ = link.session.send_frame(FrameKind::GoAway, &[reason as u8]);
                    self.scratch.clear();
                    while link.session.poll_transmit(&mut self.scratch) {}
                    let _ = self.backend.send(conn, &self.scratch);
                }
                link.closing = true;
            }
            self.backend.close(conn);
            self.on_closed(conn);
        }
    }

    fn on_closed(&mut self, conn: ConnId) {
        let Some(link) = self.links.remove(&conn) else { return };
        let now = self.now_ms();
        if let Some(peer) = link.peer {
            if self.by_peer.get(&peer) == Some(&conn) {
                self.by_peer.remove(&peer);
                self.core.handle_peer_down(now, peer);
            }
        }
        if let Some(slot) = link.dial_slot {
            if self.dials[slot].conn == Some(conn) {
                if link.peer.is_none() {
                    self.schedule_redial(slot, now);
                } else {
                    let delay = self.dials[slot].backoff.next_delay_ms(&mut self.rng);
                    self.dials[slot].conn = None;
                    self.dials[slot].next_attempt_ms = now + delay;
                }
            }
        }
    }

    /// Moves the core's transmits into sessions and every session's bytes into the
    /// backend: one batch per turn.
    fn flush(&mut self) {
        let now = self.now_ms();
        let _ = now;
        while let Some(transmit) = self.core.poll_transmit() {
            let Some(&conn) = self.by_peer.get(&transmit.to) else { continue };
            let Some(link) = self.links.get_mut(&conn) else { continue };
            if link.session.send_frame(FrameKind::Data, &transmit.bytes).is_ok() {
                self.metrics.frames_out += 1;
                self.dirty.push(conn);
            }
            if link.session.buffered_bytes() > self.config.limits.max_send_queue {
                break;
            }
        }
        self.dirty.sort_unstable();
        self.dirty.dedup();
        for conn in std::mem::take(&mut self.dirty) {
            self.flush_link(conn);
        }
        self.close_queued();
    }

    fn flush_link(&mut self, conn: ConnId) {
        let Some(link) = self.links.get_mut(&conn) else { return };
        loop {
            self.scratch.clear();
            if !link.session.poll_transmit(&mut self.scratch) {
                return;
            }
            self.metrics.bytes_out += self.scratch.len() as u64;
            match self.backend.send(conn, &self.scratch) {
                Ok(()) => {}
                Err(SendError::Full) => {
                    // The peer does not read: it is cut rather than allowed to grow our memory.
                    self.metrics.disconnected_slow += 1;
                    self.to_close.push((conn, GoAwayReason::Slow));
                    return;
                }
                Err(_) => return,
            }
        }
    }

    fn drive_core_timers(&mut self) {
        let now = self.now_ms();
        if self.core.poll_timeout().is_some_and(|at| at <= now) {
            self.core.handle_timeout(now);
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

    fn publish_events(&mut self) {
        self.events.push_batch(&mut self.pending_events);
    }

    fn shutdown(&mut self) {
        let conns: Vec<ConnId> = self.links.keys().copied().collect();
        for conn in conns {
            self.to_close.push((conn, GoAwayReason::Normal));
        }
        self.close_queued();
        // One last poll pushes the goodbyes out before the sockets close.
        let _ = self.backend.poll(Some(Duration::from_millis(0)), &mut |_| {});
        for (_, waiter) in self.sync_waiters.drain() {
            waiter(Err(crate::node::SyncFailure::Closed));
        }
        self.publish_events();
        self.events.wake_all();
    }
}

fn redial_backoff(config: &NodeConfig) -> Backoff {
    Backoff::new(config.redial_initial.as_millis() as u64, config.redial_max.as_millis() as u64)
}

/// Socket events other than received bytes, owned so they can be handled after the poll.
enum OwnedIoEvent {
    Accepted { conn: ConnId, peer: SocketAddr },
    Connected { conn: ConnId },
    ConnectFailed { conn: ConnId },
    Writable { conn: ConnId },
    Closed { conn: ConnId },
    Wake,
}

impl From<IoEvent<'_>> for OwnedIoEvent {
    fn from(event: IoEvent<'_>) -> Self {
        match event {
            IoEvent::Accepted { conn, peer } => OwnedIoEvent::Accepted { conn, peer },
            IoEvent::Connected { conn } => OwnedIoEvent::Connected { conn },
            IoEvent::ConnectFailed { conn, .. } => OwnedIoEvent::ConnectFailed { conn },
            IoEvent::Writable { conn } => OwnedIoEvent::Writable { conn },
            IoEvent::Closed { conn, .. } => OwnedIoEvent::Closed { conn },
            IoEvent::Received { .. } | IoEvent::Wake => OwnedIoEvent::Wake,
        }
    }
}
