//! Block locators: the common ancestor of two chains in one round trip.
//!
//! Bitcoin Core's `CChain::GetLocator`: the ids of the 10 newest blocks, then of blocks
//! at exponentially growing distances (the step doubles after each), ending with
//! genesis. For a fork `d` blocks below the requester's head, the first locator entry
//! at or below the fork point is at most about `d` blocks further down (the gap after
//! an entry at distance `o` is below `o`), so the overshoot stays within the issue's
//! bound of 2 × depth, with ~10 + log2(height) entries: 30 for a million blocks.

use super::block::BlockId;
use super::store::ChainStore;

/// Dense entries before the spacing starts doubling.
pub const LOCATOR_DENSE: u64 = 10;

/// The longest locator a peer may send: enough for 2^54 blocks. Longer is misbehaviour.
pub const LOCATOR_LEN_MAX: usize = 64;

/// The heights a locator names for a chain whose head is at `tip` (newest first).
pub fn locator_heights(tip: u64) -> Vec<u64> {
    let mut heights = Vec::new();
    let (mut height, mut step) = (tip, 1u64);
    loop {
        heights.push(height);
        if height == 0 {
            break;
        }
        if heights.len() as u64 >= LOCATOR_DENSE {
            step = step.saturating_mul(2);
        }
        // Keep room for genesis within the bound, whatever the height.
        height = if heights.len() + 1 == LOCATOR_LEN_MAX { 0 } else { height.saturating_sub(step) };
    }
    debug_assert!(heights.len() <= LOCATOR_LEN_MAX);
    heights
}

/// The locator of `store`'s main chain.
pub fn block_locator(store: &impl ChainStore) -> Vec<BlockId> {
    locator_heights(store.tip_height()).into_iter().filter_map(|height| store.id_at(height)).collect()
}

/// Why a locator was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocatorError {
    /// More than [`LOCATOR_LEN_MAX`] entries: misbehaviour.
    TooLong {
        /// Entries sent.
        len: usize,
    },
    /// No entry is on our main chain (different genesis).
    NoCommonBlock,
}

/// The newest entry of `locator` on `store`'s main chain: (height, id).
pub fn find_common_ancestor(store: &impl ChainStore, locator: &[BlockId]) -> Result<(u64, BlockId), LocatorError> {
    if locator.len() > LOCATOR_LEN_MAX {
        return Err(LocatorError::TooLong { len: locator.len() });
    }
    locator
        .iter()
        .find_map(|id| store.main_height_of(id).map(|height| (height, *id)))
        .ok_or(LocatorError::NoCommonBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locator_is_dense_then_exponential_and_ends_at_genesis() {
        let heights = locator_heights(1_000_000);
        let expected =
            [1_000_000, 999_999, 999_998, 999_997, 999_996, 999_995, 999_994, 999_993, 999_992, 999_991, 999_989];
        assert_eq!(&heights[..11], &expected);
        assert_eq!(*heights.last().unwrap(), 0);
        assert!(heights.len() <= 32, "{} entries", heights.len());
        assert_eq!(locator_heights(0), vec![0]);
        assert_eq!(locator_heights(u64::MAX).len(), LOCATOR_LEN_MAX);
        assert_eq!(*locator_heights(u64::MAX).last().unwrap(), 0);
    }
}
