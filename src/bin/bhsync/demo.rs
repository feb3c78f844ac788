//! `bhsync demo`: a local cluster of real nodes (each its own engine, over loopback)
//! writes, is cut in two, keeps writing on both sides, is healed, and converges while
//! you watch. It ends with a table per node and exits 0 only when every state hash
//! agrees (and every node reads the same CRDT counter total).
//!
//! The phases: connect (full mesh), write (every node; its own keys, a few shared keys
//! written concurrently, and a counter), split (each half cuts its links to the other
//! at the transport with `Node::partition`), write on both sides, heal, converge
//! (anti-entropy finds what each side missed). Progress bars show on a terminal only; a
//! line per phase is printed either way. `--report FILE` writes an HTML page with the
//! convergence over time (src/bin/bhsync/report.rs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use bhsync::node::{Node, NodeConfig, NodeMetrics};
use bhsync::state::{CategorySpec, Digest, MergeRule, NodeId, Priority};

use crate::failure::Failure;
use crate::report::{Report, Sample};

/// Options of `bhsync demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=32))]
    nodes: u32,
    /// Writes per node in each writing phase.
    #[arg(long, default_value_t = 2_000)]
    writes: u32,
    /// A short run (200 writes per node and phase): for tests and a first look.
    #[arg(long)]
    quick: bool,
    /// Write an HTML page of convergence over time (state hashes agreeing, consistency
    /// lag, bytes per node) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Give up converging after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// IO backend: auto, io_uring or mio.
    #[arg(long, default_value = "auto")]
    io_backend: String,
}

/// Writes per `put_many` call.
const BATCH: u32 = 50;
/// Keys every node writes concurrently (last-writer-wins must settle them alike).
const SHARED_KEYS: u32 = 20;
/// How often the timeline is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);

struct Cluster {
    nodes: Vec<Node>,
    started: Instant,
    samples: Vec<Sample>,
    last_sample: Option<Instant>,
    phase: &'static str,
    counter_total: i64,
}

pub fn run(args: &DemoArgs) -> Result<ExitCode, Failure> {
    let report_tmp = args.report.as_ref().map(|path| Report::prepare(path)).transpose()?;
    let backend = crate::config::backend(&args.io_backend)?;
    let writes = if args.quick { 200 } else { args.writes };
    let count = args.nodes as usize;
    println!("bhsync demo: {count} nodes over loopback, {writes} writes per node and phase");
    let mut cluster = Cluster::start(count, backend)?;
    cluster.phase = "connect";
    cluster.wait(Duration::from_secs(15), "connecting", |c| c.fully_connected(count - 1))?;
    say(&format!("connected: full mesh of {count} nodes ({} links)", count * (count - 1) / 2));

    cluster.phase = "write";
    cluster.write_phase("write", writes)?;
    let (left, right) = cluster.nodes.split_at(count.div_ceil(2));
    let (left_ids, right_ids): (Vec<NodeId>, Vec<NodeId>) =
        (left.iter().map(Node::id).collect(), right.iter().map(Node::id).collect());
    let (left_len, right_len) = (left.len(), right.len());

    cluster.phase = "split";
    for (index, node) in cluster.nodes.iter().enumerate() {
        let other = if index < left_len { right_ids.clone() } else { left_ids.clone() };
        node.partition(other).map_err(runtime)?;
    }
    cluster.wait(Duration::from_secs(15), "splitting", |c| c.split_done(left_len))?;
    say(&format!("split: {left_len} nodes | {right_len} nodes, no link between the halves"));

    cluster.phase = "write (split)";
    cluster.write_phase("write while split", writes)?;
    let groups = cluster.distinct_hashes()?;
    say(&format!("while split: {groups} distinct state hashes (the halves diverged)"));

    cluster.phase = "heal";
    let healed_at = Instant::now();
    for node in &cluster.nodes {
        node.partition(Vec::new()).map_err(runtime)?;
    }
    say("healed: links re-dialled; converging…");
    let converged = cluster.wait(Duration::from_secs(args.timeout), "converging", |c| c.converged()).is_ok();
    let took = healed_at.elapsed();
    cluster.sample(true)?;
    let table = cluster.table()?;
    println!("{table}");
    if let (Some(path), Some(tmp)) = (&args.report, report_tmp) {
        let report = Report { nodes: count, samples: &cluster.samples, table: &table, converged };
        report.write(path, tmp)?;
        say(&format!("report: {}", path.display()));
    }
    if converged {
        println!("converged: every state hash agrees, {took:.2?} after the heal");
        Ok(ExitCode::SUCCESS)
    } else {
        let groups = cluster.distinct_hashes()?;
        Err(Failure::runtime(format!(
            "no convergence within {} s after the heal: {groups} distinct state hashes; run with --log info to see links",
            args.timeout
        )))
    }
}

fn runtime(error: bhsync::node::NodeError) -> Failure {
    Failure::runtime(format!("demo node failed: {error}"))
}

fn say(text: &str) {
    println!("  {text}");
}

fn node_config(
    index: usize,
    peers: Vec<std::net::SocketAddr>,
    backend: bhsync::engine::io::BackendChoice,
) -> NodeConfig {
    let mut secret = [0u8; 32];
    secret[1] = index as u8 + 1; // not byte 0: X25519 clamps its low bits
    secret[31] = 0xde;
    NodeConfig {
        identity_secret: Some(secret),
        peers,
        io_backend: backend,
        anti_entropy_interval: Duration::from_millis(300),
        redial_initial: Duration::from_millis(50),
        redial_max: Duration::from_millis(500),
        categories: vec![
            ("users".into(), CategorySpec { priority: Priority::High, ..CategorySpec::default() }),
            ("counters".into(), CategorySpec { merge: MergeRule::Crdt, ..CategorySpec::default() }),
        ],
        ..NodeConfig::default()
    }
}

fn bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("  {prefix:<18} [{bar:32}] {pos}/{len} {per_sec} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

impl Cluster {
    fn start(count: usize, backend: bhsync::engine::io::BackendChoice) -> Result<Cluster, Failure> {
        let mut nodes: Vec<Node> = Vec::with_capacity(count);
        for index in 0..count {
            let peers = nodes.iter().map(Node::local_addr).collect();
            let node = Node::open(node_config(index, peers, backend))
                .map_err(|error| Failure::runtime(format!("cannot start demo node {index}: {error}")))?;
            nodes.push(node);
        }
        Ok(Cluster {
            nodes,
            started: Instant::now(),
            samples: Vec::new(),
            last_sample: None,
            phase: "start",
            counter_total: 0,
        })
    }

    /// Every node writes `writes` entries, in batches, round robin over the nodes.
    fn write_phase(&mut self, label: &str, writes: u32) -> Result<(), Failure> {
        let total = u64::from(writes) * self.nodes.len() as u64;
        let started = Instant::now();
        let progress = bar(total, label);
        let round = self.samples.len();
        let mut done = 0;
        while done < writes {
            let take = BATCH.min(writes - done);
            for (index, node) in self.nodes.iter().enumerate() {
                let entries = (done..done + take)
                    .map(|n| {
                        let key = if n % (writes / SHARED_KEYS).max(1) == 0 {
                            format!("shared/{}", n % SHARED_KEYS)
                        } else {
                            format!("node{index}/{label}/{round}/{n}")
                        };
                        (key.into_bytes(), format!("value {n} from node {index}").into_bytes())
                    })
                    .collect();
                node.put_many("users", entries).map_err(runtime)?;
                node.counter_add("counters", b"writes", i64::from(take)).map_err(runtime)?;
                self.counter_total += i64::from(take);
                progress.inc(u64::from(take));
            }
            done += take;
            self.sample(false)?;
        }
        progress.finish_and_clear();
        let took = started.elapsed();
        say(&format!("{label}: {total} entries written on {} nodes in {took:.2?}", self.nodes.len()));
        Ok(())
    }

    /// Samples until `done` holds, with a live line; `Err` after `limit`.
    fn wait(
        &mut self,
        limit: Duration,
        label: &str,
        done: impl Fn(&Cluster) -> Result<bool, Failure>,
    ) -> Result<(), Failure> {
        let spinner = ProgressBar::new_spinner();
        spinner.set_prefix(label.to_string());
        if let Ok(style) = ProgressStyle::with_template("  {spinner} {prefix} {elapsed} {msg}") {
            spinner.set_style(style);
        }
        let start = Instant::now();
        let mut last_line = Instant::now();
        loop {
            let sample = self.sample(true)?;
            let line = format!(
                "{} distinct state hash(es), {} links up, max consistency lag {:.1} s",
                sample.groups,
                sample.links,
                sample.lag_ms as f64 / 1e3
            );
            spinner.set_message(line.clone());
            spinner.tick();
            if spinner.is_hidden() && label == "converging" && last_line.elapsed() >= Duration::from_secs(1) {
                say(&format!("{label} {:.1} s: {line}", start.elapsed().as_secs_f64()));
                last_line = Instant::now();
            }
            if done(self)? {
                spinner.finish_and_clear();
                return Ok(());
            }
            if start.elapsed() > limit {
                spinner.finish_and_clear();
                return Err(Failure::runtime(format!("{label}: not done within {limit:?}")));
            }
            std::thread::sleep(SAMPLE_EVERY);
        }
    }

    fn hashes(&self) -> Result<Vec<Digest>, Failure> {
        self.nodes.iter().map(|node| node.state_hash().map_err(runtime)).collect()
    }

    fn distinct_hashes(&self) -> Result<usize, Failure> {
        let mut hashes = self.hashes()?;
        hashes.sort_by_key(|digest| digest.0);
        hashes.dedup();
        Ok(hashes.len())
    }

    fn fully_connected(&self, peers: usize) -> Result<bool, Failure> {
        for node in &self.nodes {
            if node.peers().map_err(runtime)?.len() < peers {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn split_done(&self, left: usize) -> Result<bool, Failure> {
        for (index, node) in self.nodes.iter().enumerate() {
            let side = if index < left { left } else { self.nodes.len() - left };
            if node.peers().map_err(runtime)?.len() > side - 1 {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn converged(&self) -> Result<bool, Failure> {
        if self.distinct_hashes()? != 1 {
            return Ok(false);
        }
        for node in &self.nodes {
            if node.counter_get("counters", b"writes").map_err(runtime)? != self.counter_total {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Records a point of the timeline (at most every [`SAMPLE_EVERY`] unless forced).
    fn sample(&mut self, force: bool) -> Result<Sample, Failure> {
        if !force && self.last_sample.is_some_and(|at| at.elapsed() < SAMPLE_EVERY) {
            return Ok(self.samples.last().cloned().unwrap_or_default());
        }
        self.last_sample = Some(Instant::now());
        let metrics: Vec<NodeMetrics> =
            self.nodes.iter().map(|node| node.metrics().map_err(runtime)).collect::<Result<_, _>>()?;
        let sample = Sample {
            t_ms: self.started.elapsed().as_millis() as u64,
            phase: self.phase,
            groups: self.distinct_hashes()?,
            links: metrics.iter().map(|m| m.peers.len()).sum::<usize>() / 2,
            lag_ms: metrics.iter().map(|m| m.telemetry.consistency_lag_ms).max().unwrap_or(0),
            bytes: metrics.iter().map(|m| m.engine.bytes_in + m.engine.bytes_out).collect(),
        };
        self.samples.push(sample.clone());
        Ok(sample)
    }

    /// The final table, one row per node.
    fn table(&self) -> Result<String, Failure> {
        use std::fmt::Write as _;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<5} {:<17} {:<17} {:>8} {:>9} {:>9} {:>11} {:>11} {:>9} {:>10}",
            "node",
            "id",
            "state hash",
            "entries",
            "sync p50",
            "sync p99",
            "bytes in",
            "bytes out",
            "conflicts",
            "partition"
        );
        for (index, node) in self.nodes.iter().enumerate() {
            let metrics = node.metrics().map_err(runtime)?;
            let hash = node.state_hash().map_err(runtime)?.to_hex();
            let latency = metrics.telemetry.sync_latency;
            let _ = writeln!(
                out,
                "{:<5} {:<17} {:<17} {:>8} {:>6} ms {:>6} ms {:>11} {:>11} {:>9} {:>10}",
                index,
                node.id().short(),
                &hash[..16],
                node.total_entries().map_err(runtime)?,
                latency.p50_ms,
                latency.p99_ms,
                metrics.engine.bytes_in,
                metrics.engine.bytes_out,
                metrics.core.conflicts,
                metrics.telemetry.partition_events
            );
        }
        Ok(out)
    }
}
