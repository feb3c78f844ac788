//! Where peers listen: the node's address book and its exchange with peers, so that a
//! node started from one seed learns the addresses of the others and stays in the
//! network when its seed leaves (issue 16).
//!
//! **Observed, then told.** The driver reports what it observed itself: the address a
//! peer listens on, proved by a handshake over a connection from it (the remote IP and
//! the listen port of its Hello). Those are the only addresses this node tells others,
//! a sample at a time ([`SAMPLE_MAX`]), to a new session at once and to one session
//! every [`EXCHANGE_INTERVAL_MS`]. What peers tell is kept as a hint: a wrong hint
//! costs one dial, whose handshake then proves a different key (or none) and is
//! dropped, so an address is authenticated when it is used, never trusted before.
//! Observations replace hints, never the other way round.
//!
//! Message (little endian; anything else is a [`Fault`]):
//!
//! ```text
//! Addresses 0x01 · count u8 (≤ SAMPLE_MAX) · count × (id [32] · family u8 (4 | 6) · ip [4 | 16] · port u16)
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::role::Fault;
use crate::sansio::SeededRng;
use crate::state::NodeId;

const ADDRESSES: u8 = 1;
/// Entries in one message at most.
pub const SAMPLE_MAX: usize = 32;
/// Entries kept at most; beyond, hints are dropped (observations evict hints).
pub const BOOK_MAX: usize = 4_096;
/// Between two unprompted exchanges (local elapsed time).
pub const EXCHANGE_INTERVAL_MS: u64 = 5_000;
/// Messages queued at most; beyond, new ones are dropped.
const OUTBOX_MAX: usize = 256;

/// How an address was learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// This node saw the peer connect from it (proved by the handshake).
    Observed,
    /// A peer said so (checked by the handshake when dialled).
    Told,
}

/// The address book and its exchange.
#[derive(Debug)]
pub struct Addresses {
    me: NodeId,
    book: BTreeMap<NodeId, (SocketAddr, Source)>,
    rng: SeededRng,
    next_exchange_ms: u64,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
}

impl Addresses {
    /// An empty book for node `me`.
    pub fn new(me: NodeId, rng: SeededRng, now_ms: u64) -> Addresses {
        Addresses {
            me,
            book: BTreeMap::new(),
            rng,
            next_exchange_ms: now_ms + EXCHANGE_INTERVAL_MS,
            outbox: VecDeque::new(),
        }
    }

    // Getters.

    /// The address `peer` listens on, if known.
    pub fn address_of(&self, peer: &NodeId) -> Option<SocketAddr> {
        self.book.get(peer).map(|(addr, _)| *addr)
    }

    /// Every known address.
    pub fn known(&self) -> impl Iterator<Item = (NodeId, SocketAddr)> + '_ {
        self.book.iter().map(|(id, (addr, _))| (*id, *addr))
    }

    /// Entries in the book.
    pub fn len(&self) -> usize {
        self.book.len()
    }

    /// Whether the book is empty.
    pub fn is_empty(&self) -> bool {
        self.book.is_empty()
    }

    // Inputs.

    /// The driver proved that `peer` listens on `addr`.
    pub fn observe(&mut self, peer: NodeId, addr: SocketAddr) {
        if peer == self.me {
            return;
        }
        if self.book.len() >= BOOK_MAX && !self.book.contains_key(&peer) {
            // Make room by dropping a hint; a full book of observations keeps them.
            let Some(hint) = self.book.iter().find(|(_, (_, source))| *source == Source::Told).map(|(id, _)| *id)
            else {
                return;
            };
            self.book.remove(&hint);
        }
        self.book.insert(peer, (addr, Source::Observed));
    }

    /// A session with `peer` is up: it hears what this node observed at once.
    pub fn handle_peer_up(&mut self, peer: NodeId) {
        self.send_sample(peer);
    }

    /// A message from `from`.
    pub fn handle_message(&mut self, from: NodeId, bytes: &[u8]) -> Result<(), Fault> {
        for (peer, addr) in decode(bytes)? {
            if peer == self.me || peer == from && self.book.contains_key(&peer) {
                continue; // A peer's word about itself adds nothing to what was observed.
            }
            let known = self.book.contains_key(&peer);
            if !known && self.book.len() < BOOK_MAX {
                self.book.insert(peer, (addr, Source::Told));
            }
        }
        Ok(())
    }

    /// Time passed: one session hears a sample now and then.
    pub fn handle_timeout(&mut self, now_ms: u64, peers: &[NodeId]) {
        if now_ms < self.next_exchange_ms {
            return;
        }
        self.next_exchange_ms = now_ms + EXCHANGE_INTERVAL_MS;
        if !peers.is_empty() {
            let peer = peers[self.rng.index(peers.len())];
            self.send_sample(peer);
        }
    }

    fn send_sample(&mut self, to: NodeId) {
        let mut observed: Vec<(NodeId, SocketAddr)> = self
            .book
            .iter()
            .filter(|(id, (_, source))| **id != to && *source == Source::Observed)
            .map(|(id, (addr, _))| (*id, *addr))
            .collect();
        if observed.is_empty() || self.outbox.len() >= OUTBOX_MAX {
            return;
        }
        self.rng.shuffle(&mut observed);
        observed.truncate(SAMPLE_MAX);
        self.outbox.push_back((to, encode(&observed)));
    }

    // Outputs.

    /// The next message, and to whom.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }

    /// When [`Addresses::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> u64 {
        self.next_exchange_ms
    }
}

/// The encoding of a sample.
pub fn encode(entries: &[(NodeId, SocketAddr)]) -> Vec<u8> {
    debug_assert!(entries.len() <= SAMPLE_MAX, "a sample is at most SAMPLE_MAX entries");
    let mut out = Vec::with_capacity(2 + entries.len() * 51);
    out.push(ADDRESSES);
    out.push(entries.len().min(SAMPLE_MAX) as u8);
    for (id, addr) in entries.iter().take(SAMPLE_MAX) {
        out.extend_from_slice(&id.0);
        match addr.ip() {
            IpAddr::V4(ip) => {
                out.push(4);
                out.extend_from_slice(&ip.octets());
            }
            IpAddr::V6(ip) => {
                out.push(6);
                out.extend_from_slice(&ip.octets());
            }
        }
        out.extend_from_slice(&addr.port().to_le_bytes());
    }
    out
}

/// Decodes a sample; anything but an exact, bounded encoding is a fault.
pub fn decode(bytes: &[u8]) -> Result<Vec<(NodeId, SocketAddr)>, Fault> {
    let fault = |why: &str| Fault(format!("addresses: {why}"));
    let (&tag, rest) = bytes.split_first().ok_or_else(|| fault("empty"))?;
    let (&count, mut rest) = rest.split_first().ok_or_else(|| fault("no count"))?;
    if tag != ADDRESSES || count as usize > SAMPLE_MAX {
        return Err(fault("unknown tag or too many entries"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (id, tail) = take(rest, 32).ok_or_else(|| fault("truncated id"))?;
        let (&family, tail) = tail.split_first().ok_or_else(|| fault("truncated family"))?;
        let (ip, tail) = match family {
            4 => take(tail, 4)
                .map(|(ip, tail)| (IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(ip).unwrap_or_default())), tail)),
            6 => take(tail, 16)
                .map(|(ip, tail)| (IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).unwrap_or_default())), tail)),
            _ => return Err(fault("unknown address family")),
        }
        .ok_or_else(|| fault("truncated address"))?;
        let (port, tail) = take(tail, 2).ok_or_else(|| fault("truncated port"))?;
        let id = NodeId(id.try_into().map_err(|_| fault("id"))?);
        entries.push((id, SocketAddr::new(ip, u16::from_le_bytes([port[0], port[1]]))));
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(fault("trailing bytes"));
    }
    Ok(entries)
}

fn take(bytes: &[u8], len: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= len).then(|| bytes.split_at(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> NodeId {
        NodeId([n; 32])
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn samples_round_trip_for_both_families() {
        let entries = vec![(id(1), addr(7000)), (id(2), "[::1]:9000".parse().expect("v6"))];
        assert_eq!(decode(&encode(&entries)).expect("decodes"), entries);
    }

    #[test]
    fn truncated_oversized_and_trailing_samples_are_faults() {
        let good = encode(&[(id(1), addr(7000))]);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(decode(&trailing).is_err());
        let mut oversized = good;
        oversized[1] = SAMPLE_MAX as u8 + 1;
        assert!(decode(&oversized).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut rng = SeededRng::new(7);
        for _ in 0..20_000 {
            let len = rng.below(120) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            if let Some(first) = bytes.first_mut() {
                *first = ADDRESSES; // reach past the tag most of the time
            }
            let _ = decode(&bytes);
        }
    }

    #[test]
    fn observations_are_told_and_hints_are_not_and_never_replace_them() {
        let mut book = Addresses::new(id(0), SeededRng::new(1), 0);
        book.observe(id(1), addr(7001));
        book.handle_message(id(1), &encode(&[(id(2), addr(7002)), (id(1), addr(1))])).expect("valid");
        assert_eq!(book.address_of(&id(1)), Some(addr(7001)), "a hint never replaces an observation");
        assert_eq!(book.address_of(&id(2)), Some(addr(7002)), "a hint is kept");
        book.handle_peer_up(id(3));
        let (to, bytes) = book.poll_transmit().expect("a sample for the new session");
        assert_eq!(to, id(3));
        assert_eq!(decode(&bytes).expect("decodes"), vec![(id(1), addr(7001))], "only observations are told");
    }

    #[test]
    fn the_book_is_bounded_and_observations_evict_hints() {
        let mut book = Addresses::new(id(0), SeededRng::new(1), 0);
        for n in 0..BOOK_MAX as u32 {
            let mut peer = [0u8; 32];
            peer[..4].copy_from_slice(&(n + 1).to_le_bytes());
            let _ = book.handle_message(id(9), &encode(&[(NodeId(peer), addr(1))]));
        }
        assert_eq!(book.len(), BOOK_MAX);
        let _ = book.handle_message(id(9), &encode(&[(id(200), addr(2))]));
        assert_eq!(book.len(), BOOK_MAX, "hints beyond the bound are dropped");
        book.observe(id(201), addr(3));
        assert_eq!(book.address_of(&id(201)), Some(addr(3)), "an observation evicts a hint");
        assert_eq!(book.len(), BOOK_MAX);
    }
}
