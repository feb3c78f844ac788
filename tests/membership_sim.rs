//! SWIM with Lifeguard in the deterministic simulator, with fixed seeds. A failure
//! prints its seed and the command that replays it.

use bhsync::sim::membership_scenarios as scenario;
use bhsync::sim::SimFailure;

fn ok<T>(result: Result<T, SimFailure>) -> T {
    result.unwrap_or_else(|failure| panic!("{failure}"))
}

#[test]
fn same_seed_gives_the_same_trace_twice() {
    let first = ok(scenario::crash_detection(5, 40, 0.01, 30_000));
    let second = ok(scenario::crash_detection(5, 40, 0.01, 30_000));
    let other = ok(scenario::crash_detection(6, 40, 0.01, 30_000));
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first, second);
    assert_ne!(first.trace_hash, other.trace_hash);
}

#[test]
fn crashed_node_is_declared_dead_by_every_live_node_within_bounded_time() {
    for seed in [1, 2] {
        let report = ok(scenario::crash_detection(seed, 100, 0.01, 20_000));
        let detection_ms = report.convergence_ms.unwrap_or(u64::MAX);
        println!("seed {seed}: crash known to all in {detection_ms} ms");
        assert!(detection_ms <= 10_000, "seed {seed}: {detection_ms} ms");
    }
}

#[test]
fn healthy_nodes_are_never_declared_dead_at_five_percent_loss() {
    let report = ok(scenario::lossy_run(3, 40, 0.05, 20 * 60_000));
    println!("{report:?}");
    assert_eq!(report.false_deaths, 0);
}

#[test]
fn two_way_split_longer_than_the_suspicion_timeout_re_merges_after_heal() {
    let report = ok(scenario::split_and_heal(4, 60, 60_000, 30_000));
    println!("re-merged {} ms after the heal", report.convergence_ms.unwrap_or(0));
}

#[test]
fn forged_stale_death_notices_never_evict_a_live_node() {
    let report = ok(scenario::forged_deaths(7, 30));
    assert!(report.stale_notices_ignored > 0);
}

#[test]
fn after_a_mass_restart_no_node_stays_dead_to_another() {
    let report = ok(scenario::mass_restart(8, 45, 40_000, 30_000));
    println!("all alive again {} ms after the restart", report.convergence_ms.unwrap_or(0));
}

#[test]
fn skewed_and_drifting_clocks_do_not_cause_false_deaths_and_crashes_are_still_found() {
    use bhsync::membership::{MemberState, MembershipEvent};
    use bhsync::sim::{ClockModel, LinkProfile};
    let mut sim = scenario::swim_group("drift", 12, 40, LinkProfile::default().with_loss(0.01));
    for index in 0..40u32 {
        // Offsets up to ±2 s and rates up to ±500 ppm, far worse than quartz.
        let clock = ClockModel { offset_ms: (i64::from(index) - 20) * 100, drift_ppm: (i64::from(index % 11) - 5) * 100 };
        sim.set_clock(index, clock);
    }
    let victim = 7u32;
    let victim_id = sim.id(victim);
    let mut observer = |_: u64, _: u32, event: MembershipEvent| match event {
        MembershipEvent::MemberDead(id) if id != victim_id => Err(format!("healthy {id:?} declared dead")),
        _ => Ok(()),
    };
    ok(sim.run_until(60_000, &mut observer));
    sim.crash(victim);
    ok(sim.run_until(75_000, &mut observer));
    for index in (0..40u32).filter(|&i| i != victim) {
        let state = sim.process(index).and_then(|swim| swim.state_of(&victim_id));
        assert!(matches!(state, Some(MemberState::Dead) | None), "node {index} sees the victim {state:?}");
    }
}
