//! The public handle of a running node: `Node::open(config)`, then put, get, delete,
//! counters, sync with a peer, state hash, events, close.
//!
//! A `Node` is a thin, thread-safe front for the engine: every call becomes a command
//! run on the control shard's thread (so the protocol state has one owner and needs no
//! lock), and the caller waits for its answer. Calls may come from any thread.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::config::NodeConfig;
use super::durable;
use super::machine::{Durable, Machine, MachineSetup};
use super::roles::TimeConfig;
use super::{CoreConfig, NodeCore, NodeError, NodeEvent, SyncResult};
use crate::gossip::GossipConfig;
use crate::membership::SwimConfig;
use crate::engine::commands::{CommandQueue, EventQueue};
use crate::engine::control::Control;
use crate::engine::driver::Driver;
use crate::engine::io::{open_backend, IoConfig, IoStats, Waker};
use crate::engine::metrics::EngineMetrics;
use crate::state::{Digest, Mode, NodeId, Version};
use crate::storage::{Log, LogConfig, Recovery, StorageError};
use crate::wire::{Identity, WireConfig};

/// A running node. Dropping it closes it.
pub struct Node {
    id: NodeId,
    local_addr: SocketAddr,
    commands: Arc<CommandQueue>,
    events: Arc<EventQueue>,
    waker: Waker,
    /// Released at close, so the directory's lock goes with the node.
    log: Mutex<Option<Arc<Log>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Strong categories (their writes and reads wait for the Raft group).
    strong: std::collections::HashSet<String>,
    /// How long a strong request may wait for its group's answer.
    strong_wait: Duration,
}

/// A snapshot of a node's figures.
#[derive(Clone, Debug)]
pub struct NodeMetrics {
    /// The network layer's counters, including bad input by kind.
    pub engine: EngineMetrics,
    /// Membership (alive / suspect / dead) and network time.
    pub roles: super::MachineFigures,
    /// The IO backend in use and its figures.
    pub io: IoStats,
    /// The protocol core's counters.
    pub core: super::CoreStats,
    /// Connected peers.
    pub peers: Vec<NodeId>,
    /// Recorded figures: sync latency histograms, per-peer and per-category figures,
    /// rates, consistency lag, partition events (src/metrics/telemetry.rs).
    pub telemetry: crate::metrics::TelemetrySnapshot,
    /// Peer addresses the node dials.
    pub configured_peers: usize,
    /// This node's id.
    pub node: NodeId,
}

/// A reading of network time ([`Node::network_time`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetworkTime {
    /// Milliseconds since the Unix epoch, as the node's peers agree on it.
    pub unix_ms: u64,
    /// Network time minus the local clock, in milliseconds.
    pub offset_ms: i64,
}

impl Node {
    /// Opens a node: loads or creates its identity, binds its listening socket, starts
    /// its engine and dials its configured peers.
    pub fn open(config: NodeConfig) -> Result<Node, NodeError> {
        config.check_supported()?;
        // The data directory's lock first: a refused node writes nothing there.
        let opened = match &config.data_dir {
            Some(dir) => Some(open_log(dir)?),
            None => None,
        };
        let identity = load_identity(&config)?;
        let id = identity.node_id();
        let now = wall_clock_ms();
        let seed = seed_from(&id, now);
        let mut rng = crate::sansio::SeededRng::new(seed);
        let mut core = NodeCore::new(core_config(&config), id, rng.fork(), now)?;
        core.set_storage_epoch(storage_epoch(&config, &id, now)?);
        if config.shards > 1 {
            // Shard 0 is the control thread; shards 1.. are pinned workers.
            let cores: Vec<usize> = config.cores.clone().unwrap_or_else(|| (0..config.shards).collect());
            let pool = crate::engine::shard_pool::ShardPool::new(config.shards - 1, &cores)
                .map_err(|error| NodeError::Io(format!("cannot start the shard threads: {error}")))?;
            core.set_executor(Arc::new(pool));
        }
        let log = match opened {
            Some((log, recovery)) => {
                durable::replay(&recovery, &mut core, now)?;
                Some(Arc::new(log))
            }
            None => None,
        };
        if let Some(dir) = &config.data_dir {
            core.attach_strong_journals(now, |category| {
                crate::node::strong::open_log_journal(&crate::node::strong::journal_dir(dir, category))
            })?;
        }
        let strong = crate::node::strong::strong_categories(&config.categories).into_iter().collect();
        let strong_wait = Duration::from_millis(config.strong_group.request_timeout_ms + 2_000);
        let io = IoConfig { choice: config.io_backend, max_send_queue_bytes: config.limits.max_send_queue, ..IoConfig::default() };
        let mut backend = open_backend(&io).map_err(|error| NodeError::Io(format!("opening the IO backend: {error}")))?;
        let local_addr = backend.listen(config.listen).map_err(|error| {
            NodeError::Io(format!("cannot listen on {}: {error}; choose a free address or port 0", config.listen))
        })?;
        let waker = backend.waker();
        let wire = wire_config(&config, local_addr.port());
        let commands = Arc::new(CommandQueue::default());
        let events = Arc::new(EventQueue::default());
        let core_index = config.cores.as_ref().and_then(|cores| cores.first().copied()).unwrap_or(0);
        let chain_category = config.chain_categories().next().map(str::to_owned);
        let chain = match (&chain_category, &config.data_dir) {
            (Some(name), Some(dir)) => Some(open_chain(dir, name, &identity, rng.fork(), now)?),
            _ => None,
        };
        let setup = MachineSetup {
            core,
            chain,
            chain_category,
            swim: SwimConfig::default(),
            // Wall-clock milliseconds: higher after every restart, as SWIM needs.
            incarnation: now,
            members: Vec::new(),
            time: TimeConfig::default(),
            overlay: GossipConfig {
                active_view_capacity: config.target_peers,
                passive_view_capacity: 6 * config.target_peers,
                max_payload_len: crate::gossip::message::MAX_PAYLOAD_LEN,
                dissemination: config.dissemination,
                ..GossipConfig::default()
            },
            manage_links: true,
        };
        let machine = Machine::new(setup, rng, now);
        let mut control = Control::new(machine, identity, wire, config, seed);
        control.log = log.clone();
        let driver = Driver::new(backend, control, commands.clone(), events.clone());
        let thread = std::thread::Builder::new()
            .name("bhsync-shard-0".into())
            .spawn(move || {
                crate::engine::pin_to_core(core_index);
                driver.run();
            })
            .map_err(|error| NodeError::Io(format!("cannot start the engine thread: {error}")))?;
        Ok(Node {
            id,
            local_addr,
            commands,
            events,
            waker,
            log: Mutex::new(log),
            thread: Mutex::new(Some(thread)),
            strong,
            strong_wait,
        })
    }

    /// This node's id: its public key.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The address the node listens on (with the port chosen when the configuration said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Dials a peer now and keeps re-dialling it whenever the link drops; its link is
    /// kept whatever the overlay decides (addresses in `NodeConfig::peers` are seeds
    /// instead: dialled to join, then the overlay chooses the links).
    pub fn connect(&self, addr: SocketAddr) -> Result<(), NodeError> {
        self.call(move |driver| driver.add_peer(addr))
    }

    /// Writes `value` under `key`; returns the version it was stamped with. With a data
    /// directory, returns once the write is durable.
    ///
    /// In a strong category, the write goes through the category's Raft group and
    /// returns once committed (version: hlc = counter = log index), or at once with
    /// `NotLeader` (ask the leader) or `ReadOnly` (no quorum in reach); `Indeterminate`
    /// when the leader was lost after proposing.
    pub fn put(&self, category: &str, key: &[u8], value: &[u8]) -> Result<Version, NodeError> {
        if self.strong.contains(category) {
            let (name, key, value) = (category.to_owned(), key.to_vec(), value.to_vec());
            return match self.strong_request(category, move |node, now| node.strong_put(now, &name, &key, &value))? {
                crate::node::StrongAnswer::Written(version) => Ok(version),
                other => Err(NodeError::Internal(format!("a strong write answered {other:?}"))),
            };
        }
        let (category, key, value) = (category.to_owned(), key.to_vec(), value.to_vec());
        self.write(move |control| {
            let now = control.now_ms();
            control.machine.put(now, &category, &key, &value)
        })
    }

    /// Appends `transactions` to the chain category `category` as one block signed by
    /// this node, on its current head; returns the block's height and id once it is
    /// durable. Peers learn it by the chain's sync (announces, then headers-first sync by
    /// locator); fork choice keeps the highest chain (ties: the lowest head id).
    /// `InvalidBlock` over the block limits (nothing appended).
    pub fn chain_append(
        &self,
        category: &str,
        transactions: Vec<Vec<u8>>,
    ) -> Result<(u64, crate::chain::BlockId), NodeError> {
        let category = category.to_owned();
        self.call(move |control| {
            let now = control.now_ms();
            control.machine.chain_append(now, &category, transactions)
        })?
    }

    /// The head of the chain category `category`: its height and block id.
    pub fn chain_head(&self, category: &str) -> Result<(u64, crate::chain::BlockId), NodeError> {
        let category = category.to_owned();
        self.call(move |control| control.machine.chain_head(&category))?
    }

    /// The encoded block at `height` on the main chain of `category` (genesis at 0;
    /// decode with `chain::Block::decode`), or `None` above the head.
    pub fn chain_block(&self, category: &str, height: u64) -> Result<Option<Vec<u8>>, NodeError> {
        let category = category.to_owned();
        self.call(move |control| control.machine.chain_block(&category, height))?
    }

    /// Reads the live value of `key` (`None` when absent or deleted).
    ///
    /// In a strong category the read is linearizable (ReadIndex at the leader) and
    /// refused like a write away from the leader; [`Node::get_stale`] reads locally.
    pub fn get(&self, category: &str, key: &[u8]) -> Result<Option<Vec<u8>>, NodeError> {
        if self.strong.contains(category) {
            let (name, key) = (category.to_owned(), key.to_vec());
            return match self.strong_request(category, move |node, now| node.strong_read(now, &name, &key))? {
                crate::node::StrongAnswer::Read(value) => Ok(value),
                other => Err(NodeError::Internal(format!("a strong read answered {other:?}"))),
            };
        }
        self.get_stale(category, key)
    }

    /// Reads this node's copy of `key` without any check: for a strong category, a
    /// possibly stale read (the explicit stale-read option); otherwise as [`Node::get`].
    pub fn get_stale(&self, category: &str, key: &[u8]) -> Result<Option<Vec<u8>>, NodeError> {
        let (category, key) = (category.to_owned(), key.to_vec());
        self.call(move |driver| driver.machine.core().get(&category, &key).map(|entry| entry.value.to_vec()))
    }

    /// Deletes `key`; returns whether a live value was there. Durable like [`Node::put`].
    pub fn delete(&self, category: &str, key: &[u8]) -> Result<bool, NodeError> {
        let (category, key) = (category.to_owned(), key.to_vec());
        let deleted = self.call(move |control| {
            let now = control.now_ms();
            control.machine.delete(now, &category, &key)
        })??;
        match deleted {
            Some(written) => self.persist(&written.record).map(|()| true),
            None => Ok(false),
        }
    }

    /// Adds `delta` to the counter under `key` (a CRDT category); returns the new value.
    /// Durable like [`Node::put`].
    pub fn counter_add(&self, category: &str, key: &[u8], delta: i64) -> Result<i64, NodeError> {
        let (category, key) = (category.to_owned(), key.to_vec());
        self.write(move |control| {
            let now = control.now_ms();
            control.machine.counter_add(now, &category, &key, delta)
        })
        .map(|(value, _version)| value)
    }

    /// Reads the counter under `key`.
    pub fn counter_get(&self, category: &str, key: &[u8]) -> Result<i64, NodeError> {
        let (category, key) = (category.to_owned(), key.to_vec());
        self.call(move |driver| driver.machine.core().counter_get(&category, &key))?
    }

    /// The hash of every category root: equal on two nodes exactly when they hold the
    /// same state.
    pub fn state_hash(&self) -> Result<Digest, NodeError> {
        self.call(|driver| driver.machine.core().state_hash())
    }

    /// Network time: the node's clock corrected by the offset its peers agree on (the
    /// four-timestamp exchange with its neighbours, the clock filter and Marzullo's
    /// selection; `node::roles::time`), never going backwards from one read to the
    /// next. Alone, or without enough agreeing peers, it is the local clock.
    pub fn network_time(&self) -> Result<NetworkTime, NodeError> {
        self.call(|driver| {
            let local_ms = driver.now_ms();
            let time = driver.machine.time();
            NetworkTime { unix_ms: time.now_ms(local_ms), offset_ms: time.correction_ms() }
        })
    }

    /// The root of one category.
    pub fn category_root(&self, category: &str) -> Result<Digest, NodeError> {
        let name = category.to_owned();
        self.call(move |driver| driver.machine.core().category_root(&name))?
            .ok_or_else(|| NodeError::UnknownCategory(category.to_owned()))
    }

    /// How many entries (tombstones included) a category holds.
    pub fn entry_count(&self, category: &str) -> Result<u64, NodeError> {
        let name = category.to_owned();
        self.call(move |control| control.machine.core().replica().category(&name).map(|state| state.len()))?
            .ok_or_else(|| NodeError::UnknownCategory(category.to_owned()))
    }

    /// Runs anti-entropy with `peer` (or with every connected peer) now and waits until
    /// it finishes or `timeout` passes. Returns one result per peer.
    pub fn sync(&self, peer: Option<NodeId>, timeout: Duration) -> Result<Vec<SyncResult>, NodeError> {
        let (sender, receiver) = mpsc::channel();
        let expected = self.call(move |driver| {
            let done = move |result: SyncResult| {
                let _ = sender.send(result);
            };
            driver.start_sync(peer, done)
        })?;
        let deadline = std::time::Instant::now() + timeout;
        let mut results = Vec::with_capacity(expected);
        while results.len() < expected {
            let left = deadline.checked_duration_since(std::time::Instant::now()).ok_or(NodeError::Timeout)?;
            results.push(receiver.recv_timeout(left).map_err(|_| NodeError::Timeout)?);
        }
        Ok(results)
    }

    /// Cuts the links to `peers` at the transport and refuses them until the next call:
    /// a partition, for tests and the demo. An empty list heals it.
    pub fn partition(&self, peers: Vec<NodeId>) -> Result<(), NodeError> {
        self.call(move |driver| driver.set_blocked(peers.into_iter().collect()))
    }

    /// The peers connected now.
    pub fn peers(&self) -> Result<Vec<NodeId>, NodeError> {
        self.call(|driver| driver.connected_peers())
    }

    /// Waits up to `timeout` for the next event.
    pub fn poll_event(&self, timeout: Duration) -> Option<NodeEvent> {
        self.events.pop(timeout)
    }

    /// The node's figures.
    pub fn metrics(&self) -> Result<NodeMetrics, NodeError> {
        self.call(|driver| {
            let peers = driver.connected_peers();
            NodeMetrics {
                engine: driver.metrics.clone(),
                io: driver.io_stats.clone(),
                core: driver.machine.core().stats(),
                roles: driver.machine.figures(),
                telemetry: driver.telemetry.snapshot(driver.now_ms(), &peers),
                configured_peers: driver.configured_peers(),
                node: driver.node_id(),
                peers,
            }
        })
    }

    /// Writes many entries in one command (bulk loads): one round trip to the engine and
    /// one durable batch instead of one per entry. Stops at the first error.
    pub fn put_many(&self, category: &str, entries: Vec<(Vec<u8>, Vec<u8>)>) -> Result<usize, NodeError> {
        let category = category.to_owned();
        let log = self.log();
        let durable = log.is_some();
        let (count, records) = self.call(move |control| {
            let now = control.now_ms();
            let mut records = Vec::new();
            for (key, value) in &entries {
                let written = control.machine.put(now, &category, key, value)?;
                if durable {
                    records.push(written.record);
                }
            }
            Ok::<_, NodeError>((entries.len(), records))
        })??;
        if let Some(log) = &log {
            let payloads: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
            log.append_batch(&payloads).map_err(not_durable)?;
        }
        Ok(count)
    }

    /// Runs a local write on the engine, then (with a data directory) appends its record
    /// to the log and returns once it is durable: the acknowledgement.
    /// Runs a write on the engine, then makes its record durable here, on the caller's
    /// thread (callers' appends meet in the log's group commit), and only then answers.
    fn write<R, F>(&self, f: F) -> Result<R, NodeError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Control) -> Result<Durable<R>, NodeError> + Send + 'static,
    {
        let written = self.call(f)??;
        self.persist(&written.record)?;
        Ok(written.value)
    }

    /// Appends a write's record to the log, when the node has one.
    fn persist(&self, record: &[u8]) -> Result<(), NodeError> {
        match self.log() {
            Some(log) => log.append(record).map(|_| ()).map_err(not_durable),
            None => Ok(()),
        }
    }

    /// The leader of a strong category's Raft group, as this node knows it.
    pub fn strong_leader(&self, category: &str) -> Result<Option<NodeId>, NodeError> {
        let name = category.to_owned();
        self.call(move |control| control.machine.core().strong_leader(&name))
    }

    /// Adds (`add`) or removes a voter of a strong category's group, one at a time;
    /// returns the voters once the change is committed. See ADR 070 for the steps.
    pub fn change_voter(&self, category: &str, node: NodeId, add: bool) -> Result<Vec<NodeId>, NodeError> {
        let name = category.to_owned();
        match self.strong_request(category, move |machine, now| machine.strong_voter_change(now, &name, node, add))? {
            crate::node::StrongAnswer::Voters(voters) => Ok(voters),
            other => Err(NodeError::Internal(format!("a voter change answered {other:?}"))),
        }
    }

    /// Starts a strong request on the engine and waits for its group's answer.
    fn strong_request<F>(&self, category: &str, start: F) -> Result<crate::node::StrongAnswer, NodeError>
    where
        F: FnOnce(&mut Machine, u64) -> Result<crate::consensus::Ticket, NodeError> + Send + 'static,
    {
        let (sender, receiver) = mpsc::sync_channel(1);
        let name = category.to_owned();
        self.call(move |control| {
            let now = control.now_ms();
            match start(&mut control.machine, now) {
                Ok(ticket) => control.wait_strong(name, ticket, move |result| {
                    let _ = sender.send(result);
                }),
                Err(error) => {
                    let _ = sender.send(Err(error));
                }
            }
        })?;
        receiver.recv_timeout(self.strong_wait).map_err(|_| NodeError::Timeout)?
    }

    /// Registers the host's resolver for a category whose merge rule is custom.
    pub fn set_resolver(&self, category: &str, resolver: crate::crdt::CustomResolver) -> Result<(), NodeError> {
        let category = category.to_owned();
        self.call(move |driver| driver.machine.set_resolver(&category, resolver))?
    }

    /// The health report (status, warnings with recommendations, figures).
    pub fn health(&self) -> Result<crate::metrics::HealthReport, NodeError> {
        let metrics = self.metrics()?;
        let configured = metrics.configured_peers;
        Ok(crate::metrics::HealthReport::from_metrics(metrics, configured))
    }

    /// The health report as JSON.
    pub fn health_json(&self) -> Result<String, NodeError> {
        Ok(self.health()?.to_json())
    }

    /// Entries stored over every category, tombstones included.
    pub fn total_entries(&self) -> Result<u64, NodeError> {
        self.call(|driver| driver.machine.core().replica().categories().map(|category| category.len()).sum())
    }

    /// The node's figures in the Prometheus text exposition format.
    pub fn metrics_prometheus(&self) -> Result<String, NodeError> {
        Ok(crate::metrics::prometheus::render(&self.metrics()?))
    }

    /// Runs `f` on the engine thread and returns its result: the one way into the
    /// protocol state (advanced users and the C ABI use it for what has no method).
    pub fn call<R, F>(&self, f: F) -> Result<R, NodeError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Control) -> R + Send + 'static,
    {
        let (sender, receiver) = mpsc::sync_channel(1);
        let command = Box::new(move |driver: &mut Control| {
            let _ = sender.send(f(driver));
        });
        if !self.engine_running() {
            return Err(NodeError::Closed);
        }
        self.commands.push(command).map_err(|_| NodeError::Busy)?;
        self.waker.wake();
        // The engine answers every command it runs; one that stopped on its own (a fatal
        // error) never will, so the wait checks that it still runs.
        loop {
            match receiver.recv_timeout(std::time::Duration::from_millis(100)) {
                Ok(result) => return Ok(result),
                Err(mpsc::RecvTimeoutError::Disconnected) => return Err(NodeError::Closed),
                Err(mpsc::RecvTimeoutError::Timeout) if !self.engine_running() => return Err(NodeError::Closed),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
    }

    /// Whether the engine thread is still running.
    fn engine_running(&self) -> bool {
        self.thread.lock().map(|thread| thread.as_ref().is_some_and(|handle| !handle.is_finished())).unwrap_or(false)
    }

    /// Closes the node: writes a snapshot, says goodbye to its peers, stops its engine
    /// and releases its data directory. Idempotent.
    pub fn close(&self) -> Result<(), NodeError> {
        let handle = self.thread.lock().map_err(|_| NodeError::Closed)?.take();
        let Some(handle) = handle else { return Ok(()) };
        // Queued behind the commands already waiting, which are answered first.
        let mut stop: crate::engine::commands::Command = Box::new(|control: &mut Control| control.stopping = true);
        while !handle.is_finished() {
            match self.commands.push(stop) {
                Ok(()) => break,
                Err(returned) => {
                    stop = returned;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
        self.waker.wake();
        let joined = handle.join().map_err(|_| NodeError::Internal("the engine thread panicked".into()));
        self.log.lock().map_err(|_| NodeError::Closed)?.take();
        joined
    }

    fn log(&self) -> Option<Arc<Log>> {
        self.log.lock().ok().and_then(|log| log.clone())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The log record of the version of `key` now stored (tombstones included).
fn not_durable(error: StorageError) -> NodeError {
    NodeError::Io(format!("the write was applied in memory but not made durable, so it is not acknowledged: {error}"))
}

/// Opens the data directory's log and replays it into `core`: the newest snapshot, then
/// every record after it.
/// Creates the data directory if needed and opens its log, which takes the directory's
/// lock and verifies what is there.
fn open_log(dir: &std::path::Path) -> Result<(Log, Recovery), NodeError> {
    std::fs::create_dir_all(dir).map_err(|error| {
        NodeError::Io(format!("cannot create data directory {}: {error}; choose a writable --data-dir", dir.display()))
    })?;
    Log::open(dir, LogConfig::default()).map_err(|error| match error {
        StorageError::Locked { .. } => NodeError::Io(format!(
            "data directory {} is in use by another node (its LOCK is held); stop that node or choose another --data-dir",
            dir.display()
        )),
        other => NodeError::Io(format!("cannot open the log in {}: {other}", dir.display())),
    })
}

fn load_identity(config: &NodeConfig) -> Result<Identity, NodeError> {
    if let Some(secret) = config.identity_secret {
        return Ok(Identity::from_secret(secret));
    }
    let path = config.identity_file.clone().or_else(|| config.data_dir.as_ref().map(|dir| dir.join("identity.key")));
    match path {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|error| NodeError::Io(format!("cannot create {}: {error}", parent.display())))?;
            }
            Identity::load_or_generate(&path).map_err(|error| NodeError::Identity(error.to_string()))
        }
        None => Identity::generate().map_err(|error| NodeError::Identity(error.to_string())),
    }
}

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The engine's generator only drives jitter and tie-breaks; it is seeded from the node
/// id and the start time so that two nodes never share a sequence.
fn seed_from(id: &NodeId, now: u64) -> u64 {
    let mut hasher = blake3::Hasher::new();
    hasher.update(id.as_bytes());
    hasher.update(&now.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    let digest = hasher.finalize();
    u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap_or([0; 8]))
}

/// The core's settings from the node's.
fn core_config(config: &NodeConfig) -> CoreConfig {
    CoreConfig {
        // A chain category lives in the chain role, not in the core's replica.
        categories: config.categories.iter().filter(|(_, spec)| spec.mode != Mode::Chain).cloned().collect(),
        shard_count: config.shards.clamp(1, 16),
        anti_entropy_interval_ms: config.anti_entropy_interval.as_millis() as u64,
        strong_voters: config.strong_voters.clone(),
        // The engine persists a leader's Ready after sending its appends (Control::flush).
        strong_group: crate::consensus::GroupConfig { stage_persistence: true, ..config.strong_group.clone() },
        ..CoreConfig::default()
    }
}

/// The wire's settings from the node's.
fn wire_config(config: &NodeConfig, listen_port: u16) -> WireConfig {
    WireConfig {
        plaintext: !config.encryption,
        max_frame_len: config.limits.max_frame_len,
        listen_port: Some(listen_port),
        allowlist: config.allowlist.as_ref().map(|ids| std::sync::Arc::new(ids.iter().copied().collect())),
        ..WireConfig::default()
    }
}

/// Opens the chain of category `name` in `data_dir/chain/<hex of name>`: every node of
/// the network derives the same genesis from the name; this node signs its blocks with
/// a key derived from its identity secret (so its proposer id is stable across restarts).
fn open_chain(
    data_dir: &std::path::Path,
    name: &str,
    identity: &Identity,
    rng: crate::sansio::SeededRng,
    now_ms: u64,
) -> Result<super::roles::ChainRole, NodeError> {
    let genesis_key = blake3::derive_key("bhsync chain genesis signer", name.as_bytes());
    let genesis = crate::chain::Block::create(None, Vec::new(), 0, &ed25519_dalek::SigningKey::from_bytes(&genesis_key));
    let key = ed25519_dalek::SigningKey::from_bytes(&blake3::derive_key("bhsync chain proposer key", identity.secret()));
    let dir = data_dir.join("chain").join(crate::state::node_id::hex(name.as_bytes()));
    let rules = super::roles::ChainRole::recommended_rules();
    let disk = Box::new(crate::storage::FsDisk);
    super::roles::ChainRole::open(disk, &dir, genesis, rules, key, rng, now_ms)
        .map(|(role, _recovered)| role)
        .map_err(|why| NodeError::Io(format!("cannot open the chain of {name:?} in {}: {why}", dir.display())))
}

/// The node's storage epoch (`node::epoch`): kept in the data directory, fresh for a
/// new directory and for a node in memory (each start of which is a new life).
fn storage_epoch(config: &NodeConfig, id: &NodeId, now_ms: u64) -> Result<u64, NodeError> {
    let mut material = id.0.to_vec();
    material.extend_from_slice(&now_ms.to_le_bytes());
    material.extend_from_slice(&std::process::id().to_le_bytes());
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    material.extend_from_slice(&nanos.to_le_bytes());
    let digest = blake3::hash(&material);
    let fresh = u64::from_le_bytes(digest.as_bytes()[..8].try_into().unwrap_or([0; 8]));
    match &config.data_dir {
        Some(dir) => super::epoch::storage_epoch(&crate::storage::FsDisk, dir, fresh).map_err(|error| {
            NodeError::Io(format!("cannot read or create the storage epoch in {}: {error}", dir.display()))
        }),
        None => Ok(fresh),
    }
}

