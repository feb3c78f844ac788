//! The host's way into a running engine: a bounded lock-free queue of commands (closures
//! run on the engine thread against its state) and a bounded queue of events going the
//! other way. Host threads never touch the engine's state directly, so the engine needs
//! no lock on its hot path; the host-side event queue is the one place with a mutex,
//! taken once per batch by the engine.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;

use super::control::Control;
use crate::node::NodeEvent;

/// A command: runs once on the engine thread.
pub type Command = Box<dyn FnOnce(&mut Control) + Send>;

/// Commands waiting for the engine at most; beyond, callers get `Busy`.
pub const MAX_COMMANDS: usize = 4096;
/// Events waiting for the host at most; beyond, the oldest are dropped and counted.
pub const MAX_EVENTS: usize = 65_536;

/// Commands from host threads to the engine.
pub struct CommandQueue {
    queue: ArrayQueue<Command>,
}

impl Default for CommandQueue {
    fn default() -> Self {
        CommandQueue { queue: ArrayQueue::new(MAX_COMMANDS) }
    }
}

impl CommandQueue {
    /// Queues a command; gives it back when the queue is full.
    pub fn push(&self, command: Command) -> Result<(), Command> {
        self.queue.push(command)
    }

    /// Takes the next command.
    pub fn pop(&self) -> Option<Command> {
        self.queue.pop()
    }
}

/// Events from the engine to the host.
#[derive(Default)]
pub struct EventQueue {
    events: Mutex<VecDeque<NodeEvent>>,
    ready: Condvar,
    dropped: AtomicU64,
}

impl EventQueue {
    /// Appends a batch of events, dropping the oldest beyond [`MAX_EVENTS`].
    pub fn push_batch(&self, batch: &mut Vec<NodeEvent>) {
        if batch.is_empty() {
            return;
        }
        let mut events = self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for event in batch.drain(..) {
            if events.len() == MAX_EVENTS {
                events.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            events.push_back(event);
        }
        self.ready.notify_all();
    }

    /// Waits up to `timeout` for an event.
    pub fn pop(&self, timeout: Duration) -> Option<NodeEvent> {
        let deadline = Instant::now() + timeout;
        let mut events = self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if let Some(event) = events.pop_front() {
                return Some(event);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            events = self.ready.wait_timeout(events, left).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
    }

    /// Events dropped because the host did not poll.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wakes every waiting host thread (at shutdown).
    pub fn wake_all(&self) {
        self.ready.notify_all();
    }
}
