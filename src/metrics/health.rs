//! The health report: a status from documented thresholds, the figures behind it, and
//! warnings that say what is wrong and what to do.
//!
//! Thresholds (a first set, to be tuned against operation):
//! - **critical**: the node has configured peers and none is connected, or the IO
//!   backend failed;
//! - **degraded**: fewer peers connected than configured, a peer was disconnected for
//!   misbehaviour, syncs failed, or events were dropped because the host does not poll.
//! - **healthy** otherwise.

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
}

impl HealthReport {
    /// Derives the report from a node's figures.
    pub fn from_metrics(metrics: NodeMetrics, configured_peers: usize) -> HealthReport {
        let mut warnings = Vec::new();
        let mut status = HealthStatus::Healthy;
        let connected = metrics.peers.len();
        if configured_peers > 0 && connected == 0 {
            status = HealthStatus::Critical;
            warnings.push(Warning {
                problem: format!("no peer connected out of {configured_peers} configured"),
                recommendation: "check that the peers run and that their addresses and allowlists are right".into(),
            });
        } else if connected < configured_peers {
            status = HealthStatus::Degraded;
            warnings.push(Warning {
                problem: format!("{connected} of {configured_peers} configured peers connected"),
                recommendation: "the missing peers are re-dialled with backoff; check they are up".into(),
            });
        }
        if metrics.engine.disconnected_misbehaviour > 0 {
            status = status.max_with(HealthStatus::Degraded);
            warnings.push(Warning {
                problem: format!("{} peer(s) disconnected for misbehaviour", metrics.engine.disconnected_misbehaviour),
                recommendation: "look for a faulty or hostile node; consider an allowlist".into(),
            });
        }
        if metrics.core.syncs_failed > 0 {
            status = status.max_with(HealthStatus::Degraded);
            warnings.push(Warning {
                problem: format!("{} sync(s) failed and were retried", metrics.core.syncs_failed),
                recommendation: "check the links to the peers and their load".into(),
            });
        }
        if metrics.engine.events_dropped > 0 {
            status = status.max_with(HealthStatus::Degraded);
            warnings.push(Warning {
                problem: format!("{} event(s) dropped because the host did not poll", metrics.engine.events_dropped),
                recommendation: "poll events more often".into(),
            });
        }
        HealthReport { status, warnings, metrics, configured_peers }
    }

    /// The report as a JSON object: `status`, `warnings` (problem, recommendation),
    /// `peers` (connected, configured), `io_backend`, and `metrics` (counters).
    pub fn to_json(&self) -> String {
        let m = &self.metrics;
        let mut out = String::with_capacity(1024);
        let _ = write!(out, "{{\"status\":\"{}\",\"warnings\":[", self.status.as_str());
        for (index, warning) in self.warnings.iter().enumerate() {
            let comma = if index > 0 { "," } else { "" };
            let _ = write!(
                out,
                "{comma}{{\"problem\":{},\"recommendation\":{}}}",
                json_string(&warning.problem),
                json_string(&warning.recommendation)
            );
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
        out.push_str("}}");
        out
    }
}

impl HealthStatus {
    fn max_with(self, other: HealthStatus) -> HealthStatus {
        let rank = |status: HealthStatus| status as u8;
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
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

    #[test]
    fn json_strings_escape_quotes_backslashes_and_controls() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
