//! The addresses a node dials by address (members learnt through the overlay are dialled
//! by id: `node::links`). Two kinds:
//! - *seeds* (`NodeConfig::peers`): dialled until a link dialled from this list has
//!   completed its handshake once (the node has then joined: SWIM's push-pull through
//!   that link merges the member lists), and again whenever the node has no link at
//!   all; otherwise the overlay decides its links. A link that other nodes opened to
//!   this one is not enough: nodes started together, each seeding the next, could
//!   otherwise form islands that link only among themselves for ever (seen with twelve
//!   processes started at once);
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
    /// A link dialled from this list completed its handshake once.
    joined: bool,
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
        Dialer { slots: Vec::new(), joined: false, backoff, rng }
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

    /// Whether `slot` is to be dialled: a pinned one always, a seed until the node has
    /// joined or while it is `seeking` (has no link).
    fn wanted(&self, slot: &Slot, seeking: bool) -> bool {
        slot.conn.is_none() && (slot.pinned || seeking || !self.joined)
    }

    /// The next slot due for a dial at `now`, if any and if `room` for another link.
    pub fn next_due(&mut self, now: u64, seeking: bool, room: bool) -> Option<(usize, SocketAddr)> {
        if !room {
            return None;
        }
        let index = self.slots.iter().position(|slot| self.wanted(slot, seeking) && slot.next_attempt_ms <= now)?;
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

    /// The link from this slot completed its handshake: the backoff starts over, and the
    /// node has joined.
    pub fn established(&mut self, index: usize) {
        self.slots[index].backoff.reset();
        self.joined = true;
    }

    /// The link from this slot closed (or never connected): dial again after a backoff.
    pub fn closed(&mut self, index: usize, conn: ConnId, now: u64) {
        if self.slots.get(index).is_some_and(|slot| slot.conn == Some(conn)) {
            self.failed(index, now);
        }
    }

    /// The earliest pending dial that [`Dialer::next_due`] would make. Only those: a
    /// seed not wanted now must not hold the deadline in the past, or the engine would
    /// wake without pause (a node spun at 40 % of a core so).
    pub fn next_deadline(&self, seeking: bool) -> Option<u64> {
        self.slots.iter().filter(|slot| self.wanted(slot, seeking)).map(|slot| slot.next_attempt_ms).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialer_with_seed() -> (Dialer, SocketAddr) {
        let mut dialer = Dialer::new(&NodeConfig::default(), SeededRng::new(1));
        let seed: SocketAddr = "127.0.0.1:7700".parse().unwrap();
        dialer.add(seed, false);
        (dialer, seed)
    }

    /// A node that other nodes dialled (so it is not seeking) still dials its seed until
    /// a dial of its own has joined: otherwise nodes started together form islands.
    #[test]
    fn a_seed_is_dialled_until_the_node_has_joined_through_it() {
        let (mut dialer, seed) = dialer_with_seed();
        let (slot, addr) = dialer.next_due(0, false, true).expect("not joined yet: the seed is due");
        assert_eq!(addr, seed);
        dialer.failed(slot, 0);
        let retry = dialer.next_deadline(false).expect("a retry is planned");
        assert!(dialer.next_due(retry - 1, false, true).is_none(), "not before its backoff");
        let (slot, _) = dialer.next_due(retry, false, true).expect("retried though other links are up");
        dialer.connecting(slot, ConnId::new(1, 0));
        dialer.established(slot);
        dialer.closed(slot, ConnId::new(1, 0), retry + 10);
        // Joined: the overlay decides, and the seed is dialled again only with no link.
        // A seed not wanted now sets no deadline: a deadline in the past would wake the
        // engine without pause.
        assert!(dialer.next_due(u64::MAX - 1, false, true).is_none());
        assert_eq!(dialer.next_deadline(false), None, "no deadline for a dial it would not make");
        assert!(dialer.next_due(u64::MAX - 1, true, true).is_some(), "with no link at all the seed is due");
    }

    /// A pinned address is dialled whatever the overlay says and re-dialled after a
    /// backoff; a node without room for another link dials nothing.
    #[test]
    fn a_pinned_address_is_always_due_and_a_full_node_dials_nothing() {
        let (mut dialer, seed) = dialer_with_seed();
        assert!(dialer.next_due(0, true, false).is_none(), "no room for another link");
        dialer.add(seed, true);
        assert!(dialer.is_pinned(0));
        let (slot, _) = dialer.next_due(0, false, true).expect("pinned");
        dialer.connecting(slot, ConnId::new(2, 0));
        dialer.established(slot);
        assert_eq!(dialer.next_deadline(false), None, "connected: nothing pending");
        dialer.closed(slot, ConnId::new(2, 0), 100);
        assert!(dialer.next_deadline(false).is_some_and(|at| at > 100), "a pinned link is re-dialled after a backoff");
    }
}
