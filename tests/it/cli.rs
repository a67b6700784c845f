//! The operator commands through the real binary: init, check, status, resend, explain,
//! completions and man, the alert after repeated failing runs, and the messages an
//! operator meets: config errors, template errors, an unreachable source, SMTP secrets.

use crate::support::http::{HttpServer, Reply, Route};
use crate::support::site;
use crate::support::smtp::{Faults, SmtpServer};

use site::{NOW, Site, code, hf_server, stderr};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn init_writes_a_valid_starter_config_and_refuses_to_overwrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper-digest.toml");
    let bin = env!("CARGO_BIN_EXE_paper-digest");
    let out = Command::new(bin).arg("init").arg(&path).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let out = Command::new(bin).arg("--config").arg(&path).arg("check").output().unwrap();
    assert_eq!(code(&out), 0, "the starter config must pass check: {}", stderr(&out));
    assert!(stdout(&out).contains("config ok"));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("database = \"paper-digest.sqlite3\"") && written.contains("dir = \"outbox\""));

    let out = Command::new(bin).arg("init").arg(&path).output().unwrap();
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
}

#[test]
fn the_config_is_found_through_the_environment_variable() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    let out = Command::new(env!("CARGO_BIN_EXE_paper-digest"))
        .arg("check")
        .env("PAPER_DIGEST_CONFIG", site.path("paper-digest.toml"))
        .current_dir(site.dir.path())
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("3 subscribers"), "{}", stdout(&out));
}

#[test]
fn check_connect_gives_a_verdict_per_source_and_for_the_mail_server() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["check", "--connect"]);
    assert_eq!(code(&out), 0, "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ok      source huggingface"), "{text}");
    assert!(text.contains("ok      mail"), "{text}");
    assert!(smtp.messages().is_empty(), "check must not send mail");

    let down = Site::new(&http.url(), SmtpServer::closed_port(), "");
    let out = down.run(&["check", "--connect"]);
    assert_eq!(code(&out), 75, "{}", stdout(&out));
    assert!(stdout(&out).contains("FAILED  mail"), "{}", stdout(&out));
}

#[test]
fn status_json_reports_the_last_run_sources_and_each_subscriber() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().reject_rcpt("bob@example.org"));
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["run"])), 1);
    let out = site.run(&["status", "--json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["last_run"]["status"], "partial");
    assert_eq!(doc["last_run"]["summary"]["sent"], 2);
    assert_eq!(doc["last_run"]["summary"]["failed"], 1);
    assert!(doc["last_success"].is_string());
    assert!(doc["next_run"].is_string());
    assert_eq!(doc["papers"], 139);
    assert_eq!(doc["sources"][0]["source"], "huggingface");
    assert_eq!(doc["sources"][0]["last_count"], 139);
    let subs = doc["subscribers"].as_array().unwrap();
    assert_eq!(subs.len(), 3);
    let bob = subs.iter().find(|s| s["email"] == "bob@example.org").unwrap();
    assert_eq!(bob["status"], "failed");
    assert!(bob["error"].as_str().unwrap().contains("550"), "{bob}");
    let alice = subs.iter().find(|s| s["email"] == "alice@example.org").unwrap();
    assert_eq!(alice["status"], "sent");
    assert_eq!(alice["last_edition"], "2024-11-27");
}

#[test]
fn resend_sends_a_fresh_copy_of_the_same_papers_with_a_new_message_id() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["run"])), 0);
    let out = site.run(&["resend", "--to", "alice@example.org", "--edition", "2024-11-27"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let alice: Vec<_> = smtp.messages().into_iter().filter(|m| m.rcpt_to[0] == "alice@example.org").collect();
    assert_eq!(alice.len(), 2);
    assert_ne!(alice[0].message_id(), alice[1].message_id());
    assert_eq!(alice[0].header("Subject"), alice[1].header("Subject"));
    // The scheduled run still considers the edition done.
    assert_eq!(code(&site.run(&["run"])), 0);
    assert_eq!(smtp.messages().len(), 4);

    let out = site.run(&["resend", "--to", "nobody@example.org"]);
    assert_ne!(code(&out), 0);
    assert!(stderr(&out).contains("nobody@example.org is not a subscriber"), "{}", stderr(&out));
}

#[test]
fn explain_says_why_a_paper_ranked_or_was_left_out() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    assert_eq!(code(&site.run(&["fetch"])), 0);
    // 2411.16500: "Enhancing LLM Reasoning via Critique Models ...".
    let out = site.run(&["explain", "--to", "alice@example.org", "--paper", "arXiv:2411.16500v2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("ranked #"), "{text}");
    assert!(text.contains("matched") && text.contains("title"), "{text}");

    let out = site.run(&["explain", "--to", "bob@example.org", "--paper", "2411.16500"]);
    assert!(stdout(&out).contains("left out"), "{}", stdout(&out));
    let out = site.run(&["explain", "--to", "alice@example.org", "--paper", "2411.16500", "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["paper"], "2411.16500");
    assert!(doc["verdict"].to_string().contains("matched"), "{doc}");

    assert_eq!(code(&site.run(&["run"])), 0);
    let out =
        site.run(&["explain", "--to", "alice@example.org", "--paper", "https://arxiv.org/abs/2411.16500"]);
    assert!(stdout(&out).contains("already sent"), "{}", stdout(&out));
}

#[test]
fn repeated_failing_runs_send_one_alert_not_one_per_failure() {
    let http = HttpServer::start(vec![Route::get("/api/daily_papers").reply(Reply::status(503))]);
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    site.edit_config(|c| format!("{c}\n[alerts]\nemail = \"ops@example.org\"\nafter_failures = 2\n"));
    for _ in 0..4 {
        assert_eq!(code(&site.run(&["run"])), 75);
    }
    let alerts: Vec<_> = smtp.messages().into_iter().filter(|m| m.rcpt_to[0] == "ops@example.org").collect();
    assert_eq!(alerts.len(), 1, "one alert after the second failure, none after");
    assert!(alerts[0].header("Subject").unwrap().contains("2 failing runs"));
    assert_eq!(smtp.messages().len(), 1, "no digest went out while every source failed");
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries WHERE kind = 'alert' AND status = 'sent'"), 1);
}

/// Runs `args` with standard output into a pipe whose reader takes `lines` lines and then
/// hangs up, like `| head -n LINES`. Returns the exit code, standard error and the lines read.
fn into_closing_pipe(site: &Site, args: &[&str], lines: usize) -> (i32, String, Vec<String>) {
    let mut child = site.cmd(args, NOW).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let read: Vec<String> = reader.lines().take(lines).map(Result::unwrap).collect();
    // The reader is gone: the pipe has no reading end any more.
    let out = child.wait_with_output().unwrap();
    (code(&out), stderr(&out), read)
}

#[test]
fn status_into_a_reader_that_hangs_up_after_one_line_exits_cleanly() {
    // Far more than a pipe buffer (64 KiB) of output, so the writes after the hang-up
    // certainly hit the closed pipe.
    let mut subscribers = String::new();
    for n in 0..5000 {
        write!(subscribers, "\n[[subscribers]]\nemail = \"user{n:05}@example.org\"\n").unwrap();
    }
    let http = hf_server();
    let site = Site::with_subscribers(&http.url(), SmtpServer::closed_port(), "", &subscribers);
    // `status` reads an existing database only.
    assert_eq!(code(&site.run(&["fetch"])), 0);
    let (code, err, read) = into_closing_pipe(&site, &["status"], 1);
    assert_eq!(read.len(), 1);
    assert!(read[0].starts_with("last run:"), "{read:?}");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{err}");
    assert!(err.trim().is_empty(), "a closed pipe is not an error: {err}");
}

#[test]
fn commands_that_print_exit_cleanly_when_nobody_reads_their_output() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    assert_eq!(code(&site.run(&["fetch"])), 0);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["check"],
        &["explain", "--to", "alice@example.org", "--paper", "2411.16500"],
        &["explain", "--to", "alice@example.org", "--paper", "2411.16500", "--json"],
        &["preview", "--to", "alice@example.org", "--offline"],
        &["fetch"],
        &["completions", "bash"],
        &["man"],
    ] {
        let (code, err, _) = into_closing_pipe(&site, args, 0);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paper-digest"));
    cmd.env_remove("PAPER_DIGEST_CONFIG").env_remove("PAPER_DIGEST_NOW").env_remove("RUST_LOG");
    cmd
}

// ---------------------------------------------------------------------------------------
// init

#[test]
fn init_writes_where_config_points_and_prints_the_exact_next_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my digest.toml");
    let out = bin().arg("--config").arg(&path).arg("init").output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(path.exists(), "init writes the file --config names");
    let next = format!("paper-digest check --config '{}'", path.display());
    assert!(stdout(&out).contains(&next), "{}", stdout(&out));
    // The printed command works as printed (the binary stands in for `paper-digest`).
    let out = bin().args(["check", "--config"]).arg(&path).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));

    let other = dir.path().join("other.toml");
    let out = bin().arg("init").arg(&other).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("paper-digest check --config {}", other.display())));
}

#[test]
fn init_documents_every_section_without_the_example_header() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper-digest.toml");
    assert_eq!(code(&bin().arg("init").arg(&path).output().unwrap()), 0);
    let text = std::fs::read_to_string(&path).unwrap();
    for section in [
        "[digest]",
        "[sources.huggingface]",
        "[sources.arxiv]",
        "[[sources.feeds]]",
        "[http]",
        "[mail]",
        "unsubscribe_url",
        "unsubscribe_mailto",
        "[mail.smtp]",
        "password_command",
        "auth = ",
        "[mail.sendmail]",
        "[topics.",
        "[[subscribers]]",
        "[alerts]",
        "[web]",
    ] {
        assert!(text.contains(section), "the starter config documents {section}");
    }
    assert!(!text.contains("example configuration") && !text.contains("config/example.toml"), "{text}");
}

#[test]
fn init_refuses_a_missing_folder_instead_of_creating_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no/such/folder/paper-digest.toml");
    let out = bin().arg("init").arg(&path).output().unwrap();
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    assert!(!dir.path().join("no").exists());
}

// ---------------------------------------------------------------------------------------
// Config messages

#[test]
fn a_missing_config_file_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().arg("check").current_dir(dir.path()).output().unwrap();
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    assert!(err.contains("paper-digest.toml") && err.contains("paper-digest init"), "{err}");
    assert!(err.contains("--config") && err.contains("PAPER_DIGEST_CONFIG"), "{err}");
}

/// The line (from 1) of the first line of `config` that contains `needle`.
fn line_of(config: &str, needle: &str) -> usize {
    config.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[test]
fn config_errors_found_after_parsing_carry_line_and_column() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "max_papers = 0");
    let config = std::fs::read_to_string(site.path("paper-digest.toml")).unwrap();
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78);
    let want =
        format!("paper-digest.toml:{}:14: key `digest.max_papers`", line_of(&config, "max_papers = 0"));
    assert!(stderr(&out).contains(&want), "{want} in {}", stderr(&out));

    // An unknown topic, named in the third subscriber's list.
    site.edit_config(|c| {
        c.replace(
            "email = \"carol@example.org\"",
            "email = \"carol@example.org\"\ntopics = [\"video\", \"nope\"]",
        )
        .replace("max_papers = 0", "")
    });
    let config = std::fs::read_to_string(site.path("paper-digest.toml")).unwrap();
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78);
    let want =
        format!("paper-digest.toml:{}:20: key `subscribers[2].topics[1]`", line_of(&config, "\"nope\""));
    assert!(stderr(&out).contains(&want), "{want} in {}", stderr(&out));
}

#[test]
fn type_errors_name_the_kind_of_value_in_words_not_rust_types() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "max_papers = \"ten\"");
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78);
    let err = stderr(&out);
    assert!(err.contains("expected a whole number"), "{err}");
    assert!(!err.contains("usize"), "{err}");

    site.edit_config(|c| c.replace("max_papers = \"ten\"", "min_score = \"high\""));
    let err = stderr(&site.run(&["check"]));
    assert!(err.contains("expected a number") && !err.contains("f64"), "{err}");
}

#[test]
fn an_unknown_subscriber_lists_a_few_and_counts_the_rest() {
    let mut subscribers = String::new();
    for n in 0..12 {
        write!(subscribers, "\n[[subscribers]]\nemail = \"user{n:02}@example.org\"\n").unwrap();
    }
    let http = hf_server();
    let site = Site::with_subscribers(&http.url(), SmtpServer::closed_port(), "", &subscribers);
    let out = site.run(&["preview", "--offline", "--to", "nobody@example.org"]);
    assert_ne!(code(&out), 0);
    let err = stderr(&out);
    assert!(err.contains("12 subscribers: user00@example.org"), "{err}");
    assert!(err.contains("and 7 more"), "{err}");
    assert!(!err.contains("user11@example.org"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn an_unwritable_database_folder_names_the_key() {
    let http = hf_server();
    // /proc takes no new files, whoever runs the test (root included).
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    site.edit_config(|c| c.replace("database = \"db.sqlite3\"", "database = \"/proc/paper-digest.sqlite3\""));
    for args in [&["check"][..], &["run"], &["fetch"]] {
        let out = site.run(args);
        assert_eq!(code(&out), 78, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("key `digest.database`") && err.contains("/proc"), "{args:?}: {err}");
        assert!(err.contains("paper-digest.toml:3:"), "the key's line: {err}");
    }
}

#[test]
fn only_the_databases_own_folder_is_created_never_its_parents() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    site.edit_config(|c| c.replace("database = \"db.sqlite3\"", "database = \"a/b/db.sqlite3\""));
    let out = site.run(&["fetch"]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("key `digest.database`"), "{}", stderr(&out));
    assert!(!site.path("a").exists(), "no folder was created");

    site.edit_config(|c| c.replace("a/b/db.sqlite3", "state/db.sqlite3"));
    let out = site.run(&["fetch"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(site.path("state/db.sqlite3").exists());
}

// ---------------------------------------------------------------------------------------
// Templates

/// A site whose `templates` folder holds `name` with `text`.
fn site_with_template(http: &str, smtp_port: u16, name: &str, text: &str) -> Site {
    let site = Site::new(http, smtp_port, "templates = \"tpl\"");
    std::fs::create_dir(site.path("tpl")).unwrap();
    std::fs::write(site.path("tpl").join(name), text).unwrap();
    site
}

#[test]
fn check_names_the_file_line_and_undefined_name_of_a_template_mistake() {
    let http = hf_server();
    let builtin =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/card.html")).unwrap();
    let broken = builtin.replacen("{{ paper.title }}", "{{ paper.titel }}", 1);
    assert_ne!(broken, builtin);
    let site = site_with_template(&http.url(), SmtpServer::closed_port(), "card.html", &broken);
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78, "{}", stdout(&out));
    let err = stderr(&out);
    let line = line_of(&broken, "paper.titel");
    assert!(err.contains(&format!("tpl/card.html:{line}:")), "{err}");
    assert!(err.contains("`paper.titel` is undefined"), "{err}");
    assert!(!stdout(&out).contains("config ok"));

    // A name piped into a filter is named too, not the filter.
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/card.txt")).unwrap();
    let broken = text.replacen("paper.authors |", "paper.autors |", 1);
    std::fs::remove_file(site.path("tpl/card.html")).unwrap();
    std::fs::write(site.path("tpl/card.txt"), &broken).unwrap();
    let err = stderr(&site.run(&["check"]));
    assert!(err.contains("`paper.autors` is undefined"), "{err}");
    assert!(err.contains(&format!("tpl/card.txt:{}:", line_of(&broken, "paper.autors"))), "{err}");
}

#[test]
fn check_refuses_a_template_syntax_error_and_a_missing_templates_folder() {
    let http = hf_server();
    let site = site_with_template(
        &http.url(),
        SmtpServer::closed_port(),
        "subject.txt",
        "{{ count }} papers {% if %}",
    );
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("tpl/subject.txt:1: syntax error"), "{}", stderr(&out));

    std::fs::remove_dir_all(site.path("tpl")).unwrap();
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78);
    let config = std::fs::read_to_string(site.path("paper-digest.toml")).unwrap();
    let want = format!("paper-digest.toml:{}:13: key `digest.templates`", line_of(&config, "templates = "));
    assert!(stderr(&out).contains(&want), "{want} in {}", stderr(&out));
}

#[test]
fn a_template_error_in_a_run_exits_78_and_marks_no_subscriber_failed() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    // Fine for check's two sample papers, broken for a real day's digest.
    let site = site_with_template(
        &http.url(),
        smtp.port(),
        "subject.txt",
        "{% if count > 2 %}{{ no_such_name }}{% endif %}{{ count }} new papers",
    );
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert!(stderr(&out).contains("no_such_name"), "{}", stderr(&out));
    assert!(smtp.messages().is_empty());
    assert_eq!(
        site.count("SELECT COUNT(*) FROM deliveries WHERE status IN ('failed', 'sending', 'sent')"),
        0
    );

    // After the fix the rerun sends every digest.
    std::fs::write(site.path("tpl/subject.txt"), "{{ count }} new papers").unwrap();
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 3);
}

#[test]
fn a_template_that_fails_before_any_subscriber_is_planned_exits_78() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = site_with_template(&http.url(), smtp.port(), "subject.txt", "{{ count | nope }}");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 78, "{}", stderr(&out));
    assert_eq!(site.count("SELECT COUNT(*) FROM deliveries"), 0);
}

// ---------------------------------------------------------------------------------------
// status

#[test]
fn status_never_creates_the_database() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    for args in [&["status"][..], &["status", "--json"]] {
        let out = site.run(args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert!(!site.path("db.sqlite3").exists(), "{args:?} created the database");
    }
    assert!(stdout(&site.run(&["status"])).contains("no database at"));
}

/// Whether `s` is RFC 3339 to the second with a zone: `2024-11-27T07:00:00Z` or `...+01:00`.
fn rfc3339_seconds(s: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(s).is_ok() && s.len() <= 25 && s.as_bytes()[19] != b'.'
}

#[test]
fn status_prints_one_time_format_and_says_where_the_next_run_comes_from() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "timezone = \"Europe/Berlin\"");
    assert_eq!(code(&site.run(&["run"])), 0);
    let db_before = std::fs::metadata(site.path("db.sqlite3")).unwrap().modified().unwrap();

    let text = stdout(&site.run(&["status"]));
    let times: Vec<&str> = text
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| c == ',' || c == '(' || c == ')' || c == ':'))
        .filter(|w| w.len() > 18 && w.starts_with("20") && w.contains('T'))
        .collect();
    assert!(times.len() >= 4, "{text}");
    for t in &times {
        assert!(rfc3339_seconds(t), "{t} in {text}");
        assert!(t.ends_with("+01:00"), "shown in [digest] timezone: {t}");
    }
    assert!(text.contains("next run:") && text.contains("paper-digest daemon"), "{text}");

    let doc: serde_json::Value = serde_json::from_slice(&site.run(&["status", "--json"]).stdout).unwrap();
    for t in [
        &doc["last_run"]["started_at"],
        &doc["last_success"],
        &doc["next_run"],
        &doc["sources"][0]["last_attempt"],
    ] {
        let t = t.as_str().unwrap();
        assert!(rfc3339_seconds(t) && t.ends_with('Z'), "{t}");
    }
    assert_eq!(doc["next_run_from"], "daemon_schedule");
    assert!(doc["last_run"]["summary"]["duration_ms"].is_u64(), "{doc}");
    assert!(doc["last_run"]["summary"].get("duration").is_none());
    assert_eq!(doc["subscribers"][0]["runs_attempted"], 1);
    assert_eq!(std::fs::metadata(site.path("db.sqlite3")).unwrap().modified().unwrap(), db_before);
}

// ---------------------------------------------------------------------------------------
// Sources and logs

#[test]
fn an_unreachable_source_fails_at_once_with_the_host_and_a_hint() {
    let port = SmtpServer::closed_port();
    let site = Site::new(&format!("http://127.0.0.1:{port}"), SmtpServer::closed_port(), "");
    // Retries that would take minutes if an unreachable host were retried.
    site.edit_config(|c| {
        c.replace("max_attempts = 2\nbackoff_base_ms = 5", "max_attempts = 4\nbackoff_base_ms = 60000")
    });
    let started = std::time::Instant::now();
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 75, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&format!("cannot reach 127.0.0.1:{port}")), "{err}");
    assert!(err.contains("proxy") && err.contains("base_url"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("cannot reach")).count(), 1, "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "no backoff was waited");
}

#[test]
fn the_demo_config_runs_offline_from_the_bundled_listing() {
    let dir = tempfile::tempdir().unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::create_dir_all(dir.path().join("config/demo-listing/api")).unwrap();
    std::fs::copy(root.join("config/demo.toml"), dir.path().join("config/demo.toml")).unwrap();
    // `copy` follows the link to the fixture, as a packaged copy of the repository would.
    std::fs::copy(
        root.join("config/demo-listing/api/daily_papers"),
        dir.path().join("config/demo-listing/api/daily_papers"),
    )
    .unwrap();
    let out = bin().args(["run", "--config", "config/demo.toml"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let emls = std::fs::read_dir(dir.path().join("outbox")).unwrap().count();
    assert_eq!(emls, 2, "one digest per demo subscriber");
    assert!(dir.path().join("demo.sqlite3").exists());
}

#[test]
fn each_fetch_is_logged_once_and_a_quiet_day_is_one_line() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none());
    let site = Site::new(&http.url(), smtp.port(), "");
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0);
    let err = stderr(&out);
    assert_eq!(err.lines().filter(|l| l.contains("fetched")).count(), 1, "{err}");

    // A month later the fixture server lists nothing: one line for the fetch, one summary.
    let out = site.run_at(&["run"], "2024-12-27T07:00:00Z");
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.contains("quiet day"), "{err}");
}

#[test]
fn log_format_json_writes_one_json_object_per_line() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    let out = site.run(&["fetch", "--log-format", "json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let err = stderr(&out);
    let events: Vec<serde_json::Value> = err.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let fetched = events.iter().find(|e| e["message"] == "fetched").expect("a fetched event");
    assert_eq!(fetched["level"], "INFO");
    assert_eq!(fetched["papers"], 139);
    assert!(fetched["timestamp"].is_string());
}

#[test]
fn vv_shows_trace_events_and_v_does_not() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    let v = stderr(&site.run(&["fetch", "-v"]));
    assert!(v.contains("DEBUG") && !v.contains("TRACE"), "{v}");
    let vv = stderr(&site.run(&["fetch", "-vv"]));
    assert!(vv.contains("TRACE"), "{vv}");
}

// ---------------------------------------------------------------------------------------
// SMTP secrets and From domain

#[test]
fn password_command_supplies_the_smtp_password_and_never_reaches_the_logs() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().auth("digest", "s3cret-from-command"));
    let site = Site::new(&http.url(), smtp.port(), "");
    site.edit_config(|c| {
        c.replace("security = \"none\"", "security = \"none\"\nusername = \"digest\"\npassword_command = \"printf 's3cret-from-command\\\\n'\"")
    });
    let out = site.run(&["run", "-vv"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 3);
    assert!(!stderr(&out).contains("s3cret-from-command"), "the secret reached the log");
    assert!(!stdout(&out).contains("s3cret-from-command"));
}

#[test]
fn a_failing_password_command_names_the_key_and_the_exit_status() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().auth("digest", "x"));
    let site = Site::new(&http.url(), smtp.port(), "");
    site.edit_config(|c| {
        c.replace("security = \"none\"", "security = \"none\"\nusername = \"digest\"\npassword_command = \"echo 'vault sealed' >&2; exit 3\"")
    });
    for args in [&["check"][..], &["run"]] {
        let out = site.run(args);
        assert_eq!(code(&out), 78, "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("key `mail.smtp.password_command`"), "{err}");
        assert!(err.contains("status 3") && err.contains("vault sealed"), "{err}");
    }
    assert!(smtp.messages().is_empty());
}

/// The base64 payloads of the AUTH exchange, decoded.
fn auth_payloads(smtp: &SmtpServer) -> Vec<Vec<u8>> {
    smtp.commands()
        .iter()
        .filter_map(|c| c.strip_prefix("AUTH XOAUTH2 ").map(str::trim).map(base64_decode))
        .collect()
}

/// A small standard base64 decoder, so the test reads the bytes itself.
fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for b in s.bytes().filter(|b| *b != b'=') {
        let v = ALPHABET.iter().position(|a| *a == b).unwrap() as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn xoauth2_sends_the_token_the_command_prints() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().auth("digest@example.org", "ya29.token-from-oama"));
    let site = Site::new(&http.url(), smtp.port(), "");
    site.edit_config(|c| {
        c.replace(
            "security = \"none\"",
            "security = \"none\"\nusername = \"digest@example.org\"\nauth = \"xoauth2\"\npassword_command = \"echo ya29.token-from-oama\"",
        )
    });
    let out = site.run(&["run"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(smtp.messages().len(), 3);
    let payloads = auth_payloads(&smtp);
    assert!(!payloads.is_empty(), "{:?}", smtp.commands());
    assert_eq!(payloads[0], b"user=digest@example.org\x01auth=Bearer ya29.token-from-oama\x01\x01");
    assert!(!smtp.saw_command("AUTH PLAIN") && !smtp.saw_command("AUTH LOGIN"));
    assert!(!stderr(&out).contains("ya29"));
}

#[test]
fn xoauth2_without_a_username_is_a_config_error() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    site.edit_config(|c| {
        c.replace(
            "security = \"none\"",
            "security = \"none\"\nauth = \"xoauth2\"\npassword_command = \"echo t\"",
        )
    });
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 78);
    assert!(stderr(&out).contains("key `mail.smtp.auth`"), "{}", stderr(&out));
}

#[test]
fn check_warns_about_a_big_provider_from_address_sent_through_another_relay() {
    let http = hf_server();
    let site = Site::new(&http.url(), SmtpServer::closed_port(), "");
    site.edit_config(|c| c.replace("digest@example.org>", "lab.digest@gmail.com>"));
    let out = site.run(&["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("warning: mail.from is at gmail.com") && text.contains("DMARC"), "{text}");
    assert!(text.contains("127.0.0.1"), "names the relay: {text}");

    site.edit_config(|c| c.replace("host = \"127.0.0.1\"", "host = \"smtp.gmail.com\""));
    let text = stdout(&site.run(&["check"]));
    assert!(!text.contains("warning"), "Gmail's own relay is fine: {text}");
}

// ---------------------------------------------------------------------------------------
// Packaging

#[test]
fn completions_and_the_man_page_are_generated() {
    for shell in ["bash", "zsh", "fish"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert_eq!(code(&out), 0, "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("paper-digest") && text.contains("preview"), "{shell}: {text}");
    }
    let out = bin().arg("man").output().unwrap();
    assert_eq!(code(&out), 0);
    let text = stdout(&out);
    assert!(text.contains(".TH paper-digest") && text.contains("completions"), "{text}");
}

#[test]
fn status_counts_runs_and_the_error_counts_the_tries_within_the_run() {
    let http = hf_server();
    let smtp = SmtpServer::start(Faults::none().tempfail_rcpt(3));
    let one = "\n[[subscribers]]\nemail = \"alice@example.org\"\ntopics = [\"llm-reasoning\"]\n";
    let site = Site::with_subscribers(&http.url(), smtp.port(), "", one);
    assert_eq!(code(&site.run(&["run"])), 1, "deferred after max_attempts = 3");
    let doc: serde_json::Value = serde_json::from_slice(&site.run(&["status", "--json"]).stdout).unwrap();
    let alice = &doc["subscribers"][0];
    assert_eq!(alice["status"], "deferred");
    assert_eq!(alice["runs_attempted"], 1);
    assert!(alice["error"].as_str().unwrap().contains("(after 3 attempts)"), "{alice}");
    let text = stdout(&site.run(&["status"]));
    assert!(text.contains("tried in 1 run(s)") && text.contains("after 3 attempts"), "{text}");
}
