"""Cross-check: per-group rates and differences from the disparity job equal fairlearn's MetricFrame."""
import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from fairlearn.metrics import MetricFrame, selection_rate

from monitor.db import connect
from monitor.disparity.simulate import load_pools, simulate_day, write_scored_turns
from monitor.home import Home
from monitor.jobs import run_job
from monitor.jobs.disparity import JOBS

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DAY = dt.datetime(2026, 10, 5)


@pytest.mark.parametrize("reference", [None, "en"])
def test_rates_and_gaps_match_fairlearn(tmp_path, reference):
    root = tmp_path / "home"
    root.mkdir()
    cfg = "[disparity]\ndetect_language = false\nmin_n = 20\n"
    if reference:
        cfg += f'reference_group = {{language = "{reference}"}}\n'
    (root / "monitor.toml").write_text(cfg)
    home = Home.open(root)
    pools = load_pools(DATA / "refusal" / "xstest_dev.jsonl")
    rng = np.random.default_rng(7)
    over = {"en": 0.1, "hi": 0.3, "es": 0.15, "fr": 0.12}
    rows = simulate_day(pools, rng, DAY, {"en": 300, "hi": 120, "es": 200, "fr": 80}, 0.35,
                        lambda g: over[g], lambda g: 0.2, "v1")
    write_scored_turns(home, rows, DAY)
    assert run_job(home, next(j for j in JOBS if j.name == "disparity"), now=DAY).status == "ok"

    con = connect(home)
    turns = con.execute("""SELECT s.value AS language, l.refusal IN ('full_refusal','partial_refusal') AS refused,
                                  l.prompt_harm FROM segments s JOIN latest_scores l USING (turn_id)
                           WHERE s.attribute = 'language'""").df()
    ours = con.execute("""SELECT metric, segment, value, details FROM metrics_log WHERE model IS NULL""").df()
    for metric, mask, y in [
        ("refusal_disparity", np.ones(len(turns), bool), turns["refused"]),
        ("over_refusal_disparity", turns["prompt_harm"] == "benign", turns["refused"]),
        ("under_refusal_disparity", turns["prompt_harm"] == "harmful", ~turns["refused"]),
    ]:
        sub = turns[mask]
        yy = y[mask].astype(int).to_numpy()
        mf = MetricFrame(metrics=selection_rate, y_true=yy, y_pred=yy, sensitive_features=sub["language"])
        mine = ours[ours["metric"] == metric]
        rates = {json.loads(s)["language"]: v for s, v in zip(mine["segment"], mine["value"])}
        assert rates == pytest.approx(mf.by_group.to_dict(), abs=1e-12)
        assert max(rates.values()) - min(rates.values()) == pytest.approx(mf.difference(method="between_groups"))
        assert min(rates.values()) / max(rates.values()) == pytest.approx(mf.ratio(method="between_groups"))
        details = {json.loads(s)["language"]: json.loads(d) for s, d in zip(mine["segment"], mine["details"])}
        for g, d in details.items():
            if reference:
                # Gap to the reference group = fairlearn's per-group rate difference.
                expected = None if g == reference else mf.by_group[g] - mf.by_group[reference]
            else:
                # Gap to the rest of traffic = the group's rate minus fairlearn's rate on all other groups.
                rest = sub["language"] != g
                expected = mf.by_group[g] - selection_rate(yy[rest.to_numpy()], yy[rest.to_numpy()])
            assert d["gap"] == (None if expected is None else pytest.approx(expected, abs=1e-12))
