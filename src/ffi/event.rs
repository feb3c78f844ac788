//! `bhs_event`: what the node tells the host (peers up and down, remote updates, syncs
//! finished, conflicts, fatal errors), pulled with `bhs_poll_event` on a thread of the
//! host's choosing, so that no language has to accept calls on a foreign thread
//! (DESIGN.md §7).
//!
//! Variable-length parts (category, key, message) are library-owned `bhs_buf`s inside
//! the event, released together by `bhs_event_free`: one rule for every binding, no
//! truncation, and the fixed part of the struct keeps reserved space for growth.

use std::time::Duration;

use super::buf::{bhs_buf, bhs_buf_free};
use super::error::{guard, FfiError};
use super::node::{bhs_node, handle_ref, write_out};
use super::status::{bhs_status, BHS_TIMEOUT};
use crate::membership::MembershipEvent;
use crate::node::{NodeEvent, SyncError};

/// A peer connection came up (`peer`).
pub const BHS_EVENT_PEER_UP: u32 = 1;
/// A peer connection went down (`peer`).
pub const BHS_EVENT_PEER_DOWN: u32 = 2;
/// A write from a peer changed `key` in `category`.
pub const BHS_EVENT_UPDATED: u32 = 3;
/// A frame of a whole-category stream was applied: `count` entries in `category`
/// (instead of one `BHS_EVENT_UPDATED` per entry).
pub const BHS_EVENT_STREAMED: u32 = 4;
/// A sync with `peer` finished: `sync_id`, `count` entries applied,
/// `BHS_EVENT_FLAG_FAILED` and `message` when it failed.
pub const BHS_EVENT_SYNC_FINISHED: u32 = 5;
/// The engine stopped on an error it cannot recover from (`message`). Once this event
/// has been polled, every call on the node returns `BHS_CLOSED`: close it. (A call made
/// between the stop and the poll may block: poll events, or see ADR 050.)
pub const BHS_EVENT_FATAL: u32 = 6;
/// Two versions of `key` in `category` conflicted and were resolved: `BHS_EVENT_FLAG_MERGED`
/// when a merged value was stored, `BHS_EVENT_FLAG_FAILED` and `message` when the rule
/// failed and both versions were kept (the last writer reads as the value).
pub const BHS_EVENT_CONFLICT: u32 = 7;

/// A strong category's Raft group has a new leader (`peer`, all zero when unknown) in
/// term `count`; `category` names it.
pub const BHS_EVENT_LEADER: u32 = 8;
/// A strong category lost (flags without `BHS_EVENT_FLAG_REACHABLE`) or regained contact
/// with a quorum of its Raft group; `category` names it. With an empty `category`: the
/// node's membership saw it on a minority side (or, with the flag, a majority reachable
/// again); `count` is the members reachable, `message` says how many are known.
pub const BHS_EVENT_PARTITION: u32 = 9;
/// Membership (SWIM) counts `peer` as a live member: it joined or came back.
pub const BHS_EVENT_MEMBER_UP: u32 = 10;
/// Membership suspects `peer` (it may still refute).
pub const BHS_EVENT_MEMBER_SUSPECT: u32 = 11;
/// Membership declared `peer` dead.
pub const BHS_EVENT_MEMBER_DEAD: u32 = 12;
/// `peer` left the membership on purpose.
pub const BHS_EVENT_MEMBER_LEFT: u32 = 13;
/// This node refuted a suspicion about itself; `count` is its new incarnation.
pub const BHS_EVENT_MEMBER_REFUTED: u32 = 14;
/// `BHS_EVENT_FLAG_MERGED`: a conflict was resolved into a new merged version.
pub const BHS_EVENT_FLAG_MERGED: u32 = 1;
/// `flags` bit: the sync or the conflict resolution failed (see `message`).
pub const BHS_EVENT_FLAG_FAILED: u32 = 2;
/// `flags` bit of `BHS_EVENT_PARTITION`: a quorum is reachable again.
pub const BHS_EVENT_FLAG_REACHABLE: u32 = 4;

/// One event. Kinds are `BHS_EVENT_*`; hosts must skip kinds they do not know (later
/// versions add kinds). Fields a kind does not use are zero or empty. The `bhs_buf`
/// fields are owned by the event until `bhs_event_free`; `size` is
/// `sizeof(bhs_event)` as the library knows it; `reserved` is zero.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct bhs_event {
    /// `sizeof(bhs_event)` as the library knows it.
    pub size: u32,
    /// One of `BHS_EVENT_*`.
    pub kind: u32,
    /// The peer's id (peer up/down, sync finished, the member of a `BHS_EVENT_MEMBER_*`
    /// but refuted), the leader's id (leader; zero while none is known); zero otherwise.
    pub peer: [u8; 32],
    /// The category name (UTF-8, not NUL-terminated).
    pub category: bhs_buf,
    /// The key.
    pub key: bhs_buf,
    /// A human-readable detail (UTF-8, not NUL-terminated): why a sync or a conflict
    /// failed, the fatal error, or, for a node-wide partition event, "R of K known
    /// members reachable".
    pub message: bhs_buf,
    /// Entries applied (sync finished) or streamed (streamed); the term (leader); the
    /// members reachable, this node included (a node-wide partition event); the new
    /// incarnation (member refuted).
    pub count: u64,
    /// The sync's id (sync finished).
    pub sync_id: u32,
    /// `BHS_EVENT_FLAG_*` bits.
    pub flags: u32,
    /// Reserved; zero.
    pub reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<bhs_event>() == 192);

impl bhs_event {
    fn empty(kind: u32) -> bhs_event {
        bhs_event {
            size: std::mem::size_of::<bhs_event>() as u32,
            kind,
            peer: [0; 32],
            category: bhs_buf::from_vec(Vec::new()),
            key: bhs_buf::from_vec(Vec::new()),
            message: bhs_buf::from_vec(Vec::new()),
            count: 0,
            sync_id: 0,
            flags: 0,
            reserved: [0; 8],
        }
    }

    /// The C form of a node event.
    pub fn from_node_event(event: NodeEvent) -> bhs_event {
        match event {
            NodeEvent::PeerUp(peer) => bhs_event { peer: peer.0, ..bhs_event::empty(BHS_EVENT_PEER_UP) },
            NodeEvent::PeerDown(peer) => bhs_event { peer: peer.0, ..bhs_event::empty(BHS_EVENT_PEER_DOWN) },
            NodeEvent::Updated { category, key } => bhs_event {
                category: bhs_buf::from_vec(category.into_bytes()),
                key: bhs_buf::from_vec(key),
                ..bhs_event::empty(BHS_EVENT_UPDATED)
            },
            NodeEvent::Streamed { category, entries } => bhs_event {
                category: bhs_buf::from_vec(category.into_bytes()),
                count: entries,
                ..bhs_event::empty(BHS_EVENT_STREAMED)
            },
            NodeEvent::SyncFinished { id, peer, result } => sync_finished(id, peer.0, result),
            NodeEvent::Fatal(message) => {
                bhs_event { message: bhs_buf::from_vec(message.into_bytes()), ..bhs_event::empty(BHS_EVENT_FATAL) }
            }
            NodeEvent::Leader { category, leader, term } => bhs_event {
                category: bhs_buf::from_vec(category.into_bytes()),
                peer: leader.map(|id| id.0).unwrap_or([0; 32]),
                count: term,
                ..bhs_event::empty(BHS_EVENT_LEADER)
            },
            NodeEvent::Partition { category, reachable } => bhs_event {
                category: bhs_buf::from_vec(category.into_bytes()),
                flags: if reachable { BHS_EVENT_FLAG_REACHABLE } else { 0 },
                ..bhs_event::empty(BHS_EVENT_PARTITION)
            },
            NodeEvent::Membership(event) => membership_event(event),
            NodeEvent::Conflict { category, key, merged, error } => bhs_event {
                category: bhs_buf::from_vec(category.into_bytes()),
                key: bhs_buf::from_vec(key),
                flags: if merged { BHS_EVENT_FLAG_MERGED } else { 0 }
                    | if error.is_some() { BHS_EVENT_FLAG_FAILED } else { 0 },
                message: bhs_buf::from_vec(error.map(|error| error.to_string()).unwrap_or_default().into_bytes()),
                ..bhs_event::empty(BHS_EVENT_CONFLICT)
            },
        }
    }
}

/// The C form of a membership event.
fn membership_event(event: MembershipEvent) -> bhs_event {
    let with_peer = |kind: u32, peer: crate::state::NodeId| bhs_event { peer: peer.0, ..bhs_event::empty(kind) };
    match event {
        MembershipEvent::MemberUp(peer) => with_peer(BHS_EVENT_MEMBER_UP, peer),
        MembershipEvent::MemberSuspected(peer) => with_peer(BHS_EVENT_MEMBER_SUSPECT, peer),
        MembershipEvent::MemberDead(peer) => with_peer(BHS_EVENT_MEMBER_DEAD, peer),
        MembershipEvent::MemberLeft(peer) => with_peer(BHS_EVENT_MEMBER_LEFT, peer),
        MembershipEvent::Refuted { incarnation } => bhs_event { count: incarnation, ..bhs_event::empty(BHS_EVENT_MEMBER_REFUTED) },
        MembershipEvent::PartitionDetected { reachable, known } => partition(reachable, known, 0),
        MembershipEvent::PartitionHealed { reachable, known } => partition(reachable, known, BHS_EVENT_FLAG_REACHABLE),
    }
}

fn partition(reachable: usize, known: usize, flags: u32) -> bhs_event {
    let message = format!("{reachable} of {known} known members reachable");
    bhs_event {
        count: reachable as u64,
        flags,
        message: bhs_buf::from_vec(message.into_bytes()),
        ..bhs_event::empty(BHS_EVENT_PARTITION)
    }
}

fn sync_finished(id: u32, peer: [u8; 32], result: Result<Vec<crate::node::CategoryReport>, SyncError>) -> bhs_event {
    let (reports, error) = match result {
        Ok(reports) => (reports, None),
        Err(SyncError::CategoriesFailed(reports)) => {
            let failed: Vec<String> =
                reports.iter().map(|report| format!("{}: {:?}", report.category, report.outcome)).collect();
            (reports, Some(format!("categories failed: {}", failed.join("; "))))
        }
        Err(other) => (Vec::new(), Some(format!("{other:?}"))),
    };
    bhs_event {
        peer,
        sync_id: id,
        count: reports.iter().map(|report| report.items_applied).sum(),
        flags: if error.is_some() { BHS_EVENT_FLAG_FAILED } else { 0 },
        message: bhs_buf::from_vec(error.unwrap_or_default().into_bytes()),
        ..bhs_event::empty(BHS_EVENT_SYNC_FINISHED)
    }
}

/// Waits up to `timeout_ms` (0: do not wait) for the next event and moves it into
/// `*out_event`, which the caller releases with `bhs_event_free`. `BHS_TIMEOUT` when
/// none came (`*out_event` untouched). Works after `bhs_node_shutdown`, to drain what
/// was queued. Events beyond a bound (100 000) are dropped oldest first while nobody
/// polls (counted in `bhs_metrics`). Thread-safe; each event goes to one caller.
///
/// # Safety
/// `node` is NULL or live; `out_event` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_poll_event(node: *mut bhs_node, out_event: *mut bhs_event, timeout_ms: u32) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let handle = unsafe { handle_ref(node) }?;
        if out_event.is_null() {
            return Err(FfiError::invalid("out_event is NULL"));
        }
        let event = handle.inner().poll_event(Duration::from_millis(u64::from(timeout_ms)));
        let event = event.ok_or_else(|| FfiError::with_status(BHS_TIMEOUT, "no event within the timeout"))?;
        if matches!(event, NodeEvent::Fatal(_)) {
            handle.mark_fatal();
        }
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_event, bhs_event::from_node_event(event), "out_event") }
    })
}

/// Releases the bytes an event owns and empties them, so a second call is harmless.
/// Accepts NULL. Thread-safe for distinct events.
///
/// # Safety
/// `event` is NULL or points to an event filled by `bhs_poll_event` (or zeroed).
#[no_mangle]
pub unsafe extern "C" fn bhs_event_free(event: *mut bhs_event) {
    // SAFETY: the caller passes NULL or a valid event.
    let Some(event) = (unsafe { event.as_mut() }) else { return };
    // SAFETY: the three buffers were filled by the library (or are empty).
    unsafe {
        bhs_buf_free(&mut event.category);
        bhs_buf_free(&mut event.key);
        bhs_buf_free(&mut event.message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::ResolveError;

    #[test]
    fn a_failed_conflict_carries_its_flags_and_message_and_free_empties_the_event() {
        let event = NodeEvent::Conflict {
            category: "notes".into(),
            key: b"k".to_vec(),
            merged: false,
            error: Some(ResolveError::NoCustomResolver),
        };
        let mut event = bhs_event::from_node_event(event);
        assert_eq!((event.kind, event.flags), (BHS_EVENT_CONFLICT, BHS_EVENT_FLAG_FAILED));
        assert_eq!((event.category.len, event.key.len), (5, 1));
        assert!(event.message.len > 0);
        // SAFETY: the event was filled by the library.
        unsafe {
            bhs_event_free(&mut event);
            bhs_event_free(&mut event);
        }
        assert!(event.category.data.is_null() && event.key.data.is_null() && event.message.data.is_null());
    }

    #[test]
    fn a_failed_sync_reports_its_reason() {
        let event =
            NodeEvent::SyncFinished { id: 7, peer: crate::state::NodeId([3; 32]), result: Err(SyncError::PeerDown) };
        let mut event = bhs_event::from_node_event(event);
        assert_eq!((event.kind, event.sync_id, event.peer[0]), (BHS_EVENT_SYNC_FINISHED, 7, 3));
        assert_eq!(event.flags, BHS_EVENT_FLAG_FAILED);
        // SAFETY: the event was filled by the library.
        unsafe { bhs_event_free(&mut event) };
    }
}
