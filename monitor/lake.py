"""The append-only Parquet lake: atomic multi-table commits through one manifest.

Why a manifest instead of a glob: a reader that globs a folder while compaction swaps small files for a merged
one can count rows twice (see ../shared/NOTES.md). Here a table is exactly the files listed in
``lake/_manifest.json``; a commit writes new Parquet files under temporary names, moves them into place with
``os.replace`` (invisible until listed), then replaces the manifest in one ``os.replace``. Readers read the
manifest once and query exactly those files, so they see every commit whole or not at all. Files dropped from
the manifest (compaction, superseded rows) are deleted only after a grace period, so a reader that read the
previous manifest a moment ago can still finish its query. Writers serialise on an ``flock``.

Layout::

    lake/_manifest.json                      {"version": 7, "tables": {"turns": [{"path":..., "rows":..., "v": 7,
                                                                              "s": <column fingerprint>}]}}
    lake/turns/date=2026-11-01/part-<uuid>.parquet
    lake/_tmp/                               files being written (never listed)
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from monitor.errors import StorageError
from monitor.schema import TABLES, Table, schema_fingerprint

MANIFEST = "_manifest.json"
GRACE_SECONDS = 600.0
# Parquet options of Transaction.add per table, (columns without a dictionary, columns without min/max statistics):
# values unique to each row (ids, hashes, message texts, times, line numbers), for which the writer builds a
# dictionary only to drop it for each page, and texts no reader prunes by range. About a tenth of the CPU of
# writing a batch of turns; the data read back is the same.
_UNIQUE = {"turns": (frozenset({"turn_id", "content_hash", "user_message", "assistant_message", "ts", "source_line"}),
                     frozenset({"turn_id", "content_hash", "user_message", "assistant_message", "system_prompt",
                                "user_attrs", "redaction_counts", "extra"}))}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(data: pa.Table, tmp: Path, **options) -> None:
    """Write `data` to the temporary file `tmp`; a failure (disk full, folder not writable) is one StorageError."""
    with _writing(tmp):
        pq.write_table(data, tmp, **options)


@contextlib.contextmanager
def _writing(tmp: Path) -> Iterator[None]:
    # pyarrow's error names neither the file nor the folder ("[Errno 28] Error writing bytes to file"): say which
    # lake it was and that nothing was published, and leave no partial file behind.
    try:
        yield
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StorageError(f"cannot write to the lake at {tmp.parent.parent}: {e}",
                           "free some disk space or make the folder writable, then run it again (nothing of this "
                           "commit was published)") from e


def conform(table: pa.Table, spec: Table) -> pa.Table:
    """Cast a batch to the table's schema: missing columns become nulls, extra columns are an error."""
    extra = set(table.column_names) - set(spec.schema.names)
    if extra:
        raise StorageError(f"table {spec.name}: unexpected columns {sorted(extra)}")
    cols = []
    for f in spec.schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=spec.schema)


@dataclass
class Transaction:
    lake: "Lake"
    manifest: dict
    pending: dict[str, list[dict]] = field(default_factory=dict)
    removed: dict[str, set[str]] = field(default_factory=dict)
    dirty: bool = False

    def files(self, table: str) -> list[Path]:
        return [self.lake.root / e["path"] for e in self.manifest["tables"].get(table, [])]

    def add(self, table: str, data: pa.Table) -> int:
        """Write a batch of rows for `table` (not visible to anyone until the transaction commits)."""
        spec = TABLES[table]
        if data.num_rows == 0:
            return 0
        data = conform(data, spec)
        for part_values, part in _partitions(data, spec.partition):
            rel = Path(table, *[f"{k}={v}" for k, v in part_values], f"part-{uuid.uuid4().hex}.parquet")
            tmp = self.lake.tmp_dir / f"{uuid.uuid4().hex}.parquet"
            stored = part.drop_columns(list(spec.partition))
            write_parquet(stored, tmp, compression="zstd", **_write_options(table, stored.schema.names))
            final = self.lake.root / rel
            with _writing(tmp):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
            self.pending.setdefault(table, []).append(
                {"path": str(rel), "rows": part.num_rows, "s": schema_fingerprint(stored.schema)})
        return data.num_rows

    def remove(self, table: str, paths: list[str]) -> None:
        self.removed.setdefault(table, set()).update(paths)

    def rewrite(self, table: str, keep: Callable[[pa.Table], "pa.Array | pa.ChunkedArray | None"],
                columns: list[str] | None = None, paths: Iterable[str | Path] | None = None) -> tuple[int, int]:
        """Replace each committed file with rows that `keep` rejects by a copy without them; returns (files, rows)."""
        # `keep` gets the file's `columns` (all when None) and returns a boolean mask, True = keep, None = keep all;
        # null mask entries count as keep. The key columns are read first, so a file with nothing to remove costs
        # one column read and is left untouched (same path). A replacement keeps the `v` of the file it replaces,
        # like compact(), so incremental jobs do not take it for new data; a file left empty is only retired. The
        # old files are retired through `remove` (deleted by gc after the grace period): a reader holding the
        # previous manifest still reads them. Nothing is visible before the transaction commits.
        spec = TABLES[table]
        wanted = None if paths is None else {str(Path(p).relative_to(self.lake.root)) if Path(p).is_absolute()
                                             else str(p) for p in paths}
        gone = self.removed.get(table, set())
        rewritten = removed_rows = 0
        for e in list(self.manifest["tables"].get(table, [])):
            if e["path"] in gone or (wanted is not None and e["path"] not in wanted):
                continue
            path = self.lake.root / e["path"]
            pf = pq.ParquetFile(path)
            stored = [n for n in pf.schema_arrow.names if n not in spec.partition]
            key_cols = stored if columns is None else [c for c in columns if c in stored]
            mask = keep(pf.read(columns=key_cols))
            if mask is None:
                continue
            mask = pc.fill_null(mask, True)
            n_keep = pc.sum(pc.cast(mask, pa.int64())).as_py() or 0
            if n_keep == pf.metadata.num_rows:
                continue
            if n_keep:
                data = pf.read(columns=stored).filter(mask)
                rel = Path(e["path"]).parent / f"part-{uuid.uuid4().hex}.parquet"
                tmp = self.lake.tmp_dir / f"{uuid.uuid4().hex}.parquet"
                write_parquet(data, tmp, compression="zstd")
                os.replace(tmp, self.lake.root / rel)
                self.pending.setdefault(table, []).append(
                    {**e, "path": str(rel), "rows": data.num_rows, "s": schema_fingerprint(data.schema),
                     "v": e.get("v", 0)})
            self.remove(table, [e["path"]])
            rewritten += 1
            removed_rows += pf.metadata.num_rows - n_keep
        return rewritten, removed_rows


def _write_options(table: str, names: list[str]) -> dict:
    unique = _UNIQUE.get(table)
    if not unique:
        return {}
    return {"use_dictionary": [n for n in names if n not in unique[0]],
            "write_statistics": [n for n in names if n not in unique[1]]}


def sort_for_storage(data: pa.Table, spec: Table) -> pa.Table:
    """`data` sorted by the table's `sort_by` columns (unchanged when it has none)."""
    keys = [(c, "ascending") for c in spec.sort_by if c in data.column_names]
    return data.sort_by(keys) if keys else data


def _partitions(data: pa.Table, keys: tuple[str, ...]) -> Iterator[tuple[list[tuple[str, str]], pa.Table]]:
    if not keys:
        yield [], data
        return
    key = keys[0]
    col = data.column(key)
    if col.null_count:
        col = pc.fill_null(col, "unknown")
        data = data.set_column(data.schema.get_field_index(key), key, col)
    values = pc.unique(col).to_pylist()
    runs = _runs(col, len(values))
    for i, value in enumerate(values):
        # Rows already grouped by the key (an ingest batch in time order) are sliced, not copied by a filter.
        part = data.slice(runs[i], runs[i + 1] - runs[i]) if runs else data.filter(pc.equal(data.column(key), value))
        for rest, sub in _partitions(part, keys[1:]):
            yield [(key, str(value))] + rest, sub


def _runs(col: pa.ChunkedArray | pa.Array, n_values: int) -> list[int] | None:
    """Start offsets of the column's runs of equal values plus its length, when each value forms one run."""
    if n_values == 1:
        return [0, len(col)]
    if len(col) < 2:
        return None
    a = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    changed = pc.not_equal(a.slice(1), a.slice(0, len(a) - 1))
    starts = [0] + [int(i) + 1 for i in pc.indices_nonzero(changed).to_pylist()]
    return starts + [len(a)] if len(starts) == n_values else None


class Lake:
    """A folder of Parquet tables committed atomically through one manifest."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp_dir = self.root / "_tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        self._lock_path = self.root / ".lock"

    # -- reading ------------------------------------------------------------------------------------------
    def manifest(self) -> dict:
        path = self.root / MANIFEST
        try:
            with open(path, "rb") as f:
                return orjson.loads(f.read())
        except FileNotFoundError:
            return {"version": 0, "tables": {}, "retired": []}
        except orjson.JSONDecodeError as e:  # only possible if someone edited it by hand
            raise StorageError(f"lake manifest {path} is corrupt: {e}", "restore it from a backup") from e

    def files(self, table: str, manifest: dict | None = None, since: int | None = None) -> list[Path]:
        """The files of `table`; with `since`, only those committed after manifest version `since`."""
        m = manifest or self.manifest()
        return [self.root / e["path"] for e in m["tables"].get(table, [])
                if since is None or e.get("v", 0) > since]

    def row_count(self, table: str) -> int:
        return sum(e["rows"] for e in self.manifest()["tables"].get(table, []))

    # -- writing ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._lock_path, "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Hold the writer lock; everything added in the block becomes visible in one manifest swap."""
        with self._locked():
            tx = Transaction(self, self.manifest())
            yield tx
            if tx.pending or tx.removed or tx.dirty:
                self._publish(tx)

    def append(self, table: str, data: pa.Table) -> int:
        with self.transaction() as tx:
            return tx.add(table, data)

    def _publish(self, tx: Transaction) -> None:
        m = tx.manifest
        now = time.time()
        tables = {k: list(v) for k, v in m["tables"].items()}
        retired = list(m.get("retired", []))
        for table, paths in tx.removed.items():
            keep = [e for e in tables.get(table, []) if e["path"] not in paths]
            retired += [{"path": e["path"], "at": now} for e in tables.get(table, []) if e["path"] in paths]
            tables[table] = keep
        version = m["version"] + 1
        for table, entries in tx.pending.items():
            # `v`: the commit that made these rows visible (jobs keep it as a watermark). A compacted or rewritten
            # file carries the newest `v` of the files it replaces, so it is not mistaken for new data.
            tables.setdefault(table, []).extend({**e, "v": e.get("v", version)} for e in entries)
        new = {"version": version, "tables": tables, "retired": retired, "committed_at": now}
        tmp = self.tmp_dir / f"manifest-{uuid.uuid4().hex}.json"
        with _writing(tmp), open(tmp, "wb") as f:
            f.write(orjson.dumps(new))  # json.dump encodes in pure Python: 0.2 s per commit at 2,000 files
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / MANIFEST)
        _fsync_dir(self.root)
        tx.manifest = new

    # -- maintenance --------------------------------------------------------------------------------------
    def compact(self, table: str, min_files: int = 4, max_rows: int = 2_000_000) -> int:
        """Merge small files of each partition into one; returns how many files were merged away."""
        merged = 0
        with self.transaction() as tx:
            groups: dict[str, list[dict]] = {}
            for e in tx.manifest["tables"].get(table, []):
                groups.setdefault(str(Path(e["path"]).parent), []).append(e)
            spec = TABLES[table]
            for folder, entries in groups.items():
                small = sorted((e for e in entries if e["rows"] < max_rows // 4), key=lambda e: e["rows"])
                # Size tiers: a file holding more rows than all smaller candidates together waits until they add
                # up to it. Otherwise every few commits to a busy partition would rewrite its growing merged file
                # again (quadratic in the partition's size); this way a row is rewritten O(log n) times.
                while len(small) >= min_files and small[-1]["rows"] > sum(e["rows"] for e in small[:-1]):
                    small.pop()
                if len(small) < min_files:
                    continue
                parts = [pq.read_table(self.root / e["path"]) for e in small]
                data = pa.concat_tables(parts, promote_options="default")
                rel = Path(folder, f"part-{uuid.uuid4().hex}.parquet")
                tmp = self.tmp_dir / f"{uuid.uuid4().hex}.parquet"
                names = [n for n in spec.schema.names if n not in spec.partition]
                data = data.select([n for n in names if n in data.column_names])
                data = sort_for_storage(data, spec)
                write_parquet(data, tmp, compression="zstd", row_group_size=spec.row_group_rows)
                os.replace(tmp, self.root / rel)
                tx.pending.setdefault(table, []).append(
                    {"path": str(rel), "rows": data.num_rows, "s": schema_fingerprint(data.schema),
                     "v": max(e.get("v", 0) for e in small)})
                tx.remove(table, [e["path"] for e in small])
                merged += len(small)
        return merged

    def stamp_schemas(self) -> int:
        """Record the column fingerprint (`s`) of every file listed without one; returns how many were stamped."""
        # Files written before fingerprints existed. Readers use union_by_name only for a table whose files do not
        # all carry the current fingerprint, since union_by_name makes every query read every file's footer.
        with self.transaction() as tx:
            tables, stamped = {}, 0
            for table, entries in tx.manifest["tables"].items():
                spec = TABLES.get(table)
                new = []
                for e in entries:
                    if "s" not in e:
                        schema = pq.read_schema(self.root / e["path"])
                        if spec is not None:
                            schema = pa.schema([f for f in schema if f.name not in spec.partition])
                        e = {**e, "s": schema_fingerprint(schema)}
                        stamped += 1
                    new.append(e)
                tables[table] = new
            if stamped:
                tx.manifest = {**tx.manifest, "tables": tables}
                tx.dirty = True
        return stamped

    def gc(self, grace_seconds: float = GRACE_SECONDS) -> int:
        """Delete retired files older than the grace period and orphans left by a crashed writer."""
        removed = 0
        with self.transaction() as tx:
            now = time.time()
            keep = []
            for r in tx.manifest.get("retired", []):
                if now - r["at"] >= grace_seconds:
                    with contextlib.suppress(FileNotFoundError):
                        (self.root / r["path"]).unlink()
                        removed += 1
                else:
                    keep.append(r)
            listed = {e["path"] for entries in tx.manifest["tables"].values() for e in entries}
            listed |= {r["path"] for r in keep}
            for table in TABLES:
                for p in (self.root / table).rglob("*.parquet"):
                    rel = str(p.relative_to(self.root))
                    if rel not in listed and now - p.stat().st_mtime >= grace_seconds:
                        p.unlink()
                        removed += 1
            for p in self.tmp_dir.iterdir():
                if now - p.stat().st_mtime >= grace_seconds:
                    p.unlink()
            if len(keep) != len(tx.manifest.get("retired", [])):
                tx.manifest = {**tx.manifest, "retired": keep}
                tx.dirty = True
        return removed
