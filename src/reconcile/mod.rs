//! Reconciliation: how two nodes learn, in the fewest bytes and round trips, which
//! entry versions one has and the other lacks, and exchange them (DESIGN.md §4).
//!
//! The sans-IO [`session`] runs per peer and category. Equal roots end it in one round
//! trip. Otherwise the responder sends a difference estimate ([`sketch`], tug of war),
//! the initiator sends that many coded symbols of a rateless IBLT maintained
//! incrementally with the state, and the responder peels them into the symmetric
//! difference of short ids ([`short_id`]): after two round trips both sides know the
//! difference. Versions of one key pair up by key position, so an update is one
//! difference and only the newer version travels. Every received entry is validated
//! against the short id advertised for it before it is applied.

pub mod in_process;
pub mod message;
pub mod session;
pub mod short_id;
pub mod sketch;

pub use message::{Message, MessageError};
pub use session::{Initiator, Outcome, Responder, SessionConfig, SessionError, SessionReport};
pub use short_id::ShortId;
pub use sketch::{estimate_difference, peel, CodedSymbol, PeelOutcome, SetSketch, ESTIMATOR_COUNTERS};
