//! `bhsync bench`: put-on-A-visible-on-B latency between two local nodes over loopback,
//! for dedicated hardware. Each node's engine thread and the measuring thread are
//! pinned to cores (`--cores A,B,M`), a warm-up runs first (connections, caches,
//! allocator), then every sample times one `put` on A until B reports the key updated
//! (its eager push), recorded in an HDR histogram in microseconds. The result is one
//! JSON object on stdout (or `--out FILE`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use bhsync::node::{Node, NodeConfig, NodeEvent};

use crate::failure::Failure;

/// Options of `bhsync bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Measured samples.
    #[arg(long, default_value_t = 10_000)]
    samples: u32,
    /// Warm-up writes, not measured.
    #[arg(long, default_value_t = 1_000)]
    warmup: u32,
    /// Bytes per value.
    #[arg(long, default_value_t = 64)]
    value_size: usize,
    /// Cores for node A's engine, node B's engine and the measuring thread.
    #[arg(long, value_delimiter = ',', default_values_t = [0usize, 1, 0])]
    cores: Vec<usize>,
    /// IO backend: auto, io_uring or mio.
    #[arg(long, default_value = "auto")]
    io_backend: String,
    /// Write the JSON here instead of stdout (must not exist).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// How long one sample may take before the benchmark gives up.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a sample waits for B's event before it reads B itself.
const READ_CHECK: Duration = Duration::from_millis(100);

fn node(index: u8, core: usize, backend: &str, peers: Vec<std::net::SocketAddr>) -> Result<Node, Failure> {
    let mut secret = [0u8; 32];
    secret[1] = index; // not byte 0: X25519 clamps its low bits
    secret[31] = 0xbe;
    let config = NodeConfig {
        identity_secret: Some(secret),
        cores: Some(vec![core]),
        io_backend: crate::config::backend(backend)?,
        peers,
        ..NodeConfig::default()
    };
    Node::open(config).map_err(|error| Failure::runtime(format!("cannot start a bench node: {error}")))
}

pub fn run(args: &BenchArgs) -> Result<ExitCode, Failure> {
    if args.cores.len() != 3 {
        return Err(Failure::usage("--cores takes three cores: node A, node B, measuring thread (e.g. 2,3,4)"));
    }
    if let Some(out) = &args.out {
        if out.exists() {
            return Err(Failure::usage(format!("{} already exists; choose another --out", out.display())));
        }
    }
    let b = node(2, args.cores[1], &args.io_backend, Vec::new())?;
    let a = node(1, args.cores[0], &args.io_backend, vec![b.local_addr()])?;
    wait_connected(&a, &b)?;
    if let Some(cores) = core_affinity::get_core_ids() {
        if let Some(core) = cores.get(args.cores[2] % cores.len().max(1)) {
            core_affinity::set_for_current(*core);
        }
    }
    let value = vec![0x5a; args.value_size];
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("constant bounds are valid");
    for n in 0..args.warmup {
        sample(&a, &b, format!("warm-{n}").as_bytes(), &value)?;
    }
    let started = Instant::now();
    for n in 0..args.samples {
        let micros = sample(&a, &b, format!("key-{n}").as_bytes(), &value)?;
        let _ = histogram.record(micros.max(1));
    }
    let elapsed = started.elapsed();
    let json = to_json(args, &histogram, elapsed, &a);
    match &args.out {
        Some(path) => std::fs::write(path, json + "\n")
            .map_err(|error| Failure::runtime(format!("cannot write {}: {error}", path.display())))?,
        None => println!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn wait_connected(a: &Node, b: &Node) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while a.peers().map(|p| p.is_empty()).unwrap_or(true) || b.peers().map(|p| p.is_empty()).unwrap_or(true) {
        if Instant::now() > deadline {
            return Err(Failure::runtime("the two bench nodes did not connect within 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    while b.poll_event(Duration::ZERO).is_some() {}
    Ok(())
}

/// One put on A until B reports the key: microseconds. B's `Updated` event is the
/// signal; B is also read every [`READ_CHECK`] without one, because a write that
/// reaches B another way than its push (the push went out before A's overlay held B,
/// and anti-entropy brought the key in a stream) raises no per-key event.
fn sample(a: &Node, b: &Node, key: &[u8], value: &[u8]) -> Result<u64, Failure> {
    let start = Instant::now();
    a.put("default", key, value).map_err(|error| Failure::runtime(format!("put on A failed: {error}")))?;
    loop {
        let left = SAMPLE_TIMEOUT
            .checked_sub(start.elapsed())
            .ok_or_else(|| Failure::runtime(format!("a write on A was not visible on B within {SAMPLE_TIMEOUT:?}")))?;
        match b.poll_event(left.min(READ_CHECK)) {
            Some(NodeEvent::Updated { key: seen, .. }) if seen == key => {
                return Ok(start.elapsed().as_micros() as u64);
            }
            Some(_) => {}
            None => {
                if b.get("default", key).ok().flatten().is_some_and(|seen| seen == value) {
                    return Ok(start.elapsed().as_micros() as u64);
                }
            }
        }
    }
}

fn to_json(args: &BenchArgs, h: &Histogram<u64>, elapsed: Duration, a: &Node) -> String {
    let backend = a.metrics().map(|m| m.io.kind_name()).unwrap_or("unknown");
    let mut out = String::with_capacity(512);
    let _ = write!(
        out,
        "{{\"benchmark\":\"put_on_a_visible_on_b\",\"unit\":\"us\",\"io_backend\":\"{backend}\",\"samples\":{},\"warmup\":{},\
         \"value_size\":{},\"cores\":[{},{},{}],\"mean\":{:.1},\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{},\
         \"min\":{},\"writes_per_s\":{:.1}}}",
        h.len(),
        args.warmup,
        args.value_size,
        args.cores[0],
        args.cores[1],
        args.cores[2],
        h.mean(),
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.9),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.min(),
        h.len() as f64 / elapsed.as_secs_f64().max(1e-9)
    );
    out
}
