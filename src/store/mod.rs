//! SQLite storage: papers, what each subscriber has seen, the delivery ledger, runs and
//! HTTP validators. Migrations in `migrations/NNNN_name.sql` are applied on open, in WAL mode.

mod committer;
mod ledger;
mod readers;

pub use committer::{Committer, joined};
pub use ledger::{Delivery, Item, Kind, NewDelivery, Outcome, RunRecord, Status};
pub use readers::{Pending, Reader, ReaderOrigin, SentEdition, Suppression, Votes};

use crate::error::{Error, Result};
use crate::model::{Paper, PaperId};
use crate::source::http::Validators;
use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Schema versions, applied in order; `PRAGMA user_version` records how far a database got.
const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init", include_str!("migrations/0001_init.sql")),
    ("0002_web", include_str!("migrations/0002_web.sql")),
    ("0003_indexes", include_str!("migrations/0003_indexes.sql")),
];

/// The database. A mutex makes it shareable across the async tasks of a run and the
/// thread that commits its send outcomes (behind an `Arc`); every method holds it only for
/// its own statements, which for a durable commit includes the fsync. Code on the async
/// runtime that may wait behind such a commit calls it through `spawn_blocking`.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The file's device and inode when it was opened: a commit first checks that the
    /// path still names that file, so a database deleted or replaced mid-run stops the
    /// run instead of taking writes nobody will read.
    identity: Option<FileId>,
}

/// A file's device and inode.
type FileId = (u64, u64);

#[cfg(unix)]
fn file_id(path: &Path) -> std::io::Result<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn file_id(path: &Path) -> std::io::Result<FileId> {
    std::fs::metadata(path).map(|_| (0, 0))
}

/// Each source's last fetch, for `status`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SourceStatus {
    pub source: String,
    pub last_attempt: String,
    pub last_success: Option<String>,
    pub last_error: Option<String>,
    pub last_count: u64,
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let conn = Connection::open(path).map_err(|e| Error::store(path, e))?;
        let mut store = Store { conn: Mutex::new(conn), path: path.to_path_buf(), identity: None };
        store.init()?;
        store.identity = Some(file_id(path).map_err(|e| Error::io(path, e))?);
        Ok(store)
    }

    /// Opens an existing database for reading only (`status`): nothing is created,
    /// migrated or written, so it works on a read-only file or folder, and beside a run.
    pub fn open_read_only(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .and_then(|c| c.busy_timeout(std::time::Duration::from_secs(5)).map(|()| c))
            .and_then(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)).map(|v| (c, v)));
        let (conn, version) = match conn {
            Ok(opened) => opened,
            // A WAL database whose -shm file is gone cannot be opened read-only in a folder
            // this user cannot write; as nothing else can be writing there either, it is
            // read as an immutable file.
            Err(_) => {
                let escaped =
                    path.display().to_string().replace('%', "%25").replace('?', "%3f").replace('#', "%23");
                let uri = format!("file:{escaped}?immutable=1");
                let c = Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
                    .map_err(|e| Error::store(path, e))?;
                let v = c
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .map_err(|e| Error::store(path, e))?;
                (c, v)
            }
        };
        if version != MIGRATIONS.len() as i64 {
            return Err(Error::StoreSchema {
                path: path.to_path_buf(),
                message: format!(
                    "schema version {version}, this paper-digest reads {}; run any other command once to migrate it",
                    MIGRATIONS.len()
                ),
            });
        }
        Ok(Store { conn: Mutex::new(conn), path: path.to_path_buf(), identity: None })
    }

    /// Fails when the database path no longer names the file this store opened.
    pub(crate) fn check_file(&self) -> Result<()> {
        let Some(opened) = self.identity else { return Ok(()) };
        let what = match file_id(&self.path) {
            Ok(now) if now == opened => return Ok(()),
            Ok(_) => "replaced by another file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "deleted",
            Err(e) => return Err(Error::io(&self.path, e)),
        };
        Err(Error::StoreReplaced { path: self.path.clone(), what: what.into() })
    }

    /// An in-memory database, for tests and benchmarks.
    pub fn open_in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|e| Error::store(":memory:", e))?;
        let store = Store { conn: Mutex::new(conn), path: PathBuf::from(":memory:"), identity: None };
        store.init()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init(&self) -> Result<()> {
        let mut conn = self.conn();
        // WAL lets `status` read while a run writes; NORMAL is durable at each checkpoint,
        // and the commits that record a delivery switch to FULL for themselves.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 5000;",
        )
        .map_err(|e| Error::store(&self.path, e))?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(|e| Error::store(&self.path, e))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(Error::StoreSchema {
                path: self.path.clone(),
                message: format!(
                    "schema version {version} is newer than this paper-digest knows ({}); upgrade paper-digest",
                    MIGRATIONS.len()
                ),
            });
        }
        for (i, (name, sql)) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = write_transaction(&mut conn).map_err(|e| Error::store(&self.path, e))?;
            tx.execute_batch(sql).map_err(|e| Error::store(&self.path, e))?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|e| Error::store(&self.path, e))?;
            tx.commit().map_err(|e| Error::store(&self.path, e))?;
            tracing::debug!(migration = name, "applied migration");
        }
        Ok(())
    }

    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves no half-done transaction (rusqlite rolls
        // back on drop), so a poisoned mutex is safe to keep using.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> Error {
        Error::store(&self.path, e)
    }

    /// Stores what a fetch brought, in one transaction: papers merged with what is already
    /// stored (the latest Hugging Face upvotes win), their sources, and the HTTP validators
    /// that let the next fetch ask "changed since?" (`validators` is the client's whole map
    /// after the fetch). Returns how many papers are new.
    pub fn record_fetch(
        &self,
        papers: &[Paper],
        validators: &HashMap<String, Validators>,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn).map_err(|e| self.err(e))?;
        let now_s = ts(now);
        let mut new = 0;
        {
            let mut get =
                tx.prepare_cached("SELECT data FROM papers WHERE id = ?1").map_err(|e| self.err(e))?;
            let mut put = tx
                .prepare_cached(
                    "INSERT INTO papers (id, data, upvotes, published, first_seen, last_seen)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?5)
                     ON CONFLICT (id) DO UPDATE SET data = excluded.data, upvotes = excluded.upvotes,
                        published = excluded.published, last_seen = excluded.last_seen",
                )
                .map_err(|e| self.err(e))?;
            let mut src = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO paper_sources (paper_id, source, first_seen) VALUES (?1, ?2, ?3)",
                )
                .map_err(|e| self.err(e))?;
            for p in papers {
                let stored: Option<String> =
                    get.query_row([p.id.as_str()], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
                let merged = match stored.as_deref().map(serde_json::from_str::<Paper>) {
                    Some(Ok(mut old)) => {
                        let fresh_votes = p.sources.iter().any(|s| s == "huggingface").then_some(p.upvotes);
                        old.merge(p.clone());
                        if let Some(v) = fresh_votes {
                            old.upvotes = v;
                        }
                        old
                    }
                    // A row that no longer parses (older layout) is replaced by the fresh copy.
                    Some(Err(_)) => p.clone(),
                    None => {
                        new += 1;
                        p.clone()
                    }
                };
                let data = serde_json::to_string(&merged).map_err(|e| self.err(json_err(e)))?;
                put.execute(params![
                    merged.id.as_str(),
                    data,
                    merged.upvotes,
                    merged.published.map(ts),
                    now_s
                ])
                .map_err(|e| self.err(e))?;
                for s in &merged.sources {
                    src.execute(params![merged.id.as_str(), s, now_s]).map_err(|e| self.err(e))?;
                }
            }
            sync_validators(&tx, validators, now).map_err(|e| self.err(e))?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(new)
    }

    /// Records one source's fetch result for `status`.
    pub fn record_source(
        &self,
        source: &str,
        now: DateTime<Utc>,
        result: std::result::Result<usize, &str>,
    ) -> Result<()> {
        let now_s = ts(now);
        let (success, error, count) = match result {
            Ok(n) => (Some(now_s.clone()), None, n as i64),
            Err(e) => (None, Some(e.to_string()), 0),
        };
        self.conn()
            .execute(
                "INSERT INTO source_status (source, last_attempt, last_success, last_error, last_count)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (source) DO UPDATE SET last_attempt = excluded.last_attempt,
                    last_success = COALESCE(excluded.last_success, source_status.last_success),
                    last_error = excluded.last_error, last_count = excluded.last_count",
                params![source, now_s, success, error, count],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    pub fn source_statuses(&self) -> Result<Vec<SourceStatus>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT source, last_attempt, last_success, last_error, last_count FROM source_status ORDER BY source")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(SourceStatus {
                    source: r.get(0)?,
                    last_attempt: r.get(1)?,
                    last_success: r.get(2)?,
                    last_error: r.get(3)?,
                    last_count: r.get::<_, i64>(4)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// The validators stored for conditional GET, by URL.
    pub fn http_validators(&self) -> Result<HashMap<String, Validators>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare("SELECT url, etag, last_modified FROM http_cache").map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, Validators { etag: r.get(1)?, last_modified: r.get(2)? }))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Papers first reported or published since `since`: the candidates of a run. Not
    /// those merely reported again (`last_seen`): every fetch of a week-long window for a
    /// weekly subscriber would otherwise put the whole week before the daily ones.
    pub fn candidates(&self, since: DateTime<Utc>) -> Result<Vec<Paper>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(CANDIDATES).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([ts(since)], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for data in rows {
            let data = data.map_err(|e| self.err(e))?;
            match serde_json::from_str::<Paper>(&data) {
                Ok(p) => out.push(p),
                Err(e) => tracing::warn!("skipping a stored paper that no longer parses: {e}"),
            }
        }
        // By id, as SQLite's BINARY collation would have ordered them.
        out.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// The stored papers with these ids, in the order given (missing ones left out).
    pub fn papers(&self, ids: &[PaperId]) -> Result<Vec<Paper>> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT data FROM papers WHERE id = ?1").map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let data: Option<String> =
                stmt.query_row([id.as_str()], |r| r.get(0)).optional().map_err(|e| self.err(e))?;
            if let Some(p) = data.and_then(|d| serde_json::from_str::<Paper>(&d).ok()) {
                out.push(p);
            }
        }
        Ok(out)
    }

    /// The sources that reported a paper, in the order they first did.
    pub fn paper_sources(&self, id: &PaperId) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT source FROM paper_sources WHERE paper_id = ?1 ORDER BY first_seen, source",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([id.as_str()], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    pub fn paper_count(&self) -> Result<u64> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM papers", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The papers among the candidates since `since` ([`Store::candidates`]) that a
    /// subscriber has been sent: all a ranking needs, however long the history.
    pub fn seen_since(&self, subscriber: &str, since: DateTime<Utc>) -> Result<HashSet<PaperId>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(SEEN_SINCE).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![subscriber, ts(since)], |r| r.get::<_, String>(0).map(PaperId))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Forgets what subscribers were sent before `before`; returns how many rows went.
    /// A paper sent then was first stored before then too, so it is no candidate of a
    /// window that starts later: the row would never be asked for again.
    pub fn prune_seen(&self, before: DateTime<Utc>) -> Result<usize> {
        let mut conn = self.conn();
        let tx = write_transaction(&mut conn).map_err(|e| self.err(e))?;
        let n = tx.execute(PRUNE_SEEN, [ts(before)]).map_err(|e| self.err(e))?;
        self.check_file()?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(n)
    }

    /// Every paper a subscriber has been sent (that is not pruned yet).
    pub fn seen(&self, subscriber: &str) -> Result<HashSet<PaperId>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT paper_id FROM seen WHERE subscriber = ?1")
            .map_err(|e| self.err(e))?;
        let rows =
            stmt.query_map([subscriber], |r| r.get::<_, String>(0).map(PaperId)).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }
}

/// The papers first stored or published since ?1, through `papers_by_first_seen` and
/// `papers_by_published` (migration 0003). Not `ORDER BY id`: SQLite would then walk the
/// whole table in key order rather than sort the few rows the indexes find.
const CANDIDATES: &str = "SELECT data FROM papers WHERE first_seen >= ?1 OR published >= ?1";

/// What subscriber ?1 was sent among the candidates since ?2 (through `seen`'s key).
const SEEN_SINCE: &str = "SELECT s.paper_id FROM seen s JOIN papers p ON p.id = s.paper_id
     WHERE s.subscriber = ?1 AND (p.first_seen >= ?2 OR p.published >= ?2)";

/// The `seen` rows older than ?1 (through `seen_by_seen_at`).
const PRUNE_SEEN: &str = "DELETE FROM seen WHERE seen_at < ?1";

/// A transaction that takes the write lock when it begins (`BEGIN IMMEDIATE`). Every
/// transaction that writes uses it: a deferred one that reads first takes a snapshot, and
/// if another connection commits before its first write, that write fails at once with
/// `SQLITE_BUSY_SNAPSHOT`, which no busy timeout waits out. Taking the lock up front makes
/// a concurrent writer wait (up to the busy timeout) instead.
pub(crate) fn write_transaction(conn: &mut Connection) -> rusqlite::Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
}

/// Makes the stored validators equal `validators`, writing only what changed, and forgets
/// those not refreshed for [`VALIDATOR_TTL_DAYS`]: one Hugging Face URL a day would
/// otherwise accumulate forever. A forgotten URL costs one unconditional fetch.
fn sync_validators(
    tx: &rusqlite::Transaction<'_>,
    validators: &HashMap<String, Validators>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    let stored: HashMap<String, Validators> = {
        let mut stmt = tx.prepare_cached("SELECT url, etag, last_modified FROM http_cache")?;
        stmt.query_map([], |r| Ok((r.get(0)?, Validators { etag: r.get(1)?, last_modified: r.get(2)? })))?
            .collect::<rusqlite::Result<_>>()?
    };
    let now_s = ts(now);
    let mut put = tx.prepare_cached(
        "INSERT INTO http_cache (url, etag, last_modified, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (url) DO UPDATE SET etag = excluded.etag, last_modified = excluded.last_modified,
            updated_at = excluded.updated_at",
    )?;
    for (url, v) in validators.iter().filter(|(url, v)| stored.get(*url) != Some(*v)) {
        put.execute(params![url, v.etag, v.last_modified, now_s])?;
    }
    let mut delete = tx.prepare_cached("DELETE FROM http_cache WHERE url = ?1")?;
    for url in stored.keys().filter(|url| !validators.contains_key(*url)) {
        delete.execute([url])?;
    }
    let cutoff = now - chrono::Duration::days(VALIDATOR_TTL_DAYS);
    tx.execute("DELETE FROM http_cache WHERE updated_at < ?1", [ts(cutoff)])?;
    Ok(())
}

/// How long a URL's validators are kept without being refreshed.
const VALIDATOR_TTL_DAYS: i64 = 45;

fn json_err(e: serde_json::Error) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paper(id: &str, source: &str, upvotes: u32) -> Paper {
        Paper {
            id: PaperId(id.into()),
            title: format!("Paper {id}"),
            upvotes,
            sources: vec![source.into()],
            ..Paper::default()
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// `EXPLAIN QUERY PLAN`'s steps for `sql`.
    fn plan(store: &Store, sql: &str) -> Vec<String> {
        let conn = store.conn();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        // The plan does not depend on the values: the parameters stay unbound.
        let mut rows = stmt.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get::<_, String>(3).unwrap());
        }
        steps
    }

    #[test]
    fn candidates_seen_and_pruning_are_read_through_indexes_not_whole_tables() {
        let store = Store::open_in_memory().unwrap();
        let candidates = plan(&store, CANDIDATES);
        assert!(candidates.iter().any(|s| s.contains("papers_by_first_seen")), "{candidates:?}");
        assert!(candidates.iter().any(|s| s.contains("papers_by_published")), "{candidates:?}");
        for (sql, steps) in [
            (CANDIDATES, candidates.clone()),
            (SEEN_SINCE, plan(&store, SEEN_SINCE)),
            (PRUNE_SEEN, plan(&store, PRUNE_SEEN)),
        ] {
            assert!(
                steps.iter().all(|s| !(s.starts_with("SCAN papers")
                    || s.starts_with("SCAN seen")
                    || s.starts_with("SCAN s"))),
                "{sql}: {steps:?}"
            );
        }
    }

    #[test]
    fn migrations_run_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        drop(Store::open(&path).unwrap());
        let store = Store::open(&path).unwrap();
        let v: i64 = store.conn().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(v, MIGRATIONS.len() as i64);
        let mode: String = store.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn a_database_from_a_newer_paper_digest_is_refused_by_its_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        Connection::open(&path).unwrap().pragma_update(None, "user_version", 99).unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(matches!(err, Error::StoreSchema { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains("schema version 99") && message.contains("upgrade paper-digest"),
            "{message}"
        );
        assert!(!message.contains("parameter"), "{message}");
        let err = Store::open_read_only(&path).unwrap_err().to_string();
        assert!(err.contains("schema version 99"), "{err}");
    }

    #[test]
    fn upsert_keeps_one_row_the_latest_upvotes_and_every_source() {
        let store = Store::open_in_memory().unwrap();
        let now = at("2024-11-27T07:00:00Z");
        assert_eq!(
            store.record_fetch(&[paper("2411.1", "huggingface", 5)], &HashMap::new(), now).unwrap(),
            1
        );
        assert_eq!(store.record_fetch(&[paper("2411.1", "arxiv", 0)], &HashMap::new(), now).unwrap(), 0);
        assert_eq!(
            store.record_fetch(&[paper("2411.1", "huggingface", 9)], &HashMap::new(), now).unwrap(),
            0
        );
        let got = store.papers(&[PaperId("2411.1".into())]).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].upvotes, 9);
        assert_eq!(store.paper_sources(&got[0].id).unwrap(), ["arxiv", "huggingface"]);
        assert_eq!(store.paper_count().unwrap(), 1);
    }

    #[test]
    fn validators_are_synced_and_old_ones_forgotten() {
        let store = Store::open_in_memory().unwrap();
        let v = |tag: &str| Validators { etag: Some(tag.into()), last_modified: None };
        let map =
            HashMap::from([("http://x/old".to_string(), v("1")), ("http://x/kept".to_string(), v("2"))]);
        store.record_fetch(&[], &map, at("2024-10-01T07:00:00Z")).unwrap();
        // Two months later (a run loads the stored map, then its client updates it):
        // /kept changed, /gone is new; then the client dropped /gone (no validators sent).
        let mut map = store.http_validators().unwrap();
        map.insert("http://x/kept".into(), v("3"));
        map.insert("http://x/gone".into(), v("4"));
        store.record_fetch(&[], &map, at("2024-11-27T07:00:00Z")).unwrap();
        let mut map = store.http_validators().unwrap();
        assert!(!map.contains_key("http://x/old"), "not refreshed for 57 days: forgotten");
        map.remove("http://x/gone");
        store.record_fetch(&[], &map, at("2024-11-27T08:00:00Z")).unwrap();
        let got = store.http_validators().unwrap();
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got["http://x/kept"], v("3"));
    }

    #[test]
    fn two_processes_storing_fetches_at_once_wait_for_each_other_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let stores = [Store::open(&path).unwrap(), Store::open(&path).unwrap()];
        let papers: Vec<Paper> = (0..20).map(|i| paper(&format!("2411.{i}"), "arxiv", 0)).collect();
        std::thread::scope(|scope| {
            let workers: Vec<_> = stores
                .iter()
                .map(|store| {
                    // Each fetch reads the stored copies before writing the merged ones.
                    scope.spawn(|| {
                        (0..100).try_for_each(|_| {
                            store.record_fetch(&papers, &HashMap::new(), at("2024-11-27T07:00:00Z")).map(drop)
                        })
                    })
                })
                .collect();
            for worker in workers {
                worker.join().unwrap().unwrap();
            }
        });
    }

    #[test]
    fn a_paper_reported_again_is_no_candidate_of_a_window_that_starts_after_it_arrived() {
        let store = Store::open_in_memory().unwrap();
        let mut old = paper("2411.1", "arxiv", 0);
        old.published = Some(at("2024-11-21T00:00:00Z"));
        store.record_fetch(&[old.clone()], &HashMap::new(), at("2024-11-21T07:00:00Z")).unwrap();
        // A weekly subscriber's fetch of the whole week reports it again today.
        store
            .record_fetch(&[old, paper("2411.2", "arxiv", 0)], &HashMap::new(), at("2024-11-27T07:00:00Z"))
            .unwrap();
        let daily = store.candidates(at("2024-11-25T07:00:00Z")).unwrap();
        assert_eq!(daily.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["2411.2"]);
        let weekly = store.candidates(at("2024-11-20T07:00:00Z")).unwrap();
        assert_eq!(weekly.len(), 2);
    }

    #[test]
    fn seen_rows_are_loaded_for_the_window_only_and_pruned_once_old() {
        let store = Store::open_in_memory().unwrap();
        store
            .record_fetch(&[paper("2411.1", "arxiv", 0)], &HashMap::new(), at("2024-10-01T07:00:00Z"))
            .unwrap();
        store
            .record_fetch(&[paper("2411.2", "arxiv", 0)], &HashMap::new(), at("2024-11-27T07:00:00Z"))
            .unwrap();
        let seen = |id: &str, when: &str| {
            store
                .conn()
                .execute("INSERT INTO seen VALUES ('a@x.org', ?1, '2024-01-01', ?2)", [id, when])
                .unwrap();
        };
        seen("2411.1", "2024-10-01T08:00:00.000Z");
        seen("2411.2", "2024-11-27T08:00:00.000Z");
        let recent = store.seen_since("a@x.org", at("2024-11-20T00:00:00Z")).unwrap();
        assert_eq!(recent, HashSet::from([PaperId("2411.2".into())]));
        assert_eq!(store.prune_seen(at("2024-11-01T00:00:00Z")).unwrap(), 1);
        assert_eq!(store.seen("a@x.org").unwrap(), recent);
    }

    #[test]
    fn validators_round_trip() {
        let store = Store::open_in_memory().unwrap();
        let mut v = HashMap::new();
        v.insert("http://x/a".to_string(), Validators { etag: Some("\"abc\"".into()), last_modified: None });
        store.record_fetch(&[], &v, at("2024-11-27T07:00:00Z")).unwrap();
        assert_eq!(store.http_validators().unwrap(), v);
    }
}
