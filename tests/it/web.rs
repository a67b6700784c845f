//! The reader's side end to end: the real binary serving `[web]` on loopback, a loopback
//! SMTP server whose received messages are parsed, and real SQLite. Subscribe → confirm →
//! the next run delivers; one-click unsubscribe from the received header → the next run
//! skips; GETs change nothing; forged links change nothing; a vote changes the ranking.

use crate::support::smtp::{Faults, Received, SmtpServer};

use crate::support::site;

use crate::support::serve;

use mail_parser::MessageParser;
use serve::{Served, enable_web, free_port, get, post, url_after};
use site::{NOW, Site, code, hf_server, stderr};
use std::time::{Duration, Instant};

const NEXT_DAY: &str = "2024-11-28T07:00:00Z";

fn text_part(msg: &Received) -> String {
    MessageParser::default().parse(&msg.data).unwrap().body_text(0).unwrap().into_owned()
}

fn html_part(msg: &Received) -> String {
    MessageParser::default().parse(&msg.data).unwrap().body_html(0).unwrap().into_owned()
}

fn to(smtp: &SmtpServer, addr: &str) -> Vec<Received> {
    smtp.messages().into_iter().filter(|m| m.rcpt_to.iter().any(|r| r == addr)).collect()
}

/// Waits for the `n`th message to `addr` (the server mails confirmations in the background).
fn wait_for(smtp: &SmtpServer, addr: &str, n: usize) -> Received {
    let start = Instant::now();
    loop {
        let got = to(smtp, addr);
        if got.len() >= n {
            return got[n - 1].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no message {n} to {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The angle-bracketed http(s) URL of a `List-Unsubscribe` header.
fn one_click_url(header: &str) -> String {
    header
        .split(',')
        .map(|u| u.trim().trim_start_matches('<').trim_end_matches('>'))
        .find(|u| u.starts_with("http"))
        .expect("an http URL in List-Unsubscribe")
        .to_string()
}

fn form_token(html: &str) -> String {
    let doc = scraper::Html::parse_document(html);
    let sel = scraper::Selector::parse("input[name=form]").unwrap();
    doc.select(&sel).next().and_then(|e| e.value().attr("value")).unwrap().to_string()
}

fn web_site(smtp: &SmtpServer, http: &str, subscribers: &str) -> (Site, u16) {
    let site = Site::with_subscribers(http, smtp.port(), "", subscribers);
    let port = free_port();
    enable_web(&site, port, "");
    (site, port)
}

#[test]
fn subscribing_on_the_page_mails_a_confirmation_and_only_the_confirmed_reader_gets_the_next_digest() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, port) = web_site(&smtp, &http.url(), "");
    let server = Served::start(&site, port);

    let page = get(&format!("{}/", server.base));
    assert_eq!(page.status, 200);
    assert!(page.body.contains("llm-reasoning") && page.body.contains("weekly"), "{}", page.body);
    let token = form_token(&page.body);

    let body = format!("email=Dave%40Example.org&topics=llm-reasoning&frequency=daily&form={token}");
    let answer = post(&format!("{}/subscribe", server.base), &body, Some(&server.base));
    assert_eq!(answer.status, 200);
    assert!(answer.body.contains("Check your inbox"), "{}", answer.body);
    // An address nobody asked for gets the same answer (no enumeration) and its own request.
    let again =
        post(&format!("{}/subscribe", server.base), &body.replace("Dave", "erin"), Some(&server.base));
    assert_eq!((again.status, again.body.replace("erin", "dave")), (answer.status, answer.body.clone()));

    let mail = wait_for(&smtp, "dave@example.org", 1);
    let link = url_after(&text_part(&mail), &format!("{}/c/", server.base)).expect("a confirmation link");
    assert_eq!(site.count("SELECT COUNT(*) FROM readers"), 0);

    // A run before the confirmation sends the unconfirmed address nothing.
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(to(&smtp, "dave@example.org").len() == 1, "only the confirmation");

    // Opening the link (what a mail scanner does) changes nothing.
    let opened = get(&link);
    assert_eq!(opened.status, 200);
    assert!(opened.body.contains("Confirm subscription"), "{}", opened.body);
    assert_eq!(site.count("SELECT COUNT(*) FROM readers"), 0);

    let confirmed = post(&link, "", Some(&server.base));
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert!(confirmed.body.contains("You are subscribed"));
    assert_eq!(site.count("SELECT COUNT(*) FROM readers WHERE subscriber = 'dave@example.org'"), 1);
    // A confirmation link is good once.
    assert_eq!(post(&link, "", None).status, 410);

    let out = site.run_at(&["run"], NEXT_DAY);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let digest = wait_for(&smtp, "dave@example.org", 2);
    assert!(digest.header("List-Unsubscribe").unwrap().contains(&format!("{}/u/", server.base)));
    assert_eq!(digest.header("List-Unsubscribe-Post").as_deref(), Some("List-Unsubscribe=One-Click"));
    assert!(to(&smtp, "erin@example.org").len() == 1, "erin never confirmed");

    let listed = site.run(&["subscribers", "list", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert!(
        doc["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["email"] == "dave@example.org" && s["source"] == "web")
    );
}

#[test]
fn a_one_click_post_to_the_received_list_unsubscribe_url_stops_the_next_digest_and_a_get_changes_nothing() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, port) = web_site(&smtp, &http.url(), site::SUBSCRIBERS);
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let alice = wait_for(&smtp, "alice@example.org", 1);
    let bob = wait_for(&smtp, "bob@example.org", 1);
    let url = one_click_url(&alice.header("List-Unsubscribe").unwrap());
    assert_ne!(url, one_click_url(&bob.header("List-Unsubscribe").unwrap()), "unique per recipient");
    let html = html_part(&alice);
    assert!(html.contains(&url), "the footer links the same URL");
    assert!(html.contains(">Manage your subscription</a>") && html.contains(">View in browser</a>"));
    let text = text_part(&alice);
    assert!(text.contains(&format!("Unsubscribe: {url}")), "{text}");
    assert!(text.contains("Manage your subscription: ") && text.contains("More like this:  "), "{text}");

    let server = Served::start(&site, port);
    let page = get(&url);
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<button"), "{}", page.body);
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 0, "a GET changes nothing");

    // Forged, altered and re-purposed links get a 4xx and change nothing.
    let (head, tag) = url.rsplit_once('.').unwrap();
    let flipped = format!("{head}.{}{}", if tag.starts_with('A') { 'B' } else { 'A' }, &tag[1..]);
    for bad in [
        flipped,
        format!("{}/u/bm9ib2R5.AAAA", server.base),
        url.replace("/u/", "/m/").replace("/m/", "/u/x"),
    ] {
        let r = post(&bad, "List-Unsubscribe=One-Click", None);
        assert!((400..500).contains(&r.status), "{bad}: {}", r.status);
    }
    let manage = url_after(&html, &format!("{}/m/", server.base)).unwrap();
    let swapped = manage.replace("/m/", "/u/");
    assert_eq!(
        post(&swapped, "List-Unsubscribe=One-Click", None).status,
        400,
        "a manage token cannot unsubscribe"
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 0);

    // RFC 8058: the provider's POST, with no Origin and no page, unsubscribes at once.
    // (multipart/form-data, which the RFC recommends, works too: see bob below.)
    let done = post(&url, "List-Unsubscribe=One-Click", None);
    assert!((200..300).contains(&done.status), "{}", done.status);
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions WHERE subscriber = 'alice@example.org'"), 1);

    let bob_url = one_click_url(&bob.header("List-Unsubscribe").unwrap());
    let multipart = serve::post_multipart(&bob_url, "List-Unsubscribe", "One-Click");
    assert!((200..300).contains(&multipart.status), "{}", multipart.status);
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 2);
    site.run(&["subscribers", "unsuppress", "bob@example.org"]);
    drop(server);
    let status = site.run(&["status", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(doc["suppressed"], 1);

    let out = site.run_at(&["run"], NEXT_DAY);
    assert!(code(&out) == 0, "{}", stderr(&out));
    assert_eq!(to(&smtp, "alice@example.org").len(), 1, "nothing after unsubscribing");
    assert_eq!(to(&smtp, "bob@example.org").len() + to(&smtp, "carol@example.org").len(), 4);

    // Subscribing again from the manage page lifts the suppression.
    let server = Served::start_at(&site, port, NEXT_DAY);
    let again = post(&manage, "action=resubscribe", Some(&server.base));
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 0);
}

#[test]
fn a_cross_site_form_post_is_refused_and_changes_nothing() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, port) = web_site(&smtp, &http.url(), site::SUBSCRIBERS);
    assert_eq!(code(&site.run(&["run"])), 0);
    let alice = wait_for(&smtp, "alice@example.org", 1);
    let url = one_click_url(&alice.header("List-Unsubscribe").unwrap());
    let server = Served::start(&site, port);
    let r = post(&url, "confirm=unsubscribe", Some("https://evil.example"));
    assert_eq!(r.status, 403);
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 0);
    let r = post(&url, "confirm=unsubscribe", Some(&server.base));
    assert_eq!(r.status, 200);
    assert_eq!(site.count("SELECT COUNT(*) FROM suppressions"), 1);
}

#[test]
fn a_more_like_this_vote_changes_the_next_ranking_and_fewer_like_this_is_recorded() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let subscribers =
        "\n[[subscribers]]\nemail = \"bob@example.org\"\ntopics = [\"video\"]\nmax_papers = 3\n";
    let (site, port) = web_site(&smtp, &http.url(), subscribers);
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let html = html_part(&wait_for(&smtp, "bob@example.org", 1));
    assert_eq!(html.matches(">More like this</a>").count(), html.matches(">Fewer like this</a>").count());
    assert!(html.contains(">More like this</a>"), "{html}");

    let before = site.preview_ids("bob@example.org", NEXT_DAY);
    let server = Served::start(&site, port);
    let prefix = format!("{}/more/", server.base);
    let more: Vec<String> =
        html.match_indices(&prefix).filter_map(|(at, _)| url_after(&html[at..], &prefix)).collect();
    assert_eq!(more.len(), 3, "one link per card");
    let page = get(&more[0]);
    assert_eq!(page.status, 200);
    assert_eq!(site.count("SELECT COUNT(*) FROM votes"), 0, "a GET changes nothing");
    // The reader likes every paper of the digest: some of them have unseen neighbours.
    for url in &more {
        assert_eq!(post(url, "", Some(&server.base)).status, 200);
    }
    assert_eq!(site.count("SELECT COUNT(*) FROM votes WHERE vote = 1"), 3);
    let fewer = url_after(&html, &format!("{}/fewer/", server.base)).unwrap();
    assert_eq!(post(&fewer.replace("/fewer/", "/more/"), "", None).status, 400, "purposes do not mix");
    let after = site.preview_ids("bob@example.org", NEXT_DAY);
    let explained = site.run_at(&["explain", "--to", "bob@example.org", "--paper", &after[0]], NEXT_DAY);
    let explained = String::from_utf8_lossy(&explained.stdout).into_owned();
    assert!(explained.contains("votes: more like this: "), "{explained}");
    assert!(
        after.iter().any(|id| !before.contains(id)),
        "papers like the liked one join the next digest: {before:?} -> {after:?}"
    );
}

#[test]
fn view_in_browser_shows_the_sent_edition_and_the_feed_lists_it() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, port) = web_site(&smtp, &http.url(), site::SUBSCRIBERS);
    assert_eq!(code(&site.run(&["run"])), 0);
    let msg = wait_for(&smtp, "alice@example.org", 1);
    let html = html_part(&msg);
    let server = Served::start(&site, port);
    let archive = url_after(&html, &format!("{}/a/", server.base)).unwrap();
    let page = get(&archive);
    assert_eq!(page.status, 200);
    assert!(page.body.contains(">More like this</a>"), "the edition keeps its vote links");
    let first = scraper::Html::parse_document(&html);
    let title = scraper::Selector::parse("a.title-link").unwrap();
    let sent: Vec<String> = first.select(&title).map(|a| a.text().collect()).collect();
    let shown = scraper::Html::parse_document(&page.body);
    let shown: Vec<String> = shown.select(&title).map(|a| a.text().collect()).collect();
    assert!(!sent.is_empty());
    assert_eq!(sent, shown, "the same papers, in the same order, as the mail");
    let manage = get(&url_after(&html, &format!("{}/m/", server.base)).unwrap());
    let feed_url = url_after(&manage.body, &format!("{}/f/", server.base)).unwrap();
    let feed = get(&feed_url);
    assert_eq!(feed.status, 200);
    assert!(feed.content_type.starts_with("application/atom+xml"));
    let parsed = feed_rs::parser::parse(feed.body.as_bytes()).expect("valid Atom");
    assert_eq!(parsed.entries.len(), 1);
    assert!(parsed.entries[0].links[0].href.contains("/a/"));
}

#[test]
fn serve_without_a_web_table_says_what_to_add_and_check_validates_it() {
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::with_subscribers("http://127.0.0.1:9", smtp.port(), "", "");
    let out = site.run(&["serve"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(stderr(&out).contains("[web]"), "{}", stderr(&out));
    site.edit_config(|t| {
        format!("{t}\n[web]\nbase_url = \"http://digest.example.org\"\nsecret_env = \"PD_TEST_SECRET\"\n")
    });
    let out = site.cmd(&["check"], NOW).env("PD_TEST_SECRET", serve::SECRET).output().unwrap();
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("web.base_url") && stderr(&out).contains("https"), "{}", stderr(&out));
    site.edit_config(|t| t.replace("http://digest.example.org", "https://digest.example.org"));
    let out = site.cmd(&["check"], NOW).env("PD_TEST_SECRET", serve::SECRET).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("web ok: links to https://digest.example.org"), "{said}");
    assert!(!said.contains(serve::SECRET) && !stderr(&out).contains(serve::SECRET));
    let out = site.cmd(&["check"], NOW).env("PD_TEST_SECRET", "short").output().unwrap();
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("web.secret_env") && stderr(&out).contains("32"), "{}", stderr(&out));
}

#[test]
fn a_closed_list_has_no_subscribe_page_oversized_bodies_are_refused_and_sigterm_stops_the_server() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::with_subscribers(&http.url(), smtp.port(), "", "");
    let port = free_port();
    enable_web(&site, port, "subscribe = false");
    let server = Served::start(&site, port);
    assert_eq!(get(&format!("{}/", server.base)).status, 404);
    assert_eq!(post(&format!("{}/subscribe", server.base), "email=a%40example.org", None).status, 404);
    let huge = format!("email=a%40example.org&pad={}", "x".repeat(64 * 1024));
    assert_eq!(post(&format!("{}/u/anything", server.base), &huge, None).status, 413);
    assert_eq!(get(&format!("{}/healthz", server.base)).body, "ok");
    assert_eq!(get(&format!("{}/no/such/page", server.base)).status, 404);
    assert_eq!(server.stop().code(), Some(0), "SIGTERM stops it cleanly");
}

#[test]
fn repeated_requests_for_one_address_mail_it_at_most_three_times_an_hour_and_answer_the_same() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, port) = web_site(&smtp, &http.url(), "");
    let server = Served::start(&site, port);
    let token = form_token(&get(&format!("{}/", server.base)).body);
    let body = format!("email=frank%40example.org&frequency=weekly&form={token}");
    let answers: Vec<u16> = (0..5)
        .map(|_| post(&format!("{}/subscribe", server.base), &body, Some(&server.base)).status)
        .collect();
    assert_eq!(answers, [200; 5]);
    wait_for(&smtp, "frank@example.org", 3);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(to(&smtp, "frank@example.org").len(), 3);
    // A form token that was not made by this server is refused.
    let forged = body.replace(&token, "bm9ib2R5.AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(post(&format!("{}/subscribe", server.base), &forged, None).status, 403);
}

#[test]
fn the_operator_can_add_suppress_and_remove_database_subscribers() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, _port) = web_site(&smtp, &http.url(), site::SUBSCRIBERS);
    let ok = |args: &[&str]| {
        let out = site.run(args);
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    ok(&["subscribers", "add", "Gina@Example.org", "--topic", "video"]);
    ok(&["subscribers", "suppress", "bob@example.org"]);
    let listed = ok(&["subscribers", "list"]);
    assert!(listed.contains("gina@example.org") && listed.contains("suppressed"), "{listed}");
    let out = site.run(&["subscribers", "add", "h@example.org", "--topic", "nope"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
    assert_eq!(code(&site.run(&["run"])), 0);
    assert_eq!(to(&smtp, "gina@example.org").len(), 1);
    assert!(to(&smtp, "bob@example.org").is_empty());
    ok(&["subscribers", "unsuppress", "bob@example.org"]);
    ok(&["subscribers", "remove", "gina@example.org"]);
    assert_eq!(code(&site.run_at(&["run"], NEXT_DAY)), 0);
    assert_eq!(to(&smtp, "gina@example.org").len(), 1);
    assert_eq!(to(&smtp, "bob@example.org").len(), 1);
}

#[test]
fn a_confirmation_link_opened_after_it_expired_subscribes_nobody() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let (site, port) = web_site(&smtp, &http.url(), "");
    let server = Served::start(&site, port);
    let token = form_token(&get(&format!("{}/", server.base)).body);
    let body = format!("email=ivy%40example.org&form={token}");
    assert_eq!(post(&format!("{}/subscribe", server.base), &body, Some(&server.base)).status, 200);
    let mail = wait_for(&smtp, "ivy@example.org", 1);
    let link = url_after(&text_part(&mail), &format!("{}/c/", server.base)).unwrap();
    drop(server);

    // 49 hours later (confirm_hours defaults to 48).
    let later = Served::start_at(&site, port, "2024-11-29T08:00:00Z");
    let answer = post(&link, "", Some(&later.base));
    assert_eq!(answer.status, 410, "{}", answer.body);
    assert_eq!(site.count("SELECT COUNT(*) FROM readers"), 0);
    drop(later);
    assert_eq!(code(&site.run_at(&["run"], "2024-11-29T09:00:00Z")), 0);
    assert_eq!(to(&smtp, "ivy@example.org").len(), 1, "only the confirmation");
}
