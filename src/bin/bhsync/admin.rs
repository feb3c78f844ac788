//! The admin endpoint of `bhsync node --admin ADDR`: a tiny blocking HTTP/1.1 responder
//! on one thread (no framework). `GET /metrics`: Prometheus text; `GET /health`: the
//! JSON health report; `GET /status`: the same report for a person; 404 otherwise.
//! Requests are bounded (8 KiB of head, 2 s to send it) and served one at a time, each
//! connection closed after its answer: the endpoint is for a scraper and an operator,
//! not for the public.
//!
//! Also the matching client, for `bhsync status`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use bhsync::node::Node;

/// The largest request head read.
const MAX_REQUEST: usize = 8 * 1024;
/// How long a client may take to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

/// A running admin endpoint; stops when dropped.
pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Serves on `listener` until dropped.
    pub fn start(listener: TcpListener, node: Arc<Node>) -> std::io::Result<AdminServer> {
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
                        let _ = serve(stream, &node);
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

fn serve(mut stream: TcpStream, node: &Node) -> std::io::Result<()> {
    stream.set_read_timeout(Some(READ_TIMEOUT))?;
    stream.set_write_timeout(Some(READ_TIMEOUT))?;
    let head = match read_head(&mut stream) {
        Ok(head) => head,
        Err(status) => return respond(&mut stream, status, "text/plain", "bad request\n"),
    };
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "only GET\n");
    }
    let answer = match path.split('?').next().unwrap_or("") {
        "/metrics" => node.metrics_prometheus().map(|body| (bhsync::metrics::prometheus::CONTENT_TYPE, body)),
        "/health" => node.health_json().map(|body| ("application/json", body)),
        "/status" => node.health().map(|report| ("text/plain; charset=utf-8", report.to_text())),
        _ => return respond(&mut stream, "404 Not Found", "text/plain", "try /metrics, /health or /status\n"),
    };
    match answer {
        Ok((kind, body)) => respond(&mut stream, "200 OK", kind, &body),
        Err(error) => respond(&mut stream, "503 Service Unavailable", "text/plain", &format!("{error}\n")),
    }
}

/// Reads up to the end of the request head; `Err` carries the status to answer.
fn read_head(stream: &mut TcpStream) -> Result<String, &'static str> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buffer.windows(4).any(|w| w == b"\r\n\r\n") && !buffer.windows(2).any(|w| w == b"\n\n") {
        if buffer.len() >= MAX_REQUEST {
            return Err("431 Request Header Fields Too Large");
        }
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(_) => return Err("408 Request Timeout"),
        }
    }
    String::from_utf8(buffer).map_err(|_| "400 Bad Request")
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
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
