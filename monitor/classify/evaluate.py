"""Score labelled rows (like xstest_dev.jsonl) with a classifier and report precision, recall, F1 and confusion."""
from __future__ import annotations

from collections import defaultdict

from monitor.classify.base import is_text

REFUSAL_ORDER = ("compliance", "partial_refusal", "full_refusal")
HARM_ORDER = ("benign", "harmful")


def _binary(y_true: list[bool], y_pred: list[bool]) -> dict:
    tp = sum(t and p for t, p in zip(y_true, y_pred))
    fp = sum((not t) and p for t, p in zip(y_true, y_pred))
    fn = sum(t and not p for t, p in zip(y_true, y_pred))
    tn = sum((not t) and (not p) for t, p in zip(y_true, y_pred))
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    spec = tn / (tn + fp) if tn + fp else None
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else None
    return {"n": n, "precision": prec, "recall": rec, "specificity": spec, "f1": f1,
            "accuracy": (tp + tn) / n if n else None,
            "confusion": {"labels": ["negative", "positive"], "matrix": [[tn, fp], [fn, tp]]}}


def _confusion(y_true: list[str], y_pred: list[str], order) -> dict:
    idx = {k: i for i, k in enumerate(order)}
    m = [[0] * len(order) for _ in order]
    for t, p in zip(y_true, y_pred):
        m[idx[t]][idx[p]] += 1
    return {"labels": list(order), "matrix": m}


def evaluate_rows(rows: list[dict], clf=None) -> dict:
    """Classify labelled rows and compare with their ``refusal_label`` / ``prompt_label`` (rows lacking one are skipped).

    Refusal is scored per row; prompt harm per distinct prompt (XSTest repeats each prompt once per model).
    ``clf`` defaults to ``load_classifiers()`` (lexical). Note: the bundled models were trained on xstest_dev, so
    evaluating them on it is in-sample; the honest CV figures are in ``clf.quality()``.
    """
    if clf is None:
        from monitor.classify import load_classifiers

        clf = load_classifiers()
    result: dict = {"refusal_version": clf.refusal_version, "harm_version": clf.harm_version, "n_rows": len(rows)}

    ref_rows = [r for r in rows if r.get("refusal_label") in REFUSAL_ORDER and is_text(r.get("response"))]
    result["refusal"] = None
    if ref_rows:
        prompts = [r.get("prompt") if isinstance(r.get("prompt"), str) else None for r in ref_rows]
        pred = clf.score_refusal([r["response"] for r in ref_rows], prompts).labels
        truth = [r["refusal_label"] for r in ref_rows]
        binary = _binary([t != "compliance" for t in truth], [p != "compliance" for p in pred])
        binary["confusion"]["labels"] = ["compliance", "refusal"]
        by_model: dict[str, dict] = {}
        groups: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(ref_rows):
            groups[str(r.get("model") or "(none)")].append(i)
        for name, idx in sorted(groups.items()):
            b = _binary([truth[i] != "compliance" for i in idx], [pred[i] != "compliance" for i in idx])
            b["refusal_rate_true"] = sum(truth[i] != "compliance" for i in idx) / len(idx)
            b["refusal_rate_pred"] = sum(pred[i] != "compliance" for i in idx) / len(idx)
            by_model[name] = b
        result["refusal"] = {
            "n": len(ref_rows), "skipped": len(rows) - len(ref_rows), "binary": binary,
            "three_way": _confusion(truth, pred, REFUSAL_ORDER),
            "three_way_accuracy": sum(t == p for t, p in zip(truth, pred)) / len(truth),
            "by_model": by_model,
        }

    seen: dict[str, str] = {}
    for r in rows:
        if r.get("prompt_label") in HARM_ORDER and is_text(r.get("prompt")):
            seen.setdefault(r["prompt"], r["prompt_label"])
    result["harm"] = None
    if seen:
        prompts = list(seen)
        pred = clf.score_harm(prompts).labels
        truth = [seen[p] for p in prompts]
        b = _binary([t == "harmful" for t in truth], [p == "harmful" for p in pred])
        b["confusion"]["labels"] = list(HARM_ORDER)
        result["harm"] = {"n_prompts": len(prompts), **b}
    return result


def _fmt(x) -> str:
    return "  n/a" if x is None else f"{x:.3f}"


def format_report(result: dict) -> str:
    """Render ``evaluate_rows`` output as a plain-text report."""
    out = [f"classifiers: refusal {result['refusal_version']}, harm {result['harm_version']}; {result['n_rows']} rows"]
    ref = result.get("refusal")
    if ref:
        b = ref["binary"]
        out += ["", f"REFUSAL (full or partial vs compliance), {ref['n']} replies ({ref['skipped']} rows skipped: no label or reply)",
                f"  precision {_fmt(b['precision'])}  recall {_fmt(b['recall'])}  specificity {_fmt(b['specificity'])}  "
                f"F1 {_fmt(b['f1'])}  accuracy {_fmt(b['accuracy'])}",
                "", "  3-way confusion (rows = true, columns = predicted)"]
        labels = ref["three_way"]["labels"]
        out.append("  " + " " * 17 + "".join(f"{lab:>17}" for lab in labels))
        for lab, row in zip(labels, ref["three_way"]["matrix"]):
            out.append(f"  {lab:>17}" + "".join(f"{v:>17}" for v in row))
        out.append(f"  3-way accuracy {ref['three_way_accuracy']:.3f}")
        out += ["", f"  {'model':52} {'n':>4} {'prec':>6} {'recall':>6} {'F1':>6} {'rate':>6} {'pred':>6}"]
        for name, m in ref["by_model"].items():
            out.append(f"  {name[:52]:52} {m['n']:>4} {_fmt(m['precision']):>6} {_fmt(m['recall']):>6} {_fmt(m['f1']):>6} "
                       f"{m['refusal_rate_true']:>6.3f} {m['refusal_rate_pred']:>6.3f}")
        out.append("  (rate = true refusal share, pred = predicted refusal share)")
    h = result.get("harm")
    if h:
        (tn, fp), (fn, tp) = h["confusion"]["matrix"]
        out += ["", f"PROMPT HARM (harmful vs benign), {h['n_prompts']} distinct prompts",
                f"  precision {_fmt(h['precision'])}  recall {_fmt(h['recall'])}  specificity {_fmt(h['specificity'])}  "
                f"F1 {_fmt(h['f1'])}  accuracy {_fmt(h['accuracy'])}",
                f"  {'':>16}{'pred benign':>14}{'pred harmful':>14}",
                f"  {'true benign':>16}{tn:>14}{fp:>14}", f"  {'true harmful':>16}{fn:>14}{tp:>14}"]
    if not ref and not h:
        out.append("no labelled rows (need refusal_label + response, or prompt_label + prompt)")
    return "\n".join(out)
