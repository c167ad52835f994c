"""The monitor's home folder: lake, state store, catalog, inbox and config, found from --home or MONITOR_HOME."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from monitor.config import CONFIG_NAME, Config, load_config
from monitor.errors import StorageError
from monitor.lake import Lake
from monitor.state import State

DEFAULT_HOME = "./monitor-data"
# A folder holding any of these is a home; one holding none is a new folder (or a misspelt --home).
HOME_MARKERS = ("lake", "state.sqlite", CONFIG_NAME)


def resolve_root(root: str | os.PathLike | None = None) -> Path:
    """The home folder named by `root`, else $MONITOR_HOME, else ./monitor-data, as an absolute path."""
    return Path(root or os.environ.get("MONITOR_HOME") or DEFAULT_HOME).expanduser().resolve()


def is_home(path: Path) -> bool:
    """Whether `path` already is a monitor home (has a lake, a state store or a monitor.toml)."""
    return any((path / m).exists() for m in HOME_MARKERS)


@dataclass
class Home:
    root: Path
    config_file: Path | None = None

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None,
             *, create: bool = True) -> "Home":
        """Open the home at `root`, else $MONITOR_HOME, else ./monitor-data; creating it if needed unless `create`
        is false, when a folder that is not a home yet is a StorageError (and nothing is created)."""
        path = resolve_root(root)
        if not create and not is_home(path):
            raise StorageError(f"no monitor home at {path} (it has no lake, state.sqlite or {CONFIG_NAME})",
                               "check --home / MONITOR_HOME; `monitor demo` or `monitor ingest LOGS` creates a home")
        path.mkdir(parents=True, exist_ok=True)
        home = cls(path, Path(config_file).resolve() if config_file else None)
        _ = home.config  # fail early on a bad config
        if create:
            _ = home.lake  # creates lake/, which marks the folder as a home from now on
        return home

    @cached_property
    def config(self) -> Config:
        return load_config(self.root, self.config_file)

    @cached_property
    def lake(self) -> Lake:
        return Lake(self.root / "lake")

    @cached_property
    def state(self) -> State:
        return State(self.root / "state.sqlite")

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.duckdb"

    @property
    def snapshot_dir(self) -> Path:
        return self.root / "lake" / "_state"

    def inbox_dirs(self) -> list[Path]:
        dirs = []
        for d in self.config.ingest.inbox_dirs:
            p = Path(d)
            dirs.append(p if p.is_absolute() else self.root / p)
        return dirs
