//! The per-peer transmit queue: four bounded FIFOs, one per priority, served by deficit
//! round robin (Shreedhar and Varghese, "Efficient Fair Queuing Using Deficit Round
//! Robin", SIGCOMM 1995).
//!
//! Each round, a priority's deficit grows by its quantum (weight × `QUANTUM_BYTES`) and
//! it sends while its head message fits in the deficit. Critical gets 8 shares, high 4,
//! medium 2, low 1: under saturation critical gets 8/15 of the bytes, and low still gets
//! 1/15 — delayed, never starved, which the seed design's strict priority queues could
//! not promise. An idle priority's deficit is reset, so it cannot hoard credit.
//!
//! The queue is bounded in bytes: a message that does not fit is refused and the caller
//! decides (a push is dropped and left to anti-entropy; a session frame is lost like a
//! lost packet and retransmitted).

use std::collections::VecDeque;

use crate::state::Priority;

/// Bytes added to a weight-1 deficit per round.
pub const QUANTUM_BYTES: usize = 16 * 1024;
/// Shares of critical, high, medium and low.
pub const WEIGHTS: [usize; 4] = [8, 4, 2, 1];

/// The index of a priority in the queue arrays.
pub fn class(priority: Priority) -> usize {
    match priority {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Medium => 2,
        Priority::Low => 3,
    }
}

/// Four FIFOs under one byte bound.
#[derive(Debug)]
pub struct PriorityQueue {
    queues: [VecDeque<Vec<u8>>; 4],
    bytes: [usize; 4],
    deficits: [usize; 4],
    current: usize,
    /// Whether the current class got its quantum on this visit.
    granted: bool,
    max_bytes: usize,
}

impl PriorityQueue {
    /// An empty queue holding at most `max_bytes` (one message is always accepted into
    /// an empty queue, whatever its size).
    pub fn new(max_bytes: usize) -> Self {
        PriorityQueue {
            queues: Default::default(),
            bytes: [0; 4],
            deficits: [0; 4],
            current: 0,
            granted: false,
            max_bytes,
        }
    }

    /// Queued bytes, all priorities.
    pub fn len_bytes(&self) -> usize {
        self.bytes.iter().sum()
    }

    /// Queued bytes of one priority.
    pub fn class_bytes(&self, priority: Priority) -> usize {
        self.bytes[class(priority)]
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }

    /// Queues `bytes` at `priority`; gives them back when the bound would be passed.
    pub fn push(&mut self, priority: Priority, bytes: Vec<u8>) -> Result<(), Vec<u8>> {
        let total = self.len_bytes();
        if total > 0 && total + bytes.len() > self.max_bytes {
            return Err(bytes);
        }
        let index = class(priority);
        self.bytes[index] += bytes.len();
        self.queues[index].push_back(bytes);
        Ok(())
    }

    /// The next message by deficit round robin, with its priority.
    pub fn pop(&mut self) -> Option<(Priority, Vec<u8>)> {
        if self.is_empty() {
            return None;
        }
        // A visit grants one quantum, then sends while the head fits; a class whose head
        // does not fit yields to the next. Every full round adds at least one quantum
        // to a non-empty class, so any message goes out within len / QUANTUM_BYTES
        // rounds: the loop is bounded.
        loop {
            let index = self.current;
            let Some(head_len) = self.queues[index].front().map(Vec::len) else {
                self.deficits[index] = 0;
                self.advance();
                continue;
            };
            if !self.granted {
                self.deficits[index] += WEIGHTS[index] * QUANTUM_BYTES;
                self.granted = true;
            }
            if self.deficits[index] >= head_len {
                self.deficits[index] -= head_len;
                self.bytes[index] -= head_len;
                let bytes = self.queues[index].pop_front()?;
                return Some((PRIORITIES[index], bytes));
            }
            self.advance();
        }
    }

    fn advance(&mut self) {
        self.current = (self.current + 1) % 4;
        self.granted = false;
    }

    /// Drops everything (the peer went away).
    pub fn clear(&mut self) {
        *self = PriorityQueue::new(self.max_bytes);
    }
}

const PRIORITIES: [Priority; 4] = [Priority::Critical, Priority::High, Priority::Medium, Priority::Low];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_saturation_bytes_follow_the_weights_and_low_is_served() {
        let mut queue = PriorityQueue::new(usize::MAX);
        for _ in 0..2_000 {
            for priority in PRIORITIES {
                queue.push(priority, vec![0; 1_000]).unwrap();
            }
        }
        let mut sent = [0usize; 4];
        for _ in 0..1_500 {
            let (priority, bytes) = queue.pop().unwrap();
            sent[class(priority)] += bytes.len();
        }
        let total: usize = sent.iter().sum();
        for (index, weight) in WEIGHTS.iter().enumerate() {
            let share = sent[index] as f64 / total as f64;
            let expected = *weight as f64 / 15.0;
            assert!((share - expected).abs() < 0.03, "class {index}: share {share:.3}, expected {expected:.3}");
        }
    }

    #[test]
    fn the_byte_bound_refuses_and_an_empty_queue_takes_anything() {
        let mut queue = PriorityQueue::new(100);
        assert!(queue.push(Priority::Low, vec![0; 500]).is_ok());
        assert!(queue.push(Priority::Critical, vec![0; 1]).is_err());
        assert_eq!(queue.pop().map(|(p, b)| (p, b.len())), Some((Priority::Low, 500)));
        assert!(queue.pop().is_none());
    }
}
