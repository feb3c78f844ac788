//! What the liveness phase waits for, and the checks of running nodes' clocks.

use super::*;
use crate::membership::MemberState;

/// Which categories two nodes disagree on, and what each sees of the other.
fn describe_difference(a: &SwarmNode, b: &SwarmNode) -> String {
    let mut out = Vec::new();
    for category in a.core().replica().categories() {
        let name = category.name();
        if a.core().category_root(name) != b.core().category_root(name) {
            let count = |node: &SwarmNode| node.core().replica().category(name).map_or(0, |c| c.len());
            out.push(format!("{name} ({} vs {} entries)", count(a), count(b)));
        }
    }
    let view = |node: &SwarmNode, other: &SwarmNode| {
        format!(
            "sessions {:?}, live members {}, banned {}, sees the other as {:?}, {:?}, {:?}",
            node.sessions().len(),
            node.swim().live_members().count(),
            node.banned().len(),
            node.swim().member(&other.id()),
            node.counters(),
            node.swim().stats()
        )
    };
    format!("categories {}; first: {}; second: {}", out.join(", "), view(a, b), view(b, a))
}

impl World {
    /// Network time must never go back on a running node.
    pub(in crate::sim::swarm) fn check_network_time(&mut self, index: u32, now: u64) -> Result<(), String> {
        let newest = &mut self.network_time[index as usize];
        if let Some(before) = *newest {
            if now < before {
                return Err(format!("network time went back on node {index}: {before} ms, then {now} ms"));
            }
        }
        *newest = Some(now);
        Ok(())
    }

    /// Why the honest nodes have not converged yet, or `None` when they have.
    pub(in crate::sim::swarm) fn divergence(&self) -> Option<String> {
        let honest = self.honest_nodes();
        if let Some(&down) = honest.iter().find(|&&i| !self.up(i)) {
            return Some(format!("node {down} is down"));
        }
        if !self.pending_acks.is_empty() {
            return Some(format!("{} acknowledgements pending", self.pending_acks.len()));
        }
        if self.ledger.strong_outstanding() > 0 {
            return Some(format!("{} strong requests unanswered", self.ledger.strong_outstanding()));
        }
        let nodes: Vec<(u32, &SwarmNode)> = honest.iter().filter_map(|&i| Some((i, self.sim.process(i)?))).collect();
        let (first_index, first) = nodes[0];
        for &(index, node) in &nodes[1..] {
            if node.core().state_hash() != first.core().state_hash() {
                return Some(format!(
                    "state hashes of nodes {first_index} and {index} differ: {}",
                    describe_difference(first, node)
                ));
            }
            if let (Some(a), Some(b)) = (first.chain(), node.chain()) {
                if a.head() != b.head() {
                    return Some(format!("chain heads of nodes {first_index} and {index} differ"));
                }
            }
        }
        if let Some(why) = self.membership_or_views_apart(&nodes) {
            return Some(why);
        }
        if nodes.len() >= 3 {
            // Network time needs two peers besides the node itself to move.
            let times: Vec<u64> = nodes.iter().map(|&(i, node)| node.network_ms(self.sim.local_now_ms(i))).collect();
            let spread = times.iter().max().unwrap_or(&0) - times.iter().min().unwrap_or(&0);
            if spread > TIME_AGREEMENT_MS {
                return Some(format!("network times of the honest nodes are {spread} ms apart"));
            }
        }
        for &liar in &self.plan.byzantine {
            let liar_id = self.members[liar as usize];
            if let Some(&(index, _)) = nodes.iter().find(|(_, node)| !node.banned().contains(&liar_id)) {
                return Some(format!("honest node {index} still talks to the liar {liar}"));
            }
        }
        None
    }

    /// The new roles' liveness: every honest node holds every other honest one alive in
    /// membership, and the overlay's active views join the honest nodes into one graph
    /// (a partial view split in two would hold two broadcast trees apart).
    fn membership_or_views_apart(&self, nodes: &[(u32, &SwarmNode)]) -> Option<String> {
        for &(index, node) in nodes {
            for &(other, peer) in nodes {
                if other != index && node.swim().state_of(&peer.id()) != Some(MemberState::Alive) {
                    return Some(format!(
                        "node {index} holds node {other} as {:?} in membership",
                        node.swim().state_of(&peer.id())
                    ));
                }
            }
        }
        let position: BTreeMap<NodeId, usize> = nodes.iter().enumerate().map(|(at, (_, n))| (n.id(), at)).collect();
        let mut reached = vec![false; nodes.len()];
        let mut frontier = vec![0];
        reached[0] = true;
        while let Some(at) = frontier.pop() {
            let neighbours = nodes[at].1.overlay_active().iter().filter_map(|id| position.get(id).copied());
            // Views are symmetric once settled; follow edges both ways so a link being
            // re-made on one side does not count as a split.
            let back = nodes.iter().enumerate().filter(|(_, (_, n))| n.overlay_active().contains(&nodes[at].1.id()));
            for next in neighbours.chain(back.map(|(b, _)| b)).collect::<Vec<_>>() {
                if !reached[next] {
                    reached[next] = true;
                    frontier.push(next);
                }
            }
        }
        let apart: Vec<u32> = reached.iter().zip(nodes).filter(|(r, _)| !**r).map(|(_, (i, _))| *i).collect();
        let views: Vec<String> = nodes
            .iter()
            .map(|(i, n)| format!("{i}: {:?}", n.overlay_active().iter().map(|id| id.short()).collect::<Vec<_>>()))
            .collect();
        (!apart.is_empty()).then(|| {
            format!(
                "the overlay's active views leave nodes {apart:?} apart from node {} ({})",
                nodes[0].0,
                views.join("; ")
            )
        })
    }
}
