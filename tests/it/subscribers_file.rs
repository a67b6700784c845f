//! `subscribers_file`: subscribers from a JSON Lines file beside the config, through the
//! real binary. They must behave exactly like `[[subscribers]]` tables, and a bad line must
//! stop everything with exit 78 and a message naming the file and the line.

use crate::support::site;
use crate::support::smtp::{Faults, SmtpServer};

use site::{NOW, SUBSCRIBERS, Site, code, hf_server, stderr};
use std::collections::BTreeMap;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/subscribers");
const EVERYONE: [&str; 3] = ["alice@example.org", "bob@example.org", "carol@example.org"];

/// A site whose config has `inline` as its `[[subscribers]]` and names the fixture, copied
/// beside it as `subscribers.jsonl`, as its `subscribers_file` (a path relative to the
/// config's folder; the binary runs from elsewhere).
fn site_with_file(http: &str, smtp_port: u16, inline: &str, fixture: &str) -> Site {
    let site = Site::with_subscribers(http, smtp_port, "", inline);
    std::fs::copy(format!("{FIXTURES}/{fixture}"), site.path("subscribers.jsonl")).unwrap();
    site.edit_config(|c| format!("subscribers_file = \"subscribers.jsonl\"\n{c}"));
    site
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each recipient's Subject line, from what the SMTP server received.
fn subjects(smtp: &SmtpServer) -> BTreeMap<String, String> {
    smtp.messages().iter().map(|m| (m.rcpt_to[0].clone(), m.header("Subject").unwrap_or_default())).collect()
}

#[test]
fn subscribers_from_the_file_get_the_same_digests_as_inline_subscribers() {
    let http = hf_server();
    let (smtp_inline, smtp_file) = (SmtpServer::start(Faults::none()), SmtpServer::start(Faults::none()));
    let inline = Site::new(&http.url(), smtp_inline.port(), "");
    let file = site_with_file(&http.url(), smtp_file.port(), "", "three.jsonl");

    let out = file.run(&["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("3 subscribers (3 from "), "{}", stdout(&out));

    for site in [&inline, &file] {
        assert_eq!(code(&site.run(&["fetch"])), 0);
    }
    for to in EVERYONE {
        let ids = file.preview_ids(to, NOW);
        assert!(!ids.is_empty(), "{to}");
        assert_eq!(ids, inline.preview_ids(to, NOW), "{to}: the file and the inline table disagree");
    }
    assert_eq!(file.preview_ids("bob@example.org", NOW).len(), 5, "bob's max_papers is 5 in the file too");

    for site in [&inline, &file] {
        let out = site.run(&["run"]);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
    }
    assert_eq!(smtp_file.messages().len(), 3);
    assert_eq!(subjects(&smtp_file), subjects(&smtp_inline));
    // Carol's name is absent in both forms; Alice's comes from the file.
    let alice = smtp_file.messages().into_iter().find(|m| m.rcpt_to[0] == "alice@example.org").unwrap();
    assert!(alice.header("To").unwrap_or_default().contains("Alice"), "{:?}", alice.header("To"));
}

#[test]
fn check_counts_inline_and_file_subscribers_together_inline_first() {
    let http = hf_server();
    let inline = "\n[[subscribers]]\nemail = \"dave@example.org\"\n";
    let site = site_with_file(&http.url(), SmtpServer::closed_port(), inline, "three.jsonl");
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("4 subscribers (3 from "), "{}", stdout(&out));
    assert!(stdout(&out).contains("subscribers.jsonl"), "{}", stdout(&out));

    let out = site.run(&["status", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let emails: Vec<&str> =
        doc["subscribers"].as_array().unwrap().iter().map(|s| s["email"].as_str().unwrap()).collect();
    assert_eq!(emails, ["dave@example.org", "alice@example.org", "bob@example.org", "carol@example.org"]);
}

/// Runs `run` against a site whose subscribers file is refused: asserts exit 78, that
/// nothing was fetched or sent, and returns standard error.
fn refused(inline: &str, fixture: &str) -> String {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = site_with_file(&http.url(), smtp.port(), inline, fixture);
    let out = site.run(&["run"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(http.requests().is_empty(), "a bad subscribers file must stop the run before any fetch");
    assert!(smtp.messages().is_empty() && smtp.connections() == 0, "nothing may be sent");
    assert!(!site.path("db.sqlite3").exists(), "the database must not even be opened");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn a_line_that_is_not_json_is_refused_with_the_file_and_line() {
    let err = refused("", "bad_json.jsonl");
    assert!(err.contains("subscribers.jsonl:3:"), "{err}");
    assert!(err.contains("key `subscribers[1]`"), "{err}");
    assert!(err.contains("EOF while parsing an object"), "{err}");
}

#[test]
fn an_unknown_field_in_the_file_is_refused_like_an_unknown_toml_key() {
    let err = refused("", "unknown_field.jsonl");
    assert!(err.contains("subscribers.jsonl:2:"), "{err}");
    assert!(err.contains("key `subscribers[1].frequncy`: unknown field `frequncy`"), "{err}");
    assert!(err.contains("expected one of `email`, `name`, `topics`"), "{err}");
}

#[test]
fn an_invalid_address_in_the_file_is_refused_with_the_file_line_and_field() {
    let err = refused("", "invalid_email.jsonl");
    assert!(
        err.contains("subscribers.jsonl:3: key `subscribers[2].email`: `x@` is not a valid email address"),
        "{err}"
    );
}

#[test]
fn a_missing_subscribers_file_is_refused_naming_the_config_line_and_the_path() {
    let http = hf_server();
    let site = Site::with_subscribers(&http.url(), SmtpServer::closed_port(), "", "");
    site.edit_config(|c| format!("subscribers_file = \"lists/nope.jsonl\"\n{c}"));
    let out = site.run(&["run"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(err.contains("paper-digest.toml:1: key `subscribers_file`: cannot open"), "{err}");
    assert!(err.contains(&site.path("lists/nope.jsonl").display().to_string()), "{err}");
    assert!(http.requests().is_empty());
}

#[test]
fn an_address_in_both_the_toml_and_the_file_is_refused_naming_both_places() {
    let err = refused(SUBSCRIBERS, "duplicate_of_inline.jsonl");
    assert!(err.contains("subscribers.jsonl:2: key `subscribers[1].email`"), "{err}");
    assert!(err.contains("alice@example.org is listed twice (first as subscribers[0] in "), "{err}");
    assert!(err.contains("paper-digest.toml)"), "{err}");
}

#[test]
fn an_address_twice_in_the_file_names_the_first_line() {
    let http = hf_server();
    let site = site_with_file(&http.url(), SmtpServer::closed_port(), "", "three.jsonl");
    let mut list = std::fs::read_to_string(site.path("subscribers.jsonl")).unwrap();
    list.push_str("{\"email\": \"Bob <BOB@example.org>\"}\n");
    std::fs::write(site.path("subscribers.jsonl"), list).unwrap();
    let out = site.run(&["check"]);
    let err = stderr(&out);
    assert_eq!(code(&out), 78, "{err}");
    assert!(err.contains("subscribers.jsonl:6: key `subscribers[3].email`: bob@example.org is listed twice (first on line 4)"), "{err}");
}
