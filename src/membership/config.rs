//! SWIM and Lifeguard parameters, with where each number comes from.

/// The configuration of one [`super::Swim`] member.
#[derive(Clone, Debug, PartialEq)]
pub struct SwimConfig {
    /// Period between two probes at full health. SWIM (Das et al. 2002, §3.1) leaves it
    /// free; memberlist's LAN default is 1 s. We halve it so that a crashed member is
    /// known dead everywhere within 10 s at N = 1,000 (the goal); measured in
    /// `benches/gossip.rs`.
    pub probe_interval_ms: u64,
    /// How long a direct ping waits for its ack before the indirect probes go out.
    /// memberlist LAN default: 500 ms; here 200 ms, well above the simulated RTT tail.
    pub probe_timeout_ms: u64,
    /// Members asked to ping the target indirectly: SWIM's k (§3.1); memberlist uses 3.
    pub indirect_checks: usize,
    /// Lifeguard's suspicion multiplier α: the smallest suspicion timeout is
    /// α · log10(n) · probe interval (Dadgar et al. 2018, §IV-B; memberlist
    /// `SuspicionMult` = 4).
    pub suspicion_mult: u64,
    /// Lifeguard's β: the largest suspicion timeout is β times the smallest
    /// (memberlist `SuspicionMaxTimeoutMult` = 6).
    pub suspicion_max_timeout_mult: u64,
    /// Lifeguard's K: independent confirmations that shrink the timeout to its minimum
    /// (set to the number of indirect checks, as in memberlist).
    pub suspicion_confirmations_expected: u32,
    /// Lifeguard's local health multiplier ceiling S (paper §IV-A: 8): probe interval
    /// and timeout are stretched by (LHM + 1).
    pub local_health_max: u32,
    /// SWIM's λ: each update is piggybacked λ · ⌈log10(n + 1)⌉ times (memberlist
    /// `RetransmitMult` = 4).
    pub retransmit_mult: u32,
    /// Updates piggybacked on one probe message at most.
    pub max_piggyback: usize,
    /// A dead member's entry is reclaimed (removed from the member list, kept in the
    /// bounded known set) this long after its death (memberlist `GossipToTheDeadTime`).
    pub dead_reclaim_ms: u64,
    /// Period of the push-pull state exchange with a random live member (memberlist
    /// `PushPullInterval` is 30 s; shorter here for faster re-merges).
    pub push_pull_interval_ms: u64,
    /// Period of a reconnect attempt to one dead or known-but-gone member (Serf's
    /// reconnect loop; 30 s there; 2 s here so a split re-merges within 30 s of heal).
    pub reconnect_interval_ms: u64,
    /// A known-but-gone member is forgotten after this long (Serf `ReconnectTimeout`).
    pub forget_after_ms: u64,
    /// When the host bounds the probe scope (a partial view), one probe in this many
    /// goes to a member outside it, in a shuffled round of its own (0: never), while
    /// the group looks quiet. SWIM's completeness (§3.1) comes from every member
    /// probing every other in turn; with a partial view a member is probed only by its
    /// neighbours, and after a split those are all on its own side, so without these
    /// probes the other side would count it alive for ever — and a minority side could
    /// take itself for a majority (found by `tests/cluster_processes.rs`). Each costs a
    /// short-lived connection, hence the slow pace while quiet (one per 16 s).
    pub outside_probe_every: u32,
    /// The same, while this member holds a suspect or a dead member (dead ones are held
    /// `dead_reclaim_ms` before reclamation): a split shows first as neighbours dying,
    /// and then the rest of the other side must be found quickly.
    pub outside_probe_every_alarmed: u32,
    /// Largest frame accepted or produced, bytes.
    pub max_frame_len: usize,
}

impl Default for SwimConfig {
    fn default() -> Self {
        SwimConfig {
            probe_interval_ms: 500,
            probe_timeout_ms: 200,
            indirect_checks: 3,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            suspicion_confirmations_expected: 3,
            local_health_max: 8,
            retransmit_mult: 4,
            max_piggyback: 8,
            dead_reclaim_ms: 30_000,
            push_pull_interval_ms: 15_000,
            reconnect_interval_ms: 2_000,
            forget_after_ms: 3_600_000,
            outside_probe_every: 32,
            outside_probe_every_alarmed: 2,
            max_frame_len: super::message::MAX_FRAME_LEN,
        }
    }
}

impl SwimConfig {
    /// Lifeguard's suspicion timeout (§IV-B) after `confirmations` independent
    /// suspicions, in a group of `member_count`:
    /// `max(min, max − (max − min) · log(C + 1) / log(K + 1))`, with
    /// `min = α · max(1, log10 n) · interval` and `max = β · min`.
    pub fn suspicion_timeout_ms(&self, member_count: usize, confirmations: u32) -> u64 {
        let scale = (member_count.max(1) as f64).log10().max(1.0);
        let min_ms = self.suspicion_mult as f64 * scale * self.probe_interval_ms as f64;
        let max_ms = self.suspicion_max_timeout_mult as f64 * min_ms;
        let expected = f64::from(self.suspicion_confirmations_expected.max(1));
        let fraction = (f64::from(confirmations) + 1.0).ln() / (expected + 1.0).ln();
        let timeout_ms = (max_ms - (max_ms - min_ms) * fraction).max(min_ms);
        debug_assert!(timeout_ms >= min_ms && timeout_ms <= max_ms);
        timeout_ms as u64
    }

    /// How often one update is piggybacked: λ · ⌈log10(n + 1)⌉ (memberlist).
    pub fn retransmit_limit(&self, member_count: usize) -> u32 {
        let scale = ((member_count + 1) as f64).log10().ceil().max(1.0) as u32;
        self.retransmit_mult * scale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suspicion_timeout_shrinks_with_confirmations_down_to_the_minimum() {
        let config = SwimConfig::default();
        let none = config.suspicion_timeout_ms(1000, 0);
        let one = config.suspicion_timeout_ms(1000, 1);
        let all = config.suspicion_timeout_ms(1000, 3);
        let more = config.suspicion_timeout_ms(1000, 10);
        assert_eq!(none, 6 * 6_000);
        assert!(none > one && one > all);
        assert_eq!(all, 6_000);
        assert_eq!(more, 6_000);
    }
}
