//! SMTP sending: lettre speaks the protocol (EHLO, STARTTLS, AUTH, dot-stuffing); this
//! module owns the connections and walks each transaction (MAIL, RCPT, DATA, the final
//! dot) itself, so that it can bound and time out every step and say which one failed:
//! a refusal of the session (greeting, EHLO, STARTTLS, TLS, AUTH, the sender) is the
//! server's or the configuration's, never one subscriber's; only replies to RCPT, DATA or
//! the final dot are about one message.
//!
//! Why not `AsyncSmtpTransport`'s own pool: its `timeout` only covers the TCP connect
//! (lettre#1027), and a send cut off by an outer timeout hands its half-finished
//! connection back to the pool, where the next message reads the previous reply. Its
//! pool also caps idle connections, not open ones, and reports AUTH and TLS failures
//! like any other error. Here a connection returns to the pool only after a completed
//! transaction, and a connection that timed out is dropped (closed).

use super::limit::Limiter;
use super::tls;
use crate::config::{Security, SmtpSettings};
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
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
    /// The session: TCP, greeting, EHLO, STARTTLS, TLS, AUTH, MAIL FROM, or a 421 at any
    /// point. Every message would meet it.
    Session,
    /// RCPT, DATA or the final dot of one message.
    Message,
}

/// One failed attempt, classified.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) stage: Stage,
    /// For a message: a 4xx, a timeout or a dropped connection, so a later attempt may
    /// succeed. For the session: the server may take it later as is; when false the
    /// configuration must change first (credentials, TLS trust, security, sender).
    pub(crate) transient: bool,
    /// The whole message went out but its final dot got no reply: the server may have
    /// queued it, so it is not sent again within this run.
    pub(crate) unconfirmed: bool,
    pub(crate) message: String,
}

impl Failure {
    fn session(transient: bool, message: String) -> Self {
        Failure { stage: Stage::Session, transient, unconfirmed: false, message }
    }
}

/// The step of a transaction a reply answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Mail,
    Rcpt,
    Data,
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
    data_timeout: Duration,
    /// Connections parked after a completed transaction, ready for the next MAIL FROM.
    idle: Mutex<Vec<Parked>>,
    /// Held while a session is opened until one has succeeded, so that concurrent senders
    /// meet a refusing server one at a time: a wrong password costs one AUTH per run,
    /// not one per connection.
    first: tokio::sync::Mutex<()>,
    ever_connected: AtomicBool,
    /// A refusal only a configuration change can fix, returned to every later connect.
    refused: Mutex<Option<Failure>>,
    /// One permit per open connection: bounds connections, not just idle ones.
    permits: Semaphore,
    limiter: Limiter,
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
            Security::Starttls | Security::Tls => Some(tls::parameters(s)?),
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
            data_timeout: s.data_timeout,
            idle: Mutex::new(Vec::new()),
            first: tokio::sync::Mutex::new(()),
            ever_connected: AtomicBool::new(false),
            refused: Mutex::new(None),
            permits: Semaphore::new(s.concurrency.max(1)),
            limiter: Limiter::new(s.rate_limit, s.max_per_hour),
        })
    }

    fn endpoint(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// One attempt at one message, paced by the rate limits.
    pub(crate) async fn send(&self, envelope: &Envelope, email: &[u8]) -> Result<(), Failure> {
        let Ok(_permit) = self.permits.acquire().await else {
            return Err(Failure::session(true, "mailer closed".into()));
        };
        self.limiter.wait().await;
        let (mut conn, probed) = self.checkout().await?;
        match self.transaction(&mut conn, envelope, email, probed).await {
            Ok(()) => {
                self.idle_list().push(Parked { conn, at: Some(Instant::now()) });
                Ok(())
            }
            Err((failure, replied)) => {
                if replied {
                    // A refusal leaves the session usable, but one that refused a message
                    // gets no other: QUIT, bounded, as a server may be slow to answer it.
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.abort()).await;
                } else if !probed {
                    // No reply at all from a connection used without a probe: it was dead,
                    // and whatever killed it (a server restart) may have killed its
                    // neighbours.
                    self.distrust_parked();
                }
                // Otherwise dropping `conn` closes it: no late reply can reach a later message.
                Err(failure)
            }
        }
    }

    /// MAIL, RCPT, DATA and the content, each step bounded by its timeout, on a
    /// connection known to be alive (`alive`) or parked moments ago. On failure, also
    /// whether the server replied (the connection is in a known state).
    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        email: &[u8],
        alive: bool,
    ) -> Result<(), (Failure, bool)> {
        let mut options = Vec::new();
        let info = conn.server_info();
        let ascii = |a: &lettre::Address| AsRef::<str>::as_ref(a).is_ascii();
        let non_ascii = envelope.from().is_some_and(|a| !ascii(a)) || envelope.to().iter().any(|a| !ascii(a));
        if non_ascii {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err((
                    Failure {
                        stage: Stage::Message,
                        transient: false,
                        unconfirmed: false,
                        message: format!(
                            "{} does not accept internationalised addresses (no SMTPUTF8)",
                            self.endpoint()
                        ),
                    },
                    false,
                ));
            }
            options.push(MailParameter::SmtpUtfEight);
        }
        if !email.is_ascii() {
            // Messages are built with 7-bit transfer encodings; this only guards hand-made ones.
            if info.supports_feature(Extension::EightBitMime) {
                options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
            }
        }
        // A session that goes silent before it takes the sender (a server that hangs up
        // after EHLO) is the server's failure, unless it was a parked connection that had
        // died meanwhile: then the message is tried again on another.
        let mail = if alive { Stage::Session } else { Stage::Message };
        self.step(conn, Step::Mail, mail, Mail::new(envelope.from().cloned(), options)).await?;
        for to in envelope.to() {
            self.step(conn, Step::Rcpt, Stage::Message, Rcpt::new(to.clone(), Vec::new())).await?;
        }
        self.step(conn, Step::Data, Stage::Message, Data).await?;
        // The content and the reply to its final dot. RFC 5321 §4.5.3.2.6 gives the server
        // ten minutes for that reply, as it may be queueing the message meanwhile.
        match tokio::time::timeout(self.data_timeout, conn.message(email)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.status().is_some() => Err((self.reply_failure(Step::Data, &e), true)),
            Ok(Err(e)) => {
                Err((self.unconfirmed(&format!("the connection was lost before it replied ({e})")), false))
            }
            Err(_) => Err((
                self.unconfirmed(&format!(
                    "no reply within data_timeout_secs = {}",
                    self.data_timeout.as_secs_f64()
                )),
                false,
            )),
        }
    }

    /// One command of a transaction and its reply, within `timeout`; `silent` is whom a
    /// missing reply is blamed on.
    async fn step(
        &self,
        conn: &mut AsyncSmtpConnection,
        step: Step,
        silent: Stage,
        command: impl fmt::Display,
    ) -> Result<(), (Failure, bool)> {
        match tokio::time::timeout(self.timeout, conn.command(command)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.status().is_some() => Err((self.reply_failure(step, &e), true)),
            // Nothing of the message has gone out yet: another attempt is safe.
            Ok(Err(e)) => Err((
                Failure {
                    stage: silent,
                    transient: true,
                    unconfirmed: false,
                    message: format!("connection to {} lost: {e}", self.endpoint()),
                },
                false,
            )),
            Err(_) => Err((
                Failure {
                    stage: silent,
                    transient: true,
                    unconfirmed: false,
                    message: format!(
                        "no reply from {} within {} s",
                        self.endpoint(),
                        self.timeout.as_secs_f64()
                    ),
                },
                false,
            )),
        }
    }

    fn unconfirmed(&self, what: &str) -> Failure {
        Failure {
            stage: Stage::Message,
            transient: true,
            unconfirmed: true,
            message: format!(
                "{} took the whole message but {what}; it may have been accepted, so it is not sent \
                 again in this run (a later run sends it with the same Message-ID)",
                self.endpoint()
            ),
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

    /// A new session, or the refusal that already ended this pool's sessions.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let _first =
            if self.ever_connected.load(Ordering::Acquire) { None } else { Some(self.first.lock().await) };
        let refused = self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        if let Some(failure) = refused {
            return Err(failure);
        }
        let opened = self.open().await;
        match &opened {
            Ok(_) => self.ever_connected.store(true, Ordering::Release),
            Err(failure) if !failure.transient => {
                *self.refused.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(failure.clone());
            }
            Err(_) => {}
        }
        opened
    }

    /// TCP (or implicit TLS), greeting, EHLO, STARTTLS and AUTH, within `timeout`.
    async fn open(&self) -> Result<AsyncSmtpConnection, Failure> {
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
                        Failure::session(true, format!("cannot connect to {}: {e}", self.endpoint()))
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
        let conn = tokio::time::timeout(self.timeout, attempt).await.map_err(|_| {
            Failure::session(
                true,
                format!(
                    "{} did not complete the greeting, EHLO, STARTTLS and AUTH within {} s",
                    self.endpoint(),
                    self.timeout.as_secs_f64()
                ),
            )
        })??;
        Ok(conn)
    }

    /// A TLS handshake that failed: the certificate or the port's protocol, which the
    /// configuration must fix; `None` when TLS is not what failed.
    fn tls_failure(&self, e: &SmtpError) -> Option<Failure> {
        let explained = match tls::handshake_error(e) {
            Some(tls_error) => tls::explain(tls_error, &self.host),
            None if e.is_tls() => e.to_string(),
            None => return None,
        };
        Some(Failure::session(false, format!("TLS with {}: {explained}", self.endpoint())))
    }

    fn connect_failure(&self, e: &SmtpError) -> Failure {
        if let Some(failure) = self.tls_failure(e) {
            return failure;
        }
        let endpoint = self.endpoint();
        // A 554 greeting or a refused EHLO: the server will not talk to this host now,
        // which it may change its mind about (a block list, maintenance); nothing in the
        // configuration names the fix.
        let message = match e.status() {
            Some(code) => format!("{endpoint} refused the session ({code}): {e}"),
            // Refused, unreachable, timed out, closed after EHLO: the server may be back later.
            None => format!("cannot connect to {endpoint}: {e}"),
        };
        Failure::session(true, message)
    }

    fn starttls_failure(&self, e: &SmtpError) -> Failure {
        if let Some(failure) = self.tls_failure(e) {
            return failure;
        }
        let endpoint = self.endpoint();
        if e.is_client() {
            return Failure::session(
                false,
                format!(
                    "{endpoint} does not offer STARTTLS; refusing to continue in clear text \
                     (security = \"starttls\"; use \"tls\" for a port with implicit TLS such as 465)"
                ),
            );
        }
        // A 454 "TLS not available": the server's TLS is down for now.
        Failure::session(true, format!("STARTTLS with {endpoint} failed: {e}"))
    }

    fn auth_failure(&self, e: &SmtpError) -> Failure {
        let endpoint = self.endpoint();
        let user = self.username.as_deref().unwrap_or_default();
        if e.is_client() {
            let names: Vec<String> = self.mechanisms.iter().map(ToString::to_string).collect();
            return Failure::session(
                false,
                format!(
                    "{endpoint} offers no AUTH mechanism paper-digest is set to use ({}; mail.smtp.auth) \
                     over this connection: {e}; check mail.smtp.security (many servers offer AUTH only after STARTTLS)",
                    names.join(", ")
                ),
            );
        }
        if e.is_permanent() {
            // Never retried: a wrong password tried again and again can lock the account.
            return Failure::session(
                false,
                format!("{endpoint} refused AUTH as {user}: {e}; check mail.smtp.username and the password"),
            );
        }
        Failure::session(true, format!("AUTH as {user} at {endpoint} failed: {e}"))
    }

    /// A negative reply within a transaction. Only RCPT, DATA and the final dot speak
    /// about one message; MAIL FROM, a 421 or an authentication demand speak about all.
    fn reply_failure(&self, step: Step, e: &SmtpError) -> Failure {
        let endpoint = self.endpoint();
        let code = e.status().map(|c| c.to_string()).unwrap_or_default();
        match code.as_str() {
            "421" => {
                return Failure::session(true, format!("{endpoint} is closing the session: {e}"));
            }
            "530" | "534" | "535" | "538" => {
                return Failure::session(
                    false,
                    format!(
                        "{endpoint} requires authentication it did not get: {e}; set mail.smtp.username and a password"
                    ),
                );
            }
            _ => {}
        }
        if step == Step::Mail {
            return if e.is_transient() {
                Failure::session(true, format!("{endpoint} deferred the sender (MAIL FROM): {e}"))
            } else {
                Failure::session(
                    false,
                    format!(
                        "{endpoint} refused the sender (MAIL FROM): {e}; check mail.from and that the account may send as it"
                    ),
                )
            };
        }
        Failure {
            stage: Stage::Message,
            transient: !e.is_permanent(),
            unconfirmed: false,
            message: format!("{endpoint} replied with a {e}"),
        }
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
