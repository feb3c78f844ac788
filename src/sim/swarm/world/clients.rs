//! The clients: one operation at a time at a random honest node, and the
//! acknowledgements the disk's latency delays.

use super::*;

/// A durable write waiting for its acknowledgement.
#[derive(Clone, Debug)]
pub(super) enum Ack {
    /// A put, delete or counter add.
    Write { op: ClientOp, category: &'static str, key: Vec<u8>, written: Written, delta: i64 },
    /// A chain block.
    Block(crate::chain::BlockId),
}

/// An acknowledgement due at `at_ms`, if node `node` is still in boot `boot` then.
#[derive(Clone, Debug)]
pub(super) struct PendingAck {
    at_ms: u64,
    node: u32,
    boot: u32,
    ack: Ack,
}

impl World {
    /// One client operation at a random running honest node.
    pub(in crate::sim::swarm) fn client_op(&mut self, op: ClientOp) -> Result<(), String> {
        let candidates: Vec<u32> = (0..self.plan.nodes).filter(|&i| self.plan.honest(i) && self.up(i)).collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let index = candidates[self.rng.index(candidates.len())];
        let key_index = self.rng.below(self.plan.workload.keys);
        let key = format!("k{key_index}").into_bytes();
        let now = self.sim.local_now_ms(index);
        let global = self.sim.now_ms();
        let node = self.sim.process_mut(index).ok_or("a running node vanished")?;
        match op {
            ClientOp::Put | ClientOp::Delete | ClientOp::CounterAdd => {
                let value: Vec<u8> = (0..1 + self.rng.below(48)).map(|_| self.rng.below(256) as u8).collect();
                let delta = 1 + self.rng.below(9) as i64;
                let (category, result) = match op {
                    ClientOp::Put => (KV, node.put(now, KV, &key, &value).map(Some)),
                    ClientOp::Delete => (KV, node.delete(now, KV, &key)),
                    _ => (COUNTERS, node.counter_add(now, COUNTERS, &key, delta).map(Some)),
                };
                let delta = if op == ClientOp::CounterAdd { delta } else { 0 };
                match result {
                    Ok(Some(version)) => {
                        let stored = node.stored(category, &key).ok_or("an acknowledged write is not stored")?;
                        if stored.version != version {
                            return Err(format!("node {index} acknowledged {version:?} but stores {:?}", stored.version));
                        }
                        let written = Written::of(&stored);
                        self.acknowledge_later(index, Ack::Write { op, category, key, written, delta });
                    }
                    Ok(None) => {}
                    Err(HostError::NotDurable(_)) if op == ClientOp::CounterAdd => self.ledger.counter_added(index, &key, delta, false),
                    Err(_) => {}
                }
            }
            ClientOp::StrongWrite | ClientOp::StrongRead => {
                let value = (op == ClientOp::StrongWrite).then(|| self.ledger.next_strong_value());
                let result = match value {
                    Some(value) => node.strong_put(now, STRONG, &key, &strong_value(value)),
                    None => node.strong_read(now, STRONG, &key),
                };
                if let Ok(ticket) = result {
                    self.ledger.strong_started(index, ticket, key_index, value, global);
                }
            }
            ClientOp::ChainBlock => {
                let transactions = vec![format!("tx {global} at node {index}").into_bytes()];
                if let Ok(id) = node.propose_block(now, transactions) {
                    self.acknowledge_later(index, Ack::Block(id));
                }
            }
            ClientOp::Read => {
                let held = node.stored(KV, &key);
                self.ledger.acked_ops[ClientOp::Read as usize] += 1;
                self.ledger.check_read(index, KV, &key, held.as_ref())?;
            }
        }
        self.acknowledge_due()?;
        self.flush(index)
    }

    /// Hands a durable write's acknowledgement to its client once the disk's latency
    /// has passed, in the node's order (its log is sequential). A node that crashes
    /// first never acknowledges it: the write is durable but the client was not told.
    fn acknowledge_later(&mut self, index: u32, ack: Ack) {
        let latency = self.disks[index as usize].take_latency_ms();
        let at_ms = (self.sim.now_ms() + latency).max(self.last_ack_ms[index as usize]);
        self.last_ack_ms[index as usize] = at_ms;
        self.pending_acks.push(PendingAck { at_ms, node: index, boot: self.boots[index as usize], ack });
    }

    /// Delivers every acknowledgement that is due.
    pub(in crate::sim::swarm) fn acknowledge_due(&mut self) -> Result<(), String> {
        let now = self.sim.now_ms();
        if !self.pending_acks.iter().any(|pending| pending.at_ms <= now) {
            return Ok(());
        }
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_acks).into_iter().partition(|p| p.at_ms <= now);
        self.pending_acks = later;
        due.sort_by_key(|pending| pending.at_ms);
        for pending in due {
            let alive = self.up(pending.node) && self.boots[pending.node as usize] == pending.boot;
            match pending.ack {
                Ack::Write { op, category, key, written, delta } if alive => {
                    self.ledger.acked_ops[op as usize] += 1;
                    self.ledger.write_acked(pending.node, category, &key, written)?;
                    if op == ClientOp::CounterAdd {
                        self.ledger.counter_added(pending.node, &key, delta, true);
                    }
                }
                Ack::Write { op: ClientOp::CounterAdd, key, delta, .. } => self.ledger.counter_added(pending.node, &key, delta, false),
                Ack::Block(id) if alive => self.ledger.block_acked(pending.node, id),
                _ => self.count("node.crash_before_ack"),
            }
        }
        Ok(())
    }
}
