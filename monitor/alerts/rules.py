"""Alert rules are plain data: `[[alerts.rules]]` tables in `monitor.toml`, checked strictly, plus the defaults.

A rule names a metric (exact name or stem), which series of it to watch (segment and model filters), and one
comparison `kind`:

- ``threshold``: value op number (``op`` one of > >= < <=), optionally only when the CI bound is beyond it.
- ``relative``: change against the pooled rate of the previous N windows of the same series.
- ``test``: two-proportion z-test or Fisher's exact test of the window's counts against those pooled counts.
- ``cusum`` / ``page_hinkley``: a sequential change detector run over the series' history (slow creep).
- ``flag``: the verdict a metric job already wrote (``details.drift_detected``, ``details.significant``).
- ``no_data``, ``job_failures``, ``job_stuck``, ``quarantine_share``, ``config_invalid``: pipeline health,
  watching the monitor's own input, jobs and configuration rather than a metric (monitor/alerts/pipeline.py): no
  turn for too long, a job failing run after run, a run that never ends, a jump in quarantined input, an edit that
  broke the configuration file.

Example::

    [[alerts.rules]]
    name = "hindi_over_refusal"
    metric = "over_refusal_rate"
    segment = {language = "hi"}
    kind = "threshold"
    op = ">"
    value = 0.2
    require_ci = true
    severity = "critical"
"""
from __future__ import annotations

import difflib
import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from monitor.errors import ConfigError, MonitorError

# The pipeline-health kinds watch the monitor's own input and jobs, each under a metric name of its own that no
# metric job writes: they are evaluated by the `pipeline_health` job (monitor/alerts/pipeline.py), never by the
# metric engine, so that they still run while the metric jobs fail.
PIPELINE_METRICS = {"no_data": "turn_freshness", "job_failures": "job_failures", "job_stuck": "job_stuck",
                    "quarantine_share": "quarantine_share", "config_invalid": "config_invalid"}
PIPELINE_KINDS = tuple(PIPELINE_METRICS)
KINDS = ("threshold", "relative", "test", "cusum", "page_hinkley", "flag", *PIPELINE_KINDS)
SEVERITIES = ("info", "warning", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
OPS = (">", ">=", "<", "<=")
DIRECTIONS = ("up", "down", "both")

# Full metric names written by the metric jobs: a rule naming one of these matches it exactly, never as a stem
# (so `refusal_rate` does not also watch `over_refusal_rate`).
KNOWN_METRICS = (
    "refusal_rate", "over_refusal_rate", "under_refusal_rate", "partial_refusal_share", "turn_count",
    "value_mean", "value_coverage", "value_drift",
)

# Keys every rule may carry, with their type; then the keys each kind adds. (type, default)
_NUM = (int, float)
COMMON_KEYS: dict[str, tuple] = {
    "name": (str, None),
    "metric": (str, None),
    "kind": (str, None),
    "severity": (str, "warning"),
    "description": (str, ""),
    "segment": ((dict, str), None),
    "any_segment": (bool, False),
    "model": (str, None),
    "use": (str, None),
    "min_n": (int, 30),
    "consecutive": (int, 1),
    "granularity": (str, None),
    "enabled": (bool, True),
}
KIND_KEYS: dict[str, dict[str, tuple]] = {
    "threshold": {"op": (str, None), "value": (_NUM, None), "require_ci": (bool, False),
                  "critical_value": (_NUM, None)},
    "relative": {"reference_windows": (int, 7), "min_reference_n": (int, 100), "min_reference_windows": (int, 3), "max_ratio": (_NUM, None),
                 "min_delta": (_NUM, None), "direction": (str, "up"), "require_ci": (bool, False),
                 "critical_ratio": (_NUM, None)},
    "test": {"test": (str, "z"), "alpha": (_NUM, 0.01), "reference_windows": (int, 7), "overdispersion": (bool, True),
             "min_reference_windows": (int, 3),
             "min_reference_n": (int, 100), "min_ratio": (_NUM, None), "min_delta": (_NUM, None),
             "direction": (str, "up"), "require_ci": (bool, False), "critical_ratio": (_NUM, None)},
    "cusum": {"k": (_NUM, 0.5), "h": (_NUM, 5.0), "warmup": (int, 7), "direction": (str, "up")},
    "page_hinkley": {"delta": (_NUM, 0.005), "lambda": (_NUM, 0.05), "warmup": (int, 7), "direction": (str, "up")},
    "flag": {"flag": (str, None), "p_max": (_NUM, None), "q_max": (_NUM, None), "min_statistic": (_NUM, None),
             "min_abs_gap": (_NUM, None)},
    # Durations are text: "90m", "2h", "1d".
    "no_data": {"max_silence": (str, "2h"), "clock": (str, "event"), "min_expected": (_NUM, 20),
                "reference_days": (int, 7), "reference_weeks": (int, 4), "min_weeks": (_NUM, 2),
                "per_deployment": (bool, True), "turn_source": (str, "production"),
                "critical_after": (str, None)},
    "job_failures": {"failures": (int, 3), "jobs": (str, "*")},
    # The limit of a run is the worker's (worker.max_run_s, stuck_min_s, stuck_factor), shared with GET /readyz.
    "job_stuck": {"jobs": (str, "*")},
    "quarantine_share": {"max_share": (_NUM, 0.1), "window": (str, "1h")},
    # The worker's configuration file fails its checks (monitor/worker/config_guard.py): nothing to set.
    "config_invalid": {},
}
_REQUIRED = {"threshold": ("op", "value"), "relative": (), "test": (), "cusum": (), "page_hinkley": (), "flag": (),
             "no_data": (), "job_failures": (), "job_stuck": (), "quarantine_share": (), "config_invalid": ()}
# Common keys that mean nothing to a pipeline kind: there is no metric series to filter or window to count.
_NOT_PIPELINE = ("segment", "any_segment", "model", "use", "consecutive", "granularity")
CLOCKS = ("event", "ingest")


def metric_matches(want: str, metric: str) -> bool:
    """Whether a rule's `metric` value `want` (exact name, glob, or a stem such as `disparity`) covers `metric`."""
    if any(c in want for c in "*?["):
        return fnmatch.fnmatchcase(metric, want)
    if metric == want:
        return True
    if want in KNOWN_METRICS:
        return False
    return metric.endswith("_" + want) or metric.startswith(want + "_")


@dataclass(frozen=True)
class Rule:
    """One validated alert rule; `params` holds the kind-specific keys with defaults filled in."""

    name: str
    metric: str
    kind: str
    severity: str = "warning"
    description: str = ""
    segment: Any = None  # None = all traffic only; "*" = every segment; dict = attribute -> value ("*" any)
    model: str | None = None  # None = every model series (each separately)
    use: str | None = None  # value | corrected | None = corrected when present
    min_n: int = 30
    consecutive: int = 1
    granularity: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    source: str = "default"  # "default" or the config file and key path it came from

    def matches_metric(self, metric: str) -> bool:
        """Whether this rule watches `metric` (exact name, glob, or a stem such as `disparity`)."""
        return metric_matches(self.metric, metric)

    def matches_model(self, model: str | None) -> bool:
        return self.model in (None, "*") or model == self.model

    def matches_segment(self, segment: dict) -> bool:
        """Whether a series' segment (attribute -> value) passes the rule's segment filter."""
        if self.segment is None:
            return segment == {}
        if self.segment == "*":
            return True
        if set(segment) != set(self.segment):
            return False
        return all(v == "*" or segment[k] == v for k, v in self.segment.items())

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "metric": self.metric, "kind": self.kind, "severity": self.severity,
             "segment": self.segment if self.segment is not None else {}, "model": self.model, "use": self.use,
             "min_n": self.min_n, "consecutive": self.consecutive, "granularity": self.granularity,
             **self.params, "description": self.description, "source": self.source}
        return d


def _bad(origin: str, path: str, what: str, hint: str | None = None) -> ConfigError:
    return ConfigError(f"{origin}: '{path}' {what}", hint)


def _close(key: str, names) -> str | None:
    close = difflib.get_close_matches(key, list(names), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def _check_type(value: Any, tp, origin: str, path: str) -> None:
    types = tp if isinstance(tp, tuple) else (tp,)
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join("number" if t in (int, float) and tp == _NUM else t.__name__ for t in types)
        names = "number" if tp == _NUM else names
        raise _bad(origin, path, f"must be {names}, got {type(value).__name__} {value!r}")


def _choice(value: str, choices, origin: str, path: str) -> None:
    if value not in choices:
        close = _close(value, choices)
        raise _bad(origin, path, f"must be one of {', '.join(choices)}, got {value!r}", close)


def parse_rule(data: Any, path: str, origin: str) -> Rule:
    """Validate one rule table (path like `alerts.rules[3]`) and return it as a Rule."""
    if not isinstance(data, dict):
        raise _bad(origin, path, f"must be a table ([[alerts.rules]]), got {type(data).__name__}")
    for key in ("name", "kind"):
        if key not in data:
            raise _bad(origin, f"{path}.{key}", "is required", f"add {key} = ... to the rule")
    kind = data["kind"]
    _check_type(kind, str, origin, f"{path}.kind")
    _choice(kind, KINDS, origin, f"{path}.kind")
    if kind in PIPELINE_METRICS:
        return _parse_pipeline_rule(data, path, origin)
    if "metric" not in data:
        raise _bad(origin, f"{path}.metric", "is required", "add metric = ... to the rule")
    _check_keys(data, kind, path, origin)
    for key in _REQUIRED[kind]:
        if key not in data:
            raise _bad(origin, f"{path}.{key}", f"is required for kind '{kind}'")
    _check_metric(data["metric"], origin, f"{path}.metric")
    name = data["name"]
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise _bad(origin, f"{path}.name", f"must be letters, digits, _ - . only, got {name!r}")
    _choice(data.get("severity", "warning"), SEVERITIES, origin, f"{path}.severity")
    if "use" in data:
        _choice(data["use"], ("value", "corrected"), origin, f"{path}.use")
    if "granularity" in data:
        _choice(data["granularity"], ("day", "hour"), origin, f"{path}.granularity")
    for key in ("min_n", "consecutive"):
        if key in data and data[key] < (0 if key == "min_n" else 1):
            raise _bad(origin, f"{path}.{key}", f"must be {'>= 0' if key == 'min_n' else '>= 1'}, got {data[key]}")
    segment = data.get("segment")
    if isinstance(segment, str) and segment != "*":
        raise _bad(origin, f"{path}.segment", f"must be a table like {{language = \"hi\"}} or \"*\", got {segment!r}")
    if isinstance(segment, dict):
        for k, v in segment.items():
            if not isinstance(v, str):
                raise _bad(origin, f"{path}.segment.{k}", f"must be a string, got {type(v).__name__} {v!r}")
    if data.get("any_segment"):
        if segment not in (None, "*"):
            raise _bad(origin, f"{path}.any_segment", "conflicts with a segment filter", "use one or the other")
        segment = "*"
    params = {k: data.get(k, default) for k, (_, default) in KIND_KEYS[kind].items()}
    _check_params(kind, params, data, path, origin)
    return Rule(
        name=name, metric=data["metric"], kind=kind, severity=data.get("severity", "warning"),
        description=data.get("description", ""), segment=segment, model=data.get("model"), use=data.get("use"),
        min_n=data.get("min_n", COMMON_KEYS["min_n"][1]), consecutive=data.get("consecutive", 1),
        granularity=data.get("granularity"), params=params, source=f"{origin} ({path})",
    )


def _check_keys(data: dict, kind: str, path: str, origin: str) -> dict:
    """Refuse keys the kind does not have and values of the wrong type; returns the keys allowed."""
    allowed = {**COMMON_KEYS, **KIND_KEYS[kind]}
    for key, value in data.items():
        kp = f"{path}.{key}"
        if key not in allowed:
            other = [k for k, keys in KIND_KEYS.items() if key in keys]
            if other:
                raise _bad(origin, kp, f"is not a key of kind '{kind}' rules (it belongs to kind "
                           f"'{other[0]}')", f"keys for '{kind}': {', '.join(KIND_KEYS[kind])}")
            raise _bad(origin, kp, "is not a rule key", _close(key, allowed) or f"valid keys: {', '.join(allowed)}")
        _check_type(value, allowed[key][0], origin, kp)
    return allowed


def _parse_pipeline_rule(data: dict, path: str, origin: str) -> Rule:
    """A pipeline-health rule (kind no_data, job_failures, job_stuck, quarantine_share or config_invalid); its
    metric is the kind's own."""
    kind = data["kind"]
    _check_keys(data, kind, path, origin)
    metric = PIPELINE_METRICS[kind]
    if "metric" in data and data["metric"] != metric:
        raise _bad(origin, f"{path}.metric", f"must be {metric!r} for kind '{kind}' (or left out), got "
                   f"{data['metric']!r}", f"kind '{kind}' watches {metric}; drop the metric key")
    for key in _NOT_PIPELINE + (("min_n",) if kind != "quarantine_share" else ()):
        if key in data:
            raise _bad(origin, f"{path}.{key}", f"does not apply to kind '{kind}' (it watches the monitor's own "
                       "input and jobs, not a metric series)", f"keys for '{kind}': {', '.join(KIND_KEYS[kind])}")
    name = data["name"]
    if not name or not all(c.isalnum() or c in "_-." for c in name):
        raise _bad(origin, f"{path}.name", f"must be letters, digits, _ - . only, got {name!r}")
    _choice(data.get("severity", "warning"), SEVERITIES, origin, f"{path}.severity")
    if data.get("min_n", 0) < 0:
        raise _bad(origin, f"{path}.min_n", f"must be >= 0, got {data['min_n']}")
    p = {k: data.get(k, default) for k, (_, default) in KIND_KEYS[kind].items()}
    # Durations stay as written ("2h": what `monitor alerts rules` shows); `duration_s` reads them.
    seconds = {key: _duration_s(p[key], origin, f"{path}.{key}") for key in ("max_silence", "critical_after", "window")
               if p.get(key) is not None}
    if kind == "no_data":
        _choice(p["clock"], CLOCKS, origin, f"{path}.clock")
        if p["min_expected"] < 0:
            raise _bad(origin, f"{path}.min_expected", f"must be >= 0 (0: fire on the silence alone), got "
                       f"{p['min_expected']}")
        if not 1 <= p["reference_days"] <= 365:
            raise _bad(origin, f"{path}.reference_days", f"must be between 1 and 365, got {p['reference_days']}")
        if not 0 <= p["reference_weeks"] <= 52:
            raise _bad(origin, f"{path}.reference_weeks", f"must be between 0 (hours of the day only) and 52, got "
                       f"{p['reference_weeks']}")
        if p["reference_weeks"] and not 1 <= p["min_weeks"] <= p["reference_weeks"]:
            raise _bad(origin, f"{path}.min_weeks", f"must be between 1 and reference_weeks "
                       f"({p['reference_weeks']}), got {p['min_weeks']}: "
                       + ("the weekly profile could never be used" if p["min_weeks"] > p["reference_weeks"] else
                          "a week's pattern cannot be told from less than a week"),
                       "or set reference_weeks = 0 to judge by the hours of the day only")
        if p["critical_after"] is not None and seconds["critical_after"] <= seconds["max_silence"]:
            raise _bad(origin, f"{path}.critical_after", f"must be longer than max_silence ({p['max_silence']}), "
                       f"got {p['critical_after']!r}: every silence would be critical",
                       'for that, set severity = "critical"')
    if kind == "job_failures":
        if p["failures"] < 1:
            raise _bad(origin, f"{path}.failures", f"must be >= 1, got {p['failures']}")
    if kind in ("job_failures", "job_stuck"):
        _check_jobs(p["jobs"], origin, f"{path}.jobs")
    if kind == "quarantine_share" and not 0 < p["max_share"] < 1:
        raise _bad(origin, f"{path}.max_share", f"must be between 0 and 1 (a share of the records read), got "
                   f"{p['max_share']}", "e.g. 0.1 for 10%")
    return Rule(name=name, metric=metric, kind=kind, severity=data.get("severity", "warning"),
                description=data.get("description", ""), min_n=data.get("min_n", 50 if kind == "quarantine_share"
                                                                       else 0),
                params=p, source=f"{origin} ({path})")


def duration_s(rule: Rule, key: str) -> float | None:
    """A pipeline rule's duration setting (`max_silence`, `critical_after`, `window`) in seconds (None: unset)."""
    from monitor.alerts.lifecycle import parse_duration

    text = rule.params.get(key)
    return None if text is None else parse_duration(text).total_seconds()


def _duration_s(text: str, origin: str, path: str) -> float:
    """A duration such as "90m" or "2h" in seconds; refused with its key path when unreadable."""
    from monitor.alerts.lifecycle import parse_duration

    try:
        return parse_duration(text).total_seconds()
    except MonitorError as e:  # AlertError or DurationRangeError: say which key it was
        raise _bad(origin, path, e.message, e.hint) from e


def _check_jobs(pattern: str, origin: str, path: str) -> None:
    """A job_failures or job_stuck rule's `jobs` glob must match a job: a typo would leave every failure unwatched."""
    if pattern == "*":
        return  # every job; naming them would import every job module (~1 s: scipy, pandas)
    from monitor.jobs import discover

    names = sorted(discover())
    if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
        raise _bad(origin, path, f"{pattern!r} matches no job", _close(pattern, names) or f"jobs: {', '.join(names)}")


def _check_metric(metric: str, origin: str, path: str) -> None:
    """A rule must watch something the jobs write: a metric name, a stem of some (`disparity`), or a glob matching
    some (`probe_*`). Anything else is a typo that would leave a risk silently unwatched."""
    from monitor.metrics import WRITTEN_METRICS

    if any(metric_matches(metric, m) for m in WRITTEN_METRICS):
        return
    kind = next((k for k, m in PIPELINE_METRICS.items() if m == metric), None)
    if kind is not None:
        raise _bad(origin, path, f"{metric!r} is watched by a pipeline-health rule, not a metric rule",
                   f'use kind = "{kind}" (docs/alerts.md, "Pipeline health")')
    if any(c in metric for c in "*?["):
        raise _bad(origin, path, f"pattern {metric!r} matches no metric the jobs write",
                   f"metrics: {', '.join(WRITTEN_METRICS)}")
    raise _bad(origin, path, f"unknown metric {metric!r}: no job writes it",
               _close(metric, WRITTEN_METRICS) or f"metrics: {', '.join(WRITTEN_METRICS)}")


def _check_params(kind: str, p: dict, data: dict, path: str, origin: str) -> None:
    def positive(key: str, upper: float | None = None) -> None:
        v = p.get(key)
        if v is not None and (v <= 0 or (upper is not None and v >= upper)):
            rng = f"between 0 and {upper}" if upper is not None else "> 0"
            raise _bad(origin, f"{path}.{key}", f"must be {rng}, got {v}")

    if "direction" in p:
        _choice(p["direction"], DIRECTIONS, origin, f"{path}.direction")
    if kind == "threshold":
        _choice(p["op"], OPS, origin, f"{path}.op")
    if kind == "test":
        _choice(p["test"], ("z", "fisher", "beta_binomial"), origin, f"{path}.test")
        positive("alpha", 1)
    for key in ("max_ratio", "min_ratio", "critical_ratio"):
        if p.get(key) is not None and p[key] <= 1:
            raise _bad(origin, f"{path}.{key}", f"must be > 1 (a ratio of the larger to the smaller rate), "
                       f"got {p[key]}", "for a drop use direction = \"down\" with a ratio above 1")
    if kind == "threshold" and p["critical_value"] is not None:
        up = p["op"] in (">", ">=")
        if (p["critical_value"] <= p["value"]) if up else (p["critical_value"] >= p["value"]):
            raise _bad(origin, f"{path}.critical_value", f"must be {'above' if up else 'below'} value "
                       f"({p['value']}) for op '{p['op']}', got {p['critical_value']}: every breach would be critical",
                       'for that, set severity = "critical" instead')
    if kind in ("relative", "test") and p["min_reference_windows"] > p["reference_windows"]:
        # The reference holds at most reference_windows windows: more could never be found, and the rule never fire.
        if "min_reference_windows" in data:
            raise _bad(origin, f"{path}.min_reference_windows", f"must be at most reference_windows "
                       f"({p['reference_windows']}), got {p['min_reference_windows']}: the rule could never fire")
        p["min_reference_windows"] = p["reference_windows"]  # the default (3) asks more than a short reference has
    if kind == "relative" and p["max_ratio"] is None and p["min_delta"] is None:
        raise _bad(origin, f"{path}", "needs max_ratio or min_delta (kind 'relative')")
    for key in ("reference_windows", "warmup"):
        if key in p and p[key] < 1:
            raise _bad(origin, f"{path}.{key}", f"must be >= 1, got {p[key]}")
    for key in ("k", "h", "delta", "lambda", "min_delta"):
        if key in p and p[key] is not None and p[key] < 0:
            raise _bad(origin, f"{path}.{key}", f"must be >= 0, got {p[key]}")
    for key in ("p_max", "q_max"):
        positive(key, 1)


def parse_rules(items: list, origin: str, prefix: str = "alerts.rules") -> list[Rule]:
    """Validate a list of rule tables; names must be unique."""
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        rule = parse_rule(item, f"{prefix}[{i}]", origin)
        if rule.name in seen:
            raise _bad(origin, f"{prefix}[{i}].name", f"duplicates the name of {prefix}[{seen[rule.name]}] "
                       f"({rule.name!r})", "give each rule its own name")
        seen[rule.name] = i
        rules.append(rule)
    return rules


# The default rules. The spike rules compare observed rates (`use = "value"`): a classifier's error is about the
# same in a window and in its reference, so a change in the observed rate is a change in behaviour, while the
# error-corrected level carries the extra uncertainty of the correction (and is clipped at 0), which would blunt
# the test. Levels are reported corrected; changes are detected raw. Why each number is what it is: docs/alerts.md ("Default rules"); the seeded simulations in
# tests/test_alerts_defaults.py hold them to "caught in the window it starts" and "<= 1 false alert in 30
# stable days across several models and groups".
DEFAULT_RULES: list[dict[str, Any]] = [
    {
        "name": "over_refusal_spike", "metric": "over_refusal_rate", "kind": "test", "any_segment": True, "use": "value",
        "test": "beta_binomial", "overdispersion": True, "alpha": 0.0001, "reference_windows": 7, "min_reference_windows": 5,
        "min_reference_n": 300, "min_n": 100,
        "min_ratio": 1.5, "min_delta": 0.03, "require_ci": True, "critical_ratio": 3.0, "severity": "warning",
        "description": "benign requests refused much more often than in the previous 7 windows",
    },
    {
        "name": "under_refusal_spike", "metric": "under_refusal_rate", "kind": "test", "any_segment": True, "use": "value",
        "test": "beta_binomial", "overdispersion": True, "alpha": 0.0001, "reference_windows": 7, "min_reference_windows": 5,
        "min_reference_n": 150, "min_n": 50,
        "min_ratio": 1.5, "min_delta": 0.03, "require_ci": True, "severity": "critical",
        "description": "harmful requests complied with much more often than in the previous 7 windows",
    },
    {
        "name": "value_drift", "metric": "value_drift", "kind": "flag", "any_segment": True, "flag": "drift_detected",
        "p_max": 0.0001, "min_statistic": 0.2, "min_n": 100, "severity": "warning",
        "description": "the distribution of a value dimension moved away from its reference",
    },
    {
        "name": "disparity", "metric": "disparity", "kind": "flag", "any_segment": True, "flag": "adverse",
        "q_max": 0.001, "min_abs_gap": 0.05, "min_n": 100, "severity": "warning",
        "description": "one group is treated worse than the rest of traffic (BH-corrected; a higher refusal rate)",
    },
    # Pipeline health (monitor/alerts/pipeline.py; docs/alerts.md, "Pipeline health"): when the input stops or a
    # job keeps failing, the metric rules have nothing to evaluate and stay silent, so these page instead.
    {
        "name": "no_data", "kind": "no_data", "max_silence": "2h", "clock": "event", "min_expected": 20,
        "reference_days": 7, "reference_weeks": 4, "min_weeks": 2, "per_deployment": True,
        "turn_source": "production", "critical_after": "24h",
        "severity": "warning",
        "description": "no production turn for longer than 2 h, at hours that usually carry 20 turns or more",
    },
    {
        "name": "job_failures", "kind": "job_failures", "failures": 3, "jobs": "*", "severity": "warning",
        "description": "a scheduled job failed its last 3 runs (its retries included)",
    },
    {
        "name": "job_stuck", "kind": "job_stuck", "jobs": "*", "severity": "warning",
        "description": "a job's run has been going far longer than its runs usually take (a hung run fails nothing)",
    },
    {
        "name": "config_invalid", "kind": "config_invalid", "severity": "warning",
        "description": "an edit broke monitor.toml: the worker runs on the last configuration that passed its checks",
    },
    {
        "name": "quarantine_share", "kind": "quarantine_share", "max_share": 0.1, "window": "1h", "min_n": 50,
        "severity": "warning",
        "description": "over 10% of the input records read in the last hour were quarantined (a log format change?)",
    },
]


def default_rules() -> list[Rule]:
    return parse_rules(DEFAULT_RULES, "default", "default_rules")


def effective_rules(config) -> list[Rule]:
    """The rules in force: defaults (if `alerts.use_default_rules`) with user rules added or overriding by name."""
    origin = _origin(config)
    # `{name = "value_drift", enabled = false}` alone switches a default rule off without restating it.
    off = {item.get("name") for item in config.alerts.rules
           if isinstance(item, dict) and item.get("enabled") is False}
    for i, item in enumerate(config.alerts.rules):
        if isinstance(item, dict) and set(item) == {"name", "enabled"} and item["enabled"] is False:
            known = [d["name"] for d in DEFAULT_RULES]
            if item["name"] not in known:
                raise _bad(origin, f"alerts.rules[{i}].name", f"switches off {item['name']!r}, which is not a "
                           "default rule", _close(item["name"], known) or f"defaults: {', '.join(known)}")
    full = [item if not (isinstance(item, dict) and set(item) == {"name", "enabled"}) else None
            for item in config.alerts.rules]
    user = [parse_rule(item, f"alerts.rules[{i}]", origin) for i, item in enumerate(full) if item is not None]
    names: dict[str, int] = {}
    for i, item in enumerate(full):
        if item is not None:
            if item.get("name") in names:
                raise _bad(origin, f"alerts.rules[{i}].name", f"duplicates the name of "
                           f"alerts.rules[{names[item['name']]}] ({item['name']!r})", "give each rule its own name")
            names[item.get("name")] = i
    rules: dict[str, Rule] = {}
    if config.alerts.use_default_rules:
        rules = {r.name: r for r in default_rules()}
    for r in user:
        rules[r.name] = r
    return [r for r in rules.values() if r.name not in off]


def _origin(config) -> str:
    return config.sources.get("alerts.rules", "monitor.toml")


def segment_label(segment: dict | str | None) -> str:
    seg = json.loads(segment) if isinstance(segment, str) else (segment or {})
    return ", ".join(f"{k}={v}" for k, v in sorted(seg.items())) or "all traffic"
