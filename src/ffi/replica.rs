//! `bhs_replica`: an in-memory replica behind an opaque handle (put, get, delete, state
//! hash, membership proofs, in-process sync). It is the first C surface; the networked
//! node (`bhs_node`) follows the same conventions.
//!
//! A handle may be used from any thread: calls on one handle are serialised by a mutex.
//! Writes are stamped with the wall clock read here, at the boundary, in the hybrid
//! logical clock layout (milliseconds since the Unix epoch shifted left by 16 bits);
//! the replica itself never reads a clock.

use std::ffi::c_char;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use super::buf::bhs_buf;
use super::error::{guard, FfiError};
use super::status::bhs_status;
use super::{host_array, host_bytes, host_str};
use crate::state::{Digest, MembershipProof, NodeId, Replica};

/// An in-memory replica (opaque).
#[allow(non_camel_case_types)]
pub struct bhs_replica {
    inner: Mutex<Replica>,
}

fn now_hlc() -> u64 {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    millis << 16
}

/// Borrows the replica behind a host pointer and locks it.
///
/// # Safety
/// `replica` is NULL or a live handle from `bhs_replica_new`.
unsafe fn lock<'a>(replica: *const bhs_replica) -> Result<MutexGuard<'a, Replica>, FfiError> {
    // SAFETY: the caller passes NULL or a live handle.
    let handle = unsafe { replica.as_ref() }.ok_or_else(|| FfiError::invalid("replica is NULL"))?;
    handle.inner.lock().map_err(|_| FfiError::internal("replica is unusable after an earlier internal error: free it"))
}

/// Writes `out` through a host out-pointer, checked for NULL first.
///
/// # Safety
/// `out` is NULL or valid for a write of `T`.
unsafe fn write_out<T>(out: *mut T, value: T) -> Result<(), FfiError> {
    if out.is_null() {
        return Err(FfiError::invalid("output pointer is NULL"));
    }
    // SAFETY: checked non-NULL; the caller guarantees it is writable.
    unsafe { out.write(value) };
    Ok(())
}

/// Creates an empty replica that writes as `origin` (32 bytes, the node id) and splits
/// each category over `shards` shards (1 to 16; the shard count never changes a hash).
/// On success `*out` receives a handle that the caller releases with
/// `bhs_replica_free`. Does not keep `origin`.
///
/// # Safety
/// `origin` points to 32 readable bytes; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_new(origin: *const u8, shards: u32, out: *mut *mut bhs_replica) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let origin = NodeId(*unsafe { host_array::<32>(origin, "origin") }?);
        if out.is_null() {
            return Err(FfiError::invalid("output pointer is NULL"));
        }
        let replica = Replica::new(origin, shards as usize)?;
        let handle = Box::into_raw(Box::new(bhs_replica { inner: Mutex::new(replica) }));
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out, handle) }
    })
}

/// Releases a replica and everything it holds. Accepts NULL. The handle must not be in
/// use by another thread.
///
/// # Safety
/// `replica` is NULL or a handle from `bhs_replica_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_free(replica: *mut bhs_replica) {
    if !replica.is_null() {
        // SAFETY: the caller passes a live handle made by Box::into_raw.
        drop(unsafe { Box::from_raw(replica) });
    }
}

/// Stores `value` under `key` in `category` (created on first use). Keys are 0 to
/// `BHS_MAX_KEY_LEN` bytes, values 0 to `BHS_MAX_VALUE_LEN`; a pointer may be NULL only
/// when its length is 0. Over a bound: `BHS_INVALID_ARGUMENT` and nothing is stored.
/// Copies the bytes; keeps no pointer.
///
/// # Safety
/// Pointers follow the rules above and point to readable memory of the given lengths.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_put(
    replica: *mut bhs_replica,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key, value) = unsafe {
            (host_str(category, "category")?, host_bytes(key, key_len, "key")?, host_bytes(value, value_len, "value")?)
        };
        // SAFETY: forwarded caller contract.
        let mut replica = unsafe { lock(replica) }?;
        replica.put(category, key, value, now_hlc())?;
        Ok(())
    })
}

/// Copies the live value of `key` in `category` into `*out_value`, which the caller
/// releases with `bhs_buf_free`. `BHS_NOT_FOUND` when the key is absent or deleted
/// (`*out_value` is then left untouched).
///
/// # Safety
/// Pointers follow the rules of `bhs_replica_put`; `out_value` is writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_get(
    replica: *const bhs_replica,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    out_value: *mut bhs_buf,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { (host_str(category, "category")?, host_bytes(key, key_len, "key")?) };
        if out_value.is_null() {
            return Err(FfiError::invalid("out_value is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let replica = unsafe { lock(replica) }?;
        let entry = replica.get(category, key).ok_or_else(|| FfiError::not_found("no live value for this key"))?;
        let value = bhs_buf::from_vec(entry.value.to_vec());
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_value, value) }
    })
}

/// Deletes `key` from `category` by writing a tombstone (so the deletion synchronizes).
/// `BHS_NOT_FOUND` when there was no live value.
///
/// # Safety
/// Pointers follow the rules of `bhs_replica_put`.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_delete(
    replica: *mut bhs_replica,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { (host_str(category, "category")?, host_bytes(key, key_len, "key")?) };
        // SAFETY: forwarded caller contract.
        let mut replica = unsafe { lock(replica) }?;
        if replica.delete(category, key, now_hlc())? {
            Ok(())
        } else {
            Err(FfiError::not_found("no live value for this key"))
        }
    })
}

/// Writes 32 bytes to `out32`: the Merkle root of `category`, or, when `category` is
/// NULL, the overall state hash of the replica. An unknown category has the root of an
/// empty one (32 zero bytes).
///
/// # Safety
/// `category` is NULL or a NUL-terminated string; `out32` points to 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_state_hash(
    replica: *const bhs_replica,
    category: *const c_char,
    out32: *mut u8,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let replica = unsafe { lock(replica) }?;
        let hash = if category.is_null() {
            replica.state_hash()
        } else {
            // SAFETY: forwarded caller contract.
            replica.category_root(unsafe { host_str(category, "category") }?)
        };
        // SAFETY: forwarded caller contract; [u8; 32] has alignment 1.
        unsafe { write_out(out32.cast::<[u8; 32]>(), hash.0) }
    })
}

/// Produces a membership proof for the stored version of `key` (a tombstone included)
/// into `*out_proof`, which the caller releases with `bhs_buf_free`. It verifies with
/// `bhs_proof_verify` against the category root alone. `BHS_NOT_FOUND` when the key has
/// never been stored.
///
/// # Safety
/// Pointers follow the rules of `bhs_replica_put`; `out_proof` is writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_prove(
    replica: *const bhs_replica,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    out_proof: *mut bhs_buf,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (category, key) = unsafe { (host_str(category, "category")?, host_bytes(key, key_len, "key")?) };
        if out_proof.is_null() {
            return Err(FfiError::invalid("out_proof is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let replica = unsafe { lock(replica) }?;
        let proof = replica.prove(category, key).ok_or_else(|| FfiError::not_found("key was never stored"))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_proof, bhs_buf::from_vec(proof.encode())) }
    })
}

/// Checks that `key` with `value` is in the state of `category` whose root is `root32`,
/// using only the proof bytes. `BHS_OK` when it is; `BHS_PROOF_INVALID` when the proof is
/// well-formed but leads elsewhere (another value, key, category or root);
/// `BHS_INVALID_ARGUMENT` when the proof does not decode. Keeps no pointer.
///
/// # Safety
/// `root32` points to 32 readable bytes; other pointers follow `bhs_replica_put`'s rules.
#[no_mangle]
pub unsafe extern "C" fn bhs_proof_verify(
    root32: *const u8,
    category: *const c_char,
    key: *const u8,
    key_len: usize,
    value: *const u8,
    value_len: usize,
    proof: *const u8,
    proof_len: usize,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (root, category, key, value, proof) = unsafe {
            (
                Digest(*host_array::<32>(root32, "root")?),
                host_str(category, "category")?,
                host_bytes(key, key_len, "key")?,
                host_bytes(value, value_len, "value")?,
                host_bytes(proof, proof_len, "proof")?,
            )
        };
        MembershipProof::verify_encoded(proof, &root, category, key, value)?;
        Ok(())
    })
}

/// Synchronizes two replicas in process: each receives the versions it lacks, and
/// concurrent versions of a key resolve by last-writer-wins, so afterwards both have the
/// same state hash. `*out_transferred` (may be NULL) receives the number of versions
/// stored on either side. Safe to call from several threads; `a` and `b` may be equal.
///
/// # Safety
/// `a` and `b` are live handles; `out_transferred` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_replica_sync(
    a: *mut bhs_replica,
    b: *mut bhs_replica,
    out_transferred: *mut u64,
) -> bhs_status {
    guard(|| {
        if std::ptr::eq(a, b) {
            // SAFETY: forwarded caller contract; locking also checks for NULL.
            drop(unsafe { lock(a) }?);
            return write_optional(out_transferred, 0);
        }
        // Lock in address order so that two threads syncing the same pair in opposite
        // directions cannot deadlock.
        let (first, second) = if (a as usize) < (b as usize) { (a, b) } else { (b, a) };
        // SAFETY: forwarded caller contract.
        let (mut first, mut second) = unsafe { (lock(first)?, lock(second)?) };
        let outcome = first.sync_with(&mut second)?;
        write_optional(out_transferred, outcome.applied)
    })
}

fn write_optional(out: *mut u64, value: u64) -> Result<(), FfiError> {
    if !out.is_null() {
        // SAFETY: the caller passes NULL or a writable u64.
        unsafe { out.write(value) };
    }
    Ok(())
}
