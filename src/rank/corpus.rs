//! The candidates of one run, analyzed once: token streams, positional postings, field
//! lengths, author and category lookups, and TF-IDF vectors for `like` similarity.
//!
//! Everything a topic query needs is precomputed here so that compiling a topic and
//! ranking a subscriber never touch the papers' text again.

use super::analyze::{Analyzer, FoldedPiece, Name, fold};
use super::tuning;
use crate::model::Paper;
use std::collections::HashMap;
use std::sync::OnceLock;

/// A phrase break inside a token stream; never a term id.
pub(crate) const BREAK: u32 = u32::MAX;
/// A keyword word absent from every candidate: the phrase cannot match.
const UNKNOWN: u32 = u32::MAX - 1;

/// The two text fields, as indices into per-field arrays.
pub(crate) const TITLE: usize = 0;
pub(crate) const ABSTRACT: usize = 1;

/// One occurrence of a term.
#[derive(Debug, Clone, Copy)]
struct Posting {
    doc: u32,
    field: u8,
    /// Position in the field's token stream.
    pos: u32,
    /// Stream tokens this occurrence covers: 1 for a word, n for the closed compound of
    /// an n-word hyphen group ("pre-training" also posts `pretrain` spanning 2).
    span: u8,
    /// Written as an acronym ("CLIP", not "Clipping").
    caps: bool,
}

/// A candidate's analyzed text.
#[derive(Debug)]
pub(crate) struct Doc {
    /// Token streams (term ids, [`BREAK`] between phrases) of title and abstract.
    fields: [Vec<u32>; 2],
    /// Per stream position: written as an acronym.
    caps: [Vec<bool>; 2],
    /// Words per field, not counting breaks.
    pub(crate) len: [f64; 2],
}

/// How often a phrase occurs in one candidate, per field. A phrase whose words stand
/// near each other but not in a row counts as a fraction of an occurrence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct DocTf {
    pub(crate) doc: u32,
    pub(crate) tf: [f32; 2],
}

/// A phrase's occurrences over the candidates, with its inverse document frequency.
#[derive(Debug)]
pub(crate) struct PhraseStats {
    /// Sorted by doc.
    pub(crate) hits: Vec<DocTf>,
    /// The occurrences in a row only (no near ones), sorted by doc.
    pub(crate) exact: Vec<DocTf>,
    pub(crate) idf: f64,
    /// The term ids of its words: two keywords sharing a word are not independent
    /// evidence of a topic.
    pub(crate) terms: Vec<u32>,
}

impl PhraseStats {
    pub(crate) fn get(&self, doc: u32) -> Option<&DocTf> {
        self.hits.binary_search_by_key(&doc, |h| h.doc).ok().map(|i| &self.hits[i])
    }

    /// The in-a-row occurrences in `doc`, per field.
    pub(crate) fn exact_in(&self, doc: u32) -> [f32; 2] {
        self.exact.binary_search_by_key(&doc, |h| h.doc).ok().map_or([0.0; 2], |i| self.exact[i].tf)
    }
}

/// A compiled phrase's identity: its words, its closed form, which words must be acronyms.
type PhraseKey = (Vec<u32>, Option<u32>, Vec<bool>);

#[derive(Debug)]
pub(crate) struct Corpus {
    analyzer: Analyzer,
    /// Stem → term id.
    vocab: HashMap<String, u32>,
    pub(crate) docs: Vec<Doc>,
    /// By term id; each list in doc order.
    postings: Vec<Vec<Posting>>,
    pub(crate) avg_len: [f64; 2],
    /// Keywords as written → phrase, so a keyword many topics share is analyzed once.
    keywords: HashMap<String, Option<usize>>,
    /// Phrases compiled so far, shared by every topic that uses them: keyed by words,
    /// closed form and which words must be acronyms.
    phrase_ids: HashMap<PhraseKey, usize>,
    /// By term id: some candidate writes the term as an ordinary word, not an acronym.
    ordinary: Vec<bool>,
    /// By term id: the first folded word seen with that stem, for showing a learned term.
    surface: Vec<String>,
    /// By term id: candidates using the word (closed compounds of hyphen groups aside).
    pub(crate) df: Vec<u32>,
    /// By term id: the word's share of all words of all candidates.
    pub(crate) collection_p: Vec<f64>,
    /// By term id: an English function word ("will", "the", "which"), from NLTK's list.
    pub(crate) stopword: Vec<bool>,
    /// `ln(i!)` for i up to the number of candidates: hypergeometric tails for related terms.
    ln_factorial: Vec<f64>,
    pub(crate) phrases: Vec<PhraseStats>,
    /// Folded surname → (doc, parsed author name).
    surnames: HashMap<String, Vec<(u32, Name)>>,
    /// Folded arXiv category → docs, sorted.
    categories: HashMap<String, Vec<u32>>,
    /// Sparse unit TF-IDF vectors, sorted by term; built on first `like` or feedback.
    vectors: OnceLock<Vec<Vec<(u32, f32)>>>,
    /// The same vectors by term: (doc, weight) lists, for a voted paper's similarities.
    by_term: OnceLock<Vec<Vec<(u32, f32)>>>,
    /// Per candidate: (term, title-weighted count), sorted by term; built on first use.
    counts: OnceLock<Vec<Vec<(u32, f32)>>>,
    /// The candidates in a static embedding's space, when the run has a model.
    pub(crate) meanings: Option<super::Meanings>,
}

impl Corpus {
    pub(crate) fn new(papers: &[Paper]) -> Self {
        let analyzer = Analyzer::default();
        let mut vocab: HashMap<String, u32> = HashMap::new();
        // Folded word → term id, so each distinct surface word is stemmed once per run.
        let mut memo: HashMap<String, u32> = HashMap::new();
        let mut postings: Vec<Vec<Posting>> = Vec::new();
        let mut docs = Vec::with_capacity(papers.len());
        let mut surnames: HashMap<String, Vec<(u32, Name)>> = HashMap::new();
        let mut categories: HashMap<String, Vec<u32>> = HashMap::new();
        let mut ordinary: Vec<bool> = Vec::new();
        let mut surface: Vec<String> = Vec::new();

        for (d, paper) in papers.iter().enumerate() {
            let doc = d as u32;
            let mut fields: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
            let mut caps_of: [Vec<bool>; 2] = [Vec::new(), Vec::new()];
            let mut len = [0.0; 2];
            for (field, text) in [(TITLE, &paper.title), (ABSTRACT, &paper.summary)] {
                let stream = &mut fields[field];
                let stream_caps = &mut caps_of[field];
                Analyzer::folded_pieces(text, |piece| match piece {
                    FoldedPiece::Word { word, caps } => {
                        let id = intern(&analyzer, &mut memo, &mut vocab, &mut postings, word);
                        if id as usize == ordinary.len() {
                            ordinary.push(false);
                            surface.push(word.to_string());
                        }
                        ordinary[id as usize] |= !caps;
                        postings[id as usize].push(Posting {
                            doc,
                            field: field as u8,
                            pos: stream.len() as u32,
                            span: 1,
                            caps,
                        });
                        stream.push(id);
                        stream_caps.push(caps);
                        len[field] += 1.0;
                    }
                    FoldedPiece::Joined { word, len: words } => {
                        let id = intern(&analyzer, &mut memo, &mut vocab, &mut postings, word);
                        if id as usize == ordinary.len() {
                            ordinary.push(false);
                            surface.push(word.to_string());
                        }
                        let span = words.min(usize::from(u8::MAX));
                        postings[id as usize].push(Posting {
                            doc,
                            field: field as u8,
                            pos: (stream.len() - words) as u32,
                            span: span as u8,
                            caps: false,
                        });
                    }
                    FoldedPiece::Break => {
                        if stream.last().is_some_and(|t| *t != BREAK) {
                            stream.push(BREAK);
                            stream_caps.push(false);
                        }
                    }
                });
            }
            docs.push(Doc { fields, caps: caps_of, len });

            for author in &paper.authors {
                if let Some(name) = Name::parse(author) {
                    surnames.entry(name.surname.clone()).or_default().push((doc, name));
                }
            }
            for category in &paper.categories {
                let list = categories.entry(fold(category.trim())).or_default();
                if list.last() != Some(&doc) {
                    list.push(doc);
                }
            }
        }

        let n = docs.len().max(1) as f64;
        let (df, collection_p) = frequencies(&postings, &docs);
        Corpus {
            stopword: stopwords(&analyzer, &vocab, postings.len()),
            ln_factorial: ln_factorials(docs.len()),
            avg_len: [
                docs.iter().map(|d| d.len[TITLE]).sum::<f64>() / n,
                docs.iter().map(|d| d.len[ABSTRACT]).sum::<f64>() / n,
            ],
            analyzer,
            vocab,
            docs,
            postings,
            collection_p,
            keywords: HashMap::new(),
            phrase_ids: HashMap::new(),
            phrases: Vec::new(),
            ordinary,
            surface,
            df,
            surnames,
            categories,
            vectors: OnceLock::new(),
            by_term: OnceLock::new(),
            counts: OnceLock::new(),
            meanings: None,
        }
    }

    /// The word a term id stands for, as first written by a candidate (folded).
    pub(crate) fn surface(&self, term: u32) -> &str {
        self.surface.get(term as usize).map_or("", String::as_str)
    }

    /// How likely it is that `sample` candidates drawn at random hold at least `hits` of the
    /// `df` candidates using a word: the one-sided p-value of Fisher's exact
    /// (hypergeometric) test that a word is over-represented among a topic's best papers.
    pub(crate) fn enrichment_p(&self, df: usize, sample: usize, hits: usize) -> f64 {
        hypergeometric_tail(&self.ln_factorial, df, sample, hits)
    }

    /// A candidate's term frequencies, title occurrences weighted as in `like` vectors,
    /// with the field lengths summed: what pseudo-relevance feedback reads.
    /// Computed once per run on first use and shared by every topic.
    pub(crate) fn term_counts(&self, doc: u32) -> (&[(u32, f32)], f64) {
        let counts = self.counts.get_or_init(|| {
            self.docs
                .iter()
                .map(|doc| {
                    let mut counts: HashMap<u32, f32> = HashMap::new();
                    for (field, stream) in doc.fields.iter().enumerate() {
                        for &t in stream.iter().filter(|t| **t != BREAK) {
                            *counts.entry(t).or_default() += FIELD_TF[field] as f32;
                        }
                    }
                    let mut counts: Vec<(u32, f32)> = counts.into_iter().collect();
                    counts.sort_unstable_by_key(|(t, _)| *t);
                    counts
                })
                .collect()
        });
        let d = &self.docs[doc as usize];
        (&counts[doc as usize], FIELD_TF[TITLE] * d.len[TITLE] + FIELD_TF[ABSTRACT] * d.len[ABSTRACT])
    }

    /// Compiles one term (a learned related word) as a one-word phrase.
    pub(crate) fn term_phrase(&mut self, term: u32) -> usize {
        let key = (vec![term], None, vec![false]);
        if let Some(&id) = self.phrase_ids.get(&key) {
            return id;
        }
        let hits = self.occurrences(&key.0, true, &key.2);
        self.push_phrase(key, hits.clone(), hits)
    }

    fn push_phrase(&mut self, key: PhraseKey, hits: Vec<DocTf>, exact: Vec<DocTf>) -> usize {
        let n = self.docs.len() as f64;
        let df = hits.len() as f64;
        let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
        let id = self.phrases.len();
        self.phrases.push(PhraseStats { hits, exact, idf, terms: key.0.clone() });
        self.phrase_ids.insert(key, id);
        id
    }

    /// Compiles a keyword (a word or a phrase) into its occurrences over the candidates,
    /// reusing the result when another topic asked for the same phrase. `None` when the
    /// keyword holds no word at all.
    pub(crate) fn phrase(&mut self, keyword: &str) -> Option<usize> {
        if let Some(&known) = self.keywords.get(keyword) {
            return known;
        }
        let id = self.compile_phrase(keyword);
        self.keywords.insert(keyword.to_string(), id);
        id
    }

    fn compile_phrase(&mut self, keyword: &str) -> Option<usize> {
        let written = self.analyzer.words_with_caps(keyword);
        let words: Vec<u32> =
            written.iter().map(|(w, _)| self.vocab.get(w.as_str()).copied().unwrap_or(UNKNOWN)).collect();
        if words.is_empty() {
            return None;
        }
        // An acronym that the candidates also use as an ordinary word ("CLIP" and
        // "Clipping") matches only where it is written as an acronym.
        let caps: Vec<bool> = written
            .iter()
            .zip(&words)
            .map(|((_, caps), &t)| *caps && self.ordinary.get(t as usize).copied().unwrap_or(false))
            .collect();
        // "pre-training" should also find "pretraining" written closed.
        let closed = match self.analyzer.closed_compound(keyword) {
            Some(stem) if words.len() > 1 => Some(self.vocab.get(stem.as_str()).copied().unwrap_or(UNKNOWN)),
            _ => None,
        };
        let key = (words, closed, caps);
        if let Some(&id) = self.phrase_ids.get(&key) {
            return Some(id);
        }
        let mut hits = self.occurrences(&key.0, true, &key.2);
        if let Some(closed) = closed {
            // Only real closed words here: the closed forms posted for hyphen groups are
            // the very occurrences the split phrase already counted.
            merge(&mut hits, self.occurrences(&[closed], false, &[false]));
        }
        let exact = hits.clone();
        if key.0.len() > 1 {
            let near = self.near(&key.0, &key.2, &hits);
            merge(&mut hits, near);
        }
        Some(self.push_phrase(key, hits, exact))
    }

    /// Where the consecutive terms `words` occur, per doc and field; `caps[i]` demands
    /// that word `i` be written as an acronym.
    fn occurrences(&self, words: &[u32], with_joined: bool, caps: &[bool]) -> Vec<DocTf> {
        let Some((&first, rest)) = words.split_first() else { return Vec::new() };
        let Some(list) = self.postings.get(first as usize) else { return Vec::new() };
        let mut out: Vec<DocTf> = Vec::new();
        for p in list {
            if p.span > 1 && !with_joined {
                continue;
            }
            if caps.first().copied().unwrap_or(false) && !p.caps {
                continue;
            }
            let doc = &self.docs[p.doc as usize];
            let stream = &doc.fields[usize::from(p.field)];
            let after = p.pos as usize + usize::from(p.span);
            let follows = stream.get(after..after + rest.len()).is_some_and(|s| s == rest)
                && caps.iter().skip(1).enumerate().all(|(j, need)| {
                    !*need || doc.caps[usize::from(p.field)].get(after + j).copied().unwrap_or(false)
                });
            if !follows {
                continue;
            }
            match out.last_mut() {
                Some(last) if last.doc == p.doc => last.tf[usize::from(p.field)] += 1.0,
                _ => {
                    let mut tf = [0.0; 2];
                    tf[usize::from(p.field)] = 1.0;
                    out.push(DocTf { doc: p.doc, tf });
                }
            }
        }
        out
    }

    /// Fields where a phrase's words all occur close together but never in a row:
    /// "manipulation skills of a robot" for "robot manipulation". Each such field counts
    /// [`tuning::PROXIMITY_WEIGHT`] × (phrase length / tightest window) of an occurrence,
    /// when that window spans at most [`tuning::PROXIMITY_WINDOW`] tokens.
    fn near(&self, words: &[u32], caps: &[bool], exact: &[DocTf]) -> Vec<DocTf> {
        if words.contains(&UNKNOWN) {
            return Vec::new();
        }
        let Some(list) = self.postings.get(words[0] as usize) else { return Vec::new() };
        let mut out: Vec<DocTf> = Vec::new();
        let mut last: Option<(u32, u8)> = None;
        for p in list.iter().filter(|p| p.span == 1) {
            if last == Some((p.doc, p.field)) {
                continue;
            }
            last = Some((p.doc, p.field));
            let field = usize::from(p.field);
            let has_exact =
                exact.binary_search_by_key(&p.doc, |h| h.doc).is_ok_and(|i| exact[i].tf[field] > 0.0);
            if has_exact {
                continue;
            }
            let doc = &self.docs[p.doc as usize];
            let Some(window) = tightest_window(&doc.fields[field], &doc.caps[field], words, caps) else {
                continue;
            };
            if window > tuning::PROXIMITY_WINDOW {
                continue;
            }
            let part = (tuning::PROXIMITY_WEIGHT * words.len() as f64 / window as f64) as f32;
            match out.last_mut() {
                Some(l) if l.doc == p.doc => l.tf[field] += part,
                _ => {
                    let mut tf = [0.0; 2];
                    tf[field] = part;
                    out.push(DocTf { doc: p.doc, tf });
                }
            }
        }
        out
    }

    /// The candidates with an author `name` refers to, each once, in doc order.
    pub(crate) fn authored_by(&self, name: &Name) -> Vec<u32> {
        let mut docs: Vec<u32> = self
            .surnames
            .get(&name.surname)
            .into_iter()
            .flatten()
            .filter(|(_, author)| name.matches(author))
            .map(|(doc, _)| *doc)
            .collect();
        docs.dedup();
        docs
    }

    /// The candidates in an arXiv category: `cs.CL` exactly, or a whole archive (`cs`)
    /// when the topic names one without a dot.
    pub(crate) fn in_category(&self, category: &str) -> Vec<u32> {
        let wanted = fold(category.trim());
        let mut docs: Vec<u32> = if wanted.contains('.') {
            self.categories.get(&wanted).cloned().unwrap_or_default()
        } else {
            self.categories
                .iter()
                .filter(|(c, _)| c.split('.').next() == Some(wanted.as_str()))
                .flat_map(|(_, d)| d.iter().copied())
                .collect()
        };
        docs.sort_unstable();
        docs.dedup();
        docs
    }

    /// Cosine similarity, in TF-IDF space over the candidates, between `liked` and every
    /// candidate. Terms the candidates never use carry no weight: they cannot make two
    /// candidates differ.
    pub(crate) fn similarities(&self, liked: &Paper) -> Vec<f64> {
        let mut counts: HashMap<u32, f64> = HashMap::new();
        for (field, text) in [(TITLE, &liked.title), (ABSTRACT, &liked.summary)] {
            for word in self.analyzer.words(text) {
                if let Some(&id) = self.vocab.get(word.as_str()) {
                    *counts.entry(id).or_default() += FIELD_TF[field];
                }
            }
        }
        let idf = self.term_idf();
        let mut query: Vec<(u32, f64)> =
            counts.into_iter().map(|(t, c)| (t, (1.0 + c.ln()) * idf[t as usize])).collect();
        let norm = query.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        let vectors = self.vectors();
        if norm == 0.0 {
            return vec![0.0; self.docs.len()];
        }
        query.sort_unstable_by_key(|(t, _)| *t);
        vectors.iter().map(|v| sparse_dot(&query, v) / norm).collect()
    }

    /// Cosine similarity between candidate `of` and every candidate, in the same TF-IDF
    /// space: how reader feedback finds a voted paper's neighbours.
    /// Reads only the candidates sharing a word with it, through the vectors by term.
    pub(crate) fn similarities_to(&self, of: u32) -> Vec<f64> {
        let vectors = self.vectors();
        let by_term = self.by_term.get_or_init(|| {
            let mut by_term: Vec<Vec<(u32, f32)>> = vec![Vec::new(); self.postings.len()];
            for (doc, v) in vectors.iter().enumerate() {
                for &(t, w) in v {
                    by_term[t as usize].push((doc as u32, w));
                }
            }
            by_term
        });
        let mut sims = vec![0.0; self.docs.len()];
        for &(t, w) in vectors.get(of as usize).map_or(&[][..], Vec::as_slice) {
            for &(doc, w2) in &by_term[t as usize] {
                sims[doc as usize] += f64::from(w) * f64::from(w2);
            }
        }
        sims
    }

    /// The nearest neighbours among the candidates of a paper whose similarities to every
    /// candidate are `sims` (the paper itself, `own`, left out): at most
    /// [`tuning::NEIGHBOURS`], each at least [`tuning::NEIGHBOUR_RELATIVE`] as similar as
    /// the nearest and above [`tuning::LIKE_MIN_SIMILARITY`], with its strength in 0..=1
    /// relative to the nearest. Closest first, ties by candidate.
    pub(crate) fn neighbours(sims: &[f64], own: Option<u32>) -> Vec<(u32, f64)> {
        let mut near: Vec<(u32, f64)> = sims
            .iter()
            .enumerate()
            .filter(|&(d, &sim)| Some(d as u32) != own && sim >= tuning::LIKE_MIN_SIMILARITY)
            .map(|(d, &sim)| (d as u32, sim))
            .collect();
        near.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        near.truncate(tuning::NEIGHBOURS);
        let Some(&(_, best)) = near.first() else { return near };
        near.retain(|&(_, sim)| sim >= tuning::NEIGHBOUR_RELATIVE * best);
        for n in &mut near {
            n.1 /= best;
        }
        near
    }

    /// Candidate `doc`'s unit TF-IDF vector, sorted by term.
    pub(crate) fn vector(&self, doc: u32) -> &[(u32, f32)] {
        self.vectors().get(doc as usize).map_or(&[][..], Vec::as_slice)
    }

    fn vectors(&self) -> &Vec<Vec<(u32, f32)>> {
        self.vectors.get_or_init(|| self.doc_vectors())
    }

    /// `ln((N + 1) / (df + 1))`: zero for a word every candidate uses, so function words
    /// drop out of `like` similarity without a stop-word list.
    fn term_idf(&self) -> Vec<f64> {
        let n = self.docs.len() as f64;
        self.df.iter().map(|&df| ((n + 1.0) / (f64::from(df) + 1.0)).ln()).collect()
    }

    fn doc_vectors(&self) -> Vec<Vec<(u32, f32)>> {
        let idf = self.term_idf();
        self.docs
            .iter()
            .map(|doc| {
                let mut counts: HashMap<u32, f64> = HashMap::new();
                for (field, stream) in doc.fields.iter().enumerate() {
                    for &t in stream.iter().filter(|t| **t != BREAK) {
                        *counts.entry(t).or_default() += FIELD_TF[field];
                    }
                }
                let mut v: Vec<(u32, f64)> =
                    counts.into_iter().map(|(t, c)| (t, (1.0 + c.ln()) * idf[t as usize])).collect();
                let norm = v.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
                v.sort_unstable_by_key(|(t, _)| *t);
                v.into_iter()
                    .filter(|(_, w)| *w > 0.0)
                    .map(|(t, w)| (t, if norm > 0.0 { (w / norm) as f32 } else { 0.0 }))
                    .collect()
            })
            .collect()
    }
}

/// A title word counts twice in `like` vectors: titles say what a paper is about.
const FIELD_TF: [f64; 2] = [2.0, 1.0];

/// By term: the candidates using it, and its share of all the candidates' words.
fn frequencies(postings: &[Vec<Posting>], docs: &[Doc]) -> (Vec<u32>, Vec<f64>) {
    let words: f64 = docs.iter().map(|d| d.len[TITLE] + d.len[ABSTRACT]).sum::<f64>().max(1.0);
    postings
        .iter()
        .map(|list| {
            let (mut df, mut cf, mut last) = (0, 0.0, None);
            for p in list.iter().filter(|p| p.span == 1) {
                cf += 1.0;
                if last != Some(p.doc) {
                    df += 1;
                    last = Some(p.doc);
                }
            }
            (df, cf / words)
        })
        .unzip()
}

/// By term id: whether the term is the stem of an English function word (NLTK's list),
/// which never says what a paper is about.
fn stopwords(analyzer: &Analyzer, vocab: &HashMap<String, u32>, terms: usize) -> Vec<bool> {
    let mut stopword = vec![false; terms];
    for word in stop_words::lookup("en").unwrap_or_default() {
        if let Some(&id) = vocab.get(&analyzer.stem(&fold(word))) {
            stopword[id as usize] = true;
        }
    }
    stopword
}

/// `ln(i!)` for i in `0..=n`.
fn ln_factorials(n: usize) -> Vec<f64> {
    std::iter::once(0.0)
        .chain((1..=n).scan(0.0, |sum, i| {
            *sum += (i as f64).ln();
            Some(*sum)
        }))
        .collect()
}

/// `P(X >= hits)` for `X` ~ Hypergeometric(population, `df` marked, `sample` drawn), where
/// the population is `ln_factorial.len() - 1`; 1 when the arguments do not fit it.
fn hypergeometric_tail(ln_factorial: &[f64], df: usize, sample: usize, hits: usize) -> f64 {
    let population = ln_factorial.len().saturating_sub(1);
    if df > population || sample > population {
        return 1.0;
    }
    let ln_choose = |n: usize, k: usize| ln_factorial[n] - ln_factorial[k] - ln_factorial[n - k];
    let most = df.min(sample);
    let least = (sample + df).saturating_sub(population);
    let total = ln_choose(population, sample);
    let tail: f64 = (hits.max(least)..=most)
        .map(|x| (ln_choose(df, x) + ln_choose(population - df, sample - x) - total).exp())
        .sum();
    if hits <= least { 1.0 } else { tail.min(1.0) }
}

/// The fewest stream tokens covering one occurrence of every word of `words` (each
/// written as an acronym where `caps` says so), or `None` when some word is missing.
fn tightest_window(stream: &[u32], stream_caps: &[bool], words: &[u32], caps: &[bool]) -> Option<usize> {
    let matches = |pos: usize, i: usize| {
        stream[pos] == words[i]
            && (!caps.get(i).copied().unwrap_or(false) || stream_caps.get(pos).copied().unwrap_or(false))
    };
    let mut best: Option<usize> = None;
    for start in (0..stream.len()).filter(|&p| matches(p, 0)) {
        // The phrase's words in its order, each at the first place after the previous
        // one, without crossing punctuation: "test. Time" is not about test time, and
        // "recognition via spatial action" is not "action recognition".
        let mut at = start;
        let mut found = true;
        for i in 1..words.len() {
            match (at + 1..stream.len()).take_while(|&p| stream[p] != BREAK).find(|&p| matches(p, i)) {
                Some(p) => at = p,
                None => {
                    found = false;
                    break;
                }
            }
        }
        if found {
            let window = at - start + 1;
            best = Some(best.map_or(window, |b| b.min(window)));
        }
    }
    best
}

pub(crate) fn sparse_dot(query: &[(u32, f64)], doc: &[(u32, f32)]) -> f64 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < query.len() && j < doc.len() {
        match query[i].0.cmp(&doc[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += query[i].1 * f64::from(doc[j].1);
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

fn intern(
    analyzer: &Analyzer,
    memo: &mut HashMap<String, u32>,
    vocab: &mut HashMap<String, u32>,
    postings: &mut Vec<Vec<Posting>>,
    word: &str,
) -> u32 {
    if let Some(&id) = memo.get(word) {
        return id;
    }
    let stem = analyzer.stem(word);
    let next = vocab.len() as u32;
    let id = *vocab.entry(stem).or_insert(next);
    if id == next {
        postings.push(Vec::new());
    }
    memo.insert(word.to_string(), id);
    id
}

/// Adds `more` into `into`, both sorted by doc.
fn merge(into: &mut Vec<DocTf>, more: Vec<DocTf>) {
    if more.is_empty() {
        return;
    }
    let mut out = Vec::with_capacity(into.len() + more.len());
    let (mut a, mut b) = (into.drain(..).peekable(), more.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.doc == y.doc => {
                let (x, y) = (a.next(), b.next());
                x.zip(y).map(|(x, y)| DocTf { doc: x.doc, tf: [x.tf[0] + y.tf[0], x.tf[1] + y.tf[1]] })
            }
            (Some(x), Some(y)) => {
                if x.doc < y.doc {
                    a.next()
                } else {
                    b.next()
                }
            }
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        out.extend(next);
    }
    drop(a);
    *into = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(title: &str, summary: &str) -> Paper {
        Paper { title: title.into(), summary: summary.into(), ..Paper::default() }
    }

    fn hits(corpus: &mut Corpus, keyword: &str) -> Vec<DocTf> {
        corpus.phrase(keyword).map(|p| corpus.phrases[p].hits.clone()).unwrap_or_default()
    }

    #[test]
    fn a_phrase_matches_consecutive_stemmed_words_in_either_spelling() {
        let papers = [
            paper("Scaling test-time compute", ""),
            paper("", "compute at test time, and more test times"),
            paper("Test. Time flies", "time for a test"),
        ];
        let mut c = Corpus::new(&papers);
        let h = hits(&mut c, "test-time");
        // "time for a test" has both words within a few tokens, but in the other order.
        assert_eq!(h, [DocTf { doc: 0, tf: [1.0, 0.0] }, DocTf { doc: 1, tf: [0.0, 2.0] }]);
        assert_eq!(hits(&mut c, "test time"), h);
    }

    #[test]
    fn closed_and_hyphenated_compounds_find_each_other_without_double_counting() {
        let papers = [paper("Pre-training at scale", ""), paper("Pretraining at scale", "")];
        let mut c = Corpus::new(&papers);
        let both = [DocTf { doc: 0, tf: [1.0, 0.0] }, DocTf { doc: 1, tf: [1.0, 0.0] }];
        assert_eq!(hits(&mut c, "pretraining"), both);
        assert_eq!(hits(&mut c, "pre-training"), both);
    }

    #[test]
    fn an_acronym_that_is_also_a_word_matches_only_as_an_acronym() {
        let papers = [
            paper("CLIP-guided enhancement", ""),
            paper("Reward clipping", "we clip rewards"),
            paper("VLMs at scale", ""),
        ];
        let mut c = Corpus::new(&papers);
        assert_eq!(hits(&mut c, "CLIP"), [DocTf { doc: 0, tf: [1.0, 0.0] }]);
        // Written in lower case, the keyword means the word, in every form.
        assert_eq!(hits(&mut c, "clip").len(), 2);
        // No candidate writes "vlm" as a word, so the acronym keyword is not case-bound.
        assert_eq!(hits(&mut c, "vlm"), hits(&mut c, "VLM"));
    }

    #[test]
    fn a_phrase_whose_words_stand_apart_counts_less_the_farther_apart_they_are() {
        let papers = [
            paper("", "robotic manipulation"),
            paper("", "robotic arms for dexterous manipulation"),
            paper("", "robotic systems that learn from many hours of data before manipulation"),
            paper("", "robotic. manipulation"),
            // The other order says something else: "action recognition" is not
            // "recognition via spatial action".
            paper("", "manipulation skills of a robotic arm"),
        ];
        let mut c = Corpus::new(&papers);
        let h = hits(&mut c, "robotic manipulation");
        assert_eq!(h.len(), 2, "{h:?}");
        assert!((h[0].tf[1] - 1.0).abs() < 1e-6);
        assert!(h[1].doc == 1 && h[1].tf[1] > 0.0 && h[1].tf[1] < 0.5, "{h:?}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 200,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// A phrase counts at most one occurrence per field for words near each other, and
        /// never more than half of one; in a row it counts whole occurrences.
        #[test]
        fn near_phrases_count_a_fraction_of_an_occurrence(
            words in proptest::collection::vec("(robot|arm|grasp|the|of|\\.)", 0..30)
        ) {
            let text = words.join(" ");
            let mut c = Corpus::new(&[paper("", &text)]);
            for h in hits(&mut c, "robot arm") {
                let in_a_row = text.matches("robot arm").count() as f32;
                let near = h.tf[1] - in_a_row;
                let fine = if in_a_row > 0.0 { near.abs() < 1e-6 } else { near > 0.0 && near <= 0.5 };
                proptest::prop_assert!(fine, "{} {:?}", text, h);
            }
        }
    }

    #[test]
    fn the_same_phrase_is_compiled_once() {
        let mut c = Corpus::new(&[paper("Video generation", "")]);
        assert_eq!(c.phrase("video generation"), c.phrase("Video  Generation"));
        assert_eq!(c.phrase("..."), None);
    }

    #[test]
    fn rarer_phrases_weigh_more() {
        let papers = [paper("video", ""), paper("video diffusion", ""), paper("video", "")];
        let mut c = Corpus::new(&papers);
        let common = c.phrase("video").unwrap();
        let rare = c.phrase("diffusion").unwrap();
        assert!(c.phrases[rare].idf > c.phrases[common].idf);
    }

    #[test]
    fn like_similarity_is_highest_for_the_closest_abstract() {
        let papers = [
            paper("Gaussian splatting for scenes", "fast radiance field rendering with gaussians"),
            paper("Reward models for reasoning", "math reasoning with process reward models"),
            paper("A survey", "we survey many things"),
        ];
        let c = Corpus::new(&papers);
        let liked = paper("Splatting gaussians", "real-time radiance field rendering");
        let sims = c.similarities(&liked);
        assert!(sims[0] > 0.3, "{sims:?}");
        assert!(sims[1] < 0.05 && sims[2] < 0.05, "{sims:?}");
    }

    #[test]
    fn the_enrichment_p_value_is_the_hypergeometric_upper_tail() {
        // 10 candidates, 3 use the word, 4 are the topic's best: P(X >= 2) =
        // (C(3,2)·C(7,2) + C(3,3)·C(7,1)) / C(10,4) = 70 / 210.
        let table = ln_factorials(10);
        assert!((hypergeometric_tail(&table, 3, 4, 2) - 1.0 / 3.0).abs() < 1e-12);
        assert!((hypergeometric_tail(&table, 3, 4, 0) - 1.0).abs() < 1e-12);
        assert!(hypergeometric_tail(&table, 3, 4, 4).abs() < 1e-12, "at most 3 can be drawn");
        // A word all 4 best papers use and nobody else is hard to get by chance.
        assert!((hypergeometric_tail(&table, 4, 4, 4) - 1.0 / 210.0).abs() < 1e-12);
        assert!((hypergeometric_tail(&table, 11, 4, 1) - 1.0).abs() < 1e-12, "out of range");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 200,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// The tail is a probability, 1 at zero hits, and shrinks as more hits are asked for.
        #[test]
        fn the_hypergeometric_tail_is_a_decreasing_probability(
            population in 1usize..300, df_share in 0.0f64..=1.0, sample_share in 0.0f64..=1.0
        ) {
            let table = ln_factorials(population);
            let df = (df_share * population as f64) as usize;
            let sample = (sample_share * population as f64) as usize;
            let mut last = hypergeometric_tail(&table, df, sample, 0);
            proptest::prop_assert!((last - 1.0).abs() < 1e-9);
            for hits in 1..=sample.min(df) + 1 {
                let p = hypergeometric_tail(&table, df, sample, hits);
                proptest::prop_assert!((0.0..=1.0).contains(&p) && p <= last + 1e-9, "{} {} {}", df, sample, hits);
                last = p;
            }
        }
    }

    #[test]
    fn neighbours_are_the_nearest_few_relative_to_the_nearest_never_the_paper_itself() {
        // Real related abstracts meet at about 0.1: the nearest counts fully whatever its
        // absolute similarity, what sits far below it does not count at all.
        let sims = [1.0, 0.12, 0.09, 0.03, 0.06, 0.11];
        let near = Corpus::neighbours(&sims, Some(0));
        let docs: Vec<u32> = near.iter().map(|n| n.0).collect();
        assert_eq!(docs, [1, 5, 2]);
        assert!((near[0].1 - 1.0).abs() < 1e-12 && (near[2].1 - 0.75).abs() < 1e-12);
        assert!(Corpus::neighbours(&[0.01, 0.02], None).is_empty(), "noise is no neighbour");
        let many = vec![0.5; 40];
        assert_eq!(Corpus::neighbours(&many, None).len(), tuning::NEIGHBOURS);
    }
}
