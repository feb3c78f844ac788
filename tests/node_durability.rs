//! A node with a data directory keeps exactly what it acknowledged: after a clean close
//! and, in a separate process, after SIGKILL at random moments.
//!
//! The crash test re-executes this test binary in "writer mode" (the environment variable
//! `BHSYNC_NODE_WRITER` names the data directory): the child opens a node, writes, and
//! prints each key once `put` returned; the parent kills it with SIGKILL after a seeded
//! random delay, reopens the directory and checks every printed key. `BHSYNC_NODE_CRASH_ROUNDS`
//! sets the rounds (default 8); a failure prints the round's seed.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bhsync::node::{Node, NodeConfig};
use bhsync::state::{CategorySpec, MergeRule};

const WRITER_ENV: &str = "BHSYNC_NODE_WRITER";

fn config(dir: &Path) -> NodeConfig {
    NodeConfig {
        data_dir: Some(dir.to_path_buf()),
        categories: vec![
            ("users".into(), CategorySpec::default()),
            ("counters".into(), CategorySpec { merge: MergeRule::Crdt, ..CategorySpec::default() }),
        ],
        ..NodeConfig::default()
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bhsync-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn a_reopened_node_has_exactly_its_acknowledged_state() {
    let dir = temp_dir("reopen");
    let node = Node::open(config(&dir)).expect("open");
    let id = node.id();
    for n in 0..300 {
        node.put("users", format!("key{n}").as_bytes(), format!("value{n}").as_bytes()).expect("put");
    }
    for n in (0..300).step_by(7) {
        node.delete("users", format!("key{n}").as_bytes()).expect("delete");
    }
    node.counter_add("counters", b"visits", 41).expect("counter");
    node.counter_add("counters", b"visits", 1).expect("counter");
    let before = node.state_hash().expect("hash");
    node.close().expect("close");

    let node = Node::open(config(&dir)).expect("reopen");
    assert_eq!(node.id(), id, "the identity key is kept in the data directory");
    assert_eq!(node.state_hash().expect("hash"), before, "the reopened state differs");
    assert_eq!(node.get("users", b"key1").expect("get").as_deref(), Some(&b"value1"[..]));
    assert_eq!(node.get("users", b"key7").expect("get"), None, "a deletion was lost");
    assert_eq!(node.counter_get("counters", b"visits").expect("counter"), 42);
    // Writes after the restart are newer than the writes before it.
    node.put("users", b"key1", b"after").expect("put");
    assert_eq!(node.get("users", b"key1").expect("get").as_deref(), Some(&b"after"[..]));
    node.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_second_node_cannot_open_a_directory_in_use() {
    let dir = temp_dir("locked");
    let node = Node::open(config(&dir)).expect("open");
    let error = Node::open(config(&dir)).err().expect("a second node on the same directory is refused");
    assert!(error.to_string().contains("in use by another node"), "unclear error: {error}");
    node.close().expect("close");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Writer mode: runs in the child process until killed.
fn writer(dir: &str) {
    let node = Node::open(config(Path::new(dir))).expect("writer opens");
    let stdout = std::io::stdout();
    for n in 0u64.. {
        let key = format!("crash-{}-{n}", std::process::id());
        node.put("users", key.as_bytes(), &n.to_le_bytes()).expect("put");
        let mut out = stdout.lock();
        let _ = writeln!(out, "{key}");
        let _ = out.flush();
    }
}

#[test]
fn every_acknowledged_write_survives_sigkill() {
    if let Ok(dir) = std::env::var(WRITER_ENV) {
        writer(&dir);
        return;
    }
    let rounds: u64 = std::env::var("BHSYNC_NODE_CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(8);
    let dir = temp_dir("crash");
    let mut acknowledged = BTreeSet::new();
    let mut seed = 0x5eed_u64;
    for round in 0..rounds {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = Duration::from_millis(150 + (seed >> 33) % 400);
        acknowledged.extend(run_and_kill(&dir, delay));
        let node =
            Node::open(config(&dir)).unwrap_or_else(|e| panic!("round {round} (seed {seed:#x}): reopen failed: {e}"));
        for key in &acknowledged {
            let value = node.get("users", key.as_bytes()).expect("get");
            assert!(value.is_some(), "round {round} (seed {seed:#x}): acknowledged {key} lost after SIGKILL");
        }
        node.close().expect("close");
    }
    assert!(acknowledged.len() as u64 > rounds, "the writer acknowledged too little to test anything");
    eprintln!("{} acknowledged writes survived {rounds} SIGKILLs", acknowledged.len());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Starts a writer child on `dir`, kills it after `delay`, returns the keys it printed.
fn run_and_kill(dir: &Path, delay: Duration) -> Vec<String> {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args(["--exact", "every_acknowledged_write_survives_sigkill", "--nocapture", "--test-threads=1"])
        .env(WRITER_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.starts_with("crash-"))
            .collect::<Vec<_>>()
    });
    let start = Instant::now();
    while start.elapsed() < delay {
        std::thread::sleep(Duration::from_millis(10));
    }
    // SIGKILL: no destructor, no snapshot, no goodbye.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGKILL);
    }
    let _ = child.wait();
    reader.join().expect("reader")
}
