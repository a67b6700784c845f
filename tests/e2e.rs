//! End to end: the real binary against a loopback HTTP server serving Hugging Face-shaped
//! fixtures and a loopback SMTP server whose received bytes are parsed; SQLite is real.

#[path = "support/http.rs"]
mod http_server;
#[path = "support/smtp.rs"]
mod smtp_server;

#[path = "support/site.rs"]
mod site;

use http_server::{HttpServer, Reply, Route};
use mail_parser::{MessageParser, MimeHeaders};
use site::{NOW, Site, code, hf_server, stderr};
use smtp_server::{Faults, Received, SmtpServer};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use std::time::{Duration, Instant};

fn html_part(msg: &Received) -> String {
    let parsed = MessageParser::default().parse(&msg.data).unwrap();
    parsed.body_html(0).unwrap().into_owned()
}

fn recipient(msg: &Received) -> String {
    msg.rcpt_to[0].clone()
}

/// arXiv ids linked from a digest's HTML part.
fn linked_ids(msg: &Received) -> BTreeSet<String> {
    let html = html_part(msg);
    html.match_indices("arxiv.org/abs/")
        .map(|(i, m)| html[i + m.len()..].chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect())
        .collect()
}

#[test]
fn a_full_run_delivers_exactly_one_digest_per_subscriber_with_the_expected_papers() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["fetch"])), 0);
    let expected: BTreeMap<&str, Vec<String>> = ["alice@example.org", "bob@example.org", "carol@example.org"]
        .into_iter()
        .map(|to| (to, site.preview_ids(to, NOW)))
        .collect();
    assert!(expected.values().all(|ids| !ids.is_empty()));
    assert_eq!(expected["bob@example.org"].len(), 5, "bob's max_papers is 5");

    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3);
    for msg in &messages {
        let to = recipient(msg);
        let parsed = MessageParser::default().parse(&msg.data).unwrap();
        assert_eq!(parsed.content_type().unwrap().subtype(), Some("alternative"), "{to}");
        assert!(parsed.date().is_some() && parsed.message_id().is_some(), "{to}");
        let want: BTreeSet<String> = expected[to.as_str()].iter().cloned().collect();
        assert_eq!(linked_ids(msg), want, "{to} got other papers than its preview showed");
    }
    let tos: BTreeSet<String> = messages.iter().map(recipient).collect();
    assert_eq!(tos.len(), 3);
    // Every delivery is recorded with the Message-ID that went out.
    let sent_ids = site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'");
    assert_eq!(sent_ids, 3);
    for msg in &messages {
        let mid = msg.message_id().unwrap();
        let n: i64 = site
            .db()
            .query_row(
                "SELECT COUNT(*) FROM deliveries WHERE message_id = ?1 AND status = 'sent'",
                [&mid],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "{mid}");
    }
}

#[test]
fn a_second_run_the_same_day_sends_nothing_and_the_next_day_repeats_no_paper() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["run"])), 0);
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 3, "the second run must send nothing");

    let out = site.run_at(&["run"], "2024-11-28T07:00:00Z");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let messages = smtp.messages();
    // The next day's listing has no reasoning paper: Alice's topic has nothing left with
    // enough topic evidence (docs/ranking.md, "Relevance first"), so she gets no mail;
    // Bob's video topic and Carol's trending list do.
    let day2: Vec<String> = messages[3..].iter().map(recipient).collect();
    assert_eq!(day2.len(), 2, "one new edition for Bob and Carol the next day: {day2:?}");
    assert!(!day2.contains(&"alice@example.org".to_string()), "{day2:?}");
    for to in ["bob@example.org", "carol@example.org"] {
        let mine: Vec<&Received> = messages.iter().filter(|m| recipient(m) == to).collect();
        let (day1, day2) = (linked_ids(mine[0]), linked_ids(mine[1]));
        assert!(!day2.is_empty());
        assert!(
            day1.is_disjoint(&day2),
            "{to} got a paper twice: {:?}",
            day1.intersection(&day2).collect::<Vec<_>>()
        );
    }
}

#[test]
fn a_preview_sends_nothing_and_marks_nothing_seen() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["preview", "--to", "alice@example.org", "--format", "html"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("</html>"));
    assert_eq!(site.count("SELECT COUNT(*) FROM seen"), 0);
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries"), 0);
    assert!(smtp.messages().is_empty());
}

#[test]
fn a_title_with_a_script_tag_arrives_escaped_in_the_html_part() {
    let listing = r#"[{"paper": {"id": "2411.99999", "title": "<script>alert(1)</script> Reasoning with <b>critique</b>",
        "summary": "We study reasoning. <img src=x onerror=alert(2)>", "authors": [{"name": "Eve <eve@evil>"}],
        "upvotes": 7, "publishedAt": "2024-11-27T01:00:00.000Z"}, "numComments": 1}]"#;
    let http = HttpServer::start(vec![
        Route::get("/api/daily_papers").param("date", "2024-11-27").reply(Reply::ok(listing)),
        Route::get("/api/daily_papers").reply(Reply::ok("[]")),
    ]);
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let alice = smtp.messages().into_iter().find(|m| recipient(m) == "alice@example.org").unwrap();
    let html = html_part(&alice);
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "title not escaped");
    assert!(!html.contains("<script"), "a script tag reached the HTML part");
    assert!(!html.contains("<img src=x"), "markup from the abstract reached the HTML part");
}

#[test]
fn an_unreachable_smtp_server_exits_75_and_marks_nothing_seen() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).contains("unreachable") || stderr(&out).contains("refused"), "{}", stderr(&out));
    assert_eq!(site.count("SELECT COUNT(*) FROM seen"), 0);
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'"), 0);

    // Once the server is back, the next run delivers the planned digests: the same
    // Message-IDs and the same papers that were recorded before the first attempt.
    let planned: BTreeMap<String, BTreeSet<String>> = {
        let db = site.db();
        let mut stmt = db.prepare("SELECT message_id, items FROM deliveries").unwrap();
        stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .map(|(mid, items)| {
                let items: Vec<serde_json::Value> = serde_json::from_str(&items).unwrap();
                (mid, items.iter().map(|i| i["id"].as_str().unwrap().to_string()).collect())
            })
            .collect()
    };
    assert_eq!(planned.len(), 3, "every digest is planned before the first attempt");
    let smtp = SmtpServer::start(Faults::none());
    site.edit_config(|c| {
        c.replace(&format!("port = {}", closed_port_in(&c)), &format!("port = {}", smtp.port()))
    });
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let messages = smtp.messages();
    assert_eq!(messages.len(), 3);
    for msg in &messages {
        let mid = msg.message_id().unwrap();
        assert_eq!(Some(&linked_ids(msg)), planned.get(&mid), "{mid}: not the planned digest");
    }
    assert!(site.count("SELECT COUNT(*) FROM seen") > 0);
}

fn closed_port_in(config: &str) -> u16 {
    config.lines().find_map(|l| l.trim().strip_prefix("port = ").and_then(|p| p.parse().ok())).unwrap()
}

#[test]
fn a_misspelled_key_exits_78_naming_the_file_line_and_key_before_fetching() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "max_paper = 3");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    assert!(err.contains("paper-digest.toml:5:1") && err.contains("digest.max_paper"), "{err}");
    assert!(http.requests().is_empty(), "nothing may be fetched with a broken config");
    assert!(smtp.messages().is_empty());
}

#[test]
fn a_subscriber_naming_an_undefined_topic_exits_78() {
    let http = hf_server();
    let site = Site::with_subscribers(
        &http.url(),
        SmtpServer::closed_port(),
        "",
        "[[subscribers]]\nemail = \"dan@example.org\"\ntopics = [\"gaussian-splattin\"]\n",
    );
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("subscribers[0].topics[0]"), "{}", stderr(&out));
}

#[test]
fn when_every_source_fails_nothing_is_sent_and_the_exit_code_is_75() {
    let http = HttpServer::start(vec![Route::get("/api/daily_papers").reply(Reply::status(503))]);
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).contains("503"), "{}", stderr(&out));
    assert!(smtp.messages().is_empty());
}

#[test]
fn one_failing_source_is_named_and_the_others_still_deliver() {
    let http = hf_server();
    http.route(Route::get("/broken.xml").reply(Reply::status(500)));
    let smtp = SmtpServer::start(Faults::none());
    let extra = "";
    let site = Site::new(&http.url(), smtp.port(), extra);
    site.edit_config(|c| {
        c.replace(
            "[http]",
            &format!("[[sources.feeds]]\nname = \"lab-blog\"\nurl = \"{}/broken.xml\"\n\n[http]", http.url()),
        )
    });
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("lab-blog") && stderr(&out).contains("/broken.xml"), "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 3);
}

#[test]
fn throttling_451_is_retried_within_the_run_and_delivered_once() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().tempfail_data(2));
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let messages = smtp.messages();
    let tos: Vec<String> = messages.iter().map(recipient).collect();
    assert_eq!(tos.len(), 3, "{tos:?}");
    assert_eq!(tos.iter().collect::<BTreeSet<_>>().len(), 3);
}

#[test]
fn a_permanent_550_fails_that_subscriber_only_and_exits_1() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().reject_rcpt("bob@example.org"));
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("bob@example.org"), "the failure names the recipient: {}", stderr(&out));
    let tos: BTreeSet<String> = smtp.messages().iter().map(recipient).collect();
    assert_eq!(tos, ["alice@example.org", "carol@example.org"].map(String::from).into());
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'"), 1);
    assert_eq!(site.count("SELECT COUNT(*) FROM seen WHERE subscriber = 'bob@example.org'"), 0);
    let status = site.run(&["status"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("bob@example.org") && text.contains("failed"), "{text}");
}

#[test]
fn a_connection_dropped_after_data_is_resent_with_the_same_message_id() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().drop_after_data(1));
    let site = Site::with_subscribers(
        &http.url(),
        smtp.port(),
        "",
        "[[subscribers]]\nemail = \"alice@example.org\"\ntopics = [\"llm-reasoning\"]\n",
    );
    // The in-run retry may already resend it; either way, one Message-ID, at most two copies.
    let out = site.run(&["run"]);
    let first_code = code(&out);
    if first_code != 0 {
        assert_eq!(first_code, 1, "{}", stderr(&out));
        assert_eq!(code(&site.run(&["run"])), 0);
    }
    let messages = smtp.messages();
    assert_eq!(messages.len(), 2, "the dropped copy and the resent one");
    assert_eq!(messages[0].message_id(), messages[1].message_id());
    assert_eq!(code(&site.run(&["run"])), 0);
    assert_eq!(smtp.messages().len(), 2, "and nothing more afterwards");
}

#[test]
fn starttls_required_against_a_plaintext_only_server_is_refused_before_auth() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().auth("digest", "s3cret"));
    let site = Site::new(&http.url(), smtp.port(), "");
    let pw = site.path("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    site.edit_config(|c| {
        c.replace(
            "security = \"none\"",
            "security = \"starttls\"\nusername = \"digest\"\npassword_file = \"pw\"",
        )
    });
    let out = site.run(&["run"]);
    assert_ne!(code(&out), 0);
    assert!(smtp.messages().is_empty());
    assert!(!smtp.saw_command("AUTH"), "credentials were offered over plaintext");
    assert!(!stderr(&out).contains("s3cret"), "the password reached the log");
    assert_eq!(site.count("SELECT COUNT(*) FROM seen"), 0);
}

#[test]
fn a_second_run_while_one_holds_the_lock_exits_75_at_once() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().slow(Duration::from_millis(700)));
    let site = Site::new(&http.url(), smtp.port(), "");
    let mut first = site.cmd(&["run"], NOW).spawn().unwrap();
    // Wait until the first run holds the lock (it writes its pid into the lock file).
    let lock = site.path("db.sqlite3.lock");
    let start = Instant::now();
    while std::fs::read_to_string(&lock).map_or(true, |s| s.trim().is_empty())
        && start.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let second = site.run(&["run"]);
    assert_eq!(code(&second), 75, "{}", stderr(&second));
    assert!(stderr(&second).contains("lock"), "{}", stderr(&second));
    assert!(first.wait().unwrap().success());
    let tos: Vec<String> = smtp.messages().iter().map(recipient).collect();
    assert_eq!(tos.len(), 3, "nothing doubled: {tos:?}");
}

/// kill -9 at several points of a 500-subscriber run against a slow server, then rerun:
/// every subscriber has exactly one accepted digest, or duplicates sharing one Message-ID.
#[test]
fn after_kill_9_at_any_point_a_rerun_leaves_every_subscriber_exactly_one_digest() {
    let subscribers = (0..500).fold(String::new(), |mut s, i| {
        let _ = writeln!(
            s,
            "[[subscribers]]\nemail = \"reader{i:03}@example.org\"\ntopics = [\"llm-reasoning\"]"
        );
        s
    });
    let mut report = Vec::new();
    // Kill points by progress: before any message, after the first, and at 20%, 50%, 90%.
    for kill_after in [0_usize, 1, 100, 250, 450] {
        let http = hf_server();
        let smtp = SmtpServer::start(Faults::none().slow(Duration::from_millis(8)));
        let site = Site::with_subscribers(&http.url(), smtp.port(), "", &subscribers);
        assert_eq!(code(&site.run(&["fetch"])), 0);
        let mut child = site.cmd(&["run"], NOW).stderr(std::process::Stdio::null()).spawn().unwrap();
        let start = Instant::now();
        while smtp.messages().len() < kill_after && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(2));
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let before = smtp.messages().len();
        let out = site.run(&["run"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));

        let mut by_rcpt: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for m in smtp.messages() {
            by_rcpt.entry(recipient(&m)).or_default().push(m.message_id().unwrap_or_default());
        }
        let missing = 500 - by_rcpt.len();
        let duplicates: usize = by_rcpt.values().map(|ids| ids.len() - 1).sum();
        for (to, ids) in &by_rcpt {
            assert!(ids.iter().all(|id| id == &ids[0]), "{to} got two different digests: {ids:?}");
        }
        assert_eq!(missing, 0, "a kill after {kill_after} messages left subscribers without a digest");
        report.push(format!(
            "kill after {kill_after:>3} messages: {before:>3} accepted before the kill, {} sent in all, {duplicates} duplicates (same Message-ID), {missing} missing",
            by_rcpt.len()
        ));
    }
    println!("{}", report.join("\n"));
}

/// `[[subscribers]]` for `n` readers of the llm-reasoning topic.
fn readers(n: usize) -> String {
    (0..n).fold(String::new(), |mut s, i| {
        let _ = writeln!(
            s,
            "[[subscribers]]\nemail = \"reader{i:03}@example.org\"\ntopics = [\"llm-reasoning\"]"
        );
        s
    })
}

/// Waits for a child to exit, killing it (and failing the test) after `timeout`.
/// `n` readers, a mail server that takes `delay` per message, and the papers fetched.
fn fetched_site_for_readers(n: usize, delay: Duration) -> (HttpServer, SmtpServer, Site) {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().slow(delay));
    let site = Site::with_subscribers(&http.url(), smtp.port(), "", &readers(n));
    assert_eq!(code(&site.run(&["fetch"])), 0);
    (http, smtp, site)
}

fn exit_within(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let deadline = Instant::now() + timeout;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_run_stopped_by_sigterm_records_every_message_that_went_out_and_leaves_the_rest_untouched() {
    let (_http, smtp, site) = fetched_site_for_readers(200, Duration::from_millis(50));
    let child = site
        .cmd(&["run"], NOW)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while smtp.messages().len() < 8 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let out = exit_within(child, Duration::from_secs(30));
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let went_out = smtp.messages().len() as i64;
    assert!(went_out < 200, "the run stopped early ({went_out} of 200 sent)");
    // Each accepted message is recorded sent, with its attempt; nothing is left in between.
    assert_eq!(
        site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent' AND attempts = 1"),
        went_out
    );
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sending'"), 0);
    // What was not handed to the server is as planned: pending, no attempt counted.
    let planned = site.count("SELECT COUNT(*) FROM deliveries");
    assert_eq!(
        site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'pending' AND attempts = 0"),
        planned - went_out
    );

    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let mut by_rcpt: BTreeMap<String, usize> = BTreeMap::new();
    for m in smtp.messages() {
        *by_rcpt.entry(recipient(&m)).or_default() += 1;
    }
    assert_eq!(by_rcpt.len(), 200);
    assert!(by_rcpt.values().all(|&n| n == 1), "a digest went out twice");
}

#[test]
fn a_commit_that_fails_fails_the_run_with_the_database_error_and_stops_sending() {
    let (_http, smtp, site) = fetched_site_for_readers(200, Duration::from_millis(20));
    site.db()
        .execute_batch(
            "CREATE TRIGGER no_sent BEFORE UPDATE OF status ON deliveries WHEN NEW.status = 'sent'
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
    let child = site
        .cmd(&["run"], NOW)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = exit_within(child, Duration::from_secs(30));
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("disk on fire"), "{}", stderr(&out));
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'"), 0);
    assert_eq!(site.count("SELECT COUNT(*) FROM seen"), 0);
    assert_eq!(site.count("SELECT COUNT(*) FROM runs WHERE status = 'failed'"), 1);
    assert!(smtp.messages().len() < 100, "sending went on for {} messages", smtp.messages().len());
}
