-- The reader's side (`paper-digest serve`): who left, who joined, what they asked for
-- and how they voted. Rows are keyed by the lowercased address, like `seen` and
-- `deliveries`.

-- Addresses that unsubscribed (or that an operator suppressed). Wins over the config's
-- subscribers and the subscribers file; re-subscribing through the page deletes the row.
CREATE TABLE suppressions (
    subscriber  TEXT PRIMARY KEY,
    reason      TEXT NOT NULL,
    created_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Readers who subscribed through the web page and confirmed, or who changed their
-- settings on the manage page (then these fields win over the config's).
CREATE TABLE readers (
    subscriber  TEXT PRIMARY KEY,
    topics      TEXT NOT NULL,          -- JSON array of topic names
    frequency   TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    weekday     TEXT,                   -- for weekly: mon..sun
    paused      INTEGER NOT NULL DEFAULT 0,
    origin      TEXT NOT NULL CHECK (origin IN ('web', 'cli', 'override')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
) WITHOUT ROWID;

-- Subscription requests waiting for their confirmation; one per address (a new request
-- replaces the old). Expired rows are ignored and swept.
CREATE TABLE pending_readers (
    subscriber   TEXT PRIMARY KEY,
    topics       TEXT NOT NULL,
    frequency    TEXT NOT NULL CHECK (frequency IN ('daily', 'weekly')),
    nonce        TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
) WITHOUT ROWID;

-- "More like this" (+1) and "Fewer like this" (-1); a second vote on a paper replaces the first.
CREATE TABLE votes (
    subscriber  TEXT NOT NULL,
    paper_id    TEXT NOT NULL,
    vote        INTEGER NOT NULL CHECK (vote IN (-1, 1)),
    voted_at    TEXT NOT NULL,
    PRIMARY KEY (subscriber, paper_id)
) WITHOUT ROWID;
