//! Property tests of the Merkle state (DESIGN.md §9): history independence across
//! insertion orders and shard counts, update-then-revert, and membership proofs.
//! Proptest prints the failing case and persists its seed under
//! `proptest-regressions/`; `PROPTEST_CASES=N` changes the number of cases.

use bhsync::state::{CategorySpec, CategoryState, NodeId, Version};
use proptest::prelude::*;

fn version(hlc: u64) -> Version {
    Version { hlc, origin: NodeId([7; 32]), counter: hlc, tombstone: false }
}

/// Distinct keys with values: up to 300 entries, enough to build several trie levels.
fn entries() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    prop::collection::btree_map(prop::collection::vec(any::<u8>(), 0..12), prop::collection::vec(any::<u8>(), 0..20), 0..300)
        .prop_map(|map| map.into_iter().collect())
}

fn build(entries: &[(Vec<u8>, Vec<u8>)], order: &[usize], shards: usize, batch: bool) -> CategoryState {
    let mut state = CategoryState::new("props", CategorySpec::default(), shards).unwrap();
    let prepared = order.iter().map(|&i| state.prepare(&entries[i].0, &entries[i].1, version(i as u64 + 1)).unwrap());
    if batch {
        let all: Vec<_> = prepared.collect();
        state.apply_batch(all);
    } else {
        for leaf in prepared.collect::<Vec<_>>() {
            state.upsert(leaf);
        }
    }
    state
}

fn shuffled(len: usize, seed: u64) -> Vec<usize> {
    // A deterministic Fisher-Yates driven by xorshift, so each case is reproducible.
    let mut order: Vec<usize> = (0..len).collect();
    let mut x = seed | 1;
    for i in (1..len).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn same_entries_give_same_root_whatever_order_and_shard_count(
        entries in entries(), seed in any::<u64>(), shards in 1usize..=16, batch in any::<bool>()
    ) {
        let reference = build(&entries, &(0..entries.len()).collect::<Vec<_>>(), 1, false);
        let other = build(&entries, &shuffled(entries.len(), seed), shards, batch);
        prop_assert_eq!(reference.root(), other.root());
        prop_assert_eq!(reference.len(), other.len());
        other.verify_integrity().map_err(TestCaseError::fail)?;
    }

    #[test]
    fn update_then_revert_restores_the_root(entries in entries(), pick in any::<prop::sample::Index>(), shards in 1usize..=4) {
        prop_assume!(!entries.is_empty());
        let order: Vec<usize> = (0..entries.len()).collect();
        let mut state = build(&entries, &order, shards, true);
        let before = state.root();
        let index = pick.index(entries.len());
        let (key, value) = &entries[index];
        state.upsert(state.prepare(key, b"changed", version(10_000)).unwrap());
        prop_assert_ne!(state.root(), before);
        state.upsert(state.prepare(key, value, version(index as u64 + 1)).unwrap());
        prop_assert_eq!(state.root(), before);
        state.verify_integrity().map_err(TestCaseError::fail)?;
    }

    #[test]
    fn insert_then_remove_restores_the_root(entries in entries(), extra in prop::collection::vec(any::<u8>(), 13..20)) {
        let order: Vec<usize> = (0..entries.len()).collect();
        let mut state = build(&entries, &order, 2, true);
        let before = state.root();
        state.upsert(state.prepare(&extra, b"x", version(1)).unwrap());
        prop_assert!(state.remove(&extra));
        prop_assert_eq!(state.root(), before);
        state.verify_integrity().map_err(TestCaseError::fail)?;
    }

    #[test]
    fn every_proof_verifies_and_no_proof_verifies_another_value_or_key(entries in entries(), shards in 1usize..=16) {
        let order: Vec<usize> = (0..entries.len()).collect();
        let state = build(&entries, &order, shards, true);
        let root = state.root();
        for (index, (key, value)) in entries.iter().enumerate() {
            let proof = state.prove(key).expect("stored key has a proof");
            prop_assert!(proof.verify(&root, "props", key, value).is_ok());
            let decoded = bhsync::MembershipProof::decode(&proof.encode()).unwrap();
            prop_assert_eq!(&decoded, &proof);
            let mut other_value = value.clone();
            other_value.push(1);
            prop_assert!(proof.verify(&root, "props", key, &other_value).is_err());
            prop_assert!(proof.verify(&root, "other", key, value).is_err());
            let other_key = &entries[(index + 1) % entries.len()].0;
            if other_key != key {
                prop_assert!(proof.verify(&root, "props", other_key, value).is_err());
            }
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = bhsync::MembershipProof::decode(&bytes);
    }
}
