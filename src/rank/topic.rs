//! A topic compiled against the candidates: its keywords resolved to phrase statistics,
//! its authors, categories and liked papers resolved to candidate lists, and the
//! resulting per-paper topic scores, computed once per run and shared by every
//! subscriber who follows the topic.

use super::analyze::Name;
use super::corpus::{ABSTRACT, Corpus, TITLE};
use super::explain::TopicOutcome;
use super::tuning;
use crate::config::Topic;
use crate::model::{Field, Match, Paper};

/// A paper the topic selects, with its topic score and the matches behind it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) doc: u32,
    pub(crate) score: f64,
    /// Range into [`CompiledTopic::matches`].
    first: u32,
    count: u32,
}

/// One match before it is turned into a [`Match`] for output: `term` indexes
/// [`CompiledTopic::terms`].
#[derive(Debug, Clone, Copy)]
struct Contribution {
    doc: u32,
    term: u32,
    field: Field,
    value: f64,
}

/// The candidates an author, a category or a liked paper of the topic selects, with
/// what each gets before the topic's weight.
#[derive(Debug)]
struct CandidateList {
    term: u32,
    field: Field,
    docs: Vec<(u32, f64)>,
}

#[derive(Debug)]
pub(crate) struct CompiledTopic {
    pub(crate) name: String,
    weight: f64,
    min_score: Option<f64>,
    /// What each match says it matched, as the user wrote it.
    terms: Vec<String>,
    /// Keyword phrases, by term index (`None`: the keyword has no word in it).
    keywords: Vec<(u32, Option<usize>)>,
    exclude: Vec<(String, Option<usize>)>,
    require: Vec<(String, Option<usize>)>,
    /// One list per author, category and liked paper.
    lists: Vec<CandidateList>,
    /// Sorted by doc.
    pub(crate) hits: Vec<Hit>,
    /// Indices into `hits`, best score first: ranking reads only as deep as it must.
    pub(crate) by_score: Vec<u32>,
    matches: Vec<(u32, Field, f64)>,
}

impl CompiledTopic {
    pub(crate) fn compile(
        name: &str,
        topic: &Topic,
        corpus: &mut Corpus,
        liked: &[Paper],
        candidates: &[Paper],
    ) -> Self {
        let mut terms = Vec::new();
        let mut keywords = Vec::new();
        for keyword in &topic.keywords {
            keywords.push((terms.len() as u32, corpus.phrase(keyword)));
            terms.push(keyword.clone());
        }
        let exclude = topic.exclude.iter().map(|t| (t.clone(), corpus.phrase(t))).collect();
        let require = topic.require.iter().map(|t| (t.clone(), corpus.phrase(t))).collect();

        let mut lists = Vec::new();
        for author in &topic.authors {
            let docs = Name::parse(author).map(|n| corpus.authored_by(&n)).unwrap_or_default();
            let docs = docs.into_iter().map(|d| (d, tuning::AUTHOR_SCORE)).collect();
            lists.push(CandidateList { term: terms.len() as u32, field: Field::Author, docs });
            terms.push(author.clone());
        }
        for category in &topic.categories {
            let docs =
                corpus.in_category(category).into_iter().map(|d| (d, tuning::CATEGORY_SCORE)).collect();
            lists.push(CandidateList { term: terms.len() as u32, field: Field::Category, docs });
            terms.push(category.clone());
        }
        for id in &topic.like {
            let wanted = normalize_arxiv_id(id);
            let paper = liked.iter().chain(candidates).find(|p| normalize_arxiv_id(p.id.as_str()) == wanted);
            let docs = match paper {
                Some(paper) => corpus
                    .similarities(paper)
                    .into_iter()
                    .enumerate()
                    // A liked paper is not its own neighbour.
                    .filter(|(d, sim)| *sim >= tuning::LIKE_MIN_SIMILARITY && candidates[*d].id != paper.id)
                    .map(|(d, sim)| (d as u32, tuning::LIKE_SCORE * sim))
                    .collect(),
                None => Vec::new(),
            };
            lists.push(CandidateList { term: terms.len() as u32, field: Field::Abstract, docs });
            terms.push(format!("similar to {wanted}"));
        }

        let mut compiled = CompiledTopic {
            name: name.to_string(),
            weight: topic.weight,
            min_score: topic.min_score,
            terms,
            keywords,
            exclude,
            require,
            lists,
            hits: Vec::new(),
            by_score: Vec::new(),
            matches: Vec::new(),
        };
        compiled.select(corpus);
        compiled
    }

    /// Scores every candidate the topic touches and keeps those it selects.
    fn select(&mut self, corpus: &Corpus) {
        let contributions = self.contributions(corpus, None);
        let mut i = 0;
        while i < contributions.len() {
            let doc = contributions[i].doc;
            let end = i + contributions[i..].iter().take_while(|c| c.doc == doc).count();
            if let TopicOutcome::Matched { score } = self.judge(corpus, doc, &contributions[i..end]) {
                let first = self.matches.len() as u32;
                self.matches.extend(contributions[i..end].iter().map(|c| (c.term, c.field, c.value)));
                // Strongest first, sorted once here rather than for every subscriber.
                self.matches[first as usize..]
                    .sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
                self.hits.push(Hit { doc, score, first, count: (end - i) as u32 });
            }
            i = end;
        }
        self.by_score = (0..self.hits.len() as u32).collect();
        self.by_score.sort_by(|a, b| {
            self.hits[*b as usize].score.total_cmp(&self.hits[*a as usize].score).then(a.cmp(b))
        });
    }

    /// Why the topic selects `doc` or not: the same computation [`Self::select`] made.
    pub(crate) fn outcome(&self, corpus: &Corpus, doc: u32) -> TopicOutcome {
        let contributions = self.contributions(corpus, Some(doc));
        self.judge(corpus, doc, &contributions)
    }

    /// The topic-weighted matches of the candidates the topic touches (or of `only`),
    /// sorted by doc and then term (the order they are pushed in), so that a paper's
    /// score is summed in the same order whether one paper is asked about or all.
    fn contributions(&self, corpus: &Corpus, only: Option<u32>) -> Vec<Contribution> {
        let mut out = Vec::new();
        let wanted = |doc: u32| only.is_none_or(|o| o == doc);
        for &(term, phrase) in &self.keywords {
            let Some(stats) = phrase.map(|p| &corpus.phrases[p]) else { continue };
            let hits: &[_] = match only {
                Some(doc) => stats.get(doc).map(std::slice::from_ref).unwrap_or_default(),
                None => &stats.hits,
            };
            for hit in hits {
                let doc = &corpus.docs[hit.doc as usize];
                // BM25F: term frequencies are length-normalized and weighted per field,
                // summed, then saturated once, so a title match counts more than an
                // abstract match without letting either grow without bound.
                let field_tf = |field: usize| {
                    let b = tuning::BM25_B[field];
                    let norm = 1.0 - b + b * doc.len[field] / corpus.avg_len[field].max(1.0);
                    tuning::FIELD_WEIGHT[field] * f64::from(hit.tf[field]) / norm
                };
                let parts = [field_tf(TITLE), field_tf(ABSTRACT)];
                let tf = parts[0] + parts[1];
                if tf <= 0.0 {
                    continue;
                }
                let score = stats.idf * tf * (tuning::BM25_K1 + 1.0) / (tf + tuning::BM25_K1) * self.weight;
                for (field, part) in [(Field::Title, parts[0]), (Field::Abstract, parts[1])] {
                    if part > 0.0 {
                        out.push(Contribution { doc: hit.doc, term, field, value: score * part / tf });
                    }
                }
            }
        }
        for list in &self.lists {
            for &(doc, value) in list.docs.iter().filter(|(d, _)| wanted(*d)) {
                out.push(Contribution {
                    doc,
                    term: list.term,
                    field: list.field,
                    value: value * self.weight,
                });
            }
        }
        if only.is_none() {
            group_by_doc(&mut out, corpus.docs.len());
        }
        out
    }

    fn judge(&self, corpus: &Corpus, doc: u32, contributions: &[Contribution]) -> TopicOutcome {
        let present = |phrase: &Option<usize>| phrase.is_some_and(|p| corpus.phrases[p].get(doc).is_some());
        if let Some((term, _)) = self.exclude.iter().find(|(_, p)| present(p)) {
            return TopicOutcome::Excluded { term: term.clone() };
        }
        if contributions.is_empty() {
            return TopicOutcome::NoMatch;
        }
        if !self.require.is_empty() && !self.require.iter().any(|(_, p)| present(p)) {
            return TopicOutcome::MissingRequired {
                require: self.require.iter().map(|(t, _)| t.clone()).collect(),
            };
        }
        let score: f64 = contributions.iter().map(|c| c.value).sum();
        match self.min_score {
            Some(min_score) if score < min_score => TopicOutcome::BelowTopicMinScore { score, min_score },
            _ => TopicOutcome::Matched { score },
        }
    }

    /// The matches behind a hit, strongest first, ready for output.
    pub(crate) fn matched(&self, hit: &Hit) -> Vec<Match> {
        let range = hit.first as usize..(hit.first + hit.count) as usize;
        self.matches[range]
            .iter()
            .map(|&(term, field, contribution)| Match {
                term: self.terms[term as usize].clone(),
                field,
                contribution,
            })
            .collect()
    }
}

/// A stable counting sort by doc: linear in contributions plus candidates, where a
/// comparison sort of a few thousand contributions per topic dominated `Index::new`.
fn group_by_doc(contributions: &mut Vec<Contribution>, docs: usize) {
    let mut start = vec![0u32; docs + 1];
    for c in contributions.iter() {
        start[c.doc as usize + 1] += 1;
    }
    for d in 0..docs {
        start[d + 1] += start[d];
    }
    let mut sorted = vec![contributions.first().copied().unwrap_or(EMPTY); contributions.len()];
    for c in contributions.iter() {
        let at = &mut start[c.doc as usize];
        sorted[*at as usize] = *c;
        *at += 1;
    }
    *contributions = sorted;
}

const EMPTY: Contribution = Contribution { doc: 0, term: 0, field: Field::Title, value: 0.0 };

/// "arXiv:2405.12345v2" and "2405.12345" name the same paper.
fn normalize_arxiv_id(id: &str) -> String {
    let id = id.trim();
    let id = id.strip_prefix("arXiv:").or_else(|| id.strip_prefix("arxiv:")).unwrap_or(id);
    let id = match id.rfind('v') {
        Some(at) if at > 0 && id[at + 1..].chars().all(|c| c.is_ascii_digit()) && at + 1 < id.len() => {
            &id[..at]
        }
        _ => id,
    };
    id.to_string()
}
