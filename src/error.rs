//! The one error type of the crate. Each variant carries what failed (file, key, URL,
//! recipient) so the message alone tells the user what to fix.

use std::path::PathBuf;

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes, as documented in the README (sysexits-style where one exists).
pub mod exit {
    /// Everything that had to be done was done.
    pub const OK: u8 = 0;
    /// Some subscribers (or sources) failed; the others went through.
    pub const PARTIAL: u8 = 1;
    /// Temporary failure: no source or no mail server reachable, the mail server refused
    /// the session for now, the database busy or its disk full. Retry later.
    pub const TEMPFAIL: u8 = 75;
    /// The configuration is wrong (including what the mail server says about it: refused
    /// credentials, an untrusted certificate, no STARTTLS); retrying will not help.
    pub const CONFIG: u8 = 78;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A configuration problem: broken TOML, unknown key, wrong type, dangling reference.
    #[error("{}: {message}", location(path, *line, *column, key.as_deref()))]
    Config { path: PathBuf, line: Option<usize>, column: Option<usize>, key: Option<String>, message: String },

    /// Fetching a URL failed (connection, timeout, non-2xx status, oversized body).
    #[error("fetching {url}: {message}")]
    Fetch {
        url: String,
        status: Option<u16>,
        /// Whether trying again later may help (5xx, 429, connection errors).
        transient: bool,
        message: String,
    },

    /// A response arrived but its body is not what the API promises.
    #[error("parsing {url}{}: {message}", position.as_deref().map(|p| format!(" at {p}")).unwrap_or_default())]
    Parse { url: String, position: Option<String>, message: String },

    /// Every enabled source failed, so there is nothing trustworthy to send.
    #[error("every source failed ({failed} of {failed}{}); nothing was sent", names(sources))]
    AllSourcesFailed { failed: usize, sources: Vec<String> },

    /// The SQLite database could not be opened, migrated, read or written.
    #[error("database {}: {source}{}", path.display(), store_hint(source))]
    Store {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// The database file was deleted or replaced by another file while a run used it.
    /// Writing on would record outcomes in a file nobody reads again.
    #[error(
        "database {}: the file was {what} while this run used it; stopped before sending more. \
         Restore the database that was moved away before the next run, or it will plan every digest afresh",
        path.display()
    )]
    StoreReplaced { path: PathBuf, what: String },

    /// Another `run` or `daemon` holds the single-instance lock.
    #[error("another paper-digest run holds the lock {} (pid {pid}); try again when it has finished", path.display())]
    Locked { path: PathBuf, pid: String },

    /// A template failed to compile or render.
    #[error("template {name}: {message}")]
    Render { name: String, message: String },

    /// Building or sending the message for one recipient failed.
    #[error("mail to {recipient}: {message}")]
    Mail {
        recipient: String,
        /// 4xx, timeouts, dropped connections: a later attempt may succeed.
        transient: bool,
        message: String,
    },

    /// The mail transport itself cannot be used: the server is unreachable or refused the
    /// session (greeting, EHLO, STARTTLS, TLS verification, AUTH, sender). No subscriber is
    /// to blame; their digests stay pending.
    #[error("mail transport: {message}")]
    Transport {
        /// True: try again later as is (exit 75). False: the configuration must change
        /// first (credentials, TLS trust, security mode, sender; exit 78).
        transient: bool,
        message: String,
    },

    /// A file or folder could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The user asked for something that does not exist (unknown subscriber, paper, edition).
    #[error("{0}")]
    NotFound(String),

    /// A command-line argument is malformed (an address that is not one): the message
    /// names it and what was expected.
    #[error("{0}")]
    Usage(String),

    /// A command's own output (standard output, the man page being built) could not be
    /// written: there is no file to name, so `what` says which output.
    #[error("writing {what}: {source}")]
    Output {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The database was written by a different version of paper-digest: `message` says
    /// which, and what to run.
    #[error("database {}: {message}", path.display())]
    StoreSchema { path: PathBuf, message: String },

    /// The machinery around the work failed (the async runtime, a signal handler, the
    /// scheduler, the HTTP client, encoding our own JSON), not anything the user wrote or
    /// a server said: `what` was being done.
    #[error("{what}: {message}")]
    Internal { what: String, message: String },
}

/// Whether a database error goes away by itself: another process holds the database, or
/// its disk is full (or refuses writes for now: SQLite reports a file-size limit and most
/// write failures as I/O errors).
fn store_busy_or_full(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(C::DatabaseBusy | C::DatabaseLocked | C::DiskFull | C::SystemIoFailure)
    )
}

fn store_hint(e: &rusqlite::Error) -> &'static str {
    use rusqlite::ErrorCode as C;
    match e.sqlite_error_code() {
        Some(C::DatabaseBusy | C::DatabaseLocked) => {
            " (another process holds it; paper-digest exits 75 and the next run tries again)"
        }
        Some(C::DiskFull | C::SystemIoFailure) => {
            " (could not write: is the disk full? paper-digest exits 75 and the next run tries again)"
        }
        Some(C::ReadOnly) => " (the file or its folder is not writable by this user)",
        _ => "",
    }
}

/// `: a, b` for the failed sources' names, or nothing when none is known.
fn names(sources: &[String]) -> String {
    if sources.is_empty() { String::new() } else { format!(": {}", sources.join(", ")) }
}

fn location(path: &std::path::Path, line: Option<usize>, column: Option<usize>, key: Option<&str>) -> String {
    use std::fmt::Write;
    let mut s = path.display().to_string();
    if let Some(line) = line {
        let _ = write!(s, ":{line}");
        if let Some(column) = column {
            let _ = write!(s, ":{column}");
        }
    }
    if let Some(key) = key {
        let _ = write!(s, ": key `{key}`");
    }
    s
}

impl Error {
    /// The process exit code this error maps to when it ends a command.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config { .. }
            | Error::Transport { transient: false, .. }
            | Error::StoreReplaced { .. } => exit::CONFIG,
            e if e.is_transient() => exit::TEMPFAIL,
            _ => exit::PARTIAL,
        }
    }

    /// Whether trying the same thing again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Fetch { transient: true, .. }
                | Error::Mail { transient: true, .. }
                | Error::Transport { transient: true, .. }
                | Error::AllSourcesFailed { .. }
                | Error::Locked { .. }
        ) || match self {
            Error::Store { source, .. } => store_busy_or_full(source),
            Error::Io { source, .. } | Error::Output { source, .. } => {
                source.kind() == std::io::ErrorKind::StorageFull
            }
            _ => false,
        }
    }

    pub(crate) fn store(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Error::Store { path: path.into(), source }
    }

    pub(crate) fn internal(what: impl Into<String>, e: impl std::fmt::Display) -> Self {
        Error::Internal { what: what.into(), message: e.to_string() }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    pub(crate) fn config(
        path: impl Into<PathBuf>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::Config {
            path: path.into(),
            line: None,
            column: None,
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_failed_names_the_sources() {
        let e = Error::AllSourcesFailed { failed: 2, sources: vec!["huggingface".into(), "arxiv".into()] };
        assert_eq!(e.to_string(), "every source failed (2 of 2: huggingface, arxiv); nothing was sent");
        assert_eq!(e.exit_code(), exit::TEMPFAIL);
    }

    #[test]
    fn config_error_names_file_line_and_key() {
        let e = Error::Config {
            path: "cfg.toml".into(),
            line: Some(3),
            column: Some(7),
            key: Some("digest.max_paper".into()),
            message: "unknown key".into(),
        };
        assert_eq!(e.to_string(), "cfg.toml:3:7: key `digest.max_paper`: unknown key");
        assert_eq!(e.exit_code(), exit::CONFIG);
    }

    #[test]
    fn a_busy_or_full_database_is_temporary_and_names_the_path() {
        let busy =
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        let e = Error::store("/var/lib/paper-digest/db.sqlite3", busy);
        assert_eq!(e.exit_code(), exit::TEMPFAIL);
        assert!(e.to_string().contains("/var/lib/paper-digest/db.sqlite3"), "{e}");
        let full =
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        let e = Error::store("db.sqlite3", full);
        assert_eq!(e.exit_code(), exit::TEMPFAIL);
        assert!(e.to_string().contains("disk full"), "{e}");
        let corrupt =
            rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT), None);
        assert_eq!(Error::store("db.sqlite3", corrupt).exit_code(), exit::PARTIAL);
    }

    #[test]
    fn a_session_the_configuration_must_fix_exits_78() {
        let e = Error::Transport { transient: false, message: "535 bad credentials".into() };
        assert_eq!(e.exit_code(), exit::CONFIG);
        assert!(!e.is_transient());
    }

    #[test]
    fn transient_failures_map_to_tempfail() {
        let e = Error::Transport { transient: true, message: "connection refused".into() };
        assert_eq!(e.exit_code(), exit::TEMPFAIL);
        assert!(e.is_transient());
    }

    #[test]
    fn output_and_usage_errors_say_what_they_are_about_without_a_made_up_path() {
        let e = Error::Output {
            what: "standard output",
            source: std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left on device"),
        };
        assert_eq!(e.to_string(), "writing standard output: no space left on device");
        assert!(e.is_transient());
        let e = Error::Usage("`x` is not an email address; expected name@example.org".into());
        assert_eq!(e.exit_code(), exit::PARTIAL, "as before: a mistyped argument is not a config error");
        assert!(!e.is_transient());
    }
}
