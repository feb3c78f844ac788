//! Partition detection and the per-category write policy on the minority side.
//!
//! A member considers itself partitioned when the members it can reach (itself and
//! those it believes alive) are not a strict majority of the members it knows of,
//! including dead ones it still remembers (DESIGN.md §1 "partitions"). Strong
//! categories ([`PartitionPolicy::ReadOnly`]) refuse writes while that holds, so only
//! a majority side can accept them; eventual categories keep writing and merge after
//! the heal.

use crate::state::PartitionPolicy;

/// What the detector reported to the host.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PartitionChange {
    /// Reachable members fell to a minority of known ones.
    Detected {
        /// Members reachable, this one included.
        reachable: usize,
        /// Members known, this one included.
        known: usize,
    },
    /// A majority is reachable again.
    Healed {
        /// Members reachable, this one included.
        reachable: usize,
        /// Members known, this one included.
        known: usize,
    },
}

/// Tracks whether this member is on a minority side.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionDetector {
    partitioned: bool,
    /// Partitions detected so far.
    pub detected_count: u64,
}

impl PartitionDetector {
    /// Whether this member is on a minority side now.
    pub fn is_partitioned(&self) -> bool {
        self.partitioned
    }

    /// Feeds the current counts; returns a change when the state flips.
    pub fn update(&mut self, reachable: usize, known: usize) -> Option<PartitionChange> {
        debug_assert!(reachable <= known && reachable >= 1, "this member is always reachable and known");
        let minority = reachable * 2 <= known;
        if minority == self.partitioned {
            return None;
        }
        self.partitioned = minority;
        if minority {
            self.detected_count += 1;
            Some(PartitionChange::Detected { reachable, known })
        } else {
            Some(PartitionChange::Healed { reachable, known })
        }
    }

    /// Whether a category with `policy` may accept a local write now.
    pub fn write_allowed(&self, policy: PartitionPolicy) -> bool {
        match policy {
            PartitionPolicy::KeepWriting => true,
            PartitionPolicy::ReadOnly => !self.partitioned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minority_side_goes_read_only_for_strong_categories_only() {
        let mut detector = PartitionDetector::default();
        assert_eq!(detector.update(6, 10), None);
        assert_eq!(detector.update(5, 10), Some(PartitionChange::Detected { reachable: 5, known: 10 }));
        assert!(!detector.write_allowed(PartitionPolicy::ReadOnly));
        assert!(detector.write_allowed(PartitionPolicy::KeepWriting));
        assert_eq!(detector.update(10, 10), Some(PartitionChange::Healed { reachable: 10, known: 10 }));
        assert!(detector.write_allowed(PartitionPolicy::ReadOnly));
    }
}
