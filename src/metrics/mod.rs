//! Metrics and health (DESIGN.md §1, "metrics"): the figures a node reports and the
//! health report derived from them.
//!
//! - [`health`]: a status (healthy, degraded, critical) from documented thresholds, with
//!   warnings and what to do about them, as JSON.
//! - [`telemetry`]: what the engine records as it runs (HDR histograms of sync latency,
//!   per-peer and per-category figures, rates, consistency lag, partition events).
//! - [`prometheus`]: every figure in the Prometheus text exposition format.

pub mod health;
pub mod prometheus;
pub mod telemetry;

pub use health::{HealthReport, HealthStatus, Thresholds};
pub use telemetry::{CategoryFigures, LatencySummary, PeerFigures, Rates, Telemetry, TelemetrySnapshot};
