//! `cargo bench --bench storage -- [--json] [--seconds S] [--recovery-mb M] [--blocks N]
//! [--only commit|recovery|chain]`
//!
//! The durable log and chain sync against raw baselines measured in the same run on
//! the same disk (issue 7):
//! - `fdatasync_raw`: one thread, `pwrite` of 100 bytes + `fdatasync`, in a loop: the
//!   disk's sync rate, the ceiling of any scheme that syncs every write alone;
//! - `group_commit`: 64 threads calling `Log::append` (100-byte payloads) for S
//!   seconds, plain syscalls and io_uring: acknowledged writes per second, and that
//!   rate divided by the raw sync rate measured just before in the same run (goal:
//!   ≥ 20 acknowledged writes per fdatasync), and the records each real sync carried;
//! - `recovery`: reopening a log of M MiB (1 KiB records): verification and replay,
//!   reported in seconds per GiB, with the page cache dropped for the segments
//!   (`posix_fadvise(DONTNEED)`) and warm;
//! - `chain_sync`: a node syncing N blocks (2 transactions of 100 bytes each) from
//!   another through the encoded messages, validating every block (Ed25519) and
//!   persisting them in its log, against copying the same bytes file to file with a
//!   final sync.
//!
//! Medians of 3 runs where a run is cheap. Under `cargo test` (no `--bench`) a
//! smoke version runs in about a second.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bhsync::chain::{respond, Block, Chain, ChainRules, SyncConfig, SyncMessage, SyncSession};
use bhsync::state::NodeId;
use bhsync::storage::{IoBackend, Log, LogConfig};
use ed25519_dalek::SigningKey;

struct Options {
    json: bool,
    seconds: f64,
    runs: usize,
    recovery_mb: u64,
    blocks: u64,
    only: Option<String>,
}

fn options() -> Options {
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = if benching {
        Options { json: false, seconds: 2.0, runs: 3, recovery_mb: 512, blocks: 100_000, only: None }
    } else {
        Options { json: false, seconds: 0.1, runs: 1, recovery_mb: 4, blocks: 300, only: None }
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse::<f64>().ok());
        match arg.as_str() {
            "--json" => options.json = true,
            "--only" => options.only = args.next(),
            "--seconds" => options.seconds = value().unwrap_or(options.seconds),
            "--recovery-mb" => options.recovery_mb = value().map_or(options.recovery_mb, |v| v as u64),
            "--blocks" => options.blocks = value().map_or(options.blocks, |v| v as u64),
            _ => {} // cargo bench passes --bench; ignore what is not ours.
        }
    }
    options
}

struct Row {
    scenario: String,
    fields: Vec<(&'static str, f64)>,
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(|a, b| a.total_cmp(b));
    samples[samples.len() / 2]
}

fn scratch(name: &str) -> PathBuf {
    let base = std::env::var_os("BHSYNC_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let path = base.join(format!("bhsync-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&path);
    std::fs::create_dir_all(&path).expect("scratch directory");
    path
}

/// Raw `pwrite` + `fdatasync` of 100 bytes, one thread, for `seconds`: syncs per second.
fn fdatasync_rate(dir: &Path, seconds: f64) -> f64 {
    let file = OpenOptions::new().create(true).write(true).truncate(true).open(dir.join("raw")).expect("raw file");
    let payload = [0x5a; 100];
    let (start, mut syncs) = (Instant::now(), 0u64);
    while start.elapsed().as_secs_f64() < seconds {
        file.write_all_at(&payload, syncs * 100).expect("pwrite");
        // SAFETY: a plain system call on a descriptor we own.
        assert_eq!(unsafe { libc::fdatasync(file.as_raw_fd()) }, 0, "fdatasync");
        syncs += 1;
    }
    syncs as f64 / start.elapsed().as_secs_f64()
}

/// 64 writers appending for `seconds`: (acknowledged per second, records per sync, uring in use).
fn group_commit(dir: &Path, io: IoBackend, seconds: f64) -> (f64, f64, bool) {
    let _ = std::fs::remove_dir_all(dir);
    let (log, _) = Log::open(dir, LogConfig { io, ..LogConfig::default() }).expect("open");
    let (stop, acked) = (AtomicBool::new(false), AtomicU64::new(0));
    let start = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..64 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    log.append(&[0xa5; 100]).expect("append");
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let stats = log.stats();
    (acked.load(Ordering::Relaxed) as f64 / elapsed, stats.records_durable as f64 / stats.syncs as f64, stats.uring)
}

fn group_commit_rows(options: &Options, rows: &mut Vec<Row>) {
    // The disk is shared and noisy: each run measures the raw rate right before the
    // group-commit runs it is compared with, and ratios are taken per run.
    let dir = scratch("commit");
    let mut raws = Vec::new();
    let mut runs: [Vec<(f64, f64, bool, f64)>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..options.runs {
        let raw = fdatasync_rate(&dir, options.seconds / 2.0);
        raws.push(raw);
        for (slot, io) in [IoBackend::Plain, IoBackend::Uring].into_iter().enumerate() {
            let (acked, per_sync, uring) = group_commit(&dir.join(format!("{slot}")), io, options.seconds);
            runs[slot].push((acked, per_sync, uring, acked / raw));
        }
    }
    let raw = median(raws);
    rows.push(Row { scenario: "fdatasync_raw".into(), fields: vec![("syncs_per_s", raw)] });
    for (slot, name) in ["plain", "io_uring"].into_iter().enumerate() {
        let runs = &runs[slot];
        let uring = runs.iter().all(|r| r.2);
        let fell_back = if slot == 1 && !uring { "_fell_back" } else { "" };
        rows.push(Row {
            scenario: format!("group_commit_{name}{fell_back}"),
            fields: vec![
                ("writers", 64.0),
                ("acked_per_s", median(runs.iter().map(|r| r.0).collect())),
                ("raw_syncs_per_s", raw),
                ("acked_per_raw_sync", median(runs.iter().map(|r| r.3).collect())),
                ("records_per_sync", median(runs.iter().map(|r| r.1).collect())),
            ],
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Evicts the log's segments from the page cache, so recovery reads the disk.
fn drop_cache(dir: &Path) {
    for entry in std::fs::read_dir(dir.join("log")).expect("log dir").flatten() {
        if let Ok(file) = std::fs::File::open(entry.path()) {
            // SAFETY: advisory system call on a descriptor we own.
            unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        }
    }
}

fn recovery_rows(options: &Options, rows: &mut Vec<Row>) {
    let dir = scratch("recovery");
    let total = options.recovery_mb << 20;
    {
        let (log, _) = Log::open(&dir, LogConfig::default()).expect("open");
        let record = vec![0x3c; 1024 - 56];
        let batch: Vec<&[u8]> = (0..1024).map(|_| record.as_slice()).collect();
        while log.stats().bytes_durable < total {
            log.append_batch(&batch).expect("append");
        }
    }
    let bytes = std::fs::read_dir(dir.join("log"))
        .expect("log")
        .flatten()
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum::<u64>();
    for (scenario, cold) in [("recovery_cold", true), ("recovery_warm", false)] {
        let samples = (0..options.runs)
            .map(|_| {
                if cold {
                    drop_cache(&dir);
                }
                let start = Instant::now();
                let (_log, recovery) = Log::open(&dir, LogConfig::default()).expect("recover");
                let seconds = start.elapsed().as_secs_f64();
                assert_eq!(recovery.bytes_verified, bytes, "every byte verified");
                seconds
            })
            .collect();
        let seconds = median(samples);
        let gib = bytes as f64 / (1u64 << 30) as f64;
        rows.push(Row {
            scenario: scenario.into(),
            fields: vec![
                ("log_mib", bytes as f64 / (1 << 20) as f64),
                ("seconds", seconds),
                ("seconds_per_gib", seconds / gib),
            ],
        });
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn make_chain(blocks: u64) -> (Block, Chain) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let genesis = Block::create(None, vec![], 0, &key);
    let mut chain = Chain::new(genesis.clone(), ChainRules::default());
    for height in 1..=blocks {
        let transactions = vec![height.to_le_bytes().repeat(13)[..100].to_vec(), vec![height as u8; 100]];
        let block = Block::create(Some(&chain.head().header), transactions, height * 1_000, &key);
        chain.insert(block, u64::MAX / 2).expect("valid");
    }
    (genesis, chain)
}

/// Syncs a fresh node from `remote` through encoded messages; returns (seconds, block bytes moved).
fn sync_once(genesis: &Block, remote: &Chain, dir: &Path) -> (f64, u64) {
    let _ = std::fs::remove_dir_all(dir);
    let (log, _) = Log::open(dir, LogConfig::default()).expect("open");
    let mut local = Chain::new(genesis.clone(), ChainRules::default());
    let peer = NodeId([1; 32]);
    let mut session = SyncSession::new(SyncConfig::default(), vec![peer]);
    let mut block_bytes = 0u64;
    let start = Instant::now();
    session.start(&local);
    while let Some((_, request)) = session.poll_transmit() {
        let request = SyncMessage::decode(&request.to_bytes(), local.limits()).expect("request");
        let Ok(Some(reply)) = respond(remote, &request) else { continue };
        let bytes = reply.to_bytes();
        if let SyncMessage::Blocks { blocks, .. } = &reply {
            block_bytes += blocks.iter().map(|b| b.encoded_len() as u64).sum::<u64>();
        }
        session.handle_bytes(&mut local, u64::MAX / 2, peer, &bytes);
        local.persist(&log).expect("persist");
    }
    let seconds = start.elapsed().as_secs_f64();
    assert!(session.is_done() && local.head().id() == remote.head().id(), "the sync completed");
    (seconds, block_bytes)
}

/// Copies `bytes` bytes file to file and syncs the copy: seconds.
fn copy_once(dir: &Path, source: &Path) -> f64 {
    let target = dir.join("copy");
    let _ = std::fs::remove_file(&target);
    let start = Instant::now();
    std::fs::copy(source, &target).expect("copy");
    std::fs::File::open(&target).and_then(|f| f.sync_all()).expect("sync");
    start.elapsed().as_secs_f64()
}

fn chain_rows(options: &Options, rows: &mut Vec<Row>) {
    let dir = scratch("chain");
    let build = Instant::now();
    let (genesis, remote) = make_chain(options.blocks);
    let build_seconds = build.elapsed().as_secs_f64();
    let (seconds, bytes) = sync_once(&genesis, &remote, &dir.join("node"));
    let source = dir.join("blocks");
    let mut all = Vec::with_capacity(bytes as usize);
    (1..=options.blocks).for_each(|h| remote.block_by_height(h).expect("block").encode(&mut all));
    std::fs::write(&source, &all).expect("source file");
    let copy = median((0..options.runs).map(|_| copy_once(&dir, &source)).collect());
    rows.push(Row {
        scenario: "chain_sync".into(),
        fields: vec![
            ("blocks", options.blocks as f64),
            ("mib", bytes as f64 / (1 << 20) as f64),
            ("seconds", seconds),
            ("blocks_per_s", options.blocks as f64 / seconds),
            ("copy_seconds", copy),
            ("ratio_vs_copy", seconds / copy),
            ("build_seconds", build_seconds),
        ],
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn print(rows: &[Row], json: bool) {
    for row in rows {
        if json {
            let fields: Vec<String> = row.fields.iter().map(|(k, v)| format!("\"{k}\":{}", json_number(*v))).collect();
            println!("{{\"bench\":\"storage\",\"scenario\":\"{}\",{}}}", row.scenario, fields.join(","));
        } else {
            let fields: Vec<String> = row.fields.iter().map(|(k, v)| format!("{k} {v:.2}")).collect();
            println!("{:<26} {}", row.scenario, fields.join("  "));
        }
    }
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "null".to_owned()
    }
}

fn main() {
    let options = options();
    let mut rows = Vec::new();
    let wanted = |name: &str| options.only.as_deref().map_or(true, |only| only == name);
    if wanted("commit") {
        group_commit_rows(&options, &mut rows);
    }
    if wanted("recovery") {
        recovery_rows(&options, &mut rows);
    }
    if wanted("chain") {
        chain_rows(&options, &mut rows);
    }
    print(&rows, options.json);
}
