//! The subscribers: the list being validated (duplicates named by where they were first
//! listed) and the JSON Lines reader of `subscribers_file`.

use super::raw::RawSubscriber;
use super::validate::Validator;
use super::{Config, plain_words};
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
    /// The file's subscribers are checked but not kept: only their addresses' hashes are.
    pub(super) streaming: bool,
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

    /// Notes the address of a file subscriber that is not kept. A hash seen before is
    /// confirmed against the inline subscribers, then by `earlier_line`, which finds the
    /// file line that listed the address first (none: two addresses whose hashes clash).
    pub(super) fn push_key(
        &mut self,
        key: &str,
        line: usize,
        earlier_line: impl FnOnce(&str) -> Option<usize>,
    ) -> std::result::Result<(), Twice> {
        if self.hashes.insert(self.hasher.hash_one(key)) {
            return Ok(());
        }
        let first = match self.subscribers.iter().position(|s| s.key == key) {
            Some(i) => Some(self.origins[i]),
            None => earlier_line(key).filter(|l| *l < line).map(Origin::Line),
        };
        match first {
            Some(first) => Err(Twice { addr: key.to_string(), first }),
            None => Ok(()),
        }
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
    reader: impl BufRead,
    path: &Path,
    mut each: impl FnMut(usize, usize, RawSubscriber) -> Result<()>,
) -> Result<()> {
    let mut lines = JsonLines::new(reader, path);
    while let Some((n, line, raw)) = lines.next_raw()? {
        each(n, line, raw)?;
    }
    Ok(())
}

/// The pull side of [`read_jsonl`]: one subscriber line at a time.
pub(super) struct JsonLines<R> {
    reader: R,
    path: std::path::PathBuf,
    buf: String,
    /// Subscribers read so far, and the last line read.
    n: usize,
    line: usize,
}

impl<R: BufRead> JsonLines<R> {
    pub(super) fn new(reader: R, path: &Path) -> Self {
        JsonLines { reader, path: path.to_path_buf(), buf: String::new(), n: 0, line: 0 }
    }

    /// The next subscriber with its number (from 0) and line (from 1); `None` at the end.
    pub(super) fn next_raw(&mut self) -> Result<Option<(usize, usize, RawSubscriber)>> {
        let path = &self.path;
        let at = |line: usize, column: Option<usize>, key: Option<String>, message: String| Error::Config {
            path: path.clone(),
            line: Some(line),
            column,
            key,
            message,
        };
        let buf = &mut self.buf;
        loop {
            self.line += 1;
            let (n, line) = (self.n, self.line);
            buf.clear();
            let read = self.reader.by_ref().take(MAX_LINE).read_line(buf).map_err(|e| {
                let message = if e.kind() == std::io::ErrorKind::InvalidData {
                    "not valid UTF-8; expected a UTF-8 JSON Lines file".to_string()
                } else {
                    format!("cannot read: {e}")
                };
                at(line, None, None, message)
            })?;
            if read == 0 {
                return Ok(None);
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
            self.n += 1;
            return Ok(Some((n, line, raw)));
        }
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

/// The subscribers of a `subscribers_file` that the config does not hold
/// ([`Config::load_streaming`]), read again and checked as on loading, a chunk at a time.
pub struct FileSubscribers<'c> {
    cfg: &'c Config,
    path: std::path::PathBuf,
    lines: JsonLines<std::io::BufReader<std::fs::File>>,
}

impl Config {
    /// The file's subscribers, when the config does not hold them; `None` when it does, or
    /// there is no `subscribers_file`.
    pub fn file_subscribers(&self) -> Result<Option<FileSubscribers<'_>>> {
        let Some(file) = self.subscribers_file.as_ref().filter(|f| !f.held) else {
            return Ok(None);
        };
        let opened = std::fs::File::open(&file.path).map_err(|e| Error::Config {
            path: self.path.clone(),
            line: None,
            column: None,
            key: Some("subscribers_file".into()),
            message: format!(
                "cannot open {}: {e}; expected a JSON Lines file of subscribers",
                file.path.display()
            ),
        })?;
        Ok(Some(FileSubscribers {
            cfg: self,
            path: file.path.clone(),
            lines: JsonLines::new(std::io::BufReader::new(opened), &file.path),
        }))
    }

    /// The first subscriber listed, inline or in the file.
    pub fn first_subscriber(&self) -> Option<&Subscriber> {
        self.subscribers.first().or_else(|| self.subscribers_file.as_ref()?.first.as_deref())
    }
}

impl FileSubscribers<'_> {
    /// The next `max` subscribers (fewer at the end of the file, none after it). A line
    /// that no longer checks (the file changed since the config was loaded) is an error
    /// naming the file and line, as on loading.
    pub fn next_chunk(&mut self, max: usize) -> Result<Vec<Subscriber>> {
        let env = |_: &str| None;
        // Only file lines are checked, and their errors are moved to the file's lines.
        let validator = Validator { path: &self.cfg.path, text: "", base: Path::new("."), env: &env };
        let mut chunk = Vec::with_capacity(max.min(4096));
        while chunk.len() < max {
            let Some((n, line, raw)) = self.lines.next_raw()? else { break };
            let sub = validator
                .subscriber(&format!("subscribers[{n}]"), raw, &self.cfg.topics, &self.cfg.digest)
                .map_err(|e| relocate(e, &self.path, line))?;
            chunk.push(sub);
        }
        Ok(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a config with `inline` subscribers and `list` as its subscribers file.
    fn written(inline: &str, list: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("subs.jsonl"), list).unwrap();
        let config = dir.path().join("c.toml");
        let text = format!(
            "subscribers_file = \"subs.jsonl\"\n[mail]\nfrom = \"digest@example.org\"\n[topics.t]\nkeywords = [\"x\"]\n{inline}"
        );
        std::fs::write(&config, text).unwrap();
        (dir, config)
    }

    fn lines(n: usize) -> String {
        (0..n).map(|i| format!("{{\"email\": \"r{i}@example.org\"}}\n")).collect::<Vec<_>>().concat()
    }

    #[test]
    fn a_streamed_config_holds_only_the_inline_subscribers_and_reads_the_file_in_chunks() {
        let (_dir, path) = written("[[subscribers]]\nemail = \"ann@example.org\"\n", &lines(25));
        let cfg = Config::load_streaming(&path).unwrap();
        assert_eq!(cfg.subscribers.len(), 1);
        let file = cfg.subscribers_file.as_ref().unwrap();
        assert_eq!((file.count, file.held, file.weekly), (25, false, false));
        assert_eq!(cfg.first_subscriber().unwrap().key, "ann@example.org");
        let mut stream = cfg.file_subscribers().unwrap().unwrap();
        let sizes: Vec<usize> = std::iter::from_fn(|| {
            let chunk = stream.next_chunk(10).unwrap();
            (!chunk.is_empty()).then_some(chunk.len())
        })
        .collect();
        assert_eq!(sizes, [10, 10, 5]);

        let held = Config::load(&path).unwrap();
        assert_eq!(held.subscribers.len(), 26);
        assert!(held.file_subscribers().unwrap().is_none(), "a held file is not read again");
    }

    #[test]
    fn a_streamed_config_names_the_first_line_of_an_address_listed_twice() {
        let list = format!("{}{{\"email\": \"R3@example.org\"}}\n", lines(5));
        let (_dir, path) = written("", &list);
        let e = Config::load_streaming(&path).unwrap_err().to_string();
        let held = Config::load(&path).unwrap_err().to_string();
        assert!(e.contains("subs.jsonl:6:"), "{e}");
        assert!(e.contains("r3@example.org is listed twice (first on line 4)"), "{e}");
        assert_eq!(e, held, "streamed or held, the same error");

        let (_dir, path) = written("[[subscribers]]\nemail = \"r1@example.org\"\n", &lines(3));
        let e = Config::load_streaming(&path).unwrap_err().to_string();
        assert!(e.contains("subs.jsonl:2:") && e.contains("first as subscribers[0]"), "{e}");
    }

    #[test]
    fn a_file_line_broken_after_loading_is_refused_with_the_file_and_line_when_read_again() {
        let (dir, path) = written("", &lines(3));
        let cfg = Config::load_streaming(&path).unwrap();
        std::fs::write(dir.path().join("subs.jsonl"), format!("{}{{\"email\": \"nope\"}}\n", lines(2)))
            .unwrap();
        let mut stream = cfg.file_subscribers().unwrap().unwrap();
        let e = stream.next_chunk(10).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::CONFIG);
        let e = e.to_string();
        assert!(e.contains("subs.jsonl:3:") && e.contains("subscribers[2].email"), "{e}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 300,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Whatever a subscribers file holds (lines of JSON-ish text, arrays, comments, broken
        /// UTF-8 aside), the streaming reader never panics: it hands out subscribers numbered
        /// in order from line 1 on, or stops with an error naming this file and a line it read.
        #[test]
        fn the_streaming_reader_never_panics_and_every_error_names_the_file_and_a_line(
            lines in proptest::collection::vec(
                "(\\{\"email\": \"[a-z]{1,5}@[a-z]{1,5}\\.org\"(, \"topics\": \\[(\"t\"|3)\\])?\\}|#.{0,10}|\\[.{0,10}|\\PC{0,20}|)",
                0..12,
            )
        ) {
            let text = lines.join("\n");
            let path = Path::new("subs.jsonl");
            let mut reader = JsonLines::new(text.as_bytes(), path);
            let mut expected = 0;
            loop {
                match reader.next_raw() {
                    Ok(Some((n, line, _))) => {
                        proptest::prop_assert_eq!(n, expected);
                        proptest::prop_assert!(line >= 1 && line <= lines.len().max(1));
                        expected += 1;
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let e = e.to_string();
                        proptest::prop_assert!(e.starts_with("subs.jsonl:"), "{}", e);
                        break;
                    }
                }
            }
        }
    }
}
