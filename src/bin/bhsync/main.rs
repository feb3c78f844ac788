//! The `bhsync` command. `bhsync demo` shows replicas converging; later subcommands run
//! a node, generate keys, query status and drive the simulator.

mod demo;
mod sim;

use clap::{Parser, Subcommand};

/// bhsync: the synchronization engine of Blackhole nodes.
#[derive(Parser)]
#[command(name = "bhsync", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Builds several replicas, writes different data to each, syncs them and shows what
    /// converged. Exits 0 only when every state hash agrees.
    Demo(demo::DemoArgs),
    /// Runs a named simulation scenario with a seed (replays a failing simulation test).
    Sim(sim::SimArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Sim(args) => sim::run(&args),
    }
}
