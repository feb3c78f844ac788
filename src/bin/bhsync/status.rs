//! `bhsync status ADDR`: a running node's health, read from its admin endpoint (`bhsync
//! node --admin ADDR`) and printed for a person. Exit code: 0 healthy or degraded, 1
//! critical or unreachable.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::admin;
use crate::failure::{io_hint, Failure};

/// Options of `bhsync status`.
#[derive(clap::Args)]
pub struct StatusArgs {
    /// The node's admin address (its `--admin`), e.g. 127.0.0.1:9100.
    addr: SocketAddr,
    /// Print the JSON health report instead.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &StatusArgs) -> Result<ExitCode, Failure> {
    let unreachable = |error: std::io::Error| {
        Failure::runtime(format!(
            "cannot reach the admin endpoint at {}: {} ({error}); is the node running with --admin {}?",
            args.addr,
            io_hint(&error),
            args.addr
        ))
    };
    let (code, json) = admin::get(args.addr, "/health").map_err(unreachable)?;
    if code != 200 {
        return Err(Failure::runtime(format!(
            "{} answered {code} for /health; is it a bhsync admin endpoint?",
            args.addr
        )));
    }
    if args.json {
        println!("{json}");
    } else {
        let (_, text) = admin::get(args.addr, "/status").map_err(unreachable)?;
        print!("{text}");
    }
    let critical = json.contains("\"status\":\"critical\"");
    Ok(if critical { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
