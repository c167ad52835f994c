"""The monitor's home folder: lake, state store, catalog, inbox and config, found from --home or MONITOR_HOME."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from monitor.config import Config, load_config
from monitor.lake import Lake
from monitor.state import State

DEFAULT_HOME = "./monitor-data"


@dataclass
class Home:
    root: Path
    config_file: Path | None = None

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, config_file: str | os.PathLike | None = None) -> "Home":
        """Open (creating if needed) the home at `root`, else $MONITOR_HOME, else ./monitor-data."""
        path = Path(root or os.environ.get("MONITOR_HOME") or DEFAULT_HOME).expanduser().resolve()
        path.mkdir(parents=True, exist_ok=True)
        home = cls(path, Path(config_file).resolve() if config_file else None)
        _ = home.config  # fail early on a bad config
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
