//! The figures a running node records as things happen (DESIGN.md §1, "metrics"): sync
//! latency in HDR histograms (overall and per peer), items and bytes per second, the
//! consistency lag per peer, the conflict rate, peer connectivity and partition events,
//! with per-category sync figures.
//!
//! The engine's control role owns one [`Telemetry`] and feeds it from what it already
//! sees (finished syncs, peer up/down, bytes per link); hosts read a
//! [`TelemetrySnapshot`] through `Node::metrics`. Rates are measured over a sliding window
//! of one-second samples so that `bhsync status` and the health report can speak of
//! "now"; Prometheus gets the monotonic counters and computes its own rates.
//!
//! Definitions (docs/adr/060-operability.md):
//! - **sync latency**: from the start of a sync with a peer to its end (every sync, the
//!   host's and the periodic anti-entropy), in milliseconds of the node's clock;
//! - **consistency lag** with a peer: time since the last sync with it that succeeded
//!   (how stale our view of its writes may be); for a peer never synced, since it was
//!   first seen. The node's lag is the largest over its peers;
//! - **partition event**: membership (SWIM) found this node on a minority side: the
//!   members it reaches are not a strict majority of those it knows. A link going down
//!   is not one (links follow the overlay's view); it is counted per peer.
//!   `partitions_injected` counts partitions asked for with `Node::partition`.

use std::collections::{BTreeMap, VecDeque};

use hdrhistogram::Histogram;

use crate::node::FinishedSync;
use crate::state::NodeId;

/// The longest latency a histogram records (one hour, in ms); longer ones are clamped.
const MAX_LATENCY_MS: u64 = 3_600_000;
/// Rates are measured over this many one-second samples.
const RATE_WINDOW: usize = 10;
/// At most this many peers are tracked (a bound against a churn of identities).
const MAX_TRACKED_PEERS: usize = 4096;

/// Latency percentiles from a histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LatencySummary {
    /// Values recorded.
    pub count: u64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Median, ms.
    pub p50_ms: u64,
    /// 99th percentile, ms.
    pub p99_ms: u64,
    /// Largest, ms.
    pub max_ms: u64,
}

impl LatencySummary {
    /// The summary of a histogram.
    pub fn of(histogram: &Histogram<u64>) -> LatencySummary {
        if histogram.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: histogram.len(),
            mean_ms: histogram.mean(),
            p50_ms: histogram.value_at_quantile(0.5),
            p99_ms: histogram.value_at_quantile(0.99),
            max_ms: histogram.max(),
        }
    }
}

/// What one peer's link and syncs did.
#[derive(Clone, Debug)]
pub struct PeerFigures {
    /// The peer.
    pub id: NodeId,
    /// Connected now.
    pub connected: bool,
    /// Syncs that succeeded / failed.
    pub syncs_ok: u64,
    /// Syncs that failed.
    pub syncs_failed: u64,
    /// Sync latency with this peer.
    pub latency: LatencySummary,
    /// The histogram behind it (for exposition).
    pub histogram: Histogram<u64>,
    /// Entries received from / sent to this peer by syncs.
    pub items_in: u64,
    /// Entries sent.
    pub items_out: u64,
    /// Socket bytes from / to this peer.
    pub bytes_in: u64,
    /// Socket bytes to this peer.
    pub bytes_out: u64,
    /// Bytes per second received from / sent to it, over the rate window.
    pub bytes_in_per_s: f64,
    /// Bytes per second sent.
    pub bytes_out_per_s: f64,
    /// Times its link came up / went down.
    pub ups: u64,
    /// Times its link went down.
    pub downs: u64,
    /// Consistency lag with this peer, ms (see the module doc).
    pub consistency_lag_ms: u64,
}

/// What syncs did to one category.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CategoryFigures {
    /// The category.
    pub name: String,
    /// Syncs that covered it.
    pub syncs: u64,
    /// Of which failed for it.
    pub failures: u64,
    /// Entries received and stored.
    pub items_applied: u64,
    /// Entries sent.
    pub items_sent: u64,
    /// Reconciliation round trips.
    pub round_trips: u64,
}

/// Rates over the sliding window.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Entries received plus sent, per second.
    pub items_per_s: f64,
    /// Socket bytes received plus sent, per second.
    pub bytes_per_s: f64,
    /// Conflicts resolved per second.
    pub conflicts_per_s: f64,
    /// The window the rates cover, ms (0 until two samples exist).
    pub window_ms: u64,
}

/// A copy of a node's recorded figures at one instant.
#[derive(Clone, Debug)]
pub struct TelemetrySnapshot {
    /// Since the node opened, ms.
    pub uptime_ms: u64,
    /// Sync latency over every peer.
    pub sync_latency: LatencySummary,
    /// The histogram behind it.
    pub sync_histogram: Histogram<u64>,
    /// Per peer, sorted by id.
    pub peers: Vec<PeerFigures>,
    /// Per category, sorted by name.
    pub categories: Vec<CategoryFigures>,
    /// Current rates.
    pub rates: Rates,
    /// Times membership found this node on a minority side (see the module doc).
    pub partition_events: u64,
    /// Partitions asked for with `Node::partition`.
    pub partitions_injected: u64,
    /// Links that came up.
    pub peer_ups: u64,
    /// The largest consistency lag over the peers, ms.
    pub consistency_lag_ms: u64,
    /// The per-peer byte rate limit, for saturation (bytes/s).
    pub peer_bytes_limit_per_s: u64,
}

impl Default for TelemetrySnapshot {
    fn default() -> Self {
        Telemetry::new(0, 0).snapshot(0, &[])
    }
}

#[derive(Clone, Debug)]
struct PeerState {
    histogram: Histogram<u64>,
    syncs_ok: u64,
    syncs_failed: u64,
    items_in: u64,
    items_out: u64,
    bytes_in: u64,
    bytes_out: u64,
    ups: u64,
    downs: u64,
    first_seen_ms: u64,
    last_ok_ms: Option<u64>,
    window: VecDeque<(u64, u64, u64)>,
}

impl PeerState {
    fn new(now_ms: u64) -> PeerState {
        PeerState {
            histogram: latency_histogram(2),
            syncs_ok: 0,
            syncs_failed: 0,
            items_in: 0,
            items_out: 0,
            bytes_in: 0,
            bytes_out: 0,
            ups: 0,
            downs: 0,
            first_seen_ms: now_ms,
            last_ok_ms: None,
            window: VecDeque::with_capacity(RATE_WINDOW + 1),
        }
    }
}

/// The recorder a node's control role owns.
#[derive(Debug)]
pub struct Telemetry {
    opened_ms: u64,
    histogram: Histogram<u64>,
    peers: BTreeMap<NodeId, PeerState>,
    categories: BTreeMap<String, CategoryFigures>,
    partition_events: u64,
    partitions_injected: u64,
    peer_ups: u64,
    peer_bytes_limit_per_s: u64,
    /// (time, items, bytes, conflicts) once a second.
    window: VecDeque<(u64, u64, u64, u64)>,
}

fn latency_histogram(significant_figures: u8) -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MS, significant_figures).expect("constant histogram bounds are valid")
}

impl Telemetry {
    /// A recorder for a node opened at `now_ms` whose peers may send `peer_bytes_limit_per_s`.
    pub fn new(now_ms: u64, peer_bytes_limit_per_s: u64) -> Telemetry {
        Telemetry {
            opened_ms: now_ms,
            histogram: latency_histogram(3),
            peers: BTreeMap::new(),
            categories: BTreeMap::new(),
            partition_events: 0,
            partitions_injected: 0,
            peer_ups: 0,
            peer_bytes_limit_per_s,
            window: VecDeque::with_capacity(RATE_WINDOW + 1),
        }
    }

    fn peer(&mut self, peer: NodeId, now_ms: u64) -> Option<&mut PeerState> {
        if !self.peers.contains_key(&peer) && self.peers.len() >= MAX_TRACKED_PEERS {
            return None;
        }
        Some(self.peers.entry(peer).or_insert_with(|| PeerState::new(now_ms)))
    }

    /// A sync finished.
    pub fn on_sync(&mut self, sync: &FinishedSync) {
        let latency = sync.ended_ms.saturating_sub(sync.started_ms).clamp(1, MAX_LATENCY_MS);
        let _ = self.histogram.record(latency);
        let (items_in, items_out) =
            sync.reports.iter().fold((0, 0), |(i, o), r| (i + r.items_applied, o + r.items_sent));
        if let Some(peer) = self.peer(sync.peer, sync.ended_ms) {
            let _ = peer.histogram.record(latency);
            peer.items_in += items_in;
            peer.items_out += items_out;
            if sync.ok {
                peer.syncs_ok += 1;
                peer.last_ok_ms = Some(sync.ended_ms);
            } else {
                peer.syncs_failed += 1;
            }
        }
        for report in &sync.reports {
            if !self.categories.contains_key(&report.category) && self.categories.len() >= MAX_TRACKED_PEERS {
                continue;
            }
            let figures = self
                .categories
                .entry(report.category.clone())
                .or_insert_with(|| CategoryFigures { name: report.category.clone(), ..CategoryFigures::default() });
            figures.syncs += 1;
            figures.failures += u64::from(matches!(report.outcome, crate::node::CategoryOutcome::Failed(_)));
            figures.items_applied += report.items_applied;
            figures.items_sent += report.items_sent;
            figures.round_trips += u64::from(report.round_trips);
        }
    }

    /// A peer's link came up.
    pub fn on_peer_up(&mut self, peer: NodeId, now_ms: u64) {
        self.peer_ups += 1;
        if let Some(state) = self.peer(peer, now_ms) {
            state.ups += 1;
        }
    }

    /// A peer's link went down (counted per peer; links come and go with the
    /// overlay, so a link down is not a partition).
    pub fn on_peer_down(&mut self, peer: NodeId, now_ms: u64) {
        if let Some(state) = self.peer(peer, now_ms) {
            state.downs += 1;
        }
    }

    /// Membership found this node on a minority side (a partition event).
    pub fn on_partition_detected(&mut self) {
        self.partition_events += 1;
    }

    /// A partition was asked for (the demo and tests).
    pub fn on_partition_injected(&mut self) {
        self.partitions_injected += 1;
    }

    /// Socket bytes exchanged with an established peer.
    pub fn on_peer_bytes(&mut self, peer: NodeId, now_ms: u64, bytes_in: u64, bytes_out: u64) {
        if let Some(state) = self.peer(peer, now_ms) {
            state.bytes_in += bytes_in;
            state.bytes_out += bytes_out;
        }
    }

    /// Takes a rate sample when a second has passed since the last one.
    pub fn sample(&mut self, now_ms: u64, items: u64, bytes: u64, conflicts: u64) {
        if self.window.back().is_some_and(|&(at, ..)| now_ms < at + 1_000) {
            return;
        }
        push_bounded(&mut self.window, (now_ms, items, bytes, conflicts));
        for state in self.peers.values_mut() {
            push_bounded(&mut state.window, (now_ms, state.bytes_in, state.bytes_out));
        }
    }

    /// The figures now; `connected` are the peers with a link.
    pub fn snapshot(&self, now_ms: u64, connected: &[NodeId]) -> TelemetrySnapshot {
        let peers: Vec<PeerFigures> =
            self.peers.iter().map(|(id, state)| peer_figures(*id, state, now_ms, connected.contains(id))).collect();
        let consistency_lag_ms = peers.iter().map(|p| p.consistency_lag_ms).max().unwrap_or(0);
        TelemetrySnapshot {
            uptime_ms: now_ms.saturating_sub(self.opened_ms),
            sync_latency: LatencySummary::of(&self.histogram),
            sync_histogram: self.histogram.clone(),
            peers,
            categories: self.categories.values().cloned().collect(),
            rates: rates(&self.window),
            partition_events: self.partition_events,
            partitions_injected: self.partitions_injected,
            peer_ups: self.peer_ups,
            consistency_lag_ms,
            peer_bytes_limit_per_s: self.peer_bytes_limit_per_s,
        }
    }
}

fn push_bounded<T>(window: &mut VecDeque<T>, sample: T) {
    if window.len() > RATE_WINDOW {
        window.pop_front();
    }
    window.push_back(sample);
}

fn per_second(delta: u64, window_ms: u64) -> f64 {
    if window_ms == 0 {
        0.0
    } else {
        delta as f64 * 1000.0 / window_ms as f64
    }
}

fn rates(window: &VecDeque<(u64, u64, u64, u64)>) -> Rates {
    let (Some(first), Some(last)) = (window.front(), window.back()) else { return Rates::default() };
    let window_ms = last.0.saturating_sub(first.0);
    Rates {
        items_per_s: per_second(last.1.saturating_sub(first.1), window_ms),
        bytes_per_s: per_second(last.2.saturating_sub(first.2), window_ms),
        conflicts_per_s: per_second(last.3.saturating_sub(first.3), window_ms),
        window_ms,
    }
}

fn peer_figures(id: NodeId, state: &PeerState, now_ms: u64, connected: bool) -> PeerFigures {
    let (bytes_in_per_s, bytes_out_per_s) = match (state.window.front(), state.window.back()) {
        (Some(first), Some(last)) => {
            let window_ms = last.0.saturating_sub(first.0);
            (per_second(last.1 - first.1, window_ms), per_second(last.2 - first.2, window_ms))
        }
        _ => (0.0, 0.0),
    };
    PeerFigures {
        id,
        connected,
        syncs_ok: state.syncs_ok,
        syncs_failed: state.syncs_failed,
        latency: LatencySummary::of(&state.histogram),
        histogram: state.histogram.clone(),
        items_in: state.items_in,
        items_out: state.items_out,
        bytes_in: state.bytes_in,
        bytes_out: state.bytes_out,
        bytes_in_per_s,
        bytes_out_per_s,
        ups: state.ups,
        downs: state.downs,
        consistency_lag_ms: now_ms.saturating_sub(state.last_ok_ms.unwrap_or(state.first_seen_ms)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{CategoryOutcome, CategoryReport};

    fn peer(byte: u8) -> NodeId {
        NodeId([byte; 32])
    }

    fn sync(peer_id: NodeId, started_ms: u64, ended_ms: u64, ok: bool) -> FinishedSync {
        let report = CategoryReport {
            category: "users".into(),
            outcome: if ok { CategoryOutcome::Reconciled } else { CategoryOutcome::Failed("x".into()) },
            items_applied: 3,
            items_sent: 2,
            round_trips: 1,
        };
        FinishedSync { peer: peer_id, started_ms, ended_ms, ok, reports: vec![report] }
    }

    #[test]
    fn syncs_feed_latency_per_peer_and_category_figures() {
        let mut telemetry = Telemetry::new(1_000, 1 << 20);
        for latency in 1..=100 {
            telemetry.on_sync(&sync(peer(1), 2_000, 2_000 + latency, true));
        }
        telemetry.on_sync(&sync(peer(2), 2_000, 2_500, false));
        let snapshot = telemetry.snapshot(3_000, &[peer(1)]);
        assert_eq!(snapshot.sync_latency.count, 101);
        assert_eq!(snapshot.peers[0].latency.p50_ms, 50);
        assert_eq!(snapshot.peers[0].latency.p99_ms, 99);
        assert!(snapshot.peers[0].connected && !snapshot.peers[1].connected);
        assert_eq!(snapshot.peers[1].syncs_failed, 1);
        assert_eq!(snapshot.categories[0].syncs, 101);
        assert_eq!(snapshot.categories[0].failures, 1);
        assert_eq!(snapshot.categories[0].items_applied, 303);
    }

    #[test]
    fn consistency_lag_counts_from_the_last_good_sync_or_first_sight() {
        let mut telemetry = Telemetry::new(0, 1 << 20);
        telemetry.on_sync(&sync(peer(1), 900, 1_000, true));
        telemetry.on_peer_up(peer(2), 500);
        let snapshot = telemetry.snapshot(7_000, &[peer(1), peer(2)]);
        assert_eq!(snapshot.peers[0].consistency_lag_ms, 6_000);
        assert_eq!(snapshot.peers[1].consistency_lag_ms, 6_500);
        assert_eq!(snapshot.consistency_lag_ms, 6_500);
    }

    #[test]
    fn rates_come_from_the_sliding_window() {
        let mut telemetry = Telemetry::new(0, 1 << 20);
        telemetry.on_peer_bytes(peer(1), 0, 0, 0);
        telemetry.sample(0, 0, 0, 0);
        telemetry.sample(500, 50, 50, 0); // too soon: ignored
        telemetry.on_peer_bytes(peer(1), 1_500, 4_000, 2_000);
        telemetry.sample(2_000, 200, 8_000, 4);
        let snapshot = telemetry.snapshot(2_000, &[]);
        assert_eq!(snapshot.rates.window_ms, 2_000);
        assert_eq!(snapshot.rates.items_per_s, 100.0);
        assert_eq!(snapshot.rates.bytes_per_s, 4_000.0);
        assert_eq!(snapshot.rates.conflicts_per_s, 2.0);
        assert_eq!(snapshot.peers[0].bytes_in_per_s, 2_000.0);
    }

    #[test]
    fn partition_events_are_minority_detections_not_link_downs() {
        let mut telemetry = Telemetry::new(0, 1 << 20);
        telemetry.on_peer_up(peer(1), 0);
        telemetry.on_peer_down(peer(1), 10);
        telemetry.on_partition_injected();
        let snapshot = telemetry.snapshot(20, &[]);
        assert_eq!((snapshot.partition_events, snapshot.partitions_injected, snapshot.peer_ups), (0, 1, 1));
        telemetry.on_partition_detected();
        assert_eq!(telemetry.snapshot(30, &[]).partition_events, 1);
        assert_eq!((snapshot.peers[0].ups, snapshot.peers[0].downs), (1, 1));
    }
}
