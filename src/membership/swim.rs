//! One member of a SWIM group (Das, Gupta, Motivala 2002) with the Lifeguard
//! extensions (Dadgar, Phillips, Currey 2018), as a sans-IO state machine.
//!
//! Each probe period the member pings the next member of a shuffled round-robin list
//! (SWIM §4.3: every member is probed within a bounded time); without an ack within
//! the probe timeout it asks `k` others to ping the target (PING-REQ, §3.1); without
//! any ack by the end of the period it suspects the target (§4.2). A suspicion becomes
//! a death after a timeout that shrinks as independent members confirm it (Lifeguard
//! §IV-B); a suspected member that hears of it refutes with a higher incarnation.
//! Lifeguard's local health multiplier (§IV-A) stretches this member's probe interval
//! and timeouts while it misses acks itself, so a slow member does not accuse healthy
//! ones. Membership updates ride on probe messages (§4.1). Dead members are reclaimed
//! after a while and kept in a bounded known set that is retried periodically, which
//! re-merges the group after a partition heals, however long it lasted.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::config::SwimConfig;
use super::message::{MemberState, Message, Update, MAX_UPDATES_PER_FRAME};
use super::partition::{PartitionChange, PartitionDetector};
use super::piggyback::PiggybackQueue;
use crate::sansio::{Process, SeededRng};
use crate::state::{NodeId, PartitionPolicy};

/// Members tracked at most; updates about more are ignored and counted.
pub const MAX_MEMBERS: usize = 65_536;
/// Reclaimed members remembered for reconnection at most.
pub const MAX_KNOWN: usize = 4_096;
/// Frames waiting to be sent at most; beyond, new frames are dropped and counted
/// (back-pressure: the host is not draining).
pub const MAX_OUTBOX: usize = 4_096;
/// Events waiting for the host at most; beyond, the oldest are dropped and counted.
pub const MAX_EVENTS: usize = 4_096;
/// Indirect probes this member relays at once at most.
const MAX_RELAYS: usize = 256;

/// What a member reports to its host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MembershipEvent {
    /// A member joined or came back.
    MemberUp(NodeId),
    /// A member is suspected.
    MemberSuspected(NodeId),
    /// A member was declared dead.
    MemberDead(NodeId),
    /// A member left on purpose.
    MemberLeft(NodeId),
    /// This member refuted a suspicion or death notice about itself.
    Refuted {
        /// Its new incarnation.
        incarnation: u64,
    },
    /// This member is on a minority side.
    PartitionDetected {
        /// Reachable members, itself included.
        reachable: usize,
        /// Known members, itself included.
        known: usize,
    },
    /// A majority is reachable again.
    PartitionHealed {
        /// Reachable members, itself included.
        reachable: usize,
        /// Known members, itself included.
        known: usize,
    },
}

/// Counters a host exports as metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwimStats {
    /// Direct probes sent.
    pub probes_sent: u64,
    /// Probes moved to the front of the round by [`Swim::probe_soon`].
    pub probes_hastened: u64,
    /// Probes sent to a member outside the probe scope (`outside_probe_every`).
    pub outside_probes: u64,
    /// Pings sent at once to spread a departure (see `spread_departures`).
    pub departure_pushes: u64,
    /// Probes that got no ack at all.
    pub probes_failed: u64,
    /// PING-REQs sent.
    pub indirect_probes_sent: u64,
    /// Suspicions this member raised itself.
    pub suspicions_raised: u64,
    /// Times this member refuted a suspicion or death of itself.
    pub refutations: u64,
    /// Suspicion, death or leave notices with an incarnation older than known: ignored.
    pub stale_notices_ignored: u64,
    /// Frames that did not decode.
    pub frames_rejected: u64,
    /// Frames dropped because the outbox was full.
    pub frames_dropped: u64,
    /// Events dropped because the host did not poll.
    pub events_dropped: u64,
    /// Updates ignored because the member table was full.
    pub members_over_capacity: u64,
    /// Dead entries reclaimed.
    pub members_reclaimed: u64,
    /// Reconnect attempts to dead or known-but-gone members.
    pub reconnect_attempts: u64,
}

/// One other member, as this member sees it.
#[derive(Clone, Debug)]
pub struct Member {
    /// Its state.
    pub state: MemberState,
    /// Its incarnation, as last heard.
    pub incarnation: u64,
    /// When it entered its state (local ms).
    pub state_since_ms: u64,
    /// Last reconnect attempt while dead (local ms).
    last_reconnect_ms: u64,
    suspicion: Option<Suspicion>,
}

#[derive(Clone, Debug)]
struct Suspicion {
    started_ms: u64,
    /// Distinct accusers; the first raised it, the others confirm it (bounded to K + 1).
    accusers: Vec<NodeId>,
    deadline_ms: u64,
}

#[derive(Clone, Debug)]
struct Probe {
    target: NodeId,
    seq: u64,
    indirect_at_ms: u64,
    deadline_ms: u64,
    acked: bool,
    indirect_sent: bool,
}

#[derive(Clone, Debug)]
struct Relay {
    seq: u64,
    origin: NodeId,
    origin_seq: u64,
    expires_ms: u64,
}

/// A SWIM member.
pub struct Swim {
    config: SwimConfig,
    me: NodeId,
    incarnation: u64,
    left: bool,
    rng: SeededRng,
    // A BTreeMap, not a HashMap: iteration order feeds protocol choices and must be
    // the same in every run of a seed.
    members: BTreeMap<NodeId, Member>,
    probe_order: Vec<NodeId>,
    probe_cursor: usize,
    /// Members this node may probe, ask to probe or push-pull with, when its host
    /// bounds them (the members it holds connections to); `None`: every member.
    probe_scope: Option<BTreeSet<NodeId>>,
    /// The round of members outside the probe scope (`outside_probe_every`).
    outside_order: Vec<NodeId>,
    outside_cursor: usize,
    probes_started: u64,
    probe: Option<Probe>,
    next_probe_ms: u64,
    next_seq: u64,
    relays: VecDeque<Relay>,
    suspicion_deadlines: BTreeSet<(u64, NodeId)>,
    piggyback: PiggybackQueue,
    local_health: u32,
    /// Reclaimed members: (id, reclaimed at ms, last reconnect ms).
    known: VecDeque<(NodeId, u64, u64)>,
    next_push_pull_ms: u64,
    next_reconnect_ms: u64,
    push_pull_cursor: usize,
    partition: PartitionDetector,
    /// Set when a member changed state since the partition counts were last taken, so
    /// they are recounted (O(members)) only after a change, not after every frame.
    counts_stale: bool,
    outbox: VecDeque<(NodeId, Vec<u8>)>,
    events: VecDeque<MembershipEvent>,
    /// A member was declared dead or left since the news was last pushed.
    news_of_departure: bool,
    stats: SwimStats,
}

impl Swim {
    /// A member `me` at `incarnation` (a host that restarts must pass a higher one
    /// than before, e.g. its boot time in ms), knowing `initial_members` (its seeds or
    /// its static configuration), with its own seeded generator.
    pub fn new(
        config: SwimConfig,
        me: NodeId,
        incarnation: u64,
        rng: SeededRng,
        initial_members: &[NodeId],
        now_ms: u64,
    ) -> Self {
        assert!(config.probe_interval_ms > config.probe_timeout_ms, "the ack must be able to arrive within the period");
        let mut swim = Swim {
            next_probe_ms: now_ms,
            next_push_pull_ms: now_ms + config.push_pull_interval_ms,
            next_reconnect_ms: now_ms + config.reconnect_interval_ms,
            config,
            me,
            incarnation,
            left: false,
            rng,
            members: BTreeMap::new(),
            probe_order: Vec::new(),
            probe_cursor: 0,
            probe_scope: None,
            outside_order: Vec::new(),
            outside_cursor: 0,
            probes_started: 0,
            probe: None,
            next_seq: 0,
            relays: VecDeque::new(),
            suspicion_deadlines: BTreeSet::new(),
            piggyback: PiggybackQueue::default(),
            local_health: 0,
            known: VecDeque::new(),
            push_pull_cursor: 0,
            partition: PartitionDetector::default(),
            counts_stale: true,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            news_of_departure: false,
            stats: SwimStats::default(),
        };
        // Stagger the first probe so that members started together do not probe in step.
        swim.next_probe_ms = now_ms + swim.rng.below(swim.config.probe_interval_ms);
        for &member in initial_members.iter().filter(|&&id| id != me).take(MAX_MEMBERS) {
            swim.members.insert(member, Member::alive(0, now_ms));
            swim.probe_order.push(member);
        }
        swim.rng.shuffle(&mut swim.probe_order);
        swim
    }

    /// Joins through `seed`: a push-pull exchange that hands us its member list and
    /// announces us to it (memberlist's Join).
    pub fn join(&mut self, seed: NodeId) {
        if seed != self.me {
            self.send_sync(seed, true);
        }
    }

    /// Bounds the members this node probes, asks for indirect probes and push-pulls
    /// with to `scope` (`None`: every member). A host that keeps connections to a
    /// partial view of the group (HyParView's active view) passes the members it is
    /// linked to and the ones whose link it lost: every member is still probed by its
    /// neighbours, and what they conclude reaches everyone on the piggyback.
    pub fn set_probe_scope(&mut self, scope: Option<BTreeSet<NodeId>>) {
        self.probe_scope = scope;
    }

    // Getters.

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.me
    }
    /// This member's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }
    /// Lifeguard's local health multiplier (0 = healthy).
    pub fn local_health(&self) -> u32 {
        self.local_health
    }
    /// Counters.
    pub fn stats(&self) -> SwimStats {
        self.stats
    }
    /// The member `id` as seen here.
    pub fn member(&self, id: &NodeId) -> Option<&Member> {
        self.members.get(id)
    }
    /// State of `id` as seen here (`None` if unknown or reclaimed).
    pub fn state_of(&self, id: &NodeId) -> Option<MemberState> {
        self.members.get(id).map(|member| member.state)
    }
    /// Members believed alive (suspects included: they may still refute).
    pub fn live_members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members
            .iter()
            .filter(|(_, m)| matches!(m.state, MemberState::Alive | MemberState::Suspect))
            .map(|(id, _)| *id)
    }
    /// Members tracked (any state).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    /// Members tracked, by state: alive, suspect, dead, left (this member excluded).
    pub fn count_by_state(&self) -> [usize; 4] {
        let mut counts = [0; 4];
        for member in self.members.values() {
            let slot = match member.state {
                MemberState::Alive => 0,
                MemberState::Suspect => 1,
                MemberState::Dead => 2,
                MemberState::Left => 3,
            };
            counts[slot] += 1;
        }
        counts
    }
    /// Whether this member is on a minority side.
    pub fn is_partitioned(&self) -> bool {
        self.partition.is_partitioned()
    }
    /// Whether a category with `policy` may accept a local write now.
    pub fn write_allowed(&self, policy: PartitionPolicy) -> bool {
        self.partition.write_allowed(policy)
    }

    // Inputs.

    /// A frame from `from`.
    pub fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) {
        let message = match Message::decode(bytes) {
            Ok(message) => message,
            Err(_) => {
                self.stats.frames_rejected += 1;
                return;
            }
        };
        match message {
            Message::Ping { seq, updates } => {
                self.merge(now_ms, from, &updates, false);
                let updates = self.updates_for(from);
                self.push_frame(from, Message::Ack { seq, updates });
            }
            Message::Ack { seq, updates } => {
                self.merge(now_ms, from, &updates, false);
                self.handle_ack(now_ms, seq);
            }
            Message::PingReq { seq, target, updates } => {
                self.merge(now_ms, from, &updates, false);
                self.relay_probe(now_ms, from, seq, target);
            }
            Message::Sync { reply_wanted, updates } => {
                self.merge(now_ms, from, &updates, true);
                if reply_wanted {
                    self.send_sync(from, false);
                }
            }
        }
        self.spread_departures();
        self.refresh_partition();
    }

    /// Evidence that `id` may be gone (its link broke): it is the next member probed,
    /// rather than when its turn in the round comes. Ignored for members not alive or
    /// suspect, or outside the probe scope.
    pub fn probe_soon(&mut self, id: NodeId) {
        let probeable = self.in_scope(&id) && self.is_probeable(&id);
        let at = self.probe_cursor.min(self.probe_order.len());
        if !probeable || self.probe.as_ref().is_some_and(|p| p.target == id) || self.probe_order.get(at) == Some(&id) {
            return;
        }
        self.probe_order.insert(at, id);
        self.stats.probes_hastened += 1;
    }

    /// The deadline from [`Swim::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.probe_phases(now_ms);
        if now_ms >= self.next_probe_ms && !self.left {
            self.start_probe(now_ms);
        }
        self.expire_suspicions(now_ms);
        self.spread_departures();
        if now_ms >= self.next_push_pull_ms {
            self.next_push_pull_ms = now_ms + self.config.push_pull_interval_ms;
            let live: Vec<NodeId> = self.live_members().filter(|id| self.in_scope(id)).collect();
            if !live.is_empty() {
                let peer = live[self.rng.index(live.len())];
                self.send_sync(peer, true);
            }
        }
        if now_ms >= self.next_reconnect_ms {
            self.next_reconnect_ms = now_ms + self.config.reconnect_interval_ms;
            self.reclaim(now_ms);
            self.reconnect(now_ms);
        }
        self.relays.retain(|relay| relay.expires_ms > now_ms);
        self.refresh_partition();
    }

    // Mutators.

    /// Leaves the group on purpose: tells a few members (every neighbour in scope, when
    /// the host bounds the scope: those are the members it holds links to) and stops
    /// probing.
    pub fn leave(&mut self, _now_ms: u64) {
        self.left = true;
        let update = Update { node: self.me, incarnation: self.incarnation, state: MemberState::Left, from: None };
        self.piggyback.push(update);
        let live: Vec<NodeId> = self.live_members().collect();
        let targets: Vec<NodeId> = match &self.probe_scope {
            Some(scope) => live.into_iter().filter(|id| scope.contains(id)).collect(),
            None => {
                (0..live.len().min(self.config.indirect_checks)).map(|_| live[self.rng.index(live.len())]).collect()
            }
        };
        for peer in targets {
            let seq = self.take_seq();
            let updates = vec![update];
            self.push_frame(peer, Message::Ping { seq, updates });
        }
    }

    // Outputs.

    /// The next frame to send.
    pub fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        self.outbox.pop_front()
    }

    /// The next deadline.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut deadline_ms = self.next_push_pull_ms.min(self.next_reconnect_ms);
        if !self.left {
            deadline_ms = deadline_ms.min(self.next_probe_ms);
        }
        if let Some(probe) = &self.probe {
            deadline_ms = deadline_ms.min(probe.deadline_ms);
            if !probe.acked && !probe.indirect_sent {
                deadline_ms = deadline_ms.min(probe.indirect_at_ms);
            }
        }
        if let Some(&(suspicion_ms, _)) = self.suspicion_deadlines.first() {
            deadline_ms = deadline_ms.min(suspicion_ms);
        }
        Some(deadline_ms)
    }

    /// The next event for the host.
    pub fn poll_event(&mut self) -> Option<MembershipEvent> {
        self.events.pop_front()
    }

    // Internals: probing.

    fn health_factor(&self) -> u64 {
        u64::from(self.local_health) + 1
    }

    fn in_scope(&self, id: &NodeId) -> bool {
        self.probe_scope.as_ref().map_or(true, |scope| scope.contains(id))
    }

    fn take_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    fn next_probe_target(&mut self) -> Option<NodeId> {
        self.probes_started += 1;
        if self.probe_scope.is_some() && self.outside_turn() {
            if let Some(target) = self.next_outside_target() {
                self.stats.outside_probes += 1;
                return Some(target);
            }
        }
        // At most two passes: the rest of this round, then a reshuffled new round.
        for _ in 0..2 {
            while self.probe_cursor < self.probe_order.len() {
                let candidate = self.probe_order[self.probe_cursor];
                self.probe_cursor += 1;
                let probeable = self.in_scope(&candidate) && self.is_probeable(&candidate);
                if probeable {
                    return Some(candidate);
                }
            }
            self.probe_order = self.live_members().collect();
            self.probe_order.sort_unstable();
            self.rng.shuffle(&mut self.probe_order);
            self.probe_cursor = 0;
        }
        None
    }

    /// Whether `id` is a member that may be probed: alive or suspect.
    fn is_probeable(&self, id: &NodeId) -> bool {
        self.members.get(id).is_some_and(|m| matches!(m.state, MemberState::Alive | MemberState::Suspect))
    }

    /// Whether this probe goes outside the scope: one in `outside_probe_every`, or in
    /// `outside_probe_every_alarmed` while some member is suspect or dead.
    fn outside_turn(&self) -> bool {
        let alarmed = self.members.values().any(|m| matches!(m.state, MemberState::Suspect | MemberState::Dead));
        let every = if alarmed { self.config.outside_probe_every_alarmed } else { self.config.outside_probe_every };
        every > 0 && self.probes_started % u64::from(every) == 0
    }

    /// The next live member outside the probe scope, in a shuffled round of its own.
    fn next_outside_target(&mut self) -> Option<NodeId> {
        for _ in 0..2 {
            while self.outside_cursor < self.outside_order.len() {
                let candidate = self.outside_order[self.outside_cursor];
                self.outside_cursor += 1;
                let probeable = !self.in_scope(&candidate) && self.is_probeable(&candidate);
                if probeable {
                    return Some(candidate);
                }
            }
            self.outside_order = self.live_members().filter(|id| !self.in_scope(id)).collect();
            self.outside_order.sort_unstable();
            self.rng.shuffle(&mut self.outside_order);
            self.outside_cursor = 0;
        }
        None
    }

    fn start_probe(&mut self, now_ms: u64) {
        let factor = self.health_factor();
        self.next_probe_ms = now_ms + self.config.probe_interval_ms * factor;
        let Some(target) = self.next_probe_target() else { return };
        let seq = self.take_seq();
        self.probe = Some(Probe {
            target,
            seq,
            indirect_at_ms: now_ms + self.config.probe_timeout_ms * factor,
            deadline_ms: self.next_probe_ms,
            acked: false,
            indirect_sent: false,
        });
        self.stats.probes_sent += 1;
        let updates = self.updates_for(target);
        self.push_frame(target, Message::Ping { seq, updates });
    }

    fn probe_phases(&mut self, now_ms: u64) {
        let Some(probe) = self.probe.clone() else { return };
        if !probe.acked && !probe.indirect_sent && now_ms >= probe.indirect_at_ms {
            if let Some(current) = self.probe.as_mut() {
                current.indirect_sent = true;
            }
            let mut relays: Vec<NodeId> = self
                .members
                .iter()
                .filter(|(id, m)| m.state == MemberState::Alive && **id != probe.target && self.in_scope(id))
                .map(|(id, _)| *id)
                .collect();
            relays.sort_unstable();
            self.rng.shuffle(&mut relays);
            // A second direct ping alongside the indirect ones, as memberlist's TCP
            // fallback does: one lost datagram alone should not start a suspicion.
            let updates = self.updates_for(probe.target);
            self.push_frame(probe.target, Message::Ping { seq: probe.seq, updates });
            for relay in relays.into_iter().take(self.config.indirect_checks) {
                self.stats.indirect_probes_sent += 1;
                let updates = self.updates_for(relay);
                self.push_frame(relay, Message::PingReq { seq: probe.seq, target: probe.target, updates });
            }
        }
        if now_ms >= probe.deadline_ms {
            self.probe = None;
            if probe.acked {
                self.local_health = self.local_health.saturating_sub(1);
            } else {
                self.stats.probes_failed += 1;
                self.local_health = (self.local_health + 1).min(self.config.local_health_max);
                self.suspect_after_failed_probe(now_ms, probe.target);
            }
        }
    }

    fn suspect_after_failed_probe(&mut self, now_ms: u64, target: NodeId) {
        let Some(member) = self.members.get(&target) else { return };
        // A member we already suspect (on someone's word) and now fail to reach
        // ourselves gets our own accusation: an independent confirmation (Lifeguard).
        if !matches!(member.state, MemberState::Alive | MemberState::Suspect) {
            return;
        }
        self.stats.suspicions_raised += 1;
        let update =
            Update { node: target, incarnation: member.incarnation, state: MemberState::Suspect, from: Some(self.me) };
        self.apply(now_ms, self.me, update, false);
    }

    fn handle_ack(&mut self, _now_ms: u64, seq: u64) {
        if let Some(probe) = self.probe.as_mut() {
            if probe.seq == seq {
                probe.acked = true;
                return;
            }
        }
        if let Some(position) = self.relays.iter().position(|relay| relay.seq == seq) {
            if let Some(relay) = self.relays.remove(position) {
                let updates = self.updates_for(relay.origin);
                self.push_frame(relay.origin, Message::Ack { seq: relay.origin_seq, updates });
            }
        }
    }

    fn relay_probe(&mut self, now_ms: u64, origin: NodeId, origin_seq: u64, target: NodeId) {
        if self.relays.len() >= MAX_RELAYS || target == self.me {
            return;
        }
        let seq = self.take_seq();
        let expires_ms = now_ms + self.config.probe_interval_ms * self.health_factor();
        self.relays.push_back(Relay { seq, origin, origin_seq, expires_ms });
        let updates = self.updates_for(target);
        self.push_frame(target, Message::Ping { seq, updates });
    }

    // Internals: suspicion and death.

    fn expire_suspicions(&mut self, now_ms: u64) {
        while let Some(&(deadline_ms, node)) = self.suspicion_deadlines.first() {
            if deadline_ms > now_ms {
                break;
            }
            self.suspicion_deadlines.remove(&(deadline_ms, node));
            let Some(member) = self.members.get(&node) else { continue };
            if member.state != MemberState::Suspect {
                continue;
            }
            let update = Update { node, incarnation: member.incarnation, state: MemberState::Dead, from: None };
            self.apply(now_ms, self.me, update, false);
        }
    }

    fn set_suspicion_deadline(&mut self, node: NodeId, old_ms: Option<u64>, new_ms: Option<u64>) {
        if let Some(old_ms) = old_ms {
            self.suspicion_deadlines.remove(&(old_ms, node));
        }
        if let Some(new_ms) = new_ms {
            self.suspicion_deadlines.insert((new_ms, node));
        }
    }

    // Internals: merging updates (the rules of SWIM §4.2 and memberlist's state.go).

    fn merge(&mut self, now_ms: u64, sender: NodeId, updates: &[Update], from_sync: bool) {
        for &update in updates {
            self.apply(now_ms, sender, update, from_sync);
        }
    }

    fn apply(&mut self, now_ms: u64, sender: NodeId, update: Update, from_sync: bool) {
        if update.node == self.me {
            self.apply_about_me(update);
            return;
        }
        let mut update = update;
        if from_sync && update.state == MemberState::Dead {
            // A push-pull peer's death verdict is only a suspicion here (memberlist's
            // mergeState): after a heal the two sides hold each other dead, and the
            // accused must get the chance to refute instead of being evicted.
            update.state = MemberState::Suspect;
        }
        if update.state == MemberState::Suspect && update.from.is_none() {
            update.from = Some(sender);
        }
        match self.members.get(&update.node).map(|member| (member.state, member.incarnation)) {
            None => self.apply_unknown(now_ms, update),
            Some((state, incarnation)) => match update.state {
                MemberState::Alive => {
                    if update.incarnation > incarnation {
                        self.set_alive(now_ms, update, state);
                    }
                }
                MemberState::Suspect => self.apply_suspect(now_ms, update, state, incarnation),
                MemberState::Dead | MemberState::Left => {
                    if update.incarnation < incarnation {
                        self.stats.stale_notices_ignored += 1;
                    } else if matches!(state, MemberState::Alive | MemberState::Suspect)
                        || (state == MemberState::Dead && update.state == MemberState::Left)
                    {
                        self.set_gone(now_ms, update);
                    }
                }
            },
        }
    }

    fn apply_about_me(&mut self, update: Update) {
        match update.state {
            MemberState::Alive => {
                if update.incarnation > self.incarnation {
                    // Someone remembers a later incarnation of ours (we restarted without
                    // persisting it): jump past it so our word wins.
                    self.incarnation = update.incarnation + 1;
                    self.announce_self();
                }
            }
            _ if self.left => {}
            _ => {
                if update.incarnation < self.incarnation {
                    self.stats.stale_notices_ignored += 1;
                    return;
                }
                self.incarnation = update.incarnation + 1;
                self.stats.refutations += 1;
                // Lifeguard §IV-A: having to refute means others did not hear us in
                // time; we may be the slow one, so probe more gently.
                self.local_health = (self.local_health + 1).min(self.config.local_health_max);
                self.announce_self();
                self.push_event(MembershipEvent::Refuted { incarnation: self.incarnation });
            }
        }
    }

    fn announce_self(&mut self) {
        self.piggyback.push(Update {
            node: self.me,
            incarnation: self.incarnation,
            state: MemberState::Alive,
            from: None,
        });
    }

    fn apply_unknown(&mut self, now_ms: u64, update: Update) {
        if update.state != MemberState::Alive {
            return; // Nothing to suspect or bury; the member will introduce itself.
        }
        if self.members.len() >= MAX_MEMBERS {
            self.stats.members_over_capacity += 1;
            return;
        }
        self.known.retain(|(id, _, _)| *id != update.node);
        self.members.insert(update.node, Member::alive(update.incarnation, now_ms));
        // SWIM §4.3: a new member goes to a random position of the round-robin list.
        let position = self.probe_cursor
            + self.rng.index(self.probe_order.len() - self.probe_cursor.min(self.probe_order.len()) + 1);
        self.probe_order.insert(position.min(self.probe_order.len()), update.node);
        self.piggyback.push(update);
        self.push_event(MembershipEvent::MemberUp(update.node));
    }

    fn set_alive(&mut self, now_ms: u64, update: Update, previous: MemberState) {
        let old_deadline = self.members.get(&update.node).and_then(|m| m.suspicion.as_ref().map(|s| s.deadline_ms));
        self.set_suspicion_deadline(update.node, old_deadline, None);
        if let Some(member) = self.members.get_mut(&update.node) {
            member.incarnation = update.incarnation;
            member.suspicion = None;
            if member.state != MemberState::Alive {
                member.state = MemberState::Alive;
                member.state_since_ms = now_ms;
            }
        }
        if matches!(previous, MemberState::Dead | MemberState::Left) {
            self.probe_order.push(update.node);
            self.push_event(MembershipEvent::MemberUp(update.node));
        }
        self.piggyback.push(update);
    }

    fn apply_suspect(&mut self, now_ms: u64, update: Update, state: MemberState, incarnation: u64) {
        if update.incarnation < incarnation {
            self.stats.stale_notices_ignored += 1;
            return;
        }
        let accuser = update.from.unwrap_or(self.me);
        let member_count = self.members.len() + 1;
        let max_accusers = self.config.suspicion_confirmations_expected as usize + 1;
        match state {
            MemberState::Alive => {}
            MemberState::Suspect if update.incarnation == incarnation => {
                // A confirmation: count it if it comes from a new accuser.
                let Some(member) = self.members.get_mut(&update.node) else { return };
                let Some(suspicion) = member.suspicion.as_mut() else { return };
                if suspicion.accusers.contains(&accuser) || suspicion.accusers.len() >= max_accusers {
                    return;
                }
                suspicion.accusers.push(accuser);
                let confirmations = suspicion.accusers.len() as u32 - 1;
                let old_ms = suspicion.deadline_ms;
                let new_ms = suspicion.started_ms + self.config.suspicion_timeout_ms(member_count, confirmations);
                suspicion.deadline_ms = new_ms.max(now_ms);
                let new_ms = suspicion.deadline_ms;
                self.set_suspicion_deadline(update.node, Some(old_ms), Some(new_ms));
                self.piggyback.push(update);
                return;
            }
            MemberState::Suspect => {}
            MemberState::Dead | MemberState::Left => return,
        }
        // A new suspicion (or one at a newer incarnation).
        let deadline_ms = now_ms + self.config.suspicion_timeout_ms(member_count, 0);
        let Some(member) = self.members.get_mut(&update.node) else { return };
        let old_ms = member.suspicion.as_ref().map(|s| s.deadline_ms);
        member.state = MemberState::Suspect;
        member.state_since_ms = now_ms;
        member.incarnation = update.incarnation;
        member.suspicion = Some(Suspicion { started_ms: now_ms, accusers: vec![accuser], deadline_ms });
        self.set_suspicion_deadline(update.node, old_ms, Some(deadline_ms));
        self.piggyback.push(update);
        self.push_event(MembershipEvent::MemberSuspected(update.node));
    }

    fn set_gone(&mut self, now_ms: u64, update: Update) {
        let Some(member) = self.members.get_mut(&update.node) else { return };
        let old_ms = member.suspicion.take().map(|s| s.deadline_ms);
        member.state = update.state;
        member.incarnation = update.incarnation;
        member.state_since_ms = now_ms;
        member.last_reconnect_ms = now_ms;
        self.set_suspicion_deadline(update.node, old_ms, None);
        self.piggyback.push(update);
        self.news_of_departure = true;
        let event = if update.state == MemberState::Left {
            MembershipEvent::MemberLeft(update.node)
        } else {
            MembershipEvent::MemberDead(update.node)
        };
        self.push_event(event);
    }

    /// A departure (dead or left) learnt or decided here is pinged at once to the
    /// members in scope (the kept neighbours, when the host bounds the scope) or to
    /// `indirect_checks` random live members, rather than waiting for the next probes
    /// to piggyback it: over a partial view, where each node probes only its
    /// neighbours, the news would otherwise take a probe interval per hop (32 real
    /// nodes: 2.2 s from the first node declaring a SIGKILLed one dead to the last).
    /// Each node does so once per departure it learns, so the news floods the view
    /// graph once; the pings' acks are ignored (their sequence numbers match nothing).
    fn spread_departures(&mut self) {
        if !std::mem::take(&mut self.news_of_departure) || self.left {
            return;
        }
        let mut targets: Vec<NodeId> = self.live_members().filter(|id| self.in_scope(id)).collect();
        if self.probe_scope.is_none() {
            self.rng.shuffle(&mut targets);
            targets.truncate(self.config.indirect_checks);
        }
        for target in targets {
            let seq = self.take_seq();
            let updates = self.updates_for(target);
            self.stats.departure_pushes += 1;
            self.push_frame(target, Message::Ping { seq, updates });
        }
    }

    // Internals: reclamation, reconnection, push-pull.

    fn reclaim(&mut self, now_ms: u64) {
        let reclaim_ms = self.config.dead_reclaim_ms;
        let expired: Vec<(NodeId, MemberState)> = self
            .members
            .iter()
            .filter(|(_, m)| {
                matches!(m.state, MemberState::Dead | MemberState::Left) && now_ms >= m.state_since_ms + reclaim_ms
            })
            .map(|(id, m)| (*id, m.state))
            .collect();
        for (id, state) in expired {
            self.counts_stale = true;
            self.members.remove(&id);
            self.stats.members_reclaimed += 1;
            // Members that left on purpose are not retried; dead ones may come back.
            if state == MemberState::Dead {
                if self.known.len() >= MAX_KNOWN {
                    self.known.pop_front();
                }
                self.known.push_back((id, now_ms, now_ms));
            }
        }
        let forget_ms = self.config.forget_after_ms;
        let known_before = self.known.len();
        self.known.retain(|(_, since_ms, _)| now_ms < since_ms + forget_ms);
        self.counts_stale |= self.known.len() != known_before;
    }

    /// Tries one dead or reclaimed member, the one not tried for longest.
    fn reconnect(&mut self, now_ms: u64) {
        let dead = self
            .members
            .iter()
            .filter(|(_, m)| m.state == MemberState::Dead)
            .map(|(id, m)| (m.last_reconnect_ms, *id))
            .min();
        let known = self.known.iter().enumerate().map(|(i, (id, _, tried_ms))| (*tried_ms, *id, i)).min();
        let target = match (dead, known) {
            (Some(d), Some(k)) if k.0 < d.0 => Some((k.1, Some(k.2))),
            (Some(d), _) => Some((d.1, None)),
            (None, Some(k)) => Some((k.1, Some(k.2))),
            (None, None) => None,
        };
        let Some((id, known_index)) = target else { return };
        match known_index {
            Some(index) => {
                if let Some(entry) = self.known.get_mut(index) {
                    entry.2 = now_ms;
                }
            }
            None => {
                if let Some(member) = self.members.get_mut(&id) {
                    member.last_reconnect_ms = now_ms;
                }
            }
        }
        self.stats.reconnect_attempts += 1;
        self.send_sync(id, true);
    }

    /// Sends (a rotating slice of) this member's state to `to`.
    fn send_sync(&mut self, to: NodeId, reply_wanted: bool) {
        let mut updates = Vec::with_capacity(self.members.len().min(MAX_UPDATES_PER_FRAME) + 1);
        updates.push(Update { node: self.me, incarnation: self.incarnation, state: MemberState::Alive, from: None });
        // The recipient's own record first, so it learns what we think of it.
        if let Some(member) = self.members.get(&to) {
            updates.push(Update { node: to, incarnation: member.incarnation, state: member.state, from: None });
        }
        let mut ids: Vec<&NodeId> = self.members.keys().filter(|id| **id != to).collect();
        ids.sort_unstable();
        let room = MAX_UPDATES_PER_FRAME - updates.len();
        let start = if ids.len() > room { self.push_pull_cursor % ids.len() } else { 0 };
        for offset in 0..ids.len().min(room) {
            let id = *ids[(start + offset) % ids.len()];
            if let Some(member) = self.members.get(&id) {
                updates.push(Update { node: id, incarnation: member.incarnation, state: member.state, from: None });
            }
        }
        self.push_pull_cursor = self.push_pull_cursor.wrapping_add(room);
        self.push_frame(to, Message::Sync { reply_wanted, updates });
    }

    /// The piggyback for a message to `to`: our own liveness, what we think of `to` if
    /// that is bad news for it (so it can refute), then queued updates.
    fn updates_for(&mut self, to: NodeId) -> Vec<Update> {
        let mut updates = Vec::with_capacity(self.config.max_piggyback);
        updates.push(Update { node: self.me, incarnation: self.incarnation, state: MemberState::Alive, from: None });
        if let Some(member) = self.members.get(&to) {
            if member.state != MemberState::Alive {
                updates.push(Update { node: to, incarnation: member.incarnation, state: member.state, from: None });
            }
        }
        let limit = self.config.retransmit_limit(self.members.len() + 1);
        let room = self.config.max_piggyback.saturating_sub(updates.len());
        self.piggyback.take(room, limit, Some(to), &mut updates);
        updates
    }

    fn push_frame(&mut self, to: NodeId, message: Message) {
        if self.outbox.len() >= MAX_OUTBOX {
            self.stats.frames_dropped += 1;
            return;
        }
        let bytes = message.to_bytes();
        debug_assert!(bytes.len() <= self.config.max_frame_len);
        self.outbox.push_back((to, bytes));
    }

    fn push_event(&mut self, event: MembershipEvent) {
        // Every member state change raises an event: the partition counts may move.
        self.counts_stale = true;
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.stats.events_dropped += 1;
        }
        self.events.push_back(event);
    }

    fn refresh_partition(&mut self) {
        if !self.counts_stale {
            return;
        }
        self.counts_stale = false;
        let alive =
            self.members.values().filter(|m| m.state != MemberState::Dead && m.state != MemberState::Left).count();
        let dead = self.members.values().filter(|m| m.state == MemberState::Dead).count();
        let reachable = alive + 1;
        let known = alive + dead + self.known.len() + 1;
        match self.partition.update(reachable, known) {
            Some(PartitionChange::Detected { reachable, known }) => {
                self.push_event(MembershipEvent::PartitionDetected { reachable, known })
            }
            Some(PartitionChange::Healed { reachable, known }) => {
                self.push_event(MembershipEvent::PartitionHealed { reachable, known })
            }
            None => {}
        }
    }
}

impl Member {
    fn alive(incarnation: u64, now_ms: u64) -> Self {
        Member { state: MemberState::Alive, incarnation, state_since_ms: now_ms, last_reconnect_ms: 0, suspicion: None }
    }
}

impl Process for Swim {
    type Event = MembershipEvent;
    fn handle_message(&mut self, now_ms: u64, from: NodeId, bytes: &[u8]) {
        Swim::handle_message(self, now_ms, from, bytes)
    }
    fn handle_timeout(&mut self, now_ms: u64) {
        Swim::handle_timeout(self, now_ms)
    }
    fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
        Swim::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<u64> {
        Swim::poll_timeout(self)
    }
    fn poll_event(&mut self) -> Option<MembershipEvent> {
        Swim::poll_event(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_whose_link_broke_is_probed_next() {
        let me = NodeId([1; 32]);
        let members: Vec<NodeId> = (2..=9).map(|byte| NodeId([byte; 32])).collect();
        let broken = members[5];
        for seed in 0..20 {
            let mut swim = Swim::new(SwimConfig::default(), me, 1, SeededRng::new(seed), &members, 0);
            // One probe round under way, so the broken member's turn may be far.
            let first = swim.poll_timeout().expect("a probe is due");
            swim.handle_timeout(first);
            while swim.poll_transmit().is_some() {}
            swim.probe_soon(broken);
            let next = first + SwimConfig::default().probe_interval_ms;
            swim.handle_timeout(next);
            let pinged: Vec<NodeId> = std::iter::from_fn(|| swim.poll_transmit()).map(|(to, _)| to).collect();
            assert!(pinged.contains(&broken), "seed {seed}: the next probe goes to the broken member, not {pinged:?}");
        }
    }

    #[test]
    fn a_departure_learnt_is_pinged_at_once_to_every_neighbour_in_scope() {
        let me = NodeId([1; 32]);
        let members: Vec<NodeId> = (2..=9).map(|byte| NodeId([byte; 32])).collect();
        let mut swim = Swim::new(SwimConfig::default(), me, 1, SeededRng::new(7), &members, 0);
        let scope: BTreeSet<NodeId> = members[..3].iter().copied().collect();
        swim.set_probe_scope(Some(scope.clone()));
        let gone = members[7];
        let news = Message::Ping {
            seq: 1,
            updates: vec![Update { node: gone, incarnation: 0, state: MemberState::Dead, from: None }],
        };
        swim.handle_message(10, members[0], &news.to_bytes());
        let pinged: BTreeSet<NodeId> = std::iter::from_fn(|| swim.poll_transmit()).map(|(to, _)| to).collect();
        assert_eq!(pinged, scope, "the ack to the sender and a ping to each neighbour in scope");
        assert_eq!(swim.stats().departure_pushes, 3);
        // Heard again: nothing new, nothing pushed.
        swim.handle_message(20, members[1], &news.to_bytes());
        assert_eq!(swim.stats().departure_pushes, 3);
    }

    /// With a bounded scope, members outside it are still probed: one probe in
    /// `outside_probe_every` (`..._alarmed` while a member is suspect or dead), each
    /// outside member once per round of them. Without it a side of a split would count
    /// the other side's members alive for ever.
    #[test]
    fn members_outside_the_probe_scope_are_still_probed_in_turn() {
        let me = NodeId([1; 32]);
        let members: Vec<NodeId> = (2..=13).map(|byte| NodeId([byte; 32])).collect();
        let scope: BTreeSet<NodeId> = members[..4].iter().copied().collect();
        let outside: BTreeSet<NodeId> = members[4..].iter().copied().collect();
        let config = SwimConfig::default();
        let mut swim = Swim::new(config.clone(), me, 1, SeededRng::new(3), &members, 0);
        swim.set_probe_scope(Some(scope.clone()));
        let mut now = 0;
        // Quiet: enough probes for every outside member to come up once.
        let quiet = config.outside_probe_every as usize * outside.len();
        let targets = run_acked_probes(&mut swim, &mut now, quiet);
        check_outside_round(&targets, &scope, &outside, "quiet");
        assert_eq!(swim.stats().outside_probes, outside.len() as u64);
        // A neighbour declared dead: the outside round runs faster.
        let news = Message::Ping {
            seq: 1,
            updates: vec![Update { node: members[0], incarnation: 0, state: MemberState::Dead, from: None }],
        };
        swim.handle_message(now, members[1], &news.to_bytes());
        while swim.poll_transmit().is_some() {}
        let alarmed = config.outside_probe_every_alarmed as usize * outside.len();
        let targets = run_acked_probes(&mut swim, &mut now, alarmed);
        check_outside_round(&targets, &scope, &outside, "alarmed");
        // Without a scope (a driver linking every member) the rule does not apply.
        let mut unbounded = Swim::new(config, me, 1, SeededRng::new(3), &members, 0);
        for step in 0..40 {
            unbounded.handle_timeout(step * 500);
            while unbounded.poll_transmit().is_some() {}
        }
        assert_eq!(unbounded.stats().outside_probes, 0);
    }

    /// Runs `count` probes, acking every ping so that nobody is suspected; the targets.
    fn run_acked_probes(swim: &mut Swim, now: &mut u64, count: usize) -> Vec<NodeId> {
        let mut targets = Vec::new();
        while targets.len() < count {
            *now = swim.poll_timeout().expect("a deadline").max(*now);
            let probes = swim.stats().probes_sent;
            swim.handle_timeout(*now);
            let frames: Vec<(NodeId, Vec<u8>)> = std::iter::from_fn(|| swim.poll_transmit()).collect();
            if swim.stats().probes_sent > probes {
                // The probe's ping is the first frame of its turn.
                targets.push(frames[0].0);
            }
            for (to, frame) in frames {
                if let Ok(Message::Ping { seq, .. }) = Message::decode(&frame) {
                    swim.handle_message(*now, to, &Message::Ack { seq, updates: Vec::new() }.to_bytes());
                }
            }
            while swim.poll_transmit().is_some() {}
        }
        targets
    }

    fn check_outside_round(targets: &[NodeId], scope: &BTreeSet<NodeId>, outside: &BTreeSet<NodeId>, when: &str) {
        let probed_outside: Vec<NodeId> = targets.iter().filter(|t| outside.contains(t)).copied().collect();
        assert_eq!(probed_outside.len(), outside.len(), "{when}: one round outside the scope: {targets:?}");
        assert_eq!(&probed_outside.iter().copied().collect::<BTreeSet<_>>(), outside, "{when}: each outside member");
        assert!(targets.iter().all(|t| scope.contains(t) || outside.contains(t)));
    }
}
