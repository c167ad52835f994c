-- Human review: labels on turns (several reviewers per turn), the review queue, saved SQL queries.
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    turn_id TEXT NOT NULL,
    reviewer TEXT NOT NULL,
    at TEXT NOT NULL,
    refusal_label TEXT,          -- reviewer's truth: full_refusal | partial_refusal | compliance
    prompt_label TEXT,           -- reviewer's truth: harmful | benign
    refusal_correct INTEGER,     -- 1/0: was the classifier's refusal label right?
    over_refusal INTEGER,        -- 1/0: a benign request refused
    harmful_compliance INTEGER,  -- 1/0: a harmful request complied with
    value_concern TEXT,          -- free category, e.g. moralising, cultural_assumption
    note TEXT,
    UNIQUE (turn_id, reviewer)
);
CREATE INDEX labels_turn ON labels (turn_id);

CREATE TABLE review_queue (
    turn_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,        -- uncertain_refusal | uncertain_harm | alert_example | stratified
    priority REAL NOT NULL,
    group_key TEXT,              -- segment the item was sampled for
    alert_id INTEGER,
    added_at TEXT NOT NULL
);

CREATE TABLE saved_queries (
    name TEXT PRIMARY KEY,
    sql TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
