"""Small mutable state in SQLite (WAL): alerts, acknowledgements, labels, job progress, audit log.

Schema changes are numbered migrations in ``sql/state/NNN_name.sql``, applied in order and recorded in
``schema_migrations``; several processes may open the store at once (one writer at a time, busy timeout).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

from monitor.errors import StorageError
from monitor.resources import sql_files

BUSY_TIMEOUT_MS = 30_000


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def iso(ts: dt.datetime | None) -> str | None:
    """ISO 8601 UTC with a Z (naive datetimes are UTC here); accepts pandas Timestamps from query results."""
    if ts is None:
        return None
    if hasattr(ts, "to_pydatetime"):
        ts = ts.to_pydatetime()
    return ts.replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def quarantine_text_key(raw: str | None) -> str | None:
    """The `forgotten_keys` key of a quarantined record's stored raw text, whatever file and line it came from
    (sha256 with a prefix of its own, so it is never the hash a turn key or a quarantine id is made from). `forget`
    keeps it for each deleted quarantined record; ingest checks every new one against it."""
    if raw is None:
        return None
    return hashlib.sha256(b"quarantine-raw\x1f" + raw.encode("utf-8", "surrogatepass")).hexdigest()


class State:
    """Connection factory and helpers for the SQLite state store."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    def connect(self) -> sqlite3.Connection:
        con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA journal_mode=WAL")
        con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        con.execute("PRAGMA foreign_keys=ON")
        con.execute("PRAGMA synchronous=NORMAL")
        return con

    @contextlib.contextmanager
    def tx(self, secure_delete: bool = False) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): commits on success, rolls back on error."""
        con = self.connect()
        if secure_delete:  # deleted rows are overwritten with zeros, not left in free pages of the file
            con.execute("PRAGMA secure_delete=ON")
        try:
            con.execute("BEGIN IMMEDIATE")
            yield con
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.close()

    def query(self, sql: str, params: Any = ()) -> list[dict]:
        con = self.connect()
        try:
            return [dict(r) for r in con.execute(sql, params).fetchall()]
        finally:
            con.close()

    def migrate(self) -> list[str]:
        hint = "check free disk space and write permission there, then run again"
        try:
            con = self.connect()
            con.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
        except sqlite3.Error as e:
            raise StorageError(f"cannot set up the state database {self.path}: {e}", hint) from e
        applied: list[str] = []
        try:
            done = {r[0] for r in con.execute("SELECT id FROM schema_migrations")}
            for f in sql_files("state"):
                if f.name in done:
                    continue
                try:
                    con.execute("BEGIN IMMEDIATE")
                    # Another process may have applied it while we waited for the lock.
                    if con.execute("SELECT 1 FROM schema_migrations WHERE id=?", (f.name,)).fetchone():
                        con.execute("COMMIT")
                        continue
                    for stmt in _statements(f.sql):
                        con.execute(stmt)
                    con.execute("INSERT INTO schema_migrations VALUES (?, ?)", (f.name, iso(utcnow())))
                    con.execute("COMMIT")
                    applied.append(f.name)
                except sqlite3.Error as e:
                    # A failed COMMIT (disk full, "disk I/O error") has already ended the transaction: a ROLLBACK
                    # would raise "no transaction is active" and hide the real error behind a traceback.
                    if con.in_transaction:
                        con.execute("ROLLBACK")
                    raise StorageError(f"migration {f.path} failed: {e} (state database {self.path})", hint) from e
        finally:
            con.close()
        return applied

    # -- shared helpers ---------------------------------------------------------------------------------
    def audit(self, con: sqlite3.Connection, actor: str, action: str, target: str, details: dict | None = None):
        """Record one audit-log entry inside the caller's transaction."""
        con.execute(
            "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?, ?, ?, ?, ?)",
            (iso(utcnow()), actor, action, target, json.dumps(details or {}, default=str)),
        )

    def get(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM kv WHERE key=?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def put(self, key: str, value: Any, con: sqlite3.Connection | None = None) -> None:
        sql = "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value"
        if con is not None:
            con.execute(sql, (key, json.dumps(value, default=str)))
            return
        with self.tx() as c:
            c.execute(sql, (key, json.dumps(value, default=str)))

    def tables(self) -> list[str]:
        rows = self.query("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
        return sorted(r["name"] for r in rows)


def _statements(sql: str) -> list[str]:
    out, buf = [], []
    for line in sql.splitlines():
        if line.strip().startswith("--"):
            continue
        buf.append(line)
        if line.rstrip().endswith(";"):
            stmt = "\n".join(buf).strip()
            if stmt.strip(";").strip():
                out.append(stmt)
            buf = []
    rest = "\n".join(buf).strip()
    if rest:
        out.append(rest)
    return out
