//! Bad input to the `bhsync` command: each case must end in one line on stderr that
//! names the problem and what to do, a non-zero exit code, and nothing overwritten.
//!
//! Reproduce one case by running the command line its assertion prints.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};

fn bhsync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bhsync")).args(args).output().expect("run bhsync")
}

/// Asserts exit `code` and a single stderr line containing every one of `needles`.
fn assert_one_line(args: &[&str], code: i32, needles: &[&str]) {
    let output = bhsync(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(output.status.code(), Some(code), "bhsync {}: exit code; stderr: {stderr}", args.join(" "));
    assert_eq!(lines.len(), 1, "bhsync {}: not one line: {stderr}", args.join(" "));
    assert!(lines[0].starts_with("bhsync: "), "{stderr}");
    for needle in needles {
        assert!(lines[0].contains(needle), "bhsync {}: {needle:?} missing from: {stderr}", args.join(" "));
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bhsync-cli-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn unknown_flags_name_the_flag_and_point_to_help() {
    assert_one_line(&["demo", "--bogus"], 2, &["--bogus", "--help"]);
    assert_one_line(&["node", "--listen", "not-an-address"], 2, &["not-an-address", "--help"]);
    assert_one_line(&["status"], 2, &["ADDR", "--help"]);
    assert_one_line(&["--log", "loud", "keygen", "--out", "/nonexistent/x"], 2, &["log level", "loud"]);
}

#[test]
fn an_unreadable_or_invalid_configuration_is_named_with_the_fix() {
    let dir = temp("config");
    let missing = dir.join("missing.toml");
    assert_one_line(
        &["node", "--config", missing.to_str().unwrap()],
        2,
        &["cannot read configuration", "missing.toml", "--config"],
    );
    let broken = dir.join("broken.toml");
    std::fs::write(&broken, "listen = \"127.0.0.1:0\"\npeers = [\"nowhere\"]\n").unwrap();
    assert_one_line(&["node", "--config", broken.to_str().unwrap()], 2, &["invalid configuration", "line 2"]);
    let typo = dir.join("typo.toml");
    std::fs::write(&typo, "lissten = \"127.0.0.1:0\"\n").unwrap();
    assert_one_line(&["node", "--config", typo.to_str().unwrap()], 2, &["unknown field `lissten`"]);
    let mode = dir.join("mode.toml");
    std::fs::write(&mode, "[[categories]]\nname = \"blocks\"\nmode = \"eventually\"\n").unwrap();
    assert_one_line(&["node", "--config", mode.to_str().unwrap()], 2, &["blocks", "eventually", "eventual, strong or chain"]);
    let partition = dir.join("partition.toml");
    std::fs::write(&partition, "[[categories]]\nname = \"users\"\npartition = \"read_only\"\n").unwrap();
    assert_one_line(
        &["node", "--config", partition.to_str().unwrap()],
        2,
        &["users", "read_only", "accept or read_only_in_minority"],
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_port_in_use_is_named_for_peers_and_for_admin() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap().to_string();
    assert_one_line(&["node", "--listen", &addr], 1, &["cannot listen on", &addr, "choose a free"]);
    assert_one_line(&["node", "--admin", &addr], 1, &["cannot listen on", &addr, "--admin", "address in use"]);
}

#[test]
fn a_locked_data_directory_is_refused_and_left_alone() {
    let dir = temp("locked");
    let lock = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("LOCK")).unwrap();
    // Another node holds the lock: the same exclusive flock `bhsync node` takes.
    use std::os::fd::AsRawFd;
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    assert_one_line(&["node", "--data-dir", dir.to_str().unwrap()], 1, &["in use by another node", "LOCK"]);
    assert!(!dir.join("identity.key").exists(), "a refused node must not write in the directory");
    drop(lock);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn no_permission_is_named_with_the_fix() {
    // /sys refuses new directories even to root (EPERM); elsewhere a read-only directory.
    let target = if PathBuf::from("/sys/kernel").exists() {
        PathBuf::from("/sys/bhsync-cli-test/data")
    } else {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp("readonly");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
        dir.join("data")
    };
    assert_one_line(
        &["node", "--data-dir", target.to_str().unwrap()],
        1,
        &["cannot create data directory", "--data-dir"],
    );
}

#[test]
fn keygen_never_overwrites_a_key() {
    let dir = temp("keygen");
    let key = dir.join("node.key");
    let first = bhsync(&["keygen", "--out", key.to_str().unwrap()]);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(String::from_utf8_lossy(&first.stdout).trim().len(), 64, "prints the node id in hex");
    let before = std::fs::read(&key).unwrap();
    assert_one_line(&["keygen", "--out", key.to_str().unwrap()], 1, &["already exists", "refusing to overwrite"]);
    assert_eq!(std::fs::read(&key).unwrap(), before, "the key was overwritten");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unwritable_report_fails_before_the_demo_runs() {
    assert_one_line(
        &["demo", "--quick", "--report", "/nonexistent-dir/report.html"],
        1,
        &["cannot write the report", "--report"],
    );
}

#[test]
fn status_of_an_address_where_nothing_listens_says_so() {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().to_string();
    assert_one_line(&["status", &addr], 1, &["cannot reach the admin endpoint", "--admin"]);
}
