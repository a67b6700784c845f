//! The one mailer of a run: picks the transport from the config and turns each message
//! into "accepted", "try again later" or "will never work", retrying the middle case.

use super::smtp::{Failure, SmtpPool, Stage};
use crate::config::{MailSettings, TransportKind};
use crate::error::{Error, Result};
use crate::logging::mask_email;
use crate::retry::Retry;
use lettre::{AsyncFileTransport, AsyncSendmailTransport, AsyncTransport, Message, Tokio1Executor};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest pause between two attempts of one message, whatever `backoff_base` says: a
/// run should move on and leave the message deferred rather than sleep for hours.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// A message as it goes on the wire: its SMTP envelope and its formatted bytes. Made on
/// the thread that rendered it, so the send loop only moves bytes.
pub struct Wire {
    pub envelope: lettre::address::Envelope,
    pub bytes: Vec<u8>,
}

impl Wire {
    pub fn new(msg: &Message) -> Wire {
        Wire { envelope: msg.envelope().clone(), bytes: msg.formatted() }
    }
}

/// Sends messages for one run. Shared by `&` between concurrent senders: the SMTP
/// connection pool, `concurrency`, `rate_limit` and `max_per_hour` hold across all of them.
pub struct Mailer {
    transport: Transport,
    retry: Retry,
    concurrency: usize,
    /// A failure of the session that every later send would only repeat: AUTH refused
    /// (retrying could lock the account), no STARTTLS, an untrusted certificate, or a
    /// server that could not be reached or refused the session `max_attempts` times. Later
    /// sends fail at once with it.
    down: Mutex<Option<(bool, String)>>,
    /// Messages in a row whose final dot got no reply. A server that swallows every such
    /// reply would otherwise hold the run for `data_timeout` per message.
    unconfirmed: AtomicUsize,
}

enum Transport {
    File { dir: PathBuf, inner: AsyncFileTransport<Tokio1Executor> },
    Sendmail { command: PathBuf, inner: AsyncSendmailTransport<Tokio1Executor> },
    // Boxed: the pool is large and there is one mailer per run.
    Smtp(Box<SmtpPool>),
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mailer");
        match &self.transport {
            Transport::File { dir, .. } => d.field("file", dir),
            Transport::Sendmail { command, .. } => d.field("sendmail", command),
            Transport::Smtp(pool) => d.field("smtp", pool),
        };
        d.field("max_attempts", &self.retry.max_attempts)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

/// Files the file transport writes at once.
pub const FILE_CONCURRENCY: usize = 4;

impl Mailer {
    /// Sets up the configured transport. Nothing is connected or written until the
    /// first [`send`](Self::send) or [`check`](Self::check).
    pub fn new(settings: &MailSettings) -> Result<Self> {
        let local = |transport, concurrency| Mailer {
            transport,
            retry: Retry { max_attempts: 1, base: Duration::ZERO, max: Duration::ZERO },
            concurrency,
            down: Mutex::new(None),
            unconfirmed: AtomicUsize::new(0),
        };
        Ok(match settings.transport {
            // Files are independent of each other: creating one is kernel work that overlaps
            // with the next, so several are written at once.
            TransportKind::File => local(
                Transport::File {
                    dir: settings.file_dir.clone(),
                    inner: AsyncFileTransport::new(&settings.file_dir),
                },
                FILE_CONCURRENCY,
            ),
            TransportKind::Sendmail => local(
                Transport::Sendmail {
                    command: settings.sendmail_command.clone(),
                    inner: AsyncSendmailTransport::new_with_command(&settings.sendmail_command),
                },
                1,
            ),
            TransportKind::Smtp => {
                let Some(s) = &settings.smtp else {
                    return Err(Error::Transport {
                        transient: false,
                        message: "transport = \"smtp\" needs a [mail.smtp] table".into(),
                    });
                };
                // A `password_command` runs here, once per transport: tokens it prints expire.
                let pool = SmtpPool::new(&s.with_secret()?)
                    .map_err(|message| Error::Transport { transient: false, message })?;
                Mailer {
                    transport: Transport::Smtp(Box::new(pool)),
                    retry: Retry {
                        max_attempts: s.max_attempts.max(1),
                        base: s.backoff_base,
                        max: BACKOFF_MAX,
                    },
                    concurrency: s.concurrency.max(1),
                    down: Mutex::new(None),
                    unconfirmed: AtomicUsize::new(0),
                }
            }
        })
    }

    /// How many [`send`](Self::send)s are worth running at once (SMTP `concurrency`;
    /// [`FILE_CONCURRENCY`] for the file transport, 1 for sendmail).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Sends one message, retrying transient failures with exponential backoff and
    /// jitter up to `max_attempts`.
    ///
    /// `Ok` means the server (or file, or sendmail) accepted it. Otherwise
    /// [`Error::Mail`] for a failure of this message (a reply to RCPT, DATA or the final
    /// dot; `transient`: 4xx, timeout, dropped connection; else 5xx), or
    /// [`Error::Transport`] when the session failed (unreachable, greeting, EHLO,
    /// STARTTLS, TLS, AUTH, MAIL FROM; `transient: false` when the configuration must
    /// change). A message whose final dot got no reply (timeout or dropped connection) is
    /// not retried here, as the server may have queued it: it comes back as a transient
    /// [`Error::Mail`], and a later run sends it again with the same Message-ID.
    ///
    /// Dropping the future mid-send is safe: the connection in use is closed, never
    /// reused.
    pub async fn send(&self, msg: &Message, recipient: &str) -> Result<()> {
        self.send_wire(&Wire::new(msg), recipient).await
    }

    /// Sends a message already formatted for the wire ([`Wire::new`], done where it was
    /// rendered), as [`Mailer::send`] does.
    pub async fn send_wire(&self, wire: &Wire, recipient: &str) -> Result<()> {
        if let Some(e) = self.down() {
            return Err(e);
        }
        let (envelope, email) = (&wire.envelope, &wire.bytes);
        match &self.transport {
            Transport::File { dir, inner } => {
                // The outbox is made when the first write finds it missing (or if it is
                // removed mid-run), not checked before every message.
                let mut written = inner.send_raw(envelope, email).await;
                if written.as_ref().err().and_then(|e| io_kind(e)) == Some(std::io::ErrorKind::NotFound) {
                    tokio::fs::create_dir_all(dir).await.map_err(|e| Error::Transport {
                        transient: false,
                        message: format!("cannot create the outbox folder {}: {e}", dir.display()),
                    })?;
                    written = inner.send_raw(envelope, email).await;
                }
                written.map(drop).map_err(|e| Error::Transport {
                    // A full disk empties; a missing permission needs a fix.
                    transient: io_kind(&e).is_some_and(|k| {
                        matches!(k, std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
                    }),
                    message: format!("cannot write a .eml file into {}: {e}", dir.display()),
                })
            }
            Transport::Sendmail { command, inner } => {
                // lettre does not pass on sendmail's exit status, so EX_TEMPFAIL cannot be
                // told from a hard failure; deferring keeps the message for the next run.
                inner.send_raw(envelope, email).await.map_err(|e| Error::Mail {
                    recipient: recipient.to_string(),
                    transient: true,
                    message: format!("{} failed: {e}", command.display()),
                })
            }
            Transport::Smtp(pool) => self.send_smtp(pool, envelope, email, recipient).await,
        }
    }

    async fn send_smtp(
        &self,
        pool: &SmtpPool,
        envelope: &lettre::address::Envelope,
        email: &[u8],
        recipient: &str,
    ) -> Result<()> {
        let masked = mask_email(recipient);
        let mut attempt = 1;
        loop {
            let failure = match pool.send(envelope, email).await {
                Ok(()) => {
                    tracing::debug!(to = %masked, attempt, "accepted by the SMTP server");
                    self.unconfirmed.store(0, Ordering::Relaxed);
                    return Ok(());
                }
                Err(failure) => failure,
            };
            if failure.unconfirmed {
                self.count_unconfirmed(&failure);
            }
            if !failure.transient || failure.unconfirmed || !self.retry.again_after(attempt) {
                // The session, not the message, failed; every later send would repeat it.
                if failure.stage == Stage::Session {
                    self.set_down(&failure);
                }
                let mut failure = failure;
                if attempt > 1 {
                    // The ledger counts runs; the tries within this one are told here.
                    failure.message = format!("{} (after {attempt} attempts)", failure.message);
                }
                return Err(to_error(failure, recipient));
            }
            let pause = self.retry.delay(attempt, None);
            tracing::warn!(
                "mail to {masked}: {}; attempt {attempt} of {}, retrying in {} ms",
                failure.message.replace(recipient, &masked),
                self.retry.max_attempts,
                pause.as_millis()
            );
            tokio::time::sleep(pause).await;
            attempt += 1;
            if let Some(e) = self.down() {
                return Err(e);
            }
        }
    }

    /// `check --connect`: reaches the transport without sending anything and returns a
    /// one-line verdict. For SMTP: a real EHLO, STARTTLS and AUTH, then QUIT.
    pub async fn check(&self) -> Result<String> {
        match &self.transport {
            Transport::File { dir, .. } => check_dir(dir),
            Transport::Sendmail { command, .. } => check_command(command),
            Transport::Smtp(pool) => pool
                .check()
                .await
                .map_err(|f| Error::Transport { transient: f.transient, message: f.message }),
        }
    }

    /// Ends the run politely: QUIT on every pooled SMTP connection. Dropping the mailer
    /// without it only closes the sockets.
    pub async fn close(&self) {
        if let Transport::Smtp(pool) = &self.transport {
            pool.close().await;
        }
    }

    fn down(&self) -> Option<Error> {
        let down = self.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        down.as_ref()
            .map(|(transient, message)| Error::Transport { transient: *transient, message: message.clone() })
    }

    /// After `concurrency` final dots in a row without a reply, and none confirmed, the
    /// session is what fails: the rest of the run is left pending instead of waiting
    /// `data_timeout` for each message.
    fn count_unconfirmed(&self, failure: &Failure) {
        let streak = self.unconfirmed.fetch_add(1, Ordering::Relaxed) + 1;
        if streak >= self.concurrency.max(2) {
            self.set_down(&Failure {
                stage: Stage::Session,
                transient: true,
                unconfirmed: false,
                message: format!(
                    "{streak} messages in a row got no reply to their final dot; the last: {}",
                    failure.message
                ),
            });
        }
    }

    fn set_down(&self, failure: &Failure) {
        let mut down = self.down.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        down.get_or_insert_with(|| (failure.transient, failure.message.clone()));
    }
}

fn to_error(failure: Failure, recipient: &str) -> Error {
    match failure.stage {
        Stage::Session => Error::Transport { transient: failure.transient, message: failure.message },
        Stage::Message => Error::Mail {
            recipient: recipient.to_string(),
            transient: failure.transient,
            message: failure.message,
        },
    }
}

/// The kind of the I/O error behind an error, if one is.
fn io_kind(e: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        next = err.source();
    }
    None
}

fn check_dir(dir: &Path) -> Result<String> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() && !m.permissions().readonly() => {
            Ok(format!("file: .eml files go into {}", dir.display()))
        }
        Ok(_) => Err(Error::Transport {
            transient: false,
            message: format!("mail.file.dir {} is not a writable folder", dir.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(format!("file: .eml files go into {} (created on the first message)", dir.display()))
        }
        Err(e) => Err(Error::Transport {
            transient: false,
            message: format!("mail.file.dir {}: {e}", dir.display()),
        }),
    }
}

fn check_command(command: &Path) -> Result<String> {
    let found = if command.components().count() > 1 {
        Some(command.to_path_buf()).filter(|p| is_executable(p))
    } else {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|d| d.join(command)).find(|p| is_executable(p))
        })
    };
    found.map(|p| format!("sendmail: messages are piped to {}", p.display())).ok_or_else(|| {
        Error::Transport {
            transient: false,
            message: format!("mail.sendmail.command {} is not an executable file", command.display()),
        }
    })
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_the_server_become_transport_errors_and_of_a_message_mail_errors() {
        let f = |stage, transient| Failure { stage, transient, unconfirmed: false, message: "m".into() };
        assert!(matches!(
            to_error(f(Stage::Session, true), "a@example.org"),
            Error::Transport { transient: true, .. }
        ));
        match to_error(f(Stage::Message, false), "a@example.org") {
            Error::Mail { recipient, transient: false, .. } => assert_eq!(recipient, "a@example.org"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_io_error_behind_a_wrapped_error_is_found() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let wrapped = Error::Io { path: "outbox".into(), source: full };
        assert_eq!(io_kind(&wrapped), Some(std::io::ErrorKind::StorageFull));
        assert_eq!(io_kind(&Error::NotFound("x".into())), None);
    }

    #[test]
    fn sendmail_check_finds_commands_on_the_path_and_refuses_missing_ones() {
        assert!(check_command(Path::new("sh")).is_ok());
        let err = check_command(Path::new("/nonexistent/sendmail")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/sendmail"), "{err}");
    }
}
