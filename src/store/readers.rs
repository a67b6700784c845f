//! The reader's side of the database (migration 0002): the suppression list, readers who
//! subscribed on the web page (or changed their settings there), subscription requests
//! waiting for confirmation, votes, and the sent editions the archive and feeds show.

use super::{Item, Store, json_err, ts};
use crate::error::Result;
use crate::model::{Frequency, PaperId};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{OptionalExtension, params};

/// Where a reader row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReaderOrigin {
    /// Subscribed and confirmed on the web page.
    Web,
    /// Added by `paper-digest subscribers add`.
    Cli,
    /// A subscriber of the config who changed their settings on the manage page.
    Override,
}

impl ReaderOrigin {
    fn as_str(self) -> &'static str {
        match self {
            ReaderOrigin::Web => "web",
            ReaderOrigin::Cli => "cli",
            ReaderOrigin::Override => "override",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "web" => ReaderOrigin::Web,
            "cli" => ReaderOrigin::Cli,
            _ => ReaderOrigin::Override,
        }
    }
}

/// A reader's settings as the database holds them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Reader {
    pub subscriber: String,
    pub topics: Vec<String>,
    pub frequency: Frequency,
    /// `mon`..`sun`, for weekly readers.
    pub weekday: Option<String>,
    pub paused: bool,
    pub origin: ReaderOrigin,
    pub created_at: String,
    pub updated_at: String,
}

/// A suppressed address.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suppression {
    pub subscriber: String,
    pub reason: String,
    pub created_at: String,
}

/// One reader's votes: (subscriber, liked, disliked).
pub type Votes = (String, Vec<PaperId>, Vec<PaperId>);

/// A subscription request waiting for its confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub subscriber: String,
    pub topics: Vec<String>,
    pub frequency: Frequency,
    pub nonce: String,
}

/// One sent digest, for the archive and the feeds.
#[derive(Debug, Clone)]
pub struct SentEdition {
    pub edition: NaiveDate,
    pub items: Vec<Item>,
    pub sent_at: String,
}

fn frequency_str(f: Frequency) -> &'static str {
    match f {
        Frequency::Daily => "daily",
        Frequency::Weekly => "weekly",
    }
}

fn frequency(s: &str) -> Frequency {
    if s == "weekly" { Frequency::Weekly } else { Frequency::Daily }
}

fn topics_json(topics: &[String]) -> rusqlite::Result<String> {
    serde_json::to_string(topics).map_err(json_err)
}

impl Store {
    /// Puts an address on the suppression list (a second time keeps the first reason).
    pub fn suppress(&self, subscriber: &str, reason: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn()
            .execute(
                "INSERT OR IGNORE INTO suppressions (subscriber, reason, created_at) VALUES (?1, ?2, ?3)",
                params![subscriber, reason, ts(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Lifts a suppression; whether there was one.
    pub fn unsuppress(&self, subscriber: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM suppressions WHERE subscriber = ?1", [subscriber])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    pub fn is_suppressed(&self, subscriber: &str) -> Result<bool> {
        self.conn()
            .query_row("SELECT 1 FROM suppressions WHERE subscriber = ?1", [subscriber], |_| Ok(()))
            .optional()
            .map(|r| r.is_some())
            .map_err(|e| self.err(e))
    }

    pub fn suppressions(&self) -> Result<Vec<Suppression>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare("SELECT subscriber, reason, created_at FROM suppressions ORDER BY subscriber")
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Suppression { subscriber: r.get(0)?, reason: r.get(1)?, created_at: r.get(2)? })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    pub fn suppressed_count(&self) -> Result<u64> {
        self.conn()
            .query_row("SELECT COUNT(*) FROM suppressions", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Every reader row, by address.
    pub fn readers(&self) -> Result<Vec<Reader>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare(
                "SELECT subscriber, topics, frequency, weekday, paused, origin, created_at, updated_at
                 FROM readers ORDER BY subscriber",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([], reader).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))
    }

    pub fn reader(&self, subscriber: &str) -> Result<Option<Reader>> {
        self.conn()
            .query_row(
                "SELECT subscriber, topics, frequency, weekday, paused, origin, created_at, updated_at
                 FROM readers WHERE subscriber = ?1",
                [subscriber],
                reader,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Adds or replaces a reader row, keeping its first origin and creation time.
    pub fn put_reader(&self, r: &Reader, now: DateTime<Utc>) -> Result<()> {
        let topics = topics_json(&r.topics).map_err(|e| self.err(e))?;
        self.conn()
            .execute(
                "INSERT INTO readers (subscriber, topics, frequency, weekday, paused, origin, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                 ON CONFLICT (subscriber) DO UPDATE SET topics = excluded.topics,
                    frequency = excluded.frequency, weekday = excluded.weekday,
                    paused = excluded.paused, updated_at = excluded.updated_at",
                params![
                    r.subscriber,
                    topics,
                    frequency_str(r.frequency),
                    r.weekday,
                    r.paused,
                    r.origin.as_str(),
                    ts(now)
                ],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Deletes a reader row; whether there was one.
    pub fn remove_reader(&self, subscriber: &str) -> Result<bool> {
        let n = self
            .conn()
            .execute("DELETE FROM readers WHERE subscriber = ?1", [subscriber])
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    /// Records a subscription request, replacing an earlier one for the address.
    pub fn put_pending(&self, p: &Pending, now: DateTime<Utc>, expires: DateTime<Utc>) -> Result<()> {
        let topics = topics_json(&p.topics).map_err(|e| self.err(e))?;
        let conn = self.conn();
        // Sweep what expired, so abandoned requests do not pile up.
        conn.execute("DELETE FROM pending_readers WHERE expires_at <= ?1", [ts(now)])
            .map_err(|e| self.err(e))?;
        conn.execute(
            "INSERT OR REPLACE INTO pending_readers (subscriber, topics, frequency, nonce, requested_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![p.subscriber, topics, frequency_str(p.frequency), p.nonce, ts(now), ts(expires)],
        )
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The unexpired request for `subscriber` with this nonce.
    pub fn pending(&self, subscriber: &str, nonce: &str, now: DateTime<Utc>) -> Result<Option<Pending>> {
        self.conn()
            .query_row(
                "SELECT subscriber, topics, frequency, nonce FROM pending_readers
                 WHERE subscriber = ?1 AND nonce = ?2 AND expires_at > ?3",
                params![subscriber, nonce, ts(now)],
                |r| {
                    Ok(Pending {
                        subscriber: r.get(0)?,
                        topics: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
                        frequency: frequency(&r.get::<_, String>(2)?),
                        nonce: r.get(3)?,
                    })
                },
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Turns a confirmed request into a reader, in one transaction: the request goes, the
    /// reader row comes (or is updated), and any suppression of the address is lifted.
    pub fn confirm(&self, p: &Pending, now: DateTime<Utc>) -> Result<()> {
        let topics = topics_json(&p.topics).map_err(|e| self.err(e))?;
        let mut conn = self.conn();
        let tx = super::write_transaction(&mut conn).map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM pending_readers WHERE subscriber = ?1", [&p.subscriber])
            .map_err(|e| self.err(e))?;
        tx.execute("DELETE FROM suppressions WHERE subscriber = ?1", [&p.subscriber])
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO readers (subscriber, topics, frequency, weekday, paused, origin, created_at, updated_at)
             VALUES (?1, ?2, ?3, NULL, 0, 'web', ?4, ?4)
             ON CONFLICT (subscriber) DO UPDATE SET topics = excluded.topics,
                frequency = excluded.frequency, paused = 0, updated_at = excluded.updated_at",
            params![p.subscriber, topics, frequency_str(p.frequency), ts(now)],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))
    }

    /// Records a vote (+1 or -1), replacing an earlier one on the same paper.
    pub fn vote(&self, subscriber: &str, paper: &PaperId, vote: i8, now: DateTime<Utc>) -> Result<()> {
        self.conn()
            .execute(
                "INSERT OR REPLACE INTO votes (subscriber, paper_id, vote, voted_at) VALUES (?1, ?2, ?3, ?4)",
                params![subscriber, paper.as_str(), vote.signum(), ts(now)],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// A subscriber's votes: (liked, disliked), oldest first.
    pub fn feedback(&self, subscriber: &str) -> Result<(Vec<PaperId>, Vec<PaperId>)> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT paper_id, vote FROM votes WHERE subscriber = ?1 ORDER BY voted_at, paper_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([subscriber], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(|e| self.err(e))?;
        let (mut liked, mut disliked) = (Vec::new(), Vec::new());
        for row in rows {
            let (id, vote) = row.map_err(|e| self.err(e))?;
            if vote > 0 { liked.push(PaperId(id)) } else { disliked.push(PaperId(id)) }
        }
        Ok((liked, disliked))
    }

    /// Every subscriber with at least one vote: (subscriber, liked, disliked).
    pub fn all_feedback(&self) -> Result<Vec<Votes>> {
        let subscribers: Vec<String> = {
            let conn = self.conn();
            let mut stmt = conn
                .prepare("SELECT DISTINCT subscriber FROM votes ORDER BY subscriber")
                .map_err(|e| self.err(e))?;
            let rows = stmt.query_map([], |r| r.get(0)).map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>().map_err(|e| self.err(e))?
        };
        subscribers
            .into_iter()
            .map(|s| {
                let (liked, disliked) = self.feedback(&s)?;
                Ok((s, liked, disliked))
            })
            .collect()
    }

    /// A subscriber's sent digest of `edition`.
    pub fn sent_edition(&self, subscriber: &str, edition: NaiveDate) -> Result<Option<SentEdition>> {
        Ok(self.sent_editions(subscriber, Some(edition), 1)?.into_iter().next())
    }

    /// A subscriber's sent digests, newest first, at most `limit`.
    pub fn sent_editions(
        &self,
        subscriber: &str,
        edition: Option<NaiveDate>,
        limit: usize,
    ) -> Result<Vec<SentEdition>> {
        self.editions(
            "SELECT edition, items, COALESCE(sent_at, updated_at) FROM deliveries
             WHERE subscriber = ?1 AND kind = 'digest' AND status = 'sent' AND (?2 IS NULL OR edition = ?2)
             ORDER BY edition DESC LIMIT ?3",
            params![subscriber, edition.map(|d| d.to_string()), limit as i64],
        )
    }

    /// The papers most often sent on `topic` lately: (edition, items), for public topic pages.
    pub fn topic_editions(&self, topic: &str, limit: usize) -> Result<Vec<SentEdition>> {
        let pattern =
            format!("%\"topic\":{}%", serde_json::to_string(topic).map_err(|e| self.err(json_err(e)))?);
        let mut editions = self.editions(
            "SELECT edition, items, MAX(COALESCE(sent_at, updated_at)) FROM deliveries
             WHERE kind = 'digest' AND status = 'sent' AND items LIKE ?1
             GROUP BY edition ORDER BY edition DESC LIMIT ?2",
            params![pattern, limit as i64],
        )?;
        for e in &mut editions {
            e.items.retain(|i| i.topic.as_deref() == Some(topic));
        }
        Ok(editions)
    }

    /// The rows of a query selecting (edition, items, sent at) as sent editions.
    fn editions(&self, sql: &str, params: impl rusqlite::Params) -> Result<Vec<SentEdition>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })
            .map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (edition, items, sent_at) = row.map_err(|e| self.err(e))?;
            // A row that does not parse (written by another version) is left out, not fatal.
            let (Ok(edition), Ok(items)) =
                (edition.parse::<NaiveDate>(), serde_json::from_str::<Vec<Item>>(&items))
            else {
                continue;
            };
            out.push(SentEdition { edition, items, sent_at });
        }
        Ok(out)
    }
}

fn reader(r: &rusqlite::Row<'_>) -> rusqlite::Result<Reader> {
    Ok(Reader {
        subscriber: r.get(0)?,
        topics: serde_json::from_str(&r.get::<_, String>(1)?).unwrap_or_default(),
        frequency: frequency(&r.get::<_, String>(2)?),
        weekday: r.get(3)?,
        paused: r.get(4)?,
        origin: ReaderOrigin::parse(&r.get::<_, String>(5)?),
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-11-27T07:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_confirmed_request_becomes_a_reader_and_lifts_a_suppression() {
        let store = Store::open_in_memory().unwrap();
        store.suppress("a@example.org", "one-click", now()).unwrap();
        let p = Pending {
            subscriber: "a@example.org".into(),
            topics: vec!["video".into()],
            frequency: Frequency::Weekly,
            nonce: "n1".into(),
        };
        store.put_pending(&p, now(), now() + chrono::Duration::hours(1)).unwrap();
        assert_eq!(store.pending("a@example.org", "other", now()).unwrap(), None);
        assert_eq!(store.pending("a@example.org", "n1", now() + chrono::Duration::hours(2)).unwrap(), None);
        let found = store.pending("a@example.org", "n1", now()).unwrap().unwrap();
        store.confirm(&found, now()).unwrap();
        assert!(!store.is_suppressed("a@example.org").unwrap());
        let r = store.reader("a@example.org").unwrap().unwrap();
        assert_eq!(
            (r.topics, r.frequency, r.origin),
            (vec!["video".to_string()], Frequency::Weekly, ReaderOrigin::Web)
        );
        assert_eq!(store.pending("a@example.org", "n1", now()).unwrap(), None, "a confirmation is used once");
    }

    #[test]
    fn a_second_vote_on_a_paper_replaces_the_first() {
        let store = Store::open_in_memory().unwrap();
        let id = PaperId("2411.1".into());
        store.vote("a@example.org", &id, 1, now()).unwrap();
        store.vote("a@example.org", &PaperId("2411.2".into()), -1, now()).unwrap();
        assert_eq!(store.feedback("a@example.org").unwrap().0, vec![id.clone()]);
        store.vote("a@example.org", &id, -1, now()).unwrap();
        let (liked, disliked) = store.feedback("a@example.org").unwrap();
        assert!(liked.is_empty());
        assert_eq!(disliked.len(), 2);
        assert_eq!(store.all_feedback().unwrap().len(), 1);
    }
}
