//! The configuration as written: serde structs that reject unknown keys, with the
//! documented defaults. [`super::validate`] turns them into a [`super::Config`].

use super::{Security, TransportKind};
use crate::model::Frequency;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) digest: RawDigest,
    #[serde(default)]
    pub(super) sources: RawSources,
    #[serde(default)]
    pub(super) http: RawHttp,
    pub(super) mail: RawMail,
    #[serde(default)]
    pub(super) topics: BTreeMap<String, RawTopic>,
    #[serde(default)]
    pub(super) subscribers: Vec<RawSubscriber>,
    /// A JSON Lines file of more subscribers, read line by line: a list of 100,000 costs
    /// about 2.5 KB per subscriber as TOML while parsing, and little more than the result
    /// as JSON Lines. Spanned so a file that cannot be opened is reported at its line.
    pub(super) subscribers_file: Option<toml::Spanned<PathBuf>>,
    pub(super) alerts: Option<RawAlerts>,
    pub(super) web: Option<RawWeb>,
}

/// `[web]`: the reader-facing pages of `paper-digest serve` and the links digests carry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWeb {
    pub(super) base_url: String,
    #[serde(default = "web_listen")]
    pub(super) listen: String,
    pub(super) secret_env: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) secret_credential: Option<String>,
    /// The secret before a rotation, still accepted (never used to sign) so that links in
    /// digests already sent keep working.
    pub(super) previous_secret_env: Option<String>,
    pub(super) previous_secret_file: Option<PathBuf>,
    #[serde(default = "yes")]
    pub(super) subscribe: bool,
    #[serde(default)]
    pub(super) public_topics: bool,
    #[serde(default = "confirm_hours")]
    pub(super) confirm_hours: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawDigest {
    pub(super) max_papers: usize,
    pub(super) lookback_days: u32,
    pub(super) send_empty: bool,
    pub(super) database: PathBuf,
    pub(super) timezone: String,
    pub(super) schedule: String,
    pub(super) templates: Option<PathBuf>,
    pub(super) min_score: f64,
    pub(super) trending_weight: f64,
    pub(super) recency_weight: f64,
    pub(super) lock_file: Option<PathBuf>,
    pub(super) embedding_model: Option<PathBuf>,
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
            embedding_model: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSources {
    pub(super) huggingface: Option<RawHuggingFace>,
    pub(super) arxiv: Option<RawArxiv>,
    #[serde(default)]
    pub(super) feeds: Vec<RawFeed>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHuggingFace {
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default = "hf_base")]
    pub(super) base_url: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawArxiv {
    #[serde(default = "yes")]
    pub(super) enabled: bool,
    #[serde(default = "arxiv_base")]
    pub(super) base_url: String,
    #[serde(default)]
    pub(super) categories: Vec<String>,
    pub(super) query: Option<String>,
    #[serde(default = "arxiv_max_results")]
    pub(super) max_results: usize,
    #[serde(default = "arxiv_page_size")]
    pub(super) page_size: usize,
    #[serde(default = "arxiv_delay")]
    pub(super) delay_secs: f64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFeed {
    pub(super) name: String,
    pub(super) url: String,
    #[serde(default = "yes")]
    pub(super) enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHttp {
    pub(super) timeout_secs: f64,
    pub(super) connect_timeout_secs: f64,
    pub(super) max_body_bytes: u64,
    pub(super) max_attempts: u32,
    pub(super) backoff_base_ms: u64,
    pub(super) backoff_max_secs: f64,
    pub(super) max_redirects: usize,
    pub(super) user_agent: Option<String>,
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
pub(super) struct RawMail {
    pub(super) from: String,
    pub(super) reply_to: Option<String>,
    #[serde(default)]
    pub(super) transport: TransportKind,
    pub(super) list_id: Option<String>,
    pub(super) unsubscribe_mailto: Option<String>,
    pub(super) unsubscribe_url: Option<String>,
    pub(super) file: Option<RawFileTransport>,
    pub(super) smtp: Option<RawSmtp>,
    pub(super) sendmail: Option<RawSendmail>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFileTransport {
    #[serde(default = "outbox")]
    pub(super) dir: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSendmail {
    #[serde(default = "sendmail_cmd")]
    pub(super) command: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSmtp {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    #[serde(default)]
    pub(super) security: Security,
    pub(super) username: Option<String>,
    pub(super) password_env: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_credential: Option<String>,
    #[serde(default)]
    pub(super) allow_insecure: bool,
    #[serde(default = "smtp_concurrency")]
    pub(super) concurrency: usize,
    pub(super) rate_limit: Option<f64>,
    pub(super) max_per_hour: Option<u32>,
    #[serde(default = "smtp_attempts")]
    pub(super) max_attempts: u32,
    #[serde(default = "smtp_timeout")]
    pub(super) timeout_secs: f64,
    #[serde(default = "smtp_data_timeout")]
    pub(super) data_timeout_secs: f64,
    #[serde(default = "smtp_backoff")]
    pub(super) backoff_base_ms: u64,
    pub(super) helo_name: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    /// msmtp's `passwordeval`: a shell command whose standard output is the secret.
    pub(super) password_command: Option<String>,
    #[serde(default)]
    pub(super) auth: SmtpAuth,
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
pub(super) struct RawTopic {
    #[serde(default)]
    pub(super) keywords: Vec<String>,
    #[serde(default)]
    pub(super) exclude: Vec<String>,
    #[serde(default)]
    pub(super) require: Vec<String>,
    #[serde(default)]
    pub(super) authors: Vec<String>,
    #[serde(default)]
    pub(super) categories: Vec<String>,
    #[serde(default = "one")]
    pub(super) weight: f64,
    pub(super) min_score: Option<f64>,
    #[serde(default)]
    pub(super) like: Vec<String>,
}

/// One `[[subscribers]]` table, or one line of the `subscribers_file`: the same fields,
/// defaults and checks either way.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a subscriber with at least an `email`")]
pub(super) struct RawSubscriber {
    pub(super) email: String,
    pub(super) name: Option<String>,
    #[serde(default)]
    pub(super) topics: Vec<String>,
    pub(super) max_papers: Option<usize>,
    pub(super) min_score: Option<f64>,
    pub(super) trending_weight: Option<f64>,
    #[serde(default)]
    pub(super) frequency: Frequency,
    pub(super) weekday: Option<String>,
    pub(super) timezone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAlerts {
    pub(super) email: String,
    #[serde(default = "three")]
    pub(super) after_failures: u32,
}

pub(super) fn yes() -> bool {
    true
}
pub(super) fn one() -> f64 {
    1.0
}
pub(super) fn three() -> u32 {
    3
}
pub(super) fn hf_base() -> String {
    "https://huggingface.co".into()
}
pub(super) fn arxiv_base() -> String {
    "https://export.arxiv.org".into()
}
pub(super) fn arxiv_max_results() -> usize {
    200
}
pub(super) fn arxiv_page_size() -> usize {
    100
}
pub(super) fn arxiv_delay() -> f64 {
    3.0
}
pub(super) fn outbox() -> PathBuf {
    PathBuf::from("outbox")
}
pub(super) fn sendmail_cmd() -> PathBuf {
    PathBuf::from("/usr/sbin/sendmail")
}
pub(super) fn smtp_concurrency() -> usize {
    4
}
pub(super) fn smtp_attempts() -> u32 {
    3
}
pub(super) fn smtp_timeout() -> f64 {
    30.0
}
/// RFC 5321 §4.5.3.2.6 asks a client to wait 10 minutes for the reply to the final dot;
/// five covers every real server's queueing delay without holding a run for long.
pub(super) fn smtp_data_timeout() -> f64 {
    300.0
}
pub(super) fn smtp_backoff() -> u64 {
    1000
}
pub(super) fn web_listen() -> String {
    "127.0.0.1:8080".into()
}
pub(super) fn confirm_hours() -> u32 {
    48
}

/// Whether mail to `host` stays on this machine: an IP literal in 127.0.0.0/8, `::1`, or
/// exactly `localhost`. A name that merely starts with `127.` can point anywhere.
pub(super) fn is_loopback(host: &str) -> bool {
    let bare = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
