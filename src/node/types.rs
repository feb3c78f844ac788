//! What the node core takes and gives: its configuration, transmits, events, errors,
//! peer faults and counters.

use crate::crdt::ResolveError;
use crate::reconcile::SessionConfig;
use crate::state::{CategorySpec, NodeId, Priority, StateError};

use super::backoff::BackoffConfig;

/// The configuration of one node core.
#[derive(Clone, Debug)]
pub struct CoreConfig {
    /// The categories this node holds (others a peer names are refused).
    pub categories: Vec<(String, CategorySpec)>,
    /// Shards per category (1 to 16).
    pub shard_count: usize,
    /// Reconciliation session limits.
    pub session: SessionConfig,
    /// Anti-entropy period per peer; each round is jittered by ±`anti_entropy_jitter`.
    pub anti_entropy_interval_ms: u64,
    /// Fraction of the interval used as jitter (0 to 1).
    pub anti_entropy_jitter: f64,
    /// Stream the whole category instead of sketches when the estimated difference is
    /// at least this fraction of the larger side.
    pub full_sync_threshold: f64,
    /// The largest node message sent or accepted, in bytes.
    pub max_message_len: usize,
    /// Retry backoff after a failed sync.
    pub retry: BackoffConfig,
    /// Bytes a peer's transmit queue may hold.
    pub peer_queue_bytes: usize,
    /// A bulk stream adds frames only while its priority holds fewer queued bytes.
    pub bulk_low_watermark_bytes: usize,
    /// Target entries per bulk frame.
    pub bulk_batch_entries: usize,
    /// Responder sessions one peer may have open.
    pub max_responders_per_peer: usize,
    /// A responder idle this long is dropped.
    pub responder_idle_ms: u64,
    /// Scoped sessions (the split fallback) run at once per category.
    pub max_parallel_scopes: usize,
    /// A sync with a peer that has not finished after this long fails.
    pub sync_timeout_ms: u64,
    /// A pushed write is relayed this many times at most.
    pub max_push_hops: u8,
    /// Local writes held for the next push flush; beyond, anti-entropy carries them.
    pub max_pending_push: usize,
    /// Events held for the host; beyond, they are dropped and counted.
    pub max_events: usize,
    /// Try zstd on batches (kept only where it saves an eighth). Off for links faster
    /// than zstd level 1 (about 250–450 MB/s per core, ADR 006), e.g. loopback.
    pub compress: bool,
    /// The voters of every strong category's Raft group (this node must be one when
    /// a strong category is configured). ADR 070.
    pub strong_voters: Vec<NodeId>,
    /// The Raft settings of strong categories (`id` and `voters` are set per node).
    pub strong_group: crate::consensus::GroupConfig,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            categories: Vec::new(),
            shard_count: 1,
            session: SessionConfig { max_frame_len: (1 << 20) + 4096 + 64, ..SessionConfig::default() },
            anti_entropy_interval_ms: 5_000,
            anti_entropy_jitter: 0.2,
            full_sync_threshold: 0.5,
            max_message_len: (2 << 20) + 1024,
            retry: BackoffConfig::default(),
            peer_queue_bytes: 64 << 20,
            bulk_low_watermark_bytes: 4 << 20,
            bulk_batch_entries: 4_096,
            max_responders_per_peer: 256,
            responder_idle_ms: 30_000,
            max_parallel_scopes: 4,
            sync_timeout_ms: 120_000,
            max_push_hops: 2,
            max_pending_push: 100_000,
            max_events: 100_000,
            compress: true,
            strong_voters: Vec::new(),
            strong_group: crate::consensus::GroupConfig::default(),
        }
    }
}

/// One message for one peer.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Transmit {
    /// The peer.
    pub to: NodeId,
    /// The priority of the category it belongs to.
    pub priority: Priority,
    /// The node message (src/node/message.rs).
    pub bytes: Vec<u8>,
}

/// Names one sync with one peer.
pub type SyncId = u32;

/// How one category's sync went.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum CategoryOutcome {
    /// Equal roots: nothing to do.
    Equal,
    /// Reconciled by sketches (and splits).
    Reconciled,
    /// Streamed whole, then verified.
    Bulk,
    /// Failed, with the reason.
    Failed(String),
}

/// The per-category report of a sync.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct CategoryReport {
    /// The category.
    pub category: String,
    /// How it went.
    pub outcome: CategoryOutcome,
    /// Entries received and stored.
    pub items_applied: u64,
    /// Entries sent.
    pub items_sent: u64,
    /// Reconciliation round trips.
    pub round_trips: u32,
}

/// The record of one finished sync (the host's or the periodic anti-entropy), kept for
/// the metrics: who, when it started and ended, and what each category did.
#[derive(Clone, Debug)]
pub struct FinishedSync {
    /// The peer.
    pub peer: NodeId,
    /// When it started (core time, ms).
    pub started_ms: u64,
    /// When it ended (core time, ms).
    pub ended_ms: u64,
    /// Whether every category succeeded.
    pub ok: bool,
    /// Per-category reports.
    pub reports: Vec<CategoryReport>,
}

/// Why a whole sync failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum SyncError {
    /// The peer is not connected.
    NotConnected,
    /// The peer disconnected during the sync.
    PeerDown,
    /// The sync did not finish in time.
    TimedOut,
    /// Some categories failed (see the reports).
    CategoriesFailed(Vec<CategoryReport>),
}

/// What the host hears about.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NodeEvent {
    /// A peer connection is up.
    PeerUp(NodeId),
    /// A peer connection is down.
    PeerDown(NodeId),
    /// A remote write changed a key.
    Updated {
        /// The category.
        category: String,
        /// The key.
        key: Vec<u8>,
    },
    /// A frame of a whole-category stream was applied (per-key events would be one
    /// per entry of a bulk sync).
    Streamed {
        /// The category.
        category: String,
        /// Entries in the frame (stored or not).
        entries: u64,
    },
    /// A sync finished.
    SyncFinished {
        /// Its id.
        id: SyncId,
        /// The peer.
        peer: NodeId,
        /// Per-category reports, or why it failed.
        result: Result<Vec<CategoryReport>, SyncError>,
    },
    /// The engine stopped on an error it cannot recover from (say which).
    Fatal(String),
    /// Two versions of a key conflicted and were resolved by the category's rule.
    Conflict {
        /// The category.
        category: String,
        /// The key.
        key: Vec<u8>,
        /// Whether the result is a new (merged) version.
        merged: bool,
        /// Set when the rule failed and the last writer won instead.
        error: Option<ResolveError>,
    },
    /// A strong category's Raft leader changed, as this node knows it.
    Leader {
        /// The category.
        category: String,
        /// The leader, if one is known.
        leader: Option<NodeId>,
        /// The Raft term.
        term: u64,
    },
    /// This node lost (`reachable: false`) or regained contact with a quorum of a
    /// strong category's voters: the partition event. While cut off, its writes and
    /// linearizable reads are answered at once with `NotLeader` or `ReadOnly`.
    Partition {
        /// The category.
        category: String,
        /// Whether a quorum is reachable.
        reachable: bool,
    },
    /// Membership's verdict on a member changed (SWIM with Lifeguard), or this node
    /// found itself on a minority side of the membership, or not any more.
    Membership(crate::membership::MembershipEvent),
}

/// Misbehaviour by a peer, for the engine to score (nothing of it was applied).
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum PeerFault {
    /// A message did not decode.
    Malformed(String),
    /// A message over the configured cap.
    Oversized,
    /// An entry that fails validation (bounds, CRDT encoding, unadvertised).
    InvalidItem(String),
    /// A batch or entry that does not match its digest.
    DigestMismatch,
    /// A category this node does not hold.
    UnknownCategory(String),
    /// Too many sessions or frames.
    Flood,
    /// The peer broke the reconciliation protocol.
    Protocol(String),
}

/// Kinds of [`PeerFault`], for counters.
pub const FAULT_KINDS: usize = 7;

impl PeerFault {
    /// The counter index of this fault.
    pub fn kind_index(&self) -> usize {
        match self {
            PeerFault::Malformed(_) => 0,
            PeerFault::Oversized => 1,
            PeerFault::InvalidItem(_) => 2,
            PeerFault::DigestMismatch => 3,
            PeerFault::UnknownCategory(_) => 4,
            PeerFault::Flood => 5,
            PeerFault::Protocol(_) => 6,
        }
    }
}

/// Why a host command failed.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum NodeError {
    /// The category is not configured.
    UnknownCategory(String),
    /// The command needs another merge rule (e.g. a counter in an LWW category).
    WrongMergeRule(String),
    /// A value is not a valid CRDT encoding, or the CRDT operation failed.
    Crdt(String),
    /// A block the host asked for breaks the chain's limits (nothing was appended).
    InvalidBlock(String),
    /// The state layer refused (bounds, names, shard count).
    State(StateError),
    /// The configuration cannot work.
    InvalidConfig(&'static str),
    /// A socket, file or thread could not be set up (the message says which and why).
    Io(String),
    /// The identity key could not be loaded or created.
    Identity(String),
    /// The engine's command queue is full: retry shortly.
    Busy,
    /// The node is closed.
    Closed,
    /// The call did not finish in time.
    Timeout,
    /// A bug: please report it with the message.
    Internal(String),
    /// A strong category: this node does not lead its group; ask the leader (its id
    /// when known). Nothing was written.
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// A strong category: no quorum is reachable from here (this side of a partition
    /// is a minority, or an election is under way); or an eventual category whose
    /// partition policy is `ReadOnly` while membership sees this node on a minority
    /// side. Nothing was written; reads (`get_stale` for strong) still work.
    ReadOnly,
    /// A strong category: the write was proposed but its leader was lost or it timed
    /// out before committing; it may or may not be applied later.
    Indeterminate,
    /// The operation is not available in this category's mode (the message says why).
    WrongMode(String),
}

impl std::fmt::Display for NodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NodeError::UnknownCategory(name) => write!(f, "unknown category {name:?}"),
            NodeError::WrongMergeRule(what) => write!(f, "wrong merge rule: {what}"),
            NodeError::Crdt(what) => write!(f, "CRDT error: {what}"),
            NodeError::InvalidBlock(why) => write!(f, "block refused: {why}"),
            NodeError::State(error) => write!(f, "{error}"),
            NodeError::InvalidConfig(why) => write!(f, "invalid configuration: {why}"),
            NodeError::Io(what) => write!(f, "{what}"),
            NodeError::Identity(what) => write!(f, "identity key: {what}"),
            NodeError::Busy => write!(f, "the node's command queue is full; retry shortly"),
            NodeError::Closed => write!(f, "the node is closed"),
            NodeError::Timeout => write!(f, "the call did not finish in time"),
            NodeError::Internal(what) => write!(f, "internal error (please report): {what}"),
            NodeError::NotLeader { leader: Some(id) } => write!(f, "not the leader; the leader is {}", id.short()),
            NodeError::NotLeader { leader: None } => write!(f, "not the leader; no leader is known"),
            NodeError::ReadOnly => {
                write!(f, "read-only: no quorum or majority reachable from this side of a partition (reads still work)")
            }
            NodeError::Indeterminate => write!(f, "the write lost its leader or timed out: it may or may not apply"),
            NodeError::WrongMode(what) => write!(f, "wrong category mode: {what}"),
        }
    }
}

impl std::error::Error for NodeError {}

impl From<StateError> for NodeError {
    fn from(error: StateError) -> Self {
        NodeError::State(error)
    }
}

/// What a core holds at one moment: the quantities its configuration bounds.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ResourceUsage {
    /// Peers known (connected or not).
    pub peers: usize,
    /// Bytes queued for the peer with the longest queue.
    pub largest_queue_bytes: usize,
    /// Responder sessions open for the busiest peer.
    pub largest_responders: usize,
    /// Local writes waiting for the next push.
    pub pending_push: usize,
    /// Events waiting for the host.
    pub events: usize,
}

/// Counters for metrics.
#[derive(Clone, PartialEq, Eq, Debug, Default)]
pub struct CoreStats {
    /// Entries received from peers and stored.
    pub items_in: u64,
    /// Entries sent to peers (pushes and bulk streams).
    pub items_out: u64,
    /// Message bytes received.
    pub bytes_in: u64,
    /// Message bytes handed to the engine.
    pub bytes_out: u64,
    /// Syncs started.
    pub syncs_started: u64,
    /// Syncs that finished without error.
    pub syncs_succeeded: u64,
    /// Syncs that failed (and were retried).
    pub syncs_failed: u64,
    /// Categories streamed whole.
    pub bulk_syncs: u64,
    /// Conflicts resolved by a CRDT or custom rule.
    pub conflicts: u64,
    /// Conflicts whose rule failed (the last writer won).
    pub conflicts_unresolved: u64,
    /// Faults by kind (see [`PeerFault::kind_index`]).
    pub faults: [u64; FAULT_KINDS],
    /// Messages sent compressed.
    pub compressed_messages: u64,
    /// Pushes dropped (queue full or too many pending writes).
    pub pushes_dropped: u64,
    /// Events dropped because the host did not poll.
    pub events_dropped: u64,
}
