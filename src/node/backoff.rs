//! Exponential backoff with jitter, for retrying a failed sync (and, in the engine,
//! re-dialing a peer).
//!
//! The delay after the n-th consecutive failure is drawn uniformly from
//! `[d/2, d]` with `d = min(max, initial × factor^(n-1))` ("equal jitter" in AWS's
//! "Exponential Backoff And Jitter", 2015): never zero, so a flapping peer cannot make
//! us spin, and spread, so nodes that failed together do not retry together. The
//! randomness comes from a seeded [`SeededRng`], so a simulation replays exactly.

use crate::sansio::SeededRng;

/// Backoff parameters.
#[derive(Clone, Copy, PartialEq, Debug)]
pub struct BackoffConfig {
    /// Upper bound of the first delay, in milliseconds.
    pub initial_ms: u64,
    /// Upper bound of any delay, in milliseconds.
    pub max_ms: u64,
    /// Growth per consecutive failure (at least 1).
    pub factor: f64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        // 500 ms first, doubling, capped at a minute: a guess in line with gRPC's
        // connection backoff (1 s, ×1.6, 120 s cap), a little eager for a LAN.
        BackoffConfig { initial_ms: 500, max_ms: 60_000, factor: 2.0 }
    }
}

/// The backoff state of one peer (or one dial target).
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
}

impl Backoff {
    /// A backoff with no failure yet.
    pub fn new(config: BackoffConfig) -> Self {
        Backoff { config, failures: 0 }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Records a failure and returns how long to wait before the next try.
    pub fn next_delay_ms(&mut self, rng: &mut SeededRng) -> u64 {
        self.failures = self.failures.saturating_add(1);
        let exponent = (self.failures - 1).min(64) as i32;
        let ceiling = (self.config.initial_ms as f64 * self.config.factor.max(1.0).powi(exponent))
            .min(self.config.max_ms as f64)
            .max(1.0) as u64;
        let half = ceiling / 2;
        half + rng.below(ceiling - half + 1)
    }

    /// Records a success: the next failure starts from the initial delay again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_to_the_cap_stay_in_their_jitter_band_and_reset() {
        let config = BackoffConfig { initial_ms: 100, max_ms: 1_000, factor: 2.0 };
        let mut backoff = Backoff::new(config);
        let mut rng = SeededRng::new(7);
        let ceilings = [100, 200, 400, 800, 1_000, 1_000];
        for ceiling in ceilings {
            let delay = backoff.next_delay_ms(&mut rng);
            assert!((ceiling / 2..=ceiling).contains(&delay), "delay {delay} outside [{}, {ceiling}]", ceiling / 2);
        }
        backoff.reset();
        assert!(backoff.next_delay_ms(&mut rng) <= 100);
    }

    #[test]
    fn jitter_spreads_peers_that_failed_together() {
        let mut rng = SeededRng::new(1);
        let delays: std::collections::BTreeSet<u64> =
            (0..20).map(|_| Backoff::new(BackoffConfig::default()).next_delay_ms(&mut rng)).collect();
        assert!(delays.len() > 10, "delays not spread: {delays:?}");
    }
}
