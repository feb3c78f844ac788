//! The public state API, one behaviour per test: replicas, categories, paths, proofs,
//! diffs and the shard runner.

use bhsync::engine::shard_runner::{apply_routed, prepare_routed};
use bhsync::state::{
    CategorySpec, CategoryState, Digest, MembershipProof, NodeId, NodeShape, Replica, StateError, TreePath, Version,
    MAX_KEY_LEN, MAX_VALUE_LEN,
};
use bhsync::time::Causality;

fn node(byte: u8) -> NodeId {
    NodeId([byte; 32])
}

fn version(hlc: u64) -> Version {
    Version { hlc, origin: node(9), counter: hlc, tombstone: false }
}

fn filled(count: usize, shards: usize) -> CategoryState {
    let mut state = CategoryState::new("c", CategorySpec::default(), shards).unwrap();
    let batch = (0..count).map(|i| state.prepare(format!("key-{i}").as_bytes(), b"v", version(i as u64 + 1)).unwrap());
    let batch = batch.collect();
    state.apply_batch(batch);
    state
}

#[test]
fn put_then_get_returns_the_value_and_its_version() {
    let mut replica = Replica::new(node(1), 2).unwrap();
    let written = replica.put("users", b"alice", b"admin", 100).unwrap();
    let entry = replica.get("users", b"alice").unwrap();
    assert_eq!(entry.value, b"admin");
    assert_eq!(entry.version, written);
    assert_eq!(written.origin, node(1));
    assert_eq!(written.counter, 1);
}

#[test]
fn write_timestamps_strictly_increase_even_when_the_clock_stalls() {
    let mut replica = Replica::new(node(1), 1).unwrap();
    let first = replica.put("c", b"a", b"1", 50).unwrap();
    let second = replica.put("c", b"b", b"2", 50).unwrap();
    let third = replica.put("c", b"c", b"3", 10).unwrap();
    assert!(first.hlc < second.hlc && second.hlc < third.hlc);
}

#[test]
fn delete_hides_the_value_but_keeps_a_tombstone_that_changes_the_root() {
    let mut replica = Replica::new(node(1), 1).unwrap();
    replica.put("c", b"k", b"v", 1).unwrap();
    let before = replica.category_root("c");
    assert!(replica.delete("c", b"k", 2).unwrap());
    assert!(replica.get("c", b"k").is_none());
    assert!(replica.category("c").unwrap().get(b"k").unwrap().version.tombstone);
    assert_ne!(replica.category_root("c"), before);
    assert!(!replica.delete("c", b"k", 3).unwrap(), "deleting twice deletes nothing");
}

#[test]
fn keys_and_values_of_length_zero_and_of_the_maximum_are_stored() {
    let mut replica = Replica::new(node(1), 1).unwrap();
    replica.put("c", b"", b"", 1).unwrap();
    assert_eq!(replica.get("c", b"").unwrap().value, b"");
    let key = vec![7u8; MAX_KEY_LEN];
    let value = vec![8u8; MAX_VALUE_LEN];
    replica.put("c", &key, &value, 2).unwrap();
    assert_eq!(replica.get("c", &key).unwrap().value.len(), MAX_VALUE_LEN);
}

#[test]
fn keys_and_values_over_the_bounds_are_refused_and_nothing_is_stored() {
    let mut replica = Replica::new(node(1), 1).unwrap();
    let hash = replica.state_hash();
    let long_key = vec![0u8; MAX_KEY_LEN + 1];
    let long_value = vec![0u8; MAX_VALUE_LEN + 1];
    assert_eq!(replica.put("c", &long_key, b"v", 1), Err(StateError::KeyTooLong { len: MAX_KEY_LEN + 1, max: MAX_KEY_LEN }));
    assert!(matches!(replica.put("c", b"k", &long_value, 1), Err(StateError::ValueTooLong { .. })));
    assert_eq!(replica.state_hash(), hash);
    assert!(replica.category("c").is_none());
}

#[test]
fn invalid_category_names_and_shard_counts_are_refused() {
    let mut replica = Replica::new(node(1), 1).unwrap();
    for name in ["", "has space", "tab\there", &"x".repeat(65)] {
        assert!(matches!(replica.put(name, b"k", b"v", 1), Err(StateError::InvalidCategoryName { .. })), "{name:?}");
    }
    assert_eq!(Replica::new(node(1), 0).err(), Some(StateError::InvalidShardCount(0)));
    assert_eq!(Replica::new(node(1), 17).err(), Some(StateError::InvalidShardCount(17)));
    let message = StateError::KeyTooLong { len: 2000, max: 1024 }.to_string();
    assert!(message.contains("2000") && message.contains("1024"), "errors name the problem: {message}");
}

#[test]
fn the_state_hash_covers_every_category() {
    let mut a = Replica::new(node(1), 1).unwrap();
    let mut b = Replica::new(node(1), 4).unwrap();
    assert_eq!(a.state_hash(), b.state_hash());
    a.put("x", b"k", b"v", 1).unwrap();
    assert_ne!(a.state_hash(), b.state_hash());
    b.put("x", b"k", b"v", 1).unwrap();
    assert_eq!(a.state_hash(), b.state_hash(), "same writes, different shard counts, same hash");
    a.put("y", b"k", b"v", 2).unwrap();
    assert_ne!(a.state_hash(), b.state_hash());
}

#[test]
fn sync_with_converges_and_last_writer_wins_on_both_sides() {
    let mut a = Replica::new(node(1), 1).unwrap();
    let mut b = Replica::new(node(2), 3).unwrap();
    for i in 0..500u32 {
        a.put("data", format!("a{i}").as_bytes(), b"x", u64::from(i)).unwrap();
        b.put("data", format!("b{i}").as_bytes(), b"y", u64::from(i)).unwrap();
    }
    a.put("data", b"both", b"old", 1_000).unwrap();
    b.put("data", b"both", b"new", 2_000).unwrap();
    b.put("only-b", b"k", b"v", 3_000).unwrap();
    let outcome = a.sync_with(&mut b).unwrap();
    assert_eq!(outcome.applied, 500 + 500 + 1 + 1);
    assert_eq!(outcome.ignored, 1, "a's older version of `both` loses on b");
    assert_eq!(a.state_hash(), b.state_hash());
    assert_eq!(a.get("data", b"both").unwrap().value, b"new");
    assert!(a.state_diff(&b).is_empty());
    a.verify_consistency().unwrap();
    b.verify_consistency().unwrap();
}

#[test]
fn a_deletion_propagates_through_sync() {
    let mut a = Replica::new(node(1), 1).unwrap();
    let mut b = Replica::new(node(2), 1).unwrap();
    a.put("c", b"k", b"v", 1).unwrap();
    a.sync_with(&mut b).unwrap();
    assert!(b.get("c", b"k").is_some());
    b.delete("c", b"k", 5).unwrap();
    b.sync_with(&mut a).unwrap();
    assert!(a.get("c", b"k").is_none());
    assert_eq!(a.state_hash(), b.state_hash());
}

#[test]
fn apply_remote_ignores_older_and_equal_versions() {
    let mut replica = Replica::new(node(1), 1).unwrap();
    let stored = replica.put("c", b"k", b"new", 100).unwrap();
    let older = bhsync::Entry { key: b"k".to_vec(), value: b"old".to_vec(), version: Version { hlc: 50, ..stored } };
    let same = bhsync::Entry { key: b"k".to_vec(), value: b"new".to_vec(), version: stored };
    let outcome = replica.apply_remote("c", &[older, same]).unwrap();
    assert_eq!((outcome.applied, outcome.ignored), (0, 2));
    assert_eq!(replica.get("c", b"k").unwrap().value, b"new");
}

#[test]
fn state_vectors_tell_ahead_behind_equal_and_concurrent() {
    let mut a = Replica::new(node(1), 1).unwrap();
    let mut b = Replica::new(node(2), 1).unwrap();
    let equal = a.state_vector().compare_category(&b.state_vector(), "c");
    assert_eq!(equal, Causality::Equal);
    a.put("c", b"k", b"v", 1).unwrap();
    assert_eq!(a.state_vector().compare_category(&b.state_vector(), "c"), Causality::After);
    assert_eq!(b.state_vector().compare_category(&a.state_vector(), "c"), Causality::Before);
    b.put("c", b"j", b"v", 1).unwrap();
    assert_eq!(a.state_vector().compare_category(&b.state_vector(), "c"), Causality::Concurrent);
    a.sync_with(&mut b).unwrap();
    assert_eq!(a.state_vector().compare_category(&b.state_vector(), "c"), Causality::Equal);
    assert_eq!(a.state_vector().categories["c"].versions.get(&node(2)), 1);
}

#[test]
fn nodes_are_reachable_by_path_and_children_hash_to_their_parent() {
    let state = filled(2_000, 3);
    let root = state.node(&TreePath::ROOT).unwrap();
    assert_eq!(root.hash, state.root());
    assert_eq!(root.count, 2_000);
    let NodeShape::Inner { left, right } = root.shape else { panic!("2,000 entries make an inner root") };
    let left_view = state.node(&TreePath::ROOT.child(false)).unwrap();
    let right_view = state.node(&TreePath::ROOT.child(true)).unwrap();
    assert_eq!((left_view.hash, right_view.hash), (left, right));
    assert_eq!(left_view.count + right_view.count, 2_000);
    // Walk down one side until a bucket, then one step further is no node.
    let mut path = TreePath::ROOT;
    loop {
        let view = state.node(&path).unwrap();
        if let NodeShape::Bucket(digests) = &view.shape {
            assert_eq!(digests.len() as u64, view.count);
            assert!(state.node(&path.child(false)).is_none());
            break;
        }
        path = path.child(false);
    }
}

#[test]
fn entries_under_a_path_are_exactly_those_whose_position_it_prefixes() {
    let state = filled(1_000, 2);
    let mut total = 0;
    for bits in 0..8u64 {
        let path = TreePath::new(bits << 61, 3).unwrap();
        state.for_each_entry_under(&path, &mut |_| total += 1);
    }
    assert_eq!(total, 1_000);
    let mut below_bucket = 0;
    let deep = TreePath::new(0, 40).unwrap();
    state.for_each_entry_under(&deep, &mut |_| below_bucket += 1);
    assert!(below_bucket <= 1);
}

#[test]
fn proofs_verify_for_small_and_large_states_and_fail_for_other_roots() {
    for count in [1, 5, 16, 17, 40, 3_000] {
        let state = filled(count, 16);
        for i in [0, count / 2, count - 1] {
            let key = format!("key-{i}");
            let proof = state.prove(key.as_bytes()).unwrap();
            assert_eq!(proof.verify(&state.root(), "c", key.as_bytes(), b"v"), Ok(()), "count {count}, key {key}");
            assert_eq!(proof.verify(&Digest([1; 32]), "c", key.as_bytes(), b"v"), Err(StateError::ProofMismatch));
        }
        assert!(state.prove(b"absent").is_none());
    }
}

#[test]
fn malformed_proofs_are_rejected_with_a_reason() {
    let state = filled(100, 1);
    let encoded = state.prove(b"key-1").unwrap().encode();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("truncated", encoded[..encoded.len() - 1].to_vec()),
        ("extended", [&encoded[..], &[0u8; 32]].concat()),
        ("bad magic", [b"XXXX", &encoded[4..]].concat()),
        ("index past bucket", {
            let mut bytes = encoded.clone();
            bytes[8] = 0xff;
            bytes
        }),
        ("unknown flags", {
            let mut bytes = encoded.clone();
            bytes[5] = 0x80;
            bytes
        }),
    ];
    for (name, bytes) in cases {
        assert!(matches!(MembershipProof::decode(&bytes), Err(StateError::MalformedProof(_))), "{name}");
    }
}

#[test]
fn removing_every_entry_returns_to_the_empty_root() {
    let mut state = filled(300, 2);
    for i in 0..300 {
        assert!(state.remove(format!("key-{i}").as_bytes()));
    }
    assert_eq!(state.root(), Digest::EMPTY);
    assert!(state.is_empty());
    state.verify_integrity().unwrap();
}

#[test]
fn the_shard_runner_builds_the_same_root_as_a_single_thread() {
    let single = filled(5_000, 1);
    let mut parallel = CategoryState::new("c", CategorySpec::default(), 2).unwrap();
    let parts = prepare_routed(&parallel, 5_000, 2, |i| {
        parallel.prepare(format!("key-{i}").as_bytes(), b"v", version(i as u64 + 1)).unwrap()
    });
    apply_routed(&mut parallel, parts);
    assert_eq!(parallel.root(), single.root());
    parallel.verify_integrity().unwrap();
}

#[test]
fn a_later_version_in_one_batch_replaces_an_earlier_one() {
    let mut state = CategoryState::new("c", CategorySpec::default(), 1).unwrap();
    let first = state.prepare(b"k", b"first", version(1)).unwrap();
    let second = state.prepare(b"k", b"second", version(2)).unwrap();
    state.apply_batch(vec![first, second]);
    assert_eq!(state.len(), 1);
    assert_eq!(state.get(b"k").unwrap().value, b"second");
}
