//! The deliver stage: renders each planned job on the blocking pool, marks groups
//! 'sending', hands them to the transport `concurrency` at a time, and accounts for each
//! outcome ([`outcome`]) before the [`Committer`] records it.

use super::plan::{Job, Papers, Planner, papers_for, ranked_from_items};
use super::{Run, RunSummary};
use crate::config::{Config, MailSettings, Subscriber};
use crate::error::{Error, Result};
use crate::logging::mask_email;
use crate::mail::{self, Envelope, Mailer, Wire};
use crate::render::{DigestContext, Renderer};
use crate::store::{Committer, Outcome, Store, joined};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Messages that may be out, beyond the `concurrency` in flight, without a durable record
/// of their outcome yet: after a crash at most `concurrency + UNRECORDED` are sent twice.
/// Group commit keeps far below it (16 outcomes per 2 ms fsync would be 8,000 messages a
/// second); it holds the sends back only when the disk stalls.
const UNRECORDED: usize = 16;
/// Rendered messages whose rows are marked 'sending' in one transaction, at most. A
/// stopping run still sends the groups it has marked (the one going out and the next, marked
/// meanwhile), so twice this also bounds what goes out after a shutdown is asked for,
/// besides the sends in flight.
const MARK_GROUP: usize = 16;
/// Messages rendered one after another by one blocking task.
const COMPOSE_GROUP: usize = 8;
/// Rendered messages waiting for the send stage, at most.
const RENDER_AHEAD: usize = 32;
/// Subscribers ranked and recorded pending at a time by the plan stage, which runs on the
/// thread that drives the sends: small enough that a send never waits long for it.
const PLAN_SLICE: usize = 64;

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

/// Where the subscribers come from, a chunk at a time: `Ok(None)` when there are no more.
pub(super) type Chunks<'c> = Box<dyn FnMut() -> Result<Option<Vec<Subscriber>>> + 'c>;

/// Plans, renders, sends and records every subscriber `chunks` yields, as one pipeline
/// whose three stages run at once:
///
/// - **plan**: a chunk at a time, in slices that yield between them, so that the next
///   chunk is ranked and recorded pending while the previous one is being sent, and only
///   one planned chunk waits (memory stays flat in the number of subscribers);
/// - **render**: groups of messages on the blocking pool, up to [`RENDER_AHEAD`] ahead;
/// - **send**: up to `concurrency` messages with the transport at once, each group marked
///   'sending' before it goes, each outcome committed by a [`Committer`] on a thread of
///   its own, so that neither an SMTP exchange nor a file write waits for a durable commit.
///
/// Every outcome known is committed before this returns, whether the run finished, was
/// stopped, lost its mail server or failed to plan (that error is returned after).
#[allow(clippy::too_many_lines)]
pub(super) async fn deliver(
    run: &Run<'_>,
    planner: &Planner<'_>,
    shelf: &Arc<Papers>,
    mut chunks: Chunks<'_>,
    summary: &mut RunSummary,
) -> Result<()> {
    let (store, mailer, now) = (&run.store, &run.mailer, run.now);
    let concurrency = mailer.concurrency().max(1);
    // Rendering is CPU-bound: two groups per core at once keep every core busy, and a
    // group of messages per blocking task keeps the hand-offs between threads (a wake-up
    // and a context switch each) off the per-message cost.
    let rendering = std::thread::available_parallelism().map_or(2, std::num::NonZero::get) * 2;
    let committer = Committer::start(Arc::clone(store), now, concurrency + UNRECORDED);
    let mut bad_template = None;
    let mut skipped = 0;
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
    let (planned, to_render) = tokio::sync::mpsc::channel::<(Arc<Papers>, Vec<Job>)>(1);
    let plan = async {
        let planned = planned; // dropped on return, which ends the other stages' input
        while !stopped() {
            let Some(mut chunk) = chunks()? else { break };
            let subscribers = chunk.len();
            let mut jobs = Vec::with_capacity(subscribers);
            let mut done = RunSummary::default();
            while !chunk.is_empty() {
                let rest = chunk.split_off(chunk.len().min(PLAN_SLICE));
                jobs.extend(planner.plan(std::mem::replace(&mut chunk, rest), &mut done)?);
                // Ranking is CPU work on the thread that drives the sends: a slice at a time.
                tokio::task::yield_now().await;
            }
            skipped += done.skipped;
            run.progress.inc((subscribers - jobs.len()) as u64);
            let papers = papers_for(store, shelf, jobs.iter().flat_map(|j| &j.items))?;
            if !jobs.is_empty() && planned.send((papers, jobs)).await.is_err() {
                break; // the send stage has ended
            }
        }
        Ok::<(), Error>(())
    };
    let (ready, rendered) = tokio::sync::mpsc::channel::<Ready>(RENDER_AHEAD);
    let render = async move {
        let mut to_render = to_render;
        let groups = futures_util::stream::poll_fn(|cx| to_render.poll_recv(cx))
            .flat_map(|(papers, jobs)| {
                futures_util::stream::iter(jobs).map(move |job| (Arc::clone(&papers), job))
            })
            .take_while(|_| {
                let go = !stopped();
                async move { go }
            })
            .chunks(COMPOSE_GROUP)
            .map(|group| compose_group(Arc::clone(&run.composer), group, now))
            .buffered(rendering);
        let mut groups = std::pin::pin!(groups);
        while let Some(group) = groups.next().await {
            for one in group {
                if ready.send(one).await.is_err() {
                    return; // the send stage has ended
                }
            }
        }
    };
    let send = async {
        let mut rendered = rendered;
        let results = futures_util::stream::poll_fn(|cx| rendered.poll_recv(cx))
            // What is rendered by now is marked in one transaction and then handed out;
            // the next group is marked while this one is being sent, so that the sends
            // never wait for the database (where the committer may hold it for a commit).
            .ready_chunks(MARK_GROUP)
            .map(|group| hand_out(store, group, stopped(), now))
            .buffered(2)
            .flat_map(futures_util::stream::iter)
            .map(|(job, ready)| {
                let (down, committer, broken) = (&down, &committer, &broken);
                async move {
                    let place = match &ready {
                        Ok(_) => Some(committer.place().await),
                        Err(_) => None,
                    };
                    let result = match ready {
                        // Its outcome could not be recorded: the row stays marked, for
                        // the next run to send.
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
        // Returning drops the receiver, which ends the earlier stages too.
    };
    let (planning, (), ()) = tokio::join!(plan, render, send);
    summary.skipped += skipped;
    committer.finish().await?;
    planning?;
    bad_template.map_or(Ok(()), Err)
}

/// Renders a group of jobs, one after another, on the blocking pool. A bug that panics in
/// one reader's render fails that reader.
async fn compose_group(
    composer: Arc<Composer>,
    group: Vec<(Arc<Papers>, Job)>,
    now: DateTime<Utc>,
) -> Vec<Ready> {
    let render = tokio::task::spawn_blocking(move || {
        group
            .into_iter()
            .map(|(papers, job)| {
                let composed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    composer.compose(&job, &papers, now)
                }));
                let message = match composed {
                    Ok(Ok(message)) => Ok(message),
                    Ok(Err(e @ Error::Config { .. })) => Err(Sent::BadTemplate(e)),
                    Ok(Err(e)) => Err(Sent::Failed(format!("rendering failed: {e}"))),
                    Err(_) => Err(Sent::Failed("rendering failed: a bug (its panic is logged)".into())),
                };
                (Arc::new(job), message)
            })
            .collect()
    });
    joined(render.await)
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
