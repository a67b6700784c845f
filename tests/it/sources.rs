//! The sources through the library API against a real HTTP server on loopback: Hugging
//! Face, arXiv (pagination, spacing, anomalies), feeds, the polite client (retries,
//! Retry-After, conditional GET, body cap, redirects, timeouts), merging across sources,
//! and a property test that the parsers never panic.

use crate::support::http::{HttpServer, Reply, Route};

use chrono::{DateTime, NaiveDate, Utc};
use paper_digest::config::{ArxivSettings, Config, FeedSettings, HttpSettings, HuggingFaceSettings};
use paper_digest::error::Error;
use paper_digest::model::Paper;
use paper_digest::source::http::{Fetched, HttpClient, Validators};
use paper_digest::source::{
    Source, Window, arxiv, feed, fetch_all, from_config, huggingface, ids, merge_all,
};
use proptest::prelude::*;
use std::collections::HashMap;
use std::time::{Duration, Instant};

const HF_DAYS: [&str; 3] = ["2024-11-25", "2024-11-26", "2024-11-27"];

fn http_settings() -> HttpSettings {
    HttpSettings {
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        max_body_bytes: 20 * 1024 * 1024,
        max_attempts: 3,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_secs(2),
        max_redirects: 3,
        user_agent: "paper-digest-tests/1.0".into(),
    }
}

fn client_with(settings: &HttpSettings) -> HttpClient {
    HttpClient::new(settings, HashMap::new()).unwrap()
}

fn client() -> HttpClient {
    client_with(&http_settings())
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// The fixture week: the three HF listing days, everything since the 23rd.
fn window() -> Window {
    window_since("2024-11-23T00:00:00Z")
}

fn window_since(since: &str) -> Window {
    Window {
        days: HF_DAYS.iter().map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()).collect(),
        since: at(since),
        now: at("2024-11-27T07:00:00Z"),
    }
}

fn hf_route() -> Route {
    Route::files("/api/daily_papers", "date", "tests/fixtures/hf", "json")
}

/// `/api/query` answering the fixture pages by `start`.
fn arxiv_routes() -> Vec<Route> {
    [0, 50, 100]
        .iter()
        .map(|start| {
            Route::get("/api/query")
                .param("start", &start.to_string())
                .reply(Reply::file(format!("tests/fixtures/arxiv/query-start-{start}.xml")))
        })
        .collect()
}

fn arxiv_settings(server: &HttpServer) -> ArxivSettings {
    ArxivSettings {
        base_url: server.url(),
        categories: vec!["cs.CL".into(), "cs.CV".into()],
        query: None,
        max_results: 500,
        page_size: 50,
        delay: Duration::from_millis(1),
    }
}

fn hf(server: &HttpServer) -> huggingface::HuggingFace {
    huggingface::HuggingFace::new(&HuggingFaceSettings { base_url: server.url() })
}

fn fetch_error(err: &Error) -> (String, Option<u16>, bool) {
    match err {
        Error::Fetch { url, status, transient, .. } => (url.clone(), *status, *transient),
        other => panic!("expected a fetch error, got {other:?}"),
    }
}

#[tokio::test]
async fn hugging_face_days_are_fetched_and_mapped() {
    let server = HttpServer::start(vec![hf_route()]);
    let papers = hf(&server).fetch(&client(), &window()).await.unwrap();

    assert_eq!(papers.len(), 139);
    let dates: Vec<String> = server.requests().iter().filter_map(|r| r.param("date")).collect();
    assert_eq!(dates, HF_DAYS);
    assert!(server.requests().iter().all(|r| r.header("user-agent") == Some("paper-digest-tests/1.0")));

    let p = papers.iter().find(|p| p.id.as_str() == "2411.16500").unwrap();
    assert!(p.title.starts_with("Enhancing LLM Reasoning via Critique Models"));
    assert_eq!(p.authors, ["Wei Zhang"]);
    assert_eq!(p.upvotes, 11);
    assert_eq!(p.url.as_deref(), Some("https://huggingface.co/papers/2411.16500"));
    assert_eq!(p.project_url.as_deref(), Some("https://mathcritique.github.io/"));
    assert!(p.ai_summary.is_some());
    assert_eq!(p.published, Some(at("2024-11-25T00:10:00Z")));
    assert_eq!(p.sources, ["huggingface"]);
}

#[tokio::test]
async fn arxiv_pages_until_the_results_run_out() {
    let server = HttpServer::start(arxiv_routes());
    let source = arxiv::Arxiv::new(&arxiv_settings(&server));
    let papers = source.fetch(&client(), &window()).await.unwrap();

    assert_eq!(papers.len(), 139);
    let requests = server.requests();
    let starts: Vec<String> = requests.iter().filter_map(|r| r.param("start")).collect();
    assert_eq!(starts, ["0", "50", "100"]);
    let first = &requests[0];
    assert_eq!(first.param("search_query").as_deref(), Some("cat:cs.CL OR cat:cs.CV"));
    assert_eq!(first.param("sortBy").as_deref(), Some("submittedDate"));
    assert_eq!(first.param("sortOrder").as_deref(), Some("descending"));
    assert_eq!(first.param("max_results").as_deref(), Some("50"));

    let p = papers.iter().find(|p| p.id.as_str() == "2411.16501").unwrap();
    assert!(!p.categories.is_empty());
    assert_eq!(p.url.as_deref(), Some("https://arxiv.org/abs/2411.16501"));
    assert!(!p.summary.contains('\n') && !p.summary.contains("  "), "abstract not cleaned: {}", p.summary);
    assert_eq!(p.sources, ["arxiv"]);
}

#[tokio::test]
async fn arxiv_stops_at_the_first_paper_older_than_the_window() {
    let server = HttpServer::start(arxiv_routes());
    let source = arxiv::Arxiv::new(&arxiv_settings(&server));
    let since = at("2024-11-25T00:00:00Z");
    let papers = source.fetch(&client(), &window_since("2024-11-25T00:00:00Z")).await.unwrap();

    assert_eq!(papers.len(), 92, "submissions of the 25th and 26th");
    assert!(papers.iter().all(|p| p.published.is_some_and(|t| t >= since)));
    assert_eq!(server.requests().len(), 2, "the third page is older than the window");
}

#[tokio::test]
async fn arxiv_stops_at_max_results() {
    let server = HttpServer::start(arxiv_routes());
    let settings = ArxivSettings { max_results: 60, ..arxiv_settings(&server) };
    let papers = arxiv::Arxiv::new(&settings).fetch(&client(), &window()).await.unwrap();

    assert_eq!(papers.len(), 60);
    let sizes: Vec<String> = server.requests().iter().filter_map(|r| r.param("max_results")).collect();
    assert_eq!(sizes, ["50", "10"]);
}

#[tokio::test]
async fn arxiv_requests_to_one_host_are_spaced_by_the_configured_gap() {
    let server = HttpServer::start(arxiv_routes());
    let gap = Duration::from_millis(200);
    let settings = ArxivSettings { delay: gap, ..arxiv_settings(&server) };
    arxiv::Arxiv::new(&settings).fetch(&client(), &window()).await.unwrap();

    let times: Vec<Instant> = server.requests().iter().map(|r| r.at).collect();
    assert_eq!(times.len(), 3);
    for pair in times.windows(2) {
        let waited = pair[1] - pair[0];
        assert!(waited >= gap, "requests only {waited:?} apart");
    }
}

#[tokio::test]
async fn an_empty_arxiv_page_after_results_is_asked_again() {
    let mut routes = arxiv_routes();
    routes[1] = Route::get("/api/query")
        .param("start", "50")
        .reply(Reply::file("tests/fixtures/arxiv/empty.xml"))
        .reply(Reply::file("tests/fixtures/arxiv/query-start-50.xml"));
    let server = HttpServer::start(routes);
    let papers = arxiv::Arxiv::new(&arxiv_settings(&server)).fetch(&client(), &window()).await.unwrap();

    assert_eq!(papers.len(), 139);
    let starts: Vec<String> = server.requests().iter().filter_map(|r| r.param("start")).collect();
    assert_eq!(starts, ["0", "50", "50", "100"]);
}

#[tokio::test]
async fn arxiv_papers_are_fetched_by_id() {
    let server = HttpServer::start(vec![
        Route::get("/api/query").reply(Reply::file("tests/fixtures/arxiv/by-ids.xml")),
    ]);
    let wanted =
        ["arXiv:2411.16501v2", "https://arxiv.org/abs/2411.16505", "2411.16542", "2411.16501", "not-an-id"]
            .map(String::from);
    let papers = arxiv::fetch_by_ids(&client(), &arxiv_settings(&server), &wanted).await.unwrap();

    let got: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(got, ["2411.16501", "2411.16505", "2411.16542"]);
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].param("id_list").as_deref(), Some("2411.16501,2411.16505,2411.16542"));
}

#[tokio::test]
async fn an_arxiv_error_entry_fails_the_fetch_with_its_message() {
    let server = HttpServer::start(vec![
        Route::get("/api/query").reply(Reply::file("tests/fixtures/arxiv/error.xml")),
    ]);
    let err = arxiv::Arxiv::new(&arxiv_settings(&server)).fetch(&client(), &window()).await.unwrap_err();
    assert!(err.to_string().contains("incorrect id format"), "{err}");
    assert!(err.to_string().contains(&server.url()), "{err}");
}

#[tokio::test]
async fn a_503_twice_then_200_succeeds() {
    let server = HttpServer::start(vec![
        Route::get("/api/daily_papers")
            .reply(Reply::status(503))
            .reply(Reply::status(503))
            .reply(Reply::file("tests/fixtures/hf/2024-11-25.json")),
    ]);
    let client = client();
    let url = format!("{}/api/daily_papers?date=2024-11-25", server.url());
    let Fetched::Body(body) = client.get(&url).await.unwrap() else { panic!("expected a body") };

    assert_eq!(huggingface::parse(&url, &body).unwrap().len(), 47);
    assert_eq!(server.requests().len(), 3);
    assert_eq!(client.attempts(), 3);
}

#[tokio::test]
async fn retries_stop_after_max_attempts_and_the_error_names_url_and_status() {
    let server = HttpServer::start(vec![Route::get("/api/daily_papers").reply(Reply::status(500))]);
    let err = hf(&server).fetch(&client(), &window()).await.unwrap_err();

    let (url, status, transient) = fetch_error(&err);
    assert_eq!(url, format!("{}/api/daily_papers?date=2024-11-25&limit=50&p=0", server.url()));
    assert_eq!(status, Some(500));
    assert!(transient);
    assert!(err.to_string().contains("after 3 attempts"), "{err}");
    assert_eq!(server.requests().len(), 3);
}

#[tokio::test]
async fn a_404_is_not_retried() {
    let server = HttpServer::start(vec![]);
    let err = client().get(&format!("{}/missing", server.url())).await.unwrap_err();
    assert_eq!(fetch_error(&err).1, Some(404));
    assert!(!err.is_transient());
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_429_with_retry_after_is_honoured() {
    let server = HttpServer::start(vec![
        Route::get("/feed.xml")
            .reply(Reply::status(429).header("Retry-After", "1"))
            .reply(Reply::file("tests/fixtures/feeds/journal.atom")),
    ]);
    let started = Instant::now();
    client().get(&format!("{}/feed.xml", server.url())).await.unwrap();

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(1), "retried after only {waited:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_second_fetch_sends_if_none_match_and_gets_not_modified() {
    let server = HttpServer::start(vec![
        Route::get("/rss/cs.LG").reply(Reply::file("tests/fixtures/feeds/arxiv-cs.LG.rss").etag("\"v1\"")),
    ]);
    let url = format!("{}/rss/cs.LG", server.url());
    let client = client();
    assert!(matches!(client.get(&url).await.unwrap(), Fetched::Body(_)));
    let remembered = client.validators();
    assert_eq!(remembered[&url].etag.as_deref(), Some("\"v1\""));

    assert!(matches!(client.get(&url).await.unwrap(), Fetched::NotModified));
    let requests = server.requests();
    assert_eq!(requests[0].header("if-none-match"), None);
    assert_eq!(requests[1].header("if-none-match"), Some("\"v1\""));

    // A later run starts from the persisted validators: the feed source adds nothing.
    let next_run = HttpClient::new(&http_settings(), remembered).unwrap();
    let source = feed::Feed::new(&FeedSettings { name: "arxiv-cs.LG".into(), url: url.clone() });
    assert!(source.fetch(&next_run, &window()).await.unwrap().is_empty());
    assert_eq!(server.requests()[2].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test]
async fn if_modified_since_is_sent_from_remembered_validators() {
    let server = HttpServer::start(vec![Route::get("/feed").reply(Reply::status(304))]);
    let url = format!("{}/feed", server.url());
    let validators = Validators { etag: None, last_modified: Some("Wed, 27 Nov 2024 05:00:00 GMT".into()) };
    let client =
        HttpClient::new(&http_settings(), HashMap::from([(url.clone(), validators.clone())])).unwrap();

    assert!(matches!(client.get(&url).await.unwrap(), Fetched::NotModified));
    assert_eq!(server.requests()[0].header("if-modified-since"), validators.last_modified.as_deref());
    assert_eq!(client.validators()[&url], validators);
}

#[tokio::test]
async fn an_endless_body_is_cut_off_at_the_cap_while_streaming() {
    let server = HttpServer::start(vec![Route::get("/huge").reply(Reply::endless())]);
    let settings = HttpSettings { max_body_bytes: 1024 * 1024, ..http_settings() };
    let url = format!("{}/huge", server.url());
    let started = Instant::now();
    let err = client_with(&settings).get(&url).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    let text = err.to_string();
    assert!(text.contains(&url) && text.contains("1048576 bytes"), "{text}");
    assert!(!err.is_transient());
    assert_eq!(server.requests().len(), 1, "an oversized body is not retried");
    assert!(
        server.aborted_within(1, Duration::from_secs(5)).await,
        "the server never saw the connection close"
    );
}

#[tokio::test]
async fn a_redirect_to_file_is_refused() {
    let server =
        HttpServer::start(vec![Route::get("/moved").reply(Reply::redirect(302, "file:///etc/passwd"))]);
    let err = client().get(&format!("{}/moved", server.url())).await.unwrap_err();
    let text = err.to_string();
    assert!(text.contains("file:///etc/passwd") && text.contains("only http and https"), "{text}");
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn too_many_redirects_are_refused() {
    let server = HttpServer::start(vec![
        Route::get("/a").reply(Reply::redirect(302, "/b")),
        Route::get("/b").reply(Reply::redirect(301, "/a")),
    ]);
    let err = client().get(&format!("{}/a", server.url())).await.unwrap_err();
    assert!(err.to_string().contains("3 redirects"), "{err}");
    assert_eq!(server.requests().len(), 4, "the original request and three redirects");
}

#[tokio::test]
async fn redirects_within_the_limit_are_followed() {
    let server = HttpServer::start(vec![
        Route::get("/old").reply(Reply::redirect(301, "/new")),
        Route::get("/new").reply(Reply::ok("moved here")),
    ]);
    let Fetched::Body(body) = client().get(&format!("{}/old", server.url())).await.unwrap() else {
        panic!("expected a body")
    };
    assert_eq!(body, b"moved here");
}

#[tokio::test]
async fn a_slow_server_times_out_and_the_error_says_so() {
    let server =
        HttpServer::start(vec![Route::get("/slow").reply(Reply::ok("late").delay(Duration::from_secs(3)))]);
    let settings = HttpSettings { timeout: Duration::from_millis(300), max_attempts: 2, ..http_settings() };
    let started = Instant::now();
    let err = client_with(&settings).get(&format!("{}/slow", server.url())).await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    assert!(err.is_transient());
    assert!(err.to_string().contains("timed out"), "{err}");
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn malformed_xml_names_the_url_and_position() {
    let broken = "<?xml version=\"1.0\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n  <entry>\n    <title>x</titel>\n";
    let server = HttpServer::start(vec![
        Route::get("/api/query").reply(Reply::ok(broken)),
        Route::get("/feed.atom").reply(Reply::ok(broken)),
    ]);
    let err = arxiv::Arxiv::new(&arxiv_settings(&server)).fetch(&client(), &window()).await.unwrap_err();
    let Error::Parse { url, position, .. } = &err else { panic!("expected a parse error, got {err:?}") };
    assert!(url.starts_with(&format!("{}/api/query?", server.url())), "{url}");
    assert!(position.as_deref().is_some_and(|p| p.starts_with("line 4, column")), "{position:?}");

    let source =
        feed::Feed::new(&FeedSettings { name: "journal".into(), url: format!("{}/feed.atom", server.url()) });
    let err = source.fetch(&client(), &window()).await.unwrap_err();
    let Error::Parse { url, position, .. } = &err else { panic!("expected a parse error, got {err:?}") };
    assert_eq!(url, &format!("{}/feed.atom", server.url()));
    assert!(position.as_deref().is_some_and(|p| p.starts_with("line 4, column")), "{position:?}");
}

#[tokio::test]
async fn malformed_json_names_the_url_and_position() {
    let server = HttpServer::start(vec![
        Route::get("/api/daily_papers").reply(Reply::ok("[\n  {\"paper\": {\"id\": }}\n]")),
    ]);
    let err = hf(&server).fetch(&client(), &window()).await.unwrap_err();
    let Error::Parse { url, position, .. } = &err else { panic!("expected a parse error, got {err:?}") };
    assert_eq!(url, &format!("{}/api/daily_papers?date=2024-11-25&limit=50&p=0", server.url()));
    assert_eq!(position.as_deref(), Some("line 2, column 20"));
    assert!(err.to_string().contains(url.as_str()));
}

#[test]
fn arxiv_rss_items_are_keyed_by_arxiv_id_and_replacements_are_skipped() {
    let body = std::fs::read("tests/fixtures/feeds/arxiv-cs.LG.rss").unwrap();
    let papers = feed::parse("arxiv-cs.LG", "http://h/rss/cs.LG", &body).unwrap();

    assert_eq!(papers.len(), 46, "46 new or cross-listed, 2 replacements skipped");
    assert!(papers.iter().all(|p| p.id.arxiv().is_some()));
    assert!(!papers.iter().any(|p| p.id.as_str().starts_with("2410.")));
    let p = papers.iter().find(|p| p.id.as_str() == "2411.16502").unwrap();
    assert!(!p.summary.starts_with("arXiv:") && !p.summary.contains("Announce Type"), "{}", p.summary);
    assert!(p.authors.len() > 1 || !p.authors[0].contains(','), "{:?}", p.authors);
    assert!(!p.categories.is_empty());
    assert_eq!(p.url.as_deref(), Some("https://arxiv.org/abs/2411.16502"));
    assert_eq!(p.sources, ["arxiv-cs.LG"]);
}

#[test]
fn journal_items_are_keyed_by_doi_else_canonical_url() {
    let body = std::fs::read("tests/fixtures/feeds/journal.atom").unwrap();
    let papers = feed::parse("journal", "http://h/feed.atom", &body).unwrap();
    let keys: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        keys,
        [
            "doi:10.5555/pd.2024.0101",
            "doi:10.5555/pd.2024.0102",
            "doi:10.5555/pd.2024.0103",
            "doi:10.5555/pd.2024.0104",
            "url:https://blog.example.org/posts/diffusion-hands",
            "url:https://blog.example.org/posts/ssm-part-2",
        ]
    );
    assert_eq!(papers[0].summary, "We present fused sparse attention kernels & show 3\u{d7} speed-ups.");
    assert!(papers.iter().all(|p| p.categories.is_empty()));
}

/// A config naming every source on `server`.
fn config_for(server: &HttpServer) -> Config {
    let base = server.url();
    Config::parse(&format!(
        r#"
[sources.huggingface]
base_url = "{base}"
[sources.arxiv]
base_url = "{base}"
categories = ["cs.CL", "cs.CV"]
page_size = 50
delay_secs = 0.01
[[sources.feeds]]
name = "arxiv-cs.LG"
url = "{base}/rss/cs.LG"
[[sources.feeds]]
name = "journal"
url = "{base}/feed.atom"
[mail]
from = "Digest <digest@example.org>"
"#
    ))
    .unwrap()
}

fn every_source_routes() -> Vec<Route> {
    let mut routes = vec![
        hf_route(),
        Route::get("/rss/cs.LG").reply(Reply::file("tests/fixtures/feeds/arxiv-cs.LG.rss")),
        Route::get("/feed.atom").reply(Reply::file("tests/fixtures/feeds/journal.atom")),
    ];
    routes.extend(arxiv_routes());
    routes
}

#[tokio::test]
async fn the_same_paper_from_three_sources_is_merged_once() {
    let server = HttpServer::start(every_source_routes());
    let sources = from_config(&config_for(&server));
    let names: Vec<&str> = sources.iter().map(Source::name).collect();
    assert_eq!(names, ["huggingface", "arxiv", "arxiv-cs.LG", "journal"]);

    let reports = fetch_all(&sources, &client(), &window()).await;
    let mut all: Vec<Paper> = Vec::new();
    let mut counts = Vec::new();
    for report in reports {
        let papers = report.outcome.unwrap();
        counts.push((report.source, papers.len()));
        all.extend(papers);
    }
    let merged = merge_all(all);
    eprintln!("fixture run: {counts:?}; {} papers after merging", merged.len());
    assert_eq!(
        counts,
        [
            ("huggingface".into(), 139),
            ("arxiv".into(), 139),
            ("arxiv-cs.LG".into(), 46),
            ("journal".into(), 6)
        ]
    );
    assert_eq!(merged.len(), 145);

    let same: Vec<&Paper> = merged.iter().filter(|p| p.id.as_str() == "2411.16502").collect();
    assert_eq!(same.len(), 1);
    let p = same[0];
    assert_eq!(p.sources, ["huggingface", "arxiv", "arxiv-cs.LG"]);
    assert_eq!(p.upvotes, 85, "upvotes from Hugging Face");
    assert!(!p.categories.is_empty(), "categories from arXiv");
    assert!(p.ai_summary.is_some(), "AI summary from Hugging Face");
    assert_eq!(p.url.as_deref(), Some("https://huggingface.co/papers/2411.16502"));
}

#[tokio::test]
async fn one_failing_source_does_not_stop_the_others() {
    let mut routes = vec![Route::get("/api/daily_papers").reply(Reply::status(503))];
    routes.extend(every_source_routes());
    let server = HttpServer::start(routes);
    let sources = from_config(&config_for(&server));
    let settings = HttpSettings { max_attempts: 2, ..http_settings() };
    let reports = fetch_all(&sources, &client_with(&settings), &window()).await;

    let failed: Vec<&str> =
        reports.iter().filter(|r| r.outcome.is_err()).map(|r| r.source.as_str()).collect();
    assert_eq!(failed, ["huggingface"]);
    let err = reports[0].outcome.as_ref().unwrap_err();
    assert_eq!(fetch_error(err).1, Some(503));
    assert!(reports[1..].iter().all(|r| r.outcome.as_ref().is_ok_and(|p| !p.is_empty())));
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Fixture bytes cut at `cut` with one byte replaced at `at`: broken in plausible ways.
fn mangle(bytes: &[u8], cut: usize, at: usize, with: u8) -> Vec<u8> {
    let mut out = bytes[..cut % (bytes.len() + 1)].to_vec();
    if !out.is_empty() {
        let i = at % out.len();
        out[i] = with;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = huggingface::parse("http://h/", &bytes);
        let _ = arxiv::parse_page("http://h/", &bytes);
        let _ = feed::parse("f", "http://h/", &bytes);
    }

    #[test]
    fn parsers_never_panic_on_mangled_fixtures(cut in any::<usize>(), at in any::<usize>(), with in any::<u8>()) {
        let _ = huggingface::parse("http://h/", &mangle(&fixture("tests/fixtures/hf/2024-11-25.json"), cut, at, with));
        let _ = arxiv::parse_page("http://h/", &mangle(&fixture("tests/fixtures/arxiv/by-ids.xml"), cut, at, with));
        let _ = feed::parse("f", "http://h/", &mangle(&fixture("tests/fixtures/feeds/journal.atom"), cut, at, with));
    }

    #[test]
    fn id_normalizers_never_panic(s in "\\PC{0,40}", prefix in "(arXiv:|https://arxiv.org/abs/|doi:|https://doi.org/|oai:arXiv.org:|)") {
        let input = format!("{prefix}{s}");
        let _ = ids::normalize_arxiv(&input);
        let _ = ids::find_arxiv(&input);
        let _ = ids::normalize_doi(&input);
        let _ = ids::find_doi(&input);
        let _ = ids::canonical_url(&input);
        let _ = ids::arxiv_from_link(&input);
        let _ = ids::arxiv_from_link(&format!("https://tldr.takara.ai/p/{s}"));
    }

    #[test]
    fn normalized_arxiv_ids_are_fixed_points(id in "(1[5-9]|[2-9][0-9])(0[1-9]|1[0-2])\\.[0-9]{5}", v in 1u8..9) {
        let normalized = ids::normalize_arxiv(&format!("arXiv:{id}v{v}"));
        prop_assert_eq!(normalized.as_deref(), Some(id.as_str()));
        prop_assert_eq!(ids::normalize_arxiv(&id), Some(id.clone()));
    }
}

// ---------------------------------------------------------------------------------------
// Real-shaped fixtures (tests/fixtures/real, written by make_real_fixtures.py)

const REAL_DAY: &str = "2026-04-29";

fn real(name: &str) -> Vec<u8> {
    fixture(&format!("tests/fixtures/real/{name}"))
}

fn real_window() -> Window {
    Window {
        days: vec![NaiveDate::parse_from_str(REAL_DAY, "%Y-%m-%d").unwrap()],
        since: at("2026-04-26T00:00:00Z"),
        now: at("2026-04-29T07:00:00Z"),
    }
}

/// `/api/daily_papers` as the real API pages it: `limit` items (at most 50) from page `p`.
fn paged_hf_route() -> Route {
    let day: Vec<serde_json::Value> = serde_json::from_slice(&real("hf-2026-04-29.json")).unwrap();
    Route::get("/api/daily_papers").with(move |req| {
        if req.param("date").as_deref() != Some(REAL_DAY) {
            return Reply::ok("[]");
        }
        let limit = req.param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(50).min(50);
        let page = req.param("p").and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
        let items: Vec<&serde_json::Value> = day.iter().skip(page * limit).take(limit).collect();
        Reply::ok(serde_json::to_vec(&items).unwrap())
    })
}

fn find<'a>(papers: &'a [Paper], id: &str) -> &'a Paper {
    papers.iter().find(|p| p.id.as_str() == id).unwrap_or_else(|| panic!("no paper {id}"))
}

#[tokio::test]
async fn a_long_hugging_face_day_is_read_page_by_page() {
    let server = HttpServer::start(vec![paged_hf_route()]);
    let papers = hf(&server).fetch(&client(), &real_window()).await.unwrap();

    let pages: Vec<String> = server.requests().iter().filter_map(|r| r.param("p")).collect();
    assert_eq!(pages, ["0", "1", "2"], "121 entries at 50 a page");
    assert!(server.requests().iter().all(|r| r.param("limit").as_deref() == Some("50")));
    let merged = merge_all(papers);
    assert_eq!(merged.len(), 119, "121 entries, one withdrawn, one listed twice");
    assert!(merged.iter().any(|p| p.id.as_str() == "2604.26819"), "the last page is read");
}

#[test]
fn withdrawn_hugging_face_papers_are_left_out() {
    let papers = huggingface::parse("http://h/api", &real("hf-2026-04-29.json")).unwrap();
    assert!(!papers.iter().any(|p| p.id.as_str() == "2604.26705"));
    assert_eq!(papers.len(), 120);
}

#[test]
fn a_paper_listed_twice_keeps_one_consistent_record() {
    let papers = huggingface::parse("http://h/api", &real("hf-2026-04-29.json")).unwrap();
    let merged = merge_all(papers);
    let p = find(&merged, "2604.26707");
    assert_eq!(
        (p.title.as_str(), p.upvotes),
        ("LightSeq: Sequence Level Parallelism for Distributed Training of Long Context Transformers", 31),
        "title and votes of the same listing"
    );
}

#[test]
fn the_2026_hugging_face_layout_is_read_whole() {
    let papers = huggingface::parse("http://h/api", &real("hf-2026-04-29.json")).unwrap();
    let p = find(&papers, "2604.26703");
    assert_eq!(p.title, "Q&A for LLMs—a survey");
    let p = find(&papers, "2604.26702");
    assert_eq!(p.authors, ["Hiroshi Sato", "Yuki Tanaka", "Amélie Dubois"]);
    assert!(!p.keywords.is_empty() && p.ai_summary.is_some());
    assert_eq!(p.url.as_deref(), Some("https://huggingface.co/papers/2604.26702"));
}

#[test]
fn an_arxiv_rss_day_keeps_new_and_cross_lists_and_splits_authors() {
    let papers = feed::parse("arxiv-cs.LG", "http://h/rss/cs.LG", &real("arxiv-cs.LG.rss")).unwrap();
    let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "2604.26700",
            "2604.26701",
            "2604.26702",
            "2604.26703",
            "2604.26704",
            "2604.26834",
            "2604.26835",
            "2604.26706",
            "2604.26836"
        ],
        "replace and replace-cross announcements are skipped"
    );
    assert_eq!(find(&papers, "2604.26834").authors, ["Wei Zhang", "Priya Natarajan", "Arvind"]);
    assert_eq!(find(&papers, "2604.26835").authors, ["Deepti"]);
    assert_eq!(find(&papers, "2604.26836").authors, ["Chen Li", "Sofia Rossi"]);
    assert_eq!(find(&papers, "2604.26703").title, "Q&A for LLMs—a survey");
    for p in &papers {
        assert!(
            p.summary.starts_with(char::is_uppercase),
            "{}: {}",
            p.id,
            p.summary.chars().take(40).collect::<String>()
        );
        assert!(!p.summary.contains("Announce Type") && !p.summary.contains("arXiv:2604"), "{}", p.id);
        assert!(!p.categories.is_empty());
    }
    assert_eq!(find(&papers, "2604.26706").categories, ["cs.CV", "cs.LG"]);
}

#[test]
fn an_rss_1_journal_feed_is_keyed_by_its_dc_identifier_doi() {
    let papers = feed::parse("biorxiv", "http://h/biorxiv.rdf", &real("biorxiv.rdf")).unwrap();
    let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "doi:10.1101/2026.04.24.650101",
            "doi:10.1101/2026.04.25.650202",
            "doi:10.1101/2026.04.26.650303",
            "doi:10.1101/2023.12.16.571984"
        ]
    );
    assert_eq!(papers[0].authors, ["C. Li", "S. Rossi"]);
    assert_eq!(papers[3].authors, ["T. Novák", "M.J. García", "J.R. Smith", "C. Li", "S. Rossi"]);
    assert!(papers[0].url.as_deref().is_some_and(|u| u.starts_with("http://biorxiv.org/cgi/content/short/")));
    assert!(papers.iter().all(|p| p.published.is_some() && !p.summary.is_empty()));
}

#[test]
fn blog_posts_are_keyed_by_their_own_url_not_the_papers_they_cite() {
    let papers = feed::parse("blog", "http://h/blog.rss", &real("blog.rss")).unwrap();
    let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "url:https://bair.berkeley.edu/blog/2026/04/28/world-models",
            "url:https://thegradient.pub/notes-on-a-paper",
            "url:https://vectorinstitute.ai/reading-group-2026-04",
        ]
    );
    for p in &papers {
        for noise in ["twitter", "<meta", "kg-card", "window.ghost", "margin:", "<!--", "&lt;", "&amp;"] {
            assert!(!p.summary.contains(noise), "{noise:?} in {}: {}", p.id, p.summary);
        }
        assert!(p.categories.is_empty());
    }
    assert!(papers[0].summary.starts_with("As deep neural networks become adopted"), "{}", papers[0].summary);
    assert!(papers[0].summary.contains("Szegedy et al., arXiv:1312.6199"), "a citation stays text");
    assert!(papers[1].summary.starts_with("The advent of instruction-tuned"), "{}", papers[1].summary);
}

#[test]
fn aggregator_links_carry_the_arxiv_id_and_wrapper_lines_go() {
    let papers = feed::parse("daily", "http://h/aggregator.rss", &real("aggregator.rss")).unwrap();
    let ids: Vec<&str> = papers.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["2604.26779", "2604.26702", "2604.26710", "2604.26711"]);
    for p in &papers {
        for label in ["Authors:", "Upvotes:", "Summary:"] {
            assert!(!p.summary.contains(label), "{label} in {}: {}", p.id, p.summary);
        }
    }
    assert_eq!(
        papers[0].authors,
        ["Tomás Novák", "María José García", "J. R. Smith", "Chen Li", "Sofia Rossi"]
    );
    assert!(papers[0].summary.starts_with("Activation sparsity denotes"), "{}", papers[0].summary);
}

#[test]
fn the_api_abstract_wins_over_an_aggregators_longer_text() {
    let mut all = huggingface::parse("http://h/api", &real("hf-2026-04-29.json")).unwrap();
    all.extend(feed::parse("daily", "http://h/aggregator.rss", &real("aggregator.rss")).unwrap());
    let merged = merge_all(all);
    let p = find(&merged, "2604.26702");
    assert!(p.summary.starts_with("Spiking Neural Networks (SNNs) are promising"), "{}", p.summary);
    assert!(!p.summary.contains("Cited works include"), "the aggregator's text lost: {}", p.summary);
    assert_eq!(p.sources, ["huggingface", "daily"]);
    assert_eq!(p.url.as_deref(), Some("https://huggingface.co/papers/2604.26702"));
}

// ---------------------------------------------------------------------------------------
// Property tests and an adversarial corpus: every parser and text pass, arbitrary Unicode

use paper_digest::render::latex;
use paper_digest::render::text::wrap;
use paper_digest::source::text;

fn chars(s: &str) -> usize {
    s.chars().count()
}

/// Text that stresses the passes: arbitrary Unicode mixed with the characters they act on.
fn nasty() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            3 => "\\PC{0,12}",
            1 => Just("&".to_string()),
            1 => Just("—".to_string()),
            1 => Just("<".to_string()),
            1 => Just("{".to_string()),
            1 => Just("}".to_string()),
            1 => Just("$".to_string()),
            1 => Just("\\".to_string()),
            1 => prop::sample::select(vec![
                "<p>", "</p>", "<!--", "-->", "<meta name=\"x\" content=\"y\">", "<sup>", "</sup>", "<sub>",
                "<script>", "</script>", "<style>", "&amp;", "&#x3b1;", "&#99999999;", "\\frac", "\\sqrt[",
                "^", "_", "--", "``", "''", "~", "Authors:", "Summary:", "Upvotes: 3", "arXiv:2411.16500v2",
                "Announce Type:", "Abstract:", ". ", "\n", " ", "é", "\u{202E}", "\u{0}", "🦀", "(", ")", ",",
            ]).prop_map(String::from),
        ],
        0..60,
    )
    .prop_map(|parts| parts.concat())
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| matches!(c, '\t' | '\n' | '\r') || !c.is_control())
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn text_passes_never_panic_and_stay_bounded(s in nasty()) {
        let n = chars(&s);
        prop_assert!(chars(&text::clean(&s)) <= n);
        prop_assert!(chars(&text::html_to_text(&s)) <= n);
        prop_assert!(chars(&text::strip_tags(&s)) <= n);
        let t = text::title(&s);
        prop_assert!(chars(&t) <= text::MAX_TITLE_CHARS && chars(&t) <= n);
        prop_assert!(chars(&text::abstract_text(&s)) <= text::MAX_ABSTRACT_CHARS);
        let cleaned = text::clean(&s);
        prop_assert!(chars(&text::first_sentences(&cleaned, 2, 40)) <= 40);
        prop_assert!(chars(&text::truncate_words(&cleaned, 10)) <= 10);
        let wrapped = wrap(&cleaned, 20, "> ", "  ");
        for line in wrapped.lines() {
            // Columns as a terminal shows them: a combining mark takes none, an emoji two.
            let columns = textwrap::core::display_width(line);
            prop_assert!(columns <= 20 || line.contains("://"), "{line:?}");
        }
        prop_assert!(chars(&latex::to_unicode(&s)) <= 2 * n + 4);
    }

    #[test]
    fn hugging_face_listings_with_arbitrary_text_parse(title in nasty(), summary in nasty(), author in nasty()) {
        let body = serde_json::json!([{"paper": {"id": "2411.16500", "title": title, "summary": summary,
            "authors": [{"name": author}], "ai_keywords": [title], "upvotes": 3}}]);
        let papers = huggingface::parse("http://h/", body.to_string().as_bytes()).unwrap();
        for p in &papers {
            prop_assert!(chars(&p.title) <= text::MAX_TITLE_CHARS && chars(&p.title) <= chars(&title));
            prop_assert!(chars(&p.summary) <= chars(&summary));
        }
    }

    #[test]
    fn arxiv_pages_with_arbitrary_text_parse(title in nasty(), summary in nasty(), author in nasty()) {
        let body = format!(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>http://arxiv.org/abs/2411.16500v1</id>\
             <title>{}</title><summary>{}</summary><author><name>{}</name></author></entry></feed>",
            xml_escape(&title), xml_escape(&summary), xml_escape(&author));
        let page = arxiv::parse_page("http://h/", body.as_bytes()).unwrap();
        for p in &page.papers {
            prop_assert!(chars(&p.title) <= chars(&title) && chars(&p.summary) <= chars(&summary));
        }
    }

    #[test]
    fn feed_items_with_arbitrary_text_parse(title in nasty(), description in nasty(), creator in nasty()) {
        for (t, d) in [(xml_escape(&title), xml_escape(&description)), (title.clone(), description.clone())] {
            let body = format!(
                "<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\"><channel><title>c</title>\
                 <item><title>{t}</title><link>https://example.org/a</link><description>{d}</description>\
                 <dc:creator>{}</dc:creator></item></channel></rss>", xml_escape(&creator));
            if let Ok(papers) = feed::parse("f", "http://h/", body.as_bytes()) {
                for p in &papers {
                    prop_assert!(chars(&p.title) <= text::MAX_TITLE_CHARS);
                    prop_assert!(chars(&p.summary) <= chars(&description) + 1);
                    prop_assert!(p.authors.iter().map(|a| chars(a)).sum::<usize>() <= chars(&creator));
                }
            }
        }
    }
}

/// Inputs built to hit the worst case of each pass: deep nesting, huge and repetitive
/// text. Each must finish (in linear-ish time: the sizes make a quadratic pass hang the
/// suite) without a panic or a stack overflow, with bounded output.
#[test]
fn an_adversarial_corpus_is_handled_in_bounded_time() {
    let deep_braces = format!("{}x{}", "{".repeat(20_000), "}".repeat(20_000));
    let corpus: Vec<String> = vec![
        deep_braces.clone(),
        "{".repeat(200_000),
        "\\sqrt[".repeat(50_000),
        "\\hat".repeat(50_000),
        "$a$ $".repeat(50_000),
        "<div>".repeat(20_000),
        "<a x=\"".repeat(50_000),
        "<sup>".repeat(20_000),
        "<!--".repeat(50_000),
        "&amp;".repeat(100_000),
        "Q&A—".repeat(100_000),
        "word ".repeat(400_000),
        "a. ".repeat(300_000),
        "Authors: x ".repeat(50_000),
        "(".repeat(100_000),
    ];
    for input in &corpus {
        let n = chars(input);
        let html = text::html_to_text(input);
        assert!(chars(&html) <= n);
        let t = text::title(&html);
        assert!(chars(&t) <= text::MAX_TITLE_CHARS);
        let a = text::abstract_text(&html);
        assert!(chars(&a) <= text::MAX_ABSTRACT_CHARS);
        assert!(chars(&latex::to_unicode(input)) <= 2 * n + 4);
        // What a digest card does with a stored abstract.
        let card = text::clean(&latex::to_unicode(&text::strip_tags(&a)));
        let _ = wrap(&text::first_sentences(&card, 3, 400), 72, "", "   ");
    }

    // The same inputs as a title and a description in each format.
    for input in &corpus {
        let escaped = xml_escape(input);
        let hf = serde_json::json!([{"paper": {"id": "2411.16500", "title": input, "summary": input}}]);
        for p in huggingface::parse("http://h/", hf.to_string().as_bytes()).unwrap() {
            assert!(
                chars(&p.title) <= text::MAX_TITLE_CHARS && chars(&p.summary) <= text::MAX_ABSTRACT_CHARS
            );
        }
        let atom = format!(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>http://arxiv.org/abs/2411.16500</id>\
             <title>{escaped}</title><summary>{escaped}</summary></entry></feed>"
        );
        for p in arxiv::parse_page("http://h/", atom.as_bytes()).unwrap().papers {
            assert!(
                chars(&p.title) <= text::MAX_TITLE_CHARS && chars(&p.summary) <= text::MAX_ABSTRACT_CHARS
            );
        }
        let rss = format!(
            "<rss version=\"2.0\"><channel><title>c</title><item><title>{escaped}</title>\
             <link>https://example.org/a</link><description>{escaped}</description></item></channel></rss>"
        );
        for p in feed::parse("f", "http://h/", rss.as_bytes()).unwrap() {
            assert!(
                chars(&p.title) <= text::MAX_TITLE_CHARS && chars(&p.summary) <= text::MAX_ABSTRACT_CHARS
            );
        }
    }

    // Deeply nested documents are refused with an error, not a stack overflow.
    let nested = format!(
        "<rss version=\"2.0\"><channel><item>{}{}</item></channel></rss>",
        "<x>".repeat(20_000),
        "</x>".repeat(20_000)
    );
    let err = feed::parse("f", "http://h/deep.xml", nested.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("http://h/deep.xml") && err.contains("nest deeper"), "{err}");
    let nested = format!(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\">{}{}</feed>",
        "<x>".repeat(20_000),
        "</x>".repeat(20_000)
    );
    assert!(arxiv::parse_page("http://h/", nested.as_bytes()).is_ok());
    let nested_json = format!("{}{}", "[".repeat(20_000), "]".repeat(20_000));
    assert!(huggingface::parse("http://h/", nested_json.as_bytes()).is_err());
}

#[test]
fn a_two_megabyte_title_is_cut_at_a_word_by_every_parser() {
    let huge = "Scaling ".repeat(262_144);
    let capped = |title: &str| chars(title) <= text::MAX_TITLE_CHARS && title.ends_with("Scaling…");
    let hf = serde_json::json!([{"paper": {"id": "2411.16500", "title": huge, "summary": huge}}]);
    let p = &huggingface::parse("http://h/", hf.to_string().as_bytes()).unwrap()[0];
    assert!(capped(&p.title) && chars(&p.summary) <= text::MAX_ABSTRACT_CHARS);
    let atom = format!(
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>http://arxiv.org/abs/2411.16500</id>\
         <title>{huge}</title></entry></feed>"
    );
    assert!(capped(&arxiv::parse_page("http://h/", atom.as_bytes()).unwrap().papers[0].title));
    let rss = format!(
        "<rss version=\"2.0\"><channel><title>c</title><item><title>{huge}</title>\
         <link>https://example.org/a</link></item></channel></rss>"
    );
    assert!(capped(&feed::parse("f", "http://h/", rss.as_bytes()).unwrap()[0].title));
}
