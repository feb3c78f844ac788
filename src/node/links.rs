//! Which peers a node holds links to, and what it asks its driver to dial and close
//! (issue 16, ADR 081). The node keeps links to its overlay's active view (HyParView:
//! a small random set of neighbours), to its strong groups' voters, and — for a short
//! while — to whoever a role just needed to reach (a SWIM indirect probe, a HyParView
//! NEIGHBOR request, a shuffle reply). Everything else is closed once quiet, so the
//! connections a node holds are bounded by its active view, not by the group's size.
//!
//! A frame to a member without a link is parked while its link is dialled, and sent
//! when the link comes up (or dropped after [`PARK_MS`]). A neighbour whose link broke
//! (the peer crashed, or the network cut it) is remembered as *lost*: membership keeps
//! probing it, so it is declared dead by the peers that were its neighbours, and what
//! they conclude reaches everyone on membership's piggyback.
//!
//! Anti-entropy runs over the core's sessions, which follow the links; so that repair
//! does not depend on the active view alone (a view graph cut in two by failures would
//! hold two states apart), the node also *visits* a random member of its passive view
//! now and then (HyParView's passive view as the rotation the design asks for): the
//! link is dialled, held for [`VISIT_MS`] (the session's first anti-entropy round runs
//! as it opens), then closed like any other.
//!
//! A driver that links every member (the swarm) does not manage links: then nothing is
//! dialled, parked or closed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::SocketAddr;

use super::machine::Channel;
use crate::sansio::SeededRng;
use crate::state::NodeId;

/// Between two dial plans (ms of the driver's clock).
pub const DIAL_INTERVAL_MS: u64 = 250;
/// A member is not dialled again sooner than this after a dial.
pub const REDIAL_MS: u64 = 5_000;
/// How long a link outside the active view stays open after a role last needed it.
pub const LINGER_MS: u64 = 1_000;
/// How long a frame waits for its link to come up.
pub const PARK_MS: u64 = 3_000;
/// How long a lost neighbour stays in membership's probe scope (a few suspicion
/// timeouts; it leaves earlier when declared dead or linked again).
pub const LOST_MS: u64 = 30_000;
/// How long a visit to a passive member holds its link.
pub const VISIT_MS: u64 = 5_000;
/// Between two visits.
pub const VISIT_INTERVAL_MS: u64 = 10_000;
/// Members with parked frames at most, and frames parked per member at most.
const PARKED_PEERS_MAX: usize = 64;
const PARKED_FRAMES_MAX: usize = 32;
/// Members waiting for a dial, and lost neighbours, at most.
const WANTED_MAX: usize = 1_024;
const LOST_MAX: usize = 256;

struct Parked {
    until_ms: u64,
    frames: Vec<(Channel, Vec<u8>)>,
}

/// The node's links and its plans for them.
pub struct Links {
    managed: bool,
    up: BTreeSet<NodeId>,
    /// When a role last needed each linked peer (overlay or membership traffic).
    needed: BTreeMap<NodeId, u64>,
    /// Peers the node asked its driver to close, until their link is down.
    closing: BTreeSet<NodeId>,
    lost: BTreeMap<NodeId, u64>,
    wanted: BTreeSet<NodeId>,
    parked: BTreeMap<NodeId, Parked>,
    dialled: BTreeMap<NodeId, u64>,
    dials: VecDeque<(NodeId, SocketAddr)>,
    closes: VecDeque<NodeId>,
    next_plan_ms: u64,
    /// Passive members visited, until when their link is held.
    visits: BTreeMap<NodeId, u64>,
    next_visit_ms: u64,
    rng: SeededRng,
    /// Visits started.
    pub visits_started: u64,
    /// Frames dropped because their link never came up.
    pub parked_dropped: u64,
}

/// What [`Links::plan`] needs to know of the rest of the node.
pub struct PlanInput<'a> {
    /// The overlay's active view: links kept.
    pub active: &'a BTreeSet<NodeId>,
    /// Peers whose links are kept whatever the overlay says (strong voters).
    pub pinned: &'a [NodeId],
    /// Where members listen, as far as the node knows.
    pub known: Vec<(NodeId, SocketAddr)>,
    /// Members declared dead or banned: never dialled.
    pub excluded: &'a dyn Fn(&NodeId) -> bool,
}

impl Links {
    /// No links yet. `managed`: the node plans dials and closes (the engine); else its
    /// driver links every member (the swarm).
    pub fn new(managed: bool, rng: SeededRng, now_ms: u64) -> Links {
        Links {
            managed,
            up: BTreeSet::new(),
            needed: BTreeMap::new(),
            closing: BTreeSet::new(),
            lost: BTreeMap::new(),
            wanted: BTreeSet::new(),
            parked: BTreeMap::new(),
            dialled: BTreeMap::new(),
            dials: VecDeque::new(),
            closes: VecDeque::new(),
            next_plan_ms: now_ms,
            visits: BTreeMap::new(),
            next_visit_ms: now_ms + VISIT_INTERVAL_MS,
            rng,
            visits_started: 0,
            parked_dropped: 0,
        }
    }

    /// Whether the node plans its links.
    pub fn managed(&self) -> bool {
        self.managed
    }
    /// Peers linked now.
    pub fn up(&self) -> &BTreeSet<NodeId> {
        &self.up
    }
    /// Whether `peer` is linked.
    pub fn is_up(&self, peer: &NodeId) -> bool {
        self.up.contains(peer)
    }
    /// The members membership may probe: the neighbours the node keeps (`kept`: the
    /// active view and strong voters) and lost neighbours; `None` when the driver links
    /// every member. Not every linked peer: probing a link kept only for a moment would
    /// keep it needed, and it would never close.
    pub fn probe_scope(&self, kept: impl Iterator<Item = NodeId>) -> Option<BTreeSet<NodeId>> {
        self.managed.then(|| kept.chain(self.lost.keys().copied()).collect())
    }

    /// A link came up; returns the frames parked for it.
    pub fn link_up(&mut self, now_ms: u64, peer: NodeId) -> Vec<(Channel, Vec<u8>)> {
        self.up.insert(peer);
        self.lost.remove(&peer);
        self.closing.remove(&peer);
        self.needed.insert(peer, now_ms);
        self.parked.remove(&peer).map(|parked| parked.frames).unwrap_or_default()
    }

    /// A link went down; `neighbour`: the peer was in the active view (or pinned), so
    /// losing it is news membership should check. A link the node closed itself is not.
    pub fn link_down(&mut self, now_ms: u64, peer: NodeId, neighbour: bool) {
        self.up.remove(&peer);
        self.needed.remove(&peer);
        let closed_here = self.closing.remove(&peer);
        if self.managed && neighbour && !closed_here && self.lost.len() < LOST_MAX {
            self.lost.insert(peer, now_ms);
        }
    }

    /// Membership settled on `peer` (dead, left, or alive through someone): it is no
    /// longer lost.
    pub fn settled(&mut self, peer: &NodeId) {
        self.lost.remove(peer);
    }

    /// A role needed `peer` now (it sent to it or heard from it).
    pub fn note_needed(&mut self, now_ms: u64, peer: NodeId) {
        if let Some(at) = self.needed.get_mut(&peer) {
            *at = now_ms;
        }
    }

    /// Routes a frame: `Some` to send now; `None` when it was parked for a dial.
    pub fn route(&mut self, now_ms: u64, to: NodeId, channel: Channel, payload: Vec<u8>) -> Option<(Channel, Vec<u8>)> {
        if matches!(channel, Channel::Gossip | Channel::Membership) {
            self.note_needed(now_ms, to);
        }
        if !self.managed || self.up.contains(&to) {
            return Some((channel, payload));
        }
        if self.wanted.len() < WANTED_MAX {
            self.wanted.insert(to);
        }
        if !self.parked.contains_key(&to) && self.parked.len() >= PARKED_PEERS_MAX {
            self.parked_dropped += 1;
            return None;
        }
        let parked = self.parked.entry(to).or_insert_with(|| Parked { until_ms: now_ms + PARK_MS, frames: Vec::new() });
        if parked.frames.len() < PARKED_FRAMES_MAX {
            parked.frames.push((channel, payload));
        } else {
            self.parked_dropped += 1;
        }
        None
    }

    /// Every [`VISIT_INTERVAL_MS`], visits one of `passive` (a member of the passive
    /// view not linked now) for [`VISIT_MS`].
    pub fn visit(&mut self, now_ms: u64, passive: &[NodeId]) {
        if !self.managed || now_ms < self.next_visit_ms {
            return;
        }
        self.next_visit_ms = now_ms + VISIT_INTERVAL_MS;
        let candidates: Vec<NodeId> = passive.iter().filter(|id| !self.up.contains(id)).copied().collect();
        if candidates.is_empty() {
            return;
        }
        let peer = candidates[self.rng.index(candidates.len())];
        self.visits.insert(peer, now_ms + VISIT_MS);
        self.visits_started += 1;
        if self.wanted.len() < WANTED_MAX {
            self.wanted.insert(peer);
        }
    }

    /// Periodic work: drops frames that waited too long, forgets old lost neighbours,
    /// dials what roles want (or a known member when the node is stranded), and closes
    /// links no role needs.
    pub fn plan(&mut self, now_ms: u64, input: PlanInput<'_>) {
        if !self.managed || now_ms < self.next_plan_ms {
            return;
        }
        self.next_plan_ms = now_ms + DIAL_INTERVAL_MS;
        let expired: Vec<NodeId> =
            self.parked.iter().filter(|(_, p)| now_ms >= p.until_ms).map(|(id, _)| *id).collect();
        for peer in expired {
            if let Some(parked) = self.parked.remove(&peer) {
                self.parked_dropped += parked.frames.len() as u64;
            }
        }
        self.lost.retain(|_, since| now_ms < since.saturating_add(LOST_MS));
        self.visits.retain(|_, until| now_ms < *until);
        self.dialled.retain(|_, at| now_ms < at.saturating_add(REDIAL_MS));
        let address_of = |peer: &NodeId| input.known.iter().find(|(id, _)| id == peer).map(|(_, addr)| *addr);
        let mut wanted = std::mem::take(&mut self.wanted);
        wanted.extend(input.pinned.iter().copied());
        for peer in wanted {
            if self.up.contains(&peer) || self.dialled.contains_key(&peer) || (input.excluded)(&peer) {
                continue;
            }
            if let Some(addr) = address_of(&peer) {
                self.dialled.insert(peer, now_ms);
                self.dials.push_back((peer, addr));
            }
        }
        if self.up.is_empty() && self.dials.is_empty() {
            self.dial_any(now_ms, &input);
        }
        for (&peer, &at) in &self.needed {
            let kept = input.active.contains(&peer) || input.pinned.contains(&peer) || self.visits.contains_key(&peer);
            if !kept && now_ms >= at.saturating_add(LINGER_MS) && self.closing.insert(peer) {
                self.closes.push_back(peer);
            }
        }
    }

    /// A stranded node (no link at all) dials one known member, not dialled lately.
    fn dial_any(&mut self, now_ms: u64, input: &PlanInput<'_>) {
        let candidates: Vec<(NodeId, SocketAddr)> = input
            .known
            .iter()
            .filter(|(id, _)| !self.dialled.contains_key(id) && !(input.excluded)(id))
            .copied()
            .collect();
        if candidates.is_empty() {
            return;
        }
        let (peer, addr) = candidates[self.rng.index(candidates.len())];
        self.dialled.insert(peer, now_ms);
        self.dials.push_back((peer, addr));
    }

    /// The next member to dial.
    pub fn poll_dial(&mut self) -> Option<(NodeId, SocketAddr)> {
        self.dials.pop_front()
    }

    /// The next link to close.
    pub fn poll_close(&mut self) -> Option<NodeId> {
        self.closes.pop_front()
    }

    /// When [`Links::plan`] wants to run next.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.managed.then_some(self.next_plan_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    fn plan(links: &mut Links, now_ms: u64, active: &BTreeSet<NodeId>) {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let known = (1..=9).map(|byte| (id(byte), addr)).collect();
        links.plan(now_ms, PlanInput { active, pinned: &[], known, excluded: &|_| false });
    }

    fn closes(links: &mut Links) -> Vec<NodeId> {
        std::iter::from_fn(|| links.poll_close()).collect()
    }

    #[test]
    fn a_link_outside_the_active_view_closes_after_its_linger_and_a_neighbour_stays() {
        let mut links = Links::new(true, SeededRng::new(1), 0);
        let active: BTreeSet<NodeId> = [id(1)].into();
        links.link_up(0, id(1));
        links.link_up(0, id(2));
        plan(&mut links, LINGER_MS - 1, &active);
        assert!(closes(&mut links).is_empty(), "within the linger nothing closes");
        plan(&mut links, LINGER_MS + DIAL_INTERVAL_MS, &active);
        assert_eq!(closes(&mut links), vec![id(2)]);
    }

    #[test]
    fn a_visit_dials_a_passive_member_and_holds_its_link_for_the_visit_only() {
        let mut links = Links::new(true, SeededRng::new(1), 0);
        let active = BTreeSet::new();
        links.link_up(0, id(1));
        links.visit(VISIT_INTERVAL_MS, &[id(1), id(3)]);
        assert_eq!(links.visits_started, 1);
        plan(&mut links, VISIT_INTERVAL_MS, &active);
        let dialled: Vec<NodeId> = std::iter::from_fn(|| links.poll_dial()).map(|(peer, _)| peer).collect();
        assert_eq!(dialled, vec![id(3)], "a linked member is not visited");
        closes(&mut links);
        let start = VISIT_INTERVAL_MS + DIAL_INTERVAL_MS;
        links.link_up(start, id(3));
        plan(&mut links, start + LINGER_MS + DIAL_INTERVAL_MS, &active);
        assert!(!closes(&mut links).contains(&id(3)), "held past the linger while visited");
        plan(&mut links, VISIT_INTERVAL_MS + VISIT_MS + LINGER_MS + 2 * DIAL_INTERVAL_MS, &active);
        assert!(closes(&mut links).contains(&id(3)), "closed once the visit is over");
    }
}
