//! The configuration of a running node: where it listens, who it dials, which IO
//! backend and how many shards it uses, its identity, its limits and its categories.
//!
//! Every field has a default that runs a single node on an ephemeral loopback port, so a
//! test or an embedding host only sets what it cares about.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::io::BackendChoice;
use crate::state::{CategorySpec, Mode, NodeId};
use crate::wire::{LimitsConfig, DEFAULT_MAX_FRAME_LEN};

/// How a node is configured. Build one with [`NodeConfig::default`] and set fields.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The TCP address to listen on (port 0: any free port; see `Node::local_addr`).
    pub listen: SocketAddr,
    /// The data directory (identity key, log, snapshots). `None`: in memory only, with a
    /// fresh identity each start.
    pub data_dir: Option<PathBuf>,
    /// Where the identity key lives; default `data_dir/identity.key`.
    pub identity_file: Option<PathBuf>,
    /// A fixed identity secret (tests and simulations); overrides `identity_file`.
    pub identity_secret: Option<[u8; 32]>,
    /// Peers dialled at start and re-dialled with backoff whenever their link drops
    /// (seeds: one is enough; the node learns the others' addresses through them).
    pub peers: Vec<SocketAddr>,
    /// The overlay's active view: the neighbours (HyParView) the node keeps links to,
    /// and so, with a few short-lived ones, the connections it holds (1 to 64; 5 by
    /// default, HyParView's choice for 10,000 nodes). Configured peers are seeds: dialled
    /// until the node has a neighbour, then the overlay decides.
    pub target_peers: usize,
    /// How new writes travel on the overlay: Plumtree's tree (the default) or the seed
    /// design's push gossip, kept to be measured against (`benches/cluster.rs`).
    pub dissemination: crate::gossip::Dissemination,
    /// When set, only these node ids may connect (both directions).
    pub allowlist: Option<Vec<NodeId>>,
    /// Shards: one pinned thread each. Shard 0 also runs the control role (network,
    /// gossip fan-out, anti-entropy, time).
    pub shards: usize,
    /// Which cores the shards are pinned to, in shard order (default: 0, 1, 2, …).
    pub cores: Option<Vec<usize>>,
    /// io_uring, mio, or io_uring with a fallback to mio (the default).
    pub io_backend: BackendChoice,
    /// Encrypt frames after the handshake (the default). Both ends must agree to turn it
    /// off; authentication by the handshake happens either way.
    pub encryption: bool,
    /// The categories this node holds, by name.
    pub categories: Vec<(String, CategorySpec)>,
    /// Rate limits, peer count and memory bounds.
    pub limits: Limits,
    /// Anti-entropy with every peer at this interval (with jitter).
    pub anti_entropy_interval: Duration,
    /// A snapshot of the state is written to the data directory at this interval (and
    /// at close), so recovery replays only the log records after it.
    pub snapshot_interval: Duration,
    /// Re-dialling a lost peer: first delay; doubled per failure up to `redial_max`.
    pub redial_initial: Duration,
    /// The longest delay between two dials of one peer.
    pub redial_max: Duration,
    /// The voters of every strong category's Raft group; a node holding a strong
    /// category must be one of them (ADR 070).
    pub strong_voters: Vec<NodeId>,
    /// Raft settings of strong categories (`id` and `voters` are set per node).
    pub strong_group: crate::consensus::GroupConfig,
}

/// The bounds a node enforces on each peer and on itself, beyond the wire's rate limits.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Rate limits, misbehaviour threshold, peer count, handshake rates (the wire's).
    pub wire: LimitsConfig,
    /// The largest frame accepted or sent, in bytes.
    pub max_frame_len: u32,
    /// A connection that has not finished its handshake after this long is closed
    /// (slowloris).
    pub handshake_timeout: Duration,
    /// Bytes queued towards one peer at most; a peer that does not read is disconnected.
    pub max_send_queue: usize,
    /// An established link on which nothing arrived for this long is closed (quiet
    /// links are pinged at a third of it, so only a dead or stalled peer stays silent).
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wire: LimitsConfig::default(),
            max_frame_len: DEFAULT_MAX_FRAME_LEN,
            handshake_timeout: Duration::from_secs(5),
            max_send_queue: 64 << 20,
            idle_timeout: Duration::from_secs(30),
        }
    }
}

impl NodeConfig {
    /// Refuses what the running node cannot honour, rather than running something else
    /// in its place (a silent downgrade): more than one `Mode::Chain` category (the node
    /// runs one chain), or a chain without a data directory (its blocks are durable in
    /// the chain's log there).
    pub fn check_supported(&self) -> Result<(), super::NodeError> {
        let chains = self.chain_categories().count();
        if chains > 1 {
            return Err(super::NodeError::InvalidConfig(
                "a node runs one chain: configure at most one category with mode=chain",
            ));
        }
        if chains == 1 && self.data_dir.is_none() {
            return Err(super::NodeError::InvalidConfig(
                "a chain category needs a data directory (its blocks are made durable there): set data_dir",
            ));
        }
        if !(2..=64).contains(&self.target_peers) {
            return Err(super::NodeError::InvalidConfig(
                "target_peers is the overlay's active view (the links a node keeps): choose 2 to 64 (default 5)",
            ));
        }
        Ok(())
    }

    /// The names of the categories with `mode=chain`.
    pub fn chain_categories(&self) -> impl Iterator<Item = &str> {
        self.categories.iter().filter(|(_, spec)| spec.mode == Mode::Chain).map(|(name, _)| name.as_str())
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: None,
            identity_file: None,
            identity_secret: None,
            peers: Vec::new(),
            target_peers: 5,
            dissemination: crate::gossip::Dissemination::Tree,
            allowlist: None,
            shards: 1,
            cores: None,
            io_backend: BackendChoice::Auto,
            encryption: true,
            categories: vec![("default".to_string(), CategorySpec::default())],
            limits: Limits::default(),
            anti_entropy_interval: Duration::from_secs(2),
            snapshot_interval: Duration::from_secs(300),
            redial_initial: Duration::from_millis(100),
            redial_max: Duration::from_secs(10),
            strong_voters: Vec::new(),
            strong_group: crate::consensus::GroupConfig::default(),
        }
    }
}
