//! The cluster scenario with separate processes, one per node, each in its own network
//! namespace, linked by veth pairs to a bridge (issue 6): concurrent writes on all, one
//! node killed with SIGKILL and restarted on its data directory, a partition cut by
//! taking links down and then healed. Every state hash must agree within a bounded time
//! and every acknowledged write must be present. Needs root and `ip`; skipped with a
//! message where the machine does not allow namespaces.
//!
//! Each node is this test binary re-executed in "node mode" (`BHSYNC_NETNS_NODE` set): it
//! opens a node, executes `WRITE tag count` commands from stdin, prints `ACK key` after
//! each acknowledged put and `DONE` after each command, and `STATE hash count` every
//! 100 ms.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bhsync::node::{Node, NodeConfig};

const NODES: usize = 5;
const PORT: u16 = 7411;
const NODE_ENV: &str = "BHSYNC_NETNS_NODE";
const TEST_NAME: &str = "five_processes_in_namespaces_converge_through_a_kill_and_a_partition";

fn run(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The namespaces, veth pairs and bridge of one test run; removed on drop.
struct Network {
    tag: String,
}

impl Network {
    fn namespace(&self, index: usize) -> String {
        format!("bhs{}n{index}", self.tag)
    }
    fn host_veth(&self, index: usize) -> String {
        format!("bhs{}v{index}", self.tag)
    }
    fn bridge(&self) -> String {
        format!("bhs{}br", self.tag)
    }
    fn address(index: usize) -> SocketAddr {
        SocketAddr::from(([10, 211, 0, index as u8 + 1], PORT))
    }

    fn create() -> Result<Network, String> {
        let network = Network { tag: format!("{}", std::process::id() % 10_000) };
        let bridge = network.bridge();
        let ok = run(&["ip", "link", "add", &bridge, "type", "bridge"]) && run(&["ip", "link", "set", &bridge, "up"]);
        if !ok {
            return Err("cannot create a bridge (needs root and iproute2)".into());
        }
        for index in 0..NODES {
            let (ns, veth) = (network.namespace(index), network.host_veth(index));
            let address = format!("{}/24", Network::address(index).ip());
            let steps: [&[&str]; 7] = [
                &["ip", "netns", "add", &ns],
                &["ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns],
                &["ip", "link", "set", &veth, "master", &bridge, "up"],
                &["ip", "netns", "exec", &ns, "ip", "addr", "add", &address, "dev", "eth0"],
                &["ip", "netns", "exec", &ns, "ip", "link", "set", "eth0", "up"],
                &["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"],
                &["true"],
            ];
            if !steps.iter().all(|step| run(step)) {
                return Err(format!("cannot set up namespace {ns}"));
            }
        }
        Ok(network)
    }

    fn set_link(&self, index: usize, up: bool) {
        assert!(run(&["ip", "link", "set", &self.host_veth(index), if up { "up" } else { "down" }]), "ip link set");
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        for index in 0..NODES {
            run(&["ip", "link", "del", &self.host_veth(index)]);
            run(&["ip", "netns", "del", &self.namespace(index)]);
        }
        run(&["ip", "link", "del", &self.bridge()]);
    }
}

/// What the parent knows about one node process.
#[derive(Default)]
struct Seen {
    acked: BTreeSet<String>,
    state: Option<(String, u64)>,
    done: usize,
}

struct Process {
    child: Child,
    stdin: ChildStdin,
    seen: Arc<Mutex<Seen>>,
}

fn spawn(network: &Network, index: usize, data_dir: &Path, seen: Arc<Mutex<Seen>>) -> Process {
    let exe = std::env::current_exe().expect("test binary");
    let exe = exe.to_str().expect("utf-8 path");
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &network.namespace(index),
            exe,
            "--exact",
            TEST_NAME,
            "--nocapture",
            "--test-threads=1",
        ])
        .env(NODE_ENV, index.to_string())
        .env("BHSYNC_NETNS_DIR", data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn node process");
    let stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let reader_seen = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let mut seen = reader_seen.lock().expect("seen");
            // libtest prints "test NAME ... " without a newline before the test's own
            // output: read from the marker on.
            let Some(at) = ["ACK ", "STATE ", "DONE"].iter().filter_map(|m| line.find(m)).min() else { continue };
            let mut words = line[at..].split_whitespace();
            match words.next() {
                Some("ACK") => {
                    seen.acked.insert(words.next().unwrap_or_default().to_owned());
                }
                Some("STATE") => {
                    let hash = words.next().unwrap_or_default().to_owned();
                    let count = words.next().and_then(|c| c.parse().ok()).unwrap_or(0);
                    seen.state = Some((hash, count));
                }
                Some("DONE") => seen.done += 1,
                _ => {}
            }
        }
    });
    Process { child, stdin, seen }
}

fn command(process: &mut Process, line: &str) {
    writeln!(process.stdin, "{line}").expect("command");
    process.stdin.flush().expect("flush");
}

fn wait_done(processes: &[&Process], expected: usize) {
    let start = Instant::now();
    while !processes.iter().all(|p| p.seen.lock().expect("seen").done >= expected) {
        assert!(start.elapsed() < Duration::from_secs(60), "writes did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until every process reports the same hash and a count equal to all writes
/// acknowledged anywhere; returns how long it took.
fn wait_converged(seens: &[Arc<Mutex<Seen>>], what: &str) -> Duration {
    let start = Instant::now();
    loop {
        let acked: BTreeSet<String> = seens.iter().flat_map(|s| s.lock().expect("seen").acked.clone()).collect();
        let states: Vec<Option<(String, u64)>> = seens.iter().map(|s| s.lock().expect("seen").state.clone()).collect();
        let first = states[0].clone();
        let agree = first.is_some() && states.iter().all(|state| *state == first);
        if agree && first.as_ref().is_some_and(|(_, count)| *count == acked.len() as u64) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: no convergence in 60 s: {states:?}, {} acked",
            acked.len()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn node_mode(index: usize) {
    let dir = PathBuf::from(std::env::var("BHSYNC_NETNS_DIR").expect("data dir"));
    let peers = (0..NODES).filter(|&j| j != index).map(Network::address).collect();
    let config = NodeConfig {
        listen: Network::address(index),
        data_dir: Some(dir),
        peers,
        anti_entropy_interval: Duration::from_millis(500),
        redial_initial: Duration::from_millis(100),
        redial_max: Duration::from_millis(1_000),
        ..NodeConfig::default()
    };
    let node = Arc::new(Node::open(config).expect("node opens"));
    let reporter = node.clone();
    std::thread::spawn(move || loop {
        if let (Ok(hash), Ok(count)) = (reporter.state_hash(), reporter.entry_count("default")) {
            println!("STATE {hash:?} {count}");
        }
        std::thread::sleep(Duration::from_millis(100));
    });
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let words: Vec<&str> = line.split_whitespace().collect();
        if let ["WRITE", tag, count] = words.as_slice() {
            for n in 0..count.parse::<usize>().unwrap_or(0) {
                let key = format!("{tag}/node{index}/k{n}");
                node.put("default", key.as_bytes(), b"value").expect("put");
                println!("ACK {key}");
            }
            println!("DONE");
        }
    }
}

#[test]
fn five_processes_in_namespaces_converge_through_a_kill_and_a_partition() {
    if let Ok(index) = std::env::var(NODE_ENV) {
        node_mode(index.parse().expect("index"));
        return;
    }
    let network = match Network::create() {
        Ok(network) => network,
        Err(why) => {
            eprintln!("skipped: network namespaces are not available here ({why})");
            return;
        }
    };
    let root = std::env::temp_dir().join(format!("bhsync-netns-{}", std::process::id()));
    let dirs: Vec<PathBuf> = (0..NODES).map(|i| root.join(format!("node{i}"))).collect();
    let seens: Vec<Arc<Mutex<Seen>>> = (0..NODES).map(|_| Arc::default()).collect();
    let mut processes: Vec<Process> = (0..NODES).map(|i| spawn(&network, i, &dirs[i], seens[i].clone())).collect();

    for process in processes.iter_mut() {
        command(process, "WRITE first 100");
    }
    wait_done(&processes.iter().collect::<Vec<_>>(), 1);
    eprintln!("converged after concurrent writes in {:?}", wait_converged(&seens, "after concurrent writes"));

    // SIGKILL node 4, write elsewhere, restart it on its data directory.
    let mut killed = processes.pop().expect("node 4");
    unsafe {
        libc::kill(killed.child.id() as i32, libc::SIGKILL);
    }
    let _ = killed.child.wait();
    // A namespace's `ip netns exec` wrapper may outlive the node; make sure nothing of it remains.
    let _ = killed.child.kill();
    for process in processes.iter_mut() {
        command(process, "WRITE while-down 50");
    }
    wait_done(&processes.iter().collect::<Vec<_>>(), 2);
    let acked_by_4 = seens[4].lock().expect("seen").acked.clone();
    *seens[4].lock().expect("seen") = Seen { acked: acked_by_4, ..Seen::default() };
    processes.push(spawn(&network, 4, &dirs[4], seens[4].clone()));
    eprintln!("converged after the restart in {:?}", wait_converged(&seens, "after the restart"));

    // Partition nodes 0 and 1 away by taking their links down; write on both sides; heal.
    network.set_link(0, false);
    network.set_link(1, false);
    for process in processes.iter_mut() {
        command(process, "WRITE partitioned 50");
    }
    let expected: Vec<usize> = vec![3, 3, 3, 3, 1];
    let start = Instant::now();
    while !(0..NODES).all(|i| seens[i].lock().expect("seen").done >= expected[i]) {
        assert!(start.elapsed() < Duration::from_secs(60), "partitioned writes did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    network.set_link(0, true);
    network.set_link(1, true);
    eprintln!("converged after the heal in {:?}", wait_converged(&seens, "after the heal"));

    for mut process in processes {
        let _ = process.child.kill();
        let _ = process.child.wait();
    }
    let _ = std::fs::remove_dir_all(&root);
}
