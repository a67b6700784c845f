//! The TOML configuration: raw serde structs that reject unknown keys, validated into a
//! ready-to-use [`Config`]. `parse` works on a string (for tests), `load` on a file.

use crate::error::{Error, Result};
use chrono_tz::Tz;
use lettre::message::Mailbox;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod raw;
mod secret;
mod subscribers;
mod validate;
mod values;

// Kept while `rank` and `render` still name them here; their home is `model`.
pub use crate::model::{Subscriber, Topic};
use raw::RawConfig;
pub use raw::SmtpAuth;
pub use secret::{PasswordCommand, Secret};
pub use subscribers::FileSubscribers;
use validate::Validator;
pub use values::{is_list_id, pem_certificates};

/// The config file used when neither `--config` nor `$PAPER_DIGEST_CONFIG` names one.
pub const DEFAULT_PATH: &str = "paper-digest.toml";
/// Environment variable naming the config file.
pub const ENV_VAR: &str = "PAPER_DIGEST_CONFIG";

// ---------------------------------------------------------------------------------------
// Validated, ready to use.

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
    /// Whether any of them reads weekly (the week is then fetched and ranked).
    pub weekly: bool,
    /// Whether `Config::subscribers` holds them. When not ([`Config::load_streaming`]),
    /// [`Config::file_subscribers`] reads them again, a chunk at a time.
    pub held: bool,
    /// The file's first subscriber, for the sample digest a run renders first.
    pub first: Option<Box<Subscriber>>,
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
    /// A model2vec model folder (absolute): with it, closeness in meaning counts as topic
    /// evidence. Only builds with the `embeddings` feature accept it.
    pub embedding_model: Option<PathBuf>,
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

#[derive(Debug, Clone)]
pub struct Alerts {
    pub email: Mailbox,
    pub after_failures: u32,
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        Self::load_with(path, false)
    }

    /// Reads and validates the config file at `path` like [`Config::load`], the whole
    /// `subscribers_file` included, but keeps only the inline subscribers: a run reads the
    /// file's again a chunk at a time ([`Config::file_subscribers`]), so that its memory does
    /// not grow with the file.
    pub fn load_streaming(path: &Path) -> Result<Config> {
        Self::load_with(path, true)
    }

    fn load_with(path: &Path, streaming: bool) -> Result<Config> {
        let text = read_config(path)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let base = std::path::absolute(&base).unwrap_or(base);
        let env = |name: &str| std::env::var(name).ok();
        let raw = parse_raw(path, &text)?;
        Validator { path, text: &text, base: &base, env: &env }.validate_as(raw, streaming)
    }

    /// Parses `text` as if it were the file `path`; relative paths resolve against `base`.
    /// `env` looks up environment variables (the SMTP password).
    pub fn parse_with(
        text: &str,
        path: &Path,
        base: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config> {
        let raw = parse_raw(path, text)?;
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

/// The file's TOML as its schema, before validation.
fn parse_raw(path: &Path, text: &str) -> Result<RawConfig> {
    let de = toml::Deserializer::parse(text).map_err(|e| toml_error(path, text, &e, None))?;
    // The path serde was at when it failed names array entries (`subscribers[3].email`),
    // which the line alone cannot tell apart.
    serde_path_to_error::deserialize(de).map_err(|e| {
        let key = dotted_key(e.path());
        toml_error(path, text, e.inner(), key)
    })
}

/// The path serde reports (`subscribers[3].topics[0]`) up to the first part it could not
/// name (a key the input broke off in), or `None` when not even the first is known.
pub(super) fn dotted_key(path: &serde_path_to_error::Path) -> Option<String> {
    use serde_path_to_error::Segment;
    use std::fmt::Write as _;
    let mut key = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(key, "[{index}]");
            }
            Segment::Map { key: name } | Segment::Enum { variant: name } => {
                if !key.is_empty() {
                    key.push('.');
                }
                key.push_str(name);
            }
            Segment::Unknown => break,
        }
    }
    (!key.is_empty()).then_some(key)
}

/// The config file's text; a missing file says how to write one.
fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::Config {
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
    })
}

/// A TOML error with the file, line and column; `key` from serde's path, else the key
/// written on the line the error points at.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error, key: Option<String>) -> Error {
    let (line, column) = match e.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start.min(text.len()));
            (Some(line), Some(column))
        }
        None => (None, None),
    };
    // toml's message repeats the snippet on several lines; the first line says what is wrong.
    let mut message = plain_words(e.message().lines().next().unwrap_or("invalid TOML"));
    let key = key.or_else(|| key_at(text, line));
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

/// Finds the config file: `--config`, else `$PAPER_DIGEST_CONFIG`, else `./paper-digest.toml`.
pub fn locate(flag: Option<&Path>) -> PathBuf {
    flag.map(Path::to_path_buf)
        .or_else(|| std::env::var_os(ENV_VAR).filter(|v| !v.is_empty()).map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PATH))
}

#[cfg(test)]
mod tests {
    use super::*;
    use raw::is_loopback;
    use subscribers::read_jsonl;

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
    fn a_wrong_type_in_an_array_of_tables_names_the_entry_and_the_position() {
        let text = format!(
            "{MINIMAL}\n[topics.t]\nkeywords = [\"a\"]\n\n[[subscribers]]\nemail = \"a@b.org\"\ntopics = [\"t\"]\n\n\
             [[subscribers]]\nemail = \"c@d.org\"\ntopics = [\"t\", 3]\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("t.toml:14:16: key `subscribers[1].topics[1]`: invalid type: whole number"),
            "{e}"
        );
        let text = format!(
            "{MINIMAL}\n[[subscribers]]\nemail = \"a@b.org\"\n[[subscribers]]\nemail = \"c@d.org\"\nmax_paper = 3\n"
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.starts_with("t.toml:9:1: key `subscribers[1].max_paper`: unknown field"), "{e}");
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
    fn a_wrong_type_inside_a_list_of_a_line_names_its_index() {
        let e = read("{\"email\":\"a@b.org\",\"topics\":[\"x\",7]}\n").unwrap_err().to_string();
        assert!(
            e.starts_with("s.jsonl:1:34: key `subscribers[0].topics[1]`: invalid type: whole number"),
            "{e}"
        );
        let e = read("{\"email\":\"a@b.org\",\"colour\":1}\n").unwrap_err().to_string();
        assert!(e.starts_with("s.jsonl:1:27: key `subscribers[0].colour`: unknown field"), "{e}");
        let e = read("{\"email\":\"a@b.org\"} x\n").unwrap_err().to_string();
        assert!(e.starts_with("s.jsonl:1:21: key `subscribers[0]`: trailing characters"), "{e}");
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
        let text = include_str!("../../config/example.toml");
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
