//! Drives an initiator and a responder against each other in one process, frame by
//! frame, with no loss: for replicas held side by side (the demo, tools, benchmarks).
//! The network engine drives the same sessions over sockets.

use super::session::{Initiator, Responder, SessionConfig, SessionError, SessionReport};
use crate::state::CategoryState;

/// Reconciles `initiator_state` with `responder_state` and returns the initiator's
/// report. Fails with the first error either side raises.
pub fn reconcile(
    initiator_state: &mut CategoryState,
    responder_state: &mut CategoryState,
    config: &SessionConfig,
    session: u32,
) -> Result<SessionReport, SessionError> {
    let mut initiator = Initiator::new(config.clone(), session, initiator_state, 0)?;
    let mut responder = Responder::new(config.clone())?;
    while !initiator.is_done() {
        let mut progressed = false;
        while let Some(frame) = initiator.poll_transmit() {
            responder.handle_frame(&frame, responder_state)?;
            progressed = true;
        }
        while let Some(frame) = responder.poll_transmit() {
            initiator.handle_frame(0, &frame, initiator_state)?;
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
