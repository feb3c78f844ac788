//! The part of a category a session reconciles. Normally the whole category, served by
//! the sketch the state maintains. When a difference is too large for that sketch, the
//! driver splits the keyspace by path and runs one session per part; a part's sketch is
//! then built for the session from the leaves below its path — O(leaves) once, which is
//! the price of the fallback and is paid only when the maintained sketch cannot decode.

use crate::reconcile::sketch::{CodedSymbol, SetSketch, ESTIMATOR_COUNTERS};
use crate::state::{CategoryState, Digest, TreePath};

/// A session's scope and, below the root, the sketch built for it.
pub(crate) struct Scope {
    path: TreePath,
    built: Option<SetSketch>,
}

impl Scope {
    /// The scope at `path`, with its sketch ready.
    pub(crate) fn new(path: TreePath, state: &mut CategoryState, capacity: usize) -> Scope {
        if path.is_empty() {
            state.enable_sync_sketch(capacity);
            return Scope { path, built: None };
        }
        let mut sketch = SetSketch::new(capacity);
        state.for_each_short_id_under(&path, &mut |id| sketch.insert(id));
        Scope { path, built: Some(sketch) }
    }

    pub(crate) fn path(&self) -> TreePath {
        self.path
    }

    pub(crate) fn hash(&self, state: &CategoryState) -> Digest {
        state.scope_hash(&self.path)
    }

    pub(crate) fn count(&self, state: &CategoryState) -> u64 {
        match &self.built {
            None => state.len(),
            Some(sketch) => sketch.len(),
        }
    }

    pub(crate) fn capacity(&self, state: &CategoryState) -> usize {
        match &self.built {
            None => state.sketch_capacity(),
            Some(sketch) => sketch.capacity(),
        }
    }

    pub(crate) fn symbols(&self, state: &CategoryState, count: usize) -> Vec<CodedSymbol> {
        match &self.built {
            None => state.sketch_symbols(count),
            Some(sketch) => sketch.symbols(count).to_vec(),
        }
    }

    pub(crate) fn counters(&self, state: &CategoryState) -> [i64; ESTIMATOR_COUNTERS] {
        match &self.built {
            None => state.estimator_counters(),
            Some(sketch) => *sketch.counters(),
        }
    }
}
