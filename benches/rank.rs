//! Ranking speed: 1,000 candidates for 10,000 subscribers with 3 topics of 5 keywords
//! each, against a naive substring scorer for scale.
//!
//! `cargo bench --bench rank -- --warm-up-time 1 --measurement-time 3`
//!
//! Two topic layouts bracket real configs: `shared` (300 topics in the config, each
//! subscriber follows 3 of them) and `own` (every subscriber has 3 topics nobody else
//! follows: 30,000 topics). `Index::new` compiles every topic once per run, so its cost
//! is reported separately and, for `own`, is the larger part of a run.

use chrono::{DateTime, Duration, TimeZone, Utc};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use paper_digest::config::{Subscriber, Topic};
use paper_digest::model::{Frequency, Paper, PaperId};
use paper_digest::rank::{Feedback, Index};
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::hint::black_box;

const CANDIDATES: usize = 1_000;
const SUBSCRIBERS: usize = 10_000;
const SHARED_TOPICS: usize = 300;
/// The baseline is ~1,000× slower; it is timed on this many subscribers and reported
/// per subscriber.
const BASELINE_SUBSCRIBERS: usize = 20;
/// Subscribers with votes, timed apart: feedback takes the slower, exhaustive path.
const FEEDBACK_SUBSCRIBERS: usize = 1_000;

/// Words and phrases a researcher following this listing might put in a topic.
const VOCABULARY: &[&str] = &[
    "reasoning",
    "LLM",
    "test-time scaling",
    "test-time compute",
    "inference-time",
    "reward model",
    "video",
    "video generation",
    "action recognition",
    "diffusion",
    "diffusion model",
    "text-to-image",
    "LoRA",
    "low-rank adaptation",
    "parameter-efficient",
    "adapter",
    "prompt tuning",
    "quantization",
    "gaussian splatting",
    "3DGS",
    "novel view synthesis",
    "radiance field",
    "NeRF",
    "attention",
    "long-context",
    "KV cache",
    "context window",
    "ViT",
    "vision transformer",
    "Swin",
    "retrieval",
    "RAG",
    "reranking",
    "distributed training",
    "parallelism",
    "communication",
    "large-batch",
    "spiking",
    "pruning",
    "sparsity",
    "distillation",
    "knowledge distillation",
    "contrastive learning",
    "CLIP",
    "vision-language",
    "multimodal",
    "reinforcement learning",
    "RLHF",
    "alignment",
    "preference optimization",
    "graph neural network",
    "GNN",
    "object detection",
    "segmentation",
    "pre-training",
    "fine-tuning",
    "benchmark",
    "robotics",
    "unlearning",
    "memory efficient",
];

#[derive(Deserialize)]
struct FixturePaper {
    title: String,
    #[serde(rename = "abstract")]
    summary: String,
    authors: Vec<String>,
    upvotes: u32,
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 28, 7, 0, 0).unwrap()
}

/// The 139 fixture papers repeated under new ids until there are `CANDIDATES`.
fn candidates() -> Vec<Paper> {
    let fixtures: Vec<FixturePaper> =
        serde_json::from_str(include_str!("../tests/fixtures/papers.json")).expect("papers.json parses");
    (0..CANDIDATES)
        .map(|n| {
            let f = &fixtures[n % fixtures.len()];
            Paper {
                id: PaperId(format!("2412.{n:05}")),
                title: f.title.clone(),
                summary: f.summary.clone(),
                authors: f.authors.clone(),
                published: Some(now() - Duration::hours((n % 72) as i64)),
                upvotes: (f.upvotes + n as u32 * 7) % 300,
                ..Paper::default()
            }
        })
        .collect()
}

fn topics(count: usize, rng: &mut fastrand::Rng) -> BTreeMap<String, Topic> {
    (0..count)
        .map(|i| {
            let name = format!("topic-{i:05}");
            let mut keywords: Vec<String> = Vec::with_capacity(5);
            while keywords.len() < 5 {
                let word = VOCABULARY[rng.usize(..VOCABULARY.len())].to_string();
                if !keywords.contains(&word) {
                    keywords.push(word);
                }
            }
            let topic = Topic {
                name: name.clone(),
                keywords,
                exclude: Vec::new(),
                require: Vec::new(),
                authors: Vec::new(),
                categories: Vec::new(),
                weight: 1.0,
                min_score: None,
                like: Vec::new(),
            };
            (name, topic)
        })
        .collect()
}

fn subscriber(n: usize, topics: Vec<String>) -> Subscriber {
    Subscriber {
        email: format!("reader{n}@example.org").parse().expect("a valid address"),
        key: format!("reader{n}@example.org"),
        topics,
        max_papers: 10,
        min_score: 0.0,
        trending_weight: 1.0,
        frequency: Frequency::Daily,
        weekday: chrono::Weekday::Mon,
        timezone: chrono_tz::UTC,
    }
}

/// `shared`: 3 of 300 pooled topics each; `own`: 3 topics per subscriber.
fn layout(shared: bool, rng: &mut fastrand::Rng) -> (BTreeMap<String, Topic>, Vec<Subscriber>) {
    let topics = topics(if shared { SHARED_TOPICS } else { 3 * SUBSCRIBERS }, rng);
    let names: Vec<String> = topics.keys().cloned().collect();
    let subscribers = (0..SUBSCRIBERS)
        .map(|n| {
            let mine = if shared {
                (0..3).map(|_| names[rng.usize(..names.len())].clone()).collect()
            } else {
                names[3 * n..3 * n + 3].to_vec()
            };
            subscriber(n, mine)
        })
        .collect();
    (topics, subscribers)
}

/// The naive scorer most digest tools use, with its text lowercased once per run.
fn substring_rank<'p>(
    texts: &[String],
    papers: &'p [Paper],
    keywords: &[String],
    k: usize,
) -> Vec<&'p Paper> {
    let mut scored: Vec<(usize, usize)> = texts
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let count: usize = keywords.iter().map(|kw| text.matches(kw.as_str()).count()).sum();
            (count > 0).then_some((count, i))
        })
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(papers[b.1].upvotes.cmp(&papers[a.1].upvotes)));
    scored.into_iter().take(k).map(|(_, i)| &papers[i]).collect()
}

fn bench(c: &mut Criterion) {
    let papers = candidates();
    let seen: HashSet<PaperId> = (0..50).map(|n| PaperId(format!("2412.{:05}", n * 13))).collect();
    let mut rng = fastrand::Rng::with_seed(4);

    let mut group = c.benchmark_group("rank");
    group.sample_size(10);
    for shared in [true, false] {
        let label = if shared { "shared_300_topics" } else { "own_30000_topics" };
        let (topics, subscribers) = layout(shared, &mut rng);

        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("index_new", label), |b| {
            b.iter(|| Index::new(black_box(&papers), &topics, &[], now(), 0.5));
        });

        let index = Index::new(&papers, &topics, &[], now(), 0.5);
        group.throughput(Throughput::Elements(SUBSCRIBERS as u64));
        group.bench_function(BenchmarkId::new("rank_10k_subscribers", label), |b| {
            b.iter(|| {
                let mut total = 0;
                for sub in &subscribers {
                    total += index.rank(black_box(sub), &seen).len();
                }
                total
            });
        });

        if shared {
            // Subscribers who voted: 3 "More like this" and 1 "Fewer like this" each,
            // on candidates. Feedback is resolved per subscriber, so this path is slower.
            let voters = &subscribers[..FEEDBACK_SUBSCRIBERS];
            let votes: Vec<Feedback> = (0..FEEDBACK_SUBSCRIBERS)
                .map(|_| Feedback {
                    liked: (0..3).map(|_| papers[rng.usize(..papers.len())].id.clone()).collect(),
                    disliked: vec![papers[rng.usize(..papers.len())].id.clone()],
                })
                .collect();
            group.throughput(Throughput::Elements(FEEDBACK_SUBSCRIBERS as u64));
            group.bench_function(BenchmarkId::new("rank_with_feedback_1k_subscribers", label), |b| {
                b.iter(|| {
                    let mut total = 0;
                    for (sub, fb) in voters.iter().zip(&votes) {
                        total += index.rank_with_feedback(black_box(sub), &seen, fb).len();
                    }
                    total
                });
            });

            let texts: Vec<String> =
                papers.iter().map(|p| format!("{} {}", p.title, p.summary).to_lowercase()).collect();
            let keywords: Vec<Vec<String>> = subscribers[..BASELINE_SUBSCRIBERS]
                .iter()
                .map(|s| {
                    s.topics.iter().flat_map(|t| &topics[t].keywords).map(|k| k.to_lowercase()).collect()
                })
                .collect();
            group.throughput(Throughput::Elements(BASELINE_SUBSCRIBERS as u64));
            group.bench_function(BenchmarkId::new("substring_baseline", label), |b| {
                b.iter(|| {
                    keywords
                        .iter()
                        .map(|kw| substring_rank(&texts, &papers, black_box(kw), 10).len())
                        .sum::<usize>()
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
