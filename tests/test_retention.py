"""Deleting one user's data on request and date-based retention: exact counts, atomic commits, audit entries."""
import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.db import connect, state_tables
from monitor.errors import ConfigError
from monitor.home import Home
from monitor.ingest import ingest_paths
from monitor.lake import Lake
from monitor.retention import RetentionError, apply_retention, forget_user, mentions_user, user_hash
from monitor.review import add_label
from monitor.schema import TABLES

LOGS = Path(__file__).resolve().parent / "fixtures" / "logs"
NOW = dt.datetime(2026, 11, 5, 12, 0)
TURN_TABLES = [n for n, t in TABLES.items() if "turn_id" in t.schema.names]

# Quarantined records (each has a wrong-typed `messages`): whose is which decides what forgetting u-7 removes.
QUARANTINE_LINES = [
    # u-7's record: goes
    '{"conversation_id": "q-1", "timestamp": "2026-11-04T09:00:00Z", "model": "assistant", '
    '"messages": "user: hi", "user": {"id": "u-7", "language": "en"}}',
    # u-77: its id contains "u-7" but is another user: stays
    '{"conversation_id": "q-2", "timestamp": "2026-11-04T09:00:00Z", "model": "assistant", '
    '"messages": "user: hi", "user": {"id": "u-77"}}',
    # u-8 quoting the string u-7 in a message: stays
    '{"conversation_id": "q-3", "timestamp": "2026-11-04T09:00:00Z", "model": "assistant", '
    '"messages": "my friend is u-7", "user": {"id": "u-8"}}',
    # u-7 in a line that is not valid JSON (found by the text rules): goes
    '{"conversation_id": "q-4", "user": {"language": "en", "id": "u-7"}, "messages": [{"role": "user"',
]


def sql(home, query, params=None):
    con = connect(home)
    try:
        return con.execute(query, params or {}).fetchall()
    finally:
        con.close()


def table_counts(home):
    con = connect(home)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in TABLES}
    finally:
        con.close()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A home with two fixture logs ingested, scored and value-scored, and a file of quarantined records."""
    from monitor.jobs import run_all

    root = tmp_path_factory.mktemp("built") / "home"
    home = Home.open(root)
    qfile = root.parent / "quarantine_cases.jsonl"
    qfile.write_text("\n".join(QUARANTINE_LINES) + "\n")
    s = ingest_paths(home, [LOGS / "canonical_conversations.jsonl", LOGS / "wrong_types.jsonl"])
    assert (s.ingested, s.quarantined) == (6, 1)
    assert ingest_paths(home, [qfile], fmt="canonical").quarantined == 4
    results = run_all(home, only=["values"], now=NOW)  # score, then values
    assert {r.job for r in results} >= {"score", "values"} and all(r.status == "ok" for r in results), results
    con = home.state.connect()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    return root


@pytest.fixture
def home(built, tmp_path):
    """A private copy of the built home, so each test may delete from it."""
    dst = tmp_path / "home"
    shutil.copytree(built, dst)
    return Home.open(dst)


def rows_before(home, day):
    """Rows dated before `day` in every date-partitioned table, through one connection."""
    con = connect(home)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}" WHERE date < $d', {"d": day}).fetchall()[0][0]
                for t, spec in TABLES.items() if "date" in spec.partition}
    finally:
        con.close()


def turn_ids_of(home, user):
    return sorted(r[0] for r in sql(home, "SELECT turn_id FROM turns WHERE user_id = $u", {"u": user}))


def files_with_turns(home, table, ids):
    files = [str(p) for p in home.lake.files(table)]
    if not files:
        return set()
    rows = duckdb.connect().execute("SELECT DISTINCT filename FROM read_parquet($f, filename=true) "
                                    "WHERE turn_id IN (SELECT unnest($ids))", {"f": files, "ids": ids}).fetchall()
    return {str(Path(r[0]).relative_to(home.lake.root)) for r in rows}


def user_rows(home, ids):
    """Rows of the given turns in every turn-keyed table, through one connection."""
    con = connect(home)
    try:
        return {t: con.execute(f'SELECT count(*) FROM "{t}" WHERE turn_id IN (SELECT unnest($ids))',
                               {"ids": ids}).fetchall()[0][0] for t in TURN_TABLES}
    finally:
        con.close()


def test_forget_user_deletes_exactly_their_rows(home):
    u7, u8 = turn_ids_of(home, "u-7"), turn_ids_of(home, "u-8")
    assert len(u7) == 2 and len(u8) == 1
    add_label(home, u7[0], "rev", refusal_label="compliance", note="about u-7's router")
    add_label(home, u8[0], "rev", refusal_label="full_refusal")
    with home.state.tx() as con:
        for t in (u7[1], u8[0]):
            con.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?, 'stratified', 1, "
                        "'2026-11-05T00:00:00Z')", (t,))
    q_all = sql(home, "SELECT quarantine_id, raw FROM quarantine")
    q_u7 = sorted(q for q, raw in q_all if '"q-1"' in raw or '"q-4"' in raw)
    assert len(q_u7) == 2
    with home.state.tx() as con:
        for q, _ in q_all:
            con.execute("INSERT INTO quarantine_status VALUES (?, 'dismissed', '2026-11-05T00:00:00Z', NULL)", (q,))

    before = table_counts(home)
    expected_gone = user_rows(home, u7)
    assert expected_gone["turns"] == 2 and expected_gone["scores"] == 2 and expected_gone["segments"] > 0
    assert expected_gone["value_scores"] > 0
    manifest = home.lake.manifest()
    affected = {t: files_with_turns(home, t, u7) for t in TURN_TABLES}
    untouched = {t: {e["path"]: e["v"] for e in manifest["tables"].get(t, []) if e["path"] not in affected[t]}
                 for t in TURN_TABLES}
    assert any(untouched.values()) and sum(len(a) for a in affected.values()) >= 4

    s = forget_user(home, "u-7", "jane", "erasure request #42 from jane.doe@example.com")

    after = table_counts(home)
    for t in TURN_TABLES:
        assert s.rows[t] == expected_gone[t], t
        assert after[t] == before[t] - expected_gone[t], t
    assert set(user_rows(home, u7).values()) == {0}
    assert turn_ids_of(home, "u-8") == u8 and len(turn_ids_of(home, "u-19")) == 3
    assert after["quarantine"] == before["quarantine"] - 2 and s.rows["quarantine"] == 2
    left = sorted(q for q, in sql(home, "SELECT quarantine_id FROM quarantine"))
    assert left == sorted(q for q, _ in q_all if q not in q_u7)
    assert after["metrics_log"] == before["metrics_log"]

    # Review state about the user's turns is gone, the rest stays.
    assert [r["turn_id"] for r in home.state.query("SELECT turn_id FROM labels")] == u8
    assert [r["turn_id"] for r in home.state.query("SELECT turn_id FROM review_queue")] == u8
    status = {r["quarantine_id"] for r in home.state.query("SELECT quarantine_id FROM quarantine_status")}
    assert status == {q for q, _ in q_all} - set(q_u7)
    assert (s.rows["labels"], s.rows["review_queue"], s.rows["quarantine_status"]) == (1, 1, 2)

    # Files without the user's rows are untouched (same path, same version); replacements keep the old `v`.
    new = home.lake.manifest()
    for t in TURN_TABLES:
        entries = {e["path"]: e["v"] for e in new["tables"].get(t, [])}
        assert all(entries.get(p) == v for p, v in untouched[t].items()), t
        assert not affected[t] & set(entries), t
        old_v = {manifest_e["v"] for manifest_e in manifest["tables"][t] if manifest_e["path"] in affected[t]}
        assert {v for p, v in entries.items() if p not in untouched[t]} <= old_v, t
        assert s.files_rewritten[t] == len(affected[t]), t

    # One audit entry: who, why (redacted), the hash of the id, never the id; counts per table.
    audit = home.state.query("SELECT * FROM audit_log WHERE action LIKE 'user.forget%'")
    assert len(audit) == 1 and audit[0]["actor"] == "jane" and audit[0]["id"] == s.audit_id
    details = json.loads(audit[0]["details"])
    assert details["user_sha256"] == user_hash("u-7") == s.user_sha256
    assert audit[0]["target"] == f"user:sha256:{user_hash('u-7')}"
    assert details["rows"] == s.rows and details["reason"] == "erasure request #42 from [EMAIL]"
    assert "u-7" not in json.dumps(audit[0]) and "jane.doe" not in json.dumps(audit[0])

    # Old files are retired, still on disk until the grace period has passed.
    retired = {r["path"] for r in new["retired"]}
    assert set().union(*affected.values()) <= retired
    assert all((home.lake.root / p).exists() for p in retired)
    home.lake.gc()
    assert all((home.lake.root / p).exists() for p in retired)
    home.lake.gc(grace_seconds=0)
    assert not any((home.lake.root / p).exists() for p in retired)
    assert table_counts(home) == after

    # The catalog's snapshot of the labels no longer lists the user's turn.
    con = duckdb.connect(str(home.catalog_path), read_only=True)
    try:
        assert con.execute("SELECT turn_id FROM labels").fetchall() == [(u8[0],)]
    finally:
        con.close()

    # Asking again finds nothing and changes no lake file.
    again = forget_user(home, "u-7", "jane", "repeat")
    assert sum(again.rows.values()) == 0 and again.lake_version is None
    assert home.lake.manifest()["tables"] == new["tables"]


def test_conversation_turns_without_user_id_go_with_the_user(home, tmp_path):
    f = tmp_path / "later_turn.jsonl"
    f.write_text('{"conversation_id": "c-201", "turn": 2, "timestamp": "2026-11-04T10:05:00Z", "model": "assistant", '
                 '"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "Bye."}]}\n')
    assert ingest_paths(home, [f]).ingested == 1
    s = forget_user(home, "u-8", "jane", "request")
    assert s.rows["turns"] == 2 and s.turns_by_conversation == 1
    assert sql(home, "SELECT count(*) FROM turns WHERE conversation_id = 'c-201'") == [(0,)]


def test_reader_opened_before_keeps_its_snapshot(home):
    before = table_counts(home)
    held = connect(home)
    seen, stop = [], threading.Event()

    def poll():
        while not stop.is_set():
            c = connect(home)
            try:
                seen.append(tuple(c.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in TURN_TABLES))
            finally:
                c.close()

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        forget_user(home, "u-7", "jane", "request")
    finally:
        stop.set()
        reader.join()
    after = table_counts(home)
    try:
        # Full rows of the old snapshot, read through the old files after the swap.
        assert {t: held.execute(f'SELECT count(*) FROM "{t}"').fetchall()[0][0] for t in TABLES} == before
        assert held.execute("SELECT count(*) FROM turns WHERE user_id = 'u-7' AND length(assistant_message) > 0"
                            ).fetchall() == [(2,)]
    finally:
        held.close()
    old, new = tuple(before[t] for t in TURN_TABLES), tuple(after[t] for t in TURN_TABLES)
    assert old != new and seen and set(seen) <= {old, new}, set(seen)


def test_crash_inside_the_transaction_leaves_everything_unchanged(home, monkeypatch):
    import monitor.retention as retention

    before, manifest = table_counts(home), home.lake.manifest()
    add_label(home, turn_ids_of(home, "u-7")[0], "rev", refusal_label="compliance")
    on_disk = set(home.lake.root.rglob("*.parquet"))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(retention, "_delete_state", boom)  # after the new files are written, before the swap
    with pytest.raises(OSError, match="disk full"):
        forget_user(home, "u-7", "jane", "request")
    assert home.lake.manifest() == manifest and table_counts(home) == before
    assert len(home.state.query("SELECT * FROM labels")) == 1
    assert home.state.query("SELECT * FROM audit_log WHERE action LIKE 'user.forget%'") == []
    orphans = set(home.lake.root.rglob("*.parquet")) - on_disk
    assert orphans  # written but never listed; gc deletes them after the grace period
    home.lake.gc(grace_seconds=0)
    assert not any(p.exists() for p in orphans) and table_counts(home) == before
    monkeypatch.undo()
    assert forget_user(home, "u-7", "jane", "request").rows["turns"] == 2


def test_crash_at_the_manifest_swap_is_recorded_and_a_rerun_finishes(home, monkeypatch):
    before, manifest = table_counts(home), home.lake.manifest()

    def boom(self, tx):
        raise OSError("crash while writing the manifest")

    monkeypatch.setattr(Lake, "_publish", boom)
    with pytest.raises(OSError):
        forget_user(home, "u-7", "jane", "request")
    assert home.lake.manifest() == manifest and table_counts(home) == before
    actions = [r["action"] for r in home.state.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user.forget", "user.forget.incomplete"]
    monkeypatch.undo()
    assert forget_user(home, "u-7", "jane", "request").rows["turns"] == 2
    assert turn_ids_of(home, "u-7") == []


def test_dry_run_counts_and_changes_nothing(home):
    manifest, before = home.lake.manifest(), table_counts(home)
    add_label(home, turn_ids_of(home, "u-7")[0], "rev", refusal_label="compliance")
    s = forget_user(home, "u-7", "jane", "request", dry_run=True)
    assert s.rows["turns"] == 2 and s.rows["labels"] == 1 and s.rows["quarantine"] == 2 and s.audit_id is None
    assert home.lake.manifest() == manifest and table_counts(home) == before
    assert len(home.state.query("SELECT * FROM labels")) == 1
    assert s.keys_kept == 8 and home.state.query("SELECT count(*) AS n FROM forgotten_keys")[0]["n"] == 0
    real = forget_user(home, "u-7", "jane", "request")
    assert real.rows == s.rows and real.files_rewritten == s.files_rewritten and real.keys_kept == s.keys_kept


def test_forgotten_records_stay_out_when_ingested_again(home, built, tmp_path):
    # A backfill of old logs (the same file again, or a copy under another name) must not bring a forgotten user's
    # turns or quarantined records back: they count as duplicates, and as `forgotten`, and nothing is written.
    u7 = turn_ids_of(home, "u-7")
    s = forget_user(home, "u-7", "jane", "erasure request #42")
    # Two turns (turn_id and content_hash each) and two quarantined records (id and text hash each): eight
    # hashes, no text, no user id.
    keys = home.state.query("SELECT key, kind, audit_id FROM forgotten_keys ORDER BY kind, key")
    assert s.keys_kept == 8 and [k["kind"] for k in keys].count("turn_id") == 2
    assert {k["key"] for k in keys if k["kind"] == "turn_id"} == set(u7)
    assert {k["kind"] for k in keys} == {"turn_id", "content_hash", "quarantine_id", "quarantine_text"}
    assert [k["kind"] for k in keys].count("quarantine_text") == 2
    assert all(len(k["key"]) == (32 if k["kind"] == "quarantine_id" else 64) for k in keys)
    assert all(int(k["key"], 16) >= 0 and k["audit_id"] == s.audit_id for k in keys)
    audit = home.state.query("SELECT details FROM audit_log WHERE id = ?", (s.audit_id,))[0]
    assert json.loads(audit["details"])["keys_kept"] == 8
    # Bookkeeping for ingest, not for queries: it stays out of the catalog's state snapshots (it only grows).
    assert "forgotten_keys" not in state_tables(home) and "audit_log" in state_tables(home)
    before = table_counts(home)

    copy = tmp_path / "backfill_copy.jsonl"
    shutil.copy(LOGS / "canonical_conversations.jsonl", copy)
    again = ingest_paths(home, [LOGS / "canonical_conversations.jsonl"])
    again_copy = ingest_paths(home, [copy])
    q_again = ingest_paths(home, [built.parent / "quarantine_cases.jsonl"], fmt="canonical")
    for r in (again, again_copy, q_again):
        assert r.read == r.ingested + r.duplicates + r.quarantined
    for r in (again, again_copy):
        assert (r.ingested, r.quarantined, r.duplicates, r.forgotten) == (0, 0, r.read, 2)  # u-7's two turns
    assert (q_again.ingested, q_again.quarantined, q_again.duplicates, q_again.forgotten) == (0, 0, 4, 2)
    assert "(2 of them deleted earlier by `monitor forget`, kept out)" in q_again.line()
    assert again.as_dict()["forgotten"] == 2 and again.as_dict()["balanced"]
    assert table_counts(home) == before and turn_ids_of(home, "u-7") == []
    assert not any('"u-7"' in raw for raw, in sql(home, "SELECT raw FROM quarantine"))

    # The same bad lines of the user in another file, at other line numbers, among a bad line of someone else: the
    # user's are kept out by their text, the other one is quarantined.
    q_lines = (built.parent / "quarantine_cases.jsonl").read_text().splitlines()
    mine = [line for line in q_lines if '"u-7"' in line]
    assert len(mine) == 2
    moved = tmp_path / "elsewhere.jsonl"
    moved.write_text("\n".join(['{"conversation_id": "c-901", "model": "assistant", "user": {"id": "u-8"}}'] + mine)
                     + "\n")
    r = ingest_paths(home, [moved], fmt="canonical")
    assert (r.read, r.ingested, r.quarantined, r.duplicates, r.forgotten) == (3, 0, 1, 2, 2)
    assert not any('"u-7"' in raw for raw, in sql(home, "SELECT raw FROM quarantine"))

    # New records of the same user are new data: ingested (a later request deletes them too).
    new = tmp_path / "later.jsonl"
    new.write_text('{"conversation_id": "c-900", "timestamp": "2026-11-05T09:00:00Z", "model": "assistant", '
                   '"messages": [{"role": "user", "content": "hi again"}, {"role": "assistant", "content": "Hello!"}],'
                   ' "user": {"id": "u-7"}}\n')
    assert ingest_paths(home, [new]).ingested == 1 and len(turn_ids_of(home, "u-7")) == 1
    # A repeated request keeps no key twice; the new turn's keys join.
    assert forget_user(home, "u-7", "jane", "second request").keys_kept == 2
    assert home.state.query("SELECT count(*) AS n FROM forgotten_keys")[0]["n"] == 10


def test_transaction_rewrite_keeps_version_and_drops_emptied_files(home):
    lake = home.lake
    import pyarrow.compute as pc

    entries = lake.manifest()["tables"]["turns"]
    versions = {e["path"]: e["v"] for e in entries}
    with lake.transaction() as tx:
        n_files, n_rows = tx.rewrite("turns", lambda b: pc.not_equal(b["user_id"], "u-19"), columns=["user_id"])
    m = lake.manifest()
    # u-19's turns fill the whole 2026-11-03 partition: its files are retired with no replacement.
    assert (n_files, n_rows) == (2, 3)
    assert not any("date=2026-11-03" in e["path"] for e in m["tables"]["turns"])
    assert {e["path"]: e["v"] for e in m["tables"]["turns"]} == {p: v for p, v in versions.items()
                                                                 if "2026-11-03" not in p}
    with pytest.raises(RuntimeError):
        with lake.transaction() as tx:
            assert tx.rewrite("turns", lambda b: pc.equal(b["user_id"], "u-7"), columns=["user_id"]) == (1, 1)
            raise RuntimeError("abort")
    assert lake.manifest() == m


@pytest.mark.parametrize("raw, uid, fields, expected", [
    ('{"user": {"id": "u-7"}}', "u-7", (), True),
    ('{"user_id": "u-7"}', "u-7", (), True),
    ('{"request": {"user": "u-7"}}', "u-7", (), True),  # OpenAI's user field
    ('{"attributes": [{"key": "enduser.id", "value": {"stringValue": "u-7"}}]}', "u-7", (), True),
    ('{"resource": {"user.id": "u-7"}}', "u-7", (), True),
    ('{"user": {"id": 1234}}', "1234", (), True),
    ('{"user": {"id": "caf\\u00e9"}}', "café", (), True),
    ('{"customer": "u-7", "reply": "x"}', "u-7", ("customer",), True),  # CSV column mapped to user.id
    ('{"customer": "u-7", "reply": "x"}', "u-7", (), False),
    ('{"user": {"id": "u-77"}}', "u-7", (), False),
    ('{"messages": "ask u-7", "id": "u-7"}', "u-7", (), False),  # a top-level id is a record id, not a user
    ('{"user": {"id": "u-8"}, "messages": [{"content": "u-7"}]}', "u-7", (), False),
    ('{"user": {"lang": "en", "id": "u-7"}, "messages": [', "u-7", (), True),  # not JSON: text rules
    ('{"userId": "u-7", "messages": [', "u-7", (), True),
    ('{"messages": ["u-7"', "u-7", (), False),
])
def test_mentions_user(raw, uid, fields, expected):
    assert mentions_user(raw, uid, fields) is expected


def test_bad_requests_are_refused(home):
    for uid, actor, reason, words in [("", "a", "r", "user id is empty"), (" u-7", "a", "r", "spaces"),
                                      ("u-7", "", "r", "actor"), ("u-7", "a", " ", "reason")]:
        with pytest.raises(RetentionError, match=words):
            forget_user(home, uid, actor, reason)
    with pytest.raises(RetentionError, match="0 \\(keep forever\\)"):
        apply_retention(home, NOW, -1)
    from monitor.config import parse_config

    with pytest.raises(ConfigError, match="ingest.retention_days"):
        parse_config({"ingest": {"retention_days": -5}})


def test_apply_retention_drops_old_partitions(home):
    u19 = turn_ids_of(home, "u-19")
    add_label(home, u19[0], "rev", refusal_label="compliance")
    add_label(home, turn_ids_of(home, "u-8")[0], "rev", refusal_label="full_refusal")
    before = table_counts(home)
    old = rows_before(home, "2026-11-04")
    assert old["turns"] == 3 and old["scores"] == 3

    assert apply_retention(home, NOW, 0).rows == {}  # 0 = keep forever
    dry = apply_retention(home, NOW, 1, dry_run=True)
    assert table_counts(home) == before and dry.rows["labels"] == 1

    s = apply_retention(home, NOW, 1, actor="ops")  # keep 2026-11-04 onwards
    assert s.cutoff == "2026-11-04"
    after = table_counts(home)
    for t, n in old.items():
        assert after[t] == before[t] - n, t
        assert s.rows.get(t, 0) == n, t
    assert after["metrics_log"] == before["metrics_log"] and after["quarantine"] == before["quarantine"]
    assert sql(home, "SELECT min(date) FROM turns") == [("2026-11-04",)]
    assert len(home.state.query("SELECT * FROM labels")) == 1 and s.rows["labels"] == 1
    (entry,) = home.state.query("SELECT * FROM audit_log WHERE action = 'retention.apply'")
    assert entry["actor"] == "ops" and json.loads(entry["details"])["rows"]["turns"] == 3
    assert apply_retention(home, NOW, 1).rows == {}  # nothing left to drop: no second entry
    assert len(home.state.query("SELECT * FROM audit_log WHERE action = 'retention.apply'")) == 1


def test_forget_and_retention_drop_the_cached_sums_of_their_dates(home):
    # cache/partials holds per-day sums of the metrics jobs; a day's sums still counted the deleted turns
    parts = home.root / "cache" / "partials"

    def days():
        return sorted({p.stem for p in parts.glob("*/*.parquet")})

    assert days() == ["2026-11-03", "2026-11-04"]
    forget_user(home, "u-8", "ops", "erasure request", dry_run=True)
    assert days() == ["2026-11-03", "2026-11-04"]
    forget_user(home, "u-8", "ops", "erasure request")  # u-8's one turn is dated 2026-11-04
    assert days() == ["2026-11-03"]
    apply_retention(home, NOW, 2, dry_run=True)
    assert days() == ["2026-11-03"]
    apply_retention(home, NOW, 1)  # drops 2026-11-03
    assert days() == []


def test_retention_job_follows_config(home):
    from monitor.jobs import discover, run_job

    job = discover()["retention"]
    assert job.interval == "retention_interval_s"
    assert run_job(home, job, now=NOW).rows == 0  # retention_days = 0: keep forever
    old = sum(rows_before(home, "2026-11-04").values())
    (home.root / "monitor.toml").write_text("[ingest]\nretention_days = 1\n")
    home = Home.open(home.root)
    r = run_job(home, job, now=NOW)
    assert r.status == "ok" and r.rows == old > 0
    assert sql(home, "SELECT min(date) FROM turns") == [("2026-11-04",)]


def test_cli_forget_and_retention(home):
    runner = CliRunner()
    base = ["--home", str(home.root)]
    inbox = home.inbox_dirs()[0]
    inbox.mkdir(parents=True, exist_ok=True)
    shutil.copy(LOGS / "canonical_conversations.jsonl", inbox / "day1.jsonl")  # holds u-7's records
    shutil.copy(LOGS / "malformed_json.jsonl", inbox / "day2.jsonl")  # does not
    r = runner.invoke(cli, base + ["forget", "--user-id", "u-7", "--actor", "jane", "--reason", "ticket 9",
                                   "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["dry_run"] and out["rows"]["turns"] == 2 and out["audit_id"] is None
    assert out["inbox_files"] == [str(inbox / "day1.jsonl")]
    r = runner.invoke(cli, base + ["forget", "--user-id", "u-7", "--actor", "jane", "--reason", "ticket 9"])
    assert r.exit_code == 0, r.output
    assert "deleted user sha256:" + user_hash("u-7")[:12] in r.output and "turns" in r.output
    assert "u-7" not in r.output.replace(str(inbox), "")
    assert r.output.count("warning: the id also appears in inbox file") == 1 and "day1.jsonl" in r.output
    r = runner.invoke(cli, base + ["forget", "--user-id", "u-7", "--actor", "jane", "--reason", ""])
    assert r.exit_code == 1 and "reason is empty" in r.output and "Traceback" not in r.output
    r = runner.invoke(cli, base + ["retention"])
    assert r.exit_code == 1 and "retention is off" in r.output and "retention_days" in r.output
    r = runner.invoke(cli, base + ["retention", "--days", "1", "--now", "2026-11-05T12:00:00Z", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["rows"]["turns"] == 3
    r = runner.invoke(cli, base + ["retention", "--days", "1", "--now", "yesterday"])
    assert r.exit_code == 1 and "--now 'yesterday' is not a date" in r.output


def test_retention_sql_files_document_their_parameters():
    from monitor.resources import sql_files

    files = sql_files("retention")
    assert len(files) == 5
    for f in files:
        assert "Output columns" in f.header and "Parameters" in f.header, f.path
        for p in f.params:
            assert f"${p}" in f.header, f"{f.path}: ${p} not described in the header"


def test_rows_committed_by_a_racing_job_are_swept(home):
    from monitor.jobs import discover, run_job

    u7 = turn_ids_of(home, "u-7")
    con = connect(home)
    try:  # what a `score` run that read the turns before the deletion is about to write
        stale = pa.Table.from_pandas(con.execute("SELECT * FROM scores WHERE turn_id IN (SELECT unnest($ids))",
                                                 {"ids": u7}).df(), preserve_index=False)
    finally:
        con.close()
    assert stale.num_rows == 2
    forget_user(home, "u-7", "jane", "request")
    before = table_counts(home)
    home.lake.append("scores", stale)
    assert table_counts(home)["scores"] == before["scores"] + 2
    r = run_job(home, discover()["retention"], now=NOW)  # retention_days = 0: only the sweep
    assert r.status == "ok" and r.rows == 2
    assert table_counts(home) == before
    (entry,) = home.state.query("SELECT * FROM audit_log WHERE action = 'lake.sweep_orphans'")
    assert json.loads(entry["details"])["rows"] == {"scores": 2}
    assert run_job(home, discover()["retention"], now=NOW).rows == 0


def test_a_label_or_queue_item_made_after_the_forget_is_refused(home, monkeypatch):
    """The dashboard showed a turn, then `monitor forget` deleted its user: labelling it afterwards is refused (no
    label outlives the forget), and a review queue built from candidates read before the forget skips its turns."""
    from close_hook import hook_connect
    from monitor.review import ReviewError, build_queue, labels

    ids = turn_ids_of(home, "u-7")
    assert ids
    add_label(home, ids[0], "jane", refusal_label="compliance")  # before: deleted by the forget
    # build_queue's candidate read: the forget commits right after it
    hook_connect(monkeypatch, lambda: forget_user(home, "u-7", "dpo", "user request"))
    queued = build_queue(home, size=50)
    assert labels(home, ids) == []  # the forget deleted the label made before it
    in_queue = {r["turn_id"] for r in home.state.query("SELECT turn_id FROM review_queue")}
    assert in_queue and not in_queue & set(ids) and queued.added == len(in_queue)
    with pytest.raises(ReviewError, match=r"deleted by `monitor forget` \(audit entry \d+\); its label is not kept"):
        add_label(home, ids[1] if len(ids) > 1 else ids[0], "jane", refusal_label="compliance")
    assert labels(home, ids) == []
    other = sql(home, "SELECT min(turn_id) FROM turns")[0][0]  # another user's turn is labelled as before
    assert add_label(home, other, "jane", refusal_label="compliance") > 0
