//! `bhsync sim --scenario NAME --seed N [--nodes N]`: runs one named simulation
//! scenario with a seed, exactly as the tests and the benchmark do, so a failure they
//! print replays here. Exits 0 when the scenario's invariants held.

use std::process::ExitCode;

use bhsync::sim::gossip_scenarios::{self as broadcast, BroadcastRun};
use bhsync::sim::membership_scenarios as membership;

/// The scenarios, by the names failures print.
const SCENARIOS: &[&str] =
    &["crash", "lossy", "split", "forged", "restart", "broadcast", "broadcast-original", "gossip-split"];

#[derive(clap::Args)]
pub struct SimArgs {
    /// crash | lossy | split | forged | restart | broadcast | broadcast-original | gossip-split
    #[arg(long)]
    scenario: String,
    /// The seed to run (a failing test or benchmark prints it).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Nodes to simulate (each scenario has its own default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(4..=100_000))]
    nodes: Option<u32>,
}

pub fn run(args: &SimArgs) -> ExitCode {
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
    let outcome = match args.scenario.as_str() {
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
            println!("scenario {} seed {seed}: ok\n{report}", args.scenario);
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("{failure}");
            ExitCode::FAILURE
        }
    }
}
