//! Metrics and health (DESIGN.md §1, "metrics"): the figures a node reports and the
//! health report derived from them.
//!
//! - [`health`]: a status (healthy, degraded, critical) from documented thresholds, with
//!   warnings and what to do about them, as JSON.

pub mod health;

pub use health::{HealthReport, HealthStatus};
