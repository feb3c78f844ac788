//! The configuration functions of the C ABI with arbitrary strings: `bhs_config_set`
//! and `bhs_config_add_category` never panic or crash, return a known status, and a
//! refused call leaves a message in `bhs_last_error`. The input is split at NUL bytes
//! into (key, value) pairs and (name, spec) pairs, as a host would pass C strings.
#![no_main]

use std::ffi::{CStr, CString};

use bhsync::ffi::config::{bhs_config_add_category, bhs_config_free, bhs_config_new, bhs_config_set};
use bhsync::ffi::error::bhs_last_error;
use bhsync::ffi::status::{BHS_INVALID_ARGUMENT, BHS_OK};
use libfuzzer_sys::fuzz_target;

/// Keys that reach the resolver or the filesystem are left out: a fuzzer should not
/// make DNS queries or create files. Everything else is fair game.
const SKIPPED_KEYS: [&str; 4] = ["peers", "listen", "data_dir", "identity_file"];

fuzz_target!(|data: &[u8]| {
    let parts: Vec<CString> = data.split(|&b| b == 0).map(|part| CString::new(part).unwrap()).collect();
    let mut config = std::ptr::null_mut();
    // SAFETY: every pointer passed is NULL or valid for the call.
    unsafe {
        assert_eq!(bhs_config_new(&mut config), BHS_OK);
        for (i, pair) in parts.chunks(2).enumerate() {
            let first = &pair[0];
            let second = pair.get(1).map_or(std::ptr::null(), |s| s.as_ptr());
            let status = if i % 2 == 0 {
                if SKIPPED_KEYS.iter().any(|k| k.as_bytes() == first.as_bytes()) {
                    continue;
                }
                bhs_config_set(config, first.as_ptr(), second)
            } else {
                bhs_config_add_category(config, first.as_ptr(), second)
            };
            assert!(status == BHS_OK || status == BHS_INVALID_ARGUMENT, "unexpected status {status}");
            if status != BHS_OK {
                assert!(!CStr::from_ptr(bhs_last_error()).to_bytes().is_empty());
            }
        }
        bhs_config_free(config);
    }
});
