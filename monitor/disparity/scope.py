"""Date-scoped DuckDB connections, kept under their old import path: they now live in monitor/db.py.

`scoped_connect`, `scope_views` and `scoped_manifest` give views over the lake files of a range of event dates
only, so a job that recomputes one day does not pay for the whole history (see monitor.db.scoped_connect).
"""
from monitor.db import scope_views, scoped_connect, scoped_manifest

__all__ = ["scope_views", "scoped_connect", "scoped_manifest"]
