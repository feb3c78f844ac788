//! The simulated network: per-link latency, loss, duplication and reordering, and
//! partitions of any shape (a split into groups, a one-way cut, one isolated node).
//! Reordering is not a separate knob: two frames on one link take independently drawn
//! latencies, so a later frame overtakes an earlier one whenever its draw is shorter.

use std::collections::{HashMap, HashSet};

use crate::sansio::SeededRng;

/// How frames travel on a link.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkProfile {
    /// The shortest one-way latency.
    pub latency_min_ms: u64,
    /// Added to the minimum: a uniform draw in `0..=latency_jitter_ms`.
    pub latency_jitter_ms: u64,
    /// With this probability a frame also waits `latency_tail_ms` more (a slow path,
    /// a retransmission on the real network): a long-tailed distribution in two lines.
    pub latency_tail_chance: f64,
    /// The extra wait of a tail frame.
    pub latency_tail_ms: u64,
    /// Probability that a frame is lost.
    pub loss: f64,
    /// Probability that a frame arrives twice.
    pub duplication: f64,
    /// Probability that a frame is replayed: a copy arrives again up to
    /// `replay_delay_ms` later (an old frame resent by a faulty middlebox or an attacker).
    pub replay: f64,
    /// The longest extra delay of a replayed copy.
    pub replay_delay_ms: u64,
}

impl Default for LinkProfile {
    /// A data-centre-like link: 1–10 ms, 1% of frames 50 ms late, no loss.
    fn default() -> Self {
        LinkProfile {
            latency_min_ms: 1,
            latency_jitter_ms: 9,
            latency_tail_chance: 0.01,
            latency_tail_ms: 50,
            loss: 0.0,
            duplication: 0.0,
            replay: 0.0,
            replay_delay_ms: 0,
        }
    }
}

impl LinkProfile {
    /// This profile with its loss probability set.
    pub fn with_loss(mut self, loss: f64) -> Self {
        self.loss = loss;
        self
    }

    /// One latency draw.
    pub fn draw_latency_ms(&self, rng: &mut SeededRng) -> u64 {
        let mut latency_ms = self.latency_min_ms + rng.below(self.latency_jitter_ms + 1);
        if rng.chance(self.latency_tail_chance) {
            latency_ms += self.latency_tail_ms;
        }
        latency_ms.max(1)
    }
}

/// What the network does with one frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Delivered after each of these latencies (more than one when duplicated or
    /// replayed); the last `replays` of them are replayed copies.
    Arrives {
        /// One latency per copy.
        latencies_ms: Vec<u64>,
        /// How many of the copies (at the end) are replays.
        replays: usize,
    },
    /// Lost to random loss.
    Lost,
    /// Dropped by a partition.
    Partitioned,
}

/// The links between node indices and the partitions cutting them.
#[derive(Clone, Debug, Default)]
pub struct Network {
    /// The profile of every link without an override.
    pub default_link: LinkProfile,
    overrides: HashMap<(u32, u32), LinkProfile>,
    /// Partition group of each node index; frames cross only within one group.
    /// Empty means no split.
    group_of: Vec<u32>,
    /// Directed cuts `(from, to)`: one-way partitions.
    cut_one_way: HashSet<(u32, u32)>,
    isolated: HashSet<u32>,
}

impl Network {
    /// A network whose links all follow `default_link`.
    pub fn new(default_link: LinkProfile) -> Self {
        Network { default_link, ..Network::default() }
    }

    /// Sets the profile of the directed link `from → to`.
    pub fn set_link(&mut self, from: u32, to: u32, profile: LinkProfile) {
        self.overrides.insert((from, to), profile);
    }

    /// Returns the directed link `from → to` to the default profile.
    pub fn clear_link(&mut self, from: u32, to: u32) {
        self.overrides.remove(&(from, to));
    }

    /// Splits `node_count` nodes into groups: `group_of(index)` names each node's side.
    pub fn split(&mut self, node_count: u32, group_of: impl Fn(u32) -> u32) {
        self.group_of = (0..node_count).map(group_of).collect();
    }

    /// Cuts the direction `from → to` only (`to → from` still works).
    pub fn cut_one_way(&mut self, from: u32, to: u32) {
        self.cut_one_way.insert((from, to));
    }

    /// Cuts a node off from every other.
    pub fn isolate(&mut self, node: u32) {
        self.isolated.insert(node);
    }

    /// Removes every partition (splits, one-way cuts, isolations); link profiles stay.
    pub fn heal(&mut self) {
        self.group_of.clear();
        self.cut_one_way.clear();
        self.isolated.clear();
    }

    /// Whether a frame from `from` can reach `to` now.
    pub fn connected(&self, from: u32, to: u32) -> bool {
        if self.isolated.contains(&from) || self.isolated.contains(&to) {
            return false;
        }
        if self.cut_one_way.contains(&(from, to)) {
            return false;
        }
        let side = |node: u32| self.group_of.get(node as usize).copied().unwrap_or(0);
        side(from) == side(to)
    }

    /// Decides the fate of one frame `from → to`.
    pub fn route(&self, rng: &mut SeededRng, from: u32, to: u32) -> Fate {
        if !self.connected(from, to) {
            return Fate::Partitioned;
        }
        let link = self.overrides.get(&(from, to)).unwrap_or(&self.default_link);
        if rng.chance(link.loss) {
            return Fate::Lost;
        }
        let mut latencies_ms = vec![link.draw_latency_ms(rng)];
        if rng.chance(link.duplication) {
            latencies_ms.push(link.draw_latency_ms(rng));
        }
        let mut replays = 0;
        // Guarded so that runs without replay draw exactly what they drew before.
        if link.replay > 0.0 && rng.chance(link.replay) {
            latencies_ms.push(link.draw_latency_ms(rng) + rng.below(link.replay_delay_ms + 1));
            replays = 1;
        }
        Fate::Arrives { latencies_ms, replays }
    }
}

/// A node's local clock against simulated time: a fixed offset and a rate error, as
/// real oscillators have (tens of ppm is typical of quartz).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockModel {
    /// Offset of the local clock, ms (may be negative; local time never goes below 0).
    pub offset_ms: i64,
    /// Rate error in parts per million: +100 runs 0.01% fast.
    pub drift_ppm: i64,
}

impl ClockModel {
    /// The local reading at simulated time `global_ms`.
    pub fn local_ms(&self, global_ms: u64) -> u64 {
        let drifted = global_ms as i128 + global_ms as i128 * self.drift_ppm as i128 / 1_000_000;
        (drifted + self.offset_ms as i128).max(0) as u64
    }

    /// The earliest simulated time whose local reading is at least `local_ms`.
    pub fn global_ms(&self, local_ms: u64) -> u64 {
        let rate = 1_000_000i128 + self.drift_ppm as i128;
        debug_assert!(rate > 0, "a clock must move forwards");
        let shifted = (local_ms as i128 - self.offset_ms as i128).max(0);
        let mut global = (shifted * 1_000_000 / rate).max(0) as u64;
        // Integer division may land one step early or late; settle on the first tick.
        while self.local_ms(global) < local_ms {
            global += 1;
        }
        while global > 0 && self.local_ms(global - 1) >= local_ms {
            global -= 1;
        }
        global
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_cuts_across_groups_and_heal_restores() {
        let mut network = Network::new(LinkProfile::default());
        network.split(4, |node| node % 2);
        assert!(network.connected(0, 2));
        assert!(!network.connected(0, 1));
        network.heal();
        assert!(network.connected(0, 1));
    }

    #[test]
    fn one_way_cut_leaves_the_reverse_direction() {
        let mut network = Network::new(LinkProfile::default());
        network.cut_one_way(3, 5);
        assert!(!network.connected(3, 5));
        assert!(network.connected(5, 3));
    }

    #[test]
    fn clock_model_round_trips_deadlines() {
        let clock = ClockModel { offset_ms: -250, drift_ppm: 300 };
        for local in [0u64, 1, 999, 123_456, 10_000_000] {
            let global = clock.global_ms(local);
            assert!(clock.local_ms(global) >= local);
            assert!(global == 0 || clock.local_ms(global - 1) < local);
        }
    }
}
