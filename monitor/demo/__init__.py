"""The bundled demo: real HH-RLHF conversations with synthetic deployment metadata, shifted to end yesterday.

``demo_logs.jsonl.gz`` (built by ``training/build_demo.py``, described in ``README.md`` beside it) is canonical JSONL
whose 30 days end on `ANCHOR_LAST_DAY`. `build_demo_home` moves every timestamp by whole days so that the last day
is yesterday, writes the result as plain JSONL into the home, ingests it and runs every job.
"""
from __future__ import annotations

import datetime as dt
import gzip
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator

import orjson

from monitor.errors import MonitorError

DEMO_FILE = "demo_logs.jsonl.gz"
# The last day of the bundled data as stored; `monitor demo` shifts it to yesterday.
ANCHOR_LAST_DAY = dt.date(2026, 11, 15)
DAYS = 30
SHIFTED_NAME = "demo_logs.jsonl"

# The synthetic deployment (see README.md): 2026.10 until a canary of 2026.11 on day 19, rollout on day 22.
OLD_MODEL, NEW_MODEL = "assistant@2026.10", "assistant@2026.11"
CANARY_FIRST_DAY, ROLLOUT_DAY = 19, 22  # 1-based day numbers of the 30
# Incident 1's topic: harmful requests the harm classifier files under these categories (crime and violence).
INCIDENT_CATEGORIES = ("violence", "weapons", "fraud", "cyber")
# Incident 2's group: users whose declared language is this.
INCIDENT_LANGUAGE = "hi"


def data_path() -> Path:
    """Path of the bundled demo log inside the installed package."""
    path = Path(str(resources.files("monitor.demo") / DEMO_FILE))
    if not path.exists():
        raise MonitorError(f"bundled demo data missing: {path}",
                           "reinstall alignment-monitor, or rebuild it: python training/build_demo.py")
    return path


def parse_transcript(text: str) -> list[dict[str, str]]:
    """Split an HH-RLHF transcript ("\\n\\nHuman: ...\\n\\nAssistant: ...") into role/content messages."""
    parts = re.split(r"\n\n(Human|Assistant): ", "\n\n" + text.lstrip("\n"))
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages


def day_shift(today: dt.date | None = None) -> dt.timedelta:
    """Whole days to add to the stored timestamps so that the last demo day is the day before `today`."""
    today = today or dt.datetime.now(dt.timezone.utc).date()
    return (today - dt.timedelta(days=1)) - ANCHOR_LAST_DAY


def _shift_ts(value: str, delta: dt.timedelta) -> str:
    ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00")).replace(tzinfo=None) + delta
    return ts.isoformat(timespec="seconds") + "Z"


def records(today: dt.date | None = None, path: Path | None = None) -> Iterator[dict]:
    """The demo records with timestamps shifted so that the last day is yesterday (relative to `today`)."""
    delta = day_shift(today)
    with gzip.open(path or data_path(), "rb") as fh:
        for line in fh:
            rec = orjson.loads(line)
            rec["timestamp"] = _shift_ts(rec["timestamp"], delta)
            for m in rec["messages"]:
                if "timestamp" in m:
                    m["timestamp"] = _shift_ts(m["timestamp"], delta)
            yield rec


def write_shifted(dest: Path, today: dt.date | None = None) -> int:
    """Write the shifted demo log as plain JSONL (atomically) and return the number of records."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    n = 0
    with open(tmp, "wb") as out:
        for rec in records(today):
            out.write(orjson.dumps(rec) + b"\n")
            n += 1
    os.replace(tmp, dest)
    return n


@dataclass
class DemoSummary:
    home: "object"  # monitor.home.Home
    records: int
    first_day: dt.date
    last_day: dt.date
    ingest: dict = field(default_factory=dict)
    jobs: list = field(default_factory=list)


def build_demo(home_path: str | os.PathLike, today: dt.date | None = None, run_jobs: bool = True,
               progress: bool = False) -> DemoSummary:
    """Build (or refresh) a demo home at `home_path`: shifted log written, ingested as source "demo", jobs run."""
    from monitor.home import Home
    from monitor.ingest import ingest_paths

    home = Home.open(home_path)
    src = home.root / "demo-input" / SHIFTED_NAME
    n = write_shifted(src, today)
    # A rebuild on another day shifts differently; the turn ids (conversation id + turn index) stay the same, so
    # the second ingest counts every turn as a duplicate instead of doubling the data.
    # An explicit `today` (tests, replays) is also the clock of ingest and jobs: the timestamps must not be "future".
    now = None if today is None else dt.datetime.combine(today, dt.time(0, 0))
    summary = ingest_paths(home, [src], fmt="canonical", progress=progress, source="demo", now=now)
    results = []
    if run_jobs:
        from monitor.jobs import run_all

        results = run_all(home, now=now)
    last = (today or dt.datetime.now(dt.timezone.utc).date()) - dt.timedelta(days=1)
    return DemoSummary(home, n, last - dt.timedelta(days=DAYS - 1), last, summary.as_dict(), results)


def build_demo_home(home_path: str | os.PathLike, today: dt.date | None = None, run_jobs: bool = True):
    """Build (or refresh) the demo home at `home_path` and return it (see `build_demo` for the summary)."""
    return build_demo(home_path, today, run_jobs).home
