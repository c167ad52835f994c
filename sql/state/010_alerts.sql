-- Alerts and their lifecycle (firing -> acknowledged -> resolved; silenced until a time), comments, and the
-- notification outbox with one row per delivery attempt.
CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,      -- rule | metric | model | segment | window_start
    rule TEXT NOT NULL,
    metric TEXT NOT NULL,
    model TEXT,                          -- null = all models
    deployment TEXT,
    segment TEXT NOT NULL DEFAULT '{}',  -- JSON object attribute -> value
    granularity TEXT NOT NULL DEFAULT 'day',
    window_start TEXT NOT NULL,          -- ISO 8601 UTC
    window_end TEXT NOT NULL,
    value REAL,
    ci_low REAL,
    ci_high REAL,
    n INTEGER,
    reference REAL,
    threshold REAL,
    p_value REAL,
    severity TEXT NOT NULL,              -- info | warning | critical
    status TEXT NOT NULL,                -- firing | acknowledged | resolved | silenced
    message TEXT NOT NULL,
    evidence TEXT NOT NULL DEFAULT '{}', -- JSON: reference window, method, example turn ids, ...
    backfill INTEGER NOT NULL DEFAULT 0, -- raised while catching up on old windows: never paged
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    acknowledged_by TEXT,
    ack_note TEXT,
    assigned_to TEXT,
    silenced_until TEXT,
    resolved_at TEXT,
    resolved_by TEXT
);
CREATE INDEX alerts_status ON alerts (status, severity);

CREATE TABLE alert_comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    at TEXT NOT NULL,
    author TEXT NOT NULL,
    body TEXT NOT NULL
);

CREATE TABLE notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,               -- channel name from config
    kind TEXT NOT NULL,                  -- alert | digest | escalation
    alert_ids TEXT NOT NULL,             -- JSON list
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    payload TEXT NOT NULL,               -- JSON for webhooks
    status TEXT NOT NULL,                -- pending | sent | dead
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    sent_at TEXT
);
CREATE INDEX notify_outbox_due ON notify_outbox (status, next_attempt_at);

CREATE TABLE notify_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    outbox_id INTEGER NOT NULL REFERENCES notify_outbox(id),
    at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    error TEXT
);
