//! The control role's state: the node core, the links to peers, the dial list, the
//! limits and the counters, and what each socket event does to them.
//!
//! Everything here runs on the control shard's thread. Socket events arrive through
//! [`Control::on_io`] (called from inside the backend's poll, `inbound.rs`); anything
//! that needs the backend (closing, sending) is queued and done in
//! [`Control::after_poll`] and [`Control::flush`], once per turn (`outbound.rs`).

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

mod inbound;
mod outbound;

use super::commands::EventQueue;
use super::dialer::Dialer;
use super::io::{Backend, ConnId, IoStats};
use super::metrics::EngineMetrics;
use super::peer_link::{Direction, PeerLink};
use crate::node::{Machine, MachineEvent, NodeConfig, NodeEvent, SyncError, SyncId};
use crate::sansio::SeededRng;
use crate::state::NodeId;
use crate::storage::Log;
use crate::wire::{FrameKind, GoAwayReason, HandshakeLimiter, Identity, PeerLimits, Session, WireConfig};

/// The result of one sync with one peer, as the host receives it.
pub type SyncResult = Result<Vec<crate::node::CategoryReport>, SyncError>;

/// Called once when a sync finishes.
type SyncWaiter = Box<dyn FnOnce(SyncResult) + Send>;

/// Called once with the answer to a strong category's request.
type StrongWaiter = Box<dyn FnOnce(Result<crate::node::StrongAnswer, crate::node::NodeError>) + Send>;

/// The control role of a node's engine.
pub struct Control {
    /// The whole node, sans-IO: the one composition the swarm proves (ADR 081).
    pub machine: Machine,
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
    /// Sync latency, per-peer figures, rates and partition events (src/metrics).
    pub telemetry: crate::metrics::Telemetry,
    /// The node's log, when it has a data directory (snapshots are written to it).
    pub log: Option<Arc<Log>>,
    last_snapshot_ms: u64,
}

impl Control {
    /// The control state of a node about to start.
    pub fn new(machine: Machine, identity: Identity, wire: WireConfig, config: NodeConfig, seed: u64) -> Control {
        let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let mut dialer = Dialer::new(&config, SeededRng::new(seed));
        for &addr in &config.peers {
            dialer.add(addr, false);
        }
        Control {
            machine,
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
            telemetry: crate::metrics::Telemetry::new(epoch_ms, config.limits.wire.bytes_per_s),
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

    /// Pins a peer address: dialled now, re-dialled whenever its link drops, and its
    /// link kept whatever the overlay says.
    pub fn add_peer(&mut self, addr: SocketAddr) {
        self.dialer.add(addr, true);
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
        if !peers.is_empty() {
            self.telemetry.on_partition_injected();
            tracing::info!(peers = peers.len(), "partition: links to peers cut on request");
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
            let id = self.machine.sync_with(now, peer);
            let done = done.clone();
            self.sync_waiters.insert(id, Box::new(done));
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
        if let NodeEvent::Fatal(why) = &event {
            tracing::error!(node = %self.identity.node_id().short(), "fatal: {why}");
        }
        self.pending_events.push(event);
    }

    /// Hands the queued events to the host.
    pub fn publish_events(&mut self, events: &EventQueue) {
        events.push_batch(&mut self.pending_events);
    }

    /// Dials what is due, closes what the node no longer needs and stalled
    /// handshakes, refreshes gauges. Configured peers are seeds: dialled (and re-dialled
    /// with backoff) until one of them answered once and while the node has no link;
    /// pinned ones always (`dialer`).
    pub fn housekeeping(&mut self, backend: &mut dyn Backend) {
        let now = self.now_ms();
        self.dial_members(backend, now);
        self.close_unneeded();
        let seeking = self.machine.seeking_seeds();
        while let Some((slot, addr)) =
            self.dialer.next_due(now, seeking, self.links.len() < self.config.limits.wire.max_peers)
        {
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
        let core = self.machine.core().stats();
        let bytes = self.metrics.bytes_in + self.metrics.bytes_out;
        self.telemetry.sample(now, core.items_in + core.items_out, bytes, core.conflicts);
    }

    /// Dials the members the node asks for (learnt through peers), once each: a lost
    /// link is replaced by the node's next request, not re-dialled here.
    fn dial_members(&mut self, backend: &mut dyn Backend, now: u64) {
        while let Some((peer, addr)) = self.machine.poll_dial() {
            if self.by_peer.contains_key(&peer) || self.blocked.contains(&peer) {
                continue;
            }
            if self.links.len() >= self.config.limits.wire.max_peers {
                break;
            }
            self.metrics.dials += 1;
            match backend.connect(addr) {
                Ok(conn) => self.open_link(conn, addr, Direction::Outbound, None, now),
                Err(_) => self.metrics.dial_failures += 1,
            }
        }
    }

    /// Closes the links the node no longer needs (outside its overlay's active view
    /// and quiet: see `node::links`).
    fn close_unneeded(&mut self) {
        while let Some(peer) = self.machine.poll_close() {
            if let Some(&conn) = self.by_peer.get(&peer) {
                self.metrics.links_closed_unneeded += 1;
                self.to_close.push((conn, GoAwayReason::Normal));
            }
        }
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

    pub(super) fn open_link(
        &mut self,
        conn: ConnId,
        addr: SocketAddr,
        direction: Direction,
        dial_slot: Option<usize>,
        now: u64,
    ) {
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
        if let Some(at) = self.machine.poll_timeout() {
            deadline = deadline.min(at);
        }
        if let Some(at) = self.dialer.next_deadline(self.machine.seeking_seeds()) {
            deadline = deadline.min(at);
        }
        if self.links.values().any(|link| link.peer.is_none()) {
            deadline = deadline.min(now + 100);
        }
        if self.throttled {
            deadline = deadline.min(now + 1);
        }
        if !self.to_close.is_empty() || !self.dirty.is_empty() || self.machine.strong_staged() {
            deadline = now;
        }
        std::time::Duration::from_millis(deadline.saturating_sub(now))
    }

    /// Calls `done` with the answer to `ticket` of a strong category's group.
    pub fn wait_strong(
        &mut self,
        category: String,
        ticket: crate::consensus::Ticket,
        done: impl FnOnce(Result<crate::node::StrongAnswer, crate::node::NodeError>) + Send + 'static,
    ) {
        self.strong_waiters.insert((category, ticket), Box::new(done));
    }

    /// Runs the node's timers and collects its events.
    pub fn drive_core_timers(&mut self) {
        let now = self.now_ms();
        self.machine.strong_flush();
        self.machine.handle_timeout(now);
        while let Some(event) = self.machine.poll_event() {
            self.on_machine_event(event);
        }
        while let Some(finished) = self.machine.poll_finished_sync() {
            self.telemetry.on_sync(&finished);
        }
        while let Some(event) = self.machine.poll_node_event() {
            self.trace_event(&event, now);
            if let NodeEvent::SyncFinished { id, result, .. } = &event {
                if let Some(waiter) = self.sync_waiters.remove(id) {
                    waiter(result.clone());
                }
            }
            self.pending_events.push(event);
        }
    }

    fn on_machine_event(&mut self, event: MachineEvent) {
        match event {
            MachineEvent::Strong { category, ticket, result } => {
                if let Some(waiter) = self.strong_waiters.remove(&(category, ticket)) {
                    waiter(result);
                }
            }
            MachineEvent::Stopped(why) => {
                self.emit(NodeEvent::Fatal(format!("the node stopped: {why}")));
                self.stopping = true;
            }
            MachineEvent::Membership(event) => {
                tracing::debug!(node = %self.identity.node_id().short(), ?event, "membership");
                if matches!(event, crate::membership::MembershipEvent::PartitionDetected { .. }) {
                    self.telemetry.on_partition_detected();
                }
                self.pending_events.push(NodeEvent::Membership(event));
            }
            // The engine disconnects by its misbehaviour score, never through a ban.
            MachineEvent::Banned { .. } => {}
        }
    }

    fn trace_event(&mut self, event: &NodeEvent, now: u64) {
        match event {
            NodeEvent::PeerUp(peer) => {
                self.telemetry.on_peer_up(*peer, now);
                tracing::info!(node = %self.identity.node_id().short(), peer = %peer.short(), "peer up");
            }
            NodeEvent::PeerDown(peer) => {
                self.telemetry.on_peer_down(*peer, now);
                tracing::info!(node = %self.identity.node_id().short(), peer = %peer.short(), "peer down");
            }
            NodeEvent::Fatal(why) => tracing::error!(node = %self.identity.node_id().short(), "fatal: {why}"),
            _ => {}
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
        let bytes = crate::node::durable::snapshot_of(self.machine.core());
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

    /// The first half of a clean close: a last snapshot, then goodbyes to every peer
    /// (membership's `Left`, then a `GoAway`) handed to the backend but not yet closed
    /// — closing discards what the kernel has not taken, so the driver lets them drain
    /// ([`Control::goodbyes_pending`]) before [`Control::shutdown_finish`].
    pub fn shutdown_begin(&mut self, backend: &mut dyn Backend) {
        let now = self.now_ms();
        self.machine.leave(now);
        self.snapshot(true);
        self.flush(backend);
        for link in self.links.values_mut().filter(|link| link.session.is_established()) {
            let _ = link.session.send_goaway(GoAwayReason::Shutdown);
        }
        let conns: Vec<ConnId> = self.links.keys().copied().collect();
        for conn in conns {
            self.flush_link(backend, conn);
        }
    }

    /// Whether some link still has bytes the kernel has not taken.
    pub fn goodbyes_pending(&self, backend: &dyn Backend) -> bool {
        self.links.keys().any(|&conn| backend.queued_bytes(conn) > 0)
    }

    /// Closes every link and fails the syncs still waiting.
    pub fn shutdown_finish(&mut self, backend: &mut dyn Backend) {
        let now = self.now_ms();
        let conns: Vec<ConnId> = self.links.keys().copied().collect();
        for conn in conns {
            backend.close(conn);
            self.on_closed(conn, now);
        }
        for (_, waiter) in self.sync_waiters.drain() {
            waiter(Err(SyncError::PeerDown));
        }
        for (_, waiter) in self.strong_waiters.drain() {
            waiter(Err(crate::node::NodeError::Closed));
        }
    }
}
