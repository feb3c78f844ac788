//! `bhsync node`: runs one node until SIGINT or SIGTERM, then closes it cleanly (peers
//! told goodbye, the engine stopped, state on disk flushed by the storage layer).
//!
//! Before anything starts, every way the start can fail is checked in an order that
//! overwrites nothing: the configuration is read, the data directory created and
//! locked (an exclusive `flock` on `DATA_DIR/LOCK`, held for the life of the process, so
//! that two nodes never share a directory), the admin address bound, and only then the
//! node opened.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bhsync::node::Node;

use crate::admin::{AdminServer, DataApi};
use crate::config::{self, FileConfig};
use crate::failure::{io_hint, Failure};

/// Options of `bhsync node` (flags win over the configuration file).
#[derive(clap::Args)]
pub struct NodeArgs {
    /// A TOML configuration file (see README: "Running a node").
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on for peers (default 127.0.0.1:0, any free port).
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Data directory: identity key, state; locked while the node runs.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// A peer to dial (repeat for several); added to the file's peers.
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,
    /// Serve /metrics (Prometheus) and /health (JSON) on this address.
    #[arg(long, value_name = "ADDR")]
    admin: Option<SocketAddr>,
    /// IO backend: auto, io_uring or mio.
    #[arg(long, value_name = "NAME")]
    io_backend: Option<String>,
    /// Also serve the data API on the admin address: POST /v1/put and GET /v1/get
    /// (anyone who reaches the admin address can then write; off by default).
    #[arg(long)]
    admin_writes: bool,
    /// How new writes travel: tree (Plumtree, the default) or push (the seed design's
    /// push gossip, for comparison).
    #[arg(long, value_name = "NAME")]
    dissemination: Option<String>,
}

pub fn run(args: &NodeArgs) -> Result<ExitCode, Failure> {
    let mut file = match &args.config {
        Some(path) => config::load(path)?,
        None => FileConfig::default(),
    };
    merge_flags(&mut file, args);
    let node_config = config::node_config(&file)?;
    let data_api = if file.admin_writes.unwrap_or(false) { DataApi::Enabled } else { DataApi::Disabled };
    if data_api == DataApi::Enabled && file.admin.is_none() {
        return Err(Failure::usage("--admin-writes needs an admin address: add --admin ADDR (or admin = \"ADDR\")"));
    }
    // The data directory's lock (DIR/LOCK) is taken by the node's log when it opens;
    // a second node on the same directory gets a one-line error from `Node::open`.
    let admin_listener = match file.admin {
        Some(addr) => Some(TcpListener::bind(addr).map_err(|error| {
            Failure::runtime(format!(
                "cannot listen on {addr} for --admin: {} ({error}); choose a free port or stop what uses it",
                io_hint(&error)
            ))
        })?),
        None => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|error| Failure::runtime(format!("cannot install the signal handler: {error}")))?;
    }
    let node =
        Arc::new(Node::open(node_config).map_err(|error| Failure::runtime(format!("cannot start the node: {error}")))?);
    let admin = match admin_listener {
        Some(listener) => Some(
            AdminServer::start(listener, node.clone(), data_api)
                .map_err(|error| Failure::runtime(format!("cannot start the admin endpoint: {error}")))?,
        ),
        None => None,
    };
    // One line a script can read: who, where, and the admin address (port 0 resolved).
    let admin_text = admin.as_ref().map(|a| format!(" admin http://{}", a.addr())).unwrap_or_default();
    println!("bhsync node {} listening on {}{admin_text}", node.id(), node.local_addr());
    tracing::info!(node = %node.id().short(), listen = %node.local_addr(), "node started");
    while !stop.load(Ordering::Acquire) {
        while let Some(event) = node.poll_event(Duration::from_millis(200)) {
            if let bhsync::node::NodeEvent::Fatal(why) = event {
                drop(admin);
                let _ = node.close();
                return Err(Failure::runtime(format!("the node stopped: {why}")));
            }
            if stop.load(Ordering::Acquire) {
                break;
            }
        }
    }
    drop(admin);
    node.close().map_err(|error| Failure::runtime(format!("closing the node: {error}")))?;
    println!("bhsync node {} stopped", node.id());
    Ok(ExitCode::SUCCESS)
}

fn merge_flags(file: &mut FileConfig, args: &NodeArgs) {
    if args.listen.is_some() {
        file.listen = args.listen;
    }
    if args.data_dir.is_some() {
        file.data_dir = args.data_dir.clone();
    }
    if args.admin.is_some() {
        file.admin = args.admin;
    }
    if args.io_backend.is_some() {
        file.io_backend = args.io_backend.clone();
    }
    if args.dissemination.is_some() {
        file.dissemination = args.dissemination.clone();
    }
    if args.admin_writes {
        file.admin_writes = Some(true);
    }
    file.peers.get_or_insert_with(Vec::new).extend(args.peers.iter().copied());
}
