//! The deliver stage: renders each planned job on the blocking pool, marks groups
//! 'sending', hands them to the transport `concurrency` at a time, and accounts for each
//! outcome ([`outcome`]) before the [`Committer`] records it.

use super::plan::{Job, Papers, papers_for, ranked_from_items};
use super::{Run, RunSummary};
use crate::config::{Config, MailSettings};
use crate::error::{Error, Result};
use crate::logging::mask_email;
use crate::mail::{self, Envelope, Mailer, Wire};
use crate::render::{DigestContext, Renderer};
use crate::store::{Committer, Outcome, Store, joined};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;

/// Messages that may be out, beyond the `concurrency` in flight, without a durable record
/// of their outcome yet: after a crash at most `concurrency + UNRECORDED` are sent twice.
/// Group commit keeps far below it (16 outcomes per 2 ms fsync would be 8,000 messages a
/// second); it holds the sends back only when the disk stalls.
const UNRECORDED: usize = 16;
/// Rendered messages whose rows are marked 'sending' in one transaction, at most. A
/// stopping run still sends the group it has marked, so this also bounds what goes out
/// after a shutdown is asked for, besides the sends in flight.
const MARK_GROUP: usize = 16;

/// What rendering and building a message needs, shared with the blocking pool.
pub(super) struct Composer {
    pub(super) renderer: Renderer,
    mail: MailSettings,
    /// Each reader's signed links, with `[web]` set.
    links: Option<crate::web::Links>,
}

impl Composer {
    pub(super) fn new(cfg: &Config) -> Result<Composer> {
        Ok(Composer {
            renderer: Renderer::new(cfg.digest.templates.as_deref())?,
            mail: cfg.mail.clone(),
            links: cfg.web.as_ref().map(crate::web::Links::new),
        })
    }

    /// Renders, builds and formats a job's message: the CPU-bound part of a send, run on
    /// the blocking pool so that it uses every core while the sends wait on the network,
    /// and the send loop only moves bytes.
    fn compose(&self, job: &Job, papers: &Papers, now: DateTime<Utc>) -> Result<Wire> {
        self.build(job, papers, now).map(|message| Wire::new(&message))
    }

    fn build(&self, job: &Job, papers: &Papers, now: DateTime<Utc>) -> Result<lettre::Message> {
        let (mail, subscriber, items) = (&self.mail, &job.subscriber, &job.items);
        let ranked = ranked_from_items(items, papers);
        let ctx = DigestContext {
            subscriber,
            edition: job.edition,
            papers: &ranked,
            unsubscribe_url: mail.unsubscribe_url.as_deref(),
            unsubscribe_mailto: mail.unsubscribe_mailto.as_deref(),
        };
        let envelope = Envelope { to: &subscriber.email, message_id: &job.message_id, date: now };
        match &self.links {
            // With [web], every reader gets their own signed links and List-Unsubscribe URL.
            Some(links) => {
                let reader = links.for_digest(&subscriber.key, job.edition, items.iter().map(|i| &i.id));
                let encoded = self.renderer.render_encoded(&ctx, Some(&reader))?;
                mail::build_encoded(mail, &envelope, encoded, Some(&reader.unsubscribe))
            }
            None => {
                let encoded = self.renderer.render_encoded(&ctx, None)?;
                mail::build_encoded(mail, &envelope, encoded, mail.unsubscribe_url.as_deref())
            }
        }
    }
}

/// What a send came to, before it is recorded.
pub(super) enum Sent {
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

/// A job with its built message, or what became of it instead.
type Ready = (Arc<Job>, std::result::Result<Wire, Sent>);

/// Renders, sends and records one chunk's jobs. Rendering runs ahead on the blocking
/// pool, up to `concurrency` messages are with the transport at once, and outcomes are
/// committed by a [`Committer`] on a thread of its own, so neither an SMTP exchange nor a
/// file write waits for a durable commit. Every outcome known is committed before this
/// returns, whether the run finished, was stopped or lost its mail server.
#[allow(clippy::too_many_lines)]
pub(super) async fn send_jobs(
    run: &Run<'_>,
    shelf: &Arc<Papers>,
    jobs: Vec<Job>,
    summary: &mut RunSummary,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let (store, mailer, now) = (&run.store, &run.mailer, run.now);
    let papers = papers_for(store, shelf, jobs.iter().flat_map(|j| &j.items))?;
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
            run.shutdown.is_cancelled()
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
                let job = Arc::new(job);
                let (composer, papers, cores, for_render) =
                    (Arc::clone(&run.composer), Arc::clone(&papers), Arc::clone(&cores), Arc::clone(&job));
                // A task of its own, so that rendering goes on while the send loop waits.
                let render = tokio::spawn(async move {
                    let _core = cores.acquire_owned().await;
                    tokio::task::spawn_blocking(move || composer.compose(&for_render, &papers, now)).await
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
            run.progress.inc(1);
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
async fn hand_out(store: &Arc<Store>, group: Vec<Ready>, stopping: bool, now: DateTime<Utc>) -> Vec<Ready> {
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

/// Counts what a send came to in the summary; the ledger outcome to record, if any.
pub(super) fn outcome(job: &Job, result: Sent, summary: &mut RunSummary) -> Option<Outcome> {
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

/// Hands a built message to the transport. Its row is already marked 'sending'.
async fn attempt(mailer: &Mailer, job: &Job, message: &Wire) -> Sent {
    match mailer.send_wire(message, &job.subscriber.key).await {
        Ok(()) => Sent::Ok,
        Err(e @ Error::Transport { .. }) => {
            Sent::SessionFailed { config: !e.is_transient(), error: e.to_string() }
        }
        Err(e) if e.is_transient() => Sent::Deferred(e.to_string()),
        Err(e) => Sent::Failed(e.to_string()),
    }
}

/// Composes and delivers one job, recording the attempt first, for the one-off sends
/// (`resend`, `retry --failed`).
pub(super) async fn send_one(run: &Run<'_>, job: &Job, papers: &Papers) -> Sent {
    match run.composer.compose(job, papers, run.now) {
        Ok(message) => match run.store.mark_sending(&[job.delivery_id], run.now) {
            Ok(()) => attempt(&run.mailer, job, &message).await,
            Err(e) => Sent::Deferred(e.to_string()),
        },
        Err(e @ Error::Config { .. }) => Sent::BadTemplate(e),
        Err(e) => Sent::Failed(e.to_string()),
    }
}
