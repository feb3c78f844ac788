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

/// One register: its value and the write that set it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Register {
    /// The value.
    pub value: Vec<u8>,
    /// The log index of the write (the version the node stores it under).
    pub index: u64,
    /// Who proposed the write.
    pub proposer: u64,
}

/// The state machine of a group: the registers, as of `applied`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registers {
    map: BTreeMap<Vec<u8>, Register>,
}

impl Registers {
    /// Applies one command, committed at `index`.
    pub fn apply(&mut self, index: u64, command: &Command) {
        let register = Register { value: command.value.clone(), index, proposer: command.proposer };
        self.map.insert(command.key.clone(), register);
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(|r| r.value.as_slice())
    }

    /// The register under `key`.
    pub fn register(&self, key: &[u8]) -> Option<&Register> {
        self.map.get(key)
    }

    /// Keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All registers, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Register)> {
        self.map.iter().map(|(k, r)| (k.as_slice(), r))
    }

    /// The snapshot data: count u64, then per register key and value chunks, index
    /// u64, proposer u64.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&(self.map.len() as u64).to_le_bytes());
        for (key, register) in &self.map {
            out.extend_from_slice(&(key.len() as u32).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(register.value.len() as u32).to_le_bytes());
            out.extend_from_slice(&register.value);
            out.extend_from_slice(&register.index.to_le_bytes());
            out.extend_from_slice(&register.proposer.to_le_bytes());
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
            let index = reader.u64()?;
            let proposer = reader.u64()?;
            map.insert(key, Register { value, index, proposer });
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
        registers.apply(3, &command);
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
