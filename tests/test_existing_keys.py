"""The published-keys queries behind retired rows pick each key's latest row exactly as view `metrics` does."""
from __future__ import annotations

import datetime as dt
import itertools
import random

import pyarrow as pa
import pytest

from monitor.db import connect
from monitor.home import Home
from monitor.resources import load_sql
from monitor.schema import METRICS

W1, W2, W3 = dt.datetime(2026, 11, 1), dt.datetime(2026, 11, 2), dt.datetime(2026, 11, 3)
T0 = dt.datetime(2026, 11, 5, 12)


def _rows(family: str, metrics: list[str], seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    keys = list(itertools.product(metrics, ["day", "hour"], [W1, W2, W3], [None, "m1"], [None, "prod"],
                                  ["{}", '{"language": "en"}']))
    for metric, granularity, ws, model, deployment, segment in keys:
        for run in range(rng.randint(1, 4)):
            # Ties on computed_at across runs happen (same clock tick): run_id decides, as in view `metrics`.
            at = T0 + dt.timedelta(seconds=rng.choice([0, 0, 1, 2]) + run)
            rows.append({"metric": metric, "granularity": granularity, "window_start": ws,
                         "window_end": ws + dt.timedelta(days=1, seconds=rng.randint(0, 3)),
                         "model": model, "deployment": deployment, "segment": segment,
                         "n": rng.choice([0, 0, 5, 30]), "job": "j", "run_id": f"r{rng.randint(0, 9)}",
                         "computed_at": at, "family": family})
    return rows


@pytest.mark.parametrize("seed", range(3))
def test_existing_keys_match_the_latest_rows_of_view_metrics(tmp_path, seed):
    home = Home.open(tmp_path / "home")
    rows = _rows("values", ["value_mean", "value_coverage", "value_drift"], seed) + \
        _rows("refusal", ["refusal_rate", "over_refusal_rate"], seed + 10)
    home.lake.append(METRICS.name, pa.Table.from_pylist(rows, schema=METRICS.schema))
    con = connect(home)
    try:
        for granularity, windows in (("day", [W1, W3]), ("hour", [W2]), ("day", [])):
            want_sql = ("SELECT metric, window_start, window_end, model, deployment, segment FROM metrics "
                        "WHERE family = $family AND granularity = $granularity AND list_contains($windows, "
                        "window_start) AND list_contains($metrics, metric) AND n > 0")
            # The values job names its metrics; refusal_metrics takes every metric of its family.
            cases = (("values", ["value_mean", "value_coverage"], False),
                     ("refusal", ["refusal_rate", "over_refusal_rate"], True))
            for family, metrics, all_metrics in cases:
                params = {"family": family, "granularity": granularity, "windows": windows,
                          "all_metrics": all_metrics, "metrics": [] if all_metrics else metrics}
                got = sorted(con.execute(load_sql("jobs/existing_keys.sql").sql, params).fetchall(), key=repr)
                want = sorted(con.execute(want_sql, {"family": family, "granularity": granularity,
                                                     "windows": windows, "metrics": metrics}).fetchall(), key=repr)
                assert got == want, (family, granularity, windows)
                if windows:
                    assert want  # the case is not vacuous
    finally:
        con.close()
