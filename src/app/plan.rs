//! The plan stage: the run's candidates, the ranking indexes over them, and the one
//! decision per subscriber of what to send (a retry of an unfinished ledger row, a fresh
//! ranking recorded as pending before any attempt, or nothing), used by `run` and
//! `preview` alike.

use super::RunSummary;
use crate::cadence;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::logging::mask_email;
use crate::mail;
use crate::meaning::{Model, ModelError};
use crate::model::{Frequency, Paper, PaperId, Ranked, Subscriber};
use crate::rank::{Feedback, Index};
use crate::store::{Delivery, Item, Kind, NewDelivery, Store};
use chrono::{DateTime, Duration as Days, NaiveDate, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// How long past the longest candidate window a `seen` row is kept: a margin for a
/// paper whose publication date a source reports late.
pub(super) const SEEN_MARGIN_DAYS: i64 = 30;

/// Whether any subscriber reads weekly: then the week is fetched and ranked for them.
pub(super) fn any_weekly(cfg: &Config) -> bool {
    cfg.subscribers.iter().any(|s| s.frequency == Frequency::Weekly)
        || cfg.subscribers_file.as_ref().is_some_and(|f| !f.held && f.weekly)
}

/// Subscribers of the file read a chunk at a time, so that a run's memory does not grow
/// with the file: only one chunk's subscribers and rankings are held at a time.
pub(super) const FILE_CHUNK: usize = 1000;

/// Who a run plans for: the config's subscribers with the database's readers applied
/// (`web::roster`), and, when the config streams its subscribers file, the file's
/// subscribers the roster has nothing to say about.
pub(super) struct Roster {
    /// The config with the readers applied; `None`: the config as it is.
    pub(super) cfg: Option<Config>,
    /// File subscribers already among `cfg.subscribers`: left out when the file is read.
    pub(super) taken: HashSet<String>,
    /// How many subscribers the file stream will give (for the progress bar).
    pub(super) streamed: usize,
}

impl Roster {
    /// The roster of a run. A file subscriber that is suppressed, paused, has settings
    /// from the manage page or votes is read into the config first (one pass over the
    /// file), so that `web::roster` treats them exactly as when the config held them all.
    pub(super) fn new(cfg: &Config, store: &Store) -> Result<Roster> {
        let Some(mut file) = cfg.file_subscribers()? else {
            return Ok(Roster {
                cfg: crate::web::roster::apply(cfg, store)?,
                taken: HashSet::new(),
                streamed: 0,
            });
        };
        let mut known: HashSet<String> = store.suppressions()?.into_iter().map(|s| s.subscriber).collect();
        known.extend(store.readers()?.into_iter().map(|r| r.subscriber));
        known.extend(store.all_feedback()?.into_iter().map(|(key, _, _)| key));
        let total = cfg.subscribers_file.as_ref().map_or(0, |f| f.count);
        if known.is_empty() {
            return Ok(Roster { cfg: None, taken: HashSet::new(), streamed: total });
        }
        let mut with_known = cfg.clone();
        let mut rest_weekly = false;
        loop {
            let chunk = file.next_chunk(FILE_CHUNK)?;
            if chunk.is_empty() {
                break;
            }
            for sub in chunk {
                if known.contains(&sub.key) {
                    with_known.subscribers.push(sub);
                } else {
                    rest_weekly |= sub.frequency == Frequency::Weekly;
                }
            }
        }
        let taken: HashSet<String> =
            with_known.subscribers[cfg.subscribers.len()..].iter().map(|s| s.key.clone()).collect();
        if let Some(f) = &mut with_known.subscribers_file {
            f.weekly = rest_weekly;
        }
        let streamed = total.saturating_sub(taken.len());
        let applied = crate::web::roster::apply(&with_known, store)?.unwrap_or(with_known);
        Ok(Roster { cfg: Some(applied), taken, streamed })
    }
}

/// The candidate windows: daily subscribers rank the lookback window, weekly ones the week.
pub(super) struct Candidates {
    pub(super) daily: Vec<Paper>,
    pub(super) weekly: Vec<Paper>,
    pub(super) daily_since: DateTime<Utc>,
    pub(super) weekly_since: DateTime<Utc>,
}

impl Candidates {
    pub(super) fn load(cfg: &Config, store: &Store, now: DateTime<Utc>) -> Result<Self> {
        let daily_since = now - Days::days(i64::from(cfg.digest.lookback_days));
        let weekly_since = now - Days::days(i64::from(cfg.digest.lookback_days.max(7)));
        let daily = store.candidates(daily_since)?;
        let weekly = if any_weekly(cfg) { store.candidates(weekly_since)? } else { Vec::new() };
        Ok(Candidates { daily, weekly, daily_since, weekly_since })
    }

    /// Which of a subscriber's candidates they were already sent.
    pub(super) fn seen(&self, store: &Store, sub: &Subscriber) -> Result<HashSet<PaperId>> {
        let since = match sub.frequency {
            Frequency::Daily => self.daily_since,
            Frequency::Weekly => self.weekly_since,
        };
        store.seen_since(&sub.key, since)
    }

    /// The candidates by id, made once per run and shared by every chunk and render.
    pub(super) fn shelf(&self) -> Arc<Papers> {
        let mut papers = Papers::with_capacity(self.daily.len().max(self.weekly.len()));
        for p in self.daily.iter().chain(&self.weekly) {
            papers.entry(p.id.clone()).or_insert_with(|| Arc::new(p.clone()));
        }
        Arc::new(papers)
    }
}

/// Papers by id, each shared between the jobs that render it.
pub(super) type Papers = HashMap<PaperId, Arc<Paper>>;

/// The papers the items name: the whole shelf when it holds them all (the usual case, no
/// copy), else the shelf plus those loaded from the store (retried or resent rows whose
/// papers left the window).
pub(super) fn papers_for<'i>(
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

/// A model that cannot be read or used fails the run before anything is recorded, as
/// the configuration's fault: the key names it and the message says what is wrong.
pub(super) fn model_error(cfg: &Config, e: &ModelError) -> Error {
    Error::Config {
        path: cfg.path.clone(),
        line: None,
        column: None,
        key: Some("digest.embedding_model".into()),
        message: e.to_string(),
    }
}

/// The ranking indexes over the candidate windows, and every reader's votes.
pub(super) struct Indexes<'a> {
    daily: Index<'a>,
    weekly: Index<'a>,
    /// Each reader's "More like this" / "Fewer like this" votes (from `serve`), read once.
    votes: HashMap<String, Feedback>,
}

impl<'a> Indexes<'a> {
    pub(super) fn new(
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
        let model = match &cfg.digest.embedding_model {
            Some(dir) => Some(Model::load(dir).map_err(|e| model_error(cfg, &e))?),
            None => None,
        };
        let index = |papers: &'a [Paper]| -> Result<Index<'a>> {
            let meanings = match &model {
                Some(model) if !papers.is_empty() => {
                    let started = std::time::Instant::now();
                    let meanings = model.embed(papers).map_err(|e| model_error(cfg, &e))?;
                    tracing::debug!(
                        model = %model.path().display(),
                        papers = papers.len(),
                        ms = started.elapsed().as_millis() as u64,
                        "embedded the candidates"
                    );
                    Some(meanings)
                }
                _ => None,
            };
            Ok(Index::with_meanings(papers, &cfg.topics, liked, now, cfg.digest.recency_weight, meanings))
        };
        Ok(Indexes { daily: index(&c.daily)?, weekly: index(&c.weekly)?, votes })
    }

    fn for_subscriber(&self, sub: &Subscriber) -> &Index<'a> {
        match sub.frequency {
            Frequency::Daily => &self.daily,
            Frequency::Weekly => &self.weekly,
        }
    }

    /// The subscriber's unseen papers, best first, their votes taken into account.
    pub(super) fn rank(&self, sub: &Subscriber, seen: &HashSet<PaperId>) -> Vec<Ranked<'a>> {
        let index = self.for_subscriber(sub);
        match self.votes.get(&sub.key) {
            Some(votes) => index.rank_with_feedback(sub, seen, votes),
            None => index.rank(sub, seen),
        }
    }

    /// Why `id` ranked where it did for `sub`, agreeing with [`Indexes::rank`].
    pub(super) fn explain(
        &self,
        sub: &Subscriber,
        id: &PaperId,
        seen: &HashSet<PaperId>,
    ) -> crate::rank::Explanation {
        let index = self.for_subscriber(sub);
        match self.votes.get(&sub.key) {
            Some(votes) => index.explain_with_feedback(sub, id, seen, votes),
            None => index.explain(sub, id, seen),
        }
    }
}

/// A ranking as the ledger records it.
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
pub(super) fn ranked_from_items<'a>(items: &[Item], papers: &'a Papers) -> Vec<Ranked<'a>> {
    items.iter().filter_map(|i| papers.get(&i.id).map(|paper| i.ranked(paper))).collect()
}

/// A delivery ready to be rendered and sent. It owns its subscriber, so that a chunk read
/// from the subscribers file can be dropped once planned.
pub(super) struct Job {
    pub(super) delivery_id: i64,
    pub(super) subscriber: Subscriber,
    pub(super) edition: NaiveDate,
    pub(super) message_id: String,
    pub(super) items: Vec<Item>,
}

impl Job {
    /// The job for a ledger row.
    pub(super) fn of(row: Delivery, subscriber: Subscriber) -> Job {
        Job {
            delivery_id: row.id,
            subscriber,
            edition: row.edition,
            message_id: row.message_id,
            items: row.items,
        }
    }
}

/// What the plan holds for one subscriber's current edition.
pub(super) enum Choice {
    /// An unfinished ledger row: sent again with its Message-ID and papers.
    Retry(Delivery),
    /// The edition was sent, or failed for good: nothing to do.
    Handled(Delivery),
    /// No row yet: this ranking is what goes out.
    Fresh(Vec<Item>),
}

/// Plans subscribers against the run's candidates and the ledger.
pub(super) struct Planner<'a> {
    pub(super) cfg: &'a Config,
    pub(super) store: &'a Store,
    pub(super) candidates: &'a Candidates,
    pub(super) indexes: Indexes<'a>,
    pub(super) now: DateTime<Utc>,
}

impl<'a> Planner<'a> {
    pub(super) fn new(
        cfg: &'a Config,
        store: &'a Store,
        candidates: &'a Candidates,
        liked: &[Paper],
        now: DateTime<Utc>,
    ) -> Result<Self> {
        let indexes = Indexes::new(cfg, store, candidates, liked, now)?;
        Ok(Planner { cfg, store, candidates, indexes, now })
    }

    /// What a subscriber's `edition` is to be: the one decision `run` acts on and
    /// `preview` shows.
    pub(super) fn choose(&self, sub: &Subscriber, edition: NaiveDate) -> Result<Choice> {
        Ok(match self.store.digest_delivery(&sub.key, edition)? {
            Some(row) if row.status.is_retryable() => Choice::Retry(row),
            Some(row) => Choice::Handled(row),
            None => Choice::Fresh(self.rank(sub)?),
        })
    }

    /// The subscriber's fresh ranking, as the ledger would record it.
    pub(super) fn rank(&self, sub: &Subscriber) -> Result<Vec<Item>> {
        let seen = self.candidates.seen(self.store, sub)?;
        Ok(items(&self.indexes.rank(sub, &seen)))
    }

    /// Decides, per subscriber of a chunk, what to send, and records each fresh ranking as
    /// pending (one transaction) before any attempt.
    pub(super) fn plan(&self, chunk: Vec<Subscriber>, summary: &mut RunSummary) -> Result<Vec<Job>> {
        let (cfg, store, now) = (self.cfg, self.store, self.now);
        let mut jobs = Vec::new();
        let mut fresh = Vec::new();
        let mut fresh_subs = Vec::new();
        for sub in chunk {
            let edition = cadence::edition_key(&sub, now);
            if !cadence::is_due(&sub, now) && !missed_weekly(store, &sub, edition)? {
                summary.skipped += 1;
                continue;
            }
            match self.choose(&sub, edition)? {
                Choice::Retry(row) => {
                    tracing::info!(to = %mask_email(&sub.key), %edition, status = %row.status, "retrying an unfinished delivery");
                    jobs.push(Job::of(row, sub));
                }
                Choice::Handled(row) => {
                    tracing::debug!(to = %mask_email(&sub.key), %edition, status = %row.status, "edition already handled");
                    summary.skipped += 1;
                }
                Choice::Fresh(items) => {
                    if items.is_empty() && !cfg.digest.send_empty {
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
                        items,
                    });
                    fresh_subs.push(sub);
                }
            }
        }
        let ids = store.insert_deliveries(&fresh, now)?;
        for ((row, subscriber), id) in fresh.into_iter().zip(fresh_subs).zip(ids) {
            match id {
                Some(delivery_id) => jobs.push(Job {
                    delivery_id,
                    subscriber,
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
}

/// A weekly subscriber whose weekday passed without a run (the host was down) gets that
/// week's edition from the next run, not a week later. A new subscriber waits for the day.
fn missed_weekly(store: &Store, sub: &Subscriber, edition: NaiveDate) -> Result<bool> {
    if sub.frequency != Frequency::Weekly {
        return Ok(false);
    }
    Ok(store.latest_delivery(&sub.key, None)?.is_some_and(|last| last.edition < edition))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-11-27T07:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_streamed_file_subscriber_the_readers_table_knows_is_taken_out_of_the_stream() {
        let dir = tempfile::tempdir().unwrap();
        let list =
            (0..4).map(|i| format!("{{\"email\": \"r{i}@example.org\"}}\n")).collect::<Vec<_>>().concat();
        std::fs::write(dir.path().join("subs.jsonl"), list).unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "subscribers_file = \"subs.jsonl\"\n[mail]\nfrom = \"d@example.org\"\n")
            .unwrap();
        let cfg = Config::load_streaming(&path).unwrap();
        let store = Store::open_in_memory().unwrap();

        let quiet = Roster::new(&cfg, &store).unwrap();
        assert!(quiet.cfg.is_none() && quiet.taken.is_empty());
        assert_eq!(quiet.streamed, 4);

        store.suppress("r1@example.org", "operator", now()).unwrap();
        let roster = Roster::new(&cfg, &store).unwrap();
        let applied = roster.cfg.as_ref().unwrap();
        assert!(applied.subscribers.is_empty(), "the suppressed reader gets nothing");
        assert_eq!(roster.taken, HashSet::from(["r1@example.org".to_string()]), "nor from the stream");
        assert_eq!(roster.streamed, 3);
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
        let shelf = candidates.shelf();
        assert_eq!(shelf.len(), 2);
        let item = |id: &str| Item { id: PaperId(id.into()), score: 1.0, topic: None, matched: vec![] };

        let usual = papers_for(&store, &shelf, [item("2411.2"), item("2411.1")].iter()).unwrap();
        assert!(Arc::ptr_eq(&usual, &shelf), "no copy when the shelf has them all");

        let retried = papers_for(&store, &shelf, [item("2411.1"), item("2411.3")].iter()).unwrap();
        assert_eq!(retried.len(), 3);
        assert!(Arc::ptr_eq(&retried[&PaperId("2411.1".into())], &shelf[&PaperId("2411.1".into())]));
        assert_eq!(retried[&PaperId("2411.3".into())].title, "2411.3");
    }
}
