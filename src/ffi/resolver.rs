//! The host's conflict resolver: the one callback of the C ABI (DESIGN.md §7).
//!
//! For a category whose merge rule is custom, the node calls the host's function with
//! both versions of a key and the host answers "keep mine", "keep theirs" or "store this
//! merged value". It runs on the node's engine thread, inside the core's resolution, so
//! it must be quick and must not call back into the same node (that would wait for the
//! engine thread, which is busy running the resolver: a deadlock). A non-zero return or
//! an unknown choice maps onto the core's failure path: both versions are kept, the
//! last writer reads as the value, and a `BHS_EVENT_CONFLICT` with
//! `BHS_EVENT_FLAG_FAILED` tells the host (src/crdt/resolver.rs).

use std::ffi::{c_char, c_void};

use super::buf::bhs_buf;
use super::error::{guard, FfiError};
use super::host_str;
use super::node::{bhs_node, running};
use super::status::bhs_status;
use crate::crdt::{Resolution, Side, VersionedValue};

/// `bhs_resolution.choice`: keep the local version.
pub const BHS_RESOLVE_LOCAL: u32 = 1;
/// `bhs_resolution.choice`: keep the remote version.
pub const BHS_RESOLVE_REMOTE: u32 = 2;
/// `bhs_resolution.choice`: store `merged` as a new version superseding both.
pub const BHS_RESOLVE_MERGED: u32 = 3;

/// One version of a value, lent to the resolver for the duration of the call.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct bhs_versioned {
    /// The value bytes (valid only during the call; NULL when empty).
    pub value: *const u8,
    /// Its length.
    pub value_len: usize,
    /// Hybrid logical timestamp of the write (milliseconds << 16 | logical counter).
    pub hlc: u64,
    /// The write's counter at its origin.
    pub counter: u64,
    /// The node that made the write.
    pub origin: [u8; 32],
    /// 1 when this version is a deletion, else 0.
    pub tombstone: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// Reserved; zero.
    pub reserved: [u64; 2],
}

const _: () = assert!(std::mem::size_of::<bhs_versioned>() == 88);

/// A conflict: two versions of one key in one category, neither of which has seen the
/// other. Everything in it is lent for the duration of the call only. `size` is
/// `sizeof(bhs_conflict)` as the library knows it.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct bhs_conflict {
    /// `sizeof(bhs_conflict)` as the library knows it.
    pub size: u32,
    /// Reserved; zero.
    pub reserved0: u32,
    /// The category name (UTF-8, not NUL-terminated).
    pub category: *const u8,
    /// Its length.
    pub category_len: usize,
    /// The version stored here.
    pub local: bhs_versioned,
    /// The version that arrived from a peer.
    pub remote: bhs_versioned,
    /// Reserved; zero.
    pub reserved: [u64; 4],
}

const _: () = assert!(std::mem::size_of::<bhs_conflict>() == 232);

/// The resolver's answer. The library zeroes it before the call (`size` set). Set
/// `choice` to a `BHS_RESOLVE_*`; for `BHS_RESOLVE_MERGED`, fill `merged` with
/// `bhs_buf_copy` (at most `BHS_MAX_VALUE_LEN` bytes). The library takes `merged` back
/// and releases it after the call, whatever the choice or return value.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct bhs_resolution {
    /// `sizeof(bhs_resolution)` as the library knows it.
    pub size: u32,
    /// One of `BHS_RESOLVE_*` (0: none, counts as a failure).
    pub choice: u32,
    /// The merged value, made by `bhs_buf_copy`.
    pub merged: bhs_buf,
    /// Reserved; zero.
    pub reserved: [u64; 4],
}

const _: () = assert!(std::mem::size_of::<bhs_resolution>() == 64);

/// The host's resolver: returns 0 with `*out` filled, or non-zero for "cannot decide"
/// (both versions kept, last writer reads). Called on the node's engine thread.
#[allow(non_camel_case_types)]
pub type bhs_conflict_resolver = Option<
    unsafe extern "C" fn(user_data: *mut c_void, conflict: *const bhs_conflict, out: *mut bhs_resolution) -> i32,
>;

/// The host's `user_data`, carried to the engine thread.
struct HostContext(*mut c_void);

// SAFETY: `bhs_set_conflict_resolver`'s contract has the host promise that `user_data`
// may be used from the engine thread, and from one call at a time (the engine thread
// runs one resolution at a time); the library never dereferences it.
unsafe impl Send for HostContext {}
// SAFETY: as above; the library only passes the pointer back to the host's function.
unsafe impl Sync for HostContext {}

fn lend(value: &VersionedValue) -> bhs_versioned {
    bhs_versioned {
        value: if value.value.is_empty() { std::ptr::null() } else { value.value.as_ptr() },
        value_len: value.value.len(),
        hlc: value.version.hlc,
        counter: value.version.counter,
        origin: value.version.origin.0,
        tombstone: u32::from(value.version.tombstone),
        reserved0: 0,
        reserved: [0; 2],
    }
}

type HostFn = unsafe extern "C" fn(*mut c_void, *const bhs_conflict, *mut bhs_resolution) -> i32;

/// Calls the host's function for one conflict and reads its answer.
fn call_host(
    function: HostFn,
    context: &HostContext,
    category: &str,
    local: &VersionedValue,
    remote: &VersionedValue,
) -> Result<Resolution, String> {
    let conflict = bhs_conflict {
        size: std::mem::size_of::<bhs_conflict>() as u32,
        reserved0: 0,
        category: category.as_ptr(),
        category_len: category.len(),
        local: lend(local),
        remote: lend(remote),
        reserved: [0; 4],
    };
    let mut out = bhs_resolution {
        size: std::mem::size_of::<bhs_resolution>() as u32,
        choice: 0,
        merged: bhs_buf::from_vec(Vec::new()),
        reserved: [0; 4],
    };
    // SAFETY: the host registered `function` with this `user_data`; `conflict` and its
    // value pointers outlive the call; `out` is a valid, writable resolution.
    let code = unsafe { function(context.0, &conflict, &mut out) };
    // SAFETY: the host fills `merged` only with `bhs_buf_copy` (the contract).
    let merged = unsafe { out.merged.take() };
    if code != 0 {
        return Err(format!("the host resolver returned {code}"));
    }
    match out.choice {
        BHS_RESOLVE_LOCAL => Ok(Resolution::Winner(Side::Local)),
        BHS_RESOLVE_REMOTE => Ok(Resolution::Winner(Side::Remote)),
        BHS_RESOLVE_MERGED => Ok(Resolution::Merged(merged)),
        other => Err(format!("the host resolver chose {other}, which is not a BHS_RESOLVE_* value")),
    }
}

/// Registers `resolver` for `category` (replacing any earlier one). It is called with
/// `user_data` on the node's engine thread, one conflict at a time, whenever two
/// versions of a key conflict in a category whose merge rule is custom (the spec's
/// merge=custom; other categories never call it). It must not call into the same
/// node. The library keeps `user_data` (never reading it) until the resolver is
/// replaced or the node closed: keep it valid and usable from that thread until then.
/// Without a resolver, conflicts in a custom category keep both versions and report
/// `BHS_EVENT_CONFLICT` with `BHS_EVENT_FLAG_FAILED`. `resolver` NULL:
/// `BHS_INVALID_ARGUMENT`, as is a category the node was not configured with. A C++
/// resolver must not let an exception escape. Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `category` is NULL or NUL-terminated; `resolver` follows the
/// contract above.
#[no_mangle]
pub unsafe extern "C" fn bhs_set_conflict_resolver(
    node: *mut bhs_node,
    category: *const c_char,
    resolver: bhs_conflict_resolver,
    user_data: *mut c_void,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let name = unsafe { host_str(category, "category") }?.to_owned();
        let function = resolver.ok_or_else(|| FfiError::invalid("resolver is NULL"))?;
        let context = HostContext(user_data);
        let category = name.clone();
        let custom: crate::crdt::CustomResolver =
            Box::new(move |local, remote| call_host(function, &context, &category, local, remote));
        // SAFETY: forwarded caller contract.
        unsafe { running(node) }?.node.set_resolver(&name, custom)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{NodeId, Version};

    fn versioned(value: &[u8], hlc: u64) -> VersionedValue {
        VersionedValue {
            value: value.to_vec(),
            version: Version { hlc, origin: NodeId([1; 32]), counter: 1, tombstone: false },
        }
    }

    unsafe extern "C" fn merge_both(user_data: *mut c_void, c: *const bhs_conflict, out: *mut bhs_resolution) -> i32 {
        // SAFETY: the library passes a valid conflict and resolution for the call.
        let (c, out) = unsafe { (&*c, &mut *out) };
        // SAFETY: the values are lent for the call.
        let (local, remote) = unsafe {
            (
                std::slice::from_raw_parts(c.local.value, c.local.value_len),
                std::slice::from_raw_parts(c.remote.value, c.remote.value_len),
            )
        };
        let merged = [local, remote].concat();
        // SAFETY: valid pointers.
        unsafe { crate::ffi::buf::bhs_buf_copy(merged.as_ptr(), merged.len(), &mut out.merged) };
        out.choice = user_data as usize as u32;
        0
    }

    unsafe extern "C" fn refuse(_: *mut c_void, _: *const bhs_conflict, out: *mut bhs_resolution) -> i32 {
        // SAFETY: the library passes a valid resolution; the merged buffer must be released anyway.
        unsafe { crate::ffi::buf::bhs_buf_copy(b"x".as_ptr(), 1, &mut (*out).merged) };
        -3
    }

    #[test]
    fn the_host_answer_maps_onto_a_resolution_or_a_failure() {
        let (local, remote) = (versioned(b"ab", 1), versioned(b"cd", 2));
        let merged = HostContext(BHS_RESOLVE_MERGED as usize as *mut c_void);
        assert_eq!(call_host(merge_both, &merged, "c", &local, &remote), Ok(Resolution::Merged(b"abcd".to_vec())));
        let keep = HostContext(BHS_RESOLVE_REMOTE as usize as *mut c_void);
        assert_eq!(call_host(merge_both, &keep, "c", &local, &remote), Ok(Resolution::Winner(Side::Remote)));
        let unknown = HostContext(99 as *mut c_void);
        assert!(call_host(merge_both, &unknown, "c", &local, &remote).unwrap_err().contains("99"));
        assert!(call_host(refuse, &unknown, "c", &local, &remote).unwrap_err().contains("-3"));
    }
}
