-- Papers, by normalized id (arXiv id without version, else doi:/url:). `data` holds the
-- whole merged Paper as JSON; the columns beside it are what queries filter on.
CREATE TABLE papers (
    id          TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    upvotes     INTEGER NOT NULL DEFAULT 0,
    published   TEXT,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL
);
CREATE INDEX papers_by_last_seen ON papers (last_seen);

-- Every source that ever reported a paper.
CREATE TABLE paper_sources (
    paper_id    TEXT NOT NULL REFERENCES papers (id),
    source      TEXT NOT NULL,
    first_seen  TEXT NOT NULL,
    PRIMARY KEY (paper_id, source)
) WITHOUT ROWID;

-- What each subscriber has been sent. Written in the same transaction that marks the
-- delivery sent, never before.
CREATE TABLE seen (
    subscriber  TEXT NOT NULL,
    paper_id    TEXT NOT NULL,
    edition     TEXT NOT NULL,
    seen_at     TEXT NOT NULL,
    PRIMARY KEY (subscriber, paper_id)
) WITHOUT ROWID;

-- The outbox ledger: one digest row per (subscriber, edition); resends and alerts beside it.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    subscriber  TEXT NOT NULL,
    edition     TEXT NOT NULL,
    kind        TEXT NOT NULL DEFAULT 'digest' CHECK (kind IN ('digest', 'resend', 'alert')),
    message_id  TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'deferred')),
    items       TEXT NOT NULL,  -- JSON: the ranked papers (id, score, topic, matched), in order
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    sent_at     TEXT
);
CREATE UNIQUE INDEX deliveries_one_digest_per_edition ON deliveries (subscriber, edition) WHERE kind = 'digest';
CREATE INDEX deliveries_by_subscriber ON deliveries (subscriber, created_at);

CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'partial', 'failed')),
    summary     TEXT,           -- JSON RunSummary
    error       TEXT
);

-- Conditional GET validators per URL.
CREATE TABLE http_cache (
    url           TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    updated_at    TEXT NOT NULL
) WITHOUT ROWID;

-- Each source's last fetch, for `status`.
CREATE TABLE source_status (
    source        TEXT PRIMARY KEY,
    last_attempt  TEXT NOT NULL,
    last_success  TEXT,
    last_error    TEXT,
    last_count    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
