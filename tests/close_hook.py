"""A DuckDB connection wrapper that runs a callback when the code under test closes it.

Races with `monitor forget` are staged with it: the code under test reads the lake through `monitor.db.connect`,
and the forget starts the moment that read is done (right after `close`)."""
from __future__ import annotations

from typing import Callable


class CloseHook:
    def __init__(self, con, on_close: Callable[[], None]):
        self.con, self.on_close = con, on_close

    def execute(self, *a, **k):
        return self.con.execute(*a, **k)

    def close(self):
        self.con.close()
        self.on_close()


def hook_connect(monkeypatch, on_close: Callable[[], None]) -> None:
    """Make the next `monitor.db.connect` return a CloseHook; the real connect is back before `on_close` runs."""
    import monitor.db

    real = monitor.db.connect

    def then():
        monkeypatch.setattr(monitor.db, "connect", real)
        on_close()

    monkeypatch.setattr(monitor.db, "connect", lambda h, *a, **k: CloseHook(real(h, *a, **k), then))
