//! `bhsync sim --scenario NAME --seed N [--nodes N]`: runs one named simulation
//! scenario with a seed, exactly as the tests and the benchmark do, so a failure they
//! print replays here. Exits 0 when the scenario's invariants held.
//!
//! `bhsync sim swarm --seeds N [--first F] [--jobs J]` runs the whole-node swarm over
//! seeds F..F+N and prints the fault table; `bhsync sim swarm --seed S` replays one.

use std::process::ExitCode;

use bhsync::sim::gossip_scenarios::{self as broadcast, BroadcastRun};
use bhsync::sim::membership_scenarios as membership;

/// The scenarios, by the names failures print.
const SCENARIOS: &[&str] =
    &["crash", "lossy", "split", "forged", "restart", "broadcast", "broadcast-original", "gossip-split"];

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SimArgs {
    #[command(subcommand)]
    swarm: Option<SimCommand>,
    /// crash | lossy | split | forged | restart | broadcast | broadcast-original | gossip-split
    #[arg(long, required = true)]
    scenario: Option<String>,
    /// The seed to run (a failing test or benchmark prints it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes to simulate (each scenario has its own default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(4..=100_000))]
    nodes: Option<u32>,
}

#[derive(clap::Subcommand)]
enum SimCommand {
    /// Whole nodes under every fault, one cluster per seed (issue 9).
    Swarm(SwarmArgs),
}

#[derive(clap::Args)]
struct SwarmArgs {
    /// Replays this one seed and prints its report or its failure with a trace.
    #[arg(long, conflicts_with_all = ["seeds", "first"])]
    seed: Option<u64>,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    seeds: u64,
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// Threads (each runs whole seeds).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
}

pub fn run(args: &SimArgs) -> ExitCode {
    match (&args.swarm, &args.scenario) {
        (Some(SimCommand::Swarm(swarm)), _) => run_swarm(swarm),
        (None, Some(scenario)) => run_scenario(args, scenario),
        (None, None) => {
            eprintln!("name a scenario (--scenario NAME) or run the swarm (bhsync sim swarm --seeds N)");
            ExitCode::from(2)
        }
    }
}

fn run_swarm(args: &SwarmArgs) -> ExitCode {
    use bhsync::sim::swarm::{run_seed, run_seeds};
    if let Some(seed) = args.seed {
        return match run_seed(seed) {
            Ok(report) => {
                println!(
                    "swarm seed {seed}: ok, converged {} ms after the faults, trace hash {:016x}\nplan: {}",
                    report.converged_after_ms, report.trace_hash, report.summary
                );
                for (kind, count) in &report.counts {
                    println!("  {kind}: {count}");
                }
                ExitCode::SUCCESS
            }
            Err(failure) => {
                eprintln!("{failure}");
                ExitCode::FAILURE
            }
        };
    }
    let seeds: Vec<u64> = (args.first..args.first.saturating_add(args.seeds)).collect();
    let started = std::time::Instant::now();
    let done = std::sync::atomic::AtomicU64::new(0);
    let progress = |result: &Result<_, bhsync::sim::swarm::SwarmFailure>| {
        let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Err(failure) = result {
            eprintln!("{failure}\n");
        }
        if finished % 500 == 0 {
            eprintln!("{finished} seeds in {:.0} s", started.elapsed().as_secs_f64());
        }
    };
    let summary = run_seeds(&seeds, args.jobs as usize, &progress);
    let minutes = started.elapsed().as_secs_f64() / 60.0;
    println!(
        "swarm: {} seeds ({}..{}), {} violations, {:.1} min on {} thread(s): {:.0} seeds per minute per thread\n",
        summary.seeds(),
        args.first,
        args.first + args.seeds - 1,
        summary.failures.len(),
        minutes,
        args.jobs,
        summary.seeds() as f64 / minutes / args.jobs as f64
    );
    println!("{}", summary.table());
    if summary.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        let seeds: Vec<String> = summary.failures.iter().map(|f| f.seed.to_string()).collect();
        eprintln!("failing seeds: {}", seeds.join(" "));
        ExitCode::FAILURE
    }
}

fn run_scenario(args: &SimArgs, scenario: &str) -> ExitCode {
    let seed = args.seed;
    let nodes = |default: u32| args.nodes.unwrap_or(default);
    let run = |node_count: u32| BroadcastRun {
        node_count,
        loss: 0.01,
        crash_fraction: 0.1,
        broadcasts: 100,
        broadcast_spacing_ms: 100,
        payload_len: 32,
    };
    let outcome = match scenario {
        "crash" => membership::crash_detection(seed, nodes(100), 0.01, 20_000).map(|r| format!("{r:?}")),
        "lossy" => membership::lossy_run(seed, nodes(40), 0.05, 20 * 60_000).map(|r| format!("{r:?}")),
        "split" => membership::split_and_heal(seed, nodes(60), 60_000, 30_000).map(|r| format!("{r:?}")),
        "forged" => membership::forged_deaths(seed, nodes(30)).map(|r| format!("{r:?}")),
        "restart" => membership::mass_restart(seed, nodes(45), 40_000, 30_000).map(|r| format!("{r:?}")),
        "broadcast" => broadcast::bhsync_broadcasts(seed, &run(nodes(120))).map(|r| format!("{r:?}")),
        "broadcast-original" => broadcast::original_broadcasts(seed, &run(nodes(120))).map(|r| format!("{r:?}")),
        "gossip-split" => {
            broadcast::gossip_split_and_heal(seed, nodes(80), 20_000, 30_000, 10).map(|r| format!("{r:?}"))
        }
        other => {
            eprintln!("unknown scenario '{other}'; known: {}", SCENARIOS.join(", "));
            return ExitCode::from(2);
        }
    };
    match outcome {
        Ok(report) => {
            println!("scenario {scenario} seed {seed}: ok\n{report}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}
