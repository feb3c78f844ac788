//! Any CRDT, chosen by the kind byte of its encoding: what a category whose merge rule
//! is "CRDT" stores as values, and what the resolver and the fuzz target decode.

use super::codec::{read_header, CrdtKind};
use super::{Crdt, CrdtError, GCounter, LwwMap, LwwRegister, MvRegister, OrSet, PnCounter};
use crate::state::MAX_VALUE_LEN;
use crate::time::codec::{DecodeError, Reader};

/// One CRDT value of any kind.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum AnyCrdt {
    /// A grow-only counter.
    GCounter(GCounter),
    /// An increment/decrement counter.
    PnCounter(PnCounter),
    /// A last-writer-wins register.
    LwwRegister(LwwRegister),
    /// A multi-value register.
    MvRegister(MvRegister),
    /// An add-wins set.
    OrSet(OrSet),
    /// A last-writer-wins map.
    LwwMap(LwwMap),
}

impl AnyCrdt {
    /// The kind.
    pub fn kind(&self) -> CrdtKind {
        match self {
            AnyCrdt::GCounter(_) => CrdtKind::GCounter,
            AnyCrdt::PnCounter(_) => CrdtKind::PnCounter,
            AnyCrdt::LwwRegister(_) => CrdtKind::LwwRegister,
            AnyCrdt::MvRegister(_) => CrdtKind::MvRegister,
            AnyCrdt::OrSet(_) => CrdtKind::OrSet,
            AnyCrdt::LwwMap(_) => CrdtKind::LwwMap,
        }
    }

    /// Decodes any kind.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut reader = Reader::new(bytes);
        let value = match read_header(&mut reader)? {
            CrdtKind::GCounter => AnyCrdt::GCounter(GCounter::decode_body(&mut reader)?),
            CrdtKind::PnCounter => AnyCrdt::PnCounter(PnCounter::decode_body(&mut reader)?),
            CrdtKind::LwwRegister => AnyCrdt::LwwRegister(LwwRegister::decode_body(&mut reader)?),
            CrdtKind::MvRegister => AnyCrdt::MvRegister(MvRegister::decode_body(&mut reader)?),
            CrdtKind::OrSet => AnyCrdt::OrSet(OrSet::decode_body(&mut reader)?),
            CrdtKind::LwwMap => AnyCrdt::LwwMap(LwwMap::decode_body(&mut reader)?),
        };
        reader.finish()?;
        Ok(value)
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            AnyCrdt::GCounter(inner) => inner.encode(),
            AnyCrdt::PnCounter(inner) => inner.encode(),
            AnyCrdt::LwwRegister(inner) => inner.encode(),
            AnyCrdt::MvRegister(inner) => inner.encode(),
            AnyCrdt::OrSet(inner) => inner.encode(),
            AnyCrdt::LwwMap(inner) => inner.encode(),
        }
    }

    /// Joins `other` into `self`; both must be of one kind.
    pub fn merge(&mut self, other: &AnyCrdt) -> Result<(), CrdtError> {
        match (self, other) {
            (AnyCrdt::GCounter(ours), AnyCrdt::GCounter(theirs)) => ours.merge(theirs),
            (AnyCrdt::PnCounter(ours), AnyCrdt::PnCounter(theirs)) => ours.merge(theirs),
            (AnyCrdt::LwwRegister(ours), AnyCrdt::LwwRegister(theirs)) => ours.merge(theirs),
            (AnyCrdt::MvRegister(ours), AnyCrdt::MvRegister(theirs)) => ours.merge(theirs),
            (AnyCrdt::OrSet(ours), AnyCrdt::OrSet(theirs)) => ours.merge(theirs),
            (AnyCrdt::LwwMap(ours), AnyCrdt::LwwMap(theirs)) => ours.merge(theirs),
            (ours, theirs) => return Err(CrdtError::KindMismatch { left: ours.kind(), right: theirs.kind() }),
        }
        Ok(())
    }
}

/// Decodes two encoded values, joins them and encodes the result, refusing a result
/// longer than [`MAX_VALUE_LEN`] (a stored value's bound).
pub fn merge_encoded(left: &[u8], right: &[u8]) -> Result<Vec<u8>, CrdtError> {
    let mut merged = AnyCrdt::decode(left)?;
    merged.merge(&AnyCrdt::decode(right)?)?;
    let bytes = merged.encode();
    if bytes.len() > MAX_VALUE_LEN {
        return Err(CrdtError::ValueTooLong { len: bytes.len() });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NodeId;

    #[test]
    fn decode_dispatches_on_the_kind_byte() {
        let mut set = OrSet::new();
        set.add(NodeId([1; 32]), b"x").unwrap();
        let decoded = AnyCrdt::decode(&set.encode()).unwrap();
        assert_eq!(decoded.kind(), CrdtKind::OrSet);
        assert_eq!(decoded.encode(), set.encode());
        assert_eq!(AnyCrdt::decode(&[1, 99]), Err(DecodeError::UnknownKind(99)));
    }

    #[test]
    fn merge_encoded_joins_one_kind_and_refuses_two() {
        let node = NodeId([1; 32]);
        let mut a = GCounter::new();
        a.increment(node, 2).unwrap();
        let mut b = GCounter::new();
        b.increment(node, 5).unwrap();
        let merged = merge_encoded(&a.encode(), &b.encode()).unwrap();
        assert_eq!(GCounter::decode(&merged).unwrap().value(), 5);
        let error = merge_encoded(&a.encode(), &OrSet::new().encode()).unwrap_err();
        assert_eq!(error, CrdtError::KindMismatch { left: CrdtKind::GCounter, right: CrdtKind::OrSet });
        assert!(matches!(merge_encoded(&[], &[]), Err(CrdtError::Decode(_))));
        let mut any = AnyCrdt::PnCounter(PnCounter::new());
        assert!(any.merge(&AnyCrdt::LwwMap(LwwMap::new())).is_err());
        any.merge(&AnyCrdt::PnCounter(PnCounter::new())).unwrap();
        assert_eq!(AnyCrdt::LwwRegister(LwwRegister::new()).kind(), CrdtKind::LwwRegister);
        assert_eq!(AnyCrdt::MvRegister(MvRegister::new()).kind(), CrdtKind::MvRegister);
    }
}
