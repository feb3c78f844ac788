//! What the clients were told, kept beside the cluster so the invariants can be
//! checked against it: acknowledged writes (per node, for recovery, and per key, for
//! the end), counter increments (acknowledged or unsure), the strong categories'
//! history for the linearizability checker, acknowledged chain blocks, and each node's
//! newest write version (its clock must only move forwards).

use std::collections::{BTreeMap, BTreeSet};

use super::plan::ClientOp;
use crate::chain::BlockId;
use crate::consensus::checker::{Op, OpKind};
use crate::consensus::Ticket;
use crate::node::StrongAnswer;
use crate::node::NodeError;
use crate::state::{Entry, Version};

/// What a client was told was written: the version, and a hash of the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The version.
    pub version: Version,
    /// xxh3 of the value (empty for a tombstone).
    pub value_hash: u64,
}

impl Written {
    /// What `entry` holds.
    pub fn of(entry: &Entry) -> Written {
        Written { version: entry.version, value_hash: xxhash_rust::xxh3::xxh3_64(&entry.value) }
    }

    /// Whether `held` keeps this write: a newer version, or this version with this value.
    /// An error when it holds this version with another value (corruption that kept
    /// the version).
    pub fn kept_by(&self, held: Option<&Entry>) -> Result<bool, String> {
        let Some(entry) = held else { return Ok(false) };
        match entry.version.lww_cmp(&self.version) {
            std::cmp::Ordering::Greater => Ok(true),
            std::cmp::Ordering::Less => Ok(false),
            std::cmp::Ordering::Equal if Written::of(entry) == *self => Ok(true),
            std::cmp::Ordering::Equal => Err(format!("a different value under the acknowledged version {:?}", self.version)),
        }
    }
}

/// A client write the cluster acknowledged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acked {
    /// The node that acknowledged it.
    pub node: u32,
    /// What was written.
    pub written: Written,
    /// Set when the acknowledging node's storage was later found corrupt and wiped
    /// while no other running node held the write: it may be lost (detected, not silent).
    pub at_risk: bool,
}

/// A strong request waiting for its answer.
#[derive(Clone, Copy, Debug)]
struct PendingStrong {
    key: u64,
    /// `Some(value)` for a write.
    write: Option<u64>,
    invoke_ms: u64,
}

/// The clients' side of the run.
#[derive(Default)]
pub struct Ledger {
    /// Newest acknowledged version per (node, category, key): it must survive the
    /// node's recovery.
    by_node: BTreeMap<(u32, String, Vec<u8>), Written>,
    /// Newest acknowledged version per (category, key): every honest node must hold it
    /// (or a newer one) at the end.
    by_key: BTreeMap<(String, Vec<u8>), Acked>,
    /// Per counter key: acknowledged increments, and increments that may or may not
    /// have taken effect.
    counters: BTreeMap<Vec<u8>, (i64, i64)>,
    /// Per node, counter increments acknowledged (moved to unsure if its storage is wiped).
    counter_acks_by_node: BTreeMap<(u32, Vec<u8>), i64>,
    strong_pending: BTreeMap<(u32, Ticket), PendingStrong>,
    /// The strong categories' history.
    pub history: Vec<Op>,
    next_strong_value: u64,
    /// Acknowledged blocks per node.
    blocks: BTreeMap<u32, BTreeSet<BlockId>>,
    /// Per node, the newest version of its own acknowledged writes.
    newest_own: BTreeMap<u32, Version>,
    /// Acknowledged writes and blocks that a wipe (detected corruption) put at risk.
    pub at_risk_writes: u64,
    /// Of those, the ones lost: writes missing at the end, blocks no other node held.
    pub lost_to_corruption: u64,
    /// Client operations acknowledged, in the order of [`ClientOp::ALL`].
    pub acked_ops: [u64; 7],
}

impl Ledger {
    /// Records an acknowledged write (put, delete or counter) at `node`; checks that
    /// the node's clock moved forwards since its last one.
    pub fn write_acked(&mut self, node: u32, category: &str, key: &[u8], written: Written) -> Result<(), String> {
        let version = written.version;
        if let Some(previous) = self.newest_own.get(&node) {
            if version.lww_cmp(previous) != std::cmp::Ordering::Greater {
                return Err(format!(
                    "clock went backwards: node {node} acknowledged {category}/{} at {version:?} after {previous:?}",
                    hex(key)
                ));
            }
        }
        self.newest_own.insert(node, version);
        self.by_node.insert((node, category.to_owned(), key.to_vec()), written);
        let cluster_key = (category.to_owned(), key.to_vec());
        let newer = self.by_key.get(&cluster_key).map_or(true, |a| version.lww_cmp(&a.written.version).is_gt());
        if newer {
            self.by_key.insert(cluster_key, Acked { node, written, at_risk: false });
        }
        Ok(())
    }

    /// Records a counter increment: acknowledged, or applied but not acknowledged.
    pub fn counter_added(&mut self, node: u32, key: &[u8], delta: i64, acked: bool) {
        let slot = self.counters.entry(key.to_vec()).or_default();
        if acked {
            slot.0 += delta;
            *self.counter_acks_by_node.entry((node, key.to_vec())).or_default() += delta;
        } else {
            slot.1 += delta;
        }
    }

    /// Checks that `stored` (what node `node` recovered) holds every write it acknowledged.
    pub fn check_recovered(&self, node: u32, stored: impl Fn(&str, &[u8]) -> Option<Entry>) -> Result<(), String> {
        for ((n, category, key), written) in self.by_node.range((node, String::new(), Vec::new())..) {
            if *n != node {
                break;
            }
            let held = stored(category, key);
            let context = || format!("node {node} recovering {category}/{}", hex(key));
            if !written.kept_by(held.as_ref()).map_err(|why| format!("{}: {why}", context()))? {
                return Err(format!(
                    "acknowledged write lost in recovery: {} acknowledged at {:?}, recovered {:?}",
                    context(),
                    written.version,
                    held.map(|entry| entry.version)
                ));
            }
        }
        Ok(())
    }

    /// Checks a read at node `node`: it sees its own acknowledged write of `key`, or a
    /// newer version (read your writes, across crashes).
    pub fn check_read(&self, node: u32, category: &str, key: &[u8], held: Option<&Entry>) -> Result<(), String> {
        let Some(written) = self.by_node.get(&(node, category.to_owned(), key.to_vec())) else { return Ok(()) };
        let context = || format!("read at node {node} of {category}/{}", hex(key));
        if !written.kept_by(held).map_err(|why| format!("{}: {why}", context()))? {
            return Err(format!(
                "{} returned {:?}, older than its acknowledged {:?}",
                context(),
                held.map(|entry| entry.version),
                written.version
            ));
        }
        Ok(())
    }

    /// Node `node`'s storage was wiped (detected corruption) and its clock starts
    /// over. The writes it acknowledged are at risk: a copy may live on in another
    /// node's memory, but none is durable but its own (writes learnt from peers become
    /// durable only with a snapshot), so they are counted, and reported lost if missing
    /// at the end. Writes other nodes acknowledged stay owed: their own logs hold them.
    /// Blocks only it held are lost at once (a chain persists what it syncs). The
    /// counter increments it acknowledged before count as unsure; those after are owed
    /// again: it rejoins under the same id but writes into a new counter slot (its new
    /// storage epoch, `node::epoch`), so the old slot cannot absorb them (the hazard of
    /// ADR 080, fixed by issue 16 item 7; seeds 147, 184 and 195 found it).
    pub fn node_wiped(&mut self, node: u32, block_elsewhere: impl Fn(&BlockId) -> bool) {
        let mine: Vec<(u32, String, Vec<u8>)> = self.by_node.keys().filter(|(n, _, _)| *n == node).cloned().collect();
        for key in mine {
            self.by_node.remove(&key);
        }
        for acked in self.by_key.values_mut().filter(|a| a.node == node && !a.at_risk) {
            acked.at_risk = true;
            self.at_risk_writes += 1;
        }
        let counters: Vec<(u32, Vec<u8>)> = self.counter_acks_by_node.keys().filter(|(n, _)| *n == node).cloned().collect();
        for slot in counters {
            let delta = self.counter_acks_by_node.remove(&slot).unwrap_or(0);
            let totals = self.counters.entry(slot.1).or_default();
            totals.0 -= delta;
            totals.1 += delta;
        }
        for id in self.blocks.remove(&node).unwrap_or_default() {
            if !block_elsewhere(&id) {
                self.at_risk_writes += 1;
                self.lost_to_corruption += 1;
            }
        }
        self.newest_own.remove(&node);
    }

    /// Checks a converged node against every acknowledged write; returns how many
    /// at-risk writes it lacks (lost to detected corruption).
    pub fn check_final(&self, node: u32, stored: impl Fn(&str, &[u8]) -> Option<Entry>) -> Result<u64, String> {
        let mut lost = 0;
        for ((category, key), acked) in &self.by_key {
            let held = stored(category, key);
            let context = || format!("node {node} holding {category}/{}", hex(key));
            if acked.written.kept_by(held.as_ref()).map_err(|why| format!("{}: {why}", context()))? {
                continue;
            }
            if acked.at_risk {
                lost += 1;
                continue;
            }
            return Err(format!(
                "acknowledged write missing at the end: {} acknowledged by node {} at {:?}, holds {:?}",
                context(),
                acked.node,
                acked.written.version,
                held.map(|entry| entry.version)
            ));
        }
        Ok(lost)
    }

    /// Checks a converged node's counters: each between the acknowledged sum and that
    /// sum plus every increment whose fate is unknown.
    pub fn check_counters(&self, node: u32, value_of: impl Fn(&[u8]) -> i64) -> Result<(), String> {
        for (key, (acked, unsure)) in &self.counters {
            let value = value_of(key);
            if value < *acked || value > acked + unsure {
                return Err(format!(
                    "counter {} is {value} at node {node}: acknowledged increments sum to {acked}, {unsure} more are unsure",
                    hex(key)
                ));
            }
        }
        Ok(())
    }

    // Strong categories.

    /// A fresh value for a strong write (unique, so the checker can tell writes apart).
    pub fn next_strong_value(&mut self) -> u64 {
        self.next_strong_value += 1;
        self.next_strong_value
    }

    /// A strong request was accepted by `node` under `ticket`.
    pub fn strong_started(&mut self, node: u32, ticket: Ticket, key: u64, write: Option<u64>, now_ms: u64) {
        self.strong_pending.insert((node, ticket), PendingStrong { key, write, invoke_ms: now_ms });
    }

    /// A strong request's answer arrived.
    pub fn strong_finished(
        &mut self,
        node: u32,
        ticket: Ticket,
        result: &Result<StrongAnswer, NodeError>,
        now_ms: u64,
    ) -> Result<(), String> {
        let Some(pending) = self.strong_pending.remove(&(node, ticket)) else {
            return Err(format!("node {node} answered strong request {ticket}, which is not pending: {result:?}"));
        };
        let complete = match result {
            Ok(_) => Some(now_ms),
            Err(NodeError::Indeterminate) => None,
            // Refused: it did not happen.
            Err(_) => return Ok(()),
        };
        let kind = match (pending.write, result) {
            (Some(_), Ok(answer)) if !matches!(answer, StrongAnswer::Written(_)) => {
                return Err(format!("a strong write answered {answer:?}"));
            }
            (Some(value), _) => {
                if complete.is_some() {
                    self.acked_ops[ClientOp::StrongWrite as usize] += 1;
                }
                OpKind::Write(value)
            }
            (None, Ok(StrongAnswer::Read(value))) => {
                self.acked_ops[ClientOp::StrongRead as usize] += 1;
                OpKind::Read(match value {
                    None => None,
                    Some(bytes) => Some(decode_strong_value(bytes)?),
                })
            }
            (None, other) => return Err(format!("a strong read answered {other:?}")),
        };
        self.history.push(Op { key: pending.key, kind, invoke: pending.invoke_ms, complete });
        Ok(())
    }

    /// Node `node` crashed: its pending writes may or may not have happened; its
    /// pending reads constrain nothing.
    pub fn node_crashed(&mut self, node: u32) {
        let pending: Vec<(u32, Ticket)> = self.strong_pending.keys().filter(|(n, _)| *n == node).copied().collect();
        for slot in pending {
            let Some(op) = self.strong_pending.remove(&slot) else { continue };
            if let Some(value) = op.write {
                self.history.push(Op { key: op.key, kind: OpKind::Write(value), invoke: op.invoke_ms, complete: None });
            }
        }
    }

    /// Strong requests still waiting for an answer.
    pub fn strong_outstanding(&self) -> usize {
        self.strong_pending.len()
    }

    // Chain.

    /// Node `node` acknowledged block `id`.
    pub fn block_acked(&mut self, node: u32, id: BlockId) {
        self.acked_ops[ClientOp::ChainBlock as usize] += 1;
        self.blocks.entry(node).or_default().insert(id);
    }

    /// Checks that node `node` holds every block it acknowledged.
    pub fn check_blocks(&self, node: u32, contains: impl Fn(&BlockId) -> bool) -> Result<(), String> {
        for id in self.blocks.get(&node).into_iter().flatten() {
            if !contains(id) {
                return Err(format!("acknowledged block {} lost by node {node}", hex(&id[..8])));
            }
        }
        Ok(())
    }
}

/// A strong write's value bytes.
pub fn strong_value(value: u64) -> Vec<u8> {
    value.to_le_bytes().to_vec()
}

fn decode_strong_value(bytes: &[u8]) -> Result<u64, String> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| format!("a strong read returned {} bytes, never written", bytes.len()))?;
    Ok(u64::from_le_bytes(array))
}

/// Short hex for messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeId;

    fn version(hlc: u64, node: u8) -> Version {
        Version { hlc, origin: NodeId([node; 32]), counter: hlc, tombstone: false }
    }

    fn entry(hlc: u64, node: u8) -> Entry {
        Entry { key: b"k".to_vec(), value: b"v".to_vec(), version: version(hlc, node) }
    }

    fn written(hlc: u64, node: u8) -> Written {
        Written::of(&entry(hlc, node))
    }

    #[test]
    fn a_lost_or_older_acknowledged_write_is_a_violation() {
        let mut ledger = Ledger::default();
        ledger.write_acked(0, "kv", b"k", written(10, 1)).unwrap();
        assert!(ledger.check_recovered(0, |_, _| Some(entry(10, 1))).is_ok());
        assert!(ledger.check_recovered(0, |_, _| Some(entry(12, 2))).is_ok(), "a newer version supersedes it");
        assert!(ledger.check_recovered(0, |_, _| Some(entry(9, 1))).is_err());
        assert!(ledger.check_recovered(0, |_, _| None).is_err());
        assert!(ledger.check_recovered(1, |_, _| None).is_ok(), "node 1 acknowledged nothing");
        assert!(ledger.check_final(3, |_, _| None).is_err());
    }

    #[test]
    fn another_value_under_the_acknowledged_version_is_a_violation() {
        let mut ledger = Ledger::default();
        ledger.write_acked(0, "kv", b"k", written(10, 1)).unwrap();
        let forged = Entry { value: b"w".to_vec(), ..entry(10, 1) };
        let error = ledger.check_final(2, |_, _| Some(forged.clone())).unwrap_err();
        assert!(error.contains("different value"), "{error}");
        assert!(ledger.check_read(0, "kv", b"k", Some(&forged)).is_err());
    }

    #[test]
    fn a_clock_going_back_is_a_violation() {
        let mut ledger = Ledger::default();
        ledger.write_acked(0, "kv", b"a", written(10, 1)).unwrap();
        assert!(ledger.write_acked(0, "kv", b"b", written(9, 1)).is_err());
    }

    #[test]
    fn a_wipe_puts_at_risk_what_the_node_acknowledged() {
        let mut ledger = Ledger::default();
        ledger.write_acked(0, "kv", b"k", written(10, 1)).unwrap();
        ledger.write_acked(0, "kv", b"spread", written(11, 1)).unwrap();
        ledger.write_acked(0, "counters", b"c", written(12, 1)).unwrap();
        ledger.counter_added(0, b"c", 5, true);
        ledger.block_acked(0, [7; 32]);
        ledger.write_acked(1, "kv", b"other", written(13, 2)).unwrap();
        ledger.node_wiped(0, |_| false);
        assert_eq!(ledger.lost_to_corruption, 1, "the block nobody else held");
        let stored = |_: &str, key: &[u8]| (key == b"other").then(|| entry(13, 2));
        assert_eq!(ledger.check_final(1, stored), Ok(3), "k, spread and c lost, counted, not silent");
        assert!(ledger.check_final(1, |_, _| None).is_err(), "node 1's write is still owed");
        assert!(ledger.check_counters(1, |_| 0).is_ok(), "the wiped node's increments became unsure");
        assert!(ledger.check_counters(1, |_| 6).is_err());
    }

    #[test]
    fn counters_stay_between_acknowledged_and_possible() {
        let mut ledger = Ledger::default();
        ledger.counter_added(0, b"c", 3, true);
        ledger.counter_added(1, b"c", 4, false);
        assert!(ledger.check_counters(0, |_| 3).is_ok());
        assert!(ledger.check_counters(0, |_| 7).is_ok());
        assert!(ledger.check_counters(0, |_| 2).is_err());
        assert!(ledger.check_counters(0, |_| 8).is_err());
    }

    #[test]
    fn strong_answers_become_history() {
        let mut ledger = Ledger::default();
        ledger.strong_started(0, 1, 7, Some(99), 10);
        ledger.strong_started(0, 2, 7, None, 11);
        ledger.strong_started(1, 1, 7, Some(100), 12);
        ledger.strong_finished(0, 1, &Ok(StrongAnswer::Written(version(1, 1))), 20).unwrap();
        ledger.strong_finished(0, 2, &Ok(StrongAnswer::Read(Some(strong_value(99)))), 21).unwrap();
        ledger.node_crashed(1);
        assert_eq!(ledger.history.len(), 3);
        assert_eq!(ledger.history[2].complete, None, "a crashed node's write may or may not have happened");
        assert_eq!(ledger.strong_outstanding(), 0);
        assert!(ledger.strong_finished(0, 9, &Ok(StrongAnswer::Read(None)), 30).is_err(), "an answer never asked for");
    }
}
