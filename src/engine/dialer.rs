//! The addresses a node dials by address (members learnt through the overlay are dialled
//! by id: `node::links`). Two kinds:
//! - *seeds* (`NodeConfig::peers`): dialled while the node has no link at all, to
//!   join; once it has a neighbour the overlay decides its links;
//! - *pinned* addresses (`Node::connect`, `bhs_node_connect`): the host asked for this
//!   link, so it is dialled now, re-dialled whenever it drops, and never closed as
//!   unneeded.
//!
//! A failed dial or a dropped link is retried with exponential backoff and jitter
//! ([`crate::node::Backoff`]), so a peer that is down is retried ever more slowly and
//! nodes that lost a peer together do not all knock at once when it returns.

use std::net::SocketAddr;

use super::io::ConnId;
use crate::node::{Backoff, BackoffConfig, NodeConfig};
use crate::sansio::SeededRng;

struct Slot {
    addr: SocketAddr,
    backoff: Backoff,
    next_attempt_ms: u64,
    conn: Option<ConnId>,
    pinned: bool,
}

/// The dial list.
pub struct Dialer {
    slots: Vec<Slot>,
    backoff: BackoffConfig,
    rng: SeededRng,
}

impl Dialer {
    /// An empty dial list with the node's re-dial settings.
    pub fn new(config: &NodeConfig, rng: SeededRng) -> Dialer {
        let backoff = BackoffConfig {
            initial_ms: config.redial_initial.as_millis() as u64,
            max_ms: config.redial_max.as_millis() as u64,
            factor: 2.0,
        };
        Dialer { slots: Vec::new(), backoff, rng }
    }

    /// How many addresses are on the list.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Adds an address (once); adding a seed's address again as `pinned` pins it.
    pub fn add(&mut self, addr: SocketAddr, pinned: bool) {
        match self.slots.iter_mut().find(|slot| slot.addr == addr) {
            Some(slot) => slot.pinned |= pinned,
            None => self.slots.push(Slot {
                addr,
                backoff: Backoff::new(self.backoff),
                next_attempt_ms: 0,
                conn: None,
                pinned,
            }),
        }
    }

    /// Whether the address dialled from `index` is pinned.
    pub fn is_pinned(&self, index: usize) -> bool {
        self.slots.get(index).is_some_and(|slot| slot.pinned)
    }

    /// The next slot due for a dial at `now`, if any and if `room` for another link:
    /// a pinned one, or a seed while the node is `seeking` (has no link).
    pub fn next_due(&mut self, now: u64, seeking: bool, room: bool) -> Option<(usize, SocketAddr)> {
        if !room {
            return None;
        }
        let index = self
            .slots
            .iter()
            .position(|slot| slot.conn.is_none() && slot.next_attempt_ms <= now && (slot.pinned || seeking))?;
        // Marked as in flight until `connecting` or `failed` says otherwise.
        self.slots[index].next_attempt_ms = u64::MAX;
        Some((index, self.slots[index].addr))
    }

    /// A dial started on `conn`.
    pub fn connecting(&mut self, index: usize, conn: ConnId) {
        self.slots[index].conn = Some(conn);
    }

    /// A dial failed before a connection existed.
    pub fn failed(&mut self, index: usize, now: u64) {
        let slot = &mut self.slots[index];
        slot.conn = None;
        slot.next_attempt_ms = now + slot.backoff.next_delay_ms(&mut self.rng);
    }

    /// The link from this slot completed its handshake: the backoff starts over.
    pub fn established(&mut self, index: usize) {
        self.slots[index].backoff.reset();
    }

    /// The link from this slot closed (or never connected): dial again after a backoff.
    pub fn closed(&mut self, index: usize, conn: ConnId, now: u64) {
        if self.slots.get(index).is_some_and(|slot| slot.conn == Some(conn)) {
            self.failed(index, now);
        }
    }

    /// The earliest pending dial.
    pub fn next_deadline(&self) -> Option<u64> {
        self.slots.iter().filter(|slot| slot.conn.is_none()).map(|slot| slot.next_attempt_ms).min()
    }
}
