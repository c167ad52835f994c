"""Locate the SQL files shipped with the package (``sql/`` at the repo root, ``monitor/sql`` in a wheel)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from monitor.errors import MonitorError


@lru_cache(maxsize=1)
def sql_root() -> Path:
    """The folder holding metric/view/state SQL: inside the installed wheel, else the source checkout."""
    packaged = Path(str(resources.files("monitor"))) / "sql"
    if packaged.is_dir():
        return packaged
    source = Path(__file__).resolve().parent.parent / "sql"
    if source.is_dir():
        return source
    raise MonitorError("cannot find the sql/ folder of alignment-monitor", "reinstall the package")


@dataclass(frozen=True)
class SqlFile:
    path: Path
    name: str
    header: str  # the leading comment block: what it measures, parameters, output columns
    sql: str

    @property
    def params(self) -> list[str]:
        return sorted(set(re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", _strip_comments(self.sql))))


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def load_sql(relpath: str) -> SqlFile:
    """Read `sql/<relpath>`; the header is every leading `--` line."""
    path = sql_root() / relpath
    if not path.exists():
        raise MonitorError(f"missing SQL file {path}", "reinstall the package")
    text = path.read_text()
    header_lines = []
    for line in text.splitlines():
        if line.startswith("--"):
            header_lines.append(line[2:].strip())
        elif line.strip():
            break
    return SqlFile(path, path.stem, "\n".join(header_lines), text)


def sql_files(folder: str) -> list[SqlFile]:
    return [load_sql(f"{folder}/{p.name}") for p in sorted((sql_root() / folder).glob("*.sql"))]
