//! The `bhsync` command: `demo` (a local cluster that writes, splits, heals and
//! converges), `node` (one node until interrupted, with an admin endpoint), `keygen`,
//! `status`, `sim` (named simulation scenarios) and `bench` (put-on-A-visible-on-B
//! latency). Decisions: docs/adr/060-operability.md.
//!
//! Every failure the user can cause ends in one line on stderr that names the problem
//! and what to do, and a non-zero exit code: 2 for bad usage or configuration, 1 for
//! everything else.

mod admin;
mod bench;
mod config;
mod demo;
mod failure;
mod keygen;
mod node;
mod report;
mod sim;
mod status;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// bhsync: the synchronization engine of Blackhole nodes.
#[derive(Parser)]
#[command(name = "bhsync", version, about, long_about = None)]
struct Cli {
    /// Log level for engine events on stderr: error, warn, info, debug, trace, off.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Starts a local cluster over loopback, writes, splits it, heals it and shows
    /// convergence. Exits 0 only when every state hash agrees.
    Demo(demo::DemoArgs),
    /// Runs one node until SIGINT or SIGTERM; `--admin ADDR` serves /metrics and /health.
    Node(node::NodeArgs),
    /// Generates a node identity (secret key file) and prints its node id.
    Keygen(keygen::KeygenArgs),
    /// Shows a running node's health, read from its admin address.
    Status(status::StatusArgs),
    /// Runs a named simulation scenario with a seed (replays a failing simulation test).
    Sim(sim::SimArgs),
    /// Measures put-on-A-visible-on-B latency between two local nodes (JSON output).
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return failure::usage(error),
    };
    if let Err(failure) = init_logs(&cli.log) {
        return failure.exit();
    }
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Node(args) => node::run(&args),
        Command::Keygen(args) => keygen::run(&args),
        Command::Status(args) => status::run(&args),
        Command::Sim(args) => return sim::run(&args),
        Command::Bench(args) => bench::run(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(failure) => failure.exit(),
    }
}

/// Engine events (peer up/down, misbehaviour, fatal errors) go to stderr through tracing.
fn init_logs(level: &str) -> Result<(), failure::Failure> {
    let filter = match level {
        "off" => tracing_subscriber::filter::LevelFilter::OFF,
        other => other.parse::<tracing::Level>().map(Into::into).map_err(|_| {
            failure::Failure::usage(format!("unknown log level '{other}': use error, warn, info, debug, trace or off"))
        })?,
    };
    let _ = tracing_subscriber::fmt()
        .with_max_level(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
    Ok(())
}
