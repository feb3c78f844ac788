//! `cargo bench --bench ffi_get -- [--calls N]` (also run by `make bench-ffi`).
//!
//! Issue 10's benchmark: the per-call cost of reading one value through the C ABI
//! (`bhs_get`) against the same read in Rust (`Node::get`). One node, in memory, mio
//! backend, 1 000 keys of 16 bytes with 100-byte values; each call reads the next key
//! round-robin. Reported: nanoseconds per call (median of 5 runs of N calls) for
//! `Node::get`, for `bhs_get` called from Rust through its `extern "C"` symbol, and the
//! ratio. Both cross to the node's engine thread and back (a command and a wake-up);
//! the C ABI adds the string and pointer checks, the panic guard and a copy into a
//! `bhs_buf`. The C and C++ timing programs (benches/ffi/get_c.c, get_cpp.cpp) read
//! the Rust figure this writes to `build/ffi_get_rust_ns` and print their ratio to it.

use std::ffi::CString;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bhsync::engine::io::BackendChoice;
use bhsync::ffi::buf::{bhs_buf, bhs_buf_free};
use bhsync::ffi::config::{bhs_config_free, bhs_config_new, bhs_config_set};
use bhsync::ffi::node::{bhs_get, bhs_node_close, bhs_node_open, bhs_put};
use bhsync::node::{Node, NodeConfig};

const KEYS: usize = 1_000;
const RUNS: usize = 5;

fn key(i: usize) -> Vec<u8> {
    format!("key-{i:012}").into_bytes()
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn time_calls(calls: usize, mut call: impl FnMut(usize)) -> f64 {
    let runs = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            for i in 0..calls {
                call(i % KEYS);
            }
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect();
    median(runs)
}

fn rust_ns_per_get(calls: usize) -> f64 {
    let config = NodeConfig { io_backend: BackendChoice::Mio, ..NodeConfig::default() };
    let node = Node::open(config).expect("a node opens on loopback");
    for i in 0..KEYS {
        node.put("default", &key(i), &[7u8; 100]).expect("put");
    }
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    let ns = time_calls(calls, |i| {
        black_box(node.get("default", &keys[i]).expect("get").expect("present"));
    });
    node.close().expect("close");
    ns
}

fn ffi_ns_per_get(calls: usize) -> f64 {
    let default = CString::new("default").unwrap();
    let keys: Vec<Vec<u8>> = (0..KEYS).map(key).collect();
    // SAFETY: every pointer passed below is valid for the call, as the C ABI requires.
    unsafe {
        let mut config = std::ptr::null_mut();
        assert_eq!(bhs_config_new(&mut config), 0);
        let (io_key, mio) = (CString::new("io_backend").unwrap(), CString::new("mio").unwrap());
        assert_eq!(bhs_config_set(config, io_key.as_ptr(), mio.as_ptr()), 0);
        let mut node = std::ptr::null_mut();
        assert_eq!(bhs_node_open(config, &mut node), 0);
        bhs_config_free(config);
        let value = [7u8; 100];
        for k in &keys {
            assert_eq!(bhs_put(node, default.as_ptr(), k.as_ptr(), k.len(), value.as_ptr(), value.len()), 0);
        }
        let ns = time_calls(calls, |i| {
            let mut buf = bhs_buf { data: std::ptr::null_mut(), len: 0, reserved: 0 };
            let status = bhs_get(node, default.as_ptr(), keys[i].as_ptr(), keys[i].len(), &mut buf);
            assert_eq!(status, 0);
            black_box(buf.len);
            bhs_buf_free(&mut buf);
        });
        assert_eq!(bhs_node_close(node), 0);
        ns
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes --bench; `cargo test` runs this as a quick smoke test.
    let mut calls = if args.iter().any(|a| a == "--bench") { 100_000usize } else { 2_000 };
    if let Some(i) = args.iter().position(|a| a == "--calls") {
        calls = args.get(i + 1).and_then(|n| n.parse().ok()).unwrap_or(calls);
    }
    // Warm-up: thread start, allocator, caches.
    let _ = rust_ns_per_get(calls / 10 + 1);
    let rust = rust_ns_per_get(calls);
    let ffi = ffi_ns_per_get(calls);
    println!("ffi_get: {calls} calls x {RUNS} runs, median ns/call");
    println!("  rust Node::get          {rust:10.0} ns/call  1.00x");
    println!("  rust -> bhs_get (C ABI) {ffi:10.0} ns/call  {:.2}x", ffi / rust);
    let _ = std::fs::create_dir_all("build");
    let _ = std::fs::write("build/ffi_get_rust_ns", format!("{rust:.0}\n"));
    std::thread::sleep(Duration::from_millis(10));
}
