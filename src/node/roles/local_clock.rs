//! Elapsed time from a local clock that may jump. A node's clock may be skewed,
//! drifts, and may jump backwards or forwards by seconds; a role that set a deadline
//! at "local + 500 ms" and then saw the clock jump back 3 s would otherwise sleep for
//! 3.5 s. [`LocalClock`] turns local readings into a monotonic elapsed time: a
//! backward step counts as no time passing, a forward step as that much time passing
//! (indistinguishable from a long pause), so timers fire late by at most the forward
//! jump's absence and never go backwards.

/// Monotonic elapsed milliseconds derived from local clock readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalClock {
    last_local_ms: u64,
    elapsed_ms: u64,
}

impl LocalClock {
    /// Starts at elapsed 0 with the local reading `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        Self { last_local_ms: now_ms, elapsed_ms: 0 }
    }

    /// Feeds a local reading; returns true when the clock went backwards.
    pub fn observe(&mut self, now_ms: u64) -> bool {
        let backwards = now_ms < self.last_local_ms;
        self.elapsed_ms = self.elapsed_ms.saturating_add(now_ms.saturating_sub(self.last_local_ms));
        self.last_local_ms = now_ms;
        backwards
    }

    /// Monotonic milliseconds since [`LocalClock::new`].
    pub fn elapsed_ms(&self) -> u64 {
        self.elapsed_ms
    }

    /// The last local reading.
    pub fn last_local_ms(&self) -> u64 {
        self.last_local_ms
    }

    /// The local time at which elapsed time reaches `elapsed_ms` if the clock runs
    /// steadily from the last reading (now, if that moment has passed).
    pub fn local_deadline(&self, elapsed_ms: u64) -> u64 {
        self.last_local_ms.saturating_add(elapsed_ms.saturating_sub(self.elapsed_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backward_jumps_do_not_rewind_elapsed_time() {
        let mut clock = LocalClock::new(10_000);
        assert!(!clock.observe(10_400));
        assert_eq!(clock.elapsed_ms(), 400);
        assert!(clock.observe(7_000), "a 3.4 s backward jump is reported");
        assert_eq!(clock.elapsed_ms(), 400);
        clock.observe(7_100);
        assert_eq!(clock.elapsed_ms(), 500);
        assert_eq!(clock.local_deadline(800), 7_400);
        assert_eq!(clock.local_deadline(100), 7_100, "a passed deadline is now");
    }
}
