//! The per-peer clock filter of NTP (RFC 5905 §10, "Clock Filter Algorithm").
//!
//! A peer's most recent [`FILTER_SAMPLES`] exchanges are kept; the one with the lowest
//! round-trip delay is the best estimate of the peer's offset, because queueing only
//! ever adds delay and the error of an offset is bounded by half its delay. Each
//! sample's dispersion grows with its age at the rate `PHI` (the frequency tolerance
//! the local oscillator is assumed to hold), so an old low-delay sample eventually
//! loses to a fresh one.

/// How many samples a peer's filter holds (RFC 5905: NSTAGE = 8).
pub const FILTER_SAMPLES: usize = 8;

/// Frequency tolerance, in parts per million (RFC 5905: PHI = 15e-6 s/s).
pub const PHI_PPM: i64 = 15;

/// One offset and delay measurement (see [`super::network_time::Exchange`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Sample {
    /// Estimated peer clock minus local clock, in microseconds (θ).
    pub offset_us: i64,
    /// Round-trip delay without the peer's processing time, in microseconds (δ ≥ 0).
    pub delay_us: i64,
    /// Local time at which the reply arrived (t4), in microseconds.
    pub taken_at_us: i64,
}

/// What the filter says about one peer.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct FilteredPeer {
    /// The offset of the lowest-delay sample.
    pub offset_us: i64,
    /// Its delay.
    pub delay_us: i64,
    /// Its dispersion: precision plus `PHI` times its age.
    pub dispersion_us: i64,
    /// Root-mean-square difference between the other samples' offsets and the chosen
    /// one (RFC 5905 ψ), a measure of how noisy the peer is.
    pub jitter_us: i64,
}

impl FilteredPeer {
    /// Half-width of the peer's correctness interval: `δ/2 + ε`. The true offset lies
    /// within `offset ± distance` whatever the asymmetry of the two paths.
    pub fn distance_us(&self) -> i64 {
        (self.delay_us / 2).saturating_add(self.dispersion_us)
    }
}

/// The last [`FILTER_SAMPLES`] samples of one peer, in a fixed ring.
#[derive(Clone, Debug, Default)]
pub struct ClockFilter {
    samples: [Option<Sample>; FILTER_SAMPLES],
    next_slot: usize,
}

impl ClockFilter {
    /// An empty filter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a sample, replacing the oldest once the ring is full. A sample taken
    /// before one already held means the local clock stepped back: the held samples
    /// were measured against a clock that no longer exists and are cleared (RFC 5905
    /// §10 clears the filter on a step), or they would look younger than the new one.
    pub fn push(&mut self, sample: Sample) {
        assert!(sample.delay_us >= 0, "samples are validated before they reach the filter");
        if self.samples.iter().flatten().any(|held| held.taken_at_us > sample.taken_at_us) {
            self.samples = [None; FILTER_SAMPLES];
            self.next_slot = 0;
        }
        self.samples[self.next_slot] = Some(sample);
        self.next_slot = (self.next_slot + 1) % FILTER_SAMPLES;
    }

    /// The number of samples held.
    pub fn len(&self) -> usize {
        self.samples.iter().flatten().count()
    }

    /// Whether no sample is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets samples taken before `oldest_us`.
    pub fn expire(&mut self, oldest_us: i64) {
        for slot in &mut self.samples {
            if slot.is_some_and(|sample| sample.taken_at_us < oldest_us) {
                *slot = None;
            }
        }
    }

    /// The lowest-delay sample, aged to `now_us`; `None` when empty. Among equal
    /// delays the most recent sample wins.
    pub fn best(&self, now_us: i64, precision_us: i64) -> Option<FilteredPeer> {
        let best = self
            .samples
            .iter()
            .flatten()
            .min_by_key(|sample| (sample.delay_us, std::cmp::Reverse(sample.taken_at_us)))?;
        let age_us = now_us.saturating_sub(best.taken_at_us).max(0);
        let dispersion_us =
            precision_us.saturating_add(age_us / 1_000_000 * PHI_PPM + age_us % 1_000_000 * PHI_PPM / 1_000_000);
        let others: Vec<i128> = self
            .samples
            .iter()
            .flatten()
            .map(|sample| i128::from(sample.offset_us) - i128::from(best.offset_us))
            .collect();
        let mean_square = others.iter().map(|d| d * d).sum::<i128>() / others.len().max(1) as i128;
        let jitter_us = i64::try_from(isqrt(mean_square)).unwrap_or(i64::MAX);
        Some(FilteredPeer { offset_us: best.offset_us, delay_us: best.delay_us, dispersion_us, jitter_us })
    }
}

/// Integer square root of a non-negative value (Newton's method).
fn isqrt(value: i128) -> i128 {
    debug_assert!(value >= 0);
    if value < 2 {
        return value;
    }
    let mut estimate = value;
    let mut next = (estimate + 1) / 2;
    while next < estimate {
        estimate = next;
        next = (estimate + value / estimate) / 2;
    }
    estimate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(offset_us: i64, delay_us: i64, taken_at_us: i64) -> Sample {
        Sample { offset_us, delay_us, taken_at_us }
    }

    #[test]
    fn lowest_delay_wins() {
        let mut filter = ClockFilter::new();
        assert!(filter.is_empty());
        assert_eq!(filter.best(0, 1), None);
        filter.push(sample(5_000, 20_000, 1));
        filter.push(sample(100, 2_000, 2));
        filter.push(sample(-3_000, 9_000, 3));
        let best = filter.best(3, 10).unwrap();
        assert_eq!((best.offset_us, best.delay_us), (100, 2_000));
        assert_eq!(best.distance_us(), 1_000 + best.dispersion_us);
        assert!(best.jitter_us > 0);
    }

    #[test]
    fn only_the_last_eight_samples_count() {
        let mut filter = ClockFilter::new();
        filter.push(sample(0, 1, 0));
        for index in 1..=FILTER_SAMPLES as i64 {
            filter.push(sample(index, 100, index));
        }
        assert_eq!(filter.len(), FILTER_SAMPLES);
        assert_eq!(filter.best(10, 0).unwrap().delay_us, 100);
    }

    #[test]
    fn dispersion_grows_with_age_and_expiry_forgets() {
        let mut filter = ClockFilter::new();
        filter.push(sample(0, 10, 0));
        let young = filter.best(0, 5).unwrap();
        let old = filter.best(100_000_000, 5).unwrap();
        assert_eq!(young.dispersion_us, 5);
        assert_eq!(old.dispersion_us, 5 + 100 * PHI_PPM);
        filter.expire(1);
        assert!(filter.is_empty());
    }

    #[test]
    fn a_backward_clock_step_clears_the_samples_of_the_old_clock() {
        let mut filter = ClockFilter::new();
        filter.push(sample(0, 10, 5_000));
        filter.push(sample(0, 10, 6_000));
        assert_eq!(filter.len(), 2);
        filter.push(sample(9, 30, 1_000));
        assert_eq!(filter.len(), 1, "a sample older than those held clears them");
        assert_eq!(filter.best(1_000, 0).unwrap().offset_us, 9);
    }

    #[test]
    fn isqrt_is_exact_on_squares() {
        for root in [0i128, 1, 2, 3, 1_000, 3_037_000_499] {
            assert_eq!(isqrt(root * root), root);
            assert_eq!(isqrt(root * root + 1).max(root), root.max(isqrt(root * root + 1)));
        }
    }
}
