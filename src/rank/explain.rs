//! Why a paper ranked where it did for one subscriber, or why it was left out: the
//! answer of `paper-digest explain`, serializable for `--format json` and printable as
//! plain lines for a terminal.

use crate::model::{Match, PaperId};
use serde::Serialize;
use std::fmt;

/// The verdict on one paper for one subscriber, with each followed topic's view of it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub paper: PaperId,
    /// `None` when the paper is not among the candidates.
    pub title: Option<String>,
    pub subscriber: String,
    pub verdict: Verdict,
    /// What each of the subscriber's topics made of the paper, in the subscriber's
    /// order; empty for a subscriber without topics.
    pub topics: Vec<TopicVerdict>,
}

/// Where the paper ended up.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Verdict {
    /// In the digest at `rank` (1-based) out of `of` papers.
    Ranked { rank: usize, of: usize, score: Score, topic: Option<String>, matched: Vec<Match> },
    /// Not in this run's candidate window.
    NotCandidate,
    /// Already sent to this subscriber.
    AlreadySeen,
    /// The subscriber voted "Fewer like this" on it.
    Disliked,
    /// No followed topic selected it; [`Explanation::topics`] says why, topic by topic.
    NoTopicMatched,
    /// Selected, but its total score is under the subscriber's `min_score`.
    BelowMinScore { score: Score, min_score: f64, topic: Option<String> },
    /// Good enough, but `max_papers` better papers came first.
    BeyondMaxPapers { position: usize, max_papers: usize, score: Score, topic: Option<String> },
}

/// A total score and the parts it is the sum of.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Score {
    pub total: f64,
    /// The best topic's score (keyword, author, category and `like` matches, times the
    /// topic's weight); for a subscriber without topics, zero.
    pub topic: f64,
    /// Upvotes, log-scaled to 0..1 against the run's most upvoted candidate, times the
    /// subscriber's `trending_weight` (unweighted for a subscriber without topics).
    pub trending: f64,
    /// Freshness in 0..1 times `recency_weight`; zero for a subscriber without topics,
    /// whose digest is ordered by upvotes alone.
    pub recency: f64,
}

/// One topic's view of the paper.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicVerdict {
    pub topic: String,
    pub outcome: TopicOutcome,
}

/// A paper's closeness in meaning to a topic's best papers (cosine to their centroid, in
/// an embedding model's space), beside the bar it must reach: the median best paper's.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Closeness {
    pub cosine: f64,
    pub median: f64,
}

impl fmt::Display for Closeness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "not close enough in meaning: cosine {:.2} under the topic's median {:.2}",
            self.cosine, self.median
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum TopicOutcome {
    /// The topic selects the paper with this (weighted) score, at least the topic's floor.
    Matched { score: f64, floor: f64 },
    /// Some topic evidence, but less than the topic's floor for the day: a fraction of
    /// what its best matches score (docs/ranking.md, "Relevance first").
    BelowFloor {
        score: f64,
        floor: f64,
        matched: Vec<Match>,
        /// With an embedding model: how close in meaning the paper is, when that was too
        /// little to count.
        #[serde(skip_serializing_if = "Option::is_none")]
        meaning: Option<Closeness>,
    },
    /// An `exclude` term occurs in the title or abstract.
    Excluded { term: String },
    /// The topic has `require` terms and none occurs.
    MissingRequired { require: Vec<String> },
    /// No keyword, author, category or liked paper matched, and (with an embedding
    /// model) the paper is not as close in meaning as the topic's median best paper.
    NoMatch {
        #[serde(skip_serializing_if = "Option::is_none")]
        meaning: Option<Closeness>,
    },
    /// Matched, but under the topic's own `min_score`.
    BelowTopicMinScore { score: f64, min_score: f64 },
    /// The subscriber names a topic the config does not define.
    Undefined,
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.title {
            Some(title) => writeln!(f, "paper {} \"{}\" for {}", self.paper, title, self.subscriber)?,
            None => writeln!(f, "paper {} for {}", self.paper, self.subscriber)?,
        }
        match &self.verdict {
            Verdict::Ranked { rank, of, score, topic, matched } => {
                writeln!(f, "ranked #{rank} of {of} with score {}", ScoreLine(score, topic.as_deref()))?;
                for m in matched {
                    writeln!(f, "  matched {} in {} ({:+.2})", m.term, m.field, m.contribution)?;
                }
            }
            Verdict::NotCandidate => {
                writeln!(
                    f,
                    "left out: not among this run's candidates (outside the lookback window or not fetched)"
                )?;
            }
            Verdict::AlreadySeen => writeln!(f, "left out: already sent to this subscriber")?,
            Verdict::Disliked => writeln!(f, "left out: the subscriber voted \"Fewer like this\" on it")?,
            Verdict::NoTopicMatched => match self.topics.as_slice() {
                [only] => writeln!(f, "left out: {}", OutcomeLine(&only.outcome, Some(&only.topic)))?,
                _ => writeln!(f, "left out: none of the subscriber's topics selected it")?,
            },
            Verdict::BelowMinScore { score, min_score, topic } => writeln!(
                f,
                "left out: score {} is below the subscriber's min_score {min_score:.2}",
                ScoreLine(score, topic.as_deref())
            )?,
            Verdict::BeyondMaxPapers { position, max_papers, score, topic } => writeln!(
                f,
                "left out: at position {position}, beyond max_papers = {max_papers}, with score {}",
                ScoreLine(score, topic.as_deref())
            )?,
        }
        if !self.topics.is_empty() {
            writeln!(f, "topics:")?;
            for t in &self.topics {
                writeln!(f, "  {}: {}", t.topic, OutcomeLine(&t.outcome, None))?;
            }
        }
        Ok(())
    }
}

struct ScoreLine<'s>(&'s Score, Option<&'s str>);

impl fmt::Display for ScoreLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (s, topic) = (self.0, self.1);
        write!(f, "{:.2} = ", s.total)?;
        match topic {
            Some(topic) => write!(f, "topic {topic} {:.2} + ", s.topic)?,
            None => write!(f, "no topic + ")?,
        }
        write!(f, "trending {:.2} + recency {:.2}", s.trending, s.recency)
    }
}

/// A topic's outcome in words; `Some(topic)` names the topic, for a line that stands alone.
struct OutcomeLine<'o>(&'o TopicOutcome, Option<&'o str>);

impl fmt::Display for OutcomeLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let of = |f: &mut fmt::Formatter<'_>| match self.1 {
            Some(topic) => write!(f, " of topic {topic}"),
            None => Ok(()),
        };
        match self.0 {
            TopicOutcome::Matched { score, floor } => {
                write!(f, "matched with topic score {score:.2} (the topic's floor today: {floor:.2})")
            }
            TopicOutcome::BelowFloor { score, floor, matched, meaning } => {
                write!(
                    f,
                    "too little topic evidence: topic score {score:.2} is below the topic's floor {floor:.2}"
                )?;
                of(f)?;
                let parts: Vec<String> = matched
                    .iter()
                    .map(|m| format!("{} in {} ({:+.2})", m.term, m.field, m.contribution))
                    .collect();
                if !parts.is_empty() {
                    write!(f, " (matched {})", parts.join(", "))?;
                }
                match meaning {
                    Some(closeness) => write!(f, "; {closeness}"),
                    None => Ok(()),
                }
            }
            TopicOutcome::Excluded { term } => {
                write!(f, "excluded by term \"{term}\"")?;
                of(f)
            }
            TopicOutcome::MissingRequired { require } => {
                write!(f, "missing a required term")?;
                of(f)?;
                write!(f, " (needs one of: {})", require.join(", "))
            }
            TopicOutcome::NoMatch { meaning } => {
                write!(f, "no keyword, author, category or liked paper")?;
                of(f)?;
                write!(f, " matched")?;
                match meaning {
                    Some(closeness) => write!(f, ", and {closeness}"),
                    None => Ok(()),
                }
            }
            TopicOutcome::BelowTopicMinScore { score, min_score } => {
                write!(f, "topic score {score:.2} is below the topic's min_score {min_score:.2}")
            }
            TopicOutcome::Undefined => write!(f, "not a topic the config defines"),
        }
    }
}
