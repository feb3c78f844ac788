//! The stable C ABI (DESIGN.md §7), declared in `include/bhsync.h`, which cbindgen
//! generates from this module at build time.
//!
//! Conventions, after rustls-ffi and zstd.h: every name starts with `bhs_`; handles are
//! opaque, made by `_new` and released by `_free`, which accepts NULL; every fallible
//! function returns a `bhs_status` and writes its results through out-parameters only on
//! success; a thread-local message ([`error::bhs_last_error`]) holds the detail of the
//! last failure; memory handed to the host is released by the matching `bhs_*_free`.
//! Every entry point checks its pointers and catches panics. Enumerations arrive as
//! `uint32_t` and are validated, never transmuted. Struct sizes are asserted here and in
//! the C tests.

pub mod buf;
pub mod chain;
pub mod config;
pub mod error;
pub mod event;
pub mod metrics;
pub mod node;
pub mod replica;
pub mod resolver;
pub mod status;

#[cfg(test)]
mod header_check;

use std::ffi::{c_char, CStr};

/// The version of the C ABI: bumped on any incompatible change to `include/bhsync.h`.
pub const BHS_ABI_VERSION: u32 = 1;

/// The longest key, in bytes (keys of length 0 are allowed).
pub const BHS_MAX_KEY_LEN: usize = 1024;

/// The longest value, in bytes: 1 MiB (values of length 0 are allowed).
pub const BHS_MAX_VALUE_LEN: usize = 1048576;

/// The longest category name, in bytes (printable ASCII).
pub const BHS_MAX_CATEGORY_NAME_LEN: usize = 64;

/// The most shards a replica splits a category into.
pub const BHS_MAX_SHARDS: u32 = 16;

const _: () = assert!(BHS_MAX_KEY_LEN == crate::state::MAX_KEY_LEN);
const _: () = assert!(BHS_MAX_VALUE_LEN == crate::state::MAX_VALUE_LEN);
const _: () = assert!(BHS_MAX_CATEGORY_NAME_LEN == crate::state::category::MAX_CATEGORY_NAME_LEN);
const _: () = assert!(BHS_MAX_SHARDS as usize == crate::state::MAX_SHARDS);

/// The ABI version the library was built with; compare it with `BHS_ABI_VERSION` from
/// the header the host was compiled against. Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn bhs_abi_version() -> u32 {
    BHS_ABI_VERSION
}

/// The library version as a static NUL-terminated string (for example "0.1.0"). The
/// string is owned by the library and never freed. Thread-safe; never fails.
#[no_mangle]
pub extern "C" fn bhs_version() -> *const c_char {
    static VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");
    VERSION.as_ptr().cast()
}

/// Reads a borrowed byte slice from the host: `ptr` may be NULL only when `len` is 0.
///
/// # Safety
/// When `ptr` is not NULL it must point to `len` readable bytes that stay valid and
/// unmodified for the returned lifetime.
unsafe fn host_bytes<'a>(ptr: *const u8, len: usize, what: &str) -> Result<&'a [u8], error::FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(error::FfiError::invalid(format!("{what} is NULL but its length is {len}")));
    }
    if len > isize::MAX as usize {
        return Err(error::FfiError::invalid(format!("{what} length {len} is not a valid length")));
    }
    // SAFETY: checked non-NULL above; the caller guarantees `len` readable bytes.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Reads a borrowed NUL-terminated UTF-8 string from the host.
///
/// # Safety
/// When not NULL, `ptr` must point to a NUL-terminated string valid for the lifetime.
unsafe fn host_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str, error::FfiError> {
    if ptr.is_null() {
        return Err(error::FfiError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; the caller guarantees NUL termination.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|_| error::FfiError::invalid(format!("{what} is not valid UTF-8")))
}

/// Reads a borrowed fixed-size array from the host.
///
/// # Safety
/// When not NULL, `ptr` must point to `N` readable bytes.
unsafe fn host_array<'a, const N: usize>(ptr: *const u8, what: &str) -> Result<&'a [u8; N], error::FfiError> {
    if ptr.is_null() {
        return Err(error::FfiError::invalid(format!("{what} is NULL")));
    }
    // SAFETY: checked non-NULL; the caller guarantees N readable bytes; [u8; N] has
    // alignment 1.
    Ok(unsafe { &*ptr.cast::<[u8; N]>() })
}
