"""Alert rules as data: strict parsing (one fixture per failure mode), defaults, overrides and matching."""
from pathlib import Path

import pytest

from monitor.alerts.rules import DEFAULT_RULES, effective_rules, parse_rule
from monitor.config import load_config, parse_config
from monitor.errors import ConfigError
from monitor.notify.base import parse_channels

FIX = Path(__file__).parent / "fixtures" / "config"


@pytest.mark.parametrize(
    "fixture, words",
    [
        ("alerts_bad_severity.toml", ["alerts.rules[1].severity", "info, warning, critical", "'critcal'",
                                      "did you mean 'critical'"]),
        ("alerts_misspelt_key.toml", ["alerts.rules[0].max_ratoi", "did you mean 'max_ratio'"]),
        ("alerts_unknown_kind.toml", ["alerts.rules[0].kind", "'treshold'", "did you mean 'threshold'"]),
        ("alerts_missing_value.toml", ["alerts.rules[0].value", "required for kind 'threshold'"]),
        ("alerts_key_of_other_kind.toml", ["alerts.rules[0].alpha", "belongs to kind 'test'"]),
        ("alerts_wrong_type.toml", ["alerts.rules[0].value", "must be number", "'0.2'"]),
        ("alerts_bad_op.toml", ["alerts.rules[0].op", "> , >=".replace(" ,", ","), "'=>'"]),
        ("alerts_duplicate_name.toml", ["alerts.rules[1].name", "duplicates", "alerts.rules[0]"]),
        ("alerts_ratio_below_one.toml", ["alerts.rules[0].max_ratio", "must be > 1", "direction"]),
        ("alerts_missing_kind.toml", ["alerts.rules[0].kind", "is required"]),
        ("alerts_segment_and_any.toml", ["alerts.rules[0].any_segment", "conflicts"]),
        ("alerts_disable_unknown_default.toml", ["alerts.rules[0].name", "not a default rule",
                                                 "did you mean 'value_drift'"]),
        # pipeline-health rules (monitor/alerts/pipeline.py)
        ("alerts_disable_misspelt_no_data.toml", ["alerts.rules[0].name", "not a default rule",
                                                  "did you mean 'no_data'"]),
        ("alerts_no_data_bad_duration.toml", ["alerts.rules[0].max_silence", "cannot read duration '2 hours'",
                                              "30m, 2h"]),
        ("alerts_no_data_critical_before_silence.toml", ["alerts.rules[0].critical_after",
                                                         "longer than max_silence (6h)", "'3h'"]),
        ("alerts_pipeline_segment.toml", ["alerts.rules[0].segment", "does not apply to kind 'no_data'"]),
        ("alerts_pipeline_metric_as_threshold.toml", ["alerts.rules[0].metric", "pipeline-health rule",
                                                      'kind = "quarantine_share"']),
        ("alerts_job_failures_unknown_job.toml", ["alerts.rules[0].jobs", "'scor' matches no job",
                                                  "did you mean 'score'"]),
    ],
)
def test_bad_rule_is_refused_with_key_path(fixture, words):
    cfg = load_config(FIX, FIX / fixture)  # the core config accepts any list of tables; the rules module checks
    with pytest.raises(ConfigError) as exc:
        effective_rules(cfg)
    text = str(exc.value)
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"
    assert str(FIX / fixture) in text


@pytest.mark.parametrize(
    "fixture, words",
    [
        ("notify_unknown_type.toml", ["notify.channels[0].type", "'slak'", "did you mean 'slack'"]),
        ("notify_missing_url.toml", ["notify.channels[0].url", "required for a webhook channel"]),
        ("notify_email_misspelt.toml", ["notify.channels[0].pasword_env", "did you mean 'password_env'"]),
        ("notify_bad_security.toml", ["notify.channels[0].security", "starttls, ssl, none", "'tls'"]),
        ("notify_bad_min_severity.toml", ["notify.channels[0].min_severity", "'urgent'"]),
    ],
)
def test_bad_channel_is_refused_with_key_path(fixture, words):
    cfg = load_config(FIX, FIX / fixture)
    with pytest.raises(ConfigError) as exc:
        parse_channels(cfg.notify.channels, str(FIX / fixture))
    text = str(exc.value)
    for w in words:
        assert w in text, f"{w!r} not in {text!r}"


def test_defaults_parse_and_user_rules_override_and_disable():
    cfg = parse_config({"alerts": {"rules": [
        {"name": "value_drift", "enabled": False},
        {"name": "over_refusal_spike", "metric": "over_refusal_rate", "kind": "threshold", "op": ">",
         "value": 0.4, "severity": "critical"},
        {"name": "hi_under", "metric": "under_refusal_rate", "kind": "threshold", "op": ">=", "value": 0.1,
         "segment": {"language": "hi"}},
    ]}}, "monitor.toml")
    rules = {r.name: r for r in effective_rules(cfg)}
    assert "value_drift" not in rules
    assert rules["over_refusal_spike"].kind == "threshold" and rules["over_refusal_spike"].severity == "critical"
    assert "monitor.toml" in rules["over_refusal_spike"].source
    assert rules["disparity"].source.startswith("default")
    assert set(rules) == {"over_refusal_spike", "under_refusal_spike", "disparity", "hi_under", "no_data",
                          "job_failures", "job_stuck", "quarantine_share", "config_invalid"}
    cfg2 = parse_config({"alerts": {"use_default_rules": False}})
    assert effective_rules(cfg2) == []
    assert len(DEFAULT_RULES) == 9


def test_pipeline_defaults_switch_off_and_take_new_thresholds():
    cfg = parse_config({"alerts": {"rules": [
        {"name": "job_failures", "enabled": False},
        {"name": "no_data", "kind": "no_data", "max_silence": "6h", "clock": "ingest", "min_expected": 0},
    ]}}, "monitor.toml")
    rules = {r.name: r for r in effective_rules(cfg)}
    assert "job_failures" not in rules and rules["quarantine_share"].source.startswith("default")
    silence = rules["no_data"]
    assert (silence.metric, silence.params["max_silence"], silence.params["clock"]) == ("turn_freshness", "6h",
                                                                                        "ingest")
    assert silence.params["per_deployment"] is True and silence.params["critical_after"] is None
    assert "monitor.toml" in silence.source
    # `monitor alerts rules --json` shows both: which turns it watches, and where the rule came from
    assert silence.to_dict()["turn_source"] == "production" and "monitor.toml" in silence.to_dict()["source"]


def test_metric_stem_segment_and_model_matching():
    r = parse_rule({"name": "d", "metric": "disparity", "kind": "flag"}, "alerts.rules[0]", "t")
    assert r.matches_metric("over_refusal_disparity") and r.matches_metric("under_refusal_disparity")
    assert not r.matches_metric("over_refusal_rate")
    exact = parse_rule({"name": "r", "metric": "refusal_rate", "kind": "flag"}, "p", "t")
    assert exact.matches_metric("refusal_rate") and not exact.matches_metric("over_refusal_rate")
    glob = parse_rule({"name": "g", "metric": "*_refusal_rate", "kind": "flag"}, "p", "t")
    assert glob.matches_metric("under_refusal_rate") and not glob.matches_metric("refusal_rate")
    # No segment filter: all traffic only. "*" / any_segment: every segment. A table: that attribute.
    assert r.matches_segment({}) and not r.matches_segment({"language": "hi"})
    anyseg = parse_rule({"name": "a", "metric": "refusal_rate", "kind": "flag", "any_segment": True}, "p", "t")
    assert anyseg.matches_segment({"language": "hi"}) and anyseg.matches_segment({})
    hi = parse_rule({"name": "h", "metric": "refusal_rate", "kind": "flag", "segment": {"language": "hi"}}, "p", "t")
    assert hi.matches_segment({"language": "hi"}) and not hi.matches_segment({"language": "en"})
    assert not hi.matches_segment({"language": "hi", "region": "eu"})
    every_lang = parse_rule({"name": "l", "metric": "refusal_rate", "kind": "flag", "segment": {"language": "*"}}, "p", "t")
    assert every_lang.matches_segment({"language": "fr"}) and not every_lang.matches_segment({})
    m = parse_rule({"name": "m", "metric": "refusal_rate", "kind": "flag", "model": "a@1"}, "p", "t")
    assert m.matches_model("a@1") and not m.matches_model("b") and not m.matches_model(None)


@pytest.mark.parametrize("metric, hint", [
    ("refusal_rte", "did you mean 'refusal_rate'"),
    ("overrefusal_rate", "did you mean 'over_refusal_rate'"),
    ("zzz_*", "metrics: refusal_rate"),
])
def test_a_rule_on_a_metric_no_job_writes_is_refused(metric, hint):
    """A typo in a rule's metric would leave a risk unwatched with no sign of it: refused when the config is read."""
    with pytest.raises(ConfigError, match=r"alerts.rules\[0\].metric") as e:
        parse_rule({"name": "x", "metric": metric, "kind": "threshold", "op": ">", "value": 0.5},
                   "alerts.rules[0]", "monitor.toml")
    assert hint in str(e.value)


@pytest.mark.parametrize("metric", ["refusal_rate", "disparity", "drift", "probe_*", "*_refusal_rate", "value"])
def test_names_stems_and_globs_of_written_metrics_are_accepted(metric):
    parse_rule({"name": "x", "metric": metric, "kind": "flag"}, "alerts.rules[0]", "monitor.toml")
