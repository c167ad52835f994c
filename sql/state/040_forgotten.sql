-- Keys of the records `monitor forget` deleted, so that ingesting the same records again (the same log file, a
-- backfill) counts them as duplicates instead of bringing the user's data back. Hashes only, never text or the
-- user id: a turn's turn_id (sha256 of conversation id and turn index) and content_hash (sha256 of its content),
-- and the id of a quarantined record (sha256 of file, line and raw text) and a hash of its raw text alone.
CREATE TABLE forgotten_keys (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,          -- turn_id | content_hash | quarantine_id | quarantine_text
    audit_id INTEGER NOT NULL    -- the user.forget audit entry that deleted the record
);
