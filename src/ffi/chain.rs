//! The chain category through C (issue 16): append transactions as a block signed by
//! the node, read the head, read a block of the main chain. A node runs at most one
//! chain category, and only with a data directory (`bhs_node_open` refuses otherwise).

use std::ffi::c_char;

use super::buf::bhs_buf;
use super::error::{guard, FfiError};
use super::node::{bhs_node, running, write_out};
use super::status::bhs_status;
use super::{host_bytes, host_str};

/// Transactions in one block at most (the chain's limit; each at most
/// `BHS_MAX_TRANSACTION_LEN` bytes, the encoded block at most 4 MiB).
pub const BHS_MAX_BLOCK_TRANSACTIONS: usize = 10_000;
/// Bytes of one transaction at most.
pub const BHS_MAX_TRANSACTION_LEN: usize = 65_536;

const _: () = assert!(BHS_MAX_BLOCK_TRANSACTIONS == crate::chain::BlockLimits::DEFAULT.transactions_max as usize);
const _: () = assert!(BHS_MAX_TRANSACTION_LEN == crate::chain::BlockLimits::DEFAULT.transaction_bytes_max as usize);

/// Appends `count` transactions (`transactions[i]`, `lengths[i]` bytes each) to the
/// chain category `category` as one block signed by this node, on its current head.
/// Returns once the block is durable; writes its height to `*out_height` and its
/// 32-byte id to `out_id32` (each may be NULL). Peers learn it by the chain's sync; fork
/// choice keeps the highest chain (ties: the lowest head id), so a block appended on a
/// losing branch may later leave the main chain. `BHS_INVALID_ARGUMENT` over the
/// limits or for a category that is not the node's chain (nothing appended);
/// `BHS_IO` when the block could not be made durable (the node then stops). Copies
/// the bytes; keeps no pointer; thread-safe.
///
/// # Safety
/// `node` is NULL or live; `category` NULL or NUL-terminated; `transactions` and
/// `lengths` NULL or `count` readable entries (NULL only when `count` is 0), each
/// transaction NULL only when its length is 0; `out_height` NULL or writable;
/// `out_id32` NULL or 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn bhs_chain_append(
    node: *mut bhs_node,
    category: *const c_char,
    transactions: *const *const u8,
    lengths: *const usize,
    count: usize,
    out_height: *mut u64,
    out_id32: *mut u8,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let category = unsafe { host_str(category, "category") }?;
        // SAFETY: forwarded caller contract.
        let transactions = unsafe { host_transactions(transactions, lengths, count) }?;
        // SAFETY: forwarded caller contract.
        let (height, id) = unsafe { running(node) }?.node.chain_append(category, transactions)?;
        // SAFETY: forwarded caller contract.
        unsafe { write_head(height, &id, out_height, out_id32) };
        Ok(())
    })
}

/// Writes the head of the chain category `category`: its height to `*out_height` and
/// its 32-byte id to `out_id32` (each may be NULL). `BHS_INVALID_ARGUMENT` for a
/// category that is not the node's chain. Thread-safe.
///
/// # Safety
/// As for `bhs_chain_append`.
#[no_mangle]
pub unsafe extern "C" fn bhs_chain_head(
    node: *const bhs_node,
    category: *const c_char,
    out_height: *mut u64,
    out_id32: *mut u8,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let category = unsafe { host_str(category, "category") }?;
        // SAFETY: forwarded caller contract.
        let (height, id) = unsafe { running(node) }?.node.chain_head(category)?;
        // SAFETY: forwarded caller contract.
        unsafe { write_head(height, &id, out_height, out_id32) };
        Ok(())
    })
}

/// Copies the encoded block at `height` of the main chain of `category` (genesis at 0)
/// into `*out_block`, released with `bhs_buf_free`. The encoding: a 176-byte header
/// (height, timestamp ms, parent id, transactions' Merkle root, proposer key, Ed25519
/// signature; little endian), a u32 transaction count, then each transaction as a u32
/// length and its bytes. `BHS_NOT_FOUND` above the head (`*out_block` untouched);
/// `BHS_INVALID_ARGUMENT` for a category that is not the node's chain. Thread-safe.
///
/// # Safety
/// `node` is NULL or live; `category` NULL or NUL-terminated; `out_block` NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_chain_block(
    node: *const bhs_node,
    category: *const c_char,
    height: u64,
    out_block: *mut bhs_buf,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let category = unsafe { host_str(category, "category") }?;
        if out_block.is_null() {
            return Err(FfiError::invalid("out_block is NULL"));
        }
        // SAFETY: forwarded caller contract.
        let block = unsafe { running(node) }?.node.chain_block(category, height)?;
        let block = block.ok_or_else(|| FfiError::not_found(format!("no block at height {height}")))?;
        // SAFETY: checked non-NULL above.
        unsafe { write_out(out_block, bhs_buf::from_vec(block), "out_block") }
    })
}

/// Writes a block's height and id to the host's optional outputs.
///
/// # Safety
/// `out_height` is NULL or a writable u64; `out_id32` NULL or 32 writable bytes.
unsafe fn write_head(height: u64, id: &[u8; 32], out_height: *mut u64, out_id32: *mut u8) {
    if !out_height.is_null() {
        // SAFETY: the caller passes NULL or a writable u64.
        unsafe { out_height.write(height) };
    }
    if !out_id32.is_null() {
        // SAFETY: the caller passes NULL or 32 writable bytes.
        unsafe { std::ptr::copy_nonoverlapping(id.as_ptr(), out_id32, 32) };
    }
}

/// Reads the host's transactions, refusing counts and lengths over the chain's limits
/// before any byte is read.
///
/// # Safety
/// As for `bhs_chain_append`.
unsafe fn host_transactions(
    transactions: *const *const u8,
    lengths: *const usize,
    count: usize,
) -> Result<Vec<Vec<u8>>, FfiError> {
    if count > BHS_MAX_BLOCK_TRANSACTIONS {
        return Err(FfiError::invalid(format!("{count} transactions exceed BHS_MAX_BLOCK_TRANSACTIONS")));
    }
    if count == 0 {
        return Ok(Vec::new());
    }
    if transactions.is_null() || lengths.is_null() {
        return Err(FfiError::invalid("transactions or lengths is NULL but count is not 0"));
    }
    // SAFETY: both checked non-NULL; the caller guarantees `count` readable entries.
    let (pointers, lengths) =
        unsafe { (std::slice::from_raw_parts(transactions, count), std::slice::from_raw_parts(lengths, count)) };
    let mut out = Vec::with_capacity(count);
    for (index, (&pointer, &len)) in pointers.iter().zip(lengths).enumerate() {
        if len > BHS_MAX_TRANSACTION_LEN {
            return Err(FfiError::invalid(format!("transaction {index}: {len} bytes exceed BHS_MAX_TRANSACTION_LEN")));
        }
        // SAFETY: forwarded caller contract; the length is bounded above.
        out.push(unsafe { host_bytes(pointer, len, "transaction") }?.to_vec());
    }
    Ok(out)
}
