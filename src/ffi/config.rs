//! `bhs_config`: a node configuration built from string keys and values, so that every
//! host language sets it the same way and new settings never change the ABI.
//!
//! Each key maps onto one field of [`NodeConfig`] (src/node/config.rs); an unknown key
//! or a value that does not parse is refused with `BHS_INVALID_ARGUMENT` and a
//! last-error message naming the key and what it accepts, and leaves the configuration
//! unchanged. Decisions: docs/adr/050-c-abi-node.md.

use std::ffi::c_char;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::error::{guard, FfiError};
use super::host_str;
use super::status::bhs_status;
use crate::engine::io::BackendChoice;
use crate::node::NodeConfig;
use crate::state::category::validate_name as validate_category_name;
use crate::state::{CategorySpec, MergeRule, Mode, NodeId, PartitionPolicy, Priority};

/// A node configuration (opaque): made by `bhs_config_new`, released by
/// `bhs_config_free`.
#[allow(non_camel_case_types)]
pub struct bhs_config {
    inner: Mutex<NodeConfig>,
}

/// The most peers or allowlist entries one value may list: a bound on what a
/// configuration string can make the library allocate.
const MAX_LIST_ENTRIES: usize = 4096;

/// The keys `bhs_config_set` accepts, with what each takes (the text of the error for
/// an unknown key).
pub const CONFIG_KEYS: &str = "listen (host:port), data_dir (path), identity_file (path), identity_secret (64 hex \
     digits), shards (1-16), cores (comma-separated core numbers), io_backend (auto|io_uring|mio), encryption \
     (on|off), peers (comma-separated host:port), allowlist (comma-separated 64-hex-digit node ids, empty: anyone), \
     max_peers, target_peers (the overlay's active view: links kept, 2 to 64, default 5), max_frame_len, max_send_queue (bytes), bytes_per_s, requests_per_s, handshake_timeout_ms, \
     anti_entropy_ms, redial_initial_ms, redial_max_ms";

impl bhs_config {
    /// A snapshot of the configuration (what `bhs_node_open` starts from).
    pub fn snapshot(&self) -> Result<NodeConfig, FfiError> {
        Ok(self.lock()?.clone())
    }

    fn lock(&self) -> Result<MutexGuard<'_, NodeConfig>, FfiError> {
        self.inner.lock().map_err(|_| FfiError::internal("config is unusable after an earlier internal error: free it"))
    }
}

/// Borrows the configuration behind a host pointer.
///
/// # Safety
/// `config` is NULL or a live handle from `bhs_config_new`.
pub(crate) unsafe fn config_ref<'a>(config: *const bhs_config) -> Result<&'a bhs_config, FfiError> {
    // SAFETY: the caller passes NULL or a live handle.
    unsafe { config.as_ref() }.ok_or_else(|| FfiError::invalid("config is NULL"))
}

/// Creates a configuration with every default: listen on 127.0.0.1 port 0 (any free
/// port), in memory (no data directory, a fresh identity), 1 shard, io_backend auto,
/// encryption on, one category "default" (eventual, last-writer-wins, medium priority).
/// `*out` receives a handle the caller releases with `bhs_config_free`. Thread-safe.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn bhs_config_new(out: *mut *mut bhs_config) -> bhs_status {
    guard(|| {
        if out.is_null() {
            return Err(FfiError::invalid("out is NULL"));
        }
        let handle = Box::into_raw(Box::new(bhs_config { inner: Mutex::new(NodeConfig::default()) }));
        // SAFETY: checked non-NULL; the caller guarantees it is writable.
        unsafe { out.write(handle) };
        Ok(())
    })
}

/// Releases a configuration. Accepts NULL. Nodes opened from it are not affected (they
/// copied it). The handle must not be in use by another thread.
///
/// # Safety
/// `config` is NULL or a handle from `bhs_config_new` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn bhs_config_free(config: *mut bhs_config) {
    if !config.is_null() {
        // SAFETY: the caller passes a live handle made by Box::into_raw.
        drop(unsafe { Box::from_raw(config) });
    }
}

/// Sets one setting from text: `key` is one of "listen", "data_dir", "identity_file",
/// "identity_secret", "shards", "cores", "io_backend" (auto|io_uring|mio), "encryption"
/// (on|off), "peers" (comma-separated host:port; replaces the list), "allowlist"
/// (comma-separated hex node ids; empty: anyone may connect), "max_peers",
/// "max_frame_len", "max_send_queue", "bytes_per_s", "requests_per_s",
/// "handshake_timeout_ms", "anti_entropy_ms", "redial_initial_ms", "redial_max_ms".
/// An unknown key or a bad value: `BHS_INVALID_ARGUMENT`, the configuration is
/// unchanged, and `bhs_last_error()` names the key and what it accepts. Copies both
/// strings. Calls on one configuration are serialised; thread-safe.
///
/// # Safety
/// `config` is NULL or live; `key` and `value` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn bhs_config_set(
    config: *mut bhs_config,
    key: *const c_char,
    value: *const c_char,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (config, key, value) = unsafe { (config_ref(config)?, host_str(key, "key")?, host_str(value, "value")?) };
        let mut next = config.snapshot()?;
        apply_setting(&mut next, key, value)?;
        *config.lock()? = next;
        Ok(())
    })
}

/// Adds the category `name` (1 to `BHS_MAX_CATEGORY_NAME_LEN` printable ASCII bytes) or
/// replaces its spec. `spec` is comma-separated `field=value` pairs, each optional:
/// "mode=eventual|strong|chain", "merge=lww|crdt|custom", "priority=critical|high|medium|
/// low", "partition=accept|read_only_in_minority"; "" or NULL takes the defaults
/// (eventual, lww, medium, accept). With read_only_in_minority, writes to the category
/// fail with `BHS_READ_ONLY` while membership sees this node on a minority side. A bad
/// name or spec: `BHS_INVALID_ARGUMENT`, nothing changed. A node runs at most one
/// mode=chain category, and only with a data directory (`bhs_node_open` refuses
/// otherwise with `BHS_INVALID_ARGUMENT`); it is written with `bhs_chain_append`, not
/// `bhs_put`. Counters need merge=crdt; a resolver
/// registered with `bhs_set_conflict_resolver` needs merge=custom. Copies both strings;
/// thread-safe.
///
/// # Safety
/// `config` is NULL or live; `name` and `spec` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn bhs_config_add_category(
    config: *mut bhs_config,
    name: *const c_char,
    spec: *const c_char,
) -> bhs_status {
    guard(|| {
        // SAFETY: forwarded caller contract.
        let (config, name) = unsafe { (config_ref(config)?, host_str(name, "name")?) };
        // SAFETY: forwarded caller contract.
        let spec = if spec.is_null() { "" } else { unsafe { host_str(spec, "spec") }? };
        validate_category_name(name).map_err(|error| FfiError::invalid(format!("category name: {error}")))?;
        let spec = parse_category_spec(spec)?;
        let mut config = config.lock()?;
        match config.categories.iter_mut().find(|(existing, _)| existing == name) {
            Some(slot) => slot.1 = spec,
            None => config.categories.push((name.to_owned(), spec)),
        }
        Ok(())
    })
}

/// Parses a category spec such as "mode=eventual,merge=crdt,priority=high".
pub fn parse_category_spec(text: &str) -> Result<CategorySpec, FfiError> {
    let mut spec = CategorySpec::default();
    for field in text.split(',').map(str::trim).filter(|field| !field.is_empty()) {
        let (name, value) = field.split_once('=').ok_or_else(|| {
            FfiError::invalid(format!("category spec field {field:?} is not name=value (mode, merge, priority or partition)"))
        })?;
        match name.trim() {
            "mode" => spec.mode = parse_mode(value.trim())?,
            "merge" => spec.merge = parse_merge(value.trim())?,
            "priority" => spec.priority = parse_priority(value.trim())?,
            "partition" => spec.partition_policy = parse_partition(value.trim())?,
            other => {
                return Err(FfiError::invalid(format!(
                    "unknown category spec field {other:?}: accepted fields are mode, merge, priority, partition"
                )))
            }
        }
    }
    Ok(spec)
}

fn parse_mode(value: &str) -> Result<Mode, FfiError> {
    match value {
        "eventual" => Ok(Mode::Eventual),
        "strong" => Ok(Mode::Strong),
        "chain" => Ok(Mode::Chain),
        _ => Err(FfiError::invalid(format!("mode {value:?}: accepted values are eventual, strong, chain"))),
    }
}

fn parse_partition(value: &str) -> Result<PartitionPolicy, FfiError> {
    match value {
        "accept" => Ok(PartitionPolicy::KeepWriting),
        "read_only_in_minority" => Ok(PartitionPolicy::ReadOnly),
        _ => Err(FfiError::invalid(format!("partition {value:?}: accepted values are accept, read_only_in_minority"))),
    }
}

fn parse_merge(value: &str) -> Result<MergeRule, FfiError> {
    match value {
        "lww" => Ok(MergeRule::LastWriterWins),
        "crdt" => Ok(MergeRule::Crdt),
        "custom" => Ok(MergeRule::Custom),
        _ => Err(FfiError::invalid(format!("merge {value:?}: accepted values are lww, crdt, custom"))),
    }
}

fn parse_priority(value: &str) -> Result<Priority, FfiError> {
    match value {
        "critical" => Ok(Priority::Critical),
        "high" => Ok(Priority::High),
        "medium" => Ok(Priority::Medium),
        "low" => Ok(Priority::Low),
        _ => Err(FfiError::invalid(format!("priority {value:?}: accepted values are critical, high, medium, low"))),
    }
}

/// Applies one `key = value` to `config`, or says why not.
pub fn apply_setting(config: &mut NodeConfig, key: &str, value: &str) -> Result<(), FfiError> {
    let bad = |accepts: &str| FfiError::invalid(format!("config key {key:?}: value {value:?} is invalid; {accepts}"));
    match key {
        "listen" => config.listen = parse_addr(value).ok_or_else(|| bad("expected host:port"))?,
        "data_dir" => config.data_dir = non_empty_path(value),
        "identity_file" => config.identity_file = non_empty_path(value),
        "identity_secret" => {
            config.identity_secret = Some(parse_hex32(value).ok_or_else(|| bad("expected 64 hex digits"))?)
        }
        "shards" => config.shards = parse_in(value, 1, 16).ok_or_else(|| bad("expected 1 to 16"))? as usize,
        "cores" => {
            config.cores = Some(
                parse_list(value, |core| parse_in(core, 0, 4095).map(|n| n as usize))
                    .ok_or_else(|| bad("expected comma-separated core numbers"))?,
            )
        }
        "io_backend" => {
            config.io_backend = parse_backend(value).ok_or_else(|| bad("expected auto, io_uring or mio"))?
        }
        "encryption" => config.encryption = parse_switch(value).ok_or_else(|| bad("expected on or off"))?,
        "peers" => {
            config.peers = parse_list(value, parse_addr).ok_or_else(|| bad("expected comma-separated host:port"))?
        }
        "allowlist" => {
            config.allowlist =
                parse_allowlist(value).ok_or_else(|| bad("expected comma-separated 64-hex-digit node ids"))?
        }
        _ => return apply_limit(config, key, value),
    }
    Ok(())
}

/// The numeric settings: limits and intervals.
fn apply_limit(config: &mut NodeConfig, key: &str, value: &str) -> Result<(), FfiError> {
    let number = |min: u64, max: u64| {
        parse_in(value, min, max).ok_or_else(|| {
            FfiError::invalid(format!(
                "config key {key:?}: value {value:?} is invalid; expected an integer from {min} to {max}"
            ))
        })
    };
    let limits = &mut config.limits;
    match key {
        "max_peers" => limits.wire.max_peers = number(1, 65_536)? as usize,
        "target_peers" => config.target_peers = number(0, 65_536)? as usize,
        "max_frame_len" => limits.max_frame_len = number(4_096, 1 << 30)? as u32,
        "max_send_queue" => limits.max_send_queue = number(1 << 16, 1 << 40)? as usize,
        "bytes_per_s" => limits.wire.bytes_per_s = number(1, u64::MAX >> 1)?,
        "requests_per_s" => limits.wire.requests_per_s = number(1, u64::MAX >> 1)?,
        "handshake_timeout_ms" => limits.handshake_timeout = Duration::from_millis(number(1, 3_600_000)?),
        "anti_entropy_ms" => config.anti_entropy_interval = Duration::from_millis(number(1, 86_400_000)?),
        "redial_initial_ms" => config.redial_initial = Duration::from_millis(number(1, 3_600_000)?),
        "redial_max_ms" => config.redial_max = Duration::from_millis(number(1, 86_400_000)?),
        _ => return Err(FfiError::invalid(format!("unknown config key {key:?}; accepted keys: {CONFIG_KEYS}"))),
    }
    Ok(())
}

fn parse_in(value: &str, min: u64, max: u64) -> Option<u64> {
    value.trim().parse::<u64>().ok().filter(|n| (min..=max).contains(n))
}

fn parse_switch(value: &str) -> Option<bool> {
    match value {
        "on" | "true" | "1" => Some(true),
        "off" | "false" | "0" => Some(false),
        _ => None,
    }
}

fn parse_backend(value: &str) -> Option<BackendChoice> {
    match value {
        "auto" => Some(BackendChoice::Auto),
        "io_uring" => Some(BackendChoice::IoUring),
        "mio" => Some(BackendChoice::Mio),
        _ => None,
    }
}

fn non_empty_path(value: &str) -> Option<PathBuf> {
    (!value.is_empty()).then(|| PathBuf::from(value))
}

/// A socket address, or a host name resolved now (the first address wins).
pub fn parse_addr(value: &str) -> Option<SocketAddr> {
    let value = value.trim();
    if let Ok(addr) = value.parse() {
        return Some(addr);
    }
    // Resolution only for something shaped like host:port, so random text never reaches
    // the resolver with a huge string.
    let (host, port) = value.rsplit_once(':')?;
    if host.is_empty() || host.len() > 253 || port.parse::<u16>().is_err() {
        return None;
    }
    value.to_socket_addrs().ok()?.next()
}

/// A comma-separated list (empty text: an empty list), at most [`MAX_LIST_ENTRIES`].
fn parse_list<T>(value: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let items: Vec<&str> = value.split(',').map(str::trim).filter(|item| !item.is_empty()).collect();
    if items.len() > MAX_LIST_ENTRIES {
        return None;
    }
    items.into_iter().map(parse).collect()
}

fn parse_allowlist(value: &str) -> Option<Option<Vec<NodeId>>> {
    let ids = parse_list(value, |id| parse_hex32(id).map(NodeId))?;
    Some((!ids.is_empty()).then_some(ids))
}

/// 32 bytes from 64 hex digits.
pub fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim().as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        let digits = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(digits, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_into_the_node_config() {
        let mut config = NodeConfig::default();
        apply_setting(&mut config, "listen", "127.0.0.1:7000").unwrap();
        apply_setting(&mut config, "io_backend", "mio").unwrap();
        apply_setting(&mut config, "peers", "127.0.0.1:1, 127.0.0.1:2").unwrap();
        apply_setting(&mut config, "allowlist", &"ab".repeat(32)).unwrap();
        apply_setting(&mut config, "encryption", "off").unwrap();
        apply_setting(&mut config, "max_peers", "12").unwrap();
        apply_setting(&mut config, "anti_entropy_ms", "250").unwrap();
        assert_eq!(config.listen.port(), 7000);
        assert_eq!(config.io_backend, BackendChoice::Mio);
        assert_eq!(config.peers.len(), 2);
        assert_eq!(config.allowlist, Some(vec![NodeId([0xab; 32])]));
        assert!(!config.encryption);
        assert_eq!(config.limits.wire.max_peers, 12);
        assert_eq!(config.anti_entropy_interval, Duration::from_millis(250));
    }

    #[test]
    fn bad_keys_and_values_name_the_key_and_what_it_accepts() {
        let mut config = NodeConfig::default();
        let error = format!("{:?}", apply_setting(&mut config, "colour", "red").unwrap_err());
        assert!(error.contains("colour") && error.contains("io_backend"), "{error}");
        let error = format!("{:?}", apply_setting(&mut config, "io_backend", "epoll").unwrap_err());
        assert!(error.contains("auto, io_uring or mio"), "{error}");
        assert!(apply_setting(&mut config, "shards", "17").is_err());
        assert!(apply_setting(&mut config, "identity_secret", "zz").is_err());
    }

    #[test]
    fn category_specs_parse_and_reject_unknown_fields() {
        let spec = parse_category_spec("mode=eventual, merge=crdt,priority=high").unwrap();
        assert_eq!((spec.merge, spec.priority), (MergeRule::Crdt, Priority::High));
        assert_eq!(parse_category_spec("").unwrap(), CategorySpec::default());
        assert!(parse_category_spec("merge=fancy").is_err());
        assert!(parse_category_spec("colour=red").is_err());
        assert!(parse_category_spec("merge").is_err());
    }
}
