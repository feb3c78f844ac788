//! What a strong category's Raft log carries, and the state it builds.
//!
//! An entry's data is an envelope naming who proposed it (raft id and ticket, so the
//! proposer can answer its caller when the entry is applied) around a command:
//! ```text
//! kind u8 (1 = Put), proposer u64, ticket u64, key (len u32, bytes), value (len u32, bytes)
//! ```
//! [`Registers`] is the state machine: a map from key to value, applied in log order,
//! identical on every voter; its encoding is the snapshot data.

use std::collections::BTreeMap;

use super::storage::Reader;

const PUT: u8 = 1;

/// One decoded command of the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The proposer's raft id.
    pub proposer: u64,
    /// The proposer's ticket.
    pub ticket: u64,
    /// The key written.
    pub key: Vec<u8>,
    /// The value written.
    pub value: Vec<u8>,
}

impl Command {
    /// The entry data.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(25 + self.key.len() + self.value.len());
        out.push(PUT);
        out.extend_from_slice(&self.proposer.to_le_bytes());
        out.extend_from_slice(&self.ticket.to_le_bytes());
        out.extend_from_slice(&(self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&(self.value.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.value);
        out
    }

    /// Decodes entry data; `None` for anything else (a leader's empty entry, garbage).
    pub fn decode(bytes: &[u8]) -> Option<Command> {
        let mut reader = Reader(bytes);
        if reader.take(1)? != [PUT] {
            return None;
        }
        let proposer = reader.u64()?;
        let ticket = reader.u64()?;
        let key = reader.chunk()?.to_vec();
        let value = reader.chunk()?.to_vec();
        reader.0.is_empty().then_some(Command { proposer, ticket, key, value })
    }
}

/// The state machine of a group: the registers, as of `applied`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

impl Registers {
    /// Applies one command.
    pub fn apply(&mut self, command: &Command) {
        self.map.insert(command.key.clone(), command.value.clone());
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All pairs, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_slice()))
    }

    /// The snapshot data: count u64, then (key, value) chunks.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (key, value) in &self.map {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    /// Decodes snapshot data (`None` when malformed; empty data is the empty state).
    pub fn decode(bytes: &[u8]) -> Option<Registers> {
        if bytes.is_empty() {
            return Some(Registers::default());
        }
        let mut reader = Reader(bytes);
        let count = reader.u64()?;
        let mut map = BTreeMap::new();
        for _ in 0..count {
            let key = reader.chunk()?.to_vec();
            let value = reader.chunk()?.to_vec();
            map.insert(key, value);
        }
        reader.0.is_empty().then_some(Registers { map })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commands_and_registers_round_trip() {
        let command = Command { proposer: 7, ticket: 9, key: b"k".to_vec(), value: b"v".to_vec() };
        assert_eq!(Command::decode(&command.encode()), Some(command.clone()));
        let mut registers = Registers::default();
        registers.apply(&command);
        assert_eq!(Registers::decode(&registers.encode()), Some(registers));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Command::decode(&bytes);
            let _ = Registers::decode(&bytes);
        }
    }
}
