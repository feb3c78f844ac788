//! Where independent pieces of state work run: the state layer cuts a batch into jobs
//! (one per shard for insertion, one per chunk for hashing) and hands them to an
//! [`Executor`]. The state stays free of threads — the engine passes an executor backed
//! by its pinned shard threads, the simulator and the tests run jobs inline — so the
//! same code is deterministic in simulation and parallel in a running node.

/// A unit of work borrowing the caller's data.
pub type Job<'a> = Box<dyn FnOnce() + Send + 'a>;

/// Runs jobs; returns only when every job has finished (so jobs may borrow from the
/// caller's stack).
pub trait Executor: Send + Sync {
    /// Runs every job, in any order, possibly in parallel; returns when all are done.
    /// A job that panics has its panic resumed on the calling thread after the others
    /// finished.
    fn run(&self, jobs: Vec<Job<'_>>);

    /// How many jobs can run at once (1 for inline execution).
    fn parallelism(&self) -> usize;
}

/// Runs jobs one after the other on the calling thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Executor for Inline {
    fn run(&self, jobs: Vec<Job<'_>>) {
        jobs.into_iter().for_each(|job| job());
    }

    fn parallelism(&self) -> usize {
        1
    }
}
