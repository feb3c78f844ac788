//! The initiating side of a reconciliation session.

use std::collections::{HashSet, VecDeque};

use super::scope::Scope;
use super::{item_frames, Outcome, PartTracker, SessionConfig, SessionError, SessionReport};
use crate::reconcile::message::{self, Conflict, Message, HEADER_LEN, SYMBOL_LEN};
use crate::reconcile::short_id::ShortId;
use crate::reconcile::sketch::estimate_difference;
use crate::state::digest::KeyPosition;
use crate::state::{CategoryState, Digest, Entry, PreparedLeaf, TreePath};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    AwaitEstimate,
    AwaitDecoded,
    AwaitFinished,
    Done,
}

/// The versions the responder advertised, so that each arriving entry can be checked:
/// those it sends with its answer to round trip 2, then those requested in round trip 3.
#[derive(Default)]
struct Expected {
    ids: HashSet<ShortId>,
}

/// The side that starts a session.
pub struct Initiator {
    config: SessionConfig,
    scope: Scope,
    session: u32,
    seq: u32,
    phase: Phase,
    request: Vec<Vec<u8>>,
    outbox: VecDeque<Vec<u8>>,
    deadline_ms: Option<u64>,
    retransmits_of_request: u32,
    peer_root: Digest,
    peer_capacity: u32,
    symbols_sent: u32,
    decoded: bool,
    expected: Expected,
    requested: HashSet<ShortId>,
    parts: PartTracker,
    early_items: Vec<Vec<u8>>,
    /// From `Decoded`: the entries to send and the newer versions to request.
    transfer: Option<(Vec<Entry>, Vec<ShortId>)>,
    control_bytes_received: u64,
    report: SessionReport,
    error: Option<SessionError>,
}

impl Initiator {
    /// Starts session `session` for the whole of `state`; its first frame is ready to
    /// transmit.
    pub fn new(config: SessionConfig, session: u32, state: &mut CategoryState, now_ms: u64) -> Result<Self, SessionError> {
        Self::new_scoped(config, session, state, TreePath::ROOT, now_ms)
    }

    /// Starts a session for the keys of `state` below `scope` (the fallback when the
    /// whole category's difference is too large for its sketch).
    pub fn new_scoped(
        config: SessionConfig,
        session: u32,
        state: &mut CategoryState,
        scope: TreePath,
        now_ms: u64,
    ) -> Result<Self, SessionError> {
        config.check()?;
        let scope = Scope::new(scope, state, config.sketch_capacity);
        let mut initiator = Initiator {
            scope,
            config,
            session,
            seq: 0,
            phase: Phase::AwaitEstimate,
            request: Vec::new(),
            outbox: VecDeque::new(),
            deadline_ms: None,
            retransmits_of_request: 0,
            peer_root: Digest::EMPTY,
            peer_capacity: 0,
            symbols_sent: 0,
            decoded: false,
            expected: Expected::default(),
            requested: HashSet::new(),
            parts: PartTracker::default(),
            early_items: Vec::new(),
            transfer: None,
            control_bytes_received: 0,
            report: SessionReport::default(),
            error: None,
        };
        let seq = initiator.next_seq();
        let mut hello = Vec::new();
        let (path, root, count) = (initiator.scope.path(), initiator.scope.hash(state), initiator.scope.count(state));
        Message::Hello { category: state.id().0, scope: path, root, count }.encode(session, seq, &mut hello);
        initiator.send_request(vec![hello], now_ms);
        Ok(initiator)
    }

    /// Whether the session has ended, successfully or not.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// The error that ended the session, if one did.
    pub fn error(&self) -> Option<&SessionError> {
        self.error.as_ref()
    }

    /// What the session did so far.
    pub fn report(&self) -> &SessionReport {
        &self.report
    }

    /// Consumes one frame from the responder. An error ends the session; entries that
    /// were validated before it stay applied, nothing unvalidated is.
    pub fn handle_frame(&mut self, now_ms: u64, bytes: &[u8], state: &mut CategoryState) -> Result<(), SessionError> {
        if self.phase == Phase::Done {
            return Ok(());
        }
        self.report.bytes_received += bytes.len() as u64;
        let result = self.dispatch(now_ms, bytes, state);
        if let Err(error) = &result {
            self.fail(error.clone());
        }
        result
    }

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let frame = self.outbox.pop_front()?;
        self.report.bytes_sent += frame.len() as u64;
        Some(frame)
    }

    /// When [`Initiator::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.deadline_ms
    }

    /// Retransmits the current request if its answer is overdue; ends the session with
    /// [`SessionError::PeerUnresponsive`] after too many tries.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        match self.deadline_ms {
            Some(deadline) if now_ms >= deadline && self.phase != Phase::Done => {}
            _ => return,
        }
        if self.retransmits_of_request >= self.config.max_retransmits {
            self.fail(SessionError::PeerUnresponsive);
            return;
        }
        self.retransmits_of_request += 1;
        self.report.retransmits += 1;
        self.outbox.extend(self.request.iter().cloned());
        self.deadline_ms = Some(now_ms + self.config.retransmit_after_ms);
    }

    fn dispatch(&mut self, now_ms: u64, bytes: &[u8], state: &mut CategoryState) -> Result<(), SessionError> {
        let frame = message::decode(bytes, self.config.max_frame_len)?;
        if frame.session != self.session || frame.seq != self.seq {
            return Ok(()); // Another session's frame, or a late answer to an older request.
        }
        // The answer is arriving: a long one must not look like silence.
        self.deadline_ms = Some(now_ms + self.config.retransmit_after_ms);
        if !matches!(frame.message, Message::Items { .. }) {
            self.control_bytes_received += bytes.len() as u64;
        }
        match (self.phase, frame.message) {
            (Phase::AwaitEstimate, Message::Equal) => self.finish(Outcome::Equal),
            (Phase::AwaitEstimate, Message::Estimate { root, count, capacity, counters }) => {
                self.peer_root = root;
                self.peer_capacity = capacity.min(self.scope.capacity(state) as u32);
                let estimate = estimate_difference(&self.scope.counters(state), &counters);
                let estimate = estimate.max(count.abs_diff(self.scope.count(state)) as f64);
                let wanted = self.config.symbols_for(estimate);
                self.send_symbols(wanted, state, now_ms);
            }
            (Phase::AwaitDecoded, Message::More { total }) => {
                if total > self.peer_capacity {
                    // The responder can go further than our sketch: the difference is too
                    // large for us, which the split fallback handles.
                    return Err(SessionError::SketchExhausted { symbols: self.symbols_sent });
                }
                if total <= self.symbols_sent {
                    return Err(SessionError::Unexpected("More asks for no new symbols"));
                }
                self.send_symbols(total, state, now_ms);
            }
            (Phase::AwaitDecoded, Message::Decoded { you_send, you_receive, conflicts, item_frames }) => {
                if !self.decoded {
                    self.on_decoded(you_send, you_receive, conflicts, item_frames, state)?;
                    self.after_items(state, now_ms)?;
                }
            }
            (Phase::AwaitDecoded | Phase::AwaitFinished, Message::Items { part, entries }) => {
                if self.phase == Phase::AwaitDecoded && !self.decoded {
                    return self.buffer_early(bytes);
                }
                self.on_items(part, entries, state)?;
                self.after_items(state, now_ms)?;
            }
            (Phase::AwaitFinished, Message::Finished { root, item_frames }) => {
                if self.parts.expected.is_none() {
                    self.peer_root = root;
                    self.parts.expected = Some(item_frames);
                    self.after_items(state, now_ms)?;
                }
            }
            (_, Message::Abort { code, detail }) => {
                return Err(if code == message::ABORT_SKETCH_EXHAUSTED {
                    SessionError::SketchExhausted { symbols: detail }
                } else {
                    SessionError::Refused
                });
            }
            _ => return Err(SessionError::Unexpected("message out of turn")),
        }
        Ok(())
    }

    fn send_symbols(&mut self, wanted: u32, state: &CategoryState, now_ms: u64) {
        let total = wanted.clamp(1, self.peer_capacity.max(1));
        let symbols = self.scope.symbols(state, total as usize);
        let per_frame = (self.config.max_frame_len - HEADER_LEN - 16) / SYMBOL_LEN;
        let seq = self.next_seq();
        let mut frames = Vec::new();
        for start in (self.symbols_sent as usize..symbols.len()).step_by(per_frame) {
            let end = (start + per_frame).min(symbols.len());
            let packed = message::pack_symbols(&symbols[start..end]);
            let mut frame = Vec::with_capacity(packed.len() + HEADER_LEN + 16);
            Message::Symbols { start: start as u32, total, symbols: &packed }.encode(self.session, seq, &mut frame);
            frames.push(frame);
        }
        self.symbols_sent = total;
        self.phase = Phase::AwaitDecoded;
        self.send_request(frames, now_ms);
    }

    fn on_decoded(
        &mut self,
        you_send: &[u8],
        you_receive: &[u8],
        conflicts: Vec<Conflict>,
        item_frames: u32,
        state: &mut CategoryState,
    ) -> Result<(), SessionError> {
        self.decoded = true;
        self.report.round_trips_to_difference = self.report.round_trips;
        self.report.bytes_to_difference = self.report.bytes_sent + self.control_bytes_received;
        let sent_and_received = message::ids(you_send).count() + message::ids(you_receive).count();
        self.report.difference = (sent_and_received + 2 * conflicts.len()) as u64;
        self.expected.ids = message::ids(you_receive).collect();
        self.parts = PartTracker { expected: Some(item_frames), ..PartTracker::default() };
        // Fetch what to send now, before any of the responder's entries is applied: one of
        // them may be a newer version of a key whose version we must send (two keys in one
        // position group are not paired as a conflict).
        self.transfer = Some(self.prepare_transfer(message::ids(you_send).collect(), conflicts, state)?);
        for frame in std::mem::take(&mut self.early_items) {
            if let Message::Items { part, entries } = message::decode(&frame, self.config.max_frame_len)?.message {
                self.on_items(part, entries, state)?;
            }
        }
        Ok(())
    }

    /// The entries of `Items` frames that arrived before `Decoded` and wait for it: they
    /// are applied (last writer wins) when it comes, so a host that merges must see them.
    pub fn buffered_items(&self) -> Vec<Entry> {
        let decode = |frame: &Vec<u8>| match message::decode(frame, self.config.max_frame_len) {
            Ok(decoded) => match decoded.message {
                Message::Items { entries, .. } => entries,
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        self.early_items.iter().flat_map(decode).collect()
    }

    fn buffer_early(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if self.early_items.len() >= self.config.max_buffered_frames {
            return Err(SessionError::TooManyBufferedFrames);
        }
        self.early_items.push(bytes.to_vec());
        Ok(())
    }

    /// Validates each entry against what was advertised for it, then applies them.
    fn on_items(&mut self, part: u32, entries: Vec<Entry>, state: &mut CategoryState) -> Result<(), SessionError> {
        let over = match self.parts.expected {
            Some(expected) => part >= expected,
            None => self.parts.seen.len() >= self.config.max_buffered_frames,
        };
        if over {
            return Err(SessionError::Unexpected("Items part out of range"));
        }
        if !self.parts.record(part) {
            return Ok(()); // A duplicate frame.
        }
        let mut batch = Vec::with_capacity(entries.len());
        for entry in &entries {
            let prepared = state.prepare(&entry.key, &entry.value, entry.version)?;
            self.check_advertised(&prepared)?;
            batch.push(prepared);
        }
        let (applied, _) = state.apply_prepared_lww(batch);
        self.report.items_received += entries.len() as u64;
        self.report.items_applied += applied;
        Ok(())
    }

    fn check_advertised(&self, prepared: &PreparedLeaf) -> Result<(), SessionError> {
        let id = ShortId::of(prepared.position(), prepared.digest());
        let advertised = if self.phase == Phase::AwaitFinished { &self.requested } else { &self.expected.ids };
        if advertised.contains(&id) {
            return Ok(());
        }
        let same_key = advertised.iter().any(|e| e.position24() == id.position24());
        Err(if same_key { SessionError::DigestMismatch } else { SessionError::UnadvertisedItem })
    }

    /// The entries to send and the newer versions to request, from what `Decoded` said.
    fn prepare_transfer(
        &mut self,
        you_send: Vec<ShortId>,
        conflicts: Vec<Conflict>,
        state: &CategoryState,
    ) -> Result<(Vec<Entry>, Vec<ShortId>), SessionError> {
        let mut outgoing = Vec::with_capacity(you_send.len() + conflicts.len());
        for id in you_send {
            let mine = state.find_short_id(id).ok_or(SessionError::Unexpected("peer asked for a version we lack"))?;
            outgoing.push(mine.to_entry());
        }
        let mut request = Vec::new();
        for conflict in conflicts {
            let mine = state.find_short_id(conflict.yours).ok_or(SessionError::Unexpected("conflict on a version we lack"))?;
            let same_key = KeyPosition::of(mine.key).prefix() == conflict.position;
            // Two versions of one key: only the newer travels. Two keys that merely share
            // a position prefix, or equal times (last-writer-wins then looks at the origin,
            // which the conflict does not carry): both travel and each side keeps the winner.
            if !same_key || mine.version.hlc >= conflict.hlc {
                outgoing.push(mine.to_entry());
            }
            if !same_key || mine.version.hlc <= conflict.hlc {
                request.push(conflict.mine);
            }
        }
        self.requested = request.iter().copied().collect();
        Ok((outgoing, request))
    }

    /// Once every entry of the current answer arrived: send round trip 3, or finish.
    fn after_items(&mut self, state: &CategoryState, now_ms: u64) -> Result<(), SessionError> {
        if !self.parts.complete() {
            return Ok(());
        }
        match self.phase {
            Phase::AwaitDecoded => {
                let (outgoing, request) = self.transfer.take().unwrap_or_default();
                if outgoing.is_empty() && request.is_empty() {
                    self.finish_comparing(state);
                    return Ok(());
                }
                let seq = self.next_seq();
                let mut frames = item_frames(&outgoing, self.session, seq, self.config.max_frame_len);
                let mut header = Vec::new();
                let packed = message::pack_ids(request);
                Message::Transfer { request: &packed, item_frames: frames.len() as u32 }.encode(self.session, seq, &mut header);
                frames.insert(0, header);
                self.report.items_sent += outgoing.len() as u64;
                self.parts = PartTracker::default();
                self.phase = Phase::AwaitFinished;
                self.send_request(frames, now_ms);
            }
            Phase::AwaitFinished => self.finish_comparing(state),
            _ => {}
        }
        Ok(())
    }

    fn finish_comparing(&mut self, state: &CategoryState) {
        let mine = self.scope.hash(state);
        let outcome = if mine == self.peer_root {
            Outcome::Converged
        } else {
            Outcome::StillDifferent(format!(
                "roots differ after the exchange (local {}, peer {}): a short-id collision or a concurrent write; run another session",
                mine.to_hex(),
                self.peer_root.to_hex()
            ))
        };
        self.finish(outcome);
    }

    fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    fn send_request(&mut self, frames: Vec<Vec<u8>>, now_ms: u64) {
        self.outbox.extend(frames.iter().cloned());
        self.request = frames;
        self.report.round_trips += 1;
        self.retransmits_of_request = 0;
        self.deadline_ms = Some(now_ms + self.config.retransmit_after_ms);
    }

    fn finish(&mut self, outcome: Outcome) {
        if self.report.round_trips_to_difference == 0 {
            self.report.round_trips_to_difference = self.report.round_trips;
            self.report.bytes_to_difference = self.report.bytes_sent + self.control_bytes_received;
        }
        self.report.outcome = Some(outcome);
        self.phase = Phase::Done;
        self.deadline_ms = None;
        self.request.clear();
    }

    fn fail(&mut self, error: SessionError) {
        self.error = Some(error);
        self.phase = Phase::Done;
        self.deadline_ms = None;
        self.outbox.clear();
    }
}
