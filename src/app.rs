//! Composition root. (stub: being written)

use crate::cli::Cli;
use crate::config::Config;
use crate::error::Result;
use chrono::{DateTime, Utc};
use std::time::Duration;
pub use tokio_util::sync::CancellationToken as Shutdown;

/// What one run did: the numbers behind the one-line summary and the exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub sources_ok: usize,
    pub sources_failed: usize,
    pub new_papers: usize,
    pub sent: usize,
    pub failed: usize,
    pub deferred: usize,
    /// Subscribers with nothing new (and `send_empty = false`) or not due (weekly).
    pub skipped: usize,
    pub duration: Duration,
}

/// One whole run: fetch, rank, render, send, record. Stops taking new sends once
/// `shutdown` is cancelled, finishing those in flight.
pub async fn run_once(_cfg: &Config, _now: DateTime<Utc>, _shutdown: &Shutdown) -> Result<RunSummary> {
    Ok(RunSummary::default())
}

pub fn main(_cli: Cli) -> Result<u8> {
    Ok(0)
}
