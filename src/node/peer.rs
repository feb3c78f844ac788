//! What a node core keeps per peer: its transmit queue, its backoff, the sync it runs
//! with the peer (one at a time), the responders serving the peer's syncs, and the
//! whole-category streams going to it. Everything here is bounded by configuration.

use std::collections::{BTreeMap, VecDeque};

use crate::reconcile::{Initiator, Responder};
use crate::state::{Priority, TreePath};

use super::backoff::Backoff;
use super::queue::PriorityQueue;
use super::types::{CategoryOutcome, CategoryReport, SyncId};

/// One peer.
pub(crate) struct Peer {
    pub(crate) connected: bool,
    pub(crate) queue: PriorityQueue,
    pub(crate) backoff: Backoff,
    /// When the next periodic anti-entropy round starts.
    pub(crate) next_round_ms: u64,
    /// When a failed sync is retried (overrides the periodic round).
    pub(crate) retry_at_ms: Option<u64>,
    pub(crate) sync: Option<PeerSync>,
    /// A sync the host asked for while one was running: started when that one ends.
    pub(crate) queued_explicit: Option<SyncId>,
    pub(crate) responders: BTreeMap<u32, ResponderSlot>,
    pub(crate) streams: VecDeque<Stream>,
    /// When a stream of each category to this peer was last fully queued.
    pub(crate) streamed_ms: BTreeMap<String, u64>,
}

/// A responder serving one of the peer's sessions.
pub(crate) struct ResponderSlot {
    pub(crate) responder: Responder,
    pub(crate) category: String,
    pub(crate) last_ms: u64,
}

/// One sync with one peer: every category, in priority order.
pub(crate) struct PeerSync {
    pub(crate) id: SyncId,
    pub(crate) explicit: bool,
    pub(crate) deadline_ms: u64,
    pub(crate) categories: Vec<CategorySync>,
    /// Running sessions by reconciliation session id: category index, scope, session.
    // A BTreeMap, not a HashMap: its order decides the order frames are queued, which
    // must be the same in every run of a seed (the swarm replays runs exactly).
    pub(crate) sessions: BTreeMap<u32, (usize, TreePath, Initiator)>,
}

/// One category's part of a sync.
pub(crate) struct CategorySync {
    pub(crate) name: String,
    pub(crate) priority: Priority,
    pub(crate) pending_scopes: VecDeque<TreePath>,
    pub(crate) running: usize,
    pub(crate) bulk_tried: bool,
    /// Waiting for the peer's stream of the whole category, until this time (extended
    /// by every frame that arrives).
    pub(crate) awaiting_bulk_ms: Option<u64>,
    pub(crate) sending_bulk: bool,
    pub(crate) report: CategoryReport,
    pub(crate) failure: Option<String>,
    pub(crate) changed: bool,
}

impl CategorySync {
    pub(crate) fn new(name: &str, priority: Priority) -> Self {
        CategorySync {
            name: name.to_owned(),
            priority,
            pending_scopes: VecDeque::from([TreePath::ROOT]),
            running: 0,
            bulk_tried: false,
            awaiting_bulk_ms: None,
            sending_bulk: false,
            report: CategoryReport {
                category: name.to_owned(),
                outcome: CategoryOutcome::Equal,
                items_applied: 0,
                items_sent: 0,
                round_trips: 0,
            },
            failure: None,
            changed: false,
        }
    }

    pub(crate) fn is_done(&self) -> bool {
        self.pending_scopes.is_empty() && self.running == 0 && self.awaiting_bulk_ms.is_none() && !self.sending_bulk
    }
}

/// A whole category streaming to the peer, part by part (parts are the keyspace cut by
/// the first `depth` position bits), generated only as the queue drains.
pub(crate) struct Stream {
    pub(crate) sync: u32,
    pub(crate) category: String,
    pub(crate) priority: Priority,
    pub(crate) depth: u32,
    pub(crate) next_part: u64,
    pub(crate) seq: u32,
    pub(crate) compress: bool,
    /// Whether it answers the peer's request (else it is ours, unrequested).
    pub(crate) reply: bool,
    /// The sync of ours this stream belongs to (category index), if any.
    pub(crate) owner: Option<(SyncId, usize)>,
    /// Requests of the peer this stream answers too (it covers the whole category):
    /// each gets an empty last frame when the stream ends.
    pub(crate) also_answers: Vec<u32>,
}

impl Peer {
    pub(crate) fn new(queue_bytes: usize, backoff: Backoff) -> Self {
        Peer {
            connected: false,
            queue: PriorityQueue::new(queue_bytes),
            backoff,
            next_round_ms: 0,
            retry_at_ms: None,
            sync: None,
            queued_explicit: None,
            responders: BTreeMap::new(),
            streams: VecDeque::new(),
            streamed_ms: BTreeMap::new(),
        }
    }
}
