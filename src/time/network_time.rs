//! Network time: what time it is according to the peers, robust to peers that lie.
//!
//! The method is NTP's (RFC 5905), without its control loop:
//!
//! 1. **Four-timestamp exchange** (§8): the local node sends at `t1` (local clock), the
//!    peer receives at `t2` and replies at `t3` (peer clock), the reply arrives at `t4`
//!    (local clock). Offset `θ = ((t2 − t1) + (t3 − t4)) / 2`, delay
//!    `δ = (t4 − t1) − (t3 − t2)`. Whatever the asymmetry of the two paths, the true
//!    offset lies in `θ ± δ/2`. Impossible exchanges (negative delay, a reply before
//!    its request) are refused and counted: a peer that forges its processing time
//!    `t3 − t2` beyond the round trip shows up here.
//! 2. **Clock filter** ([`super::clock_filter`], §10): per peer, of the last 8
//!    samples the one with the lowest delay.
//! 3. **Selection** ([`super::selection`], §11.2.1, Marzullo 1984): the intersection of
//!    the correctness intervals `θ ± (δ/2 + ε)` shared by a majority; the peers whose
//!    intervals miss it are falsetickers and are ignored.
//! 4. **Combine**: the median of the survivors' offsets. RFC 5905 §11.2.3 averages
//!    with weights `1 / distance`, but a peer that forges its processing time can make
//!    its delay, hence its distance, as small as it likes and take over a weighted
//!    mean (the flaw of the original design's `1/RTT` weights), and can narrow the
//!    intersection to its own interval. The median bounds what any one surviving peer
//!    can do: it moves the result by at most one rank.
//! 5. **Adjust**: only with at least `min_agreeing` (default 3) surviving peers *and* a
//!    majority of candidates; each adjustment moves the correction by at most
//!    `max_step_us`.
//!
//! `t1` and `t4` must be read from the **raw** local clock, not from
//! [`NetworkTime::synchronized_time_us`]: the estimate is then the full offset of the
//! network from the local clock, and the correction converges to it step by step.
//! This module is sans-IO: the host measures, this state machine decides.
//! `docs/adr/011-network-time.md` records the choices the RFC leaves open.

use std::collections::BTreeMap;
use std::fmt;

use super::clock_filter::{ClockFilter, FilteredPeer, Sample};
use super::selection::{select, Interval};
use crate::state::NodeId;

/// One request/response exchange with a peer, in microseconds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Exchange {
    /// Local clock when the request left.
    pub t1_us: i64,
    /// Peer clock when the request arrived.
    pub t2_us: i64,
    /// Peer clock when the reply left.
    pub t3_us: i64,
    /// Local clock when the reply arrived.
    pub t4_us: i64,
}

impl Exchange {
    /// Offset and delay of this exchange, or why it is impossible.
    pub fn sample(&self, max_delay_us: i64) -> Result<Sample, NetworkTimeError> {
        let (t1, t2, t3, t4) =
            (i128::from(self.t1_us), i128::from(self.t2_us), i128::from(self.t3_us), i128::from(self.t4_us));
        if t4 < t1 {
            return Err(NetworkTimeError::InvalidExchange("reply arrived before the request left"));
        }
        if t3 < t2 {
            return Err(NetworkTimeError::InvalidExchange("peer replied before it received"));
        }
        let delay = (t4 - t1) - (t3 - t2);
        if delay < 0 {
            return Err(NetworkTimeError::InvalidExchange("peer processing time exceeds the round trip"));
        }
        if delay > i128::from(max_delay_us) {
            return Err(NetworkTimeError::InvalidExchange("round trip longer than the configured maximum"));
        }
        let offset = ((t2 - t1) + (t3 - t4)) / 2;
        let offset_us = i64::try_from(offset).map_err(|_| NetworkTimeError::InvalidExchange("offset out of range"))?;
        Ok(Sample { offset_us, delay_us: delay as i64, taken_at_us: self.t4_us })
    }
}

/// Configuration of network time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct NetworkTimeConfig {
    /// Fewest agreeing peers for any adjustment (the issue asks for 3).
    pub min_agreeing: usize,
    /// Largest change of the correction per [`NetworkTime::update`], in microseconds.
    pub max_step_us: i64,
    /// Exchanges with a longer round trip are refused (NTP's MAXDIST is 1.5 s).
    pub max_delay_us: i64,
    /// Samples older than this are forgotten (8 polls at NTP's 64 s minimum poll).
    pub max_sample_age_us: i64,
    /// Peers tracked at most.
    pub max_peers: usize,
    /// Precision of the local clock, added to every sample's dispersion.
    pub precision_us: i64,
}

impl Default for NetworkTimeConfig {
    fn default() -> Self {
        NetworkTimeConfig {
            min_agreeing: 3,
            // A guess: large enough to correct a badly set clock in a few rounds, small
            // enough that one bad round cannot move HLC physical time by much.
            max_step_us: 1_000_000,
            max_delay_us: 1_500_000,
            max_sample_age_us: 8 * 64 * 1_000_000,
            max_peers: 64,
            precision_us: 1,
        }
    }
}

/// Why network time refused an input or an adjustment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum NetworkTimeError {
    /// The four timestamps describe an impossible exchange.
    InvalidExchange(&'static str),
    /// The peer table is full.
    TooManyPeers {
        /// The configured bound.
        max: usize,
    },
    /// Fewer usable peers than `min_agreeing`.
    NotEnoughPeers {
        /// Peers with at least one sample.
        candidates: usize,
        /// The configured minimum.
        required: usize,
    },
    /// No majority of peers agrees on an interval.
    NoMajority {
        /// Peers with at least one sample.
        candidates: usize,
    },
    /// A majority agrees, but fewer than `min_agreeing` peers.
    TooFewAgreeing {
        /// Peers whose interval reaches the intersection.
        agreeing: usize,
        /// The configured minimum.
        required: usize,
    },
}

impl fmt::Display for NetworkTimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkTimeError::InvalidExchange(why) => write!(f, "invalid time exchange: {why}"),
            NetworkTimeError::TooManyPeers { max } => write!(f, "more than {max} time peers"),
            NetworkTimeError::NotEnoughPeers { candidates, required } => {
                write!(f, "{candidates} time peers, {required} needed")
            }
            NetworkTimeError::NoMajority { candidates } => {
                write!(f, "no majority among {candidates} time peers agrees")
            }
            NetworkTimeError::TooFewAgreeing { agreeing, required } => {
                write!(f, "{agreeing} time peers agree, {required} needed")
            }
        }
    }
}

impl std::error::Error for NetworkTimeError {}

/// The result of a successful [`NetworkTime::update`].
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Adjustment {
    /// The combined offset of the network from the local clock.
    pub estimate_us: i64,
    /// How much the correction moved (clamped to `max_step_us`).
    pub applied_us: i64,
    /// The correction after this adjustment.
    pub correction_us: i64,
    /// Peers that agreed.
    pub truechimers: Vec<NodeId>,
    /// Peers whose clocks disagree with the majority.
    pub falsetickers: Vec<NodeId>,
}

/// Counters for metrics.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct NetworkTimeStats {
    /// Exchanges accepted into a filter.
    pub exchanges_accepted: u64,
    /// Exchanges refused as impossible.
    pub exchanges_refused: u64,
    /// Updates that adjusted the correction.
    pub adjustments: u64,
    /// Updates refused for lack of agreement.
    pub refusals: u64,
}

/// The network-time state machine of one node.
#[derive(Clone, Debug)]
pub struct NetworkTime {
    config: NetworkTimeConfig,
    filters: BTreeMap<NodeId, ClockFilter>,
    correction_us: i64,
    stats: NetworkTimeStats,
}

impl NetworkTime {
    /// No peers, no correction.
    pub fn new(config: NetworkTimeConfig) -> Self {
        assert!(config.min_agreeing >= 1 && config.max_step_us >= 0 && config.max_peers >= 1);
        NetworkTime { config, filters: BTreeMap::new(), correction_us: 0, stats: NetworkTimeStats::default() }
    }

    /// The current correction: network time minus local clock, in microseconds.
    pub fn correction_us(&self) -> i64 {
        self.correction_us
    }

    /// Counters.
    pub fn stats(&self) -> NetworkTimeStats {
        self.stats
    }

    /// The number of peers with a filter.
    pub fn peer_count(&self) -> usize {
        self.filters.len()
    }

    /// Network time for a raw local clock reading: the design's `synchronized_time()`.
    #[doc(alias = "synchronized_time")]
    pub fn synchronized_time_us(&self, local_now_us: i64) -> i64 {
        local_now_us.saturating_add(self.correction_us)
    }

    /// Network time in whole milliseconds, as the HLC's physical part reads it.
    pub fn synchronized_time_ms(&self, local_now_us: i64) -> u64 {
        let us = self.synchronized_time_us(local_now_us).max(0);
        (us / 1_000) as u64
    }

    /// Records one exchange with `peer`; impossible exchanges are refused and counted.
    pub fn handle_exchange(&mut self, peer: NodeId, exchange: Exchange) -> Result<Sample, NetworkTimeError> {
        let sample = match exchange.sample(self.config.max_delay_us) {
            Ok(sample) => sample,
            Err(error) => {
                self.stats.exchanges_refused += 1;
                return Err(error);
            }
        };
        if !self.filters.contains_key(&peer) && self.filters.len() >= self.config.max_peers {
            return Err(NetworkTimeError::TooManyPeers { max: self.config.max_peers });
        }
        self.filters.entry(peer).or_default().push(sample);
        self.stats.exchanges_accepted += 1;
        Ok(sample)
    }

    /// Forgets a peer (it left, or was disconnected).
    pub fn remove_peer(&mut self, peer: &NodeId) {
        self.filters.remove(peer);
    }

    /// Estimates the network's offset at raw local time `now_us` without adjusting.
    pub fn estimate(&mut self, now_us: i64) -> Result<Adjustment, NetworkTimeError> {
        let oldest_us = now_us.saturating_sub(self.config.max_sample_age_us);
        self.filters.values_mut().for_each(|filter| filter.expire(oldest_us));
        self.filters.retain(|_, filter| !filter.is_empty());
        let peers: Vec<(NodeId, FilteredPeer)> = self
            .filters
            .iter()
            .filter_map(|(peer, filter)| filter.best(now_us, self.config.precision_us).map(|best| (*peer, best)))
            .collect();
        let required = self.config.min_agreeing;
        if peers.len() < required {
            return Err(NetworkTimeError::NotEnoughPeers { candidates: peers.len(), required });
        }
        let intervals: Vec<Interval> =
            peers.iter().map(|(_, best)| Interval::around(best.offset_us, best.distance_us())).collect();
        let selection = select(&intervals).ok_or(NetworkTimeError::NoMajority { candidates: peers.len() })?;
        let (mut truechimers, mut falsetickers) = (Vec::new(), Vec::new());
        let mut offsets_us: Vec<i64> = Vec::with_capacity(peers.len());
        for ((peer, best), agrees) in peers.iter().zip(&selection.truechimer) {
            if *agrees {
                offsets_us.push(best.offset_us);
                truechimers.push(*peer);
            } else {
                falsetickers.push(*peer);
            }
        }
        if truechimers.len() < required {
            return Err(NetworkTimeError::TooFewAgreeing { agreeing: truechimers.len(), required });
        }
        let estimate_us = median_us(&mut offsets_us);
        Ok(Adjustment { estimate_us, applied_us: 0, correction_us: self.correction_us, truechimers, falsetickers })
    }

    /// Estimates and, if enough peers agree, moves the correction towards the estimate
    /// by at most `max_step_us`. A refusal leaves the correction unchanged.
    pub fn update(&mut self, now_us: i64) -> Result<Adjustment, NetworkTimeError> {
        let mut adjustment = match self.estimate(now_us) {
            Ok(adjustment) => adjustment,
            Err(error) => {
                self.stats.refusals += 1;
                return Err(error);
            }
        };
        let wanted = i128::from(adjustment.estimate_us) - i128::from(self.correction_us);
        let step = i128::from(self.config.max_step_us);
        let applied = wanted.clamp(-step, step) as i64;
        self.correction_us = self.correction_us.saturating_add(applied);
        self.stats.adjustments += 1;
        adjustment.applied_us = applied;
        adjustment.correction_us = self.correction_us;
        Ok(adjustment)
    }
}

/// The median of a non-empty list; the mean of the two middle values for an even
/// count.
fn median_us(values: &mut [i64]) -> i64 {
    assert!(!values.is_empty(), "the median of no offsets");
    values.sort_unstable();
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        ((i128::from(values[middle - 1]) + i128::from(values[middle])) / 2) as i64
    }
}

impl Default for NetworkTime {
    fn default() -> Self {
        NetworkTime::new(NetworkTimeConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    /// An exchange with a peer whose clock is `offset_us` ahead, over paths of the
    /// given one-way delays, with 100 µs of processing.
    fn exchange(at_us: i64, offset_us: i64, out_us: i64, back_us: i64) -> Exchange {
        let t2 = at_us + out_us + offset_us;
        Exchange { t1_us: at_us, t2_us: t2, t3_us: t2 + 100, t4_us: at_us + out_us + 100 + back_us }
    }

    #[test]
    fn four_timestamps_give_offset_and_delay() {
        let sample = exchange(1_000, 500, 2_000, 6_000).sample(i64::MAX).unwrap();
        // The asymmetry (2 ms out, 6 ms back) biases θ by −2 ms, within δ/2 = 4 ms.
        assert_eq!((sample.offset_us, sample.delay_us), (500 - 2_000, 8_000));
        assert_eq!(sample.taken_at_us, 1_000 + 8_100);
    }

    #[test]
    fn impossible_exchanges_are_refused_and_counted() {
        let mut time = NetworkTime::default();
        let mut forged = exchange(0, 0, 1_000, 1_000);
        forged.t3_us += 5_000; // claims 5 ms of processing inside a 2 ms round trip
        assert!(matches!(time.handle_exchange(node(1), forged), Err(NetworkTimeError::InvalidExchange(_))));
        let backwards = Exchange { t1_us: 10, t2_us: 0, t3_us: 0, t4_us: 5 };
        assert!(time.handle_exchange(node(1), backwards).is_err());
        let extreme = Exchange { t1_us: i64::MIN, t2_us: i64::MAX, t3_us: i64::MAX, t4_us: i64::MIN };
        assert!(extreme.sample(i64::MAX).is_err());
        assert_eq!(time.stats().exchanges_refused, 2);
        assert_eq!(time.peer_count(), 0);
    }

    #[test]
    fn agreeing_peers_adjust_within_the_step_and_liars_are_ignored() {
        let config = NetworkTimeConfig { max_step_us: 3_000, ..NetworkTimeConfig::default() };
        let mut time = NetworkTime::new(config);
        for (byte, offset) in [(1, 10_000), (2, 10_200), (3, 9_900), (4, 3_600_000_000)] {
            time.handle_exchange(node(byte), exchange(0, offset, 1_000, 1_000)).unwrap();
        }
        let first = time.update(3_000).unwrap();
        assert_eq!(first.falsetickers, [node(4)]);
        assert_eq!(first.truechimers.len(), 3);
        assert_eq!(first.estimate_us, 10_000);
        assert_eq!((first.applied_us, first.correction_us), (3_000, 3_000));
        for _ in 0..3 {
            time.update(3_000).unwrap();
        }
        assert_eq!(time.correction_us(), first.estimate_us);
        assert_eq!(time.synchronized_time_us(1_000_000), 1_000_000 + first.estimate_us);
        assert_eq!(time.synchronized_time_ms(1_000_000), (1_000_000 + first.estimate_us as u64) / 1_000);
        assert_eq!(time.stats().adjustments, 4);
    }

    #[test]
    fn median_bounds_a_peer_with_a_forged_tiny_delay() {
        let mut time = NetworkTime::default();
        for (byte, offset) in [(1, -1_000), (2, 0), (3, 1_000)] {
            time.handle_exchange(node(byte), exchange(0, offset, 5_000, 5_000)).unwrap();
        }
        // Claims 9.9 ms of processing in a 10 ms round trip: δ = 0.1 ms, θ shifted by
        // +4.95 ms. Its interval overlaps the others, so it survives selection.
        let mut forged = exchange(0, 0, 5_000, 5_000);
        forged.t3_us += 9_900;
        time.handle_exchange(node(4), forged).unwrap();
        let adjustment = time.estimate(20_000).unwrap();
        assert_eq!(adjustment.truechimers.len(), 4);
        assert_eq!(adjustment.estimate_us, 500);
        assert_eq!(median_us(&mut [3, 1, 2]), 2);
    }

    #[test]
    fn the_hlc_reads_synchronized_time() {
        use crate::time::Hlc;
        let mut time = NetworkTime::default();
        for byte in 1..=3 {
            time.handle_exchange(node(byte), exchange(0, 250_000, 1_000, 1_000)).unwrap();
        }
        time.update(3_000).unwrap();
        let mut clock = Hlc::default();
        let stamp = clock.now(time.synchronized_time_ms(1_000_000_000)).unwrap();
        assert_eq!(stamp.physical_ms(), 1_000_250);
    }

    #[test]
    fn fewer_than_three_agreeing_peers_never_adjust() {
        let mut time = NetworkTime::default();
        time.handle_exchange(node(1), exchange(0, 50_000, 1_000, 1_000)).unwrap();
        time.handle_exchange(node(2), exchange(0, 50_000, 1_000, 1_000)).unwrap();
        assert_eq!(time.update(0), Err(NetworkTimeError::NotEnoughPeers { candidates: 2, required: 3 }));
        // Four peers that pairwise disagree: no majority.
        time.handle_exchange(node(3), exchange(0, -900_000, 1_000, 1_000)).unwrap();
        time.handle_exchange(node(4), exchange(0, 900_000, 1_000, 1_000)).unwrap();
        time.remove_peer(&node(2));
        time.handle_exchange(node(5), exchange(0, 400_000, 1_000, 1_000)).unwrap();
        assert_eq!(time.update(0), Err(NetworkTimeError::NoMajority { candidates: 4 }));
        assert_eq!(time.correction_us(), 0);
        assert_eq!(time.stats().refusals, 2);
        // A majority of 2 out of 3 that is below the minimum of 3.
        let mut small = NetworkTime::default();
        for (byte, offset) in [(1, 0), (2, 0), (3, 900_000)] {
            small.handle_exchange(node(byte), exchange(0, offset, 1_000, 1_000)).unwrap();
        }
        assert_eq!(small.estimate(0), Err(NetworkTimeError::TooFewAgreeing { agreeing: 2, required: 3 }));
    }

    #[test]
    fn the_peer_table_is_bounded_and_old_samples_expire() {
        let config = NetworkTimeConfig { max_peers: 2, max_sample_age_us: 10, ..NetworkTimeConfig::default() };
        let mut time = NetworkTime::new(config);
        time.handle_exchange(node(1), exchange(0, 0, 1, 1)).unwrap();
        time.handle_exchange(node(2), exchange(0, 0, 1, 1)).unwrap();
        assert_eq!(time.handle_exchange(node(3), exchange(0, 0, 1, 1)), Err(NetworkTimeError::TooManyPeers { max: 2 }));
        assert!(time.estimate(1_000).is_err());
        assert_eq!(time.peer_count(), 0);
    }
}
