//! The shard threads of a node: one pinned thread per shard beyond the control shard,
//! kept for the node's lifetime, that run the state layer's jobs (hashing entries,
//! inserting into a shard's subtrees) next to the control thread, which takes a share
//! of the jobs itself.
//!
//! Jobs borrow the caller's data, as in rayon's `scope`: [`ShardPool::run`] returns only
//! once every job has finished (a job that panics is counted as finished, and its panic
//! resumed on the caller), so no job outlives what it borrows. Jobs travel through a
//! bounded lock-free queue; idle threads park and are unparked when work arrives.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, Thread};

use crossbeam_queue::ArrayQueue;

use super::shard_runner::pin_to_core;
use crate::state::parallel::{Executor, Job};

/// Jobs waiting at once at most (a batch is cut into a handful per shard).
const QUEUE_CAPACITY: usize = 256;

type Panic = Box<dyn std::any::Any + Send>;

/// A job with its lifetime erased, and the batch it belongs to.
struct Task {
    job: Job<'static>,
    batch: Arc<Batch>,
}

/// Completion of one `run` call.
struct Batch {
    remaining: AtomicUsize,
    panic: Mutex<Option<Panic>>,
    caller: Thread,
}

struct Shared {
    queue: ArrayQueue<Task>,
    stopping: AtomicBool,
}

/// Pinned worker threads that run state jobs for the control thread.
pub struct ShardPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl ShardPool {
    /// Starts `workers` threads pinned to `cores` (the control thread keeps the first
    /// core; worker `i` takes `cores[i + 1]`).
    pub fn new(workers: usize, cores: &[usize]) -> std::io::Result<ShardPool> {
        let shared = Arc::new(Shared { queue: ArrayQueue::new(QUEUE_CAPACITY), stopping: AtomicBool::new(false) });
        let mut handles = Vec::with_capacity(workers);
        for index in 0..workers {
            let shared = shared.clone();
            let core = cores.get(index + 1).copied().unwrap_or(index + 1);
            let handle = std::thread::Builder::new()
                .name(format!("bhsync-shard-{}", index + 1))
                .spawn(move || worker(shared, core))?;
            handles.push(handle);
        }
        Ok(ShardPool { shared, workers: handles })
    }

    fn wake_workers(&self) {
        self.workers.iter().for_each(|handle| handle.thread().unpark());
    }
}

fn worker(shared: Arc<Shared>, core: usize) {
    pin_to_core(core);
    while !shared.stopping.load(Ordering::Acquire) {
        match shared.queue.pop() {
            Some(task) => execute(task),
            None => std::thread::park(),
        }
    }
}

fn execute(task: Task) {
    let Task { job, batch } = task;
    if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
        if let Ok(mut slot) = batch.panic.lock() {
            slot.get_or_insert(panic);
        }
    }
    if batch.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
        batch.caller.unpark();
    }
}

impl Executor for ShardPool {
    fn run(&self, jobs: Vec<Job<'_>>) {
        if jobs.len() <= 1 || self.workers.is_empty() {
            jobs.into_iter().for_each(|job| job());
            return;
        }
        let batch = Arc::new(Batch {
            remaining: AtomicUsize::new(jobs.len()),
            panic: Mutex::new(None),
            caller: std::thread::current(),
        });
        for job in jobs {
            // SAFETY: the job borrows data that lives until this function returns, and
            // this function returns only after `remaining` reached zero, that is after
            // every job — run here or on a worker, panicking or not — has finished and
            // been dropped (see `execute`, which drops the job before decrementing).
            let job: Job<'static> = unsafe { std::mem::transmute::<Job<'_>, Job<'static>>(job) };
            let mut task = Task { job, batch: batch.clone() };
            while let Err(returned) = self.shared.queue.push(task) {
                // Queue full: run one queued job here to make room.
                if let Some(other) = self.shared.queue.pop() {
                    execute(other);
                }
                task = returned;
            }
        }
        self.wake_workers();
        // The caller works too, then waits for the jobs still running elsewhere.
        while let Some(task) = self.shared.queue.pop() {
            execute(task);
        }
        while batch.remaining.load(Ordering::Acquire) > 0 {
            std::thread::park();
        }
        let panic = batch.panic.lock().ok().and_then(|mut slot| slot.take());
        if let Some(panic) = panic {
            resume_unwind(panic);
        }
    }

    fn parallelism(&self) -> usize {
        self.workers.len() + 1
    }
}

impl Drop for ShardPool {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::Release);
        self.wake_workers();
        for handle in self.workers.drain(..) {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs_once_and_may_borrow_the_callers_data() {
        let pool = ShardPool::new(2, &[0, 1, 0]).expect("pool");
        for round in 0..200 {
            let mut slots = vec![0u64; 37];
            let jobs: Vec<Job<'_>> = slots
                .iter_mut()
                .enumerate()
                .map(|(i, slot)| Box::new(move || *slot = i as u64 * 3 + round) as Job<'_>)
                .collect();
            pool.run(jobs);
            for (i, slot) in slots.iter().enumerate() {
                assert_eq!(*slot, i as u64 * 3 + round, "round {round}: job {i} did not run");
            }
        }
    }

    #[test]
    fn batches_hashed_and_inserted_on_the_pool_give_the_inline_root() {
        use crate::state::parallel::Inline;
        use crate::state::{CategorySpec, CategoryState, NodeId, Version};
        let pool = ShardPool::new(1, &[]).expect("pool");
        let keys: Vec<Vec<u8>> = (0..5_000u32).map(|n| n.to_le_bytes().repeat(3)).collect();
        let version = Version { hlc: 1 << 16, origin: NodeId([5; 32]), counter: 1, tombstone: false };
        let entries: Vec<(&[u8], &[u8], Version)> = keys.iter().map(|k| (k.as_slice(), &k[..4], version)).collect();
        let mut inline = CategoryState::new("c", CategorySpec::default(), 4).expect("state");
        let mut pooled = CategoryState::new("c", CategorySpec::default(), 4).expect("state");
        let batch = inline.prepare_all(&entries, &Inline).expect("prepare");
        inline.apply_batch_on(batch, &Inline);
        let batch = pooled.prepare_all(&entries, &pool).expect("prepare");
        pooled.apply_batch_on(batch, &pool);
        assert_eq!(inline.root(), pooled.root());
        assert_eq!(pooled.len(), 5_000);
    }

    #[test]
    fn more_jobs_than_the_queue_holds_still_finish() {
        let pool = ShardPool::new(1, &[]).expect("pool");
        let counter = AtomicUsize::new(0);
        let jobs: Vec<Job<'_>> = (0..QUEUE_CAPACITY * 3)
            .map(|_| {
                Box::new(|| {
                    counter.fetch_add(1, Ordering::Relaxed);
                }) as Job<'_>
            })
            .collect();
        pool.run(jobs);
        assert_eq!(counter.load(Ordering::Relaxed), QUEUE_CAPACITY * 3);
    }

    #[test]
    fn a_panicking_job_is_resumed_on_the_caller_after_the_others_finish() {
        let pool = ShardPool::new(2, &[]).expect("pool");
        let done = AtomicUsize::new(0);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut jobs: Vec<Job<'_>> = (0..8)
                .map(|_| {
                    Box::new(|| {
                        done.fetch_add(1, Ordering::Relaxed);
                    }) as Job<'_>
                })
                .collect();
            jobs.push(Box::new(|| panic!("job failed")));
            pool.run(jobs);
        }));
        assert!(result.is_err(), "the panic was swallowed");
        assert_eq!(done.load(Ordering::Relaxed), 8, "other jobs did not finish");
        // The pool still works afterwards.
        let mut value = 0;
        pool.run(vec![Box::new(|| value = 1), Box::new(|| {})]);
        assert_eq!(value, 1);
    }
}
