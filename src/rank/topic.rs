//! A topic compiled against the candidates: its keywords resolved to phrase statistics,
//! its authors, categories and liked papers resolved to candidate lists, related terms
//! learned from its best candidates, and the resulting per-paper topic scores, computed
//! once per run and shared by every subscriber who follows the topic.
//!
//! Relevance is decided here, before trending or recency can weigh in: a paper enters
//! the topic only on topic evidence scoring at least the topic's floor, a fraction of
//! what the day's best matches score (see docs/ranking.md, "Relevance first").

use super::analyze::Name;
use super::corpus::{ABSTRACT, Corpus, DocTf, TITLE, sparse_dot};
use super::explain::{Closeness, TopicOutcome};
use super::meaning::{MeaningCore, cosine_leaving_out};
use super::tuning;
use crate::model::Topic;
use crate::model::{Field, Match, Paper, PaperId};
use std::collections::{HashMap, HashSet};

/// What the topic's best papers of the day look like together (Rocchio's centroid of the
/// feedback papers), to judge whether a paper with nothing but an ambiguous keyword is
/// written like them.
#[derive(Debug, Default)]
struct Core {
    /// Sum of the feedback papers' unit TF-IDF vectors times their score shares, by term.
    sum: Vec<(u32, f64)>,
    norm2: f64,
    /// (feedback paper, its weight in `sum`), sorted by paper.
    members: Vec<(u32, f64)>,
    /// The median feedback paper's similarity to the others' centroid; infinite when
    /// there is no core.
    typical: f64,
    /// The nearest feedback paper's similarity to the others' centroid.
    best: f64,
    /// What a paper at least as near as `typical` gains: the day's floor (a fifth of a
    /// solid match), so nearness orders papers with keyword evidence without ever
    /// standing in for it.
    scale: f64,
    /// Index of its label in [`CompiledTopic::terms`].
    term: u32,
}

impl Core {
    fn new(corpus: &Corpus, top: &[(u32, f64)]) -> Core {
        let total: f64 = top.iter().map(|(_, s)| s).sum();
        if top.len() < tuning::FEEDBACK_MIN_DOCS || total <= 0.0 {
            return Core { typical: f64::INFINITY, ..Core::default() };
        }
        let mut sum: HashMap<u32, f64> = HashMap::new();
        let mut members: Vec<(u32, f64)> = top.iter().map(|&(d, s)| (d, s / total)).collect();
        for &(doc, w) in &members {
            for &(t, x) in corpus.vector(doc) {
                *sum.entry(t).or_default() += w * f64::from(x);
            }
        }
        let mut sum: Vec<(u32, f64)> = sum.into_iter().collect();
        sum.sort_unstable_by_key(|(t, _)| *t);
        let norm2 = sum.iter().map(|(_, x)| x * x).sum();
        members.sort_unstable_by_key(|(d, _)| *d);
        let mut core = Core { sum, norm2, members, typical: f64::INFINITY, best: 0.0, scale: 0.0, term: 0 };
        let mut own: Vec<f64> = core.members.iter().map(|&(d, _)| core.similarity(corpus, d)).collect();
        own.sort_by(f64::total_cmp);
        core.typical = own[own.len() / 2];
        core.best = own[own.len() - 1];
        core
    }

    /// Cosine similarity of `doc` to the centroid of the feedback papers other than itself.
    fn similarity(&self, corpus: &Corpus, doc: u32) -> f64 {
        let v = corpus.vector(doc);
        if v.is_empty() || self.sum.is_empty() {
            return 0.0;
        }
        cosine_leaving_out(sparse_dot(&self.sum, v), self.norm2, &self.members, doc)
    }

    /// What nearness adds to a paper with other evidence: `scale × similarity / best`,
    /// at most `scale`: as near as the nearest of the topic's best papers counts fully.
    fn value(&self, corpus: &Corpus, doc: u32) -> f64 {
        if !self.typical.is_finite() || self.best <= 0.0 {
            return 0.0;
        }
        self.scale * (self.similarity(corpus, doc) / self.best).clamp(0.0, 1.0) * tuning::CORE_WEIGHT
    }

    /// Written like the topic's best papers: at least as close to their centroid as the
    /// median one of them is to the others'.
    fn holds(&self, corpus: &Corpus, doc: u32) -> bool {
        self.typical.is_finite() && self.similarity(corpus, doc) >= self.typical
    }
}

/// A paper the topic selects, with its topic score and the matches behind it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) doc: u32,
    pub(crate) score: f64,
    /// Range into [`CompiledTopic::matches`].
    first: u32,
    count: u32,
}

/// What kind of evidence a match is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The keyword at this index of [`CompiledTopic::keywords`].
    Keyword(u32),
    /// A term learned from the topic's best candidates.
    Related,
    /// An author, category or liked paper.
    List,
    /// Nearness to the topic's core (the centroid of its best papers).
    Core,
    /// Closeness in meaning to the topic's best papers, in a static embedding's space:
    /// evidence of its own, for papers that word the subject differently.
    Meaning,
}

/// One match before it is turned into a [`Match`] for output: `term` indexes
/// [`CompiledTopic::terms`].
#[derive(Debug, Clone, Copy)]
struct Contribution {
    doc: u32,
    term: u32,
    field: Field,
    value: f64,
    kind: Kind,
    /// An ambiguous keyword with no other evidence beside it, discounted.
    alone: bool,
}

/// The candidates an author, a category or a liked paper of the topic selects, with
/// what each gets before the topic's weight.
#[derive(Debug)]
struct CandidateList {
    term: u32,
    field: Field,
    docs: Vec<(u32, f64)>,
}

/// A term learned from the topic's best candidates (pseudo-relevance feedback).
#[derive(Debug, Clone)]
pub(crate) struct Related {
    term: u32,
    phrase: usize,
    /// Relative weight in 0..1: the strongest related term has 1.
    weight: f64,
}

#[derive(Debug)]
pub(crate) struct CompiledTopic {
    pub(crate) name: String,
    weight: f64,
    min_score: Option<f64>,
    /// What each match says it matched, as the user wrote it (related terms as the
    /// candidates write them).
    terms: Vec<String>,
    /// Keyword phrases, by term index (`None`: the keyword has no word in it).
    keywords: Vec<(u32, Option<usize>)>,
    /// By keyword: used in another sense too often to count alone (see [`Self::ambiguity`]).
    ambiguous: Vec<bool>,
    /// By keyword: the phrases of the topic's longer keywords that contain it ("test-time"
    /// in "test-time scaling"), whose occurrences it does not count again.
    containers: Vec<Vec<usize>>,
    related: Vec<Related>,
    /// Terms from this index on in `terms` are related terms (they are learned last).
    related_from: u32,
    /// The topic's core: the score-weighted sum of its feedback papers' TF-IDF vectors,
    /// sorted by term, with its squared norm, and each feedback paper's weight in it.
    core: Core,
    /// The same papers in embedding space, when the run has a model; with the day's
    /// floor it was learned at and the index of its label in `terms`.
    meaning: Option<(MeaningCore, f64, u32)>,
    exclude: Vec<(String, Option<usize>)>,
    require: Vec<(String, Option<usize>)>,
    /// One list per author, category and liked paper.
    lists: Vec<CandidateList>,
    /// The least topic score a paper needs to enter: a fraction of the day's best.
    pub(crate) floor: f64,
    /// Sorted by doc.
    pub(crate) hits: Vec<Hit>,
    /// Indices into `hits`, best score first: ranking reads only as deep as it must.
    pub(crate) by_score: Vec<u32>,
    matches: Vec<(u32, Field, f64, bool)>,
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
            let wanted = PaperId::parse(id);
            let paper = liked.iter().chain(candidates).find(|p| p.id == wanted);
            let docs = match paper {
                Some(paper) => {
                    // A liked paper is not its own neighbour.
                    let own = candidates.iter().position(|c| c.id == paper.id).map(|d| d as u32);
                    Corpus::neighbours(&corpus.similarities(paper), own)
                        .into_iter()
                        .map(|(d, strength)| (d, tuning::LIKE_SCORE * strength))
                        .collect()
                }
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
            ambiguous: vec![false; keywords.len()],
            containers: Vec::new(),
            keywords,
            related: Vec::new(),
            related_from: u32::MAX,
            core: Core::default(),
            meaning: None,
            exclude,
            require,
            lists,
            floor: 0.0,
            hits: Vec::new(),
            by_score: Vec::new(),
            matches: Vec::new(),
        };
        compiled.ambiguous = compiled.ambiguity(corpus);
        compiled.containers = compiled
            .keywords
            .iter()
            .map(|&(_, p)| {
                let Some(p) = p else { return Vec::new() };
                let inner = &corpus.phrases[p].terms;
                compiled
                    .keywords
                    .iter()
                    .filter_map(|&(_, q)| q)
                    .filter(|&q| q != p)
                    .filter(|&q| {
                        let outer = &corpus.phrases[q].terms;
                        outer.len() > inner.len() && outer.windows(inner.len()).any(|w| w == inner.as_slice())
                    })
                    .collect()
            })
            .collect();
        // First pass: the keywords alone pick the papers the related terms are learned from.
        let first = compiled.scores(corpus);
        compiled.floor = floor_of(&first);
        compiled.learn_related(corpus, &first);
        // The floor is set by the text's evidence: closeness in meaning adds papers and
        // orders them, but never raises the bar a keyword match must clear.
        let meaning = compiled.meaning.take();
        let second = compiled.scores(corpus);
        compiled.floor = floor_of(&second);
        compiled.meaning = meaning;
        compiled.select(corpus);
        compiled
    }

    /// By keyword, whether it is ambiguous in today's candidates: among the papers using
    /// it (at least [`tuning::AMBIGUITY_MIN_DF`]), fewer than
    /// [`tuning::AMBIGUITY_MIN_COHERENCE`] also carry another keyword of the topic that
    /// shares no word with it. "alignment" beside "RLHF" or "reward model" is about LLM
    /// alignment; "alignment" of image and text, of domains or of gradients is not, and
    /// those papers rarely name a second keyword of the topic.
    fn ambiguity(&self, corpus: &Corpus) -> Vec<bool> {
        let mut out = vec![false; self.keywords.len()];
        for (k, &(_, phrase)) in self.keywords.iter().enumerate() {
            let Some(p) = phrase else { continue };
            let stats = &corpus.phrases[p];
            if stats.hits.len() < tuning::AMBIGUITY_MIN_DF {
                continue;
            }
            let others: Vec<usize> = self
                .keywords
                .iter()
                .enumerate()
                .filter_map(|(j, &(_, q))| q.filter(|_| j != k))
                .filter(|&q| !shares_word(&corpus.phrases[q].terms, &stats.terms))
                .collect();
            if others.is_empty() {
                // Nothing else of the topic could ever stand beside it.
                continue;
            }
            let corroborated = stats
                .hits
                .iter()
                .filter(|h| others.iter().any(|&q| corpus.phrases[q].get(h.doc).is_some()))
                .count();
            out[k] = (corroborated as f64) < tuning::AMBIGUITY_MIN_COHERENCE * stats.hits.len() as f64;
        }
        out
    }

    /// Pseudo-relevance feedback: a relevance model of the topic's best papers of the day
    /// (RM1: their word distributions, weighted by their scores), its words ranked by
    /// their share of its divergence from the candidates' distribution (KLD expansion,
    /// Carpineto et al. 2001), and kept only when they are not function words and their
    /// concentration in those papers is unlikely by chance (Fisher's exact test, at a
    /// false discovery rate of [`tuning::RELATED_FDR`] over every word tried). They find
    /// on-topic papers that share no keyword with the topic. Also sets the topic's
    /// [`Core`] from the same papers.
    fn learn_related(&mut self, corpus: &mut Corpus, scores: &[(u32, f64)]) {
        if self.keywords.is_empty() {
            return;
        }
        let mut top: Vec<(u32, f64)> = scores.iter().copied().filter(|(_, s)| *s >= self.floor).collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        top.truncate(tuning::FEEDBACK_DOCS);
        self.core = Core::new(corpus, &top);
        if top.len() < tuning::FEEDBACK_MIN_DOCS {
            return;
        }
        if let Some(meaning) = corpus.meanings.as_ref().and_then(|m| MeaningCore::new(m, &top)) {
            self.meaning = Some((meaning, self.floor, self.terms.len() as u32));
            self.terms.push("similar in meaning to the topic's best papers".to_string());
        }
        self.core.scale = self.floor;
        self.core.term = self.terms.len() as u32;
        self.terms.push("nearness to the topic's best papers".to_string());
        let own: HashSet<u32> = self
            .keywords
            .iter()
            .filter_map(|(_, p)| *p)
            .chain(self.exclude.iter().filter_map(|(_, p)| *p))
            .flat_map(|p| corpus.phrases[p].terms.clone())
            .collect();
        let total: f64 = top.iter().map(|(_, s)| s).sum();
        let mut weight: HashMap<u32, f64> = HashMap::new();
        let mut in_docs: HashMap<u32, usize> = HashMap::new();
        for &(doc, score) in &top {
            let (counts, len) = corpus.term_counts(doc);
            for &(t, c) in counts {
                *weight.entry(t).or_default() += (f64::from(c) / len.max(1.0)) * (score / total);
                *in_docs.entry(t).or_default() += 1;
            }
        }
        // Every word of the feedback papers is a hypothesis ("this word goes with the
        // topic"); only those whose concentration in the feedback papers chance explains
        // poorly, at a false discovery rate of RELATED_FDR over all of them, are kept.
        // On a day of 140 candidates a word in 3 of the 10 best papers and 10 others is
        // chance ("designed", "will"); on a day of 1,000 it would not be.
        let tested: Vec<(u32, f64, f64)> = weight
            .into_iter()
            .filter(|(t, _)| !own.contains(t) && !corpus.stopword.get(*t as usize).copied().unwrap_or(true))
            .filter(|(t, _)| corpus.surface(*t).chars().filter(|c| c.is_alphabetic()).count() >= 3)
            .map(|(t, w)| {
                let docs = in_docs.get(&t).copied().unwrap_or(0);
                let df = corpus.df.get(t as usize).copied().unwrap_or(0) as usize;
                let p = if docs >= tuning::RELATED_MIN_DOCS {
                    corpus.enrichment_p(df, top.len(), docs)
                } else {
                    1.0
                };
                (t, w, p)
            })
            .collect();
        let cutoff = benjamini_hochberg(tested.iter().map(|x| x.2), tuning::RELATED_FDR);
        let mut learned: Vec<(u32, f64)> = tested
            .into_iter()
            .filter(|&(_, _, p)| p <= cutoff)
            .filter_map(|(t, w, _)| {
                // Kullback-Leibler divergence of the feedback model from the candidates':
                // how much of what sets the topic's papers apart this word accounts for.
                let background =
                    corpus.collection_p.get(t as usize).copied().unwrap_or(0.0).max(f64::MIN_POSITIVE);
                (w > background).then(|| (t, w * (w / background).ln()))
            })
            .collect();
        learned.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        learned.truncate(tuning::RELATED_TERMS);
        let strongest = learned.first().map_or(1.0, |l| l.1);
        self.related_from = self.terms.len() as u32;
        for (t, w) in learned {
            let phrase = corpus.term_phrase(t);
            self.related.push(Related { term: self.terms.len() as u32, phrase, weight: w / strongest });
            self.terms.push(corpus.surface(t).to_string());
        }
    }

    /// The topic score of every paper that passes exclude, require and the evidence rule,
    /// ignoring the floor and `min_score`: what the floor and feedback are computed from.
    fn scores(&self, corpus: &Corpus) -> Vec<(u32, f64)> {
        let contributions = self.contributions(corpus, None);
        let mut out = Vec::new();
        let mut i = 0;
        while i < contributions.len() {
            let doc = contributions[i].doc;
            let end = i + contributions[i..].iter().take_while(|c| c.doc == doc).count();
            if let Ok(score) = self.evidence(corpus, doc, &contributions[i..end]) {
                out.push((doc, score));
            }
            i = end;
        }
        out
    }

    /// Scores every candidate the topic touches and keeps those it selects.
    fn select(&mut self, corpus: &Corpus) {
        let contributions = self.contributions(corpus, None);
        let mut i = 0;
        while i < contributions.len() {
            let doc = contributions[i].doc;
            let end = i + contributions[i..].iter().take_while(|c| c.doc == doc).count();
            if let TopicOutcome::Matched { score, .. } = self.judge(corpus, doc, &contributions[i..end]) {
                let first = self.matches.len() as u32;
                // Related terms summed per field under one synthetic term ("related: a, b"),
                // strongest first: built once here rather than for every subscriber.
                let mut related: [(String, f64); 2] = Default::default();
                for c in &contributions[i..end] {
                    if c.kind == Kind::Related {
                        let (names, sum) = &mut related[usize::from(c.field == Field::Abstract)];
                        names.push_str(if names.is_empty() { "related: " } else { ", " });
                        names.push_str(&self.terms[c.term as usize]);
                        *sum += c.value;
                    } else if let (Kind::Meaning, Some(label)) = (c.kind, self.meaning_label(corpus, doc)) {
                        self.matches.push((self.terms.len() as u32, c.field, c.value, false));
                        self.terms.push(label);
                    } else {
                        self.matches.push((c.term, c.field, c.value, c.alone));
                    }
                }
                for (field, (names, sum)) in [Field::Title, Field::Abstract].into_iter().zip(related) {
                    if !names.is_empty() {
                        self.matches.push((self.terms.len() as u32, field, sum, false));
                        self.terms.push(names);
                    }
                }
                self.matches[first as usize..]
                    .sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
                let count = self.matches.len() as u32 - first;
                self.hits.push(Hit { doc, score, first, count });
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
    /// Ambiguous keywords standing alone are already discounted.
    fn contributions(&self, corpus: &Corpus, only: Option<u32>) -> Vec<Contribution> {
        let mut out = Vec::new();
        let wanted = |doc: u32| only.is_none_or(|o| o == doc);
        let no_containers: &[usize] = &[];
        let phrases = self
            .keywords
            .iter()
            .enumerate()
            .map(|(k, &(term, phrase))| {
                let containers = self.containers.get(k).map_or(no_containers, Vec::as_slice);
                (term, phrase, Kind::Keyword(k as u32), 1.0, containers)
            })
            .chain(self.related.iter().map(|r| {
                (r.term, Some(r.phrase), Kind::Related, tuning::RELATED_WEIGHT * r.weight, no_containers)
            }));
        for (term, phrase, kind, factor, containers) in phrases {
            let Some(stats) = phrase.map(|p| &corpus.phrases[p]) else { continue };
            let hits: &[DocTf] = match only {
                Some(doc) => stats.get(doc).map(std::slice::from_ref).unwrap_or_default(),
                None => &stats.hits,
            };
            for hit in hits {
                let doc = &corpus.docs[hit.doc as usize];
                // BM25F: term frequencies are length-normalized and weighted per field,
                // summed, then saturated once, so a title match counts more than an
                // abstract match without letting either grow without bound.
                // An occurrence inside a longer keyword's occurrence is that keyword's:
                // "test-time scaling" does not also count as "test-time".
                let inside = |field: usize| -> f64 {
                    containers.iter().map(|&q| f64::from(corpus.phrases[q].exact_in(hit.doc)[field])).sum()
                };
                let field_tf = |field: usize| {
                    let b = tuning::BM25_B[field];
                    let norm = 1.0 - b + b * doc.len[field] / corpus.avg_len[field].max(1.0);
                    let tf = (f64::from(hit.tf[field]) - inside(field)).max(0.0);
                    tuning::FIELD_WEIGHT[field] * tf / norm
                };
                let parts = [field_tf(TITLE), field_tf(ABSTRACT)];
                let tf = parts[0] + parts[1];
                if tf <= 0.0 {
                    continue;
                }
                let score =
                    stats.idf * tf * (tuning::BM25_K1 + 1.0) / (tf + tuning::BM25_K1) * self.weight * factor;
                for (field, part) in [(Field::Title, parts[0]), (Field::Abstract, parts[1])] {
                    if part > 0.0 {
                        out.push(Contribution {
                            doc: hit.doc,
                            term,
                            field,
                            value: score * part / tf,
                            kind,
                            alone: false,
                        });
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
                    kind: Kind::List,
                    alone: false,
                });
            }
        }
        self.meaning_contributions(corpus, only, &mut out);
        if only.is_none() {
            group_by_doc(&mut out, corpus.docs.len());
        }
        let mut i = 0;
        let mut with_core = Vec::with_capacity(out.len() + out.len() / 2);
        while i < out.len() {
            let doc = out[i].doc;
            let end = i + out[i..].iter().take_while(|c| c.doc == doc).count();
            self.discount_alone(corpus, &mut out[i..end]);
            with_core.extend_from_slice(&out[i..end]);
            // Only beside evidence of its own: nearness orders, it never admits.
            if self.core.scale > 0.0
                && out[i..end].iter().any(|c| matches!(c.kind, Kind::Keyword(_) | Kind::List))
            {
                let value = self.core.value(corpus, doc) * self.weight;
                if value > 0.0 {
                    with_core.push(Contribution {
                        doc,
                        term: self.core.term,
                        field: Field::Abstract,
                        value,
                        kind: Kind::Core,
                        alone: false,
                    });
                }
            }
            i = end;
        }
        with_core
    }

    /// Closeness in meaning, for every candidate (or `only`) close enough to count: see
    /// [`MeaningCore::value`].
    fn meaning_contributions(&self, corpus: &Corpus, only: Option<u32>, out: &mut Vec<Contribution>) {
        if let (Some((core, scale, term)), Some(meanings)) = (&self.meaning, &corpus.meanings) {
            let docs = match only {
                Some(doc) => doc..doc + 1,
                None => 0..corpus.docs.len() as u32,
            };
            for doc in docs {
                let value = core.value(meanings, doc) * scale * self.weight;
                if value > 0.0 {
                    out.push(Contribution {
                        doc,
                        term: *term,
                        field: Field::Abstract,
                        value,
                        kind: Kind::Meaning,
                        alone: false,
                    });
                }
            }
        }
    }

    /// An ambiguous keyword counts fully only beside other evidence of the topic: another
    /// keyword sharing no word with it, a related term, or an author, category or liked
    /// paper. Alone it counts [`tuning::ALONE_WEIGHT`].
    fn discount_alone(&self, corpus: &Corpus, group: &mut [Contribution]) {
        let keyword_terms = |k: u32| {
            self.keywords[k as usize].1.map(|p| corpus.phrases[p].terms.as_slice()).unwrap_or_default()
        };
        let doc = group.first().map(|c| c.doc);
        // Written like the topic's best papers: the words around the keyword are the
        // topic's, taken together, even when no single one of them is a related term.
        let near_core = std::cell::OnceCell::new();
        let supported = |k: u32| {
            group.iter().any(|c| match c.kind {
                Kind::Related | Kind::List | Kind::Meaning => true,
                Kind::Core => false,
                Kind::Keyword(j) => j != k && !shares_word(keyword_terms(j), keyword_terms(k)),
            }) || *near_core.get_or_init(|| doc.is_some_and(|d| self.core.holds(corpus, d)))
        };
        // In the title the keyword names what the paper is about: only abstract uses wait
        // for support.
        let in_title = |k: u32| group.iter().any(|c| c.kind == Kind::Keyword(k) && c.field == Field::Title);
        let alone: Vec<bool> = group
            .iter()
            .map(|c| {
                matches!(c.kind, Kind::Keyword(k)
                    if self.ambiguous[k as usize] && !in_title(k) && !supported(k))
            })
            .collect();
        for (c, alone) in group.iter_mut().zip(alone) {
            if alone {
                c.value *= tuning::ALONE_WEIGHT;
                c.alone = true;
            }
        }
    }

    /// The paper's topic score, or why it has no standing at all (exclude, require,
    /// nothing matched, a single related term).
    fn evidence(
        &self,
        corpus: &Corpus,
        doc: u32,
        contributions: &[Contribution],
    ) -> Result<f64, TopicOutcome> {
        let present = |phrase: &Option<usize>| phrase.is_some_and(|p| corpus.phrases[p].get(doc).is_some());
        if let Some((term, _)) = self.exclude.iter().find(|(_, p)| present(p)) {
            return Err(TopicOutcome::Excluded { term: term.clone() });
        }
        if contributions.is_empty() {
            return Err(TopicOutcome::NoMatch { meaning: self.closeness(corpus, doc) });
        }
        if !self.require.is_empty() && !self.require.iter().any(|(_, p)| present(p)) {
            return Err(TopicOutcome::MissingRequired {
                require: self.require.iter().map(|(t, _)| t.clone()).collect(),
            });
        }
        // Related terms are learned, not chosen: alone, one of them proves nothing.
        if !contributions.iter().any(|c| matches!(c.kind, Kind::Keyword(_) | Kind::List | Kind::Meaning)) {
            let mut related: Vec<u32> =
                contributions.iter().filter(|c| c.kind == Kind::Related).map(|c| c.term).collect();
            related.dedup();
            if related.len() < tuning::RELATED_MIN_MATCHED {
                return Err(TopicOutcome::NoMatch { meaning: self.closeness(corpus, doc) });
            }
        }
        Ok(contributions.iter().map(|c| c.value).sum())
    }

    fn judge(&self, corpus: &Corpus, doc: u32, contributions: &[Contribution]) -> TopicOutcome {
        let score = match self.evidence(corpus, doc, contributions) {
            Ok(score) => score,
            Err(outcome) => return outcome,
        };
        if score < self.floor {
            let mut parts: Vec<(u32, Field, f64, bool)> =
                contributions.iter().map(|c| (c.term, c.field, c.value, c.alone)).collect();
            parts.sort_by(|a, b| b.2.total_cmp(&a.2).then((a.0, a.1).cmp(&(b.0, b.1))));
            let matched = self.output(&parts);
            return TopicOutcome::BelowFloor {
                score,
                floor: self.floor,
                matched,
                meaning: self.closeness(corpus, doc),
            };
        }
        match self.min_score {
            Some(min_score) if score < min_score => TopicOutcome::BelowTopicMinScore { score, min_score },
            _ => TopicOutcome::Matched { score, floor: self.floor },
        }
    }

    /// How close in meaning `doc` is, for explaining why that did not count: `None`
    /// without a model, or when it did count (it is then a match of its own).
    fn closeness(&self, corpus: &Corpus, doc: u32) -> Option<Closeness> {
        let (core, _, _) = self.meaning.as_ref()?;
        let cosine = core.similarity(corpus.meanings.as_ref()?, doc);
        (cosine < core.typical || cosine <= 0.0).then_some(Closeness { cosine, median: core.typical })
    }

    /// What lifted `doc` in meaning, with the numbers, short enough for a digest's chip:
    /// "similar in meaning (cosine 0.31; the topic's median 0.23)": the paper's closeness
    /// to the centroid of the topic's best papers, and the median best paper's.
    fn meaning_label(&self, corpus: &Corpus, doc: u32) -> Option<String> {
        let (core, _, _) = self.meaning.as_ref()?;
        let meanings = corpus.meanings.as_ref()?;
        Some(format!(
            "similar in meaning (cosine {:.2}; the topic's median {:.2})",
            core.similarity(meanings, doc),
            core.typical
        ))
    }

    /// The related terms learned for the topic today, strongest first, with weights.
    pub(crate) fn related_terms(&self) -> Vec<(String, f64)> {
        self.related.iter().map(|r| (self.terms[r.term as usize].clone(), r.weight)).collect()
    }

    /// Matches ready for output, strongest first: each keyword, author, category and
    /// liked paper on its own, the related terms of a field together as one ("related:
    /// control, tracking"), which keeps digests short and ranking cheap.
    fn output(&self, parts: &[(u32, Field, f64, bool)]) -> Vec<Match> {
        let mut out: Vec<Match> = Vec::with_capacity(parts.len());
        let mut related: [(String, f64); 2] = Default::default();
        for &(term, field, value, alone) in parts {
            if term >= self.related_from {
                let (names, sum) = &mut related[usize::from(field == Field::Abstract)];
                let name = &self.terms[term as usize];
                if !names.split(", ").any(|n| n == name) {
                    if !names.is_empty() {
                        names.push_str(", ");
                    }
                    names.push_str(name);
                }
                *sum += value;
            } else {
                out.push(self.to_match((term, field, value, alone)));
            }
        }
        for (field, (names, sum)) in [Field::Title, Field::Abstract].into_iter().zip(related) {
            if !names.is_empty() {
                out.push(Match { term: format!("related: {names}"), field, contribution: sum });
            }
        }
        out.sort_by(|a, b| b.contribution.total_cmp(&a.contribution));
        out
    }

    /// The matches behind a hit, strongest first, ready for output.
    pub(crate) fn matched(&self, hit: &Hit) -> Vec<Match> {
        let range = hit.first as usize..(hit.first + hit.count) as usize;
        self.matches[range].iter().map(|&m| self.to_match(m)).collect()
    }

    fn to_match(&self, (term, field, contribution, alone): (u32, Field, f64, bool)) -> Match {
        let written = &self.terms[term as usize];
        Match {
            term: if alone { format!("{written} (alone, ambiguous)") } else { written.clone() },
            field,
            contribution,
        }
    }

    /// Where `doc` sits in `hits`, if the topic selects it.
    pub(crate) fn hit_of(&self, doc: u32) -> Option<usize> {
        self.hits.binary_search_by_key(&doc, |h| h.doc).ok()
    }
}

/// The floor of a day's topic scores: [`tuning::FLOOR_FRACTION`] of the mean of the
/// [`tuning::FLOOR_REFERENCE`] best, the day's solid matches.
fn floor_of(scores: &[(u32, f64)]) -> f64 {
    let mut best: Vec<f64> = scores.iter().map(|(_, s)| *s).collect();
    best.sort_by(|a, b| b.total_cmp(a));
    best.truncate(tuning::FLOOR_REFERENCE);
    if best.is_empty() {
        return 0.0;
    }
    tuning::FLOOR_FRACTION * best.iter().sum::<f64>() / best.len() as f64
}

/// The Benjamini-Hochberg cutoff: the largest p-value `p(i)` (the i-th smallest of m) with
/// `p(i) <= q * i / m`; keeping every hypothesis at or under it bounds the expected share
/// of false discoveries by `q`. Below every p-value (nothing kept) when none qualifies.
fn benjamini_hochberg(p_values: impl Iterator<Item = f64>, q: f64) -> f64 {
    let mut sorted: Vec<f64> = p_values.collect();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .filter(|&(i, &p)| p <= q * (i + 1) as f64 / m)
        .map(|(_, &p)| p)
        .next_back()
        .unwrap_or(-1.0)
}

fn shares_word(a: &[u32], b: &[u32]) -> bool {
    a.iter().any(|t| b.contains(t))
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

const EMPTY: Contribution =
    Contribution { doc: 0, term: 0, field: Field::Title, value: 0.0, kind: Kind::List, alone: false };

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn benjamini_hochberg_keeps_the_p_values_under_the_stepped_line() {
        // m = 5, q = 0.05: the line is 0.01, 0.02, 0.03, 0.04, 0.05.
        let cutoff = benjamini_hochberg([0.001, 0.5, 0.025, 0.3, 0.012].into_iter(), 0.05);
        assert!((cutoff - 0.025).abs() < 1e-12, "{cutoff}");
        // A p-value under its own step but above every later one still counts: the
        // largest qualifying rank decides.
        assert!((benjamini_hochberg([0.04, 0.04, 0.04, 0.04, 0.04].into_iter(), 0.05) - 0.04).abs() < 1e-12);
        assert!(benjamini_hochberg([0.2, 0.6].into_iter(), 0.05) < 0.0, "nothing qualifies");
        assert!(benjamini_hochberg(std::iter::empty(), 0.05) < 0.0);
    }
}
