"""Deletion of one user's data on request and date-based retention of the lake, each recorded by one audit entry.

`forget_user` finds the user's turns (``turns.user_id`` equal to the id, plus turns without a user id in the same
conversations), then every row keyed by those ``turn_id`` values in any lake table that has a ``turn_id`` column
(segments, scores, value tables and whatever a module registers later), and the quarantined raw records whose
JSON carries the id in a user-id field (see `mentions_user`). Only files holding such rows are rewritten
(`Transaction.rewrite`), all tables in one manifest swap; the replaced files are retired and deleted by gc after
the grace period, so a reader that opened the lake a moment before still reads a consistent snapshot. The review
rows about those turns (labels, review queue) and the retry status of those quarantined records are deleted from
SQLite with ``secure_delete`` on, and one audit entry keeps who asked, why, the sha256 of the user id (never the
id) and the counts per table. The hashes that identify the deleted records (turn_id, content_hash, quarantine id,
a hash of a quarantined record's text; never text or the id) go to the state table ``forgotten_keys`` in the same
transaction, and ingest counts a record with one of them as a duplicate: ingesting an old log file again does not
bring the user's data back. New records of the same user are new data and are ingested.

`apply_retention` drops whole ``date=`` partitions older than the retention period from every date-partitioned
table; ``metrics_log`` (partitioned by family) holds aggregates without user ids and is kept.

Computed metrics stay as they are: jobs recompute the windows touched by new scores (or everything when their
fingerprint changes, e.g. after labels change), so a deletion alone does not rewrite old windows.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from monitor import partials
from monitor.config import MAX_DAYS
from monitor.errors import MonitorError
from monitor.home import Home
from monitor.lake import Transaction
from monitor.redact import redact
from monitor.resources import load_sql
from monitor.schema import TABLES
from monitor.state import _statements, iso, quarantine_text_key

STATE_TABLES = ("labels", "review_queue", "quarantine_status")  # in the order of sql/retention/forget_state.sql
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# User-id field names, normalised (lower case, no separators): user_id, userId, user.id, enduser.id, uid, and
# OpenAI's request field "user" (a string). `id` counts only inside an object named user / enduser.
_ID_KEYS = frozenset({"userid", "uid", "enduserid", "user"})
_ID_PARENTS = frozenset({"user", "enduser"})
_OTLP_VALUES = ("stringValue", "intValue")


class RetentionError(MonitorError):
    title = "Retention error"


def user_hash(user_id: str) -> str:
    """The sha256 hex digest of a user id, the only form of it the audit log keeps."""
    return hashlib.sha256(user_id.encode("utf-8")).hexdigest()


@dataclass
class ForgetSummary:
    user_sha256: str
    dry_run: bool
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows deleted (lake and state tables)
    files_rewritten: dict[str, int] = field(default_factory=dict)  # lake table -> files replaced or dropped
    files_untouched: dict[str, int] = field(default_factory=dict)  # lake table -> files left as they were
    turns_by_conversation: int = 0  # turns without a user id deleted because their conversation is the user's
    lake_version: int | None = None  # manifest version of the commit, None when nothing changed
    audit_id: int | None = None
    inbox_files: list[str] = field(default_factory=list)  # inbox files containing the id: not ours to delete
    keys_kept: int = 0  # hashes of the deleted records kept so that ingesting them again skips them (new ones)

    def line(self) -> str:
        """One line for the CLI: what was (or would be) deleted."""
        counts = ", ".join(f"{t} {n:,}" for t, n in self.rows.items() if n) or "nothing found"
        files = sum(self.files_rewritten.values())
        verb = "would delete" if self.dry_run else "deleted"
        keys = f"; {self.keys_kept:,} record keys {'to keep' if self.dry_run else 'kept'} so re-ingest skips them" \
            if self.keys_kept else ""
        return (f"{verb} user sha256:{self.user_sha256[:12]}: {counts}; {files:,} lake files "
                f"{'to rewrite' if self.dry_run else 'rewritten'}, {sum(self.files_untouched.values()):,} untouched"
                + keys)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetentionSummary:
    days: int
    cutoff: str | None  # partitions dated before this day are dropped
    dry_run: bool
    rows: dict[str, int] = field(default_factory=dict)
    files: dict[str, int] = field(default_factory=dict)
    lake_version: int | None = None
    audit_id: int | None = None

    def line(self) -> str:
        """One line for the CLI and the job log."""
        if not self.days:
            return "retention is off (ingest.retention_days = 0): nothing dropped"
        counts = ", ".join(f"{t} {n:,}" for t, n in self.rows.items() if n) or "nothing"
        verb = "would drop" if self.dry_run else "dropped"
        return f"{verb} data dated before {self.cutoff} ({self.days} days kept): {counts}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- finding the user's records ---------------------------------------------------------------------------------
def _norm(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


def _scalar(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in _OTLP_VALUES:
        value = next(iter(value.values()))  # OTLP AnyValue: {"stringValue": "u-7"}
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def _walk(obj: Any, uid: str, keys: frozenset[str], parent: str | None) -> bool:
    if isinstance(obj, list):
        return any(_walk(v, uid, keys, parent) for v in obj)
    if not isinstance(obj, dict):
        return False
    key = obj.get("key")  # OTLP attribute list entry: {"key": "user.id", "value": {"stringValue": "u-7"}}
    if isinstance(key, str) and _norm(key) in keys and _scalar(obj.get("value")) == uid:
        return True
    for k, v in obj.items():
        nk = _norm(str(k))
        if (nk in keys or (nk == "id" and parent in _ID_PARENTS)) and _scalar(v) == uid:
            return True
        if isinstance(v, (dict, list)) and _walk(v, uid, keys, nk):
            return True
    return False


def _regex_mentions(raw: str, uid: str, keys: frozenset[str]) -> bool:
    # For raw text that is not valid JSON (a malformed or truncated line): the same rules on the text itself.
    forms = {uid, json.dumps(uid)[1:-1]}
    for form in forms:
        q = re.escape(form)
        value = f'(?:"{q}"' + (f"|{q}(?![\\w.])" if form.isdigit() else "") + ")"
        for m in re.finditer(r'"([^"\\]{1,64})"\s*:\s*' + value, raw):
            nk = _norm(m.group(1))
            if nk in keys:
                return True
            if nk == "id" and re.search(r'"(?:user|enduser)"\s*:\s*\{[^{}]*$', raw[:m.start()]):
                return True
        otlp = r'"key"\s*:\s*"([^"\\]{1,64})"\s*,\s*"value"\s*:\s*\{\s*"(?:stringValue|intValue)"\s*:\s*' + value
        if any(_norm(m.group(1)) in keys for m in re.finditer(otlp, raw)):
            return True
    return False


def mentions_user(raw: str, user_id: str, id_fields: Iterable[str] = ()) -> bool:
    """True when the raw record carries `user_id` as the value of a user-id field (not merely somewhere in its text)."""
    keys = _ID_KEYS | {_norm(f) for f in id_fields}
    try:
        obj = json.loads(raw)
    except ValueError:
        return _regex_mentions(raw, user_id, keys)
    if isinstance(obj, (dict, list)):
        return _walk(obj, user_id, keys, None)
    return False


def _id_columns(home: Home) -> list[str]:
    # CSV/Parquet rows are quarantined as JSON objects keyed by the file's own column names: a column mapped to
    # the user id in [ingest.columns] (e.g. {"user.id" = "customer"}) is a user-id field too.
    return [col for canon, col in home.config.ingest.columns.items() if _norm(canon) in ("userid", "uid")]


def _file_contains(path: Path, needle: bytes, chunk: int = 1 << 20) -> bool:
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if needle in tail + block:
                return True
            tail = block[-(len(needle) - 1):] if len(needle) > 1 else b""
    return False


def inbox_mentions(home: Home, user_id: str) -> list[str]:
    """Inbox files whose bytes contain the user id: the monitor's inputs, which deletion leaves to their owner."""
    needles = {user_id.encode("utf-8"), json.dumps(user_id)[1:-1].encode("ascii")}
    hits = []
    for d in home.inbox_dirs():
        if d.is_dir():
            for p in sorted(d.rglob("*")):
                if p.is_file() and any(_file_contains(p, n) for n in needles):
                    hits.append(str(p))
    return hits


def _check_request(user_id: str, actor: str, reason: str) -> None:
    if not user_id or not user_id.strip():
        raise RetentionError("user id is empty", "pass the exact id as stored in turns.user_id: --user-id u-19")
    if user_id != user_id.strip():
        raise RetentionError(f"user id {user_id!r} has leading or trailing spaces",
                             "pass the exact id; ids are matched exactly")
    if not actor or not actor.strip():
        raise RetentionError("actor is empty", "name who performs the deletion: --actor jane")
    if not reason or not reason.strip():
        raise RetentionError("reason is empty", "say why, e.g. --reason 'erasure request #123'")


def _turn_tables() -> list[str]:
    return [n for n, t in TABLES.items() if n != "turns" and "turn_id" in t.schema.names]


# -- forgetting one user -----------------------------------------------------------------------------------------
@dataclass
class _Plan:
    turn_ids: list[str] = field(default_factory=list)
    content_hashes: list[str] = field(default_factory=list)
    by_conversation: int = 0
    files: dict[str, dict[str, int]] = field(default_factory=dict)  # table -> file -> rows to delete
    quarantine_ids: list[str] = field(default_factory=list)
    quarantine_text_keys: list[str] = field(default_factory=list)  # state.quarantine_text_key of each one's raw


def _plan(home: Home, tx: Transaction, user_id: str) -> _Plan:
    plan = _Plan()
    lake = home.lake
    con = duckdb.connect(":memory:")
    try:
        turn_files = [str(p) for p in lake.files("turns", tx.manifest)]
        if turn_files:
            rows = con.execute(load_sql("retention/user_turns.sql").sql,
                               {"files": turn_files, "user_id": user_id}).fetchall()
            seen: dict[str, None] = {}
            hashes: dict[str, None] = {}
            for turn_id, _conv, file, matched_by, content_hash in rows:
                seen.setdefault(turn_id)
                hashes.setdefault(content_hash)
                plan.files.setdefault("turns", {})
                plan.files["turns"][file] = plan.files["turns"].get(file, 0) + 1
                plan.by_conversation += matched_by == "conversation"
            plan.turn_ids = list(seen)
            plan.content_hashes = list(hashes)
        if plan.turn_ids:
            con.register("forget_ids", pa.table({"turn_id": pa.array(plan.turn_ids, pa.string())}))
            sql = load_sql("retention/turn_files.sql").sql
            for table in _turn_tables():
                files = [str(p) for p in lake.files(table, tx.manifest)]
                if files:
                    found = con.execute(sql, {"files": files}).fetchall()
                    if found:
                        plan.files[table] = {f: n for f, n in found}
        q_files = [str(p) for p in lake.files("quarantine", tx.manifest)]
        if q_files:
            rows = con.execute(load_sql("retention/quarantine_candidates.sql").sql,
                               {"files": q_files, "user_id": user_id,
                                "user_id_json": json.dumps(user_id)[1:-1]}).fetchall()
            id_fields = _id_columns(home)
            for qid, raw, file in rows:
                if raw is not None and mentions_user(raw, user_id, id_fields):
                    plan.quarantine_ids.append(qid)
                    plan.quarantine_text_keys.append(quarantine_text_key(raw))
                    plan.files.setdefault("quarantine", {})
                    plan.files["quarantine"][file] = plan.files["quarantine"].get(file, 0) + 1
    except duckdb.Error as e:
        raise RetentionError(f"could not search the lake for the user's rows: {e}",
                             "check the lake with `monitor sql 'SELECT count(*) FROM turns'`") from e
    finally:
        con.close()
    return plan


def _not_in(column: str, values: list[str]):
    value_set = pa.array(values, pa.string())
    return lambda batch: pc.invert(pc.is_in(batch.column(column), value_set=value_set))


def _delete_state(con: sqlite3.Connection, turn_ids: Iterable[str], quarantine_ids: Iterable[str]) -> dict[str, int]:
    con.execute("CREATE TEMP TABLE IF NOT EXISTS forget_turns (turn_id TEXT PRIMARY KEY)")
    con.execute("CREATE TEMP TABLE IF NOT EXISTS forget_quarantine (quarantine_id TEXT PRIMARY KEY)")
    con.execute("DELETE FROM temp.forget_turns")
    con.execute("DELETE FROM temp.forget_quarantine")
    con.executemany("INSERT OR IGNORE INTO temp.forget_turns VALUES (?)", ((t,) for t in turn_ids))
    con.executemany("INSERT OR IGNORE INTO temp.forget_quarantine VALUES (?)", ((q,) for q in quarantine_ids))
    stmts = _statements(load_sql("retention/forget_state.sql").sql)
    return {table: con.execute(stmt).rowcount for table, stmt in zip(STATE_TABLES, stmts)}


def _record_keys(plan: _Plan) -> dict[str, str]:
    """The hashes identifying the plan's records (key -> kind), as `forgotten_keys` keeps them."""
    keys = {k: "turn_id" for k in plan.turn_ids}
    keys.update((k, "content_hash") for k in plan.content_hashes if k is not None)
    keys.update((k, "quarantine_id") for k in plan.quarantine_ids)
    keys.update((k, "quarantine_text") for k in plan.quarantine_text_keys)
    return keys


def _new_keys(con: sqlite3.Connection, keys: dict[str, str]) -> list[str]:
    """The keys not yet in `forgotten_keys` (a repeated request keeps nothing new)."""
    if not keys:
        return []
    known = {r[0] for r in con.execute("SELECT key FROM forgotten_keys WHERE key IN (SELECT value FROM json_each(?))",
                                       (json.dumps(list(keys)),))}
    return [k for k in keys if k not in known]


def _count_state(home: Home, turn_ids: list[str], quarantine_ids: list[str]) -> dict[str, int]:
    con = home.state.connect()
    try:
        con.execute("BEGIN")
        counts = _delete_state(con, turn_ids, quarantine_ids)
        con.execute("ROLLBACK")  # a dry run counts by deleting and rolling back: the same statements, no drift
        return counts
    finally:
        con.close()


def _audit(home: Home, con: sqlite3.Connection, actor: str, action: str, target: str, details: dict) -> int:
    home.state.audit(con, actor, action, target, details)
    return con.execute("SELECT last_insert_rowid()").fetchone()[0]


def _finish(home: Home) -> None:
    # Move the zeroed pages into the database file now rather than at some later checkpoint, then refresh the
    # catalog and its state snapshots (lake/_state/*.parquet hold copies of labels and the review queue).
    con = home.state.connect()
    try:
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        con.close()
    from monitor.db import write_catalog

    write_catalog(home)


def forget_user(home: Home, user_id: str, actor: str, reason: str, *, dry_run: bool = False) -> ForgetSummary:
    """Delete every row of one user from the lake and the review state in one commit, recording one audit entry."""
    _check_request(user_id, actor, reason)
    summary = ForgetSummary(user_hash(user_id), dry_run)
    # Files still waiting in the inbox are read by content hash once: they are reported, not edited.
    summary.inbox_files = inbox_mentions(home, user_id)
    state_committed = False
    try:
        with home.lake.transaction() as tx:
            plan = _plan(home, tx, user_id)
            summary.turns_by_conversation = plan.by_conversation
            keep = {"quarantine": _not_in("quarantine_id", plan.quarantine_ids)}
            lake_tables = ["turns", *_turn_tables(), "quarantine"]
            for table in lake_tables:
                files = plan.files.get(table, {})
                total = len(tx.manifest["tables"].get(table, []))
                if dry_run:
                    summary.rows[table] = sum(files.values())
                    summary.files_rewritten[table] = len(files)
                elif files:
                    key = "quarantine_id" if table == "quarantine" else "turn_id"
                    check = keep.get(table) or _not_in("turn_id", plan.turn_ids)
                    n_files, n_rows = tx.rewrite(table, check, columns=[key], paths=list(files))
                    summary.rows[table], summary.files_rewritten[table] = n_rows, n_files
                else:
                    summary.rows[table], summary.files_rewritten[table] = 0, 0
                summary.files_untouched[table] = total - summary.files_rewritten[table]
            keys = _record_keys(plan)
            if dry_run:
                summary.rows.update(_count_state(home, plan.turn_ids, plan.quarantine_ids))
                con = home.state.connect()
                try:
                    summary.keys_kept = len(_new_keys(con, keys))
                finally:
                    con.close()
                return summary
            changed = bool(tx.pending or tx.removed)
            summary.lake_version = tx.manifest["version"] + 1 if changed else None
            with home.state.tx(secure_delete=True) as con:
                summary.rows.update(_delete_state(con, plan.turn_ids, plan.quarantine_ids))
                new = _new_keys(con, keys)
                summary.keys_kept = len(new)
                details = {"user_sha256": summary.user_sha256, "reason": redact(reason)[0],
                           "rows": summary.rows, "files_rewritten": summary.files_rewritten,
                           "turns_by_conversation": summary.turns_by_conversation,
                           "lake_version": summary.lake_version, "inbox_files": len(summary.inbox_files),
                           "keys_kept": summary.keys_kept}
                summary.audit_id = _audit(home, con, actor, "user.forget", f"user:sha256:{summary.user_sha256}",
                                          details)
                # The deleted records' hashes, in the same transaction: ingest counts these records as duplicates
                # from now on, so re-ingesting an old log file (a backfill) does not bring the user's data back.
                con.executemany("INSERT INTO forgotten_keys (key, kind, audit_id) VALUES (?, ?, ?)",
                                ((k, keys[k], summary.audit_id) for k in new))
            state_committed = True
            # The lake commits (one manifest swap) when this block ends.
    except BaseException as e:
        if state_committed:
            # The state side is done but the manifest swap failed: say so next to the entry, and re-running the
            # same request finishes the lake part (it finds the rows again).
            with home.state.tx() as c:
                home.state.audit(c, actor, "user.forget.incomplete", f"user:sha256:{summary.user_sha256}",
                                 {"audit_id": summary.audit_id, "error": f"{type(e).__name__}: {e}"})
        raise
    partials.drop_dates(home, {d for table, files in plan.files.items() if table != "quarantine"
                          for f in files if (d := _partition_date(f))})
    _finish(home)
    return summary


# -- retention ---------------------------------------------------------------------------------------------------
def _partition_date(path: str) -> str | None:
    for part in path.split("/"):
        if part.startswith("date="):
            value = part[5:]
            return value if _DATE.match(value) else None  # "date=unknown" (no timestamp) is never dropped
    return None


def apply_retention(home: Home, now: dt.datetime, days: int, *, actor: str = "worker",
                    dry_run: bool = False) -> RetentionSummary:
    """Drop every date partition older than `days` days before `now` from the date-partitioned lake tables."""
    if days < 0:
        raise RetentionError(f"retention days must be 0 (keep forever) or more, got {days}",
                             "set ingest.retention_days to a positive number of days, or 0")
    if not days:
        return RetentionSummary(0, None, dry_run)
    if days > MAX_DAYS:
        raise RetentionError(f"retention days must be at most {MAX_DAYS:,} (a hundred years), got {days:,}",
                             "pass a smaller --days, or 0 to keep everything")
    try:
        cutoff = (now - dt.timedelta(days=days)).date().isoformat()
    except OverflowError:
        raise RetentionError(f"{days:,} days before {iso(now)} is before the year 1",
                             "pass a smaller --days or a later --now") from None
    summary = RetentionSummary(days, cutoff, dry_run)
    with home.lake.transaction() as tx:
        drop: dict[str, list[dict]] = {}
        for name, spec in TABLES.items():
            if "date" not in spec.partition:
                continue  # metrics_log: aggregates without user ids, kept for the history of every metric
            old = [e for e in tx.manifest["tables"].get(name, []) if (_partition_date(e["path"]) or "9") < cutoff]
            if old:
                drop[name] = old
        for name, entries in drop.items():
            summary.rows[name] = sum(e["rows"] for e in entries)
            summary.files[name] = len(entries)
        turn_ids = [t for e in drop.get("turns", [])
                    for t in pq.ParquetFile(home.lake.root / e["path"]).read(columns=["turn_id"])
                    .column("turn_id").to_pylist()]
        quarantine_ids = [q for e in drop.get("quarantine", [])
                          for q in pq.ParquetFile(home.lake.root / e["path"]).read(columns=["quarantine_id"])
                          .column("quarantine_id").to_pylist()]
        if dry_run:
            if drop:
                summary.rows.update(_count_state(home, turn_ids, quarantine_ids))
            return summary
        if not drop:
            return summary
        for name, entries in drop.items():
            tx.remove(name, [e["path"] for e in entries])
        summary.lake_version = tx.manifest["version"] + 1
        with home.state.tx(secure_delete=True) as con:
            summary.rows.update(_delete_state(con, turn_ids, quarantine_ids))
            details = {"days": days, "cutoff": cutoff, "now": iso(now), "rows": summary.rows,
                       "files": summary.files, "lake_version": summary.lake_version}
            summary.audit_id = _audit(home, con, actor, "retention.apply", f"lake:before:{cutoff}", details)
    partials.drop_dates(home, before=cutoff)
    _finish(home)
    return summary


# -- leftovers of a race -----------------------------------------------------------------------------------------
def sweep_orphans(home: Home, actor: str = "worker") -> dict[str, int]:
    """Delete the rows of turn-keyed tables whose turn no longer exists, with one audit entry when there were any."""
    # A job that read the turns before a deletion may commit rows for them after it: `score` classifies outside
    # the lake lock. Such rows hold no text or user id, but they are about a deleted turn. Turns only ever leave
    # the lake through `forget_user` and `apply_retention`, so an orphan is always one of these leftovers.
    rows: dict[str, int] = {}
    with home.lake.transaction() as tx:
        turn_files = [str(p) for p in home.lake.files("turns", tx.manifest)]
        if not turn_files:
            return rows
        con = duckdb.connect(":memory:")
        try:
            sql = load_sql("retention/orphan_rows.sql").sql
            found = {}
            for table in _turn_tables():
                files = [str(p) for p in home.lake.files(table, tx.manifest)]
                if files:
                    found[table] = con.execute(sql, {"files": files, "turn_files": turn_files}).fetchall()
        except duckdb.Error as e:
            raise RetentionError(f"could not look for orphan rows: {e}", "run `monitor sql` to check the lake") from e
        finally:
            con.close()
        for table, hits in found.items():
            if hits:
                ids = sorted({t for _f, t, _n in hits})
                _files, n = tx.rewrite(table, _not_in("turn_id", ids), columns=["turn_id"],
                                       paths=sorted({f for f, _t, _n in hits}))
                rows[table] = n
        if rows:
            with home.state.tx() as c:
                home.state.audit(c, actor, "lake.sweep_orphans", "lake",
                                 {"rows": rows, "lake_version": tx.manifest["version"] + 1})
    if rows:
        _finish(home)
    return rows
