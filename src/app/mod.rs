//! Composition root: Config → Store → Sources → Ranker → Renderer → Mailer, one file a
//! stage: [`fetch`] → [`plan`] → [`deliver`]. `run_once(now)` is the whole daily job; the
//! other commands ([`commands`]) reuse its parts.

mod alert;
pub(crate) mod commands;
mod deliver;
mod fetch;
mod plan;
mod progress;
pub(crate) mod subscribers;

use crate::config::{self, Config};
use crate::error::{Error, Result, exit};
use crate::mail::Mailer;
use crate::store::Store;
use chrono::{DateTime, Duration as Days, Utc};
use deliver::Composer;
use plan::{Candidates, Planner, Roster};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
pub use tokio_util::sync::CancellationToken as Shutdown;

/// Subscribers are planned and sent in chunks of this size, so memory stays flat in the
/// number of subscribers: only one chunk's rankings are held at a time.
const CHUNK: usize = 512;

/// What one run did: the numbers behind the one-line summary and the exit code.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub sources_ok: usize,
    pub sources_failed: usize,
    pub new_papers: usize,
    pub sent: usize,
    pub failed: usize,
    pub deferred: usize,
    /// Subscribers with nothing new (and `send_empty = false`), not due (weekly), or
    /// whose edition was already sent.
    pub skipped: usize,
    /// The mail session failed (unreachable, or the server refused the greeting, EHLO,
    /// STARTTLS, TLS, AUTH or the sender): what was left stays pending.
    pub transport_down: bool,
    /// The session failure needs a configuration change (credentials, TLS trust,
    /// security mode, sender) before a retry can work: exit 78 instead of 75.
    pub config_fault: bool,
    /// Digests left pending, with their Message-IDs, by the failed session.
    pub pending: usize,
    /// Why the mail session failed, the first time it did in this run.
    #[serde(skip)]
    pub session_error: Option<String>,
    /// One line per failed source or subscriber.
    pub errors: Vec<String>,
    #[serde(rename = "duration_ms", with = "millis")]
    pub duration: Duration,
}

mod millis {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
}

impl RunSummary {
    /// 0 all sent; 1 some subscriber or source failed; 75 the mail session failed for now;
    /// 78 it failed in a way only a configuration change fixes.
    pub fn exit_code(&self) -> u8 {
        if self.config_fault {
            exit::CONFIG
        } else if self.transport_down {
            exit::TEMPFAIL
        } else if self.failed + self.deferred + self.sources_failed > 0 {
            exit::PARTIAL
        } else {
            exit::OK
        }
    }

    fn status(&self) -> &'static str {
        match self.exit_code() {
            exit::OK => "ok",
            exit::PARTIAL if self.sent > 0 || self.failed + self.deferred == 0 => "partial",
            _ => "failed",
        }
    }
}

impl std::fmt::Display for RunSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sources {} ok / {} failed, {} new papers, digests {} sent / {} failed / {} deferred / {} pending, {} skipped, {:.1} s",
            self.sources_ok,
            self.sources_failed,
            self.new_papers,
            self.sent,
            self.failed,
            self.deferred,
            self.pending,
            self.skipped,
            self.duration.as_secs_f64()
        )?;
        if self.new_papers == 0 && self.sent + self.failed + self.deferred == 0 && self.errors.is_empty() {
            f.write_str(" (a quiet day: nothing new to send)")?;
        }
        Ok(())
    }
}

/// The run's subscribers, a chunk at a time: the config's (with the readers who joined on
/// the web), then the subscribers file's, read as they are needed, without those the first
/// already had (`taken`).
fn chunks<'c>(
    subscribers: &'c [config::Subscriber],
    mut file: Option<config::FileSubscribers<'c>>,
    taken: &'c HashSet<String>,
) -> deliver::Chunks<'c> {
    let mut inline = subscribers.chunks(CHUNK);
    Box::new(move || {
        if let Some(chunk) = inline.next() {
            return Ok(Some(chunk.to_vec()));
        }
        let Some(file) = file.as_mut() else { return Ok(None) };
        let mut chunk = file.next_chunk(plan::FILE_CHUNK)?;
        if chunk.is_empty() {
            return Ok(None);
        }
        chunk.retain(|s| !taken.contains(&s.key));
        Ok(Some(chunk))
    })
}

impl RunSummary {
    /// The line that says the mail session failed, why, and what became of the digests.
    fn session_failure(&self) -> Option<String> {
        let error = self.session_error.as_ref()?;
        let fix = if self.config_fault { " once the configuration is fixed" } else { "" };
        Some(format!(
            "mail session failed: {error}; no subscriber is marked failed: {} digest(s) stay pending with their Message-IDs and go out with the next run{fix}",
            self.pending
        ))
    }
}

/// What a run's stages share: the store, the clock, the renderer and the mailer, the stop
/// signal and the progress bar. Made once per run (or per one-off send).
pub(crate) struct Run<'a> {
    /// Shared with the thread that commits send outcomes.
    store: Arc<Store>,
    now: DateTime<Utc>,
    shutdown: &'a Shutdown,
    /// Shared with the blocking pool, where messages are rendered.
    composer: Arc<Composer>,
    mailer: Mailer,
    progress: indicatif::ProgressBar,
}

impl<'a> Run<'a> {
    fn new(cfg: &Config, store: Arc<Store>, now: DateTime<Utc>, shutdown: &'a Shutdown) -> Result<Self> {
        Ok(Run {
            store,
            now,
            shutdown,
            composer: Arc::new(Composer::new(cfg)?),
            mailer: Mailer::new(&cfg.mail)?,
            progress: indicatif::ProgressBar::hidden(),
        })
    }
}

/// One whole run: fetch, rank, render, send, record. Stops taking new sends once
/// `shutdown` is cancelled, finishing those in flight.
pub async fn run_once(cfg: &Config, now: DateTime<Utc>, shutdown: &Shutdown) -> Result<RunSummary> {
    let started = Instant::now();
    let store = Arc::new(Store::open(&cfg.digest.database)?);
    let roster = Roster::new(cfg, &store)?;
    let cfg = roster.cfg.as_ref().unwrap_or(cfg);
    let run_id = store.start_run("run", now)?;
    let result = run_inner(cfg, &roster, &store, now, shutdown).await;
    let finished = now + Days::from_std(started.elapsed()).unwrap_or_default();
    match result {
        Ok(mut summary) => {
            summary.duration = started.elapsed();
            let json = serde_json::to_value(&summary).ok();
            store.finish_run(
                run_id,
                summary.status(),
                json.as_ref(),
                summary.errors.first().map(String::as_str),
                finished,
            )?;
            log_summary(&summary);
            if summary.status() == "failed" {
                alert::alert_if_due(cfg, &store, now, &summary.errors.join("; ")).await;
            }
            Ok(summary)
        }
        // The run's own error is the one to report, even when recording it fails too (a
        // full disk); a database that is not ours any more is not written at all.
        Err(e @ Error::StoreReplaced { .. }) => Err(e),
        Err(e) => {
            if let Err(record) = store.finish_run(run_id, "failed", None, Some(&e.to_string()), finished) {
                tracing::error!("could not record the failed run: {record}");
            }
            alert::alert_if_due(cfg, &store, now, &e.to_string()).await;
            Err(e)
        }
    }
}

fn log_summary(summary: &RunSummary) {
    // Source failures come first and were logged when they happened.
    for e in summary.errors.iter().skip(summary.sources_failed) {
        tracing::warn!("{e}");
    }
    tracing::info!("run finished: {summary}");
}

async fn run_inner(
    cfg: &Config,
    roster: &Roster,
    store: &Arc<Store>,
    now: DateTime<Utc>,
    shutdown: &Shutdown,
) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    if cfg.sources.is_empty() {
        tracing::warn!("no source is enabled in {}: nothing new can arrive", cfg.path.display());
    } else {
        let fetched = fetch::fetch(cfg, store, now, fetch::fetch_days(cfg)).await?;
        summary.sources_ok = fetched.ok;
        summary.sources_failed = fetched.errors.len();
        summary.new_papers = fetched.new_papers;
        summary.errors.extend(fetched.errors.iter().map(|(name, e)| format!("source {name} failed: {e}")));
    }
    let candidates = Candidates::load(cfg, store, now)?;
    let forgotten = store.prune_seen(candidates.weekly_since - Days::days(plan::SEEN_MARGIN_DAYS))?;
    if forgotten > 0 {
        tracing::debug!(rows = forgotten, "forgot papers sent before the candidate windows");
    }
    if candidates.daily.is_empty() {
        tracing::debug!(
            "no papers in the last {} days (a weekend or a quiet day?)",
            cfg.digest.lookback_days
        );
    }
    let liked = fetch::liked_papers(cfg, store).await;
    let planner = Planner::new(cfg, store, &candidates, &liked, now)?;
    let shelf = candidates.shelf();
    let mut run = Run::new(cfg, Arc::clone(store), now, shutdown)?;
    // A template mistake found now costs nothing: no subscriber has been planned yet.
    commands::render_sample(cfg, &run.composer.renderer, now)?;
    run.progress = progress::bar((cfg.subscribers.len() + roster.streamed) as u64);
    let chunks = chunks(&cfg.subscribers, cfg.file_subscribers()?, &roster.taken);
    deliver::deliver(&run, &planner, &shelf, chunks, &mut summary).await?;
    run.progress.finish_and_clear();
    run.mailer.close().await;
    if let Some(line) = summary.session_failure() {
        // First, so that the run's recorded error (`status`, the alert) is the reason.
        summary.errors.insert(0, line);
    }
    Ok(summary)
}

/// Makes the database's folder ready for a command that writes (`create`), or only checks
/// that it could be (`check`). The folder must exist, or only it may be missing, and then
/// it alone is created: never its parents, so a typo in `digest.database` does not build a
/// tree of folders anywhere (as root, perhaps). It must be writable. Errors name the key.
pub(crate) fn database_folder(cfg: &Config, create: bool) -> Result<()> {
    let db = &cfg.digest.database;
    let err = |message: String| config::error_at_key(&cfg.path, "digest.database", message);
    let dir = db.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    if !dir.is_dir() {
        if !dir.parent().is_some_and(|p| p.as_os_str().is_empty() || p.is_dir()) {
            return Err(err(format!(
                "neither the folder {} nor its parent exists; create it first (paper-digest creates the \
                 database's own folder, never its parents)",
                dir.display()
            )));
        }
        if !create {
            return Ok(());
        }
        std::fs::create_dir(dir)
            .map_err(|e| err(format!("cannot create the folder {}: {e}", dir.display())))?;
        tracing::info!(folder = %dir.display(), "created the database's folder");
    }
    let hint = "point `digest.database` at a writable folder (under the systemd unit: \
                /var/lib/paper-digest/paper-digest.sqlite3)";
    if db.exists() {
        std::fs::OpenOptions::new()
            .append(true)
            .open(db)
            .map_err(|e| err(format!("cannot write {}: {e}; {hint}", db.display())))?;
    } else {
        // SQLite writes the database, its journal and the lock file beside it.
        let probe = dir.join(format!(".paper-digest-probe-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| err(format!("cannot create files in {}: {e}; {hint}", dir.display())))?;
        let _ = std::fs::remove_file(&probe);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_exit_codes_follow_the_readme() {
        let ok = RunSummary { sent: 3, ..RunSummary::default() };
        assert_eq!(ok.exit_code(), exit::OK);
        let partial = RunSummary { sent: 2, failed: 1, ..RunSummary::default() };
        assert_eq!(partial.exit_code(), exit::PARTIAL);
        let down = RunSummary { pending: 3, transport_down: true, ..RunSummary::default() };
        assert_eq!(down.exit_code(), exit::TEMPFAIL);
        assert_eq!(down.status(), "failed");
        let refused = RunSummary {
            sent: 2,
            pending: 1,
            transport_down: true,
            config_fault: true,
            ..RunSummary::default()
        };
        assert_eq!(refused.exit_code(), exit::CONFIG);
        assert_eq!(refused.status(), "failed");
    }
}
