//! The faults of a seed: switched on for the safety phase, drawn step by step
//! (partitions, clogged links, crashes, clock jumps), stopped for the liveness phase,
//! and counted.

use super::*;

/// A fault with an end.
#[derive(Clone, Copy, Debug)]
pub(super) enum Timed {
    Heal,
    Unclog(u32, u32),
}

pub(super) fn add_liar_stats(a: LiarStats, b: LiarStats) -> LiarStats {
    LiarStats {
        corrupted: a.corrupted + b.corrupted,
        forged_membership: a.forged_membership + b.forged_membership,
        flood_frames: a.flood_frames + b.flood_frames,
    }
}

impl World {
    /// Switches the seed's network and disk faults on.
    pub(in crate::sim::swarm) fn faults_start(&mut self) {
        self.faults_on = true;
        let f = self.plan.faults.clone();
        let link = LinkProfile {
            latency_jitter_ms: 9 + f.reorder_jitter_ms,
            loss: f.loss,
            duplication: f.duplication,
            replay: f.replay,
            replay_delay_ms: 5_000,
            ..LinkProfile::default()
        };
        self.sim.network.default_link = link;
        let disk_faults = DiskFaults {
            write_error: f.disk_write_error,
            read_error: f.disk_read_error,
            misdirected_write: f.misdirected_write,
            full_disk: f.disk_capacity,
            latency_ms_max: f.disk_latency_ms,
            ..DiskFaults::default()
        };
        // Raft journals get every fault but misdirection (ADR 080); their latency is
        // not modelled (nothing waits on it outside the group).
        let raft_faults = DiskFaults { misdirected_write: 0.0, latency_ms_max: 0, ..disk_faults };
        for disk in &self.disks {
            disk.set_faults(disk_faults);
        }
        for disk in &self.raft_disks {
            disk.set_faults(raft_faults);
        }
    }

    /// Stops every fault: the network heals, links recover, disks stop failing.
    pub(in crate::sim::swarm) fn faults_stop(&mut self) {
        self.faults_on = false;
        self.sim.network.default_link = LinkProfile::default();
        self.sim.network.heal();
        for (_, timed) in std::mem::take(&mut self.timed) {
            if let Timed::Unclog(from, to) = timed {
                self.sim.network.clear_link(from, to);
            }
        }
        for disk in self.disks.iter().chain(&self.raft_disks) {
            disk.set_faults(DiskFaults::default());
            disk.disarm_crash();
        }
        self.note("faults stopped".into());
    }

    /// Draws this step's faults (rates are per second; a step lasts `step_ms`).
    pub(in crate::sim::swarm) fn inject_faults(&mut self, step_ms: u64) {
        let f = self.plan.faults.clone();
        let per_step = |rate: f64| rate * step_ms as f64 / 1_000.0;
        let now = self.sim.now_ms();
        let (partitioned, n) = (self.timed.iter().any(|(_, t)| matches!(t, Timed::Heal)), self.plan.nodes);
        if !partitioned && self.rng.chance(per_step(f.partition_rate)) {
            self.partition(n);
            let until = now + 300 + self.rng.below(4_000);
            self.timed.push((until, Timed::Heal));
        }
        if n > 1 && self.rng.chance(per_step(f.clog_rate)) {
            let from = self.rng.below(n as u64) as u32;
            let to = (from + 1 + self.rng.below(n as u64 - 1) as u32) % n;
            let slow = LinkProfile { latency_min_ms: 500 + self.rng.below(2_000), ..self.sim.network.default_link };
            self.sim.network.set_link(from, to, slow);
            self.timed.push((now + 500 + self.rng.below(3_000), Timed::Unclog(from, to)));
            self.count("net.clog");
            self.note(format!("link {from}->{to} clogged"));
        }
        if self.rng.chance(per_step(f.crash_rate)) {
            let index = self.rng.below(n as u64) as u32;
            if self.sim.is_running(index) && self.rng.chance(0.5) {
                self.count("node.crash");
                let down = 100 + self.rng.below(4_000);
                self.crash(index, down, "crash");
            } else if self.sim.is_running(index) {
                // The process dies in the middle of its next log write.
                self.disks[index as usize].crash_during_next_append();
                self.note(format!("node {index} will crash during its next write"));
            }
        }
        if self.rng.chance(per_step(f.clock_jump_rate)) {
            let index = self.rng.below(n as u64) as u32;
            let jump = (500 + self.rng.below(4_500)) as i64 * if self.rng.chance(0.5) { 1 } else { -1 };
            let mut clock = self.sim.clock(index);
            clock.offset_ms = (clock.offset_ms + jump).max(-CLOCK_BASE_MS / 2);
            self.sim.set_clock(index, clock);
            self.count("clock.jump");
            self.note(format!("node {index} clock jumped {jump} ms"));
        }
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.timed).into_iter().partition(|(at, _)| *at <= now);
        self.timed = later;
        for (_, timed) in due {
            match timed {
                Timed::Heal => {
                    self.sim.network.heal();
                    self.note("partition healed".into());
                }
                Timed::Unclog(from, to) => self.sim.network.clear_link(from, to),
            }
        }
    }

    fn partition(&mut self, n: u32) {
        match self.rng.below(3) {
            0 => {
                let cut = 1 + self.rng.below(u64::from(n - 1)) as u32;
                let mut order: Vec<u32> = (0..n).collect();
                self.rng.shuffle(&mut order);
                let side: Vec<u32> = order[..cut as usize].to_vec();
                self.sim.network.split(n, |node| u32::from(side.contains(&node)));
                self.count("net.partition.symmetric");
                self.note(format!("partition: {side:?} | rest"));
            }
            1 => {
                let from = self.rng.below(n as u64) as u32;
                let to = (from + 1 + self.rng.below(n as u64 - 1) as u32) % n;
                self.sim.network.cut_one_way(from, to);
                self.count("net.partition.one_way");
                self.note(format!("partition: one-way {from}->{to}"));
            }
            _ => {
                let node = self.rng.below(n as u64) as u32;
                self.sim.network.isolate(node);
                self.count("net.partition.isolate");
                self.note(format!("partition: node {node} isolated"));
            }
        }
    }

    /// Every fault counter: the harness's own, the network's, the disks', the liars'.
    pub(in crate::sim::swarm) fn fault_counts(&self) -> FaultCounts {
        let mut counts = self.counts.clone();
        let net = self.sim.stats();
        for (kind, value) in [
            ("net.loss", net.frames_lost),
            ("net.duplicate", net.frames_duplicated),
            ("net.replay", net.frames_replayed),
            ("net.reorder", net.frames_reordered),
            ("net.partitioned_frames", net.frames_partitioned),
        ] {
            *counts.entry(kind).or_default() += value;
        }
        for disk in self.disks.iter().chain(&self.raft_disks) {
            let stats = disk.stats();
            for (kind, value) in [
                ("disk.torn_write", stats.torn_writes),
                ("disk.write_error", stats.write_errors),
                ("disk.read_error", stats.read_errors),
                ("disk.misdirected_write", stats.misdirected_writes),
                ("disk.full", stats.full_disk_refusals),
                ("disk.latency", stats.latency_draws),
                ("node.crash_mid_write", stats.crashes_mid_write),
            ] {
                *counts.entry(kind).or_default() += value;
            }
        }
        let mut liars = self.liar_stats;
        for index in 0..self.plan.nodes {
            if let Some(stats) = self.sim.process(index).and_then(SwarmNode::liar_stats) {
                liars = add_liar_stats(liars, stats);
            }
        }
        *counts.entry("byzantine.corrupted_message").or_default() += liars.corrupted;
        *counts.entry("byzantine.forged_membership").or_default() += liars.forged_membership;
        *counts.entry("byzantine.flood_frame").or_default() += liars.flood_frames;
        counts.retain(|_, value| *value > 0);
        counts
    }
}
