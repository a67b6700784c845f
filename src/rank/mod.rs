//! Ranking: pure functions from candidate papers and a subscriber's topics to a scored,
//! explained list. No I/O and no clock: the caller passes `now`.
//!
//! [`Index::new`] analyzes the candidates once per run (folding, Unicode word
//! segmentation, English stemming, positional postings) and compiles every configured
//! topic against them, so a topic's per-paper scores are computed once however many
//! subscribers follow it. [`Index::rank`] then only merges the subscriber's topics, adds
//! the trending and recency signals, and picks the best unseen papers.
//!
//! A paper's score for a subscriber is
//! `best topic score + trending_weight × trending + recency_weight × recency`, where a
//! topic score sums BM25F keyword matches (title boosted, acronyms that are also words
//! matched as acronyms, phrases also by in-order proximity, ambiguous keywords
//! discounted when alone), related terms learned from the topic's best
//! papers (only words whose concentration there is unlikely by chance), nearness to
//! those papers' centroid, followed authors, arXiv categories and TF-IDF similarity to
//! liked papers, times the topic's weight. Only
//! papers whose topic score reaches the topic's floor for the day enter, so trending and
//! recency reorder relevant papers and never make one relevant. [`Feedback`] (a
//! subscriber's "more like this" / "fewer like this" votes) moves topic scores toward
//! the liked papers' neighbours and away from the disliked ones'. See docs/ranking.md
//! for the full rules and [`tuning`] for the constants.

mod analyze;
mod corpus;
mod explain;
mod meaning;
mod topic;
pub mod tuning;

pub use explain::{Closeness, Explanation, Score, TopicOutcome, TopicVerdict, Verdict};
pub use meaning::{Meanings, MeaningsError};

use crate::model::{Paper, PaperId, Ranked};
use crate::model::{Subscriber, Topic};
use chrono::{DateTime, Utc};
use corpus::Corpus;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use topic::CompiledTopic;

/// The candidates of one run, indexed once and shared by every subscriber's ranking.
#[derive(Debug)]
pub struct Index<'a> {
    candidates: &'a [Paper],
    corpus: Corpus,
    topics: Vec<CompiledTopic>,
    topic_ids: HashMap<String, usize>,
    by_id: HashMap<&'a PaperId, u32>,
    /// Each candidate's position in id order: ties on score go to the smaller id.
    id_rank: Vec<u32>,
    /// `ln(1 + upvotes) / ln(1 + max upvotes)`, in 0..1.
    trending: Vec<f64>,
    /// Freshness times `recency_weight`.
    recency: Vec<f64>,
    /// The range of `trending` and the top of `recency`: what trending and recency can
    /// add at most to a topic score, for stopping early in [`Index::rank`].
    trending_range: (f64, f64),
    recency_max: f64,
    /// Most upvoted first, newer first among equals, then by id: the digest of a
    /// subscriber without topics.
    by_upvotes: Vec<u32>,
}

/// A subscriber's votes on papers: "More like this" and "Fewer like this". Votes on
/// papers that are not among the run's candidates are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    pub liked: Vec<PaperId>,
    pub disliked: Vec<PaperId>,
}

impl Feedback {
    pub fn is_empty(&self) -> bool {
        self.liked.is_empty() && self.disliked.is_empty()
    }
}

/// Feedback resolved against the candidates: what it adds to each candidate's topic
/// scores (Rocchio: the topic vector moves toward the mean of the liked papers and away
/// from the mean of the disliked ones, which shifts a candidate's score by its mean
/// similarity to each side), with the votes behind each shift for explaining it.
#[derive(Debug, Default)]
struct Votes {
    /// By candidate; zero for those near no voted paper.
    shift: Vec<f64>,
    /// By candidate: (voted candidate, liked, what that vote adds).
    because: HashMap<u32, Vec<(u32, bool, f64)>>,
    disliked: HashSet<u32>,
    /// Candidates the subscriber liked, to find the topic their neighbours join.
    liked: Vec<u32>,
}

/// No hit of a topic: a paper that entered through feedback alone.
const NO_HIT: usize = usize::MAX;

/// A candidate's score for one subscriber, before it becomes a [`Ranked`].
#[derive(Debug, Clone, Copy)]
struct Scored {
    doc: u32,
    total: f64,
    topic_score: f64,
    /// Index into `Index::topics`, and into that topic's hits.
    topic: usize,
    hit: usize,
    /// The topic's place in the subscriber's list: the first listed wins a tie.
    slot: usize,
}

impl<'a> Index<'a> {
    pub fn new(
        candidates: &'a [Paper],
        topics: &BTreeMap<String, Topic>,
        liked: &[Paper],
        now: DateTime<Utc>,
        recency_weight: f64,
    ) -> Self {
        Self::with_meanings(candidates, topics, liked, now, recency_weight, None)
    }

    /// [`Index::new`] with the candidates' vectors in a static embedding's space (one per
    /// candidate, in order): each topic then also admits papers as close in meaning to
    /// its best papers of the day as the median of them is (docs/ranking.md). Vectors
    /// that do not match the candidates in number are ignored.
    pub fn with_meanings(
        candidates: &'a [Paper],
        topics: &BTreeMap<String, Topic>,
        liked: &[Paper],
        now: DateTime<Utc>,
        recency_weight: f64,
        meanings: Option<Meanings>,
    ) -> Self {
        let mut corpus = Corpus::new(candidates);
        corpus.meanings = meanings.filter(|m| m.len() == candidates.len() && m.dim() > 0);
        let mut compiled = Vec::with_capacity(topics.len());
        let mut topic_ids = HashMap::with_capacity(topics.len());
        for (name, topic) in topics {
            topic_ids.insert(name.clone(), compiled.len());
            compiled.push(CompiledTopic::compile(name, topic, &mut corpus, liked, candidates));
        }

        let mut by_id = HashMap::with_capacity(candidates.len());
        for (doc, paper) in candidates.iter().enumerate() {
            by_id.entry(&paper.id).or_insert(doc as u32);
        }
        let mut in_id_order: Vec<u32> = (0..candidates.len() as u32).collect();
        in_id_order.sort_by(|a, b| candidates[*a as usize].id.cmp(&candidates[*b as usize].id));
        let mut id_rank = vec![0; candidates.len()];
        for (rank, doc) in in_id_order.iter().enumerate() {
            id_rank[*doc as usize] = rank as u32;
        }

        let most = candidates.iter().map(|p| p.upvotes).max().unwrap_or(0);
        let scale = f64::from(most).ln_1p();
        let trending: Vec<f64> = candidates
            .iter()
            .map(|p| if scale > 0.0 { f64::from(p.upvotes).ln_1p() / scale } else { 0.0 })
            .collect();
        let recency_weight = if recency_weight.is_finite() { recency_weight } else { 0.0 };
        let recency: Vec<f64> =
            candidates.iter().map(|p| recency_weight * freshness(p.published, now)).collect();
        let trending_range = min_max(&trending);
        let recency_max = min_max(&recency).1;

        let mut by_upvotes = in_id_order;
        by_upvotes.sort_by(|a, b| {
            let (pa, pb) = (&candidates[*a as usize], &candidates[*b as usize]);
            pb.upvotes
                .cmp(&pa.upvotes)
                .then(pb.published.cmp(&pa.published))
                .then(id_rank[*a as usize].cmp(&id_rank[*b as usize]))
        });

        Index {
            candidates,
            corpus,
            topics: compiled,
            topic_ids,
            by_id,
            id_rank,
            trending,
            recency,
            trending_range,
            recency_max,
            by_upvotes,
        }
    }

    /// The subscriber's best unseen papers, best first, at most `max_papers`, none
    /// scoring under `min_score`: [`Index::rank_with_feedback`] without votes.
    pub fn rank(&self, sub: &Subscriber, seen: &HashSet<PaperId>) -> Vec<Ranked<'a>> {
        self.rank_with_feedback(sub, seen, &Feedback::default())
    }

    /// The subscriber's best unseen papers given their votes: neighbours of liked papers
    /// move up (and may enter a topic with no keyword), neighbours of disliked ones move
    /// down (and out, below the topic's floor), and disliked papers are never shown.
    pub fn rank_with_feedback(
        &self,
        sub: &Subscriber,
        seen: &HashSet<PaperId>,
        feedback: &Feedback,
    ) -> Vec<Ranked<'a>> {
        let votes = self.votes(feedback);
        let unseen = |doc: u32| {
            !seen.contains(&self.candidates[doc as usize].id)
                && votes.as_ref().is_none_or(|v| !v.disliked.contains(&doc))
        };
        if let Some(votes) = &votes
            && !sub.topics.is_empty()
        {
            let mut scored = self.score(sub, Some(votes));
            scored.retain(|s| s.total >= sub.min_score);
            return self
                .best(scored, sub.max_papers, unseen)
                .iter()
                .map(|s| self.ranked(s, Some(votes)))
                .collect();
        }
        if sub.topics.is_empty() {
            return self
                .by_upvotes
                .iter()
                .filter(|&&doc| self.trending[doc as usize] >= sub.min_score && unseen(doc))
                .take(sub.max_papers)
                .map(|&doc| Ranked {
                    paper: &self.candidates[doc as usize],
                    score: self.trending[doc as usize],
                    topic: None,
                    matched: Vec::new(),
                })
                .collect();
        }
        self.top(sub, unseen).iter().map(|s| self.ranked(s, None)).collect()
    }

    /// Resolves votes to candidates and computes their effect; `None` when no vote names
    /// a candidate.
    fn votes(&self, feedback: &Feedback) -> Option<Votes> {
        let resolve = |ids: &[PaperId]| -> Vec<u32> {
            let mut docs: Vec<u32> = ids.iter().filter_map(|id| self.by_id.get(id).copied()).collect();
            docs.sort_unstable();
            docs.dedup();
            docs
        };
        let (liked, disliked) = (resolve(&feedback.liked), resolve(&feedback.disliked));
        if liked.is_empty() && disliked.is_empty() {
            return None;
        }
        let mut votes = Votes {
            shift: vec![0.0; self.candidates.len()],
            because: HashMap::new(),
            disliked: disliked.iter().copied().collect(),
            liked: liked.clone(),
        };
        for (side, is_like, scale) in
            [(&liked, true, tuning::FEEDBACK_LIKE_SCORE), (&disliked, false, -tuning::FEEDBACK_DISLIKE_SCORE)]
        {
            for &voted in side {
                // Only neighbours move: unrelated papers share a few common words.
                for (doc, strength) in Corpus::neighbours(&self.corpus.similarities_to(voted), Some(voted)) {
                    let value = scale * strength / side.len() as f64;
                    votes.shift[doc as usize] += value;
                    votes.because.entry(doc).or_default().push((voted, is_like, value));
                }
            }
        }
        Some(votes)
    }

    /// What [`Index::score`] followed by [`Index::best`] would pick, reading each topic's
    /// hits best first and stopping once no unread hit can reach the `max_papers`-th
    /// paper found: a hit adds at most `extra` to its topic score.
    fn top(&self, sub: &Subscriber, keep: impl Fn(u32) -> bool) -> Vec<Scored> {
        let slots = self.slots(sub);
        let trending_max =
            if sub.trending_weight >= 0.0 { self.trending_range.1 } else { self.trending_range.0 };
        let extra = sub.trending_weight * trending_max + self.recency_max;
        let limit = sub.max_papers;
        if limit == 0 || slots.is_empty() {
            return Vec::new();
        }
        // Twice the digest per topic usually settles it; each further pass reads 4× deeper.
        let mut depth = limit.saturating_mul(2).max(16);
        loop {
            let mut entries = Vec::new();
            // The best total any unread hit could have.
            let mut bound = f64::NEG_INFINITY;
            for (slot, &t) in slots.iter().enumerate() {
                let topic = &self.topics[t];
                let read = depth.min(topic.by_score.len());
                for &h in &topic.by_score[..read] {
                    entries.push(self.scored(sub, t, h as usize, slot));
                }
                if let Some(&next) = topic.by_score.get(read) {
                    // The margin covers rounding: `total` adds the same terms in another order.
                    bound = bound.max(topic.hits[next as usize].score + extra + 1e-9);
                }
            }
            let complete = bound == f64::NEG_INFINITY;
            if slots.len() > 1 {
                // One entry per paper: its best topic, the first listed among equals.
                entries.sort_unstable_by(|a, b| {
                    a.doc.cmp(&b.doc).then(b.topic_score.total_cmp(&a.topic_score)).then(a.slot.cmp(&b.slot))
                });
                entries.dedup_by_key(|s| s.doc);
            }
            entries.retain(|s| s.total >= sub.min_score);
            let best = self.best(entries, limit, &keep);
            let settled = best.len() == limit && best.last().is_some_and(|s| s.total > bound);
            if complete || settled || bound < sub.min_score {
                return best;
            }
            depth = depth.saturating_mul(4);
        }
    }

    /// Why `id` ranked where it did for `sub`, or why it was left out. Agrees with
    /// [`Index::rank`] called with the same arguments.
    pub fn explain(&self, sub: &Subscriber, id: &PaperId, seen: &HashSet<PaperId>) -> Explanation {
        self.explain_with_feedback(sub, id, seen, &Feedback::default())
    }

    /// [`Index::explain`] given the subscriber's votes: agrees with
    /// [`Index::rank_with_feedback`], and lists each vote's effect among the matches.
    pub fn explain_with_feedback(
        &self,
        sub: &Subscriber,
        id: &PaperId,
        seen: &HashSet<PaperId>,
        feedback: &Feedback,
    ) -> Explanation {
        let mut explanation = Explanation {
            paper: id.clone(),
            title: None,
            subscriber: sub.key.clone(),
            verdict: Verdict::NotCandidate,
            topics: Vec::new(),
        };
        let Some(&doc) = self.by_id.get(id) else { return explanation };
        explanation.title = Some(self.candidates[doc as usize].title.clone());
        explanation.topics = sub
            .topics
            .iter()
            .map(|name| TopicVerdict {
                topic: name.clone(),
                outcome: match self.topic_ids.get(name) {
                    Some(&t) => self.topics[t].outcome(&self.corpus, doc),
                    None => TopicOutcome::Undefined,
                },
            })
            .collect();
        let votes = self.votes(feedback);
        explanation.verdict = self.verdict(sub, doc, seen, votes.as_ref());
        explanation
    }

    fn verdict(&self, sub: &Subscriber, doc: u32, seen: &HashSet<PaperId>, votes: Option<&Votes>) -> Verdict {
        if seen.contains(&self.candidates[doc as usize].id) {
            return Verdict::AlreadySeen;
        }
        if votes.is_some_and(|v| v.disliked.contains(&doc)) {
            return Verdict::Disliked;
        }
        let unseen = |d: u32| {
            !seen.contains(&self.candidates[d as usize].id) && votes.is_none_or(|v| !v.disliked.contains(&d))
        };
        // The subscriber's whole ordering, as `rank` would produce it without the cap.
        let (order, score, topic, matched): (Vec<u32>, Score, Option<String>, Vec<_>) =
            if sub.topics.is_empty() {
                let trending = self.trending[doc as usize];
                let score = Score { total: trending, topic: 0.0, trending, recency: 0.0 };
                if trending < sub.min_score {
                    return Verdict::BelowMinScore { score, min_score: sub.min_score, topic: None };
                }
                let order = self
                    .by_upvotes
                    .iter()
                    .copied()
                    .filter(|&d| self.trending[d as usize] >= sub.min_score && unseen(d))
                    .collect();
                (order, score, None, Vec::new())
            } else {
                let scored = self.score(sub, votes);
                let Some(mine) = scored.iter().find(|s| s.doc == doc).copied() else {
                    return Verdict::NoTopicMatched;
                };
                let score = Score {
                    total: mine.total,
                    topic: mine.topic_score,
                    trending: sub.trending_weight * self.trending[doc as usize],
                    recency: self.recency[doc as usize],
                };
                let topic = Some(self.topics[mine.topic].name.clone());
                if mine.total < sub.min_score {
                    return Verdict::BelowMinScore { score, min_score: sub.min_score, topic };
                }
                let eligible: Vec<Scored> = scored.into_iter().filter(|s| s.total >= sub.min_score).collect();
                let order = self.best(eligible, usize::MAX, unseen).iter().map(|s| s.doc).collect();
                let matched = self.matched(&mine, votes);
                (order, score, topic, matched)
            };
        let position = order.iter().position(|&d| d == doc).map_or(order.len() + 1, |p| p + 1);
        if position <= sub.max_papers {
            Verdict::Ranked { rank: position, of: order.len().min(sub.max_papers), score, topic, matched }
        } else {
            Verdict::BeyondMaxPapers { position, max_papers: sub.max_papers, score, topic }
        }
    }

    /// Every candidate one of the subscriber's topics selects, scored by its best topic
    /// (the first listed among equals) plus trending and recency, with the votes' shift
    /// added to every topic score. Unordered.
    fn score(&self, sub: &Subscriber, votes: Option<&Votes>) -> Vec<Scored> {
        let slots = self.slots(sub);
        let total_hits: usize = slots.iter().map(|&t| self.topics[t].hits.len()).sum();
        let mut out: Vec<Scored> = Vec::with_capacity(total_hits);
        // Where each candidate sits in `out`, for keeping only its best topic.
        let mut at: Vec<u32> = if slots.len() > 1 || votes.is_some() {
            vec![u32::MAX; self.candidates.len()]
        } else {
            Vec::new()
        };
        for (slot, &t) in slots.iter().enumerate() {
            for (h, hit) in self.topics[t].hits.iter().enumerate() {
                let mut entry = self.scored(sub, t, h, slot);
                if let Some(votes) = votes {
                    let shift = votes.shift[hit.doc as usize];
                    entry.topic_score += shift;
                    entry.total += shift;
                    // Disliked neighbours can fall under the floor, and out.
                    if entry.topic_score < self.topics[t].floor {
                        continue;
                    }
                }
                if at.is_empty() {
                    out.push(entry);
                    continue;
                }
                match at[hit.doc as usize] {
                    u32::MAX => {
                        at[hit.doc as usize] = out.len() as u32;
                        out.push(entry);
                    }
                    i if entry.topic_score > out[i as usize].topic_score => out[i as usize] = entry,
                    _ => {}
                }
            }
        }
        if let Some(votes) = votes
            && let Some((slot, home)) = self.home_topic(&slots, votes)
        {
            // Neighbours of liked papers that no topic selected join the topic the liked
            // papers belong to, when the pull alone reaches that topic's floor.
            let floor = self.topics[home].floor;
            for (doc, &shift) in votes.shift.iter().enumerate() {
                if shift > 0.0 && shift >= floor && at[doc] == u32::MAX {
                    out.push(Scored {
                        doc: doc as u32,
                        total: shift + sub.trending_weight * self.trending[doc] + self.recency[doc],
                        topic_score: shift,
                        topic: home,
                        hit: NO_HIT,
                        slot,
                    });
                }
            }
        }
        out
    }

    /// The subscriber's topic selecting the most liked papers (the first listed among
    /// equals), as (slot, topic).
    fn home_topic(&self, slots: &[usize], votes: &Votes) -> Option<(usize, usize)> {
        let liked_in = |t: usize| votes.liked.iter().filter(|&&d| self.topics[t].hit_of(d).is_some()).count();
        let mut best: Option<(usize, usize, usize)> = None;
        for (slot, &t) in slots.iter().enumerate() {
            let n = liked_in(t);
            if best.is_none_or(|(_, _, m)| n > m) {
                best = Some((slot, t, n));
            }
        }
        best.map(|(slot, t, _)| (slot, t))
    }

    /// The subscriber's topics as indices into `topics`, each once, undefined ones left out.
    fn slots(&self, sub: &Subscriber) -> Vec<usize> {
        let mut slots: Vec<usize> = Vec::with_capacity(sub.topics.len());
        for name in &sub.topics {
            if let Some(&t) = self.topic_ids.get(name)
                && !slots.contains(&t)
            {
                slots.push(t);
            }
        }
        slots
    }

    fn scored(&self, sub: &Subscriber, topic: usize, hit: usize, slot: usize) -> Scored {
        let h = &self.topics[topic].hits[hit];
        let doc = h.doc as usize;
        Scored {
            doc: h.doc,
            total: h.score + sub.trending_weight * self.trending[doc] + self.recency[doc],
            topic_score: h.score,
            topic,
            hit,
            slot,
        }
    }

    /// The `limit` best of `scored` that `keep` accepts, best first, ties to the smaller
    /// id. Sorts only as much as it must: usually just the top slice.
    fn best(&self, mut scored: Vec<Scored>, limit: usize, keep: impl Fn(u32) -> bool) -> Vec<Scored> {
        let order = |a: &Scored, b: &Scored| -> Ordering {
            b.total.total_cmp(&a.total).then(self.id_rank[a.doc as usize].cmp(&self.id_rank[b.doc as usize]))
        };
        let mut out = Vec::with_capacity(limit.min(scored.len()));
        let mut start = 0;
        while out.len() < limit && start < scored.len() {
            // Twice what is still missing leaves room for seen papers among the best.
            let want = (limit - out.len()).saturating_mul(2).max(16);
            let end = start.saturating_add(want).min(scored.len());
            if end < scored.len() {
                scored[start..].select_nth_unstable_by(end - start - 1, order);
            }
            let slice = &mut scored[start..end];
            slice.sort_unstable_by(order);
            for s in slice.iter() {
                if keep(s.doc) {
                    out.push(*s);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            start = end;
        }
        out
    }

    fn ranked(&self, s: &Scored, votes: Option<&Votes>) -> Ranked<'a> {
        Ranked {
            paper: &self.candidates[s.doc as usize],
            score: s.total,
            topic: Some(self.topics[s.topic].name.clone()),
            matched: self.matched(s, votes),
        }
    }

    /// The topic's matches behind an entry, then what each vote added or took away.
    fn matched(&self, s: &Scored, votes: Option<&Votes>) -> Vec<crate::model::Match> {
        let topic = &self.topics[s.topic];
        let mut matched = if s.hit == NO_HIT { Vec::new() } else { topic.matched(&topic.hits[s.hit]) };
        if let Some(because) = votes.and_then(|v| v.because.get(&s.doc)) {
            for &(voted, liked, value) in because {
                let id = &self.candidates[voted as usize].id;
                matched.push(crate::model::Match {
                    term: if liked { format!("more like {id}") } else { format!("fewer like {id}") },
                    field: crate::model::Field::Abstract,
                    contribution: value,
                });
            }
        }
        matched
    }

    /// The related terms each topic learned from today's candidates, strongest first,
    /// with their relative weights: for `explain` and for tuning.
    pub fn related_terms(&self, topic: &str) -> Vec<(String, f64)> {
        self.topic_ids.get(topic).map(|&t| self.topics[t].related_terms()).unwrap_or_default()
    }
}

fn min_max(values: &[f64]) -> (f64, f64) {
    values.iter().fold((0.0, 0.0), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// 1 for a paper published now (or in the future), halving every
/// [`tuning::RECENCY_HALF_LIFE_DAYS`]; 0 when the date is unknown.
fn freshness(published: Option<DateTime<Utc>>, now: DateTime<Utc>) -> f64 {
    let Some(published) = published else { return 0.0 };
    let age_days = ((now - published).num_seconds() as f64 / 86_400.0).max(0.0);
    0.5_f64.powf(age_days / tuning::RECENCY_HALF_LIFE_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Field, Frequency};
    use chrono::{TimeZone, Weekday};

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 11, 28, 7, 0, 0).unwrap()
    }

    fn paper(id: &str, title: &str, summary: &str) -> Paper {
        Paper { id: PaperId(id.into()), title: title.into(), summary: summary.into(), ..Paper::default() }
    }

    fn topic(keywords: &[&str]) -> Topic {
        Topic {
            name: String::new(),
            keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
            exclude: Vec::new(),
            require: Vec::new(),
            authors: Vec::new(),
            categories: Vec::new(),
            weight: 1.0,
            min_score: None,
            like: Vec::new(),
        }
    }

    fn subscriber(topics: &[&str]) -> Subscriber {
        Subscriber {
            email: "reader@example.org".parse().unwrap(),
            key: "reader@example.org".into(),
            topics: topics.iter().map(|t| (*t).to_string()).collect(),
            max_papers: 10,
            min_score: 0.0,
            // Off unless a test is about it, so that text alone decides.
            trending_weight: 0.0,
            frequency: Frequency::Daily,
            weekday: Weekday::Mon,
            timezone: chrono_tz::UTC,
        }
    }

    fn topics(list: Vec<(&str, Topic)>) -> BTreeMap<String, Topic> {
        list.into_iter().map(|(name, t)| (name.to_string(), Topic { name: name.to_string(), ..t })).collect()
    }

    fn index<'a>(papers: &'a [Paper], topics: &BTreeMap<String, Topic>) -> Index<'a> {
        Index::new(papers, topics, &[], now(), 0.0)
    }

    fn ids(ranked: &[Ranked<'_>]) -> Vec<String> {
        ranked.iter().map(|r| r.paper.id.0.clone()).collect()
    }

    /// The ids one topic `t` ranks for a default subscriber, best first.
    fn ranking(papers: &[Paper], t: Topic) -> Vec<String> {
        let topics = topics(vec![("t", t)]);
        ids(&index(papers, &topics).rank(&subscriber(&["t"]), &HashSet::new()))
    }

    #[test]
    fn lora_matches_the_word_but_not_inside_exploration_or_laboratory() {
        let papers = [
            paper("1", "Sparse LoRA adapters", ""),
            paper("2", "Exploration in RL", "an exploratory study from our laboratory"),
        ];
        assert_eq!(ranking(&papers, topic(&["LoRA"])), ["1"]);
    }

    #[test]
    fn stemming_matches_inflections_and_possessive_plurals() {
        let papers = [
            paper("1", "Reasoning in LLMs", ""),
            paper("2", "", "the LLMs' reasoning traces"),
            paper("3", "Seasonal forecasting", "for treasonous plots"),
        ];
        // "Reasoning in LLMs" has the phrase's words in the other order: not the phrase.
        assert_eq!(ranking(&papers, topic(&["LLM reasoning"])), ["2"]);
        let mut both = ranking(&papers, topic(&["reasoning", "llm"]));
        both.sort();
        assert_eq!(both, ["1", "2"]);
    }

    #[test]
    fn keywords_match_across_case_and_diacritics() {
        let papers = [paper("1", "A NAÏVE Baseline", ""), paper("2", "A careful baseline", "")];
        assert_eq!(ranking(&papers, topic(&["naive"])), ["1"]);
    }

    #[test]
    fn a_phrase_matches_only_consecutive_words() {
        let papers = [
            paper("1", "Gaussian splatting in real time", ""),
            paper("2", "Gaussian noise", "we study splatting artifacts"),
            paper("3", "Fast rendering", "Gaussian. Splatting is a method"),
        ];
        assert_eq!(ranking(&papers, topic(&["gaussian splatting"])), ["1"]);
    }

    #[test]
    fn hyphenated_and_spaced_or_closed_spellings_match_each_other() {
        let papers = [
            paper("1", "Scaling test-time compute", ""),
            paper("2", "", "more compute at test time"),
            paper("3", "Pretraining at scale", ""),
            paper("4", "Pre-training at scale", ""),
        ];
        assert_eq!(ranking(&papers, topic(&["test time"])), ["1", "2"]);
        assert_eq!(ranking(&papers, topic(&["test-time"])), ["1", "2"]);
        assert_eq!(ranking(&papers, topic(&["pre-training"])), ["3", "4"]);
        assert_eq!(ranking(&papers, topic(&["pretraining"])), ["3", "4"]);
    }

    #[test]
    fn a_title_match_outranks_the_same_match_in_the_abstract() {
        let filler = "we study a problem and report results on benchmarks";
        let papers =
            [paper("1", "A study", &format!("{filler} with video")), paper("2", "Video study", filler)];
        assert_eq!(ranking(&papers, topic(&["video"])), ["2", "1"]);
    }

    #[test]
    fn a_rare_keyword_outweighs_a_common_one() {
        let papers = [
            paper("1", "Models", "diffusion"),
            paper("2", "Models", "transformer"),
            paper("3", "Models", "transformer"),
            paper("4", "Models", "transformer"),
        ];
        assert_eq!(ranking(&papers, topic(&["transformer", "diffusion"]))[0], "1");
    }

    #[test]
    fn repeating_a_keyword_adds_less_and_less() {
        let papers = [
            paper("1", "x", "video"),
            paper("2", "x", "video video"),
            paper("3", "x", "video video video video video video video video"),
            paper("4", "x", "unrelated"),
        ];
        let topics = topics(vec![("t", topic(&["video"]))]);
        let index = index(&papers, &topics);
        let ranked = index.rank(&subscriber(&["t"]), &HashSet::new());
        let score = |id: &str| ranked.iter().find(|r| r.paper.id.0 == id).map(|r| r.score).unwrap();
        let (one, two, eight) = (score("1"), score("2"), score("3"));
        assert!(one < two && two < eight);
        assert!(two - one > (eight - two) / 6.0, "{one} {two} {eight}");
        assert!(eight < 2.5 * one, "saturates: {one} vs {eight}");
    }

    #[test]
    fn an_exclude_term_drops_the_paper() {
        let papers =
            [paper("1", "Gaussian splatting SLAM", ""), paper("2", "Gaussian splatting for scenes", "")];
        let t = Topic { exclude: vec!["slam".into()], ..topic(&["gaussian splatting"]) };
        assert_eq!(ranking(&papers, t), ["2"]);
    }

    #[test]
    fn a_topic_with_require_terms_drops_papers_without_any_of_them() {
        let papers = [
            paper("1", "Test-time scaling for LLMs", ""),
            paper("2", "Test-time adaptation for segmentation", ""),
            paper("3", "Test-time search", "with a large language model"),
        ];
        let t = Topic { require: vec!["LLM".into(), "language model".into()], ..topic(&["test-time"]) };
        let mut got = ranking(&papers, t);
        got.sort();
        assert_eq!(got, ["1", "3"]);
    }

    #[test]
    fn authors_match_despite_initials_and_diacritics() {
        let papers = [
            Paper { authors: vec!["John Smith".into()], ..paper("1", "One", "") },
            Paper { authors: vec!["Zoë Müller".into()], ..paper("2", "Two", "") },
            Paper { authors: vec!["Karl Smith".into(), "Ann Other".into()], ..paper("3", "Three", "") },
        ];
        let t = Topic { authors: vec!["J. Smith".into(), "Zoe Muller".into()], ..topic(&[]) };
        let topics = topics(vec![("t", t)]);
        let index = index(&papers, &topics);
        let ranked = index.rank(&subscriber(&["t"]), &HashSet::new());
        let mut got = ids(&ranked);
        got.sort();
        assert_eq!(got, ["1", "2"]);
        assert!(ranked.iter().all(|r| r.matched[0].field == Field::Author));
    }

    #[test]
    fn categories_match_exactly_or_by_whole_archive() {
        let papers = [
            Paper { categories: vec!["cs.CV".into()], ..paper("1", "One", "") },
            Paper { categories: vec!["cs.CL".into()], ..paper("2", "Two", "") },
            Paper { categories: vec!["stat.ML".into()], ..paper("3", "Three", "") },
        ];
        let exact = Topic { categories: vec!["CS.cv".into()], ..topic(&[]) };
        assert_eq!(ranking(&papers, exact), ["1"]);
        let archive = Topic { categories: vec!["cs".into()], ..topic(&[]) };
        assert_eq!(ranking(&papers, archive), ["1", "2"]);
    }

    #[test]
    fn topic_weight_scales_the_topic_score() {
        let papers = [paper("1", "Video generation", ""), paper("2", "Diffusion models", "")];
        let topics = topics(vec![
            ("video", Topic { weight: 3.0, ..topic(&["video"]) }),
            ("diffusion", topic(&["diffusion"])),
        ]);
        let index = index(&papers, &topics);
        let ranked = index.rank(&subscriber(&["diffusion", "video"]), &HashSet::new());
        assert_eq!(ids(&ranked), ["1", "2"]);
        assert!(
            (ranked[0].score - 3.0 * ranked[1].score).abs() < 1e-9,
            "{} {}",
            ranked[0].score,
            ranked[1].score
        );
    }

    /// Two papers matching `video`, the first in its title, the second only in its
    /// abstract, and the score halfway between theirs.
    fn strong_and_weak() -> (Vec<Paper>, f64) {
        let papers =
            vec![paper("1", "Video models", "we model things"), paper("2", "Models", "one video model")];
        let topics = topics(vec![("t", topic(&["video"]))]);
        let ranked = index(&papers, &topics).rank(&subscriber(&["t"]), &HashSet::new());
        assert_eq!(ids(&ranked), ["1", "2"]);
        let between = f64::midpoint(ranked[0].score, ranked[1].score);
        (papers, between)
    }

    #[test]
    fn a_topic_min_score_drops_weak_matches() {
        let (papers, between) = strong_and_weak();
        let t = Topic { min_score: Some(between), ..topic(&["video"]) };
        assert_eq!(ranking(&papers, t), ["1"]);
    }

    #[test]
    fn a_subscriber_min_score_drops_low_totals() {
        let (papers, between) = strong_and_weak();
        let topics = topics(vec![("t", topic(&["video"]))]);
        let index = index(&papers, &topics);
        let sub = Subscriber { min_score: between, ..subscriber(&["t"]) };
        assert_eq!(ids(&index.rank(&sub, &HashSet::new())), ["1"]);
    }

    #[test]
    fn at_most_max_papers_come_back_and_they_are_the_best() {
        let papers: Vec<Paper> =
            (0..30).map(|i| paper(&format!("{i:02}"), "Video", &"video ".repeat(i % 7 + 1))).collect();
        let topics = topics(vec![("t", topic(&["video"]))]);
        let index = index(&papers, &topics);
        let all = index.rank(&Subscriber { max_papers: 100, ..subscriber(&["t"]) }, &HashSet::new());
        let top = index.rank(&Subscriber { max_papers: 4, ..subscriber(&["t"]) }, &HashSet::new());
        assert_eq!(all.len(), 30);
        assert_eq!(ids(&top), ids(&all[..4]));
    }

    #[test]
    fn upvotes_add_a_log_scaled_signal_times_trending_weight() {
        let papers = [
            Paper { upvotes: 3, ..paper("1", "Video", "") },
            Paper { upvotes: 100, ..paper("2", "Video", "") },
            Paper { upvotes: 0, ..paper("3", "Video", "") },
        ];
        let topics = topics(vec![("t", topic(&["video"]))]);
        let index = index(&papers, &topics);
        let sub = Subscriber { trending_weight: 2.0, ..subscriber(&["t"]) };
        let ranked = index.rank(&sub, &HashSet::new());
        assert_eq!(ids(&ranked), ["2", "1", "3"]);
        let base = ranked[2].score;
        assert!((ranked[0].score - base - 2.0).abs() < 1e-9);
        assert!((ranked[1].score - base - 2.0 * 4f64.ln() / 101f64.ln()).abs() < 1e-9);
    }

    #[test]
    fn newer_papers_rank_above_older_ones_with_the_same_text() {
        let at = |days: i64| Some(now() - chrono::Duration::days(days));
        let papers = [
            Paper { published: at(3), ..paper("1", "Video", "") },
            Paper { published: at(0), ..paper("2", "Video", "") },
            Paper { published: None, ..paper("0", "Video", "") },
        ];
        let topics = topics(vec![("t", topic(&["video"]))]);
        let index = Index::new(&papers, &topics, &[], now(), 1.0);
        let ranked = index.rank(&subscriber(&["t"]), &HashSet::new());
        assert_eq!(ids(&ranked), ["2", "1", "0"]);
        assert!((ranked[0].score - ranked[2].score - 1.0).abs() < 1e-9);
    }

    #[test]
    fn neighbours_of_a_liked_paper_rank_without_any_keyword() {
        let splat = "fast radiance field rendering with anisotropic gaussian primitives and densification";
        let papers = [
            paper("2411.00001", "Compact gaussian primitives for rendering", splat),
            paper("2411.00002", "Reward models for math", "process reward models improve math reasoning"),
            paper("2411.00003", "A survey of surveys", "we survey surveys"),
        ];
        let liked = [paper("2405.12345", "Splatting radiance fields", splat)];
        let t = Topic { like: vec!["arXiv:2405.12345v2".into()], ..topic(&[]) };
        let topics = topics(vec![("t", t)]);
        let index = Index::new(&papers, &topics, &liked, now(), 0.0);
        let ranked = index.rank(&subscriber(&["t"]), &HashSet::new());
        assert_eq!(ids(&ranked), ["2411.00001"]);
        assert_eq!(ranked[0].matched[0].term, "similar to 2405.12345");
    }

    #[test]
    fn a_liked_paper_among_the_candidates_is_not_its_own_neighbour() {
        let papers = [paper("1", "Gaussian splatting", "radiance fields"), paper("2", "Other", "words")];
        let t = Topic { like: vec!["1".into()], ..topic(&[]) };
        assert!(ranking(&papers, t).is_empty());
    }

    #[test]
    fn a_paper_matching_two_topics_scores_by_the_best_and_names_it() {
        let papers = [paper("1", "Video diffusion", "diffusion diffusion video")];
        let topics = topics(vec![("video", topic(&["video"])), ("diffusion", topic(&["diffusion"]))]);
        let index = index(&papers, &topics);
        let ranked = index.rank(&subscriber(&["video", "diffusion"]), &HashSet::new());
        assert_eq!(ranked.len(), 1);
        assert_eq!(ranked[0].topic.as_deref(), Some("diffusion"));
        assert!(ranked[0].matched.iter().all(|m| m.term == "diffusion"));
    }

    #[test]
    fn equal_scores_are_ordered_by_id() {
        let papers = [paper("3", "Video", ""), paper("1", "Video", ""), paper("2", "Video", "")];
        assert_eq!(ranking(&papers, topic(&["video"])), ["1", "2", "3"]);
    }

    #[test]
    fn match_contributions_add_up_to_the_topic_score() {
        let papers =
            [Paper { authors: vec!["Ann Lee".into()], ..paper("1", "Video diffusion", "video models") }];
        let t = Topic { authors: vec!["A. Lee".into()], weight: 2.0, ..topic(&["video", "diffusion"]) };
        let topics = topics(vec![("t", t)]);
        let index = index(&papers, &topics);
        let ranked = index.rank(&subscriber(&["t"]), &HashSet::new());
        let sum: f64 = ranked[0].matched.iter().map(|m| m.contribution).sum();
        assert!((sum - ranked[0].score).abs() < 1e-9);
        let fields: HashSet<Field> = ranked[0].matched.iter().map(|m| m.field).collect();
        assert_eq!(fields, HashSet::from([Field::Title, Field::Abstract, Field::Author]));
    }

    #[test]
    fn a_subscriber_without_topics_gets_the_most_upvoted_with_newer_first_among_equals() {
        let at = |days: i64| Some(now() - chrono::Duration::days(days));
        let papers = [
            Paper { upvotes: 5, published: at(2), ..paper("1", "A", "") },
            Paper { upvotes: 50, published: at(2), ..paper("2", "B", "") },
            Paper { upvotes: 5, published: at(0), ..paper("3", "C", "") },
            Paper { upvotes: 1, published: at(0), ..paper("4", "D", "") },
        ];
        let index = index(&papers, &BTreeMap::new());
        let sub = Subscriber { max_papers: 3, ..subscriber(&[]) };
        let ranked = index.rank(&sub, &HashSet::new());
        assert_eq!(ids(&ranked), ["2", "3", "1"]);
        assert!(ranked.iter().all(|r| r.topic.is_none()));
    }

    #[test]
    fn seen_papers_never_come_back() {
        let papers = [paper("1", "Video", ""), paper("2", "Video", ""), paper("3", "Video", "")];
        let topics = topics(vec![("t", topic(&["video"]))]);
        let index = index(&papers, &topics);
        let seen = HashSet::from([PaperId("1".into())]);
        let sub = Subscriber { max_papers: 1, ..subscriber(&["t"]) };
        assert_eq!(ids(&index.rank(&sub, &seen)), ["2"]);
        assert_eq!(ids(&index.rank(&Subscriber { max_papers: 1, ..subscriber(&[]) }, &seen)), ["2"]);
    }

    #[test]
    fn ranking_is_the_same_whatever_the_candidate_order() {
        let mut papers: Vec<Paper> = (0..40)
            .map(|i| Paper {
                upvotes: i % 5,
                ..paper(&format!("{i:02}"), "Video", &"video ".repeat(i as usize % 3 + 1))
            })
            .collect();
        let topics = topics(vec![("t", topic(&["video"]))]);
        let sub = Subscriber { trending_weight: 1.0, ..subscriber(&["t"]) };
        let first = ids(&index(&papers, &topics).rank(&sub, &HashSet::new()));
        papers.reverse();
        assert_eq!(ids(&index(&papers, &topics).rank(&sub, &HashSet::new())), first);
    }

    #[test]
    fn stopping_early_picks_exactly_what_scoring_everything_picks() {
        let words = ["video", "diffusion", "lora", "attention", "model", "data", "scaling", "graph"];
        let mut rng = fastrand::Rng::with_seed(7);
        let mut text =
            |n: usize| (0..n).map(|_| words[rng.usize(..words.len())]).collect::<Vec<_>>().join(" ");
        let papers: Vec<Paper> = (0..200)
            .map(|i| Paper {
                upvotes: (i * 37 % 101) as u32,
                published: Some(now() - chrono::Duration::hours(i64::from(i % 70))),
                ..paper(&format!("{i:03}"), &text(3), &text(30))
            })
            .collect();
        let topics = topics(
            (0..6).map(|t| (["a", "b", "c", "d", "e", "f"][t], topic(&[words[t], words[t + 2]]))).collect(),
        );
        let index = Index::new(&papers, &topics, &[], now(), 0.7);
        let seen: HashSet<PaperId> = (0..200).step_by(3).map(|i| PaperId(format!("{i:03}"))).collect();
        for (n, follows) in
            [vec!["a"], vec!["a", "b"], vec!["c", "d", "e"], vec!["f", "a", "c"]].iter().enumerate()
        {
            for (max_papers, min_score, trending_weight) in
                [(1, 0.0, 1.0), (10, 0.0, 3.0), (10, 2.0, -1.0), (60, 0.5, 0.0)]
            {
                let sub = Subscriber { max_papers, min_score, trending_weight, ..subscriber(follows) };
                let mut everything = index.score(&sub, None);
                everything.retain(|s| s.total >= min_score);
                let expected: Vec<u32> = index
                    .best(everything, max_papers, |d| !seen.contains(&papers[d as usize].id))
                    .iter()
                    .map(|s| s.doc)
                    .collect();
                let got: Vec<u32> = index
                    .top(&sub, |d| !seen.contains(&papers[d as usize].id))
                    .iter()
                    .map(|s| s.doc)
                    .collect();
                assert_eq!(got, expected, "case {n}, max_papers {max_papers}, min_score {min_score}");
            }
        }
    }

    // Reader feedback.

    /// Two splatting papers that match the topic alike, one close in wording to a third
    /// paper (the one voted on), plus an unrelated one.
    fn voting_papers() -> Vec<Paper> {
        vec![
            paper(
                "1",
                "Gaussian splatting for city scenes",
                "large urban scenes with aerial images and level of detail",
            ),
            paper(
                "2",
                "Gaussian splatting for avatars",
                "animatable human avatars with expressive faces and hands",
            ),
            paper(
                "3",
                "City-scale reconstruction",
                "large urban scenes from aerial images with level of detail streaming",
            ),
            paper("4", "Reward models", "process reward models for math"),
        ]
    }

    fn feedback(liked: &[&str], disliked: &[&str]) -> Feedback {
        let ids = |v: &[&str]| v.iter().map(|i| PaperId((*i).to_string())).collect();
        Feedback { liked: ids(liked), disliked: ids(disliked) }
    }

    #[test]
    fn no_votes_rank_exactly_as_rank_does() {
        let papers = voting_papers();
        let topics = topics(vec![("gs", topic(&["gaussian splatting"]))]);
        let index = index(&papers, &topics);
        let sub = subscriber(&["gs"]);
        let plain = index.rank(&sub, &HashSet::new());
        assert_eq!(index.rank_with_feedback(&sub, &HashSet::new(), &Feedback::default()), plain);
        // Votes on papers outside the candidates change nothing either.
        assert_eq!(index.rank_with_feedback(&sub, &HashSet::new(), &feedback(&["9999"], &["8888"])), plain);
    }

    #[test]
    fn a_liked_paper_pulls_its_neighbours_up_and_into_the_topic() {
        let papers = voting_papers();
        let topics = topics(vec![("gs", topic(&["gaussian splatting"]))]);
        let index = index(&papers, &topics);
        let sub = subscriber(&["gs"]);
        let liked = feedback(&["3"], &[]);
        // Paper 3 is liked (and was read): its neighbour 1 moves up; the avatar paper,
        // unlike it, stays where it was.
        let seen = HashSet::from([PaperId("3".into())]);
        assert_eq!(ids(&index.rank(&sub, &seen)), ["2", "1"], "the shorter title first");
        let ranked = index.rank_with_feedback(&sub, &seen, &liked);
        assert_eq!(ids(&ranked), ["1", "2"]);
        let before = index.rank(&sub, &seen);
        assert!(ranked[0].score > before[1].score, "paper 1 gained");
        assert!(ranked[0].matched.iter().any(|m| m.term == "more like 3" && m.contribution > 0.0));
        assert!((ranked[1].score - before[0].score).abs() < 1e-9, "paper 2 did not move");
        // Liking paper 1 brings in paper 3, which has no keyword at all.
        let seen = HashSet::from([PaperId("1".into())]);
        let ranked = index.rank_with_feedback(&sub, &seen, &feedback(&["1"], &[]));
        assert_eq!(ids(&ranked), ["3", "2"]);
        assert_eq!(ranked[0].topic.as_deref(), Some("gs"));
    }

    #[test]
    fn a_disliked_paper_is_never_shown_and_its_neighbours_move_down() {
        let papers = voting_papers();
        let topics = topics(vec![("gs", topic(&["gaussian splatting", "reconstruction"]))]);
        let index = index(&papers, &topics);
        let sub = subscriber(&["gs"]);
        let before = index.rank(&sub, &HashSet::new());
        assert!(ids(&before).iter().any(|i| i == "3"));
        let votes = feedback(&[], &["3"]);
        let after = index.rank_with_feedback(&sub, &HashSet::new(), &votes);
        assert!(!ids(&after).iter().any(|i| i == "3"));
        let score_of =
            |ranked: &[Ranked<'_>], id: &str| ranked.iter().find(|r| r.paper.id.0 == id).map(|r| r.score);
        match (score_of(&before, "1"), score_of(&after, "1")) {
            (Some(b), Some(a)) => assert!(a < b, "{a} < {b}"),
            (Some(_), None) => {} // pushed under the floor: out
            other => panic!("{other:?}"),
        }
        assert_eq!(score_of(&after, "2"), score_of(&before, "2"), "the unrelated paper does not move");
        let e = index.explain_with_feedback(&sub, &PaperId("3".into()), &HashSet::new(), &votes);
        assert_eq!(e.verdict, Verdict::Disliked);
        assert!(e.to_string().contains("Fewer like this"), "{e}");
    }

    #[test]
    fn explain_with_feedback_shows_each_votes_effect_and_agrees_with_the_ranking() {
        let papers = voting_papers();
        let topics = topics(vec![("gs", topic(&["gaussian splatting"]))]);
        let index = index(&papers, &topics);
        let sub = subscriber(&["gs"]);
        let votes = feedback(&["3"], &["2"]);
        let ranked = index.rank_with_feedback(&sub, &HashSet::new(), &votes);
        let e = index.explain_with_feedback(&sub, &PaperId("1".into()), &HashSet::new(), &votes);
        let Verdict::Ranked { rank, score, .. } = &e.verdict else { panic!("{e}") };
        let at = ranked.iter().position(|r| r.paper.id.0 == "1").map(|p| p + 1);
        assert_eq!(Some(*rank), at);
        assert_eq!(ranked[*rank - 1].score.to_bits(), score.total.to_bits());
        assert!(e.to_string().contains("matched more like 3 in abstract (+"), "{e}");
    }

    // Related terms.

    #[test]
    fn related_terms_are_words_the_topics_papers_share_beyond_chance_never_function_words() {
        // Eight splatting papers all say "rasterize" (nobody else does) and "will"; three
        // of them say "designed", as do twelve of the fifty-two other papers.
        let mut papers: Vec<Paper> = (0..8)
            .map(|i| {
                let designed = if i < 3 { " It was designed for speed." } else { "" };
                paper(
                    &format!("t{i}"),
                    &format!("Gaussian splatting of scene {i}"),
                    &format!("We rasterize kernels; code will be released.{designed}"),
                )
            })
            .collect();
        papers.extend((0..52).map(|i| {
            let designed = if i < 12 { " A designed study." } else { "" };
            paper(&format!("o{i:02}"), &format!("Other subject {i}"), &format!("Notes on item{i}.{designed}"))
        }));
        let topics = topics(vec![("gs", topic(&["gaussian splatting"]))]);
        let index = index(&papers, &topics);
        let related: Vec<String> = index.related_terms("gs").into_iter().map(|(t, _)| t).collect();
        assert!(related.iter().any(|t| t == "rasterize"), "{related:?}");
        assert!(!related.iter().any(|t| t == "designed" || t == "will"), "{related:?}");
    }

    #[test]
    fn an_ambiguous_keyword_alone_counts_fully_in_a_paper_written_like_the_topics_best() {
        // "retrieval" is ambiguous here: most papers using it name no other keyword. A
        // paper that reads like the topic's best papers gets it in full; one that does not
        // gets a quarter.
        let mut papers: Vec<Paper> = (0..4)
            .map(|i| {
                paper(
                    &format!("r{i}"),
                    &format!("Dense retrieval with reranking {i}"),
                    &format!("passage index queries documents retrieval reranking alpha{i} beta{i} gamma{i}"),
                )
            })
            .collect();
        papers.push(paper("near", "Hashing for search", "passage index queries documents retrieval"));
        papers.extend((0..8).map(|i| {
            paper(&format!("far{i}"), &format!("Robot arm {i}"), "motor torque grasp retrieval of objects")
        }));
        papers
            .extend((0..8).map(|i| paper(&format!("x{i}"), &format!("Filler {i}"), "unrelated words here")));
        let topics = topics(vec![("ir", topic(&["retrieval", "reranking"]))]);
        let index = index(&papers, &topics);
        let sub = subscriber(&["ir"]);
        let matched = |id: &str| {
            let e = index.explain(&sub, &PaperId(id.into()), &HashSet::new());
            e.to_string()
        };
        let near = matched("near");
        let far = matched("far0");
        assert!(!near.contains("(alone, ambiguous)"), "{near}");
        assert!(far.contains("(alone, ambiguous)"), "{far}");
    }

    // Relevance first.

    #[test]
    fn trending_never_lifts_a_paper_without_enough_topic_evidence() {
        // The PokerGPT case: a hugely upvoted paper that mentions the topic in passing.
        let mut papers: Vec<Paper> = (0..5)
            .map(|i| {
                paper(
                    &format!("{i}"),
                    "Efficient training of large models",
                    "efficient training at scale, efficient training",
                )
            })
            .collect();
        papers.push(Paper {
            upvotes: 10_000,
            ..paper(
                "poker",
                "PokerGPT: a poker solver",
                "a lightweight model playing poker. Its training takes a day",
            )
        });
        let topics = topics(vec![("t", topic(&["efficient training", "training"]))]);
        let index = index(&papers, &topics);
        let sub = Subscriber { trending_weight: 100.0, ..subscriber(&["t"]) };
        let ranked = index.rank(&sub, &HashSet::new());
        assert!(!ids(&ranked).iter().any(|i| i == "poker"), "{:?}", ids(&ranked));
        let e = index.explain(&sub, &PaperId("poker".into()), &HashSet::new());
        assert!(matches!(e.topics[0].outcome, TopicOutcome::BelowFloor { .. }), "{e}");
        assert!(e.to_string().contains("below the topic's floor"), "{e}");
    }

    #[test]
    fn a_subscriber_without_topics_still_gets_the_trending_list_whatever_the_votes() {
        let papers = voting_papers();
        let index = index(&papers, &BTreeMap::new());
        let sub = subscriber(&[]);
        let ranked = index.rank_with_feedback(&sub, &HashSet::new(), &feedback(&["1"], &["2"]));
        assert_eq!(ranked.len(), papers.len() - 1, "all but the disliked paper");
    }

    #[test]
    fn an_index_can_be_shared_across_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Index<'static>>();
    }

    // Explanations.

    fn explained(
        papers: &[Paper],
        topics: &BTreeMap<String, Topic>,
        sub: &Subscriber,
        id: &str,
    ) -> Explanation {
        index(papers, topics).explain(sub, &PaperId(id.into()), &HashSet::from([PaperId("seen".into())]))
    }

    #[test]
    fn explain_gives_rank_score_topic_and_matches_of_a_ranked_paper() {
        let papers = [paper("1", "Video generation", "video"), paper("2", "Video", "")];
        let topics = topics(vec![("vid", topic(&["video generation", "video"]))]);
        let e = explained(&papers, &topics, &subscriber(&["vid"]), "2");
        let Verdict::Ranked { rank, of, topic, matched, score } = &e.verdict else { panic!("{e}") };
        assert_eq!((*rank, *of, topic.as_deref()), (2, 2, Some("vid")));
        assert_eq!(matched[0].term, "video");
        assert!(score.total > 0.0);
        let text = e.to_string();
        assert!(text.contains("ranked #2 of 2"), "{text}");
        assert!(text.contains("matched video in title"), "{text}");
    }

    #[test]
    fn explain_says_a_paper_is_not_a_candidate_or_already_seen() {
        let papers = [paper("seen", "Video", "")];
        let topics = topics(vec![("vid", topic(&["video"]))]);
        let sub = subscriber(&["vid"]);
        assert_eq!(explained(&papers, &topics, &sub, "nope").verdict, Verdict::NotCandidate);
        assert_eq!(explained(&papers, &topics, &sub, "seen").verdict, Verdict::AlreadySeen);
        assert!(
            explained(&papers, &topics, &sub, "nope").to_string().contains("not among this run's candidates")
        );
    }

    #[test]
    fn explain_names_the_exclude_term_and_topic_that_dropped_a_paper() {
        let papers = [paper("1", "Gaussian splatting SLAM", "")];
        let topics =
            topics(vec![("gs", Topic { exclude: vec!["SLAM".into()], ..topic(&["gaussian splatting"]) })]);
        let e = explained(&papers, &topics, &subscriber(&["gs"]), "1");
        assert_eq!(e.verdict, Verdict::NoTopicMatched);
        assert_eq!(e.topics[0].outcome, TopicOutcome::Excluded { term: "SLAM".into() });
        assert!(e.to_string().contains("left out: excluded by term \"SLAM\" of topic gs"), "{e}");
    }

    #[test]
    fn explain_says_a_required_term_is_missing() {
        let papers = [paper("1", "Test-time adaptation", "")];
        let topics = topics(vec![("ttc", Topic { require: vec!["LLM".into()], ..topic(&["test-time"]) })]);
        let e = explained(&papers, &topics, &subscriber(&["ttc"]), "1");
        assert_eq!(e.topics[0].outcome, TopicOutcome::MissingRequired { require: vec!["LLM".into()] });
        assert!(e.to_string().contains("missing a required term"), "{e}");
    }

    #[test]
    fn explain_says_a_score_is_below_min_score() {
        let papers = [paper("1", "Models", "video")];
        let topics = topics(vec![("vid", topic(&["video"]))]);
        let sub = Subscriber { min_score: 100.0, ..subscriber(&["vid"]) };
        let e = explained(&papers, &topics, &sub, "1");
        assert!(
            matches!(e.verdict, Verdict::BelowMinScore { min_score, .. } if (min_score - 100.0).abs() < 1e-9),
            "{e}"
        );
        assert!(e.to_string().contains("below the subscriber's min_score 100.00"), "{e}");
    }

    #[test]
    fn explain_says_a_paper_fell_beyond_max_papers_at_its_position() {
        let papers = [paper("1", "Video", "video"), paper("2", "Video", ""), paper("3", "Models", "video")];
        let topics = topics(vec![("vid", topic(&["video"]))]);
        let sub = Subscriber { max_papers: 1, ..subscriber(&["vid"]) };
        let e = explained(&papers, &topics, &sub, "3");
        assert!(matches!(e.verdict, Verdict::BeyondMaxPapers { position: 3, max_papers: 1, .. }), "{e}");
        assert!(e.to_string().contains("at position 3, beyond max_papers = 1"), "{e}");
    }

    #[test]
    fn explain_lists_an_undefined_topic() {
        let papers = [paper("1", "Video", "")];
        let e = explained(&papers, &BTreeMap::new(), &subscriber(&["gone"]), "1");
        assert_eq!(e.topics[0].outcome, TopicOutcome::Undefined);
    }

    #[test]
    fn explain_agrees_with_rank_for_every_candidate() {
        let papers: Vec<Paper> = (0..25)
            .map(|i| Paper {
                upvotes: (i * 7) % 11,
                ..paper(
                    &format!("{i:02}"),
                    if i % 3 == 0 { "Video diffusion" } else { "Models" },
                    &"video ".repeat(i as usize % 4),
                )
            })
            .collect();
        let topics = topics(vec![("vid", topic(&["video"])), ("diff", topic(&["diffusion"]))]);
        let index = Index::new(&papers, &topics, &[], now(), 0.5);
        let seen = HashSet::from([PaperId("04".into())]);
        for sub in [
            Subscriber {
                max_papers: 5,
                trending_weight: 1.0,
                min_score: 1.0,
                ..subscriber(&["vid", "diff"])
            },
            Subscriber { max_papers: 5, ..subscriber(&[]) },
        ] {
            let ranked = index.rank(&sub, &seen);
            for p in &papers {
                let e = index.explain(&sub, &p.id, &seen);
                match (ranked.iter().position(|r| r.paper.id == p.id), &e.verdict) {
                    (Some(at), Verdict::Ranked { rank, score, topic, .. }) => {
                        assert_eq!(at + 1, *rank);
                        assert_eq!(ranked[at].score.to_bits(), score.total.to_bits(), "same arithmetic");
                        assert_eq!(&ranked[at].topic, topic);
                    }
                    (None, Verdict::Ranked { .. }) | (Some(_), _) => {
                        panic!("rank and explain disagree on {}: {e}", p.id)
                    }
                    (None, _) => {}
                }
            }
        }
    }

    #[test]
    fn an_explanation_serializes_with_a_status_tag() {
        let papers = [paper("1", "Video", "")];
        let topics = topics(vec![("vid", topic(&["video"]))]);
        let e = explained(&papers, &topics, &subscriber(&["vid"]), "1");
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["verdict"]["status"], "ranked");
        assert_eq!(json["verdict"]["matched"][0]["field"], "title");
        assert_eq!(json["topics"][0]["outcome"]["outcome"], "matched");
    }

    /// Four video papers, one on tracking across frames that never says "video", one on
    /// proteins, and one about video that the topic excludes; with vectors that put the
    /// tracking paper beside the video papers and the protein paper elsewhere.
    fn meaning_day() -> (Vec<Paper>, Vec<Vec<f32>>) {
        let papers = vec![
            paper("1", "Video generation with diffusion", "We generate video clips."),
            paper("2", "Long video understanding", "A video benchmark."),
            paper("3", "Video super-resolution", "Restoring video frames."),
            paper("4", "Egocentric video", "First-person video data."),
            paper("5", "Tracking anything in real time", "Objects are followed across image frames."),
            paper("6", "Protein folding at scale", "We fold proteins."),
            paper("7", "Surgical video analysis", "Video of surgery."),
        ];
        let v = |x: f32, y: f32, z: f32| vec![x, y, z];
        let vectors = vec![
            v(1.0, 0.1, 0.0),
            v(1.0, 0.0, 0.2),
            v(1.0, 0.2, 0.1),
            v(1.0, 0.0, 0.3),
            v(1.0, 0.1, 0.1),
            v(0.0, 1.0, 0.0),
            v(1.0, 0.1, 0.0),
        ];
        (papers, vectors)
    }

    #[test]
    fn a_paper_close_in_meaning_to_the_topics_best_papers_enters_with_no_keyword_and_explain_says_why() {
        let (papers, vectors) = meaning_day();
        let topics = topics(vec![("t", Topic { exclude: vec!["surgery".into()], ..topic(&["video"]) })]);
        let sub = subscriber(&["t"]);
        let none = HashSet::new();
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };
        let without = sorted(ids(&index(&papers, &topics).rank(&sub, &none)));
        assert_eq!(without, ["1", "2", "3", "4"], "with no model, only keywords count");

        let meanings = Meanings::new(vectors, papers.len()).unwrap();
        let with = Index::with_meanings(&papers, &topics, &[], now(), 0.0, Some(meanings));
        let ranked = with.rank(&sub, &none);
        // The tracking paper enters, under every paper that names the topic; the protein
        // paper stays out; the excluded one stays out however close in meaning.
        assert_eq!(sorted(ids(&ranked[..4])), without);
        let tracking = &ranked[4];
        assert_eq!(tracking.paper.id.0, "5");
        assert_eq!(tracking.matched.len(), 1, "{:?}", tracking.matched);
        assert!(
            tracking.matched[0].term.starts_with("similar in meaning (cosine "),
            "{:?}",
            tracking.matched[0]
        );
        let e = with.explain(&sub, &PaperId("5".into()), &none);
        assert!(e.to_string().contains("similar in meaning"), "{e}");
        let TopicOutcome::Matched { score, floor } = e.topics[0].outcome else { panic!("{e}") };
        assert!(score >= floor && score <= tuning::MEANING_WEIGHT * floor + 1e-9, "{e}");
        // The protein paper is far in meaning, and explain says by how much.
        let protein = with.explain(&sub, &PaperId("6".into()), &none);
        let TopicOutcome::NoMatch { meaning: Some(closeness) } = protein.topics[0].outcome else {
            panic!("{protein}")
        };
        assert!(closeness.cosine < closeness.median, "{protein}");
        assert!(protein.to_string().contains("not close enough in meaning: cosine "), "{protein}");
        // Without a model, nothing is said of meaning, in text or JSON.
        let plain = index(&papers, &topics).explain(&sub, &PaperId("6".into()), &none);
        assert_eq!(plain.topics[0].outcome, TopicOutcome::NoMatch { meaning: None });
        assert!(!serde_json::to_string(&plain).unwrap().contains("meaning"), "{plain}");
        assert!(matches!(
            with.explain(&sub, &PaperId("7".into()), &none).topics[0].outcome,
            TopicOutcome::Excluded { .. }
        ));
    }

    #[test]
    fn vectors_that_do_not_match_the_candidates_are_ignored() {
        let (papers, mut vectors) = meaning_day();
        vectors.pop();
        let topics = topics(vec![("t", topic(&["video"]))]);
        let meanings = Meanings::new(vectors, papers.len() - 1).unwrap();
        let with = Index::with_meanings(&papers, &topics, &[], now(), 0.0, Some(meanings));
        let mut shown = ids(&with.rank(&subscriber(&["t"]), &HashSet::new()));
        shown.sort();
        assert_eq!(shown, ["1", "2", "3", "4", "7"]);
    }
}
