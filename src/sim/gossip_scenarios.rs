//! Named, seeded broadcast scenarios over Plumtree/HyParView and over the original
//! design's push gossip, measuring what the literature reports (Leitão et al. 2007,
//! iroh-gossip's simulator): delivery ratio, last-delivery hop (LDH), relative message
//! redundancy (RMR = payload messages / (nodes reached − 1) − 1), payload messages per
//! node per broadcast, and time to full delivery.

use std::collections::HashMap;

use super::baseline::{PushDelivery, PushGossip};
use super::{sim_node_id, LinkProfile, Network, Process, SimFailure, SeededRng, Simulator};
use crate::gossip::{Gossip, GossipConfig, GossipEvent, MessageId};

/// A node the broadcast measurement can drive.
pub trait BroadcastNode: Process {
    /// Starts a broadcast; `None` if refused.
    fn start(&mut self, now_ms: u64, payload: Vec<u8>) -> Option<MessageId>;
    /// The (id, hops) of a delivery event.
    fn delivered(event: &Self::Event) -> Option<(MessageId, u32)>;
    /// Payload frames this node has sent.
    fn payload_frames_sent(&self) -> u64;
}

impl BroadcastNode for Gossip {
    fn start(&mut self, now_ms: u64, payload: Vec<u8>) -> Option<MessageId> {
        self.broadcast(now_ms, payload).ok()
    }
    fn delivered(event: &GossipEvent) -> Option<(MessageId, u32)> {
        match event {
            GossipEvent::Delivered { id, hops, .. } => Some((*id, *hops)),
            _ => None,
        }
    }
    fn payload_frames_sent(&self) -> u64 {
        self.stats().tree.payloads_sent
    }
}

impl BroadcastNode for PushGossip {
    fn start(&mut self, _now_ms: u64, payload: Vec<u8>) -> Option<MessageId> {
        Some(self.broadcast(&payload))
    }
    fn delivered(event: &PushDelivery) -> Option<(MessageId, u32)> {
        Some(*event)
    }
    fn payload_frames_sent(&self) -> u64 {
        self.payloads_sent
    }
}

/// What a broadcast run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BroadcastReport {
    /// "bhsync" or "original".
    pub protocol: &'static str,
    /// Nodes simulated.
    pub node_count: u32,
    /// Nodes running during the broadcasts.
    pub live_count: u32,
    /// Broadcasts started.
    pub broadcasts: u32,
    /// Deliveries to live nodes / (broadcasts × live nodes).
    pub delivery_ratio: f64,
    /// Share of broadcasts that reached every live node.
    pub full_delivery_share: f64,
    /// Payload frames / (broadcasts × live nodes), over the whole run.
    pub payload_per_node_per_broadcast: f64,
    /// The same after the first 10% of broadcasts (the tree has formed).
    pub payload_per_node_per_broadcast_steady: f64,
    /// Largest last-delivery hop over all broadcasts.
    pub ldh_max: u32,
    /// Mean last-delivery hop.
    pub ldh_mean: f64,
    /// Relative message redundancy at steady state.
    pub rmr_steady: f64,
    /// Median time to full delivery over fully delivered broadcasts, ms.
    pub full_delivery_ms_p50: u64,
    /// Largest time to full delivery, ms.
    pub full_delivery_ms_max: u64,
    /// Trace hash.
    pub trace_hash: u64,
    /// Simulator steps.
    pub steps: u64,
}

/// The parameters of a broadcast run.
#[derive(Clone, Debug)]
pub struct BroadcastRun {
    /// Nodes.
    pub node_count: u32,
    /// Message loss on every link.
    pub loss: f64,
    /// Share of nodes silently crashed before the broadcasts.
    pub crash_fraction: f64,
    /// Broadcasts.
    pub broadcasts: u32,
    /// Time between two broadcasts, ms.
    pub broadcast_spacing_ms: u64,
    /// Payload bytes.
    pub payload_len: usize,
}

#[derive(Clone, Copy, Default)]
struct Record {
    started_ms: u64,
    reached: u32,
    last_ms: u64,
    ldh: u32,
}

/// An overlay of Plumtree/HyParView nodes that joined one by one through a random
/// earlier node, then settled.
pub fn gossip_overlay(
    scenario: &str,
    seed: u64,
    node_count: u32,
    link: LinkProfile,
) -> Result<Simulator<Gossip>, SimFailure> {
    let mut sim = Simulator::new(scenario, seed, Network::new(link));
    let mut rng = SeededRng::new(seed ^ 0x6055_1900);
    let mut config = GossipConfig::for_size(node_count as usize);
    // Dedupe window: long against the time a broadcast takes (well under a second
    // here), short enough that 10,000 nodes keep their caches in memory.
    config.message_ttl_ms = 15_000;
    let join_spacing_ms = 2;
    for index in 0..node_count {
        let now_ms = sim.now_ms();
        let mut node = Gossip::new(config.clone(), sim_node_id(index), rng.fork(), now_ms);
        if index > 0 {
            node.join(now_ms, sim_node_id(rng.below(u64::from(index)) as u32));
        }
        sim.add_node(sim_node_id(index), node);
        sim.flush(index);
        sim.run_until(now_ms + join_spacing_ms, &mut |_, _, _| Ok(()))?;
    }
    let settle_ms = sim.now_ms() + 15_000;
    sim.run_until(settle_ms, &mut |_, _, _| Ok(()))?;
    for index in 0..node_count {
        if sim.process(index).is_some_and(|node| node.view().active().next().is_none()) {
            return Err(sim.failure(format!("node {index} has an empty active view after the overlay settled")));
        }
    }
    let unreached = unreachable_nodes(&sim);
    if !unreached.is_empty() {
        return Err(sim.failure(format!("overlay not connected after settling: {unreached:?} unreachable")));
    }
    Ok(sim)
}

/// Running nodes that node 0's side of the overlay cannot reach over active links
/// (an invariant of a settled overlay without partitions: this list is empty).
pub fn unreachable_nodes(sim: &Simulator<Gossip>) -> Vec<u32> {
    let count = sim.node_count() as usize;
    let Some(start) = (0..sim.node_count()).find(|&i| sim.is_running(i)) else { return Vec::new() };
    let mut reached = vec![false; count];
    reached[start as usize] = true;
    let mut frontier = vec![start];
    while let Some(node) = frontier.pop() {
        let Some(process) = sim.process(node) else { continue };
        for peer in process.view().active() {
            if let Some(next) = sim.index(&peer).filter(|&j| sim.is_running(j) && !reached[j as usize]) {
                reached[next as usize] = true;
                frontier.push(next);
            }
        }
    }
    (0..sim.node_count()).filter(|&i| sim.is_running(i) && !reached[i as usize]).collect()
}

/// The original design's nodes, each knowing every member.
pub fn push_overlay(scenario: &str, seed: u64, node_count: u32, link: LinkProfile) -> Simulator<PushGossip> {
    let mut sim = Simulator::new(scenario, seed, Network::new(link));
    let mut rng = SeededRng::new(seed ^ 0x9A5E);
    let ids: Vec<_> = (0..node_count).map(sim_node_id).collect();
    for index in 0..node_count {
        sim.add_node(ids[index as usize], PushGossip::new(ids[index as usize], ids.clone(), rng.fork()));
    }
    sim
}

/// Crashes a share of the nodes silently, then runs the broadcasts from random live
/// origins and measures them.
pub fn measure_broadcasts<P: BroadcastNode>(
    sim: &mut Simulator<P>,
    protocol: &'static str,
    run: &BroadcastRun,
    seed: u64,
) -> Result<BroadcastReport, SimFailure> {
    let mut rng = SeededRng::new(seed ^ 0xB40AD);
    let crash_count = (f64::from(run.node_count) * run.crash_fraction).round() as u32;
    let mut order: Vec<u32> = (0..run.node_count).collect();
    rng.shuffle(&mut order);
    for &index in &order[..crash_count as usize] {
        sim.crash(index);
    }
    // The crashes happen before the run: 5 s, as for a node that died a moment before
    // the measurement starts (the overlay's keep-alive notices a silent neighbour in
    // 3.5 s; the original design never notices).
    let crashed_until_ms = sim.now_ms() + 5_000;
    sim.run_until(crashed_until_ms, &mut |_, _, _| Ok(()))?;
    let live: Vec<u32> = (0..run.node_count).filter(|&i| sim.is_running(i)).collect();
    let live_count = live.len() as u32;
    let mut records: Vec<Record> = Vec::with_capacity(run.broadcasts as usize);
    let mut index_of: HashMap<MessageId, usize> = HashMap::new();
    let payload_sent =
        |sim: &Simulator<P>| -> u64 { live.iter().filter_map(|&i| sim.process(i)).map(P::payload_frames_sent).sum() };
    let start_payloads = payload_sent(sim);
    let warm_broadcasts = (run.broadcasts / 10).max(1);
    let mut steady_payloads = start_payloads;
    let mut steady_reached: u64 = 0;
    for number in 0..run.broadcasts {
        if number == warm_broadcasts {
            steady_payloads = payload_sent(sim);
            steady_reached = records.iter().map(|r| u64::from(r.reached)).sum();
        }
        let origin = live[rng.index(live.len())];
        let now_ms = sim.now_ms();
        let mut payload = vec![0u8; run.payload_len.max(8)];
        payload[..4].copy_from_slice(&number.to_le_bytes());
        let Some(id) = sim.process_mut(origin).and_then(|node| node.start(now_ms, payload)) else {
            return Err(sim.failure(format!("broadcast {number} refused at node {origin}")));
        };
        index_of.insert(id, records.len());
        records.push(Record { started_ms: now_ms, ..Record::default() });
        let mut observer = |now_ms: u64, _: u32, event: P::Event| {
            if let Some(record) = P::delivered(&event).and_then(|(id, hops)| index_of.get(&id).map(|&i| (i, hops))) {
                let entry = &mut records[record.0];
                entry.reached += 1;
                entry.last_ms = now_ms;
                entry.ldh = entry.ldh.max(record.1);
            }
            Ok(())
        };
        sim.flush_with(origin, &mut observer)?;
        let next_ms = now_ms + run.broadcast_spacing_ms;
        let until_ms = if number + 1 == run.broadcasts { next_ms + 10_000 } else { next_ms };
        sim.run_until(until_ms, &mut observer)?;
    }
    let end_payloads = payload_sent(sim);
    Ok(summarize(
        protocol,
        run,
        live_count,
        &records,
        start_payloads,
        steady_payloads,
        steady_reached,
        end_payloads,
        sim,
    ))
}

#[allow(clippy::too_many_arguments)]
fn summarize<P: Process>(
    protocol: &'static str,
    run: &BroadcastRun,
    live_count: u32,
    records: &[Record],
    start_payloads: u64,
    steady_payloads: u64,
    steady_reached: u64,
    end_payloads: u64,
    sim: &Simulator<P>,
) -> BroadcastReport {
    let broadcasts = records.len().max(1) as f64;
    let reached_total: u64 = records.iter().map(|r| u64::from(r.reached.min(live_count))).sum();
    let full: Vec<&Record> = records.iter().filter(|r| r.reached >= live_count).collect();
    let mut full_ms: Vec<u64> = full.iter().map(|r| r.last_ms - r.started_ms).collect();
    full_ms.sort_unstable();
    let steady_broadcasts = (records.len() as u64).saturating_sub(u64::from((run.broadcasts / 10).max(1))).max(1);
    let steady_frames = end_payloads - steady_payloads;
    let steady_deliveries = reached_total.saturating_sub(steady_reached);
    let steady_receivers = steady_deliveries.saturating_sub(steady_broadcasts).max(1);
    BroadcastReport {
        protocol,
        node_count: run.node_count,
        live_count,
        broadcasts: records.len() as u32,
        delivery_ratio: reached_total as f64 / (broadcasts * f64::from(live_count)),
        full_delivery_share: full.len() as f64 / broadcasts,
        payload_per_node_per_broadcast: (end_payloads - start_payloads) as f64 / (broadcasts * f64::from(live_count)),
        payload_per_node_per_broadcast_steady: steady_frames as f64
            / (steady_broadcasts as f64 * f64::from(live_count)),
        ldh_max: records.iter().map(|r| r.ldh).max().unwrap_or(0),
        ldh_mean: records.iter().map(|r| f64::from(r.ldh)).sum::<f64>() / broadcasts,
        rmr_steady: steady_frames as f64 / steady_receivers as f64 - 1.0,
        full_delivery_ms_p50: full_ms.get(full_ms.len() / 2).copied().unwrap_or(0),
        full_delivery_ms_max: full_ms.last().copied().unwrap_or(0),
        trace_hash: sim.trace_hash(),
        steps: sim.steps(),
    }
}

/// The benchmark's scenario for Plumtree/HyParView.
pub fn bhsync_broadcasts(seed: u64, run: &BroadcastRun) -> Result<BroadcastReport, SimFailure> {
    let link = LinkProfile::default().with_loss(run.loss);
    let mut sim = gossip_overlay("broadcast", seed, run.node_count, link)?;
    measure_broadcasts(&mut sim, "bhsync", run, seed)
}

/// The benchmark's scenario for the original design.
pub fn original_broadcasts(seed: u64, run: &BroadcastRun) -> Result<BroadcastReport, SimFailure> {
    let link = LinkProfile::default().with_loss(run.loss);
    let mut sim = push_overlay("broadcast-original", seed, run.node_count, link);
    measure_broadcasts(&mut sim, "original", run, seed)
}

/// The overlay splits in two halves for `split_ms`, heals, and after `settle_ms` every
/// broadcast must again reach every node: the halves re-linked by themselves.
pub fn gossip_split_and_heal(
    seed: u64,
    node_count: u32,
    split_ms: u64,
    settle_ms: u64,
    broadcasts: u32,
) -> Result<BroadcastReport, SimFailure> {
    let mut sim = gossip_overlay("gossip-split", seed, node_count, LinkProfile::default())?;
    let half = node_count / 2;
    sim.network.split(node_count, |i| u32::from(i >= half));
    let heal_ms = sim.now_ms() + split_ms;
    sim.run_until(heal_ms, &mut |_, _, _| Ok(()))?;
    sim.network.heal();
    sim.run_until(heal_ms + settle_ms, &mut |_, _, _| Ok(()))?;
    let run = BroadcastRun {
        node_count,
        loss: 0.0,
        crash_fraction: 0.0,
        broadcasts,
        broadcast_spacing_ms: 200,
        payload_len: 32,
    };
    measure_broadcasts(&mut sim, "bhsync", &run, seed)
}
