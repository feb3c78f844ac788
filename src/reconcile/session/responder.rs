//! The responding side of a reconciliation session.

use std::collections::{HashSet, VecDeque};

use super::scope::Scope;
use super::{item_frames, PartTracker, SessionConfig, SessionError, SessionReport};
use crate::reconcile::message::{self, Conflict, Message};
use crate::state::digest::KeyPosition;
use crate::reconcile::short_id::ShortId;
use crate::reconcile::sketch::{peel, CodedSymbol, PeelOutcome};
use crate::state::{CategoryState, Digest, Entry, TreePath};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    AwaitHello,
    AwaitSymbols,
    AwaitTransfer,
    Done,
}

/// The coded symbols received so far for the current prefix.
#[derive(Default)]
struct SymbolBuffer {
    symbols: Vec<CodedSymbol>,
    filled: Vec<bool>,
    missing: usize,
}

impl SymbolBuffer {
    fn grow_to(&mut self, total: usize) {
        if total > self.symbols.len() {
            self.missing += total - self.symbols.len();
            self.symbols.resize(total, CodedSymbol::default());
            self.filled.resize(total, false);
        }
    }

    fn fill(&mut self, start: usize, packed: &[u8]) {
        for (offset, symbol) in message::unpack_symbols(packed).enumerate() {
            let index = start + offset;
            if index < self.symbols.len() && !self.filled[index] {
                self.symbols[index] = symbol;
                self.filled[index] = true;
                self.missing -= 1;
            }
        }
    }
}

/// The side that answers a session.
pub struct Responder {
    config: SessionConfig,
    scope: Option<Scope>,
    session: Option<u32>,
    phase: Phase,
    answered_seq: u32,
    answer: Vec<Vec<u8>>,
    outbox: VecDeque<Vec<u8>>,
    buffer: SymbolBuffer,
    /// The request being received and the first symbol index it carries.
    receiving: (u32, u32),
    /// The first symbol index of the last answered Symbols request.
    answered_start: u32,
    capacity: u32,
    /// Versions the initiator may send: the ones it alone holds, and its side of conflicts.
    allowed: HashSet<ShortId>,
    /// This side's versions in conflicts: the only ones the initiator may request.
    conflicts: HashSet<ShortId>,
    request: Option<Vec<ShortId>>,
    parts: PartTracker,
    report: SessionReport,
    error: Option<SessionError>,
}

impl Responder {
    /// A responder waiting for a `Hello`.
    pub fn new(config: SessionConfig) -> Result<Self, SessionError> {
        config.check()?;
        Ok(Responder {
            config,
            scope: None,
            session: None,
            phase: Phase::AwaitHello,
            answered_seq: 0,
            answer: Vec::new(),
            outbox: VecDeque::new(),
            buffer: SymbolBuffer::default(),
            receiving: (0, 0),
            answered_start: 0,
            capacity: 0,
            allowed: HashSet::new(),
            conflicts: HashSet::new(),
            request: None,
            parts: PartTracker::default(),
            report: SessionReport::default(),
            error: None,
        })
    }

    /// Whether the session has ended (its last answer may still be re-sent on request).
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

    /// The next frame to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let frame = self.outbox.pop_front()?;
        self.report.bytes_sent += frame.len() as u64;
        Some(frame)
    }

    /// Consumes one frame from the initiator.
    pub fn handle_frame(&mut self, bytes: &[u8], state: &mut CategoryState) -> Result<(), SessionError> {
        if self.error.is_some() {
            // Ended: a retransmitted request still gets the Abort that explains why, so a
            // lost Abort does not turn into a time-out (and the fallback still runs).
            if let Ok(frame) = message::decode(bytes, self.config.max_frame_len) {
                if frame.seq == self.answered_seq && self.answer.first().and_then(|f| f.get(1)) == Some(&message::KIND_ABORT) {
                    self.outbox.extend(self.answer.iter().cloned());
                }
            }
            return Ok(());
        }
        self.report.bytes_received += bytes.len() as u64;
        let result = self.dispatch(bytes, state);
        if let Err(error) = &result {
            self.error = Some(error.clone());
            self.phase = Phase::Done;
            // Only the Abort that explains the end (if one was written) still goes out.
            self.outbox.retain(|frame| frame.get(1) == Some(&message::KIND_ABORT));
        }
        result
    }

    fn dispatch(&mut self, bytes: &[u8], state: &mut CategoryState) -> Result<(), SessionError> {
        let frame = message::decode(bytes, self.config.max_frame_len)?;
        if *self.session.get_or_insert(frame.session) != frame.session || frame.seq < self.answered_seq {
            return Ok(()); // Another session, or a request already superseded.
        }
        if frame.seq == self.answered_seq {
            // A retransmitted request: answer again from the cache, once per request
            // (on its first frame), so that duplicates cannot multiply the answer.
            if self.is_first_frame(&frame.message) {
                self.outbox.extend(self.answer.iter().cloned());
            }
            return Ok(());
        }
        match (self.phase, frame.message) {
            (Phase::AwaitHello, Message::Hello { category, scope, root, count: _ }) => {
                if category != state.id().0 {
                    self.abort(frame.seq, message::ABORT_REFUSED, 0);
                    return Err(SessionError::CategoryMismatch);
                }
                self.on_hello(frame.seq, scope, root, state);
            }
            (Phase::AwaitSymbols, Message::Symbols { start, total, symbols }) => {
                if total > self.capacity || (total as usize) < self.buffer.symbols.len() {
                    return Err(SessionError::Unexpected("symbol prefix over the capacity announced"));
                }
                if self.receiving.0 != frame.seq {
                    self.receiving = (frame.seq, self.buffer.symbols.len() as u32);
                }
                self.buffer.grow_to(total as usize);
                self.buffer.fill(start as usize, symbols);
                if self.buffer.missing == 0 {
                    self.decode(frame.seq, state)?;
                }
            }
            (Phase::AwaitTransfer, Message::Transfer { request, item_frames }) => {
                if self.request.is_none() {
                    self.request = Some(message::ids(request).collect());
                    self.parts.expected = Some(item_frames);
                }
                self.maybe_finish(frame.seq, state);
            }
            (Phase::AwaitTransfer, Message::Items { part, entries }) => {
                self.on_items(part, entries, state)?;
                self.maybe_finish(frame.seq, state);
            }
            _ => return Err(SessionError::Unexpected("message out of turn")),
        }
        Ok(())
    }

    fn on_hello(&mut self, seq: u32, scope: TreePath, peer_root: Digest, state: &mut CategoryState) {
        let my_root = state.scope_hash(&scope);
        if peer_root == my_root {
            self.answer(seq, vec![encode(&Message::Equal, self.session, seq)]);
            self.phase = Phase::Done;
            return;
        }
        let scope = Scope::new(scope, state, self.config.sketch_capacity);
        self.capacity = scope.capacity(state) as u32;
        let estimate = Message::Estimate {
            root: my_root,
            count: scope.count(state),
            capacity: self.capacity,
            counters: Box::new(scope.counters(state)),
        };
        self.scope = Some(scope);
        self.answer(seq, vec![encode(&estimate, self.session, seq)]);
        self.phase = Phase::AwaitSymbols;
    }

    fn decode(&mut self, seq: u32, state: &CategoryState) -> Result<(), SessionError> {
        let total = self.buffer.symbols.len();
        let mut difference = self.buffer.symbols.clone();
        let mine = self.scope.as_ref().map(|scope| scope.symbols(state, total)).unwrap_or_default();
        for (symbol, mine) in difference.iter_mut().zip(mine) {
            symbol.xor(&mine);
        }
        let (ids, outcome) = peel(&mut difference, total);
        if outcome == PeelOutcome::Stuck {
            // Half as many again: the estimate was low, but rarely by much.
            let next = (total as u32).saturating_add(total as u32 / 2 + 1).min(self.capacity);
            if next as usize <= total {
                self.abort(seq, message::ABORT_SKETCH_EXHAUSTED, total as u32);
                return Err(SessionError::SketchExhausted { symbols: total as u32 });
            }
            self.answer(seq, vec![encode(&Message::More { total: next }, self.session, seq)]);
            return Ok(());
        }
        self.buffer = SymbolBuffer::default();
        self.report.difference = ids.len() as u64;
        self.answer_decoded(seq, ids, state);
        self.phase = Phase::AwaitTransfer;
        Ok(())
    }

    /// Sorts the difference into what each side sends, pairing two versions of one key
    /// (same position prefix) into a conflict that the newer side settles. Ids are
    /// handled in numeric order, which is trie order, so consecutive look-ups walk
    /// neighbouring nodes.
    fn answer_decoded(&mut self, seq: u32, mut ids: Vec<ShortId>, state: &CategoryState) {
        ids.sort_unstable();
        let (mut you_send, mut you_receive, mut conflicts, mut outgoing) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for group in ids.chunk_by(|a, b| a.position24() == b.position24()) {
            let mut theirs = Vec::new();
            let mut mine = Vec::new();
            for &id in group {
                match state.find_short_id(id) {
                    Some(entry) => mine.push((id, entry)),
                    None => theirs.push(id),
                }
            }
            if let ([their_id], [(my_id, my_entry)]) = (theirs.as_slice(), mine.as_slice()) {
                let position = KeyPosition::of(my_entry.key).prefix();
                conflicts.push(Conflict { yours: *their_id, mine: *my_id, position, hlc: my_entry.version.hlc });
                self.conflicts.insert(*my_id);
                self.allowed.insert(*their_id);
                continue;
            }
            self.allowed.extend(theirs.iter().copied());
            you_send.extend(theirs);
            for (id, entry) in mine {
                you_receive.push(id);
                outgoing.push(entry.to_entry());
            }
        }
        let mut frames = item_frames(&outgoing, self.session.unwrap_or(0), seq, self.config.max_frame_len);
        let (send, receive) = (message::pack_ids(you_send), message::pack_ids(you_receive));
        let decoded = Message::Decoded { you_send: &send, you_receive: &receive, conflicts, item_frames: frames.len() as u32 };
        frames.insert(0, encode(&decoded, self.session, seq));
        self.report.items_sent += outgoing.len() as u64;
        self.answer(seq, frames);
    }

    fn on_items(&mut self, part: u32, entries: Vec<Entry>, state: &mut CategoryState) -> Result<(), SessionError> {
        let over = match self.parts.expected {
            Some(expected) => part >= expected,
            None => self.parts.seen.len() >= self.config.max_buffered_frames,
        };
        if over {
            return Err(SessionError::Unexpected("Items part out of range"));
        }
        if !self.parts.record(part) {
            return Ok(());
        }
        let mut batch = Vec::with_capacity(entries.len());
        for entry in &entries {
            let prepared = state.prepare(&entry.key, &entry.value, entry.version)?;
            let id = ShortId::of(prepared.position(), prepared.digest());
            if !self.allowed.contains(&id) {
                let same_key = self.allowed.iter().any(|a| a.position24() == id.position24());
                return Err(if same_key { SessionError::DigestMismatch } else { SessionError::UnadvertisedItem });
            }
            batch.push(prepared);
        }
        let (applied, _) = state.apply_prepared_lww(batch);
        self.report.items_received += entries.len() as u64;
        self.report.items_applied += applied;
        Ok(())
    }

    fn maybe_finish(&mut self, seq: u32, state: &CategoryState) {
        let Some(request) = &self.request else { return };
        if !self.parts.complete() {
            return;
        }
        let outgoing: Vec<Entry> = request
            .iter()
            .filter(|id| self.conflicts.contains(id))
            .filter_map(|id| state.find_short_id(*id).map(|e| e.to_entry()))
            .collect();
        let mut frames = item_frames(&outgoing, self.session.unwrap_or(0), seq, self.config.max_frame_len);
        let root = self.scope.as_ref().map_or_else(|| state.root(), |scope| scope.hash(state));
        let finished = Message::Finished { root, item_frames: frames.len() as u32 };
        frames.insert(0, encode(&finished, self.session, seq));
        self.report.items_sent += outgoing.len() as u64;
        self.answer(seq, frames);
        self.phase = Phase::Done;
    }

    /// Whether `message` opens the request it belongs to (so a retransmitted request
    /// is answered once, however many of its frames arrive again).
    fn is_first_frame(&self, message: &Message<'_>) -> bool {
        match message {
            Message::Symbols { start, .. } => *start == self.answered_start,
            Message::Items { .. } => false,
            _ => true,
        }
    }

    /// Tells the initiator why the session ends, so it fails at once with that reason.
    fn abort(&mut self, seq: u32, code: u8, detail: u32) {
        self.answer(seq, vec![encode(&Message::Abort { code, detail }, self.session, seq)]);
    }

    fn answer(&mut self, seq: u32, frames: Vec<Vec<u8>>) {
        self.outbox.extend(frames.iter().cloned());
        self.answer = frames;
        self.answered_seq = seq;
        self.answered_start = if self.receiving.0 == seq { self.receiving.1 } else { 0 };
    }
}


fn encode(message: &Message<'_>, session: Option<u32>, seq: u32) -> Vec<u8> {
    let mut frame = Vec::new();
    message.encode(session.unwrap_or(0), seq, &mut frame);
    frame
}
