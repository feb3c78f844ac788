//! A table of connections addressed by generation-checked slot indices.
//!
//! A [`ConnId`] is a slot index and the slot's generation at the time the connection was
//! stored. Freeing a slot bumps its generation, so an id kept by the caller after the
//! connection closed no longer matches anything: a stale id is harmless. Slots are reused
//! (a free list), so the table never grows beyond the most connections open at once.

/// A connection's id: slot index in the low 32 bits, generation in the high 32 bits.
#[derive(Copy, Clone, Eq, PartialEq, Hash, Debug, PartialOrd, Ord)]
pub struct ConnId(u64);

impl ConnId {
    pub(crate) fn new(index: u32, generation: u32) -> ConnId {
        ConnId(u64::from(generation) << 32 | u64::from(index))
    }

    /// The slot index.
    pub fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot generation.
    pub fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The id as one integer (for logs and the C ABI).
    pub fn to_raw(self) -> u64 {
        self.0
    }

    /// Rebuilds an id from [`ConnId::to_raw`].
    pub fn from_raw(raw: u64) -> ConnId {
        ConnId(raw)
    }
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Slots of `T` with a free list; at most `capacity` live at once.
pub(crate) struct ConnTable<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
}

impl<T> ConnTable<T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        assert!(capacity > 0 && capacity < (1 << 24), "connection capacity must be in 1..2^24");
        ConnTable { slots: Vec::with_capacity(capacity), free: Vec::with_capacity(capacity), capacity, live: 0 }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_full(&self) -> bool {
        self.live >= self.capacity
    }

    /// The slot index the next insert will use, `None` when full (mio registers a socket
    /// with its token before storing it).
    pub(crate) fn next_index(&self) -> Option<u32> {
        if self.is_full() {
            return None;
        }
        Some(self.free.last().copied().unwrap_or(self.slots.len() as u32))
    }

    /// Stores `make(id)` in a free slot; `None` when the table is full.
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(ConnId) -> T) -> Option<ConnId> {
        if self.is_full() {
            return None;
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot { generation: 0, value: None });
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.value.is_none(), "a free slot holds no connection");
        let id = ConnId::new(index, slot.generation);
        slot.value = Some(make(id));
        self.live += 1;
        Some(id)
    }

    pub(crate) fn get(&self, id: ConnId) -> Option<&T> {
        let slot = self.slots.get(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.value.as_ref()
    }

    pub(crate) fn get_mut(&mut self, id: ConnId) -> Option<&mut T> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        slot.value.as_mut()
    }

    /// Removes the connection and retires its id.
    pub(crate) fn remove(&mut self, id: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(id.index() as usize)?;
        if slot.generation != id.generation() {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(id.index());
        self.live -= 1;
        Some(value)
    }

    /// The id of the connection in slot `index`, if any.
    pub(crate) fn id_at(&self, index: u32) -> Option<ConnId> {
        let slot = self.slots.get(index as usize)?;
        slot.value.as_ref().map(|_| ConnId::new(index, slot.generation))
    }

    /// Ids of all live connections (cold path: drop and tests).
    pub(crate) fn ids(&self) -> impl Iterator<Item = ConnId> + '_ {
        (0..self.slots.len() as u32).filter_map(|index| self.id_at(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_id_matches_nothing_after_its_slot_is_reused() {
        let mut table = ConnTable::with_capacity(2);
        let first = table.insert_with(|_| "a").expect("room");
        assert_eq!(table.remove(first), Some("a"));
        let second = table.insert_with(|_| "b").expect("room");
        assert_eq!(first.index(), second.index(), "the slot is reused");
        assert_ne!(first, second);
        assert!(table.get(first).is_none());
        assert!(table.remove(first).is_none());
        assert_eq!(table.get(second), Some(&"b"));
    }

    #[test]
    fn the_table_refuses_beyond_its_capacity() {
        let mut table = ConnTable::with_capacity(2);
        assert!(table.insert_with(|_| 1).is_some());
        assert!(table.insert_with(|_| 2).is_some());
        assert!(table.insert_with(|_| 3).is_none());
        assert_eq!(table.len(), 2);
    }
}
