//! Every figure of a node in the Prometheus text exposition format (version 0.0.4), as
//! `bhsync node --admin ADDR` serves it at `/metrics`.
//!
//! Counters are monotonic since the node opened (Prometheus computes rates with
//! `rate()`); the engine's own sliding-window rates are there too as gauges for
//! dashboards without PromQL. Sync latency is exposed as histograms whose buckets are
//! read from the HDR histograms the engine records (overall and per peer, label `peer`:
//! the first 8 bytes of its id in hex). Per-category figures carry a `category` label.
//! Names follow the Prometheus conventions: `bhsync_` prefix, base units (seconds,
//! bytes), `_total` on counters.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::node::NodeMetrics;

/// The latency buckets' upper bounds, in seconds.
const BUCKETS_S: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

/// Content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders a node's figures.
pub fn render(m: &NodeMetrics) -> String {
    let mut out = String::with_capacity(8192);
    let t = &m.telemetry;
    let node_labels = format!("node=\"{}\",io_backend=\"{}\"", m.node.short(), m.io.kind_name());
    family(&mut out, "bhsync_info", "gauge", "Constant 1, labelled with the node id and IO backend.");
    let _ = writeln!(out, "bhsync_info{{{node_labels}}} 1");
    let counters: [(&str, &str, u64); 17] = [
        ("bhsync_items_received_total", "Entries received from peers and stored.", m.core.items_in),
        ("bhsync_items_sent_total", "Entries sent to peers.", m.core.items_out),
        ("bhsync_bytes_received_total", "Socket bytes received.", m.engine.bytes_in),
        ("bhsync_bytes_sent_total", "Socket bytes sent.", m.engine.bytes_out),
        ("bhsync_syncs_started_total", "Syncs started.", m.core.syncs_started),
        ("bhsync_syncs_succeeded_total", "Syncs that succeeded.", m.core.syncs_succeeded),
        ("bhsync_syncs_failed_total", "Syncs that failed and were retried.", m.core.syncs_failed),
        ("bhsync_conflicts_total", "Conflicts resolved by a merge rule.", m.core.conflicts),
        ("bhsync_partition_events_total", "Times membership found this node on a minority side of a partition.", t.partition_events),
        ("bhsync_partitions_injected_total", "Partitions asked for by the host.", t.partitions_injected),
        ("bhsync_peer_ups_total", "Peer links that came up.", t.peer_ups),
        ("bhsync_handshakes_completed_total", "Handshakes completed.", m.engine.handshakes_completed),
        ("bhsync_handshakes_failed_total", "Handshakes failed.", m.engine.handshakes_failed),
        ("bhsync_bad_frames_total", "Frames that did not decode.", m.engine.bad_frames),
        ("bhsync_peer_faults_total", "Peer faults reported by the core.", m.engine.peer_faults),
        (
            "bhsync_disconnected_misbehaviour_total",
            "Peers disconnected for misbehaviour.",
            m.engine.disconnected_misbehaviour,
        ),
        ("bhsync_events_dropped_total", "Events dropped because the host did not poll.", m.engine.events_dropped),
    ];
    for (name, help, value) in counters {
        family(&mut out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let connectivity =
        if m.configured_peers == 0 { 1.0 } else { (m.peers.len() as f64 / m.configured_peers as f64).min(1.0) };
    let gauges: [(&str, &str, f64); 8] = [
        ("bhsync_peers_connected", "Peers connected now.", m.peers.len() as f64),
        ("bhsync_peers_configured", "Peer addresses the node dials.", m.configured_peers as f64),
        ("bhsync_peer_connectivity_ratio", "Connected over configured peers.", connectivity),
        (
            "bhsync_consistency_lag_seconds",
            "Largest time since the last good sync with a peer.",
            t.consistency_lag_ms as f64 / 1e3,
        ),
        ("bhsync_items_per_second", "Entries in and out per second (sliding window).", t.rates.items_per_s),
        ("bhsync_bytes_per_second", "Socket bytes in and out per second (sliding window).", t.rates.bytes_per_s),
        ("bhsync_conflicts_per_second", "Conflicts per second (sliding window).", t.rates.conflicts_per_s),
        ("bhsync_uptime_seconds", "Since the node opened.", t.uptime_ms as f64 / 1e3),
    ];
    for (name, help, value) in gauges {
        family(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {}", number(value));
    }
    roles(&mut out, &m.roles);
    family(&mut out, "bhsync_sync_latency_seconds", "histogram", "Duration of syncs with peers.");
    histogram(&mut out, "bhsync_sync_latency_seconds", "", &t.sync_histogram);
    per_peer(&mut out, m);
    per_category(&mut out, m);
    out
}

fn per_peer(out: &mut String, m: &NodeMetrics) {
    let peers = &m.telemetry.peers;
    family(out, "bhsync_peer_sync_latency_seconds", "histogram", "Duration of syncs, per peer.");
    for p in peers {
        histogram(out, "bhsync_peer_sync_latency_seconds", &format!("peer=\"{}\"", p.id.short()), &p.histogram);
    }
    type Figure = fn(&crate::metrics::PeerFigures) -> f64;
    let figures: [(&str, &str, &str, Figure); 8] = [
        ("bhsync_peer_connected", "gauge", "1 when the peer's link is up.", |p| f64::from(u8::from(p.connected))),
        ("bhsync_peer_consistency_lag_seconds", "gauge", "Time since the last good sync with the peer.", |p| {
            p.consistency_lag_ms as f64 / 1e3
        }),
        ("bhsync_peer_bytes_received_total", "counter", "Socket bytes from the peer.", |p| p.bytes_in as f64),
        ("bhsync_peer_bytes_sent_total", "counter", "Socket bytes to the peer.", |p| p.bytes_out as f64),
        ("bhsync_peer_items_received_total", "counter", "Entries applied from the peer by syncs.", |p| {
            p.items_in as f64
        }),
        ("bhsync_peer_syncs_succeeded_total", "counter", "Syncs with the peer that succeeded.", |p| p.syncs_ok as f64),
        ("bhsync_peer_syncs_failed_total", "counter", "Syncs with the peer that failed.", |p| p.syncs_failed as f64),
        ("bhsync_peer_link_downs_total", "counter", "Times the peer's link went down.", |p| p.downs as f64),
    ];
    for (name, kind, help, value) in figures {
        family(out, name, kind, help);
        for p in peers {
            let _ = writeln!(out, "{name}{{peer=\"{}\"}} {}", p.id.short(), number(value(p)));
        }
    }
}

fn per_category(out: &mut String, m: &NodeMetrics) {
    type Figure = fn(&crate::metrics::CategoryFigures) -> u64;
    let figures: [(&str, &str, Figure); 4] = [
        ("bhsync_category_syncs_total", "Syncs that covered the category.", |c| c.syncs),
        ("bhsync_category_sync_failures_total", "Syncs that failed for the category.", |c| c.failures),
        ("bhsync_category_items_applied_total", "Entries of the category received by syncs.", |c| c.items_applied),
        ("bhsync_category_items_sent_total", "Entries of the category sent by syncs.", |c| c.items_sent),
    ];
    for (name, help, value) in figures {
        family(out, name, "counter", help);
        for c in &m.telemetry.categories {
            let _ = writeln!(out, "{name}{{category=\"{}\"}} {}", label_value(&c.name), value(c));
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Cumulative buckets from an HDR histogram recorded in milliseconds.
fn histogram(out: &mut String, name: &str, labels: &str, h: &Histogram<u64>) {
    let sep = if labels.is_empty() { "" } else { "," };
    for bound in BUCKETS_S {
        let bound_ms = (bound * 1e3) as u64;
        let count = if h.is_empty() { 0 } else { h.count_between(0, bound_ms) };
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}", h.len());
    let braces = if labels.is_empty() { String::new() } else { format!("{{{labels}}}") };
    let sum_s = if h.is_empty() { 0.0 } else { h.mean() * h.len() as f64 / 1e3 };
    let _ = writeln!(out, "{name}_sum{braces} {}", number(sum_s));
    let _ = writeln!(out, "{name}_count{braces} {}", h.len());
}

fn number(value: f64) -> String {
    if value.is_finite() {
        format!("{value}")
    } else {
        "0".into()
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_with_the_count() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000, 3).unwrap();
        for ms in [1, 3, 20, 700, 70_000] {
            h.record(ms).unwrap();
        }
        let mut out = String::new();
        histogram(&mut out, "x", "peer=\"ab\"", &h);
        assert!(out.contains("x_bucket{peer=\"ab\",le=\"0.001\"} 1\n"), "{out}");
        assert!(out.contains("x_bucket{peer=\"ab\",le=\"0.025\"} 3\n"), "{out}");
        assert!(out.contains("x_bucket{peer=\"ab\",le=\"60\"} 4\n"), "{out}");
        assert!(out.contains("x_bucket{peer=\"ab\",le=\"+Inf\"} 5\n"), "{out}");
        assert!(out.contains("x_count{peer=\"ab\"} 5\n"), "{out}");
    }
}

/// Membership and network time.
fn roles(out: &mut String, r: &crate::node::MachineFigures) {
    family(out, "bhsync_members", "gauge", "Members as membership (SWIM) sees them, by state; this node excluded.");
    let states = [("alive", r.members_alive), ("suspect", r.members_suspect), ("dead", r.members_dead), ("left", r.members_left)];
    for (state, count) in states {
        let _ = writeln!(out, "bhsync_members{{state=\"{state}\"}} {count}");
    }
    let gauges: [(&str, &str, f64); 3] = [
        ("bhsync_membership_minority_side", "1 while membership sees this node on a minority side.", f64::from(u8::from(r.partitioned))),
        ("bhsync_membership_local_health", "Lifeguard's local health multiplier (0 = healthy).", f64::from(r.local_health)),
        ("bhsync_network_time_offset_seconds", "Network time minus the local clock.", r.time_correction_ms as f64 / 1e3),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {}", number(value));
    }
    family(out, "bhsync_network_time_refusals_total", "counter", "Network time updates refused: too few agreeing peers.");
    let _ = writeln!(out, "bhsync_network_time_refusals_total {}", r.time.refusals);
    overlay(out, r);
}

/// The overlay (HyParView's views, Plumtree's broadcasts) and the links it keeps.
fn overlay(out: &mut String, r: &crate::node::MachineFigures) {
    let o = &r.overlay;
    let gauges: [(&str, &str, usize); 4] = [
        ("bhsync_links", "Peers this node holds a link (connection) to now.", r.links),
        ("bhsync_overlay_active_peers", "Neighbours in the overlay's active view (links kept).", o.active),
        ("bhsync_overlay_active_max", "The active view's capacity (target_peers).", o.active_max),
        ("bhsync_overlay_passive_peers", "Members in the overlay's passive view.", o.passive),
    ];
    for (name, help, value) in gauges {
        family(out, name, "gauge", help);
        let _ = writeln!(out, "{name} {value}");
    }
    let counters: [(&str, &str, u64); 8] = [
        ("bhsync_passive_visits_total", "Visits to passive-view members (an anti-entropy round beyond the active view).", r.passive_visits),
        ("bhsync_parked_frames_dropped_total", "Frames dropped because the link they waited for never came up.", r.parked_dropped),
        ("bhsync_broadcasts_total", "Broadcasts of this node's writes started on the overlay.", o.broadcasts),
        ("bhsync_broadcasts_dropped_total", "Broadcasts not started (too large, back-pressure): anti-entropy carries them.", o.broadcasts_dropped),
        ("bhsync_broadcasts_delivered_total", "Broadcasts from peers delivered here.", o.delivered),
        ("bhsync_broadcast_payload_msgs_total", "Payload frames sent on the overlay (eager pushes and GRAFT answers).", o.gossip.tree.payloads_sent),
        ("bhsync_broadcast_payload_bytes_total", "Bytes of the payloads in those frames.", o.gossip.tree.payload_bytes_sent),
        ("bhsync_broadcast_grafts_total", "GRAFTs sent: payloads pulled after a lazy announcement.", o.gossip.tree.grafts_sent),
    ];
    for (name, help, value) in counters {
        family(out, name, "counter", help);
        let _ = writeln!(out, "{name} {value}");
    }
}

