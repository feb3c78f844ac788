//! The committed `include/bhsync.h` must equal the header that the pinned cbindgen
//! generates from this source (DESIGN.md §7). Run `make header` after changing src/ffi.

#[test]
fn committed_header_matches_the_generated_one() {
    let generated = include_str!(concat!(env!("OUT_DIR"), "/bhsync.h"));
    let committed = include_str!("../../include/bhsync.h");
    assert!(generated == committed, "include/bhsync.h is stale: run `make header` and commit the result");
}
