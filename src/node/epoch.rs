//! The storage epoch: which life of its storage a node is in, so that a node that lost
//! its data but kept its identity never writes counter increments into the slot its
//! previous life filled (issue 16 item 7; ADR 080's open hazard).
//!
//! A PN-counter keeps one slot per writer, and merges slots by taking the larger
//! value. A node whose storage was wiped restarts its own slot at zero while its peers
//! still hold the old, larger slot: its next increments would be absorbed by the
//! merge. So a node writes counters under a slot named by its id *and* its storage
//! epoch: a random number kept in the data directory (`storage_epoch`), created when
//! the directory is new. A node that keeps its data keeps its slot; one that lost it,
//! or that runs in memory, writes under a fresh slot, and the counter's value — the sum
//! of all slots — counts both lives.

use std::io;
use std::path::Path;

use crate::state::NodeId;
use crate::storage::Disk;

/// The file, inside the node's data directory.
pub const EPOCH_FILE: &str = "storage_epoch";

/// The epoch kept in `dir` on `disk`, or `fresh` written there when there is none yet
/// (a new or wiped directory). A file that does not hold an epoch is an error: the
/// node must not guess which life it is in.
pub fn storage_epoch(disk: &dyn Disk, dir: &Path, fresh: u64) -> io::Result<u64> {
    let path = dir.join(EPOCH_FILE);
    match disk.read(&path) {
        Ok(bytes) => parse(&bytes).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, format!("{} does not hold a storage epoch", path.display()))
        }),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            disk.create_dir_all(dir)?;
            disk.write_atomic(&path, format!("{fresh:016x}\n").as_bytes())?;
            Ok(fresh)
        }
        Err(error) => Err(error),
    }
}

fn parse(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    (text.len() == 16).then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

/// The counter slot of node `me` in storage epoch `epoch`.
pub fn counter_slot(me: &NodeId, epoch: u64) -> NodeId {
    let mut material = [0u8; 40];
    material[..32].copy_from_slice(&me.0);
    material[32..].copy_from_slice(&epoch.to_le_bytes());
    NodeId(blake3::derive_key("bhsync counter slot v1", &material))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::FsDisk;

    #[test]
    fn a_new_directory_takes_the_fresh_epoch_and_keeps_it_after() {
        let dir = std::env::temp_dir().join(format!("bhsync-epoch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(storage_epoch(&FsDisk, &dir, 7).expect("created"), 7);
        assert_eq!(storage_epoch(&FsDisk, &dir, 9).expect("kept"), 7, "a kept directory keeps its life");
        std::fs::write(dir.join(EPOCH_FILE), b"not an epoch").expect("write");
        assert!(storage_epoch(&FsDisk, &dir, 9).is_err(), "a damaged epoch is an error, not a guess");
        std::fs::remove_dir_all(&dir).expect("cleanup");
        assert_eq!(storage_epoch(&FsDisk, &dir, 9).expect("recreated"), 9, "a wiped directory is a new life");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn slots_differ_by_epoch_and_by_node() {
        let (a, b) = (NodeId([1; 32]), NodeId([2; 32]));
        assert_ne!(counter_slot(&a, 1), counter_slot(&a, 2));
        assert_ne!(counter_slot(&a, 1), counter_slot(&b, 1));
        assert_eq!(counter_slot(&a, 1), counter_slot(&a, 1));
    }
}
