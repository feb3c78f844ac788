//! The opt-in data API of the admin endpoint, so that a test harness or an operator can
//! write and read a running node (docs/adr/082-admin-data-api.md):
//!
//! - `POST /v1/put?category=C&key=K` with the value as the body: 200 and `{"ok":true}`;
//! - `GET /v1/get?category=C&key=K`: 200 with the value's bytes, 404 when absent;
//! - `POST /v1/chain/append?category=C` with one transaction as the body: the node
//!   proposes a block holding it on a `mode = "chain"` category; 200 and
//!   `{"height":H,"block":"HEX"}` once the block is durable;
//! - `GET /v1/chain/head?category=C`: 200 and `{"height":H,"block":"HEX"}`, the head of
//!   the node's main chain.
//!
//! `C` and `K` are percent-encoded (`%2F` is one byte 0x2F; every other byte stands for
//! itself, `+` included), so that a key may hold any bytes. Off unless the node runs with
//! `--admin-writes` (or `admin_writes = true`): then both routes answer 403. Errors are
//! JSON `{"error":"CODE","message":"..."}` with a stable `CODE` and an HTTP status
//! chosen from the node's typed error (see [`error_answer`]).

use bhsync::node::{Node, NodeError};
use bhsync::state::StateError;

/// The largest body accepted: the state layer's largest value.
pub const MAX_BODY: usize = bhsync::state::MAX_VALUE_LEN;

/// The routes this module answers.
pub const ROUTES: [&str; 4] = ["/v1/put", "/v1/get", "/v1/chain/append", "/v1/chain/head"];

/// Whether the admin endpoint serves the data API.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataApi {
    /// `/v1/put` and `/v1/get` answer 403 (the default).
    Disabled,
    /// `/v1/put` and `/v1/get` read and write the node.
    Enabled,
}

/// One answer: status line, content type, body.
pub type Answer = (&'static str, &'static str, Vec<u8>);

const JSON: &str = "application/json";

/// Answers a request for `/v1/put` or `/v1/get` (`route`).
pub fn answer(node: &Node, data_api: DataApi, method: &str, route: &str, query: &str, body: &[u8]) -> Answer {
    if data_api == DataApi::Disabled {
        return error(
            "403 Forbidden",
            "data_api_disabled",
            "the data API is off: start the node with --admin-writes (or admin_writes = true in its configuration)",
        );
    }
    if route.starts_with("/v1/chain/") {
        return chain_answer(node, method, route, query, body);
    }
    let (category, key) = match parse_query(query, true) {
        Ok((category, key)) => (category, key.unwrap_or_default()),
        Err(why) => return error("400 Bad Request", "bad_query", &why),
    };
    match (route, method) {
        ("/v1/put", "POST") => match node.put(&category, &key, body) {
            Ok(_) => ("200 OK", JSON, b"{\"ok\":true}".to_vec()),
            Err(failure) => error_answer(&failure),
        },
        ("/v1/get", "GET") => match node.get(&category, &key) {
            Ok(Some(value)) => ("200 OK", "application/octet-stream", value),
            Ok(None) => error("404 Not Found", "not_found", "no value under this key"),
            Err(failure) => error_answer(&failure),
        },
        ("/v1/put", _) => error("405 Method Not Allowed", "method_not_allowed", "use POST for /v1/put"),
        _ => error("405 Method Not Allowed", "method_not_allowed", "use GET for /v1/get"),
    }
}

/// `POST /v1/chain/append` (the body is one transaction) and `GET /v1/chain/head`: both
/// answer the head they leave, as `{"height":H,"block":"HEX"}`.
fn chain_answer(node: &Node, method: &str, route: &str, query: &str, body: &[u8]) -> Answer {
    let category = match parse_query(query, false) {
        Ok((category, _)) => category,
        Err(why) => return error("400 Bad Request", "bad_query", &why),
    };
    let head = match (route, method) {
        ("/v1/chain/append", "POST") => node.chain_append(&category, vec![body.to_vec()]),
        ("/v1/chain/head", "GET") => node.chain_head(&category),
        ("/v1/chain/append", _) => {
            return error("405 Method Not Allowed", "method_not_allowed", "use POST for /v1/chain/append")
        }
        ("/v1/chain/head", _) => {
            return error("405 Method Not Allowed", "method_not_allowed", "use GET for /v1/chain/head")
        }
        _ => return error("404 Not Found", "not_found", "try /v1/chain/append or /v1/chain/head"),
    };
    match head {
        Ok((height, block)) => {
            let hex: String = block.iter().map(|byte| format!("{byte:02x}")).collect();
            ("200 OK", JSON, format!("{{\"height\":{height},\"block\":\"{hex}\"}}").into_bytes())
        }
        Err(failure) => error_answer(&failure),
    }
}

/// The status and stable code of each of the node's errors.
pub fn error_answer(failure: &NodeError) -> Answer {
    let (status, code) = match failure {
        NodeError::UnknownCategory(_) | NodeError::State(StateError::UnknownCategory(_)) => {
            ("404 Not Found", "unknown_category")
        }
        NodeError::State(StateError::KeyTooLong { .. }) => ("413 Payload Too Large", "key_too_long"),
        NodeError::State(StateError::ValueTooLong { .. }) => ("413 Payload Too Large", "value_too_long"),
        NodeError::State(_) => ("400 Bad Request", "invalid"),
        NodeError::Crdt(_) => ("400 Bad Request", "invalid_crdt_value"),
        NodeError::ReadOnly => ("409 Conflict", "read_only"),
        NodeError::NotLeader { .. } => ("409 Conflict", "not_leader"),
        NodeError::WrongMergeRule(_) => ("409 Conflict", "wrong_merge_rule"),
        NodeError::WrongMode(_) => ("409 Conflict", "wrong_mode"),
        NodeError::Indeterminate => ("503 Service Unavailable", "indeterminate"),
        NodeError::Busy => ("503 Service Unavailable", "busy"),
        NodeError::Closed => ("503 Service Unavailable", "closed"),
        NodeError::Timeout => ("504 Gateway Timeout", "timeout"),
        NodeError::InvalidBlock(_) => ("400 Bad Request", "invalid_block"),
        NodeError::InvalidConfig(_) | NodeError::Io(_) | NodeError::Identity(_) | NodeError::Internal(_) => {
            ("500 Internal Server Error", "internal")
        }
    };
    error(status, code, &failure.to_string())
}

fn error(status: &'static str, code: &str, message: &str) -> Answer {
    let body = format!("{{\"error\":\"{code}\",\"message\":\"{}\"}}", json_escape(message));
    (status, JSON, body.into_bytes())
}

fn json_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `category=C` and, when `with_key`, `key=K`, both then required, percent-decoded; the
/// category must be UTF-8.
fn parse_query(query: &str, with_key: bool) -> Result<(String, Option<Vec<u8>>), String> {
    let (mut category, mut key) = (None, None);
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "category" => category = Some(percent_decode(value)?),
            "key" if with_key => key = Some(percent_decode(value)?),
            other if with_key => return Err(format!("unknown parameter {other:?}: use category and key")),
            other => return Err(format!("unknown parameter {other:?}: use category")),
        }
    }
    let category = category.ok_or("missing category=")?;
    let category = String::from_utf8(category).map_err(|_| "the category is not UTF-8".to_string())?;
    if with_key && key.is_none() {
        return Err("missing key=".into());
    }
    Ok((category, key))
}

/// `%XX` is the byte 0xXX; every other byte stands for itself.
fn percent_decode(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'%' {
            let hex = bytes.get(at + 1..at + 3).ok_or("a '%' must be followed by two hex digits")?;
            let hex = std::str::from_utf8(hex).map_err(|_| "a '%' must be followed by two hex digits")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("'%{hex}' is not two hex digits"))?);
            at += 3;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_reads_escapes_and_keeps_other_bytes() {
        assert_eq!(percent_decode("a%2Fb+c%00").unwrap(), b"a/b+c\0".to_vec());
        assert!(percent_decode("a%2").is_err());
        assert!(percent_decode("%zz").is_err());
        assert_eq!(
            parse_query("category=default&key=k%20one", true).unwrap(),
            ("default".into(), Some(b"k one".to_vec()))
        );
        assert!(parse_query("key=k", true).is_err());
        assert!(parse_query("category=c", true).is_err());
        assert!(parse_query("category=c&key=k&other=1", true).is_err());
        assert_eq!(parse_query("category=ledger", false).unwrap(), ("ledger".into(), None));
        assert!(parse_query("category=ledger&key=k", false).is_err());
    }
}
