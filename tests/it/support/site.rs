//! A test site for tests that run the real binary: a temp folder holding a config that
//! points at loopback servers, helpers to run commands in it and to read its database.

use super::http::{HttpServer, Reply, Route};

use std::path::PathBuf;
use std::process::{Command, Output};

pub const NOW: &str = "2024-11-27T07:00:00Z";
pub const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/hf");

/// Serves the Hugging Face fixtures by date; a day without a fixture is an empty listing,
/// as the real API answers for a quiet day.
pub fn hf_server() -> HttpServer {
    HttpServer::start(vec![Route::get("/api/daily_papers").with(|req| {
        let file =
            std::path::Path::new(FIXTURES).join(format!("{}.json", req.param("date").unwrap_or_default()));
        match req.param("date") {
            Some(d)
                if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit() || b == b'-') && file.exists() =>
            {
                Reply::file(file)
            }
            _ => Reply::ok("[]"),
        }
    })])
}

/// A test site: a temp folder with a config pointing at the loopback servers.
pub struct Site {
    pub dir: tempfile::TempDir,
}

impl Site {
    pub fn new(http: &str, smtp_port: u16, extra: &str) -> Site {
        Self::with_subscribers(http, smtp_port, extra, SUBSCRIBERS)
    }

    pub fn with_subscribers(http: &str, smtp_port: u16, extra: &str, subscribers: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"
[digest]
database = "db.sqlite3"
lookback_days = 3
{extra}

[sources.huggingface]
base_url = "{http}"

[http]
max_attempts = 2
backoff_base_ms = 5
timeout_secs = 5

[mail]
from = "Paper Digest <digest@example.org>"
transport = "smtp"

[mail.smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
max_attempts = 3
backoff_base_ms = 5
timeout_secs = 5

[topics.llm-reasoning]
keywords = ["reasoning", "chain of thought", "critique"]

[topics.video]
keywords = ["video", "action recognition"]
exclude = ["medical"]
{subscribers}
"#
        );
        std::fs::write(dir.path().join("paper-digest.toml"), config).unwrap();
        Site { dir }
    }

    /// Rewrites the config file.
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let path = self.path("paper-digest.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(path, edit(text)).unwrap();
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn cmd(&self, args: &[&str], now: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_paper-digest"));
        cmd.arg("--config").arg(self.path("paper-digest.toml")).arg("--now").arg(now).args(args);
        cmd.env_remove("PAPER_DIGEST_CONFIG").env_remove("PAPER_DIGEST_NOW").env_remove("RUST_LOG");
        cmd
    }

    pub fn run_at(&self, args: &[&str], now: &str) -> Output {
        self.cmd(args, now).output().unwrap()
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_at(args, NOW)
    }

    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.path("db.sqlite3")).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.db().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The preview's paper ids for a subscriber (sends nothing, marks nothing).
    pub fn preview_ids(&self, to: &str, now: &str) -> Vec<String> {
        let out = self.run_at(&["preview", "--to", to, "--format", "json", "--offline"], now);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["papers"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
    }
}

pub const SUBSCRIBERS: &str = r#"
[[subscribers]]
email = "alice@example.org"
name = "Alice"
topics = ["llm-reasoning"]

[[subscribers]]
email = "bob@example.org"
topics = ["video"]
max_papers = 5

[[subscribers]]
email = "carol@example.org"
"#;

pub fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}
