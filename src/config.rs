//! The TOML configuration: raw serde structs that reject unknown keys, validated into a
//! ready-to-use [`Config`]. `parse` works on a string (for tests), `load` on a file.

use crate::error::{Error, Result};
use crate::model::Frequency;
use chrono::Weekday;
use chrono_tz::Tz;
use lettre::message::Mailbox;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file used when neither `--config` nor `$PAPER_DIGEST_CONFIG` names one.
pub const DEFAULT_PATH: &str = "paper-digest.toml";
/// Environment variable naming the config file.
pub const ENV_VAR: &str = "PAPER_DIGEST_CONFIG";

// ---------------------------------------------------------------------------------------
// Raw, as written in the file.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    digest: RawDigest,
    #[serde(default)]
    sources: RawSources,
    #[serde(default)]
    http: RawHttp,
    mail: RawMail,
    #[serde(default)]
    topics: BTreeMap<String, RawTopic>,
    #[serde(default)]
    subscribers: Vec<RawSubscriber>,
    /// A JSON Lines file of more subscribers, read line by line: a list of 100,000 costs
    /// about 2.5 KB per subscriber as TOML while parsing, and little more than the result
    /// as JSON Lines. Spanned so a file that cannot be opened is reported at its line.
    subscribers_file: Option<toml::Spanned<PathBuf>>,
    alerts: Option<RawAlerts>,
    web: Option<RawWeb>,
}

/// `[web]`: the reader-facing pages of `paper-digest serve` and the links digests carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    base_url: String,
    #[serde(default = "web_listen")]
    listen: String,
    secret_env: Option<String>,
    secret_file: Option<PathBuf>,
    secret_credential: Option<String>,
    /// The secret before a rotation, still accepted (never used to sign) so that links in
    /// digests already sent keep working.
    previous_secret_env: Option<String>,
    previous_secret_file: Option<PathBuf>,
    #[serde(default = "yes")]
    subscribe: bool,
    #[serde(default)]
    public_topics: bool,
    #[serde(default = "confirm_hours")]
    confirm_hours: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawDigest {
    max_papers: usize,
    lookback_days: u32,
    send_empty: bool,
    database: PathBuf,
    timezone: String,
    schedule: String,
    templates: Option<PathBuf>,
    min_score: f64,
    trending_weight: f64,
    recency_weight: f64,
    lock_file: Option<PathBuf>,
}

impl Default for RawDigest {
    fn default() -> Self {
        Self {
            max_papers: 10,
            lookback_days: 3,
            send_empty: false,
            database: PathBuf::from("paper-digest.sqlite3"),
            timezone: "UTC".into(),
            schedule: "0 0 7 * * *".into(),
            templates: None,
            min_score: 0.0,
            trending_weight: 1.0,
            recency_weight: 0.5,
            lock_file: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSources {
    huggingface: Option<RawHuggingFace>,
    arxiv: Option<RawArxiv>,
    #[serde(default)]
    feeds: Vec<RawFeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHuggingFace {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "hf_base")]
    base_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArxiv {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "arxiv_base")]
    base_url: String,
    #[serde(default)]
    categories: Vec<String>,
    query: Option<String>,
    #[serde(default = "arxiv_max_results")]
    max_results: usize,
    #[serde(default = "arxiv_page_size")]
    page_size: usize,
    #[serde(default = "arxiv_delay")]
    delay_secs: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: String,
    url: String,
    #[serde(default = "yes")]
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHttp {
    timeout_secs: f64,
    connect_timeout_secs: f64,
    max_body_bytes: u64,
    max_attempts: u32,
    backoff_base_ms: u64,
    backoff_max_secs: f64,
    max_redirects: usize,
    user_agent: Option<String>,
}

impl Default for RawHttp {
    fn default() -> Self {
        Self {
            timeout_secs: 30.0,
            connect_timeout_secs: 10.0,
            max_body_bytes: 20 * 1024 * 1024,
            max_attempts: 4,
            backoff_base_ms: 1000,
            backoff_max_secs: 60.0,
            max_redirects: 5,
            user_agent: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    from: String,
    reply_to: Option<String>,
    #[serde(default)]
    transport: TransportKind,
    list_id: Option<String>,
    unsubscribe_mailto: Option<String>,
    unsubscribe_url: Option<String>,
    file: Option<RawFileTransport>,
    smtp: Option<RawSmtp>,
    sendmail: Option<RawSendmail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileTransport {
    #[serde(default = "outbox")]
    dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSendmail {
    #[serde(default = "sendmail_cmd")]
    command: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    #[serde(default)]
    security: Security,
    username: Option<String>,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
    #[serde(default)]
    allow_insecure: bool,
    #[serde(default = "smtp_concurrency")]
    concurrency: usize,
    rate_limit: Option<f64>,
    max_per_hour: Option<u32>,
    #[serde(default = "smtp_attempts")]
    max_attempts: u32,
    #[serde(default = "smtp_timeout")]
    timeout_secs: f64,
    #[serde(default = "smtp_data_timeout")]
    data_timeout_secs: f64,
    #[serde(default = "smtp_backoff")]
    backoff_base_ms: u64,
    helo_name: Option<String>,
    ca_file: Option<PathBuf>,
    /// msmtp's `passwordeval`: a shell command whose standard output is the secret.
    password_command: Option<String>,
    #[serde(default)]
    auth: SmtpAuth,
}

/// How paper-digest logs in to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpAuth {
    /// A password, sent with PLAIN or LOGIN (whichever the server offers).
    #[default]
    Password,
    /// An OAuth2 access token (Gmail, Outlook), sent with XOAUTH2.
    Xoauth2,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    exclude: Vec<String>,
    #[serde(default)]
    require: Vec<String>,
    #[serde(default)]
    authors: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default = "one")]
    weight: f64,
    min_score: Option<f64>,
    #[serde(default)]
    like: Vec<String>,
}

/// One `[[subscribers]]` table, or one line of the `subscribers_file`: the same fields,
/// defaults and checks either way.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a subscriber with at least an `email`")]
struct RawSubscriber {
    email: String,
    name: Option<String>,
    #[serde(default)]
    topics: Vec<String>,
    max_papers: Option<usize>,
    min_score: Option<f64>,
    trending_weight: Option<f64>,
    #[serde(default)]
    frequency: Frequency,
    weekday: Option<String>,
    timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    email: String,
    #[serde(default = "three")]
    after_failures: u32,
}

fn yes() -> bool {
    true
}
fn one() -> f64 {
    1.0
}
fn three() -> u32 {
    3
}
fn hf_base() -> String {
    "https://huggingface.co".into()
}
fn arxiv_base() -> String {
    "https://export.arxiv.org".into()
}
fn arxiv_max_results() -> usize {
    200
}
fn arxiv_page_size() -> usize {
    100
}
fn arxiv_delay() -> f64 {
    3.0
}
fn outbox() -> PathBuf {
    PathBuf::from("outbox")
}
fn sendmail_cmd() -> PathBuf {
    PathBuf::from("/usr/sbin/sendmail")
}
fn smtp_concurrency() -> usize {
    4
}
fn smtp_attempts() -> u32 {
    3
}
fn smtp_timeout() -> f64 {
    30.0
}
/// RFC 5321 §4.5.3.2.6 asks a client to wait 10 minutes for the reply to the final dot;
/// five covers every real server's queueing delay without holding a run for long.
fn smtp_data_timeout() -> f64 {
    300.0
}
fn smtp_backoff() -> u64 {
    1000
}
fn web_listen() -> String {
    "127.0.0.1:8080".into()
}
fn confirm_hours() -> u32 {
    48
}

/// Whether mail to `host` stays on this machine: an IP literal in 127.0.0.0/8, `::1`, or
/// exactly `localhost`. A name that merely starts with `127.` can point anywhere.
fn is_loopback(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

// ---------------------------------------------------------------------------------------
// Validated, ready to use.

/// A secret string (the SMTP password). Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself: call only where it is handed to the transport.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(\"***\")")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The file this was loaded from (or a placeholder for `parse`).
    pub path: PathBuf,
    pub digest: DigestSettings,
    pub sources: Sources,
    pub http: HttpSettings,
    pub mail: MailSettings,
    pub topics: BTreeMap<String, Topic>,
    /// The inline `[[subscribers]]` first, then those of `subscribers_file`.
    pub subscribers: Vec<Subscriber>,
    pub subscribers_file: Option<SubscribersFile>,
    pub alerts: Option<Alerts>,
    /// `[web]`: absent, digests carry no per-reader links and `serve` refuses to start.
    pub web: Option<WebSettings>,
}

/// The validated `[web]` table.
#[derive(Debug, Clone)]
pub struct WebSettings {
    /// The public URL every link starts with, without a trailing slash.
    pub base_url: String,
    pub listen: std::net::SocketAddr,
    /// Signs every link (HMAC-SHA256); at least 32 bytes.
    pub secret: Secret,
    /// Accepted when verifying only, during a rotation.
    pub previous_secrets: Vec<Secret>,
    /// Whether the public subscribe page is on.
    pub subscribe: bool,
    pub public_topics: bool,
    /// How long a subscription request waits for its confirmation.
    pub confirm_within: Duration,
}

/// The shortest signing secret accepted: HMAC-SHA256's own block of security.
pub const MIN_WEB_SECRET_BYTES: usize = 32;

/// The JSON Lines file named by `subscribers_file`, and how many subscribers came from it.
#[derive(Debug, Clone)]
pub struct SubscribersFile {
    /// Absolute (resolved against the config file's folder).
    pub path: PathBuf,
    pub count: usize,
}

#[derive(Debug, Clone)]
pub struct DigestSettings {
    pub max_papers: usize,
    pub lookback_days: u32,
    pub send_empty: bool,
    /// Absolute (resolved against the config file's folder).
    pub database: PathBuf,
    pub timezone: Tz,
    /// Cron expression with seconds, for `daemon`.
    pub schedule: String,
    pub templates: Option<PathBuf>,
    pub min_score: f64,
    pub trending_weight: f64,
    pub recency_weight: f64,
    /// The single-instance lock file; defaults to the database path plus `.lock`.
    pub lock_file: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct Sources {
    pub huggingface: Option<HuggingFaceSettings>,
    pub arxiv: Option<ArxivSettings>,
    pub feeds: Vec<FeedSettings>,
}

impl Sources {
    pub fn is_empty(&self) -> bool {
        self.huggingface.is_none() && self.arxiv.is_none() && self.feeds.is_empty()
    }
}

#[derive(Debug, Clone)]
pub struct HuggingFaceSettings {
    pub base_url: String,
}

#[derive(Debug, Clone)]
pub struct ArxivSettings {
    pub base_url: String,
    pub categories: Vec<String>,
    pub query: Option<String>,
    pub max_results: usize,
    pub page_size: usize,
    /// Gap between two requests to the same host (arXiv asks for 3 s).
    pub delay: Duration,
}

#[derive(Debug, Clone)]
pub struct FeedSettings {
    pub name: String,
    pub url: String,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub max_body_bytes: u64,
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub max_redirects: usize,
    pub user_agent: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    File,
    Smtp,
    Sendmail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone)]
pub struct MailSettings {
    pub from: Mailbox,
    pub reply_to: Option<Mailbox>,
    pub transport: TransportKind,
    pub list_id: String,
    pub unsubscribe_mailto: Option<String>,
    pub unsubscribe_url: Option<String>,
    pub file_dir: PathBuf,
    pub sendmail_command: PathBuf,
    pub smtp: Option<SmtpSettings>,
}

#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub concurrency: usize,
    pub rate_limit: Option<f64>,
    pub max_per_hour: Option<u32>,
    pub max_attempts: u32,
    /// For each command and for the greeting.
    pub timeout: Duration,
    /// For sending a message's content and waiting for the reply to its final dot.
    pub data_timeout: Duration,
    pub backoff_base: Duration,
    pub helo_name: Option<String>,
    /// PEM certificates trusted besides the system store and the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Run for the secret each time a transport is set up (tokens expire, so not at load).
    pub password_command: Option<PasswordCommand>,
    pub auth: SmtpAuth,
}

/// `mail.smtp.password_command`: run with `sh -c`, its standard output (without the
/// trailing newline) is the password or, with `auth = "xoauth2"`, the access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordCommand {
    pub command: String,
    /// The config file, for errors that name it.
    pub config: PathBuf,
}

impl PasswordCommand {
    /// Runs the command. Its output is never logged; a failure names the key and the exit
    /// status (and the command's last line of standard error, which carries no secret).
    pub fn run(&self) -> Result<Secret> {
        let fail = |message: String| error_at_key(&self.config, "mail.smtp.password_command", message);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| fail(format!("cannot run `sh -c {:?}`: {e}", self.command)))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said = stderr.lines().rev().find(|l| !l.trim().is_empty()).map(str::trim).unwrap_or_default();
            let said: String = said.chars().take(200).collect();
            let status = out.status.code().map_or_else(|| "a signal".to_string(), |c| format!("status {c}"));
            return Err(fail(format!(
                "`{}` exited with {status}{}",
                self.command,
                if said.is_empty() { String::new() } else { format!(": {said}") }
            )));
        }
        let secret = String::from_utf8(out.stdout)
            .map_err(|_| fail(format!("`{}` printed something that is not UTF-8", self.command)))?;
        let secret = secret.strip_suffix('\n').unwrap_or(&secret);
        let secret = secret.strip_suffix('\r').unwrap_or(secret);
        if secret.is_empty() {
            return Err(fail(format!(
                "`{}` printed nothing; expected the secret on standard output",
                self.command
            )));
        }
        Ok(Secret(secret.to_string()))
    }
}

impl SmtpSettings {
    /// These settings with the secret at hand: the `password_command` run now, if there is one.
    pub fn with_secret(&self) -> Result<SmtpSettings> {
        let mut s = self.clone();
        if s.password.is_none()
            && let Some(cmd) = &s.password_command
        {
            s.password = Some(cmd.run()?);
        }
        Ok(s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    pub name: String,
    pub keywords: Vec<String>,
    pub exclude: Vec<String>,
    pub require: Vec<String>,
    pub authors: Vec<String>,
    pub categories: Vec<String>,
    pub weight: f64,
    pub min_score: Option<f64>,
    pub like: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Subscriber {
    pub email: Mailbox,
    /// Lowercased address: the subscriber's key in the database.
    pub key: String,
    pub topics: Vec<String>,
    pub max_papers: usize,
    pub min_score: f64,
    pub trending_weight: f64,
    pub frequency: Frequency,
    pub weekday: Weekday,
    pub timezone: Tz,
}

#[derive(Debug, Clone)]
pub struct Alerts {
    pub email: Mailbox,
    pub after_failures: u32,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            line: None,
            column: None,
            key: None,
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!(
                    "no config file here; write one with `paper-digest init {}`, or name another with \
                     --config FILE or ${ENV_VAR}",
                    path.display()
                )
            } else {
                format!("cannot read the config file: {e}")
            },
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = std::path::absolute(&base).unwrap_or(base);
        Self::parse_with(&text, path, &base, &|name| std::env::var(name).ok())
    }

    /// Parses `text` as if it were the file `path`; relative paths resolve against `base`.
    /// `env` looks up environment variables (the SMTP password).
    pub fn parse_with(
        text: &str,
        path: &Path,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
        Validator { path, text, base, env }.validate(raw)
    }

    /// Parses `text` with relative paths against the current folder and the real environment.
    pub fn parse(text: &str) -> Result<Config> {
        Self::parse_with(text, Path::new("<config>"), Path::new("."), &|name| std::env::var(name).ok())
    }

    pub fn subscriber(&self, email: &str) -> Option<&Subscriber> {
        let key = email.trim().to_lowercase();
        self.subscribers.iter().find(|s| s.key == key)
    }
}

fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> Error {
    let (line, column) = match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start.min(text.len()));
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    // toml's message repeats the snippet on several lines; the first line says what is wrong.
    let mut message = plain_words(e.message().lines().next().unwrap_or("invalid TOML"));
    let key = key_at(text, line);
    if message.contains("unknown field `subscribers_file`") {
        // A top-level key written below a [table] header belongs to that table.
        message.push_str("; `subscribers_file` is a top-level key: move it above the first [table]");
    }
    Error::Config { path: path.to_path_buf(), line, column, key, message }
}

/// Serde names Rust types in its messages ("expected u32"); a config's reader wants words.
pub(crate) fn plain_words(message: &str) -> String {
    const WORDS: &[(&str, &str)] = &[
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number (0 or more)"),
        ("expected u64", "expected a whole number (0 or more)"),
        ("expected usize", "expected a whole number (0 or more)"),
        ("expected i64", "expected a whole number"),
        ("expected i32", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a sequence", "expected a list, e.g. [\"a\", \"b\"]"),
        ("expected a map", "expected a table"),
        ("expected struct ", "expected a table "),
        ("expected a borrowed string", "expected a string"),
        ("expected path string", "expected a path (a string)"),
        ("invalid type: sequence", "invalid type: list"),
        ("invalid type: map", "invalid type: table"),
        ("invalid type: integer", "invalid type: whole number"),
        ("invalid type: floating point", "invalid type: number"),
    ];
    let mut out = message.to_string();
    for (rust, words) in WORDS {
        // `expected u32` but not `expected u32s`-like prefixes of longer type names.
        let mut from = 0;
        while let Some(at) = out[from..].find(rust) {
            let at = from + at;
            let end = at + rust.len();
            if rust.ends_with(' ') || !out[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                out.replace_range(at..end, words);
                from = at + words.len();
            } else {
                from = end;
            }
        }
    }
    out
}

/// The byte span of a dotted key (`subscribers[2].email`, `topics.video.weight`) in the
/// config text: the value's when the key is written, else the nearest enclosing table's.
/// Checks made after parsing use it to give their line and column.
fn span_of(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    use toml::de::{DeTable, DeValue};
    let root = DeTable::parse(text).ok()?;
    let mut segments = Vec::new();
    for part in key.split('.') {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        segments.push((name, None));
        while let Some((index, after)) = rest.split_once(']') {
            if let Ok(i) = index.parse::<usize>() {
                segments.push(("", Some(i)));
            }
            rest = after.trim_start_matches('[');
        }
    }
    let mut found: Option<std::ops::Range<usize>> = None;
    let mut table = Some(root.get_ref());
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for (name, index) in segments {
        let value = match (index, table, array) {
            (Some(i), _, Some(items)) => items.get(i),
            (None, Some(t), _) => t.iter().find(|(k, _)| k.get_ref().as_ref() == name).map(|(_, v)| v),
            _ => None,
        };
        let Some(value) = value else { break };
        found = Some(value.span());
        (table, array) = match value.get_ref() {
            DeValue::Table(t) => (Some(t), None),
            DeValue::Array(a) => (None, Some(&a[..])),
            _ => (None, None),
        };
    }
    found
}

/// A config error found after loading (a database folder that cannot be written, a
/// password command that fails): it names the key and, read again from the file, where the
/// key is written.
pub fn error_at_key(config: &Path, key: &str, message: impl Into<String>) -> Error {
    let position = std::fs::read_to_string(config)
        .ok()
        .and_then(|text| span_of(&text, key).map(|span| line_column(&text, span.start)));
    Error::Config {
        path: config.to_path_buf(),
        line: position.map(|p| p.0),
        column: position.map(|p| p.1),
        key: Some(key.into()),
        message: message.into(),
    }
}

/// Line and column (from 1) of a byte offset in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.len(), |nl| before.len() - nl - 1) + 1;
    (line, column)
}

/// The dotted key of the line an error points at: the nearest `[table]` header plus the key.
fn key_at(text: &str, line: Option<usize>) -> Option<String> {
    let line = line?;
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = here.split_once('=').map(|(k, _)| k.trim().trim_matches('"').to_string());
    match (table, key) {
        (Some(t), Some(k)) if !here.starts_with('[') => Some(format!("{t}.{k}")),
        (None, Some(k)) => Some(k),
        (Some(t), _) => Some(t),
        (None, None) => None,
    }
}

struct Validator<'a> {
    path: &'a Path,
    /// The config text, to turn a key's span into a line.
    text: &'a str,
    base: &'a Path,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    /// A config error at `key`, with the line and column where the key is written (or the
    /// table that lacks it).
    fn err(&self, key: impl Into<String>, message: impl Into<String>) -> Error {
        let key = key.into();
        let (line, column) = match span_of(self.text, &key) {
            Some(span) => {
                let (line, column) = line_column(self.text, span.start);
                (Some(line), Some(column))
            }
            None => (None, None),
        };
        Error::Config { path: self.path.to_path_buf(), line, column, key: Some(key), message: message.into() }
    }

    fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    fn tz(&self, key: &str, name: &str) -> Result<Tz> {
        name.parse::<Tz>().map_err(|_| {
            self.err(
                key,
                format!(
                    "`{name}` is not an IANA time zone name (expected e.g. \"Europe/Berlin\" or \"UTC\")"
                ),
            )
        })
    }

    fn mailbox(&self, key: &str, value: &str) -> Result<Mailbox> {
        value.trim().parse::<Mailbox>().map_err(|e| {
            self.err(key, format!("`{value}` is not a valid email address ({e}); expected \"name@example.org\" or \"Name <name@example.org>\""))
        })
    }

    /// An http(s) URL, or a `file:` one for archived or air-gapped listings: `file:///abs/path`,
    /// or `file:` and a path relative to the config file's folder (`file:listings/cs.LG.rss`).
    fn url(&self, key: &str, value: &str) -> Result<String> {
        if let Some(path) = value.strip_prefix("file:").filter(|p| !p.starts_with("//")) {
            let path = self.resolve(Path::new(path));
            let path = std::path::absolute(&path).unwrap_or(path);
            return url::Url::from_file_path(&path)
                .map(|u| u.to_string().trim_end_matches('/').to_string())
                .map_err(|()| {
                    self.err(key, format!("`{value}`: {} is not an absolute path", path.display()))
                });
        }
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https" | "file") => {
                Ok(value.trim_end_matches('/').to_string())
            }
            Ok(u) => Err(self.err(
                key,
                format!(
                    "`{value}` uses the scheme `{}`; expected an http or https URL (or file: for a local listing)",
                    u.scheme()
                ),
            )),
            Err(e) => Err(self.err(key, format!("`{value}` is not a URL ({e})"))),
        }
    }

    fn positive(&self, key: &str, v: f64) -> Result<Duration> {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(self.err(key, format!("expected a number of seconds >= 0, got {v}")))
        }
    }

    #[allow(clippy::too_many_lines)]
    fn validate(&self, raw: RawConfig) -> Result<Config> {
        let d = raw.digest;
        if d.max_papers == 0 {
            return Err(self.err("digest.max_papers", "expected at least 1"));
        }
        if d.lookback_days == 0 || d.lookback_days > 60 {
            return Err(self.err("digest.lookback_days", "expected a number of days from 1 to 60"));
        }
        let timezone = self.tz("digest.timezone", &d.timezone)?;
        if let Err(e) = crate::cadence::parse_cron(&d.schedule) {
            return Err(self.err(
                "digest.schedule",
                format!(
                    "`{}` is not a cron expression with seconds ({e}); expected e.g. \"0 0 7 * * *\"",
                    d.schedule
                ),
            ));
        }
        let database = self.resolve(&d.database);
        let lock_file = d.lock_file.as_deref().map_or_else(
            || {
                let mut s = database.clone().into_os_string();
                s.push(".lock");
                PathBuf::from(s)
            },
            |p| self.resolve(p),
        );
        let templates = d.templates.as_deref().map(|p| self.resolve(p));
        if let Some(dir) = &templates
            && !dir.is_dir()
        {
            return Err(self.err(
                "digest.templates",
                format!(
                    "{} is not a folder; expected a folder of templates replacing the built-in ones (relative to the config file)",
                    dir.display()
                ),
            ));
        }
        let digest = DigestSettings {
            max_papers: d.max_papers,
            lookback_days: d.lookback_days,
            send_empty: d.send_empty,
            database,
            timezone,
            schedule: d.schedule,
            templates,
            min_score: d.min_score,
            trending_weight: d.trending_weight,
            recency_weight: d.recency_weight,
            lock_file,
        };

        let mut sources = Sources::default();
        if let Some(hf) = raw.sources.huggingface.filter(|h| h.enabled) {
            sources.huggingface = Some(HuggingFaceSettings {
                base_url: self.url("sources.huggingface.base_url", &hf.base_url)?,
            });
        }
        if let Some(ax) = raw.sources.arxiv.filter(|a| a.enabled) {
            if ax.categories.is_empty() && ax.query.is_none() {
                return Err(self.err(
                    "sources.arxiv.categories",
                    "give at least one category (e.g. [\"cs.CV\"]) or a `query`",
                ));
            }
            if ax.page_size == 0 || ax.page_size > 2000 {
                return Err(
                    self.err("sources.arxiv.page_size", "expected 1 to 2000 (arXiv's limit per request)")
                );
            }
            sources.arxiv = Some(ArxivSettings {
                base_url: self.url("sources.arxiv.base_url", &ax.base_url)?,
                categories: ax.categories,
                query: ax.query,
                max_results: ax.max_results,
                page_size: ax.page_size,
                delay: self.positive("sources.arxiv.delay_secs", ax.delay_secs)?,
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, f) in raw.sources.feeds.into_iter().enumerate() {
            let key = format!("sources.feeds[{i}]");
            if f.name.trim().is_empty() || matches!(f.name.as_str(), "huggingface" | "arxiv") {
                return Err(self.err(
                    format!("{key}.name"),
                    "expected a non-empty name other than `huggingface` or `arxiv`",
                ));
            }
            if !names.insert(f.name.clone()) {
                return Err(
                    self.err(format!("{key}.name"), format!("the feed name `{}` is used twice", f.name))
                );
            }
            let url = self.url(&format!("{key}.url"), &f.url)?;
            if f.enabled {
                sources.feeds.push(FeedSettings { name: f.name, url });
            }
        }

        let h = raw.http;
        if h.max_attempts == 0 {
            return Err(self.err("http.max_attempts", "expected at least 1"));
        }
        let http = HttpSettings {
            timeout: self.positive("http.timeout_secs", h.timeout_secs)?,
            connect_timeout: self.positive("http.connect_timeout_secs", h.connect_timeout_secs)?,
            max_body_bytes: h.max_body_bytes,
            max_attempts: h.max_attempts,
            backoff_base: Duration::from_millis(h.backoff_base_ms),
            backoff_max: self.positive("http.backoff_max_secs", h.backoff_max_secs)?,
            max_redirects: h.max_redirects,
            user_agent: h.user_agent.unwrap_or_else(|| {
                format!("paper-digest/{} (+https://crates.io/crates/paper-digest)", env!("CARGO_PKG_VERSION"))
            }),
        };

        let mail = self.mail(raw.mail)?;

        let mut topics = BTreeMap::new();
        for (name, t) in raw.topics {
            let key = format!("topics.{name}");
            if t.keywords.is_empty() && t.authors.is_empty() && t.categories.is_empty() && t.like.is_empty() {
                return Err(self.err(
                    key,
                    "a topic needs at least one of `keywords`, `authors`, `categories` or `like`",
                ));
            }
            if !(t.weight.is_finite() && t.weight > 0.0) {
                return Err(self.err(format!("{key}.weight"), "expected a number > 0"));
            }
            for (field, terms) in [
                ("keywords", &t.keywords),
                ("exclude", &t.exclude),
                ("require", &t.require),
                ("authors", &t.authors),
            ] {
                if let Some(i) = terms.iter().position(|s| s.trim().is_empty()) {
                    return Err(self.err(
                        format!("{key}.{field}[{i}]"),
                        "expected a word or phrase, got an empty string",
                    ));
                }
            }
            topics.insert(
                name.clone(),
                Topic {
                    name,
                    keywords: t.keywords,
                    exclude: t.exclude,
                    require: t.require,
                    authors: t.authors,
                    categories: t.categories,
                    weight: t.weight,
                    min_score: t.min_score,
                    like: t.like.iter().map(|id| liked_id(id)).collect(),
                },
            );
        }

        let mut list = SubscriberList::default();
        for (i, s) in raw.subscribers.into_iter().enumerate() {
            let key = format!("subscribers[{i}]");
            let sub = self.subscriber(&key, s, &topics, &digest)?;
            list.push(sub, Origin::Inline(i))
                .map_err(|twice| self.err(format!("{key}.email"), self.listed_twice(&twice)))?;
        }
        let subscribers_file = match raw.subscribers_file {
            Some(file) => Some(self.subscribers_file(&file, &mut list, &topics, &digest)?),
            None => None,
        };
        let subscribers = list.subscribers;
        let alerts = match raw.alerts {
            Some(a) => Some(Alerts {
                email: self.mailbox("alerts.email", &a.email)?,
                after_failures: a.after_failures.max(1),
            }),
            None => None,
        };

        let web = raw.web.as_ref().map(|w| self.web(w)).transpose()?;
        Ok(Config {
            path: self.path.to_path_buf(),
            digest,
            sources,
            http,
            mail,
            topics,
            subscribers,
            subscribers_file,
            alerts,
            web,
        })
    }

    /// Validates one subscriber, an inline table or a file line; `key` names it in errors.
    fn subscriber(
        &self,
        key: &str,
        s: RawSubscriber,
        topics: &BTreeMap<String, Topic>,
        digest: &DigestSettings,
    ) -> Result<Subscriber> {
        let mut email = self.mailbox(&format!("{key}.email"), &s.email)?;
        if email.name.is_none() {
            email.name.clone_from(&s.name);
        }
        for (j, t) in s.topics.iter().enumerate() {
            if !topics.contains_key(t) {
                let known: Vec<&str> = topics.keys().map(String::as_str).collect();
                return Err(self.err(
                    format!("{key}.topics[{j}]"),
                    format!("`{t}` is not a defined topic (defined: {}); add a [topics.{t}] table or fix the name", if known.is_empty() { "none".into() } else { known.join(", ") }),
                ));
            }
        }
        let weekday = match s.weekday.as_deref() {
            None => Weekday::Mon,
            Some(w) => w.parse::<Weekday>().map_err(|_| {
                self.err(
                    format!("{key}.weekday"),
                    format!("`{w}` is not a weekday (expected e.g. \"monday\" or \"mon\")"),
                )
            })?,
        };
        if s.weekday.is_some() && s.frequency != Frequency::Weekly {
            return Err(self.err(format!("{key}.weekday"), "only meaningful with frequency = \"weekly\""));
        }
        let timezone = match s.timezone.as_deref() {
            Some(tz) => self.tz(&format!("{key}.timezone"), tz)?,
            None => digest.timezone,
        };
        let mut followed = s.topics;
        // serde makes room for 4 topics at least; 100,000 subscribers would keep every spare slot.
        followed.shrink_to_fit();
        Ok(Subscriber {
            key: email.email.to_string().to_lowercase(),
            email,
            topics: followed,
            max_papers: s.max_papers.unwrap_or(digest.max_papers).max(1),
            min_score: s.min_score.unwrap_or(digest.min_score),
            trending_weight: s.trending_weight.unwrap_or(digest.trending_weight),
            frequency: s.frequency,
            weekday,
            timezone,
        })
    }

    /// The message for an address listed a second time, naming where it was listed first.
    fn listed_twice(&self, twice: &Twice) -> String {
        let addr = &twice.addr;
        match twice.first {
            Origin::Inline(i) => {
                format!("{addr} is listed twice (first as subscribers[{i}] in {})", self.path.display())
            }
            Origin::Line(line) => format!("{addr} is listed twice (first on line {line})"),
        }
    }

    /// Reads the `subscribers_file` line by line into `list`, after the inline subscribers.
    fn subscribers_file(
        &self,
        file: &toml::Spanned<PathBuf>,
        list: &mut SubscriberList,
        topics: &BTreeMap<String, Topic>,
        digest: &DigestSettings,
    ) -> Result<SubscribersFile> {
        let path = self.resolve(file.get_ref());
        let opened = std::fs::File::open(&path).map_err(|e| Error::Config {
            path: self.path.to_path_buf(),
            line: Some(line_of(self.text, file.span().start)),
            column: None,
            key: Some("subscribers_file".into()),
            message: format!(
                "cannot open {}: {e}; expected a JSON Lines file of subscribers (relative paths start at the config file's folder)",
                path.display()
            ),
        })?;
        let before = list.subscribers.len();
        read_jsonl(std::io::BufReader::new(opened), &path, |n, line, raw| {
            let key = format!("subscribers[{n}]");
            let sub = self.subscriber(&key, raw, topics, digest).map_err(|e| relocate(e, &path, line))?;
            list.push(sub, Origin::Line(line)).map_err(|twice| {
                relocate(self.err(format!("{key}.email"), self.listed_twice(&twice)), &path, line)
            })
        })?;
        Ok(SubscribersFile { path, count: list.subscribers.len() - before })
    }

    fn mail(&self, m: RawMail) -> Result<MailSettings> {
        let from = self.mailbox("mail.from", &m.from)?;
        let reply_to = m.reply_to.as_deref().map(|r| self.mailbox("mail.reply_to", r)).transpose()?;
        if let Some(u) = &m.unsubscribe_url
            && !u.starts_with("https://")
        {
            return Err(self.err(
                "mail.unsubscribe_url",
                format!("`{u}` must be an https URL (RFC 8058 one-click unsubscribe)"),
            ));
        }
        // These go into headers verbatim (List-Id, List-Unsubscribe): refuse what would break them
        // here, with exit 78, rather than failing every subscriber at send time.
        for (key, value) in [
            ("mail.list_id", m.list_id.as_deref()),
            ("mail.unsubscribe_mailto", m.unsubscribe_mailto.as_deref()),
            ("mail.unsubscribe_url", m.unsubscribe_url.as_deref()),
        ] {
            if let Some(v) = value
                && (v.is_empty() || v.chars().any(|c| !c.is_ascii_graphic() || matches!(c, '<' | '>' | ',')))
            {
                return Err(
                    self.err(key, format!("`{v}` must be printable ASCII without spaces, `<`, `>` or `,`"))
                );
            }
        }
        let domain = from.email.domain().to_string();
        let list_id = m.list_id.unwrap_or_else(|| format!("paper-digest.{domain}"));
        if !is_list_id(&list_id) {
            return Err(self.err(
                "mail.list_id",
                format!(
                    "`{list_id}` must look like a domain name (letters, digits, `.`, `-`, `_`, at least one `.`), \
                     e.g. digest.example.org (without it, it is paper-digest. and the domain of mail.from)"
                ),
            ));
        }
        let unsubscribe_mailto =
            m.unsubscribe_mailto.or_else(|| Some(format!("{}?subject=unsubscribe", from.email)));
        let smtp = match (m.transport, m.smtp) {
            (TransportKind::Smtp, None) => {
                return Err(self.err(
                    "mail.smtp",
                    "transport = \"smtp\" needs a [mail.smtp] table with at least `host`",
                ));
            }
            (_, Some(s)) => Some(self.smtp(s, m.transport == TransportKind::Smtp)?),
            (_, None) => None,
        };
        Ok(MailSettings {
            from,
            reply_to,
            transport: m.transport,
            list_id,
            unsubscribe_mailto,
            unsubscribe_url: m.unsubscribe_url,
            file_dir: self.resolve(&m.file.map_or_else(outbox, |f| f.dir)),
            sendmail_command: m.sendmail.map_or_else(sendmail_cmd, |s| s.command),
            smtp,
        })
    }

    fn smtp(&self, s: RawSmtp, in_use: bool) -> Result<SmtpSettings> {
        let sources = [
            s.password_env.is_some(),
            s.password_file.is_some(),
            s.password_credential.is_some(),
            s.password_command.is_some(),
        ];
        if sources.iter().filter(|b| **b).count() > 1 {
            return Err(self.err(
                "mail.smtp",
                "give only one of `password_env`, `password_file`, `password_credential`, `password_command`",
            ));
        }
        if s.auth == SmtpAuth::Xoauth2 && (s.username.is_none() || !sources.iter().any(|b| *b)) {
            return Err(self.err(
                "mail.smtp.auth",
                "\"xoauth2\" needs `username` (the mailbox) and the access token, usually from \
                 `password_command` (e.g. \"oama access digest@example.org\")",
            ));
        }
        if let Some(cmd) = &s.password_command
            && cmd.trim().is_empty()
        {
            return Err(
                self.err("mail.smtp.password_command", "expected a shell command, got an empty string")
            );
        }
        if s.security == Security::None && !is_loopback(&s.host) && !s.allow_insecure {
            return Err(self.err(
                "mail.smtp.security",
                format!("\"none\" sends the password and the mail in clear text to {}; use \"starttls\" or \"tls\", or set allow_insecure = true", s.host),
            ));
        }
        if s.concurrency == 0 || s.max_attempts == 0 {
            return Err(self.err("mail.smtp.concurrency", "concurrency and max_attempts must be at least 1"));
        }
        if let Some(r) = s.rate_limit
            && !(r.is_finite() && r > 0.0)
        {
            return Err(self.err("mail.smtp.rate_limit", "expected messages per second > 0"));
        }
        // Secrets are only read for the transport actually in use: a file-transport config
        // with a [mail.smtp] table kept for later must not fail on a missing variable.
        let password = if in_use { self.password(&s)? } else { None };
        if in_use && s.username.is_some() && password.is_none() && s.password_command.is_none() {
            return Err(self.err(
                "mail.smtp.username",
                "a username needs a password: set `password_env`, `password_file`, `password_credential` or `password_command`",
            ));
        }
        let ca_file = self.ca_file(s.ca_file.as_deref())?;
        let port = s.port.unwrap_or(match s.security {
            Security::Tls => 465,
            Security::Starttls => 587,
            Security::None => 25,
        });
        Ok(SmtpSettings {
            host: s.host,
            port,
            security: s.security,
            username: s.username,
            password,
            concurrency: s.concurrency,
            rate_limit: s.rate_limit,
            max_per_hour: s.max_per_hour,
            max_attempts: s.max_attempts,
            timeout: self.positive("mail.smtp.timeout_secs", s.timeout_secs)?,
            data_timeout: self.positive("mail.smtp.data_timeout_secs", s.data_timeout_secs)?,
            backoff_base: Duration::from_millis(s.backoff_base_ms),
            helo_name: s.helo_name,
            ca_file,
            password_command: s
                .password_command
                .map(|command| PasswordCommand { command, config: self.path.to_path_buf() }),
            auth: s.auth,
        })
    }

    /// The `ca_file`, resolved next to the config, once it is known to hold a certificate.
    fn ca_file(&self, file: Option<&Path>) -> Result<Option<PathBuf>> {
        let Some(file) = file else { return Ok(None) };
        let path = self.resolve(file);
        let pem = std::fs::read(&path)
            .map_err(|e| self.err("mail.smtp.ca_file", format!("cannot read {}: {e}", path.display())))?;
        match crate::mail::pem_certificates(&pem) {
            Ok(0) => Err(self.err(
                "mail.smtp.ca_file",
                format!(
                    "{} holds no certificate; expected PEM (-----BEGIN CERTIFICATE-----)",
                    path.display()
                ),
            )),
            Ok(_) => Ok(Some(path)),
            Err(e) => Err(self.err("mail.smtp.ca_file", format!("{}: {e}", path.display()))),
        }
    }

    fn web(&self, w: &RawWeb) -> Result<WebSettings> {
        let url = url::Url::parse(&w.base_url)
            .map_err(|e| self.err("web.base_url", format!("`{}` is not a URL ({e})", w.base_url)))?;
        let loopback = match url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(self.err(
                    "web.base_url",
                    format!("`{}` must be https (plain http only for 127.0.0.1 or localhost): links carry sign-in-like tokens", w.base_url),
                ));
            }
            other => {
                return Err(self.err(
                    "web.base_url",
                    format!("`{}` uses the scheme `{other}`; expected an https URL", w.base_url),
                ));
            }
        }
        if url.query().is_some() || url.fragment().is_some() || url.host().is_none() {
            return Err(self.err(
                "web.base_url",
                format!("`{}` must be a plain https URL without a query or fragment, e.g. \"https://digest.example.org\"", w.base_url),
            ));
        }
        let base_url = url.as_str().trim_end_matches('/').to_string();
        let listen = w.listen.parse().map_err(|_| {
            self.err(
                "web.listen",
                format!("`{}` is not an address and port (expected e.g. \"127.0.0.1:8080\")", w.listen),
            )
        })?;
        let secret = self
            .secret("web.secret", w.secret_env.as_deref(), w.secret_file.as_deref(), w.secret_credential.as_deref())?
            .ok_or_else(|| {
                self.err("web", "a signing secret is needed: set `secret_env`, `secret_file` or `secret_credential` (at least 32 random bytes, e.g. `openssl rand -base64 48`)")
            })?;
        let mut previous_secrets = Vec::new();
        if let Some(old) = self.secret(
            "web.previous_secret",
            w.previous_secret_env.as_deref(),
            w.previous_secret_file.as_deref(),
            None,
        )? {
            previous_secrets.push(old);
        }
        if w.confirm_hours == 0 {
            return Err(self.err("web.confirm_hours", "expected at least 1 hour"));
        }
        Ok(WebSettings {
            base_url,
            listen,
            secret,
            previous_secrets,
            subscribe: w.subscribe,
            public_topics: w.public_topics,
            confirm_within: Duration::from_secs(u64::from(w.confirm_hours) * 3600),
        })
    }

    /// A secret named by `{prefix}_env`, `{prefix}_file` or `{prefix}_credential`, with the
    /// rules of the SMTP password; `None` when none is set. Web secrets must be long enough
    /// to sign with.
    fn secret(
        &self,
        prefix: &str,
        env: Option<&str>,
        file: Option<&Path>,
        credential: Option<&str>,
    ) -> Result<Option<Secret>> {
        if [env.is_some(), file.is_some(), credential.is_some()].iter().filter(|s| **s).count() > 1 {
            return Err(self.err(
                prefix,
                format!("give only one of `{p}_env`, `{p}_file`, `{p}_credential`", p = key_tail(prefix)),
            ));
        }
        let (key, value) = if let Some(var) = env {
            let key = format!("{prefix}_env");
            match (self.env)(var) {
                Some(v) if !v.is_empty() => (key, v),
                _ => {
                    return Err(self.err(
                        key,
                        format!("the environment variable {var} is not set; export it or use a file"),
                    ));
                }
            }
        } else {
            let (key, path) = if let Some(name) = credential {
                let key = format!("{prefix}_credential");
                let dir = (self.env)("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    self.err(&key, "$CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential= or use a file")
                })?;
                (key, PathBuf::from(dir).join(name))
            } else if let Some(p) = file {
                (format!("{prefix}_file"), self.resolve(p))
            } else {
                return Ok(None);
            };
            check_private(&path).map_err(|m| self.err(&key, m))?;
            let text = std::fs::read_to_string(&path)
                .map_err(|e| self.err(&key, format!("cannot read {}: {e}", path.display())))?;
            (key, text.trim_end_matches(['\r', '\n']).to_string())
        };
        if value.len() < MIN_WEB_SECRET_BYTES {
            return Err(self.err(
                key,
                format!(
                    "the secret has {} bytes; expected at least {MIN_WEB_SECRET_BYTES} (e.g. `openssl rand -base64 48`)",
                    value.len()
                ),
            ));
        }
        Ok(Some(Secret(value)))
    }

    fn password(&self, s: &RawSmtp) -> Result<Option<Secret>> {
        if let Some(var) = &s.password_env {
            return match (self.env)(var) {
                Some(v) if !v.is_empty() => Ok(Some(Secret(v))),
                _ => Err(self.err(
                    "mail.smtp.password_env",
                    format!("the environment variable {var} is not set; export it or use `password_file`"),
                )),
            };
        }
        let file = if let Some(name) = &s.password_credential {
            let dir = (self.env)("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                self.err("mail.smtp.password_credential", "$CREDENTIALS_DIRECTORY is not set; run under systemd with LoadCredential= or use `password_file`")
            })?;
            PathBuf::from(dir).join(name)
        } else if let Some(p) = &s.password_file {
            self.resolve(p)
        } else {
            return Ok(None);
        };
        let key = if s.password_credential.is_some() {
            "mail.smtp.password_credential"
        } else {
            "mail.smtp.password_file"
        };
        check_private(&file).map_err(|m| self.err(key, m))?;
        let text = std::fs::read_to_string(&file)
            .map_err(|e| self.err(key, format!("cannot read {}: {e}", file.display())))?;
        let pw = text.trim_end_matches(['\r', '\n']).to_string();
        if pw.is_empty() {
            return Err(self.err(key, format!("{} is empty", file.display())));
        }
        Ok(Some(Secret(pw)))
    }
}

/// Where a subscriber was listed: the duplicate-address error names the first place.
#[derive(Debug, Clone, Copy)]
enum Origin {
    /// `[[subscribers]]` number i (from 0) in the config file.
    Inline(usize),
    /// A line (from 1) of the `subscribers_file`.
    Line(usize),
}

/// An address listed a second time, and where it was listed first.
struct Twice {
    addr: String,
    first: Origin,
}

/// The validated subscribers so far, and where each was listed.
#[derive(Default)]
struct SubscriberList {
    subscribers: Vec<Subscriber>,
    origins: Vec<Origin>,
    /// Hashes of the addresses so far. A hit is confirmed against the list itself, so a
    /// list of 100,000 does not hold a second copy of every address while it loads.
    hashes: HashSet<u64>,
    hasher: RandomState,
}

impl SubscriberList {
    fn push(&mut self, sub: Subscriber, origin: Origin) -> std::result::Result<(), Twice> {
        if !self.hashes.insert(self.hasher.hash_one(&sub.key))
            && let Some(i) = self.subscribers.iter().position(|s| s.key == sub.key)
        {
            return Err(Twice { addr: sub.key, first: self.origins[i] });
        }
        self.subscribers.push(sub);
        self.origins.push(origin);
        Ok(())
    }
}

/// A subscriber line may hold a few hundred topics, but not a whole file: a JSON array
/// or a file without newlines is refused here instead of being read into memory.
const MAX_LINE: u64 = 64 * 1024;

/// Reads subscribers from JSON Lines, one line at a time: one JSON object per line; blank
/// lines and lines starting with `#` are skipped. Calls `each(n, line, subscriber)` with the
/// subscriber's number in the file (from 0) and its line (from 1). Errors name `path`, the
/// line, and the field when one is at fault.
fn read_jsonl(
    mut reader: impl BufRead,
    path: &Path,
    mut each: impl FnMut(usize, usize, RawSubscriber) -> Result<()>,
) -> Result<()> {
    let at = |line: usize, column: Option<usize>, key: Option<String>, message: String| Error::Config {
        path: path.to_path_buf(),
        line: Some(line),
        column,
        key,
        message,
    };
    let mut buf = String::new();
    let (mut n, mut line) = (0, 0);
    loop {
        line += 1;
        buf.clear();
        let read = reader.by_ref().take(MAX_LINE).read_line(&mut buf).map_err(|e| {
            let message = if e.kind() == std::io::ErrorKind::InvalidData {
                "not valid UTF-8; expected a UTF-8 JSON Lines file".to_string()
            } else {
                format!("cannot read: {e}")
            };
            at(line, None, None, message)
        })?;
        if read == 0 {
            return Ok(());
        }
        if read as u64 == MAX_LINE && !buf.ends_with('\n') {
            return Err(at(
                line,
                None,
                None,
                format!("line longer than {MAX_LINE} bytes; expected one JSON object per line"),
            ));
        }
        let text = buf.trim_end_matches(['\n', '\r']);
        let text = if line == 1 { text.trim_start_matches('\u{feff}') } else { text };
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // serde would also take a JSON array as the fields in order: only objects are subscribers.
        if !trimmed.starts_with('{') {
            let array =
                if trimmed.starts_with('[') { " (one object per line, not a JSON array)" } else { "" };
            return Err(at(
                line,
                Some(text.len() - trimmed.len() + 1),
                Some(format!("subscribers[{n}]")),
                format!("expected a JSON object such as {{\"email\": \"name@example.org\"}}{array}"),
            ));
        }
        let raw = serde_json::from_str::<RawSubscriber>(text).map_err(|e| {
            let key = format!("subscribers[{n}]");
            let key = match faulty_field(text) {
                Some(field) => format!("{key}.{field}"),
                None => key,
            };
            // serde_json ends its message with "at line 1 column N": the column is kept apart.
            let full = e.to_string();
            let suffix = format!(" at line {} column {}", e.line(), e.column());
            let message = plain_words(full.strip_suffix(&suffix).unwrap_or(&full));
            at(line, Some(e.column()), Some(key), message)
        })?;
        each(n, line, raw)?;
        n += 1;
    }
}

/// The field of a subscriber line that a type or unknown-field error is about: the first
/// one that fails on its own beside a valid `email`. `None` when the line is not a JSON
/// object or no single field is at fault (a missing `email`).
fn faulty_field(line: &str) -> Option<String> {
    let serde_json::Value::Object(fields) = serde_json::from_str(line).ok()? else {
        return None;
    };
    fields.into_iter().find_map(|(name, value)| {
        let mut probe = serde_json::Map::new();
        probe.insert("email".into(), "probe@example.org".into());
        probe.insert(name.clone(), value);
        serde_json::from_value::<RawSubscriber>(probe.into()).is_err().then_some(name)
    })
}

/// Moves a config error to a line of another file (the `subscribers_file`).
fn relocate(e: Error, file: &Path, line: usize) -> Error {
    match e {
        Error::Config { key, message, .. } => {
            Error::Config { path: file.to_path_buf(), line: Some(line), column: None, key, message }
        }
        other => other,
    }
}

/// The line (from 1) of a byte offset in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// `web.secret` → `secret`: the field name's stem for messages.
fn key_tail(prefix: &str) -> &str {
    prefix.rsplit('.').next().unwrap_or(prefix)
}

/// A password file readable by group or others is refused, the way ssh refuses keys.
fn check_private(path: &Path) -> std::result::Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{} is readable by others (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            ));
        }
    }
    Ok(())
}

/// Finds the config file: `--config`, else `$PAPER_DIGEST_CONFIG`, else `./paper-digest.toml`.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

/// Whether a `List-Id` passes the check the message builder applies (`mail::message`), so
/// that a value accepted here cannot make every message fail at send time.
fn is_list_id(id: &str) -> bool {
    !id.is_empty()
        && id.contains('.')
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

/// A `like` entry in the form papers are stored under: an arXiv id in any form (`arXiv:`,
/// `oai:arXiv.org:`, an abs/pdf URL, old style, with a version) becomes the bare id, a DOI
/// `doi:` and the lowercased DOI; anything else is kept as written.
fn liked_id(id: &str) -> String {
    crate::source::ids::normalize_arxiv(id)
        .or_else(|| crate::source::ids::normalize_doi(id).map(|doi| format!("doi:{doi}")))
        .unwrap_or_else(|| id.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liked_ids_in_every_arxiv_form_are_stored_as_the_bare_id() {
        let text = format!(
            "{MINIMAL}\n[topics.x]\nlike = [\"https://arxiv.org/abs/2405.12345v2\", \"oai:arXiv.org:hep-th/9901001\", \"arXiv:2405.12345\", \"https://doi.org/10.1000/XYZ\"]\n"
        );
        let c = parse(&text).unwrap();
        assert_eq!(c.topics["x"].like, ["2405.12345", "hep-th/9901001", "2405.12345", "doi:10.1000/xyz"]);
    }

    #[test]
    fn a_list_id_the_message_builder_would_refuse_is_refused_at_load() {
        for bad in ["digest", "a+b.example.org", "d!gest.example.org"] {
            let text = format!("[mail]\nfrom = \"a@b.org\"\nlist_id = \"{bad}\"\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.starts_with("t.toml:3:") && e.contains("mail.list_id"), "{e}");
        }
        let ok = parse("[mail]\nfrom = \"a@b.org\"\nlist_id = \"papers.example.org\"\n").unwrap();
        assert_eq!(ok.mail.list_id, "papers.example.org");
    }

    const MINIMAL: &str = r#"
[mail]
from = "Paper Digest <digest@example.org>"
"#;

    fn parse(text: &str) -> Result<Config> {
        Config::parse_with(text, Path::new("t.toml"), Path::new("/base"), &|_| None)
    }

    #[test]
    fn minimal_config_gets_documented_defaults() {
        let c = parse(MINIMAL).unwrap();
        assert_eq!(c.digest.max_papers, 10);
        assert_eq!(c.digest.lookback_days, 3);
        assert!(!c.digest.send_empty);
        assert_eq!(c.digest.database, PathBuf::from("/base/paper-digest.sqlite3"));
        assert_eq!(c.mail.transport, TransportKind::File);
        assert_eq!(c.mail.file_dir, PathBuf::from("/base/outbox"));
    }

    #[test]
    fn misspelled_key_is_named_with_line_and_column() {
        let text = "[digest]\nmax_paper = 3\n[mail]\nfrom = \"a@b.org\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:2:1: key `digest.max_paper`"), "{e}");
        assert!(e.contains("unknown field"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let text = "[digest]\nmax_papers = \"ten\"\n[mail]\nfrom = \"a@b.org\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("digest.max_papers"), "{e}");
    }

    #[test]
    fn undefined_topic_is_refused() {
        let text = format!("{MINIMAL}\n[[subscribers]]\nemail = \"x@y.org\"\ntopics = [\"nope\"]\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("subscribers[0].topics[0]") && e.contains("`nope` is not a defined topic"), "{e}");
    }

    #[test]
    fn invalid_address_is_refused() {
        let text = format!("{MINIMAL}\n[[subscribers]]\nemail = \"not an address\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("subscribers[0].email") && e.contains("not a valid email address"), "{e}");
    }

    #[test]
    fn missing_password_variable_is_a_config_error() {
        let text = r#"
[mail]
from = "a@example.org"
transport = "smtp"
[mail.smtp]
host = "smtp.example.org"
username = "a@example.org"
password_env = "NOPE_PASSWORD"
"#;
        let e = parse(text).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(e.to_string().contains("NOPE_PASSWORD is not set"), "{e}");
    }

    #[test]
    fn password_never_shows_in_debug_output() {
        let text = r#"
[mail]
from = "a@example.org"
transport = "smtp"
[mail.smtp]
host = "smtp.example.org"
username = "a@example.org"
password_env = "PW"
"#;
        let c =
            Config::parse_with(text, Path::new("t.toml"), Path::new("/"), &|_| Some("hunter2-secret".into()))
                .unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2-secret"));
        assert_eq!(c.mail.smtp.unwrap().password.unwrap().expose(), "hunter2-secret");
    }

    #[test]
    fn plaintext_smtp_to_a_remote_host_is_refused() {
        let text = "[mail]\nfrom = \"a@b.org\"\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"mail.example.org\"\nsecurity = \"none\"\n";
        let e = parse(text).unwrap_err().to_string();
        assert!(e.contains("mail.smtp.security"), "{e}");
    }

    #[test]
    fn only_loopback_literals_and_localhost_count_as_local() {
        for local in ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "[::1]"] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in [
            "127.0.0.1.evil.example",
            "localhost.evil.example",
            "127.example",
            "128.0.0.1",
            "::2",
            "10.0.0.1",
            "",
        ] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_name_under_a_loopback_prefix_is_never_local(label in "[a-z][a-z0-9-]{0,20}") {
            let host = format!("127.0.0.1.{label}");
            proptest::prop_assert!(!is_loopback(&host));
            let host = format!("localhost.{label}");
            proptest::prop_assert!(!is_loopback(&host));
        }

        #[test]
        fn every_address_in_127_slash_8_is_local(b in 0u8.., c in 0u8.., d in 0u8..) {
            let host = format!("127.{b}.{c}.{d}");
            proptest::prop_assert!(is_loopback(&host));
        }
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_a_config_error_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let text = "[mail]\nfrom = \"a@b.org\"\ntransport = \"smtp\"\n[mail.smtp]\nhost = \"mail.example.org\"\nca_file = \"ca.pem\"\n";
        let e = Config::parse_with(text, &dir.path().join("c.toml"), dir.path(), &|_| None).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        assert!(
            e.to_string().contains("mail.smtp.ca_file") && e.to_string().contains("no certificate"),
            "{e}"
        );
        let missing = text.replace("ca.pem", "nope.pem");
        let e = Config::parse_with(&missing, &dir.path().join("c.toml"), dir.path(), &|_| None).unwrap_err();
        assert!(e.to_string().contains("nope.pem"), "{e}");
    }

    /// Parses `config` with `list` written to `subs.jsonl` in a fresh folder (the config's).
    fn with_list(config: &str, list: &str) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("subs.jsonl"), list).unwrap();
        Config::parse_with(config, Path::new("t.toml"), dir.path(), &|_| None)
    }

    /// Runs `read_jsonl` over `text`, collecting (number, line, email).
    fn read(text: &str) -> Result<Vec<(usize, usize, String)>> {
        let mut got = Vec::new();
        read_jsonl(text.as_bytes(), Path::new("s.jsonl"), |n, line, raw| {
            got.push((n, line, raw.email));
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn a_file_subscriber_gets_the_same_defaults_and_checks_as_an_inline_one() {
        let head = "[digest]\nmax_papers = 7\ntimezone = \"Europe/Berlin\"\n[mail]\nfrom = \"a@b.org\"\n[topics.x]\nkeywords = [\"x\"]\n";
        let inline = parse(&format!(
            "{head}[[subscribers]]\nemail = \"Ann@X.org\"\nname = \"Ann\"\ntopics = [\"x\"]\nfrequency = \"weekly\"\nweekday = \"fri\"\n[[subscribers]]\nemail = \"bo@x.org\"\n"
        ))
        .unwrap();
        let list = "{\"email\": \"Ann@X.org\", \"name\": \"Ann\", \"topics\": [\"x\"], \"frequency\": \"weekly\", \"weekday\": \"fri\"}\n{\"email\": \"bo@x.org\"}\n";
        let file = with_list(&format!("subscribers_file = \"subs.jsonl\"\n{head}"), list).unwrap();
        assert_eq!(format!("{:?}", file.subscribers), format!("{:?}", inline.subscribers));
        assert_eq!(file.subscribers[0].key, "ann@x.org");
        assert_eq!(file.subscribers[1].max_papers, 7);
        assert_eq!(file.subscribers_file.as_ref().map(|f| f.count), Some(2));
        assert!(inline.subscribers_file.is_none());
    }

    #[test]
    fn blank_and_comment_lines_are_skipped_but_still_counted() {
        let got = read(
            "# list\n\n{\"email\":\"a@b.org\"}\r\n   \n  # {\"email\":\"no@b.org\"}\n{\"email\":\"c@d.org\"}",
        )
        .unwrap();
        assert_eq!(got, [(0, 3, "a@b.org".into()), (1, 6, "c@d.org".into())]);
        assert!(read("").unwrap().is_empty());
        assert_eq!(read("\u{feff}{\"email\":\"a@b.org\"}\n").unwrap().len(), 1, "a BOM is not an error");
    }

    #[test]
    fn a_wrong_type_in_a_line_names_the_field_and_the_column() {
        let e =
            read("{\"email\":\"a@b.org\"}\n{\"email\":\"c@d.org\",\"max_papers\":\"ten\"}\n").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        let e = e.to_string();
        assert!(
            e.starts_with("s.jsonl:2:37: key `subscribers[1].max_papers`: invalid type: string \"ten\""),
            "{e}"
        );
        assert!(!e.contains("at line 1"), "serde_json's own position is not repeated: {e}");
    }

    #[test]
    fn a_line_that_is_not_an_object_is_refused() {
        let e = read("[\"a@b.org\", \"Ann\"]\n").unwrap_err().to_string();
        assert!(e.starts_with("s.jsonl:1:1: key `subscribers[0]`: expected a JSON object"), "{e}");
        assert!(e.contains("not a JSON array"), "{e}");
    }

    #[test]
    fn an_endless_line_is_refused_without_reading_it_whole() {
        let endless = std::io::repeat(b' ');
        let e = read_jsonl(std::io::BufReader::new(endless), Path::new("s.jsonl"), |_, _, _| Ok(()))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("s.jsonl:1: line longer than 65536 bytes"), "{e}");
    }

    #[test]
    fn an_empty_subscribers_file_adds_nobody() {
        let c = with_list(&format!("subscribers_file = \"subs.jsonl\"\n{MINIMAL}"), "").unwrap();
        assert!(c.subscribers.is_empty());
        assert_eq!(c.subscribers_file.map(|f| f.count), Some(0));
    }

    #[test]
    fn subscribers_file_below_a_table_is_said_to_be_a_top_level_key() {
        let e = parse(&format!("{MINIMAL}subscribers_file = \"subs.jsonl\"\n")).unwrap_err().to_string();
        assert!(e.contains("key `mail.subscribers_file`"), "{e}");
        assert!(e.contains("move it above the first [table]"), "{e}");
    }

    #[test]
    fn an_address_listed_twice_inline_names_the_first_one() {
        let text =
            format!("{MINIMAL}[[subscribers]]\nemail = \"a@b.org\"\n[[subscribers]]\nemail = \"A@B.org\"\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains(
                "key `subscribers[1].email`: a@b.org is listed twice (first as subscribers[0] in t.toml)"
            ),
            "{e}"
        );
    }

    fn with_web(web: &str, env: &[(&str, &str)]) -> Result<Config> {
        let text = format!("[mail]\nfrom = \"digest@example.org\"\n[web]\n{web}\n");
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        Config::parse_with(&text, Path::new("c.toml"), Path::new("."), &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    const LONG: &str = "0123456789abcdef0123456789abcdef!";

    #[test]
    fn a_web_table_gets_its_defaults_and_keeps_the_secret_out_of_debug_output() {
        let c = with_web("base_url = \"https://digest.example.org/\"\nsecret_env = \"S\"", &[("S", LONG)])
            .unwrap();
        let w = c.web.unwrap();
        assert_eq!(w.base_url, "https://digest.example.org");
        assert_eq!(w.listen.to_string(), "127.0.0.1:8080");
        assert!(w.subscribe && !w.public_topics);
        assert_eq!(w.confirm_within, Duration::from_secs(48 * 3600));
        assert!(!format!("{w:?}").contains("0123456789"));
        assert!(Config::parse("[mail]\nfrom = \"digest@example.org\"").unwrap().web.is_none());
    }

    #[test]
    fn web_links_must_be_https_except_on_loopback() {
        let err = with_web("base_url = \"http://digest.example.org\"\nsecret_env = \"S\"", &[("S", LONG)])
            .unwrap_err();
        assert!(err.to_string().contains("web.base_url") && err.to_string().contains("https"), "{err}");
        assert!(with_web("base_url = \"http://127.0.0.1:8080\"\nsecret_env = \"S\"", &[("S", LONG)]).is_ok());
        assert!(with_web("base_url = \"http://localhost:8080\"\nsecret_env = \"S\"", &[("S", LONG)]).is_ok());
        let err =
            with_web("base_url = \"https://x.org/?a=1\"\nsecret_env = \"S\"", &[("S", LONG)]).unwrap_err();
        assert!(err.to_string().contains("query"), "{err}");
    }

    #[test]
    fn a_web_secret_shorter_than_32_bytes_or_missing_is_refused_naming_the_key() {
        let err =
            with_web("base_url = \"https://x.org\"\nsecret_env = \"S\"", &[("S", "short")]).unwrap_err();
        assert!(err.to_string().contains("web.secret_env") && err.to_string().contains("32"), "{err}");
        assert!(!err.to_string().contains("short"), "the secret itself is never shown: {err}");
        let err = with_web("base_url = \"https://x.org\"", &[]).unwrap_err();
        assert!(err.to_string().contains("secret_env"), "{err}");
        let err =
            with_web("base_url = \"https://x.org\"\nsecret_env = \"S\"\nsecret_file = \"f\"", &[("S", LONG)])
                .unwrap_err();
        assert!(err.to_string().contains("only one of"), "{err}");
        let err =
            with_web("base_url = \"https://x.org\"\nsecret_env = \"S\"\nlisten = \"8080\"", &[("S", LONG)])
                .unwrap_err();
        assert!(err.to_string().contains("web.listen"), "{err}");
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../config/example.toml");
        let c = parse(text).unwrap();
        assert!(!c.subscribers.is_empty());
        assert!(c.sources.huggingface.is_some());
    }

    #[test]
    fn serde_type_names_become_words() {
        assert_eq!(
            plain_words("invalid type: string \"ten\", expected usize"),
            "invalid type: string \"ten\", expected a whole number (0 or more)"
        );
        assert_eq!(
            plain_words("invalid type: integer `3`, expected f64"),
            "invalid type: whole number `3`, expected a number"
        );
        assert_eq!(plain_words("expected u16"), "expected a whole number from 0 to 65535");
        // A longer word that merely starts like a type name is left alone.
        assert_eq!(plain_words("expected u32x"), "expected u32x");
    }

    #[test]
    fn keys_found_after_parsing_point_at_their_value() {
        let text = "[digest]\nmax_papers = 0\n\n[[subscribers]]\nemail = \"a@example.org\"\n\n[[subscribers]]\nemail = \"b@\"\ntopics = [\"x\", \"y\"]\n";
        let at = |key: &str| span_of(text, key).map(|s| line_column(text, s.start));
        assert_eq!(at("digest.max_papers"), Some((2, 14)));
        assert_eq!(at("subscribers[1].email"), Some((8, 9)));
        assert_eq!(at("subscribers[1].topics[1]"), Some((9, 16)));
        // A key that is not written points at the table that lacks it.
        assert_eq!(at("digest.timezone").map(|p| p.0), Some(1));
        assert_eq!(at("mail.smtp"), None);
    }

    #[test]
    fn a_check_after_parsing_reports_line_and_column() {
        let err = parse("[digest]\nlookback_days = 99\n[mail]\nfrom = \"a@example.org\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.toml:2:17: key `digest.lookback_days`: expected a number of days from 1 to 60"
        );
    }

    #[test]
    fn a_relative_file_url_resolves_against_the_config_folder() {
        let c =
            parse("[sources.huggingface]\nbase_url = \"file:listing\"\n[mail]\nfrom = \"a@example.org\"\n")
                .unwrap();
        assert_eq!(c.sources.huggingface.unwrap().base_url, "file:///base/listing");
    }

    #[test]
    fn password_command_output_loses_only_its_trailing_newline() {
        let cmd = |c: &str| PasswordCommand { command: c.into(), config: "t.toml".into() };
        assert_eq!(cmd("printf ' pa ss \\n'").run().unwrap().expose(), " pa ss ");
        assert_eq!(cmd("printf 'x\\r\\n'").run().unwrap().expose(), "x");
        let err = cmd("exit 7").run().unwrap_err().to_string();
        assert!(err.contains("key `mail.smtp.password_command`") && err.contains("status 7"), "{err}");
        assert!(cmd("true").run().unwrap_err().to_string().contains("printed nothing"));
    }

    proptest::proptest! {
        #[test]
        fn span_lookup_never_panics_and_stays_inside_the_text(text in "[\\[\\]a-z =\"\\n.0-9,]{0,80}", key in "[a-z.\\[\\]0-9]{0,20}") {
            if let Some(span) = span_of(&text, &key) {
                proptest::prop_assert!(span.end <= text.len());
                let (line, column) = line_column(&text, span.start);
                proptest::prop_assert!(line >= 1 && column >= 1);
            }
        }

        #[test]
        fn plain_words_never_panics_and_leaves_no_rust_type_after_expected(msg in "( expected (u8|u16|u32|u64|usize|i64|f64|a sequence)|[a-z ,`]){0,12}") {
            let out = plain_words(&msg);
            for t in ["expected u32", "expected usize", "expected f64"] {
                proptest::prop_assert!(!out.split(t).skip(1).any(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric())));
            }
        }
    }
}
