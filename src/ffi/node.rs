//! `bhs_node`: a running node behind an opaque handle (DESIGN.md §7) — open, close,
//! identity, connect, reads and writes, counters, state hash and sync. Events, the
//! conflict resolver and metrics live in their own files next to this one.
//!
//! A handle may be used from any thread at once: `Node` itself is thread-safe (every
//! call becomes a command on the engine thread). "Closed" has two meanings, kept apart:
//! `bhs_node_close` stops the engine *and frees the handle*, so any later use is the
//! host's bug (as with `free()`); `bhs_node_shutdown` stops the engine but keeps the
//! handle, and every call on it then returns `BHS_CLOSED`. The `running` lock makes
//! that check race-free: calls hold it shared, shutdown takes it exclusively, so no
//! command is ever queued to an engine that has gone (it would wait forever).

use std::ffi::c_char;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{RwLock, RwLockReadGuard};
use std::time::Duration;

use super::buf::bhs_buf;
use super::config::{bhs_config, config_ref, parse_addr};
use super::error::{guard, FfiError};
use super::status::{bhs_status, BHS_CLOSED};
use super::{host_array, host_bytes, host_str, BHS_MAX_KEY_LEN, BHS_MAX_VALUE_LEN};
use crate::node::{CategoryOutcome, CategoryReport, Node, NodeError, SyncError, SyncResult};
use crate::state::NodeId;

/// A running node (opaque): made by `bhs_node_open`, released by `bhs_node_close`.
#[allow(non_camel_case_types)]
pub struct bhs_node {
    node: Node,
    /// `true` while the engine runs; see the module documentation.
    running: RwLock<bool>,
    /// Set when `bhs_poll_event` hands out a fatal event: the engine thread has ended on
    /// its own, and a command sent to it would never be answered.
    fatal: AtomicBool,
}

/// A running node borrowed for one call: the engine cannot stop until it is dropped.
pub(crate) struct Running<'a> {
    pub node: &'a Node,
    _guard: RwLockReadGuard<'a, bool>,
}

/// Borrows the node behind a host pointer, refusing one whose engine has stopped.
///
/// # Safety
/// `node` is NULL or a live handle from `bhs_node_open`.
pub(crate) unsafe fn running<'a>(node: *const bhs_node) -> Result<Running<'a>, FfiError> {
    // SAFETY: the caller passes NULL or a live handle.
    let handle = unsafe { handle_ref(node) }?;
    let guard = handle.running.read().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !*guard || handle.fatal.load(Ordering::Acquire) {
        return Err(FfiError::with_status(BHS_CLOSED, "the node's engine has stopped: only bhs_node_close remains"));
    }
    Ok(Running { node: &handle.node, _guard: guard })
}

/// Borrows the handle whether or not its engine runs.
///
/// # Safety
/// `node` is NULL or a live handle from `bhs_node_open`.
pub(crate) unsafe fn handle_ref<'a>(node: *const bhs_node) -> Result<&'a bhs_node, FfiError> {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe { node.as_ref() }.ok_or_else(|| FfiError::invalid("node is NULL"))
}

impl bhs_node {
    /// The node inside, for the other ffi files that need no running check.
    pub(crate) fn inner(&self) -> &Node {
        &self.node
    }

    /// Records that the engine stopped on a fatal error (seen in the event stream).
    pub(crate) fn mark_fatal(&self) {
        self.fatal.store(true, Ordering::Release);
    }
}

/// Writes through a host out-pointer, checked for NULL first.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, what: &str) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; the caller guarantees it is writable.
    unsafe { out.write(value) };
    Ok(())
}

/// Opens a node from `config` (which is copied: free it whenever you like): loads or
/// creates its identity, binds its listening socket, starts its engine thread and dials
/// its peers. `*out` receives a handle the caller releases with `bhs_node_close`.
/// `BHS_IO` when the address is taken or the identity file unusable;
/// `BHS_INVALID_ARGUMENT` for a configuration that cannot work. Thread-safe.
///
/// # Safety
/// `config` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_node_open(config: *const bhs_config, out: *mut *mut bhs_node) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let config = unsafe { config_ref(config) }?.snapshot()?;
        if out.is_null() {
            return Err(FfiError::invalid("out is NULL"));
        }
        let node = Node::open(config)?;
        let handle =
            Box::into_raw(Box::new(bhs_node { node, running: RwLock::new(true), fatal: AtomicBool::new(false) }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, handle, "out") }
    })
}

/// Stops the engine (says goodbye to peers, joins the engine thread) but keeps the
/// handle: afterwards every call on it returns `BHS_CLOSED`, `bhs_poll_event` still
/// drains the events already queued, and `bhs_node_close` releases it. Waits for calls
/// in progress on other threads to return. Idempotent; thread-safe.
///
/// # Safety
/// `node` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn bhs_node_shutdown(node: *mut bhs_node) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let handle = unsafe { handle_ref(node) }?;
        let mut running = handle.running.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *running = false;
        handle.node.close()?;
        Ok(())
    })
}

/// Stops the node (as `bhs_node_shutdown`) and frees the handle, whatever the status:
/// the handle is gone when this returns, and using it again is the host's bug. Accepts
/// NULL (`BHS_OK`). No other thread may be using the handle, and a resolver's
/// `user_data` may be released once this returns. `BHS_INTERNAL` if the engine thread
/// had panicked.
///
/// # Safety
/// `node` is NULL or a handle from `bhs_node_open` not yet closed.
#[no_mangle]
pub unsafe extern "C" fn bhs_node_close(node: *mut bhs_node) -> bhs_status {
    if node.is_null() {
        return super::status::BHS_OK;
    }
    // SAFETY: forwarded caller contract.
    let status = unsafe { bhs_node_shutdown(node) };
    guard(|| {
        // SAFETY: the caller passes a live handle made by Box::into_raw, used by no one else.
        drop(unsafe { Box::from_raw(node) });
        Ok(())
    });
    status
}

/// Writes the node's 32-byte id (its public key) to `out32`. Works after shutdown too.
/// Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `out32` is NULL or points to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bhs_node_id(node: *const bhs_node, out32: *mut u8) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let handle = unsafe { handle_ref(node) }?;
        // SAFETY: forwarded caller contract; [u8; 32] has alignment 1.
        unsafe { write_out(out32.cast::<[u8; 32]>(), handle.node.id().0, "out32") }
    })
}

/// Writes the address the node listens on, as text such as "127.0.0.1:40123" (UTF-8,
/// not NUL-terminated), into `*out`, which the caller releases with `bhs_buf_free`.
/// Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_node_local_addr(node: *const bhs_node, out: *mut bhs_buf) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let handle = unsafe { handle_ref(node) }?;
        if out.is_null() {
            return Err(FfiError::invalid("out is NULL"));
        }
        let text = handle.node.local_addr().to_string().into_bytes();
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, bhs_buf::from_vec(text), "out") }
    })
}

/// Dials `addr` ("host:port") now and keeps re-dialling it whenever the link drops; the
/// link is kept whatever the overlay decides (the config's `peers` are seeds instead:
/// dialled to join, then the overlay chooses the links). Returns once the dial is queued, not when the peer is up (watch for
/// `BHS_EVENT_PEER_UP`). Copies `addr`. Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `addr` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn bhs_node_connect(node: *mut bhs_node, addr: *const c_char) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let text = unsafe { host_str(addr, "addr") }?;
        let addr = parse_addr(text).ok_or_else(|| FfiError::invalid(format!("addr {text:?} is not host:port")))?;
        // SAFETY: forwarded caller contract.
        unsafe { running(node) }?.node.connect(addr)?;
        Ok(())
    })
}

/// Reads the key and category of a call from host pointers.
///
/// # Safety
/// As for `bhs_put`.
unsafe fn category_and_key<'a>(
    category: *const c_char,
    key: *const u8,
    key_len: usize,
) -> Result<(&'a str, &'a [u8]), FfiError> {
    // A length over the bound is refused before any byte is read, so a wrong length
    // never makes the library read past the host's buffer.
    if key_len > BHS_MAX_KEY_LEN {
        return Err(FfiError::invalid(format!("key_len {key_len} exceeds BHS_MAX_KEY_LEN ({BHS_MAX_KEY_LEN})")));
    }
    // SAFETY: forwarded caller contract.
    unsafe { Ok((host_str(category, "category")?, host_bytes(key, key_len, "key")?)) }
}

/// Stores `value` under `key` in `category`. Keys are 0 to `BHS_MAX_KEY_LEN` bytes,
/// values 0 to `BHS_MAX_VALUE_LEN`; a pointer may be NULL only when its length is 0.
/// `BHS_INVALID_ARGUMENT` over a bound or for a category the node was not configured
/// with (nothing stored). The write is pushed to connected peers. Copies the bytes;
/// thread-safe.
///
/// # Safety
/// `node` is NULL or live; pointers follow the rules above.
#[no_mangle]
pub unsafe extern "C" fn bhs_put(
    node: *mut bhs_node,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { category_and_key(category, key, key_len) }?;
        if value_len > BHS_MAX_VALUE_LEN {
            return Err(FfiError::invalid(format!(
                "value_len {value_len} exceeds BHS_MAX_VALUE_LEN ({BHS_MAX_VALUE_LEN})"
            )));
        }
        // SAFETY: forwarded caller contract.
        let value = unsafe { host_bytes(value, value_len, "value") }?;
        // SAFETY: forwarded caller contract.
        unsafe { running(node) }?.node.put(category, key, value)?;
        Ok(())
    })
}

/// Copies the live value of `key` in `category` into `*out_value`, which the caller
/// releases with `bhs_buf_free`. `BHS_NOT_FOUND` when the key is absent or deleted
/// (`*out_value` untouched), and also for a category the node was not configured with
/// (a read, unlike a write, does not check it). Thread-safe.
///
/// # Safety
/// As for `bhs_put`; `out_value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_get(
    node: *const bhs_node,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    out_value: *mut bhs_buf,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { category_and_key(category, key, key_len) }?;
        if out_value.is_null() {
            return Err(FfiError::invalid("out_value is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let value = unsafe { running(node) }?.node.get(category, key)?;
        let value = value.ok_or_else(|| FfiError::not_found("no live value for this key"))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_value, bhs_buf::from_vec(value), "out_value") }
    })
}

/// Deletes `key` from `category` with a tombstone (so the deletion synchronizes).
/// `BHS_NOT_FOUND` when there was no live value. Keeps no pointer; thread-safe.
///
/// # Safety
/// As for `bhs_put`.
#[no_mangle]
pub unsafe extern "C" fn bhs_delete(
    node: *mut bhs_node,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { category_and_key(category, key, key_len) }?;
        // SAFETY: forwarded caller contract.
        if unsafe { running(node) }?.node.delete(category, key)? {
            Ok(())
        } else {
            Err(FfiError::not_found("no live value for this key"))
        }
    })
}

/// Adds `delta` (may be negative) to the counter under `key` in a merge=crdt category;
/// `*out_value` (may be NULL) receives the new value. `BHS_WRONG_MERGE_RULE` in another
/// category. Keeps no pointer; thread-safe.
///
/// # Safety
/// As for `bhs_put`; `out_value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_counter_add(
    node: *mut bhs_node,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    delta: i64,
    out_value: *mut i64,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { category_and_key(category, key, key_len) }?;
        // SAFETY: forwarded caller contract.
        let value = unsafe { running(node) }?.node.counter_add(category, key, delta)?;
        if !out_value.is_null() {
            // SAFETY: the caller passes NULL or a writable i64.
            unsafe { out_value.write(value) };
        }
        Ok(())
    })
}

/// Reads the counter under `key` (0 when never written) into `*out_value`.
/// `BHS_WRONG_MERGE_RULE` outside a merge=crdt category. Keeps no pointer; thread-safe.
///
/// # Safety
/// As for `bhs_put`; `out_value` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_counter_get(
    node: *const bhs_node,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    out_value: *mut i64,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { category_and_key(category, key, key_len) }?;
        if out_value.is_null() {
            return Err(FfiError::invalid("out_value is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let value = unsafe { running(node) }?.node.counter_get(category, key)?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_value, value, "out_value") }
    })
}

/// Writes 32 bytes to `out32`: the Merkle root of `category`, or, when `category` is
/// NULL, the node's state hash (equal on two nodes exactly when they hold the same
/// state). `BHS_INVALID_ARGUMENT` for a category the node was not configured with.
/// Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `category` is NULL or a NUL-terminated string; `out32` is NULL
/// or points to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bhs_state_hash(node: *const bhs_node, category: *const c_char, out32: *mut u8) -> bhs_status {
    guard(|| {
        if out32.is_null() {
            return Err(FfiError::invalid("out32 is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let running = unsafe { running(node) }?;
        let hash = if category.is_null() {
            running.node.state_hash()?
        } else {
            // SAFETY: forwarded caller contract.
            let name = unsafe { host_str(category, "category") }?;
            running.node.category_root(name).map_err(|error| match error {
                NodeError::UnknownCategory(_) => NodeError::UnknownCategory(name.to_owned()),
                other => other,
            })?
        };
        // SAFETY: checked non-NULL; [u8; 32] has alignment 1.
        unsafe { write_out(out32.cast::<[u8; 32]>(), hash.0, "out32") }
    })
}

/// Writes network time to `out_unix_ms`: milliseconds since the Unix epoch as the
/// node's peers agree on it (its clock corrected by the offset its neighbours agree on,
/// never going backwards between two calls; the local clock while too few peers agree),
/// and, when `out_offset_ms` is not NULL, that offset (network minus local, ms).
/// Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `out_unix_ms` is NULL or writable; `out_offset_ms` is NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_network_time(
    node: *const bhs_node,
    out_unix_ms: *mut u64,
    out_offset_ms: *mut i64,
) -> bhs_status {
    guard(|| {
        if out_unix_ms.is_null() {
            return Err(FfiError::invalid("out_unix_ms is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let time = unsafe { running(node) }?.node.network_time()?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_unix_ms, time.unix_ms, "out_unix_ms") }?;
        if !out_offset_ms.is_null() {
            // SAFETY: checked non-NULL.
            unsafe { write_out(out_offset_ms, time.offset_ms, "out_offset_ms") }?;
        }
        Ok(())
    })
}

/// What one `bhs_sync` call did, summed over the peers it synced with. Written by the
/// library; `size` is `sizeof(bhs_sync_report)` of the library that filled it, and
/// `reserved` is zero (room for fields a later version adds without changing the size).
#[repr(C)]
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, Default)]
pub struct bhs_sync_report {
    /// `sizeof(bhs_sync_report)` as the library knows it.
    pub size: u32,
    /// Peers synced with.
    pub peers: u32,
    /// Peers whose sync finished with every category in step.
    pub peers_succeeded: u32,
    /// Peers whose sync failed (not connected, link lost, timed out, categories failed).
    pub peers_failed: u32,
    /// Categories that failed, over all peers.
    pub categories_failed: u32,
    /// Reconciliation round trips, over all peers and categories.
    pub round_trips: u32,
    /// Entries received and stored.
    pub items_applied: u64,
    /// Entries sent.
    pub items_sent: u64,
    /// Reserved; zero.
    pub reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<bhs_sync_report>() == 104);

impl bhs_sync_report {
    fn from_results(results: &[SyncResult]) -> bhs_sync_report {
        let mut report = bhs_sync_report {
            size: std::mem::size_of::<bhs_sync_report>() as u32,
            peers: results.len() as u32,
            ..Default::default()
        };
        for result in results {
            let (categories, failed) = match result {
                Ok(categories) => (categories.as_slice(), false),
                Err(SyncError::CategoriesFailed(categories)) => (categories.as_slice(), true),
                Err(_) => (&[][..], true),
            };
            report.add_categories(categories);
            if failed {
                report.peers_failed += 1;
            } else {
                report.peers_succeeded += 1;
            }
        }
        report
    }

    fn add_categories(&mut self, categories: &[CategoryReport]) {
        for category in categories {
            self.items_applied += category.items_applied;
            self.items_sent += category.items_sent;
            self.round_trips = self.round_trips.saturating_add(category.round_trips);
            if matches!(category.outcome, CategoryOutcome::Failed(_)) {
                self.categories_failed += 1;
            }
        }
    }
}

/// Runs anti-entropy now with the peer whose 32-byte id is `peer_id`, or with every
/// connected peer when `peer_id` is NULL, and waits until each finishes or `timeout_ms`
/// passes. `BHS_OK` once every sync has finished, successful or not: `*out_report`
/// (may be NULL) then says how many peers failed and why is in the events
/// (`BHS_EVENT_SYNC_FINISHED`). A peer that is not connected counts as failed.
/// `BHS_TIMEOUT` when the time ran out (`*out_report` untouched; the syncs go on in the
/// background). Blocks the calling thread only; thread-safe.
///
/// # Safety
/// `node` is NULL or live; `peer_id` is NULL or points to 32 readable bytes;
/// `out_report` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_sync(
    node: *mut bhs_node,
    peer_id: *const u8,
    timeout_ms: u32,
    out_report: *mut bhs_sync_report,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let peer =
            if peer_id.is_null() { None } else { Some(NodeId(*unsafe { host_array::<32>(peer_id, "peer_id") }?)) };
        // SAFETY: forwarded caller contract.
        let results = unsafe { running(node) }?.node.sync(peer, Duration::from_millis(u64::from(timeout_ms)))?;
        if !out_report.is_null() {
            // SAFETY: the caller passes NULL or a writable report.
            unsafe { out_report.write(bhs_sync_report::from_results(&results)) };
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn category(outcome: CategoryOutcome, applied: u64) -> CategoryReport {
        CategoryReport { category: "c".into(), outcome, items_applied: applied, items_sent: 1, round_trips: 2 }
    }

    #[test]
    fn a_sync_report_sums_peers_and_counts_every_kind_of_failure() {
        let results: Vec<SyncResult> = vec![
            Ok(vec![category(CategoryOutcome::Reconciled, 5), category(CategoryOutcome::Equal, 0)]),
            Err(SyncError::CategoriesFailed(vec![category(CategoryOutcome::Failed("x".into()), 1)])),
            Err(SyncError::NotConnected),
        ];
        let report = bhs_sync_report::from_results(&results);
        assert_eq!(report.size as usize, std::mem::size_of::<bhs_sync_report>());
        assert_eq!((report.peers, report.peers_succeeded, report.peers_failed), (3, 1, 2));
        assert_eq!(
            (report.categories_failed, report.items_applied, report.items_sent, report.round_trips),
            (1, 6, 3, 6)
        );
        assert_eq!(report.reserved, [0; 8]);
    }
}
