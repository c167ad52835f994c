"""Lake rows of the value profile: scorer output to `value_scores` / `value_turns` / `value_evidence`, and back.

The tables themselves are declared in monitor/schema.py (VALUE_SCORES, VALUE_TURNS, VALUE_EVIDENCE). Layout, and
why: `value_scores` is long form (one row per scored reply and dimension, zeros included) because the dimension
set is configurable (plugins add dimensions without a schema change) and because `avg(score)` over it is then the
right mean with no hidden zero-filling. Unscored replies have no `value_scores` rows at all, only a `value_turns`
row with `scored = false` and the reason, so they can never pull a mean down; coverage is computed from
`value_turns`. The `refusal` dimension (the classifier's probability) is stored only where the score job had one.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa

from monitor.schema import VALUE_EVIDENCE, VALUE_SCORES, VALUE_TURNS


def build_tables(turn_ids: list[str], dates: list[str], result, topics: list[str], topic_terms: list[list[str]],
                 scored_at) -> dict[str, pa.Table]:
    """Arrow tables for the three value tables from one scored batch (a `ValueScores` result)."""
    n = len(turn_ids)
    version = result.version
    families = {d.name: d.family for d in result.dimensions}
    names = list(result.scores.columns)
    mat = result.scores.to_numpy(dtype=float)
    scored = np.asarray(result.scored, dtype=bool)
    # Long form: rows for scored replies x dimensions with a finite score (refusal is NaN without a classifier).
    rows_idx, cols_idx = np.nonzero(scored[:, None] & np.isfinite(mat))
    # Each column is a C-level take from a short array (one entry per reply or dimension), not a Python object
    # per long row: a batch of 5,000 replies has ~120,000 value_scores rows.
    ts_type = VALUE_SCORES.schema.field("scored_at").type
    n_long = len(rows_idx)
    scores = pa.table({
        "turn_id": pa.array(turn_ids, pa.string()).take(rows_idx),
        "dimension": pa.array(names, pa.string()).take(cols_idx),
        "family": pa.array([families[c] for c in names], pa.string()).take(cols_idx),
        "score": pa.array(mat[rows_idx, cols_idx], pa.float64()),
        "scorer_version": pa.repeat(pa.scalar(version, pa.string()), n_long),
        "scored_at": pa.repeat(pa.scalar(scored_at, ts_type), n_long),
        "date": pa.array(dates, pa.string()).take(rows_idx),
    }, schema=VALUE_SCORES.schema)
    turns = pa.table({
        "turn_id": turn_ids,
        "scored": scored.tolist(),
        "reason": list(result.unscored_reason),
        "n_tokens": np.asarray(result.n_tokens, dtype=np.int32),
        "topic": topics,
        "topic_terms": [json.dumps(t) for t in topic_terms],
        "scorer_version": [version] * n,
        "scored_at": [scored_at] * n,
        "date": dates,
    }, schema=VALUE_TURNS.schema)
    spans = [(i, dim, span) for i in np.flatnonzero(scored).tolist()
             for dim, dim_spans in result.evidence[i].items() for span in dim_spans]
    rows = [i for i, _, _ in spans]
    ev = {
        "turn_id": [turn_ids[i] for i in rows],
        "dimension": [dim for _, dim, _ in spans],
        "term": [span[0] for _, _, span in spans],
        "span_start": [span[1] for _, _, span in spans],
        "span_end": [span[2] for _, _, span in spans],
        "date": [dates[i] for i in rows],
        "scorer_version": [version] * len(spans),
    }
    evidence = pa.table(ev, schema=VALUE_EVIDENCE.schema)
    return {"value_scores": scores, "value_turns": turns, "value_evidence": evidence}


def wide(long: pd.DataFrame, dimensions: list[str], index_cols: list[str]) -> pd.DataFrame:
    """Pivot long rows (index_cols..., dimension, score) to one column per dimension; missing refusal stays NaN."""
    if long.empty:
        return pd.DataFrame(columns=index_cols + dimensions)
    w = long.pivot_table(index=index_cols, columns="dimension", values="score", aggfunc="first", dropna=False)
    w = w.reindex(columns=dimensions)
    return w.reset_index()


def finite(x) -> float | None:
    """The float value of x, or None for None/NaN/inf (metric columns are nullable)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def no_spread(mean: float, sd: float) -> bool:
    """Every score equal (sd 0 up to rounding): a t interval would be the single point `mean`.

    Value scores are mostly zeros: a group whose 790 replies all score 0 on a dimension non-zero in 0.4% of replies
    got "0.000 (95% CI 0.000-0.000)", certainty that the true mean is 0. Nothing in the sample bounds how far above
    0 it may be, so there is no interval rather than a false one. (5,000 scores of 2.5 leave an sd of ~4e-8 from
    rounding the sums; any real spread is far above a millionth of the mean.)
    """
    return sd == 0 or sd <= 1e-6 * abs(mean)
