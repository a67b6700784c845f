//! End to end: the real binary against a loopback HTTP server serving Hugging Face-shaped
//! fixtures and a loopback SMTP server whose received bytes are parsed; SQLite is real.

use crate::support::http::{HttpServer, Reply, Route};
use crate::support::smtp::{Faults, Received, SmtpServer, TestCa, Tls, self_signed};

use crate::support::site;

use mail_parser::{MessageParser, MimeHeaders};
use site::{NOW, Site, code, hf_server, stderr};
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
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(stderr(&out).contains("does not offer STARTTLS"), "{}", stderr(&out));
    assert!(smtp.messages().is_empty());
    assert!(!smtp.saw_command("AUTH"), "credentials were offered over plaintext");
    assert!(!stderr(&out).contains("s3cret"), "the password reached the log");
    assert_eq!(site.count("SELECT COUNT(*) FROM seen"), 0);
    assert_eq!(ledger(&site), pending(3), "no subscriber is failed for the server's fault");
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

// ---------------------------------------------------------------------------------------
// Faults of the mail server and of the disk (issue #13)

/// The digest rows by status, e.g. {"pending": 3}.
fn ledger(site: &Site) -> BTreeMap<String, i64> {
    let db = site.db();
    let mut stmt =
        db.prepare("SELECT status, COUNT(*) FROM deliveries WHERE kind = 'digest' GROUP BY status").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

fn pending(n: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([("pending".to_string(), n)])
}

fn sent(n: i64) -> BTreeMap<String, i64> {
    BTreeMap::from([("sent".to_string(), n)])
}

/// Each subscriber's planned Message-ID, from the ledger.
fn planned_message_ids(site: &Site) -> BTreeMap<String, String> {
    let db = site.db();
    let mut stmt = db.prepare("SELECT subscriber, message_id FROM deliveries WHERE kind = 'digest'").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect()
}

/// Each recipient's Message-IDs, as the server received them.
fn received_message_ids(smtp: &SmtpServer) -> BTreeMap<String, Vec<String>> {
    let mut by_rcpt: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for m in smtp.messages() {
        by_rcpt.entry(recipient(&m)).or_default().push(m.message_id().unwrap_or_default());
    }
    by_rcpt
}

/// Writes the SMTP password file (mode 0600, as the config demands).
fn write_password(site: &Site, password: &str) {
    let pw = site.path("pw");
    std::fs::write(&pw, format!("{password}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

/// Replaces the site's `security = "none"` with `security` and AUTH as digest, plus `more`.
fn secure_smtp(site: &Site, security: &str, more: &str) {
    site.edit_config(|c| {
        c.replace(
            "security = \"none\"",
            &format!("security = \"{security}\"\nusername = \"digest\"\npassword_file = \"pw\"\n{more}"),
        )
    });
}

#[test]
fn a_refused_password_exits_78_leaves_every_digest_pending_and_the_fixed_run_sends_the_same_message_ids() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().auth("digest", "s3cret"));
    let site = Site::new(&http.url(), smtp.port(), "");
    write_password(&site, "wrong-password");
    secure_smtp(&site, "none", "");

    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refused AUTH as digest") && err.contains("mail.smtp.username"), "{err}");
    assert!(!err.contains("wrong-password"), "the password reached the log");
    assert!(smtp.messages().is_empty());
    let auths = smtp.commands().iter().filter(|c| c.starts_with("AUTH")).count();
    assert_eq!(auths, 1, "a refused password is tried once per run, not once per connection");
    assert_eq!(ledger(&site), pending(3));
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE attempts > 0"), 0);
    assert_eq!(site.count("SELECT COUNT(*) FROM seen"), 0);
    let status = String::from_utf8_lossy(&site.run(&["status"]).stdout).into_owned();
    assert!(status.contains("(failed): mail session failed") && status.contains("refused AUTH"), "{status}");
    assert!(status.contains("3 digest(s) stay pending"), "{status}");

    let planned = planned_message_ids(&site);
    write_password(&site, "s3cret");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let received = received_message_ids(&smtp);
    let want: BTreeMap<String, Vec<String>> = planned.into_iter().map(|(to, id)| (to, vec![id])).collect();
    assert_eq!(received, want, "everyone once, with the Message-ID planned before the refusal");
    assert_eq!(ledger(&site), sent(3));
}

#[test]
fn every_message_id_is_in_the_ledger_before_the_first_message_reaches_the_server() {
    let http = hf_server();
    // The server records each message at its final dot, then holds its reply a while.
    let smtp = SmtpServer::start(Faults::none().slow(Duration::from_millis(300)));
    let site = Site::new(&http.url(), smtp.port(), "");
    let mut child = site.cmd(&["run"], NOW).stderr(std::process::Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    while smtp.messages().is_empty() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(1));
    }
    // Read by another connection while the first message waits for its reply.
    let planned = planned_message_ids(&site);
    let first = smtp.messages()[0].clone();
    assert!(child.wait().unwrap().success());
    assert_eq!(planned.len(), 3, "every digest is committed before any is sent: {planned:?}");
    assert_eq!(planned.get(&recipient(&first)), first.message_id().as_ref());
    let received = received_message_ids(&smtp);
    assert_eq!(received, planned.into_iter().map(|(to, id)| (to, vec![id])).collect());
}

#[test]
fn a_554_greeting_exits_75_and_marks_no_subscriber_failed() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().greeting("554 5.7.1 No SMTP service for you"));
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).contains("refused the session (554)"), "{}", stderr(&out));
    assert!(smtp.messages().is_empty());
    assert!(!smtp.saw_command("MAIL"));
    assert_eq!(ledger(&site), pending(3));
}

#[test]
fn a_server_that_hangs_up_after_ehlo_exits_75_with_every_digest_pending() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().close_after_ehlo());
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(smtp.messages().is_empty());
    assert!(smtp.saw_command("EHLO"));
    assert_eq!(ledger(&site), pending(3));
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE attempts > 0"), 0);
}

#[test]
fn the_alert_after_a_refused_session_names_the_refusal_and_the_digests_stay_pending() {
    let http = hf_server();
    // One sender (concurrency 1), so the count of connections does not hang on which of
    // several concurrent senders sees the mailer go down first: the first digest's three
    // attempts are refused, the mailer is then down for the other two, and the server
    // talks again in time for the alert.
    let smtp = SmtpServer::start(Faults::none().greeting_first(3, "554 5.7.1 No SMTP service here"));
    let site = Site::new(&http.url(), smtp.port(), "");
    site.edit_config(|c| {
        let c = c.replacen("security = \"none\"\n", "security = \"none\"\nconcurrency = 1\n", 1);
        format!("{c}\n[alerts]\nemail = \"ops@example.org\"\nafter_failures = 1\n")
    });
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_eq!(ledger(&site), pending(3), "no subscriber is marked failed");
    let alerts = smtp.messages();
    assert_eq!(alerts.len(), 1, "only the alert went out");
    assert_eq!(alerts[0].rcpt_to, ["ops@example.org"]);
    let parsed = MessageParser::default().parse(&alerts[0].data).expect("the alert parses");
    let text = parsed.body_text(0).expect("a text part").into_owned();
    assert!(text.contains("refused the session (554)"), "{text}");
    assert_eq!(smtp.connections(), 4, "one digest's 3 attempts, none for the other two, then the alert");
}

#[test]
fn a_server_without_a_usable_auth_mechanism_exits_78_naming_the_mechanisms() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().auth("digest", "s3cret").auth_mechanisms("CRAM-MD5 XOAUTH2"));
    let site = Site::new(&http.url(), smtp.port(), "");
    write_password(&site, "s3cret");
    secure_smtp(&site, "none", "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no AUTH mechanism paper-digest is set to use (PLAIN, LOGIN"),
        "{}",
        stderr(&out)
    );
    assert!(!smtp.saw_command("AUTH") && smtp.messages().is_empty());
    assert_eq!(ledger(&site), pending(3));
}

#[test]
fn starttls_and_implicit_tls_deliver_with_the_private_ca_in_ca_file_and_never_auth_in_clear() {
    let ca = TestCa::new();
    for (security, tls) in [
        ("starttls", Tls::Starttls(ca.server(&["127.0.0.1"]))),
        ("tls", Tls::Implicit(ca.server(&["127.0.0.1"]))),
    ] {
        let http = hf_server();
        let smtp = SmtpServer::start(Faults::none().auth("digest", "s3cret").tls(tls));
        let site = Site::new(&http.url(), smtp.port(), "");
        std::fs::write(site.path("ca.pem"), ca.pem()).unwrap();
        write_password(&site, "s3cret");
        secure_smtp(&site, security, "ca_file = \"ca.pem\"");

        let out = site.run(&["run"]);
        assert_eq!(code(&out), 0, "{security}: {}", stderr(&out));
        assert_eq!(smtp.messages().len(), 3, "{security}");
        assert!(smtp.saw_command("AUTH"), "{security}");
        assert!(!smtp.saw_command_in_clear("AUTH"), "{security}: AUTH before TLS");
        assert!(!smtp.saw_command_in_clear("MAIL"), "{security}: mail before TLS");
        assert_eq!(ledger(&site), sent(3), "{security}");
    }
}

#[test]
fn a_ca_in_the_system_trust_store_is_trusted_without_ca_file() {
    let ca = TestCa::new();
    let http = hf_server();
    let smtp = SmtpServer::start(
        Faults::none().auth("digest", "s3cret").tls(Tls::Starttls(ca.server(&["127.0.0.1"]))),
    );
    let site = Site::new(&http.url(), smtp.port(), "");
    std::fs::write(site.path("system-roots.pem"), ca.pem()).unwrap();
    write_password(&site, "s3cret");
    secure_smtp(&site, "starttls", "");
    // The system store is read the OpenSSL way, so $SSL_CERT_FILE stands in for /etc/ssl.
    let out = site.cmd(&["run"], NOW).env("SSL_CERT_FILE", site.path("system-roots.pem")).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 3);
    assert!(!smtp.saw_command_in_clear("AUTH"));
    assert_eq!(ledger(&site), sent(3));
}

#[test]
fn untrusted_certificates_and_a_server_without_tls_exit_78_saying_what_to_fix() {
    let ca = TestCa::new();
    let cases = [
        // (what, security, the server's TLS, ca_file given, the words that say what to fix)
        (
            "no ca_file",
            "starttls",
            Some(Tls::Starttls(ca.server(&["127.0.0.1"]))),
            false,
            "set mail.smtp.ca_file",
        ),
        (
            "self-signed",
            "tls",
            Some(Tls::Implicit(self_signed(&["127.0.0.1"]))),
            true,
            "set mail.smtp.ca_file",
        ),
        (
            "wrong host",
            "starttls",
            Some(Tls::Starttls(ca.server(&["mail.example.org"]))),
            true,
            "set mail.smtp.host",
        ),
        ("the CA as the server's", "tls", Some(Tls::Implicit(ca.as_server())), true, "is a CA certificate"),
        ("plaintext server, tls", "tls", None, true, "did not answer in TLS"),
        ("plaintext server, starttls", "starttls", None, true, "does not offer STARTTLS"),
    ];
    for (what, security, tls, with_ca, advice) in cases {
        let http = hf_server();
        let faults = Faults::none().auth("digest", "s3cret");
        let smtp = SmtpServer::start(match tls {
            Some(tls) => faults.tls(tls),
            None => faults,
        });
        let site = Site::new(&http.url(), smtp.port(), "");
        std::fs::write(site.path("ca.pem"), ca.pem()).unwrap();
        write_password(&site, "s3cret");
        secure_smtp(&site, security, if with_ca { "ca_file = \"ca.pem\"" } else { "" });

        let out = site.run(&["run"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 78, "{what}: {err}");
        assert!(err.contains(advice), "{what}: {err}");
        assert!(!err.contains("OtherError") && !err.contains("s3cret"), "{what}: {err}");
        assert!(!smtp.saw_command("AUTH"), "{what}: credentials went to an unverified server");
        assert_eq!(smtp.connections(), 1, "{what}: a configuration error is not retried");
        assert!(smtp.messages().is_empty(), "{what}");
        assert_eq!(ledger(&site), pending(3), "{what}");
    }
}

#[test]
fn plaintext_to_a_name_that_merely_starts_with_127_needs_allow_insecure() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    site.edit_config(|c| c.replace("host = \"127.0.0.1\"", "host = \"127.0.0.1.evil.example\""));
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("mail.smtp.security") && stderr(&out).contains("allow_insecure"),
        "{}",
        stderr(&out)
    );

    site.edit_config(|c| c.replace("security = \"none\"", "security = \"none\"\nallow_insecure = true"));
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    for local in ["localhost", "127.0.0.2", "::1"] {
        let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
        site.edit_config(|c| c.replace("host = \"127.0.0.1\"", &format!("host = \"{local}\"")));
        let out = site.run(&["check"]);
        assert_eq!(code(&out), 0, "{local}: {}", stderr(&out));
    }
}

#[test]
fn an_unanswered_final_dot_is_not_resent_within_the_run_and_the_next_run_sends_one_copy_with_the_same_message_id()
 {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().withhold_final_reply(1));
    let site = Site::with_subscribers(
        &http.url(),
        smtp.port(),
        "",
        "[[subscribers]]\nemail = \"alice@example.org\"\ntopics = [\"llm-reasoning\"]\n",
    );
    site.edit_config(|c| c.replace("security = \"none\"", "security = \"none\"\ndata_timeout_secs = 1"));

    let out = site.run(&["run"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 1, "max_attempts = 3, yet one copy: no retry after the final dot");
    assert_eq!(ledger(&site), BTreeMap::from([("deferred".to_string(), 1)]));
    let error: String = site.db().query_row("SELECT last_error FROM deliveries", [], |r| r.get(0)).unwrap();
    assert!(error.contains("may have been accepted"), "{error}");

    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let ids = &received_message_ids(&smtp)["alice@example.org"];
    assert_eq!(ids.len(), 2, "one copy per run");
    assert_eq!(ids[0], ids[1], "the duplicate carries the same Message-ID");
    assert_eq!(ledger(&site), sent(1));
    assert_eq!(code(&site.run(&["run"])), 0);
    assert_eq!(smtp.messages().len(), 2, "and nothing more afterwards");
}

#[test]
fn a_server_that_answers_no_final_dot_stops_the_run_after_concurrency_messages_and_leaves_the_rest_pending() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().withhold_final_reply(usize::MAX));
    let site = Site::with_subscribers(&http.url(), smtp.port(), "", &readers(40));
    site.edit_config(|c| c.replace("security = \"none\"", "security = \"none\"\ndata_timeout_secs = 1"));

    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert!(stderr(&out).contains("in a row got no reply to their final dot"), "{}", stderr(&out));
    let swallowed = smtp.messages().len() as i64;
    // Four in flight at once (concurrency 4); a few more may start before the fourth
    // times out. Each went out once and waits, deferred, for the next run.
    assert!((4..8).contains(&swallowed), "{swallowed} messages went into the void");
    let ledger = ledger(&site);
    assert_eq!(ledger.get("deferred"), Some(&swallowed), "{ledger:?}");
    assert_eq!(ledger.get("pending"), Some(&(40 - swallowed)), "{ledger:?}");

    let fixed = SmtpServer::start(Faults::none());
    site.edit_config(|c| c.replace(&format!("port = {}", smtp.port()), &format!("port = {}", fixed.port())));
    let planned = planned_message_ids(&site);
    assert_eq!(code(&site.run(&["run"])), 0);
    let received = received_message_ids(&fixed);
    assert_eq!(received, planned.into_iter().map(|(to, id)| (to, vec![id])).collect());
}

#[test]
fn retry_failed_resends_the_failed_digests_of_the_edition_with_their_original_message_ids() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().reject_rcpt("bob@example.org"));
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["run"])), 1);
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'"), 1);
    let bob = planned_message_ids(&site)["bob@example.org"].clone();

    // Retried before the mailbox is fixed: refused again, still failed, findable again.
    let out = site.run(&["retry", "--failed"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("bob@example.org") && stderr(&out).contains("550"), "{}", stderr(&out));
    // With the server unreachable: exit 75, and the digest stays failed for the next retry.
    let closed = SmtpServer::closed_port();
    site.edit_config(|c| c.replace(&format!("port = {}", smtp.port()), &format!("port = {closed}")));
    let out = site.run(&["retry", "--failed"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE status = 'failed'"), 1);
    assert_eq!(smtp.messages().len(), 2, "alice and carol only");

    // The mailbox was fixed: the next server takes bob's mail.
    let fixed = SmtpServer::start(Faults::none());
    site.edit_config(|c| c.replace(&format!("port = {closed}"), &format!("port = {}", fixed.port())));
    let out = site.run(&["retry", "--failed", "--edition", "2024-11-27"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("1 sent"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let received = received_message_ids(&fixed);
    assert_eq!(received, BTreeMap::from([("bob@example.org".to_string(), vec![bob])]));
    assert_eq!(ledger(&site), sent(3));
    assert!(site.count("SELECT COUNT(*) FROM seen WHERE subscriber = 'bob@example.org'") > 0);

    let out = site.run(&["retry", "--failed"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no failed digests"));
    assert_eq!(fixed.messages().len(), 1, "nothing sent twice");
}

#[test]
fn a_database_moved_away_mid_run_stops_the_run_naming_it() {
    let (_http, smtp, site) = fetched_site_for_readers(200, Duration::from_millis(20));
    let child = site
        .cmd(&["run"], NOW)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while smtp.messages().len() < 5 && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::fs::rename(site.path("db.sqlite3"), site.path("moved.sqlite3")).unwrap();
    let out = exit_within(child, Duration::from_secs(30));
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(err.contains("db.sqlite3") && err.contains("deleted"), "{err}");
    let went_out = smtp.messages().len();
    assert!(went_out < 100, "sending went on for {went_out} messages after the database was gone");
}

#[test]
fn a_database_another_process_holds_exits_75_naming_it_and_sends_nothing() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["fetch"])), 0);
    let holder = site.db();
    holder.execute_batch("BEGIN EXCLUSIVE").unwrap();

    let out = site.run(&["run"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 75, "{err}");
    assert!(err.contains(&site.path("db.sqlite3").display().to_string()), "names the database: {err}");
    assert!(err.contains("another process holds it"), "{err}");
    assert!(smtp.messages().is_empty());

    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(code(&site.run(&["run"])), 0);
    assert_eq!(smtp.messages().len(), 3);
}

#[test]
fn a_full_disk_exits_75_naming_the_database_and_the_next_run_leaves_everyone_one_digest() {
    // A file-size limit stands in for a full disk: SQLite cannot grow its files. The shell
    // ignores SIGXFSZ (and the binary inherits that), so a write fails instead of killing
    // it. 8 KiB fails before anything is sent; 64 KiB part-way through the sends.
    let mut report = Vec::new();
    for limit in [8192, 65536] {
        let http = hf_server();
        let smtp = SmtpServer::start(Faults::none());
        let site = Site::new(&http.url(), smtp.port(), "");
        assert_eq!(code(&site.run(&["fetch"])), 0);
        let run = site.cmd(&["run"], NOW);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("trap '' XFSZ; exec prlimit --fsize={limit} -- \"$@\""))
            .arg("sh")
            .arg(run.get_program())
            .args(run.get_args())
            .env_remove("PAPER_DIGEST_CONFIG")
            .output()
            .unwrap();
        let err = stderr(&out);
        let before = smtp.messages().len();
        if limit == 8192 || code(&out) != 0 {
            assert_eq!(code(&out), 75, "limit {limit}: {err}");
            assert!(err.contains(&site.path("db.sqlite3").display().to_string()), "limit {limit}: {err}");
            assert!(err.contains("is the disk full?"), "limit {limit}: {err}");
        }
        if limit == 8192 {
            assert_eq!(before, 0, "nothing is sent when the database cannot be written");
        }

        let out = site.run(&["run"]);
        assert_eq!(code(&out), 0, "limit {limit}: {}", stderr(&out));
        let received = received_message_ids(&smtp);
        assert_eq!(received.len(), 3, "limit {limit}: a subscriber went without a digest: {received:?}");
        for (to, ids) in &received {
            assert!(ids.iter().all(|id| id == &ids[0]), "limit {limit}: {to} got two different digests");
        }
        assert_eq!(ledger(&site), sent(3), "limit {limit}");
        report.push(format!("file-size limit {limit:>5}: {before} sent before the write failed"));
    }
    println!("{}", report.join("\n"));
}

#[cfg(unix)]
#[test]
fn status_reads_a_database_this_user_cannot_write() {
    use std::os::unix::fs::PermissionsExt;
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["run"])), 0);
    let mode = |path: &std::path::Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(&site.path("db.sqlite3"), 0o444);
    mode(site.dir.path(), 0o555);
    // Run as `nobody` where the tests run as root, who could write anyway.
    let as_root = std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
    let status = site.cmd(&["status"], NOW);
    let out = if as_root {
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(status.get_program())
            .args(status.get_args())
            .output()
            .unwrap()
    } else {
        site.run(&["status"])
    };
    mode(site.dir.path(), 0o755);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("alice@example.org") && text.contains("sent"), "{text}");
    assert!(!site.path("db.sqlite3-wal").exists(), "status wrote nothing");
}
