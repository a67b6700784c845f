//! The operator commands around the daily run: preview, resend, explain, status, check
//! and init. They reuse the run's parts (fetch, candidates, ranking, rendering, sending).

use super::deliver::{Sent, outcome, send_one};
use super::fetch::{fetch as fetch_all, fetch_days, liked_papers, window};
use super::plan::{Candidates, Choice, Job, Papers, Planner, papers_for, ranked_from_items};
use super::{Run, RunSummary, Shutdown};
use crate::cadence;
use crate::cli::{PreviewArgs, PreviewFormat};
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::mail::{self, Envelope, Mailer};
use crate::model::Subscriber;
use crate::model::{Paper, PaperId};
use crate::render::{DigestContext, Renderer};
use crate::source::{self, http::HttpClient};
use crate::store::{Delivery, Kind, NewDelivery, Outcome, Store};
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Writes a command's output to standard output: one lock, one buffer, one flush. A reader
/// that has gone away (`paper-digest status | head -1`) is not the command's failure: the
/// rest of the output is dropped, quietly, and the command's own outcome stands.
pub(crate) fn print(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(|source| Error::Output { what: "standard output", source }),
    }
}

/// `paper-digest fetch`: every source, stored, without ranking or sending.
pub(crate) async fn fetch(cfg: &Config, now: DateTime<Utc>) -> Result<u8> {
    let store = Store::open(&cfg.digest.database)?;
    let fetched = fetch_all(cfg, &store, now, fetch_days(cfg)).await?;
    let stored = store.paper_count()?;
    print(|out| {
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

pub(crate) fn init(path: &Path, force: bool) -> Result<u8> {
    if path.exists() && !force {
        return Err(Error::Config {
            path: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: "already exists; pass --force to overwrite it".into(),
        });
    }
    let starter = starter_config(path);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        return Err(Error::Config {
            path: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: format!(
                "the folder {} does not exist; create it first (e.g. `install -d {}`)",
                dir.display(),
                dir.display()
            ),
        });
    }
    std::fs::write(path, starter).map_err(|e| Error::io(path, e))?;
    let next = if path == Path::new(crate::config::DEFAULT_PATH) {
        "paper-digest check".to_string()
    } else {
        format!("paper-digest check --config {}", shell_word(&path.display().to_string()))
    };
    print(|out| {
        writeln!(out, "wrote {}; edit the subscribers, topics and [mail], then run:", path.display())?;
        writeln!(out, "  {next}")
    })?;
    Ok(exit::OK)
}

/// Where a starter config keeps its state: beside itself, except under /etc, where the
/// systemd unit (`ProtectSystem=strict`, `StateDirectory=paper-digest`) lets a run write
/// only to /var/lib/paper-digest, and under /config, the container's config folder
/// (mounted read-only, with the state volume at /var/lib/paper-digest).
fn starter_config(path: &Path) -> String {
    let starter = include_str!("../../config/starter.toml");
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    if absolute.starts_with("/etc") || absolute.starts_with("/config") {
        starter
            .replace(
                "database = \"paper-digest.sqlite3\"",
                "database = \"/var/lib/paper-digest/paper-digest.sqlite3\"",
            )
            .replace("dir = \"outbox\"", "dir = \"/var/lib/paper-digest/outbox\"")
            .replace(
                "# password_credential = \"smtp-password\"",
                "# password_credential = \"smtp-password\"  (the unit's LoadCredential=)",
            )
    } else {
        starter.to_string()
    }
}

/// A path as one shell word, quoted only when it needs to be.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

pub(crate) fn completions(shell: clap_complete::Shell) -> Result<u8> {
    let mut cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    // Into memory first: clap_complete panics on a failed write, and a reader that hangs
    // up (`| head`) is no failure of ours.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "paper-digest", &mut script);
    print(|out| out.write_all(&script))?;
    Ok(exit::OK)
}

pub(crate) fn man() -> Result<u8> {
    let cmd = <crate::cli::Cli as clap::CommandFactory>::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut page)
        .map_err(|source| Error::Output { what: "the man page", source })?;
    print(|out| out.write_all(&page))?;
    Ok(exit::OK)
}

/// At most this many names in a message listing what exists ("not a subscriber").
const LISTED: usize = 5;

/// `a, b, c and 99,997 more`: a list that stays one readable line at any length.
fn capped_list<'a>(items: impl ExactSizeIterator<Item = &'a str>) -> String {
    let total = items.len();
    if total == 0 {
        return "none".into();
    }
    let shown: Vec<&str> = items.take(LISTED).collect();
    if total > LISTED {
        format!("{} and {} more", shown.join(", "), total - LISTED)
    } else {
        shown.join(", ")
    }
}

fn subscriber<'c>(cfg: &'c Config, email: &str) -> Result<&'c Subscriber> {
    cfg.subscriber(email).ok_or_else(|| {
        Error::NotFound(format!(
            "{email} is not a subscriber in {} ({} subscribers: {})",
            cfg.path.display(),
            cfg.subscribers.len(),
            capped_list(cfg.subscribers.iter().map(|s| s.key.as_str()))
        ))
    })
}

pub(crate) async fn preview(cfg: &Config, args: &PreviewArgs, now: DateTime<Utc>) -> Result<u8> {
    let sub = subscriber(cfg, &args.to)?;
    let store = Store::open(&cfg.digest.database)?;
    if !args.offline
        && !cfg.sources.is_empty()
        && let Err(e) = fetch_all(cfg, &store, now, fetch_days(cfg)).await
    {
        tracing::warn!("fetch failed, previewing what the database holds: {e}");
    }
    let candidates = Candidates::load(cfg, &store, now)?;
    let liked = liked_papers(cfg, &store).await;
    let planner = Planner::new(cfg, &store, &candidates, &liked, now)?;
    let edition = cadence::edition_key(sub, now);
    // An unfinished ledger row is what the next run will send, so that is the preview.
    let items = match planner.choose(sub, edition)? {
        Choice::Retry(row) => row.items,
        Choice::Fresh(items) => items,
        Choice::Handled(_) => planner.rank(sub)?,
    };
    let papers = papers_for(&store, &candidates.shelf(), items.iter())?;
    let ranked = ranked_from_items(&items, &papers);
    let out = match args.format {
        PreviewFormat::Json => {
            let list: Vec<serde_json::Value> = ranked
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "id": r.paper.id,
                        "title": r.paper.title,
                        "score": r.score,
                        "topic": r.topic,
                        "matched": r.matched.iter().map(|m| serde_json::json!({"term": m.term, "field": m.field})).collect::<Vec<_>>(),
                        "url": r.paper.link(),
                        "upvotes": r.paper.upvotes,
                    })
                })
                .collect();
            let doc = serde_json::json!({ "to": sub.key, "edition": edition, "papers": list });
            serde_json::to_vec_pretty(&doc).map_err(|e| Error::internal("writing the preview as JSON", e))?
        }
        format => {
            let ctx = DigestContext {
                subscriber: sub,
                edition,
                papers: &ranked,
                unsubscribe_url: cfg.mail.unsubscribe_url.as_deref(),
                unsubscribe_mailto: cfg.mail.unsubscribe_mailto.as_deref(),
            };
            // With [web], the preview shows this reader's own signed links, as sent.
            let links = cfg.web.as_ref().map(|w| {
                crate::web::Links::new(w).for_digest(&sub.key, edition, items.iter().map(|i| &i.id))
            });
            let rendered = renderer_for(cfg)?.render_with_links(&ctx, links.as_ref())?;
            match format {
                PreviewFormat::Html => rendered.html.into_bytes(),
                PreviewFormat::Text => {
                    format!("Subject: {}\n\n{}", rendered.subject, rendered.text).into_bytes()
                }
                _ => {
                    let id = mail::new_message_id(&cfg.mail);
                    let envelope = Envelope { to: &sub.email, message_id: &id, date: now };
                    match &links {
                        Some(l) => mail::build_for(&cfg.mail, &envelope, &rendered, Some(&l.unsubscribe))?,
                        None => mail::build(&cfg.mail, &envelope, &rendered)?,
                    }
                    .formatted()
                }
            }
        }
    };
    write_output(args.output.as_deref(), &out)?;
    Ok(exit::OK)
}

fn renderer_for(cfg: &Config) -> Result<Renderer> {
    Renderer::new(cfg.digest.templates.as_deref())
}

fn write_output(path: Option<&Path>, bytes: &[u8]) -> Result<()> {
    match path {
        Some(p) => std::fs::write(p, bytes).map_err(|e| Error::io(p, e)),
        None => print(|out| out.write_all(bytes)),
    }
}

pub(crate) async fn resend(
    cfg: &Config,
    to: &str,
    edition: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<u8> {
    let sub = subscriber(cfg, to)?;
    let store = Store::open(&cfg.digest.database)?;
    let Some(original) = store.latest_delivery(&sub.key, edition)? else {
        return Err(Error::NotFound(format!(
            "no digest for {}{} in {}",
            sub.key,
            edition.map(|d| format!(" on {d}")).unwrap_or_default(),
            cfg.digest.database.display()
        )));
    };
    let row = NewDelivery {
        subscriber: sub.key.clone(),
        edition: original.edition,
        kind: Kind::Resend,
        message_id: mail::new_message_id(&cfg.mail),
        items: original.items.clone(),
    };
    let Some(Some(id)) = store.insert_deliveries(std::slice::from_ref(&row), now)?.first().copied() else {
        return Err(Error::internal("recording the resend", "the ledger refused a new row"));
    };
    let job = Job {
        delivery_id: id,
        subscriber: sub.clone(),
        edition: row.edition,
        message_id: row.message_id,
        items: row.items,
    };
    let store = Arc::new(store);
    let papers = papers_for(&store, &Arc::new(Papers::new()), job.items.iter())?;
    let shutdown = Shutdown::new();
    let run = Run::new(cfg, Arc::clone(&store), now, &shutdown)?;
    let result = send_one(&run, &job, &papers).await;
    let (outcome, code) = match result {
        Sent::Ok => (Outcome::Sent { id }, exit::OK),
        Sent::Failed(e) => (Outcome::Failed { id, error: e }, exit::PARTIAL),
        Sent::Deferred(e) => (Outcome::Deferred { id, error: e }, exit::PARTIAL),
        Sent::SessionFailed { config, error } => {
            (Outcome::Failed { id, error }, if config { exit::CONFIG } else { exit::TEMPFAIL })
        }
        Sent::Unsent(_) | Sent::NotAttempted => return Ok(exit::TEMPFAIL),
        Sent::BadTemplate(e) => return Err(e),
    };
    store.record_outcomes(std::slice::from_ref(&outcome), now)?;
    match &outcome {
        Outcome::Sent { .. } => {
            print(|out| {
                writeln!(out, "resent the {} edition to {} as {}", job.edition, sub.key, job.message_id)
            })?;
        }
        Outcome::Failed { error, .. } | Outcome::Deferred { error, .. } | Outcome::Unsent { error, .. } => {
            eprintln!("paper-digest: resend to {} failed: {error}", sub.key);
        }
    }
    Ok(code)
}

/// `retry --failed`: puts an edition's failed digests back to pending and sends them
/// now, one at a time, each with its original Message-ID and papers. One not accepted
/// (again refused, deferred, or not offered because the session failed: exit 75, or 78
/// when the configuration must change) is left `failed` with the new reason, so that the
/// next `retry --failed` finds it: `run` only plans the current edition.
pub(crate) async fn retry_failed(cfg: &Config, edition: Option<NaiveDate>, now: DateTime<Utc>) -> Result<u8> {
    let store = Store::open(&cfg.digest.database)?;
    let failed = store.failed_digests(edition)?;
    if failed.is_empty() {
        print(|out| {
            writeln!(
                out,
                "no failed digests{} in {}",
                edition.map(|d| format!(" of {d}")).unwrap_or_default(),
                cfg.digest.database.display()
            )
        })?;
        return Ok(exit::OK);
    }
    let store = Arc::new(store);
    let shutdown = Shutdown::new();
    let run = Run::new(cfg, Arc::clone(&store), now, &shutdown)?;
    let none = Arc::new(Papers::new());
    let mut summary = RunSummary::default();
    for row in failed {
        // A subscriber removed from the config since keeps the row failed; it is named.
        let Some(sub) = cfg.subscriber(&row.subscriber) else {
            store.record_outcomes(
                &[Outcome::Failed { id: row.id, error: "no longer a subscriber in the config".into() }],
                now,
            )?;
            summary.failed += 1;
            summary.errors.push(format!(
                "{}: no longer a subscriber in {}",
                row.subscriber,
                cfg.path.display()
            ));
            continue;
        };
        let (id, last_error) = (row.id, row.last_error.clone());
        let job = Job::of(row, sub.clone());
        let papers = papers_for(&store, &none, job.items.iter())?;
        let result = if summary.transport_down {
            Sent::Unsent("not offered: the mail session failed".into())
        } else {
            store.requeue(&[id], now)?;
            send_one(&run, &job, &papers).await
        };
        let outcome = match outcome(&job, result, &mut summary) {
            Some(sent @ Outcome::Sent { .. }) => sent,
            Some(
                Outcome::Failed { error, .. }
                | Outcome::Deferred { error, .. }
                | Outcome::Unsent { error, .. },
            ) => Outcome::Failed { id, error },
            None => Outcome::Failed { id, error: last_error.unwrap_or_default() },
        };
        store.record_outcomes(&[outcome], now)?;
    }
    run.mailer.close().await;
    if let Some(e) = &summary.session_error {
        eprintln!(
            "paper-digest: mail session failed: {e}; the digests not sent stay failed for the next `retry --failed`"
        );
    }
    for e in &summary.errors {
        eprintln!("paper-digest: {e}");
    }
    print(|out| {
        writeln!(
            out,
            "retried the failed digests: {} sent, {} failed, {} deferred, {} pending",
            summary.sent, summary.failed, summary.deferred, summary.pending
        )
    })?;
    Ok(summary.exit_code())
}

pub(crate) async fn explain(
    cfg: &Config,
    to: &str,
    paper: &str,
    json: bool,
    now: DateTime<Utc>,
) -> Result<u8> {
    let sub = subscriber(cfg, to)?;
    let store = Store::open(&cfg.digest.database)?;
    let id = PaperId::parse(paper);
    let candidates = Candidates::load(cfg, &store, now)?;
    let liked = liked_papers(cfg, &store).await;
    let planner = Planner::new(cfg, &store, &candidates, &liked, now)?;
    let explanation = planner.indexes.explain(sub, &id, &candidates.seen(&store, sub)?);
    // The reader's "More like this" / "Fewer like this" votes (from `serve`).
    let (liked, disliked) = store.feedback(&sub.key)?;
    let ids = |v: &[PaperId]| v.iter().map(PaperId::as_str).collect::<Vec<_>>().join(", ");
    print(|out| {
        if json {
            serde_json::to_writer_pretty(&mut *out, &explanation)?;
            writeln!(out)
        } else {
            write!(out, "{explanation}")?;
            if liked.is_empty() && disliked.is_empty() {
                return Ok(());
            }
            writeln!(out, "votes: more like this: {}; fewer like this: {}", ids(&liked), ids(&disliked))
        }
    })?;
    Ok(exit::OK)
}

/// A stored timestamp (RFC 3339, any precision) in the one format `status` prints: RFC 3339
/// to the second, in `tz` with its offset (`Z` for UTC). Unreadable text is shown as is.
fn when(stored: &str, tz: chrono_tz::Tz) -> String {
    DateTime::parse_from_rfc3339(stored).map_or_else(
        |_| stored.to_string(),
        |t| t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true),
    )
}

/// Where the next run comes from: a systemd timer when its unit is installed (the
/// daemon's schedule means nothing then), else `[digest] schedule` for `paper-digest daemon`.
fn systemd_timer() -> Option<PathBuf> {
    ["/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"]
        .iter()
        .map(|d| Path::new(d).join("paper-digest.timer"))
        .find(|p| p.exists())
}

/// The timer's next elapse as systemd reports it, when `systemctl` can say (systemd 251
/// and later print it as `@<unix seconds>` with `--timestamp=unix`).
fn timer_next_elapse() -> Option<DateTime<Utc>> {
    let out = std::process::Command::new("systemctl")
        .args([
            "show",
            "--property=NextElapseUSecRealtime",
            "--value",
            "--timestamp=unix",
            "paper-digest.timer",
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let secs: i64 = text.trim().strip_prefix('@')?.parse().ok()?;
    DateTime::from_timestamp(secs, 0)
}

#[allow(clippy::too_many_lines)] // one report, read top to bottom
pub(crate) fn status(cfg: &Config, json: bool, now: DateTime<Utc>) -> Result<u8> {
    let tz = if json { chrono_tz::UTC } else { cfg.digest.timezone };
    let at = |t: &str| when(t, tz);
    // Read only: a status check never creates or migrates the database.
    let store =
        if cfg.digest.database.exists() { Some(Store::open_read_only(&cfg.digest.database)?) } else { None };
    let last_run = store.as_ref().map(Store::last_run).transpose()?.flatten();
    let last_success = store.as_ref().map(Store::last_success_run).transpose()?.flatten();
    let timer = systemd_timer();
    let next_run = if timer.is_some() {
        timer_next_elapse()
    } else {
        cadence::next_run(&cfg.digest.schedule, cfg.digest.timezone, now)
    };
    let next_source = match &timer {
        Some(unit) => {
            format!("systemd timer {} (see `systemctl list-timers paper-digest.timer`)", unit.display())
        }
        None => format!(
            "[digest] schedule `{}` in {}, when `paper-digest daemon` runs",
            cfg.digest.schedule, cfg.digest.timezone
        ),
    };
    let sources = store.as_ref().map(Store::source_statuses).transpose()?.unwrap_or_default();
    let deliveries: HashMap<String, Delivery> = store
        .as_ref()
        .map(Store::last_deliveries)
        .transpose()?
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.subscriber.clone(), d))
        .collect();
    let subscribers: Vec<serde_json::Value> = cfg
        .subscribers
        .iter()
        .map(|s| {
            let d = deliveries.get(&s.key);
            serde_json::json!({
                "email": s.key,
                "frequency": s.frequency,
                "last_edition": d.map(|d| d.edition),
                "status": d.map(|d| d.status),
                "papers": d.map(|d| d.items.len()),
                "runs_attempted": d.map(|d| d.attempts),
                "sent_at": d.and_then(|d| d.sent_at.as_deref().map(at)),
                "error": d.and_then(|d| d.last_error.clone()),
            })
        })
        .collect();
    let run_json = last_run.as_ref().map(|r| {
        serde_json::json!({
            "status": r.status,
            "started_at": at(&r.started_at),
            "finished_at": r.finished_at.as_deref().map(at),
            "error": r.error,
            "summary": r.summary,
        })
    });
    let doc = serde_json::json!({
        "config": cfg.path,
        "database": cfg.digest.database,
        "database_exists": store.is_some(),
        "suppressed": store.as_ref().map(Store::suppressed_count).transpose()?.unwrap_or(0),
        "papers": store.as_ref().map(Store::paper_count).transpose()?.unwrap_or(0),
        "last_run": run_json,
        "last_success": last_success.as_ref().map(|r| at(&r.started_at)),
        "consecutive_failures": store.as_ref().map(Store::consecutive_failures).transpose()?.unwrap_or(0),
        "next_run": next_run.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
        "next_run_from": if timer.is_some() { "systemd_timer" } else { "daemon_schedule" },
        "sources": sources.iter().map(|s| serde_json::json!({
            "source": s.source,
            "last_attempt": at(&s.last_attempt),
            "last_success": s.last_success.as_deref().map(at),
            "last_error": s.last_error,
            "last_count": s.last_count,
        })).collect::<Vec<_>>(),
        "subscribers": subscribers,
    });
    print(|out| {
        if json {
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            return writeln!(out);
        }
        if store.is_none() {
            writeln!(
                out,
                "no database at {} yet (digest.database): nothing has run with this config",
                cfg.digest.database.display()
            )?;
        }
        match &last_run {
            Some(r) => writeln!(
                out,
                "last run:      {} ({}){}",
                at(&r.started_at),
                r.status,
                r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            )?,
            None => writeln!(out, "last run:      never")?,
        }
        writeln!(
            out,
            "last success:  {}",
            last_success.map_or_else(|| "never".into(), |r| at(&r.started_at))
        )?;
        match next_run {
            Some(t) => writeln!(
                out,
                "next run:      {} (from the {next_source})",
                t.with_timezone(&tz).to_rfc3339_opts(SecondsFormat::Secs, true)
            )?,
            None => writeln!(out, "next run:      decided by the {next_source}")?,
        }
        writeln!(out, "papers stored: {}", doc["papers"])?;
        writeln!(
            out,
            "suppressed:    {} (unsubscribed; `paper-digest subscribers list`)",
            doc["suppressed"]
        )?;
        writeln!(out, "sources:")?;
        for s in &sources {
            match &s.last_error {
                Some(e) => writeln!(out, "  {:<14} FAILED at {}: {e}", s.source, at(&s.last_attempt))?,
                None => {
                    writeln!(
                        out,
                        "  {:<14} ok at {} ({} papers)",
                        s.source,
                        at(&s.last_attempt),
                        s.last_count
                    )?;
                }
            }
        }
        writeln!(out, "subscribers:")?;
        for s in &cfg.subscribers {
            match deliveries.get(&s.key) {
                Some(d) => writeln!(
                    out,
                    "  {:<28} {} {:<8} {} papers, tried in {} run(s){}{}",
                    s.key,
                    d.edition,
                    d.status,
                    d.items.len(),
                    d.attempts,
                    d.sent_at.as_deref().map(|t| format!(", sent {}", at(t))).unwrap_or_default(),
                    d.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )?,
                None => writeln!(out, "  {:<28} no digest yet", s.key)?,
            }
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

/// Two sample papers for `check` to render: one with every field, one with only what
/// every source gives, so a template that handles only the first is caught.
fn sample_papers(now: DateTime<Utc>) -> [Paper; 2] {
    [
        Paper {
            id: PaperId("2411.00001".into()),
            title: "A Sample Paper on $\\alpha$-Reasoning".into(),
            summary: "This is the abstract of a sample paper. It has a second sentence. And a third one."
                .into(),
            authors: vec![
                "Ada Lovelace".into(),
                "Alan Turing".into(),
                "Grace Hopper".into(),
                "Edsger Dijkstra".into(),
            ],
            published: Some(now),
            upvotes: 42,
            comments: 3,
            ai_summary: Some("A sample summary.".into()),
            keywords: vec!["reasoning".into()],
            categories: vec!["cs.CL".into()],
            url: Some("https://arxiv.org/abs/2411.00001".into()),
            code_url: Some("https://github.com/example/sample".into()),
            project_url: Some("https://example.org/sample".into()),
            sources: vec!["huggingface".into()],
        },
        Paper {
            id: PaperId("url:https://example.org/post".into()),
            title: "A feed item".into(),
            sources: vec!["feed".into()],
            ..Paper::default()
        },
    ]
}

/// Compiles every template and renders a sample digest with an undefined value as an
/// error, so a template mistake fails `check` (exit 78) instead of the morning's run.
fn check_templates(cfg: &Config, now: DateTime<Utc>) -> Result<()> {
    render_sample(cfg, &Renderer::strict(cfg.digest.templates.as_deref())?, now)
}

/// Renders a sample digest (and an empty one) for the first subscriber, or a sample one.
pub(super) fn render_sample(cfg: &Config, renderer: &Renderer, now: DateTime<Utc>) -> Result<()> {
    let papers = sample_papers(now);
    let sample;
    let subscriber = match cfg.first_subscriber() {
        Some(s) => s,
        None => {
            sample = Subscriber {
                email: "Sample Reader <reader@example.org>"
                    .parse()
                    .map_err(|e| Error::internal("making the sample reader", e))?,
                key: "reader@example.org".into(),
                topics: cfg.topics.keys().take(1).cloned().collect(),
                max_papers: cfg.digest.max_papers,
                min_score: 0.0,
                trending_weight: 1.0,
                frequency: crate::model::Frequency::Daily,
                weekday: chrono::Weekday::Mon,
                timezone: cfg.digest.timezone,
            };
            &sample
        }
    };
    let ranked: Vec<crate::model::Ranked<'_>> = papers
        .iter()
        .enumerate()
        .map(|(i, paper)| crate::model::Ranked {
            paper,
            score: 2.0 - i as f64,
            topic: subscriber.topics.first().cloned(),
            matched: vec![crate::model::Match {
                term: "reasoning".into(),
                field: crate::model::Field::Title,
                contribution: 1.0,
            }],
        })
        .collect();
    let edition = cadence::edition_key(subscriber, now);
    for papers in [&ranked[..], &[]] {
        let ctx = DigestContext {
            subscriber,
            edition,
            papers,
            unsubscribe_url: cfg.mail.unsubscribe_url.as_deref(),
            unsubscribe_mailto: cfg.mail.unsubscribe_mailto.as_deref(),
        };
        renderer.render(&ctx)?;
    }
    Ok(())
}

/// Big mailbox providers publish DMARC `p=reject` or `quarantine`: mail From their domain
/// sent through anyone else's server is refused or lands in spam at the big inboxes.
const PROVIDER_DOMAINS: &[(&str, &[&str])] = &[
    ("gmail.com", &["gmail.com", "google.com", "googlemail.com"]),
    ("googlemail.com", &["gmail.com", "google.com", "googlemail.com"]),
    ("outlook.com", &["outlook.com", "office365.com", "hotmail.com", "live.com"]),
    ("hotmail.com", &["outlook.com", "office365.com", "hotmail.com", "live.com"]),
    ("live.com", &["outlook.com", "office365.com", "hotmail.com", "live.com"]),
    ("msn.com", &["outlook.com", "office365.com", "hotmail.com", "live.com"]),
    ("yahoo.com", &["yahoo.com"]),
    ("ymail.com", &["yahoo.com"]),
    ("aol.com", &["aol.com", "yahoo.com"]),
    ("icloud.com", &["icloud.com", "me.com", "apple.com"]),
    ("me.com", &["icloud.com", "me.com", "apple.com"]),
    ("mac.com", &["icloud.com", "me.com", "apple.com"]),
    ("gmx.de", &["gmx.net", "gmx.de", "gmx.com"]),
    ("gmx.net", &["gmx.net", "gmx.de", "gmx.com"]),
    ("web.de", &["web.de"]),
    ("proton.me", &["proton.me", "protonmail.ch"]),
    ("protonmail.com", &["proton.me", "protonmail.ch"]),
    ("yandex.ru", &["yandex.ru", "yandex.net"]),
    ("mail.ru", &["mail.ru"]),
    ("zoho.com", &["zoho.com", "zoho.eu"]),
];

/// The DMARC warning for a From address at a big provider sent through another relay.
fn from_domain_warning(cfg: &Config) -> Option<String> {
    let domain = cfg.mail.from.email.domain().to_ascii_lowercase();
    let (_, relays) = PROVIDER_DOMAINS.iter().find(|(d, _)| *d == domain)?;
    let relay = match cfg.mail.transport {
        crate::config::TransportKind::Smtp => cfg.mail.smtp.as_ref().map(|s| s.host.to_ascii_lowercase()),
        _ => None,
    };
    let ok = relay
        .as_deref()
        .is_some_and(|host| relays.iter().any(|r| host == *r || host.ends_with(&format!(".{r}"))));
    if ok {
        return None;
    }
    let through = relay.map_or_else(
        || format!("the {:?} transport", cfg.mail.transport).to_lowercase(),
        |h| format!("the relay {h}"),
    );
    Some(format!(
        "warning: mail.from is at {domain}, but digests go out through {through}: {domain} publishes a DMARC \
         policy, so Gmail, Outlook and Yahoo will reject or spam-file them. Send from a domain you control \
         (with SPF and DKIM for the relay), or through {domain}'s own SMTP server."
    ))
}

/// Whether runs can create and write the database: its folder exists (or only that one
/// folder is missing) and is writable.
fn check_database(cfg: &Config) -> Result<()> {
    super::database_folder(cfg, false)
}

/// Loads the embedding model, if one is configured, and embeds the sample papers with it:
/// its folder and its vectors' dimensions.
fn check_embedding_model(cfg: &Config, now: DateTime<Utc>) -> Result<Option<(std::path::PathBuf, usize)>> {
    let Some(dir) = &cfg.digest.embedding_model else { return Ok(None) };
    let model = crate::meaning::Model::load(dir).map_err(|e| super::plan::model_error(cfg, &e))?;
    let meanings = model.embed(&sample_papers(now)).map_err(|e| super::plan::model_error(cfg, &e))?;
    Ok(Some((dir.clone(), meanings.dim())))
}

pub(crate) async fn check(cfg: &Config, connect: bool, now: DateTime<Utc>) -> Result<u8> {
    check_templates(cfg, now)?;
    check_database(cfg)?;
    let model = check_embedding_model(cfg, now)?;
    if cfg.mail.transport == crate::config::TransportKind::Smtp
        && let Some(smtp) = &cfg.mail.smtp
    {
        // Only that it works: the secret itself is dropped at once and never shown.
        drop(smtp.with_secret()?);
    }
    let warning = from_domain_warning(cfg);
    let from_file = cfg
        .subscribers_file
        .as_ref()
        .map(|f| format!(" ({} from {})", f.count, f.path.display()))
        .unwrap_or_default();
    print(|out| {
        writeln!(
            out,
            "config ok: {} ({} sources, {} topics, {} subscribers{from_file}, transport {})",
            cfg.path.display(),
            source::from_config(cfg).len(),
            cfg.topics.len(),
            cfg.subscribers.len(),
            format!("{:?}", cfg.mail.transport).to_lowercase()
        )?;
        writeln!(
            out,
            "templates ok: {} compiled, a sample digest rendered with no undefined name",
            cfg.digest.templates.as_ref().map_or_else(
                || "the built-in templates".to_string(),
                |d| format!("{} and the built-in templates", d.display())
            )
        )?;
        if let Some((dir, dim)) = &model {
            writeln!(
                out,
                "embedding model ok: {} ({dim} dimensions, sample papers embedded)",
                dir.display()
            )?;
        }
        if let Some(w) = &warning {
            writeln!(out, "{w}")?;
        }
        // [web] was validated with the rest (scheme, address, secret length); say what serves.
        match &cfg.web {
            Some(w) => writeln!(
                out,
                "web ok: links to {}, `serve` listens on {}, subscribe page {}, public topics {}",
                w.base_url,
                w.listen,
                if w.subscribe { "on" } else { "off" },
                if w.public_topics { "on" } else { "off" }
            ),
            None => Ok(()),
        }
    })?;
    if !connect {
        return Ok(exit::OK);
    }
    // One line per item as it is checked; stdout is not held locked across the awaits.
    let mut failed = 0;
    let client = HttpClient::new(&cfg.http, HashMap::new())?;
    let window = window(now, 1);
    for s in source::from_config(cfg) {
        let line = match s.fetch(&client, &window).await {
            Ok(papers) => format!("ok      source {}: reachable, {} papers today", s.name(), papers.len()),
            Err(e) => {
                failed += 1;
                format!("FAILED  source {}: {e}", s.name())
            }
        };
        print(|out| writeln!(out, "{line}"))?;
    }
    let line = match Mailer::new(&cfg.mail)?.check().await {
        Ok(verdict) => format!("ok      mail: {verdict}"),
        Err(e) => {
            failed += 1;
            format!("FAILED  mail: {e}")
        }
    };
    print(|out| writeln!(out, "{line}"))?;
    Ok(if failed == 0 { exit::OK } else { exit::TEMPFAIL })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starter_config_under_etc_keeps_its_state_where_the_systemd_unit_may_write() {
        let etc = starter_config(Path::new("/etc/paper-digest/paper-digest.toml"));
        assert!(etc.contains("database = \"/var/lib/paper-digest/paper-digest.sqlite3\""));
        assert!(etc.contains("dir = \"/var/lib/paper-digest/outbox\""));
        let home = starter_config(Path::new("/home/ada/digest/paper-digest.toml"));
        assert!(home.contains("database = \"paper-digest.sqlite3\""));
    }

    #[test]
    fn long_lists_are_capped_with_a_count() {
        let names: Vec<String> = (0..100_000).map(|i| format!("u{i}@example.org")).collect();
        let line = capped_list(names.iter().map(String::as_str));
        assert_eq!(
            line,
            "u0@example.org, u1@example.org, u2@example.org, u3@example.org, u4@example.org and 99995 more"
        );
        assert_eq!(capped_list(["a", "b"].into_iter()), "a, b");
        assert_eq!(capped_list(std::iter::empty()), "none");
    }

    #[test]
    fn paths_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(shell_word("/etc/paper-digest/paper-digest.toml"), "/etc/paper-digest/paper-digest.toml");
        assert_eq!(shell_word("my digest.toml"), "'my digest.toml'");
        assert_eq!(shell_word("it's.toml"), "'it'\\''s.toml'");
    }
}
