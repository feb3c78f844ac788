//! `bhs_status`: the result of every fallible C function.
//!
//! Values are stable: a code keeps its number forever. 0–63 are general codes; 64–127
//! are reserved for the node API (network, partitions, consensus); hosts must treat an
//! unknown code as a failure and read `bhs_last_error()`.

use std::ffi::c_char;

/// The result of a fallible call: `BHS_OK` (0) or one of the `BHS_*` codes.
#[allow(non_camel_case_types)]
pub type bhs_status = u32;

/// Success.
pub const BHS_OK: bhs_status = 0;
/// A pointer was NULL, a length was over its bound, a name was invalid, or bytes did not
/// decode. Nothing was changed.
pub const BHS_INVALID_ARGUMENT: bhs_status = 1;
/// The key (or category) does not exist.
pub const BHS_NOT_FOUND: bhs_status = 2;
/// A proof decoded but does not lead to the given root: the entry is not in that state.
pub const BHS_PROOF_INVALID: bhs_status = 3;
/// An internal error (a bug) was caught at the boundary; the handle involved must not
/// be used again except to free it.
pub const BHS_INTERNAL: bhs_status = 4;

/// The call did not finish in time (`bhs_sync`), or no event came within the timeout
/// (`bhs_poll_event`).
pub const BHS_TIMEOUT: bhs_status = 64;
/// The node's engine has stopped (`bhs_node_shutdown`, or a fatal error): only
/// `bhs_node_close` is useful now.
pub const BHS_CLOSED: bhs_status = 65;
/// The node's command queue is full: retry shortly.
pub const BHS_BUSY: bhs_status = 66;
/// A socket, file or thread could not be set up (address in use, unreadable identity
/// file, …); `bhs_last_error()` says which and why.
pub const BHS_IO: bhs_status = 67;
/// The category's merge rule does not allow the call (a counter in a last-writer-wins
/// category, for example).
pub const BHS_WRONG_MERGE_RULE: bhs_status = 68;
/// A strong category: this node is not the leader of its Raft group; `bhs_last_error()`
/// names the leader when one is known. Nothing was written.
pub const BHS_NOT_LEADER: bhs_status = 69;
/// A strong category: no quorum is reachable from here (a minority side of a
/// partition, or an election under way). Nothing was written.
pub const BHS_READ_ONLY: bhs_status = 70;
/// A strong category: the write was proposed but its outcome is unknown (the leader
/// was lost or it timed out); it may or may not be committed.
pub const BHS_INDETERMINATE: bhs_status = 71;
/// The call does not apply to the category's mode (a delete or counter in a strong
/// category, for example).
pub const BHS_WRONG_MODE: bhs_status = 72;

/// A static, NUL-terminated description of `status` (never NULL, never freed). Unknown
/// codes give "unknown status". Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn bhs_status_str(status: bhs_status) -> *const c_char {
    let text: &'static str = match status {
        BHS_OK => "ok\0",
        BHS_INVALID_ARGUMENT => "invalid argument\0",
        BHS_NOT_FOUND => "not found\0",
        BHS_PROOF_INVALID => "proof invalid\0",
        BHS_INTERNAL => "internal error\0",
        BHS_TIMEOUT => "timeout\0",
        BHS_CLOSED => "closed\0",
        BHS_BUSY => "busy\0",
        BHS_IO => "io error\0",
        BHS_WRONG_MERGE_RULE => "wrong merge rule\0",
        BHS_NOT_LEADER => "not the leader\0",
        BHS_READ_ONLY => "read-only: no quorum reachable\0",
        BHS_INDETERMINATE => "outcome unknown\0",
        BHS_WRONG_MODE => "wrong category mode\0",
        _ => "unknown status\0",
    };
    text.as_ptr().cast()
}
