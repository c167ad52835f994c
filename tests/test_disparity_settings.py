"""Changing a disparity setting recomputes the stored windows: no window keeps verdicts of the old settings."""
import datetime as dt
import json

from monitor.db import connect
from monitor.disparity.simulate import write_scored_turns
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS

DISPARITY = next(j for j in JOBS if j.name == "disparity")
D1 = dt.datetime(2026, 11, 1, 9)


def _home(root, toml):
    (root / "monitor.toml").write_text("[disparity]\ndetect_language = false\n" + toml)
    return Home.open(root)


def _latest(home):
    con = connect(home)
    try:
        rows = con.execute("SELECT segment, small_sample, details FROM metrics WHERE metric = 'refusal_disparity' "
                           "AND model IS NULL ORDER BY segment").fetchall()
    finally:
        con.close()
    return [(seg, small, json.loads(d)) for seg, small, d in rows]


def test_changing_min_n_or_reference_group_recomputes_stored_windows(tmp_path):
    root = tmp_path / "home"
    root.mkdir()
    home = _home(root, "min_n = 50\n")
    # 20 hi turns refusing 10, 20 en turns refusing 2.
    write_scored_turns(home, [{"turn_id": f"t{i}", "ts": D1, "model_version": "v1",
                               "attrs": {"language": "hi" if i % 2 else "en"}, "user_message": "x",
                               "assistant_message": "reply", "prompt_harm": "benign",
                               "refusal": "full_refusal" if (i % 2 and i % 4 == 1) or i in (0, 2) else "compliance"}
                              for i in range(40)], D1)
    assert run_job(home, DISPARITY, now=D1).rows > 0
    assert all(small and d["min_n"] == 50 and d["p_value"] is None for _, small, d in _latest(home))

    home = _home(root, "min_n = 10\n")
    assert run_job(home, DISPARITY, now=D1).rows > 0  # no new data, but the settings changed
    rows = _latest(home)
    assert [seg for seg, _, _ in rows] == ['{"language": "en"}', '{"language": "hi"}']
    for _, small, d in rows:
        assert not small and d["min_n"] == 10 and d["test"] == "chi2"
    hi = rows[1][2]
    # 10/20 vs 2/20: expected refusals 6 per row; chi2 = 4^2 * (2/6 + 2/14) = 7.619, p = 0.00577.
    assert abs(hi["p_value"] - 0.005772) < 1e-5

    home = _home(root, "min_n = 10\nreference_group = {language = \"en\"}\n")
    assert run_job(home, DISPARITY, now=D1).rows > 0
    assert {d["reference_label"] for _, _, d in _latest(home)} == {"language=en"}
    assert run_job(home, DISPARITY, now=D1).rows == 0  # the same settings again: nothing to recompute
