//! Composition root: Config → Store → Sources → Ranker → Renderer → Mailer.
//! `run_once(now)` is the whole daily job; the other commands ([`commands`]) reuse its parts.

mod commands;
mod subscribers;

use crate::cli::{Cli, Command};
use crate::config::{self, Config, MailSettings};
use crate::error::{Error, Result, exit};
use crate::lock::InstanceLock;
use crate::logging::mask_email;
use crate::mail::{self, Envelope, Mailer};
use crate::model::{Frequency, Paper, PaperId, Ranked, Subscriber};
use crate::rank::{Feedback, Index};
use crate::render::{DigestContext, Renderer};
use crate::source::{self, Window, http::HttpClient};
use crate::store::{Item, Kind, NewDelivery, Outcome, Store};
use crate::{cadence, daemon};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use futures_util::StreamExt;
use std::collections::{HashMap, HashSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
pub use tokio_util::sync::CancellationToken as Shutdown;

/// Subscribers are planned and sent in chunks of this size, so memory stays flat in the
/// number of subscribers: only one chunk's rankings are held at a time.
const CHUNK: usize = 512;
/// Messages that may be out, beyond the `concurrency` in flight, without a durable record
/// of their outcome yet: after a crash at most `concurrency + UNRECORDED` are sent twice.
/// Group commit keeps far below it (16 outcomes per 2 ms fsync would be 8,000 messages a
/// second); it holds the sends back only when the disk stalls.
const UNRECORDED: usize = 16;
/// Rendered messages whose rows are marked 'sending' in one transaction, at most. A
/// stopping run still sends the group it has marked, so this also bounds what goes out
/// after a shutdown is asked for, besides the sends in flight.
const MARK_GROUP: usize = 16;

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

/// Runs a parsed command line; returns the exit code.
pub fn main(cli: Cli) -> Result<u8> {
    let now = cli.now.unwrap_or_else(Utc::now);
    match &cli.command {
        Command::Init { path, force } => {
            return commands::init(&config::locate(path.as_deref().or(cli.config.as_deref())), *force);
        }
        Command::Completions { shell } => return commands::completions(*shell),
        Command::Man => return commands::man(),
        _ => {}
    }
    let path = config::locate(cli.config.as_deref());
    let cfg = Config::load(&path)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::internal("starting the async runtime", e))?;
    runtime.block_on(dispatch(cfg, cli.command, now, cli.now.is_some()))
}

async fn dispatch(cfg: Config, command: Command, now: DateTime<Utc>, fixed_clock: bool) -> Result<u8> {
    if !matches!(command, Command::Check { .. } | Command::Status { .. }) {
        database_folder(&cfg, true)?;
    }
    match command {
        Command::Run => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            let shutdown = Shutdown::new();
            daemon::cancel_on_signals(&shutdown)?;
            let summary = run_once(&cfg, now, &shutdown).await?;
            Ok(summary.exit_code())
        }
        Command::Fetch => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            let store = Store::open(&cfg.digest.database)?;
            let fetched = fetch(&cfg, &store, now, fetch_days(&cfg)).await?;
            let stored = store.paper_count()?;
            commands::print(|out| {
                writeln!(
                    out,
                    "fetched: {} sources ok, {} failed, {} new papers, {stored} papers stored",
                    fetched.ok,
                    fetched.errors.len(),
                    fetched.new_papers,
                )
            })?;
            Ok(if fetched.errors.is_empty() { exit::OK } else { exit::PARTIAL })
        }
        Command::Preview(args) => commands::preview(&with_readers(cfg)?, &args, now).await,
        Command::Check { connect } => commands::check(&cfg, connect, now).await,
        Command::Status { json } => commands::status(&with_readers(cfg)?, json, now),
        Command::Resend { to, edition } => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            commands::resend(&with_readers(cfg)?, &to, edition, now).await
        }
        Command::Retry { edition, .. } => {
            let _lock = InstanceLock::acquire(&cfg.digest.lock_file)?;
            commands::retry_failed(&with_readers(cfg)?, edition, now).await
        }
        Command::Explain { to, paper, json } => {
            commands::explain(&with_readers(cfg)?, &to, &paper, json, now).await
        }
        Command::Serve => {
            let shutdown = Shutdown::new();
            daemon::cancel_on_signals(&shutdown)?;
            crate::web::serve(cfg, now, shutdown).await
        }
        Command::Subscribers { action } => subscribers::run(&cfg, action, now),
        Command::Daemon => {
            let clock = if fixed_clock { daemon::Clock::starting_at(now) } else { daemon::Clock::system() };
            let shutdown = Shutdown::new();
            daemon::daemon(&cfg, &shutdown, clock, |now| run_once(&cfg, now, &shutdown)).await
        }
        Command::Init { .. } | Command::Completions { .. } | Command::Man => {
            unreachable!("handled before the config is loaded")
        }
    }
}

/// The config with the database's readers applied: suppressed addresses left out,
/// confirmed web subscribers added, manage-page settings and votes taken into account.
fn with_readers(cfg: Config) -> Result<Config> {
    let db = &cfg.digest.database;
    if !db.exists() {
        return Ok(cfg);
    }
    // Read-only where it can be, so that `status` works on a database it may not write.
    let store = Store::open_read_only(db).or_else(|_| Store::open(db))?;
    Ok(crate::web::roster::apply(&cfg, &store)?.unwrap_or(cfg))
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

// ---------------------------------------------------------------------------------------
// Fetch

struct Fetched {
    ok: usize,
    errors: Vec<(String, Error)>,
    new_papers: usize,
}

/// How many listing days to fetch: the lookback window, or a week when a weekly
/// subscriber needs the week's best.
fn fetch_days(cfg: &Config) -> u32 {
    let weekly = cfg.subscribers.iter().any(|s| s.frequency == Frequency::Weekly);
    if weekly { cfg.digest.lookback_days.max(7) } else { cfg.digest.lookback_days }
}

fn window(now: DateTime<Utc>, days: u32) -> Window {
    let today = now.date_naive();
    let days_list = (0..days).rev().map(|back| today - Days::days(i64::from(back))).collect();
    Window { days: days_list, since: now - Days::days(i64::from(days)), now }
}

/// Fetches every source and stores what came back. A failed source changes nothing in the
/// store; when every source failed, the run stops here with exit 75.
async fn fetch(cfg: &Config, store: &Store, now: DateTime<Utc>, days: u32) -> Result<Fetched> {
    let sources = source::from_config(cfg);
    let client = HttpClient::new(&cfg.http, store.http_validators()?)?;
    if let Some(ax) = &cfg.sources.arxiv
        && let Some(host) = url::Url::parse(&ax.base_url).ok().and_then(|u| u.host_str().map(str::to_owned))
    {
        client.set_min_gap(&host, ax.delay);
    }
    let window = window(now, days);
    let spin = spinner(format!("fetching {} days from {} sources", days, sources.len()));
    let reports = source::fetch_all(&sources, &client, &window).await;
    spin.finish_and_clear();
    let mut papers = Vec::new();
    let mut fetched = Fetched { ok: 0, errors: Vec::new(), new_papers: 0 };
    let mut counts = Vec::new();
    for report in reports {
        match report.outcome {
            // `source::fetch_all` logged each outcome as it came.
            Ok(list) => {
                counts.push((report.source, Ok(list.len())));
                papers.extend(list);
                fetched.ok += 1;
            }
            Err(e) => {
                counts.push((report.source.clone(), Err(e.to_string())));
                fetched.errors.push((report.source, e));
            }
        }
    }
    for (name, result) in &counts {
        store.record_source(name, now, result.as_ref().map(|n| *n).map_err(String::as_str))?;
    }
    if fetched.ok == 0 && !fetched.errors.is_empty() {
        let sources = fetched.errors.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
        return Err(Error::AllSourcesFailed { failed: sources.len(), sources });
    }
    let merged = source::merge_all(papers);
    fetched.new_papers = store.record_fetch(&merged, &client.validators(), now)?;
    Ok(fetched)
}

// ---------------------------------------------------------------------------------------
// Rank

/// The papers every subscriber's `like` list names: from the store, else fetched from arXiv.
async fn liked_papers(cfg: &Config, store: &Store) -> Vec<Paper> {
    let ids: Vec<PaperId> = cfg
        .topics
        .values()
        .flat_map(|t| &t.like)
        .map(|id| PaperId(source::ids::normalize_arxiv(id).unwrap_or_else(|| id.clone())))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if ids.is_empty() {
        return Vec::new();
    }
    let mut papers = store.papers(&ids).unwrap_or_default();
    let missing: Vec<String> =
        ids.iter().filter(|id| !papers.iter().any(|p| &p.id == *id)).map(|id| id.0.clone()).collect();
    if !missing.is_empty() {
        match &cfg.sources.arxiv {
            Some(ax) => match HttpClient::new(&cfg.http, HashMap::new()) {
                Ok(client) => match source::arxiv::fetch_by_ids(&client, ax, &missing).await {
                    Ok(more) => papers.extend(more),
                    Err(e) => tracing::warn!("could not fetch liked papers {}: {e}", missing.join(", ")),
                },
                Err(e) => tracing::warn!("could not fetch liked papers: {e}"),
            },
            None => tracing::warn!(
                "liked papers {} are not stored and no [sources.arxiv] is configured to fetch them",
                missing.join(", ")
            ),
        }
    }
    papers
}

/// The candidate windows: daily subscribers rank the lookback window, weekly ones the week.
struct Candidates {
    daily: Vec<Paper>,
    weekly: Vec<Paper>,
    daily_since: DateTime<Utc>,
    weekly_since: DateTime<Utc>,
}

impl Candidates {
    fn load(cfg: &Config, store: &Store, now: DateTime<Utc>) -> Result<Self> {
        let daily_since = now - Days::days(i64::from(cfg.digest.lookback_days));
        let weekly_since = now - Days::days(i64::from(cfg.digest.lookback_days.max(7)));
        let daily = store.candidates(daily_since)?;
        let weekly = if cfg.subscribers.iter().any(|s| s.frequency == Frequency::Weekly) {
            store.candidates(weekly_since)?
        } else {
            Vec::new()
        };
        Ok(Candidates { daily, weekly, daily_since, weekly_since })
    }

    /// No candidates: for resends, whose papers all come from the store.
    fn empty() -> Self {
        let (daily_since, weekly_since) = (DateTime::<Utc>::MAX_UTC, DateTime::<Utc>::MAX_UTC);
        Candidates { daily: Vec::new(), weekly: Vec::new(), daily_since, weekly_since }
    }

    /// Which of a subscriber's candidates they were already sent.
    fn seen(&self, store: &Store, sub: &Subscriber) -> Result<HashSet<PaperId>> {
        let since = match sub.frequency {
            Frequency::Daily => self.daily_since,
            Frequency::Weekly => self.weekly_since,
        };
        store.seen_since(&sub.key, since)
    }
}

/// How long past the longest candidate window a `seen` row is kept: a margin for a
/// paper whose publication date a source reports late.
const SEEN_MARGIN_DAYS: i64 = 30;

struct Indexes<'a> {
    daily: Index<'a>,
    weekly: Index<'a>,
    /// Each reader's "More like this" / "Fewer like this" votes (from `serve`), read once.
    votes: HashMap<String, Feedback>,
}

impl<'a> Indexes<'a> {
    fn new(
        cfg: &Config,
        store: &Store,
        c: &'a Candidates,
        liked: &[Paper],
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let votes = store
            .all_feedback()?
            .into_iter()
            .map(|(key, liked, disliked)| (key, Feedback { liked, disliked }))
            .collect();
        Ok(Indexes {
            daily: Index::new(&c.daily, &cfg.topics, liked, now, cfg.digest.recency_weight),
            weekly: Index::new(&c.weekly, &cfg.topics, liked, now, cfg.digest.recency_weight),
            votes,
        })
    }

    fn for_subscriber(&self, sub: &Subscriber) -> &Index<'a> {
        match sub.frequency {
            Frequency::Daily => &self.daily,
            Frequency::Weekly => &self.weekly,
        }
    }

    /// The subscriber's unseen papers, best first, their votes taken into account.
    fn rank(&self, sub: &Subscriber, seen: &HashSet<PaperId>) -> Vec<Ranked<'a>> {
        let index = self.for_subscriber(sub);
        match self.votes.get(&sub.key) {
            Some(votes) => index.rank_with_feedback(sub, seen, votes),
            None => index.rank(sub, seen),
        }
    }

    /// Why `id` ranked where it did for `sub`, agreeing with [`Indexes::rank`].
    fn explain(&self, sub: &Subscriber, id: &PaperId, seen: &HashSet<PaperId>) -> crate::rank::Explanation {
        let index = self.for_subscriber(sub);
        match self.votes.get(&sub.key) {
            Some(votes) => index.explain_with_feedback(sub, id, seen, votes),
            None => index.explain(sub, id, seen),
        }
    }
}

fn items(ranked: &[Ranked<'_>]) -> Vec<Item> {
    ranked
        .iter()
        .map(|r| Item {
            id: r.paper.id.clone(),
            score: r.score,
            topic: r.topic.clone(),
            matched: r.matched.clone(),
        })
        .collect()
}

/// Rebuilds the ranked list a ledger row recorded, from papers at hand or the store.
fn ranked_from_items<'a>(items: &[Item], papers: &'a Papers) -> Vec<Ranked<'a>> {
    items.iter().filter_map(|i| papers.get(&i.id).map(|paper| i.ranked(paper))).collect()
}

// ---------------------------------------------------------------------------------------
// Run

/// A delivery ready to be rendered and sent.
struct Job<'c> {
    delivery_id: i64,
    subscriber: &'c Subscriber,
    edition: NaiveDate,
    message_id: String,
    items: Vec<Item>,
}

/// One whole run: fetch, rank, render, send, record. Stops taking new sends once
/// `shutdown` is cancelled, finishing those in flight.
pub async fn run_once(cfg: &Config, now: DateTime<Utc>, shutdown: &Shutdown) -> Result<RunSummary> {
    let started = Instant::now();
    // Shared with the thread that commits send outcomes.
    let store = Arc::new(Store::open(&cfg.digest.database)?);
    let readers = crate::web::roster::apply(cfg, &store)?;
    let cfg = readers.as_ref().unwrap_or(cfg);
    let run_id = store.start_run("run", now)?;
    let result = run_inner(cfg, &store, now, shutdown).await;
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
                alert_if_due(cfg, &store, now, &summary.errors.join("; ")).await;
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
            alert_if_due(cfg, &store, now, &e.to_string()).await;
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
    store: &Arc<Store>,
    now: DateTime<Utc>,
    shutdown: &Shutdown,
) -> Result<RunSummary> {
    let mut summary = RunSummary::default();
    if cfg.sources.is_empty() {
        tracing::warn!("no source is enabled in {}: nothing new can arrive", cfg.path.display());
    } else {
        let fetched = fetch(cfg, store, now, fetch_days(cfg)).await?;
        summary.sources_ok = fetched.ok;
        summary.sources_failed = fetched.errors.len();
        summary.new_papers = fetched.new_papers;
        summary.errors.extend(fetched.errors.iter().map(|(name, e)| format!("source {name} failed: {e}")));
    }
    let candidates = Candidates::load(cfg, store, now)?;
    let forgotten = store.prune_seen(candidates.weekly_since - Days::days(SEEN_MARGIN_DAYS))?;
    if forgotten > 0 {
        tracing::debug!(rows = forgotten, "forgot papers sent before the candidate windows");
    }
    if candidates.daily.is_empty() {
        tracing::debug!(
            "no papers in the last {} days (a weekend or a quiet day?)",
            cfg.digest.lookback_days
        );
    }
    let liked = liked_papers(cfg, store).await;
    let indexes = Indexes::new(cfg, store, &candidates, &liked, now)?;
    let shelf = Arc::new(shelf(&candidates));
    let composer = Composer {
        renderer: Arc::new(Renderer::new(cfg.digest.templates.as_deref())?),
        mail: Arc::new(cfg.mail.clone()),
        links: cfg.web.as_ref().map(|w| Arc::new(crate::web::Links::new(w))),
    };
    // A template mistake found now costs nothing: no subscriber has been planned yet.
    commands::render_sample(cfg, &composer.renderer, now)?;
    let mailer = Mailer::new(&cfg.mail)?;
    let progress = progress_bar(cfg.subscribers.len() as u64);

    for chunk in cfg.subscribers.chunks(CHUNK) {
        if shutdown.is_cancelled() || summary.transport_down {
            break;
        }
        let jobs = plan(cfg, store, &candidates, &indexes, chunk, now, &mut summary)?;
        progress.inc((chunk.len() - jobs.len()) as u64);
        send_jobs(&composer, store, &mailer, &shelf, jobs, now, shutdown, &mut summary, &progress).await?;
    }
    progress.finish_and_clear();
    mailer.close().await;
    if let Some(line) = summary.session_failure() {
        // First, so that the run's recorded error (`status`, the alert) is the reason.
        summary.errors.insert(0, line);
    }
    Ok(summary)
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

/// Decides, per subscriber of a chunk, what to send: a retry of an unfinished ledger row
/// (same Message-ID, same papers) or a fresh ranking recorded as pending before any attempt.
#[allow(clippy::too_many_arguments)]
fn plan<'c>(
    cfg: &'c Config,
    store: &Store,
    candidates: &Candidates,
    indexes: &Indexes<'_>,
    chunk: &'c [Subscriber],
    now: DateTime<Utc>,
    summary: &mut RunSummary,
) -> Result<Vec<Job<'c>>> {
    let mut jobs = Vec::new();
    let mut fresh = Vec::new();
    let mut fresh_subs = Vec::new();
    for sub in chunk {
        let edition = cadence::edition_key(sub, now);
        if !cadence::is_due(sub, now) && !missed_weekly(store, sub, edition)? {
            summary.skipped += 1;
            continue;
        }
        match store.digest_delivery(&sub.key, edition)? {
            Some(row) if row.status.is_retryable() => {
                tracing::info!(to = %mask_email(&sub.key), %edition, status = %row.status, "retrying an unfinished delivery");
                jobs.push(Job {
                    delivery_id: row.id,
                    subscriber: sub,
                    edition,
                    message_id: row.message_id,
                    items: row.items,
                });
            }
            Some(row) => {
                tracing::debug!(to = %mask_email(&sub.key), %edition, status = %row.status, "edition already handled");
                summary.skipped += 1;
            }
            None => {
                let seen = candidates.seen(store, sub)?;
                let ranked = indexes.rank(sub, &seen);
                if ranked.is_empty() && !cfg.digest.send_empty {
                    // A quiet day is one summary line, not one line per subscriber.
                    tracing::debug!(to = %mask_email(&sub.key), "nothing new: no digest (send_empty = false)");
                    summary.skipped += 1;
                    continue;
                }
                fresh.push(NewDelivery {
                    subscriber: sub.key.clone(),
                    edition,
                    kind: Kind::Digest,
                    message_id: mail::new_message_id(&cfg.mail),
                    items: items(&ranked),
                });
                fresh_subs.push(sub);
            }
        }
    }
    let ids = store.insert_deliveries(&fresh, now)?;
    for ((row, sub), id) in fresh.into_iter().zip(fresh_subs).zip(ids) {
        match id {
            Some(delivery_id) => jobs.push(Job {
                delivery_id,
                subscriber: sub,
                edition: row.edition,
                message_id: row.message_id,
                items: row.items,
            }),
            // Another process planned it between our read and our insert; it owns it.
            None => summary.skipped += 1,
        }
    }
    Ok(jobs)
}

/// A weekly subscriber whose weekday passed without a run (the host was down) gets that
/// week's edition from the next run, not a week later. A new subscriber waits for the day.
fn missed_weekly(store: &Store, sub: &Subscriber, edition: NaiveDate) -> Result<bool> {
    if sub.frequency != Frequency::Weekly {
        return Ok(false);
    }
    Ok(store.latest_delivery(&sub.key, None)?.is_some_and(|last| last.edition < edition))
}

/// Progress is shown on an interactive terminal only: never in the journal or a pipe.
fn show_progress() -> bool {
    std::io::stderr().is_terminal() && !crate::logging::under_journald()
}

fn progress_bar(len: u64) -> indicatif::ProgressBar {
    if !show_progress() || len <= 20 {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{spinner} sending {pos}/{len} [{elapsed}] {wide_bar}")
    {
        bar.set_style(style);
    }
    bar
}

fn spinner(message: String) -> indicatif::ProgressBar {
    if !show_progress() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new_spinner().with_message(message);
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// What rendering and building a message needs, shared with the blocking pool.
struct Composer {
    renderer: Arc<Renderer>,
    mail: Arc<MailSettings>,
    /// Each reader's signed links, with `[web]` set.
    links: Option<Arc<crate::web::Links>>,
}

/// What a send came to, before it is recorded.
enum Sent {
    Ok,
    /// Not handed to the transport (the run is stopping): the row stays as it was.
    NotAttempted,
    Failed(String),
    Deferred(String),
    /// The session failed on this message's attempt; `config`: only a configuration
    /// change can fix it.
    SessionFailed {
        config: bool,
        error: String,
    },
    /// Marked, but not offered: the session had already failed.
    Unsent(String),
    /// A template failed to render: the operator's mistake, not the subscriber's. The row
    /// is left as it was (unmarked), the run stops and exits 78; the rerun after the fix
    /// sends it.
    BadTemplate(Error),
}

/// Renders, sends and records one chunk's jobs. Rendering runs ahead on the blocking
/// pool, up to `concurrency` messages are with the transport at once, and outcomes are
/// committed by a [`Committer`] on a thread of its own, so neither an SMTP exchange nor a
/// file write waits for a durable commit. Every outcome known is committed before this
/// returns, whether the run finished, was stopped or lost its mail server.
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
async fn send_jobs(
    composer: &Composer,
    store: &Arc<Store>,
    mailer: &Mailer,
    shelf: &Arc<Papers>,
    jobs: Vec<Job<'_>>,
    now: DateTime<Utc>,
    shutdown: &Shutdown,
    summary: &mut RunSummary,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let papers = papers_on_shelf(store, shelf, jobs.iter().flat_map(|j| &j.items))?;
    let concurrency = mailer.concurrency().max(1);
    // Rendering is CPU-bound: two per core at once keep every core busy. Up to MARK_GROUP
    // finished messages may wait to be handed out, so that a group builds up while the
    // previous one waits for the database.
    let rendering = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2;
    let cores = Arc::new(Semaphore::new(rendering));
    let render_ahead = rendering.max(MARK_GROUP);
    let committer = Committer::start(Arc::clone(store), now, concurrency + UNRECORDED);
    let mut bad_template = None;
    {
        let down = AtomicBool::new(false);
        // Once cancelled (or the server is gone, or outcomes can no longer be recorded)
        // nothing new starts; sends in flight finish.
        let broken = AtomicBool::new(false);
        let stopped = || {
            shutdown.is_cancelled()
                || down.load(Ordering::Relaxed)
                || broken.load(Ordering::Relaxed)
                || committer.failed()
        };
        let composed = futures_util::stream::iter(jobs)
            .take_while(|_| {
                let go = !stopped();
                async move { go }
            })
            .map(|job| {
                let (mail, renderer, papers, cores, links) = (
                    Arc::clone(&composer.mail),
                    Arc::clone(&composer.renderer),
                    Arc::clone(&papers),
                    Arc::clone(&cores),
                    composer.links.clone(),
                );
                let (sub, items, message_id, edition) =
                    (job.subscriber.clone(), job.items.clone(), job.message_id.clone(), job.edition);
                // A task of its own, so that rendering goes on while the send loop waits.
                let render = tokio::spawn(async move {
                    let _core = cores.acquire_owned().await;
                    tokio::task::spawn_blocking(move || {
                        compose(
                            &mail,
                            &renderer,
                            links.as_deref(),
                            &sub,
                            edition,
                            &message_id,
                            &items,
                            &papers,
                            now,
                        )
                    })
                    .await
                });
                async move {
                    let message = match render.await {
                        Ok(Ok(Ok(message))) => Ok(message),
                        Ok(Ok(Err(e @ Error::Config { .. }))) => Err(Sent::BadTemplate(e)),
                        Ok(Ok(Err(e))) => Err(Sent::Failed(format!("rendering failed: {e}"))),
                        Ok(Err(e)) | Err(e) => Err(Sent::Failed(format!("rendering failed: {e}"))),
                    };
                    (job, message)
                }
            })
            .buffered(render_ahead);
        let results = composed
            // What is rendered by now is marked in one transaction and then handed out.
            .ready_chunks(MARK_GROUP)
            .then(|group| hand_out(store, group, stopped(), now))
            .flat_map(futures_util::stream::iter)
            .map(|(job, ready)| {
                let (down, committer, broken) = (&down, &committer, &broken);
                async move {
                    let place = match &ready {
                        Ok(_) => Some(committer.place().await),
                        Err(_) => None,
                    };
                    let result = match ready {
                        // Its outcome could not be recorded: the row stays marked, for the
                        // next run to send.
                        Ok(_) if committer.failed() => Sent::NotAttempted,
                        // Marked, but the server went away meanwhile: trying would only
                        // repeat the failure (with backoff); the next run sends it.
                        Ok(_) if down.load(Ordering::Relaxed) => {
                            Sent::Unsent("not offered: the mail session failed during this run".into())
                        }
                        Ok(message) => attempt(mailer, &job, &message).await,
                        Err(not_sent) => not_sent,
                    };
                    if matches!(result, Sent::SessionFailed { .. }) {
                        down.store(true, Ordering::Relaxed);
                    }
                    if matches!(result, Sent::BadTemplate(_)) {
                        broken.store(true, Ordering::Relaxed);
                    }
                    (job, result, place)
                }
            })
            .buffer_unordered(concurrency);
        let mut results = std::pin::pin!(results);
        while let Some((job, result, place)) = results.next().await {
            progress.inc(1);
            let result = match result {
                Sent::BadTemplate(e) => {
                    bad_template.get_or_insert(e);
                    Sent::NotAttempted
                }
                other => other,
            };
            if let Some(outcome) = outcome(&job, result, summary)
                && !committer.queue(outcome, place).await
            {
                // The committer stopped on an error, which `finish` returns; what is in
                // flight could not be recorded either.
                break;
            }
        }
    }
    committer.finish().await?;
    bad_template.map_or(Ok(()), Err)
}

/// Marks a group of rendered jobs 'sending' (one transaction) and hands them out: each
/// comes back with its message to send, or with what became of it instead. A row is marked
/// only when its message is to go to the transport: when the run is `stopping` nothing is
/// marked and every row stays as it was, and a marked group is sent even if a shutdown
/// arrives before its last message leaves. (If the server goes away meanwhile, the rest
/// of the group is recorded deferred without a try; if the database fails, the run fails.)
async fn hand_out<'c>(
    store: &Arc<Store>,
    group: Vec<(Job<'c>, std::result::Result<lettre::Message, Sent>)>,
    stopping: bool,
    now: DateTime<Utc>,
) -> Vec<(Job<'c>, std::result::Result<lettre::Message, Sent>)> {
    let ids: Vec<i64> = if stopping {
        Vec::new()
    } else {
        group.iter().filter(|(_, m)| m.is_ok()).map(|(j, _)| j.delivery_id).collect()
    };
    let marked = if ids.is_empty() {
        Ok(())
    } else {
        // Off the runtime's threads: the committer may hold the database for an fsync.
        let store = Arc::clone(store);
        joined(tokio::task::spawn_blocking(move || store.mark_sending(&ids, now)).await)
            .map_err(|e| e.to_string())
    };
    group
        .into_iter()
        .map(|(job, message)| {
            let ready = match message {
                Err(not_sent) => Err(not_sent),
                // Rendered ahead but not handed over: left as it was for the next run.
                Ok(_) if stopping => Err(Sent::NotAttempted),
                Ok(message) => match &marked {
                    Ok(()) => Ok(message),
                    Err(e) => Err(Sent::Deferred(e.clone())),
                },
            };
            (job, ready)
        })
        .collect()
}

/// Records send outcomes on a thread of its own, in order. Each commit takes everything
/// queued by the time the previous one finished, without waiting for more: one outcome
/// per commit when the server is slow, larger groups by themselves when it is fast.
/// Commits are durable ([`Store::record_outcomes`]).
///
/// A message is handed to the transport only with a place in the committer's window, which
/// it keeps until its outcome is committed: the window's size bounds how many messages a
/// crash can leave sent but unrecorded.
struct Committer {
    queue: tokio::sync::mpsc::Sender<(Outcome, Option<OwnedSemaphorePermit>)>,
    window: Arc<Semaphore>,
    thread: tokio::task::JoinHandle<Result<()>>,
}

impl Committer {
    fn start(store: Arc<Store>, now: DateTime<Utc>, window: usize) -> Committer {
        // The outcomes of sent messages hold places, so the queue seldom fills; when it
        // does the send loop waits for this thread, which never waits for the loop.
        let (queue, mut queued) = tokio::sync::mpsc::channel(window.max(1));
        let thread = tokio::task::spawn_blocking(move || {
            let mut group = Vec::with_capacity(window);
            let mut places = Vec::with_capacity(window);
            while let Some(first) = queued.blocking_recv() {
                for (outcome, place) in
                    std::iter::once(first).chain(std::iter::from_fn(|| queued.try_recv().ok()))
                {
                    group.push(outcome);
                    places.push(place);
                }
                // On an error the receiver is dropped with the rest, which the send loop sees.
                store.record_outcomes(&group, now)?;
                group.clear();
                // Committed: their places are free for the next messages.
                places.clear();
            }
            Ok(())
        });
        Committer { queue, window: Arc::new(Semaphore::new(window.max(1))), thread }
    }

    /// A place in the window, waited for while every place is taken.
    async fn place(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.window).acquire_owned().await.expect("the window is never closed")
    }

    /// Queues an outcome with the place its message held; false once the committer has
    /// stopped on an error.
    async fn queue(&self, outcome: Outcome, place: Option<OwnedSemaphorePermit>) -> bool {
        self.queue.send((outcome, place)).await.is_ok()
    }

    /// Whether the committer stopped on an error.
    fn failed(&self) -> bool {
        self.queue.is_closed()
    }

    /// Waits until every queued outcome is committed; the commit's error, if one failed.
    async fn finish(self) -> Result<()> {
        drop(self.queue);
        joined(self.thread.await)
    }
}

/// What a blocking task returned. Its panic, a bug, goes on here; it cannot have been
/// cancelled, as that happens only when the runtime shuts down, and this runs on it.
fn joined<T>(result: std::result::Result<T, tokio::task::JoinError>) -> T {
    result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

fn outcome(job: &Job<'_>, result: Sent, summary: &mut RunSummary) -> Option<Outcome> {
    let to = &job.subscriber.key;
    let id = job.delivery_id;
    match result {
        Sent::Ok => {
            summary.sent += 1;
            tracing::info!(to = %mask_email(to), edition = %job.edition, papers = job.items.len(), "digest sent");
            Some(Outcome::Sent { id })
        }
        Sent::Failed(error) => {
            summary.failed += 1;
            summary.errors.push(format!("{to}: failed permanently: {error}"));
            Some(Outcome::Failed { id, error })
        }
        Sent::Deferred(error) => {
            summary.deferred += 1;
            summary.errors.push(format!("{to}: deferred to the next run: {error}"));
            Some(Outcome::Deferred { id, error })
        }
        Sent::NotAttempted | Sent::BadTemplate(_) => {
            // Stopped before its turn (a signal, a failed session): as it was, pending.
            summary.pending += 1;
            None
        }
        Sent::SessionFailed { config, error } => {
            summary.pending += 1;
            summary.session_error.get_or_insert_with(|| error.clone());
            summary.transport_down = true;
            summary.config_fault |= config;
            Some(Outcome::Unsent { id, error })
        }
        Sent::Unsent(error) => {
            summary.pending += 1;
            Some(Outcome::Unsent { id, error })
        }
    }
}

/// Papers by id, each shared between the jobs that render it.
type Papers = HashMap<PaperId, Arc<Paper>>;

/// The run's candidates by id, made once and shared by every chunk.
fn shelf(candidates: &Candidates) -> Papers {
    let mut papers = Papers::with_capacity(candidates.daily.len().max(candidates.weekly.len()));
    for p in candidates.daily.iter().chain(&candidates.weekly) {
        papers.entry(p.id.clone()).or_insert_with(|| Arc::new(p.clone()));
    }
    papers
}

/// The papers the items name, for one chunk: the whole shelf when it holds them all (the
/// usual case, no copy), else the shelf plus those loaded from the store (retried rows
/// whose papers left the window).
fn papers_on_shelf<'i>(
    store: &Store,
    shelf: &Arc<Papers>,
    items: impl Iterator<Item = &'i Item>,
) -> Result<Arc<Papers>> {
    let missing: Vec<PaperId> = items
        .map(|i| &i.id)
        .filter(|id| !shelf.contains_key(*id))
        .collect::<HashSet<_>>()
        .into_iter()
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(Arc::clone(shelf));
    }
    let mut papers = Papers::clone(shelf);
    for p in store.papers(&missing)? {
        papers.insert(p.id.clone(), Arc::new(p));
    }
    Ok(Arc::new(papers))
}

/// The papers the items name: from the candidates, else (for retried rows whose papers
/// left the window) from the store.
fn papers_for<'i>(
    store: &Store,
    candidates: &Candidates,
    items: impl Iterator<Item = &'i Item>,
) -> Result<Papers> {
    let wanted: HashSet<&PaperId> = items.map(|i| &i.id).collect();
    let mut papers: Papers = candidates
        .daily
        .iter()
        .chain(&candidates.weekly)
        .filter(|p| wanted.contains(&p.id))
        .map(|p| (p.id.clone(), Arc::new(p.clone())))
        .collect();
    let missing: Vec<PaperId> = wanted.into_iter().filter(|id| !papers.contains_key(*id)).cloned().collect();
    for p in store.papers(&missing)? {
        papers.insert(p.id.clone(), Arc::new(p));
    }
    Ok(papers)
}

/// Renders and builds a job's message: the CPU-bound part of a send, run on the blocking
/// pool so that rendering uses every core while the sends wait on the network.
#[allow(clippy::too_many_arguments)]
fn compose(
    mail: &MailSettings,
    renderer: &Renderer,
    links: Option<&crate::web::Links>,
    subscriber: &Subscriber,
    edition: NaiveDate,
    message_id: &str,
    items: &[Item],
    papers: &Papers,
    now: DateTime<Utc>,
) -> Result<lettre::Message> {
    let ranked = ranked_from_items(items, papers);
    let ctx = DigestContext {
        subscriber,
        edition,
        papers: &ranked,
        unsubscribe_url: mail.unsubscribe_url.as_deref(),
        unsubscribe_mailto: mail.unsubscribe_mailto.as_deref(),
    };
    let envelope = Envelope { to: &subscriber.email, message_id, date: now };
    match links {
        // With [web], every reader gets their own signed links and List-Unsubscribe URL.
        Some(links) => {
            let reader = links.for_digest(&subscriber.key, edition, items.iter().map(|i| &i.id));
            let encoded = renderer.render_encoded(&ctx, Some(&reader))?;
            mail::build_encoded(mail, &envelope, encoded, Some(&reader.unsubscribe))
        }
        None => {
            let encoded = renderer.render_encoded(&ctx, None)?;
            mail::build_encoded(mail, &envelope, encoded, mail.unsubscribe_url.as_deref())
        }
    }
}

/// Hands a built message to the transport. Its row is already marked 'sending'.
async fn attempt(mailer: &Mailer, job: &Job<'_>, message: &lettre::Message) -> Sent {
    match mailer.send(message, &job.subscriber.key).await {
        Ok(()) => Sent::Ok,
        Err(e @ Error::Transport { .. }) => {
            Sent::SessionFailed { config: !e.is_transient(), error: e.to_string() }
        }
        Err(e) if e.is_transient() => Sent::Deferred(e.to_string()),
        Err(e) => Sent::Failed(e.to_string()),
    }
}

/// Composes and delivers one job, recording the attempt first, for the one-off sends
/// (`resend`).
async fn send_one(
    cfg: &Config,
    store: &Store,
    renderer: &Renderer,
    mailer: &Mailer,
    job: &Job<'_>,
    papers: &Papers,
    now: DateTime<Utc>,
) -> Sent {
    let links = cfg.web.as_ref().map(crate::web::Links::new);
    let composed = compose(
        &cfg.mail,
        renderer,
        links.as_ref(),
        job.subscriber,
        job.edition,
        &job.message_id,
        &job.items,
        papers,
        now,
    );
    match composed {
        Ok(message) => match store.mark_sending(&[job.delivery_id], now) {
            Ok(()) => attempt(mailer, job, &message).await,
            Err(e) => Sent::Deferred(e.to_string()),
        },
        Err(e @ Error::Config { .. }) => Sent::BadTemplate(e),
        Err(e) => Sent::Failed(e.to_string()),
    }
}

/// After `after_failures` failing runs in a row, one alert mail, not one per failure.
async fn alert_if_due(cfg: &Config, store: &Store, now: DateTime<Utc>, error: &str) {
    let Some(alerts) = &cfg.alerts else { return };
    let Ok(failures) = store.consecutive_failures() else { return };
    if failures != alerts.after_failures {
        return;
    }
    let rendered = crate::render::Rendered {
        subject: format!("paper-digest: {failures} failing runs in a row"),
        text: format!(
            "paper-digest has failed {failures} runs in a row (config {}).\n\nLast error:\n{error}\n\nRun `paper-digest status` and `paper-digest check --connect` on the host.\n",
            cfg.path.display()
        ),
        html: format!(
            "<p>paper-digest has failed {failures} runs in a row.</p><p>Last error:</p><pre>{}</pre>",
            minijinja::HtmlEscape(error)
        ),
    };
    let to = alerts.email.email.to_string();
    // The alert goes through the ledger too, so `status` and the database show it was sent.
    let row = NewDelivery {
        subscriber: to.to_lowercase(),
        edition: cadence::edition_date(now, cfg.digest.timezone),
        kind: Kind::Alert,
        message_id: mail::new_message_id(&cfg.mail),
        items: Vec::new(),
    };
    let id = match store.insert_deliveries(std::slice::from_ref(&row), now) {
        Ok(ids) => ids.first().copied().flatten(),
        Err(e) => {
            tracing::error!("could not record the alert: {e}");
            None
        }
    };
    let envelope = Envelope { to: &alerts.email, message_id: &row.message_id, date: now };
    let sent = match (mail::build(&cfg.mail, &envelope, &rendered), Mailer::new(&cfg.mail)) {
        (Ok(msg), Ok(mailer)) => mailer.send(&msg, &to).await,
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let outcome = match &sent {
        Ok(()) => {
            tracing::warn!(to = %mask_email(&to), "alert sent after {failures} failing runs");
            id.map(|id| Outcome::Sent { id })
        }
        Err(e) => {
            tracing::error!("could not send the alert: {e}");
            id.map(|id| Outcome::Failed { id, error: e.to_string() })
        }
    };
    if let Some(outcome) = outcome
        && let Err(e) = store.record_outcomes(&[outcome], now)
    {
        tracing::error!("could not record the alert: {e}");
    }
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

    fn planned(store: &Store, n: usize, now: DateTime<Utc>) -> Vec<i64> {
        let rows: Vec<NewDelivery> = (0..n)
            .map(|i| NewDelivery {
                subscriber: format!("reader{i}@example.org"),
                edition: now.date_naive(),
                kind: Kind::Digest,
                message_id: format!("<{i}@example.org>"),
                items: vec![Item {
                    id: PaperId(format!("2411.{i}")),
                    score: 1.0,
                    topic: None,
                    matched: vec![],
                }],
            })
            .collect();
        store.insert_deliveries(&rows, now).unwrap().into_iter().map(Option::unwrap).collect()
    }

    fn now() -> DateTime<Utc> {
        "2024-11-27T07:00:00Z".parse().unwrap()
    }

    #[tokio::test]
    async fn everything_queued_is_committed_by_the_time_the_committer_finishes() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let ids = planned(&store, 200, now());
        store.mark_sending(&ids, now()).unwrap();
        let committer = Committer::start(Arc::clone(&store), now(), 8);
        for (n, id) in ids.iter().enumerate() {
            let outcome = if n % 10 == 0 {
                Outcome::Deferred { id: *id, error: "451".into() }
            } else {
                Outcome::Sent { id: *id }
            };
            // Eight places: the ninth message waits until the first are committed.
            let place = committer.place().await;
            assert!(committer.queue(outcome, Some(place)).await);
        }
        committer.finish().await.unwrap();
        let count = |sql: &str| store.conn().query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
        assert_eq!(count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'"), 180);
        assert_eq!(count("SELECT COUNT(*) FROM deliveries WHERE status = 'deferred'"), 20);
        assert_eq!(count("SELECT COUNT(*) FROM seen"), 180);
    }

    #[tokio::test]
    async fn a_failed_commit_closes_the_queue_and_finish_returns_the_error() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let ids = planned(&store, 2, now());
        store
            .conn()
            .execute_batch(
                "CREATE TRIGGER no_sent BEFORE UPDATE OF status ON deliveries WHEN NEW.status = 'sent'
                 BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
            )
            .unwrap();
        let committer = Committer::start(Arc::clone(&store), now(), 4);
        assert!(committer.queue(Outcome::Sent { id: ids[0] }, None).await);
        let waited = Instant::now();
        while !committer.failed() {
            assert!(waited.elapsed() < Duration::from_secs(10), "the committer did not stop");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(
            !committer.queue(Outcome::Sent { id: ids[1] }, None).await,
            "nothing is queued after a failure"
        );
        let err = committer.finish().await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }

    #[test]
    fn chunks_share_the_runs_papers_and_load_only_those_that_left_the_window() {
        let store = Store::open_in_memory().unwrap();
        let paper = |id: &str| Paper { id: PaperId(id.into()), title: id.into(), ..Paper::default() };
        store.record_fetch(&[paper("2411.3")], &HashMap::new(), now()).unwrap();
        let candidates = Candidates {
            daily: vec![paper("2411.1"), paper("2411.2")],
            weekly: vec![paper("2411.1")],
            daily_since: now(),
            weekly_since: now(),
        };
        let shelf = Arc::new(shelf(&candidates));
        assert_eq!(shelf.len(), 2);
        let item = |id: &str| Item { id: PaperId(id.into()), score: 1.0, topic: None, matched: vec![] };

        let usual = papers_on_shelf(&store, &shelf, [item("2411.2"), item("2411.1")].iter()).unwrap();
        assert!(Arc::ptr_eq(&usual, &shelf), "no copy when the shelf has them all");

        let retried = papers_on_shelf(&store, &shelf, [item("2411.1"), item("2411.3")].iter()).unwrap();
        assert_eq!(retried.len(), 3);
        assert!(Arc::ptr_eq(&retried[&PaperId("2411.1".into())], &shelf[&PaperId("2411.1".into())]));
        assert_eq!(retried[&PaperId("2411.3".into())].title, "2411.3");
    }

    #[test]
    fn the_window_ends_today_and_spans_the_lookback() {
        let w = window("2024-11-27T07:00:00Z".parse().unwrap(), 3);
        let days: Vec<String> = w.days.iter().map(ToString::to_string).collect();
        assert_eq!(days, ["2024-11-25", "2024-11-26", "2024-11-27"]);
    }
}
