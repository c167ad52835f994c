"""The disparity job's group counts come from per-date sums (monitor.partials) that a run extends with its new turns:
after every kind of increment the pipeline produces (new turns in a computed day, a new day, late turns for old
days, a re-score), every disparity row must equal both a from-scratch run (cache deleted, watermark reset) and
the rows of the SQL run over whole windows, the job's computation before the per-date sums (`load_inputs`)."""
import datetime as dt
import itertools
import json
import math
import shutil

import pandas as pd
import pyarrow as pa
import pytest

from monitor.db import connect
from monitor.demo import records
from monitor.disparity.compute import (Settings, apply_bh, compare_rates, compare_values, language_mismatch_table,
                                       load_inputs, metric_table)
from monitor.home import Home
from monitor.incremental import ATTRIBUTES_KEY
from monitor.ingest import ingest_paths
from monitor.jobs import run_all, run_job
from monitor.jobs.disparity import JOBS as DISPARITY_JOBS
from monitor.jobs.disparity import WATERMARK_KEY
from monitor.partials import DateSums
from monitor.schema import SCORES

NOW = dt.datetime(2026, 11, 20)
JOBS = ["languages", "score", "values", "disparity"]
DISPARITY = next(j for j in DISPARITY_JOBS if j.name == "disparity")
CONFIG = """
[metrics]
granularity = "{granularity}"
[disparity]
min_n = {min_n}
fdr = 0.5
intersections = [["language", "age_band"]]
[disparity.reference_group]
language = "en"
"""
# Details compared exactly: the tests' inputs are integer counts, so p-values and BH verdicts must not move at all.
EXACT = {"p_value", "q_value", "significant", "adverse", "direction", "bh_family_size", "min_n_ok", "test",
         "is_reference", "four_fifths_flag", "reference_n", "reference_label", "attribute", "group", "dimension",
         "family", "source"}


def _write(path, recs):
    with open(path, "w") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
    return path


def _ingest_and_run(home, tmp, name, recs):
    assert recs, name
    ingest_paths(home, [_write(tmp / f"{name}.jsonl", recs)])
    assert all(r.status == "ok" for r in run_all(home, only=JOBS, now=NOW))


def _close(x, y) -> bool:
    if isinstance(x, float) or isinstance(y, float):
        if x is None or y is None:
            return x is None and y is None
        if math.isnan(x) or math.isnan(y):
            return math.isnan(x) and math.isnan(y)
        return x == pytest.approx(y, rel=1e-9, abs=1e-12)
    if isinstance(x, list) and isinstance(y, list):
        return len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y))
    return x == y


def _key(r) -> tuple:
    return (r["metric"], r["granularity"], pd.Timestamp(r["window_start"]), r["model"], r["segment"])


def _assert_same(got: dict, want: dict, what: str) -> None:
    """Every row of `want` is in `got` with the same values (floats within 1e-9, test verdicts exactly)."""
    missing = set(want) - set(got)
    assert not missing, (what, sorted(missing, key=repr)[:5])
    for k, w in want.items():
        g = got[k]
        for c in ("value", "ci_low", "ci_high", "numerator"):
            assert _close(g[c], w[c]), (what, k, c, g[c], w[c])
        assert (g["n"], g["small_sample"]) == (w["n"], w["small_sample"]), (what, k)
        gd, wd = json.loads(g["details"]), json.loads(w["details"])
        assert gd.keys() == wd.keys(), (what, k)
        for d in wd:
            ok = gd[d] == wd[d] if d in EXACT else _close(gd[d], wd[d])
            assert ok, (what, k, d, gd[d], wd[d])


def latest_rows(home) -> dict:
    """The latest disparity rows of every metric key (the `metrics` view)."""
    con = connect(home)
    try:
        df = con.execute("SELECT * FROM metrics WHERE family = 'disparity' AND job = 'disparity'").df()
    finally:
        con.close()
    rows = df.to_dict("records")
    for r in rows:
        r["model"] = r["model"] if isinstance(r["model"], str) else None
        for c in ("value", "ci_low", "ci_high", "numerator"):
            r[c] = None if r[c] is None or (isinstance(r[c], float) and math.isnan(r[c])) else float(r[c])
    return {_key(r): r for r in rows}


def rows_before_partials(home) -> dict:
    """The disparity rows of every window as the job computed them before the per-date sums: the group SQL over the
    whole windows (load_inputs, language_mismatch_table), tests and BH."""
    con = connect(home)
    try:
        s = Settings.from_config(home.config, home.state.get(ATTRIBUTES_KEY)["attributes"])
        windows = [r[0] for r in con.execute("SELECT DISTINCT date_trunc($g, ts) FROM turns ORDER BY 1",
                                             {"g": s.granularity}).fetchall()]
        tables = []
        for i in range(0, len(windows), 31):
            chunk = windows[i:i + 31]
            counts, values = load_inputs(con, s, chunk)
            results = compare_rates(counts, s) + compare_values(values, s)
            apply_bh(results, s.fdr)
            tables.append(metric_table(results, s, "disparity", "old", NOW))
            tables.append(language_mismatch_table(con, s, chunk, "disparity", "old", NOW))
    finally:
        con.close()
    rows = pa.concat_tables(tables).to_pylist()
    for r in rows:
        for c in ("value", "ci_low", "ci_high", "numerator"):
            r[c] = None if r[c] is None else float(r[c])
    return {_key(r): r for r in rows}


def from_scratch(home, tmp, name) -> dict:
    """The latest disparity rows after a copy of the home recomputed every window (cache deleted, watermark reset)."""
    root = tmp / f"scratch-{name}"
    shutil.copytree(home.root, root)
    shutil.rmtree(root / "cache" / "partials", ignore_errors=True)
    copy = Home.open(root)
    copy.state.put(WATERMARK_KEY, None)
    assert run_job(copy, DISPARITY, now=NOW).status == "ok"
    return latest_rows(copy)


def check(home, tmp, name) -> bool:
    """The home's disparity rows equal a from-scratch run's and the whole-window SQL's; whether any is significant."""
    got = latest_rows(home)
    assert len(got) > 100, name
    scratch = from_scratch(home, tmp, name)
    assert set(got) == set(scratch), name
    _assert_same(got, scratch, f"{name}: vs from scratch")
    before = rows_before_partials(home)
    assert len(before) > 100
    _assert_same(got, before, f"{name}: vs the whole-window SQL")
    # The steps must exercise real tests, not only small samples.
    details = [json.loads(r["details"]) for r in before.values()]
    assert sum(d.get("p_value") is not None for d in details) > 10
    return any(d.get("significant") for d in details)


@pytest.fixture
def spy(monkeypatch):
    """DateSums.stats of every rows() call of the disparity job: (cache name, stats)."""
    seen: list[tuple[str, dict]] = []
    rows = DateSums.rows

    def recording(self, manifest, dates, *args, **kwargs):
        dates = sorted(set(dates))
        out = rows(self, manifest, dates, *args, **kwargs)
        if self.name.startswith("disparity."):  # other jobs keep sums of their own
            seen.append((self.name, dict(self.stats, dates=dates)))
        return out

    monkeypatch.setattr(DateSums, "rows", recording)
    return seen


def totals(seen: list[tuple[str, dict]]) -> dict[str, dict]:
    """The stats of every rows() call per cache name, summed (the cached count is left out); each date is asked
    for once per cache and run, also when hour windows come in several chunks."""
    out: dict[str, dict] = {}
    asked: dict[str, list[str]] = {}
    for name, st in seen:
        asked.setdefault(name, []).extend(st["dates"])
    for name, dates in asked.items():
        assert len(dates) == len(set(dates)), f"{name}: a date was read in two chunks"
    for name, st in seen:
        t = out.setdefault(name, {"extended": 0, "recomputed": 0})
        for k in ("extended", "recomputed"):
            t[k] += st[k]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("granularity", ["day", "hour"])
def test_extended_sums_give_the_rows_of_a_full_recomputation(tmp_path, spy, granularity):
    recs = list(itertools.islice(records(NOW.date()), 0, None, 8))
    days = sorted({r["timestamp"][:10] for r in recs})[-6:]
    recs = [r for r in recs if r["timestamp"][:10] in days]
    late = {r["conversation_id"] for r in recs[::9] if r["timestamp"][:10] < days[3]}
    more = {r["conversation_id"] for r in recs if r["timestamp"][:10] == days[4] and "14" <= r["timestamp"][11:] < "22"}
    first = [r for r in recs if r["timestamp"][:10] <= days[4] and r["conversation_id"] not in late | more]
    (tmp_path / "home").mkdir()
    min_n = 5 if granularity == "day" else 2  # hour windows of this small lake hold a few turns each
    (tmp_path / "home" / "monitor.toml").write_text(CONFIG.format(granularity=granularity, min_n=min_n))
    home = Home.open(tmp_path / "home")
    significant = []

    _ingest_and_run(home, tmp_path, "first", first)
    assert set(totals(spy)) == {"disparity.rates", "disparity.values", "disparity.language"}
    significant.append(check(home, tmp_path, "first"))

    # New turns in an already computed day: the day's cached sums are extended with them, never recomputed.
    spy.clear()
    _ingest_and_run(home, tmp_path, "more", [r for r in recs if r["conversation_id"] in more])
    assert totals(spy) == {n: {"extended": 1, "recomputed": 0}
                           for n in ("disparity.rates", "disparity.values", "disparity.language")}
    significant.append(check(home, tmp_path, "more"))

    # A new day, and late turns for old days in the same increment: the old dates are extended (the late turns
    # have no older rows), the new one computed.
    spy.clear()
    _ingest_and_run(home, tmp_path, "new-day-and-late", [r for r in recs if r["timestamp"][:10] == days[5]
                                                         or r["conversation_id"] in late])
    assert totals(spy) == {n: {"extended": 3, "recomputed": 1}
                           for n in ("disparity.rates", "disparity.values", "disparity.language")}
    significant.append(check(home, tmp_path, "new-day-and-late"))

    # A re-score of old turns of one day (a later classifier run flips their refusal): that day is recomputed.
    con = connect(home)
    try:
        old = con.execute("SELECT * FROM latest_scores WHERE date = $d ORDER BY turn_id LIMIT 40",
                          {"d": days[2]}).df()
    finally:
        con.close()
    flip = {"full_refusal": "compliance", "partial_refusal": "compliance"}
    old["refusal"] = [flip.get(x, "full_refusal") for x in old["refusal"]]
    old["scored_at"] = old["scored_at"] + pd.Timedelta(days=1)
    home.lake.append("scores", pa.Table.from_pandas(old[SCORES.schema.names], schema=SCORES.schema,
                                                    preserve_index=False))
    spy.clear()
    assert run_job(home, DISPARITY, now=NOW).status == "ok"
    assert totals(spy)["disparity.rates"]["recomputed"] == 1
    significant.append(check(home, tmp_path, "re-score"))

    assert any(significant)  # the verdicts compared include significant ones (fdr 0.5 on a small lake)
