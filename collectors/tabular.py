"""CSV / TSV and Parquet files: one turn per row, columns mapped to turn fields by `[ingest.columns]`.

Example ``monitor.toml``::

    [ingest.columns]
    conversation_id = "conv_id"
    user_message = "prompt"
    assistant_message = "reply"
    timestamp = "ts"
    model = "model_name"
    "user.language" = "lang"

Fields not mapped are looked up under their own name and common aliases (``prompt``, ``response``,
``created_at``...). Columns named ``user.X`` or ``user_X`` become segment attribute X (``user_id`` is the user's
id); any other column is kept in ``extra``. ``turn`` (1-based) numbers rows of the same conversation; without it
each row is turn 1 of its conversation. The raw text kept in quarantine is the row as a JSON object, so a record
quarantined for a missing column is ingested by ``monitor quarantine retry`` after the mapping is fixed.
"""
from __future__ import annotations

import csv
import datetime as dt
import sys
from collections import deque
from pathlib import Path
from typing import Any, Iterator

import orjson

from collectors import (
    ID_KEYS,
    Collector,
    RawRecord,
    RecordError,
    Turn,
    derived_conversation_id,
    feedback_of,
    json_type,
    model_and_version,
    parse_json,
    parse_ts,
)
from monitor.errors import IngestError

ALIASES: dict[str, tuple[str, ...]] = {
    "conversation_id": ("conversation_id", "conversation", "conv_id", "session_id", "thread_id"),
    "turn": ("turn", "turn_number", "turn_index"),
    "timestamp": ("timestamp", "ts", "time", "created_at", "datetime", "event_time"),
    "model": ("model", "model_name"),
    "model_version": ("model_version", "version"),
    "deployment": ("deployment", "environment"),
    "user_id": ("user_id", "user.id"),
    "system_prompt": ("system_prompt", "system"),
    "user_message": ("user_message", "prompt", "input", "question", "user"),
    "assistant_message": ("assistant_message", "response", "completion", "output", "answer", "reply"),
    "feedback": ("feedback", "rating", "thumbs"),
}


class TabularCollector(Collector):
    name = "tabular"
    description = "CSV/TSV (.csv, .tsv) or Parquet files, columns mapped by [ingest.columns]"
    extensions = (".csv", ".tsv", ".parquet", ".pq")

    def sniff(self, head: bytes, path: Path | None = None) -> bool:
        if head[:4] == b"PAR1":
            return True
        return path is not None and path.suffix.lower() in (".csv", ".tsv")

    def records(self, path: Path) -> Iterator[RawRecord]:
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == b"PAR1":
            yield from self._parquet(path)
        else:
            yield from self._csv(path)

    def _csv(self, path: Path) -> Iterator[RawRecord]:
        """Rows as RawRecords numbered by the file line each starts on (a quoted field may span lines)."""
        csv.field_size_limit(min(sys.maxsize, self.ingest.max_line_bytes))
        delim = "\t" if path.suffix.lower() == ".tsv" else ","
        # surrogateescape keeps invalid UTF-8 bytes visible so each bad row is quarantined, not the whole file.
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            lines = _Lines(f)
            reader = csv.reader(lines, delimiter=delim)
            try:
                header = next(reader)
            except StopIteration:
                return
            except csv.Error as e:
                raise IngestError(f"{path}:1: the CSV header cannot be read: {e}", "fix the first line") from None
            header = [h.lstrip("\ufeff").strip() for h in header]
            while True:
                lines.start()
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    raw, reason = lines.text(), f"CSV error: {e}"
                    if len(raw) > self.ingest.max_line_bytes:  # a field over the limit: kept short, as in JSONL
                        raw, reason = raw[:4096], f"{reason}; raw text truncated to 4 KB"
                    yield RawRecord(lines.first, raw, None, RecordError(None, reason))
                    reader = csv.reader(lines, delimiter=delim)  # the reader cannot go on after an error
                    continue
                first, last = lines.first, lines.last
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(header):
                    if last > first:
                        # A record over several lines with the wrong field count: a quote that is never closed
                        # swallowed the lines after it. Quarantine its first line alone and read on from the
                        # next one (a well-formed quoted field over several lines has the right field count).
                        to_end = " (the end of the file)" if lines.at_end() else ""
                        raw = lines.take_first()
                        reader = csv.reader(lines, delimiter=delim)
                        yield RawRecord(first, raw, None, RecordError(
                            None, f"unterminated quote: the quote opened on file line {first} runs to line "
                                  f"{last}{to_end}, giving a row of {len(values)} fields (the header has "
                                  f"{len(header)}); line {first} is quarantined alone and reading goes on at line "
                                  f"{first + 1}: close the quote, then ingest the file again"))
                        continue
                    yield RawRecord(first, lines.text(), None, RecordError(
                        None, f"row has {len(values)} fields, the header has {len(header)} (an unquoted "
                              f"{'delimiter' if len(values) > len(header) else 'missing field'}?): fix the row, "
                              f"then ingest the file again"))
                    continue
                row = dict(zip(header, values))
                bad = next((k for k, v in row.items() if _has_surrogates(v)), None)
                raw = orjson.dumps({k: _visible(v) for k, v in row.items()}).decode()
                if bad is not None:
                    yield RawRecord(first, raw, None, RecordError(bad, "invalid UTF-8"))
                    continue
                yield RawRecord(first, raw, row)

    def parse(self, raw: str | bytes) -> Any:
        """A quarantined row (a JSON object) back for a retry; a row that never split into columns cannot be."""
        try:
            obj = parse_json(raw)
        except RecordError:
            obj = None
        if not isinstance(obj, dict):
            raise RecordError(None, "this CSV row did not split into the header's columns (wrong field count or "
                                    "a broken quote), so it cannot be retried from quarantine: fix the row in the "
                                    "file and ingest the file again")
        return obj

    def _parquet(self, path: Path) -> Iterator[RawRecord]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        row_no = 0
        for batch in pf.iter_batches(batch_size=10_000):
            for row in batch.to_pylist():
                row_no += 1
                yield RawRecord(row_no, orjson.dumps(row, default=str).decode(), row)

    def _mapping(self) -> dict[str, str]:
        return dict(self.ingest.columns)

    def _get(self, row: dict, mapping: dict[str, str], fld: str) -> tuple[Any, str]:
        col = mapping.get(fld)
        if col is not None:
            return row.get(col), col
        for alias in ALIASES.get(fld, (fld,)):
            if alias in row:
                return row[alias], alias
        return None, ALIASES.get(fld, (fld,))[0]

    def to_turns(self, obj: Any) -> list[dict]:
        if not isinstance(obj, dict):
            raise RecordError(None, f"row must be an object, got {json_type(obj)}")
        mapping = self._mapping()
        used: set[str] = set()

        def get(fld: str) -> tuple[Any, str]:
            v, col = self._get(obj, mapping, fld)
            used.add(col)
            return (None if v == "" else v), col

        reply, rcol = get("assistant_message")
        if reply is None:
            raise RecordError(rcol, f"no assistant message (column {rcol!r} missing or empty; "
                                    f"set ingest.columns.assistant_message)")
        if not isinstance(reply, str):
            raise RecordError(rcol, f"must be text, got {json_type(reply)}")
        prompt, pcol = get("user_message")
        if prompt is not None and not isinstance(prompt, str):
            raise RecordError(pcol, f"must be text, got {json_type(prompt)}")
        ts_v, tcol = get("timestamp")
        ts = parse_ts(_number_or_text(ts_v), tcol)
        model_v, mcol = get("model")
        version, vcol = get("model_version")
        model, version = model_and_version(model_v, version, mcol, vcol or "model_version")
        turn_v, ucol = get("turn")
        turn = 1
        if turn_v is not None:
            try:
                turn = int(turn_v)
            except (TypeError, ValueError):
                raise RecordError(ucol, f"must be an integer, got {turn_v!r}") from None
            if turn < 1:
                raise RecordError(ucol, f"must be 1 or more, got {turn}")
        conv, _ = get("conversation_id")
        if conv is None:
            conv = derived_conversation_id(str(ts), prompt, reply)
        system, _ = get("system_prompt")
        deployment, _ = get("deployment")
        fb, _ = get("feedback")
        feedback, score = feedback_of(_number_or_text(fb))
        user_id, _ = get("user_id")
        attrs: dict[str, str] = {}
        for fld, col in mapping.items():
            if fld.startswith("user.") and fld[5:] not in ID_KEYS and obj.get(col) not in (None, ""):
                attrs[fld[5:]] = str(obj[col])
                used.add(col)
        for col, v in obj.items():
            if col in used or v in (None, ""):
                continue
            for prefix in ("user.", "user_"):
                if col.startswith(prefix):
                    key = col[len(prefix):]
                    if key.lower() not in ID_KEYS and not key.lower().endswith("_id"):
                        attrs.setdefault(key, str(v))
                    used.add(col)
        extra = {k: v for k, v in obj.items() if k not in used and v not in (None, "")}
        return [Turn.make(conversation_id=str(conv), turn_index=turn - 1, ts=ts, model=model, model_version=version,
                          deployment=None if deployment is None else str(deployment),
                          user_id=None if user_id is None else str(user_id), user_attrs=attrs,
                          system_prompt=system, user_message=prompt or "", assistant_message=reply,
                          feedback=feedback, feedback_score=score, extra=extra or None)]


class _Lines:
    """The physical lines of a text file for csv.reader, remembering those of the current record so that its first
    line can be quarantined alone and the rest read again (after an unterminated quote)."""

    def __init__(self, f):
        self.f = f
        self.pending: deque[str] = deque()  # lines to read again (a deque: a swallowed run can be long)
        self.taken: list[str] = []  # lines of the current record
        self.n = 0  # physical lines read (including pending ones given back)
        self.first = 1

    def start(self) -> None:
        self.taken = []
        self.first = self.n + 1

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.pending.popleft() if self.pending else next(self.f)
        self.n += 1
        self.taken.append(line)
        return line

    @property
    def last(self) -> int:
        return self.n

    def at_end(self) -> bool:
        if self.pending:
            return False
        nxt = self.f.readline()
        if nxt:
            self.pending.append(nxt)
        return not nxt

    def text(self) -> str:
        return _visible("".join(self.taken).rstrip("\r\n"))

    def take_first(self) -> str:
        """The current record's first line; its other lines are read again."""
        first, rest = self.taken[0], self.taken[1:]
        self.pending.extendleft(reversed(rest))
        self.n -= len(rest)
        self.taken = [first]
        return _visible(first.rstrip("\r\n"))


def _number_or_text(v: Any) -> Any:
    """CSV cells are text: '1762180931' is an epoch and '-1' a score; datetimes from Parquet pass through."""
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            try:
                return float(s)
            except ValueError:
                return s
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return v


def _has_surrogates(s: str) -> bool:
    try:
        s.encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _visible(s: str) -> str:
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") if _has_surrogates(s) else s
