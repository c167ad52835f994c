"""Job `refusal_metrics`: refusal, over-/under-refusal, partial share, volume and thumbs-down per window.

Event-time and incremental: the job recomputes exactly the windows that contain turns whose scores were committed
since its last run (a lake manifest version kept in `kv`, see monitor/incremental.py). A late-ingested turn is
scored late, so the old window it belongs to is recomputed from all of its turns and yields the same numbers a live
run would have. The first run, a change of granularity or segment attributes, and a change in the classifiers'
measured error rates (new reviewer labels) recompute every window.

A run reads only the date partitions it needs, through date-scoped views (monitor.db.scoped_connect): the new
input files' dates to find the touched windows, and the labelled turns' dates for the correction (their dates are
kept in `kv`, so only a turn labelled for the first time is looked up in the whole turns table). The counts of
sql/metrics/refusal_rates.sql are additive over turns, so they are kept per event date (monitor.partials.DateSums,
`refusal.counts`) and a run adds only its new turns' counts to a touched day's cached counts; rates, intervals and
corrections are computed from the merged counts. The counts do not depend on reviewer labels: a label change
recomputes the rows of every window but reuses the cached counts.

Each rate row carries n, numerator, a Wilson interval at `metrics.confidence` and `small_sample = n <
metrics.min_n`. Over- and under-refusal also carry `corrected` values, corrected for both classifiers' errors
(monitor/stats.py), from the first source that applies, per row:
1. `labels:model` / `labels:all_models`: reviewer labels (majority per turn; only random-sample ones, not the
   review queue's targeted items) with both a prompt and a reply label, at least `JOINT_MIN_PER_CELL` in every
   true cell, for the row's model or else over all models. The 4x4 misclassification matrix is used as is
   (`joint_matrix`), or by maximum likelihood together with the row's own labelled turns (`joint_em`).
2. `shared_eval_joint`: the 4x4 matrix measured on the shared evaluation data (`clf.quality()["joint"]`).
3. `independent`: sensitivity/specificity per classifier (labels with `LABELS_MIN_PER_CLASS` per class, else
   `clf.quality()`), assuming independent errors. `details.correction` records the method, source, matrix
   sample sizes, the row's own labels and the assumption.

Cost of the correction: rows with labelled turns of their own (`joint_em`) dominate it: a SQUAREM-accelerated EM
per row and per bootstrap draw, all batched in `correct_joint_em_many`; the point converges to 1e-9 on the shares,
the draws to 1e-5 and only those that could decide an interval bound go on to 1e-9 (the same intervals as every draw
at 1e-9 for about half the EM work). With reviewer labels that mostly agree with the classifiers (a well-conditioned
matrix) that is ~0.005 s CPU per row at 400 draws; labels unrelated to the classifiers' output make the matrix
almost singular and the EM ~10-30x slower.
A label change still recomputes every window with the new matrix (docs/benchmarks-incremental.md, Notes).

Label estimates (`labelled_refusal_rate`, `labelled_over_refusal_rate`, `labelled_under_refusal_rate`): where a
group's replies (or prompts) were left unscored by the language gate, a rate computed from reviewer labels alone,
over the random-sample labels on that group's unscored turns of the trailing LABEL_ESTIMATE_DAYS days (ending with
the window), with n, a Wilson interval and the small-sample flag. They cover only the unscored part of the group
and never enter the classifier rows' n or their correction (docs/refusal.md, "Texts the classifiers cannot read").
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from monitor.db import scope_views, scoped_connect
from monitor.incremental import (
    Delta, LabelledFiles, date_windows, metric_attributes, segment_attributes, touched_windows,
)
from monitor.jobs import Job, JobContext
from monitor.partials import DateSums
from monitor.resources import load_sql
from monitor.schema import METRICS as METRICS_TABLE
from monitor.state import iso, utcnow
from monitor.stats import (
    DEFAULT_DRAWS, ErrorRates, correct_joint_em_many, correct_many, correct_many_joint, joint_error_counts, wilson,
)

log = logging.getLogger("monitor.jobs.refusal_metrics")

STATE_KEY = "refusal_metrics.state"
WATERMARK_KEY = "refusal_metrics.watermark"
LABEL_DATES_KEY = "refusal_metrics.label_dates"  # event date of every labelled turn, so labels need no full scan
LABELLED_TABLES = ("turns", "scores", "segments")  # the date-partitioned tables refusal_labelled_turns.sql reads
LABELLED_PATH = {"last": None}  # how labelled_turns() got its rows last ('cache' or 'query'), for logs and tests
COUNT_COLUMNS = ("n", "unscored", "harm_unscored", "refusals", "partial_refusals", "benign_complied",
                 "benign_refused", "harmful_complied", "harmful_refused", "feedback_n",
                 "thumbs_down")  # the additive columns of refusal_rates.sql
INPUTS = ("scores", "segments")  # a window is recomputed when any of these gets rows for it
LABELS_MIN_PER_CLASS = 30
# The joint (4x4) matrix from reviewer labels is used once every true cell (benign/complied, benign/refused,
# harmful/complied, harmful/refused) has this many random-sample labels: below that one cell's column is too
# noisy to invert (harmful/complied is the rarest cell, ~3% of typical traffic, so ~700 random labels).
JOINT_MIN_PER_CELL = 20
# Review-queue reasons that pick turns *because* of their classifier scores or an alert: labels on them are
# not a random sample, so they would bias the misclassification matrix (uncertain items are misclassified far
# more often than average). They are kept out of every error-rate estimate, as are labels on unqueued turns picked
# by hand: from the dashboard's search, or imported with `--sample targeted` (`targeted_sample`).
TARGETED_REASONS = ("uncertain_refusal", "uncertain_harm", "alert_example", "targeted_sample")
_DATE = re.compile(r"(?:^|/)date=(\d{4}-\d{2}-\d{2})(?:/|$)")
CELLS = ("benign/complied", "benign/refused", "harmful/complied", "harmful/refused")
LOGIC_VERSION = 7  # bump when the computation changes, to recompute every window once
# A corrected rate clipped to 0 or 1 whose 95% interval is narrower than this is not a precise estimate: nearly every
# bootstrap draw was clipped too, i.e. under the error rates used no true table can produce this window's counts.
# (Honest intervals are never that narrow here: the matrix comes from at most a few thousand labels, which alone
# give several points of width.) Such a row gets no corrected value and says why (`correction_note`).
DEGENERATE_WIDTH = 0.005
# Label estimates pool the random-sample labels on a group's unscored turns over this many days, ending with the
# window: a day holds a handful of labels at most (a reviewer labels tens a day over every group), far below
# metrics.min_n, while four weeks of a steady labelling routine reach it for a language group and still follow a
# change within a month. Each estimate row says its period (details.period_start / period_end).
LABEL_ESTIMATE_DAYS = 28
# (label-estimate metric, the classifier metric whose unscored part it estimates)
LABEL_METRICS = (("labelled_refusal_rate", "refusal_rate"), ("labelled_over_refusal_rate", "over_refusal_rate"),
                 ("labelled_under_refusal_rate", "under_refusal_rate"))
RANDOM_SAMPLE = ("random-sample labels only: the review queue's stratified items and labels marked sample = "
                 "'random'; targeted ones (uncertain or alert queue items, searches, imports marked targeted) and "
                 "unmarked ones are left out")


def _rates_from_quality(q: dict | None) -> ErrorRates | None:
    if not q:
        return None
    try:
        return ErrorRates.from_rates(float(q["sensitivity"]), float(q["specificity"]), int(q["n_pos"]),
                                     int(q["n_neg"]), "shared_eval")
    except (KeyError, TypeError, ValueError):
        return None


def joint_from_quality(q) -> np.ndarray | None:
    """The 4x4 counts [true cell, predicted cell] of `clf.quality()["joint"]`, or None when absent or malformed.

    Accepted shapes: a 4x4 list, or a dict with `counts` (or `matrix`) holding it; cells in the order of
    CELLS (prompt benign/harmful x reply complied/refused), rows the truth, columns the prediction.
    """
    if isinstance(q, dict):
        q = q.get("counts", q.get("matrix"))
    try:
        m = np.asarray(q, dtype=float)
    except (TypeError, ValueError):
        return None
    if m.shape != (4, 4) or not np.isfinite(m).all() or (m < 0).any() or (m.sum(axis=1) <= 0).any():
        return None
    return m


@dataclass
class Corrector:
    """Everything the correction needs: labelled turns, per-model joint matrices and the fallbacks."""

    labelled: pd.DataFrame  # random-sample labelled turns with both truths and both predictions
    pooled: np.ndarray  # 4x4 [true, pred] over every model
    by_model: dict[str, np.ndarray]
    shared_joint: np.ndarray | None
    harm: ErrorRates | None
    refusal: ErrorRates | None
    note: dict
    estimate: pd.DataFrame | None = None  # random-sample labelled turns the classifiers left out (estimate_turns)

    def matrix_for(self, model) -> tuple[str, np.ndarray | None]:
        """(source, 4x4 counts) for a metric row of this model (None = all models)."""
        if model is not None and model in self.by_model and _enough(self.by_model[model]):
            return "labels:model", self.by_model[model]
        if _enough(self.pooled):
            return "labels:all_models", self.pooled
        if self.shared_joint is not None:
            return "shared_eval_joint", self.shared_joint
        return "independent", None

    def fingerprint(self) -> dict:
        return {"pooled": self.pooled.tolist(), "by_model": {k: v.tolist() for k, v in sorted(self.by_model.items())},
                "in_group": _digest(self.labelled),
                "shared": None if self.shared_joint is None else self.shared_joint.tolist(),
                "h": self.harm.as_dict() if self.harm else None,
                "r": self.refusal.as_dict() if self.refusal else None,
                "estimate": None if self.estimate is None or self.estimate.empty else _digest(self.estimate)}


def _digest(labelled: pd.DataFrame) -> str:
    """A hash of the labelled turns that does not depend on the order of each turn's segment list."""
    # list(DISTINCT ...) in refusal_labelled_turns.sql has no defined order: hashed as is, the same labels would
    # change the fingerprint from run to run and recompute every window of the history.
    canon = labelled.copy()
    if "segments" in canon:
        canon["segments"] = [sorted((str(s["attribute"]), str(s["value"])) for s in segs) if segs is not None else []
                             for segs in canon["segments"]]
    return hashlib.sha256(canon.to_csv(index=False).encode()).hexdigest()[:16]


def _enough(m: np.ndarray) -> bool:
    return bool((m.sum(axis=1) >= JOINT_MIN_PER_CELL).all())


def _counts(df: pd.DataFrame) -> np.ndarray:
    if df.empty:
        return np.zeros((4, 4))
    return joint_error_counts(df["true_harmful"].astype(bool), df["true_refused"].astype(bool),
                              df["pred_harmful"].astype(bool), df["pred_refused"].astype(bool))


def _binary_rates(truth: pd.Series, pred: pd.Series, source: str) -> ErrorRates | None:
    ok = truth.notna() & pred.notna()
    t, p = truth[ok].astype(bool), pred[ok].astype(bool)
    pos, neg = int(t.sum()), int((~t).sum())
    if pos >= LABELS_MIN_PER_CLASS and neg >= LABELS_MIN_PER_CLASS:
        return ErrorRates(int((t & p).sum()), pos, int((~t & ~p).sum()), neg, source)
    return None


def corrector(con, home, granularity: str, clf=None, lab: pd.DataFrame | None = None) -> Corrector:
    """Gather reviewer labels (random-sample ones only) and the shared-evaluation error rates for the job."""
    if lab is None:
        lab = con.execute(load_sql("jobs/refusal_labelled_turns.sql").sql, {"granularity": granularity}).df()
    estimate = estimate_turns(lab)
    if "reply_unscored" in lab:
        # Unscored replies have no prediction to compare with: they feed the label estimate only.
        lab = lab[~lab["reply_unscored"].astype(bool)]
    random = lab[~lab["queue_reason"].isin(TARGETED_REASONS)]
    harm = _binary_rates(random["true_harmful"], random["pred_harmful"], "labels")
    refusal = _binary_rates(random["true_refused"], random["pred_refused"], "labels")
    both = random.dropna(subset=["true_harmful", "true_refused", "pred_harmful", "pred_refused"])
    pooled = _counts(both)
    by_model = {m: _counts(g) for m, g in both.groupby("model")}
    note = {"labels": {"labelled_turns": int(len(lab)), "random_sample": int(len(random)),
                       "targeted_excluded": int(len(lab) - len(random)), "with_both_labels": int(len(both)),
                       "multi_reviewer_turns": int((lab["reviewers"] > 1).sum()) if len(lab) else 0}}
    shared_joint = None
    if not (_enough(pooled) and harm and refusal):
        try:
            if clf is None:
                from monitor.jobs.score import load_configured_classifiers

                clf = load_configured_classifiers(home)
            quality = clf.quality() or {}
        except Exception as e:  # no correction is better than no metrics: record why and go on
            log.warning("no classifier quality available for the correction: %s", e)
            quality, note["quality_error"] = {}, f"{type(e).__name__}: {e}"
        shared_joint = joint_from_quality(quality.get("joint"))
        harm = harm or _rates_from_quality(quality.get("harm"))
        refusal = refusal or _rates_from_quality(quality.get("refusal"))
    return Corrector(both.reset_index(drop=True), pooled, by_model, shared_joint, harm, refusal, note, estimate)


def estimate_turns(lab: pd.DataFrame) -> pd.DataFrame:
    """The random-sample labelled turns whose reply or prompt the classifiers left unscored and whose refusal a
    reviewer labelled (the label estimate's sample), with `prompt_unscored` added."""
    cols = ["turn_id", "window_start", "model", "deployment", "segments", "true_refused", "true_harmful",
            "reply_unscored", "prompt_unscored"]
    if lab is None or lab.empty or "random_sample" not in lab:
        return pd.DataFrame(columns=cols)
    t = lab[lab["random_sample"].fillna(False).astype(bool) & lab["true_refused"].notna()].assign(
        reply_unscored=lambda d: d["reply_unscored"].fillna(False).astype(bool),
        prompt_unscored=lambda d: d["pred_harmful"].isna())
    return t[t["reply_unscored"] | t["prompt_unscored"]][cols].sort_values("turn_id").reset_index(drop=True)


class LabelEstimates:
    """Label counts of estimate_turns per metric-row group (model, deployment, segment), summed over any period.

    Counts per labelled turn, in this order: refusal n and refused (unscored replies), over-refusal n and refused
    (benign prompts), under-refusal n and complied (harmful prompts); over- and under-refusal count every turn
    whose reply or prompt is unscored, the part of the group those classifier rates leave out."""

    def __init__(self, turns: pd.DataFrame):
        acc: dict[tuple, list] = {}
        for rec in turns.to_dict("records"):
            # (NULL truths arrive as None, NaN or pd.NA depending on the path, booleans as bool or numpy.bool_)
            h = rec["true_harmful"]
            harmful = None if h is None or pd.isna(h) else bool(h)
            refused, reply = bool(rec["true_refused"]), bool(rec["reply_unscored"])
            vec = (reply, reply and refused, harmful is False, harmful is False and refused,
                   harmful is True, harmful is True and not refused)
            ws = np.datetime64(pd.Timestamp(rec["window_start"]).to_datetime64(), "us")
            for key in _group_keys(rec):
                acc.setdefault(key[1:], []).append((ws, vec))
        self.groups: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        for key, items in acc.items():
            items.sort(key=lambda x: x[0])
            starts = np.array([w for w, _ in items], dtype="datetime64[us]")
            counts = np.vstack([np.zeros(6), np.cumsum(np.array([v for _, v in items], dtype=float), axis=0)])
            self.groups[key] = (starts, counts)

    def counts(self, key: tuple, start: dt.datetime, end: dt.datetime) -> np.ndarray | None:
        """The six counts of the group's labelled turns in windows starting in [start, end), None without any."""
        g = self.groups.get(key)
        if g is None:
            return None
        starts, cum = g
        lo, hi = np.searchsorted(starts, np.datetime64(start, "us")), np.searchsorted(starts, np.datetime64(end, "us"))
        return cum[hi] - cum[lo] if hi > lo else None


def label_estimate_rows(est: LabelEstimates | None, key: dict, unscored: int, harm_unscored: int,
                        confidence: float, min_n: int) -> dict[str, dict]:
    """The label-estimate rows (without run metadata) of one metric-row group, keyed by the classifier metric whose
    unscored part each estimates; only where the group has such turns in the window and labels in the period."""
    if est is None:
        return {}
    end = key["window_end"]
    start = end - dt.timedelta(days=LABEL_ESTIMATE_DAYS)
    c = est.counts((key["model"], key["deployment"], key["segment"]), start, end)
    if c is None:
        return {}
    out = {}
    first, last = start.date().isoformat(), (end - dt.timedelta(microseconds=1)).date().isoformat()
    for (metric, of), (n, k), gap in zip(LABEL_METRICS, ((c[0], c[1]), (c[2], c[3]), (c[4], c[5])),
                                         (unscored, unscored + harm_unscored, unscored + harm_unscored)):
        n, k = int(n), int(k)
        if n <= 0 or gap <= 0:
            continue
        lo, hi = wilson(k, n, confidence)
        what = {"refusal_rate": ("unscored replies", "refused"),
                "over_refusal_rate": ("unscored turns with a benign prompt", "refused"),
                "under_refusal_rate": ("unscored turns with a harmful prompt", "complied")}[of]
        covers = ("replies" if of == "refusal_rate" else "turns whose reply or prompt") + \
            " the classifiers left unscored (empty, or in a language they do not read)"
        details = {
            "source": "reviewer_labels", "estimates": of, "covers": covers, "ci": "wilson",
            "confidence": confidence, "unscored": gap, "labels": RANDOM_SAMPLE,
            "period_start": iso(start), "period_end": iso(end), "period_days": LABEL_ESTIMATE_DAYS,
            "period": f"{first} to {last}",
            "note": (f"from human labels, not the classifiers: {k:,} of {n:,} random-sample labelled {what[0]} of "
                     f"this group from {first} to {last} {what[1]} (reviewers' majority); covers only the unscored "
                     f"part of the group, so it is neither in {of} nor comparable with its corrected value"
                     + (f"; fewer than {min_n} labels: read the interval, not the point" if n < min_n else "")),
        }
        out[of] = {**key, "metric": metric, "n": n, "numerator": float(k), "small_sample": n < min_n,
                   "value": k / n, "ci_low": lo, "ci_high": hi, "details": json.dumps(details)}
    return out


def _estimate_summary(row: dict) -> dict:
    """What a classifier row says of its group's label estimate: metric, value, interval, n, period."""
    d = json.loads(row["details"])
    return {"metric": row["metric"], "value": row["value"], "ci_low": row["ci_low"], "ci_high": row["ci_high"],
            "n": row["n"], "small_sample": row["small_sample"], "period_start": d["period_start"],
            "period_end": d["period_end"], "period": d["period"], "source": "reviewer_labels"}


def _fingerprint(granularity: str, attributes: list[str], corr: Corrector, confidence: float) -> str:
    blob = json.dumps({"v": LOGIC_VERSION, "g": granularity, "a": attributes, "c": confidence,
                       "corr": corr.fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _f(x) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _segment(attr, value) -> str:
    if attr is None or (isinstance(attr, float) and math.isnan(attr)):
        return "{}"
    return json.dumps({attr: value})


def _none(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


ASSUMPTIONS = {
    "joint": "the misclassification matrix P(predicted cell | true cell) measured on the labelled sample holds "
             "for this row's unlabelled turns (labels are a random sample of the same model's traffic)",
    "independent": "classifier errors independent given the truth (known to read under-refusal too low)",
}


def _group_keys(rec) -> list[tuple]:
    """The metric-row keys (window, model, deployment, segment) a labelled turn belongs to."""
    w, m, d = rec["window_start"], rec["model"], rec["deployment"]
    segs = ["{}"] + [json.dumps({s["attribute"]: s["value"]}) for s in (rec["segments"] if rec["segments"]
                                                                          is not None else [])]
    return [k for seg in segs for k in ((w, None, None, seg), (w, m, None, seg), (w, None, d, seg))]


def _in_group_counts(corr: Corrector) -> dict[tuple, dict[str | None, np.ndarray]]:
    """4x4 label counts per metric-row key, split by the turn's model (to subtract from a per-model matrix)."""
    out: dict[tuple, dict] = {}
    for rec in corr.labelled.to_dict("records"):
        cell = (int(bool(rec["true_harmful"])) * 2 + int(bool(rec["true_refused"])),
                int(bool(rec["pred_harmful"])) * 2 + int(bool(rec["pred_refused"])))
        for key in _group_keys(rec):
            m = out.setdefault(key, {}).setdefault(rec["model"], np.zeros((4, 4)))
            m[cell] += 1
    return out


def _corrections(df, corr: Corrector, confidence: float, draws: int) -> list[tuple]:
    """(TwoWayCorrection or None, correction details) per row of df."""
    tables = df[["benign_complied", "benign_refused", "harmful_complied", "harmful_refused"]].to_numpy(float)
    in_group = _in_group_counts(corr) if len(corr.labelled) else {}
    out: list = [None] * len(df)
    closed: dict[str, list[int]] = {}
    em: list[tuple[int, np.ndarray, np.ndarray]] = []  # (row, in-group labels, labels elsewhere) for joint_em
    for i, rec in enumerate(df.to_dict("records")):
        model = _none(rec["model"])
        source, matrix = corr.matrix_for(model)
        info = {"source": source, "draws": draws}
        if matrix is None:
            info.update(method="two_classifier_inversion", assumption=ASSUMPTIONS["independent"])
            closed.setdefault("independent", []).append(i)
        else:
            info.update(assumption=ASSUMPTIONS["joint"], cells=list(CELLS),
                        matrix_n_per_true_cell=[int(x) for x in matrix.sum(axis=1)])
            key = (rec["window_start"].to_pydatetime(), model, _none(rec["deployment"]),
                   _segment(rec["seg_attribute"], rec["seg_value"]))
            groups = in_group.get(key, {}) if source.startswith("labels") else {}
            lg = sum((c for m, c in groups.items() if source != "labels:model" or m == model), np.zeros((4, 4)))
            if lg.sum() > 0:
                # Some of this row's own turns are labelled: maximum likelihood uses them both for the matrix
                # and as direct observations of the truth.
                info.update(method="joint_em", in_group_labels=int(lg.sum()))
                em.append((i, lg, matrix - lg))
                out[i] = (None, info)
                continue
            info.update(method="joint_matrix", in_group_labels=0)
            closed.setdefault(source, []).append(i)
        out[i] = (None, info)
    # One call for every joint_em row: the same results as row by row, with the point EMs batched.
    for (i, _, _), r in zip(em, correct_joint_em_many([tables[i] for i, _, _ in em], [lg for _, lg, _ in em],
                                                      [lo for _, _, lo in em], confidence, draws)):
        out[i] = (r, out[i][1])
    for source, idx in closed.items():
        if source == "independent":
            if not (corr.harm and corr.refusal):
                continue
            res = correct_many(tables[idx], corr.harm, corr.refusal, confidence, draws)
        else:
            by_matrix: dict[bytes, list[int]] = {}
            for i in idx:
                m = corr.matrix_for(_none(df.iloc[i]["model"]))[1]
                by_matrix.setdefault(m.tobytes(), []).append(i)
            for key, rows in by_matrix.items():
                m = np.frombuffer(key).reshape(4, 4)
                for i, r in zip(rows, correct_many_joint(tables[rows], m, confidence, draws)):
                    out[i] = (r, out[i][1])
            continue
        for i, r in zip(idx, res):
            out[i] = (r, out[i][1])
    return out


def build_rows(df, granularity: str, confidence: float, min_n: int, corr: Corrector | None,
               draws: int = DEFAULT_DRAWS) -> list[dict]:
    """Metric rows (without run metadata) from the output of sql/metrics/refusal_rates.sql."""
    rows: list[dict] = []
    if df.empty:
        return rows
    corrections = _corrections(df, corr, confidence, draws) if corr is not None else [(None, {})] * len(df)
    rates = {"harm": corr.harm.as_dict() if corr and corr.harm else None,
             "refusal": corr.refusal.as_dict() if corr and corr.refusal else None}
    pools = LabelEstimates(corr.estimate) if corr is not None and corr.estimate is not None and len(corr.estimate) \
        else None
    for i, rec in enumerate(df.to_dict("records")):
        key = {
            "granularity": granularity,
            "window_start": rec["window_start"].to_pydatetime(),
            "window_end": rec["window_end"].to_pydatetime(),
            "model": _none(rec["model"]),
            "deployment": _none(rec["deployment"]),
            "segment": _segment(rec["seg_attribute"], rec["seg_value"]),
        }
        n = int(rec["n"])
        # (absent from hand-built frames: nothing unscored)
        unscored, harm_unscored = int(rec.get("unscored") or 0), int(rec.get("harm_unscored") or 0)
        table = [[int(rec["benign_complied"]), int(rec["benign_refused"])],
                 [int(rec["harmful_complied"]), int(rec["harmful_refused"])]]
        benign_n, harmful_n = sum(table[0]), sum(table[1])
        specs = [
            ("turn_count", n, n, None),
            ("refusal_rate", int(rec["refusals"]), n, None),
            ("partial_refusal_share", int(rec["partial_refusals"]), int(rec["refusals"]), None),
            ("over_refusal_rate", table[0][1], benign_n, "over"),
            ("under_refusal_rate", table[1][0], harmful_n, "under"),
            ("thumbs_down_rate", int(rec["thumbs_down"]), int(rec["feedback_n"]), None),
        ]
        result, info = corrections[i]
        estimates = label_estimate_rows(pools, key, unscored, harm_unscored, confidence, min_n)
        for metric, k, denom, which in specs:
            if denom <= 0:
                if unscored and metric in ("turn_count", "refusal_rate"):
                    # Every reply of this group is unreadable to the classifiers: say so rather than drop the group
                    # (a language group answered in its own language must not vanish from the tables).
                    details = {"unscored": unscored, "note": _unscored_note(unscored, 0, estimates.get(metric))}
                    if metric in estimates:
                        details["label_estimate"] = _estimate_summary(estimates[metric])
                    rows.append({**key, "metric": metric, "n": 0, "numerator": 0.0, "small_sample": True,
                                 "value": 0.0 if metric == "turn_count" else None, "ci_low": None, "ci_high": None,
                                 "details": json.dumps(details)})
                continue
            details: dict = {"ci": "wilson", "confidence": confidence}
            row = {**key, "metric": metric, "n": denom, "numerator": float(k), "small_sample": denom < min_n}
            if metric == "turn_count":
                row.update(value=float(n), ci_low=None, ci_high=None)
                details = {"unit": "turns"}
                if harm_unscored:
                    details["harm_unscored"] = harm_unscored  # in n, in neither over- nor under-refusal
            else:
                lo, hi = wilson(k, denom, confidence)
                row.update(value=k / denom, ci_low=lo, ci_high=hi)
            if which:
                details["observed_table"] = {"benign": {"complied": table[0][0], "refused": table[0][1]},
                                             "harmful": {"complied": table[1][0], "refused": table[1][1]}}
                details["correction"] = {**info, **rates}
                if result is not None:
                    est = getattr(result, which)
                    row.update(corrected=_f(est.value), corrected_ci_low=_f(est.low),
                               corrected_ci_high=_f(est.high))
                    if row["corrected"] is None:
                        details["correction_note"] = "not identifiable from these counts"
                    elif _degenerate(est):
                        row.update(corrected=None, corrected_ci_low=None, corrected_ci_high=None)
                        details["correction_note"] = _misfit_note(est.value, info.get("source", ""))
                    elif est.value in (0.0, 1.0):
                        details["correction_note"] = (
                            f"clipped at {est.value:g}: read the interval's "
                            f"{'upper' if est.value == 0 else 'lower'} bound, which is what the counts allow, "
                            "not the point")
                else:
                    details["correction_note"] = "no error rates for one of the classifiers"
                if harm_unscored:
                    details["harm_unscored"] = harm_unscored  # in n, but in neither denominator
            if unscored and metric != "thumbs_down_rate":
                details["unscored"] = unscored
                details["unscored_note"] = _unscored_note(unscored, n, estimates.get(metric))
            if metric in estimates:
                details["label_estimate"] = _estimate_summary(estimates[metric])
            row["details"] = json.dumps(details, default=str)
            rows.append(row)
        rows += estimates.values()
    return rows


def _unscored_note(unscored: int, n: int, estimate: dict | None = None) -> str:
    """Why `unscored` replies of a group are not in its n, and what measures them (with the group's label estimate
    for this metric when there is one)."""
    share = unscored / (unscored + n)
    what = "every reply" if n == 0 else f"{unscored:,} replies ({share:.0%})"
    text = (f"{what} left out: empty, or in a language the English-only classifiers do not read; "
            "their refusals are not measured here (the llm_judge backend reads other languages). ")
    if estimate is None:
        return text + ("Reviewer labels on a random sample of them (the review queue's stratified items, labels "
                       "marked random) give a separate estimate from human labels alone, over the last "
                       f"{LABEL_ESTIMATE_DAYS} days: " + ", ".join(m for m, _ in LABEL_METRICS))
    e = _estimate_summary(estimate)
    return text + (f"Estimate from random-sample reviewer labels of the unscored part, not from the classifiers "
                   f"({e['metric']}): {e['value']:.3f} (95% CI {e['ci_low']:.3f}-{e['ci_high']:.3f}, n={e['n']:,}"
                   f"{', small n' if e['small_sample'] else ''}, labelled turns of {e['period']})")


def _degenerate(est) -> bool:
    """A corrected estimate clipped to 0 or 1 with an interval that collapsed with it (see DEGENERATE_WIDTH)."""
    return est.value in (0.0, 1.0) and est.high - est.low < DEGENERATE_WIDTH


def _misfit_note(value: float, source: str) -> str:
    where = ("the shared evaluation data's error rates (XSTest) do not fit this traffic"
             if source.startswith("shared_eval") else "the reviewer-label error rates do not fit this row's counts")
    return (f"not estimable: the correction clips to {value:g} in nearly every bootstrap draw, so its interval "
            f"collapses to a point; {where}. Read the raw rate, and label a random sample of this traffic "
            "(review queue, stratified items) to measure the classifiers on it")


def _retired(con, rows: list[dict], granularity: str, windows: list[dt.datetime]) -> list[dict]:
    """Rows with n = 0 for keys published before but absent now, so the `metrics` view stops showing them."""
    fresh = {(r["metric"], r["window_start"], r["model"], r["deployment"], r["segment"]) for r in rows}
    old = con.execute(load_sql("jobs/existing_keys.sql").sql, {
        "family": "refusal", "granularity": granularity, "windows": windows, "all_metrics": True,
        "metrics": []}).fetchall()
    # The group is still there when it has a turn_count row: its turns are unscored (the language gate, after a
    # re-score), not gone, and the note must not say its data was deleted.
    groups = {(r["window_start"], r["model"], r["deployment"], r["segment"]): json.loads(r["details"])
              for r in rows if r["metric"] == "turn_count"}
    out = []
    estimates = {m for m, _ in LABEL_METRICS}
    for metric, ws, we, model, deployment, segment in old:
        if (metric, ws, model, deployment, segment) not in fresh:
            details = {"note": "no data left in this group after recomputation"}
            group = groups.get((ws, model, deployment, segment))
            if metric in estimates:
                details = {"source": "reviewer_labels", "note": (
                    "no random-sample reviewer label on this group's unscored turns in the period, or no unscored "
                    "turn in this window, after recomputation")}
            elif group is not None:
                details = {k: group[k] for k in ("unscored", "harm_unscored") if group.get(k)}
                details["note"] = "no turn of this group counts toward this metric after recomputation" + "".join(
                    f"; {details[k]:,} {what} (empty, or in a language the English-only classifiers do not read)"
                    for k, what in (("unscored", "replies have no refusal label"),
                                    ("harm_unscored", "prompts have no harm label")) if k in details)
            out.append({"metric": metric, "granularity": granularity, "window_start": ws, "window_end": we,
                        "model": model, "deployment": deployment, "segment": segment, "value": None, "n": 0,
                        "numerator": 0.0, "small_sample": True, "details": json.dumps(details)})
    return out


def _dates_of(manifest: dict, tables: tuple[str, ...], since: int | None = None) -> set[str]:
    """The event dates of the files of `tables` (committed after `since`)."""
    return {m.group(1) for t in tables for e in manifest["tables"].get(t, [])
            if (since is None or e.get("v", 0) > since) and (m := _DATE.search(e["path"]))}


def _scope(con, home, manifest: dict, dates: set[str]) -> None:
    """Point con's lake views at the files of exactly these event dates (tables without dates: all files)."""
    tables = {t: [e for e in es if (m := _DATE.search(e["path"])) is None or m.group(1) in dates]
              for t, es in manifest["tables"].items()}
    scope_views(con, home, {**manifest, "tables": tables}, "0000-01-01", "9999-12-31")


def label_dates(con, home, manifest: dict) -> set[str]:
    """The event dates of the reviewer-labelled turns (con holds the `labels` table), from `kv` where known.

    A turn's date never changes (turn ids are unique in the lake), so only a turn labelled for the first time is
    looked up in every turns file; a labelled turn not found (deleted, or not ingested yet) is looked up again in
    the turns files committed after that lookup only. The lookup reads through con's views, re-pointed here."""
    ids = {r[0] for r in con.execute("SELECT DISTINCT turn_id FROM labels").fetchall()}
    saved = home.state.get(LABEL_DATES_KEY) or {}
    known: dict[str, str] = {k: v for k, v in saved.get("dates", {}).items() if k in ids}
    absent = {k for k in saved.get("absent", []) if k in ids}
    fresh = ids - set(known) - absent
    q = load_sql("jobs/refusal_label_dates.sql").sql
    for wanted, since in ((fresh, None), (absent, saved.get("v"))):
        if not wanted:
            continue
        _scope(con, home, manifest, _dates_of(manifest, ("turns",), since))
        found = dict(con.execute(q).fetchall())
        known.update({k: d for k, d in found.items() if k in wanted})
    absent = ids - set(known)
    if known != saved.get("dates") or sorted(absent) != saved.get("absent") or \
            (absent and saved.get("v") != manifest["version"]):
        home.state.put(LABEL_DATES_KEY, {"v": manifest["version"], "dates": known, "absent": sorted(absent)})
    return set(known.values())


def labelled_turns(con, home, manifest: dict, granularity: str) -> pd.DataFrame:
    """refusal_labelled_turns.sql's rows: kept in a cache file while the labels, the review queue's reasons for them
    and every lake row of a labelled turn stay as they were, else read from the labelled turns' dates.

    Labelled turns are spread over the whole history, so reading them costs what the history costs (~5 s at 10M
    turns); a run that only adds rows of unlabelled turns reuses the cache. It is recomputed when the labels or
    their queue reasons change, when a file committed since holds a row (turn, score, segment) of a labelled turn
    (a re-score, a late segment, a labelled turn ingested after its label), or when the older files of those dates
    no longer hold the rows they held (a deletion; compaction merging old rows with new ones)."""
    sql = load_sql("jobs/refusal_labelled_turns.sql").sql
    ids = sorted(r[0] for r in con.execute("SELECT DISTINCT turn_id FROM labels").fetchall())
    state = con.execute(
        "SELECT l.*, (SELECT list(DISTINCT q.reason ORDER BY q.reason) FROM review_queue q "
        "WHERE q.turn_id = l.turn_id) AS reasons FROM labels l ORDER BY l.id").fetchall()
    key = hashlib.sha256(json.dumps([LOGIC_VERSION, granularity, sql, state], default=str).encode()).hexdigest()
    dates = label_dates(con, home, manifest)
    files = LabelledFiles.of(home.lake.root, manifest, LABELLED_TABLES, dates)
    path = home.root / "cache" / "refusal_labelled.parquet"
    cached = _read_cache(path)
    # No label: the query is cheap (no date to read) and gives no row.
    if cached is not None and ids:
        frame, meta = cached
        if files.unchanged(con, meta, key, ids):
            if any(files.committed_after(meta["v"]).values()):  # free of labelled turns: the cache covers them too
                _write_cache(path, frame, files.state(key))
            LABELLED_PATH["last"] = "cache"
            return frame
    _scope(con, home, manifest, dates)
    frame = con.execute(sql, {"granularity": granularity}).df()
    LABELLED_PATH["last"] = "query"
    _write_cache(path, frame, files.state(key))
    return frame


def _read_cache(path) -> tuple[pd.DataFrame, dict] | None:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid):
        return None  # none yet, or unreadable: recompute (the cache only saves time)
    meta = json.loads((table.schema.metadata or {}).get(b"monitor.labelled", b"{}"))
    return (table.to_pandas(), meta) if {"identity", "v", "rows"} <= set(meta) else None


def _write_cache(path, frame: pd.DataFrame, state: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = json.dumps(state).encode()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"monitor.labelled": meta})
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def count_sums(home, granularity: str, attributes: list[str]) -> tuple[DateSums, callable]:
    """The per-date cache of refusal_rates.sql's counts and the query that computes every window of some dates."""
    sql = load_sql("metrics/refusal_rates.sql").sql
    views = [load_sql(f"views/{v}").sql for v in ("020_latest_scores.sql", "030_scored_turns.sql")]
    identity = {"v": LOGIC_VERSION, "g": granularity, "a": attributes, "sql": sql, "views": views}

    def query(con, date_min: str, date_max: str) -> pd.DataFrame:
        return con.execute(sql, {"granularity": granularity, "attributes": attributes,
                                 "windows": date_windows(date_min, date_max, granularity),
                                 "date_min": date_min, "date_max": date_max}).df()

    return DateSums(home, "refusal.counts", identity, ("turns", "scores", "segments"), COUNT_COLUMNS), query


def window_counts(home, manifest: dict, granularity: str, attributes: list[str],
                  windows: list[dt.datetime]) -> pd.DataFrame:
    """refusal_rates.sql's rows for these windows, from the per-date cached counts plus the new turns' counts."""
    ds, query = count_sums(home, granularity, attributes)
    df = ds.windows(manifest, windows, query)
    log.info("refusal counts per date: %s", ds.stats)
    if not len(df):
        return df
    keys = ["window_start", "model", "deployment", "seg_attribute", "seg_value"]
    return df.sort_values(keys, na_position="first", kind="stable").reset_index(drop=True)


def run_refusal_metrics(ctx: JobContext, clf=None, draws: int = DEFAULT_DRAWS) -> int:
    """Recompute the refusal metrics of every window touched since the watermark; returns rows written."""
    home = ctx.home
    cfg = home.config.metrics
    granularity = cfg.granularity
    manifest = home.lake.manifest()
    # Views over the dates each step needs only (re-pointed per step): the history outside them costs nothing.
    con = scoped_connect(home, manifest, None, state=("labels", "review_queue"))
    try:
        attributes = metric_attributes(segment_attributes(home, con, manifest), cfg)
        corr = corrector(con, home, granularity, clf, labelled_turns(con, home, manifest, granularity))
        fp = _fingerprint(granularity, attributes, corr, cfg.confidence)
        delta = Delta.open(home, WATERMARK_KEY, fp, manifest=manifest)
        _scope(con, home, manifest, _dates_of(manifest, INPUTS, delta.since))
        windows = touched_windows(con, delta, INPUTS, granularity)
        if not windows:
            delta.save(WATERMARK_KEY, fp)
            return 0
        df = window_counts(home, manifest, granularity, attributes, windows)
        rows = build_rows(df, granularity, cfg.confidence, cfg.min_n, corr, draws)
        rows += _retired(con, rows, granularity, windows)  # metrics_log has no date partitions: all its files
    finally:
        con.close()
    computed_at = utcnow()  # processing time: the `metrics` view keeps the newest computation of a key
    for r in rows:
        r.update(job="refusal_metrics", run_id=ctx.run_id, computed_at=computed_at, family="refusal")
    if rows:
        data = pa.Table.from_pylist(rows, schema=METRICS_TABLE.schema)
        home.lake.append(METRICS_TABLE.name, data)
    delta.save(WATERMARK_KEY, fp)
    home.state.put(STATE_KEY, {"fingerprint": fp,
                               "windows_last_run": len(windows), "labels": corr.note["labels"]})
    log.info("refusal metrics: %d rows over %d windows", len(rows), len(windows))
    return len(rows)


JOBS = [Job("refusal_metrics", run_refusal_metrics, depends_on=("score", "languages"),
            help="Refusal, over-/under-refusal (raw and error-corrected), partial share, volume per window.")]


def metric_names() -> list[str]:
    """The metric names this job writes (each registered in monitor/metrics.py)."""
    return ["turn_count", "refusal_rate", "partial_refusal_share", "over_refusal_rate", "under_refusal_rate",
            "thumbs_down_rate", *(m for m, _ in LABEL_METRICS)]



