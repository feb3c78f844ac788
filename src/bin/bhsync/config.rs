//! The configuration file of `bhsync node` (TOML), merged with flags: a flag wins over the
//! file, the file over the defaults. Unknown keys are errors (a typo must not silently
//! fall back to a default). Example:
//!
//! ```toml
//! listen = "0.0.0.0:7700"
//! data_dir = "/var/lib/bhsync"
//! admin = "127.0.0.1:9100"
//! admin_writes = false           # true: the admin address also serves /v1/put and /v1/get
//! peers = ["10.0.0.2:7700", "10.0.0.3:7700"]
//! io_backend = "auto"            # auto | io_uring | mio
//! shards = 1
//! encryption = true
//! anti_entropy_interval_ms = 2000
//! dissemination = "tree"         # tree (Plumtree) | push (the seed design's, for comparison)
//!
//! [[categories]]
//! name = "users"
//! merge = "lww"                  # lww | crdt
//! priority = "high"              # critical | high | medium | low
//! mode = "eventual"              # eventual | strong | chain (Node::open refuses what it cannot run)
//! partition = "accept"           # accept | read_only_in_minority (refuse writes on a minority side)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use bhsync::engine::io::BackendChoice;
use bhsync::node::NodeConfig;
use bhsync::state::{CategorySpec, MergeRule, Mode, PartitionPolicy, Priority};

use crate::failure::{io_hint, Failure};

/// The file's contents; every field optional.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub admin: Option<SocketAddr>,
    pub admin_writes: Option<bool>,
    pub peers: Option<Vec<SocketAddr>>,
    pub io_backend: Option<String>,
    pub shards: Option<usize>,
    pub encryption: Option<bool>,
    pub anti_entropy_interval_ms: Option<u64>,
    pub dissemination: Option<String>,
    pub categories: Option<Vec<CategoryConfig>>,
}

/// One category of the file.
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CategoryConfig {
    pub name: String,
    pub merge: Option<String>,
    pub priority: Option<String>,
    pub mode: Option<String>,
    pub partition: Option<String>,
}

/// Reads and parses the file: one-line errors that name the file.
pub fn load(path: &Path) -> Result<FileConfig, Failure> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        Failure::usage(format!(
            "cannot read configuration {}: {} ({error}); check the path given to --config",
            path.display(),
            io_hint(&error)
        ))
    })?;
    toml::from_str(&text).map_err(|error| {
        let first = error.message().lines().next().unwrap_or("invalid TOML").to_string();
        let line = error.span().map(|span| text[..span.start.min(text.len())].lines().count().max(1));
        let at = line.map(|line| format!(" at line {line}")).unwrap_or_default();
        Failure::usage(format!(
            "invalid configuration {}{at}: {first}; fix the file (see 'bhsync node --help')",
            path.display()
        ))
    })
}

/// The IO backend by name.
pub fn backend(name: &str) -> Result<BackendChoice, Failure> {
    match name {
        "auto" => Ok(BackendChoice::Auto),
        "io_uring" | "io-uring" => Ok(BackendChoice::IoUring),
        "mio" => Ok(BackendChoice::Mio),
        other => Err(Failure::usage(format!("unknown io_backend '{other}': use auto, io_uring or mio"))),
    }
}

fn category(config: &CategoryConfig) -> Result<(String, CategorySpec), Failure> {
    let merge = match config.merge.as_deref().unwrap_or("lww") {
        "lww" => MergeRule::LastWriterWins,
        "crdt" => MergeRule::Crdt,
        other => {
            return Err(Failure::usage(format!("category '{}': unknown merge '{other}': use lww or crdt", config.name)))
        }
    };
    let priority = match config.priority.as_deref().unwrap_or("medium") {
        "critical" => Priority::Critical,
        "high" => Priority::High,
        "medium" => Priority::Medium,
        "low" => Priority::Low,
        other => {
            return Err(Failure::usage(format!(
                "category '{}': unknown priority '{other}': use critical, high, medium or low",
                config.name
            )))
        }
    };
    let mode = match config.mode.as_deref().unwrap_or("eventual") {
        "eventual" => Mode::Eventual,
        "strong" => Mode::Strong,
        "chain" => Mode::Chain,
        other => {
            return Err(Failure::usage(format!(
                "category '{}': unknown mode '{other}': use eventual, strong or chain",
                config.name
            )))
        }
    };
    let partition_policy = match config.partition.as_deref().unwrap_or("accept") {
        "accept" => PartitionPolicy::KeepWriting,
        "read_only_in_minority" => PartitionPolicy::ReadOnly,
        other => {
            return Err(Failure::usage(format!(
                "category '{}': unknown partition '{other}': use accept or read_only_in_minority",
                config.name
            )))
        }
    };
    Ok((config.name.clone(), CategorySpec { merge, priority, mode, partition_policy }))
}

/// The node's configuration from the file (already merged with flags by the caller).
pub fn node_config(file: &FileConfig) -> Result<NodeConfig, Failure> {
    let mut config = NodeConfig::default();
    if let Some(listen) = file.listen {
        config.listen = listen;
    }
    config.data_dir = file.data_dir.clone();
    config.peers = file.peers.clone().unwrap_or_default();
    if let Some(name) = &file.io_backend {
        config.io_backend = backend(name)?;
    }
    if let Some(shards) = file.shards {
        if !(1..=16).contains(&shards) {
            return Err(Failure::usage(format!("shards = {shards}: use 1 to 16")));
        }
        config.shards = shards;
    }
    if let Some(encryption) = file.encryption {
        config.encryption = encryption;
    }
    if let Some(ms) = file.anti_entropy_interval_ms {
        config.anti_entropy_interval = Duration::from_millis(ms.max(50));
    }
    if let Some(name) = &file.dissemination {
        config.dissemination = match name.as_str() {
            "tree" => bhsync::gossip::Dissemination::Tree,
            "push" => bhsync::gossip::Dissemination::Push,
            other => return Err(Failure::usage(format!("unknown dissemination '{other}': use tree or push"))),
        };
    }
    if let Some(categories) = &file.categories {
        config.categories = categories.iter().map(category).collect::<Result<_, _>>()?;
    }
    Ok(config)
}
