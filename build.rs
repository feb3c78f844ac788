//! Generates the C header from `src/ffi` with the pinned cbindgen (Cargo.toml), into
//! `$OUT_DIR/bhsync.h`. A unit test compares it with the committed
//! `include/bhsync.h`; `make header` (BHSYNC_WRITE_HEADER=1) writes the committed copy.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-env-changed=BHSYNC_WRITE_HEADER");
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml is valid");
    // Only src/ffi is parsed (cbindgen follows its `mod` declarations from mod.rs), so no
    // type or constant of the Rust API leaks into the header.
    let builder = cbindgen::Builder::new().with_config(config).with_src(crate_dir.join("src/ffi/mod.rs"));
    let bindings = builder
        .generate()
        .expect("cbindgen can parse src/ffi");
    bindings.write_to_file(out_dir.join("bhsync.h"));
    if env::var_os("BHSYNC_WRITE_HEADER").is_some() {
        bindings.write_to_file(crate_dir.join("include/bhsync.h"));
    }
}
