//! The admin endpoint of `bhsync node --admin ADDR`: a tiny blocking HTTP/1.1 responder
//! on one thread (no framework). `GET /metrics`: Prometheus text; `GET /health`: the
//! JSON health report; `GET /status`: the same report for a person; 404 otherwise.
//! With `--admin-writes` (off by default) it also serves the data API of [`data`]
//! (`POST /v1/put`, `GET /v1/get`, `POST /v1/chain/append`, `GET /v1/chain/head`;
//! docs/adr/082-admin-data-api.md).
//! Requests are bounded (8 KiB of head, a 4 KiB request line, a 1 MiB body, 2 s to send
//! each part) and served one at a time, each connection closed after its answer: the
//! endpoint is for a scraper, an operator and a test harness, not for the public.
//!
//! Also the matching client, for `bhsync status`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bhsync::node::Node;

mod data;

pub use data::DataApi;

/// The largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// The longest request line (method, path and query).
const MAX_REQUEST_LINE: usize = 4 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A running admin endpoint; stops when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Serves on `listener` until dropped; the data API answers only when `data_api` is
    /// [`DataApi::Enabled`].
    pub fn start(listener: TcpListener, node: Arc<Node>, data_api: DataApi) -> std::io::Result<AdminServer> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new().name("bhsync-admin".into()).spawn(move || {
            for stream in listener.incoming() {
                if flag.load(Ordering::Acquire) {
                    break;
                }
                match stream {
                    Ok(stream) => {
                        let _ = serve(stream, &node, data_api);
                    }
                    // Out of descriptors or similar: back off rather than spin.
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })?;
        Ok(AdminServer { addr, stop, thread: Some(thread) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wakes the blocking accept so that the thread sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(mut stream: TcpStream, node: &Node, data_api: DataApi) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let request = match read_request(&mut stream) {
        Ok(request) => request,
        Err(status) => return respond(&mut stream, status, "text/plain", b"bad request\n"),
    };
    let (route, query) = request.target.split_once('?').unwrap_or((request.target.as_str(), ""));
    if data::ROUTES.contains(&route) {
        let (status, kind, body) = data::answer(node, data_api, &request.method, route, query, &request.body);
        return respond(&mut stream, status, kind, &body);
    }
    if request.method != "GET" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", b"only GET\n");
    }
    let answer = match route {
        "/metrics" => node.metrics_prometheus().map(|body| (bhsync::metrics::prometheus::CONTENT_TYPE, body)),
        "/health" => node.health_json().map(|body| ("application/json", body)),
        "/status" => node.health().map(|report| ("text/plain; charset=utf-8", report.to_text())),
        _ => {
            return respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                b"try /metrics, /health, /status, /v1/get, /v1/put, /v1/chain/append or /v1/chain/head\n",
            )
        }
    };
    match answer {
        Ok((kind, body)) => respond(&mut stream, "200 OK", kind, body.as_bytes()),
        Err(error) => respond(&mut stream, "503 Service Unavailable", "text/plain", format!("{error}\n").as_bytes()),
    }
}

/// One parsed request: method, target (path and query) and body.
struct Request {
    method: String,
    target: String,
    body: Vec<u8>,
}

/// Reads the head (bounded by [`MAX_REQUEST`], its first line by [`MAX_REQUEST_LINE`]) and
/// a body of `Content-Length` bytes (bounded by [`data::MAX_BODY`]); `Err` carries the
/// status to answer.
fn read_request(stream: &mut TcpStream) -> Result<Request, &'static str> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if let Some(at) = buffer.windows(2).position(|w| w == b"\n\n") {
            break at + 2;
        }
        if buffer.len() >= MAX_REQUEST {
            return Err("431 Request Header Fields Too Large");
        }
        match stream.read(&mut chunk) {
            Ok(0) => break buffer.len(),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(_) => return Err("408 Request Timeout"),
        }
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| "400 Bad Request")?;
    let first_line = head.lines().next().unwrap_or("");
    if first_line.len() > MAX_REQUEST_LINE {
        return Err("414 URI Too Long");
    }
    let mut parts = first_line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut content_length = 0usize;
    for line in head.lines().skip(1) {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().map_err(|_| "400 Bad Request")?;
            }
        }
    }
    if content_length > data::MAX_BODY {
        return Err("413 Payload Too Large");
    }
    let expects_continue = head.lines().any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("expect") && value.trim().eq_ignore_ascii_case("100-continue")
        })
    });
    if expects_continue && content_length > 0 {
        stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").map_err(|_| "408 Request Timeout")?;
    }
    let mut body = buffer[head_end..].to_vec();
    body.truncate(content_length);
    while body.len() < content_length {
        match stream.read(&mut chunk) {
            Ok(0) => return Err("400 Bad Request"),
            Ok(n) => body.extend_from_slice(&chunk[..n.min(content_length - body.len())]),
            Err(_) => return Err("408 Request Timeout"),
        }
    }
    Ok(Request { method, target, body })
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &[u8]) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// `GET path` from an admin endpoint: the status code and the body.
pub fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.take(16 << 20).read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Ok((code, body.to_string()))
}
