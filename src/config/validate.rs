//! Validation: the raw structs checked key by key into a ready-to-use [`super::Config`],
//! every error naming the file, line, column and key.

use super::raw::{RawConfig, RawMail, RawSmtp, RawSubscriber, RawWeb, is_loopback, outbox, sendmail_cmd};
use super::secret::{PasswordCommand, Secret, check_private};
use super::subscribers::{Origin, SubscriberList, Twice, key_tail, line_of, read_jsonl, relocate};
use super::{
    Alerts, ArxivSettings, Config, DigestSettings, FeedSettings, HttpSettings, HuggingFaceSettings,
    MIN_WEB_SECRET_BYTES, MailSettings, Security, SmtpAuth, SmtpSettings, Sources, SubscribersFile,
    TransportKind, WebSettings, line_column, span_of,
};
use crate::error::{Error, Result};
use crate::model::{Frequency, PaperId, Subscriber, Topic};
use chrono::Weekday;
use chrono_tz::Tz;
use lettre::message::Mailbox;
use std::collections::BTreeMap;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub(super) struct Validator<'a> {
    pub(super) path: &'a Path,
    /// The config text, to turn a key's span into a line.
    pub(super) text: &'a str,
    pub(super) base: &'a Path,
    pub(super) env: &'a dyn Fn(&str) -> Option<String>,
}

impl Validator<'_> {
    /// A config error at `key`, with the line and column where the key is written (or the
    /// table that lacks it).
    pub(super) fn err(&self, key: impl Into<String>, message: impl Into<String>) -> Error {
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

    pub(super) fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base.join(p) }
    }

    pub(super) fn tz(&self, key: &str, name: &str) -> Result<Tz> {
        name.parse::<Tz>().map_err(|_| {
            self.err(
                key,
                format!(
                    "`{name}` is not an IANA time zone name (expected e.g. \"Europe/Berlin\" or \"UTC\")"
                ),
            )
        })
    }

    pub(super) fn mailbox(&self, key: &str, value: &str) -> Result<Mailbox> {
        value.trim().parse::<Mailbox>().map_err(|e| {
            self.err(key, format!("`{value}` is not a valid email address ({e}); expected \"name@example.org\" or \"Name <name@example.org>\""))
        })
    }

    /// An http(s) URL, or a `file:` one for archived or air-gapped listings: `file:///abs/path`,
    /// or `file:` and a path relative to the config file's folder (`file:listings/cs.LG.rss`).
    pub(super) fn url(&self, key: &str, value: &str) -> Result<String> {
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

    pub(super) fn positive(&self, key: &str, v: f64) -> Result<Duration> {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(self.err(key, format!("expected a number of seconds >= 0, got {v}")))
        }
    }

    pub(super) fn validate(&self, raw: RawConfig) -> Result<Config> {
        self.validate_as(raw, false)
    }

    /// Validates like [`Validator::validate`]; with `streaming`, the subscribers file is
    /// read through but its subscribers are not kept ([`Config::load_streaming`]).
    #[allow(clippy::too_many_lines)]
    pub(super) fn validate_as(&self, raw: RawConfig, streaming: bool) -> Result<Config> {
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
        let embedding_model = d.embedding_model.as_deref().map(|p| self.resolve(p));
        if let Some(dir) = &embedding_model {
            if !crate::meaning::AVAILABLE {
                return Err(self.err(
                    "digest.embedding_model",
                    "this paper-digest was built without the `embeddings` feature, so it cannot read a model; \
                     rebuild it with `cargo build --release --features embeddings`, or remove the key",
                ));
            }
            if !dir.is_dir() {
                return Err(self.err(
                    "digest.embedding_model",
                    format!(
                        "{} is not a folder; expected a model2vec model folder (config.json, tokenizer.json, \
                         model.safetensors) on this machine, relative to the config file. Nothing is downloaded",
                        dir.display()
                    ),
                ));
            }
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
            embedding_model,
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

        let mut list = SubscriberList { streaming, ..SubscriberList::default() };
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
    pub(super) fn subscriber(
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
    pub(super) fn listed_twice(&self, twice: &Twice) -> String {
        let addr = &twice.addr;
        match twice.first {
            Origin::Inline(i) => {
                format!("{addr} is listed twice (first as subscribers[{i}] in {})", self.path.display())
            }
            Origin::Line(line) => format!("{addr} is listed twice (first on line {line})"),
        }
    }

    /// Reads the `subscribers_file` line by line into `list`, after the inline subscribers.
    pub(super) fn subscribers_file(
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
        let (mut count, mut weekly, mut first) = (0, false, None);
        read_jsonl(std::io::BufReader::new(opened), &path, |n, line, raw| {
            let key = format!("subscribers[{n}]");
            let sub = self.subscriber(&key, raw, topics, digest).map_err(|e| relocate(e, &path, line))?;
            count += 1;
            weekly |= sub.frequency == Frequency::Weekly;
            if first.is_none() {
                first = Some(Box::new(sub.clone()));
            }
            let pushed = if list.streaming {
                list.push_key(&sub.key, line, |key| self.first_line_of(&path, key, line, topics, digest))
            } else {
                list.push(sub, Origin::Line(line))
            };
            pushed.map_err(|twice| {
                relocate(self.err(format!("{key}.email"), self.listed_twice(&twice)), &path, line)
            })
        })?;
        Ok(SubscribersFile { path, count, weekly, held: !list.streaming, first })
    }

    /// The first line of the subscribers file, before `before`, that lists `key`: the file
    /// is read again, which only a duplicate (or a clash of hashes) costs.
    fn first_line_of(
        &self,
        path: &Path,
        key: &str,
        before: usize,
        topics: &BTreeMap<String, Topic>,
        digest: &DigestSettings,
    ) -> Option<usize> {
        let opened = std::fs::File::open(path).ok()?;
        let mut found = None;
        let _ = read_jsonl(std::io::BufReader::new(opened), path, |n, line, raw| {
            if found.is_none()
                && line < before
                && self
                    .subscriber(&format!("subscribers[{n}]"), raw, topics, digest)
                    .is_ok_and(|s| s.key == key)
            {
                found = Some(line);
            }
            Ok(())
        });
        found
    }

    pub(super) fn mail(&self, m: RawMail) -> Result<MailSettings> {
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
        if !super::is_list_id(&list_id) {
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

    pub(super) fn smtp(&self, s: RawSmtp, in_use: bool) -> Result<SmtpSettings> {
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
    pub(super) fn ca_file(&self, file: Option<&Path>) -> Result<Option<PathBuf>> {
        let Some(file) = file else { return Ok(None) };
        let path = self.resolve(file);
        let pem = std::fs::read(&path)
            .map_err(|e| self.err("mail.smtp.ca_file", format!("cannot read {}: {e}", path.display())))?;
        match super::pem_certificates(&pem) {
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

    pub(super) fn web(&self, w: &RawWeb) -> Result<WebSettings> {
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
    pub(super) fn secret(
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

    pub(super) fn password(&self, s: &RawSmtp) -> Result<Option<Secret>> {
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

/// A `like` entry in the form papers are stored under (see [`PaperId::parse`]).
pub(super) fn liked_id(id: &str) -> String {
    PaperId::parse(id).0
}
