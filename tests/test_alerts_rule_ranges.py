"""Rule settings that would make a rule never fire, or always escalate, are refused (or, for a default, fitted)."""
import datetime as dt

import pytest

from monitor.alerts.engine import evaluate
from monitor.alerts.rules import parse_rule
from monitor.errors import ConfigError
from test_alerts_engine import DAY0, make_home, rate_row, rules, write

REL = {"name": "rel", "metric": "over_refusal_rate", "kind": "relative", "min_reference_n": 100, "max_ratio": 2.0}
THR = {"name": "t", "metric": "over_refusal_rate", "kind": "threshold", "op": ">", "value": 0.2}


@pytest.mark.parametrize("rule, words", [
    ({**REL, "reference_windows": 2, "min_reference_windows": 4},
     "'alerts.rules[0].min_reference_windows' must be at most reference_windows (2), got 4: the rule could never"),
    ({**REL, "kind": "test", "max_ratio": None, "reference_windows": 1, "min_reference_windows": 2},
     "min_reference_windows' must be at most reference_windows (1)"),
    ({**THR, "critical_value": 0.05}, "'alerts.rules[0].critical_value' must be above value (0.2) for op '>', got 0.05"),
    ({**THR, "op": "<", "critical_value": 0.3}, "must be below value (0.2) for op '<', got 0.3"),
    ({**THR, "critical_value": 0.2}, "every breach would be critical"),
])
def test_setting_that_defeats_the_rule_is_refused(rule, words):
    rule = {k: v for k, v in rule.items() if v is not None}
    with pytest.raises(ConfigError) as e:
        parse_rule(rule, "alerts.rules[0]", "monitor.toml")
    assert words in str(e.value)


def test_a_short_reference_fits_the_default_minimum_and_fires(tmp_path):
    home = make_home(tmp_path, [])
    write(home, [rate_row(i, 10, 100) for i in range(6)] + [rate_row(6, 40, 100)])
    [rule] = rules({**REL, "reference_windows": 2})
    assert rule.params["min_reference_windows"] == 2
    [a] = evaluate(home, DAY0 + dt.timedelta(days=7, hours=1), rules=[rule])
    assert a.window_start == DAY0 + dt.timedelta(days=6) and a.reference == pytest.approx(0.1)
