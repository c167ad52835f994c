"""Groups a disparity comparison leaves out because the classifiers read none of their replies (the score job's
language gate), and the label estimates of groups' unscored parts: both read from the refusal_metrics rows
(`turn_count` with n 0 and `details.unscored`; `labelled_*_rate`) of the same windows, models and attribute.

The disparity job compares groups by their classifier rates, so a language answered in its own language has no
disparity row at all; `monitor disparity` lists it as unmeasured (n 0, no value) rather than dropping it.
"""
from __future__ import annotations

import datetime as dt
import json
import math

RATE_OF = {"refusal_disparity": "refusal_rate", "over_refusal_disparity": "over_refusal_rate",
           "under_refusal_disparity": "under_refusal_rate"}
LABELLED_OF = {"refusal_rate": "labelled_refusal_rate", "over_refusal_rate": "labelled_over_refusal_rate",
               "under_refusal_rate": "labelled_under_refusal_rate"}
MARKER = "unmeasured: every reply unscored (language gate)"
# Over- and under-refusal also need the prompt's harm label: a group answered in English to prompts in its own
# language (every prompt unscored) has a refusal rate but neither of those.
PROMPT_MARKER = "unmeasured: every prompt unscored (language gate)"
ESTIMATE_SOURCE = "human labels (random-sample reviewer labels of the group's unscored turns), not classifiers"


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _read(home, since: dt.datetime) -> list[dict]:
    """turn_count and label-estimate rows of windows starting at or after `since` (one segment attribute, no
    deployment split), with segment and details parsed and windows as ISO text, as the disparity CLI rows have."""
    import duckdb

    from monitor.db import connect
    from monitor.errors import QueryError
    from monitor.resources import load_sql
    from monitor.state import iso

    sql = load_sql("queries/metrics_list.sql").sql
    out = []
    con = connect(home)
    try:
        for metric in ("turn_count", *LABELLED_OF.values()):
            cur = con.execute(sql, {"metric": metric, "since": since, "model": None})
            names = [d[0] for d in cur.description]
            for values in cur.fetchall():
                r = dict(zip(names, values))
                seg = json.loads(r["segment"] or "{}")
                if r["deployment"] is not None or len(seg) != 1:
                    continue
                r.update(segment=seg, details=json.loads(r["details"]) if r["details"] else {},
                         window_start=iso(r["window_start"]), window_end=iso(r["window_end"]),
                         value=_num(r["value"]), ci_low=_num(r["ci_low"]), ci_high=_num(r["ci_high"]))
                out.append(r)
    except duckdb.Error as e:
        raise QueryError(f"reading the refusal metrics of unmeasured groups failed: {e}") from e
    finally:
        con.close()
    return out


def _num(x):
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def estimate_summary(r: dict) -> dict:
    """The fields of a label-estimate row a disparity row carries: value, interval, n, small-n flag, period."""
    d = r["details"] or {}
    return {"metric": r["metric"], "value": r["value"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
            "n": r["n"], "small_sample": bool(r["small_sample"]), "period": d.get("period"),
            "period_start": d.get("period_start"), "period_end": d.get("period_end"), "source": ESTIMATE_SOURCE}


def add_unmeasured(home, rows: list[dict], base) -> list[dict]:
    """`rows` (disparity CLI rows) with an unmeasured row for each group of a production rate block whose replies
    were all unscored in that window (for over- and under-refusal: or whose prompts were), and every such block's
    rows given their group's unscored replies and label estimate (`unscored`, `label_estimate`; None where there
    is none)."""
    blocks = {}
    for r in rows:
        if r["source"] == "production" and r["dimension"] is None and r["attribute"] and "&" not in r["attribute"] \
                and base(r["metric"]) in RATE_OF:
            blocks.setdefault((r["metric"], r["window_start"], r["window_end"], r["model"], r["attribute"]), r)
    if not blocks:
        return rows
    refusal = _read(home, min(_when(k[1]) for k in blocks))
    index: dict[tuple, dict] = {}
    counts: dict[tuple, list[tuple[str, dict]]] = {}  # (window, model, attribute) -> [(group, turn_count row)]
    for r in refusal:
        (attr, value), = r["segment"].items()
        index[(r["metric"], r["window_start"], r["model"], attr, str(value))] = r
        if r["metric"] == "turn_count":
            counts.setdefault((r["window_start"], r["model"], attr), []).append((str(value), r))
    present = {(r["metric"], r["window_start"], r["model"], r["attribute"], str(r["group"])) for r in rows}
    added = []
    for (metric, ws, we, model, attr), first in blocks.items():
        for value, tc in sorted(counts.get((ws, model, attr), []), key=lambda x: x[0]):
            if (metric, ws, model, attr, value) in present:
                continue
            d = tc["details"] or {}
            unscored, harm_unscored = int(d.get("unscored") or 0), int(d.get("harm_unscored") or 0)
            note = MARKER if tc["n"] == 0 and unscored > 0 else (
                PROMPT_MARKER if base(metric) != "refusal_disparity" and tc["n"] > 0 and harm_unscored == tc["n"]
                else None)
            if note is not None:
                row = {k: None for k in first}
                row.update(metric=metric, source="production", granularity=first["granularity"], window_start=ws,
                           window_end=we, model=model, attribute=attr, group=value, segment={attr: value}, n=0,
                           significant=False, adverse=False, four_fifths_flag=False, min_n_ok=False,
                           small_sample=True, is_reference=False, fdr=first["fdr"], min_n=first["min_n"],
                           unmeasured=True, note=note)
                added.append(row)
    out = rows + added
    for r in out:
        r.setdefault("unmeasured", False)
        r.setdefault("note", None)
        r["unscored"], r["label_estimate"] = None, None
        if (r["metric"], r["window_start"], r["window_end"], r["model"], r["attribute"]) not in blocks:
            continue
        key = (r["window_start"], r["model"], r["attribute"], str(r["group"]))
        tc = index.get(("turn_count", *key))
        if tc is not None:
            r["unscored"] = int((tc["details"] or {}).get("unscored") or 0) or None
        est = index.get((LABELLED_OF[RATE_OF[base(r["metric"])]], *key))
        if est is not None and est["n"]:
            r["label_estimate"] = estimate_summary(est)
    return out


def estimate_lines(rows: list[dict]) -> list[str]:
    """Text lines under a block naming its groups' label estimates (empty when none has one)."""
    with_est = [r for r in rows if r.get("label_estimate")]
    if not with_est:
        return []
    lines = [f"label estimates, from {ESTIMATE_SOURCE}; they cover only each group's unscored part and are not "
             "tested against the reference:"]
    for r in sorted(with_est, key=lambda r: str(r["group"])):
        e = r["label_estimate"]
        lines.append(f"  {r['group']}: {e['metric']} {e['value']:.3f} (95% CI {e['ci_low']:.3f}-{e['ci_high']:.3f}), "
                     f"n={e['n']:,} labelled turns of {e['period']}" + (", small n" if e["small_sample"] else "")
                     + (f"; {r['unscored']:,} replies unscored in this window" if r.get("unscored") else ""))
    return lines

