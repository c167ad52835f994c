"""Fast path of the canonical collector: a finished turn row straight from one simple parsed record, or None.

``CanonicalCollector.to_turns`` plus ``Ingestor._finalize`` is general (multi-turn records, content parts, role
aliases, per-message timestamps, derived conversation ids) and pays for it in dicts and calls per record. Most
production lines are one exchange of a plain shape::

    {"conversation_id": "c-81", "turn": 2, "timestamp": "2026-11-03T14:02:11Z", "model": "assistant@2026-10",
     "messages": [{"role": "user", "content": "..."}, {"role": "assistant", "content": "..."}], "user": {...}}

``FastCanonical.row`` turns such a record into the finished column values in one pass, with the same helpers
(``model_and_version``, ``user_attributes``, ``feedback_of``, ``redact``) and the same hashes, and returns None for
anything else: a record it does not handle, or one that would fail a check. The caller then sends that record
down the general path, which alone words quarantine reasons, so both paths store identical rows
(tests/test_ingest_fastpath.py holds them to it).

``range_rows`` reads the lines that start in a byte range of a file (exactly as ``collectors.iter_lines`` would)
and turns them into Arrow tables with ``chunk_rows``, in the ingesting process or in worker processes
(``init_worker``); the ingest keeps file order, dedup and commits in its own process.
"""
from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import orjson
import pyarrow as pa

from collectors import ID_KEYS, RecordError, feedback_of, model_and_version, user_attributes
from collectors.canonical import _KNOWN, CanonicalCollector
from monitor.redact import merge_counts, redact

_TS_FLOOR = dt.datetime(1990, 1, 1)
_fromiso = dt.datetime.fromisoformat
_sha256 = hashlib.sha256
_dumps = orjson.dumps
_SORT = orjson.OPT_SORT_KEYS
_UTC = dt.timezone.utc
# The general path this one stands in for: a subclass or a patched to_turns (a plugin, a test) is not short-cut.
_TO_TURNS = CanonicalCollector.to_turns


def handles(collector) -> bool:
    """True when `collector` is the built-in canonical collector, whose records the fast path may take."""
    return type(collector) is CanonicalCollector and CanonicalCollector.to_turns is _TO_TURNS


class FastCanonical:
    """Builds turn rows for simple canonical records; see the module docstring for what "simple" means."""

    def __init__(self, now: dt.datetime, max_future_minutes: int, redact_pii: bool, source_format: str):
        self.max_ts = now + dt.timedelta(minutes=max_future_minutes)
        self.redact_pii = redact_pii
        self.source_format = source_format

    def row(self, obj) -> tuple | None:
        """(turn columns..., date, turn key, content key, attrs) for a one-exchange record, else None."""
        if type(obj) is not dict:
            return None
        msgs = obj.get("messages")
        if type(msgs) is not list:
            return None
        n = len(msgs)
        if n == 2:
            mu, ma = msgs
            system = None
        elif n == 3:
            ms, mu, ma = msgs
            if type(ms) is not dict or ms.get("role") != "system":
                return None
            system = ms.get("content")
            if type(system) is not str:
                return None
        else:
            return None
        if type(mu) is not dict or type(ma) is not dict or mu.get("role") != "user" \
                or ma.get("role") != "assistant" or ma.get("timestamp"):
            return None
        user_message = mu.get("content")
        reply = ma.get("content")
        if type(user_message) is not str or type(reply) is not str:
            return None
        ts = obj.get("timestamp")
        if type(ts) is not str:
            return None
        try:
            # The same parse as collectors.parse_ts: ISO 8601, an offset converted to naive UTC.
            ts = _fromiso(ts.strip())
        except ValueError:
            return None
        tz = ts.tzinfo
        if tz is not None:
            ts = ts.replace(tzinfo=None) if tz is _UTC else ts.astimezone(_UTC).replace(tzinfo=None)
        if ts > self.max_ts or ts < _TS_FLOOR:
            return None
        meta = obj.get("metadata")
        if meta is None:
            meta = {}
        elif type(meta) is not dict:
            return None
        conv = obj.get("conversation_id")
        tc = type(conv)
        if tc is not str:
            if tc is not int:
                return None  # missing (a derived id), or a wrong type: the general path decides
            conv = str(conv)
        elif not conv:
            return None
        first = obj.get("turn")
        if first is None:
            idx = 0
        elif type(first) is int and 1 <= first <= 2_147_483_647:  # turn_index is int32
            idx = first - 1
        else:
            return None
        model = obj.get("model")
        if type(model) is not str or not model:
            return None
        try:
            if "model_version" in obj or "model_version" in meta:
                model, version = model_and_version(model, obj.get("model_version", meta.get("model_version")))
            else:  # model_and_version without a separate version: name@version is split, else no version
                version = model.partition("@")[2] or None if "@" in model else None
            user = obj.get("user")
            if type(user) is dict:
                user_id, attrs = _user_attributes(user)
            else:
                user_id, attrs = user_attributes(user)
            fb = obj.get("feedback")
            feedback, score = (None, None) if fb is None else feedback_of(fb)
        except RecordError:
            return None
        deployment = obj.get("deployment", meta.get("deployment"))
        if deployment is not None and type(deployment) is not str:
            deployment = str(deployment)
        extra = {k: v for k, v in obj.items() if k not in _KNOWN}
        if meta:
            rest = {k: v for k, v in meta.items() if k != "deployment" and k != "model_version"}
            if rest:
                extra["metadata"] = rest
        redactions = 0
        redaction_counts = "{}"
        if self.redact_pii:
            counts: dict[str, int] = {}
            if user_message:
                user_message, c = redact(user_message)
                if c:
                    merge_counts(counts, c)
            if reply:
                reply, c = redact(reply)
                if c:
                    merge_counts(counts, c)
            if system:
                system, c = redact(system)
                if c:
                    merge_counts(counts, c)
            if counts:
                redactions = sum(counts.values())
                redaction_counts = _dumps(counts, option=_SORT).decode()
        iso = ts.isoformat()  # years from 1990 on: the first ten characters are the date partition
        d_turn = _sha256(f"{conv}\x1f{idx}".encode()).digest()
        d_content = _sha256(_dumps((model, iso, system, user_message, reply, user_id))).digest()
        return (d_turn.hex(), d_content.hex(), conv, idx, ts, model, version, deployment, user_id,
                _dumps(attrs, option=_SORT).decode() if attrs else "{}", system, user_message, reply, feedback,
                score, redactions, redaction_counts, _dumps(extra, default=str).decode() if extra else None,
                self.source_format, iso[:10], b"t" + d_turn[:15], b"c" + d_content[:15], attrs)


# Columns of the table `chunk_rows` returns: the turn columns of FastCanonical.row in order, then the row's
# position in the chunk and its two dedup keys.
ROW_COLS = ("turn_id", "content_hash", "conversation_id", "turn_index", "ts", "model", "model_version", "deployment",
            "user_id", "user_attrs", "system_prompt", "user_message", "assistant_message", "feedback",
            "feedback_score", "redactions", "redaction_counts", "extra", "source_format", "date")
_TYPES = {"turn_index": pa.int32(), "ts": pa.timestamp("us"), "feedback_score": pa.float64(),
          "redactions": pa.int32()}
_worker: FastCanonical | None = None


def init_worker(now: dt.datetime, max_future_minutes: int, redact_pii: bool, source_format: str) -> None:
    """Set up a worker process (multiprocessing initializer) to run `chunk_rows`."""
    global _worker
    _worker = FastCanonical(now, max_future_minutes, redact_pii, source_format)


def range_rows(path: str, start: int, end: int, max_line_bytes: int,
               fast: FastCanonical | None = None) -> tuple[pa.Table, pa.Table, list[tuple], int]:
    """The lines of a file that start in bytes [start, end), read like collectors.iter_lines, as `chunk_rows`.

    Returns (turn rows, segments, other lines, lines started): "pos" is the line number counted from the range's
    first line (1-based, blank lines included), and each other line is (that number, raw bytes, None) or, for a
    line over max_line_bytes, (number, first 4 KB, its length in bytes).
    """
    lines: list[bytes] = []
    nums: list[int] = []
    other: list[tuple] = []
    n = 0
    with open(path, "rb") as f:
        pos = start
        if start > 0:
            f.seek(start - 1)
            if f.read(1) != b"\n":  # the range starts inside a line: it belongs to the previous range
                while True:
                    piece = f.readline(1 << 20)
                    pos += len(piece)
                    if not piece or piece.endswith(b"\n"):
                        break
        while pos < end:
            line = f.readline(max_line_bytes + 1)
            if not line:
                break
            n += 1
            pos += len(line)
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                total = len(line)
                while True:
                    piece = f.readline(1 << 20)
                    total += len(piece)
                    pos += len(piece)
                    if not piece or piece.endswith(b"\n"):
                        break
                other.append((n, line[:4096], total))
                continue
            if line.isspace():
                continue
            lines.append(line)
            nums.append(n)
    tbl, segs, slow = chunk_rows(lines, fast)
    if slow:
        other.extend((nums[p], lines[p], None) for p in slow)
        other.sort(key=lambda o: o[0])
    line_no = np.asarray(nums, dtype=np.int64)[tbl.column("pos").to_numpy()] if tbl.num_rows else []
    return tbl.set_column(tbl.schema.get_field_index("pos"), "pos", pa.array(line_no, pa.int64())), segs, other, n


def chunk_rows(lines: list[bytes], fast: FastCanonical | None = None) -> tuple[pa.Table, pa.Table, list[int]]:
    """(turn rows, their segments, positions left for the general path) of a chunk of raw JSONL lines."""
    fast = fast or _worker
    row_of = fast.row
    loads = orjson.loads
    rows: list[tuple] = []
    pos: list[int] = []
    slow: list[int] = []
    for p, line in enumerate(lines):
        try:
            r = row_of(loads(line))
        except Exception:  # malformed JSON and the rest: the general path parses again and words the reason
            r = None
        if r is None:
            slow.append(p)
        else:
            rows.append(r)
            pos.append(p)
    by_col = list(zip(*rows)) if rows else [()] * 23
    data = {c: pa.array(by_col[j], _TYPES.get(c, pa.string())) for j, c in enumerate(ROW_COLS)}
    data["pos"] = pa.array(pos, pa.int32())
    data["k_turn"] = pa.array(by_col[20], pa.binary())
    data["k_content"] = pa.array(by_col[21], pa.binary())
    seg_row: list[int] = []
    seg_attr: list[str] = []
    seg_value: list[str] = []
    for j, attrs in enumerate(by_col[22]):
        for attr, value in attrs.items():
            seg_row.append(j)
            seg_attr.append(attr)
            seg_value.append(value)
    segs = pa.table({"row": pa.array(seg_row, pa.int32()), "attribute": pa.array(seg_attr, pa.string()),
                     "value": pa.array(seg_value, pa.string())})
    return pa.table(data), segs, slow


_IS_ATTR: dict[str, bool] = {}  # user key -> kept as a segment attribute (not an identifier); keys repeat


def _user_attributes(user: dict) -> tuple[str | None, dict[str, str]]:
    # collectors.user_attributes for a dict, unrolled: this runs once per turn on the fast path.
    uid = user.get("id", user.get("user_id"))
    attrs = {}
    for k, v in user.items():
        if v is None:
            continue
        keep = _IS_ATTR.get(k)
        if keep is None:
            kl = k.lower()
            keep = not (kl in ID_KEYS or kl.endswith("_id"))
            if len(_IS_ATTR) < 10_000:
                _IS_ATTR[k] = keep
        if not keep:
            continue
        tv = type(v)
        if tv is str:
            attrs[k] = v
        elif tv is bool:
            attrs[k] = "true" if v else "false"
        elif tv is int or tv is float:
            attrs[k] = str(v)
    return (None if uid is None else str(uid)), attrs
