//! `cargo bench --bench cluster -- [--json] [--nodes N] [--broadcasts K] [--one-hop S]
//! [--seed X] [--poll-us U] [--dissemination tree|push|both]`
//!
//! The real engine as operators run it (issue 16): N (32) `bhsync node` processes over
//! loopback, each started with ONE seed address (node i seeds node (i-1)/2, node 0 none),
//! written and read through the admin data API (`--admin-writes`, ADR 082), watched
//! through `/metrics` and `/health`. It measures, in order:
//!
//! 1. **membership**: time until every node counts N-1 alive members;
//! 2. **one hop**: a write on a node A until it is readable on a node B that A holds a
//!    link to (A's `/health` lists its linked peers) — the baseline of 3;
//! 3. **reach all**: K writes from random nodes, each until all N nodes read it (one
//!    poller thread per node, a GET every `--poll-us`); payload frames and bytes from the
//!    deltas of `bhsync_broadcast_payload_*_total` summed over all nodes, per node and
//!    broadcast; `delivered_ratio` = (broadcast, node) pairs readable within 5 s;
//! 4. **dead node**: SIGKILL the last node; time until every other node counts one more
//!    dead member (`bhsync_members{state="dead"}`);
//! 5. **join**: a node N+1 with one seed, after the writes; time until it reads every key
//!    written so far.
//!
//! Latencies include one admin POST and the polling granularity (both printed as the
//! `admin_get_p50_ms` floor and `poll_us`), the same for one hop and reach all. Goals
//! (printed as ratios, ≤ 1 is met): ≤ 1.5 payload messages per node per broadcast with
//! `delivered_ratio` 1.0; a dead node declared within 5 s; reach_all p99 ≤ 3 × one_hop p99.
//!
//! The whole run is made with `dissemination = "tree"` (Plumtree, the engine's) and then
//! again with `"push"` (the seed design's push gossip: fanout ⌈log2 N⌉ then 3, TTL 10),
//! side by side; `--dissemination` picks one. The JSON's top-level fields are the first
//! run's (the tree's), the other run's sit in an object under its name (`"push":{…}`).
//!
//! The `bhsync` binary is the one cargo builds beside the bench (the release one under
//! `cargo bench`); `BHSYNC_BIN` overrides it. Every child is killed when the bench ends,
//! panics included. Run by `cargo test` (no `--bench`) as a smoke test: 3 nodes, 3
//! broadcasts, no dead node and no join, so that the suite stays fast.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Barrier;
use std::time::{Duration, Instant};

/// The category every node holds by default.
const CATEGORY: &str = "default";
/// How long a write may take to reach a node before it counts as not delivered.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(5);
/// The value written (bytes).
const VALUE_LEN: usize = 100;

/// Goals of issue 16.
const GOAL_PAYLOAD_MSGS_PER_NODE: f64 = 1.5;
const GOAL_DEAD_DETECT_S: f64 = 5.0;
const GOAL_REACH_ALL_OVER_ONE_HOP: f64 = 3.0;

struct Options {
    json: bool,
    nodes: usize,
    broadcasts: usize,
    one_hop_samples: usize,
    seed: u64,
    poll_interval: Duration,
    /// Phases 4 and 5 and the longer settling pauses (off in the smoke run).
    full_run: bool,
    /// The `--dissemination` of the nodes, one full run each.
    disseminations: Vec<&'static str>,
}

fn options() -> Options {
    // `cargo bench` passes --bench; `cargo test` does not, and then a small run keeps the
    // suite fast.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = if benching {
        Options {
            json: false,
            nodes: 32,
            broadcasts: 100,
            one_hop_samples: 100,
            seed: 1,
            poll_interval: Duration::from_millis(1),
            full_run: true,
            disseminations: vec!["tree", "push"],
        }
    } else {
        Options {
            json: false,
            nodes: 3,
            broadcasts: 3,
            one_hop_samples: 3,
            seed: 1,
            poll_interval: Duration::from_millis(1),
            full_run: false,
            disseminations: vec!["tree"],
        }
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |default: u64| args.next().and_then(|v| v.parse().ok()).unwrap_or(default);
        match arg.as_str() {
            "--json" => options.json = true,
            "--nodes" => options.nodes = (number(options.nodes as u64) as usize).clamp(3, 256),
            "--broadcasts" => options.broadcasts = (number(options.broadcasts as u64) as usize).max(1),
            "--one-hop" => options.one_hop_samples = (number(options.one_hop_samples as u64) as usize).max(1),
            "--seed" => options.seed = number(options.seed),
            "--dissemination" => {
                options.disseminations = match args.next().as_deref() {
                    Some("tree") => vec!["tree"],
                    Some("push") => vec!["push"],
                    _ => vec!["tree", "push"],
                }
            }
            "--poll-us" => options.poll_interval = Duration::from_micros(number(1000).max(50)),
            _ => {} // cargo bench passes --bench; ignore what is not ours.
        }
    }
    options
}

/// The `bhsync` binary to run.
fn bhsync_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("BHSYNC_BIN") {
        return PathBuf::from(path);
    }
    if let Some(path) = option_env!("CARGO_BIN_EXE_bhsync") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/cluster-HASH → target/<profile>/bhsync
    let exe = std::env::current_exe().expect("the bench's own path");
    exe.parent().and_then(Path::parent).expect("target/<profile>").join("bhsync")
}

/// A small deterministic generator (xorshift64*), so that a run can be repeated.
struct Rng(u64);

impl Rng {
    fn below(&mut self, bound: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % bound
    }
}

/// One running `bhsync node` child.
struct NodeProcess {
    child: Child,
    id: String,
    listen: SocketAddr,
    admin: SocketAddr,
}

/// The children and their data directories; everything is killed and removed on drop
/// (a panic included).
struct Cluster {
    binary: PathBuf,
    dissemination: &'static str,
    dir: PathBuf,
    nodes: Vec<Option<NodeProcess>>,
}

impl Cluster {
    fn new(binary: PathBuf, dissemination: &'static str) -> Cluster {
        assert!(
            binary.exists(),
            "{} not found: build it with `cargo build --release --bin bhsync` or set BHSYNC_BIN",
            binary.display()
        );
        let dir = std::env::temp_dir().join(format!("bhsync-bench-cluster-{}-{dissemination}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the bench's directory");
        Cluster { binary, dissemination, dir, nodes: Vec::new() }
    }

    /// Starts node `self.nodes.len()` with at most one seed; waits for its first line.
    fn spawn(&mut self, seed: Option<SocketAddr>) -> usize {
        let index = self.nodes.len();
        let log = std::fs::File::create(self.dir.join(format!("node-{index}.log"))).expect("log file");
        let mut command = Command::new(&self.binary);
        command
            .args(["node", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--admin-writes", "--data-dir"])
            .arg(self.dir.join(format!("node-{index}")));
        command.args(["--dissemination", self.dissemination]);
        if let Some(seed) = seed {
            command.arg("--peer").arg(seed.to_string());
        }
        let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().expect("spawn bhsync node");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("first line");
        // "bhsync node ID listening on ADDR admin http://ADDR"
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.len() != 8 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {index}: unexpected first line {line:?}; see {}", self.dir.display());
        }
        let listen = words[5].parse().expect("listen address");
        let admin = words[7].trim_start_matches("http://").parse().expect("admin address");
        self.nodes.push(Some(NodeProcess { child, id: words[2].to_string(), listen, admin }));
        index
    }

    fn node(&self, index: usize) -> &NodeProcess {
        self.nodes[index].as_ref().expect("a running node")
    }

    fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].is_some()).collect()
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut node) = self.nodes[index].take() {
            let _ = node.child.kill(); // SIGKILL
            let _ = node.child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One HTTP/1.1 request to an admin endpoint; the status code and the body.
fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_nodelay(true)?;
    let mut request =
        format!("{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    request.extend_from_slice(body);
    stream.write_all(&request)?;
    let mut response = Vec::new();
    stream.take(16 << 20).read_to_end(&mut response)?;
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]);
    let code = head.split_whitespace().nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    Ok((code, response.get(split + 4..).unwrap_or_default().to_vec()))
}

fn put(cluster: &Cluster, index: usize, key: &str) {
    let value = vec![b'v'; VALUE_LEN];
    let (code, body) =
        http(cluster.node(index).admin, "POST", &format!("/v1/put?category={CATEGORY}&key={key}"), &value)
            .expect("POST /v1/put");
    assert_eq!(code, 200, "put on node {index}: {}", String::from_utf8_lossy(&body));
}

fn readable(admin: SocketAddr, key: &str) -> bool {
    matches!(http(admin, "GET", &format!("/v1/get?category={CATEGORY}&key={key}"), b""), Ok((200, _)))
}

/// The node's Prometheus text.
fn metrics(admin: SocketAddr) -> String {
    match http(admin, "GET", "/metrics", b"") {
        Ok((200, body)) => String::from_utf8_lossy(&body).into_owned(),
        _ => String::new(),
    }
}

/// The value of the sample named exactly `name` (labels included), 0 when absent.
fn sample(text: &str, name: &str) -> f64 {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// The ids of the peers the node holds a link to (from `/health`).
fn linked_peer_ids(admin: SocketAddr) -> Vec<String> {
    let Ok((200, body)) = http(admin, "GET", "/health", b"") else { return Vec::new() };
    let text = String::from_utf8_lossy(&body);
    let Some(per_peer) = text.split("\"per_peer\":[").nth(1) else { return Vec::new() };
    per_peer
        .split("{\"id\":\"")
        .skip(1)
        .filter(|entry| entry.contains("\"connected\":true"))
        .filter_map(|entry| entry.split('"').next().map(str::to_string))
        .collect()
}

/// Writes `key` on `origin` and polls every watcher (one thread each) until it reads it;
/// each watcher's latency from just before the write, `None` past the deadline.
fn spread(cluster: &Cluster, origin: usize, watchers: &[usize], key: &str, poll: Duration) -> Vec<Option<Duration>> {
    let barrier = Barrier::new(watchers.len() + 1);
    std::thread::scope(|scope| {
        let threads: Vec<_> = watchers
            .iter()
            .map(|&watcher| {
                let admin = cluster.node(watcher).admin;
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    let give_up = Instant::now() + DELIVERY_DEADLINE;
                    loop {
                        if readable(admin, key) {
                            return Some(Instant::now());
                        }
                        if Instant::now() > give_up {
                            return None;
                        }
                        std::thread::sleep(poll);
                    }
                })
            })
            .collect();
        barrier.wait();
        let written_at = Instant::now();
        put(cluster, origin, key);
        threads
            .into_iter()
            .map(|thread| thread.join().expect("poller").map(|seen| seen.saturating_duration_since(written_at)))
            .collect()
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Sums of the broadcast counters over the given nodes.
#[derive(Default, Clone, Copy)]
struct BroadcastCounters {
    payload_msgs: f64,
    payload_bytes: f64,
    grafts: f64,
}

fn broadcast_counters(cluster: &Cluster, nodes: &[usize]) -> BroadcastCounters {
    let mut sum = BroadcastCounters::default();
    for &index in nodes {
        let text = metrics(cluster.node(index).admin);
        sum.payload_msgs += sample(&text, "bhsync_broadcast_payload_msgs_total");
        sum.payload_bytes += sample(&text, "bhsync_broadcast_payload_bytes_total");
        sum.grafts += sample(&text, "bhsync_broadcast_grafts_total");
    }
    sum
}

/// Everything the run measured; `None` for what it skipped or could not see.
#[derive(Default)]
struct Figures {
    dissemination: &'static str,
    nodes: usize,
    membership_converged_s: Option<f64>,
    links_per_node_max: f64,
    links_per_node_mean: f64,
    admin_get_p50_ms: f64,
    one_hop_samples: usize,
    one_hop_p50_ms: f64,
    one_hop_p90_ms: f64,
    one_hop_p99_ms: f64,
    broadcasts: usize,
    reach_all_p50_ms: f64,
    reach_all_p90_ms: f64,
    reach_all_p99_ms: f64,
    reach_all_max_ms: f64,
    delivered_ratio: f64,
    payload_msgs_per_node: f64,
    payload_bytes_per_node: f64,
    grafts_per_broadcast: f64,
    dead_detect_first_s: Option<f64>,
    dead_detect_s: Option<f64>,
    join_full_state_s: Option<f64>,
    /// During phase 3: wall seconds, and CPU seconds of the bench (its pollers) and of the
    /// nodes, to show what the measurement itself costs on a shared machine.
    reach_all_wall_s: f64,
    /// GRAFTs per broadcast in the first and the second half of phase 3: whether lazy
    /// repair fades as the tree settles.
    grafts_per_broadcast_first_half: f64,
    grafts_per_broadcast_second_half: f64,
    /// CPU the nodes use per second with no writes (probes, anti-entropy, shuffles).
    idle_nodes_cpu_per_s: f64,
    reach_all_harness_cpu_s: f64,
    reach_all_nodes_cpu_s: f64,
    /// Whether phases 4 and 5 ran.
    dead_phase_ran: bool,
    /// The machine's load (other work shares it): 1-minute load average before and after.
    load_average_before: f64,
    load_average_after: f64,
    cpus: usize,
}

/// CPU seconds (user + system) of one process, from `/proc/PID/stat` (Linux; 0 elsewhere).
fn process_cpu_s(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    // Fields after the command name (which may hold spaces) start at field 3; utime and
    // stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |t| t.iter().filter_map(|v| v.parse::<f64>().ok()).sum());
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks / per_second
}

/// CPU seconds of the bench itself (its pollers) and of all its running nodes.
fn cpu_split(cluster: &Cluster) -> (f64, f64) {
    let nodes = cluster.nodes.iter().flatten().map(|node| process_cpu_s(node.child.id())).sum();
    (process_cpu_s(std::process::id()), nodes)
}

/// The 1-minute load average (Linux), NaN elsewhere.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn run(options: &Options, dissemination: &'static str) -> Figures {
    let mut cluster = Cluster::new(bhsync_binary(), dissemination);
    let mut rng = Rng(options.seed.max(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut figures = Figures {
        dissemination,
        nodes: options.nodes,
        load_average_before: load_average(),
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        ..Figures::default()
    };
    let started = Instant::now();
    for index in 0..options.nodes {
        let seed = (index > 0).then(|| cluster.node((index - 1) / 2).listen);
        cluster.spawn(seed);
    }
    let everyone = cluster.running();

    // 1. Membership: every node counts N-1 alive.
    let want_alive = (options.nodes - 1) as f64;
    let give_up = Instant::now() + Duration::from_secs(180);
    loop {
        let alive: Vec<f64> = everyone
            .iter()
            .map(|&i| sample(&metrics(cluster.node(i).admin), "bhsync_members{state=\"alive\"}"))
            .collect();
        if alive.iter().all(|&count| count == want_alive) {
            figures.membership_converged_s = Some(started.elapsed().as_secs_f64());
            break;
        }
        assert!(
            Instant::now() < give_up,
            "membership did not converge in 180 s: alive counts {alive:?}; logs in {}",
            cluster.dir.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the overlay's joins and first shuffles settle before measuring.
    std::thread::sleep(Duration::from_secs(if options.full_run { 3 } else { 1 }));
    let links: Vec<f64> = everyone.iter().map(|&i| sample(&metrics(cluster.node(i).admin), "bhsync_links")).collect();
    figures.links_per_node_max = links.iter().copied().fold(0.0, f64::max);
    figures.links_per_node_mean = links.iter().sum::<f64>() / links.len() as f64;

    // The floor: one admin GET of a present key.
    let mut keys_written = Vec::new();
    put(&cluster, 0, "floor");
    keys_written.push("floor".to_string());
    let mut floor: Vec<f64> = (0..50)
        .map(|_| {
            let at = Instant::now();
            assert!(readable(cluster.node(0).admin, "floor"));
            millis(at.elapsed())
        })
        .collect();
    floor.sort_by(f64::total_cmp);
    figures.admin_get_p50_ms = percentile(&floor, 50.0);

    // 2. One hop: a write until a linked neighbour reads it.
    let index_of_id = |id: &str| everyone.iter().copied().find(|&i| cluster.node(i).id == id);
    let mut one_hop = Vec::new();
    for sample_number in 0..options.one_hop_samples {
        let origin = everyone[rng.below(everyone.len())];
        let neighbours: Vec<usize> =
            linked_peer_ids(cluster.node(origin).admin).iter().filter_map(|id| index_of_id(id)).collect();
        if neighbours.is_empty() {
            continue;
        }
        let neighbour = neighbours[rng.below(neighbours.len())];
        let key = format!("one-hop-{sample_number}");
        let seen = spread(&cluster, origin, &[neighbour], &key, options.poll_interval);
        keys_written.push(key);
        if let Some(latency) = seen[0] {
            one_hop.push(millis(latency));
        }
    }
    one_hop.sort_by(f64::total_cmp);
    figures.one_hop_samples = one_hop.len();
    figures.one_hop_p50_ms = percentile(&one_hop, 50.0);
    figures.one_hop_p90_ms = percentile(&one_hop, 90.0);
    figures.one_hop_p99_ms = percentile(&one_hop, 99.0);
    // Lazy repair of the one-hop writes settles; meanwhile, what idle nodes cost.
    let (_, idle_before) = cpu_split(&cluster);
    let idle_started = Instant::now();
    std::thread::sleep(Duration::from_secs(if options.full_run { 2 } else { 1 }));
    let (_, idle_after) = cpu_split(&cluster);
    figures.idle_nodes_cpu_per_s = (idle_after - idle_before) / idle_started.elapsed().as_secs_f64();

    // 3. Reach all: K writes from random nodes, each polled on every other node.
    let before = broadcast_counters(&cluster, &everyone);
    let (harness_cpu_before, nodes_cpu_before) = cpu_split(&cluster);
    let reach_all_started = Instant::now();
    let (mut reach_all, mut delivered, mut pairs) = (Vec::new(), 0usize, 0usize);
    let mut halfway = before;
    for broadcast in 0..options.broadcasts {
        if broadcast == options.broadcasts / 2 {
            halfway = broadcast_counters(&cluster, &everyone);
        }
        let origin = everyone[rng.below(everyone.len())];
        let watchers: Vec<usize> = everyone.iter().copied().filter(|&i| i != origin).collect();
        let key = format!("broadcast-{broadcast}");
        let seen = spread(&cluster, origin, &watchers, &key, options.poll_interval);
        keys_written.push(key);
        pairs += seen.len() + 1; // the origin has it at once
        delivered += seen.iter().filter(|latency| latency.is_some()).count() + 1;
        if seen.iter().all(Option::is_some) {
            reach_all.push(seen.iter().flatten().map(|&latency| millis(latency)).fold(0.0, f64::max));
        }
    }
    figures.reach_all_wall_s = reach_all_started.elapsed().as_secs_f64();
    let (harness_cpu_after, nodes_cpu_after) = cpu_split(&cluster);
    figures.reach_all_harness_cpu_s = harness_cpu_after - harness_cpu_before;
    figures.reach_all_nodes_cpu_s = nodes_cpu_after - nodes_cpu_before;
    std::thread::sleep(Duration::from_secs(1)); // lazy announcements and GRAFTs settle
    let after = broadcast_counters(&cluster, &everyone);
    reach_all.sort_by(f64::total_cmp);
    figures.broadcasts = options.broadcasts;
    figures.reach_all_p50_ms = percentile(&reach_all, 50.0);
    figures.reach_all_p90_ms = percentile(&reach_all, 90.0);
    figures.reach_all_p99_ms = percentile(&reach_all, 99.0);
    figures.reach_all_max_ms = reach_all.last().copied().unwrap_or(f64::NAN);
    figures.delivered_ratio = delivered as f64 / pairs as f64;
    let per_node_broadcast = (options.broadcasts * options.nodes) as f64;
    figures.payload_msgs_per_node = (after.payload_msgs - before.payload_msgs) / per_node_broadcast;
    figures.payload_bytes_per_node = (after.payload_bytes - before.payload_bytes) / per_node_broadcast;
    figures.grafts_per_broadcast = (after.grafts - before.grafts) / options.broadcasts as f64;
    let first_half = (options.broadcasts / 2).max(1) as f64;
    let second_half = (options.broadcasts - options.broadcasts / 2) as f64;
    figures.grafts_per_broadcast_first_half = (halfway.grafts - before.grafts) / first_half;
    figures.grafts_per_broadcast_second_half = (after.grafts - halfway.grafts) / second_half;

    if !options.full_run {
        return figures;
    }

    // 4. Dead node: SIGKILL the last one; every other node must count one more dead.
    figures.dead_phase_ran = true;
    let victim = *everyone.last().expect("nodes");
    let survivors: Vec<usize> = everyone.iter().copied().filter(|&i| i != victim).collect();
    let dead_before: Vec<f64> =
        survivors.iter().map(|&i| sample(&metrics(cluster.node(i).admin), "bhsync_members{state=\"dead\"}")).collect();
    cluster.kill(victim);
    let killed_at = Instant::now();
    let mut declared: Vec<Option<f64>> = vec![None; survivors.len()];
    while declared.iter().any(Option::is_none) && killed_at.elapsed() < Duration::from_secs(60) {
        for (slot, &index) in survivors.iter().enumerate() {
            if declared[slot].is_none() {
                let dead = sample(&metrics(cluster.node(index).admin), "bhsync_members{state=\"dead\"}");
                if dead > dead_before[slot] {
                    declared[slot] = Some(killed_at.elapsed().as_secs_f64());
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen: Vec<f64> = declared.iter().flatten().copied().collect();
    figures.dead_detect_first_s = seen.iter().copied().reduce(f64::min);
    figures.dead_detect_s = if seen.len() == survivors.len() { seen.iter().copied().reduce(f64::max) } else { None };

    // 5. Join: a new node with one seed reads every key written so far.
    let seed = cluster.node((options.nodes - 1) / 2).listen;
    let joined_at = Instant::now();
    let newcomer = cluster.spawn(Some(seed));
    let admin = cluster.node(newcomer).admin;
    let mut missing = keys_written.clone();
    while !missing.is_empty() && joined_at.elapsed() < Duration::from_secs(120) {
        missing.retain(|key| !readable(admin, key));
        if !missing.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    if missing.is_empty() {
        figures.join_full_state_s = Some(joined_at.elapsed().as_secs_f64());
    }
    figures
}

fn json_number(value: f64) -> String {
    if value.is_finite() {
        format!("{value:.3}")
    } else {
        "null".to_string()
    }
}

fn json_option(value: Option<f64>) -> String {
    value.map(json_number).unwrap_or_else(|| "null".to_string())
}

/// The three goals as (name, ratio to the goal, met).
/// The three goals as (name, ratio to the goal, met); `met` is `None` for a phase the
/// run skipped (the smoke run has no dead node).
fn goals(figures: &Figures) -> Vec<(&'static str, Option<f64>, Option<bool>)> {
    let payload = figures.payload_msgs_per_node / GOAL_PAYLOAD_MSGS_PER_NODE;
    let dead = figures.dead_detect_s.map(|s| s / GOAL_DEAD_DETECT_S);
    let dead_met = figures.dead_phase_ran.then(|| dead.is_some_and(|ratio| ratio <= 1.0));
    let reach = figures.reach_all_p99_ms / (GOAL_REACH_ALL_OVER_ONE_HOP * figures.one_hop_p99_ms);
    vec![
        ("payload_msgs_per_node_vs_goal", Some(payload), Some(payload <= 1.0 && figures.delivered_ratio == 1.0)),
        ("dead_detect_vs_goal", dead, dead_met),
        ("reach_all_p99_vs_3x_one_hop_p99", Some(reach), Some(reach <= 1.0)),
    ]
}

/// One run's figures as the fields of a JSON object (without the braces).
fn json_fields(figures: &Figures, options: &Options) -> String {
    let mut fields = vec![
        ("dissemination", format!("\"{}\"", figures.dissemination)),
        ("nodes", figures.nodes.to_string()),
        ("poll_us", options.poll_interval.as_micros().to_string()),
        ("membership_converged_s", json_option(figures.membership_converged_s)),
        ("links_per_node_max", json_number(figures.links_per_node_max)),
        ("links_per_node_mean", json_number(figures.links_per_node_mean)),
        ("admin_get_p50_ms", json_number(figures.admin_get_p50_ms)),
        ("one_hop_samples", figures.one_hop_samples.to_string()),
        ("one_hop_p50_ms", json_number(figures.one_hop_p50_ms)),
        ("one_hop_p90_ms", json_number(figures.one_hop_p90_ms)),
        ("one_hop_p99_ms", json_number(figures.one_hop_p99_ms)),
        ("broadcasts", figures.broadcasts.to_string()),
        ("reach_all_p50_ms", json_number(figures.reach_all_p50_ms)),
        ("reach_all_p90_ms", json_number(figures.reach_all_p90_ms)),
        ("reach_all_p99_ms", json_number(figures.reach_all_p99_ms)),
        ("reach_all_max_ms", json_number(figures.reach_all_max_ms)),
        ("delivered_ratio", json_number(figures.delivered_ratio)),
        ("payload_msgs_per_node", json_number(figures.payload_msgs_per_node)),
        ("payload_bytes_per_node", json_number(figures.payload_bytes_per_node)),
        ("grafts_per_broadcast", json_number(figures.grafts_per_broadcast)),
        ("grafts_per_broadcast_first_half", json_number(figures.grafts_per_broadcast_first_half)),
        ("grafts_per_broadcast_second_half", json_number(figures.grafts_per_broadcast_second_half)),
        ("idle_nodes_cpu_per_s", json_number(figures.idle_nodes_cpu_per_s)),
        ("reach_all_wall_s", json_number(figures.reach_all_wall_s)),
        ("reach_all_harness_cpu_s", json_number(figures.reach_all_harness_cpu_s)),
        ("reach_all_nodes_cpu_s", json_number(figures.reach_all_nodes_cpu_s)),
        ("dead_detect_first_s", json_option(figures.dead_detect_first_s)),
        ("dead_detect_s", json_option(figures.dead_detect_s)),
        ("join_full_state_s", json_option(figures.join_full_state_s)),
        ("cpus", figures.cpus.to_string()),
        ("load_average_before", json_number(figures.load_average_before)),
        ("load_average_after", json_number(figures.load_average_after)),
    ];
    // Not a goal: how far the slowest broadcasts are from a typical single hop (the goal's
    // baseline, one_hop_p99, can itself hold a GRAFT timeout).
    fields.push(("reach_all_p99_over_one_hop_p50", json_number(figures.reach_all_p99_ms / figures.one_hop_p50_ms)));
    for (name, ratio, met) in goals(figures) {
        fields.push((name, json_option(ratio)));
        let met = met.map_or("null".to_string(), |met| met.to_string());
        fields.push((Box::leak(format!("{name}_met").into_boxed_str()), met));
    }
    let body: Vec<String> = fields.iter().map(|(name, value)| format!("\"{name}\":{value}")).collect();
    body.join(",")
}

fn print_table(figures: &Figures, options: &Options, out: &mut dyn Write) {
    let option = |value: Option<f64>, unit: &str| value.map(|v| format!("{v:.3} {unit}")).unwrap_or("—".into());
    let rows = [
        ("nodes (one seed each)", figures.nodes.to_string()),
        (
            "machine: cpus, load average before / after",
            format!("{}, {:.2} / {:.2}", figures.cpus, figures.load_average_before, figures.load_average_after),
        ),
        ("membership converged", option(figures.membership_converged_s, "s")),
        (
            "links per node (max / mean)",
            format!("{:.0} / {:.1}", figures.links_per_node_max, figures.links_per_node_mean),
        ),
        ("admin GET floor (p50)", format!("{:.3} ms", figures.admin_get_p50_ms)),
        ("poll interval", format!("{} µs", options.poll_interval.as_micros())),
        (
            "one hop p50 / p90 / p99",
            format!(
                "{:.3} / {:.3} / {:.3} ms ({} samples)",
                figures.one_hop_p50_ms, figures.one_hop_p90_ms, figures.one_hop_p99_ms, figures.one_hop_samples
            ),
        ),
        (
            "reach all p50 / p90 / p99 / max",
            format!(
                "{:.3} / {:.3} / {:.3} / {:.3} ms ({} broadcasts)",
                figures.reach_all_p50_ms,
                figures.reach_all_p90_ms,
                figures.reach_all_p99_ms,
                figures.reach_all_max_ms,
                figures.broadcasts
            ),
        ),
        ("delivered ratio (5 s)", format!("{:.4}", figures.delivered_ratio)),
        ("payload msgs per node per broadcast", format!("{:.3}", figures.payload_msgs_per_node)),
        ("payload bytes per node per broadcast", format!("{:.1}", figures.payload_bytes_per_node)),
        (
            "GRAFTs per broadcast (all / 1st / 2nd half)",
            format!(
                "{:.2} / {:.2} / {:.2}",
                figures.grafts_per_broadcast,
                figures.grafts_per_broadcast_first_half,
                figures.grafts_per_broadcast_second_half
            ),
        ),
        ("idle nodes' CPU (all nodes)", format!("{:.2} cores", figures.idle_nodes_cpu_per_s)),
        (
            "reach all: wall, CPU of bench / nodes",
            format!(
                "{:.1} s, {:.1} / {:.1} s",
                figures.reach_all_wall_s, figures.reach_all_harness_cpu_s, figures.reach_all_nodes_cpu_s
            ),
        ),
        (
            "dead node declared (first / all)",
            format!("{} / {}", option(figures.dead_detect_first_s, "s"), option(figures.dead_detect_s, "s")),
        ),
        ("join: full state", option(figures.join_full_state_s, "s")),
    ];
    let _ = writeln!(
        out,
        "cluster bench: {} bhsync node processes over loopback, dissemination = {}",
        figures.nodes, figures.dissemination
    );
    for (name, value) in rows {
        let _ = writeln!(out, "  {name:<44} {value}");
    }
    let _ = writeln!(
        out,
        "  {:<44} {:.1}",
        "reach all p99 / one hop p50 (not a goal)",
        figures.reach_all_p99_ms / figures.one_hop_p50_ms
    );
    let _ = writeln!(out, "goals (ratio to the goal; ≤ 1 is met):");
    for (name, ratio, met) in goals(figures) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not measured (smoke run)",
        };
        let _ = writeln!(out, "  {name:<44} {:<10} {verdict}", option(ratio, ""));
    }
}

fn main() {
    let options = options();
    let mut runs = Vec::new();
    for &dissemination in &options.disseminations {
        let mut figures = run(&options, dissemination);
        figures.load_average_after = load_average();
        if options.json {
            print_table(&figures, &options, &mut std::io::stderr());
        } else {
            print_table(&figures, &options, &mut std::io::stdout());
        }
        runs.push(figures);
    }
    if options.json {
        let mut object = json_fields(&runs[0], &options);
        for other in &runs[1..] {
            object.push_str(&format!(",\"{}\":{{{}}}", other.dissemination, json_fields(other, &options)));
        }
        println!("{{{object}}}");
    }
}
