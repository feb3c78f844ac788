//! Runs per-shard work on one pinned thread per shard (thread-per-core).
//!
//! The state layer is sans-IO and single-threaded: a [`Shard`] is plain data. This
//! runner gives each shard its own scoped thread pinned to a core (core_affinity), so
//! shards hash in parallel without sharing memory; the root is recombined afterwards on
//! the calling thread. With one shard the work runs inline.

use crate::state::{CategoryState, PreparedLeaf, Shard};

/// Pins the calling thread to core `index` (modulo the cores available). Pinning is a
/// placement hint: where the platform refuses it, work still runs unpinned.
pub fn pin_to_core(index: usize) {
    if let Some(cores) = core_affinity::get_core_ids() {
        if !cores.is_empty() {
            core_affinity::set_for_current(cores[index % cores.len()]);
        }
    }
}

/// Runs `work(shard_index, shard, input)` for every shard, each on its own pinned thread.
pub fn for_each_shard<I, F>(shards: &mut [Shard], inputs: Vec<I>, work: F)
where
    I: Send,
    F: Fn(usize, &mut Shard, I) + Sync,
{
    assert_eq!(shards.len(), inputs.len(), "one input per shard");
    if shards.len() == 1 {
        if let Some(input) = inputs.into_iter().next() {
            work(0, &mut shards[0], input);
        }
        return;
    }
    std::thread::scope(|scope| {
        for (index, (shard, input)) in shards.iter_mut().zip(inputs).enumerate() {
            let work = &work;
            scope.spawn(move || {
                pin_to_core(index);
                work(index, shard, input);
            });
        }
    });
}

/// Maps `make(i)` for `i` in `0..count` over `threads` pinned threads and routes every
/// result to its owning shard: the output has, per shard, one part per thread.
pub fn prepare_routed<F>(state: &CategoryState, count: usize, threads: usize, make: F) -> Vec<Vec<Vec<PreparedLeaf>>>
where
    F: Fn(usize) -> PreparedLeaf + Sync,
{
    let threads = threads.max(1);
    let chunk = count.div_ceil(threads);
    let shard_count = state.shards().len();
    let route = |range: std::ops::Range<usize>| {
        // Keys spread uniformly over shards; reserve a little more than the even share
        // so that the vectors rarely grow.
        let expected = range.len() / shard_count + range.len() / (8 * shard_count) + 16;
        let mut parts: Vec<Vec<PreparedLeaf>> = (0..shard_count).map(|_| Vec::with_capacity(expected)).collect();
        for index in range {
            let prepared = make(index);
            parts[state.shard_index(prepared.position())].push(prepared);
        }
        parts
    };
    let per_thread: Vec<Vec<Vec<PreparedLeaf>>> = if threads == 1 {
        vec![route(0..count)]
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let route = &route;
                    scope.spawn(move || {
                        pin_to_core(t);
                        route(t * chunk..((t + 1) * chunk).min(count))
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))).collect()
        })
    };
    transpose(per_thread, shard_count)
}

/// Turns per-thread lists of per-shard parts into per-shard lists of parts, in thread
/// order, without copying any leaf.
fn transpose(per_thread: Vec<Vec<Vec<PreparedLeaf>>>, shard_count: usize) -> Vec<Vec<Vec<PreparedLeaf>>> {
    let mut per_shard: Vec<Vec<Vec<PreparedLeaf>>> = (0..shard_count).map(|_| Vec::new()).collect();
    for parts in per_thread {
        for (shard, part) in parts.into_iter().enumerate() {
            per_shard[shard].push(part);
        }
    }
    per_shard
}

/// Applies per-shard batches (as [`prepare_routed`] returns them) with one pinned thread
/// per shard, then recombines the root.
pub fn apply_routed(state: &mut CategoryState, parts: Vec<Vec<Vec<PreparedLeaf>>>) {
    for_each_shard(state.shards_mut(), parts, |_, shard, batch| shard.apply_batches(batch));
    state.refresh_root();
}
