"""The alerts job evaluates a changed series from its new metric rows and its tail alone when that is sure to give
what reading the whole log gives, and reads the log otherwise: each case below runs the job on one home and a full
evaluation on another (tests/test_alerts_incremental.py's Pair) and compares their state tables after every step,
and checks which way the job went, so a case that silently stops taking its path fails."""
import datetime as dt

import pyarrow as pa
import pytest

from monitor.alerts import engine
from test_alerts_engine import DAY0, rate_row
from test_alerts_incremental import DRIFT, JUMP, LEVEL, SPIKE, Pair, at, rows_for

PAIR_SEGMENT = {"language": "hi", "age_band": "18-24"}
# CUSUM series are always walked whole (read from the log), and windows leaving a short history make references
# change: both are left out here to see the new-rows path alone.
NO_CUSUM = [SPIKE, JUMP, LEVEL, DRIFT]
LONG = "[alerts]\nhistory_days = 60\n"


@pytest.fixture
def reads(monkeypatch):
    """The (metric, granularity, model, deployment) groups each evaluation read from the whole log."""
    seen: list[set] = []
    load = engine._load_series

    def spy(con, wanted):
        seen.append(set(wanted))
        return load(con, wanted)

    monkeypatch.setattr(engine, "_load_series", spy)
    return seen


def _started(tmp_path, rules=NO_CUSUM, days=8):
    p = Pair(tmp_path, rules=rules, history=LONG)
    for day in range(days):
        p.write(rows_for(day))
    assert p.run(at(days - 1, 20))["full"] is True
    return p


def _write_stamped(p, rows, computed_at, run_id):
    """Rows written to both homes with the given computation time (Pair.write stamps them newer than all before)."""
    for r in rows:
        r["computed_at"], r["run_id"] = computed_at, run_id
    for home in (p.inc, p.full):
        home.lake.append("metrics_log", pa.Table.from_pylist(rows))


def test_new_days_and_recomputed_today_read_no_older_file(tmp_path, reads):
    p = _started(tmp_path)
    reads.clear()
    # Today's first rows, then today recomputed with spikes (test and relative rules pool remembered references,
    # threshold and flag rules carry their breach counts), then the next day with the spike going on.
    p.write(rows_for(8))
    p.run(at(8))
    p.write(rows_for(8, spike=("m1",), under=0.3, drift=("m2",)))
    p.run(at(8, 3))
    p.write(rows_for(9, spike=("m1",), under=0.5, drift=("m2",)))
    state = p.run(at(9))
    assert state["full"] is False and state["evaluated"] > 0
    assert reads and all(not wanted for wanted in reads), reads
    fired = {a["rule"] for a in p.inc.state.query("SELECT rule FROM alerts")}
    assert {"spike", "jump", "level", "drift"} <= fired
    # Two days rewritten in one commit: yesterday's change reaches further back than any tail keeps (a reference
    # spans twice reference_windows, a breach count the window before), so those series are read from the log.
    p.write(rows_for(8, spike=("m2",)) + rows_for(9, spike=("m1",), under=0.1))
    p.run(at(9, 4))
    assert reads[-1]
    # A series seen for the first time had no window before: its new rows are all it has.
    reads.clear()
    p.write(rows_for(9, models=("m3",), drift=("m3",)))
    p.run(at(9, 5))
    assert reads == [set()]
    assert any(a["model"] == "m3" for a in p.inc.state.query("SELECT model FROM alerts"))


def test_late_window_without_new_rows_after_it_reads_the_log(tmp_path, reads):
    p = _started(tmp_path)
    p.write(rows_for(8))
    p.run(at(8))
    reads.clear()
    # Day 6 recomputed alone: day 7 and 8 have no new row, so their rows come from the log.
    p.write(rows_for(6, spike=("m2",), under=0.4))
    p.run(at(8, 2))
    assert any(("over_refusal_rate", "day", "m2", None) in wanted for wanted in reads)


def test_an_older_computation_committed_late_reads_the_log(tmp_path, reads):
    p = _started(tmp_path)
    p.write(rows_for(8, spike=("m1",)))
    p.run(at(8))
    reads.clear()
    # A recomputation of day 8 that started before the last one commits after it: it is not the latest row, the
    # spike above stays the latest; only the log tells which is which.
    _write_stamped(p, rows_for(8), DAY0 + dt.timedelta(days=300), "r-late")
    p.run(at(8, 2))
    assert any(wanted for wanted in reads)
    # A computation time equal to an evaluated row's: the run id decides ("r0" < "r11"), only the log tells.
    p.write(rows_for(9))
    p.run(at(9, 1))
    reads.clear()
    _write_stamped(p, rows_for(9, spike=("m2",)), DAY0 + dt.timedelta(days=400, seconds=p.version), "r0")
    p.run(at(9, 2))
    assert any(wanted for wanted in reads)
    # Both versions of a window new since the last run: the new rows alone rank them as the log would.
    reads.clear()
    p.write(rows_for(10, spike=("m1",)))
    _write_stamped(p, rows_for(10), DAY0 + dt.timedelta(days=400, seconds=p.version), "r0")
    p.run(at(10, 1))
    assert reads == [set()]


def test_a_segment_spelt_another_way_reads_the_log(tmp_path, reads):
    p = Pair(tmp_path, rules=NO_CUSUM, history=LONG)
    swapped = dict(reversed(list(PAIR_SEGMENT.items())))
    for day in range(8):
        p.write(rows_for(day) + [rate_row(day, 12, 200, model="m1", segment=PAIR_SEGMENT)])
    p.run(at(7, 20))
    reads.clear()
    # Today's window of the pair written with its keys the other way round: one series, two metric keys whose
    # latest rows are both in the history, the older one in a file the new rows do not cover.
    p.write(rows_for(8) + [rate_row(8, 12, 200, model="m1", segment=PAIR_SEGMENT)])
    p.run(at(8))
    p.write([rate_row(8, 70, 200, model="m1", segment=swapped)])
    p.run(at(8, 2))
    assert reads[-1] == {("over_refusal_rate", "day", "m1", None)}


def test_compaction_that_merges_new_rows_with_old_ones_reads_the_log(tmp_path, reads):
    p = _started(tmp_path)
    p.write(rows_for(8, spike=("m1",)))
    p.run(at(8))
    reads.clear()
    # New rows compacted together with old ones: the merged file is new and holds old rows, so the log is read.
    p.write(rows_for(8, spike=("m2",)))
    merged = []
    p.act(lambda home: merged.append(home.lake.compact("metrics_log", min_files=2)))
    assert merged[0] >= 10
    state = p.run(at(8, 2))
    assert state["full"] is False and reads[-1]
    # Once evaluated, the merged file is old like the files it replaced: the next new rows alone are new.
    p.write(rows_for(9, spike=("m1",)))
    p.run(at(9))
    assert reads[-1] == set()
