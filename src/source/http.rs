//! The polite HTTP client every source shares: one request at a time per host with a
//! configurable gap, retries with exponential backoff and jitter that honour `Retry-After`,
//! conditional GET, a body cap enforced while streaming, and redirects to http(s) only.

use crate::config::HttpSettings;
use crate::error::{Error, Result};
use crate::retry::Retry;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::AsyncReadExt as _;
use url::Url;

/// Cache validators remembered per URL for conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The answer to a GET.
#[derive(Debug)]
pub enum Fetched {
    Body(Vec<u8>),
    /// The server answered 304: the body is the one fetched when the validators were
    /// recorded, so whatever it held is already stored.
    NotModified,
}

/// The shared client. Cheap to share by reference across concurrent source fetches.
#[derive(Debug)]
pub struct HttpClient {
    client: reqwest::Client,
    settings: HttpSettings,
    validators: Mutex<HashMap<String, Validators>>,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
    attempts: AtomicU64,
}

/// Per-host politeness state.
#[derive(Debug, Default)]
struct Host {
    gap: Mutex<Duration>,
    /// Held for a whole exchange (all attempts) so only one request at a time goes to the
    /// host; holds when the last response ended, to space the next request from it.
    turn: tokio::sync::Mutex<Option<Instant>>,
}

/// Why one attempt failed, and what the server asked us to wait.
struct Failure {
    error: Error,
    retry_after: Option<Duration>,
    /// The host could not be reached at all (name not resolved, connection refused).
    unreachable: bool,
}

enum Answer {
    Body(Vec<u8>, Validators),
    NotModified,
}

impl HttpClient {
    /// A client with `settings` that starts from the validators remembered by earlier runs.
    pub fn new(settings: &HttpSettings, validators: HashMap<String, Validators>) -> Result<Self> {
        let max_redirects = settings.max_redirects;
        let policy = reqwest::redirect::Policy::custom(move |attempt| {
            if !matches!(attempt.url().scheme(), "http" | "https") {
                let to = attempt.url().to_string();
                attempt
                    .error(format!("refused a redirect to {to}: only http and https redirects are followed"))
            } else if attempt.previous().len() > max_redirects {
                attempt.error(format!("stopped after {max_redirects} redirects (http.max_redirects)"))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(settings.user_agent.clone())
            .timeout(settings.timeout)
            .connect_timeout(settings.connect_timeout)
            .redirect(policy)
            .build()
            .map_err(|e| Error::internal("building the HTTP client", describe(&e)))?;
        Ok(HttpClient {
            client,
            settings: settings.clone(),
            validators: Mutex::new(validators),
            hosts: Mutex::new(HashMap::new()),
            attempts: AtomicU64::new(0),
        })
    }

    /// Requires at least `gap` between the end of one request to `host` and the start of
    /// the next (arXiv asks for 3 s). `host` is a host name or any URL on that host.
    pub fn set_min_gap(&self, host: &str, gap: Duration) {
        let key = if host.contains("://") {
            Url::parse(host).ok().and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        } else {
            Some(host.to_ascii_lowercase())
        };
        if let Some(key) = key {
            *self.host(&key).gap.lock().unwrap_or_else(PoisonError::into_inner) = gap;
        }
    }

    /// A conditional GET: sends the validators remembered for `url`, answers
    /// [`Fetched::NotModified`] on 304 and remembers the new validators otherwise.
    pub async fn get(&self, url: &str) -> Result<Fetched> {
        self.fetch(url, true).await
    }

    /// A plain GET for URLs whose answer is not worth caching (search pages, id lists).
    pub async fn get_unconditional(&self, url: &str) -> Result<Vec<u8>> {
        match self.fetch(url, false).await? {
            Fetched::Body(body) => Ok(body),
            Fetched::NotModified => Err(Error::Fetch {
                url: url.to_string(),
                status: Some(304),
                transient: false,
                message: "304 Not Modified to a request that was not conditional".into(),
            }),
        }
    }

    /// The validators to persist, per URL, for the next run.
    pub fn validators(&self) -> HashMap<String, Validators> {
        self.validators.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// How many HTTP requests (attempts, retries included) this client has sent.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// The settings the client was built with.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    fn host(&self, key: &str) -> Arc<Host> {
        let mut hosts = self.hosts.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(hosts.entry(key.to_string()).or_default())
    }

    async fn fetch(&self, url: &str, conditional: bool) -> Result<Fetched> {
        let fail =
            |message: String| Error::Fetch { url: url.to_string(), status: None, transient: false, message };
        let parsed = Url::parse(url).map_err(|e| fail(format!("not a valid URL: {e}")))?;
        if parsed.scheme() == "file" {
            return self.read_file(url, &parsed).await;
        }
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(fail("only http, https and file URLs can be fetched".into()));
        }
        let host = self.host(&parsed.host_str().unwrap_or_default().to_ascii_lowercase());
        let mut turn = host.turn.lock().await;
        let sent = if conditional {
            self.validators.lock().unwrap_or_else(PoisonError::into_inner).get(url).cloned()
        } else {
            None
        };
        let mut attempt = 1;
        loop {
            if let Some(last) = *turn {
                let gap = *host.gap.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some(rest) = gap.checked_sub(last.elapsed()) {
                    tokio::time::sleep(rest).await;
                }
            }
            self.attempts.fetch_add(1, Ordering::Relaxed);
            let outcome = self.attempt(url, sent.as_ref()).await;
            *turn = Some(Instant::now());
            match outcome {
                Ok(Answer::Body(body, validators)) => {
                    tracing::debug!(url, attempt, bytes = body.len(), "fetched");
                    if conditional {
                        self.remember(url, validators);
                    }
                    return Ok(Fetched::Body(body));
                }
                Ok(Answer::NotModified) => {
                    tracing::debug!(url, attempt, status = 304, "not modified");
                    return Ok(Fetched::NotModified);
                }
                Err(Failure { error, retry_after, unreachable }) => {
                    let status = match &error {
                        Error::Fetch { status, .. } => *status,
                        _ => None,
                    };
                    // An unreachable host (no DNS, connection refused) will not be back in
                    // seconds: fail now with a hint; the next run (or the timer's retry) tries again.
                    if !error.is_transient() || unreachable || !self.retry().again_after(attempt) {
                        // The caller reports the failure; this is its detail.
                        tracing::debug!(url, attempt, status, "giving up: {error}");
                        return Err(after_attempts(error, attempt));
                    }
                    let wait = self.backoff(attempt, retry_after);
                    tracing::warn!(
                        url,
                        attempt,
                        status,
                        wait_ms = wait.as_millis() as u64,
                        "retrying: {error}"
                    );
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn attempt(&self, url: &str, sent: Option<&Validators>) -> Result<Answer, Failure> {
        let mut request = self.client.get(url);
        if let Some(v) = sent {
            if let Some(etag) = &v.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(modified) = &v.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, modified);
            }
        }
        tracing::trace!(
            url,
            if_none_match = sent.and_then(|v| v.etag.as_deref()),
            if_modified_since = sent.and_then(|v| v.last_modified.as_deref()),
            "GET"
        );
        let mut response = request.send().await.map_err(|e| self.transport_failure(url, &e))?;
        tracing::trace!(
            url,
            status = response.status().as_u16(),
            length = response.content_length(),
            "response"
        );
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED && sent.is_some() {
            return Ok(Answer::NotModified);
        }
        if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
            // reqwest hands back a redirect it would not follow: one to a scheme other
            // than http(s), or without a usable Location.
            let location = header_str(response.headers(), &header::LOCATION).unwrap_or_default();
            let message = if location.starts_with("http://") || location.starts_with("https://") {
                format!("the server answered {status} to {location}, which was not followed")
            } else {
                format!(
                    "refused a redirect ({status}) to {location:?}: only http and https redirects are followed"
                )
            };
            return Err(Failure {
                retry_after: None,
                unreachable: false,
                error: Error::Fetch {
                    url: url.to_string(),
                    status: Some(status.as_u16()),
                    transient: false,
                    message,
                },
            });
        }
        if !status.is_success() {
            let transient = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::REQUEST_TIMEOUT
                || status.is_server_error();
            return Err(Failure {
                retry_after: retry_after(response.headers(), SystemTime::now()),
                unreachable: false,
                error: Error::Fetch {
                    url: url.to_string(),
                    status: Some(status.as_u16()),
                    transient,
                    message: format!("the server answered {status}"),
                },
            });
        }
        let validators = Validators {
            etag: header_str(response.headers(), &header::ETAG),
            last_modified: header_str(response.headers(), &header::LAST_MODIFIED),
        };
        let cap = usize::try_from(self.settings.max_body_bytes).unwrap_or(usize::MAX);
        let too_large = || Failure {
            retry_after: None,
            unreachable: false,
            error: Error::Fetch {
                url: url.to_string(),
                status: Some(status.as_u16()),
                transient: false,
                message: format!(
                    "the body is larger than the cap of {cap} bytes (http.max_body_bytes); stopped reading"
                ),
            },
        };
        let announced = response.content_length().map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
        if announced > cap {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(announced);
        // Read chunk by chunk so an endless or oversized body is cut off at the cap;
        // dropping the response closes the connection.
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport_failure(url, &e))? {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer::Body(body, validators))
    }

    fn transport_failure(&self, url: &str, e: &reqwest::Error) -> Failure {
        let transient = !e.is_redirect() && !e.is_builder() && !e.is_decode();
        let unreachable = e.is_connect() && !e.is_timeout();
        let message = if e.is_timeout() {
            format!("timed out (limit {:?}, http.timeout_secs): {}", self.settings.timeout, describe(e))
        } else if unreachable {
            unreachable_message(url, e)
        } else {
            describe(e)
        };
        Failure {
            retry_after: None,
            unreachable,
            error: Error::Fetch { url: url.to_string(), status: None, transient, message },
        }
    }

    /// A `file://` URL: an archived or air-gapped listing read from disk, with the same
    /// body cap as a download. Never conditional: the store already ignores what it has.
    async fn read_file(&self, url: &str, parsed: &Url) -> Result<Fetched> {
        let fail =
            |message: String| Error::Fetch { url: url.to_string(), status: None, transient: false, message };
        let path = parsed.to_file_path().map_err(|()| fail("not a local file path".into()))?;
        let cap = self.settings.max_body_bytes;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| fail(format!("cannot open {}: {e}", path.display())))?;
        let mut body = Vec::new();
        file.take(cap.saturating_add(1))
            .read_to_end(&mut body)
            .await
            .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
        if body.len() as u64 > cap {
            return Err(fail(format!(
                "{} is larger than the cap of {cap} bytes (http.max_body_bytes)",
                path.display()
            )));
        }
        self.attempts.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(url, bytes = body.len(), "read");
        Ok(Fetched::Body(body))
    }

    /// The pause before attempt `attempt + 1` ([`Retry::delay`]): both the exponential
    /// backoff and the server's `Retry-After` capped at `backoff_max`, so a hostile header
    /// cannot stall a run for hours.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.retry().delay(attempt, retry_after)
    }

    fn retry(&self) -> Retry {
        let s = &self.settings;
        Retry { max_attempts: s.max_attempts.max(1), base: s.backoff_base, max: s.backoff_max }
    }

    fn remember(&self, url: &str, validators: Validators) {
        let mut map = self.validators.lock().unwrap_or_else(PoisonError::into_inner);
        if validators.etag.is_none() && validators.last_modified.is_none() {
            map.remove(url);
        } else {
            map.insert(url.to_string(), validators);
        }
    }
}

fn header_str(headers: &HeaderMap, name: &header::HeaderName) -> Option<String> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `Retry-After` as delay-seconds or an HTTP date.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The error and its causes on one line, without reqwest's copy of the URL (ours names it).
fn describe(e: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let head =
        if let Some(url) = e.url() { e.to_string().replace(&format!(" ({url})"), "") } else { e.to_string() };
    parts.push(head);
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// One line for a host that cannot be reached: the host, the innermost cause (not the
/// whole chain), and what to look at.
fn unreachable_message(url: &str, e: &reqwest::Error) -> String {
    let host = Url::parse(url).ok().map_or_else(
        || url.to_string(),
        |u| format!("{}:{}", u.host_str().unwrap_or_default(), u.port_or_known_default().unwrap_or_default()),
    );
    let mut cause = e.to_string();
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    format!(
        "cannot reach {host} ({cause}); offline? behind a proxy (set HTTPS_PROXY)? or a wrong base_url or url in the config?"
    )
}

fn after_attempts(error: Error, attempts: u32) -> Error {
    match error {
        Error::Fetch { url, status, transient, message } if attempts > 1 => {
            Error::Fetch { url, status, transient, message: format!("{message} (after {attempts} attempts)") }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RETRY_AFTER, value.parse().unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Wed, 27 Nov 2024 07:00:00 GMT").unwrap();
        assert_eq!(retry_after(&headers("7"), now), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after(&headers("Wed, 27 Nov 2024 07:00:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(retry_after(&headers("Wed, 27 Nov 2024 06:00:00 GMT"), now), Some(Duration::ZERO));
        assert_eq!(retry_after(&headers("soon"), now), None);
    }

    #[test]
    fn backoff_grows_and_stays_under_the_cap() {
        let settings = HttpSettings {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            max_body_bytes: 1,
            max_attempts: 5,
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(300),
            max_redirects: 1,
            user_agent: "t".into(),
        };
        let client = HttpClient::new(&settings, HashMap::new()).unwrap();
        let first = client.backoff(1, None);
        assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100), "{first:?}");
        for attempt in 1..40 {
            assert!(client.backoff(attempt, None) <= Duration::from_millis(300));
        }
        assert_eq!(client.backoff(1, Some(Duration::from_secs(9))), Duration::from_millis(300));
    }
}
