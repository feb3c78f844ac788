//! Drives an initiator and a responder against each other in one process, frame by
//! frame, with no loss: for replicas held side by side (the demo, tools, benchmarks).
//! The network engine drives the same sessions over sockets, with the same fallback.
//!
//! **Fallback**: when a difference is too large for the sketch (the responder aborts
//! with `SketchExhausted`), the keyspace below the scope is split into 16 parts by the
//! next four position bits and each part is reconciled by its own session, recursively:
//! each part holds about a sixteenth of the difference.

use super::session::{Initiator, Outcome, Responder, SessionConfig, SessionError, SessionReport};
use crate::state::{CategoryState, TreePath};

/// Position bits added per split of the fallback.
const SPLIT_BITS: u32 = 4;

/// Reconciles `initiator_state` with `responder_state` and returns the initiator's
/// report (summed over the parts when the fallback split the keyspace). Fails with the
/// first error either side raises.
pub fn reconcile(
    initiator_state: &mut CategoryState,
    responder_state: &mut CategoryState,
    config: &SessionConfig,
    session: u32,
) -> Result<SessionReport, SessionError> {
    reconcile_scope(initiator_state, responder_state, config, session, TreePath::ROOT)
}

fn reconcile_scope(
    a: &mut CategoryState,
    b: &mut CategoryState,
    config: &SessionConfig,
    session: u32,
    scope: TreePath,
) -> Result<SessionReport, SessionError> {
    match one_session(a, b, config, session, scope) {
        Err(SessionError::SketchExhausted { .. }) if scope.len() + SPLIT_BITS <= TreePath::MAX_LEN => {
            let mut total = SessionReport::default();
            for part in 0..(1u64 << SPLIT_BITS) {
                let bits = scope.bits() | (part << (64 - scope.len() - SPLIT_BITS));
                let child = TreePath::new(bits, scope.len() + SPLIT_BITS).unwrap_or(TreePath::ROOT);
                let report = reconcile_scope(a, b, config, session, child)?;
                add(&mut total, &report);
            }
            Ok(total)
        }
        result => result,
    }
}

fn one_session(
    a: &mut CategoryState,
    b: &mut CategoryState,
    config: &SessionConfig,
    session: u32,
    scope: TreePath,
) -> Result<SessionReport, SessionError> {
    let mut initiator = Initiator::new_scoped(config.clone(), session, a, scope, 0)?;
    let mut responder = Responder::new(config.clone())?;
    while !initiator.is_done() {
        let mut progressed = false;
        while let Some(frame) = initiator.poll_transmit() {
            responder.handle_frame(&frame, b)?;
            progressed = true;
        }
        while let Some(frame) = responder.poll_transmit() {
            initiator.handle_frame(0, &frame, a)?;
            progressed = true;
        }
        if !progressed && !initiator.is_done() {
            // Without loss every request is answered at once: silence is a protocol bug.
            return Err(SessionError::Unexpected("session stalled without loss"));
        }
    }
    match initiator.error() {
        Some(error) => Err(error.clone()),
        None => Ok(initiator.report().clone()),
    }
}

/// Adds a part's report to the total: counters add up; the outcome is the worst seen.
fn add(total: &mut SessionReport, part: &SessionReport) {
    total.round_trips += part.round_trips;
    total.round_trips_to_difference += part.round_trips_to_difference;
    total.bytes_to_difference += part.bytes_to_difference;
    total.difference += part.difference;
    total.bytes_sent += part.bytes_sent;
    total.bytes_received += part.bytes_received;
    total.items_sent += part.items_sent;
    total.items_received += part.items_received;
    total.items_applied += part.items_applied;
    total.retransmits += part.retransmits;
    total.outcome = match (total.outcome.take(), part.outcome.clone()) {
        (Some(Outcome::StillDifferent(why)), _) | (_, Some(Outcome::StillDifferent(why))) => Some(Outcome::StillDifferent(why)),
        (Some(Outcome::Converged), _) | (_, Some(Outcome::Converged)) => Some(Outcome::Converged),
        (Some(Outcome::Equal), _) | (_, Some(Outcome::Equal)) => Some(Outcome::Equal),
        (None, None) => None,
    };
}
