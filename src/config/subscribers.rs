//! The subscribers: the list being validated (duplicates named by where they were first
//! listed) and the JSON Lines reader of `subscribers_file`.

use super::plain_words;
use super::raw::RawSubscriber;
use crate::error::{Error, Result};
use crate::model::Subscriber;
use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::io::{BufRead, Read};
use std::path::Path;

/// Where a subscriber was listed: the duplicate-address error names the first place.
#[derive(Debug, Clone, Copy)]
pub(super) enum Origin {
    /// `[[subscribers]]` number i (from 0) in the config file.
    Inline(usize),
    /// A line (from 1) of the `subscribers_file`.
    Line(usize),
}

/// An address listed a second time, and where it was listed first.
pub(super) struct Twice {
    pub(super) addr: String,
    pub(super) first: Origin,
}

/// The validated subscribers so far, and where each was listed.
#[derive(Default)]
pub(super) struct SubscriberList {
    pub(super) subscribers: Vec<Subscriber>,
    pub(super) origins: Vec<Origin>,
    /// Hashes of the addresses so far. A hit is confirmed against the list itself, so a
    /// list of 100,000 does not hold a second copy of every address while it loads.
    pub(super) hashes: HashSet<u64>,
    pub(super) hasher: RandomState,
}

impl SubscriberList {
    pub(super) fn push(&mut self, sub: Subscriber, origin: Origin) -> std::result::Result<(), Twice> {
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
pub(super) const MAX_LINE: u64 = 64 * 1024;

/// Reads subscribers from JSON Lines, one line at a time: one JSON object per line; blank
/// lines and lines starting with `#` are skipped. Calls `each(n, line, subscriber)` with the
/// subscriber's number in the file (from 0) and its line (from 1). Errors name `path`, the
/// line, and the field when one is at fault.
pub(super) fn read_jsonl(
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
        let raw = parse_subscriber(text).map_err(|(field, e)| {
            let key = format!("subscribers[{n}]");
            let key = match field {
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

/// One subscriber line, read once. On failure, the path of the field at fault
/// (`topics[1]`; `None` when the object as a whole is, e.g. a missing `email`) and
/// serde_json's error.
fn parse_subscriber(line: &str) -> std::result::Result<RawSubscriber, (Option<String>, serde_json::Error)> {
    let mut de = serde_json::Deserializer::from_str(line);
    let raw = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = super::dotted_key(e.path());
        (field, e.into_inner())
    })?;
    de.end().map_err(|e| (None, e))?;
    Ok(raw)
}

/// Moves a config error to a line of another file (the `subscribers_file`).
pub(super) fn relocate(e: Error, file: &Path, line: usize) -> Error {
    match e {
        Error::Config { key, message, .. } => {
            Error::Config { path: file.to_path_buf(), line: Some(line), column: None, key, message }
        }
        other => other,
    }
}

/// The line (from 1) of a byte offset in `text`.
pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).unwrap_or(text).matches('\n').count() + 1
}

/// `web.secret` → `secret`: the field name's stem for messages.
pub(super) fn key_tail(prefix: &str) -> &str {
    prefix.rsplit('.').next().unwrap_or(prefix)
}
