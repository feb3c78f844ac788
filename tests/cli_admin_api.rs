//! The admin data API of `bhsync node` (docs/adr/082-admin-data-api.md): with
//! `--admin-writes`, `POST /v1/put` writes and `GET /v1/get` reads (404 when absent,
//! percent-encoded keys, typed errors); without it both answer 403 and say which flag
//! turns them on.
//!
//! Reproduce: `cargo run -- node --admin 127.0.0.1:9100 --admin-writes`, then
//! `curl -X POST --data-binary v 'http://127.0.0.1:9100/v1/put?category=default&key=k'`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `bhsync node` child, killed when dropped (also when an assertion fails).
struct RunningNode {
    child: Child,
    admin: String,
    data_dir: std::path::PathBuf,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

fn start(name: &str, extra: &[&str]) -> RunningNode {
    let data_dir = std::env::temp_dir().join(format!("bhsync-cli-admin-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let mut child = Command::new(env!("CARGO_BIN_EXE_bhsync"))
        .args(["node", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--data-dir"])
        .arg(&data_dir)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn bhsync node");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("first line");
    let admin = line.split_whitespace().last().unwrap_or("").trim_start_matches("http://").to_string();
    assert!(line.starts_with("bhsync node ") && line.contains(" admin http://"), "unexpected first line: {line:?}");
    RunningNode { child, admin, data_dir }
}

/// One request; the status code and the body.
fn request(admin: &str, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(admin).expect("connect admin");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").expect("head and body");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let code = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).expect("status code");
    (code, response[split + 4..].to_vec())
}

#[test]
fn with_admin_writes_a_node_is_written_and_read_over_http() {
    let node = start("on", &["--admin-writes"]);
    let (code, body) = request(&node.admin, "POST", "/v1/put?category=default&key=greeting", b"hello");
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    let (code, body) = request(&node.admin, "GET", "/v1/get?category=default&key=greeting", b"");
    assert_eq!((code, body.as_slice()), (200, b"hello".as_slice()));

    // Percent-encoded keys carry any byte; the value is binary-safe.
    let value = [0u8, 255, 13, 10, 13, 10, 7];
    let (code, _) = request(&node.admin, "POST", "/v1/put?category=default&key=a%2Fb%00%FF", &value);
    assert_eq!(code, 200);
    let (code, body) = request(&node.admin, "GET", "/v1/get?category=default&key=a%2Fb%00%FF", b"");
    assert_eq!((code, body.as_slice()), (200, value.as_slice()));

    let (code, body) = request(&node.admin, "GET", "/v1/get?category=default&key=absent", b"");
    assert_eq!(code, 404);
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"not_found\""));
    // Node::get answers "absent" for a category it does not hold; a write names it.
    let (code, body) = request(&node.admin, "POST", "/v1/put?category=nosuch&key=k", b"v");
    assert_eq!(code, 404);
    assert!(
        String::from_utf8_lossy(&body).contains("\"error\":\"unknown_category\""),
        "{}",
        String::from_utf8_lossy(&body)
    );
    let (code, _) = request(&node.admin, "GET", "/v1/get?category=default&key=%zz", b"");
    assert_eq!(code, 400);
    let (code, _) = request(&node.admin, "GET", "/v1/put?category=default&key=k", b"");
    assert_eq!(code, 405);
    // A body over 1 MiB is refused from its Content-Length, before it is read.
    let mut stream = TcpStream::connect(&node.admin).expect("connect admin");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(stream, "POST /v1/put?category=default&key=big HTTP/1.1\r\nContent-Length: {}\r\n\r\n", (1 << 20) + 1)
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("response");
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    // The endpoint still serves its other routes.
    let (code, _) = request(&node.admin, "GET", "/health", b"");
    assert_eq!(code, 200);
}

#[test]
fn without_admin_writes_the_data_api_answers_403_and_names_the_flag() {
    let node = start("off", &[]);
    for (method, target) in [("POST", "/v1/put?category=default&key=k"), ("GET", "/v1/get?category=default&key=k")] {
        let (code, body) = request(&node.admin, method, target, b"v");
        assert_eq!(code, 403, "{method} {target}");
        assert!(String::from_utf8_lossy(&body).contains("--admin-writes"), "{}", String::from_utf8_lossy(&body));
    }
}

#[test]
fn a_chain_category_is_appended_to_and_its_head_read_over_http() {
    let config = std::env::temp_dir().join(format!("bhsync-cli-admin-api-chain-{}.toml", std::process::id()));
    std::fs::write(
        &config,
        "[[categories]]\nname = \"default\"\n\n[[categories]]\nname = \"ledger\"\nmode = \"chain\"\n",
    )
    .expect("write the configuration");
    let node = start("chain", &["--admin-writes", "--config", config.to_str().expect("utf-8 path")]);
    let _ = std::fs::remove_file(&config);

    let (code, body) = request(&node.admin, "GET", "/v1/chain/head?category=ledger", b"");
    let text = String::from_utf8_lossy(&body).into_owned();
    assert_eq!(code, 200, "{text}");
    assert!(text.starts_with("{\"height\":0,\"block\":\""), "genesis is the first head: {text}");
    for (height, transaction) in [(1, b"first".as_slice()), (2, b"second".as_slice())] {
        let (code, body) = request(&node.admin, "POST", "/v1/chain/append?category=ledger", transaction);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(code, 200, "{text}");
        assert!(text.starts_with(&format!("{{\"height\":{height},\"block\":\"")), "{text}");
        let (_, head) = request(&node.admin, "GET", "/v1/chain/head?category=ledger", b"");
        assert_eq!(head, body, "the head is the block just appended");
    }

    // A category that is not a chain, a missing category, a wrong method.
    let (code, body) = request(&node.admin, "POST", "/v1/chain/append?category=default", b"tx");
    assert_eq!(code, 404, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"unknown_category\""));
    let (code, _) = request(&node.admin, "GET", "/v1/chain/head", b"");
    assert_eq!(code, 400);
    let (code, _) = request(&node.admin, "GET", "/v1/chain/append?category=ledger", b"");
    assert_eq!(code, 405);
    // A put into the chain category is refused by its mode.
    let (code, body) = request(&node.admin, "POST", "/v1/put?category=ledger&key=k", b"v");
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("\"error\":\"wrong_mode\""));
}
