//! Nodes going down and coming back: crashes (and fail-stops), restarts from the
//! simulated disks with the recovery check, and the operator's wipe of storage found
//! corrupt.

use super::*;

impl World {
    /// Crashes node `index` (or records a fail-stop); it restarts after `down_ms`.
    pub(in crate::sim::swarm) fn crash(&mut self, index: u32, down_ms: u64, why: &str) {
        let Some(node) = self.sim.process(index) else { return };
        if let Some(stats) = node.liar_stats() {
            self.liar_stats = add_liar_stats(self.liar_stats, stats);
        }
        self.sim.crash(index);
        let torn = self.plan.faults.torn_write * f64::from(u8::from(self.faults_on));
        self.disks[index as usize].crash(torn);
        self.raft_disks[index as usize].crash(torn);
        self.ledger.node_crashed(index);
        self.network_time[index as usize] = None;
        self.down_until[index as usize] = Some(self.sim.now_ms() + down_ms);
        self.note(format!("node {index} crashed ({why}), down {down_ms} ms"));
    }

    /// Restarts node `index` from its disks, checking that it recovered every write
    /// it acknowledged; storage found corrupt is wiped (the operator's repair).
    pub(in crate::sim::swarm) fn restart(&mut self, index: u32) -> Result<(), String> {
        self.boots[index as usize] += 1;
        let now = self.sim.local_now_ms(index);
        let node = match self.open_node(index, now) {
            Ok(node) => node,
            Err(OpenError::Transient(why)) => {
                self.down_until[index as usize] = Some(self.sim.now_ms() + 200);
                self.note(format!("node {index} failed to start, retrying: {why}"));
                return Ok(());
            }
            Err(OpenError::Corrupt(why)) => {
                // Only a misdirected write may corrupt a log: anything else refused as
                // corrupt is a recovery bug, not a fault the swarm injected.
                let misdirected = self.disks[index as usize].stats().misdirected_writes;
                if misdirected == self.misdirected_at_open[index as usize] {
                    return Err(format!("node {index}'s storage was refused as corrupt, yet no write was misdirected: {why}"));
                }
                self.count("storage.corruption_detected");
                self.note(format!("node {index} storage corrupt, wiped: {why}"));
                self.disks[index as usize].wipe(&node_dir(index));
                self.wipe_ledger(index);
                self.down_until[index as usize] = Some(self.sim.now_ms());
                return Ok(());
            }
        };
        self.misdirected_at_open[index as usize] = self.disks[index as usize].stats().misdirected_writes;
        self.ledger
            .check_recovered(index, |category, key| node.stored(category, key))
            .and_then(|()| match node.chain() {
                Some(chain) => self.ledger.check_blocks(index, |id| chain.contains(id)),
                None => Ok(()),
            })?;
        self.down_until[index as usize] = None;
        self.count("node.restart");
        self.note(format!("node {index} restarted (boot {})", self.boots[index as usize]));
        self.sim.restart(index, node);
        self.handle_events()
    }

    /// Tells the ledger that node `index` lost its storage.
    fn wipe_ledger(&mut self, index: u32) {
        let sim = &self.sim;
        let plan = &self.plan;
        let others: Vec<&SwarmNode> =
            (0..plan.nodes).filter(|&i| i != index && plan.honest(i)).filter_map(|i| sim.process(i)).collect();
        let block_held = |id: &crate::chain::BlockId| others.iter().any(|node| node.chain().is_some_and(|c| c.contains(id)));
        self.ledger.node_wiped(index, block_held);
    }

    /// Restarts every node whose downtime is over.
    pub(in crate::sim::swarm) fn restart_due(&mut self) -> Result<(), String> {
        let now = self.sim.now_ms();
        for index in 0..self.plan.nodes {
            if self.down_until[index as usize].is_some_and(|at| at <= now) {
                self.restart(index)?;
            }
        }
        Ok(())
    }

    /// Every down node restarts at the next chance.
    pub(in crate::sim::swarm) fn restart_all_now(&mut self) {
        let now = self.sim.now_ms();
        for down in self.down_until.iter_mut().flatten() {
            *down = now;
        }
    }
}
