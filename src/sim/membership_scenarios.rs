//! Named, seeded membership scenarios: the simulation tests run them with fixed seeds,
//! and `bhsync sim --scenario NAME --seed N` replays any of them. Each returns a report
//! of what it measured, or a [`SimFailure`] naming the seed when an invariant broke.

use super::{sim_node_id, LinkProfile, Network, SimFailure, SeededRng, Simulator};
use crate::membership::{MemberState, MembershipEvent, Message, Swim, SwimConfig, Update};

/// What a membership scenario measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MembershipReport {
    /// Nodes simulated.
    pub node_count: u32,
    /// Simulated time covered, ms.
    pub simulated_ms: u64,
    /// Time from the event of interest (crash, heal) until every live node agreed, ms.
    pub convergence_ms: Option<u64>,
    /// Healthy nodes declared dead by a healthy node (false positives).
    pub false_deaths: u64,
    /// Healthy nodes suspected by a healthy node (later refuted).
    pub false_suspicions: u64,
    /// Node-hours of healthy nodes simulated.
    pub node_hours: f64,
    /// Notices ignored for their stale incarnation, summed over nodes.
    pub stale_notices_ignored: u64,
    /// Trace hash of the run.
    pub trace_hash: u64,
}

/// A group of `node_count` SWIM members that all know each other, over `link`.
pub fn swim_group(scenario: &str, seed: u64, node_count: u32, link: LinkProfile) -> Simulator<Swim> {
    let mut sim = Simulator::new(scenario, seed, Network::new(link));
    let ids: Vec<_> = (0..node_count).map(sim_node_id).collect();
    let mut seeds = SeededRng::new(seed);
    for (index, id) in ids.iter().enumerate() {
        let swim = Swim::new(SwimConfig::default(), *id, 0, seeds.fork(), &ids, 0);
        sim.add_node(*id, swim);
        sim.flush(index as u32);
    }
    sim
}

/// Whether every running node sees `subject` in `state` (or, for `Dead`, has reclaimed it).
fn all_see(sim: &Simulator<Swim>, subject: u32, wanted: MemberState) -> bool {
    let id = sim.id(subject);
    (0..sim.node_count()).filter(|&i| i != subject).all(|i| match sim.process(i) {
        None => true,
        Some(swim) => match swim.state_of(&id) {
            Some(state) => state == wanted,
            None => wanted == MemberState::Dead,
        },
    })
}

/// Whether every pair of running nodes sees each other alive.
fn fully_merged(sim: &Simulator<Swim>) -> bool {
    let running: Vec<u32> = (0..sim.node_count()).filter(|&i| sim.is_running(i)).collect();
    running.iter().all(|&i| {
        let Some(swim) = sim.process(i) else { return true };
        running.iter().all(|&j| i == j || swim.state_of(&sim.id(j)) == Some(MemberState::Alive))
    })
}

/// Advances in `step_ms` slices until `done` holds or `limit_ms` passes; returns the
/// time at which it held. `observer` sees every event.
fn run_until_true<F>(
    sim: &mut Simulator<Swim>,
    step_ms: u64,
    limit_ms: u64,
    observer: &mut F,
    done: impl Fn(&Simulator<Swim>) -> bool,
) -> Result<Option<u64>, SimFailure>
where
    F: FnMut(u64, u32, MembershipEvent) -> Result<(), String>,
{
    let end_ms = sim.now_ms() + limit_ms;
    while sim.now_ms() < end_ms {
        sim.run_until(sim.now_ms() + step_ms, observer)?;
        if done(sim) {
            return Ok(Some(sim.now_ms()));
        }
    }
    Ok(None)
}

/// False verdicts about running nodes.
struct Accusations {
    false_deaths: u64,
    false_suspicions: u64,
}

/// One node crashes silently after a warm-up; every live node must declare it dead
/// within `limit_ms`, and no healthy node may be declared dead meanwhile.
pub fn crash_detection(seed: u64, node_count: u32, loss: f64, limit_ms: u64) -> Result<MembershipReport, SimFailure> {
    let mut sim = swim_group("crash", seed, node_count, LinkProfile::default().with_loss(loss));
    let victim = SeededRng::new(seed).below(u64::from(node_count)) as u32;
    let ids: Vec<_> = (0..node_count).map(sim_node_id).collect();
    let mut before_crash = |_: u64, _: u32, event: MembershipEvent| match event {
        MembershipEvent::MemberDead(id) => Err(format!("healthy {id:?} declared dead")),
        _ => Ok(()),
    };
    sim.run_until(5_000, &mut before_crash)?;
    let mut observer = |_: u64, _: u32, event: MembershipEvent| match event {
        MembershipEvent::MemberDead(id) if id != ids[victim as usize] => Err(format!("healthy {id:?} declared dead")),
        _ => Ok(()),
    };
    sim.crash(victim);
    let crash_ms = sim.now_ms();
    let detected =
        run_until_true(&mut sim, 100, limit_ms, &mut observer, |sim| all_see(sim, victim, MemberState::Dead))?;
    let Some(detected_ms) = detected else {
        return Err(sim.failure(format!("crashed node {victim} not known dead by all within {limit_ms} ms")));
    };
    Ok(MembershipReport {
        node_count,
        simulated_ms: sim.now_ms(),
        convergence_ms: Some(detected_ms - crash_ms),
        trace_hash: sim.trace_hash(),
        ..MembershipReport::default()
    })
}

/// A healthy group over lossy links for `duration_ms`: counts false suspicions and
/// false deaths (every node is healthy, so every verdict is false).
pub fn lossy_run(seed: u64, node_count: u32, loss: f64, duration_ms: u64) -> Result<MembershipReport, SimFailure> {
    let mut sim = swim_group("lossy", seed, node_count, LinkProfile::default().with_loss(loss));
    let mut counts = Accusations { false_deaths: 0, false_suspicions: 0 };
    let mut observer = |_: u64, _: u32, event: MembershipEvent| {
        if let MembershipEvent::MemberDead(_) = event {
            counts.false_deaths += 1;
        }
        Ok(())
    };
    sim.run_until(duration_ms, &mut observer)?;
    let stale = (0..node_count).filter_map(|i| sim.process(i)).map(|s| s.stats().stale_notices_ignored).sum();
    // Suspicions raised first-hand (one per failed probe), not their echoes elsewhere.
    counts.false_suspicions = (0..node_count).filter_map(|i| sim.process(i)).map(|s| s.stats().suspicions_raised).sum();
    Ok(MembershipReport {
        node_count,
        simulated_ms: duration_ms,
        false_deaths: counts.false_deaths,
        false_suspicions: counts.false_suspicions,
        node_hours: f64::from(node_count) * duration_ms as f64 / 3_600_000.0,
        stale_notices_ignored: stale,
        trace_hash: sim.trace_hash(),
        ..MembershipReport::default()
    })
}

/// The group splits in two halves for `split_ms` (longer than the suspicion timeout,
/// so each side buries the other), then heals; every node must see every other alive
/// again within `limit_ms`. Checks that the minority-side detection fired.
pub fn split_and_heal(
    seed: u64,
    node_count: u32,
    split_ms: u64,
    limit_ms: u64,
) -> Result<MembershipReport, SimFailure> {
    let mut sim = swim_group("split", seed, node_count, LinkProfile::default());
    let mut partitions_detected = 0u64;
    let mut observer = |_: u64, _: u32, event: MembershipEvent| {
        if let MembershipEvent::PartitionDetected { .. } = event {
            partitions_detected += 1;
        }
        Ok(())
    };
    sim.run_until(3_000, &mut observer)?;
    let half = node_count / 2;
    sim.network.split(node_count, |i| u32::from(i >= half));
    sim.run_until(3_000 + split_ms, &mut observer)?;
    let buried = all_see(&sim, 0, MemberState::Dead)
        || (half..node_count)
            .all(|i| sim.process(i).map_or(true, |s| s.state_of(&sim.id(0)) != Some(MemberState::Alive)));
    if !buried {
        return Err(sim.failure("the split did not last long enough for the sides to bury each other"));
    }
    sim.network.heal();
    let heal_ms = sim.now_ms();
    let merged = run_until_true(&mut sim, 250, limit_ms, &mut observer, fully_merged)?;
    let Some(merged_ms) = merged else {
        return Err(sim.failure(format!("the halves did not re-merge within {limit_ms} ms of the heal")));
    };
    if partitions_detected == 0 {
        return Err(sim.failure("no node detected the partition"));
    }
    Ok(MembershipReport {
        node_count,
        simulated_ms: sim.now_ms(),
        convergence_ms: Some(merged_ms - heal_ms),
        trace_hash: sim.trace_hash(),
        ..MembershipReport::default()
    })
}

/// An attacker (a crashed node's address) sends death notices about live nodes with
/// incarnations older than theirs. None may be evicted, and the notices are counted.
pub fn forged_deaths(seed: u64, node_count: u32) -> Result<MembershipReport, SimFailure> {
    let mut sim = swim_group("forged", seed, node_count, LinkProfile::default());
    let attacker = node_count - 1;
    sim.crash(attacker);
    let mut observer = |_: u64, _: u32, event: MembershipEvent| match event {
        MembershipEvent::MemberDead(id) if id != sim_node_id(attacker) => Err(format!("live {id:?} evicted")),
        _ => Ok(()),
    };
    // Make every victim refute a suspicion once, so it has an incarnation to be stale against.
    sim.run_until(2_000, &mut observer)?;
    for victim in 0..attacker {
        let notice =
            Update { node: sim.id(victim), incarnation: 0, state: MemberState::Suspect, from: Some(sim.id(attacker)) };
        let frame = Message::Ping { seq: 1, updates: vec![notice] }.to_bytes();
        sim.inject(attacker, victim, frame, 1);
    }
    sim.run_until(30_000, &mut observer)?;
    let mut rng = SeededRng::new(seed ^ 0xF0);
    for _ in 0..(node_count * 20) {
        let victim = rng.below(u64::from(attacker)) as u32;
        let target = rng.below(u64::from(attacker)) as u32;
        let Some(incarnation) = sim.process(victim).map(Swim::incarnation) else { continue };
        if incarnation == 0 || target == victim {
            continue;
        }
        let notice =
            Update { node: sim.id(victim), incarnation: incarnation - 1, state: MemberState::Dead, from: None };
        let frame = Message::Ping { seq: 7, updates: vec![notice] }.to_bytes();
        sim.inject(attacker, target, frame, rng.below(1_000));
    }
    sim.run_until(60_000, &mut observer)?;
    let stale: u64 = (0..node_count).filter_map(|i| sim.process(i)).map(|s| s.stats().stale_notices_ignored).sum();
    if stale == 0 {
        return Err(sim.failure("no forged notice was counted"));
    }
    Ok(MembershipReport {
        node_count,
        simulated_ms: sim.now_ms(),
        stale_notices_ignored: stale,
        trace_hash: sim.trace_hash(),
        ..Default::default()
    })
}

/// A third of the group crashes, stays down past the suspicion timeout and restarts
/// with a higher incarnation (its boot time); no node may stay dead to any other.
pub fn mass_restart(seed: u64, node_count: u32, down_ms: u64, limit_ms: u64) -> Result<MembershipReport, SimFailure> {
    let mut sim = swim_group("restart", seed, node_count, LinkProfile::default().with_loss(0.01));
    let mut observer = |_: u64, _: u32, _: MembershipEvent| Ok(());
    sim.run_until(3_000, &mut observer)?;
    let restarting: Vec<u32> = (0..node_count).filter(|i| i % 3 == 0).collect();
    for &index in &restarting {
        sim.crash(index);
    }
    sim.run_until(3_000 + down_ms, &mut observer)?;
    let ids: Vec<_> = (0..node_count).map(sim_node_id).collect();
    let mut rng = SeededRng::new(seed ^ 0x7E57A27);
    for &index in &restarting {
        let now_ms = sim.local_now_ms(index);
        // A restarted node knows its seeds from configuration: here the first three.
        let swim = Swim::new(SwimConfig::default(), ids[index as usize], now_ms, rng.fork(), &ids[1..4], now_ms);
        sim.restart(index, swim);
    }
    let restart_ms = sim.now_ms();
    let merged = run_until_true(&mut sim, 250, limit_ms, &mut observer, fully_merged)?;
    let Some(merged_ms) = merged else {
        return Err(sim.failure(format!("restarted nodes still not alive to everyone {limit_ms} ms after the restart")));
    };
    Ok(MembershipReport {
        node_count,
        simulated_ms: sim.now_ms(),
        convergence_ms: Some(merged_ms - restart_ms),
        trace_hash: sim.trace_hash(),
        ..Default::default()
    })
}
