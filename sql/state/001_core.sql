-- Core state tables: key-value settings, audit log, ingested files, job runs, quarantine retry status.
CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,          -- ISO 8601 UTC
    actor TEXT NOT NULL,       -- reviewer name, 'worker', 'cli'
    action TEXT NOT NULL,      -- e.g. alert.ack, label.add, quarantine.retry
    target TEXT NOT NULL,      -- e.g. alert:42
    details TEXT NOT NULL      -- JSON
);

CREATE TABLE ingested_files (
    content_hash TEXT PRIMARY KEY,   -- sha256 of the file bytes: an inbox skips files it has seen
    path TEXT NOT NULL,
    format TEXT,
    status TEXT NOT NULL,            -- running | done
    read INTEGER, ingested INTEGER, duplicates INTEGER, quarantined INTEGER,
    started_at TEXT NOT NULL,
    finished_at TEXT
);

CREATE TABLE job_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,            -- running | ok | failed
    rows_written INTEGER,
    message TEXT
);
CREATE INDEX job_runs_job ON job_runs (job, started_at);

CREATE TABLE quarantine_status (
    quarantine_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,            -- retried | ingested | dismissed
    at TEXT NOT NULL,
    note TEXT
);
