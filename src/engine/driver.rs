//! The control shard's loop: it drives one sans-IO [`NodeCore`] over real sockets.
//!
//! Each turn of the loop runs the host's queued commands, dials what is due, moves the
//! core's transmits into the sessions and the sessions' bytes into the backend (one
//! batch of submissions per turn), then waits in the backend until a socket event, a
//! wake-up from a host thread, or the next timer. Received bytes are handled inside the
//! backend's event sink, straight from its receive buffer: decrypted, framed and handed
//! to the core without a copy. The loop follows the shape quinn and iroh use around
//! their sans-IO protocols: the protocol never sees a socket, and the loop never
//! interprets a protocol message.
//!
//! The state the loop drives is [`Control`]; the backend is kept apart so that the
//! event sink can borrow the one while the backend runs.

use std::time::{Duration, Instant};

use super::commands::{CommandQueue, EventQueue, MAX_COMMANDS};
use super::control::Control;
use super::io::Backend;
use crate::node::NodeEvent;
use std::sync::Arc;

/// The control shard: its backend and everything else.
pub struct Driver {
    backend: Box<dyn Backend>,
    control: Control,
    commands: Arc<CommandQueue>,
    events: Arc<EventQueue>,
}

/// How long a clean close waits for its goodbyes to reach the kernel at most.
const GOODBYE_GRACE: Duration = Duration::from_millis(200);

impl Driver {
    /// Builds the driver; call [`Driver::run`] on the shard's thread.
    pub fn new(
        backend: Box<dyn Backend>,
        control: Control,
        commands: Arc<CommandQueue>,
        events: Arc<EventQueue>,
    ) -> Self {
        Driver { backend, control, commands, events }
    }

    /// Runs until a close command.
    pub fn run(mut self) {
        while !self.control.stopping {
            self.turn();
        }
        self.control.shutdown_begin(&mut *self.backend);
        // The goodbyes go out before the sockets close (a close discards what the
        // kernel has not taken), for a bounded time: a stalled peer cannot hold a close.
        let deadline = Instant::now() + GOODBYE_GRACE;
        while self.control.goodbyes_pending(&*self.backend) && Instant::now() < deadline {
            let _ = self.backend.poll(Some(Duration::from_millis(5)), &mut |_| {});
        }
        self.control.shutdown_finish(&mut *self.backend);
        let _ = self.backend.poll(Some(Duration::ZERO), &mut |_| {});
        self.control.publish_events(&self.events);
        self.events.wake_all();
    }

    fn turn(&mut self) {
        self.run_commands();
        if self.control.stopping {
            return;
        }
        let backend = &mut *self.backend;
        let control = &mut self.control;
        control.housekeeping(backend);
        control.flush(backend);
        control.publish_events(&self.events);
        let timeout = control.next_timeout();
        let now = control.now_ms();
        let result = backend.poll(Some(timeout), &mut |event| control.on_io(now, event));
        if let Err(error) = result {
            // A failing backend cannot carry the node any further.
            control.emit(NodeEvent::Fatal(format!("the IO backend failed: {error}")));
            control.stopping = true;
        }
        control.after_poll(backend);
        control.drive_core_timers();
        control.publish_events(&self.events);
    }

    fn run_commands(&mut self) {
        // Bounded per turn so that a host flooding commands cannot starve the network.
        for _ in 0..MAX_COMMANDS {
            match self.commands.pop() {
                Some(command) => command(&mut self.control),
                None => break,
            }
        }
        self.control.events_dropped = self.events.dropped();
    }
}
