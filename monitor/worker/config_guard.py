"""The worker's configuration across edits: re-read at every run, and a broken edit never stops the monitoring.

The worker re-reads `monitor.toml` at every scheduled run, so an edit takes effect without a restart. An edit that
breaks the file (a typo, a rule missing its `kind`, a channel of an unknown type) used to fail every run from then
on: the metric jobs, the pipeline-health checks that would have paged about it, and the delivery of the page.
Now the worker keeps running on the last configuration that passed the checks `monitor serve` makes at start
(`monitor.config_check`), like Prometheus on a failed reload, and says so until the file is fixed:

- the problem is kept in the state store (`kv` key ``config.problem``: the error, what to try, since when, and
  when the configuration in use was read), audited once when it appears and once when it is fixed;
- the default `config_invalid` alert rule pages about it (monitor/alerts/pipeline.py), through the channels of
  the configuration in use;
- `GET /readyz` shows it under ``config`` (the worker still does its work, so it stays ready) and `/metrics` as
  ``monitor_config_valid``.

A process with no configuration that passed (a `monitor jobs run` from cron) fails with the one-line error, as
before.
"""
from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from monitor.config import CONFIG_NAME, Config
from monitor.errors import ConfigError
from monitor.home import Home, resolve_root
from monitor.state import iso, utcnow

log = logging.getLogger("monitor.worker")

PROBLEM_KEY = "config.problem"
ACTOR = "worker"


@dataclass
class _Good:
    config: Config
    read_at: str  # iso time the configuration in use was read


_LOCK = threading.Lock()
_GOOD: dict[tuple[str, str | None], _Good] = {}


def _key(home_root: str | Path, config_file: str | Path | None) -> tuple[str, str | None]:
    return str(resolve_root(home_root)), str(Path(config_file).resolve()) if config_file else None


def remember(home: Home) -> None:
    """Keep `home`'s configuration (already checked: `monitor serve` checked it at start) as the last good one."""
    with _LOCK:
        _GOOD[_key(home.root, home.config_file)] = _Good(home.config, iso(utcnow()))
    _clear(home)


def open_home(home_root: str, config_file: str | None) -> Home:
    """The home with its configuration re-read and checked; on a broken edit, with the last good configuration
    (the problem recorded), or the ConfigError when this process never had a good one."""
    from monitor.config_check import check_config

    key = _key(home_root, config_file)
    home = Home(Path(key[0]), Path(key[1]) if key[1] else None)
    path = home.config_file or home.root / CONFIG_NAME
    try:
        if home.config_file is None and not path.exists():
            _check_not_deleted(key, path)
        config = check_config(path, home.root).config
    except ConfigError as e:
        with _LOCK:
            good = _GOOD.get(key)
        if good is None:
            raise
        home.__dict__["config"] = good.config  # Home.config is a cached property: the run uses the good one
        _record(home, path, e, good)
        return home
    with _LOCK:
        _GOOD[key] = _Good(config, iso(utcnow()))
    home.__dict__["config"] = config
    _clear(home)
    return home


def _check_not_deleted(key: tuple[str, str | None], path: Path) -> None:
    """Refuse a home's monitor.toml that went away while the configuration in use had keys set from it.

    No file is a valid configuration (every default) for a process that starts without one, but for a worker
    running on a file it would drop every rule and channel at once, silently: a `rm`, a failed deploy or an
    editor's save caught between its rename and its write. The worker keeps the last good configuration and pages,
    like for any broken edit; an empty file is how to ask for every default."""
    with _LOCK:
        good = _GOOD.get(key)
    if good is not None and any(s != "default" for s in good.config.sources.values()):
        raise ConfigError(f"config file {path} is missing (the configuration in use was read from it at "
                          f"{good.read_at})",
                          "restore it; to run on every default, leave an empty monitor.toml")


def problem(home: Home) -> dict | None:
    """The recorded configuration problem, or None when the configuration in use is the file's."""
    return home.state.get(PROBLEM_KEY)


def _record(home: Home, path: Path, e: ConfigError, good: _Good) -> None:
    old = problem(home)
    if old is not None and old.get("error") == e.message:
        return  # the same problem, still there: one record, one log line, one alert episode
    with home.state.tx() as con:
        # Read again inside the write transaction: the job group and the watch group of the worker may find the
        # same new problem at once; the second one to write finds it recorded.
        row = con.execute("SELECT value FROM kv WHERE key=?", (PROBLEM_KEY,)).fetchone()
        old = json.loads(row[0]) if row else None
        if old is not None and old.get("error") == e.message:
            return
        entry = {"error": e.message, "hint": e.hint, "file": str(path),
                 "since": old["since"] if old else iso(utcnow()),  # another mistake in the same broken stretch
                 "running_on_config_read_at": good.read_at}
        home.state.put(PROBLEM_KEY, entry, con=con)
        home.state.audit(con, ACTOR, "config.invalid", f"config:{path}", entry)
    log.error("configuration %s is invalid: %s (%s); running on the configuration read at %s until it is fixed; "
              "check it with `monitor config check`", path, e.message, e.hint or "fix the line named", good.read_at)


def _clear(home: Home) -> None:
    old = problem(home)
    if old is None:
        return
    with home.state.tx() as con:
        if not con.execute("DELETE FROM kv WHERE key=?", (PROBLEM_KEY,)).rowcount:
            return  # the other group cleared it first
        home.state.audit(con, ACTOR, "config.valid", f"config:{old.get('file')}", {"invalid_since": old.get("since")})
    log.info("configuration %s is valid again: in use from now on", old.get("file"))
