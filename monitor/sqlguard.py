"""Read-only ad hoc SQL: a SELECT-only check with two real parsers, then a locked-down connection, a row cap and a timer.

Layers, each enough on its own for the common attacks, together for the uncommon ones:
1. sqlglot (DuckDB dialect) must see exactly one query statement (SELECT, WITH ... SELECT, VALUES, a set operation,
   DESCRIBE/SHOW TABLES/SUMMARIZE, a PIVOT with its ON values listed), no write or session nodes anywhere in the
   tree, only known tables and the CTE names in scope in FROM (so ``FROM '/etc/passwd'`` is refused) and only
   allow-listed table functions (``range``, ``unnest``...), LATERAL ones included; a function that builds one value
   of a constant size (``repeat('x', 3000000000)``, a ``range(n)`` list) is refused above ``MAX_VALUE_SIZE``.
2. DuckDB's own parser must also see exactly one statement of type SELECT; that parsed statement is what runs, so a
   difference between the two parsers (a comment trick, say) cannot smuggle a second statement through.
3. The connection is in memory, may read only the lake files of its manifest, has external access disabled and its
   configuration locked (`monitor.db.lock_down`): a COPY, ATTACH or read_csv the parsers missed still fails.
4. The query runs in a process of its own: a timer interrupts it after the time limit, and the parent ends the
   process when DuckDB does not stop (a function building one huge value ignores the interrupt) or when its memory
   passes the memory limit; at most ``row_limit + 1`` rows are fetched.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import difflib
import logging
import math
import os
import pickle
import re
import select
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from monitor.errors import MonitorError, QueryError, SqlGuardError

HINT_TABLES = "query the monitor's tables instead; list them with: monitor sql 'SHOW TABLES'"
DEFAULT_MEMORY_LIMIT = "4GB"
# The checks parse in Python, outside the time limit and in the caller's process (the dashboard parses for `$name`
# fields on every rerun): 4-24 s per million characters on a busy core, ~1-3 s at this cap. A long literal list
# (5,000 quoted ids) still fits.
MAX_QUERY_CHARS = 100_000

# Table functions a query may call in FROM: they compute, they do not read files, the network or settings.
ALLOWED_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "json_each", "json_tree",
    "duckdb_tables", "duckdb_views", "duckdb_columns", "duckdb_functions", "duckdb_types", "duckdb_keywords",
    "duckdb_schemas", "pragma_table_info",
})
# Functions refused wherever they appear (also as scalars or inside LATERAL): file, network, query-running and
# state-changing functions of DuckDB and its common extensions.
_FORBIDDEN_FUNCTION = re.compile(
    r"^(read_\w+|\w+_scan|scan_\w+|glob|sniff_csv|parquet_\w+|query|query_table|json_execute_serialized_sql|"
    r"iceberg_\w+|delta_\w+|sqlite_\w+|postgres_\w+|mysql_\w+|http\w*|s3_\w+|checkpoint|force_checkpoint|"
    r"enable_\w+|disable_\w+|truncate_duckdb_logs|\w*external_resource\w*|\w*grammar_extension\w*|"
    r"duckdb_settings|current_setting|duckdb_secrets|which_secret|load_\w+|install_\w+|getenv|read_duckdb)$",
    re.IGNORECASE,
)
# The most characters or elements one value built by repeat(), lpad(), a range() list... may have when the size is a
# constant. DuckDB builds such a value in one step that checks neither the interrupt nor its memory limit:
# `repeat('x', 3000000000)` ran 26 s past a 5 s limit and took 3 GB. Sizes computed from the data are left to the
# query process's hard limits (run_query).
MAX_VALUE_SIZE = 10_000_000
_HUGE_HINT = (f"use a size up to {MAX_VALUE_SIZE:,}: DuckDB builds such a value in one step that neither the time "
              "limit nor the memory limit can stop")
_LIST_HINT = "for rows use FROM range(n), which streams and can be stopped; a list is built whole, in one step"
# Schemas whose built-in views are fine to read.
_SYSTEM_SCHEMAS = {"information_schema", "pg_catalog"}
_ALLOWED_CATALOGS = {"", "memory", "system", "temp"}
_ALLOWED_ROOTS = (exp.Select, exp.SetOperation, exp.Values, exp.Describe, exp.Summarize, exp.Show, exp.Pivot)
_PIVOT_HINT = "list the values after ON, e.g. PIVOT turns ON model_version IN ('2026.10', '2026.11') USING count(*)"
_WHY = {
    exp.Insert: "writes rows", exp.Update: "writes rows", exp.Delete: "deletes rows", exp.Merge: "writes rows",
    exp.Create: "creates objects", exp.Drop: "drops objects", exp.Alter: "changes the schema",
    exp.TruncateTable: "deletes rows", exp.Copy: "reads or writes files", exp.Attach: "attaches a database",
    exp.Detach: "detaches a database", exp.Install: "installs an extension", exp.Set: "changes a setting",
    exp.Pragma: "changes a setting", exp.Use: "switches the database", exp.Transaction: "controls transactions",
    exp.Commit: "controls transactions", exp.Rollback: "controls transactions", exp.Command: "is not a query",
    exp.Into: "writes a table",
}
_STMT_WORD = re.compile(r"^\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z_]+)", re.DOTALL)
_CATALOG_TABLE = re.compile(r'Table with name ("?)([^"!]+)\1 does not exist', re.IGNORECASE)


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple]
    truncated: bool
    elapsed: float
    row_limit: int
    sql: str = ""
    params: dict = field(default_factory=dict)

    @property
    def df(self):
        """The rows as a pandas DataFrame (pandas is imported only when asked for)."""
        import pandas as pd

        return pd.DataFrame.from_records(self.rows, columns=self.columns)

    def records(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready dicts (timestamps ISO 8601, decimals as floats, NaN and infinities as null)."""
        return [{c: _jsonable(v) for c, v in zip(self.columns, row)} for row in self.rows]


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):  # JSON has no NaN or Infinity: strict parsers reject them
        return None
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return float(v)
    if isinstance(v, uuid.UUID):
        return str(v)
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _colon_params_to_dollar(sql: str) -> str:
    """Rewrite `:name` placeholders as DuckDB's `$name`, leaving casts (`::`), slices (`x[1:n]`) and strings alone."""
    try:
        tokens = sqlglot.tokenize(sql, read="duckdb")
    except sqlglot.errors.TokenError:
        return sql
    edits = []
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if tok.token_type != TokenType.COLON or nxt.start != tok.end + 1 or nxt.token_type != TokenType.VAR:
            continue
        prev = tokens[i - 1] if i else None
        # `x[1:n]` and `{'a':b}` have a value right before the colon; a placeholder follows an operator or keyword.
        if prev is not None and prev.end + 1 == tok.start and prev.token_type in (
            TokenType.NUMBER, TokenType.STRING, TokenType.VAR, TokenType.R_BRACKET, TokenType.R_PAREN,
        ):
            continue
        edits.append(tok.start)
    for pos in reversed(edits):
        sql = sql[:pos] + "$" + sql[pos + 1:]
    return sql


def query_params(sql: str) -> list[str]:
    """The named parameters (`$name` or `:name`) of a query, in order of first appearance."""
    if len(sql) > MAX_QUERY_CHARS:  # refused when run; tokenizing it would stall every rerun of the SQL page
        return []
    text = _colon_params_to_dollar(sql)
    try:
        tokens = sqlglot.tokenize(text, read="duckdb")
    except sqlglot.errors.TokenError:
        return []
    names: list[str] = []
    for i, tok in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if tok.token_type in (TokenType.PARAMETER,) and nxt.start == tok.end + 1 and nxt.token_type in (
            TokenType.VAR, TokenType.NUMBER,
        ) and not nxt.text.isdigit():
            if nxt.text not in names:
                names.append(nxt.text)
    return names


@contextlib.contextmanager
def _quiet_sqlglot():
    """Silence sqlglot's "falling back to parsing as a Command" warning: such statements are refused anyway."""
    logger = logging.getLogger("sqlglot")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _refuse(what: str, hint: str = HINT_TABLES) -> SqlGuardError:
    return SqlGuardError(f"query refused: {what}", hint)


def _func_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this)
    return node.sql_name() if isinstance(node, exp.Func) else type(node).__name__


def _arity_error(text: str, e: Exception) -> str | None:
    """A one-line message naming the function of a wrong-arity call that sqlglot refused, else None."""
    # sqlglot checks argument counts while parsing and words it after its own classes ("Required keyword: 'format'
    # missing for <class 'sqlglot.expressions.temporal.TimeToStr'>"); name the call as written instead.
    errors = getattr(e, "errors", None) or []
    if not errors:
        return None
    err = errors[0]
    desc = str(err.get("description", ""))
    if not desc.startswith(("Required keyword", "The number of provided arguments")) or not err.get("line"):
        return None
    lines = text.split("\n")
    end = sum(len(ln) + 1 for ln in lines[:err["line"] - 1]) + err["col"] - 1  # the call's closing parenthesis
    depth, i = 0, min(end, len(text) - 1)
    while i >= 0:
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0 and text[i] == "(":
            break
        i -= 1
    name = re.search(r"([A-Za-z_][\w.]*)\s*$", text[:max(i, 0)])
    if i < 0 or name is None:
        return None
    where = f"line {err['line']}, col {err['col']}"
    if desc.startswith("Required keyword"):
        return f"{name.group(1)}() is missing an argument ({where})"
    return f"{name.group(1)}() has too many arguments ({where})"


def validate_select(sql: str, tables: set[str] | None = None) -> str:
    """Return the query (with `:name` rewritten to `$name`) if it is one read-only query, else raise SqlGuardError."""
    if not sql or not sql.strip():
        raise _refuse("the query is empty", "e.g. monitor sql 'SELECT count(*) FROM turns'")
    if len(sql) > MAX_QUERY_CHARS:
        raise _refuse(f"the query is {len(sql):,} characters long, more than the {MAX_QUERY_CHARS:,} that are checked",
                      "select the rows with a subquery or a join instead of a long literal list")
    text = _colon_params_to_dollar(sql.strip())
    try:
        with _quiet_sqlglot():
            statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except sqlglot.errors.SqlglotError as e:
        word = _STMT_WORD.match(text)
        first = word.group(1).upper() if word else ""
        if first in {"EXPORT", "IMPORT", "CREATE", "COPY", "ATTACH", "INSTALL", "LOAD", "CALL", "SET", "RESET"}:
            raise _refuse(f"{first} statements are not allowed: only read-only queries (SELECT) run here") from e
        arity = _arity_error(text, e)
        if arity:
            raise _refuse(arity, "check the function's arguments (DuckDB's documentation lists them)") from e
        msg = str(e).splitlines()[0]
        raise _refuse(f"could not parse the query as one DuckDB SELECT ({msg})",
                      "check the syntax; only SELECT / WITH / VALUES / DESCRIBE / SHOW TABLES are allowed") from e
    except RecursionError as e:  # sqlglot's parser recurses ~20 frames per level: ~45 nested parentheses is enough
        raise _refuse("the query nests too deeply to be checked",
                      "move inner subqueries into WITH clauses and drop redundant parentheses") from e
    if len(statements) != 1:
        raise _refuse(f"{len(statements)} statements given; run one query at a time", "remove the ';' and what follows")
    root = statements[0]
    if isinstance(root, exp.Command):
        word = str(root.this).upper()
        if word == "SHOW":  # `SHOW turns` (DuckDB's DESCRIBE), `SHOW DATABASES`, ...: only SHOW TABLES runs here
            raise _refuse(f"SHOW {str(root.expression or '').strip()[:40]} is not allowed here",
                          "use DESCRIBE <table> for its columns, or SHOW TABLES")
        raise _refuse(f"{word} statements are not allowed: only read-only queries (SELECT) run here")
    if not isinstance(root, _ALLOWED_ROOTS):
        word = _STMT_WORD.match(text)
        name = word.group(1).upper() if word else type(root).__name__
        raise _refuse(f"{name} is not a read-only query: only SELECT / WITH / VALUES / DESCRIBE / SHOW TABLES / "
                      "SUMMARIZE run here")
    if isinstance(root, exp.Show) and str(root.name).upper() not in {"TABLES", "ALL TABLES"}:
        raise _refuse(f"SHOW {root.name} is not allowed", "use SHOW TABLES or DESCRIBE <table>")
    if isinstance(root, exp.Summarize) and isinstance(root.this, exp.Literal):
        # `SUMMARIZE 'x.parquet'`: sqlglot keeps the string as a literal, not a table, but DuckDB scans the file
        raise _refuse(f"{root.this.name!r} looks like a file; reading files is not allowed", "e.g. SUMMARIZE turns")
    if isinstance(root, exp.Select) and root.args.get("into"):
        raise _refuse("SELECT ... INTO writes a table", "drop the INTO clause")
    for pivot in root.find_all(exp.Pivot):
        # DuckDB runs `PIVOT t ON c USING ...` as two statements: one creates an ENUM type of c's values. With the
        # values listed (`ON c IN (...)`) it is one plain SELECT.
        if pivot.this is not None and not pivot.args.get("unpivot") and not all(
                isinstance(e, exp.In) for e in pivot.expressions):
            raise _refuse("a PIVOT without its list of ON values creates a type before it runs, so it is not a "
                          "plain read", _PIVOT_HINT)
    for node in root.walk():
        for kind, why in _WHY.items():
            if isinstance(node, kind):
                raise _refuse(f"the query {why} ({type(node).__name__.upper()})")
        if isinstance(node, exp.Func) and _FORBIDDEN_FUNCTION.match(_func_name(node)):
            raise _refuse(f"function {_func_name(node).lower()}() reads files, the network or settings")
    # A table function is a Func right under a FROM item: `FROM f()`, `JOIN f()`, and also `, LATERAL f()`, which is
    # not a Table node in sqlglot's tree (so checking tables alone let `LATERAL duckdb_databases()` through).
    for node in root.find_all(exp.Func):
        if isinstance(node.parent, exp.Table) or (
                isinstance(node.parent, (exp.Lateral, exp.From, exp.Join)) and node.arg_key == "this"):
            _check_table_function(node)
        else:
            _check_value_size(node)
    known = {t.lower() for t in tables} if tables is not None else None
    for table in root.find_all(exp.Table):
        _check_table(table, known)
    return text


def _cte_in_scope(table: exp.Table) -> bool:
    """Whether the table's name is a CTE that DuckDB resolves it to where it stands (else it reads the catalog)."""
    # A CTE name does not cover the whole query: `(WITH pg_settings AS (...) SELECT 1), pg_settings` reads the
    # system view outside the subquery, and so does `WITH pg_settings AS (SELECT * FROM pg_settings)` inside the
    # CTE's own body. DuckDB's rules: the query under a WITH sees all of its CTEs; a CTE's body sees the CTEs
    # before it, and itself too under WITH RECURSIVE; names not found go on to the enclosing WITH, then the catalog.
    if table.db or table.catalog:  # `main.x` is never the CTE x
        return False
    name = table.name.lower()
    path: list[exp.Expression] = [table]
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With):
            names = [c.alias_or_name.lower() for c in with_.expressions]
            if path[-1] is with_ and isinstance(path[-2], exp.CTE):
                i = next(k for k, c in enumerate(with_.expressions) if c is path[-2])
                names = names[:i + 1] if with_.args.get("recursive") else names[:i]
            if name in names:
                return True
        path.append(node)
        node = node.parent
    return False


def _check_table_function(func: exp.Func) -> None:
    name = _func_name(func).lower()
    if name not in ALLOWED_TABLE_FUNCTIONS:
        raise _refuse(f"table function {name}() is not allowed (only {', '.join(sorted(ALLOWED_TABLE_FUNCTIONS))})")


def _const_number(node: exp.Expression | None) -> float | None:
    """The value of a constant numeric expression (`3000000000`, `3 * 10 ** 9`, `'1e9'::BIGINT`), else None."""
    try:
        if isinstance(node, exp.Literal):
            return float(str(node.this).replace("_", ""))
        if isinstance(node, (exp.Paren, exp.Cast, exp.TryCast)):
            return _const_number(node.this)
        if isinstance(node, exp.Neg):
            v = _const_number(node.this)
            return None if v is None else -v
        ops = {exp.Add: lambda a, b: a + b, exp.Sub: lambda a, b: a - b, exp.Mul: lambda a, b: a * b,
               exp.Div: lambda a, b: a / b, exp.IntDiv: lambda a, b: a // b, exp.Pow: lambda a, b: a ** b}
        op = ops.get(type(node))
        if op is not None:
            a, b = _const_number(node.this), _const_number(node.expression)
            return None if a is None or b is None else float(op(a, b))
    except (ValueError, ZeroDivisionError):
        return None
    except OverflowError:
        return math.inf
    return None


def _series_length(node: exp.GenerateSeries) -> float | None:
    """The number of elements of a `range(...)` / `generate_series(...)` list with constant numeric bounds."""
    start, end = _const_number(node.args.get("start")), _const_number(node.args.get("end"))
    step = _const_number(node.args.get("step")) if node.args.get("step") is not None else 1.0
    if start is None or end is None or not step:
        return None
    span = (end - start) / step
    return max(0.0, math.ceil(span) if node.args.get("is_end_exclusive") else math.floor(span) + 1)


def _format_width(fmt: exp.Expression | None) -> float | None:
    """The widest field width or precision in a constant printf() / format() pattern (`'%1000000000d'`)."""
    if not isinstance(fmt, exp.Literal) or not fmt.is_string:
        return None
    widths = [int(w) for w in re.findall(r"(?:%[-+ #0]*|\{[^{}:]*:[^{}0-9]*)(\d+)", fmt.this)]
    widths += [int(p) for p in re.findall(r"(?:%[-+ #0]*\d*|\{[^{}:]*:[^{}.]*)\.(\d+)", fmt.this)]
    return float(max(widths)) if widths else None


def _value_size(func: exp.Func) -> tuple[str, float | None, str, str]:
    """(function name, the size of the one value it builds when its arguments are constants, its unit, hint)."""
    name = _func_name(func).lower()
    args = func.expressions if isinstance(func, exp.Anonymous) else []
    if isinstance(func, exp.Repeat):
        times, this = _const_number(func.args.get("times")), func.this
        if isinstance(this, exp.Literal) and this.is_string:
            unit, what = max(1, len(this.this)), "characters"
        elif isinstance(this, exp.Array):
            unit, what = max(1, len(this.expressions)), "elements"
        else:
            unit, what = 1, "characters or elements"
        return "repeat", None if times is None else times * unit, what, _HUGE_HINT
    if isinstance(func, exp.Pad):
        name = "lpad" if func.args.get("is_left") else "rpad"
        return name, _const_number(func.expression), "characters", _HUGE_HINT
    if isinstance(func, exp.GenerateSeries):
        name = "range" if func.args.get("is_end_exclusive") else "generate_series"
        return name, _series_length(func), "elements", _LIST_HINT
    if isinstance(func, exp.Format):
        return "format", _format_width(func.this), "characters", _HUGE_HINT
    if name in {"list_resize", "array_resize"} and len(args) >= 2:
        return name, _const_number(args[1]), "elements", _HUGE_HINT
    if name == "bitstring" and len(args) >= 2:
        return name, _const_number(args[1]), "bits", _HUGE_HINT
    if name == "printf" and args:
        return name, _format_width(args[0]), "characters", _HUGE_HINT
    return name, None, "", ""


def _check_value_size(func: exp.Func) -> None:
    name, size, unit, hint = _value_size(func)
    if size is not None and abs(size) > MAX_VALUE_SIZE:
        shown = f"{size:,.0f}" if math.isfinite(size) else "more than 10^308"
        raise _refuse(f"{name}() would build one value of {shown} {unit}, more than the {MAX_VALUE_SIZE:,} allowed",
                      hint)


def _check_table(table: exp.Table, known: set[str] | None) -> None:
    target = table.this
    if isinstance(target, exp.Func):
        return  # checked with the other table functions
    if not isinstance(target, exp.Identifier):
        raise _refuse(f"unsupported FROM item {table.sql('duckdb')[:60]!r}")
    name = target.name
    catalog, schema = table.catalog.lower(), table.db.lower()
    if catalog not in _ALLOWED_CATALOGS:
        raise _refuse(f"database {table.catalog!r} is not available")
    if schema in _SYSTEM_SCHEMAS:
        if name.lower() == "pg_settings":  # duckdb_settings() under another name: allowed_paths lists the lake's files
            raise _refuse("pg_catalog.pg_settings reads the connection's settings")
        return
    if schema not in {"", "main"}:
        raise _refuse(f"schema {table.db!r} is not available")
    # DuckDB turns an unknown name such as '/etc/passwd' or "data.csv" into a file scan: refuse path-like names.
    if any(ch in name for ch in "/\\.:~*?") or re.search(r"\.\w{2,8}$", name):
        raise _refuse(f"{name!r} looks like a file; reading files is not allowed")
    if known is not None and name.lower() not in known and not _cte_in_scope(table):
        close = difflib.get_close_matches(name.lower(), sorted(known), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else HINT_TABLES
        raise _refuse(f"unknown table {name!r}", hint)


def _table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {r[0] for r in con.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"
    ).fetchall()}


def _wrap_duckdb_error(e: duckdb.Error, tables: set[str]) -> QueryError:
    text = str(e).strip()
    first = text.splitlines()[0] if text else type(e).__name__
    hint = None
    m = _CATALOG_TABLE.search(text)
    if m:
        close = difflib.get_close_matches(m.group(2).lower(), sorted(t.lower() for t in tables), n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}?" if close else HINT_TABLES
    else:
        lines = [ln.strip() for ln in text.splitlines()[1:]]
        at = next((i for i, ln in enumerate(lines) if ln.startswith(("Did you mean", "Candidate"))), None)
        if at is not None:
            hint = lines[at]
            # "Candidate functions:" lists them on the lines below, one per line, up to a blank line
            if hint.endswith(":"):
                below = []
                for ln in lines[at + 1:]:
                    if not ln:
                        break
                    below.append(ln)
                hint = f"{hint} {'; '.join(below)}" if below else hint
    if isinstance(e, duckdb.PermissionException):
        return SqlGuardError(f"query refused: {first}", HINT_TABLES)
    if isinstance(e, duckdb.OutOfMemoryException):
        hint = "aggregate or filter before collecting rows into lists or strings; add a LIMIT"
    if "max_expression_depth" in first:  # DuckDB suggests a SET, which the guard refuses
        first = first.split(' Use "SET', 1)[0]
        hint = "move inner parts into WITH clauses, or split a long chain of operators"
    return QueryError(f"query failed: {first}", hint)


def guarded_connection(home, memory_limit: str | None = DEFAULT_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """An in-memory connection over the home's tables, locked down for ad hoc SQL."""
    from monitor.db import connect

    return connect(home, guarded=True, memory_limit=memory_limit)


def run_query(home, sql: str, params: dict | None = None, row_limit: int = 1000, time_limit_s: float = 10.0,
              memory_limit: str | None = DEFAULT_MEMORY_LIMIT) -> QueryResult:
    """Validate one read-only query here, then run it in a query process of its own with a row cap, a time limit
    and a memory cap that hold even when DuckDB does not stop."""
    if row_limit < 1:
        raise QueryError(f"row limit must be at least 1 (got {row_limit})", "e.g. --limit 1000")
    manifest = home.lake.manifest()
    from monitor.db import connect

    con = connect(home, guarded=True, memory_limit=memory_limit, manifest=manifest)
    try:
        tables = _table_names(con)
        text = validate_select(sql, tables)
        stmt = _one_select(con, text, tables)
        wanted = set(stmt.named_parameters)
    finally:
        con.close()
    given = {k.lstrip("$:"): v for k, v in (params or {}).items()}
    missing = sorted(wanted - set(given))
    if missing:
        raise QueryError(f"missing value for parameter(s): {', '.join('$' + m for m in missing)}",
                         "e.g. --param " + missing[0] + "=VALUE")
    unused = sorted(set(given) - wanted)
    if unused:
        raise QueryError(f"parameter(s) not used by the query: {', '.join(unused)}",
                         f"the query uses: {', '.join(sorted(wanted)) or 'no parameters'}")
    bind = {k: given[k] for k in wanted}
    request = {"root": str(Path(home.root).resolve()), "manifest": manifest, "sql": text, "params": bind,
               "row_limit": row_limit, "time_limit_s": time_limit_s, "memory_limit": memory_limit,
               "max_result_bytes": MAX_RESULT_BYTES}
    columns, types, rows, elapsed = _run_in_query_process(request)
    return QueryResult(
        columns=columns,
        types=types,
        rows=rows[:row_limit],
        truncated=len(rows) > row_limit,
        elapsed=elapsed,
        row_limit=row_limit,
        sql=text,
        params=bind,
    )


def _one_select(con: duckdb.DuckDBPyConnection, text: str, tables: set[str]):
    """DuckDB's own parse of the query, which must be exactly one SELECT statement (that statement is what runs)."""
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as e:
        raise _wrap_duckdb_error(e, tables) from e
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(str(s.type).split(".")[-1] for s in statements)
        # MULTI: a PIVOT that DuckDB runs as CREATE TYPE + SELECT, e.g. `ON c || 'x' IN (...)`
        raise _refuse(f"DuckDB reads this as {kinds or 'no statement'}, not one SELECT",
                      _PIVOT_HINT if "MULTI" in kinds else HINT_TABLES)
    return statements[0]


# The query runs in a process of its own because some DuckDB functions build one value in a single step that checks
# neither the interrupt nor the memory limit (repeat, lpad, list_distinct on a huge list): a thread can only ask
# DuckDB to stop, a process can be ended. The parent ends it `_grace_s` after the time limit if DuckDB has not
# answered the interrupt, and at once when its resident memory passes the memory limit by more than
# `_memory_slack`. Starting one costs ~0.5 s (Python, duckdb, pyarrow, pandas), so a query process that answered
# and stayed small waits for this process's next query (a fresh connection each time); it leaves when this process
# does, or after SPARE_IDLE_S unused.
STARTUP_LIMIT_S = 120.0
SPARE_IDLE_S = 600.0
SPARE_MAX_RSS = 512 * 2**20
# The most a result may take (pickled) on its way back: the row cap counts rows, and 1,000 rows of 1 MB texts would
# land whole in the dashboard's server process.
MAX_RESULT_BYTES = 256 * 2**20
_RESULT_HINT = ("select fewer or shorter columns (left(user_message, 200)) or fewer rows; for a bulk export open "
                "the home's catalog.duckdb with duckdb -readonly")
_POLL_S = 0.05
_CHILD = "from monitor.sqlguard import _child_main; _child_main()"
_STOPPED_HINT = "add a LIMIT or filter by date / window_start"
_UNITS = {"bytes": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _grace_s(time_limit_s: float) -> float:
    """How long after the time limit a query that ignores the interrupt is let run before its process is ended."""
    return min(5.0, max(1.0, 0.2 * time_limit_s))


def _memory_slack(limit: int) -> int:
    """What the query process may hold beyond DuckDB's memory limit: result rows in Python, allocator slack."""
    return max(256 * 2**20, limit // 4)


def _parse_size(text: str) -> int | None:
    """Bytes of a DuckDB size such as '3.7 GiB', '476.8 MiB' or '4GB', else None."""
    m = re.fullmatch(r"\s*([\d.]+)\s*([A-Za-z]*)\s*", text or "")
    if not m or m.group(2).lower() not in _UNITS | {"": 1}:
        return None
    return int(float(m.group(1)) * _UNITS.get(m.group(2).lower(), 1))


def _size(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB" if n < 10 * 2**20 else f"{n / 2**20:.0f} MiB"


def _rss(pid: int | str = "self") -> int | None:
    """Resident memory of a process in bytes (Linux /proc), else None."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _send(out, frame) -> None:
    data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(len(data).to_bytes(8, "big"))
    out.write(data)
    out.flush()


class _Frames:
    """Length-prefixed pickles read from a pipe without blocking for longer than asked."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buf = bytearray()
        self.eof = False

    def next(self, timeout: float | None):
        """The next whole frame, None if none arrived within `timeout`; EOFError once the pipe is closed."""
        # A frame over the pipe's 64 KB arrives in pieces: wait for the rest until the timeout, not just one read.
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            if len(self.buf) >= 8:
                size = int.from_bytes(self.buf[:8], "big")
                if len(self.buf) >= 8 + size:
                    frame = pickle.loads(bytes(self.buf[8:8 + size]))
                    del self.buf[:8 + size]
                    return frame
            if self.eof:
                raise EOFError
            wait = None if end is None else max(0.0, end - time.monotonic())
            ready, _, _ = select.select([self.fd], [], [], wait)
            if not ready:
                return None
            chunk = os.read(self.fd, 1 << 20)
            if not chunk:
                self.eof = True
            self.buf += chunk


class _QueryProcess:
    """A query process (`_child_main`): its pipes and the file its stderr goes to."""

    def __init__(self):
        # The child imports this very package, wherever it was imported from here (a source checkout, site-packages)
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join([root] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-P", "-c", _CHILD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.err, env=env, close_fds=True)
        self.frames = _Frames(self.proc.stdout.fileno())

    def end(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout, self.err):
            with contextlib.suppress(OSError):
                f.close()

    def ended(self) -> QueryError:
        """The error for a query process that closed its output without an answer."""
        code = self.proc.wait()
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        self.err.seek(0)
        lines = [ln.strip() for ln in self.err.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        # a traceback ends with the exception's message, whose later lines may be DuckDB's context (a `^^^` line)
        raised = [ln for ln in lines if re.match(r"[\w.]+(Error|Exception|Exit|Interrupt)\b", ln)]
        last = f": {(raised or lines)[-1][:200]}" if lines else ""
        return QueryError(f"query failed: its process ended unexpectedly ({how}){last}",
                          "run it again; if it fails the same way, report the query")


_SPARE: _QueryProcess | None = None
_SPARE_LOCK = threading.Lock()
_SPARE_PID = os.getpid()


def _take_process() -> _QueryProcess:
    """The waiting query process if there is a live one, else a new one."""
    global _SPARE, _SPARE_PID
    with _SPARE_LOCK:
        if _SPARE_PID != os.getpid():  # a forked child: the parent's query process is not this process's to use
            _SPARE, _SPARE_PID = None, os.getpid()
        qp, _SPARE = _SPARE, None
    if qp is not None and qp.proc.poll() is not None:  # it waited SPARE_IDLE_S and left
        qp.end()
        qp = None
    return qp or _QueryProcess()


def _give_back(qp: _QueryProcess) -> None:
    """Keep a query process that answered for the next query, unless one is kept already or it grew big."""
    global _SPARE
    used = _rss(qp.proc.pid)
    with _SPARE_LOCK:
        if _SPARE is None and _SPARE_PID == os.getpid() and used is not None and used <= SPARE_MAX_RSS:
            _SPARE, qp = qp, None
    if qp is not None:
        qp.end()


def _run_in_query_process(request: dict) -> tuple[list[str], list[str], list[tuple], float]:
    """Run a validated query in a query process; (columns, types, rows, seconds), or the QueryError it ended with."""
    time_limit_s = float(request["time_limit_s"])
    qp = _take_process()
    proc, answered = qp.proc, False
    try:
        try:
            _send(proc.stdin, request)
        except (BrokenPipeError, ValueError):
            pass  # it died at start: reported below from its exit status
        deadline, cap, limit = time.monotonic() + STARTUP_LIMIT_S, None, 0
        while True:
            now = time.monotonic()
            if now >= deadline:
                if cap is None:
                    raise QueryError(f"query stopped: its process did not start within {STARTUP_LIMIT_S:g} s",
                                     "the machine may be overloaded; try again")
                raise QueryError(f"query stopped after {time_limit_s:g} s (it did not answer the interrupt, so its "
                                 "process was ended)",
                                 "one function call on a huge value (repeat, lpad, list_distinct) runs to its end "
                                 f"once started: make the values smaller; {_STOPPED_HINT}")
            if cap is not None:
                used = _rss(proc.pid)
                if used is not None and used > cap:
                    raise QueryError(f"query stopped: its process used {_size(used)} of memory, more than the memory "
                                     f"limit ({_size(limit)}) allows",
                                     "a function building one huge value (repeat, lpad, a list from range()) and "
                                     "the rows fetched are not held to DuckDB's memory limit: make the values "
                                     "smaller, select fewer or shorter columns, add a LIMIT")
            try:
                frame = qp.frames.next(min(_POLL_S, deadline - now))
            except EOFError:
                raise qp.ended() from None
            if frame is None:
                continue
            if frame[0] == "ready":
                _, base, limit = frame
                cap = base + limit + _memory_slack(limit) if limit else None
                deadline = time.monotonic() + time_limit_s + _grace_s(time_limit_s)
                continue
            answered = True
            if frame[0] == "ok":
                return frame[1:]
            _, kind, message, hint = frame
            raise (SqlGuardError if kind == "SqlGuardError" else QueryError)(message, hint)
    finally:
        if answered:
            _give_back(qp)
        else:
            qp.end()


def _warm_up() -> None:
    """Do once, before a request comes, what a process's first connection pays for: duckdb imports pandas and
    more (~350 modules, 0.2-0.5 s) the first time a table is registered or values are fetched."""
    import pyarrow as pa

    con = duckdb.connect(":memory:")
    try:
        con.register("_warm", pa.table({"x": [1]}))
        con.execute("SELECT x, TIMESTAMP '2026-01-01', 1.5::DECIMAL(4, 2), [1], {'a': 1}, uuid(), 'x'::BLOB, "
                    "INTERVAL 1 DAY FROM _warm").fetchall()
    finally:
        con.close()


def _child_main() -> None:
    """The query process: answer requests from stdin on stdout, each on a fresh guarded connection, until stdin
    closes or none comes for SPARE_IDLE_S."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group: the parent ends this one
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything else printed goes to stderr, not into the answers
    _warm_up()
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True).start()
    requests = _Frames(sys.stdin.fileno())
    while True:
        try:
            request = requests.next(SPARE_IDLE_S)
        except EOFError:
            request = None  # the parent left
        if request is None:
            os._exit(0)  # skip the interpreter's teardown of DuckDB and its threads: nothing is left to flush
        data = pickle.dumps(_answer(request, out), protocol=pickle.HIGHEST_PROTOCOL)
        cap = request["max_result_bytes"]
        if len(data) > cap:
            data = pickle.dumps(("error", "QueryError", f"query result is {_size(len(data))}, more than the "
                                 f"{_size(cap)} a query may return", _RESULT_HINT))
        out.write(len(data).to_bytes(8, "big"))
        out.write(data)
        out.flush()


def _watch_parent(ppid: int) -> None:
    """End this process when its parent is gone (killed by SIGTERM or SIGKILL: no `finally` ended this one)."""
    while os.getppid() == ppid:
        time.sleep(0.2)
    os._exit(71)


def _answer(request: dict, out) -> tuple:
    """Run one request on a fresh guarded connection: ("ok", columns, types, rows, seconds) or ("error", ...)."""
    from monitor.db import connect
    from monitor.home import Home

    time_limit_s = float(request["time_limit_s"])
    con = None
    # Should the parent be gone, nobody would end this process: it ends itself a little after the parent would.
    orphan = threading.Timer(time_limit_s + _grace_s(time_limit_s) + 5.0, os._exit, (70,))
    orphan.daemon = True
    stopped = threading.Event()

    def stop() -> None:
        stopped.set()
        con.interrupt()

    timer = threading.Timer(time_limit_s, stop)
    timer.daemon = True
    try:
        try:
            con = connect(Home(Path(request["root"])), guarded=True, memory_limit=request["memory_limit"],
                          manifest=request["manifest"])
        except duckdb.Error as e:  # a file gone since the caller checked the query: one error, not a traceback
            raise QueryError(f"query failed: cannot open the lake's files: {str(e).splitlines()[0]}",
                             "run it again (the lake may have been compacted meanwhile)") from e
        tables = _table_names(con)
        [(setting,)] = con.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchall()
        _send(out, ("ready", _rss() or 0, _parse_size(setting) or 0))
        orphan.start()
        stmt = _one_select(con, request["sql"], tables)
        t0 = time.perf_counter()
        timer.start()
        try:
            cur = con.execute(stmt, request["params"]) if request["params"] else con.execute(stmt)
            rows = [tuple(r) for r in cur.fetchmany(request["row_limit"] + 1)]
            description = cur.description or []
        except duckdb.Error as e:
            if stopped.is_set():
                raise QueryError(f"query stopped after {time_limit_s:g} s", _STOPPED_HINT) from e
            raise _wrap_duckdb_error(e, tables) from e
        return ("ok", [d[0] for d in description], [str(d[1]) for d in description], rows,
                time.perf_counter() - t0)
    except MonitorError as e:
        return ("error", "SqlGuardError" if isinstance(e, SqlGuardError) else "QueryError", e.message, e.hint)
    finally:
        timer.cancel()
        orphan.cancel()
        if con is not None:
            con.close()


def schema(home) -> dict[str, list[tuple[str, str]]]:
    """Every queryable table and view with its (column, type) pairs, for the schema browser and `--tables`."""
    con = guarded_connection(home)
    try:
        rows = con.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out
