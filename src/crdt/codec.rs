//! The binary encoding shared by every CRDT (`docs/adr/012-crdts.md`).
//!
//! ```text
//! value   = version:u8 (=1) kind:u8 body
//! actors  = count:varint node_id:[u8;32]*     strictly increasing
//! actor   = index:varint                      into the actor table
//! context = count:varint (actor counter:varint)*     the version vector
//!           count:varint (actor counter:varint)*     the dot cloud
//! ```
//!
//! A 32-byte node identity is written once per value in the actor table and referred
//! to by a one-byte index after that. Encoders write one canonical form; decoders
//! accept only well-formed input, bound every count by [`MAX_ENTRIES`] and by the bytes
//! left, and return [`DecodeError`] instead of panicking.

use std::collections::BTreeSet;

use super::dot::{CausalContext, Dot};
use crate::state::NodeId;
use crate::time::codec::{put_varint, DecodeError, Reader};
use crate::time::VersionVector;

/// The encoding version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// The most actors one encoded value may name.
pub const MAX_ACTORS: usize = 4096;
/// The most entries (elements, keys, dots, values) one encoded collection may hold.
pub const MAX_ENTRIES: usize = 1 << 20;

/// Which CRDT an encoding holds (the second byte).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
#[repr(u8)]
pub enum CrdtKind {
    /// [`super::GCounter`].
    GCounter = 1,
    /// [`super::PnCounter`].
    PnCounter = 2,
    /// [`super::LwwRegister`].
    LwwRegister = 3,
    /// [`super::MvRegister`].
    MvRegister = 4,
    /// [`super::OrSet`].
    OrSet = 5,
    /// [`super::LwwMap`].
    LwwMap = 6,
}

impl CrdtKind {
    /// The kind named by a tag byte.
    pub fn from_tag(tag: u8) -> Result<Self, DecodeError> {
        Ok(match tag {
            1 => CrdtKind::GCounter,
            2 => CrdtKind::PnCounter,
            3 => CrdtKind::LwwRegister,
            4 => CrdtKind::MvRegister,
            5 => CrdtKind::OrSet,
            6 => CrdtKind::LwwMap,
            other => return Err(DecodeError::UnknownKind(other)),
        })
    }
}

/// Reads the two header bytes and returns the kind.
pub fn read_header(reader: &mut Reader<'_>) -> Result<CrdtKind, DecodeError> {
    let version = reader.u8()?;
    if version != FORMAT_VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    CrdtKind::from_tag(reader.u8()?)
}

/// Writes the two header bytes.
pub fn write_header(out: &mut Vec<u8>, kind: CrdtKind) {
    out.push(FORMAT_VERSION);
    out.push(kind as u8);
}

/// The actors of one value, sorted, with their indices.
#[derive(Debug, Default)]
pub struct ActorTable {
    actors: Vec<NodeId>,
}

impl ActorTable {
    /// The table of the given actors (any order, duplicates allowed).
    pub fn collect<'a>(actors: impl IntoIterator<Item = &'a NodeId>) -> Self {
        let set: BTreeSet<NodeId> = actors.into_iter().copied().collect();
        ActorTable { actors: set.into_iter().collect() }
    }

    /// Appends the table.
    pub fn write(&self, out: &mut Vec<u8>) {
        debug_assert!(self.actors.len() <= MAX_ACTORS);
        put_varint(out, self.actors.len() as u64);
        for actor in &self.actors {
            out.extend_from_slice(actor.as_bytes());
        }
    }

    /// Appends the index of `actor`, which must be in the table.
    pub fn write_actor(&self, out: &mut Vec<u8>, actor: &NodeId) {
        let index = self.actors.binary_search(actor);
        debug_assert!(index.is_ok(), "every actor written was collected first");
        put_varint(out, index.unwrap_or(0) as u64);
    }

    /// Reads a table: at most [`MAX_ACTORS`], strictly increasing.
    pub fn read(reader: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let count = reader.count("actors", MAX_ACTORS, 32)?;
        let mut actors = Vec::with_capacity(count);
        for _ in 0..count {
            let actor = reader.node_id()?;
            if actors.last().is_some_and(|last| *last >= actor) {
                return Err(DecodeError::NotSorted("actors"));
            }
            actors.push(actor);
        }
        Ok(ActorTable { actors })
    }

    /// Reads an index and returns the actor it names.
    pub fn read_actor(&self, reader: &mut Reader<'_>) -> Result<NodeId, DecodeError> {
        let index = reader.varint()?;
        usize::try_from(index)
            .ok()
            .and_then(|index| self.actors.get(index).copied())
            .ok_or(DecodeError::Invalid("actor index outside the actor table"))
    }

    /// Reads a dot: actor index, then a non-zero counter.
    pub fn read_dot(&self, reader: &mut Reader<'_>) -> Result<Dot, DecodeError> {
        let origin = self.read_actor(reader)?;
        let counter = reader.varint()?;
        if counter == 0 {
            return Err(DecodeError::Invalid("dot counter 0"));
        }
        Ok(Dot { origin, counter })
    }

    /// Appends a dot.
    pub fn write_dot(&self, out: &mut Vec<u8>, dot: &Dot) {
        self.write_actor(out, &dot.origin);
        put_varint(out, dot.counter);
    }

    /// Appends a causal context.
    pub fn write_context(&self, out: &mut Vec<u8>, context: &CausalContext) {
        let vector = context.version_vector();
        put_varint(out, vector.len() as u64);
        for (origin, counter) in vector.iter() {
            self.write_dot(out, &Dot { origin: *origin, counter: *counter });
        }
        put_varint(out, context.cloud_len() as u64);
        for dot in context.cloud() {
            self.write_dot(out, dot);
        }
    }

    /// Reads a causal context; each list must be strictly increasing.
    pub fn read_context(&self, reader: &mut Reader<'_>) -> Result<CausalContext, DecodeError> {
        let origins = reader.count("context origins", MAX_ACTORS, 2)?;
        let mut vector = VersionVector::new();
        let mut previous: Option<NodeId> = None;
        for _ in 0..origins {
            let dot = self.read_dot(reader)?;
            if previous.is_some_and(|p| p >= dot.origin) {
                return Err(DecodeError::NotSorted("context origins"));
            }
            vector.observe(dot.origin, dot.counter);
            previous = Some(dot.origin);
        }
        let cloud = self.read_dots(reader, "dot cloud")?;
        Ok(CausalContext::from_parts(vector, cloud))
    }

    /// Reads a strictly increasing list of dots.
    pub fn read_dots(&self, reader: &mut Reader<'_>, what: &'static str) -> Result<BTreeSet<Dot>, DecodeError> {
        let count = reader.count(what, MAX_ENTRIES, 2)?;
        let mut dots = BTreeSet::new();
        for _ in 0..count {
            let dot = self.read_dot(reader)?;
            if dots.last().is_some_and(|last| *last >= dot) {
                return Err(DecodeError::NotSorted(what));
            }
            dots.insert(dot);
        }
        Ok(dots)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_version_and_kind() {
        let mut out = Vec::new();
        write_header(&mut out, CrdtKind::OrSet);
        assert_eq!(out, [FORMAT_VERSION, 5]);
        assert_eq!(read_header(&mut Reader::new(&out)), Ok(CrdtKind::OrSet));
        assert_eq!(read_header(&mut Reader::new(&[2, 5])), Err(DecodeError::UnsupportedVersion(2)));
        assert_eq!(read_header(&mut Reader::new(&[1, 0])), Err(DecodeError::UnknownKind(0)));
    }

    #[test]
    fn actor_table_round_trips_contexts() {
        let (a, b) = (NodeId([1; 32]), NodeId([2; 32]));
        let mut context = CausalContext::new();
        context.insert(Dot { origin: a, counter: 1 });
        context.insert(Dot { origin: b, counter: 4 });
        let table = ActorTable::collect([&b, &a, &b]);
        let mut out = Vec::new();
        table.write(&mut out);
        table.write_context(&mut out, &context);
        let mut reader = Reader::new(&out);
        let read = ActorTable::read(&mut reader).unwrap();
        assert_eq!(read.read_context(&mut reader), Ok(context));
        assert_eq!(reader.finish(), Ok(()));
        assert!(read.read_actor(&mut Reader::new(&[9])).is_err());
    }

    #[test]
    fn unsorted_actor_tables_are_refused() {
        let mut out = vec![2];
        out.extend_from_slice(&[2; 32]);
        out.extend_from_slice(&[1; 32]);
        assert_eq!(ActorTable::read(&mut Reader::new(&out)).unwrap_err(), DecodeError::NotSorted("actors"));
    }
}
