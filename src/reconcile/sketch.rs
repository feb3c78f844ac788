//! Linear sketches of a set of short ids, maintained as the set changes: a rateless
//! invertible Bloom lookup table and a tug-of-war difference estimator.
//!
//! **Rateless IBLT** (Yang, Gilad, Alizadeh, "Practical Rateless Set Reconciliation",
//! SIGCOMM 2024): an infinite sequence of coded symbols, each the XOR of the ids (and of
//! their checksums) mapped to it; id x is mapped to symbol i with probability
//! 1/(1 + i/2), so any prefix of the sequence is a valid sketch. The receiver XORs the
//! sender's prefix with its own, leaving only the symmetric difference, and peels pure
//! symbols (one id, whose checksum matches). About 1.35 symbols per difference decode
//! for large differences. Sums are XOR, so no count field travels: a pure symbol is
//! recognised by its checksum alone, and the side an id belongs to is found by looking
//! it up locally.
//!
//! **Tug of war** (Alon, Matias, Szegedy 1996; as a set-difference estimator in
//! Feigenbaum et al. 2003): 64 counters, each the sum over ids of a ±1 sign. For two
//! sets, each counter difference squared estimates |A Δ B|; their mean has a relative
//! standard deviation of sqrt(2/64) ≈ 18%.
//!
//! Both are linear, so a node maintains them in O(log M) per changed leaf and never
//! rebuilds them, and the sketch of a category is the XOR (or sum) of its shards'.

use super::short_id::ShortId;

/// Counters of the tug-of-war estimator.
pub const ESTIMATOR_COUNTERS: usize = 64;

/// One coded symbol: the XOR of the ids mapped to it and of their checksums.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct CodedSymbol {
    /// XOR of the short ids.
    pub ids: u64,
    /// XOR of their checksums.
    pub checksums: u32,
}

impl CodedSymbol {
    /// Adds or removes (the same operation) one id.
    #[inline]
    pub fn toggle(&mut self, id: ShortId, checksum: u32) {
        self.ids ^= id.0;
        self.checksums ^= checksum;
    }

    /// XOR with another symbol.
    #[inline]
    pub fn xor(&mut self, other: &CodedSymbol) {
        self.ids ^= other.ids;
        self.checksums ^= other.checksums;
    }

    /// Whether the symbol holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ids == 0 && self.checksums == 0
    }

    /// The single id this symbol holds, if it holds exactly one (checksum-verified).
    pub fn pure_id(&self) -> Option<ShortId> {
        let id = ShortId(self.ids);
        (self.ids >> 48 == 0 && !self.is_empty() && id.checksum() == self.checksums).then_some(id)
    }
}

/// The indices of the coded symbols an id is mapped to, in increasing order: 0 first,
/// then gaps drawn so that index i appears with probability 1/(1 + i/2).
pub struct SymbolIndices {
    prng: u64,
    next: u64,
}

impl SymbolIndices {
    /// The index sequence of `id`.
    pub fn of(id: ShortId) -> SymbolIndices {
        SymbolIndices { prng: id.mapping_seed(), next: 0 }
    }
}

impl Iterator for SymbolIndices {
    type Item = u64;

    fn next(&mut self) -> Option<u64> {
        let current = self.next;
        // The gap formula and the multiplier are those of the paper's reference
        // implementation: gap = ceil((i + 1.5) * ((1 - u)^(-1/2) - 1)), u uniform.
        self.prng = self.prng.wrapping_mul(0xda94_2042_e4dd_58b5);
        let scale = (1u64 << 32) as f64 / ((self.prng as f64) + 1.0).sqrt() - 1.0;
        // A hand-written ceiling: `f64::ceil` is a libm call on baseline x86-64, and this
        // loop runs for every symbol an id touches.
        let exact = (current as f64 + 1.5) * scale;
        let whole = exact as u64;
        let gap = if (whole as f64) < exact { whole + 1 } else { whole };
        self.next = current.saturating_add(gap.max(1));
        Some(current)
    }
}

/// The maintained sketch of one set of short ids: the first `capacity` coded symbols
/// and the estimator counters.
#[derive(Clone, Debug)]
pub struct SetSketch {
    symbols: Vec<CodedSymbol>,
    counters: [i64; ESTIMATOR_COUNTERS],
    len: u64,
}

impl SetSketch {
    /// An empty sketch keeping `capacity` coded symbols (which bounds the largest
    /// difference it can resolve to about capacity / 1.4).
    pub fn new(capacity: usize) -> SetSketch {
        SetSketch { symbols: vec![CodedSymbol::default(); capacity], counters: [0; ESTIMATOR_COUNTERS], len: 0 }
    }

    /// Number of coded symbols kept.
    pub fn capacity(&self) -> usize {
        self.symbols.len()
    }

    /// Number of ids in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds an id to the set.
    pub fn insert(&mut self, id: ShortId) {
        self.toggle_symbols(id);
        self.count(id, 1);
        self.len += 1;
    }

    /// Removes an id from the set.
    pub fn remove(&mut self, id: ShortId) {
        self.toggle_symbols(id);
        self.count(id, -1);
        self.len = self.len.saturating_sub(1);
    }

    /// The first `count` coded symbols (at most the capacity).
    pub fn symbols(&self, count: usize) -> &[CodedSymbol] {
        &self.symbols[..count.min(self.symbols.len())]
    }

    /// The estimator counters.
    pub fn counters(&self) -> &[i64; ESTIMATOR_COUNTERS] {
        &self.counters
    }

    /// Adds another sketch (of a disjoint set, such as another shard's) to this one.
    pub fn absorb(&mut self, other: &SetSketch) {
        for (mine, theirs) in self.symbols.iter_mut().zip(&other.symbols) {
            mine.xor(theirs);
        }
        for (mine, theirs) in self.counters.iter_mut().zip(&other.counters) {
            *mine += theirs;
        }
        self.len += other.len;
    }

    fn toggle_symbols(&mut self, id: ShortId) {
        let checksum = id.checksum();
        let capacity = self.symbols.len() as u64;
        for index in SymbolIndices::of(id).take_while(|&i| i < capacity) {
            self.symbols[index as usize].toggle(id, checksum);
        }
    }

    fn count(&mut self, id: ShortId, sign: i64) {
        let signs = id.signs();
        for (bit, counter) in self.counters.iter_mut().enumerate() {
            *counter += if signs >> bit & 1 == 1 { sign } else { -sign };
        }
    }
}

/// Estimates |A Δ B| from the estimator counters of A and B.
pub fn estimate_difference(a: &[i64; ESTIMATOR_COUNTERS], b: &[i64; ESTIMATOR_COUNTERS]) -> f64 {
    // In f64: the peer's counters are arbitrary i64s, and their difference must not overflow.
    let sum: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
    sum / ESTIMATOR_COUNTERS as f64
}

/// Why peeling stopped.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PeelOutcome {
    /// Every symbol emptied: the recovered ids are the whole symmetric difference.
    Complete,
    /// Some symbols still hold several ids: more symbols are needed.
    Stuck,
}

/// Peels `difference` (the XOR of two sketches' first symbols) and returns the ids of
/// the symmetric difference it recovered. At most `max_ids` ids are recovered, which
/// bounds the work a peer's symbols can cause.
pub fn peel(difference: &mut [CodedSymbol], max_ids: usize) -> (Vec<ShortId>, PeelOutcome) {
    let len = difference.len() as u64;
    let mut pending: Vec<usize> = (0..difference.len()).filter(|&i| difference[i].pure_id().is_some()).collect();
    let mut recovered = Vec::new();
    while let Some(index) = pending.pop() {
        let Some(id) = difference[index].pure_id() else { continue };
        if recovered.len() == max_ids {
            return (recovered, PeelOutcome::Stuck);
        }
        recovered.push(id);
        let checksum = id.checksum();
        for touched in SymbolIndices::of(id).take_while(|&i| i < len) {
            let symbol = &mut difference[touched as usize];
            symbol.toggle(id, checksum);
            if symbol.pure_id().is_some() {
                pending.push(touched as usize);
            }
        }
    }
    let outcome = if difference.iter().all(CodedSymbol::is_empty) { PeelOutcome::Complete } else { PeelOutcome::Stuck };
    (recovered, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(range: std::ops::Range<u64>) -> Vec<ShortId> {
        range.map(|i| ShortId(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16)).collect()
    }

    fn sketch_of(ids: &[ShortId], capacity: usize) -> SetSketch {
        let mut sketch = SetSketch::new(capacity);
        ids.iter().for_each(|&id| sketch.insert(id));
        sketch
    }

    #[test]
    fn index_zero_holds_every_id_and_indices_increase() {
        for id in ids(1..50) {
            let indices: Vec<u64> = SymbolIndices::of(id).take(20).collect();
            assert_eq!(indices[0], 0);
            assert!(indices.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn the_symmetric_difference_peels_out_of_enough_symbols() {
        let all = ids(1..2_000);
        let (a, b) = (&all[..1_900], &all[100..]);
        let difference_size = 200;
        let (sa, sb) = (sketch_of(a, 1_000), sketch_of(b, 1_000));
        let count = difference_size * 2;
        let mut difference: Vec<CodedSymbol> = sa.symbols(count).to_vec();
        difference.iter_mut().zip(sb.symbols(count)).for_each(|(x, y)| x.xor(y));
        let (mut recovered, outcome) = peel(&mut difference, 10_000);
        assert_eq!(outcome, PeelOutcome::Complete);
        recovered.sort();
        let mut expected: Vec<ShortId> = all[..100].iter().chain(&all[1_900..]).copied().collect();
        expected.sort();
        assert_eq!(recovered, expected);
    }

    #[test]
    fn too_few_symbols_get_stuck_and_removal_undoes_insertion() {
        let all = ids(1..500);
        let full = sketch_of(&all, 64);
        let mut difference = full.symbols(16).to_vec();
        assert_eq!(peel(&mut difference, 10_000).1, PeelOutcome::Stuck);
        let mut emptied = full.clone();
        all.iter().for_each(|&id| emptied.remove(id));
        assert!(emptied.symbols(64).iter().all(CodedSymbol::is_empty));
        assert_eq!(emptied.counters(), &[0; ESTIMATOR_COUNTERS]);
    }

    #[test]
    fn the_estimator_is_within_a_factor_of_two_of_the_truth() {
        let all = ids(1..20_000);
        let (a, b) = (&all[..19_000], &all[1_000..]);
        let estimate = estimate_difference(sketch_of(a, 1).counters(), sketch_of(b, 1).counters());
        assert!((1_000.0..4_000.0).contains(&estimate), "estimate {estimate} for 2000");
    }

    #[test]
    fn absorbing_shard_sketches_equals_sketching_the_union() {
        let all = ids(1..300);
        let mut left = sketch_of(&all[..100], 128);
        left.absorb(&sketch_of(&all[100..], 128));
        let whole = sketch_of(&all, 128);
        assert_eq!(left.symbols(128), whole.symbols(128));
        assert_eq!(left.counters(), whole.counters());
        assert_eq!(left.len(), 299);
    }
}
