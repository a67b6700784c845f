//! The outbox ledger: one row per (subscriber, edition) carrying the Message-ID chosen
//! before the first attempt, the ranked papers, and the delivery status; plus runs.

use super::{Store, ts};
use crate::error::Result;
use crate::model::{Match, Paper, PaperId, Ranked};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Planned; no attempt made yet.
    Pending,
    /// Handed to the transport; the outcome was not recorded (a crash, or in flight).
    Sending,
    /// The server accepted it.
    Sent,
    /// A permanent error (5xx): not retried automatically.
    Failed,
    /// A transient error (4xx, timeout): retried by the next run.
    Deferred,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Sending => "sending",
            Status::Sent => "sent",
            Status::Failed => "failed",
            Status::Deferred => "deferred",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "sending" => Status::Sending,
            "sent" => Status::Sent,
            "failed" => Status::Failed,
            "deferred" => Status::Deferred,
            _ => Status::Pending,
        }
    }

    /// Whether a later run should (re)send this delivery, with the same Message-ID.
    pub fn is_retryable(self) -> bool {
        matches!(self, Status::Pending | Status::Sending | Status::Deferred)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The scheduled digest: at most one per subscriber and edition.
    Digest,
    /// A copy sent on purpose with `resend`.
    Resend,
    /// An operator alert after repeated failing runs.
    Alert,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Digest => "digest",
            Kind::Resend => "resend",
            Kind::Alert => "alert",
        }
    }
    fn parse(s: &str) -> Kind {
        match s {
            "resend" => Kind::Resend,
            "alert" => Kind::Alert,
            _ => Kind::Digest,
        }
    }
}

/// A ledger item's paper id, read without the rest of the item.
#[derive(Deserialize)]
struct ItemId<'a> {
    #[serde(borrow)]
    id: std::borrow::Cow<'a, str>,
}

/// One ranked paper as the ledger remembers it, so a retry renders the same digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub id: PaperId,
    pub score: f64,
    pub topic: Option<String>,
    pub matched: Vec<Match>,
}

impl Item {
    /// The ranked entry this item recorded, for `paper` (the paper it names).
    pub fn ranked<'a>(&self, paper: &'a Paper) -> Ranked<'a> {
        debug_assert_eq!(self.id, paper.id);
        Ranked { paper, score: self.score, topic: self.topic.clone(), matched: self.matched.clone() }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    pub id: i64,
    pub subscriber: String,
    pub edition: NaiveDate,
    pub kind: Kind,
    pub message_id: String,
    pub status: Status,
    pub items: Vec<Item>,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub sent_at: Option<String>,
}

/// A delivery about to be planned.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub subscriber: String,
    pub edition: NaiveDate,
    pub kind: Kind,
    pub message_id: String,
    pub items: Vec<Item>,
}

/// What became of one send.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent {
        id: i64,
    },
    Failed {
        id: i64,
        error: String,
    },
    Deferred {
        id: i64,
        error: String,
    },
    /// The session failed before this message could be offered (the server refused the
    /// session, or it was already known to): back to `pending`, the attempt not counted,
    /// the session's error kept for `status`.
    Unsent {
        id: i64,
        error: String,
    },
}

/// A row of the runs table.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub command: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub status: String,
    pub summary: Option<serde_json::Value>,
    pub error: Option<String>,
}

const DELIVERY_COLUMNS: &str = "id, subscriber, edition, kind, message_id, status, items, attempts, last_error, created_at, updated_at, sent_at";

fn delivery(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    let id: i64 = r.get(0)?;
    let edition: String = r.get(2)?;
    let items: String = r.get(6)?;
    Ok(Delivery {
        id,
        subscriber: r.get(1)?,
        edition: edition.parse().map_err(|e| unreadable(id, 2, "edition", &e))?,
        kind: Kind::parse(&r.get::<_, String>(3)?),
        message_id: r.get(4)?,
        status: Status::parse(&r.get::<_, String>(5)?),
        items: parse_items(id, &items)?,
        attempts: r.get::<_, i64>(7)? as u32,
        last_error: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        sent_at: r.get(11)?,
    })
}

/// A ledger row's papers. A row whose list does not parse is an error naming the row: read
/// as empty, it would be sent as an empty digest and its papers never marked seen.
fn parse_items(id: i64, items: &str) -> rusqlite::Result<Vec<Item>> {
    serde_json::from_str(items).map_err(|e| unreadable(id, 6, "items", &e))
}

/// The error for a ledger column that does not parse, naming the row and the column.
fn unreadable(id: i64, column: usize, name: &str, e: &dyn fmt::Display) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("deliveries row {id}: column `{name}` cannot be read ({e}); fix or delete the row").into(),
    )
}

/// What a run left in `runs` when its process ended before recording how it went.
const CRASHED: &str =
    "did not finish: the process stopped (a crash, a kill or a power cut) before recording the run";

impl Store {
    /// The digest row of a subscriber's edition, if one was planned.
    pub fn digest_delivery(&self, subscriber: &str, edition: NaiveDate) -> Result<Option<Delivery>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscriber = ?1 AND edition = ?2 AND kind = 'digest'"
            ))
            .map_err(|e| self.err(e))?;
        stmt.query_row(params![subscriber, edition.to_string()], delivery).optional().map_err(|e| self.err(e))
    }

    /// A subscriber's most recent delivery of any kind (of `edition` when given).
    pub fn latest_delivery(&self, subscriber: &str, edition: Option<NaiveDate>) -> Result<Option<Delivery>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE subscriber = ?1 AND kind != 'alert'
             AND (?2 IS NULL OR edition = ?2) ORDER BY edition DESC, id DESC LIMIT 1"
        );
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| self.err(e))?;
        stmt.query_row(params![subscriber, edition.map(|d| d.to_string())], delivery)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Plans deliveries in one durable transaction (synchronous = FULL): their Message-IDs
    /// are on disk before any of them is handed to a server, so a power cut cannot make the
    /// next run send under new ones. A digest row that already exists for the subscriber
    /// and edition (another run got there first) is left as it is.
    pub fn insert_deliveries(&self, rows: &[NewDelivery], now: DateTime<Utc>) -> Result<Vec<Option<i64>>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        self.durably(|tx| {
            let now_s = ts(now);
            let mut ids = Vec::with_capacity(rows.len());
            let mut stmt = tx.prepare_cached(
                "INSERT INTO deliveries (subscriber, edition, kind, message_id, status, items, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6)
                 ON CONFLICT DO NOTHING",
            )?;
            for row in rows {
                let items = serde_json::to_string(&row.items).map_err(super::json_err)?;
                let n = stmt.execute(params![
                    row.subscriber,
                    row.edition.to_string(),
                    row.kind.as_str(),
                    row.message_id,
                    items,
                    now_s
                ])?;
                ids.push((n == 1).then(|| tx.last_insert_rowid()));
            }
            Ok(ids)
        })
    }

    /// Marks deliveries as handed to the transport and counts the attempt, all in one
    /// transaction: the run marks each group of rendered messages just before handing them
    /// out. Not durable on its own (synchronous = NORMAL): a row that loses its mark in a
    /// power cut is still retried, as 'pending' and 'sending' rows both are.
    pub fn mark_sending(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        let mut conn = self.conn();
        self.in_transaction(&mut conn, |tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            )?;
            let now_s = ts(now);
            for id in ids {
                stmt.execute(params![id, now_s])?;
            }
            Ok(())
        })
    }

    /// Runs `work` in a transaction committed with synchronous = FULL.
    fn durably<T>(&self, work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>) -> Result<T> {
        let mut conn = self.conn();
        conn.pragma_update(None, "synchronous", "FULL").map_err(|e| self.err(e))?;
        let result = self.in_transaction(&mut conn, work);
        let reset = conn.pragma_update(None, "synchronous", "NORMAL");
        let out = result?;
        reset.map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Runs `work` in a transaction, committed only while the database path still names
    /// the file this store opened (else rolled back, and the run stops).
    fn in_transaction<T>(
        &self,
        conn: &mut Connection,
        work: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let tx = super::write_transaction(conn).map_err(|e| self.err(e))?;
        let out = work(&tx).map_err(|e| self.err(e))?;
        self.check_file()?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Records send outcomes in one durable transaction (synchronous = FULL): a sent row
    /// and its papers marked seen commit together, or neither does.
    pub fn record_outcomes(&self, outcomes: &[Outcome], now: DateTime<Utc>) -> Result<()> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.durably(|tx| {
            let now_s = ts(now);
            let mut sent = tx.prepare_cached(
                "UPDATE deliveries SET status = 'sent', sent_at = ?2, updated_at = ?2, last_error = NULL
                 WHERE id = ?1 RETURNING subscriber, edition, items",
            )?;
            let mut seen = tx.prepare_cached(
                "INSERT OR IGNORE INTO seen (subscriber, paper_id, edition, seen_at) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut other = tx.prepare_cached(
                "UPDATE deliveries SET status = ?2, last_error = ?3, updated_at = ?4 WHERE id = ?1",
            )?;
            let mut unsent = tx.prepare_cached(
                "UPDATE deliveries SET status = 'pending', attempts = MAX(attempts - 1, 0), last_error = ?2,
                    updated_at = ?3 WHERE id = ?1",
            )?;
            for o in outcomes {
                match o {
                    Outcome::Sent { id } => {
                        let row = sent.query_row(params![id, now_s], |r| {
                            let items = r.get_ref(2)?.as_str()?;
                            // Only the papers' ids are needed here, borrowed from the row.
                            let papers: Vec<ItemId<'_>> =
                                serde_json::from_str(items).map_err(|e| unreadable(*id, 6, "items", &e))?;
                            let (subscriber, edition) = (r.get_ref(0)?.as_str()?, r.get_ref(1)?.as_str()?);
                            for paper in papers {
                                seen.execute(params![subscriber, paper.id.as_ref(), edition, now_s])?;
                            }
                            Ok(())
                        });
                        match row {
                            Ok(()) | Err(rusqlite::Error::QueryReturnedNoRows) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    Outcome::Failed { id, error } => {
                        other.execute(params![id, "failed", error, now_s])?;
                    }
                    Outcome::Deferred { id, error } => {
                        other.execute(params![id, "deferred", error, now_s])?;
                    }
                    Outcome::Unsent { id, error } => {
                        unsent.execute(params![id, error, now_s])?;
                    }
                }
            }
            Ok(())
        })
    }

    /// The failed digests of `edition`, or of the latest edition that has any.
    pub fn failed_digests(&self, edition: Option<NaiveDate>) -> Result<Vec<Delivery>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE kind = 'digest' AND status = 'failed'
             AND edition = COALESCE(?1, (SELECT MAX(edition) FROM deliveries WHERE kind = 'digest' AND status = 'failed'))
             ORDER BY subscriber"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([edition.map(|d| d.to_string())], delivery).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Puts failed deliveries back to `pending`, keeping their Message-IDs and papers.
    pub fn requeue(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        self.durably(|tx| {
            let mut stmt = tx.prepare_cached(
                "UPDATE deliveries SET status = 'pending', updated_at = ?2 WHERE id = ?1 AND status = 'failed'",
            )?;
            let now_s = ts(now);
            for id in ids {
                stmt.execute(params![id, now_s])?;
            }
            Ok(())
        })
    }

    /// The latest delivery of every subscriber that has one, for `status`.
    pub fn last_deliveries(&self) -> Result<Vec<Delivery>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE kind != 'alert' AND id = (
                SELECT id FROM deliveries e WHERE e.subscriber = d.subscriber AND e.kind != 'alert'
                ORDER BY e.edition DESC, e.id DESC LIMIT 1) ORDER BY subscriber"
        );
        let mut stmt = conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], delivery).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    /// Records a run as started. Runs hold the instance lock, so a run still marked
    /// `running` at this point belongs to a process that ended without finishing it: it is
    /// recorded as failed, and counts toward the alert like any other failed run.
    pub fn start_run(&self, command: &str, now: DateTime<Utc>) -> Result<i64> {
        let mut conn = self.conn();
        self.in_transaction(&mut conn, |tx| {
            let crashed = tx.execute(
                "UPDATE runs SET status = 'failed', error = ?2 WHERE command = ?1 AND status = 'running'",
                params![command, CRASHED],
            )?;
            if crashed > 0 {
                tracing::warn!("{crashed} earlier run(s) {CRASHED}; counted as failed");
            }
            tx.execute(
                "INSERT INTO runs (command, started_at, status) VALUES (?1, ?2, 'running')",
                params![command, ts(now)],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    pub fn finish_run(
        &self,
        id: i64,
        status: &str,
        summary: Option<&serde_json::Value>,
        error: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn()
            .execute(
                "UPDATE runs SET status = ?2, summary = ?3, error = ?4, finished_at = ?5 WHERE id = ?1",
                params![id, status, summary.map(ToString::to_string), error, ts(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    fn runs_where(&self, filter: &str) -> Result<Option<RunRecord>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT id, command, started_at, finished_at, status, summary, error FROM runs {filter} ORDER BY id DESC LIMIT 1"
        );
        conn.query_row(&sql, [], |r| {
            Ok(RunRecord {
                id: r.get(0)?,
                command: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                status: r.get(4)?,
                summary: r.get::<_, Option<String>>(5)?.and_then(|s| serde_json::from_str(&s).ok()),
                error: r.get(6)?,
            })
        })
        .optional()
        .map_err(|e| self.err(e))
    }

    /// The most recent `run` (or daemon tick).
    pub fn last_run(&self) -> Result<Option<RunRecord>> {
        self.runs_where("WHERE command = 'run'")
    }

    /// The most recent run that finished without failure.
    pub fn last_success_run(&self) -> Result<Option<RunRecord>> {
        self.runs_where("WHERE command = 'run' AND status IN ('ok', 'partial')")
    }

    /// When the most recent successful run started.
    pub fn last_success(&self) -> Result<Option<DateTime<Utc>>> {
        Ok(self.last_success_run()?.and_then(|r| r.started_at.parse().ok()))
    }

    /// How many runs in a row, counting back from the latest, failed.
    pub fn consecutive_failures(&self) -> Result<u32> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT status FROM runs WHERE command = 'run' AND status != 'running' ORDER BY id DESC LIMIT 100")
            .map_err(|e| self.err(e))?;
        let statuses = stmt.query_map([], |r| r.get::<_, String>(0)).map_err(|e| self.err(e))?;
        let mut n = 0;
        for s in statuses {
            if s.map_err(|e| self.err(e))? == "failed" {
                n += 1;
            } else {
                break;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn now() -> DateTime<Utc> {
        "2024-11-27T07:00:00Z".parse().unwrap()
    }

    fn planned(sub: &str, mid: &str) -> NewDelivery {
        NewDelivery {
            subscriber: sub.into(),
            edition: "2024-11-27".parse().unwrap(),
            kind: Kind::Digest,
            message_id: mid.into(),
            items: vec![Item { id: PaperId("2411.1".into()), score: 1.0, topic: None, matched: vec![] }],
        }
    }

    #[test]
    fn one_digest_per_subscriber_and_edition() {
        let store = Store::open_in_memory().unwrap();
        let ids = store
            .insert_deliveries(&[planned("a@x.org", "<1@x>"), planned("a@x.org", "<2@x>")], now())
            .unwrap();
        assert!(ids[0].is_some());
        assert_eq!(ids[1], None);
        let row = store.digest_delivery("a@x.org", "2024-11-27".parse().unwrap()).unwrap().unwrap();
        assert_eq!(row.message_id, "<1@x>");
        assert_eq!(row.status, Status::Pending);
    }

    #[test]
    fn papers_are_seen_only_once_the_delivery_is_recorded_sent() {
        let store = Store::open_in_memory().unwrap();
        store.record_fetch(&[], &HashMap::new(), now()).unwrap();
        let id = store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap()[0].unwrap();
        store.mark_sending(&[id], now()).unwrap();
        assert!(store.seen("a@x.org").unwrap().is_empty());
        store.record_outcomes(&[Outcome::Deferred { id, error: "451 try later".into() }], now()).unwrap();
        assert!(store.seen("a@x.org").unwrap().is_empty());
        store.record_outcomes(&[Outcome::Sent { id }], now()).unwrap();
        assert!(store.seen("a@x.org").unwrap().contains(&PaperId("2411.1".into())));
        let row = store.latest_delivery("a@x.org", None).unwrap().unwrap();
        assert_eq!((row.status, row.attempts), (Status::Sent, 1));
    }

    #[test]
    fn consecutive_failures_count_back_from_the_latest_run() {
        let store = Store::open_in_memory().unwrap();
        for status in ["failed", "ok", "failed", "failed"] {
            let id = store.start_run("run", now()).unwrap();
            store.finish_run(id, status, None, None, now()).unwrap();
        }
        assert_eq!(store.consecutive_failures().unwrap(), 2);
        assert!(store.last_success().unwrap().is_some());
    }

    #[test]
    fn a_run_that_never_finished_counts_as_failed_when_the_next_one_starts() {
        let store = Store::open_in_memory().unwrap();
        let ok = store.start_run("run", now()).unwrap();
        store.finish_run(ok, "ok", None, None, now()).unwrap();
        let crashed = store.start_run("run", now()).unwrap();
        let next = store.start_run("run", now()).unwrap();
        store.finish_run(next, "failed", None, Some("all sources failed"), now()).unwrap();
        assert_eq!(store.consecutive_failures().unwrap(), 2);
        let status: (String, String) = store
            .conn()
            .query_row("SELECT status, error FROM runs WHERE id = ?1", [crashed], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(status.0, "failed");
        assert!(status.1.contains("did not finish"), "{}", status.1);
    }

    #[test]
    fn an_unreadable_ledger_row_is_an_error_naming_the_row_not_an_empty_1970_digest() {
        let store = Store::open_in_memory().unwrap();
        let id = store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap()[0].unwrap();
        store.conn().execute("UPDATE deliveries SET items = 'not json' WHERE id = ?1", [id]).unwrap();
        let edition = "2024-11-27".parse().unwrap();
        let err = store.digest_delivery("a@x.org", edition).unwrap_err().to_string();
        assert!(err.contains(&format!("deliveries row {id}")) && err.contains("items"), "{err}");
        let err = store.record_outcomes(&[Outcome::Sent { id }], now()).unwrap_err().to_string();
        assert!(err.contains(&format!("deliveries row {id}")), "{err}");
        store
            .conn()
            .execute("UPDATE deliveries SET items = '[]', edition = 'someday' WHERE id = ?1", [id])
            .unwrap();
        let err = store.latest_delivery("a@x.org", None).unwrap_err().to_string();
        assert!(err.contains(&format!("deliveries row {id}")) && err.contains("edition"), "{err}");
    }

    #[test]
    fn items_that_are_json_but_not_a_list_of_papers_fail_the_commit_naming_the_row_and_mark_nothing() {
        for items in ["{}", "[{\"score\": 1.0}]", "[1, 2]", "null", "[{\"id\": \"2411.1\"}"] {
            let store = Store::open_in_memory().unwrap();
            let id = store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap()[0].unwrap();
            store.mark_sending(&[id], now()).unwrap();
            store
                .conn()
                .execute("UPDATE deliveries SET items = ?2 WHERE id = ?1", params![id, items])
                .unwrap();
            let err = store.record_outcomes(&[Outcome::Sent { id }], now()).unwrap_err().to_string();
            assert!(err.contains(&format!("deliveries row {id}")) && err.contains("items"), "{items}: {err}");
            let status: String = store
                .conn()
                .query_row("SELECT status FROM deliveries WHERE id = ?1", [id], |r| r.get(0))
                .unwrap();
            assert_eq!(status, "sending", "{items}: the failed commit changed nothing");
            assert!(store.seen("a@x.org").unwrap().is_empty(), "{items}");
        }
    }

    proptest::proptest! {
        /// Whatever a row's items hold, marking it sent never panics: either every paper
        /// it lists is seen afterwards, or the commit fails naming the row and changes
        /// nothing.
        #[test]
        fn any_items_text_is_marked_seen_or_refused_naming_the_row(
            items in proptest::prop_oneof![
                proptest::strategy::Strategy::prop_map(proptest::collection::vec("[a-z0-9.:\\\\\"\u{e9}]{0,12}", 0..5), |ids| {
                    serde_json::to_string(&ids.iter().map(|id| serde_json::json!({"id": id, "score": 1.0, "topic": null, "matched": []})).collect::<Vec<_>>()).unwrap()
                }),
                proptest::strategy::Strategy::prop_map(".{0,40}", String::from),
            ]
        ) {
            let store = Store::open_in_memory().unwrap();
            let id = store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap()[0].unwrap();
            store.mark_sending(&[id], now()).unwrap();
            store.conn().execute("UPDATE deliveries SET items = ?2 WHERE id = ?1", params![id, items]).unwrap();
            let status = || -> String {
                store.conn().query_row("SELECT status FROM deliveries WHERE id = ?1", [id], |r| r.get(0)).unwrap()
            };
            match store.record_outcomes(&[Outcome::Sent { id }], now()) {
                Ok(()) => {
                    let listed: Vec<ItemId<'_>> = serde_json::from_str(&items).unwrap();
                    let seen = store.seen("a@x.org").unwrap();
                    proptest::prop_assert_eq!(status(), "sent");
                    for item in listed {
                        proptest::prop_assert!(seen.contains(&PaperId(item.id.to_string())), "{} not seen", item.id);
                    }
                }
                Err(e) => {
                    proptest::prop_assert!(e.to_string().contains(&format!("deliveries row {id}")), "{}", e);
                    proptest::prop_assert_eq!(status(), "sending");
                    proptest::prop_assert!(store.seen("a@x.org").unwrap().is_empty());
                }
            }
        }
    }

    #[test]
    fn a_sent_digest_marks_each_of_its_papers_seen_once_even_when_some_were_seen_before() {
        let store = Store::open_in_memory().unwrap();
        let id = store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap()[0].unwrap();
        store.record_outcomes(&[Outcome::Sent { id }], now()).unwrap();
        let mut later = NewDelivery { kind: Kind::Resend, ..planned("a@x.org", "<2@x>") };
        later.items.push(Item { id: PaperId("2411.2".into()), score: 0.5, topic: None, matched: vec![] });
        let id = store.insert_deliveries(&[later], now()).unwrap()[0].unwrap();
        store.record_outcomes(&[Outcome::Sent { id }], now()).unwrap();
        let seen = store.seen("a@x.org").unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert!(seen.contains(&PaperId("2411.1".into())) && seen.contains(&PaperId("2411.2".into())));
    }

    #[test]
    fn an_unsent_delivery_goes_back_to_pending_without_counting_the_attempt() {
        let store = Store::open_in_memory().unwrap();
        let id = store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap()[0].unwrap();
        store.mark_sending(&[id], now()).unwrap();
        store.record_outcomes(&[Outcome::Unsent { id, error: "535 bad credentials".into() }], now()).unwrap();
        let row = store.digest_delivery("a@x.org", "2024-11-27".parse().unwrap()).unwrap().unwrap();
        assert_eq!((row.status, row.attempts, row.message_id.as_str()), (Status::Pending, 0, "<1@x>"));
        assert_eq!(row.last_error.as_deref(), Some("535 bad credentials"));
    }

    #[test]
    fn failed_digests_of_the_latest_edition_are_requeued_with_their_message_ids() {
        let store = Store::open_in_memory().unwrap();
        let mut older = planned("a@x.org", "<old@x>");
        older.edition = "2024-11-26".parse().unwrap();
        let ids: Vec<i64> = store
            .insert_deliveries(&[older, planned("a@x.org", "<1@x>"), planned("b@x.org", "<2@x>")], now())
            .unwrap()
            .into_iter()
            .map(Option::unwrap)
            .collect();
        let failed = ids.iter().map(|&id| Outcome::Failed { id, error: "550".into() }).collect::<Vec<_>>();
        store.record_outcomes(&failed, now()).unwrap();
        let latest = store.failed_digests(None).unwrap();
        assert_eq!(latest.iter().map(|d| d.message_id.as_str()).collect::<Vec<_>>(), ["<1@x>", "<2@x>"]);
        let older = store.failed_digests(Some("2024-11-26".parse().unwrap())).unwrap();
        assert_eq!(older.len(), 1);
        store.requeue(&[latest[0].id], now()).unwrap();
        let row = store.digest_delivery("a@x.org", "2024-11-27".parse().unwrap()).unwrap().unwrap();
        assert_eq!((row.status, row.message_id.as_str()), (Status::Pending, "<1@x>"));
    }

    #[test]
    fn a_database_file_deleted_or_replaced_under_the_store_refuses_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let store = Store::open(&path).unwrap();
        store.insert_deliveries(&[planned("a@x.org", "<1@x>")], now()).unwrap();
        std::fs::rename(&path, dir.path().join("moved.sqlite3")).unwrap();
        let err = store.insert_deliveries(&[planned("b@x.org", "<2@x>")], now()).unwrap_err();
        assert!(err.to_string().contains("deleted"), "{err}");
        std::fs::write(&path, b"").unwrap();
        let err = store.mark_sending(&[1], now()).unwrap_err();
        assert!(err.to_string().contains("replaced"), "{err}");
        assert_eq!(err.exit_code(), crate::error::exit::CONFIG);
    }
}
