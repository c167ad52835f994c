"""The Disparity page names the groups it cannot compare (every reply unscored) and shows, next to that notice,
their estimate from random-sample reviewer labels (Streamlit AppTest on a real lake, tests/test_label_estimate.py)."""
import pytest
from test_dashboard_pages import no_exception, open_page
from test_label_estimate import build_home


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return build_home(tmp_path_factory.mktemp("lep") / "home", disparity=True)


def test_disparity_page_shows_the_estimate_next_to_the_unmeasured_notice(home, monkeypatch):
    at = open_page(monkeypatch, home.root, "app_pages/disparity.py")
    at.selectbox(key="window").set_value("All time").run()  # the newest data is 2026-11-09
    no_exception(at)
    at.selectbox(key="dp_metric").set_value("refusal_disparity").run()
    at.selectbox(key="dp_window").set_value("2026-10-10").run()
    no_exception(at)
    warn = [w.value for w in at.warning if "Not in this comparison" in w.value]
    assert warn and "language=es: 20 replies (100%)" in warn[0] and "random sample" in warn[0]
    table = next(d.value for d in at.dataframe if "labels from" in d.value.columns)
    es = table[table["group"] == "language=es"].iloc[0]
    assert es["n"] == 11 and es["rate"] == pytest.approx(7 / 11) and es["small n"] == "yes"
    assert es["labels from"] == "2026-09-13 to 2026-10-10"
    assert any("human labels" in str(c.value) and "not" in str(c.value) for c in at.caption)
