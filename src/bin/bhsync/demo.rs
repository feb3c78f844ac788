//! `bhsync demo`: replicas in one process write different data, then reconcile through
//! reconciliation sessions (a difference estimate, rateless IBLT symbols, then only the
//! versions the other side lacks), until every state hash agrees.

use std::process::ExitCode;
use std::time::Instant;

use bhsync::reconcile::SessionConfig;
use bhsync::sim::rng::SimRng;
use bhsync::state::{NodeId, Replica};

/// Options of `bhsync demo`.
#[derive(clap::Args)]
pub struct DemoArgs {
    /// Number of replicas.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(2..=64))]
    replicas: u32,
    /// Entries each replica writes.
    #[arg(long, default_value_t = 20_000)]
    entries: u32,
    /// Shards per category (1 to 16); the state hash does not depend on it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    shards: u32,
    /// Seed for the data each replica writes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

const CATEGORIES: [&str; 3] = ["users", "settings", "audit"];

fn node_id(index: u32) -> NodeId {
    let mut id = [0u8; 32];
    id[..4].copy_from_slice(&index.to_be_bytes());
    NodeId(*blake3::hash(&id).as_bytes())
}

/// Each replica writes its own keys, some shared keys (concurrent writes that
/// last-writer-wins must settle identically everywhere) and a few deletions.
fn write_data(replica: &mut Replica, index: u32, args: &DemoArgs, clock: &mut u64) -> Result<(), String> {
    let mut generator = SimRng::new(args.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (index as u64 + 1));
    for n in 0..args.entries {
        let category = CATEGORIES[(generator.next_u64() % 3) as usize];
        let shared = generator.next_u64() % 10 == 0;
        let key = if shared { format!("shared-{}", generator.next_u64() % 1000) } else { format!("r{index}-{n}") };
        let value = format!("value {n} from replica {index}");
        *clock += 1;
        replica.put(category, key.as_bytes(), value.as_bytes(), *clock).map_err(|e| e.to_string())?;
        if n % 50 == 49 {
            replica.delete(category, key.as_bytes(), *clock).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

fn all_equal(replicas: &[Replica]) -> bool {
    let first = replicas[0].state_hash();
    replicas.iter().all(|r| r.state_hash() == first)
}

fn print_table(replicas: &[Replica]) {
    println!("  {:<8} {:>9} {:>10}  state hash", "replica", "entries", "categories");
    for (index, replica) in replicas.iter().enumerate() {
        let entries: u64 = replica.categories().map(|c| c.len()).sum();
        let categories = replica.categories().count();
        println!("  {:<8} {:>9} {:>10}  {}", index, entries, categories, replica.state_hash().to_hex());
    }
}

/// Runs the demo; the exit code is 0 only when all replicas converged.
pub fn run(args: &DemoArgs) -> ExitCode {
    match demo(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("bhsync demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn demo(args: &DemoArgs) -> Result<bool, String> {
    let count = args.replicas;
    println!("bhsync demo: {count} replicas, {} entries each, {} shards per category\n", args.entries, args.shards);
    let mut replicas = Vec::new();
    let mut clock = 0u64;
    let started = Instant::now();
    for index in 0..count {
        let mut replica = Replica::new(node_id(index), args.shards as usize).map_err(|e| e.to_string())?;
        write_data(&mut replica, index, args, &mut clock)?;
        replicas.push(replica);
    }
    println!("written in {:.0} ms; every replica holds different data:", started.elapsed().as_secs_f64() * 1e3);
    print_table(&replicas);

    // Anti-entropy rounds: in each round replica i reconciles with replica i + 2^round,
    // so every replica has heard from every other after ceil(log2 n) rounds.
    let config = SessionConfig { sketch_capacity: 1 << 18, ..SessionConfig::default() };
    let mut round = 0;
    while !all_equal(&replicas) {
        let step = 1usize << round;
        if step >= replicas.len() * 2 {
            break;
        }
        let started = Instant::now();
        let (mut moved, mut bytes, mut round_trips) = (0, 0, 0);
        for i in 0..replicas.len() {
            let j = (i + step) % replicas.len();
            if i == j {
                continue;
            }
            let (left, right) = pair_mut(&mut replicas, i, j);
            for (category, report) in left.reconcile_with(right, &config).map_err(|e| e.to_string())? {
                let report = report.map_err(|e| format!("category {category}: {e}"))?;
                moved += report.items_sent + report.items_received;
                bytes += report.bytes_sent + report.bytes_received;
                round_trips += report.round_trips;
            }
        }
        round += 1;
        let distinct = distinct_hashes(&replicas);
        println!(
            "\nround {round}: each replica reconciled with the one {step} ahead: {moved} versions and {:.1} MB in {round_trips} round trips, {:.0} ms; {distinct} distinct state hash(es)",
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64() * 1e3
        );
    }
    for replica in &replicas {
        replica.verify_consistency()?;
    }
    let converged = all_equal(&replicas);
    println!("\nafter {round} round(s):");
    print_table(&replicas);
    if converged {
        println!("\nconverged: all {count} replicas have the same state hash (and every cached hash re-verified)");
    } else {
        println!("\nNOT converged: state hashes differ");
    }
    Ok(converged)
}

fn distinct_hashes(replicas: &[Replica]) -> usize {
    let mut hashes: Vec<_> = replicas.iter().map(Replica::state_hash).collect();
    hashes.sort();
    hashes.dedup();
    hashes.len()
}

fn pair_mut(replicas: &mut [Replica], i: usize, j: usize) -> (&mut Replica, &mut Replica) {
    assert_ne!(i, j);
    if i < j {
        let (head, tail) = replicas.split_at_mut(j);
        (&mut head[i], &mut tail[0])
    } else {
        let (head, tail) = replicas.split_at_mut(i);
        (&mut tail[0], &mut head[j])
    }
}
