//! Ranking: pure functions from candidate papers and a subscriber's topics to a scored,
//! explained list. (stub: being written)

use crate::config::{Subscriber, Topic};
use crate::model::{Paper, PaperId, Ranked};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashSet};

/// The candidates of one run, indexed once and shared by every subscriber's ranking.
#[derive(Debug)]
pub struct Index<'a> {
    candidates: &'a [Paper],
}

impl<'a> Index<'a> {
    pub fn new(
        candidates: &'a [Paper],
        _topics: &BTreeMap<String, Topic>,
        _liked: &[Paper],
        _now: DateTime<Utc>,
        _recency_weight: f64,
    ) -> Self {
        Index { candidates }
    }

    /// The subscriber's best unseen papers, best first, at most `max_papers`.
    pub fn rank(&self, sub: &Subscriber, seen: &HashSet<PaperId>) -> Vec<Ranked<'a>> {
        self.candidates
            .iter()
            .filter(|p| !seen.contains(&p.id))
            .take(sub.max_papers)
            .map(|paper| Ranked { paper, score: f64::from(paper.upvotes), topic: None, matched: Vec::new() })
            .collect()
    }
}
