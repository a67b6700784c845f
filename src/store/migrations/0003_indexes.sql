-- Indexes for the queries a run makes, read off `EXPLAIN QUERY PLAN`:
-- candidates are the papers first seen or published since a date (`Store::candidates`,
-- `Store::seen_since`), each side of the OR through its own index; pruning `seen` deletes
-- by `seen_at`. Nothing selects by `last_seen` any more, and every refetch rewrites it, so
-- its index only cost writes.
CREATE INDEX papers_by_first_seen ON papers (first_seen);
CREATE INDEX papers_by_published ON papers (published);
CREATE INDEX seen_by_seen_at ON seen (seen_at);
DROP INDEX papers_by_last_seen;
