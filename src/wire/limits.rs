//! Limits that keep one peer (or a crowd of unauthenticated sockets) from taking more than
//! its share: token buckets for bytes, requests and handshakes, a misbehaviour score that
//! ends in disconnection, a cap on the number of peers, and a handshake limiter per source
//! address (DESIGN.md §5).
//!
//! All of it is sans-IO: time arrives as `now_ms`, and the arithmetic is in integers, so
//! a bucket neither drifts nor depends on the platform's floats. The defaults are guesses
//! sized for a 2-core node on a LAN, not measurements; the engine's configuration
//! overrides them.

use std::collections::HashMap;
use std::net::IpAddr;

/// Internal units per token: one minute in milliseconds, so that a refill of an integer
/// number of tokens per minute is an integer number of units per millisecond.
const UNITS_PER_TOKEN: u64 = 60_000;

/// A token bucket: up to `burst` tokens, refilled continuously at a fixed rate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Units added per millisecond (= tokens per minute).
    refill_per_ms: u64,
    /// The most units the bucket holds.
    capacity: u64,
    level: u64,
    last_ms: u64,
}

impl TokenBucket {
    /// A full bucket refilled with `rate_per_s` tokens per second.
    pub fn new(rate_per_s: u64, burst: u64, now_ms: u64) -> TokenBucket {
        TokenBucket::per_minute(rate_per_s.saturating_mul(60), burst, now_ms)
    }

    /// A full bucket refilled with `rate_per_min` tokens per minute (for slow rates such
    /// as handshakes).
    pub fn per_minute(rate_per_min: u64, burst: u64, now_ms: u64) -> TokenBucket {
        let capacity = burst.saturating_mul(UNITS_PER_TOKEN);
        TokenBucket { refill_per_ms: rate_per_min, capacity, level: capacity, last_ms: now_ms }
    }

    /// Takes `n` tokens if the bucket has them. A request larger than the burst never
    /// succeeds, so the burst must be at least the largest single take (one frame).
    pub fn try_take(&mut self, now_ms: u64, n: u64) -> bool {
        self.refill(now_ms);
        let need = n.saturating_mul(UNITS_PER_TOKEN);
        if need > self.level {
            return false;
        }
        self.level -= need;
        true
    }

    /// The whole tokens available now.
    pub fn available(&mut self, now_ms: u64) -> u64 {
        self.refill(now_ms);
        self.level / UNITS_PER_TOKEN
    }

    /// How long until `n` tokens are available: 0 if now, None if never (more than the
    /// burst, or no refill). The engine uses it to pause reading instead of dropping.
    pub fn wait_ms(&mut self, now_ms: u64, n: u64) -> Option<u64> {
        self.refill(now_ms);
        let need = n.saturating_mul(UNITS_PER_TOKEN);
        if need <= self.level {
            return Some(0);
        }
        if need > self.capacity || self.refill_per_ms == 0 {
            return None;
        }
        Some((need - self.level).div_ceil(self.refill_per_ms))
    }

    /// Whether the bucket is full (its owner has been idle long enough to be forgotten).
    pub fn is_full(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        self.level == self.capacity
    }

    fn refill(&mut self, now_ms: u64) {
        // A clock that goes backwards refills nothing rather than underflowing.
        let elapsed = now_ms.saturating_sub(self.last_ms);
        self.level = self.level.saturating_add(elapsed.saturating_mul(self.refill_per_ms)).min(self.capacity);
        self.last_ms = self.last_ms.max(now_ms);
    }
}

/// What a peer did wrong, with a weight in points.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum Offence {
    /// A frame the frame decoder refused (the session is over anyway).
    BadFrame,
    /// A node-core message that does not decode.
    MalformedMessage,
    /// An item that fails validation (bad digest, bad signature, impossible version).
    InvalidItem,
    /// A rate limit was hit.
    Flood,
    /// A handshake that failed (garbage, wrong key, refused negotiation).
    HandshakeFailure,
    /// Anything else, with its own weight.
    Other(u32),
}

impl Offence {
    /// The points the offence adds to the score (out of a default threshold of 100).
    pub fn weight(self) -> u32 {
        match self {
            Offence::BadFrame => 100,
            Offence::HandshakeFailure => 50,
            Offence::MalformedMessage => 25,
            Offence::InvalidItem => 10,
            Offence::Flood => 5,
            Offence::Other(points) => points,
        }
    }
}

/// What to do with a peer after recording an offence.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Verdict {
    /// Keep the connection.
    Ok,
    /// Send GoAway(Misbehaviour) and close.
    Disconnect,
}

/// A misbehaviour score that decays slowly, so an honest peer's rare mistakes are
/// forgiven and a hostile peer's repeated ones add up to a disconnection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Misbehaviour {
    score: u32,
    threshold: u32,
    decay_ms_per_point: u64,
    last_ms: u64,
}

impl Misbehaviour {
    /// A clean score: disconnect at `threshold` points; one point is forgiven every
    /// `decay_ms_per_point` milliseconds (0 = never).
    pub fn new(threshold: u32, decay_ms_per_point: u64, now_ms: u64) -> Misbehaviour {
        Misbehaviour { score: 0, threshold: threshold.max(1), decay_ms_per_point, last_ms: now_ms }
    }

    /// Records an offence and says whether the peer must go.
    pub fn record(&mut self, now_ms: u64, offence: Offence) -> Verdict {
        self.decay(now_ms);
        self.score = self.score.saturating_add(offence.weight());
        self.verdict()
    }

    /// The score now, after decay.
    pub fn score(&mut self, now_ms: u64) -> u32 {
        self.decay(now_ms);
        self.score
    }

    /// Whether the score is at or past the threshold.
    pub fn verdict(&self) -> Verdict {
        if self.score >= self.threshold {
            Verdict::Disconnect
        } else {
            Verdict::Ok
        }
    }

    fn decay(&mut self, now_ms: u64) {
        if self.decay_ms_per_point == 0 || now_ms <= self.last_ms {
            return;
        }
        let points = (now_ms - self.last_ms) / self.decay_ms_per_point;
        self.score = self.score.saturating_sub(u32::try_from(points).unwrap_or(u32::MAX));
        // Keep the remainder, so frequent calls decay as fast as rare ones; a clean
        // score banks nothing for the future.
        self.last_ms = if self.score == 0 { now_ms } else { self.last_ms + points * self.decay_ms_per_point };
    }
}

/// The limits' settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// Bytes a peer may send per second, on average.
    pub bytes_per_s: u64,
    /// Bytes a peer may send at once: at least one maximal frame plus its header.
    pub bytes_burst: u64,
    /// Requests (node-core messages) a peer may send per second.
    pub requests_per_s: u64,
    /// Requests a peer may send at once.
    pub requests_burst: u64,
    /// Handshakes per minute with one peer (reconnections).
    pub peer_handshakes_per_min: u64,
    /// Handshakes with one peer at once.
    pub peer_handshakes_burst: u64,
    /// The misbehaviour score that ends in disconnection.
    pub misbehaviour_threshold: u32,
    /// One misbehaviour point is forgiven per this many milliseconds.
    pub misbehaviour_decay_ms_per_point: u64,
    /// The most peers (established or handshaking) at once.
    pub max_peers: usize,
    /// Handshakes per minute from one source address.
    pub ip_handshakes_per_min: u64,
    /// Handshakes from one source address at once.
    pub ip_handshakes_burst: u64,
    /// Handshakes per second from everyone together.
    pub global_handshakes_per_s: u64,
    /// Handshakes from everyone at once.
    pub global_handshakes_burst: u64,
    /// The most source addresses the handshake limiter tracks.
    pub max_tracked_addresses: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            // A peer streaming a whole category sends in bursts as large as the sender's
            // send queue (64 MiB by default) as fast as loopback allows: an honest bulk
            // sync must never look like a flood (measured: 256 MiB/s with a 16 MiB burst
            // cut honest bulk syncs on loopback, see ADR 033).
            bytes_per_s: 1 << 30,
            bytes_burst: 128 << 20,
            requests_per_s: 10_000,
            requests_burst: 20_000,
            peer_handshakes_per_min: 30,
            peer_handshakes_burst: 10,
            misbehaviour_threshold: 100,
            misbehaviour_decay_ms_per_point: 1_000,
            max_peers: 256,
            ip_handshakes_per_min: 60,
            ip_handshakes_burst: 20,
            global_handshakes_per_s: 200,
            global_handshakes_burst: 400,
            max_tracked_addresses: 4096,
        }
    }
}

impl LimitsConfig {
    /// Checks that the byte burst admits one maximal frame, so no honest frame is
    /// refused forever.
    pub fn validate(&self, max_frame_len: u32) -> Result<(), &'static str> {
        if self.bytes_burst < max_frame_len as u64 + super::frame::HEADER_LEN as u64 {
            return Err("bytes_burst must be at least one maximal frame");
        }
        if self.max_peers == 0 || self.max_tracked_addresses == 0 {
            return Err("max_peers and max_tracked_addresses must be positive");
        }
        Ok(())
    }
}

/// The limits of one peer. The engine keeps it by NodeId across reconnections, so that a
/// peer cannot reset its score by reconnecting.
#[derive(Clone, Debug)]
pub struct PeerLimits {
    /// Bytes received.
    pub bytes: TokenBucket,
    /// Requests received.
    pub requests: TokenBucket,
    /// Handshakes completed.
    pub handshakes: TokenBucket,
    /// The misbehaviour score.
    pub misbehaviour: Misbehaviour,
}

impl PeerLimits {
    /// Fresh limits: full buckets, a clean score.
    pub fn new(cfg: &LimitsConfig, now_ms: u64) -> PeerLimits {
        PeerLimits {
            bytes: TokenBucket::new(cfg.bytes_per_s, cfg.bytes_burst, now_ms),
            requests: TokenBucket::new(cfg.requests_per_s, cfg.requests_burst, now_ms),
            handshakes: TokenBucket::per_minute(cfg.peer_handshakes_per_min, cfg.peer_handshakes_burst, now_ms),
            misbehaviour: Misbehaviour::new(cfg.misbehaviour_threshold, cfg.misbehaviour_decay_ms_per_point, now_ms),
        }
    }

    /// Charges one request of `bytes` bytes. Over either limit, records a flood and
    /// returns its verdict: the engine drops the request, and disconnects on Disconnect.
    pub fn charge_request(&mut self, now_ms: u64, bytes: u64) -> Result<(), Verdict> {
        if self.bytes.try_take(now_ms, bytes) && self.requests.try_take(now_ms, 1) {
            return Ok(());
        }
        Err(self.misbehaviour.record(now_ms, Offence::Flood))
    }

    /// Records an offence.
    pub fn record(&mut self, now_ms: u64, offence: Offence) -> Verdict {
        self.misbehaviour.record(now_ms, offence)
    }
}

/// A counter of peer slots, so the engine never holds more than `max` peers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerSlots {
    max: usize,
    used: usize,
}

impl PeerSlots {
    /// `max` free slots.
    pub fn new(max: usize) -> PeerSlots {
        PeerSlots { max, used: 0 }
    }

    /// Takes a slot if one is free (else the engine answers GoAway(TooManyPeers)).
    pub fn try_acquire(&mut self) -> bool {
        if self.used >= self.max {
            return false;
        }
        self.used += 1;
        true
    }

    /// Returns a slot.
    pub fn release(&mut self) {
        debug_assert!(self.used > 0, "released a slot that was not taken");
        self.used = self.used.saturating_sub(1);
    }

    /// The slots in use.
    pub fn used(&self) -> usize {
        self.used
    }
}

/// Admits handshakes before any cryptography: a global bucket against floods from many
/// addresses, and one bucket per source address against one address hammering us. The
/// table is bounded: when full, addresses idle long enough for their bucket to refill
/// are forgotten; if none are, new addresses are refused until some are.
#[derive(Clone, Debug)]
pub struct HandshakeLimiter {
    global: TokenBucket,
    per_address: HashMap<IpAddr, TokenBucket>,
    per_min: u64,
    burst: u64,
    max_tracked: usize,
}

impl HandshakeLimiter {
    /// A limiter with the settings of `cfg`.
    pub fn new(cfg: &LimitsConfig, now_ms: u64) -> HandshakeLimiter {
        HandshakeLimiter {
            global: TokenBucket::new(cfg.global_handshakes_per_s, cfg.global_handshakes_burst, now_ms),
            per_address: HashMap::new(),
            per_min: cfg.ip_handshakes_per_min,
            burst: cfg.ip_handshakes_burst,
            max_tracked: cfg.max_tracked_addresses.max(1),
        }
    }

    /// Whether to accept a handshake from `address` now.
    pub fn allow(&mut self, now_ms: u64, address: IpAddr) -> bool {
        if !self.per_address.contains_key(&address) && !self.make_room(now_ms) {
            return false;
        }
        let (per_min, burst) = (self.per_min, self.burst);
        let bucket = self.per_address.entry(address).or_insert_with(|| TokenBucket::per_minute(per_min, burst, now_ms));
        // The address's own bucket first, so one noisy address does not drain the
        // global bucket for everyone.
        bucket.try_take(now_ms, 1) && self.global.try_take(now_ms, 1)
    }

    /// How many addresses are tracked.
    pub fn tracked(&self) -> usize {
        self.per_address.len()
    }

    fn make_room(&mut self, now_ms: u64) -> bool {
        if self.per_address.len() < self.max_tracked {
            return true;
        }
        self.per_address.retain(|_, bucket| !bucket.is_full(now_ms));
        self.per_address.len() < self.max_tracked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let mut bucket = TokenBucket::new(10, 5, 0);
        assert!((0..5).all(|_| bucket.try_take(0, 1)));
        assert!(!bucket.try_take(0, 1), "burst exhausted");
        assert!(!bucket.try_take(99, 1), "10/s is one token per 100 ms");
        assert!(bucket.try_take(100, 1));
        assert_eq!(bucket.available(10_000), 5, "never more than the burst");
    }

    #[test]
    fn a_bucket_does_not_drift_over_many_small_steps() {
        // 3 tokens per second taken one millisecond at a time for an hour: exactly
        // 3 × 3600 tokens, plus the initial burst of 2 (a burst of 2 never overflows
        // here, so nothing is lost to the cap).
        let mut bucket = TokenBucket::new(3, 2, 0);
        let taken = (0..=3_600_000u64).filter(|&now| bucket.try_take(now, 1)).count();
        assert_eq!(taken, 3 * 3600 + 2);
    }

    #[test]
    fn slow_rates_per_minute_work_and_wait_times_are_exact() {
        let mut bucket = TokenBucket::per_minute(6, 1, 0);
        assert!(bucket.try_take(0, 1));
        assert_eq!(bucket.wait_ms(0, 1), Some(10_000));
        assert!(!bucket.try_take(9_999, 1));
        assert!(bucket.try_take(10_000, 1));
        assert_eq!(bucket.wait_ms(10_000, 2), None, "more than the burst: never");
    }

    #[test]
    fn a_bucket_survives_a_clock_going_backwards_and_huge_numbers() {
        let mut bucket = TokenBucket::new(u64::MAX, u64::MAX, 1000);
        assert!(bucket.try_take(0, 1));
        assert!(bucket.try_take(u64::MAX, u64::MAX / UNITS_PER_TOKEN));
    }

    #[test]
    fn repeated_offences_end_in_disconnection_and_the_score_decays() {
        let mut score = Misbehaviour::new(100, 1_000, 0);
        for _ in 0..9 {
            assert_eq!(score.record(0, Offence::InvalidItem), Verdict::Ok);
        }
        assert_eq!(score.record(0, Offence::InvalidItem), Verdict::Disconnect, "10 × 10 points");
        let mut score = Misbehaviour::new(100, 1_000, 0);
        score.record(0, Offence::HandshakeFailure);
        assert_eq!(score.score(30_000), 20);
        assert_eq!(score.record(30_000, Offence::HandshakeFailure), Verdict::Ok, "70 < 100 after decay");
        assert_eq!(score.score(1_000_000), 0);
    }

    #[test]
    fn decay_keeps_its_remainder_across_frequent_calls() {
        let mut score = Misbehaviour::new(1000, 1_000, 0);
        score.record(0, Offence::Other(100));
        for now in (0..=10_000).step_by(300) {
            score.score(now);
        }
        assert_eq!(score.score(10_000), 90);
    }

    #[test]
    fn a_request_flood_is_refused_then_ends_in_disconnection() {
        let cfg = LimitsConfig { requests_per_s: 1, requests_burst: 1, ..LimitsConfig::default() };
        let mut peer = PeerLimits::new(&cfg, 0);
        assert_eq!(peer.charge_request(0, 100), Ok(()));
        let verdicts: Vec<_> = (0..20).map(|_| peer.charge_request(0, 100)).collect();
        assert_eq!(verdicts[0], Err(Verdict::Ok));
        assert_eq!(verdicts[19], Err(Verdict::Disconnect), "20 floods × 5 points");
    }

    #[test]
    fn peer_slots_are_bounded() {
        let mut slots = PeerSlots::new(2);
        assert!(slots.try_acquire() && slots.try_acquire());
        assert!(!slots.try_acquire());
        slots.release();
        assert!(slots.try_acquire());
        assert_eq!(slots.used(), 2);
    }

    #[test]
    fn the_handshake_limiter_bounds_each_address_everyone_and_its_table() {
        let cfg = LimitsConfig {
            ip_handshakes_per_min: 60,
            ip_handshakes_burst: 2,
            global_handshakes_per_s: 1,
            global_handshakes_burst: 3,
            max_tracked_addresses: 2,
            ..LimitsConfig::default()
        };
        let mut limiter = HandshakeLimiter::new(&cfg, 0);
        let ip = |n: u8| IpAddr::from([10, 0, 0, n]);
        assert!(limiter.allow(0, ip(1)) && limiter.allow(0, ip(1)));
        assert!(!limiter.allow(0, ip(1)), "per-address burst");
        assert!(limiter.allow(0, ip(2)));
        assert!(!limiter.allow(0, ip(3)), "table full of busy addresses");
        assert!(!limiter.allow(0, ip(2)), "global burst spent");
        assert!(limiter.allow(2_000, ip(3)), "idle addresses are forgotten once refilled");
        assert!(limiter.tracked() <= 2);
    }

    #[test]
    fn the_default_limits_admit_a_maximal_frame() {
        assert_eq!(LimitsConfig::default().validate(super::super::frame::DEFAULT_MAX_FRAME_LEN), Ok(()));
        let tight = LimitsConfig { bytes_burst: 1024, ..LimitsConfig::default() };
        assert!(tight.validate(4096).is_err());
    }
}
