"""The Refusals page on a real sample home (Streamlit AppTest): over- and under-refusal together, the drill-down,
the raw-and-corrected table and the classifier-quality table."""
import json

import pytest

from test_dashboard_pages import no_exception, open_page


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    from dashboards.sample import build_sample_home

    return str(build_sample_home(tmp_path_factory.mktemp("rf") / "home", n_turns=2500, days=14, seed=3).root)


def _titles(at) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


@pytest.mark.parametrize("metric, shown", [
    ("over_refusal_rate", ["Over-refusal", "Under-refusal"]),
    ("under_refusal_rate", ["Under-refusal", "Over-refusal"]),
    ("refusal_rate", ["Refusal"]),
])
def test_over_and_under_refusal_are_shown_together(monkeypatch, root, metric, shown):
    at = open_page(monkeypatch, root, "app_pages/refusals.py")
    at.selectbox(key="rf_metric").set_value(metric).run()
    no_exception(at)
    titles = [t for t in _titles(at) if " by " in t]
    assert [t.split(" rate")[0].split(" (")[0] for t in titles] == shown, titles


def test_drill_down_lists_the_refusals_of_the_window_not_a_filtered_page_of_them(monkeypatch, root):
    from monitor.db import connect
    from monitor.home import Home

    at = open_page(monkeypatch, root, "app_pages/refusals.py")
    no_exception(at)
    day = at.selectbox(key="rf_day").value
    assert at.selectbox(key="rf_kind").value == "refusals (full or partial)"
    assert at.selectbox(key="rf_harm").value == "benign"  # the page opens on over-refusal
    con = connect(Home.open(root))
    expected = con.execute(
        "SELECT count(*) FROM scored_turns WHERE CAST(ts AS DATE) = $d AND refusal <> 'compliance' "
        "AND prompt_harm = 'benign'", {"d": day}).fetchone()[0]
    con.close()
    table = next(d.value for d in at.dataframe if "assistant_message" in d.value.columns)
    assert (table["refusal"] != "compliance").all() and (table["prompt_harm"] == "benign").all()
    assert len(table) == min(expected, 100) and expected > 0


def test_corrected_table_names_the_deployment_and_flags_small_samples(monkeypatch, root):
    at = open_page(monkeypatch, root, "app_pages/refusals.py")
    table = next(d.value for d in at.dataframe if "error rates from" in d.value.columns)
    assert {"deployment", "small n", "note"} <= set(table.columns)
    assert not table.duplicated(subset=["model_label", "deployment", "segment_label"]).any()  # no look-alike rows
    assert set(table["small n"]) <= {"yes", ""}


def test_quality_table_flags_a_handful_of_labels(monkeypatch, root):
    from monitor.db import connect
    from monitor.home import Home
    from monitor.review import add_label

    home = Home.open(root)
    con = connect(home)
    tid = con.execute("SELECT turn_id FROM scored_turns LIMIT 1").fetchone()[0]
    con.close()
    add_label(home, tid, "Dee", refusal_label="full_refusal", prompt_label="harmful")
    at = open_page(monkeypatch, root, "app_pages/refusals.py")
    no_exception(at)
    quality = next(d.value for d in at.dataframe if "recall 95% CI" in d.value.columns)
    assert (quality["small n"] == "yes").all()
    assert any("small n" in str(cap.value) for cap in at.caption)


def test_quality_table_counts_only_random_sample_labels(monkeypatch, tmp_path):
    """Labels on turns picked because they looked wrong (an uncertain queue item, a targeted import, a search)
    must not measure the classifiers here either, as they do not in the corrected rates."""
    from dashboards.sample import build_sample_home
    from monitor.db import connect
    from monitor.review import add_label

    home = build_sample_home(tmp_path / "home", n_turns=600, days=4, seed=5, alerts=False)
    con = connect(home)
    ids = [r[0] for r in con.execute("SELECT turn_id FROM scored_turns WHERE refusal IS NOT NULL "
                                     "AND prompt_harm IS NOT NULL ORDER BY turn_id LIMIT 6").fetchall()]
    con.close()
    with home.state.tx() as c:
        c.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                  (ids[0], "uncertain_refusal", 0.9, "2026-11-20T00:00:00Z"))
    add_label(home, ids[0], "Dee", refusal_label="full_refusal")  # an uncertain queue item
    add_label(home, ids[1], "Dee", refusal_label="full_refusal", sample="targeted")  # from a search
    add_label(home, ids[1], "Eve", refusal_label="full_refusal", sample="random")  # the same turn: targeted still
    for t in ids[2:]:
        add_label(home, t, "Dee", refusal_label="compliance", sample="random")
    at = open_page(monkeypatch, str(home.root), "app_pages/refusals.py")
    no_exception(at)
    quality = next(d.value for d in at.dataframe if "recall 95% CI" in d.value.columns)
    assert list(quality["labelled turns"]) == [4]
    assert any(str(cap.value).startswith("3 label(s) on turns picked for a reason") for cap in at.caption)


def test_unscored_groups_show_their_estimate_from_reviewer_labels(monkeypatch, tmp_path):
    """A language whose replies the classifiers cannot read gets, next to the 'not in these rates' warning, its rate
    from random-sample reviewer labels: n, interval, small-n flag and the labels' period, said to be human labels."""
    from test_label_estimate import build_home

    home = build_home(tmp_path / "home")
    at = open_page(monkeypatch, str(home.root), "app_pages/refusals.py")
    at.selectbox(key="window").set_value("All time").run()  # the newest data is 2026-11-09
    at.selectbox(key="rf_metric").set_value("refusal_rate").run()
    at.radio(key="rf_by").set_value("segment").run()
    at.selectbox(key="rf_attr").select("language").run()
    no_exception(at)
    warn = [w.value for w in at.warning if w.value.startswith("Not in these rates")]
    assert warn and "language=es: 30 replies (100%)" in warn[0] and "random sample" in warn[0]
    assert any("Estimates from reviewer labels" in str(m.value) and "not the classifiers" in str(m.value)
               for m in at.markdown)
    table = next(d.value for d in at.dataframe if "labels from" in d.value.columns)
    assert list(table["group"]) == ["language=es"]  # hi's replies are scored; en has nothing unscored
    es = table.iloc[0]
    assert (es["n"], es["small n"], es["window"]) == (11, "yes", "2026-10-11")
    assert es["rate"] == pytest.approx(7 / 11) and es["ci_low"] == pytest.approx(0.353801, abs=2e-6)
    assert es["labels from"] == "2026-09-14 to 2026-10-11"
    assert any(str(c.value).startswith("From human labels, not the classifiers") for c in at.caption)
    # Over-refusal (the page's default) shows the over- and under-refusal estimates together.
    at.selectbox(key="rf_metric").set_value("over_refusal_rate").run()
    no_exception(at)
    table = next(d.value for d in at.dataframe if "labels from" in d.value.columns)
    got = {(g, e): (n, r) for g, e, n, r in zip(table["group"], table["estimate"], table["n"], table["rate"])}
    assert got[("language=es", "Under-refusal rate (reviewer labels)")] == (8, 0.125)
    assert got[("language=hi", "Over-refusal rate (reviewer labels)")] == (2, 1.0)
