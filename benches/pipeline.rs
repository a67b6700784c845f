//! Per-digest CPU cost of the pipeline through the library API (#8): rank and render for
//! 10,000 subscribers × 1,000 candidates, with a baseline measured in the same run so the
//! result reads as a ratio, plus the seen-state commit for 100,000 subscribers × 10 papers.
//!
//! ```text
//! cargo bench --bench pipeline                   # everything (a few minutes)
//! cargo bench --bench pipeline -- digests        # rank + render only
//! cargo bench --bench pipeline -- seen_state     # the SQLite commit only
//! ```
//!
//! Throughput is reported in elements per second: digests for the `digests` group,
//! delivered subscribers for `seen_state`. BENCHMARKS.md explains the baseline.

use chrono::{DateTime, NaiveDate, Utc};
use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use paper_digest::config::{Config, Subscriber};
use paper_digest::mail::{self, Envelope};
use paper_digest::model::{Paper, PaperId, Ranked};
use paper_digest::rank::Index;
use paper_digest::render::{DigestContext, Renderer};
use paper_digest::store::{Item, Kind, NewDelivery, Outcome, Store};
use std::collections::HashSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const SUBSCRIBERS: usize = 10_000;
/// Subscribers per measured iteration.
const BATCH: usize = 1_000;
const CANDIDATES: usize = 1_000;
const MAX_PAPERS: usize = 10;
/// Papers each subscriber has already been sent (yesterday's digest), so `seen` filters.
const SEEN: usize = 10;
const SEEN_STATE_SUBSCRIBERS: usize = 100_000;
/// The run loop's group commit: at most this many outcomes per transaction (app.rs).
const COMMIT_EVERY: usize = 64;
const NOW: &str = "2024-11-27T09:00:00Z";
const FIXTURE_DAYS: [&str; 3] = ["2024-11-25", "2024-11-26", "2024-11-27"];

/// Same vocabulary as bench/gen.py, so the criterion figures and the end-to-end runs rank
/// the same kind of subscriber.
const TOPICS: &[(&str, &[&str], &[&str])] = &[
    ("llm-reasoning", &["reasoning", "chain of thought", "test-time scaling", "critique"], &[]),
    (
        "gaussian-splatting",
        &["gaussian splatting", "3DGS", "novel view synthesis", "radiance fields"],
        &["medical"],
    ),
    ("efficient-training", &["memory-efficient", "training time", "distillation", "mixed precision"], &[]),
    ("diffusion", &["diffusion", "denoising", "text-to-image", "image synthesis"], &[]),
    ("rl", &["reinforcement learning", "reward model", "policy", "RLHF"], &[]),
    ("alignment", &["alignment", "human feedback", "preference", "safety"], &["robot"]),
    ("quantization", &["quantization", "low-rank", "LoRA", "pruning"], &[]),
    ("distributed", &["distributed training", "parallelism", "GPU clusters", "communication"], &[]),
    ("vision-language", &["vision-language", "CLIP", "multimodal", "visual question answering"], &[]),
    ("graphs", &["graph neural network", "GNN", "graph", "node classification"], &[]),
    ("speech", &["speech", "audio", "speech synthesis", "voice"], &[]),
    ("code", &["code generation", "source code", "software", "program"], &[]),
    ("retrieval", &["retrieval", "reranking", "search", "question answering"], &[]),
    ("contrastive", &["contrastive", "self-supervised", "representation learning", "few-shot"], &[]),
    ("detection", &["object detection", "tracking", "segmentation", "detector"], &[]),
    ("robotics", &["robot", "manipulation", "control", "planning"], &["language model"]),
    ("slam", &["SLAM", "3D reconstruction", "scene representation", "point cloud"], &[]),
    ("optimization", &["optimizer", "large batch", "learning rate", "convergence"], &[]),
    ("transformers", &["transformer", "attention", "long context", "positional encoding"], &[]),
    ("video", &["video", "action recognition", "temporal", "video generation"], &[]),
    ("privacy-security", &["adversarial", "poisoning", "attack", "privacy"], &[]),
    ("interpretability", &["interpretable", "explanations", "black-box", "counterfactual"], &[]),
    ("continual", &["continual", "lifelong", "incremental learning", "forgetting"], &[]),
    ("efficiency-inference", &["inference", "latency", "sparsity", "speculative decoding"], &[]),
];

/// A deterministic xorshift: the same subscribers on every machine, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn now() -> DateTime<Utc> {
    NOW.parse().expect("a valid RFC 3339 constant")
}

/// The 139 fixture papers repeated under new ids up to `CANDIDATES`, with varied upvotes.
fn candidates() -> Vec<Paper> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf");
    let mut base = Vec::new();
    for day in FIXTURE_DAYS {
        let url = format!("fixture:{day}");
        let body = std::fs::read(dir.join(format!("{day}.json"))).expect("read a fixture listing");
        base.extend(paper_digest::source::huggingface::parse(&url, &body).expect("parse a fixture listing"));
    }
    (0..CANDIDATES)
        .map(|n| {
            let mut p = base[n % base.len()].clone();
            p.id = PaperId(format!("2411.{:05}", 20_000 + n));
            p.upvotes = ((n * 7919) % 500) as u32;
            p
        })
        .collect()
}

/// Topics and `SUBSCRIBERS` subscribers (5% trending-only, the rest one to three topics),
/// validated by the real config parser.
fn config() -> Config {
    let mut toml = format!(
        "[digest]\nmax_papers = {MAX_PAPERS}\n\n[mail]\nfrom = \"Paper Digest <digest@bench.example.org>\"\ntransport = \"file\"\n"
    );
    for (name, keywords, exclude) in TOPICS {
        let _ = write!(toml, "\n[topics.{name}]\nkeywords = {keywords:?}\n");
        if !exclude.is_empty() {
            let _ = writeln!(toml, "exclude = {exclude:?}");
        }
    }
    let mut rng = Rng(0x5eed_0008);
    for n in 0..SUBSCRIBERS {
        let k = if rng.below(20) == 0 { 0 } else { 1 + rng.below(3) };
        let mut topics: Vec<&str> = Vec::new();
        while topics.len() < k {
            let t = TOPICS[rng.below(TOPICS.len())].0;
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        let _ = write!(
            toml,
            "\n[[subscribers]]\nemail = \"user{n:06}@bench.example.org\"\ntopics = {topics:?}\n"
        );
    }
    Config::parse(&toml).expect("the generated config is valid")
}

fn seen_sets(candidates: &[Paper]) -> Vec<HashSet<PaperId>> {
    let mut rng = Rng(0x5eed_5eed);
    (0..SUBSCRIBERS)
        .map(|_| (0..SEEN).map(|_| candidates[rng.below(candidates.len())].id.clone()).collect())
        .collect()
}

fn context<'a>(sub: &'a Subscriber, papers: &'a [Ranked<'a>]) -> DigestContext<'a> {
    DigestContext {
        subscriber: sub,
        edition: NaiveDate::from_ymd_opt(2024, 11, 27).expect("a valid date"),
        papers,
        unsubscribe_url: None,
        unsubscribe_mailto: Some("unsubscribe@bench.example.org"),
    }
}

/// The baseline: the least any digest mailer does per subscriber with the same data. It
/// picks the ten most upvoted unseen papers of the thousand (no text matching) and
/// concatenates card snippets escaped and formatted once per run (no template engine, no
/// CSS inlining): a selection pass over the candidates plus writing a digest-sized body.
struct Floor {
    cards: Vec<String>,
    upvotes: Vec<u32>,
}

impl Floor {
    fn new(candidates: &[Paper]) -> Self {
        let cards = candidates
            .iter()
            .map(|p| {
                let title = minijinja::HtmlEscape(&p.title).to_string();
                let summary = minijinja::HtmlEscape(&p.summary).to_string();
                format!(
                    "<tr><td><h2><a href=\"{}\">{title}</a></h2><p>{}</p><p>{summary}</p><p>{} upvotes</p></td></tr>\n",
                    p.link().unwrap_or_default(),
                    p.authors.join(", "),
                    p.upvotes
                )
            })
            .collect();
        Floor { cards, upvotes: candidates.iter().map(|p| p.upvotes).collect() }
    }

    fn digest(&self, candidates: &[Paper], seen: &HashSet<PaperId>) -> String {
        let mut best: Vec<(u32, usize)> = Vec::with_capacity(MAX_PAPERS + 1);
        for (i, &votes) in self.upvotes.iter().enumerate() {
            if best.len() == MAX_PAPERS && votes <= best[MAX_PAPERS - 1].0 {
                continue;
            }
            if seen.contains(&candidates[i].id) {
                continue;
            }
            let at = best.partition_point(|&(v, _)| v >= votes);
            best.insert(at, (votes, i));
            best.truncate(MAX_PAPERS);
        }
        let mut out = String::with_capacity(32 * 1024);
        out.push_str("<html><body><table>\n");
        for (_, i) in best {
            out.push_str(&self.cards[i]);
        }
        out.push_str("</table></body></html>\n");
        out
    }
}

fn digests(c: &mut Criterion) {
    let cfg = config();
    let candidates = candidates();
    let seen = seen_sets(&candidates);
    let now = now();
    let index = Index::new(&candidates, &cfg.topics, &[], now, cfg.digest.recency_weight);
    let renderer = Renderer::new(None).expect("the built-in templates compile");
    let floor = Floor::new(&candidates);
    let subs = &cfg.subscribers;

    // Ranked lists for the render-only measurement, made once.
    let ranked: Vec<Vec<Ranked<'_>>> = subs.iter().zip(&seen).map(|(s, seen)| index.rank(s, seen)).collect();
    let message_id = mail::new_message_id(&cfg.mail);

    let mut group = c.benchmark_group("digests");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(BATCH as u64));
    // Each iteration handles the next BATCH of the SUBSCRIBERS, so every subscriber is
    // measured and one iteration stays short even where rendering is slow.
    let batches = SUBSCRIBERS / BATCH;

    group.bench_function("baseline_floor", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % batches;
            for seen in &seen[k * BATCH..(k + 1) * BATCH] {
                black_box(floor.digest(&candidates, seen));
            }
        });
    });
    group.bench_function("rank", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % batches;
            let range = k * BATCH..(k + 1) * BATCH;
            for (sub, seen) in subs[range.clone()].iter().zip(&seen[range]) {
                black_box(index.rank(sub, seen));
            }
        });
    });
    group.bench_function("render", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % batches;
            let range = k * BATCH..(k + 1) * BATCH;
            for (sub, papers) in subs[range.clone()].iter().zip(&ranked[range]) {
                black_box(renderer.render(&context(sub, papers)).expect("render"));
            }
        });
    });
    group.bench_function("rank_render", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % batches;
            let range = k * BATCH..(k + 1) * BATCH;
            for (sub, seen) in subs[range.clone()].iter().zip(&seen[range]) {
                let papers = index.rank(sub, seen);
                black_box(renderer.render(&context(sub, &papers)).expect("render"));
            }
        });
    });
    // The same on every core, as a run does it (rendering runs on the blocking pool):
    // each batch split evenly between one thread per core, sharing the index and renderer.
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    group.bench_function(format!("rank_render_{cores}_threads"), |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % batches;
            let range = k * BATCH..(k + 1) * BATCH;
            let (subs, seen) = (&subs[range.clone()], &seen[range]);
            let share = BATCH.div_ceil(cores);
            std::thread::scope(|scope| {
                for (subs, seen) in subs.chunks(share).zip(seen.chunks(share)) {
                    let (index, renderer) = (&index, &renderer);
                    scope.spawn(move || {
                        for (sub, seen) in subs.iter().zip(seen) {
                            let papers = index.rank(sub, seen);
                            black_box(renderer.render(&context(sub, &papers)).expect("render"));
                        }
                    });
                }
            });
        });
    });
    // What a send costs in CPU before the transport: rank, render, MIME-encode.
    group.bench_function("rank_render_message", |b| {
        let mut k = 0;
        b.iter(|| {
            k = (k + 1) % batches;
            let range = k * BATCH..(k + 1) * BATCH;
            for (sub, seen) in subs[range.clone()].iter().zip(&seen[range]) {
                let papers = index.rank(sub, seen);
                // As a run does it: the parts encoded once per card, moved into the message.
                let encoded = renderer.render_encoded(&context(sub, &papers), None).expect("render");
                let envelope = Envelope { to: &sub.email, message_id: &message_id, date: now };
                let message =
                    mail::build_encoded(&cfg.mail, &envelope, encoded, None).expect("build the message");
                black_box(message.formatted());
            }
        });
    });
    group.finish();

    // Once per run, not per subscriber: shown so its share of a run is visible.
    let mut once = c.benchmark_group("per_run");
    once.sample_size(10).measurement_time(Duration::from_secs(3));
    once.bench_function("index_1000_candidates", |b| {
        b.iter(|| black_box(Index::new(&candidates, &cfg.topics, &[], now, cfg.digest.recency_weight)));
    });
    once.bench_function("renderer_new", |b| b.iter(|| black_box(Renderer::new(None).expect("templates"))));
    once.finish();
}

/// A database holding `SEEN_STATE_SUBSCRIBERS` planned deliveries of `MAX_PAPERS` papers
/// each, built once and copied for every iteration (recording outcomes changes it).
fn planned_database(dir: &Path) -> (std::path::PathBuf, Vec<i64>) {
    let path = dir.join("template.sqlite3");
    let store = Store::open(&path).expect("open the template database");
    let edition = NaiveDate::from_ymd_opt(2024, 11, 27).expect("a valid date");
    let mut ids = Vec::with_capacity(SEEN_STATE_SUBSCRIBERS);
    let rows: Vec<NewDelivery> = (0..SEEN_STATE_SUBSCRIBERS)
        .map(|n| NewDelivery {
            subscriber: format!("user{n:06}@bench.example.org"),
            edition,
            kind: Kind::Digest,
            message_id: format!("<pd.{n:032x}@bench.example.org>"),
            items: (0..MAX_PAPERS)
                .map(|k| Item {
                    id: PaperId(format!("2411.{:05}", 20_000 + (n * 7 + k * 97) % CANDIDATES)),
                    score: 1.0,
                    topic: Some("llm-reasoning".into()),
                    matched: Vec::new(),
                })
                .collect(),
        })
        .collect();
    // The run loop plans in chunks of 512 subscribers.
    for chunk in rows.chunks(512) {
        ids.extend(store.insert_deliveries(chunk, now()).expect("plan deliveries").into_iter().flatten());
    }
    drop(store); // the last connection closing checkpoints the WAL into the main file
    (path, ids)
}

fn fresh_copy(template: &Path, dir: &Path) -> Store {
    let path = dir.join("run.sqlite3");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    std::fs::copy(template, &path).expect("copy the template database");
    Store::open(&path).expect("open the copy")
}

fn seen_state(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (template, ids) = planned_database(dir.path());
    let outcomes: Vec<Outcome> = ids.iter().map(|&id| Outcome::Sent { id }).collect();
    let now = now();

    let mut group = c.benchmark_group("seen_state");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).warm_up_time(Duration::from_millis(1));
    group.throughput(Throughput::Elements(SEEN_STATE_SUBSCRIBERS as u64));
    // As the run loop commits when the server is fast: full groups of 64, each durable.
    group.bench_function("record_100k_x10_in_groups_of_64", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let store = fresh_copy(&template, dir.path());
                let started = Instant::now();
                for group in outcomes.chunks(COMMIT_EVERY) {
                    store.record_outcomes(group, now).expect("record outcomes");
                }
                total += started.elapsed();
            }
            total
        });
    });
    // The lower bound: one transaction for everything.
    group.bench_function("record_100k_x10_in_one_transaction", |b| {
        b.iter_batched(
            || fresh_copy(&template, dir.path()),
            |store| store.record_outcomes(&outcomes, now).expect("record outcomes"),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, digests, seen_state);
criterion_main!(benches);
