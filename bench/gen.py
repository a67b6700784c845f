#!/usr/bin/env python3
"""Synthetic load for paper-digest: HF-shaped listings, a config with N subscribers, an RSS feed.

Everything is derived from the committed fixture listing (tests/fixtures/hf/, 139 papers)
and is deterministic for a given --seed, so two machines benchmark the same input.

  python3 bench/gen.py listings --candidates 1000 --out DIR/hf
      DIR/hf/2024-11-25.json .. 2024-11-27.json: the fixture papers repeated under new
      ids 2411.20000 + n, spread over the three days, with varied upvotes.

  python3 bench/gen.py config --subscribers 10000 --base-url http://127.0.0.1:PORT \\
        --transport smtp --smtp-port 2525 --concurrency 4 --out DIR/paper-digest.toml
      one [[subscribers]] per synthetic address. The personalised mix (the default, #15):
      each follows 0-3 topics, uniformly, drawn from the ten of PERSONALISED; `--mix wide`
      is #8's: 5% trending-only, the rest 1-3 of all 24 TOPICS.

  python3 bench/gen.py feed --items 2000 --item-bytes 20000 --out DIR/feed.xml
      an RSS 2.0 feed for rss2email with items of about the same size as a digest.
"""
import argparse
import json
import pathlib
import random
from xml.sax.saxutils import escape

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "hf"
DAYS = ["2024-11-25", "2024-11-26", "2024-11-27"]
# The runs pretend it is the morning after the last listing day.
NOW = "2024-11-27T09:00:00Z"
FIRST_ID = 20000

# Topics whose keywords occur in the fixture papers' titles and abstracts, so that most
# subscribers get a full digest and the ranker does real matching work.
TOPICS = {
    "llm-reasoning": (["reasoning", "chain of thought", "test-time scaling", "critique"], []),
    "gaussian-splatting": (["gaussian splatting", "3DGS", "novel view synthesis", "radiance fields"], ["medical"]),
    "efficient-training": (["memory-efficient", "training time", "distillation", "mixed precision"], []),
    "diffusion": (["diffusion", "denoising", "text-to-image", "image synthesis"], []),
    "rl": (["reinforcement learning", "reward model", "policy", "RLHF"], []),
    "alignment": (["alignment", "human feedback", "preference", "safety"], ["robot"]),
    "quantization": (["quantization", "low-rank", "LoRA", "pruning"], []),
    "distributed": (["distributed training", "parallelism", "GPU clusters", "communication"], []),
    "vision-language": (["vision-language", "CLIP", "multimodal", "visual question answering"], []),
    "graphs": (["graph neural network", "GNN", "graph", "node classification"], []),
    "speech": (["speech", "audio", "speech synthesis", "voice"], []),
    "code": (["code generation", "source code", "software", "program"], []),
    "retrieval": (["retrieval", "reranking", "search", "question answering"], []),
    "contrastive": (["contrastive", "self-supervised", "representation learning", "few-shot"], []),
    "detection": (["object detection", "tracking", "segmentation", "detector"], []),
    "robotics": (["robot", "manipulation", "control", "planning"], ["language model"]),
    "slam": (["SLAM", "3D reconstruction", "scene representation", "point cloud"], []),
    "optimization": (["optimizer", "large batch", "learning rate", "convergence"], []),
    "transformers": (["transformer", "attention", "long context", "positional encoding"], []),
    "video": (["video", "action recognition", "temporal", "video generation"], []),
    "privacy-security": (["adversarial", "poisoning", "attack", "privacy"], []),
    "interpretability": (["interpretable", "explanations", "black-box", "counterfactual"], []),
    "continual": (["continual", "lifelong", "incremental learning", "forgetting"], []),
    "efficiency-inference": (["inference", "latency", "sparsity", "speculative decoding"], []),
}

# Issue #15's personalised mix: ten research topics that are common in the fixture papers,
# so that readers share papers but few share a whole digest.
PERSONALISED = [
    "alignment",
    "code",
    "diffusion",
    "efficient-training",
    "gaussian-splatting",
    "llm-reasoning",
    "quantization",
    "retrieval",
    "rl",
    "vision-language",
]


def fixture_papers():
    items = []
    for day in DAYS:
        items.extend(json.loads((FIXTURES / f"{day}.json").read_text(encoding="utf-8")))
    return items


def listings(args):
    """M papers: the fixtures repeated under new ids, a third on each listing day."""
    base = fixture_papers()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    per_day = {day: [] for day in DAYS}
    for n in range(args.candidates):
        item = json.loads(json.dumps(base[n % len(base)]))
        day = DAYS[n % len(DAYS)]
        paper = item["paper"]
        paper["id"] = f"2411.{FIRST_ID + n:05d}"
        # Upvotes vary so ties are rare and the trending order is not the id order.
        paper["upvotes"] = (n * 7919) % 500
        paper["publishedAt"] = f"{day}T{(n // 60) % 24:02d}:{n % 60:02d}:00.000Z"
        if "_id" in paper:
            paper["_id"] = f"bench{n:08d}"
        item["publishedAt"] = paper["publishedAt"]
        per_day[day].append(item)
    for day, items in per_day.items():
        (out / f"{day}.json").write_text(json.dumps(items), encoding="utf-8")
    print(f"{args.candidates} candidates in {out}")


def config(args):
    rng = random.Random(args.seed)
    names = sorted(TOPICS)
    followed = PERSONALISED if args.mix == "personalised" else names
    lines = ["# Generated by bench/gen.py: synthetic load, do not edit."]
    if args.subscribers_file:
        lines.append(f'subscribers_file = "{args.subscribers_file}"')
    lines += [
        "[digest]",
        f"max_papers = {args.max_papers}",
        "lookback_days = 3",
        "send_empty = false",
        f'database = "{args.database}"',
        "",
        "[sources.huggingface]",
        f'base_url = "{args.base_url}"',
        "",
        "[mail]",
        'from = "Paper Digest <digest@bench.example.org>"',
        f'transport = "{args.transport}"',
    ]
    if args.transport == "file":
        lines += ["", "[mail.file]", f'dir = "{args.outbox}"']
    else:
        lines += [
            "",
            "[mail.smtp]",
            'host = "127.0.0.1"',
            f"port = {args.smtp_port}",
            'security = "none"',
            f"concurrency = {args.concurrency}",
        ]
    for name in names:
        keywords, exclude = TOPICS[name]
        lines += ["", f"[topics.{name}]", "keywords = " + json.dumps(keywords)]
        if exclude:
            lines.append("exclude = " + json.dumps(exclude))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    listed = open(out.parent / args.subscribers_file, "w", encoding="utf-8") if args.subscribers_file else None
    for n in range(args.subscribers):
        if args.mix == "personalised":
            # Zero to three topics, uniformly: a quarter get the trending papers.
            topics = rng.sample(followed, rng.randint(0, 3))
        else:
            # 5% trending-only subscribers; the rest follow one to three topics.
            k = 0 if rng.random() < 0.05 else rng.randint(1, 3)
            topics = rng.sample(followed, k)
        email = f"user{n:06d}@bench.example.org"
        if listed:
            listed.write(json.dumps({"email": email, "topics": topics}) + "\n")
        else:
            lines += ["", "[[subscribers]]", f'email = "{email}"', "topics = " + json.dumps(topics)]
    if listed:
        listed.close()
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{args.subscribers} subscribers in {out}")


def feed(args):
    """An RSS 2.0 feed of paper entries, each padded to about --item-bytes of HTML."""
    base = fixture_papers()
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0"><channel><title>bench papers</title>',
        "<link>http://127.0.0.1/</link><description>synthetic</description>",
    ]
    for n in range(args.items):
        paper = base[n % len(base)]["paper"]
        block = f"<h2>{escape(paper['title'])}</h2><p>{escape(paper.get('summary') or '')}</p>"
        body = (block * (args.item_bytes // max(len(block), 1) + 1))[: args.item_bytes]
        parts.append(
            "<item>"
            f"<title>{escape(paper['title'])} #{n}</title>"
            f"<link>https://arxiv.org/abs/2411.{FIRST_ID + n:05d}</link>"
            f"<guid>bench-{n}</guid>"
            "<pubDate>Wed, 27 Nov 2024 08:00:00 GMT</pubDate>"
            f"<description>{escape(body)}</description>"
            "</item>"
        )
    parts.append("</channel></rss>")
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    print(f"{args.items} feed items in {out}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("listings")
    a.add_argument("--candidates", type=int, default=1000)
    a.add_argument("--out", required=True)
    a.set_defaults(fn=listings)
    c = sub.add_parser("config")
    c.add_argument("--subscribers", type=int, default=10000)
    c.add_argument("--base-url", required=True)
    c.add_argument("--transport", choices=["file", "smtp"], default="file")
    c.add_argument("--smtp-port", type=int, default=2525)
    c.add_argument("--concurrency", type=int, default=4)
    c.add_argument("--max-papers", type=int, default=10)
    c.add_argument("--database", default="paper-digest.sqlite3")
    c.add_argument("--outbox", default="outbox")
    c.add_argument("--seed", type=int, default=8)
    c.add_argument(
        "--mix",
        choices=["personalised", "wide"],
        default="personalised",
        help="subscribers' topics: 0-3 of ten (personalised, #15) or 5%% none, else 1-3 of 24 (wide, #8)",
    )
    c.add_argument(
        "--subscribers-file",
        help="write the subscribers to this JSON Lines file beside the config (subscribers_file) "
        "instead of [[subscribers]] tables",
    )
    c.add_argument("--out", required=True)
    c.set_defaults(fn=config)
    f = sub.add_parser("feed")
    f.add_argument("--items", type=int, default=1000)
    f.add_argument("--item-bytes", type=int, default=20000)
    f.add_argument("--out", required=True)
    f.set_defaults(fn=feed)
    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
