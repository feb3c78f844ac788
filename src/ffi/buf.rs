//! `bhs_buf`: bytes the library hands to the host, released with `bhs_buf_free`.

use std::ptr;

/// Bytes owned by the library and lent to the host. Read `data[0..len]`; release with
/// `bhs_buf_free`, never with `free()`. `data` is NULL when `len` is 0. `reserved` is
/// zero and must not be changed.
#[repr(C)]
#[allow(non_camel_case_types)]
pub struct bhs_buf {
    /// The bytes (NULL when empty).
    pub data: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Reserved for future use; zero.
    pub reserved: u64,
}

const _: () = assert!(std::mem::size_of::<bhs_buf>() == 24 && std::mem::align_of::<bhs_buf>() == 8);

impl bhs_buf {
    /// Hands `bytes` to the host.
    pub fn from_vec(bytes: Vec<u8>) -> bhs_buf {
        if bytes.is_empty() {
            return bhs_buf { data: ptr::null_mut(), len: 0, reserved: 0 };
        }
        let boxed = bytes.into_boxed_slice();
        let len = boxed.len();
        bhs_buf { data: Box::into_raw(boxed).cast(), len, reserved: 0 }
    }
}

/// Releases the bytes of `buf` and resets it to empty, so a second call is harmless.
/// Accepts NULL and an empty buffer. Thread-safe for distinct buffers.
///
/// # Safety
/// `buf` is NULL or points to a `bhs_buf` filled by bhsync and not modified since.
#[no_mangle]
pub unsafe extern "C" fn bhs_buf_free(buf: *mut bhs_buf) {
    // SAFETY: the caller passes NULL or a valid bhs_buf.
    let Some(buf) = (unsafe { buf.as_mut() }) else { return };
    if !buf.data.is_null() && buf.len > 0 {
        // SAFETY: data and len came from `from_vec`'s boxed slice and were not changed.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(buf.data, buf.len)) });
    }
    buf.data = ptr::null_mut();
    buf.len = 0;
}

impl bhs_buf {
    /// Takes the bytes back from a buffer the library filled (the buffer is left empty).
    ///
    /// # Safety
    /// `self` was filled by the library (`from_vec`, `bhs_buf_copy`) and not modified.
    pub unsafe fn take(&mut self) -> Vec<u8> {
        if self.data.is_null() || self.len == 0 {
            return Vec::new();
        }
        // SAFETY: data and len came from `from_vec`'s boxed slice and were not changed.
        let boxed = unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.data, self.len)) };
        self.data = ptr::null_mut();
        self.len = 0;
        boxed.into_vec()
    }
}

/// Copies `len` bytes from `data` into a new library-owned buffer `*out`, released with
/// `bhs_buf_free` (or handed back to the library where a function says it takes a
/// `bhs_buf`, as `bhs_resolution.merged` does). `data` may be NULL only when `len` is 0;
/// `len` is at most `BHS_MAX_VALUE_LEN`. Thread-safe.
///
/// # Safety
/// `data` points to `len` readable bytes; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_buf_copy(data: *const u8, len: usize, out: *mut bhs_buf) -> super::status::bhs_status {
    super::error::guard(|| {
        if len > super::BHS_MAX_VALUE_LEN {
            return Err(super::error::FfiError::invalid(format!("len {len} exceeds BHS_MAX_VALUE_LEN")));
        }
        // SAFETY: forwarded caller contract.
        let bytes = unsafe { super::host_bytes(data, len, "data") }?;
        if out.is_null() {
            return Err(super::error::FfiError::invalid("out is NULL"));
        }
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(bhs_buf::from_vec(bytes.to_vec())) };
        Ok(())
    })
}
