//! The scale smoke test (#8): about two thousand subscribers, end to end through the real
//! binary, fetching Hugging Face fixtures from a loopback HTTP server and mailing a real
//! SMTP server on loopback. It checks correctness only (every subscriber mailed exactly
//! once, the counts the run records, nothing sent twice), never time: the timed version
//! is `bench/load.sh` (see BENCHMARKS.md).

use crate::support::site;
use crate::support::smtp::{Faults, SmtpServer};

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_paper-digest");
/// The fixtures hold 2024-11-25..27; the runs pretend it is the morning after the last.
const NOW: &str = "2024-11-27T09:00:00Z";
const SUBSCRIBERS: usize = 2_000;
const CONCURRENCY: usize = 4;
const MAX_PAPERS: usize = 5;

/// Topics whose keywords occur in many fixture papers, so every subscriber has a digest.
const TOPICS: &[(&str, &[&str])] = &[
    ("reasoning", &["reasoning", "chain of thought", "test-time"]),
    ("training", &["training", "distillation", "fine-tuning"]),
    ("diffusion", &["diffusion", "image synthesis", "generative"]),
    ("language", &["language models", "LLM", "language model"]),
    ("vision", &["image", "video", "vision"]),
];

fn subscriber(i: usize) -> String {
    format!("reader{i:05}@smoke.example.org")
}

/// Every twentieth subscriber follows no topic (the day's trending papers); the others
/// one or two topics, in a spread that covers every combination.
fn topics_of(i: usize) -> Vec<&'static str> {
    if i.is_multiple_of(20) {
        return Vec::new();
    }
    let first = TOPICS[i % TOPICS.len()].0;
    let second = TOPICS[(i / TOPICS.len()) % TOPICS.len()].0;
    if first == second { vec![first] } else { vec![first, second] }
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new(base_url: &str, smtp_port: u16) -> Setup {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut cfg = format!(
            r#"[digest]
database = "digest.sqlite3"
lookback_days = 3
max_papers = {MAX_PAPERS}
send_empty = false

[sources.huggingface]
base_url = "{base_url}"

[mail]
from = "Paper Digest <digest@smoke.example.org>"
transport = "smtp"

[mail.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
concurrency = {CONCURRENCY}
"#
        );
        for (name, keywords) in TOPICS {
            let keywords: Vec<String> = keywords.iter().map(|k| format!("{k:?}")).collect();
            let _ = write!(cfg, "\n[topics.{name}]\nkeywords = [{}]\n", keywords.join(", "));
        }
        for i in 0..SUBSCRIBERS {
            let topics: Vec<String> = topics_of(i).iter().map(|t| format!("{t:?}")).collect();
            let _ = write!(
                cfg,
                "\n[[subscribers]]\nemail = \"{}\"\ntopics = [{}]\n",
                subscriber(i),
                topics.join(", ")
            );
        }
        std::fs::write(dir.path().join("paper-digest.toml"), cfg).expect("write the config");
        Setup { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("paper-digest.toml")
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .arg("--config")
            .arg(self.config())
            .args(args)
            .env("PAPER_DIGEST_NOW", NOW)
            .env("RUST_LOG", "warn")
            .env_remove("JOURNAL_STREAM")
            .env_remove("PAPER_DIGEST_CONFIG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run the paper-digest binary")
    }

    /// `status --json`: the last run's summary and every subscriber's last delivery.
    fn status(&self) -> serde_json::Value {
        let out = self.run(&["status", "--json"]);
        assert!(out.status.success(), "status failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
    }
}

fn assert_exit_ok(out: &Output, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{what} should exit 0; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr).lines().rev().take(40).collect::<Vec<_>>().join("\n")
    );
}

fn count(summary: &serde_json::Value, key: &str) -> u64 {
    summary[key].as_u64().unwrap_or_else(|| panic!("the run summary has no count {key:?}: {summary}"))
}

#[test]
fn two_thousand_subscribers_each_get_one_digest_and_a_second_run_sends_nothing() {
    let http = site::hf_server();
    let base_url = http.url();
    let server = SmtpServer::start(Faults::none());
    let setup = Setup::new(&base_url, server.port());

    let first = setup.run(&["run"]);
    assert_exit_ok(&first, "the first run");

    // Every subscriber received exactly one message, addressed to them alone, and no two
    // messages share a Message-ID.
    let messages = server.messages();
    let mut per_recipient: BTreeMap<String, usize> = BTreeMap::new();
    let mut message_ids = HashSet::new();
    for m in &messages {
        assert_eq!(m.rcpt_to.len(), 1, "one recipient per digest, got {:?}", m.rcpt_to);
        let rcpt = m.rcpt_to[0].trim_matches(['<', '>']).to_lowercase();
        let to = m.header("To").unwrap_or_default().to_lowercase();
        assert!(to.contains(&rcpt), "the To: header {to:?} names the envelope recipient {rcpt:?}");
        let id = m.message_id().expect("every digest carries a Message-ID");
        assert!(message_ids.insert(id.clone()), "Message-ID {id} was used twice");
        *per_recipient.entry(rcpt).or_default() += 1;
    }
    let expected: BTreeMap<String, usize> = (0..SUBSCRIBERS).map(|i| (subscriber(i), 1)).collect();
    if per_recipient != expected {
        let missing = expected.keys().filter(|k| !per_recipient.contains_key(*k)).count();
        let doubled: Vec<_> = per_recipient.iter().filter(|(_, n)| **n > 1).take(5).collect();
        panic!(
            "expected one digest for each of {SUBSCRIBERS} subscribers; got {} messages, {missing} subscribers missing, duplicates e.g. {doubled:?}",
            messages.len()
        );
    }

    // Connections are pooled and bounded by `concurrency`, not opened per message.
    assert!(
        server.max_concurrent_connections() <= CONCURRENCY,
        "at most {CONCURRENCY} connections at once, saw {}",
        server.max_concurrent_connections()
    );
    assert!(
        server.connections() <= 2 * CONCURRENCY,
        "{} messages over {} connections: connections are not being reused",
        messages.len(),
        server.connections()
    );

    // What the run recorded agrees with what the server received.
    let status = setup.status();
    let summary = &status["last_run"]["summary"];
    assert_eq!(count(summary, "sent"), SUBSCRIBERS as u64, "summary: {summary}");
    assert_eq!(
        count(summary, "failed") + count(summary, "deferred") + count(summary, "skipped"),
        0,
        "summary: {summary}"
    );
    let subscribers = status["subscribers"].as_array().expect("status lists the subscribers");
    assert_eq!(subscribers.len(), SUBSCRIBERS);
    for s in subscribers {
        assert_eq!(s["status"], "sent", "every ledger row is sent: {s}");
        let papers = s["papers"].as_u64().expect("a paper count");
        assert!((1..=MAX_PAPERS as u64).contains(&papers), "1..={MAX_PAPERS} papers per digest: {s}");
    }

    // The same edition again: nothing is sent, every subscriber is skipped.
    let second = setup.run(&["run"]);
    assert_exit_ok(&second, "the second run");
    assert_eq!(server.messages().len(), SUBSCRIBERS, "the second run the same day sent mail");
    let summary = &setup.status()["last_run"]["summary"];
    assert_eq!(count(summary, "sent"), 0, "summary: {summary}");
    assert_eq!(count(summary, "skipped"), SUBSCRIBERS as u64, "summary: {summary}");
}
