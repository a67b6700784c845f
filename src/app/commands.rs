//! The operator commands around the daily run: preview, resend, explain, status, check
//! and init. They reuse the run's parts (fetch, candidates, ranking, rendering, sending).

use super::{
    Candidates, Indexes, Job, Sent, fetch, fetch_days, items, liked_papers, papers_for, ranked_from_items,
    send_one, window,
};
use crate::cli::{PreviewArgs, PreviewFormat};
use crate::config::{Config, Subscriber};
use crate::error::{Error, Result, exit};
use crate::mail::{self, Envelope, Mailer};
use crate::model::PaperId;
use crate::render::{DigestContext, Renderer};
use crate::schedule;
use crate::source::{self, http::HttpClient};
use crate::store::{Delivery, Kind, NewDelivery, Outcome, Store};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::HashMap;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Writes a command's output to standard output: one lock, one buffer, one flush. A reader
/// that has gone away (`paper-digest status | head -1`) is not the command's failure: the
/// rest of the output is dropped, quietly, and the command's own outcome stands.
pub(super) fn print(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    let mut out = BufWriter::new(io::stdout().lock());
    match write(&mut out).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(|e| Error::io("<stdout>", e)),
    }
}

pub(super) fn init(path: &Path, force: bool) -> Result<u8> {
    if path.exists() && !force {
        return Err(Error::Config {
            path: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: "already exists; pass --force to overwrite it".into(),
        });
    }
    // The example lives in config/ and points one folder up; a starter config keeps its
    // database and outbox beside itself.
    let starter = include_str!("../../config/example.toml").replace("\"../", "\"");
    std::fs::write(path, starter).map_err(|e| Error::io(path, e))?;
    print(|out| {
        writeln!(
            out,
            "wrote {}; edit the subscribers and topics, then run `paper-digest check`",
            path.display()
        )
    })?;
    Ok(exit::OK)
}

fn subscriber<'c>(cfg: &'c Config, email: &str) -> Result<&'c Subscriber> {
    cfg.subscriber(email).ok_or_else(|| {
        let known: Vec<&str> = cfg.subscribers.iter().map(|s| s.key.as_str()).collect();
        Error::NotFound(format!(
            "{email} is not a subscriber in {} (subscribers: {})",
            cfg.path.display(),
            if known.is_empty() { "none".into() } else { known.join(", ") }
        ))
    })
}

pub(super) async fn preview(cfg: &Config, args: &PreviewArgs, now: DateTime<Utc>) -> Result<u8> {
    let sub = subscriber(cfg, &args.to)?;
    let store = Store::open(&cfg.digest.database)?;
    if !args.offline
        && !cfg.sources.is_empty()
        && let Err(e) = fetch(cfg, &store, now, fetch_days(cfg)).await
    {
        tracing::warn!("fetch failed, previewing what the database holds: {e}");
    }
    let candidates = Candidates::load(cfg, &store, now)?;
    let liked = liked_papers(cfg, &store).await;
    let indexes = Indexes::new(cfg, &candidates, &liked, now);
    let edition = schedule::edition_key(sub, now);
    // An unfinished ledger row is what the next run will send, so that is the preview.
    let items = match store.digest_delivery(&sub.key, edition)? {
        Some(row) if row.status.is_retryable() => row.items,
        _ => items(&indexes.for_subscriber(sub).rank(sub, &store.seen(&sub.key)?)),
    };
    let papers = papers_for(&store, &candidates, items.iter())?;
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
            serde_json::to_vec_pretty(&doc).map_err(|e| Error::NotFound(e.to_string()))?
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

pub(super) async fn resend(
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
        return Err(Error::NotFound("could not record the resend".into()));
    };
    let job = Job {
        delivery_id: id,
        subscriber: sub,
        edition: row.edition,
        message_id: row.message_id,
        items: row.items,
    };
    let papers = papers_for(&store, &Candidates { daily: Vec::new(), weekly: Vec::new() }, job.items.iter())?;
    let mailer = Mailer::new(&cfg.mail)?;
    let result = send_one(cfg, &store, &renderer_for(cfg)?, &mailer, &job, &papers, now).await;
    let (outcome, code) = match result {
        Sent::Ok => (Outcome::Sent { id }, exit::OK),
        Sent::Failed(e) => (Outcome::Failed { id, error: e }, exit::PARTIAL),
        Sent::Deferred(e) => (Outcome::Deferred { id, error: e }, exit::PARTIAL),
        Sent::SessionFailed { config, error } => {
            (Outcome::Failed { id, error }, if config { exit::CONFIG } else { exit::TEMPFAIL })
        }
        Sent::Unsent(_) | Sent::NotAttempted => return Ok(exit::TEMPFAIL),
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
pub(super) async fn retry_failed(cfg: &Config, edition: Option<NaiveDate>, now: DateTime<Utc>) -> Result<u8> {
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
    let renderer = renderer_for(cfg)?;
    let mailer = Mailer::new(&cfg.mail)?;
    let mut summary = super::RunSummary::default();
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
        let job = Job {
            delivery_id: row.id,
            subscriber: sub,
            edition: row.edition,
            message_id: row.message_id,
            items: row.items,
        };
        let papers =
            papers_for(&store, &Candidates { daily: Vec::new(), weekly: Vec::new() }, job.items.iter())?;
        let result = if summary.transport_down {
            Sent::Unsent("not offered: the mail session failed".into())
        } else {
            store.requeue(&[row.id], now)?;
            send_one(cfg, &store, &renderer, &mailer, &job, &papers, now).await
        };
        let outcome = match super::outcome(&job, result, &mut summary) {
            Some(sent @ Outcome::Sent { .. }) => sent,
            Some(
                Outcome::Failed { error, .. }
                | Outcome::Deferred { error, .. }
                | Outcome::Unsent { error, .. },
            ) => Outcome::Failed { id: row.id, error },
            None => Outcome::Failed { id: row.id, error: row.last_error.unwrap_or_default() },
        };
        store.record_outcomes(&[outcome], now)?;
    }
    mailer.close().await;
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

pub(super) async fn explain(
    cfg: &Config,
    to: &str,
    paper: &str,
    json: bool,
    now: DateTime<Utc>,
) -> Result<u8> {
    let sub = subscriber(cfg, to)?;
    let store = Store::open(&cfg.digest.database)?;
    let id = PaperId(source::ids::normalize_arxiv(paper).unwrap_or_else(|| paper.trim().to_string()));
    let candidates = Candidates::load(cfg, &store, now)?;
    let liked = liked_papers(cfg, &store).await;
    let indexes = Indexes::new(cfg, &candidates, &liked, now);
    let explanation = indexes.for_subscriber(sub).explain(sub, &id, &store.seen(&sub.key)?);
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

pub(super) fn status(cfg: &Config, json: bool, now: DateTime<Utc>) -> Result<u8> {
    // Read-only when it can be (status works on a read-only file or folder); else, as for
    // a new database or one an upgrade has yet to migrate, opened as every command does.
    let store = Store::open_read_only(&cfg.digest.database).or_else(|_| Store::open(&cfg.digest.database))?;
    let last_run = store.last_run()?;
    let last_success = store.last_success_run()?;
    let next_run = schedule::next_run(&cfg.digest.schedule, cfg.digest.timezone, now);
    let sources = store.source_statuses()?;
    let deliveries: HashMap<String, Delivery> =
        store.last_deliveries()?.into_iter().map(|d| (d.subscriber.clone(), d)).collect();
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
                "attempts": d.map(|d| d.attempts),
                "sent_at": d.and_then(|d| d.sent_at.clone()),
                "error": d.and_then(|d| d.last_error.clone()),
            })
        })
        .collect();
    let doc = serde_json::json!({
        "config": cfg.path,
        "database": cfg.digest.database,
        "papers": store.paper_count()?,
        "suppressed": store.suppressed_count()?,
        "last_run": last_run,
        "last_success": last_success.as_ref().map(|r| &r.started_at),
        "consecutive_failures": store.consecutive_failures()?,
        "next_run": next_run,
        "sources": sources,
        "subscribers": subscribers,
    });
    print(|out| {
        if json {
            serde_json::to_writer_pretty(&mut *out, &doc)?;
            return writeln!(out);
        }
        match &last_run {
            Some(r) => writeln!(
                out,
                "last run:      {} ({}){}",
                r.started_at,
                r.status,
                r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            )?,
            None => writeln!(out, "last run:      never")?,
        }
        writeln!(out, "last success:  {}", last_success.map_or_else(|| "never".into(), |r| r.started_at))?;
        writeln!(
            out,
            "next run:      {} (daemon schedule `{}` {})",
            next_run.map_or_else(|| "-".into(), |t| t.to_rfc3339()),
            cfg.digest.schedule,
            cfg.digest.timezone
        )?;
        writeln!(out, "papers stored: {}", doc["papers"])?;
        writeln!(
            out,
            "suppressed:    {} (unsubscribed; `paper-digest subscribers list`)",
            doc["suppressed"]
        )?;
        writeln!(out, "sources:")?;
        for s in &sources {
            match &s.last_error {
                Some(e) => writeln!(out, "  {:<14} FAILED at {}: {e}", s.source, s.last_attempt)?,
                None => {
                    writeln!(out, "  {:<14} ok at {} ({} papers)", s.source, s.last_attempt, s.last_count)?;
                }
            }
        }
        writeln!(out, "subscribers:")?;
        for s in &cfg.subscribers {
            match deliveries.get(&s.key) {
                Some(d) => writeln!(
                    out,
                    "  {:<28} {} {:<8} {} papers, {} attempt(s){}",
                    s.key,
                    d.edition,
                    d.status,
                    d.items.len(),
                    d.attempts,
                    d.last_error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
                )?,
                None => writeln!(out, "  {:<28} no digest yet", s.key)?,
            }
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

pub(super) async fn check(cfg: &Config, connect: bool, now: DateTime<Utc>) -> Result<u8> {
    let from_file = cfg
        .subscribers_file
        .as_ref()
        .map(|f| format!(" ({} from {})", f.count, f.path.display()))
        .unwrap_or_default();
    print(|out| {
        writeln!(
            out,
            "config ok: {} ({} sources, {} topics, {} subscribers{from_file}, transport {:?})",
            cfg.path.display(),
            source::from_config(cfg).len(),
            cfg.topics.len(),
            cfg.subscribers.len(),
            cfg.mail.transport
        )?;
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
