//! SMTP sending: lettre speaks the protocol (EHLO, STARTTLS, AUTH, envelope, dot-stuffing);
//! this module owns the connections, so that it can bound them, time them out safely and
//! tell a failure of the server (connect, TLS, AUTH) from a failure of one message.
//!
//! Why not `AsyncSmtpTransport`'s own pool: its `timeout` only covers the TCP connect
//! (lettre#1027), and a send cut off by an outer timeout hands its half-finished
//! connection back to the pool, where the next message reads the previous reply. Its
//! pool also caps idle connections, not open ones, and reports AUTH and TLS failures
//! like any other error. Here a connection returns to the pool only after a completed
//! transaction, and a connection that timed out is dropped (closed).

use super::limit::Limiter;
use crate::config::{Security, SmtpSettings};
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// A connection parked less than this long ago is used again without a NOOP first.
/// Servers keep an idle session open for minutes (RFC 5321 §4.5.3.2.7 asks for five), so
/// the probe almost never finds a dead one this young, while it costs a round trip per
/// message. When a young one is dead after all (a server restart), its message fails with
/// a transient error, is retried on another connection, and the other parked connections
/// are probed before their next use.
const PROBE_AFTER: Duration = Duration::from_secs(5);

/// Where a failure happened: it decides whether the error is about the server or about
/// one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Reaching the server: TCP, greeting, EHLO, STARTTLS, AUTH.
    Connect,
    /// MAIL / RCPT / DATA for one message.
    Message,
}

/// One failed attempt, classified.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    /// 4xx replies, timeouts, refused or dropped connections: a later attempt may succeed.
    pub(crate) transient: bool,
    pub(crate) message: String,
}

/// Up to `concurrency` authenticated connections to one server, shared by all senders.
pub(crate) struct SmtpPool {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    tls: Option<TlsParameters>,
    username: Option<String>,
    credentials: Option<Credentials>,
    /// PLAIN/LOGIN for a password, XOAUTH2 for an OAuth2 token.
    mechanisms: &'static [Mechanism],
    timeout: Duration,
    /// Connections parked after a completed transaction, ready for the next MAIL FROM.
    idle: Mutex<Vec<Parked>>,
    /// One permit per open connection: bounds connections, not just idle ones.
    permits: Semaphore,
    limiter: Limiter,
    ever_connected: AtomicBool,
}

/// An idle connection and when it was parked.
struct Parked {
    conn: AsyncSmtpConnection,
    /// `None` once another connection parked with it turned out dead: probe it first.
    at: Option<Instant>,
}

/// Whether a connection parked `at` can carry a message at `now` without a NOOP first.
fn trusted(at: Option<Instant>, now: Instant) -> bool {
    at.is_some_and(|at| now.saturating_duration_since(at) < PROBE_AFTER)
}

impl fmt::Debug for SmtpPool {
    // Credentials stay out; the username is not secret and helps reading logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpPool")
            .field("server", &self.endpoint())
            .field("security", &self.security)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SmtpPool {
    pub(crate) fn new(s: &SmtpSettings) -> Result<Self, String> {
        let tls = match s.security {
            Security::None => None,
            Security::Starttls | Security::Tls => Some(
                TlsParameters::new(s.host.clone())
                    .map_err(|e| format!("cannot set up TLS for {}: {e}", s.host))?,
            ),
        };
        let credentials = match (&s.username, &s.password) {
            (Some(user), Some(pw)) => Some(Credentials::new(user.clone(), pw.expose().to_string())),
            _ => None,
        };
        let hello = s.helo_name.clone().map_or_else(ClientId::default, ClientId::Domain);
        Ok(SmtpPool {
            host: s.host.clone(),
            port: s.port,
            security: s.security,
            hello,
            tls,
            username: s.username.clone(),
            credentials,
            mechanisms: match s.auth {
                crate::config::SmtpAuth::Password => DEFAULT_MECHANISMS,
                crate::config::SmtpAuth::Xoauth2 => &[Mechanism::Xoauth2],
            },
            timeout: s.timeout,
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(s.concurrency.max(1)),
            limiter: Limiter::new(s.rate_limit, s.max_per_hour),
            ever_connected: AtomicBool::new(false),
        })
    }

    fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Whether any connection (including AUTH) has succeeded since the pool was made.
    pub(crate) fn ever_connected(&self) -> bool {
        self.ever_connected.load(Ordering::Relaxed)
    }

    /// One attempt at one message, paced by the rate limits.
    pub(crate) async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), Failure> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(Failure { stage: Stage::Connect, transient: true, message: "mailer closed".into() });
        };
        self.limiter.wait().await;
        let (mut conn, probed) = self.checkout().await?;
        match tokio::time::timeout(self.timeout, conn.send(envelope, email)).await {
            Ok(Ok(_)) => {
                self.idle_list().push(Parked { conn, at: Some(Instant::now()) });
                Ok(())
            }
            // lettre has already sent QUIT and closed the connection after a negative reply.
            Ok(Err(e)) => {
                // No reply at all from a connection used without a probe: it was dead, and
                // whatever killed it (a server restart) may have killed its neighbours.
                if !probed && e.status().is_none() && !e.is_client() {
                    self.distrust_parked();
                }
                Err(self.message_failure(&e))
            }
            // Dropping `conn` closes it mid-transaction: the server discards the message,
            // or (if its final reply was merely late) keeps it; either way no reply can
            // reach a later message.
            Err(_) => {
                if !probed {
                    self.distrust_parked();
                }
                Err(Failure {
                    stage: Stage::Message,
                    transient: true,
                    message: format!(
                        "no reply from {} within {} s (the message may or may not have been accepted)",
                        self.endpoint(),
                        self.timeout.as_secs_f64()
                    ),
                })
            }
        }
    }

    /// `check --connect`: a real EHLO / STARTTLS / AUTH, then QUIT, sending nothing.
    pub(crate) async fn check(&self) -> Result<String, Failure> {
        let mut conn = self.connect().await?;
        let server = conn.server_info().name().to_string();
        let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
        let tls = match self.security {
            Security::Starttls => "STARTTLS ok",
            Security::Tls => "implicit TLS ok",
            Security::None => "plaintext (security = \"none\")",
        };
        let auth = match &self.username {
            Some(user) if self.credentials.is_some() => format!("AUTH ok as {user}"),
            _ => "no AUTH (no username configured)".into(),
        };
        Ok(format!("smtp {}: {server} answered; {tls}; {auth}", self.endpoint()))
    }

    /// Says goodbye (QUIT) on every idle connection.
    pub(crate) async fn close(&self) {
        let conns = std::mem::take(&mut *self.idle_list());
        for Parked { mut conn, .. } in conns {
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
        }
    }

    fn idle_list(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // Connections are pushed and popped whole; a panic elsewhere cannot leave the
        // list half-updated, so a poisoned lock is still a good list.
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A parked connection, or a new one; and whether it is known to be alive (new, or it
    /// answered a NOOP). A connection parked within [`PROBE_AFTER`] is taken unprobed.
    async fn checkout(&self) -> Result<(AsyncSmtpConnection, bool), Failure> {
        loop {
            let parked = self.idle_list().pop();
            let Some(mut parked) = parked else { return Ok((self.connect().await?, true)) };
            if trusted(parked.at, Instant::now()) {
                return Ok((parked.conn, false));
            }
            // Servers close idle connections on their own schedule; find out now rather
            // than spending one of the message's attempts on it.
            if matches!(tokio::time::timeout(self.timeout, parked.conn.test_connected()).await, Ok(true)) {
                return Ok((parked.conn, true));
            }
        }
    }

    /// Makes every parked connection answer a NOOP before its next message.
    fn distrust_parked(&self) {
        for parked in self.idle_list().iter_mut() {
            parked.at = None;
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let attempt = async {
            let implicit_tls = if self.security == Security::Tls { self.tls.clone() } else { None };
            let mut conn = if implicit_tls.is_some() {
                AsyncSmtpConnection::connect_tokio1(
                    (self.host.as_str(), self.port),
                    Some(self.timeout),
                    &self.hello,
                    implicit_tls,
                    None,
                )
                .await
                .map_err(|e| self.connect_failure(&e))?
            } else {
                let stream =
                    tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| {
                        Failure {
                            stage: Stage::Connect,
                            transient: true,
                            message: format!("cannot connect to {}: {e}", self.endpoint()),
                        }
                    })?;
                // lettre writes a message and its final "\r\n.\r\n" in separate writes; with
                // Nagle's algorithm on, the dot waits for the server's delayed ACK (40 ms on
                // Linux), capping a connection at about 25 messages a second.
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!("could not set TCP_NODELAY: {e}");
                }
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello)
                    .await
                    .map_err(|e| self.connect_failure(&e))?
            };
            if self.security == Security::Starttls
                && let Some(tls) = &self.tls
            {
                // lettre's `starttls` refuses when the server does not offer it, so this
                // can never fall back to clear text; AUTH below is not reached.
                conn.starttls(tls.clone(), &self.hello).await.map_err(|e| self.starttls_failure(&e))?;
            }
            if let Some(credentials) = &self.credentials {
                conn.auth(self.mechanisms, credentials).await.map_err(|e| self.auth_failure(&e))?;
            }
            Ok(conn)
        };
        let conn = tokio::time::timeout(self.timeout, attempt).await.map_err(|_| Failure {
            stage: Stage::Connect,
            transient: true,
            message: format!(
                "{} did not complete the greeting within {} s",
                self.endpoint(),
                self.timeout.as_secs_f64()
            ),
        })??;
        self.ever_connected.store(true, Ordering::Relaxed);
        Ok(conn)
    }

    fn connect_failure(&self, e: &SmtpError) -> Failure {
        let endpoint = self.endpoint();
        let (transient, message) = if e.is_tls() {
            (false, format!("TLS with {endpoint} failed: {e}"))
        } else if e.is_permanent() {
            (false, format!("{endpoint} refused the session: {e}"))
        } else {
            // Refused, unreachable, timed out, 421 busy: the server may be back later.
            (true, format!("cannot connect to {endpoint}: {e}"))
        };
        Failure { stage: Stage::Connect, transient, message }
    }

    fn starttls_failure(&self, e: &SmtpError) -> Failure {
        let endpoint = self.endpoint();
        let (transient, message) = if e.is_client() {
            (
                false,
                format!(
                    "{endpoint} does not offer STARTTLS; refusing to continue in clear text \
                     (security = \"starttls\"; use \"tls\" for a port with implicit TLS such as 465)"
                ),
            )
        } else if e.is_tls() || e.is_permanent() {
            (false, format!("STARTTLS with {endpoint} failed: {e}"))
        } else {
            (true, format!("STARTTLS with {endpoint} failed: {e}"))
        };
        Failure { stage: Stage::Connect, transient, message }
    }

    fn auth_failure(&self, e: &SmtpError) -> Failure {
        let endpoint = self.endpoint();
        let user = self.username.as_deref().unwrap_or_default();
        let (transient, message) = if e.is_client() {
            let names: Vec<String> = self.mechanisms.iter().map(ToString::to_string).collect();
            (
                false,
                format!(
                    "{endpoint} offers no AUTH mechanism paper-digest is set to use ({}; mail.smtp.auth): {e}",
                    names.join(", ")
                ),
            )
        } else if e.is_permanent() {
            (
                false,
                format!("{endpoint} refused AUTH as {user}: {e}; check mail.smtp.username and the password"),
            )
        } else {
            (true, format!("AUTH as {user} at {endpoint} failed: {e}"))
        };
        Failure { stage: Stage::Connect, transient, message }
    }

    fn message_failure(&self, e: &SmtpError) -> Failure {
        let endpoint = self.endpoint();
        let code = e.status().map(|c| c.to_string());
        // "Authentication required" or "bad credentials" after MAIL FROM concern every
        // message, not this one.
        let stage = match code.as_deref() {
            Some("530" | "534" | "535" | "538") => Stage::Connect,
            _ => Stage::Message,
        };
        let (transient, message) = if e.is_permanent() || e.is_transient() {
            (e.is_transient(), format!("{endpoint} replied with a {e}"))
        } else if e.is_client() {
            // Refused before sending, e.g. an internationalised address the server cannot take.
            (false, e.to_string())
        } else {
            (
                true,
                format!(
                    "connection to {endpoint} lost before it confirmed the message (it may have been accepted): {e}"
                ),
            )
        };
        Failure { stage, transient, message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_parked_moments_ago_is_trusted_an_older_or_distrusted_one_is_probed() {
        let parked = Instant::now();
        assert!(trusted(Some(parked), parked + Duration::from_millis(10)));
        assert!(!trusted(Some(parked), parked + PROBE_AFTER));
        assert!(!trusted(None, parked));
    }
}
