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
and turns them into Arrow tables with ``block_rows``, in the ingesting process or in worker processes
(``init_worker``); the ingest keeps file order, dedup and commits in its own process. ``block_rows`` parses blocks
of lines into columns with pyarrow's JSON reader and checks, hashes and assembles the plain rows column-wise; a row
that fails any column check (or a block that does not parse) goes through ``chunk_rows``, which applies ``row`` to
one record at a time, so both give the same table.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import signal

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from collectors import (ID_KEYS, RecordError, feedback_of, model_and_version, skip_rest_of_line, unrecognised_feedback,
                        user_attributes)
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
            if unrecognised_feedback(fb, feedback, score):
                return None  # the general path keeps it in extra
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
    # Ctrl-C reaches the whole process group: the ingesting process stops the pool itself, so a worker printing
    # "Process ForkPoolWorker-2: Traceback ... KeyboardInterrupt" over the one-line message is only noise.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
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
                pos += skip_rest_of_line(f)
        while pos < end:
            line = f.readline(max_line_bytes + 1)
            if not line:
                break
            n += 1
            pos += len(line)
            if len(line) > max_line_bytes and not line.endswith(b"\n"):
                rest = skip_rest_of_line(f)
                total = len(line) + rest
                pos += rest
                other.append((n, line[:4096], total))
                continue
            if line.isspace():
                continue
            lines.append(line)
            nums.append(n)
    tbl, segs, slow = block_rows(lines, fast)
    if slow:
        other.extend((nums[p], lines[p], None) for p in slow)
        other.sort(key=lambda o: o[0])
    line_no = np.asarray(nums, dtype=np.int64)[tbl.column("pos").to_numpy()] if tbl.num_rows else []
    return tbl.set_column(tbl.schema.get_field_index("pos"), "pos", pa.array(line_no, pa.int64())), segs, other, n


def range_rows_shared(path: str, start: int, end: int, max_line_bytes: int, out: str) -> tuple:
    """`range_rows` in a worker, its two tables written as Arrow IPC files `out`.t and `out`.s (e.g. in /dev/shm).

    The ingesting process maps them (`load_shared`) instead of receiving pickles through the pool's pipe, which
    costs a copy on each side and about 3 us of CPU per turn in the receiving process. Returns (`out`, other
    lines, lines started); if the files cannot be written, the tables themselves, like `range_rows`.
    """
    tbl, segs, other, n = range_rows(path, start, end, max_line_bytes)
    try:
        for suffix, t in ((".t", tbl), (".s", segs)):
            # Readable by this user only: /dev/shm is shared by every user of the machine.
            os.close(os.open(out + suffix, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            with pa.OSFile(out + suffix, "wb") as sink, pa.ipc.new_file(sink, t.schema) as w:
                w.write_table(t)
    except OSError:  # no room in the shared-memory folder: send the tables through the pipe after all
        for suffix in (".t", ".s"):
            try:
                os.unlink(out + suffix)
            except OSError:
                pass
        return tbl, segs, other, n
    return out, None, other, n


def load_shared(result: tuple) -> tuple[pa.Table, pa.Table, list[tuple], int]:
    """A `range_rows_shared` result as `range_rows` returns it: tables mapped from their files, files unlinked."""
    out, _, other, n = result
    if not isinstance(out, str):
        return result
    tables = []
    for suffix in (".t", ".s"):
        # The mapping keeps the pages alive after the unlink, as long as the table (or a slice of it) is used.
        with pa.memory_map(out + suffix) as src:
            tables.append(pa.ipc.open_file(src).read_all())
        os.unlink(out + suffix)
    return tables[0], tables[1], other, n


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


# --- Vectorised block path ---------------------------------------------------------------------------------------
# A block of lines is parsed into columns by pyarrow's JSON reader and checked column-wise; only the rows that fail a
# check go through `chunk_rows` (which sends what it cannot take on to the general path). pyarrow refuses what
# orjson refuses in the types taken here (duplicate keys, invalid UTF-8, lone surrogates, trailing commas) except a
# byte-order mark and NaN/Infinity: a block holding a BOM is not taken, and every float column is refused. Anything
# the columns cannot state exactly (a null that may be a missing key, key order, a value that needs a conversion)
# sends the row, or the block, to `chunk_rows`.
# Strings are typed up front: left to inference, one that looks like a date ("2026-11-03T14:02:11Z", a message
# "2026-01-02") would come back as a timestamp, not as its text. A value of another JSON type fails the parse.
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
_PARSE = pa_json.ParseOptions(
    explicit_schema=pa.schema([("conversation_id", pa.string()), ("timestamp", pa.string()), ("model", pa.string()),
                               ("messages", _MESSAGES), ("feedback", pa.string())]),
    unexpected_field_behavior="infer", newlines_in_values=False)
_TOP = frozenset({"conversation_id", "turn", "timestamp", "model", "messages", "user", "feedback", "metadata"})
_TS_RE = (r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
          r"(\.(\d{6}))?Z?$")
# A superset of every trigger in monitor.redact.redact: its literal pre-checks, "@", and its digit-run gate with
# Unicode digits widened to every number character (Python's \d is Unicode Nd), and two colons (the IPv6 trigger).
# Only the messages of a row matching any of them go through `redact` (one row at a time, `_redact_rows`); the
# others cannot change, so they skip it.
_PII_RE = (r"eyJ|earer|EARER|sk-|xox|hp_|ho_|hu_|hs_|hr_|github_pat_|AKIA|ASIA|AIza|@|\pN[\pN .()\-]{5,}\pN"
           r"|(?s::.*:)")
_MIN_BLOCK = 64  # a block that fails to parse is split in halves down to this many lines
_STR = pa.string()
_SCALAR_ATTR = (pa.string(), pa.bool_(), pa.int64(), pa.null())


def block_rows(lines: list[bytes], fast: FastCanonical | None = None) -> tuple[pa.Table, pa.Table, list[int]]:
    """`chunk_rows` of a chunk of raw JSONL lines, the plain rows computed column-wise; the same result."""
    fast = fast or _worker
    parts: list[tuple[pa.Table, pa.Table]] = []
    todo: list[int] = []
    _blocks(lines, 0, len(lines), fast, parts, todo)
    slow: list[int] = []
    if todo:
        t, s, sl = chunk_rows([lines[p] for p in todo], fast)
        where = np.asarray(todo, dtype=np.int64)
        t = t.set_column(t.schema.get_field_index("pos"), "pos",
                         pa.array(where[t.column("pos").to_numpy()], pa.int32()))
        parts.append((t, s))
        slow = [todo[p] for p in sl]
    parts = [p for p in parts if p[0].num_rows]
    if not parts:
        return chunk_rows([], fast)[:2] + (slow,)
    if len(parts) == 1:
        tbl, segs = parts[0]
        order = None
    else:
        offsets = np.cumsum([0] + [p[0].num_rows for p in parts])
        tbl = pa.concat_tables([p[0] for p in parts])
        segs = pa.concat_tables([s.set_column(0, "row", pa.array(s.column("row").to_numpy() + offsets[i], pa.int32()))
                                 for i, (_, s) in enumerate(parts)])
        order = pc.sort_indices(tbl.column("pos"))
    if order is not None:
        tbl = tbl.take(order)
        # Row j of the unsorted table is row rank[j] of the sorted one.
        rank = np.empty(len(order), dtype=np.int32)
        rank[order.to_numpy()] = np.arange(len(order), dtype=np.int32)
        segs = segs.set_column(0, "row", pa.array(rank[segs.column("row").to_numpy()], pa.int32()))
    return tbl.combine_chunks(), segs.combine_chunks(), slow


def _blocks(lines: list[bytes], lo: int, hi: int, fast: FastCanonical, parts: list, todo: list[int]) -> None:
    if lo >= hi:
        return
    blob = b"".join(lines[lo:hi])
    t = None
    if b"\xef\xbb\xbf" not in blob:
        try:
            # With a column typed up front pyarrow does not check that its strings are UTF-8; orjson does.
            blob.decode("utf-8")
            t = pa_json.read_json(io.BytesIO(blob), parse_options=_PARSE,
                                  read_options=pa_json.ReadOptions(use_threads=False, block_size=len(blob) + 1))
        except (pa.ArrowInvalid, UnicodeDecodeError, ValueError):
            t = None
    res = None
    if t is not None and t.num_rows == hi - lo:  # more rows than lines: a line held two objects
        try:
            res = _columns(t, fast, np.fromiter((b"\\" in ln for ln in lines[lo:hi]), bool, hi - lo))
        except pa.ArrowException:  # a column shape not foreseen here: the per-record path is the reference
            res = None
    if res is None:
        if hi - lo <= _MIN_BLOCK:
            todo.extend(range(lo, hi))
        else:
            mid = (lo + hi) // 2
            _blocks(lines, lo, mid, fast, parts, todo)
            _blocks(lines, mid, hi, fast, parts, todo)
        return
    tbl, segs, bad = res
    if tbl.num_rows:
        tbl = tbl.set_column(tbl.schema.get_field_index("pos"), "pos", pc.add(tbl.column("pos"), np.int32(lo)))
        parts.append((tbl, segs))
    todo.extend(lo + int(b) for b in bad)


def _col(t: pa.Table, name: str, types: tuple) -> pa.Array | None:
    """Column `name` as one array (all null when absent), or None when its type is not one of `types`."""
    if name not in t.column_names:
        return pa.nulls(t.num_rows, types[0])
    c = t.column(name).combine_chunks()
    if c.type == pa.null():
        return pa.nulls(t.num_rows, types[0])
    return c if c.type in types else None


def _cat(*parts) -> pa.Array:
    """Element-wise concatenation of string arrays and constants (a constant is broadcast as an array: Arrow's
    scalar broadcast in binary_join_element_wise is about a hundred times slower)."""
    n = next(len(p) for p in parts if not isinstance(p, str))
    return pc.binary_join_element_wise(*(pa.repeat(p, n) if isinstance(p, str) else p for p in parts), "")


def _json_str(a: pa.Array, esc: np.ndarray) -> pa.Array:
    """Each string as orjson.dumps writes it (null as null); rows flagged in `esc` are written by orjson itself.

    A string orjson escapes (a quote, a backslash, a control character) was escaped in valid JSON source too, so
    only rows whose line holds a backslash can need it.
    """
    out = _cat('"', a, '"')
    if esc.any():
        vals = [_dumps(v).decode() for v in a.take(pa.array(np.flatnonzero(esc))).to_pylist()]
        out = pc.replace_with_mask(out, pa.array(esc), pa.array(vals, _STR))
    return pc.fill_null(out, "null")


def _by_value(a: pa.Array, fn) -> pa.Array:
    """fn applied once per distinct value of a string column (null stays null)."""
    d = a.dictionary_encode()
    mapped = pa.array([fn(v) for v in d.dictionary.to_pylist()], _STR)
    return mapped.take(d.indices)


def _columns(t: pa.Table, fast: FastCanonical, backslash: np.ndarray) -> tuple[pa.Table, pa.Table, np.ndarray] | None:
    """(rows taken, their segments, positions left for chunk_rows) of a parsed block, or None for none taken.

    backslash[i] is true when line i holds a backslash (a JSON escape).
    """
    if not set(t.column_names) <= _TOP:
        return None
    n = t.num_rows
    conv = _col(t, "conversation_id", (_STR,))
    turn = _col(t, "turn", (pa.int64(),))
    ts_s = _col(t, "timestamp", (_STR,))
    model = _col(t, "model", (_STR,))
    msgs = _col(t, "messages", (_MESSAGES,))
    fb = _col(t, "feedback", (_STR,))
    if conv is None or turn is None or ts_s is None or model is None or msgs is None or fb is None:
        return None
    user = meta = None
    if "user" in t.column_names:
        user = t.column("user").combine_chunks()
        if user.type == pa.null():
            user = None
        elif not pa.types.is_struct(user.type) or any(f.type not in _SCALAR_ATTR for f in user.type):
            return None
    if "metadata" in t.column_names:
        meta = t.column("metadata").combine_chunks()
        if meta.type == pa.null():
            meta = None
        elif not pa.types.is_struct(meta.type) or any(f.type not in (_STR, pa.null()) for f in meta.type) \
                or "model_version" in meta.type.names \
                or len([f for f in meta.type.names if f != "deployment"]) > 1:  # two or more: key order unknown
            return None

    ok = pc.fill_null(pc.greater(pc.utf8_length(conv), 0), False)
    ok = pc.and_(ok, pc.fill_null(pc.and_(pc.greater_equal(turn, 1), pc.less_equal(turn, 2_147_483_647)), True))
    ok = pc.and_(ok, pc.fill_null(pc.greater(pc.utf8_length(model), 0), False))
    # Timestamps: the plain ISO forms only, a non-zero fraction of exactly six digits (what isoformat writes back)
    ts_ok = pc.fill_null(pc.match_substring_regex(ts_s, _TS_RE), False)
    zero_frac = pc.fill_null(pc.ends_with(pc.utf8_slice_codeunits(ts_s, 0, 26), ".000000"), False)
    ts_ok = pc.and_(ts_ok, pc.invert(zero_frac))
    safe_ts = pc.if_else(ts_ok, ts_s, "2000-01-01T00:00:00")
    base = pc.strptime(pc.utf8_slice_codeunits(safe_ts, 0, 19), format="%Y-%m-%dT%H:%M:%S", unit="us",
                       error_is_null=True)
    # strptime rolls 30 February over into March: the day of the month must read back unchanged.
    ts_ok = pc.and_(ts_ok, pc.fill_null(pc.equal(pc.day(base),
                                                 pc.cast(pc.utf8_slice_codeunits(safe_ts, 8, 10), pa.int64())), False))
    has_frac = pc.equal(pc.utf8_length(safe_ts), pc.if_else(pc.ends_with(safe_ts, "Z"), 27, 26))
    frac = pc.if_else(has_frac, pc.utf8_slice_codeunits(safe_ts, 20, 26), "0")
    micros = pc.add(pc.cast(pc.fill_null(base, 0), pa.int64()), pc.cast(frac, pa.int64()))
    ts = pc.cast(micros, pa.timestamp("us"))
    ts_ok = pc.and_(ts_ok, pc.and_(pc.less_equal(ts, pa.scalar(fast.max_ts, pa.timestamp("us"))),
                                   pc.greater_equal(ts, pa.scalar(_TS_FLOOR, pa.timestamp("us")))))
    ok = pc.and_(ok, ts_ok)

    # Messages: [user, assistant] or [system, user, assistant], every content a string.
    nmsg = pc.fill_null(pc.list_value_length(msgs), 0).to_numpy(zero_copy_only=False)
    off = msgs.offsets.to_numpy()[:n]
    role, content = msgs.values.flatten()
    m_ok = (nmsg == 2) | (nmsg == 3)
    three = nmsg == 3
    last = max(len(role) - 1, 0)
    i_sys = np.clip(off, 0, last)
    i_user = np.clip(off + three, 0, last)
    i_asst = np.clip(off + three + 1, 0, last)
    if len(role) == 0:
        return None

    def at(arr, idx):
        return arr.take(pa.array(idx))

    sys_role, user_role, asst_role = at(role, i_sys), at(role, i_user), at(role, i_asst)
    sys_c, user_c, asst_c = at(content, i_sys), at(content, i_user), at(content, i_asst)
    m_ok = pa.array(m_ok)
    m_ok = pc.and_(m_ok, pc.fill_null(pc.equal(user_role, "user"), False))
    m_ok = pc.and_(m_ok, pc.fill_null(pc.equal(asst_role, "assistant"), False))
    m_ok = pc.and_(m_ok, pc.and_(pc.is_valid(user_c), pc.is_valid(asst_c)))
    three_a = pa.array(three)
    sys_ok = pc.and_(pc.fill_null(pc.equal(sys_role, "system"), False), pc.is_valid(sys_c))
    m_ok = pc.and_(m_ok, pc.or_(pc.invert(three_a), sys_ok))
    ok = pc.and_(ok, m_ok)
    system = pc.if_else(three_a, sys_c, pa.nulls(n, _STR))
    user_msg, reply = user_c, asst_c

    # Rows whose messages may hold something `redact` replaces: it runs on their messages alone, below.
    pii = None
    if fast.redact_pii:
        # One call over the three columns end to end: Arrow compiles the pattern on every call (about 0.6 ms).
        hit = pc.match_substring_regex(pc.fill_null(pa.concat_arrays([user_msg, reply, system]), ""), _PII_RE)
        pii = pc.or_(pc.or_(hit.slice(0, n), hit.slice(n, n)), hit.slice(2 * n, n))

    # User: id (or user_id when there is no id) and the non-identifying scalar attributes.
    uid = pa.nulls(n, _STR)
    attr_fields: list[tuple[str, pa.Array]] = []
    if user is not None:
        fields = dict(zip(user.type.names, user.flatten()))
        if len(fields) != len(user.type.names):
            return None
        if "id" in fields:
            idc = fields["id"]
            if "user_id" in fields:  # a null id hides user_id only when the key was there: cannot tell
                ok = pc.and_(ok, pc.or_(pc.is_valid(idc), pc.is_null(fields["user_id"])))
        else:
            idc = fields.get("user_id")
        if idc is not None:
            if idc.type == pa.bool_():
                return None  # str(True) is "True", a cast writes "true"
            uid = pc.cast(idc, _STR)
        for k in sorted(fields):
            kl = k.lower()
            if kl in ID_KEYS or kl.endswith("_id"):
                continue
            attr_fields.append((k, pc.cast(fields[k], _STR)))
    meta_rest = None
    deployment = pa.nulls(n, _STR)
    if meta is not None:
        fields = dict(zip(meta.type.names, meta.flatten()))
        if "deployment" in fields:
            deployment = fields["deployment"]
        rest = [k for k in fields if k != "deployment"]
        if rest:
            r = fields[rest[0]]
            # A null value inside a present object may be a written null (kept in extra) or a missing key.
            ok = pc.and_(ok, pc.or_(pc.is_null(meta), pc.is_valid(r)))
            key = _dumps(rest[0]).decode()
            meta_rest = _by_value(r, lambda v: '{"metadata":{%s:%s}}' % (key, _dumps(v).decode()))
    fb_label = fb_score = None
    if pc.any(pc.is_valid(fb)).as_py():
        d = fb.dictionary_encode()
        values = d.dictionary.to_pylist()
        pairs = [feedback_of(v) for v in values]
        fb_label = pa.array([p[0] for p in pairs], _STR).take(d.indices)
        fb_score = pa.array([p[1] for p in pairs], pa.float64()).take(d.indices)
        # feedback not understood is kept in extra by the general path: send those rows there
        odd = pa.array([unrecognised_feedback(v, *p) for v, p in zip(values, pairs)], pa.bool_()).take(d.indices)
        ok = pc.and_(ok, pc.invert(pc.fill_null(odd, False)))

    keep = np.flatnonzero(ok.to_numpy(zero_copy_only=False))
    bad = np.flatnonzero(~ok.to_numpy(zero_copy_only=False))
    if not len(keep):
        return _empty_result(), _empty_segs(), bad
    sel = pa.array(keep)

    def k(a):
        return a.take(sel)

    conv, turn, ts_s, ts, model = k(conv), k(turn), k(ts_s), k(ts), k(model)
    system, user_msg, reply, uid, deployment = k(system), k(user_msg), k(reply), k(uid), k(deployment)
    m = len(keep)
    redactions, redaction_counts = pa.array(np.zeros(m, dtype=np.int32)), pa.array(["{}"] * m, _STR)
    if pii is not None:
        hits = np.flatnonzero(pii.to_numpy(zero_copy_only=False)[keep])
        if len(hits):
            user_msg, reply, system, redactions, redaction_counts = _redact_rows(
                hits, user_msg, reply, system, redactions, redaction_counts)
    idx = pc.fill_null(pc.subtract(turn, 1), 0)
    iso = pc.if_else(pc.ends_with(ts_s, "Z"), pc.utf8_slice_codeunits(ts_s, 0, -1), ts_s)
    ver = pc.struct_field(pc.extract_regex(model, r"(?s)^[^@]*@(?P<v>.*)$"), [0])
    version = pc.if_else(pc.equal(ver, ""), pa.nulls(m, _STR), ver)

    turn_key = pc.cast(pc.binary_join_element_wise(conv, pc.cast(idx, _STR), "\x1f"), pa.binary()).to_pylist()
    esc = backslash[keep]
    content_json = _cat("[", _json_str(model, esc), ",", _json_str(iso, esc), ",", _json_str(system, esc), ",",
                        _json_str(user_msg, esc), ",", _json_str(reply, esc), ",", _json_str(uid, esc), "]")
    content_key = pc.cast(content_json, pa.binary()).to_pylist()
    turn_id, k_turn = _digests([_sha256(b).digest() for b in turn_key], b"t")
    content_hash, k_content = _digests([_sha256(b).digest() for b in content_key], b"c")

    seg_row, seg_attr, seg_value = [], [], []
    pieces = []
    for name, vals in attr_fields:
        vals = k(vals)
        valid = pc.is_valid(vals)
        rows = np.flatnonzero(valid.to_numpy(zero_copy_only=False))
        if len(rows):
            seg_row.append(pa.array(rows.astype(np.int32)))
            seg_attr.append(pa.array([name] * len(rows), _STR))
            seg_value.append(vals.take(pa.array(rows)))
        key = _dumps(name).decode()
        piece = _by_value(vals, lambda v: key + ":" + _dumps(v).decode() + ",")
        pieces.append(pc.fill_null(piece, ""))
    if pieces:
        body = pc.binary_join_element_wise(*pieces, "")
        body = pc.if_else(pc.greater(pc.binary_length(body), 0), pc.utf8_slice_codeunits(body, 0, -1), "")
        attrs_json = _cat("{", body, "}")
    else:
        attrs_json = pa.array(["{}"] * m, _STR)
    data = {
        "turn_id": turn_id, "content_hash": content_hash,
        "conversation_id": conv, "turn_index": pc.cast(idx, pa.int32()), "ts": ts, "model": model,
        "model_version": version, "deployment": deployment, "user_id": uid, "user_attrs": attrs_json,
        "system_prompt": system, "user_message": user_msg, "assistant_message": reply,
        "feedback": k(fb_label) if fb_label is not None else pa.nulls(m, _STR),
        "feedback_score": k(fb_score) if fb_score is not None else pa.nulls(m, pa.float64()),
        "redactions": redactions, "redaction_counts": redaction_counts,
        "extra": k(meta_rest) if meta_rest is not None else pa.nulls(m, _STR),
        "source_format": pa.array([fast.source_format] * m, _STR),
        "date": pc.utf8_slice_codeunits(iso, 0, 10),
        "pos": pa.array(keep.astype(np.int32)),
        "k_turn": k_turn, "k_content": k_content,
    }
    segs = pa.table({"row": pa.concat_arrays(seg_row) if seg_row else pa.array([], pa.int32()),
                     "attribute": pa.concat_arrays(seg_attr) if seg_attr else pa.array([], _STR),
                     "value": pa.concat_arrays(seg_value) if seg_value else pa.array([], _STR)})
    # A field whose values were all null comes as Arrow's null type: cast to the per-record path's schema.
    return pa.table(data).cast(_ROW_SCHEMA), segs.cast(_SEG_SCHEMA), bad


def _redact_rows(rows: np.ndarray, user_msg: pa.Array, reply: pa.Array, system: pa.Array, redactions: pa.Array,
                 redaction_counts: pa.Array) -> tuple[pa.Array, ...]:
    """The columns with `redact` applied to the messages of `rows`, as FastCanonical.row applies it."""
    idx = pa.array(rows)
    mask = np.zeros(len(user_msg), dtype=bool)
    mask[rows] = True
    mask = pa.array(mask)
    cols = [user_msg.take(idx).to_pylist(), reply.take(idx).to_pylist(), system.take(idx).to_pylist()]
    n_red, js = [], []
    for i in range(len(rows)):
        counts: dict[str, int] = {}
        for col in cols:
            text = col[i]
            if text:  # None (no system prompt) and "" are left as they are
                col[i], c = redact(text)
                if c:
                    merge_counts(counts, c)
        n_red.append(sum(counts.values()) if counts else 0)
        js.append(_dumps(counts, option=_SORT).decode() if counts else "{}")
    out = [pc.replace_with_mask(a, mask, pa.array(col, _STR)) for a, col in zip((user_msg, reply, system), cols)]
    return (*out, pc.replace_with_mask(redactions, mask, pa.array(n_red, pa.int32())),
            pc.replace_with_mask(redaction_counts, mask, pa.array(js, _STR)))


def _digests(digests: list[bytes], tag: bytes) -> tuple[pa.Array, pa.Array]:
    """(hex of each sha256 digest, tag + its first 15 bytes) as Arrow arrays, built from one buffer each."""
    n = len(digests)
    raw = b"".join(digests)
    hexed = raw.hex().encode()
    hex_arr = pa.Array.from_buffers(_STR, n, [None, pa.py_buffer(np.arange(0, 64 * n + 1, 64, dtype=np.int32)),
                                              pa.py_buffer(hexed)])
    keys = np.empty((n, 16), dtype=np.uint8)
    keys[:, 0] = tag[0]
    keys[:, 1:] = np.frombuffer(raw, dtype=np.uint8).reshape(n, 32)[:, :15]
    key_arr = pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(np.arange(0, 16 * n + 1, 16, dtype=np.int32)),
                                                     pa.py_buffer(keys.tobytes())])
    return hex_arr, key_arr


def _empty_result() -> pa.Table:
    return chunk_rows([], _EMPTY)[0]


def _empty_segs() -> pa.Table:
    return chunk_rows([], _EMPTY)[1]


_EMPTY = FastCanonical(dt.datetime(2000, 1, 1), 0, False, "")
_ROW_SCHEMA = _empty_result().schema
_SEG_SCHEMA = _empty_segs().schema
