//! Forks at every depth from 1 to 100,000 below the head of a 1,000,000-block chain:
//! the common ancestor comes back in one round trip (one GetHeaders, one Headers,
//! through the real codec and responder) with an overshoot of at most 2 × the depth.
//!
//! The chains are synthetic `ChainStore`s (ids computed from branch and height) so a
//! million blocks cost no memory and no signatures: the locator and the ancestor
//! search see only ids, which is all they use.

use bhsync::chain::{
    block_locator, respond, Block, BlockHeader, BlockId, BlockLimits, BlockSource, ChainStore, SyncMessage,
    LOCATOR_LEN_MAX,
};

const CHAIN_LEN: u64 = 1_000_000;
const DEPTH_MAX: u64 = 100_000;

/// Blocks 0..=fork_height shared with branch 0, then `branch`'s own up to `tip`.
struct SyntheticChain {
    branch: u8,
    fork_height: u64,
    tip: u64,
}

fn synthetic_id(branch: u8, height: u64) -> BlockId {
    let mut id = [0xAB; 32];
    id[0] = branch;
    id[1..9].copy_from_slice(&height.to_le_bytes());
    id
}

impl ChainStore for SyntheticChain {
    fn tip_height(&self) -> u64 {
        self.tip
    }

    fn id_at(&self, height: u64) -> Option<BlockId> {
        let branch = if height <= self.fork_height { 0 } else { self.branch };
        (height <= self.tip).then(|| synthetic_id(branch, height))
    }

    fn main_height_of(&self, id: &BlockId) -> Option<u64> {
        let height = u64::from_le_bytes(id[1..9].try_into().expect("8 bytes"));
        (self.id_at(height) == Some(*id)).then_some(height)
    }
}

impl BlockSource for SyntheticChain {
    fn header_at(&self, _height: u64) -> Option<BlockHeader> {
        None // Headers are not asked for (headers_max = 0): this test is about the ancestor.
    }

    fn block_at(&self, _height: u64) -> Option<Block> {
        None
    }
}

/// One round trip through the codec: the ancestor height the responder names.
fn ancestor_in_one_round_trip(local: &SyntheticChain, remote: &SyntheticChain) -> (u64, usize) {
    let request = SyncMessage::GetHeaders { locator: block_locator(local), headers_max: 0 };
    let request_bytes = request.to_bytes();
    let decoded = SyncMessage::decode(&request_bytes, &BlockLimits::default()).expect("a valid request");
    let reply = respond(remote, &decoded).expect("an honest request").expect("a shared genesis");
    let reply_bytes = reply.to_bytes();
    match SyncMessage::decode(&reply_bytes, &BlockLimits::default()).expect("a valid reply") {
        SyncMessage::Headers { ancestor_height, .. } => (ancestor_height, request_bytes.len() + reply_bytes.len()),
        other => panic!("expected Headers, got {other:?}"),
    }
}

#[test]
fn forks_at_depths_1_to_100000_are_found_in_one_round_trip_within_twice_the_depth() {
    let remote = SyntheticChain { branch: 0, fork_height: CHAIN_LEN, tip: CHAIN_LEN };
    let (mut worst_ratio, mut worst_depth, mut total_overshoot, mut bytes_max) = (0.0f64, 0, 0u64, 0);
    for depth in 1..=DEPTH_MAX {
        let fork_height = CHAIN_LEN - depth;
        let local = SyntheticChain { branch: 1, fork_height, tip: CHAIN_LEN };
        let (ancestor, bytes) = ancestor_in_one_round_trip(&local, &remote);
        assert!(ancestor <= fork_height, "depth {depth}: ancestor {ancestor} above the fork {fork_height}");
        let overshoot = fork_height - ancestor;
        assert!(overshoot <= 2 * depth, "depth {depth}: overshoot {overshoot} exceeds 2 x depth");
        let ratio = overshoot as f64 / depth as f64;
        if ratio > worst_ratio {
            (worst_ratio, worst_depth) = (ratio, depth);
        }
        total_overshoot += overshoot;
        bytes_max = bytes_max.max(bytes);
    }
    eprintln!(
        "forks 1..={DEPTH_MAX} in a {CHAIN_LEN}-block chain: worst overshoot {worst_ratio:.3} x depth (at depth \
         {worst_depth}), mean overshoot {:.1} blocks, at most {bytes_max} bytes per round trip",
        total_overshoot as f64 / DEPTH_MAX as f64
    );
}

#[test]
fn a_fork_where_the_peer_is_ahead_or_behind_is_found_too() {
    for (local_tip, remote_tip) in [(CHAIN_LEN, CHAIN_LEN + 5_000), (CHAIN_LEN + 5_000, CHAIN_LEN), (10, 3)] {
        let fork_height = local_tip.min(remote_tip) - 3;
        let local = SyntheticChain { branch: 1, fork_height, tip: local_tip };
        let remote = SyntheticChain { branch: 2, fork_height, tip: remote_tip };
        let (ancestor, _) = ancestor_in_one_round_trip(&local, &remote);
        let depth = local_tip - fork_height;
        assert!(ancestor <= fork_height && fork_height - ancestor <= 2 * depth, "tips {local_tip}/{remote_tip}");
    }
}

#[test]
fn a_locator_never_exceeds_its_bound() {
    for tip in [0, 1, 9, 10, 11, 1_000, CHAIN_LEN, u64::MAX / 2] {
        let chain = SyntheticChain { branch: 0, fork_height: tip, tip };
        let locator = block_locator(&chain);
        assert!(locator.len() <= LOCATOR_LEN_MAX, "tip {tip}: {} entries", locator.len());
        assert_eq!(locator.last(), Some(&synthetic_id(0, 0)), "tip {tip}: ends at genesis");
    }
}
