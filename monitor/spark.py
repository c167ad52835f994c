"""Run the project's DuckDB-dialect SQL files on a Spark session over the same Parquet lake (beyond one machine).

`SparkRunner` registers one temporary view per lake table over exactly the files of the lake manifest (never a
folder glob: the manifest is what makes a commit atomic), the SQLite state tables the SQL reads (labels, review
queue, ...) as small in-memory DataFrames, and the views of ``sql/views``. `translate()` turns a file into Spark
SQL with sqlglot plus the few AST rewrites sqlglot does not do on its own; `run()` binds its ``$name`` parameters
as Spark named parameters. Only the SQL runs on Spark: the Python statistics of the jobs (Wilson intervals,
Benjamini-Hochberg, drift tests) run on the aggregated rows on the driver, as on one machine (docs/scaling.md).

Example::

    runner = SparkRunner("/srv/monitor-data", master="local[2]")
    table = runner.run("metrics/refusal_rates.sql", {"granularity": "day", "windows": [...], "attributes": []})
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from monitor.errors import MonitorError, QueryError
from monitor.resources import SqlFile, load_sql, sql_root
from monitor.schema import TABLES

# The folders whose files the scheduled jobs run (and so must run on Spark too); dashboard/ingest/state SQL stays
# on the single worker.
PORTABLE_FOLDERS = ("metrics", "disparity", "values", "jobs", "views")

SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Lake timestamps are naive UTC; Spark reads them as TIMESTAMP_NTZ. Make `TIMESTAMP` in SQL and Python datetime
    # literals NTZ too, so comparisons and date_trunc never shift by the JVM's zone.
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # Hive partition values ('2026-03-01', 'refusal') are strings in the schema; inference would make dates.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}


class SparkUnavailable(MonitorError):
    title = "Spark unavailable"


def _pyspark():
    try:
        import pyspark  # noqa: F401
        from pyspark.sql import SparkSession, functions, types
    except ImportError as e:
        raise SparkUnavailable(f"pyspark cannot be imported: {e}", "pip install 'alignment-monitor[spark]'") from e
    return SparkSession, functions, types


def portable_files() -> list[str]:
    """Relative paths (e.g. ``metrics/refusal_rates.sql``) of every SQL file the jobs run, so every file Spark runs."""
    root = sql_root()
    return [f"{folder}/{p.name}" for folder in PORTABLE_FOLDERS for p in sorted((root / folder).glob("*.sql"))]


def new_views(relpath: str) -> list[str]:
    """The `x` of every `new_x` view a file reads (a lake table, or `inputs`): the incremental jobs' new-file views."""
    import sqlglot

    tree = sqlglot.parse_one(load_sql(relpath).sql, read="duckdb")
    return sorted({t.name[4:] for t in tree.find_all(sqlglot.exp.Table) if t.name.startswith("new_")})


def spark_session(master: str | None = "local[2]", app_name: str = "alignment-monitor", conf: dict | None = None):
    """A Spark session configured for the lake (UTC, naive timestamps, string partition values)."""
    SparkSession, _, _ = _pyspark()
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for k, v in {**SPARK_CONF, "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                 "spark.sql.shuffle.partitions": "4", **(conf or {})}.items():
        builder = builder.config(k, v)
    return builder.getOrCreate()


def _spark_type(tp: pa.DataType, T) -> Any:
    if pa.types.is_string(tp) or pa.types.is_large_string(tp):
        return T.StringType()
    if pa.types.is_int32(tp):
        return T.IntegerType()
    if pa.types.is_integer(tp):
        return T.LongType()
    if pa.types.is_floating(tp):
        return T.DoubleType()
    if pa.types.is_boolean(tp):
        return T.BooleanType()
    if pa.types.is_timestamp(tp):
        return T.TimestampNTZType()
    if pa.types.is_date(tp):
        return T.DateType()
    raise QueryError(f"no Spark type for Arrow type {tp}", "add it to monitor/spark.py _spark_type")


class SparkRunner:
    """Executes the SQL files on a Spark session whose views mirror `monitor.db.connect()`."""

    def __init__(self, home_or_lake_root, spark=None, *, master: str | None = "local[2]",
                 state: dict[str, pa.Table] | None = None):
        from monitor.home import Home

        self._sql: dict[str, str] = {}
        if isinstance(home_or_lake_root, Home):
            home = home_or_lake_root
        else:
            root = str(home_or_lake_root)
            # A home folder (lake/ and state.sqlite inside) or a bare lake root, possibly on object storage
            # (s3a://bucket/lake): then the state tables come from `state` or are absent.
            home = Home.open(root) if "://" not in root and (Path(root) / "lake").is_dir() else None
            self.lake_root = root.rstrip("/")
        if home is not None:
            self.lake_root = str(home.lake.root)
            if state is None:
                from monitor.db import state_tables

                state = state_tables(home)
        self.spark = spark or spark_session(master)
        _, self._F, self._T = _pyspark()
        self.manifest = self._read_manifest()
        for name, table in TABLES.items():
            self._register_table(name, table)
        for name, data in (state or {}).items():
            self._register_state(name, data)
        for f in (load_sql(p) for p in portable_files() if p.startswith("views/")):
            self._register_view(f)

    # -- registration -------------------------------------------------------------------------------------------
    def _read_manifest(self) -> dict:
        path = f"{self.lake_root}/_manifest.json"
        try:
            if "://" in self.lake_root:
                return json.loads(self._read_remote(path))
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"version": 0, "tables": {}}
        except json.JSONDecodeError as e:
            raise QueryError(f"lake manifest {path} is unreadable: {e}", "restore it from a backup") from e

    def _read_remote(self, url: str) -> str:
        """Read a small text file through Spark's Hadoop file system (s3a://, gs://, abfss://, file://)."""
        # Not spark.read.text: Spark's file sources skip names starting with '_', such as _manifest.json.
        jvm = self.spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(url)
        fs = path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        if not fs.exists(path):
            # Unlike a fresh local home, a lake URL without a manifest is almost surely a wrong URL: say so.
            raise QueryError(f"no lake manifest at {url}", "check the lake URL and the session's credentials")
        stream = fs.open(path)
        try:
            return bytes(jvm.org.apache.commons.io.IOUtils.toByteArray(stream)).decode("utf-8")
        finally:
            stream.close()

    def _register_table(self, name: str, table, entries: list[dict] | None = None, base: str | None = None) -> None:
        F, T = self._F, self._T
        if entries is None:
            entries = self.manifest.get("tables", {}).get(name, [])
        base = base or name
        files = [f"{self.lake_root}/{e['path']}" for e in entries]
        fields = [(f.name, _spark_type(f.type, T)) for f in table.schema]
        schema = T.StructType([T.StructField(n, t) for n, t in fields])
        if files:
            # Exactly the manifest's files; basePath keeps the hive folders (date=...) as columns, typed by the
            # given schema (strings). A given schema also reads columns by name, nulls for a file written before
            # a column existed (DuckDB's union_by_name), without a job to merge every file's footer.
            df = (self.spark.read.schema(schema).option("basePath", f"{self.lake_root}/{base}")
                  .parquet(*files).select(*[F.col(n) for n, _ in fields]))
        else:
            df = self.spark.createDataFrame([], schema)
        df.createOrReplaceTempView(name)

    def register_new(self, table: str, since: int | None, name: str | None = None) -> str:
        """Register view `new_<table>` over the files committed after manifest version `since` (incremental jobs)."""
        if table not in TABLES:
            raise QueryError(f"no lake table {table!r} for view new_{table}", f"tables: {', '.join(TABLES)}")
        name = name or f"new_{table}"
        entries = [e for e in self.manifest.get("tables", {}).get(table, [])
                   if since is None or e.get("v", 0) > since]
        self._register_table(name, TABLES[table], entries, base=table)
        return name

    def register_inputs(self, tables: tuple[str, ...], since: int | None) -> str:
        """Register view `new_inputs` (turn_id, date): rows of `tables` committed after `since` (Delta.inputs_view)."""
        parts = [f"SELECT turn_id, date FROM `{self.register_new(t, since)}`" for t in tables]
        self.spark.sql(" UNION ALL ".join(parts)).createOrReplaceTempView("new_inputs")
        return "new_inputs"

    def _register_state(self, name: str, data: pa.Table) -> None:
        T = self._T
        schema = T.StructType([T.StructField(f.name, _spark_type(f.type, T)) for f in data.schema])
        rows = [tuple(r.values()) for r in data.to_pylist()]
        self.spark.createDataFrame(rows, schema).createOrReplaceTempView(name)

    def _register_view(self, f: SqlFile) -> None:
        import sqlglot
        from sqlglot import exp

        create = sqlglot.parse_one(f.sql, read="duckdb")
        if not isinstance(create, exp.Create) or not isinstance(create.expression, exp.Query):
            raise QueryError(f"{f.path}: expected one CREATE VIEW ... AS SELECT statement")
        try:
            self.spark.sql(self.translate(f)).createOrReplaceTempView(create.this.name)
        except Exception as e:  # AnalysisException and friends: name the file
            raise QueryError(f"view {f.path} failed to build on Spark: {_first_line(e)}") from e

    # -- translation ----------------------------------------------------------------------------------------------
    def translate(self, sqlfile: str | SqlFile) -> str:
        """The Spark SQL of one file (a view file gives its SELECT), with `:name` parameter markers."""
        f = sqlfile if isinstance(sqlfile, SqlFile) else load_sql(sqlfile)
        key = str(f.path)
        if key not in self._sql:
            self._sql[key] = self._translate(f)
        return self._sql[key]

    def _translate(self, f: SqlFile) -> str:
        import sqlglot
        from sqlglot import exp

        try:
            trees = [t for t in sqlglot.parse(f.sql, read="duckdb") if t is not None]
        except sqlglot.errors.ParseError as e:
            raise QueryError(f"{f.path}: sqlglot cannot parse it: {e}") from e
        if len(trees) != 1:
            raise QueryError(f"{f.path}: expected one statement, found {len(trees)}")
        tree = trees[0]
        if isinstance(tree, exp.Create):
            tree = tree.expression
        for name in _file_params(tree):
            # read_parquet($files): Spark has no table function over a list of files; read a view registered from
            # the parameter's value instead (see dataframe()).
            for node in list(tree.find_all(exp.ReadParquet)):
                table = node.parent
                if isinstance(table, exp.Table) and _placeholder(node) == name:
                    alias = table.args.get("alias")
                    table.replace(exp.Table(this=exp.to_identifier(_files_view(name)), alias=alias))
        for star in list(tree.find_all(exp.Star)):
            if star.args.get("except"):
                self._expand_star_except(f, star)
        for select in list(tree.find_all(exp.Select)):
            if any(j.args.get("using") for j in select.args.get("joins") or []):
                self._expand_qualified_stars(select)
        for trunc in list(tree.find_all(exp.TimestampTrunc)):
            # Spark's date_trunc returns a zoned TIMESTAMP even on TIMESTAMP_NTZ input; DuckDB keeps it naive.
            trunc.replace(exp.Cast(this=trunc.copy(), to=exp.DataType.build("TIMESTAMP_NTZ", dialect="spark")))
        return tree.sql(dialect="spark")

    def _expand_qualified_stars(self, select) -> None:
        """Spell out `t.*` in a SELECT with a USING join: Spark puts the USING columns first, DuckDB keeps t's order."""
        from sqlglot import exp

        sources = {}
        for src in [select.args.get("from_") or select.args.get("from")] + list(select.args.get("joins") or []):
            table = src.this if src is not None else None
            if isinstance(table, exp.Table):
                sources[table.alias_or_name] = table.name
        out = []
        for col in select.expressions:
            if isinstance(col, exp.Column) and isinstance(col.this, exp.Star) and col.table in sources:
                names = self.spark.table(sources[col.table]).columns
                out += [exp.column(c, table=col.table, quoted=True) for c in names]
            else:
                out.append(col)
        select.set("expressions", out)

    def _expand_star_except(self, f: SqlFile, star) -> None:
        """Spell out `SELECT * EXCLUDE (a, b)`: open-source Spark has no star-except, so list the kept columns."""
        from sqlglot import exp

        select = star.parent
        if not isinstance(select, exp.Select) or select.expressions != [star]:
            raise QueryError(f"{f.path}: only a bare `SELECT * EXCLUDE (...)` can be translated for Spark")
        dropped = {e.name for e in star.args["except"]}
        probe = select.copy()
        probe.set("expressions", [exp.Star()])
        probe.set("order", None)
        # Spark's analyser knows the source's columns (tables and earlier views are registered): no data is read.
        try:
            columns = self.spark.sql(probe.sql(dialect="spark")).columns
        except Exception as e:  # e.g. read_parquet($files) before its files were given
            raise QueryError(f"{f.path}: cannot list the columns behind `* EXCLUDE`: {_first_line(e)}",
                             "give the file's parameters (a file list parameter must be read first)") from e
        select.set("expressions", [exp.column(c, quoted=True) for c in columns if c not in dropped])

    # -- execution ------------------------------------------------------------------------------------------------
    def dataframe(self, relpath: str | SqlFile, params: dict[str, Any] | None = None):
        """A lazy Spark DataFrame of one SQL file with its `$name` parameters bound."""
        f = relpath if isinstance(relpath, SqlFile) else load_sql(relpath)
        params = dict(params or {})
        missing = [p for p in f.params if p not in params]
        if missing:
            raise QueryError(f"{f.path}: no value for parameter(s) {', '.join('$' + m for m in missing)}",
                             f"pass them, e.g. --param {missing[0]}=...")
        file_params = _file_params(_parse(f))
        for name in file_params:
            self._register_files(f, name, params[name])
        args = {p: self._literal(params[p]) for p in f.params if p not in file_params}
        try:
            return self.spark.sql(self.translate(f), args=args or None)
        except Exception as e:
            raise QueryError(f"{f.path} failed on Spark: {_first_line(e)}") from e

    def run(self, relpath: str | SqlFile, params: dict[str, Any] | None = None) -> pa.Table:
        """Execute one SQL file on Spark and return its rows as an Arrow table."""
        df = self.dataframe(relpath, params)
        try:
            if hasattr(df, "toArrow"):  # pyspark >= 4.0
                return df.toArrow()
            return pa.Table.from_pylist([r.asDict(recursive=True) for r in df.collect()])
        except Exception as e:
            name = relpath.path if isinstance(relpath, SqlFile) else relpath
            raise QueryError(f"{name} failed on Spark: {_first_line(e)}") from e

    def _register_files(self, f: SqlFile, name: str, files) -> None:
        if isinstance(files, str):
            files = [files]
        if not files:
            raise QueryError(f"{f.path}: ${name} lists no Parquet file")
        files = [str(x) for x in files]
        # DuckDB's read_parquet detects hive folders (family=refusal/) and adds them as columns: so does basePath.
        base = files[0].rsplit("/", 1)[0]
        while "=" in base.rsplit("/", 1)[-1]:
            base = base.rsplit("/", 1)[0]
        try:
            self.spark.read.option("basePath", base).parquet(*files).createOrReplaceTempView(_files_view(name))
        except Exception as e:
            raise QueryError(f"{f.path}: cannot read the files of ${name} on Spark: {_first_line(e)}") from e

    def _literal(self, value: Any):
        F = self._F
        if isinstance(value, (list, tuple)):
            if not value:
                # An empty array() has element type void, which array_contains accepts against any type (a cast
                # would not be a "literal or constructor", which parameters must be).
                return F.array()
            return F.array(*[F.lit(v) for v in value])
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return F.lit(value)


def _parse(f: SqlFile):
    import sqlglot

    return sqlglot.parse_one(f.sql, read="duckdb")


def _placeholder(node) -> str | None:
    from sqlglot import exp

    args = node.expressions or ([node.this] if node.this is not None else [])
    return args[0].name if len(args) == 1 and isinstance(args[0], exp.Placeholder) else None


def _file_params(tree) -> list[str]:
    """Parameters used as `read_parquet($name)`: a list of Parquet files to read."""
    from sqlglot import exp

    return sorted({n for node in tree.find_all(exp.ReadParquet) if (n := _placeholder(node))})


def _files_view(name: str) -> str:
    return f"_files_{name}"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def parse_param(value: str) -> Any:
    """A CLI parameter value: JSON when it parses (numbers, null, lists), ISO date-times as datetimes, else text."""
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    if isinstance(parsed, list):
        return [_datetime_or_text(v) for v in parsed]
    return _datetime_or_text(parsed)


def _datetime_or_text(v: Any) -> Any:
    # Only values with a time part become timestamps: 'YYYY-MM-DD' stays text (partition bounds are text).
    if isinstance(v, str) and len(v) >= 13 and v[4:5] == "-" and v[10:11] in ("T", " "):
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return v
        return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo else t
    return v


def default_master() -> str:
    return os.environ.get("MONITOR_SPARK_MASTER", "local[2]")
