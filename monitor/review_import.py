"""Bulk import of reviewer labels made outside the dashboard (an annotation tool, a vendor, a spreadsheet).

A file (JSONL, a JSON array, CSV or Parquet; `monitor labels export` output re-imports as is) holds one label per
row: `turn_id`, optionally `reviewer` (else the importer's `--reviewer`), `sample` (else `--sample`), an export's
`queue_reason` (which decides over both) and any of the label fields the dashboard form has. The import is all or
nothing: every row is checked first (known columns, allowed values, a turn that is in the lake, one answer per turn
and reviewer) and any error imports nothing, with each error named by file, line and field. Each row then counts
once as added, updated (the reviewer's earlier label on that turn is replaced, as relabelling in the dashboard
does), unchanged (the same label is stored already) or repeated (the same row earlier in the file): the four add
up to the rows read.

Files come from spreadsheets and pandas as often as from scripts, so column names are compared without case,
spaces or dashes ('Turn ID' is turn_id), a CSV may use ';' or tabs (Excel where the decimal mark is a comma), its
empty rows (',,,') are not rows and empty unnamed columns are ignored, cells are stripped, answers are compared
without case ('Compliance', 'TRUE', pandas' 1.0), and NaN is a missing value.

`sample` says how the labelled turns were chosen, because the error-corrected rates measure the classifiers on
the labels: labels on turns picked *because* they looked wrong (uncertain scores, an incident, a keyword search)
overstate the classifiers' errors, so `targeted` labels are kept out of the error rates; only `random` ones count.
"""
from __future__ import annotations

import csv
import difflib
import io
import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

from monitor.home import Home
from monitor.review import (
    LABEL_FIELDS, PROMPT_LABELS, QUEUE_SAMPLE, REFUSAL_LABELS, SAMPLES, VALUE_CONCERNS, ReviewError, _choice,
    _flag,
)
from monitor.state import iso, utcnow

# Columns of `monitor labels export` (sql/dashboard/labelled_turns.sql) that describe the turn or the classifier,
# not the label: read and ignored, so an export re-imports as is.
EXPORT_ONLY = ("label_id", "labelled_at", "conversation_id", "ts", "model", "model_version", "deployment",
               "user_attrs", "user_message", "assistant_message", "predicted_refusal", "refusal_score",
               "predicted_prompt_harm", "prompt_harm_score", "refusal_version", "harm_version")
KNOWN = ("turn_id", "reviewer", "sample", "queue_reason", *LABEL_FIELDS, *EXPORT_ONLY)
FLAGS = ("refusal_correct", "over_refusal", "harmful_compliance")
MAX_ERRORS = 200  # errors kept (the CLI prints the first 20); counting goes on


class LabelImportError(ReviewError):
    title = "Label import error"

    def __init__(self, errors: list[str], total: int, hint: str | None = None):
        self.errors, self.total = errors, total
        more = f" (and {total - 1} more error{'s' if total > 2 else ''})" if total > 1 else ""
        super().__init__(f"{errors[0]}{more}; nothing was imported", hint or "fix the file and import it again")


@dataclass(frozen=True)
class ImportResult:
    rows: int
    added: int
    updated: int
    unchanged: int
    repeated: int
    dry_run: bool

    def as_dict(self) -> dict:
        return asdict(self)


def read_rows(path: Path) -> Iterator[tuple[str, dict | str]]:
    """(where, row) per record of a JSONL, CSV or Parquet file; `row` is the error text for an unreadable line."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as e:
            raise ReviewError(f"{path}: not a readable Parquet file ({e})",
                              "check that the file is Parquet and whole; name a CSV .csv and JSON lines .jsonl") from e
        for i, row in enumerate(table.to_pylist(), 1):
            yield f"{path}: row {i}", row
        return
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ReviewError(f"cannot read {path}: {e.strerror or e}") from e
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ReviewError(f"{path}: not UTF-8 text (byte {e.start})",
                          "save the file as UTF-8 (Excel: Save As 'CSV UTF-8 (Comma delimited)'; Google Sheets"
                          " downloads are UTF-8 already)") from e
    if suffix == ".csv":
        yield from _csv_rows(path, text)
        return
    if suffix not in (".jsonl", ".ndjson", ".json"):
        raise ReviewError(f"{path}: unknown label file type {suffix or '(none)'!r}",
                          "use .jsonl (one JSON object per line), .json (one array of objects), .csv or .parquet")
    if suffix == ".json" and text.lstrip().startswith("["):
        # One JSON array of objects, as json.dump(list) and pandas' to_json(orient="records") write a .json file.
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            yield f"{path}:{e.lineno}", f"not valid JSON ({e.msg} at column {e.colno})"
            return
        for i, item in enumerate(items, 1):
            where = f"{path}: item {i}"
            yield where, item if isinstance(item, dict) else f"not a JSON object (got {type(item).__name__})"
        return
    # Lines end at "\n" only: str.splitlines() also splits at U+2028, U+0085 and the like, which JSON writes raw
    # inside strings (json.dumps(ensure_ascii=False), as `monitor labels export` does with a turn's text).
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            yield f"{path}:{n}", f"not valid JSON ({e.msg} at column {e.colno})"
            continue
        yield f"{path}:{n}", row if isinstance(row, dict) else f"not a JSON object (got {type(row).__name__})"


def _csv_rows(path: Path, text: str) -> Iterator[tuple[str, dict | str]]:
    """read_rows for a CSV as spreadsheets write it (Excel, Google Sheets, LibreOffice, pandas)."""
    first = text.split("\n", 1)[0]
    # Excel writes ';' where the decimal mark is a comma (most of Europe), and "Text (Tab delimited)" tabs.
    delimiter = max((",", ";", "\t"), key=first.count) if first.strip() else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        if header is None:
            return
        names = [column_name(h) for h in header]
        twice = sorted({n for n in names if n and names.count(n) > 1})
        if twice:
            yield f"{path}:1", (f"column {twice[0]!r} appears {names.count(twice[0])} times in the header"
                                " (names are compared without case and spaces)")
            return
        start = reader.line_num + 1
        for cells in reader:
            where = f"{path}:{start}"
            start = reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue  # a spreadsheet's empty rows (",,,") are not labels: not read, not counted
            if len(cells) > len(names) and any(c.strip() for c in cells[len(names):]):
                yield where, f"more cells than the header has ({len(names)} columns)"
                continue
            row: dict = {}
            for name, cell in zip(names, cells):
                if not name:
                    if cell.strip():  # a trailing empty column of a spreadsheet is harmless; a value in one is not
                        yield where, f"a value ({cell.strip()[:40]!r}) in a column with no name in the header"
                        break
                    continue
                row[name] = cell
            else:
                yield where, row
    except csv.Error as e:
        yield f"{path}:{reader.line_num}", f"not valid CSV ({e})"


def column_name(name) -> str:
    """A column name as the import reads it: 'Turn ID', ' turn_id ' and 'TURN-ID' are all 'turn_id'."""
    return re.sub(r"[\s-]+", "_", str(name).strip().lower()) if name is not None else ""


def _cell(v: Any) -> Any:
    """A cell as the checks read it: text stripped, and blank text or NaN (pandas' missing value) as None."""
    if isinstance(v, str):
        return v.strip() or None
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _answer(v: Any) -> Any:
    """An answer as spreadsheets and pandas write it: 'Compliance' is compliance, '1.0' is 1 (a float column's)."""
    if isinstance(v, str):
        v = v.lower()
        return {"1": 1, "0": 0, "1.0": 1, "0.0": 0}.get(v, v)
    return v


def _check(row: dict, reviewer: str | None, sample: str | None) -> tuple[dict, list[str], list[tuple[str, str]]]:
    """The label row to store, the problems of this input row (field-named), and its unknown columns (name, text)."""
    errors: list[str] = []
    named: dict[str, Any] = {}
    for k, v in row.items():
        name = column_name(k)
        if name in named:
            errors.append(f"column {name!r} is given twice (names are compared without case and spaces)")
        named[name] = _cell(v)
    row = named
    unknown = []
    for k in row:
        if k not in KNOWN:
            close = difflib.get_close_matches(k, KNOWN, n=1)
            unknown.append((k, f"unknown column {k!r}" + (f" (did you mean {close[0]!r}?)" if close else "")))
    turn_id = row.get("turn_id")
    if turn_id is None:
        errors.append("field 'turn_id' is missing or empty")
    elif not isinstance(turn_id, str):
        errors.append(f"field 'turn_id' must be text (a turn id as `monitor sql` shows it), got {turn_id!r}")
    out: dict[str, Any] = {"turn_id": turn_id if isinstance(turn_id, str) else None}
    who = row.get("reviewer") if row.get("reviewer") is not None else reviewer
    if not isinstance(who, str) or not who.strip():
        errors.append("field 'reviewer': no reviewer (give the column or --reviewer)")
    out["reviewer"] = who.strip() if isinstance(who, str) else None
    how = _answer(row.get("sample") if row.get("sample") is not None else sample)
    if how is not None and how not in SAMPLES:
        errors.append(f"field 'sample' must be one of {', '.join(SAMPLES)}, got {how!r}")
    reason = _answer(row.get("queue_reason"))
    if reason is not None and reason not in QUEUE_SAMPLE:
        errors.append(f"field 'queue_reason' must be one of {', '.join(QUEUE_SAMPLE)}, got {row['queue_reason']!r}")
    elif reason is not None:
        # An export's queue item: the queue's reason decides, as in the home it came from (an uncertain item is
        # targeted whatever --sample says); this home's queue never held the turn.
        how = QUEUE_SAMPLE[reason]
    out["sample"] = how
    for f in LABEL_FIELDS:
        v = row.get(f)
        try:
            if f == "refusal_label":
                out[f] = _choice(f, _answer(v), REFUSAL_LABELS)
            elif f == "prompt_label":
                out[f] = _choice(f, _answer(v), PROMPT_LABELS)
            elif f in FLAGS:
                out[f] = _flag(f, _answer(v))
            elif f == "value_concern":
                # The dashboard offers these only; another word would be a category no page counts.
                if v is not None and _answer(v) not in VALUE_CONCERNS:
                    raise ReviewError(f"label field '{f}' must be one of {', '.join(VALUE_CONCERNS)}, got {v!r}"
                                      " (free text goes in 'note')")
                out[f] = _answer(v)
            else:
                if v is not None and not isinstance(v, str):
                    raise ReviewError(f"label field '{f}' must be text, got {v!r}")
                out[f] = v
        except ReviewError as e:
            # Worded with the cell as the file has it ('Y', not the 'y' it was compared as).
            errors.append(e.message.replace("label field", "field", 1).replace(f"got {_answer(v)!r}", f"got {v!r}"))
    if not errors and not unknown and all(out[f] is None for f in LABEL_FIELDS):
        errors.append(f"no answer: give at least one of {', '.join(LABEL_FIELDS)}")
    return out, errors, unknown


def _person(name: str) -> str:
    """A reviewer name as a person is recognised: 'Jane  Doe' and 'jane doe' are one reviewer."""
    return " ".join(name.split()).casefold()


def _check_spellings(home: Home, rows: list[tuple[str, dict]], fail, order_of: dict[str, int],
                     default: str | None = None) -> None:
    """Fail each reviewer name that is a stored or earlier name written another way (case, spacing), once."""
    # Stored apart, 'Jane' and 'jane ' would be two reviewers: agreement would pair one person with herself and a
    # majority vote would count her twice.
    stored: dict[str, str] = {}
    for r in home.state.query("SELECT DISTINCT reviewer FROM labels ORDER BY reviewer"):
        stored.setdefault(_person(r["reviewer"]), r["reviewer"])
    first: dict[str, tuple[str, str]] = {}  # person -> (spelling, where) as first seen in the file
    told: set[str] = set()
    for where, label in rows:
        name = label["reviewer"]
        person = _person(name)
        first.setdefault(person, (name, where))
        if name in told:
            continue
        if person in stored and stored[person] != name:
            told.add(name)
            how = f"pass --reviewer {stored[person]!r}" if name == default else f"write {stored[person]!r}"
            fail(where, f"field 'reviewer': {name!r} is this home's reviewer {stored[person]!r} written another way"
                        f" (case or spacing); {how}, or one person counts as two reviewers", order_of[where])
        elif person not in stored and first[person][0] != name:
            told.add(name)
            fail(where, f"field 'reviewer': {name!r} is {first[person][0]!r} (at {first[person][1]}) written another"
                        " way (case or spacing); write one spelling, or one person counts as two reviewers",
                 order_of[where])


def import_labels(home: Home, path: str | Path, actor: str, *, reviewer: str | None = None,
                  sample: str | None = None, dry_run: bool = False) -> ImportResult:
    """Check every row of a label file, then store all of them in one transaction (audited), or none.

    Rows without a `reviewer` are labels by `reviewer` (default: the importing `actor`)."""
    from monitor.db import connect

    actor = (actor or "").strip()
    if not actor:
        raise ReviewError("a reviewer name is required to import labels", "pass --reviewer NAME")
    if sample is not None and sample not in SAMPLES:
        raise ReviewError(f"--sample must be one of {', '.join(SAMPLES)}, got {sample!r}")
    default_reviewer = (reviewer if reviewer is not None else actor).strip() or None
    path = Path(path)
    errors: list[tuple[int, str]] = []  # (row number, text): reported in file order
    total_errors = 0

    def fail(where: str, msg: str, order: int) -> None:
        nonlocal total_errors
        total_errors += 1
        errors.append((order, f"{where}: {msg}"))

    rows: list[tuple[str, dict]] = []
    order_of: dict[str, int] = {}
    seen: dict[tuple[str, str], tuple[str, dict]] = {}
    repeated = 0
    n_read = 0
    no_sample: list[str] = []
    unknown_seen: set[str] = set()
    for where, row in read_rows(path):
        n_read += 1
        order_of[where] = n_read
        if isinstance(row, str):
            fail(where, row, n_read)
            continue
        label, problems, unknown = _check(row, default_reviewer, sample)
        for name, text in unknown:
            # Reported once, where first seen: a CSV's header or a JSONL file's habit is one problem, not one a row.
            if name not in unknown_seen:
                unknown_seen.add(name)
                fail(where, text, n_read)
        for p in problems:
            fail(where, p, n_read)
        if problems or unknown:
            continue
        if label["sample"] is None:
            no_sample.append(where)
            continue
        key = (label["turn_id"], label["reviewer"])
        if key in seen:
            first_where, first = seen[key]
            if first == label:
                repeated += 1
            else:
                fail(where, f"field 'turn_id': turn {key[0]} is labelled again by {key[1]} with other answers"
                            f" (first at {first_where})", n_read)
            continue
        seen[key] = (where, label)
        rows.append((where, label))
    if n_read == 0:
        raise ReviewError(f"{path}: no label rows", "one label per line (JSONL) or per row (CSV, Parquet)")
    if no_sample:
        # One error, not one per row: the missing piece is a decision about the whole file.
        others = f" and {len(no_sample) - 1:,} more rows" if len(no_sample) > 1 else ""
        fail(no_sample[0], f"field 'sample' is missing here{others}: say how the labelled turns were chosen, with"
                           " a 'sample' column or --sample random|targeted", order_of[no_sample[0]])
    _check_spellings(home, rows, fail, order_of, default_reviewer)
    # The lake's writer lock from the turn check to the commit: `monitor forget` holds it while it deletes a user's
    # turns and then their labels, so a label checked against a turn it is forgetting waits and is deleted with the
    # others, or finds the turn gone; without it such a label outlived the forget.
    with home.lake.transaction():
        known: set[str] = set()
        if rows:
            ids = sorted({label["turn_id"] for _, label in rows})
            con = connect(home)
            try:
                known = {r[0] for r in con.execute(
                    "SELECT DISTINCT turn_id FROM turns WHERE turn_id IN (SELECT unnest($ids::VARCHAR[]))",
                    {"ids": ids}).fetchall()}
            finally:
                con.close()
            for where, label in rows:
                if label["turn_id"] not in known:
                    fail(where, f"field 'turn_id': no turn {label['turn_id']!r} in this home's lake"
                                " (another home's export, a forgotten user, or not ingested yet)", order_of[where])
        if total_errors:
            hint = None
            if rows and not known:
                hint = (f"none of the file's {len(ids):,} turns is in this home's lake: check --home (labels import"
                        " into the home whose turns they label), or ingest those turns first")
            raise LabelImportError([text for _, text in sorted(errors, key=lambda e: e[0])][:MAX_ERRORS], total_errors,
                                   hint)
        counts = Counter()
        fields = ("sample", *LABEL_FIELDS)
        with home.state.tx() as con:
            # A stored label without a sample is a queue item's: compared as the queue's reason makes it, so an export
            # re-imported into its own home is unchanged.
            stored = {(r[0], r[1]): (r[2] or QUEUE_SAMPLE.get(r[-1]), *r[3:-1]) for r in con.execute(
                f"SELECT turn_id, reviewer, {', '.join(fields)}, (SELECT reason FROM review_queue q"
                " WHERE q.turn_id = labels.turn_id LIMIT 1) FROM labels").fetchall()}
            now = iso(utcnow())
            for _, label in rows:
                key = (label["turn_id"], label["reviewer"])
                values = tuple(label[f] for f in fields)
                old = stored.get(key)
                if old == values:
                    counts["unchanged"] += 1
                    continue
                counts["updated" if old is not None else "added"] += 1
                if dry_run:
                    continue
                con.execute(
                    f"INSERT INTO labels (turn_id, reviewer, at, {', '.join(fields)})"
                    f" VALUES (?,?,?{',?' * len(fields)})"
                    " ON CONFLICT(turn_id, reviewer) DO UPDATE SET at=excluded.at, "
                    + ", ".join(f"{f}=excluded.{f}" for f in fields),
                    (*key, now, *values))
                home.state.audit(con, actor, "label.import", f"turn:{key[0]}",
                                 {"reviewer": key[1], "replaced": old is not None, **{f: label[f] for f in fields}})
            result = ImportResult(rows=n_read, added=counts["added"], updated=counts["updated"],
                                  unchanged=counts["unchanged"], repeated=repeated, dry_run=dry_run)
            if not dry_run:
                home.state.audit(con, actor, "labels.import", "labels", {"file": str(path), **result.as_dict()})
    return result
