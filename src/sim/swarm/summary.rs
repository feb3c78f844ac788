//! Many seeds at once: run a range (on several threads when asked), add up what each
//! seed's faults and clients did, and print the table the closing notes quote: how
//! often each fault kind fired and in how many seeds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::run::{run_seed, SeedReport, SwarmFailure};

/// What a range of seeds did.
#[derive(Clone, Debug, Default)]
pub struct SwarmSummary {
    /// Seeds that ran to the end with every invariant holding.
    pub passed: u64,
    /// Seeds that violated an invariant.
    pub failures: Vec<SwarmFailure>,
    /// Per fault kind: (times fired, seeds in which it fired).
    pub faults: BTreeMap<&'static str, (u64, u64)>,
    /// Acknowledged client operations by kind.
    pub acked_ops: [u64; 7],
    /// Strong operations checked for linearizability.
    pub strong_ops: u64,
    /// Seeds whose linearizability search ran out of budget.
    pub linearizability_unknown: u64,
    /// Acknowledged writes put at risk by detected corruption, and those lost.
    pub at_risk: u64,
    /// Acknowledged writes lost to detected corruption (never silently).
    pub lost_to_corruption: u64,
    /// Simulated time, ms, over all seeds.
    pub simulated_ms: u64,
    /// Longest time to converge after the faults stopped, ms.
    pub slowest_convergence_ms: u64,
}

impl SwarmSummary {
    /// Adds one seed's report.
    pub fn add(&mut self, report: &SeedReport) {
        self.passed += 1;
        for (&kind, &count) in &report.counts {
            let slot = self.faults.entry(kind).or_default();
            slot.0 += count;
            slot.1 += 1;
        }
        for (total, count) in self.acked_ops.iter_mut().zip(report.acked_ops) {
            *total += count;
        }
        self.strong_ops += report.strong_ops as u64;
        self.linearizability_unknown += u64::from(report.linearizability_unknown);
        self.at_risk += report.at_risk;
        self.lost_to_corruption += report.lost_to_corruption;
        self.simulated_ms += report.simulated_ms;
        self.slowest_convergence_ms = self.slowest_convergence_ms.max(report.converged_after_ms);
    }

    /// Seeds run.
    pub fn seeds(&self) -> u64 {
        self.passed + self.failures.len() as u64
    }

    /// The fault table and the client totals, as Markdown.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| fault kind | times fired | seeds |\n|---|---|---|");
        for (kind, (count, seeds)) in &self.faults {
            let _ = writeln!(out, "| {kind} | {count} | {seeds} |");
        }
        let _ = writeln!(out, "\n| client operation | acknowledged |\n|---|---|");
        for (op, count) in super::plan::ClientOp::ALL.iter().zip(self.acked_ops) {
            let _ = writeln!(out, "| {} | {count} |", op.name());
        }
        let _ = writeln!(
            out,
            "\nstrong operations checked: {} (search over budget in {} seeds); acknowledged writes put at risk by detected corruption: {}, lost: {}; simulated {:.1} min; slowest convergence {} ms",
            self.strong_ops,
            self.linearizability_unknown,
            self.at_risk,
            self.lost_to_corruption,
            self.simulated_ms as f64 / 60_000.0,
            self.slowest_convergence_ms
        );
        out
    }
}

/// Runs one seed; a panic inside it becomes a failure naming the seed.
fn run_guarded(seed: u64) -> Result<SeedReport, SwarmFailure> {
    std::panic::catch_unwind(|| run_seed(seed)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".into());
        Err(SwarmFailure {
            seed,
            summary: super::Plan::draw(seed).summary(),
            at_ms: 0,
            message: format!("panicked: {message}"),
            trace: Vec::new(),
        })
    })
}

/// Runs `seeds` on `threads` threads; `progress` sees each finished seed.
pub fn run_seeds(
    seeds: &[u64],
    threads: usize,
    progress: &(dyn Fn(&Result<SeedReport, SwarmFailure>) + Sync),
) -> SwarmSummary {
    let next = AtomicU64::new(0);
    let summary = Mutex::new(SwarmSummary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let slot = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(&seed) = seeds.get(slot) else { break };
                let result = run_guarded(seed);
                progress(&result);
                let mut summary = summary.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                match result {
                    Ok(report) => summary.add(&report),
                    Err(failure) => summary.failures.push(failure),
                }
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner());
    summary.failures.sort_by_key(|failure| failure.seed);
    summary
}
