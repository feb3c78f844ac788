//! Hybrid logical clocks (Kulkarni, Demirbas, Madappa, Avva, Leone: "Logical Physical
//! Clocks and Consistent Snapshots in Globally Distributed Databases", OPODIS 2014).
//!
//! An HLC timestamp is a pair `(l, c)`: `l` is the largest physical time (milliseconds
//! since the Unix epoch) the node has heard of, `c` counts events that share that `l`.
//! It orders events like a Lamport clock (if a happened before b then `ts(a) < ts(b)`)
//! while staying within the clock skew of physical time, so last-writer-wins on HLC
//! means "latest in real time" whenever clocks are synchronized.
//!
//! # Bit layout
//!
//! ```text
//!  63                                              16 15             0
//! ┌─────────────────────────────────────────────────┬────────────────┐
//! │ l: physical milliseconds since 1970-01-01 (48)  │ c: logical (16)│
//! └─────────────────────────────────────────────────┴────────────────┘
//! ```
//!
//! 48 bits of milliseconds last until the year 10889; 16 logical bits give 65,536
//! events per millisecond before the rule below applies. Because `l` sits above `c`,
//! the packed `u64` compares exactly like the pair, and big-endian bytes compare like
//! the `u64` (so encoded timestamps sort bytewise).
//!
//! # Logical overflow
//!
//! The paper's rules (Fig. 5) are, in packed form: a local or send event takes
//! `max(last + 1, (now, 0))`; a receive takes `max(last + 1, remote + 1, (now, 0))`.
//! When `c` is already `0xFFFF`, `+ 1` carries into `l`: the timestamp *borrows one
//! millisecond from the future* (`(l, 0xFFFF) + 1 = (l + 1, 0)`). Order stays strict and
//! total; the price is that `l` may run ahead of physical time by one millisecond per
//! 65,536 events beyond what the millisecond holds, and physical time catches up as
//! soon as the burst ends. `docs/adr/010-hybrid-logical-clock.md` records the choice.
//!
//! # Refusing the far future
//!
//! A remote timestamp whose `l` is more than `max_offset_ms` ahead of local physical
//! time is refused ([`HlcError::RemoteTooFarAhead`]) and counted, instead of dragging
//! this node's clock (and every node it talks to) into the future: the paper bounds
//! `l − pt` by the clock skew ε only if such messages are rejected. The default,
//! 500 ms, is CockroachDB's default `--max-offset` for the same mechanism.
//!
//! Physical time is always an argument (`now_ms`), ideally the network-synchronized
//! time of [`super::network_time`]; this module never reads a clock.

use std::fmt;

use super::codec::{DecodeError, Reader};

/// Bits of the logical counter.
pub const LOGICAL_BITS: u32 = 16;
/// The largest logical counter.
pub const LOGICAL_MAX: u64 = (1 << LOGICAL_BITS) - 1;
/// The largest physical time representable, in milliseconds since the Unix epoch.
pub const PHYSICAL_MAX_MS: u64 = (1 << (64 - LOGICAL_BITS)) - 1;
/// Default bound on how far ahead of local physical time a remote timestamp may be.
pub const DEFAULT_MAX_OFFSET_MS: u64 = 500;

/// Why the clock refused an input.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HlcError {
    /// The remote timestamp is further ahead of local physical time than allowed.
    RemoteTooFarAhead {
        /// The remote timestamp's physical part.
        remote_ms: u64,
        /// Local physical time.
        local_ms: u64,
        /// The configured bound.
        max_offset_ms: u64,
    },
    /// `now_ms` does not fit in 48 bits.
    PhysicalTimeOutOfRange {
        /// The time that was passed in.
        now_ms: u64,
    },
    /// The clock reached the largest representable timestamp.
    Exhausted,
}

impl fmt::Display for HlcError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HlcError::RemoteTooFarAhead { remote_ms, local_ms, max_offset_ms } => write!(
                f,
                "remote timestamp {remote_ms} ms is {} ms ahead of local time {local_ms} ms (max offset {max_offset_ms} ms)",
                remote_ms - local_ms
            ),
            HlcError::PhysicalTimeOutOfRange { now_ms } => write!(f, "physical time {now_ms} ms exceeds 48 bits"),
            HlcError::Exhausted => f.write_str("hybrid logical clock exhausted"),
        }
    }
}

impl std::error::Error for HlcError {}

/// A hybrid logical timestamp, packed as described in the module documentation.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Default)]
pub struct HlcTimestamp(pub u64);

impl HlcTimestamp {
    /// The length of the encoding.
    pub const ENCODED_LEN: usize = 8;

    /// The timestamp `(physical_ms, logical)`; `None` if a part is out of range.
    pub fn new(physical_ms: u64, logical: u64) -> Option<Self> {
        if physical_ms > PHYSICAL_MAX_MS || logical > LOGICAL_MAX {
            return None;
        }
        Some(HlcTimestamp((physical_ms << LOGICAL_BITS) | logical))
    }

    /// The physical part `l`, in milliseconds since the Unix epoch.
    pub fn physical_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The logical part `c`.
    pub fn logical(self) -> u64 {
        self.0 & LOGICAL_MAX
    }

    /// Appends the 8-byte big-endian encoding (bytewise order = time order).
    pub fn encode(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
    }

    /// Decodes exactly one timestamp. Every 64-bit value is a valid timestamp.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = reader.u64_be()?;
        reader.finish()?;
        Ok(HlcTimestamp(value))
    }
}

/// Configuration of a hybrid logical clock.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HlcConfig {
    /// Remote timestamps more than this far ahead of local physical time are refused.
    pub max_offset_ms: u64,
}

impl Default for HlcConfig {
    fn default() -> Self {
        HlcConfig { max_offset_ms: DEFAULT_MAX_OFFSET_MS }
    }
}

/// The hybrid logical clock of one node.
#[derive(Clone, Debug)]
pub struct Hlc {
    config: HlcConfig,
    last: HlcTimestamp,
    refused_count: u64,
    borrowed_ms_count: u64,
}

impl Hlc {
    /// A clock that has issued nothing yet.
    pub fn new(config: HlcConfig) -> Self {
        Hlc { config, last: HlcTimestamp(0), refused_count: 0, borrowed_ms_count: 0 }
    }

    /// The last timestamp issued.
    pub fn last(&self) -> HlcTimestamp {
        self.last
    }

    /// How many remote timestamps were refused as too far ahead.
    pub fn refused_count(&self) -> u64 {
        self.refused_count
    }

    /// How many times the logical part overflowed and borrowed a millisecond.
    pub fn borrowed_ms_count(&self) -> u64 {
        self.borrowed_ms_count
    }

    /// The configuration.
    pub fn config(&self) -> HlcConfig {
        self.config
    }

    /// Stamps a local or send event at physical time `now_ms`.
    pub fn now(&mut self, now_ms: u64) -> Result<HlcTimestamp, HlcError> {
        let physical = Self::physical(now_ms)?;
        let next = self.successor(self.last)?.max(physical);
        self.advance(next, physical);
        Ok(next)
    }

    /// Stamps the receipt of `remote` at physical time `now_ms`, or refuses a remote
    /// timestamp from too far in the future (counted in [`Hlc::refused_count`]). A
    /// refusal leaves the clock unchanged.
    pub fn observe(&mut self, remote: HlcTimestamp, now_ms: u64) -> Result<HlcTimestamp, HlcError> {
        let physical = Self::physical(now_ms)?;
        if remote.physical_ms() > now_ms.saturating_add(self.config.max_offset_ms) {
            self.refused_count += 1;
            return Err(HlcError::RemoteTooFarAhead {
                remote_ms: remote.physical_ms(),
                local_ms: now_ms,
                max_offset_ms: self.config.max_offset_ms,
            });
        }
        let next = self.successor(self.last)?.max(self.successor(remote)?).max(physical);
        self.advance(next, physical);
        Ok(next)
    }

    fn physical(now_ms: u64) -> Result<HlcTimestamp, HlcError> {
        HlcTimestamp::new(now_ms, 0).ok_or(HlcError::PhysicalTimeOutOfRange { now_ms })
    }

    /// `timestamp + 1` in packed form: the logical part counts up and carries into the
    /// physical part when full (the borrow rule of the module documentation).
    fn successor(&self, timestamp: HlcTimestamp) -> Result<HlcTimestamp, HlcError> {
        timestamp.0.checked_add(1).map(HlcTimestamp).ok_or(HlcError::Exhausted)
    }

    fn advance(&mut self, next: HlcTimestamp, physical: HlcTimestamp) {
        assert!(next > self.last, "hybrid logical time must strictly increase");
        assert!(next >= physical, "hybrid logical time never lags physical time");
        // A logical part of 0 that physical time did not supply came from a carry.
        if next.logical() == 0 && next != physical {
            self.borrowed_ms_count += 1;
        }
        self.last = next;
    }
}

impl Default for Hlc {
    fn default() -> Self {
        Hlc::new(HlcConfig::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_48_bit_milliseconds_over_16_bit_logical() {
        let timestamp = HlcTimestamp::new(0x1234_5678_9abc, 0x00ff).unwrap();
        assert_eq!(timestamp.0, 0x1234_5678_9abc_00ff);
        assert_eq!(timestamp.physical_ms(), 0x1234_5678_9abc);
        assert_eq!(timestamp.logical(), 0xff);
        assert_eq!(HlcTimestamp::new(PHYSICAL_MAX_MS + 1, 0), None);
        assert_eq!(HlcTimestamp::new(0, LOGICAL_MAX + 1), None);
    }

    #[test]
    fn now_follows_physical_time_and_counts_within_a_millisecond() {
        let mut clock = Hlc::default();
        let a = clock.now(1_000).unwrap();
        let b = clock.now(1_000).unwrap();
        let c = clock.now(1_005).unwrap();
        assert_eq!((a.physical_ms(), a.logical()), (1_000, 0));
        assert_eq!((b.physical_ms(), b.logical()), (1_000, 1));
        assert_eq!((c.physical_ms(), c.logical()), (1_005, 0));
        // Physical time going backwards does not move the clock backwards.
        let d = clock.now(900).unwrap();
        assert_eq!((d.physical_ms(), d.logical()), (1_005, 1));
        assert_eq!(clock.last(), d);
    }

    #[test]
    fn observe_moves_past_the_remote_timestamp() {
        let mut clock = Hlc::default();
        clock.now(1_000).unwrap();
        let remote = HlcTimestamp::new(1_200, 7).unwrap();
        let received = clock.observe(remote, 1_000).unwrap();
        assert_eq!((received.physical_ms(), received.logical()), (1_200, 8));
        let older = clock.observe(HlcTimestamp::new(10, 0).unwrap(), 1_000).unwrap();
        assert_eq!((older.physical_ms(), older.logical()), (1_200, 9));
    }

    #[test]
    fn far_future_remote_is_refused_counted_and_ignored() {
        let mut clock = Hlc::new(HlcConfig { max_offset_ms: 500 });
        let before = clock.now(1_000).unwrap();
        let remote = HlcTimestamp::new(1_000 + 3_600_000, 0).unwrap();
        let error = clock.observe(remote, 1_000).unwrap_err();
        assert_eq!(error, HlcError::RemoteTooFarAhead { remote_ms: 3_601_000, local_ms: 1_000, max_offset_ms: 500 });
        assert_eq!(clock.refused_count(), 1);
        assert_eq!(clock.last(), before);
        assert!(error.to_string().contains("3600000 ms ahead"));
        // Exactly at the bound is accepted.
        assert!(clock.observe(HlcTimestamp::new(1_500, 0).unwrap(), 1_000).is_ok());
    }

    #[test]
    fn logical_overflow_borrows_one_millisecond() {
        let mut clock = Hlc::default();
        let mut previous = clock.now(7).unwrap();
        for _ in 0..LOGICAL_MAX {
            previous = clock.now(7).unwrap();
        }
        assert_eq!((previous.physical_ms(), previous.logical()), (7, LOGICAL_MAX));
        let borrowed = clock.now(7).unwrap();
        assert_eq!((borrowed.physical_ms(), borrowed.logical()), (8, 0));
        assert_eq!(clock.borrowed_ms_count(), 1);
    }

    #[test]
    fn out_of_range_inputs_are_errors() {
        let mut clock = Hlc::default();
        assert_eq!(
            clock.now(PHYSICAL_MAX_MS + 1),
            Err(HlcError::PhysicalTimeOutOfRange { now_ms: PHYSICAL_MAX_MS + 1 })
        );
        let config = HlcConfig { max_offset_ms: u64::MAX };
        let mut trusting = Hlc::new(config);
        assert_eq!(trusting.observe(HlcTimestamp(u64::MAX), 0), Err(HlcError::Exhausted));
        assert_eq!(trusting.config().max_offset_ms, u64::MAX);
    }

    #[test]
    fn encoding_is_eight_big_endian_bytes() {
        let timestamp = HlcTimestamp::new(1_700_000_000_000, 3).unwrap();
        let mut out = Vec::new();
        timestamp.encode(&mut out);
        assert_eq!(out.len(), HlcTimestamp::ENCODED_LEN);
        assert_eq!(HlcTimestamp::decode(&out), Ok(timestamp));
        assert_eq!(HlcTimestamp::decode(&out[..7]), Err(DecodeError::UnexpectedEnd));
    }
}
