//! Time and causality, sans-IO: nothing here reads a clock; physical time is always an
//! argument.
//!
//! - [`lamport`]: Lamport clocks (Lamport 1978), a total order consistent with causality;
//! - [`hlc`]: hybrid logical clocks (Kulkarni et al. 2014), the timestamps of
//!   last-writer-wins;
//! - [`version_vector`]: version vectors and vector clocks (Parker et al. 1983; Fidge,
//!   Mattern 1988–89): exact "before", "after", "equal" or "concurrent";
//! - [`network_time`] with [`clock_filter`] and [`selection`]: NTP-style network time
//!   (RFC 5905, Marzullo 1984) that rejects lying peers and feeds the HLC;
//! - [`codec`]: the varint reader and writer every encoding here and in
//!   [`crate::crdt`] uses.

pub mod clock_filter;
pub mod codec;
pub mod hlc;
pub mod lamport;
pub mod network_time;
pub mod selection;
pub mod version_vector;

pub use codec::DecodeError;
pub use hlc::{Hlc, HlcConfig, HlcError, HlcTimestamp};
pub use lamport::{LamportClock, LamportError, LamportTimestamp};
pub use network_time::{Adjustment, Exchange, NetworkTime, NetworkTimeConfig, NetworkTimeError, NetworkTimeStats};
pub use version_vector::{Causality, VectorClock, VersionVector};
