//! Errors at the C boundary: a status code plus a thread-local message, and the guard
//! that every entry point runs in (it catches panics and records the message).

use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::status::{
    bhs_status, BHS_BUSY, BHS_CLOSED, BHS_INTERNAL, BHS_INVALID_ARGUMENT, BHS_IO, BHS_NOT_FOUND, BHS_OK,
    BHS_PROOF_INVALID, BHS_TIMEOUT, BHS_WRONG_MERGE_RULE, BHS_NOT_LEADER, BHS_READ_ONLY, BHS_INDETERMINATE,
    BHS_WRONG_MODE,
};
use crate::node::NodeError;
use crate::state::StateError;

/// A failure to report to the host.
#[derive(Debug)]
pub struct FfiError {
    status: bhs_status,
    message: String,
}

impl FfiError {
    /// An invalid-argument failure.
    pub fn invalid(message: impl Into<String>) -> Self {
        FfiError { status: BHS_INVALID_ARGUMENT, message: message.into() }
    }

    /// A not-found failure.
    pub fn not_found(message: impl Into<String>) -> Self {
        FfiError { status: BHS_NOT_FOUND, message: message.into() }
    }

    /// A failure with any status.
    pub fn with_status(status: bhs_status, message: impl Into<String>) -> Self {
        FfiError { status, message: message.into() }
    }

    /// An internal failure.
    pub fn internal(message: impl Into<String>) -> Self {
        FfiError { status: BHS_INTERNAL, message: message.into() }
    }
}

impl From<StateError> for FfiError {
    fn from(error: StateError) -> Self {
        let status = match error {
            StateError::ProofMismatch => BHS_PROOF_INVALID,
            StateError::UnknownCategory(_) => BHS_NOT_FOUND,
            _ => BHS_INVALID_ARGUMENT,
        };
        FfiError { status, message: error.to_string() }
    }
}

impl From<NodeError> for FfiError {
    fn from(error: NodeError) -> Self {
        let status = match &error {
            // A category the node was not configured with is a mistake in the call, not
            // an absent key: BHS_NOT_FOUND stays unambiguous for `bhs_get`/`bhs_delete`.
            NodeError::UnknownCategory(_) => BHS_INVALID_ARGUMENT,
            NodeError::WrongMergeRule(_) => BHS_WRONG_MERGE_RULE,
            NodeError::Crdt(_) | NodeError::State(_) | NodeError::InvalidConfig(_) | NodeError::InvalidBlock(_) => {
                BHS_INVALID_ARGUMENT
            }
            NodeError::Io(_) | NodeError::Identity(_) => BHS_IO,
            NodeError::Busy => BHS_BUSY,
            NodeError::Closed => BHS_CLOSED,
            NodeError::Timeout => BHS_TIMEOUT,
            NodeError::Internal(_) => BHS_INTERNAL,
            NodeError::NotLeader { .. } => BHS_NOT_LEADER,
            NodeError::ReadOnly => BHS_READ_ONLY,
            NodeError::Indeterminate => BHS_INDETERMINATE,
            NodeError::WrongMode(_) => BHS_WRONG_MODE,
        };
        FfiError { status, message: error.to_string() }
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = text);
}

/// Runs `body`, turning its error or panic into a status and recording the message.
pub fn guard(body: impl FnOnce() -> Result<(), FfiError>) -> bhs_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => BHS_OK,
        Ok(Err(error)) => {
            set_last_error(&error.message);
            error.status
        }
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            set_last_error(&format!("internal error in bhsync (please report it): {detail}"));
            BHS_INTERNAL
        }
    }
}

/// The message of the last failed call on this thread ("" if none), NUL-terminated and
/// owned by the library: valid until the next failing `bhs_*` call on the same thread.
/// Never NULL; thread-safe (each thread has its own message).
#[no_mangle]
pub extern "C" fn bhs_last_error() -> *const c_char {
    LAST_ERROR.with(|slot| slot.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: bhs_last_error returns a valid NUL-terminated string.
        unsafe { CStr::from_ptr(bhs_last_error()) }.to_string_lossy().into_owned()
    }

    #[test]
    fn a_panic_becomes_an_internal_status_with_its_message() {
        let status = guard(|| panic!("boom"));
        assert_eq!(status, BHS_INTERNAL);
        assert!(last_error().contains("boom"));
    }

    #[test]
    fn an_error_sets_its_status_and_message_and_success_returns_ok() {
        assert_eq!(guard(|| Err(FfiError::not_found("no such key"))), BHS_NOT_FOUND);
        assert_eq!(last_error(), "no such key");
        assert_eq!(guard(|| Ok(())), BHS_OK);
        let proof_error: FfiError = StateError::ProofMismatch.into();
        assert_eq!(proof_error.status, BHS_PROOF_INVALID);
    }
}
