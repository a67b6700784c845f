//! What a reader sees when paper-digest reads real-shaped sources: the real binary fetches
//! a Hugging Face day in the 2026 layout (paged, 50 a page), an arXiv RSS day, a bioRxiv
//! RSS 1.0 feed, a lab blog and a daily-papers aggregator from a loopback HTTP server,
//! stores them in SQLite and mails a digest to a loopback SMTP server whose received
//! bytes are parsed here. Fixtures: tests/fixtures/real (make_real_fixtures.py).

use crate::support::http::{HttpServer, Reply, Route};
use crate::support::smtp::{Faults, SmtpServer};

use crate::support::site;

use mail_parser::MessageParser;
use site::{Site, code, stderr};
use std::fmt::Write as _;

const NOW: &str = "2026-04-29T07:00:00Z";
const DAY: &str = "2026-04-29";
const REAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/real");

fn papers_json() -> Vec<serde_json::Value> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/papers.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn title_of(i: usize) -> String {
    papers_json()[i]["title"].as_str().unwrap().to_string()
}

/// Every source on one loopback server: Hugging Face pages `limit` (at most 50) items
/// from page `p` of the fixture day; other days are empty, as on a quiet day.
fn server() -> HttpServer {
    let day: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(format!("{REAL}/hf-{DAY}.json")).unwrap()).unwrap();
    HttpServer::start(vec![
        Route::get("/api/daily_papers").with(move |req| {
            if req.param("date").as_deref() != Some(DAY) {
                return Reply::ok("[]");
            }
            let limit = req.param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).min(50);
            let page = req.param("p").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
            let items: Vec<&serde_json::Value> = day.iter().skip(page * limit).take(limit).collect();
            Reply::ok(serde_json::to_vec(&items).unwrap())
        }),
        Route::get("/rss/cs.LG").reply(Reply::file(format!("{REAL}/arxiv-cs.LG.rss"))),
        Route::get("/biorxiv.rdf").reply(Reply::file(format!("{REAL}/biorxiv.rdf"))),
        Route::get("/blog.rss").reply(Reply::file(format!("{REAL}/blog.rss"))),
        Route::get("/daily.rss").reply(Reply::file(format!("{REAL}/aggregator.rss"))),
    ])
}

fn feeds(base: &str) -> String {
    let mut out = String::new();
    for (name, path) in [
        ("arxiv-cs-lg", "/rss/cs.LG"),
        ("biorxiv", "/biorxiv.rdf"),
        ("lab-blog", "/blog.rss"),
        ("daily-papers", "/daily.rss"),
    ] {
        let _ = write!(out, "\n[[sources.feeds]]\nname = \"{name}\"\nurl = \"{base}{path}\"\n");
    }
    out
}

/// A trending reader who gets every paper, and one who follows two authors whose names
/// only an arXiv RSS author list carries, one of them a mononym.
const SUBSCRIBERS: &str = r#"
[topics.people]
authors = ["Arvind", "Deepti"]

[[subscribers]]
email = "reader@example.org"
max_papers = 200

[[subscribers]]
email = "follower@example.org"
topics = ["people"]
"#;

/// Runs `run` once and returns, for `to`, the plain-text part (whitespace collapsed) and
/// the HTML part of the digest sent.
fn digest(site: &Site, smtp: &SmtpServer, to: &str) -> (String, String) {
    let out = site.run_at(&["run"], NOW);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2);
    let msg = messages.iter().find(|m| m.rcpt_to[0] == to).unwrap();
    let parsed = MessageParser::default().parse(&msg.data).unwrap();
    // The text part is wrapped at 72 columns: compare words, not lines.
    let text = parsed.body_text(0).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    (text, parsed.body_html(0).unwrap().into_owned())
}

fn site_with_every_source() -> (HttpServer, SmtpServer, Site) {
    let http = server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::with_subscribers(&http.url(), smtp.port(), &feeds(&http.url()), SUBSCRIBERS);
    (http, smtp, site)
}

#[test]
fn the_digest_of_real_shaped_sources_reads_right() {
    let (http, smtp, site) = site_with_every_source();
    let (text, html) = digest(&site, &smtp, "reader@example.org");

    // The title that used to kill every run with exit 101.
    assert!(text.contains("Q&A for LLMs—a survey"), "{text}");
    // Hugging Face: all three pages read, the withdrawn paper left out, the paper listed
    // twice shown once under its corrected title.
    let pages: Vec<String> = http
        .requests()
        .iter()
        .filter(|r| r.param("date").as_deref() == Some(DAY))
        .filter_map(|r| r.param("p"))
        .collect();
    assert_eq!(pages, ["0", "1", "2"], "the fixture day has 121 entries");
    assert!(text.contains(&title_of(119)), "a paper from the third page is missing");
    assert!(!text.contains(&title_of(5)), "a withdrawn paper was mailed");
    assert_eq!(text.matches(&title_of(7)).count(), 1);
    assert!(!text.contains(&title_of(7).to_lowercase()));
    // One paper from Hugging Face, arXiv's RSS and the aggregator is one card.
    assert_eq!(text.matches(&title_of(2)).count(), 1, "{text}");
    // No feed wrapper, card marker or cited paper reaches the reader.
    for noise in
        ["Authors:", "Upvotes:", "Announce Type", "twitter", "kg-card", "<!--", "window.ghost", "Cited works"]
    {
        assert!(!text.contains(noise) && !html.contains(noise), "{noise:?} reached the digest");
    }
    assert!(!html.contains("arxiv.org/abs/1312.6199"), "a blog post took the id of a paper it cites");
    assert!(text.contains("Gradient-based Planning for World Models"));
    // The journal's papers, each once, linking to the journal.
    for i in [121, 122, 123, 124] {
        assert_eq!(text.matches(&title_of(i)).count(), 1, "{}", title_of(i));
    }
    assert!(html.contains("https://biorxiv.org/cgi/content/short/2023.12.16.571984v1?rss=1"));
    // The aggregator's papers are the Hugging Face ones, not second copies.
    for i in [79, 10, 11] {
        assert_eq!(text.matches(&title_of(i)).count(), 1, "{}", title_of(i));
    }
    assert!(html.contains("https://bair.berkeley.edu/blog/2026/04/28/world-models/"));
}

#[test]
fn authors_from_an_arxiv_rss_list_can_be_followed() {
    let (_http, smtp, site) = site_with_every_source();
    let (text, _) = digest(&site, &smtp, "follower@example.org");
    assert!(text.contains(&format!("{} Wei Zhang, Priya Natarajan, Arvind", title_of(134))), "{text}");
    assert!(text.contains(&format!("{} Deepti", title_of(135))), "{text}");
}

#[test]
fn real_shaped_sources_are_stored_under_the_ids_they_name() {
    let (_http, smtp, site) = site_with_every_source();
    digest(&site, &smtp, "reader@example.org");
    let count = |sql: &str| site.count(sql);

    assert_eq!(count("SELECT COUNT(*) FROM papers WHERE id = 'doi:10.1101/2023.12.16.571984'"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM papers WHERE id LIKE 'doi:10.1101/%'"), 4);
    assert_eq!(
        count("SELECT COUNT(*) FROM papers WHERE id LIKE 'url:%takara%' OR id LIKE 'url:%huggingface%'"),
        0
    );
    assert_eq!(count("SELECT COUNT(*) FROM papers WHERE id IN ('1312.6199', '2603.10130', '2603.10132')"), 0);
    assert_eq!(count("SELECT COUNT(*) FROM papers WHERE id LIKE 'url:%'"), 3, "the three blog posts");
    assert_eq!(count("SELECT COUNT(*) FROM paper_sources WHERE paper_id = '2604.26779'"), 2);
    let sources: Vec<String> = {
        let db = site.db();
        let mut stmt = db
            .prepare("SELECT source FROM paper_sources WHERE paper_id = '2604.26702' ORDER BY source")
            .unwrap();
        stmt.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    assert_eq!(sources, ["arxiv-cs-lg", "daily-papers", "huggingface"]);
    let data: String =
        site.db().query_row("SELECT data FROM papers WHERE id = '2604.26702'", [], |r| r.get(0)).unwrap();
    let paper: serde_json::Value = serde_json::from_str(&data).unwrap();
    let summary = paper["summary"].as_str().unwrap();
    assert!(summary.starts_with("Spiking Neural Networks (SNNs) are promising"), "{summary}");
    assert!(!summary.contains("Cited works"), "{summary}");

    let authors = |id: &str| -> Vec<String> {
        let data: String =
            site.db().query_row("SELECT data FROM papers WHERE id = ?1", [id], |r| r.get(0)).unwrap();
        let paper: serde_json::Value = serde_json::from_str(&data).unwrap();
        paper["authors"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
    };
    assert_eq!(authors("2604.26836"), ["Chen Li", "Sofia Rossi"], "affiliations dropped");
    assert_eq!(authors("doi:10.1101/2026.04.24.650101"), ["C. Li", "S. Rossi"], "bioRxiv's 'Last, F.' list");
}
