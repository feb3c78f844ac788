//! The `bhsync` subcommands answer `--help`, and `bench` and `sim` run end to end on a
//! small budget. Reproduce: `cargo run -- bench --samples 50 --warmup 10`.

use std::process::Command;

fn bhsync(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bhsync")).args(args).output().expect("run bhsync")
}

#[test]
fn every_subcommand_has_help() {
    for command in ["demo", "node", "keygen", "status", "sim", "bench"] {
        let output = bhsync(&[command, "--help"]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success() && stdout.contains("Usage: bhsync"), "bhsync {command} --help: {stdout}");
    }
}

#[test]
fn bench_prints_latency_percentiles_as_json() {
    let output = bhsync(&["bench", "--samples", "50", "--warmup", "10", "--cores", "0,0,0"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let json = stdout.trim();
    assert!(json.starts_with('{') && json.ends_with('}'), "{json}");
    for field in [
        "\"benchmark\":\"put_on_a_visible_on_b\"",
        "\"samples\":50",
        "\"p50\":",
        "\"p99\":",
        "\"p999\":",
        "\"unit\":\"us\"",
    ] {
        assert!(json.contains(field), "{field} missing: {json}");
    }
}

#[test]
fn sim_runs_a_named_scenario_and_rejects_an_unknown_one() {
    let output = bhsync(&["sim", "--scenario", "forged", "--seed", "3", "--nodes", "8"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let unknown = bhsync(&["sim", "--scenario", "nope"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn sim_swarm_replays_a_seed_and_runs_a_range() {
    // Two processes (each with its own hash-map seeds) replay seed 7 identically.
    let trace_of = || {
        let one = bhsync(&["sim", "swarm", "--seed", "7"]);
        let stdout = String::from_utf8_lossy(&one.stdout).into_owned();
        assert!(one.status.success(), "{stdout}{}", String::from_utf8_lossy(&one.stderr));
        assert!(stdout.contains("swarm seed 7: ok") && stdout.contains("plan: seed 7 nodes"), "{stdout}");
        stdout.lines().next().and_then(|line| line.split("trace hash ").nth(1)).map(str::to_owned)
    };
    let first = trace_of();
    assert!(first.is_some());
    assert_eq!(first, trace_of(), "seed 7 ran differently in two processes");
    let range = bhsync(&["sim", "swarm", "--seeds", "2", "--first", "20"]);
    let stdout = String::from_utf8_lossy(&range.stdout);
    assert!(range.status.success(), "{stdout}{}", String::from_utf8_lossy(&range.stderr));
    assert!(stdout.contains("2 seeds (20..21), 0 violations") && stdout.contains("| fault kind |"), "{stdout}");
    let neither = bhsync(&["sim"]);
    assert_eq!(neither.status.code(), Some(2), "{}", String::from_utf8_lossy(&neither.stderr));
}
