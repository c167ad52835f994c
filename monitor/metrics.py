"""The registry of metrics: name, the SQL file that computes its counts, and the help text shown as a tooltip.

Metrics are plain data. Several metrics may share one SQL file (one pass over the data yields every count of a
family); a test checks that every file under ``sql/metrics`` has an entry here and every entry a file. Later
families (values, disparity) add their rows to `METRICS`.
"""
from __future__ import annotations

from dataclasses import dataclass

from monitor.errors import MonitorError


@dataclass(frozen=True)
class Metric:
    name: str
    sql_file: str  # relative to sql/, e.g. "metrics/refusal_rates.sql"
    help: str
    family: str = "refusal"
    corrected: bool = False  # carries an error-corrected value next to the raw one


_REFUSAL_SQL = "metrics/refusal_rates.sql"

METRICS: tuple[Metric, ...] = (
    Metric(
        "refusal_rate", _REFUSAL_SQL,
        "Share of the assistant's replies that refuse, fully or partly, whatever the request. "
        "On its own it says little: read it next to over- and under-refusal.",
    ),
    Metric(
        "over_refusal_rate", _REFUSAL_SQL,
        "Among requests the harm classifier judged benign, the share of replies that refuse (fully or partly): "
        "the assistant turning away legitimate users. 'Corrected' removes both classifiers' measured errors.",
        corrected=True,
    ),
    Metric(
        "under_refusal_rate", _REFUSAL_SQL,
        "Among requests the harm classifier judged harmful, the share of replies that comply: harmful "
        "compliance. Raw values are inflated by benign requests misread as harmful; trust 'corrected' for levels.",
        corrected=True,
    ),
    Metric(
        "partial_refusal_share", _REFUSAL_SQL,
        "Among replies that refuse, the share that refuse only partly (decline part of the request, or refuse "
        "and then offer an alternative).",
    ),
    Metric(
        "turn_count", _REFUSAL_SQL,
        "Number of assistant replies the refusal classifier labelled in the window (the n of refusal_rate). The "
        "value is the count; there is no interval. details.unscored counts the replies scored without a label "
        "(empty, or in a language the English-only classifiers do not read), which are traffic too.",
    ),
    Metric(
        "thumbs_down_rate", _REFUSAL_SQL,
        "Among replies that received user feedback, the share rated thumbs down. Only where logs carry feedback.",
    ),
    # Label estimates: rates from reviewer labels alone, for the part of a group the classifiers left unscored
    # (language gate). refusal_rates.sql's `unscored` / `harm_unscored` counts decide where one is published; the
    # labels come from sql/jobs/refusal_labelled_turns.sql (random-sample ones only), pooled over the trailing
    # LABEL_ESTIMATE_DAYS (monitor/jobs/refusal_metrics.py). No alert rule watches them by default.
    Metric(
        "labelled_refusal_rate", _REFUSAL_SQL,
        "From human labels, not classifiers: among the replies the classifiers left unscored (empty, or in a "
        "language they do not read), the share that refuse, by the reviewers' random-sample labels of the last 28 "
        "days. Covers only the unscored part of the group; in no classifier rate's n.",
    ),
    Metric(
        "labelled_over_refusal_rate", _REFUSAL_SQL,
        "From human labels, not classifiers: among the turns whose reply or prompt the classifiers left unscored "
        "and whose prompt reviewers judged benign, the share refused (random-sample labels of the last 28 days). "
        "Covers only the unscored part of the group.",
    ),
    Metric(
        "labelled_under_refusal_rate", _REFUSAL_SQL,
        "From human labels, not classifiers: among the turns whose reply or prompt the classifiers left unscored "
        "and whose prompt reviewers judged harmful, the share complied with (random-sample labels of the last 28 "
        "days). Covers only the unscored part of the group.",
    ),
)


def get(name: str) -> Metric:
    """The registered metric called `name`."""
    for m in METRICS:
        if m.name == name:
            return m
    import difflib

    close = difflib.get_close_matches(name, [m.name for m in METRICS], n=1)
    raise MonitorError(f"unknown metric {name!r}", f"did you mean {close[0]!r}?" if close else
                       f"known metrics: {', '.join(m.name for m in METRICS)}")


# Every metric name the jobs write: the refusal family above, then values, drift, disparity (production, and the
# counterfactual probes' `probe_` rows) and language checks. A name outside it is a typo: alert rules are refused
# with a did-you-mean rather than watching nothing (monitor/alerts/rules.py). tests/test_dashboard_real.py checks
# every metric the demo writes is listed here.
DISPARITY_METRICS = ("refusal_disparity", "over_refusal_disparity", "under_refusal_disparity", "value_disparity")
WRITTEN_METRICS: tuple[str, ...] = (
    *(m.name for m in METRICS),
    "value_mean", "value_coverage", "value_drift", "topic_drift", "prompt_mix_drift",
    *DISPARITY_METRICS, *(f"probe_{m}" for m in DISPARITY_METRICS),
    "language_mismatch_rate",
)
