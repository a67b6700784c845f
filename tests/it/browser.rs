//! One browser test: headless Chromium, driven over WebDriver (chromedriver), goes
//! through the real pages of `paper-digest serve` as a reader would: subscribe, confirm
//! from the mailed link, manage, read the digest in the browser, vote, unsubscribe.
//!
//! Skipped, with a line saying which tool is missing, when chromium or chromedriver is
//! not installed, unless `PAPER_DIGEST_REQUIRE_TOOLS=1` (as in CI). With
//! `PAPER_DIGEST_SCREENSHOTS=DIR` each page is saved there as a PNG (docs/web/ holds them).

use crate::support::smtp::{Faults, Received, SmtpServer};

use crate::support::site;

use crate::support::serve;

use fantoccini::{Client, ClientBuilder, Locator};
use mail_parser::MessageParser;
use serve::{Served, enable_web, free_port, url_after};
use site::{Site, code, hf_server, stderr};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The tool that is missing, if one is.
fn missing_tool() -> Option<&'static str> {
    [CHROMIUM, CHROMEDRIVER].into_iter().find(|p| !Path::new(p).exists())
}

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_driver() -> (Driver, u16) {
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(start.elapsed() < Duration::from_secs(20), "chromedriver did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    (driver, port)
}

async fn browser(driver_port: u16, profile: &Path) -> Client {
    // Two rustls providers are linked (ring and aws-lc-rs via dependencies): pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=820,1100", format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("TLS roots load")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver_port}"))
        .await
        .expect("a WebDriver session")
}

fn wait_for(smtp: &SmtpServer, addr: &str, n: usize) -> Received {
    let start = Instant::now();
    loop {
        let got: Vec<Received> =
            smtp.messages().into_iter().filter(|m| m.rcpt_to.iter().any(|r| r == addr)).collect();
        if got.len() >= n {
            return got[n - 1].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no message {n} to {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Saves what the browser shows, when screenshots are asked for.
async fn snap(c: &Client, dir: Option<&PathBuf>, name: &str) {
    if let Some(dir) = dir {
        let png = c.screenshot().await.expect("a screenshot");
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

/// Waits until the page shows `want` somewhere.
async fn expect_text(c: &Client, want: &str) {
    let start = Instant::now();
    while !c.source().await.unwrap_or_default().contains(want) {
        assert!(start.elapsed() < Duration::from_secs(15), "the page never showed {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (a click's page load takes a moment) until the page's heading is `want`.
async fn expect_heading(c: &Client, want: &str) {
    let start = Instant::now();
    loop {
        let seen = match c.find(Locator::Css("h1")).await {
            Ok(h) => h.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if seen == want {
            return;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "expected the page {want:?}, still on {seen:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_subscribes_confirms_manages_votes_and_unsubscribes_in_a_real_browser() {
    if let Some(tool) = missing_tool() {
        assert!(
            std::env::var("PAPER_DIGEST_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{tool} is required (PAPER_DIGEST_REQUIRE_TOOLS=1) but not installed"
        );
        // Written to the real stderr: `println!` is captured and hidden for a passing test,
        // and a skip must be seen.
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: {tool} is not installed (Debian/Ubuntu: `apt-get install -y chromium chromium-driver`); \
             set PAPER_DIGEST_REQUIRE_TOOLS=1 to make this a failure"
        );
        return;
    }
    let shots = std::env::var_os("PAPER_DIGEST_SCREENSHOTS").map(PathBuf::from);
    let shots = shots.as_ref();
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::with_subscribers(&http.url(), smtp.port(), "", "");
    let port = free_port();
    enable_web(&site, port, "public_topics = true");
    let server = Served::start(&site, port);
    let (_driver, driver_port) = start_driver();
    let profile = tempfile::tempdir().unwrap();
    let c = browser(driver_port, profile.path()).await;

    // Subscribe.
    c.goto(&format!("{}/", server.base)).await.unwrap();
    expect_heading(&c, "Subscribe to Paper Digest").await;
    c.find(Locator::Css("#email")).await.unwrap().send_keys("dave@example.org").await.unwrap();
    c.find(Locator::Css("input[value='llm-reasoning']")).await.unwrap().click().await.unwrap();
    snap(&c, shots, "subscribe").await;
    // The same page on a phone's screen.
    c.set_window_size(390, 844).await.unwrap();
    snap(&c, shots, "subscribe-phone").await;
    c.set_window_size(820, 1100).await.unwrap();
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    expect_heading(&c, "Check your inbox").await;
    snap(&c, shots, "check-inbox").await;

    // Confirm from the mailed link.
    let mail = wait_for(&smtp, "dave@example.org", 1);
    let text = MessageParser::default().parse(&mail.data).unwrap().body_text(0).unwrap().into_owned();
    let link = url_after(&text, &format!("{}/c/", server.base)).unwrap();
    c.goto(&link).await.unwrap();
    snap(&c, shots, "confirm").await;
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    expect_heading(&c, "You are subscribed").await;
    snap(&c, shots, "subscribed").await;

    // Manage: add a topic.
    c.find(Locator::LinkText("Change your settings")).await.unwrap().click().await.unwrap();
    expect_heading(&c, "Your subscription").await;
    c.find(Locator::Css("input[value='video']")).await.unwrap().click().await.unwrap();
    c.find(Locator::Css("form button[type=submit]:not(.secondary)")).await.unwrap().click().await.unwrap();
    expect_text(&c, "Saved.").await;
    snap(&c, shots, "manage").await;
    let topics: String = site
        .db()
        .query_row("SELECT topics FROM readers WHERE subscriber = 'dave@example.org'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(topics, r#"["llm-reasoning","video"]"#);

    // The next run sends a digest; read it in the browser and vote.
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let digest = wait_for(&smtp, "dave@example.org", 2);
    let html = MessageParser::default().parse(&digest.data).unwrap().body_html(0).unwrap().into_owned();
    c.goto(&url_after(&html, &format!("{}/a/", server.base)).unwrap()).await.unwrap();
    snap(&c, shots, "view-in-browser").await;
    c.find(Locator::LinkText("More like this")).await.unwrap().click().await.unwrap();
    expect_heading(&c, "More like this").await;
    snap(&c, shots, "vote").await;
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    expect_heading(&c, "Vote recorded").await;
    assert_eq!(
        site.count("SELECT COUNT(*) FROM votes WHERE subscriber = 'dave@example.org' AND vote = 1"),
        1
    );

    // Unsubscribe through the List-Unsubscribe URL's page.
    let header = digest.header("List-Unsubscribe").unwrap();
    let unsubscribe = url_after(&header, &format!("{}/u/", server.base)).unwrap();
    c.goto(&unsubscribe).await.unwrap();
    snap(&c, shots, "unsubscribe").await;
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 0);
    c.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
    expect_heading(&c, "You are unsubscribed").await;
    snap(&c, shots, "unsubscribed").await;
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions WHERE subscriber = 'dave@example.org'"), 1);

    // A public topic page.
    c.goto(&format!("{}/topics/llm-reasoning", server.base)).await.unwrap();
    expect_heading(&c, "Papers on llm-reasoning").await;
    snap(&c, shots, "topic").await;
    let feed = reqwest::get(format!("{}/topics/llm-reasoning/feed", server.base)).await.unwrap();
    let parsed =
        feed_rs::parser::parse(&feed.bytes().await.unwrap()[..]).expect("the topic feed is valid Atom");
    assert_eq!(parsed.entries.len(), 1);
    c.close().await.unwrap();
}
