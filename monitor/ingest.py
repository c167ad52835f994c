"""The ingest pipeline: records -> turns (redacted, hashed, deduplicated) or quarantine rows, committed in batches.

Every record read ends in exactly one of three places, counted in turns: ingested (a new turn row), duplicate
(same content_hash, or same turn_id = conversation id + turn index holding the same prompt and reply, within the
run or already in the lake; or a record `monitor forget` deleted, also counted as ``forgotten`` and kept out) or
quarantined (one row per bad record, with raw text, file, line, field and reason). So ``read = ingested +
duplicates + quarantined`` always. A record that fails is quarantined whole; a good record of three assistant
replies counts three. A turn whose turn_id already holds a different reply is quarantined on its own (decided at
commit, where the holder's text is at hand: `_clashes`).

Batches of ``ingest.batch_rows`` are committed with one lake transaction each (turns, segments and quarantine
together), and the dedup check against the lake runs inside that transaction. A run killed at any point leaves
whole batches only; running it again finds the committed turns as duplicates and adds exactly the rest.

Canonical JSONL files take a faster road to the same rows: chunks of lines go to ``collectors.fast_canonical``
(in worker processes for large files), which returns finished rows as Arrow tables for records of the common
simple shape and leaves every other line to the general path. This process still walks each chunk in file
order for dedup, so which copy of a duplicate is kept, and every count and quarantine row, is the same.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import os
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import duckdb
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from collectors import (
    Collector,
    RawRecord,
    RecordError,
    detect,
    get_collector,
    json_type,
    jsonl_record,
    raw_text,
    registry,
    too_long,
)
from collectors.fast_canonical import (
    FastCanonical,
    handles,
    init_worker,
    load_shared,
    range_rows,
    range_rows_shared,
)
from monitor.errors import FormatError, IngestError
from monitor.home import Home
from monitor.redact import merge_counts, redact
from monitor.resources import load_sql
from monitor.state import iso, quarantine_text_key, utcnow

# Refresh catalog.duckdb at most this often during a long ingest (and always at the end). Each refresh rewrites
# the state snapshots too (~0.3 s of CPU), so a short interval slows a large ingest noticeably.
CATALOG_EVERY_S = 30.0
# Bytes of a file per fast-path chunk (one task for a worker process, ~4,000 lines). The column-wise checks pay
# about a hundred Arrow calls per chunk, a sixth of a worker's time at 1.5 MB; at 6 MB a worker's peak memory
# grows by 60 MB for no further gain.
CHUNK_BYTES = 3_000_000
PARALLEL_MIN_BYTES = 8_000_000  # smaller canonical files are not worth starting worker processes for
# Chunks in flight to the workers: enough to keep them busy while this process commits a batch, small enough to
# keep memory flat (about 4 MB of rows per chunk).
WINDOW_CHUNKS = 6
# Workers hand their tables over as Arrow IPC files in this folder (memory-backed), mapped here without a copy;
# None, or a folder that is missing or full, sends them through the pool's pipe as pickles.
SHARED_DIR: str | None = "/dev/shm"
_SHARED_PREFIX = "alignment-monitor-ingest-"
WORKER_TIMEOUT_S = 300.0
# An inbox file whose last line has no newline yet and that changed this recently is still being copied or written:
# read now, its cut-off last record would be quarantined as malformed (and ingested whole on the next pass). It is
# left for a later pass instead. A finished file without a final newline is read once it is this old.
INBOX_SETTLE_S = 2.0
_TS_FLOOR = dt.datetime(1990, 1, 1)
ALREADY_INGESTED = "already ingested (same content hash)"  # the note of an inbox file skipped as seen before


@dataclass
class FileSummary:
    path: str
    format: str | None = None
    records: int = 0  # input records (lines, rows, spans); a record may hold several turns
    read: int = 0  # turns of good records + bad records
    ingested: int = 0
    duplicates: int = 0
    forgotten: int = 0  # of the duplicates: records `monitor forget` deleted before (kept out, not re-ingested)
    quarantined: int = 0
    skipped: bool = False
    note: str | None = None


@dataclass
class IngestSummary:
    files: list[FileSummary] = field(default_factory=list)

    def _sum(self, key: str) -> int:
        return sum(getattr(f, key) for f in self.files)

    @property
    def read(self) -> int:
        return self._sum("read")

    @property
    def ingested(self) -> int:
        return self._sum("ingested")

    @property
    def duplicates(self) -> int:
        return self._sum("duplicates")

    @property
    def forgotten(self) -> int:
        return self._sum("forgotten")

    @property
    def quarantined(self) -> int:
        return self._sum("quarantined")

    @property
    def records(self) -> int:
        return self._sum("records")

    @property
    def files_skipped(self) -> int:
        return sum(1 for f in self.files if f.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "ingested": self.ingested, "duplicates": self.duplicates,
                "forgotten": self.forgotten, "quarantined": self.quarantined, "records": self.records,
                "files_skipped": self.files_skipped,
                "balanced": self.read == self.ingested + self.duplicates + self.quarantined,
                "files": [asdict(f) for f in self.files]}

    def line(self) -> str:
        """The one-line summary: what, from where, in which format, and that the counts add up."""
        done = [f for f in self.files if not f.skipped]
        if len(done) == 1:
            f = done[0]
            where = f"from {f.path} ({f.format})" if f.format else f"from {f.path}"
        else:
            fmts = sorted({f.format for f in done if f.format})
            where = f"from {len(done)} files" + (f" ({', '.join(fmts)})" if fmts else "")
        dups = f"{self.duplicates:,} duplicates" + (
            f" ({self.forgotten:,} of them deleted earlier by `monitor forget`, kept out)" if self.forgotten else "")
        parts = [f"ingested {self.ingested:,} turns {where}", dups, f"{self.quarantined:,} quarantined",
                 f"read {self.read:,} = {self.ingested:,} + {self.duplicates:,} + {self.quarantined:,}"]
        # Only files seen before are "already ingested"; the others skipped (no known format, still being written,
        # gone) were not read at all, and each says why.
        seen = sum(1 for f in self.files if f.skipped and f.note == ALREADY_INGESTED)
        unread = [f for f in self.files if f.skipped and f.note != ALREADY_INGESTED]
        if seen:
            parts.append(f"{seen} file(s) skipped (already ingested)")
        if unread:
            parts.append(f"{len(unread)} file(s) not read")
        notes = [f"{f.path}: {f.note}" for f in done + unread if f.note]
        return "; ".join(parts) + ("" if not notes else " [" + "; ".join(notes) + "]")


def file_hash(path: Path) -> str:
    """sha256 of a file's bytes (the inbox key: a file seen before is skipped)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _Batch:
    """Column lists of the turns, segments and quarantine rows waiting for the next commit."""

    TURN_COLS = ("turn_id", "content_hash", "conversation_id", "turn_index", "ts", "model", "model_version",
                 "deployment", "user_id", "user_attrs", "system_prompt", "user_message", "assistant_message",
                 "feedback", "feedback_score", "redactions", "redaction_counts", "extra", "source_format",
                 "source_file", "source_line", "date")
    Q_COLS = ("quarantine_id", "source_file", "source_line", "source_format", "field", "reason", "raw")

    def __init__(self) -> None:
        self.turns: dict[str, list] = {c: [] for c in self.TURN_COLS}
        self.seg_row: list[int] = []
        self.seg_attr: list[str] = []
        self.seg_value: list[str] = []
        self.quarantine: dict[str, list] = {c: [] for c in self.Q_COLS}
        self.tags: list[Any] = []  # per turn row of the lists above: caller's tag (quarantine id being retried)
        # Per turn row of the lists above: the record's raw text, quarantined if the turn proves to be a different
        # reply under a turn_id already taken (found at commit, against the lake). Fast-path rows re-read theirs.
        self.raw: list[str | bytes] = []
        # Rows whose turn_id was seen earlier in the run with another content_hash: a duplicate if the same
        # exchange (prompt and reply), else quarantined; decided at commit. General rows by index; fast rows by
        # position in their part of `fast`.
        self.suspects: set[int] = set()
        self.fast_suspects: list[np.ndarray] = []
        self.fast: list[pa.Table] = []  # turn rows from the fast path, already in TURN_SCHEMA
        self.fast_segs: list[pa.Table] = []  # their segments: turn_id, attribute, value, date
        self.n_fast = 0

    def __len__(self) -> int:
        return len(self.turns["turn_id"]) + self.n_fast + len(self.quarantine["quarantine_id"])


# Turn columns of a batch before commit (the lake adds batch_id, ingested_at and source).
TURN_SCHEMA = pa.schema([(c, {"ts": pa.timestamp("us"), "turn_index": pa.int32(), "source_line": pa.int64(),
                              "redactions": pa.int32(), "feedback_score": pa.float64()}.get(c, pa.string()))
                         for c in _Batch.TURN_COLS])
_Q_SCHEMA = pa.schema([(c, pa.int64() if c == "source_line" else pa.string()) for c in _Batch.Q_COLS])


def _same_exchange(user: str, reply: str, held_user: str, held_reply: str) -> bool:
    """True when two turns under one turn_id are the same exchange: the same prompt and reply, compared after
    redaction too, so a lake written with another `ingest.redact_pii` setting still matches its source."""
    if user == held_user and reply == held_reply:
        return True
    return redact(user)[0] == redact(held_user)[0] and redact(reply)[0] == redact(held_reply)[0]


def shown_path(path: Path) -> str:
    """A path as text that can be stored and printed: bytes of a file name that are not UTF-8 become \\xNN escapes."""
    # Linux file names are bytes; one copied from another system (b"caf\xe9.jsonl", Latin-1) comes back from the
    # file system as a lone surrogate, which SQLite, Arrow and the terminal all refuse to encode.
    text = str(path)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _read_lines(path: str, wanted: set[int]) -> dict[int, bytes]:
    """Lines `wanted` (1-based numbers) of a file, read again for the quarantine (a fast-path row keeps no raw text)."""
    out: dict[int, bytes] = {}
    last = max(wanted)
    try:
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                if n in wanted:
                    out[n] = line
                if n >= last:
                    break
    except OSError:
        pass
    return out


class Ingestor:
    """One ingest run: dedup memory across files, batching and commits; use `ingest_paths` / `ingest_records`."""

    def __init__(self, home: Home, source: str = "production", progress: bool = False,
                 now: dt.datetime | None = None):
        self.home = home
        self.cfg = home.config.ingest
        self.source = source
        self.progress = progress
        self.now = now or utcnow()
        self.max_ts = self.now + dt.timedelta(minutes=self.cfg.max_future_minutes)
        self.seen: set[bytes] = set()  # 16-byte prefixes of turn keys and content hashes committed this run
        self.seen_q: set[str] = set()
        self.own_files: set[str] = set()  # lake files this run wrote: known to hold only `seen` rows
        self.batch = _Batch()
        self.committed_batches = 0
        self._con: duckdb.DuckDBPyConnection | None = None
        self._sql_turns = load_sql("ingest/existing_turns.sql").sql
        self._sql_q = load_sql("ingest/existing_quarantine.sql").sql
        self._sql_holders = load_sql("ingest/turn_holders.sql").sql
        self._conflict_dups = self._conflict_kept = 0
        self._forgotten: tuple[int, frozenset[str]] = (0, frozenset())  # (max rowid, keys) of forgotten_keys
        self._catalog_at = 0.0
        self._wrote = False
        self.retried: dict[str, str] = {}  # quarantine id -> outcome (retry mode)
        self._opened: dict[str, str] = {}  # source_file as stored -> the path to open (see shown_path)
        self._bg: threading.Thread | None = None  # the background commit in progress (fast path)
        self._bg_result: Any = None

    # -- per record --------------------------------------------------------------------------------------
    def add(self, fs: FileSummary, collector: Collector, rec: RawRecord, source_file: str,
            quarantine: bool = True, tag: Any = None) -> RecordError | None:
        """Route one record to the batch (as turns) or to quarantine; returns the error when it failed."""
        fs.records += 1
        err = rec.error
        rows: list[dict] = []
        if err is None:
            try:
                rows = [self._finalize(t) for t in collector.to_turns(rec.obj)]
            except RecordError as e:
                err = e
            except Exception as e:  # a collector bug (maybe a third-party plugin) must not stop the file
                err = RecordError(None, f"collector {collector.name} failed: {type(e).__name__}: {e}")
        if err is not None:
            if quarantine:
                self._quarantine(fs, collector.name, rec, err, source_file)
            return err
        b = self.batch
        for t in rows:
            fs.read += 1
            k_turn, k_content = t.pop("_keys")
            if k_content in self.seen:
                fs.duplicates += 1
                continue
            self.seen.add(k_content)
            n = len(b.turns["turn_id"])
            if k_turn in self.seen:
                # The same turn_id with other content: the commit compares the exchanges. A suspect row is never
                # written, so it brings no segments.
                b.suspects.add(n)
            else:
                self.seen.add(k_turn)
                for attr, value in t["_attrs"].items():
                    b.seg_row.append(n)
                    b.seg_attr.append(attr)
                    b.seg_value.append(value)
            cols = b.turns
            for c in _Batch.TURN_COLS[:-3]:
                cols[c].append(t[c])
            cols["source_file"].append(source_file)
            cols["source_line"].append(rec.line)
            cols["date"].append(t["date"])
            b.tags.append(tag)
            b.raw.append(rec.raw)
        if len(b) >= self.cfg.batch_rows and not self._merging:
            self.flush(fs)
        return None

    def _quarantine(self, fs: FileSummary, fmt: str, rec: RawRecord, err: RecordError, source_file: str) -> None:
        fs.read += 1
        text = raw_text(rec.raw)
        qid = hashlib.sha256(f"{source_file}\x1f{rec.line}\x1f".encode() + text.encode("utf-8", "surrogatepass")
                             ).hexdigest()[:32]
        if qid in self.seen_q:
            fs.duplicates += 1
            return
        self.seen_q.add(qid)
        if self.cfg.redact_pii:
            text, _ = redact(text)
        q = self.batch.quarantine
        for c, v in zip(_Batch.Q_COLS, (qid, source_file, rec.line, fmt, err.field, err.reason, text)):
            q[c].append(v)
        if len(self.batch) >= self.cfg.batch_rows and not self._merging:
            self.flush(fs)

    def _finalize(self, t: dict) -> dict:
        ts = t.get("ts")
        if ts is None and t.pop("_ts_optional", False):
            # Formats without timestamps (plain ShareGPT dumps) are stamped with the ingest time.
            ts = t["ts"] = self.now
        if not isinstance(ts, dt.datetime):
            raise RecordError("timestamp", "missing timestamp")
        if ts > self.max_ts:
            raise RecordError("timestamp", f"{ts.isoformat()}Z is more than {self.cfg.max_future_minutes} minutes "
                                           f"in the future (ingest.max_future_minutes)")
        if ts < _TS_FLOOR:
            raise RecordError("timestamp", f"{ts.isoformat()}Z is before 1990: probably a wrong unit or a default")
        for key in ("user_message", "assistant_message", "system_prompt"):
            v = t.get(key)
            if v is not None and not isinstance(v, str):
                raise RecordError(key, f"must be text, got {json_type(v)}")
        counts: dict[str, int] = {}
        if self.cfg.redact_pii:
            for key in ("user_message", "assistant_message", "system_prompt"):
                v = t.get(key)
                if v:
                    t[key], c = redact(v)
                    if c:
                        merge_counts(counts, c)
        conv = str(t["conversation_id"])
        idx = int(t.get("turn_index") or 0)
        if not 0 <= idx <= 2_147_483_647:  # turn_index is int32: quarantine rather than fail the whole batch
            raise RecordError("turn", f"turn index {idx:,} is out of range")
        d_turn = hashlib.sha256(f"{conv}\x1f{idx}".encode()).digest()
        d_content = hashlib.sha256(orjson.dumps(
            (t.get("model"), ts.isoformat(), t.get("system_prompt"), t["user_message"], t["assistant_message"],
             t.get("user_id"))
        )).digest()
        attrs = t.get("user_attrs") or {}
        t["turn_id"] = d_turn.hex()
        t["content_hash"] = d_content.hex()
        t["conversation_id"] = conv
        t["turn_index"] = idx
        t["user_attrs"] = orjson.dumps(attrs, option=orjson.OPT_SORT_KEYS).decode() if attrs else "{}"
        t["_attrs"] = attrs
        t["redactions"] = sum(counts.values())
        t["redaction_counts"] = orjson.dumps(counts, option=orjson.OPT_SORT_KEYS).decode() if counts else "{}"
        extra = t.get("extra")
        t["extra"] = orjson.dumps(extra, default=str).decode() if extra else None
        t["source_format"] = self._fmt
        t["date"] = f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}"
        t["_keys"] = (b"t" + d_turn[:15], b"c" + d_content[:15])
        return t

    # -- commit ------------------------------------------------------------------------------------------
    def _duckdb(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            self._con = duckdb.connect(":memory:")
            self._con.execute("SET threads=2")
        return self._con

    def _existing(self, sql: str, files: list[str], batch: pa.Table) -> list[tuple]:
        if not files or batch.num_rows == 0:
            return []
        con = self._duckdb()
        con.register("batch", batch)
        try:
            return con.execute(sql, {"files": files}).fetchall()
        except duckdb.Error as e:
            raise IngestError(f"dedup check against the lake failed: {e}", "run `monitor sql` to inspect the lake")
        finally:
            con.unregister("batch")

    def _clashes(self, tx, turns: pa.Table, rows: list[int], suspect: np.ndarray) -> tuple[set[int], dict[int, str]]:
        """Split batch rows whose turn_id is taken (in the lake or by another row of the run) with other content
        into duplicates (the same prompt and reply, e.g. a conversation logged again later with one more
        exchange) and conflicts (a different reply: row -> quarantine reason)."""
        tids = turns["turn_id"].to_pylist()
        wanted = sorted({tids[i] for i in rows})
        lake: dict[str, tuple] = {}
        files = [str(p) for p in tx.files("turns")]
        if files:
            try:
                for r in self._duckdb().execute(self._sql_holders, {"files": files, "ids": wanted}).fetchall():
                    lake[r[0]] = r[1:]
            except duckdb.Error as e:
                raise IngestError(f"dedup check against the lake failed: {e}", "run `monitor sql` to inspect the lake")
        # Holders in this batch: the row that took the turn_id first in the run (never a suspect row).
        wanted_set = set(wanted)
        users = turns["user_message"]
        replies = turns["assistant_message"]
        src_file, src_line = turns["source_file"], turns["source_line"]
        here = {tids[i]: i for i in range(len(tids)) if not suspect[i] and tids[i] in wanted_set}
        same: set[int] = set()
        conflicts: dict[int, str] = {}
        for i in rows:
            tid = tids[i]
            u, a = users[i].as_py() or "", replies[i].as_py() or ""
            if tid in lake:
                hu, ha, hf, hl = lake[tid]
            elif tid in here and here[tid] != i:
                j = here[tid]
                hu, ha, hf, hl = users[j].as_py(), replies[j].as_py(), src_file[j].as_py(), src_line[j].as_py()
            else:  # the run's first row of this turn_id was itself a duplicate of a stored turn under another id
                hu = ha = hf = hl = None
            if hu is not None and _same_exchange(u, a, hu or "", ha or ""):
                same.add(i)
                continue
            conv, idx = turns["conversation_id"][i].as_py(), turns["turn_index"][i].as_py()
            where = f" (first seen at {hf}:{hl})" if hf is not None else " (taken earlier in this run)"
            conflicts[i] = (f"turn_id {conv}#{idx} already holds a different reply{where}; give each exchange its own "
                            f"`turn` number (1-based) or its own conversation id, then `monitor quarantine retry`")
        return same, conflicts

    def _conflict_rows(self, turns: pa.Table, conflicts: dict[int, str], n_slow: int, b: _Batch) -> pa.Table | None:
        """Quarantine rows (Q_COLS) of conflicting turns, with their records' raw text; rows being retried get none
        (their quarantine row stays, the retry reports the reason)."""
        fast_lines: dict[str, set[int]] = {}
        for i in conflicts:
            if i >= n_slow:
                fast_lines.setdefault(turns["source_file"][i].as_py(), set()).add(turns["source_line"][i].as_py())
        reread = {f: _read_lines(self._opened.get(f, f), lines) for f, lines in fast_lines.items()}
        q: dict[str, list] = {c: [] for c in _Batch.Q_COLS}
        for i, reason in sorted(conflicts.items()):
            tag = b.tags[i] if i < n_slow else None
            if tag is not None:
                self.retried[tag] = "conflict: " + reason
                self._conflict_kept += 1
                continue
            f, line = turns["source_file"][i].as_py(), turns["source_line"][i].as_py()
            raw = b.raw[i] if i < n_slow else reread[f].get(line, b"")
            text = raw_text(raw)
            qid = hashlib.sha256(f"{f}\x1f{line}\x1f".encode() + text.encode("utf-8", "surrogatepass")).hexdigest()[:32]
            if qid in self.seen_q:  # several conflicting turns of one record: one quarantine row
                self._conflict_dups += 1
                continue
            self.seen_q.add(qid)
            if self.cfg.redact_pii:
                text, _ = redact(text)
            for c, v in zip(_Batch.Q_COLS, (qid, f, line, turns["source_format"][i].as_py(), "turn", reason, text)):
                q[c].append(v)
        return pa.table(q, schema=_Q_SCHEMA) if q["quarantine_id"] else None

    def flush(self, fs: FileSummary, background: bool = False) -> None:
        """Commit the pending batch in one lake transaction (in a thread if `background`), after the previous one."""
        self._wait_commit()
        b = self.batch
        if len(b) == 0:
            return
        self.batch = _Batch()
        if not background:
            self._apply(fs, self._commit(b))
            return
        # Parquet encoding and compression release the GIL, so committing batch N in a thread overlaps with
        # preparing batch N+1. One commit at a time, in order: a kill still leaves whole batches only.
        self._bg = threading.Thread(target=self._commit_in_thread, args=(b, fs), name="ingest-commit", daemon=True)
        self._bg.start()

    def _commit_in_thread(self, b: _Batch, fs: FileSummary) -> None:
        try:
            self._bg_result = (fs, self._commit(b))
        except BaseException as e:  # re-raised in the ingesting thread by _wait_commit
            self._bg_result = e

    def _wait_commit(self) -> None:
        """Wait for the background commit, if any, then count its rows (or raise its error)."""
        if self._bg is None:
            return
        self._bg.join()
        self._bg, result, self._bg_result = None, self._bg_result, None
        if isinstance(result, BaseException):
            raise result
        self._apply(*result)

    @staticmethod
    def _apply(fs: FileSummary, counts: tuple[int, int, int, int]) -> None:
        fs.ingested += counts[0]
        fs.duplicates += counts[1]
        fs.quarantined += counts[2]
        fs.forgotten += counts[3]

    def _forgotten_keys(self) -> frozenset[str]:
        """The hashes of records `monitor forget` deleted (state table forgotten_keys), re-read when it grew."""
        con = self.home.state.connect()
        try:
            mark = con.execute("SELECT coalesce(max(rowid), 0) FROM forgotten_keys").fetchone()[0]
            if mark != self._forgotten[0]:
                self._forgotten = (mark, frozenset(r[0] for r in con.execute("SELECT key FROM forgotten_keys")))
        finally:
            con.close()
        return self._forgotten[1]

    @staticmethod
    def _matching(columns: list[list], keys: frozenset[str], skip: set[int]) -> set[int]:
        """Rows (not in `skip`) whose value in any of `columns` is one of `keys`: a Python set built once per change
        of the table. `pc.is_in` hashes all the keys again on every call (about 10 ms per 100,000 keys), which
        dominates the small batches of live ingestion; on a 50,000-row batch the two cost the same (9 ms a column)."""
        hit: set[int] = set()
        for values in columns:
            hit.update(i for i, v in enumerate(values) if v in keys)
        return hit - skip

    def _commit(self, b: _Batch) -> tuple[int, int, int, int]:
        """Write one batch in a lake transaction; returns (turns ingested, duplicates, quarantined, forgotten),
        where forgotten counts the duplicates that are records `monitor forget` deleted earlier."""
        batch_id = uuid.uuid4().hex[:16]
        now = utcnow()
        n_slow = len(b.turns["turn_id"])
        n_turns = n_slow + b.n_fast
        # Rows of the general path first (row i < n_slow is b.tags[i]), then the fast path's tables.
        parts = [pa.table({c: b.turns[c] for c in _Batch.TURN_COLS}, schema=TURN_SCHEMA)] if n_slow else []
        turns = pa.concat_tables(parts + b.fast) if n_turns else None
        seg_parts = list(b.fast_segs)
        if b.seg_row:
            rows = pa.array(b.seg_row, pa.int64())
            seg_parts.insert(0, pa.table({"turn_id": pc.take(pa.array(b.turns["turn_id"], pa.string()), rows),
                                          "attribute": pa.array(b.seg_attr, pa.string()),
                                          "value": pa.array(b.seg_value, pa.string()),
                                          "date": pc.take(pa.array(b.turns["date"], pa.string()), rows)}))
        quarantine = pa.table({c: b.quarantine[c] for c in _Batch.Q_COLS}, schema=_Q_SCHEMA) \
            if b.quarantine["quarantine_id"] else None
        suspect = np.zeros(n_turns, dtype=bool)
        if b.suspects:
            suspect[sorted(b.suspects)] = True
        offset = n_slow
        for part, sus in zip(b.fast, b.fast_suspects):
            suspect[sus + offset] = True
            offset += part.num_rows
        self._conflict_dups = self._conflict_kept = 0
        conflicts: dict[int, str] = {}
        with self.home.lake.transaction() as tx:
            mine = self.own_files
            dup_t: set[int] = set()
            dup_q: set[int] = set()
            # Records deleted on a user's request stay out: their keys count as already seen. Read inside the lake
            # transaction, which `forget_user` also holds while it records them, so none slips through.
            n_forgotten = 0
            forgotten = self._forgotten_keys()
            if turns is not None:
                files = [str(p) for p, e in zip(tx.files("turns"), tx.manifest["tables"].get("turns", []))
                         if e["path"] not in mine]
                ids = pa.table({"i": pa.array(range(n_turns), pa.int64()), "turn_id": turns["turn_id"],
                                "content_hash": turns["content_hash"]})
                same_turn: set[int] = set()
                for i, by_content in self._existing(self._sql_turns, files, ids):
                    (dup_t if by_content else same_turn).add(i)
                if len(forgotten):
                    f_t = self._matching([turns["turn_id"].to_pylist(), turns["content_hash"].to_pylist()],
                                         forgotten, dup_t)
                    dup_t |= f_t
                    n_forgotten += len(f_t)
                # A turn_id already taken, by a stored turn or earlier in this run, with other content.
                check = (same_turn | set(np.flatnonzero(suspect).tolist())) - dup_t
                if check:
                    same, conflicts = self._clashes(tx, turns, sorted(check), suspect)
                    dup_t |= same
                    q_conf = self._conflict_rows(turns, conflicts, n_slow, b)
                    if q_conf is not None:
                        quarantine = q_conf if quarantine is None else pa.concat_tables([quarantine, q_conf])
            if quarantine is not None:
                files = [str(p) for p, e in zip(tx.files("quarantine"), tx.manifest["tables"].get("quarantine", []))
                         if e["path"] not in mine]
                ids = pa.table({"i": pa.array(range(quarantine.num_rows), pa.int64()),
                                "quarantine_id": quarantine["quarantine_id"]})
                dup_q = {r[0] for r in self._existing(self._sql_q, files, ids)}
            if len(forgotten):
                if quarantine is not None:
                    # By id (the same file and line) or by text: the same bad line of the user in another file.
                    text_keys = [quarantine_text_key(r) for r in quarantine["raw"].to_pylist()]
                    f_q = self._matching([quarantine["quarantine_id"].to_pylist(), text_keys], forgotten, dup_q)
                    dup_q |= f_q
                    n_forgotten += len(f_q)
            n_new_t = n_new_q = 0
            if turns is not None:
                drop = dup_t | conflicts.keys()
                keep = pa.array([i not in drop for i in range(n_turns)]) if drop else None
                common = {"batch_id": pa.array([batch_id] * n_turns), "ingested_at": pa.array([now] * n_turns,
                                                                                                pa.timestamp("us")),
                          "source": pa.array([self.source] * n_turns)}
                for k, v in common.items():
                    turns = turns.append_column(k, v)
                all_ids = turns["turn_id"]
                if keep is not None:
                    turns = turns.filter(keep)
                n_new_t = tx.add("turns", turns)
                if seg_parts:
                    segs = pa.concat_tables(seg_parts)
                    drop_segs = [i for i in drop if not suspect[i]]
                    if drop_segs:
                        # turn_ids are unique among the rows that are not suspects (in-run dedup), and suspects
                        # bring no segments, so dropping by id drops exactly the segments of the dropped rows.
                        dup_ids = pc.take(all_ids, pa.array(sorted(drop_segs), pa.int64()))
                        segs = segs.filter(pc.invert(pc.is_in(segs["turn_id"], dup_ids)))
                    tx.add("segments", segs)
            if quarantine is not None:
                if dup_q:
                    quarantine = quarantine.filter(pa.array([i not in dup_q for i in range(quarantine.num_rows)]))
                nq = quarantine.num_rows
                quarantine = quarantine.append_column("batch_id", pa.array([batch_id] * nq, pa.string()))
                quarantine = quarantine.append_column("quarantined_at", pa.array([now] * nq, pa.timestamp("us")))
                quarantine = quarantine.append_column("date", pa.array([now.strftime("%Y-%m-%d")] * nq, pa.string()))
                n_new_q = tx.add("quarantine", quarantine)
            written = [e["path"] for entries in tx.pending.values() for e in entries]
        self.own_files.update(written)
        self.committed_batches += 1
        for i, tag in enumerate(b.tags):  # general-path rows come first in `turns`, so i is their row
            if tag is not None and i not in conflicts and not self.retried.get(tag, "").startswith("conflict"):
                self.retried[tag] = "ingested" if i not in dup_t else "duplicate"
        self._wrote = self._wrote or bool(written)
        if written and time.monotonic() - self._catalog_at > CATALOG_EVERY_S:
            self.refresh_catalog()
        return (n_new_t, len(dup_t) + len(dup_q) + self._conflict_dups, n_new_q + self._conflict_kept, n_forgotten)

    def refresh_catalog(self) -> None:
        from monitor.db import write_catalog

        write_catalog(self.home)
        self._catalog_at = time.monotonic()

    def close(self) -> None:
        if self._bg is not None:  # only when the run is failing: let the commit finish, its error is secondary
            self._bg.join()
            self._bg = None
        if self._wrote:
            self.refresh_catalog()
        if self._con is not None:
            self._con.close()
            self._con = None

    # -- files ---------------------------------------------------------------------------------------------
    _fmt = None
    _merging = False  # inside _merge: commits wait for the chunk's fast rows
    # Simple canonical records skip the general to_turns/_finalize (collectors/fast_canonical.py). Off, every
    # record takes the general path; the equivalence tests compare both.
    fast_path = True
    # Worker processes for the fast path on large files: None = one per CPU (none on a single CPU).
    workers: int | None = None

    def _worker_count(self, path: Path) -> int:
        n = self.workers if self.workers is not None else (os.cpu_count() or 1)
        return n if n > 1 and path.stat().st_size >= PARALLEL_MIN_BYTES else 0

    def _ingest_fast(self, path: Path, collector: Collector, fs: FileSummary, source_file: str, bar) -> None:
        """Ingest a canonical file chunk by chunk: fast-path rows as tables, every other line through `add`."""
        args = (self.now, self.cfg.max_future_minutes, self.cfg.redact_pii, collector.name)
        local = FastCanonical(*args)
        n_workers = self._worker_count(path)
        pool = None
        self._wait_commit()
        if n_workers:
            # fork: spawn would re-import the caller's main module (a script without a __main__ guard would run
            # again). Close the dedup connection first so no DuckDB threads exist while forking; it reopens lazily.
            if self._con is not None:
                self._con.close()
                self._con = None
            pool = multiprocessing.get_context("fork").Pool(n_workers, initializer=init_worker, initargs=args)
        shared = _shared_dir() if n_workers else None
        run = f"{_SHARED_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}-"  # hand-off file names of this run
        window: deque = deque()
        size = path.stat().st_size
        limit = self.cfg.max_line_bytes
        # Workers read their byte range of the file themselves; a line belongs to the range it starts in. The
        # last range is open-ended, so lines appended meanwhile are read as a plain read to the end would.
        ranges = [(a, a + CHUNK_BYTES if a + CHUNK_BYTES < size else 1 << 62) for a in range(0, size, CHUNK_BYTES)]
        base = 0  # lines before the range being merged
        try:
            for a, b in ranges:
                if pool is None:
                    base = self._merge(fs, collector, source_file, base, range_rows(str(path), a, b, limit, local))
                else:
                    # A bounded window of chunks in flight keeps memory flat and both workers busy.
                    if shared:
                        out = os.path.join(shared, f"{run}{uuid.uuid4().hex}")
                        task = pool.apply_async(range_rows_shared, (str(path), a, b, limit, out))
                    else:
                        task = pool.apply_async(range_rows, (str(path), a, b, limit))
                    window.append(((a, b), task))
                    if len(window) > WINDOW_CHUNKS:
                        (a0, b0), res = window.popleft()
                        base = self._merge(fs, collector, source_file, base, self._result(path, a0, b0, local, res))
                if bar is not None:
                    bar.update(min(b, size) - a)
            while window:
                (a0, b0), res = window.popleft()
                base = self._merge(fs, collector, source_file, base, self._result(path, a0, b0, local, res))
        finally:
            if pool is not None:
                pool.terminate()
                pool.join()
            if shared:  # results never collected (an error stopped the run): their files are ours to delete
                _sweep_shared(shared, run)

    def _result(self, path: Path, a: int, b: int, local: FastCanonical, res) -> tuple:
        """A worker's answer for bytes [a, b), or the same computed here if the worker failed or vanished."""
        try:
            # A worker killed from outside loses its task without an answer: give up waiting and compute here.
            return load_shared(res.get(timeout=WORKER_TIMEOUT_S))
        except Exception:
            return range_rows(str(path), a, b, self.cfg.max_line_bytes, local)

    def _merge(self, fs: FileSummary, collector: Collector, source_file: str, base: int, result: tuple) -> int:
        """Walk one chunk in file order: dedup fast rows against `seen`, other lines through `add`; next base."""
        # The chunk's fast rows join the batch after its other lines: no commit in between, so the row that first
        # took a turn_id is never committed after a suspect row of the same turn_id (see _Batch.suspects).
        self._merging = True
        try:
            return self._merge_chunk(fs, collector, source_file, base, result)
        finally:
            self._merging = False
            if len(self.batch) >= self.cfg.batch_rows:
                self.flush(fs, background=True)

    def _merge_chunk(self, fs: FileSummary, collector: Collector, source_file: str, base: int, result: tuple) -> int:
        tbl, segs, other, n_lines = result
        ns = len(other)
        n = tbl.num_rows
        if n:
            k_turn = tbl.column("k_turn").to_pylist()
            k_content = tbl.column("k_content").to_pylist()
            keep = np.zeros(n, dtype=bool)
            suspect = np.zeros(n, dtype=bool)
            fs.records += n
            fs.read += n
            # Fast row j comes after the other lines numbered below pos[j]: the rows between two such lines form
            # a run, and a run is deduplicated as a whole, with the same outcome as the row-by-row walk.
            pos = tbl.column("pos").to_numpy()
            cuts = np.searchsorted(pos, np.fromiter((o[0] for o in other), np.int64, ns)).tolist() + [n]
            start = 0
            for si in range(ns + 1):
                end = cuts[si]
                if end > start:
                    fs.duplicates += self._dedup_run(k_turn, k_content, start, end, keep, suspect)
                    start = end
                if si < ns:
                    self._slow(fs, collector, source_file, base, other[si])
            if keep.any():
                self._take(fs, tbl, segs, keep, suspect, base, source_file)
        else:
            for item in other:
                self._slow(fs, collector, source_file, base, item)
        return base + n_lines

    def _dedup_run(self, k_turn: list[bytes], k_content: list[bytes], start: int, end: int,
                   keep: np.ndarray, suspect: np.ndarray) -> int:
        """Mark rows [start, end) kept unless their content was seen (before or earlier in the run), and suspect
        when only their turn_id was; returns duplicates."""
        seen = self.seen
        keys = set(k_turn[start:end])
        keys.update(k_content[start:end])
        # Turn keys start with b"t" and content keys with b"c", so 2 keys per row means no repeat within the run.
        if len(keys) == 2 * (end - start) and seen.isdisjoint(keys):
            seen |= keys
            keep[start:end] = True
            return 0
        dups = 0
        for j in range(start, end):
            a, c = k_turn[j], k_content[j]
            if c in seen:
                dups += 1
                continue
            seen.add(c)
            keep[j] = True
            if a in seen:
                suspect[j] = True
            else:
                seen.add(a)
        return dups

    def _slow(self, fs: FileSummary, collector: Collector, source_file: str, base: int, item: tuple) -> None:
        n, raw, total = item
        err = None if total is None else too_long(total, self.cfg.max_line_bytes)
        self.add(fs, collector, jsonl_record(base + n, raw, err), source_file)

    def _take(self, fs: FileSummary, tbl: pa.Table, segs: pa.Table, keep: np.ndarray, suspect: np.ndarray,
              base: int, source_file: str) -> None:
        """Add the kept rows of a fast-path table (and their segments) to the pending batch, committing full ones."""
        kept = tbl.filter(pa.array(keep)) if not keep.all() else tbl
        # Positions in `kept` of the suspect rows (see _Batch.suspects); their segments are dropped.
        kept_suspect = np.flatnonzero(suspect[keep]) if suspect.any() else None
        kept = kept.append_column("source_file", pa.array([source_file] * kept.num_rows, pa.string()))
        kept = kept.append_column("source_line", pc.add(kept.column("pos"), base))
        kept = kept.select(TURN_SCHEMA.names).cast(TURN_SCHEMA)
        kept_segs = None
        if segs.num_rows:
            seg_rows = segs.column("row").to_numpy()
            seg_keep = keep[seg_rows] & ~suspect[seg_rows]
            # Row j of `tbl` is row new_index[j] of `kept`, for splitting the segments along with the rows.
            new_index = np.cumsum(keep) - 1
            kept_segs = pa.table({"row": pa.array(new_index[seg_rows[seg_keep]], pa.int64()),
                                  "attribute": segs.column("attribute").filter(pa.array(seg_keep)),
                                  "value": segs.column("value").filter(pa.array(seg_keep))})
        start, n = 0, kept.num_rows
        while start < n:
            # Fill the batch up to exactly batch_rows, so a clean file commits in batches of that size.
            room = max(self.cfg.batch_rows - len(self.batch), 1)
            if self.batch.suspects:  # all in this batch, with the suspect rows of the general path (see _merge)
                room = n - start
            part = kept.slice(start, room)
            b = self.batch
            b.fast.append(part)
            b.n_fast += part.num_rows
            sus = np.empty(0, dtype=np.int64)
            if kept_suspect is not None:
                sus = kept_suspect[(kept_suspect >= start) & (kept_suspect < start + part.num_rows)] - start
            b.fast_suspects.append(sus)
            if kept_segs is not None:
                rows = kept_segs.column("row").to_numpy()
                sel = (rows >= start) & (rows < start + part.num_rows)
                if sel.any():
                    idx = pa.array(rows[sel] - start, pa.int64())
                    b.fast_segs.append(pa.table({
                        "turn_id": pc.take(part.column("turn_id"), idx),
                        "attribute": kept_segs.column("attribute").filter(pa.array(sel)),
                        "value": kept_segs.column("value").filter(pa.array(sel)),
                        "date": pc.take(part.column("date"), idx)}))
            start += part.num_rows
            if len(self.batch) >= self.cfg.batch_rows:
                self.flush(fs, background=True)

    def ingest_file(self, path: Path, collector: Collector | None, fs: FileSummary) -> FileSummary:
        if collector is None:
            fs.note = "empty file"
            return fs
        self._fmt = fs.format = collector.name
        source_file = shown_path(path)
        self._opened[source_file] = str(path)
        bar = None
        if self.progress and sys.stderr.isatty():
            size = path.stat().st_size
            if size > 5_000_000:
                from tqdm import tqdm

                bar = tqdm(total=size, unit="B", unit_scale=True, desc=path.name, file=sys.stderr, leave=False)
        done = 0
        try:
            if self.fast_path and handles(collector):
                self._ingest_fast(path, collector, fs, source_file, bar)
            else:
                for rec in collector.records(path):
                    self.add(fs, collector, rec, source_file)
                    if bar is not None and rec.end_offset > done:
                        bar.update(rec.end_offset - done)
                        done = rec.end_offset
            self.flush(fs)
        finally:
            if bar is not None:
                bar.close()
        if fs.records == 0:
            fs.note = "no records"
        return fs


def _shared_dir() -> str | None:
    """SHARED_DIR if it can be used, after deleting files left there by ingests that were killed."""
    if not SHARED_DIR or not os.path.isdir(SHARED_DIR) or not os.access(SHARED_DIR, os.W_OK):
        return None
    _sweep_shared(SHARED_DIR, None)
    return SHARED_DIR


def _sweep_shared(folder: str, run: str | None) -> None:
    """Delete the hand-off files of `run` (a name prefix), or with None those of ingest processes now gone."""
    try:
        names = [n for n in os.listdir(folder) if n.startswith(_SHARED_PREFIX)]
    except OSError:
        return
    for name in names:
        try:
            pid = int(name[len(_SHARED_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if run is not None:
            stale = name.startswith(run)
        else:
            try:
                os.kill(pid, 0)
                stale = False
            except ProcessLookupError:
                stale = True
            except OSError:  # alive, owned by another user
                stale = False
        if stale:
            try:
                os.unlink(os.path.join(folder, name))
            except OSError:
                pass


def _expand(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """Files to ingest, each with whether it came from a folder (inbox semantics: skip if seen)."""
    out: list[tuple[Path, bool]] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and not f.name.startswith("."):
                    out.append((f, True))
        elif p.is_file():
            out.append((p, False))
        elif p.exists():
            raise IngestError(f"{p}: not a regular file or folder (a device, pipe or socket)",
                              "pass a log file, or a folder of them")
        else:
            raise IngestError(f"{p}: no such file or folder", "check the path")
    return out


# Inbox files ingested before, per home: path -> (stat key, content hash). The monitor does not own its inputs, so an
# inbox keeps every file ever dropped, and the worker scans it every `ingest_interval_s`: sniffing and hashing each
# old file again made a pass cost what all the logs ever received cost to read. A file whose device, inode, size,
# modification and change times are those it had when it was hashed is the same file (make and rsync use less);
# one modified within INBOX_SETTLE_S of its hashing is not remembered, since a coarse file-system clock may not tick
# between two writes. The hashes are checked against `ingested_files` on each pass (a restored state is obeyed).
_INBOX_SEEN: dict[str, dict[str, tuple[tuple, str]]] = {}


def _stat_key(st: os.stat_result) -> tuple:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _unchanged_inbox_files(home: Home, files: list[tuple[Path, bool]]) -> dict[str, tuple[tuple, str]]:
    """The inbox files among `files` ingested before and unchanged since (path -> (stat key, content hash))."""
    known = _INBOX_SEEN.get(str(home.root), {})
    if not known:
        return {}
    same: dict[str, tuple[tuple, str]] = {}
    for path, from_folder in files:
        entry = known.get(str(path)) if from_folder else None
        if entry is None:
            continue
        try:
            if _stat_key(path.stat()) == entry[0]:
                same[str(path)] = entry
        except OSError:
            pass
    digests = sorted({d for _, d in same.values()})
    done: set[str] = set()
    for i in range(0, len(digests), 500):
        chunk = digests[i:i + 500]
        done.update(r["content_hash"] for r in home.state.query(
            f"SELECT content_hash FROM ingested_files WHERE status='done' AND content_hash IN "
            f"({','.join('?' * len(chunk))})", tuple(chunk)))
    return {p: e for p, e in same.items() if e[1] in done}


def _remember(seen: dict[str, tuple[tuple, str]], path: Path, before: os.stat_result, digest: str) -> None:
    """Remember an ingested inbox file unless it changed while it was read or just before."""
    try:
        after = path.stat()
    except OSError:
        return
    if _stat_key(after) == _stat_key(before) and time.time() - before.st_mtime >= INBOX_SETTLE_S:
        seen[str(path)] = (_stat_key(before), digest)


def _still_written(path: Path) -> str | None:
    """Why an inbox file is left for a later pass (its last line unterminated and changed just now), else None."""
    st = path.stat()
    age = time.time() - st.st_mtime
    # A time stamp from the future (copied with `rsync -t` from a machine whose clock is ahead) says nothing about
    # a write in progress: only a change within the last INBOX_SETTLE_S seconds does.
    if st.st_size == 0 or not 0 <= age < INBOX_SETTLE_S:
        return None
    with open(path, "rb") as f:
        f.seek(st.st_size - 1)
        if f.read(1) == b"\n":
            return None
    return f"still being written (last line unterminated, changed {max(age, 0):.1f} s ago): read on a later pass"


def _gone(path: Path, from_folder: bool) -> str:
    """The note of an inbox file deleted or moved away after the folder was listed (a named file is an error)."""
    if not from_folder:
        raise IngestError(f"{shown_path(path)}: the file was deleted or moved away before it was read",
                          "check the path and ingest it again")
    return "deleted or moved away before it was read"


def ingest_paths(home: Home, paths: Iterable[str | os.PathLike], fmt: str | None = None, progress: bool = False,
                 source: str = "production", now: dt.datetime | None = None) -> IngestSummary:
    """Ingest files and folders (a folder is an inbox: files already ingested, by content hash, are skipped)."""
    files = _expand(paths)
    summary = IngestSummary()
    forced = get_collector(fmt, home.config) if fmt else None
    unchanged = _unchanged_inbox_files(home, files)
    seen: dict[str, tuple[tuple, str]] = dict(unchanged)
    # Detect every explicit file first, so one file in no known format stops the run before anything is written.
    plan: list[tuple[Path, bool, Collector | None, str | None]] = []
    for path, from_folder in files:
        if str(path) in unchanged:
            plan.append((path, from_folder, None, ALREADY_INGESTED))
            continue
        try:
            collector = forced or detect(path, home.config)
        except FormatError as e:
            if not from_folder:
                raise
            plan.append((path, from_folder, None, e.message.removeprefix(f"{path}: ")))  # the note names the file
            continue
        except FileNotFoundError:
            plan.append((path, from_folder, None, _gone(path, from_folder)))
            continue
        plan.append((path, from_folder, collector, None))
    ing = Ingestor(home, source=source, progress=progress, now=now)
    try:
        for path, from_folder, collector, error in plan:
            fs = FileSummary(shown_path(path))
            summary.files.append(fs)
            if error:
                fs.skipped, fs.note = True, error
                continue
            try:
                if from_folder and (busy := _still_written(path)):
                    fs.skipped, fs.note = True, busy
                    continue
                before = path.stat()
                digest = file_hash(path)
            except FileNotFoundError:
                fs.skipped, fs.note = True, _gone(path, from_folder)
                continue
            if from_folder:
                done = home.state.query("SELECT status FROM ingested_files WHERE content_hash=?", (digest,))
                if done and done[0]["status"] == "done":
                    fs.skipped, fs.note = True, ALREADY_INGESTED
                    _remember(seen, path, before, digest)
                    continue
            with home.state.tx() as con:
                con.execute(
                    "INSERT INTO ingested_files (content_hash, path, format, status, started_at) VALUES (?,?,?,?,?) "
                    "ON CONFLICT(content_hash) DO UPDATE SET path=excluded.path, format=excluded.format, "
                    "status='running', started_at=excluded.started_at, finished_at=NULL",
                    (digest, fs.path, collector.name if collector else None, "running", iso(utcnow())),
                )
            ing.ingest_file(path, collector, fs)
            with home.state.tx() as con:
                con.execute(
                    "UPDATE ingested_files SET status='done', read=?, ingested=?, duplicates=?, quarantined=?, "
                    "finished_at=? WHERE content_hash=?",
                    (fs.read, fs.ingested, fs.duplicates, fs.quarantined, iso(utcnow()), digest),
                )
            if from_folder:
                _remember(seen, path, before, digest)
    finally:
        ing.close()
        if any(from_folder for _, from_folder in files):
            _INBOX_SEEN[str(home.root)] = seen  # the files of this pass: one deleted from the inbox is forgotten
    return summary


def _sniff_records(items: list[tuple[int, str | bytes]], config) -> Collector:
    head = b"\n".join(r if isinstance(r, bytes) else r.encode("utf-8", "surrogatepass") for _, r in items)
    for cls in registry().values():
        c = cls(config)
        if c.sniff(head, None):
            return c
    raise FormatError("records are not in any known log format", "pass the format name explicitly")


def ingest_records(home: Home, records: Iterable[tuple[int, str | bytes]], fmt: str | None = None,
                   source_name: str = "<records>", source: str = "production",
                   now: dt.datetime | None = None) -> IngestSummary:
    """Ingest raw records given as (line number, raw text), e.g. the body of an HTTP push, without a file."""
    it: Iterator[tuple[int, str | bytes]] = iter(records)
    if fmt:
        collector = get_collector(fmt, home.config)
    else:
        head = []
        for item in it:
            head.append(item)
            if len(head) >= 20:
                break
        collector = _sniff_records(head, home.config)
        it = _chain(head, it)
    summary = IngestSummary([FileSummary(source_name, collector.name)])
    fs = summary.files[0]
    ing = Ingestor(home, source=source, now=now)
    ing._fmt = collector.name
    limit = home.config.ingest.max_line_bytes
    try:
        for line, raw in it:
            ing.add(fs, collector, _parse_raw(collector, line, raw, limit), source_name)
        ing.flush(fs)
    finally:
        ing.close()
    return summary


def _chain(head: list, rest: Iterator) -> Iterator:
    yield from head
    yield from rest


def _parse_raw(collector: Collector, line: int, raw: str | bytes, limit: int) -> RawRecord:
    size = len(raw)
    if size > limit:
        return RawRecord(line, raw[:4096], None, RecordError(
            None, f"record of {size:,} bytes is over ingest.max_line_bytes ({limit:,}); raw text truncated to 4 KB"))
    try:
        return RawRecord(line, raw, collector.parse(raw))
    except RecordError as e:
        return RawRecord(line, raw, None, e)


# -- quarantine ----------------------------------------------------------------------------------------------
def quarantine_rows(home: Home, ids: list[str] | None = None, include_resolved: bool = False) -> list[dict]:
    """Quarantined records with their retry status, newest first (open and retried ones unless asked)."""
    files = [str(p) for p in home.lake.files("quarantine")]
    if not files:
        return []
    status = home.state.query("SELECT quarantine_id, status, at, note FROM quarantine_status")
    con = duckdb.connect(":memory:")
    try:
        st = pa.table({k: pa.array([r[k] for r in status], pa.string())
                       for k in ("quarantine_id", "status", "at", "note")})
        con.register("status", st)
        sql = load_sql("ingest/quarantine_rows.sql").sql
        cur = con.execute(sql, {"files": files, "include_resolved": include_resolved, "ids": list(ids or [])})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    finally:
        con.close()


@dataclass
class RetrySummary:
    retried: int = 0
    ingested: int = 0  # records whose turns are now in the lake (new or already there)
    still_quarantined: int = 0
    turns: int = 0
    results: list[dict] = field(default_factory=list)


def retry_quarantined(home: Home, ids: list[str] | None = None, fmt: str | None = None,
                      actor: str = "cli") -> RetrySummary:
    """Re-ingest quarantined records (all open ones, or `ids`); those that still fail stay quarantined."""
    rows = quarantine_rows(home, ids=ids)
    if ids:
        found = {r["quarantine_id"] for r in rows}
        missing = [i for i in ids if i not in found]
        if missing:
            raise IngestError(f"no open quarantined record with id {missing[0]!r}",
                              "see `monitor quarantine list` (ingested or dismissed ones are not retried)")
    out = RetrySummary()
    ing = Ingestor(home, source="production")
    collectors: dict[str, Collector] = {}
    fs = FileSummary("<quarantine retry>")
    errors: dict[str, str] = {}
    try:
        for r in rows:
            name = fmt or r["source_format"]
            if name not in collectors:
                collectors[name] = get_collector(name, home.config)
            c = collectors[name]
            ing._fmt = c.name
            out.retried += 1
            rec = _parse_raw(c, r["source_line"], r["raw"], home.config.ingest.max_line_bytes)
            before = fs.read
            err = ing.add(fs, c, rec, r["source_file"], quarantine=False, tag=r["quarantine_id"])
            if err is not None:
                errors[r["quarantine_id"]] = f"{err.field + ': ' if err.field else ''}{err.reason}"
            else:
                out.turns += fs.read - before
                # Turns dropped as in-run duplicates never reach a batch: the record is resolved all the same.
                ing.retried.setdefault(r["quarantine_id"], "duplicate")
        ing.flush(fs)
    finally:
        ing.close()
    for qid, outcome in ing.retried.items():
        if outcome.startswith("conflict: "):  # a turn_id held by another reply: found at commit
            errors[qid] = "turn: " + outcome[len("conflict: "):]
    at = iso(utcnow())
    with home.state.tx() as con:
        for r in rows:
            qid = r["quarantine_id"]
            if qid in errors:
                status, note = "retried", f"still failing: {errors[qid]}"
                out.still_quarantined += 1
            else:
                status, note = "ingested", "re-ingested" if ing.retried.get(qid) == "ingested" else "turns already present"
                out.ingested += 1
            con.execute(
                "INSERT INTO quarantine_status (quarantine_id, status, at, note) VALUES (?,?,?,?) "
                "ON CONFLICT(quarantine_id) DO UPDATE SET status=excluded.status, at=excluded.at, note=excluded.note",
                (qid, status, at, note),
            )
            out.results.append({"quarantine_id": qid, "status": status, "note": note})
        home.state.audit(con, actor, "quarantine.retry", f"quarantine:{len(rows)} records",
                         {"ids": [r["quarantine_id"] for r in rows], "format": fmt, "ingested": out.ingested,
                          "still_quarantined": out.still_quarantined})
    if out.retried:
        from monitor.db import write_catalog

        write_catalog(home)
    return out
