//! The operator commands through the real binary: init, check, status, resend, explain,
//! and the alert after repeated failing runs.

#[path = "support/http.rs"]
mod http_server;
#[path = "support/site.rs"]
mod site;
#[path = "support/smtp.rs"]
mod smtp_server;

use http_server::{HttpServer, Reply, Route};
use site::{NOW, Site, code, hf_server, stderr};
use smtp_server::{Faults, SmtpServer};
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
    ] {
        let (code, err, _) = into_closing_pipe(&site, args, 0);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
}
