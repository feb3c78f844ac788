//! The health report: a status from documented thresholds, the figures behind it, and
//! warnings that say what is wrong and what to do (DESIGN.md §1, "metrics";
//! docs/adr/060-operability.md).
//!
//! Thresholds ([`Thresholds::default`], to be tuned against operation):
//! - **critical**: the node has configured peers and none is connected; or the
//!   consistency lag with a connected peer exceeds `lag_critical_ms` (60 s);
//! - **degraded**: fewer peers connected than configured; the consistency lag with a
//!   connected peer exceeds `lag_degraded_ms` (5 s, two and a half default anti-entropy
//!   intervals); more than `failed_sync_ratio` (10 %) of syncs failed; more than
//!   `conflicts_per_s` (100) conflicts a second; a peer was disconnected for
//!   misbehaviour; events were dropped because the host does not poll;
//! - **healthy** otherwise.
//!
//! A lag warning looks at the peer's link: when its bytes per second come within
//! `saturation` (80 %) of the per-peer rate limit, the link is called saturated and the
//! recommendation is about bandwidth; otherwise it is about the peer's syncs.
//!
//! The JSON ([`HealthReport::to_json`]) has these fields, all always present: `status`,
//! `node`, `warnings` [{`problem`, `recommendation`}], `peers` {`connected`,
//! `configured`}, `io_backend`, `metrics` (counters), `figures` {`uptime_ms`,
//! `sync_latency_ms` {`count`, `mean`, `p50`, `p99`, `max`}, `items_per_s`,
//! `bytes_per_s`, `conflicts_per_s`, `consistency_lag_ms`, `partition_events`,
//! `partitions_injected`, `peer_connectivity`}, `per_peer` [{`id`, `connected`,
//! `consistency_lag_ms`, `sync_p50_ms`, `sync_p99_ms`, `syncs_ok`, `syncs_failed`,
//! `items_in`, `items_out`, `bytes_in`, `bytes_out`, `bytes_in_per_s`, `bytes_out_per_s`,
//! `ups`, `downs`}], `categories` [{`name`, `syncs`, `failures`, `items_applied`,
//! `items_sent`, `round_trips`}], `thresholds` {…}.

use std::fmt::Write as _;

use crate::node::NodeMetrics;

/// The overall verdict.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HealthStatus {
    /// Everything within thresholds.
    Healthy,
    /// Working, with problems worth a look.
    Degraded,
    /// Not synchronizing.
    Critical,
}

impl HealthStatus {
    /// The lowercase name used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Healthy => "healthy",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Critical => "critical",
        }
    }

    fn max_with(self, other: HealthStatus) -> HealthStatus {
        if other as u8 > self as u8 {
            other
        } else {
            self
        }
    }
}

/// The limits the status is derived from (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// Consistency lag with a connected peer above which the node is degraded, ms.
    pub lag_degraded_ms: u64,
    /// Consistency lag with a connected peer above which the node is critical, ms.
    pub lag_critical_ms: u64,
    /// Share of failed syncs above which the node is degraded.
    pub failed_sync_ratio: f64,
    /// Conflicts per second above which the node is degraded.
    pub conflicts_per_s: f64,
    /// Share of the per-peer byte rate limit above which a link counts as saturated.
    pub saturation: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            lag_degraded_ms: 5_000,
            lag_critical_ms: 60_000,
            failed_sync_ratio: 0.1,
            conflicts_per_s: 100.0,
            saturation: 0.8,
        }
    }
}

/// One problem and what to do about it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Warning {
    /// What is wrong.
    pub problem: String,
    /// What to do.
    pub recommendation: String,
}

/// A node's health.
#[derive(Clone, Debug)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// Why, when not healthy.
    pub warnings: Vec<Warning>,
    /// The figures it was derived from.
    pub metrics: NodeMetrics,
    /// Peers the node is configured to dial.
    pub configured_peers: usize,
    /// The thresholds applied.
    pub thresholds: Thresholds,
}

impl HealthReport {
    /// Derives the report from a node's figures with the default thresholds.
    pub fn from_metrics(metrics: NodeMetrics, configured_peers: usize) -> HealthReport {
        HealthReport::with_thresholds(metrics, configured_peers, Thresholds::default())
    }

    /// Derives the report from a node's figures and explicit thresholds.
    pub fn with_thresholds(metrics: NodeMetrics, configured_peers: usize, thresholds: Thresholds) -> HealthReport {
        let mut report =
            HealthReport { status: HealthStatus::Healthy, warnings: Vec::new(), metrics, configured_peers, thresholds };
        report.check_connectivity();
        report.check_lag();
        report.check_counters();
        report
    }

    fn warn(&mut self, status: HealthStatus, problem: String, recommendation: &str) {
        self.status = self.status.max_with(status);
        self.warnings.push(Warning { problem, recommendation: recommendation.into() });
    }

    fn check_connectivity(&mut self) {
        let connected = self.metrics.peers.len();
        let configured = self.configured_peers;
        if configured > 0 && connected == 0 {
            self.warn(
                HealthStatus::Critical,
                format!("no peer connected out of {configured} configured"),
                "check that the peers run and that their addresses and allowlists are right",
            );
        } else if connected < configured {
            self.warn(
                HealthStatus::Degraded,
                format!("{connected} of {configured} configured peers connected"),
                "the missing peers are re-dialled with backoff; check they are up",
            );
        }
    }

    fn check_lag(&mut self) {
        let limits = self.thresholds;
        let telemetry = self.metrics.telemetry.clone();
        let limit = telemetry.peer_bytes_limit_per_s as f64;
        for peer in
            telemetry.peers.iter().filter(|peer| peer.connected && peer.consistency_lag_ms > limits.lag_degraded_ms)
        {
            let status = if peer.consistency_lag_ms > limits.lag_critical_ms {
                HealthStatus::Critical
            } else {
                HealthStatus::Degraded
            };
            let rate = peer.bytes_in_per_s.max(peer.bytes_out_per_s);
            let lag = peer.consistency_lag_ms as f64 / 1000.0;
            let who = peer.id.short();
            if limit > 0.0 && rate >= limits.saturation * limit {
                self.warn(
                    status,
                    format!("consistency lag {lag:.1} s with peer {who}: its link is saturated ({rate:.0} of {limit:.0} bytes/s)"),
                    "raise limits.wire.bytes_per_s on both nodes or lower the write rate; check the bandwidth between them",
                );
            } else {
                self.warn(
                    status,
                    format!(
                        "consistency lag {lag:.1} s with peer {who} (sync p99 {} ms, {} failed syncs)",
                        peer.latency.p99_ms, peer.syncs_failed
                    ),
                    "the peer is connected but syncs do not finish: check its load and logs, and the anti-entropy interval",
                );
            }
        }
    }

    fn check_counters(&mut self) {
        let limits = self.thresholds;
        let (engine, core, rates) =
            (self.metrics.engine.clone(), self.metrics.core.clone(), self.metrics.telemetry.rates);
        if engine.disconnected_misbehaviour > 0 {
            self.warn(
                HealthStatus::Degraded,
                format!("{} peer(s) disconnected for misbehaviour", engine.disconnected_misbehaviour),
                "look for a faulty or hostile node; consider an allowlist",
            );
        }
        if core.syncs_failed as f64 > limits.failed_sync_ratio * core.syncs_started.max(1) as f64 {
            self.warn(
                HealthStatus::Degraded,
                format!("{} of {} syncs failed and were retried", core.syncs_failed, core.syncs_started),
                "check the links to the peers and their load",
            );
        }
        if rates.conflicts_per_s > limits.conflicts_per_s {
            self.warn(
                HealthStatus::Degraded,
                format!("{:.0} conflicts per second", rates.conflicts_per_s),
                "many nodes write the same keys at once: split keys by writer or use a CRDT category",
            );
        }
        if engine.events_dropped > 0 {
            self.warn(
                HealthStatus::Degraded,
                format!("{} event(s) dropped because the host did not poll", engine.events_dropped),
                "poll events more often",
            );
        }
    }

    /// Connected peers over configured ones (1 when none is configured).
    pub fn peer_connectivity(&self) -> f64 {
        if self.configured_peers == 0 {
            1.0
        } else {
            (self.metrics.peers.len() as f64 / self.configured_peers as f64).min(1.0)
        }
    }

    /// The report as a JSON object (fields in the module doc).
    pub fn to_json(&self) -> String {
        let m = &self.metrics;
        let t = &m.telemetry;
        let mut out = String::with_capacity(2048);
        let _ = write!(out, "{{\"status\":\"{}\",\"node\":\"{}\",\"warnings\":[", self.status.as_str(), m.node);
        for (index, warning) in self.warnings.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            let (problem, recommendation) = (json_string(&warning.problem), json_string(&warning.recommendation));
            let _ = write!(out, "{comma}{{\"problem\":{problem},\"recommendation\":{recommendation}}}");
        }
        let _ = write!(
            out,
            "],\"peers\":{{\"connected\":{},\"configured\":{}}},\"io_backend\":\"{}\",\"metrics\":{{",
            m.peers.len(),
            self.configured_peers,
            m.io.kind_name()
        );
        let counters: [(&str, u64); 14] = [
            ("items_in", m.core.items_in),
            ("items_out", m.core.items_out),
            ("bytes_in", m.engine.bytes_in),
            ("bytes_out", m.engine.bytes_out),
            ("syncs_started", m.core.syncs_started),
            ("syncs_succeeded", m.core.syncs_succeeded),
            ("syncs_failed", m.core.syncs_failed),
            ("conflicts", m.core.conflicts),
            ("handshakes_completed", m.engine.handshakes_completed),
            ("handshakes_failed", m.engine.handshakes_failed),
            ("bad_frames", m.engine.bad_frames),
            ("peer_faults", m.engine.peer_faults),
            ("disconnected_misbehaviour", m.engine.disconnected_misbehaviour),
            ("events_dropped", m.engine.events_dropped),
        ];
        for (index, (name, value)) in counters.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{name}\":{value}");
        }
        let l = &t.sync_latency;
        let _ = write!(
            out,
            "}},\"figures\":{{\"uptime_ms\":{},\"sync_latency_ms\":{{\"count\":{},\"mean\":{},\"p50\":{},\"p99\":{},\"max\":{}}},\
             \"items_per_s\":{},\"bytes_per_s\":{},\"conflicts_per_s\":{},\"consistency_lag_ms\":{},\"partition_events\":{},\
             \"partitions_injected\":{},\"peer_connectivity\":{}}},\"per_peer\":[",
            t.uptime_ms,
            l.count,
            json_f64(l.mean_ms),
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            json_f64(t.rates.items_per_s),
            json_f64(t.rates.bytes_per_s),
            json_f64(t.rates.conflicts_per_s),
            t.consistency_lag_ms,
            t.partition_events,
            t.partitions_injected,
            json_f64(self.peer_connectivity()),
        );
        for (index, p) in t.peers.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}{{\"id\":\"{}\",\"connected\":{},\"consistency_lag_ms\":{},\"sync_p50_ms\":{},\"sync_p99_ms\":{},\
                 \"syncs_ok\":{},\"syncs_failed\":{},\"items_in\":{},\"items_out\":{},\"bytes_in\":{},\"bytes_out\":{},\
                 \"bytes_in_per_s\":{},\"bytes_out_per_s\":{},\"ups\":{},\"downs\":{}}}",
                p.id,
                p.connected,
                p.consistency_lag_ms,
                p.latency.p50_ms,
                p.latency.p99_ms,
                p.syncs_ok,
                p.syncs_failed,
                p.items_in,
                p.items_out,
                p.bytes_in,
                p.bytes_out,
                json_f64(p.bytes_in_per_s),
                json_f64(p.bytes_out_per_s),
                p.ups,
                p.downs
            );
        }
        let r = &m.roles;
        let _ = write!(
            out,
            "],\"membership\":{{\"alive\":{},\"suspect\":{},\"dead\":{},\"left\":{},\"local_health\":{},\
             \"minority_side\":{},\"incarnation\":{},\"sessions\":{}}},\"network_time\":{{\"offset_ms\":{},\
             \"exchanges_accepted\":{},\"adjustments\":{},\"refusals_too_few_agreeing\":{},\"responses_ignored\":{},\
             \"backward_jumps\":{}}},\"overlay\":{{\"links\":{},\"active\":{},\"active_max\":{},\"passive\":{},\
             \"broadcasts\":{},\"delivered\":{},\"payload_msgs_sent\":{}}}",
            r.members_alive,
            r.members_suspect,
            r.members_dead,
            r.members_left,
            r.local_health,
            r.partitioned,
            r.incarnation,
            r.sessions,
            r.time_correction_ms,
            r.time.exchanges_accepted,
            r.time.adjustments,
            r.time.refusals,
            r.time.responses_ignored,
            r.time.backward_jumps,
            r.links,
            r.overlay.active,
            r.overlay.active_max,
            r.overlay.passive,
            r.overlay.broadcasts,
            r.overlay.delivered,
            r.overlay.gossip.tree.payloads_sent,
        );
        out.push_str(",\"categories\":[");
        for (index, c) in t.categories.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}{{\"name\":{},\"syncs\":{},\"failures\":{},\"items_applied\":{},\"items_sent\":{},\"round_trips\":{}}}",
                json_string(&c.name),
                c.syncs,
                c.failures,
                c.items_applied,
                c.items_sent,
                c.round_trips
            );
        }
        let h = &self.thresholds;
        let _ = write!(
            out,
            "],\"thresholds\":{{\"lag_degraded_ms\":{},\"lag_critical_ms\":{},\"failed_sync_ratio\":{},\
             \"conflicts_per_s\":{},\"saturation\":{}}}}}",
            h.lag_degraded_ms,
            h.lag_critical_ms,
            json_f64(h.failed_sync_ratio),
            json_f64(h.conflicts_per_s),
            json_f64(h.saturation)
        );
        out
    }

    /// The report for a person: status, warnings, figures, a line per peer.
    pub fn to_text(&self) -> String {
        let m = &self.metrics;
        let t = &m.telemetry;
        let mut out = String::with_capacity(1024);
        let _ = writeln!(
            out,
            "node {}  status {}  uptime {:.1} s",
            m.node.short(),
            self.status.as_str(),
            t.uptime_ms as f64 / 1e3
        );
        for warning in &self.warnings {
            let _ = writeln!(out, "  warning: {}\n    do: {}", warning.problem, warning.recommendation);
        }
        let _ = writeln!(
            out,
            "peers {}/{} connected  backend {}  partition events {}",
            m.peers.len(),
            self.configured_peers,
            m.io.kind_name(),
            t.partition_events
        );
        let l = &t.sync_latency;
        let _ = writeln!(
            out,
            "sync latency mean {:.1} ms p50 {} ms p99 {} ms ({} syncs)  consistency lag {} ms",
            l.mean_ms, l.p50_ms, l.p99_ms, l.count, t.consistency_lag_ms
        );
        let _ = writeln!(
            out,
            "items/s {:.1}  bytes/s {:.0}  conflicts/s {:.2}  conflicts {}",
            t.rates.items_per_s, t.rates.bytes_per_s, t.rates.conflicts_per_s, m.core.conflicts
        );
        for p in &t.peers {
            let _ = writeln!(
                out,
                "  peer {} {:<12} lag {:>6} ms  p50 {:>4} ms p99 {:>4} ms  syncs {}/{} failed  in {} B out {} B",
                p.id.short(),
                if p.connected { "connected" } else { "disconnected" },
                p.consistency_lag_ms,
                p.latency.p50_ms,
                p.latency.p99_ms,
                p.syncs_ok + p.syncs_failed,
                p.syncs_failed,
                p.bytes_in,
                p.bytes_out
            );
        }
        out
    }
}

/// A JSON number (non-finite values, which JSON cannot carry, become 0).
fn json_f64(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "0".into()
    }
}

/// A JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::io::IoStats;
    use crate::engine::metrics::EngineMetrics;
    use crate::metrics::Telemetry;
    use crate::node::{CoreStats, FinishedSync};
    use crate::state::NodeId;

    fn metrics(telemetry: &Telemetry, now: u64, connected: Vec<NodeId>) -> NodeMetrics {
        NodeMetrics {
            engine: EngineMetrics::default(),
            io: IoStats::default(),
            core: CoreStats::default(),
            roles: crate::node::MachineFigures::default(),
            telemetry: telemetry.snapshot(now, &connected),
            configured_peers: 1,
            node: NodeId([9; 32]),
            peers: connected,
        }
    }

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }

    #[test]
    fn a_connected_peer_synced_recently_is_healthy() {
        let mut telemetry = Telemetry::new(0, 1_000);
        let peer = NodeId([1; 32]);
        telemetry.on_sync(&FinishedSync { peer, started_ms: 900, ended_ms: 1_000, ok: true, reports: vec![] });
        let report = HealthReport::from_metrics(metrics(&telemetry, 2_000, vec![peer]), 1);
        assert_eq!(report.status, HealthStatus::Healthy, "{:?}", report.warnings);
    }

    #[test]
    fn lag_over_five_seconds_on_a_saturated_link_says_so_and_what_to_do() {
        let mut telemetry = Telemetry::new(0, 1_000);
        let peer = NodeId([1; 32]);
        telemetry.on_peer_up(peer, 0);
        telemetry.sample(0, 0, 0, 0);
        telemetry.on_peer_bytes(peer, 1_000, 9_000, 0);
        telemetry.sample(10_000, 0, 9_000, 0);
        let report = HealthReport::from_metrics(metrics(&telemetry, 10_000, vec![peer]), 1);
        assert_eq!(report.status, HealthStatus::Degraded);
        assert!(report.warnings[0].problem.contains("saturated"), "{:?}", report.warnings);
        assert!(report.warnings[0].recommendation.contains("bytes_per_s"));
    }

    #[test]
    fn lag_over_a_minute_is_critical_and_no_peer_at_all_is_critical() {
        let mut telemetry = Telemetry::new(0, 1_000_000);
        let peer = NodeId([1; 32]);
        telemetry.on_peer_up(peer, 0);
        let report = HealthReport::from_metrics(metrics(&telemetry, 61_000, vec![peer]), 1);
        assert_eq!(report.status, HealthStatus::Critical);
        let alone = HealthReport::from_metrics(metrics(&telemetry, 1_000, vec![]), 1);
        assert_eq!(alone.status, HealthStatus::Critical);
    }

    #[test]
    fn the_json_has_every_documented_field() {
        let report = HealthReport::from_metrics(metrics(&Telemetry::new(0, 1), 0, vec![]), 0);
        let json = report.to_json();
        for field in [
            "\"status\"",
            "\"warnings\"",
            "\"figures\"",
            "\"sync_latency_ms\"",
            "\"consistency_lag_ms\"",
            "\"per_peer\"",
            "\"categories\"",
            "\"thresholds\"",
        ] {
            assert!(json.contains(field), "{field} missing from {json}");
        }
    }
}
