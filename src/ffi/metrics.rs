//! `bhs_metrics` and `bhs_health_json`: a node's figures as a fixed struct of counters
//! (cheap to poll, no parsing) and its health report as JSON (src/metrics/health.rs).

use super::buf::bhs_buf;
use super::error::{guard, FfiError};
use super::node::{bhs_node, running, write_out};
use super::status::bhs_status;
use crate::engine::io::BackendKind;
use crate::node::NodeMetrics;

/// `bhs_node_metrics.io_backend`: not known.
pub const BHS_IO_BACKEND_UNKNOWN: u32 = 0;
/// `bhs_node_metrics.io_backend`: io_uring.
pub const BHS_IO_BACKEND_IO_URING: u32 = 1;
/// `bhs_node_metrics.io_backend`: mio (epoll).
pub const BHS_IO_BACKEND_MIO: u32 = 2;

/// A snapshot of a node's counters (totals since it opened, except `peers_connected`).
/// `size` is `sizeof(bhs_node_metrics)` as the library knows it; `reserved` is zero and
/// takes the counters later versions add.
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct bhs_node_metrics {
    /// `sizeof(bhs_node_metrics)` as the library knows it.
    pub size: u32,
    /// The IO backend in use, a `BHS_IO_BACKEND_*`.
    pub io_backend: u32,
    /// Peers connected now.
    pub peers_connected: u64,
    /// Entries received from peers and stored.
    pub items_in: u64,
    /// Entries sent to peers.
    pub items_out: u64,
    /// Syncs started.
    pub syncs_started: u64,
    /// Syncs that finished without error.
    pub syncs_succeeded: u64,
    /// Syncs that failed (and were retried).
    pub syncs_failed: u64,
    /// Categories streamed whole.
    pub bulk_syncs: u64,
    /// Conflicts resolved by a CRDT or custom rule.
    pub conflicts: u64,
    /// Conflicts whose rule failed (both versions kept).
    pub conflicts_unresolved: u64,
    /// Events dropped because the host did not poll.
    pub events_dropped: u64,
    /// Pushes dropped (queue full).
    pub pushes_dropped: u64,
    /// Bytes received on sockets.
    pub bytes_in: u64,
    /// Bytes sent on sockets.
    pub bytes_out: u64,
    /// Frames received.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Connections accepted.
    pub accepted: u64,
    /// Outgoing dials started.
    pub dials: u64,
    /// Outgoing dials that failed.
    pub dial_failures: u64,
    /// Handshakes completed.
    pub handshakes_completed: u64,
    /// Handshakes that failed.
    pub handshakes_failed: u64,
    /// Frames that did not decode or were over the bound.
    pub bad_frames: u64,
    /// Peer faults found by the node core.
    pub peer_faults: u64,
    /// Peers disconnected for misbehaviour.
    pub disconnected_misbehaviour: u64,
    /// Reserved; zero.
    pub reserved: [u64; 16],
}

const _: () = assert!(std::mem::size_of::<bhs_node_metrics>() == 320);

impl bhs_node_metrics {
    fn from_node(metrics: &NodeMetrics) -> bhs_node_metrics {
        let (engine, core) = (&metrics.engine, &metrics.core);
        bhs_node_metrics {
            size: std::mem::size_of::<bhs_node_metrics>() as u32,
            io_backend: match metrics.io.kind {
                Some(BackendKind::IoUring) => BHS_IO_BACKEND_IO_URING,
                Some(BackendKind::Mio) => BHS_IO_BACKEND_MIO,
                None => BHS_IO_BACKEND_UNKNOWN,
            },
            peers_connected: metrics.peers.len() as u64,
            items_in: core.items_in,
            items_out: core.items_out,
            syncs_started: core.syncs_started,
            syncs_succeeded: core.syncs_succeeded,
            syncs_failed: core.syncs_failed,
            bulk_syncs: core.bulk_syncs,
            conflicts: core.conflicts,
            conflicts_unresolved: core.conflicts_unresolved,
            events_dropped: core.events_dropped.max(engine.events_dropped),
            pushes_dropped: core.pushes_dropped,
            bytes_in: engine.bytes_in,
            bytes_out: engine.bytes_out,
            frames_in: engine.frames_in,
            frames_out: engine.frames_out,
            accepted: engine.accepted,
            dials: engine.dials,
            dial_failures: engine.dial_failures,
            handshakes_completed: engine.handshakes_completed,
            handshakes_failed: engine.handshakes_failed,
            bad_frames: engine.bad_frames,
            peer_faults: engine.peer_faults,
            disconnected_misbehaviour: engine.disconnected_misbehaviour,
            reserved: [0; 16],
        }
    }
}

/// Writes the node's counters into `*out_metrics`. Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `out_metrics` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_metrics(node: *const bhs_node, out_metrics: *mut bhs_node_metrics) -> bhs_status {
    guard(|| {
        if out_metrics.is_null() {
            return Err(FfiError::invalid("out_metrics is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let metrics = unsafe { running(node) }?.node.metrics()?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_metrics, bhs_node_metrics::from_node(&metrics), "out_metrics") }
    })
}

/// Writes the node's health report as a JSON object (UTF-8, not NUL-terminated: status
/// "healthy" | "degraded" | "critical", warnings with recommendations, figures) into
/// `*out_json`, which the caller releases with `bhs_buf_free`. Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `out_json` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_health_json(node: *const bhs_node, out_json: *mut bhs_buf) -> bhs_status {
    guard(|| {
        if out_json.is_null() {
            return Err(FfiError::invalid("out_json is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let json = unsafe { running(node) }?.node.health_json()?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_json, bhs_buf::from_vec(json.into_bytes()), "out_json") }
    })
}
