//! Generates the C header from `src/ffi` with the pinned cbindgen (Cargo.toml), into
//! `$OUT_DIR/bhsync.h`. A unit test compares it with the committed
//! `include/bhsync.h`; `make header` (BHSYNC_WRITE_HEADER=1) writes the committed copy.
//!
//! It also names the shared library after the ABI it implements: the SONAME is
//! `libbhsync.so.N`, N being `BHS_ABI_VERSION` as the generated header defines it, so a
//! host linked against ABI N never loads a library of another ABI
//! (docs/adr/052-installed-library.md).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

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
    let header_path = out_dir.join("bhsync.h");
    bindings.write_to_file(&header_path);
    if env::var_os("BHSYNC_WRITE_HEADER").is_some() {
        bindings.write_to_file(crate_dir.join("include/bhsync.h"));
    }
    let abi_major = abi_version(&header_path);
    // ELF platforms only: the GNU and LLVM linkers both take -soname.
    if env::var("CARGO_CFG_TARGET_OS").is_ok_and(|os| os != "macos" && os != "ios" && os != "windows") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libbhsync.so.{abi_major}");
    }
}

/// `N` from the header's `#define BHS_ABI_VERSION N`: the header is the contract the
/// host compiles against, so its number is the one the SONAME must carry.
fn abi_version(header_path: &Path) -> u32 {
    let header = fs::read_to_string(header_path).expect("the generated header is readable");
    let value = header
        .lines()
        .find_map(|line| line.trim().strip_prefix("#define BHS_ABI_VERSION "))
        .expect("the generated header defines BHS_ABI_VERSION");
    let abi_major: u32 = value.trim().parse().expect("BHS_ABI_VERSION is a decimal integer");
    assert!(abi_major > 0, "BHS_ABI_VERSION must be positive, not {abi_major}");
    abi_major
}
