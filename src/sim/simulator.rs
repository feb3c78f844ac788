//! The event loop: one binary heap of timed actions (frame deliveries and timer
//! expiries) over thousands of [`Process`]es in one thread. Ties in time are broken by
//! the order in which actions were scheduled, so one seed gives one run; every action
//! taken is folded into an xxh3 trace hash that tests compare across two runs.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use super::network::{ClockModel, Fate, Network};
use crate::sansio::{Process, SeededRng};
use crate::state::NodeId;

/// Upper bound on frames in flight: a protocol that floods the network fails the run
/// rather than exhausting memory (TigerBeetle: every queue is bounded).
pub const MAX_IN_FLIGHT: usize = 50_000_000;

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetworkStats {
    /// Frames handed to the network.
    pub frames_sent: u64,
    /// Bytes handed to the network.
    pub bytes_sent: u64,
    /// Frames delivered to a running process.
    pub frames_delivered: u64,
    /// Frames lost to random loss.
    pub frames_lost: u64,
    /// Frames dropped by a partition.
    pub frames_partitioned: u64,
    /// Frames that arrived at a crashed node, or were addressed to an unknown id.
    pub frames_to_nowhere: u64,
    /// Extra copies made by duplication.
    pub frames_duplicated: u64,
    /// Extra copies made by replay.
    pub frames_replayed: u64,
    /// Frames delivered after a frame sent later on the same link.
    pub frames_reordered: u64,
}

/// A run that broke an invariant: what, when, and how to replay it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFailure {
    /// The scenario's name.
    pub scenario: String,
    /// The seed of the run.
    pub seed: u64,
    /// Simulated time of the failure, ms.
    pub at_ms: u64,
    /// Nodes in the run.
    pub node_count: u32,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "simulation '{}' failed at t={} ms with seed {}: {}\nreplay: cargo run --release -- sim --scenario {} --seed {} --nodes {}",
            self.scenario, self.at_ms, self.seed, self.message, self.scenario, self.seed, self.node_count
        )
    }
}

impl std::error::Error for SimFailure {}

#[derive(Debug)]
enum Action {
    Deliver { from: u32, to: u32, sent: u64, bytes: Vec<u8> },
    Timer { node: u32, epoch: u32 },
}

#[derive(Debug)]
struct Scheduled {
    at_ms: u64,
    seq: u64,
    action: Action,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_ms, self.seq) == (other.at_ms, other.seq)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    /// Reversed, so the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at_ms, other.seq).cmp(&(self.at_ms, self.seq))
    }
}

struct Slot<P> {
    id: NodeId,
    process: Option<P>,
    /// Bumped at each crash, so a dead incarnation's timers never fire in the next.
    epoch: u32,
    /// The pending timer's simulated time, if one is scheduled.
    timer_at_ms: Option<u64>,
    clock: ClockModel,
}

/// The deterministic simulator. Nodes are addressed by index (`u32`) here and by
/// [`NodeId`] inside protocols.
pub struct Simulator<P: Process> {
    scenario: String,
    seed: u64,
    now_ms: u64,
    rng: SeededRng,
    /// The network model; change it between `run_until` calls to partition and heal.
    pub network: Network,
    slots: Vec<Slot<P>>,
    index_of: HashMap<NodeId, u32>,
    queue: BinaryHeap<Scheduled>,
    next_seq: u64,
    trace: Xxh3,
    steps: u64,
    stats: NetworkStats,
    /// Per link, the send number of the newest frame delivered (to count reordering).
    newest_delivered: HashMap<(u32, u32), u64>,
    /// Events raised where no observer was given (`flush`, `set_clock`, `restart`),
    /// kept when `keep_unobserved` is set, else dropped.
    unobserved: Option<Vec<(u64, u32, P::Event)>>,
}

impl<P: Process> Simulator<P> {
    /// An empty simulation named `scenario` whose network draws come from `seed`.
    pub fn new(scenario: &str, seed: u64, network: Network) -> Self {
        Simulator {
            scenario: scenario.to_owned(),
            seed,
            now_ms: 0,
            rng: SeededRng::new(seed ^ 0x0005_EED0_F4E7),
            network,
            slots: Vec::new(),
            index_of: HashMap::new(),
            queue: BinaryHeap::new(),
            next_seq: 0,
            trace: Xxh3::new(),
            steps: 0,
            stats: NetworkStats::default(),
            newest_delivered: HashMap::new(),
            unobserved: None,
        }
    }

    /// Keeps the events raised without an observer (by `flush`, `set_clock` and
    /// `restart`) for [`Simulator::take_unobserved`] instead of dropping them.
    pub fn keep_unobserved(&mut self) {
        self.unobserved.get_or_insert_with(Vec::new);
    }

    /// The events kept since the last call: (simulated time, node, event).
    pub fn take_unobserved(&mut self) -> Vec<(u64, u32, P::Event)> {
        self.unobserved.as_mut().map(std::mem::take).unwrap_or_default()
    }

    // Getters.

    /// Simulated time, ms.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }
    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Number of node slots (running or crashed).
    pub fn node_count(&self) -> u32 {
        self.slots.len() as u32
    }
    /// The id of node `index`.
    pub fn id(&self, index: u32) -> NodeId {
        self.slots[index as usize].id
    }
    /// The index of the node with `id`.
    pub fn index(&self, id: &NodeId) -> Option<u32> {
        self.index_of.get(id).copied()
    }
    /// Node `index`'s process, if it is running.
    pub fn process(&self, index: u32) -> Option<&P> {
        self.slots[index as usize].process.as_ref()
    }
    /// Node `index`'s process, mutably (for host commands such as a broadcast); call
    /// [`Simulator::flush`] afterwards so its output is picked up.
    pub fn process_mut(&mut self, index: u32) -> Option<&mut P> {
        self.slots[index as usize].process.as_mut()
    }
    /// Whether node `index` is running.
    pub fn is_running(&self, index: u32) -> bool {
        self.slots[index as usize].process.is_some()
    }
    /// Node `index`'s local clock reading now.
    pub fn local_now_ms(&self, index: u32) -> u64 {
        self.slots[index as usize].clock.local_ms(self.now_ms)
    }
    /// What the network did so far.
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }
    /// Actions processed so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }
    /// The hash of every action taken so far: equal seeds must give equal hashes.
    pub fn trace_hash(&self) -> u64 {
        self.trace.digest()
    }
    /// A failure report for this run at the current time.
    pub fn failure(&self, message: impl Into<String>) -> SimFailure {
        SimFailure {
            scenario: self.scenario.clone(),
            seed: self.seed,
            at_ms: self.now_ms,
            node_count: self.node_count(),
            message: message.into(),
        }
    }

    // Mutators.

    /// Adds a running node; returns its index.
    pub fn add_node(&mut self, id: NodeId, process: P) -> u32 {
        let index = self.slots.len() as u32;
        let previous = self.index_of.insert(id, index);
        assert!(previous.is_none(), "node ids must be unique");
        self.slots.push(Slot { id, process: Some(process), epoch: 0, timer_at_ms: None, clock: ClockModel::default() });
        index
    }

    /// Puts a frame on the wire as if node `from` had sent it to node `to` (a forged or
    /// replayed frame; `from` need not be running). It arrives after `delay_ms`.
    pub fn inject(&mut self, from: u32, to: u32, bytes: Vec<u8>, delay_ms: u64) {
        assert!(from < self.node_count() && to < self.node_count(), "inject between known nodes");
        let sent = self.stats.frames_sent;
        self.schedule(self.now_ms + delay_ms, Action::Deliver { from, to, sent, bytes });
    }

    /// Node `index`'s clock model.
    pub fn clock(&self, index: u32) -> ClockModel {
        self.slots[index as usize].clock
    }

    /// Sets node `index`'s clock offset and drift.
    pub fn set_clock(&mut self, index: u32, clock: ClockModel) {
        self.slots[index as usize].clock = clock;
        self.slots[index as usize].timer_at_ms = None;
        self.flush(index);
    }

    /// Crashes node `index` silently: its state is gone, frames to it are dropped.
    pub fn crash(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        slot.process = None;
        slot.epoch += 1;
        slot.timer_at_ms = None;
        self.hash_record(3, index, index, 0);
    }

    /// Restarts node `index` with a fresh process (built by the caller with whatever
    /// the node would have persisted).
    pub fn restart(&mut self, index: u32, process: P) {
        let slot = &mut self.slots[index as usize];
        slot.process = Some(process);
        slot.epoch += 1;
        slot.timer_at_ms = None;
        self.hash_record(4, index, index, 0);
        self.flush(index);
    }

    /// Collects node `index`'s pending frames and timer after the host touched it.
    /// Events it raised are discarded (or kept, see [`Simulator::keep_unobserved`]):
    /// hosts that want them at once use [`Simulator::flush_with`].
    pub fn flush(&mut self, index: u32) {
        let mut kept = self.unobserved.take();
        let _ = self.flush_with(index, &mut |at, node, event| {
            if let Some(kept) = kept.as_mut() {
                kept.push((at, node, event));
            }
            Ok(())
        });
        self.unobserved = kept;
    }

    /// Like [`Simulator::flush`], handing the node's events to `observer`.
    pub fn flush_with<F>(&mut self, index: u32, observer: &mut F) -> Result<(), SimFailure>
    where
        F: FnMut(u64, u32, P::Event) -> Result<(), String>,
    {
        let now_ms = self.now_ms;
        let slot = &mut self.slots[index as usize];
        let Some(process) = slot.process.as_mut() else { return Ok(()) };
        let mut outgoing = Vec::new();
        while let Some(frame) = process.poll_transmit() {
            outgoing.push(frame);
        }
        let mut failure = None;
        while let Some(event) = process.poll_event() {
            if failure.is_none() {
                if let Err(message) = observer(now_ms, index, event) {
                    failure = Some(message);
                }
            }
        }
        let deadline_ms = process.poll_timeout().map(|local| slot.clock.global_ms(local).max(now_ms));
        if deadline_ms.is_some() && deadline_ms != slot.timer_at_ms {
            slot.timer_at_ms = deadline_ms;
            let epoch = slot.epoch;
            self.schedule(deadline_ms.unwrap_or(now_ms), Action::Timer { node: index, epoch });
        }
        for (to, bytes) in outgoing {
            self.send(index, to, bytes);
        }
        match failure {
            Some(message) => Err(self.failure(message)),
            None => Ok(()),
        }
    }

    /// Runs every action due up to `until_ms`, then sets the time to `until_ms`.
    /// `observer` sees each event as it is raised; returning an error stops the run
    /// with a [`SimFailure`] that names the seed.
    pub fn run_until<F>(&mut self, until_ms: u64, observer: &mut F) -> Result<(), SimFailure>
    where
        F: FnMut(u64, u32, P::Event) -> Result<(), String>,
    {
        assert!(until_ms >= self.now_ms, "time never goes backwards");
        while self.queue.peek().is_some_and(|next| next.at_ms <= until_ms) {
            let Some(next) = self.queue.pop() else { break };
            debug_assert!(next.at_ms >= self.now_ms, "the queue yields actions in time order");
            self.now_ms = next.at_ms;
            self.steps += 1;
            self.perform(next.action, observer)?;
        }
        self.now_ms = until_ms;
        Ok(())
    }

    fn perform<F>(&mut self, action: Action, observer: &mut F) -> Result<(), SimFailure>
    where
        F: FnMut(u64, u32, P::Event) -> Result<(), String>,
    {
        match action {
            Action::Deliver { from, to, sent, bytes } => {
                let newest = self.newest_delivered.entry((from, to)).or_insert(sent);
                if sent < *newest {
                    self.stats.frames_reordered += 1;
                }
                *newest = (*newest).max(sent);
                let from_id = self.slots[from as usize].id;
                let slot = &mut self.slots[to as usize];
                let local_ms = slot.clock.local_ms(self.now_ms);
                let Some(process) = slot.process.as_mut() else {
                    self.stats.frames_to_nowhere += 1;
                    return Ok(());
                };
                process.handle_message(local_ms, from_id, &bytes);
                self.stats.frames_delivered += 1;
                self.hash_record(1, from, to, xxh3_64(&bytes));
                self.flush_with(to, observer)
            }
            Action::Timer { node, epoch } => {
                let slot = &mut self.slots[node as usize];
                if slot.epoch != epoch || slot.timer_at_ms != Some(self.now_ms) {
                    return Ok(()); // Superseded by a later deadline, or by a crash.
                }
                slot.timer_at_ms = None;
                let local_ms = slot.clock.local_ms(self.now_ms);
                let Some(process) = slot.process.as_mut() else { return Ok(()) };
                process.handle_timeout(local_ms);
                self.hash_record(2, node, node, 0);
                self.flush_with(node, observer)
            }
        }
    }

    fn send(&mut self, from: u32, to_id: NodeId, bytes: Vec<u8>) {
        self.stats.frames_sent += 1;
        self.stats.bytes_sent += bytes.len() as u64;
        let Some(to) = self.index(&to_id) else {
            self.stats.frames_to_nowhere += 1;
            return;
        };
        match self.network.route(&mut self.rng, from, to) {
            Fate::Lost => self.stats.frames_lost += 1,
            Fate::Partitioned => self.stats.frames_partitioned += 1,
            Fate::Arrives { latencies_ms, replays } => {
                self.stats.frames_duplicated += (latencies_ms.len() - 1 - replays) as u64;
                self.stats.frames_replayed += replays as u64;
                let sent = self.stats.frames_sent;
                let last = latencies_ms.len() - 1;
                let mut bytes = Some(bytes);
                for (i, latency_ms) in latencies_ms.into_iter().enumerate() {
                    let copy =
                        if i == last { bytes.take().unwrap_or_default() } else { bytes.clone().unwrap_or_default() };
                    self.schedule(self.now_ms + latency_ms, Action::Deliver { from, to, sent, bytes: copy });
                }
            }
        }
    }

    fn schedule(&mut self, at_ms: u64, action: Action) {
        assert!(self.queue.len() < MAX_IN_FLIGHT, "{}", self.failure("more than MAX_IN_FLIGHT actions queued"));
        self.queue.push(Scheduled { at_ms, seq: self.next_seq, action });
        self.next_seq += 1;
    }

    fn hash_record(&mut self, kind: u8, from: u32, to: u32, content: u64) {
        self.trace.update(&[kind]);
        self.trace.update(&self.now_ms.to_le_bytes());
        self.trace.update(&from.to_le_bytes());
        self.trace.update(&to.to_le_bytes());
        self.trace.update(&content.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{sim_node_id, LinkProfile};

    /// Sends a token to the next node every 10 ms; counts tokens received.
    struct Ticker {
        next: NodeId,
        deadline_ms: u64,
        outbox: Vec<(NodeId, Vec<u8>)>,
        received: u32,
    }

    impl Process for Ticker {
        type Event = u32;
        fn handle_message(&mut self, _now_ms: u64, _from: NodeId, bytes: &[u8]) {
            self.received += u32::from(bytes.first().copied().unwrap_or(0));
        }
        fn handle_timeout(&mut self, now_ms: u64) {
            self.deadline_ms = now_ms + 10;
            self.outbox.push((self.next, vec![1]));
        }
        fn poll_transmit(&mut self) -> Option<(NodeId, Vec<u8>)> {
            self.outbox.pop()
        }
        fn poll_timeout(&self) -> Option<u64> {
            Some(self.deadline_ms)
        }
        fn poll_event(&mut self) -> Option<u32> {
            None
        }
    }

    fn run(seed: u64) -> (u64, NetworkStats) {
        let link = LinkProfile { loss: 0.1, duplication: 0.05, ..LinkProfile::default() };
        let mut sim = Simulator::new("ticker", seed, Network::new(link));
        for index in 0..20 {
            let ticker = Ticker { next: sim_node_id((index + 1) % 20), deadline_ms: 0, outbox: vec![], received: 0 };
            sim.add_node(sim_node_id(index), ticker);
            sim.flush(index);
        }
        sim.run_until(500, &mut |_, _, _| Ok(())).unwrap();
        sim.crash(3);
        sim.run_until(1_000, &mut |_, _, _| Ok(())).unwrap();
        (sim.trace_hash(), sim.stats())
    }

    #[test]
    fn same_seed_gives_the_same_trace_and_another_seed_does_not() {
        let (first, stats) = run(11);
        let (second, _) = run(11);
        let (other, _) = run(12);
        assert_eq!(first, second);
        assert_ne!(first, other);
        assert!(stats.frames_lost > 0 && stats.frames_duplicated > 0 && stats.frames_to_nowhere > 0);
    }

    #[test]
    fn failure_names_seed_and_replay_command() {
        let sim: Simulator<Ticker> = Simulator::new("split", 42, Network::default());
        let text = sim.failure("boom").to_string();
        assert!(text.contains("seed 42") && text.contains("sim --scenario split --seed 42"));
    }
}
