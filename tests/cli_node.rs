//! `bhsync node` as an operator runs it: it prints where it listens, serves /health and
//! /metrics on its admin address, stops cleanly on SIGTERM and SIGINT (exit 0, lock
//! released), and comes back with the same identity from its data directory.
//!
//! Reproduce: `cargo run -- node --data-dir /tmp/n --admin 127.0.0.1:9100`, then
//! `cargo run -- status 127.0.0.1:9100` and Ctrl-C.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Running {
    child: Child,
    id: String,
    admin: String,
}

fn start(data_dir: &std::path::Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bhsync"))
        .args(["node", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn bhsync node");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("first line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(line.starts_with("bhsync node ") && words.len() == 8, "unexpected first line: {line:?}");
    Running { id: words[2].to_string(), admin: words[7].trim_start_matches("http://").to_string(), child }
}

fn get(admin: &str, path: &str) -> (String, String) {
    let mut stream = TcpStream::connect(admin).expect("connect admin");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    let (head, body) = response.split_once("\r\n\r\n").expect("head and body");
    (head.to_string(), body.to_string())
}

fn stop(running: Running, signal: i32) -> String {
    // SAFETY: sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(running.child.id() as i32, signal) }, 0);
    let output = running.child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(0), "signal {signal}: not a clean exit: {stderr}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_node_serves_health_and_metrics_and_stops_cleanly_on_signals() {
    let dir = std::env::temp_dir().join(format!("bhsync-cli-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let node = start(&dir);
    let (head, health) = get(&node.admin, "/health");
    assert!(head.starts_with("HTTP/1.1 200") && head.contains("application/json"), "{head}");
    assert!(health.starts_with('{') && health.ends_with('}'), "{health}");
    for field in [
        "\"status\":\"healthy\"",
        "\"warnings\":[]",
        "\"figures\":{",
        "\"sync_latency_ms\":{",
        "\"per_peer\":[",
        "\"thresholds\":{",
    ] {
        assert!(health.contains(field), "{field} missing from /health: {health}");
    }
    assert!(health.contains(&format!("\"node\":\"{}\"", node.id)), "{health}");
    let (head, metrics) = get(&node.admin, "/metrics");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(metrics.contains("# TYPE bhsync_sync_latency_seconds histogram"), "{metrics}");
    let (head, _) = get(&node.admin, "/elsewhere");
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    let status = Command::new(env!("CARGO_BIN_EXE_bhsync")).args(["status", &node.admin]).output().unwrap();
    assert!(status.status.success() && String::from_utf8_lossy(&status.stdout).contains("status healthy"));
    let id = node.id.clone();
    let stdout = stop(node, libc::SIGTERM);
    assert!(stdout.contains("stopped"), "{stdout}");

    // The lock was released and the identity kept: the same node starts again.
    let again = start(&dir);
    assert_eq!(again.id, id, "the identity did not survive the restart");
    stop(again, libc::SIGINT);
    let _ = std::fs::remove_dir_all(&dir);
}
