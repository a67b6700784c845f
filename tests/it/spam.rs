//! SpamAssassin's verdict on a real digest: a rendered fixture, built into the message the
//! mailer sends, scored offline (`spamassassin -t -L`). Needs Debian's `spamassassin`
//! package: without it the test prints a line naming the tool and skips, unless
//! `PAPER_DIGEST_REQUIRE_TOOLS=1` (set by `.ci/run`, so CI never skips it).

use crate::support::digest;

use digest::{config, message, papers, rank, render};
use std::io::Write;
use std::process::{Command, Stdio};

/// Rules that must never fire on a digest, whatever the total score.
const FORBIDDEN: &[&str] =
    &["MIME_HTML_ONLY", "MPART_ALT_DIFF", "MISSING_MID", "MISSING_DATE", "HTML_IMAGE_"];

/// What SpamAssassin said about one message.
#[derive(Debug)]
struct Verdict {
    score: f64,
    tests: Vec<String>,
    report: String,
}

/// Whether a missing external tool fails the test instead of skipping it (CI sets this).
fn tools_required() -> bool {
    std::env::var("PAPER_DIGEST_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// Runs `spamassassin -t -L` on `eml`; `None` when the test is to be skipped.
fn spamassassin(eml: &[u8]) -> Option<Verdict> {
    let child = Command::new("spamassassin")
        .args(["-t", "-L"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !tools_required() => {
            // Written to the real stderr, not through `eprintln!`, which the test harness
            // captures and hides for a passing test: a skip must be seen.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: spamassassin is not installed (Debian/Ubuntu: `apt-get install -y spamassassin`); \
                 set PAPER_DIGEST_REQUIRE_TOOLS=1 to make this a failure"
            );
            return None;
        }
        Err(e) => panic!(
            "cannot run spamassassin ({e}) and PAPER_DIGEST_REQUIRE_TOOLS=1. Install it \
             (Debian/Ubuntu: `apt-get install -y spamassassin`)"
        ),
    };
    child.stdin.take().expect("stdin is piped").write_all(eml).expect("write the message to spamassassin");
    let out = child.wait_with_output().expect("spamassassin runs");
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() || report.contains("X-Spam-Status:"),
        "spamassassin failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Some(parse(&report))
}

/// Reads the score and rule names from the `X-Spam-Status` header SpamAssassin adds.
fn parse(report: &str) -> Verdict {
    let headers = report.split("\r\n\r\n").next().and_then(|h| h.split("\n\n").next()).unwrap_or(report);
    let unfolded = headers.replace("\r\n", "\n").replace("\n\t", " ").replace("\n ", " ");
    let status = unfolded
        .lines()
        .find_map(|l| l.strip_prefix("X-Spam-Status:"))
        .unwrap_or_else(|| panic!("no X-Spam-Status header in:\n{report}"));
    let field = |name: &str| {
        status.split_whitespace().find_map(|w| w.strip_prefix(name)).map(|v| v.trim_end_matches(','))
    };
    let score =
        field("score=").and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no score in {status}"));
    let tests = status
        .split_once("tests=")
        .map(|(_, t)| {
            t.split(|c: char| c == ',' || c.is_whitespace())
                .take_while(|w| !w.starts_with("autolearn=") && !w.starts_with("version="))
                .filter(|w| !w.is_empty() && *w != "none")
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Verdict { score, tests, report: report.to_string() }
}

fn assert_clean(eml: &[u8]) {
    let Some(verdict) = spamassassin(eml) else { return };
    eprintln!("SpamAssassin score {} with {:?}", verdict.score, verdict.tests);
    for rule in &verdict.tests {
        assert!(
            !FORBIDDEN.iter().any(|f| rule.starts_with(f)),
            "{rule} fired: {:?}\n{}",
            verdict.tests,
            verdict.report
        );
    }
    assert!(verdict.score < 1.0, "score {} with {:?}\n{}", verdict.score, verdict.tests, verdict.report);
}

#[test]
fn a_topic_digest_scores_below_one() {
    let cfg = config();
    let papers = papers();
    let alice = &cfg.subscribers[0];
    let rendered = render(alice, &rank(&cfg, alice, &papers, 10));
    assert_clean(&message(&cfg, alice, &rendered));
}

#[test]
fn a_trimmed_fifty_paper_digest_scores_below_one() {
    let cfg = config();
    let papers = papers();
    let carol = &cfg.subscribers[2];
    let rendered = render(carol, &rank(&cfg, carol, &papers, 50));
    assert_clean(&message(&cfg, carol, &rendered));
}

#[test]
fn a_trending_digest_with_markup_in_a_title_scores_below_one() {
    let cfg = config();
    let mut papers = papers();
    papers[0].title = "<script>alert(1)</script> Attention Is Still All You Need".into();
    let bob = &cfg.subscribers[1];
    let rendered = render(bob, &rank(&cfg, bob, &papers, 5));
    assert_clean(&message(&cfg, bob, &rendered));
}
