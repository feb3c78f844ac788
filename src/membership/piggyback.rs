//! The bounded queue of membership updates waiting to ride on probe messages (SWIM
//! §4.1, "infection-style dissemination"). Each update is sent a limited number of
//! times, fewest-sent first (memberlist's `TransmitLimitedQueue`); a newer fact about a
//! member replaces the older one, and when the queue is full the most-sent update goes.

use super::message::Update;
use crate::state::NodeId;

/// Updates queued at most (memory bound: one entry per member of a 4,096 group).
pub const MAX_QUEUED_UPDATES: usize = 4_096;

#[derive(Clone, Debug)]
struct Queued {
    update: Update,
    transmits: u32,
}

/// The piggyback queue.
#[derive(Clone, Debug, Default)]
pub struct PiggybackQueue {
    queued: Vec<Queued>,
}

impl PiggybackQueue {
    /// Updates waiting.
    pub fn len(&self) -> usize {
        self.queued.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Queues `update`, replacing any queued fact about the same member.
    pub fn push(&mut self, update: Update) {
        self.queued
            .retain(|queued| queued.update.node != update.node || is_distinct_suspicion(&queued.update, &update));
        if self.queued.len() >= MAX_QUEUED_UPDATES {
            if let Some(most_sent) = (0..self.queued.len()).max_by_key(|&i| self.queued[i].transmits) {
                self.queued.swap_remove(most_sent);
            }
        }
        self.queued.push(Queued { update, transmits: 0 });
        debug_assert!(self.queued.len() <= MAX_QUEUED_UPDATES);
    }

    /// Takes up to `max` updates for one message (fewest-sent first, the one about
    /// `first` — typically the recipient — ahead of all), counting the transmission and
    /// dropping updates sent `limit` times.
    pub fn take(&mut self, max: usize, limit: u32, first: Option<NodeId>, out: &mut Vec<Update>) {
        if self.queued.is_empty() || max == 0 {
            return;
        }
        self.queued.sort_by_key(|queued| (Some(queued.update.node) != first, queued.transmits));
        let taken = max.min(self.queued.len());
        for queued in &mut self.queued[..taken] {
            out.push(queued.update);
            queued.transmits += 1;
        }
        self.queued.retain(|queued| queued.transmits < limit);
    }
}

/// Suspicions of one member by different accusers are separate facts: Lifeguard counts
/// them as independent confirmations, so one must not replace another.
fn is_distinct_suspicion(queued: &Update, new: &Update) -> bool {
    use super::message::MemberState::Suspect;
    queued.state == Suspect && new.state == Suspect && queued.incarnation == new.incarnation && queued.from != new.from
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::message::MemberState;

    fn alive(byte: u8, incarnation: u64) -> Update {
        Update { node: NodeId([byte; 32]), incarnation, state: MemberState::Alive, from: None }
    }

    #[test]
    fn each_update_is_sent_limit_times_then_dropped() {
        let mut queue = PiggybackQueue::default();
        queue.push(alive(1, 0));
        let mut out = Vec::new();
        for _ in 0..3 {
            queue.take(8, 3, None, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert!(queue.is_empty());
    }

    #[test]
    fn newer_fact_replaces_older_and_queue_stays_bounded() {
        let mut queue = PiggybackQueue::default();
        queue.push(alive(1, 0));
        queue.push(alive(1, 1));
        assert_eq!(queue.len(), 1);
        for i in 0..(MAX_QUEUED_UPDATES + 10) {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&(i as u64).to_be_bytes());
            queue.push(Update { node: NodeId(id), incarnation: 0, state: MemberState::Alive, from: None });
        }
        assert_eq!(queue.len(), MAX_QUEUED_UPDATES);
    }
}
