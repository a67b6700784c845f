//! The built-in daemon, end to end: the real binary on a real cron schedule, fetching
//! Hugging Face fixtures from a loopback HTTP server and writing mail with the file
//! transport. Every wait is bounded; a daemon left running by a failed test is killed.

use crate::support::http::{HttpServer, Reply, Request, Route};

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_paper-digest");
/// The fixtures hold 2024-11-25..27; runs pretend it is the morning after.
const NOW: &str = "2024-11-27T09:00:00Z";

// ---------------------------------------------------------------------------------------
// A config in a temp folder, and the binary run against it.

/// `GET /api/daily_papers?date=YYYY-MM-DD`: the fixture of that day, or `[]` for a day
/// without one (runs on other dates reach outside the fixtures' three days).
fn daily_papers(req: &Request) -> Reply {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hf");
    match req.param("date") {
        Some(date) if date.len() == 10 && date.chars().all(|c| c.is_ascii_digit() || c == '-') => {
            let file = fixtures.join(format!("{date}.json"));
            if file.is_file() { Reply::file(file) } else { Reply::ok("[]") }
        }
        _ => Reply::status(400),
    }
}

struct Setup {
    /// Serves the Hugging Face listing; lives as long as the setup.
    _server: HttpServer,
    dir: tempfile::TempDir,
    subscribers: Vec<String>,
}

impl Setup {
    fn new(schedule: &str, subscribers: usize) -> Setup {
        let server = HttpServer::start(vec![Route::get("/api/daily_papers").with(daily_papers)]);
        let base_url = server.url();
        let dir = tempfile::tempdir().expect("temp dir");
        let emails: Vec<String> = (0..subscribers).map(|i| format!("reader{i}@example.org")).collect();
        let mut cfg = format!(
            r#"[digest]
database = "digest.sqlite3"
schedule = "{schedule}"
timezone = "UTC"
lookback_days = 3
max_papers = 3

[sources.huggingface]
base_url = "{base_url}"

[http]
max_attempts = 1

[mail]
from = "Paper Digest <digest@example.org>"
transport = "file"

[mail.file]
dir = "outbox"
"#
        );
        for email in &emails {
            // No topics: the day's top trending papers, so every subscriber gets a digest.
            writeln!(cfg, "\n[[subscribers]]\nemail = \"{email}\"").expect("write to a String");
        }
        std::fs::write(dir.path().join("paper-digest.toml"), cfg).expect("write config");
        Setup { _server: server, dir, subscribers: emails }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("paper-digest.toml")
    }

    fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    fn command(&self, args: &[&str], now: &str) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(self.config()).args(args);
        cmd.env("PAPER_DIGEST_NOW", now)
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .env_remove("PAPER_DIGEST_CONFIG")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    fn daemon(&self, now: &str) -> Daemon {
        let mut child = self
            .command(&["daemon"], now)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the daemon");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let sink = log.clone();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Daemon { child, log }
    }

    /// Runs a command to the end; its exit code and standard error.
    fn run(&self, args: &[&str], now: &str) -> (Option<i32>, String) {
        let out = self.command(args, now).output().expect("run the binary");
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// How many digests each subscriber received, read from the `To:` of every .eml.
    fn received(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        let Ok(entries) = std::fs::read_dir(self.outbox()) else { return counts };
        for entry in entries.map_while(Result::ok) {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "eml") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read .eml");
            // While a run is going, a file may still be being written (the file transport
            // writes several at once): not counted yet. Once the run is over, a file that
            // does not parse counts as its subscriber's missing digest.
            let Some(to) = mail_parser::MessageParser::default().parse(&bytes).and_then(|m| {
                m.to().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_lowercase)
            }) else {
                continue;
            };
            *counts.entry(to).or_default() += 1;
        }
        counts
    }

    fn sent(&self) -> usize {
        self.received().values().sum()
    }
}

/// A running daemon; killed if a test fails before it stops.
struct Daemon {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn lines_containing(&self, needle: &str) -> usize {
        self.log.lock().unwrap().iter().filter(|l| l.contains(needle)).count()
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    fn wait_for_line(&self, needle: &str, count: usize, timeout: Duration) {
        let ok = wait_until(timeout, || self.lines_containing(needle) >= count);
        assert!(ok, "no {count} log lines containing {needle:?} within {timeout:?}; log:\n{}", self.log());
    }

    fn terminate(&self) {
        let status =
            Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the daemon") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {timeout:?}; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        thread::sleep(Duration::from_millis(50));
    }
    done()
}

const STARTED: &str = "daemon started";
const RUN_DONE: &str = "daemon: run done";

// ---------------------------------------------------------------------------------------

#[test]
fn a_daemon_on_a_two_second_schedule_sends_on_its_ticks_and_never_twice() {
    let setup = Setup::new("*/2 * * * * *", 3);
    let mut daemon = setup.daemon(NOW);
    // The first run (catch-up at start, or the first tick) sends one digest each; later
    // ticks find the edition sent and add nothing.
    assert!(
        wait_until(Duration::from_secs(30), || setup.sent() >= 3),
        "no 3 digests within 30 s; log:\n{}",
        daemon.log()
    );
    daemon.wait_for_line(RUN_DONE, 3, Duration::from_secs(20));
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(20));
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.log());
    let received = setup.received();
    assert_eq!(received.len(), 3, "{received:?}");
    assert!(received.values().all(|&n| n == 1), "a digest went out twice: {received:?}");
}

#[test]
fn sigterm_stops_an_idle_daemon_with_exit_0() {
    // A schedule that will not fire during the test: the daemon only waits.
    let setup = Setup::new("0 0 7 1 1 *", 1);
    let mut daemon = setup.daemon(NOW);
    daemon.wait_for_line(STARTED, 1, Duration::from_secs(20));
    // It catches up the missed run first (nothing was ever sent); let that finish.
    daemon.wait_for_line(RUN_DONE, 1, Duration::from_secs(20));
    let asked = Instant::now();
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.log());
    assert!(asked.elapsed() < Duration::from_secs(5), "took {:?} to stop", asked.elapsed());
    assert!(daemon.lines_containing("daemon stopped") == 1, "log:\n{}", daemon.log());
}

#[test]
fn sigterm_in_the_middle_of_sending_loses_and_doubles_nothing() {
    let setup = Setup::new("0 0 7 1 1 *", 300);
    let mut daemon = setup.daemon(NOW);
    // The catch-up run starts at once; stop it as soon as the first digests are out.
    assert!(
        wait_until(Duration::from_secs(60), || setup.sent() > 0),
        "nothing sent within 60 s; log:\n{}",
        daemon.log()
    );
    daemon.terminate();
    let status = daemon.wait_exit(Duration::from_secs(70));
    assert_eq!(status.code(), Some(0), "log:\n{}", daemon.log());
    let before = setup.sent();
    eprintln!("SIGTERM after the first digest: {before} of 300 sent before stopping");

    // The next run sends the rest, once each.
    let (code, stderr) = setup.run(&["run"], NOW);
    assert_eq!(code, Some(0), "{stderr}");
    let received = setup.received();
    assert_eq!(received.len(), 300, "missing: {:?}", missing(&setup, &received));
    let doubled: Vec<_> = received.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sent twice: {doubled:?}");
}

fn missing(setup: &Setup, received: &BTreeMap<String, usize>) -> Vec<String> {
    setup.subscribers.iter().filter(|s| !received.contains_key(*s)).cloned().collect()
}

#[test]
fn a_second_daemon_is_refused_by_the_lock() {
    let setup = Setup::new("0 0 7 1 1 *", 1);
    let first = setup.daemon(NOW);
    first.wait_for_line(STARTED, 1, Duration::from_secs(20));
    let (code, stderr) = setup.run(&["daemon"], NOW);
    assert_eq!(code, Some(75), "{stderr}");
    assert!(stderr.contains("lock"), "{stderr}");
    assert!(stderr.contains(&first.child.id().to_string()), "the holder's pid is named: {stderr}");
}

#[test]
fn run_is_refused_while_a_daemon_runs() {
    let setup = Setup::new("0 0 7 1 1 *", 1);
    let daemon = setup.daemon(NOW);
    daemon.wait_for_line(STARTED, 1, Duration::from_secs(20));
    daemon.wait_for_line(RUN_DONE, 1, Duration::from_secs(20));
    let before = setup.sent();
    let (code, stderr) = setup.run(&["run"], NOW);
    assert_eq!(code, Some(75), "{stderr}");
    assert!(stderr.contains("lock"), "{stderr}");
    assert_eq!(setup.sent(), before, "the refused run sent nothing");
}

#[test]
fn a_daemon_started_after_a_missed_morning_catches_up_at_once() {
    // Yesterday's run happened; this morning's 07:00 did not. It is 09:00.
    let setup = Setup::new("0 0 7 * * *", 2);
    let (code, stderr) = setup.run(&["run"], "2024-11-26T07:00:05Z");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(setup.sent(), 2);

    let mut daemon = setup.daemon("2024-11-27T09:00:00Z");
    daemon.wait_for_line("missed", 1, Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(30), || setup.sent() >= 4),
        "today's edition was not sent; log:\n{}",
        daemon.log()
    );
    daemon.terminate();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert!(setup.received().values().all(|&n| n == 2), "{:?}", setup.received());
}

#[test]
fn a_daemon_started_after_this_mornings_run_waits_for_the_schedule() {
    let setup = Setup::new("0 0 7 * * *", 2);
    let (code, stderr) = setup.run(&["run"], "2024-11-27T07:00:05Z");
    assert_eq!(code, Some(0), "{stderr}");

    let mut daemon = setup.daemon("2024-11-27T09:00:00Z");
    daemon.wait_for_line(STARTED, 1, Duration::from_secs(20));
    thread::sleep(Duration::from_secs(2));
    assert_eq!(daemon.lines_containing("missed"), 0, "log:\n{}", daemon.log());
    assert_eq!(daemon.lines_containing(RUN_DONE), 0, "no run started; log:\n{}", daemon.log());
    daemon.terminate();
    assert_eq!(daemon.wait_exit(Duration::from_secs(20)).code(), Some(0));
    assert_eq!(setup.sent(), 2);
}
