//! A real cluster in a test (issue 16): 24 `bhsync node` processes over loopback, each
//! started with ONE seed address (node i seeds node (i-1)/2, node 0 none), watched through
//! their admin `/metrics` and written and read through the admin data API
//! (`--admin-writes`, ADR 082). The test shows, phase by phase, that:
//!
//! 1. **membership**: every node counts the N-1 others alive (SWIM spreads what the seeds
//!    learnt, though each node was given one address only);
//! 2. **links settle**: at some instant (one sweep over all nodes) every node holds at most
//!    `bhsync_overlay_active_max + 2` links — joining goes through the seeds, so their
//!    early counts are high, and the links must then follow the overlay's active view;
//! 3. **a write reaches all**: a `POST /v1/put` on one node is readable (`GET /v1/get`)
//!    on every node;
//! 4. **dead nodes**: a quarter of the nodes (the last 6, which seed nobody) are killed
//!    with SIGKILL; every survivor counts at least 6 dead members
//!    (`bhsync_members{state="dead"}`), and a new write on a survivor reaches every
//!    survivor.
//!
//! Not here yet: a category with `partition = "read_only_in_minority"` on a minority
//! side (the TOML key exists; killing a quarter leaves the survivors a majority, and a
//! split needs namespaces); `tests/engine_membership.rs` shows the policy in process.
//!
//! Every phase polls with a generous deadline (a debug build on a loaded machine) and
//! prints how long it took; no timing is asserted beyond those deadlines. Every child is
//! killed (SIGKILL, by its own pid) when the test ends, a panic included; children also
//! get `PR_SET_PDEATHSIG` so that they die with the test's thread if the test is killed.
//! On failure the nodes' logs (stderr) are kept and their directory is named.
//!
//! Reproduce: `cargo test --test cluster_processes -- --nocapture`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Nodes started (at least 24, issue 16).
const NODES: usize = 24;
/// Nodes killed in phase 4 (a quarter): the last ones, which seed nobody.
const KILLED: usize = NODES / 4;
/// Each phase's deadline: generous, for a debug build on two loaded cores.
const PHASE_DEADLINE: Duration = Duration::from_secs(90);
/// How long a node may take to print its first line.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// The category every node holds by default.
const CATEGORY: &str = "default";
const REPRODUCE: &str = "cargo test --test cluster_processes -- --nocapture";

/// One running `bhsync node` child.
struct NodeProcess {
    child: Child,
    listen: SocketAddr,
    admin: SocketAddr,
}

/// The children and their directory; every child is killed on drop (a panic included).
/// The directory is removed unless the test is panicking (its logs then help).
struct Cluster {
    dir: PathBuf,
    nodes: Vec<Option<NodeProcess>>,
}

impl Cluster {
    fn new() -> Cluster {
        let dir = std::env::temp_dir().join(format!("bhsync-test-cluster-processes-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the test's directory");
        Cluster { dir, nodes: Vec::new() }
    }

    /// Starts the next node with at most one seed and waits for its first line
    /// (`bhsync node ID listening on ADDR admin http://ADDR`).
    fn spawn(&mut self, seed: Option<SocketAddr>) {
        let index = self.nodes.len();
        let log = std::fs::File::create(self.dir.join(format!("node-{index}.log"))).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_bhsync"));
        command
            .args(["node", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--admin-writes", "--data-dir"])
            .arg(self.dir.join(format!("node-{index}")));
        if let Some(seed) = seed {
            command.arg("--peer").arg(seed.to_string());
        }
        // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.stdout(Stdio::piped()).stderr(log).spawn().expect("spawn bhsync node");
        // A thread hands over the first line, then drains stdout so the child never blocks.
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            for _ in lines {}
        });
        let line = match receiver.recv_timeout(START_DEADLINE) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {index}: no first line within {START_DEADLINE:?} ({other:?}); logs in {}; reproduce: {REPRODUCE}", self.dir.display());
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let parsed = (words.len() == 8 && words[3] == "listening" && words[6] == "admin")
            .then(|| Some((words[5].parse().ok()?, words[7].trim_start_matches("http://").parse().ok()?)))
            .flatten();
        let Some((listen, admin)) = parsed else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {index}: unexpected first line {line:?}; logs in {}", self.dir.display());
        };
        self.nodes.push(Some(NodeProcess { child, listen, admin }));
    }

    fn node(&self, index: usize) -> &NodeProcess {
        self.nodes[index].as_ref().expect("a running node")
    }

    /// Kills one child (SIGKILL, by its pid) and reaps it.
    fn kill(&mut self, index: usize) {
        if let Some(mut node) = self.nodes[index].take() {
            let _ = node.child.kill();
            let _ = node.child.wait();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill(index);
        }
        if std::thread::panicking() {
            eprintln!("cluster_processes: the nodes' logs are kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// One HTTP/1.1 request to an admin endpoint; the status code and the body.
fn http(addr: SocketAddr, method: &str, target: &str, body: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
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

/// The node's Prometheus text, empty when it does not answer.
fn metrics(admin: SocketAddr) -> String {
    match http(admin, "GET", "/metrics", b"") {
        Ok((200, body)) => String::from_utf8_lossy(&body).into_owned(),
        _ => String::new(),
    }
}

/// The value of the sample named exactly `name` (labels included); `None` when absent.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn put(cluster: &Cluster, index: usize, key: &str, value: &[u8]) {
    let target = format!("/v1/put?category={CATEGORY}&key={key}");
    let (code, body) = http(cluster.node(index).admin, "POST", &target, value).expect("POST /v1/put");
    assert_eq!(code, 200, "put {key} on node {index}: {}; reproduce: {REPRODUCE}", String::from_utf8_lossy(&body));
}

/// Whether the node reads `value` under `key`.
fn reads(admin: SocketAddr, key: &str, value: &[u8]) -> bool {
    matches!(http(admin, "GET", &format!("/v1/get?category={CATEGORY}&key={key}"), b""), Ok((200, body)) if body == value)
}

/// Polls `observe` over `nodes` until `holds` is true for all of them in one sweep, or the phase's
/// deadline passes (then panics with the last sweep's observations). Prints the time and
/// returns the sweep that held.
fn phase<T: std::fmt::Debug>(
    cluster: &Cluster,
    name: &str,
    nodes: &[usize],
    mut observe: impl FnMut(usize) -> T,
    holds: impl Fn(&T) -> bool,
) -> Vec<(usize, T)> {
    let started = Instant::now();
    loop {
        let seen: Vec<(usize, T)> = nodes.iter().map(|&i| (i, observe(i))).collect();
        if seen.iter().all(|(_, observation)| holds(observation)) {
            println!("cluster_processes: {name}: {:.1} s", started.elapsed().as_secs_f64());
            return seen;
        }
        if started.elapsed() > PHASE_DEADLINE {
            let failing: Vec<&(usize, T)> = seen.iter().filter(|(_, observation)| !holds(observation)).collect();
            panic!(
                "phase '{name}' did not hold within {PHASE_DEADLINE:?}: it fails on {} of {} nodes in the last \
                 sweep, (node, observation): {failing:?}; logs in {}; reproduce: {REPRODUCE}",
                failing.len(),
                seen.len(),
                cluster.dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_cluster_of_processes_converges_spreads_writes_and_declares_the_killed_dead() {
    let started = Instant::now();
    let mut cluster = Cluster::new();
    for index in 0..NODES {
        let seed = (index > 0).then(|| cluster.node((index - 1) / 2).listen);
        cluster.spawn(seed);
    }
    println!("cluster_processes: {NODES} nodes started: {:.1} s", started.elapsed().as_secs_f64());
    let everyone: Vec<usize> = (0..NODES).collect();

    // 1. Membership: every node counts the N-1 others alive.
    let want_alive = (NODES - 1) as f64;
    phase(
        &cluster,
        &format!("1. every node counts N-1 = {want_alive} members alive"),
        &everyone,
        |i| sample(&metrics(cluster.node(i).admin), "bhsync_members{state=\"alive\"}"),
        |alive| *alive == Some(want_alive),
    );

    // 2. Links settle: at some instant every node holds ≤ active_max + 2 links.
    let links = phase(
        &cluster,
        "2. every node holds <= active_max + 2 links",
        &everyone,
        |i| {
            let text = metrics(cluster.node(i).admin);
            (sample(&text, "bhsync_links"), sample(&text, "bhsync_overlay_active_max"))
        },
        |&(links, active_max)| matches!((links, active_max), (Some(l), Some(m)) if m > 0.0 && l <= m + 2.0),
    );
    let per_node: Vec<f64> = links.iter().filter_map(|(_, (links, _))| *links).collect();
    println!(
        "cluster_processes:    links per node then: max {} / mean {:.1}, active_max {}",
        per_node.iter().copied().fold(0.0, f64::max),
        per_node.iter().sum::<f64>() / per_node.len() as f64,
        links[0].1 .1.unwrap_or_default()
    );

    // 3. A write on one node is readable on all.
    let origin = NODES / 2;
    let value = b"written on one node, read on all".to_vec();
    put(&cluster, origin, "phase-3", &value);
    phase(
        &cluster,
        "3. a write on one node is readable on all",
        &everyone,
        |i| reads(cluster.node(i).admin, "phase-3", &value),
        |&read| read,
    );

    // 4. A quarter killed with SIGKILL: every survivor counts them dead, and a new write
    //    on a survivor reaches every survivor. The last nodes seed nobody (node i seeds
    //    (i-1)/2 < NODES - KILLED).
    let survivors: Vec<usize> = (0..NODES - KILLED).collect();
    for index in NODES - KILLED..NODES {
        cluster.kill(index);
    }
    phase(
        &cluster,
        &format!("4a. every survivor counts >= {KILLED} members dead"),
        &survivors,
        |i| sample(&metrics(cluster.node(i).admin), "bhsync_members{state=\"dead\"}"),
        |dead| dead.is_some_and(|dead| dead >= KILLED as f64),
    );
    let origin = 1;
    let value = b"written after the kills".to_vec();
    put(&cluster, origin, "phase-4", &value);
    phase(
        &cluster,
        "4b. a write on a survivor reaches every survivor",
        &survivors,
        |i| reads(cluster.node(i).admin, "phase-4", &value),
        |&read| read,
    );

    println!("cluster_processes: total {:.1} s", started.elapsed().as_secs_f64());
}
