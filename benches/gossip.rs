//! `cargo bench --bench gossip -- [--json] [--nodes N] [--broadcasts B] [--seed S]`
//!
//! Dissemination and membership in the deterministic simulator (issue 5). Broadcasts:
//! N ∈ {1,000, 10,000} nodes, 1% message loss on every link, 10% of nodes silently
//! crashed before the run, 1,000 broadcasts of 32 bytes from random live origins, 100 ms
//! apart; once over Plumtree/HyParView (bhsync) and once over the original design's push
//! gossip (fanout log2 N from the origin, 3 per forward, TTL 10, LRU dedupe), same seed.
//! Reported per protocol: delivery ratio to live nodes, share of broadcasts that
//! reached every live node, payload messages per node per broadcast (whole run and
//! steady state), last-delivery hop (max and mean), relative message redundancy,
//! time to full delivery, and the wall time of the simulation. Membership (SWIM with
//! Lifeguard): time until a crashed node is dead to all at N = 1,000; false suspicions
//! and false deaths per 1,000 node-hours at 5% loss; re-merge time after a two-way split
//! longer than the suspicion timeout. Run by `cargo test` as a smoke test on small N.

use std::time::Instant;

use bhsync::sim::gossip_scenarios::{self as broadcast, BroadcastReport, BroadcastRun};
use bhsync::sim::membership_scenarios as membership;

struct Options {
    json: bool,
    sizes: Vec<u32>,
    broadcasts: u32,
    seed: u64,
    membership_nodes: u32,
    lossy_nodes: u32,
    lossy_ms: u64,
    split_nodes: u32,
}

fn options() -> Options {
    // `cargo bench` passes --bench; `cargo test` (which runs this as a smoke test) does
    // not, and then small groups keep the test suite fast.
    let benching = std::env::args().any(|arg| arg == "--bench");
    let mut options = if benching {
        Options {
            json: false,
            sizes: vec![1_000, 10_000],
            broadcasts: 1_000,
            seed: 1,
            membership_nodes: 1_000,
            lossy_nodes: 100,
            lossy_ms: 3_600_000,
            split_nodes: 200,
        }
    } else {
        Options {
            json: false,
            sizes: vec![100],
            broadcasts: 20,
            seed: 1,
            membership_nodes: 50,
            lossy_nodes: 20,
            lossy_ms: 120_000,
            split_nodes: 30,
        }
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--json" => options.json = true,
            "--nodes" => {
                if let Some(n) = args.next().and_then(|v| v.parse().ok()) {
                    options.sizes = vec![n];
                }
            }
            "--broadcasts" => {
                options.broadcasts = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.broadcasts)
            }
            "--seed" => options.seed = args.next().and_then(|v| v.parse().ok()).unwrap_or(options.seed),
            _ => {} // cargo bench passes --bench; ignore what is not ours.
        }
    }
    options
}

fn print_broadcast(options: &Options, report: &BroadcastReport, wall_s: f64) {
    let n = f64::from(report.node_count);
    let ldh_goal = 1.5 * n.log2();
    if options.json {
        println!(
            "{{\"scenario\":\"broadcast\",\"protocol\":\"{}\",\"nodes\":{},\"live\":{},\"broadcasts\":{},\"loss\":0.01,\"crashed\":0.1,\
\"delivery_ratio\":{:.5},\"full_delivery_share\":{:.4},\"payload_per_node_per_broadcast\":{:.3},\
\"payload_per_node_per_broadcast_steady\":{:.3},\"ldh_max\":{},\"ldh_mean\":{:.2},\"ldh_goal\":{:.1},\"rmr_steady\":{:.3},\
\"full_delivery_ms_p50\":{},\"full_delivery_ms_max\":{},\"sim_steps\":{},\"wall_s\":{:.2}}}",
            report.protocol,
            report.node_count,
            report.live_count,
            report.broadcasts,
            report.delivery_ratio,
            report.full_delivery_share,
            report.payload_per_node_per_broadcast,
            report.payload_per_node_per_broadcast_steady,
            report.ldh_max,
            report.ldh_mean,
            ldh_goal,
            report.rmr_steady,
            report.full_delivery_ms_p50,
            report.full_delivery_ms_max,
            report.steps,
            wall_s
        );
    } else {
        println!(
            "{:<9} N={:<6} delivered {:>8.4}%  all-live {:>6.1}%  payload/node/bcast {:.3} (steady {:.3})  LDH max {} mean {:.1} (goal ≤ {:.1})  RMR {:.3}  full p50 {} ms max {} ms  wall {:.1} s",
            report.protocol,
            report.node_count,
            100.0 * report.delivery_ratio,
            100.0 * report.full_delivery_share,
            report.payload_per_node_per_broadcast,
            report.payload_per_node_per_broadcast_steady,
            report.ldh_max,
            report.ldh_mean,
            ldh_goal,
            report.rmr_steady,
            report.full_delivery_ms_p50,
            report.full_delivery_ms_max,
            wall_s
        );
    }
}

fn print_line(options: &Options, json: String, text: String) {
    if options.json {
        println!("{json}");
    } else {
        println!("{text}");
    }
}

fn main() {
    let options = options();
    for &nodes in &options.sizes {
        let run = BroadcastRun {
            node_count: nodes,
            loss: 0.01,
            crash_fraction: 0.1,
            broadcasts: options.broadcasts,
            broadcast_spacing_ms: 100,
            payload_len: 32,
        };
        let started = Instant::now();
        let ours = broadcast::bhsync_broadcasts(options.seed, &run).unwrap_or_else(|failure| panic!("{failure}"));
        print_broadcast(&options, &ours, started.elapsed().as_secs_f64());
        let started = Instant::now();
        let original = broadcast::original_broadcasts(options.seed, &run).unwrap_or_else(|failure| panic!("{failure}"));
        print_broadcast(&options, &original, started.elapsed().as_secs_f64());
    }

    let started = Instant::now();
    let crash = membership::crash_detection(options.seed, options.membership_nodes, 0.01, 60_000)
        .unwrap_or_else(|failure| panic!("{failure}"));
    let detection_ms = crash.convergence_ms.unwrap_or(u64::MAX);
    print_line(
        &options,
        format!(
            "{{\"scenario\":\"crash_detection\",\"protocol\":\"bhsync\",\"nodes\":{},\"loss\":0.01,\"dead_to_all_ms\":{},\"goal_ms\":10000,\"wall_s\":{:.2}}}",
            crash.node_count,
            detection_ms,
            started.elapsed().as_secs_f64()
        ),
        format!("crash     N={:<6} dead to every live node after {} ms (goal ≤ 10000)", crash.node_count, detection_ms),
    );

    let started = Instant::now();
    let lossy = membership::lossy_run(options.seed, options.lossy_nodes, 0.05, options.lossy_ms)
        .unwrap_or_else(|failure| panic!("{failure}"));
    let per_k = |count: u64| count as f64 * 1000.0 / lossy.node_hours;
    print_line(
        &options,
        format!(
            "{{\"scenario\":\"false_suspicion\",\"protocol\":\"bhsync\",\"nodes\":{},\"loss\":0.05,\"node_hours\":{:.1},\"false_suspicions\":{},\"false_deaths\":{},\
\"false_suspicions_per_1000_node_hours\":{:.1},\"false_deaths_per_1000_node_hours\":{:.2},\"goal_per_1000_node_hours\":1,\"wall_s\":{:.2}}}",
            lossy.node_count,
            lossy.node_hours,
            lossy.false_suspicions,
            lossy.false_deaths,
            per_k(lossy.false_suspicions),
            per_k(lossy.false_deaths),
            started.elapsed().as_secs_f64()
        ),
        format!(
            "lossy     N={:<6} {:.1} node-hours at 5% loss: {} false suspicions ({:.1} per 1000 node-hours), {} false deaths",
            lossy.node_count,
            lossy.node_hours,
            lossy.false_suspicions,
            per_k(lossy.false_suspicions),
            lossy.false_deaths
        ),
    );

    let started = Instant::now();
    let split = membership::split_and_heal(options.seed, options.split_nodes, 60_000, 60_000)
        .unwrap_or_else(|failure| panic!("{failure}"));
    let merge_ms = split.convergence_ms.unwrap_or(u64::MAX);
    print_line(
        &options,
        format!(
            "{{\"scenario\":\"split_heal\",\"protocol\":\"bhsync\",\"nodes\":{},\"split_ms\":60000,\"re_merged_after_heal_ms\":{},\"goal_ms\":30000,\"wall_s\":{:.2}}}",
            split.node_count,
            merge_ms,
            started.elapsed().as_secs_f64()
        ),
        format!("split     N={:<6} 60 s two-way split: all alive to all {} ms after the heal (goal ≤ 30000)", split.node_count, merge_ms),
    );
}
