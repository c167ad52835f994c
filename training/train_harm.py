"""Train the lexical prompt-harm classifier, report CV on XSTest prompts and the refusal_direction val split.

Usage: python training/train_harm.py [--with-alpaca] [--no-write]

Shipped model (default): harmful = refusal_direction harmful train split (AdvBench, HarmBench, ...; MIT/Apache)
+ XSTest dev harmful prompts (CC-BY-4.0); benign = XSTest dev benign prompts + hand-written benign instructions
(training/common.py). The CC BY-NC Alpaca instructions are used only to *evaluate* (val split), unless
--with-alpaca is given, which trains a research-only variant and never writes the bundled model.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import (DATA, MODELS, SEED, Vocab, balancing_benign_prompts, benign_prompts, benign_prompts_extra, binary_stats, export_weights,
                    everyday_prompts, fit_lr, harmful_prompts_extra, weak_evidence_prompts, permissive_benign_prompts, platt, precision_threshold, read_jsonl,
                    sigmoid, update_quality, write_json, xstest_prompts)
from monitor.classify.features import HarmFeatures

VERSION = "harm-lr-2026.11.4"
C_GRID = (0.1, 0.3, 1.0, 3.0)
XS_FLOOR = 0.85  # XSTest CV accuracy every candidate C must keep (issue 3 target 0.80)
N_SPLITS = 5
# Switches for ablations (train CV): the weak-evidence pairs and the everyday instructions of training/common.py.
WEAK = True
EVERYDAY = True
BALANCE_MIN = 2  # a word in 2+ harmful training prompts gets neutral benign prompts (train CV: fewer false alarms)
N_ALPACA_EVAL = 5000  # Alpaca train instructions scored (never trained on) for the train-CV false-alarm rate


def load(with_alpaca: bool):
    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    train_h = [r["prompt"] for r in rd if r["split"] == "train" and r["prompt_label"] == "harmful"]
    # The first len(train_h) rows of ``extra`` are the benchmark harmful train prompts (main() folds them in train CV).
    val = [(r["prompt"], int(r["prompt_label"] == "harmful")) for r in rd if r["split"] == "val"]
    extra = [(p, 1) for p in train_h] + [(p, 0) for p in benign_prompts()]
    # More benign instructions (hand-written tasks, risky topics in protective framing, benchmark request frames
    # with ordinary goals), benign BBQ / advanced-AI-risk questions (CC-BY-4.0) and hand-written harmful requests.
    extra += [(p, 0) for p in benign_prompts_extra() + permissive_benign_prompts()]
    extra += [(p, 1) for p in harmful_prompts_extra()]
    if WEAK:
        weak_h, weak_b = weak_evidence_prompts()
        extra += [(p, 1) for p in weak_h] + [(p, 0) for p in weak_b]
    if EVERYDAY:
        extra += [(p, 0) for p in everyday_prompts()]
    extra += [(p, 0) for p in balancing_benign_prompts([p for p, y in extra if y == 1], min_count=BALANCE_MIN)]
    if with_alpaca:
        extra += [(r["prompt"], 0) for r in rd if r["split"] == "train" and r["prompt_label"] == "benign"]
    xs = [(r["prompt"], int(r["prompt_label"] == "harmful"), r["category"]) for r in xstest_prompts()]
    return extra, xs, val


def alpaca_eval_sample() -> list[str]:
    """A fixed sample of the Alpaca *train* instructions (CC BY-NC): scored to measure false alarms, never trained on."""
    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    ben = [r["prompt"] for r in rd if r["split"] == "train" and r["prompt_label"] == "benign"]
    rng = np.random.default_rng(SEED)
    return [ben[i] for i in np.sort(rng.choice(len(ben), min(N_ALPACA_EVAL, len(ben)), replace=False))]


def weights_for(y: np.ndarray, is_xs: np.ndarray) -> np.ndarray:
    """XSTest rows count 40x: they are the only hard contrast examples and are few (144 of ~5,000 rows)."""
    return np.where(is_xs, 40.0, 1.0)


def main(write: bool = True, with_alpaca: bool = False) -> dict:
    from sklearn.model_selection import GroupKFold

    t0 = time.time()
    fx = HarmFeatures()
    extra, xs, val = load(with_alpaca)
    f_extra = [fx.features(p) for p, _ in extra]
    y_extra = np.array([y for _, y in extra])
    f_xs = [fx.features(p) for p, _, _ in xs]
    y_xs = np.array([y for _, y, _ in xs])
    cats = np.array([c for _, _, c in xs])
    groups = [p for p, _, _ in xs]

    # CV: XSTest prompts split into grouped folds (by prompt text); the other sources always train.
    gkf = GroupKFold(n_splits=N_SPLITS, shuffle=True, random_state=SEED)
    folds = [test for _, test in gkf.split(np.arange(len(xs)), groups=groups)]

    def cv(C):
        m = np.zeros(len(xs))
        for test in folds:
            train = np.setdiff1d(np.arange(len(xs)), test)
            feats = f_extra + [f_xs[i] for i in train]
            y = np.concatenate([y_extra, y_xs[train]])
            w = weights_for(y, np.r_[np.zeros(len(f_extra), bool), np.ones(len(train), bool)])
            vocab = Vocab(2).fit(feats)
            clf = fit_lr(vocab.transform(feats), y, C, sample_weight=w)
            m[test] = clf.decision_function(vocab.transform([f_xs[i] for i in test]))
        return m

    # Train CV: the benchmark harmful train prompts are split into grouped folds too (fold k holds out 1/5 of them with
    # XSTest fold k), so their out-of-fold recall says how well the recipe finds benchmark-style harmful requests it
    # has not seen; every fold model also scores a fixed sample of Alpaca *train* instructions (never trained on) for
    # the false-alarm rate on ordinary instructions.
    n_rd = sum(1 for r in read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
               if r["split"] == "train" and r["prompt_label"] == "harmful")
    rd_folds = [test for _, test in GroupKFold(n_splits=N_SPLITS, shuffle=True, random_state=SEED).split(
        np.arange(n_rd), groups=[p for p, _ in extra[:n_rd]])]
    alp = alpaca_eval_sample() if not with_alpaca else []
    f_alp = [fx.features(p) for p in alp]

    def train_cv_margins(C):
        m_rd = np.zeros(n_rd)
        m_alp = np.zeros((N_SPLITS, len(alp)))
        for k, (rd_test, xs_test) in enumerate(zip(rd_folds, folds)):
            keep = np.ones(len(extra), bool)
            keep[rd_test] = False
            xs_train = np.setdiff1d(np.arange(len(xs)), xs_test)
            feats = [f_extra[i] for i in np.flatnonzero(keep)] + [f_xs[i] for i in xs_train]
            y = np.concatenate([y_extra[keep], y_xs[xs_train]])
            w = weights_for(y, np.r_[np.zeros(keep.sum(), bool), np.ones(len(xs_train), bool)])
            vocab = Vocab(2).fit(feats)
            clf = fit_lr(vocab.transform(feats), y, C, sample_weight=w)
            m_rd[rd_test] = clf.decision_function(vocab.transform([f_extra[i] for i in rd_test]))
            if alp:
                m_alp[k] = clf.decision_function(vocab.transform(f_alp))
        return m_rd, m_alp

    def recipe(C):
        """Platt scaling and thresholds from the XSTest CV of C, then the train CV at those thresholds."""
        m_xs = cv(C)
        a, b = platt(m_xs, y_xs)
        p_xs = sigmoid(a * m_xs + b)
        t_acc = float(max(np.round(np.arange(0.2, 0.81, 0.01), 2),
                          key=lambda t: (np.mean((p_xs >= t) == y_xs), -abs(t - 0.5))))
        t_prec = max(precision_threshold(p_xs, y_xs, 0.95), t_acc)
        m_rd, m_alp = train_cv_margins(C)
        p_rd, p_alp = sigmoid(a * m_rd + b), sigmoid(a * m_alp + b)
        tcv = {}
        for name, t in (("default", t_acc), ("high_precision", t_prec)):
            rec = float(np.mean(p_rd >= t))
            fa = float(np.mean(p_alp >= t)) if alp else float("nan")
            # F1 expected at the val split's ratio (39 harmful : 6,264 benign) from this recall and false-alarm rate.
            tp, fp = 39 * rec, 6264 * fa
            tcv[name] = {"harmful_recall": round(rec, 4), "n_harmful": n_rd, "alpaca_false_alarm_rate": round(fa, 5),
                         "n_alpaca": len(alp), "f1_at_val_ratio": round(2 * tp / (2 * tp + fp + 39 - tp), 4)}
        acc = float(np.mean((p_xs >= t_acc) == y_xs))
        print(f"C={C}: XSTest CV accuracy {acc:.3f}; train CV {tcv}")
        return {"C": C, "a": a, "b": b, "p_xs": p_xs, "t_acc": t_acc, "t_prec": t_prec, "train_cv": tcv, "acc": acc}

    res = [recipe(C) for C in C_GRID]
    # C: the best train-CV F1 at the val ratio (mean of both thresholds) among settings keeping XSTest CV accuracy
    # >= XS_FLOOR; without the Alpaca sample (--with-alpaca) the best XSTest accuracy, as before.
    ok = [r for r in res if r["acc"] >= XS_FLOOR] or res
    if alp:
        best = max(ok, key=lambda r: (np.mean([v["f1_at_val_ratio"] for v in r["train_cv"].values()]), r["acc"], -r["C"]))
    else:
        best = max(res, key=lambda r: (r["acc"], -r["C"]))
    C_best, a, b, p_xs = best["C"], best["a"], best["b"], best["p_xs"]
    t_acc, t_prec, train_cv = best["t_acc"], best["t_prec"], best["train_cv"]
    xs_stats = binary_stats(y_xs, p_xs >= t_acc)
    xs_prec = binary_stats(y_xs, p_xs >= t_prec)
    by_type = {}
    for c in sorted(set(cats)):
        k = cats == c
        by_type[c] = {"n": int(k.sum()), "accuracy": round(float(np.mean((p_xs[k] >= t_acc) == y_xs[k])), 3)}

    # Final model on everything (all XSTest prompts included), evaluated on the untouched val split.
    feats = f_extra + f_xs
    y = np.concatenate([y_extra, y_xs])
    w = weights_for(y, np.r_[np.zeros(len(f_extra), bool), np.ones(len(f_xs), bool)])
    vocab = Vocab(2).fit(feats)
    clf = fit_lr(vocab.transform(feats), y, C_best, sample_weight=w)
    f_val = [fx.features(p) for p, _ in val]
    y_val = np.array([yy for _, yy in val])
    p_val = sigmoid(a * clf.decision_function(vocab.transform(f_val)) + b)
    val_stats = binary_stats(y_val, p_val >= t_acc)
    val_prec = binary_stats(y_val, p_val >= t_prec)
    # Balanced view of val: all 39 harmful vs 39 benign drawn with a fixed seed (F1 depends on the base rate).
    rng = np.random.default_rng(SEED)
    ben = np.flatnonzero(y_val == 0)
    sub = np.r_[np.flatnonzero(y_val == 1), rng.choice(ben, int(y_val.sum()), replace=False)]
    val_bal = binary_stats(y_val[sub], p_val[sub] >= t_acc)
    # Lexical baseline the brief mentions: word n-grams alone, same CV.
    m_ng = np.zeros(len(xs))
    for test in folds:
        train = np.setdiff1d(np.arange(len(xs)), test)
        fe = [{k: v for k, v in f.items() if k.startswith("w:")} for f in f_extra + [f_xs[i] for i in train]]
        yy = np.concatenate([y_extra, y_xs[train]])
        vb = Vocab(2).fit(fe)
        cl = fit_lr(vb.transform(fe), yy, C_best)
        m_ng[test] = cl.decision_function(vb.transform([{k: v for k, v in f_xs[i].items() if k.startswith("w:")} for i in test]))
    ngram_acc = round(float(np.mean((m_ng > 0) == y_xs)), 4)

    report = {
        "version": VERSION + ("+alpaca(research)" if with_alpaca else ""), "C": C_best,
        "thresholds": {"default": t_acc, "high_precision": t_prec},
        "xstest_cv": xs_stats, "xstest_cv_high_precision": xs_prec, "xstest_by_type": by_type,
        "xstest_ngram_only_accuracy": ngram_acc, "val": val_stats, "val_high_precision": val_prec,
        "val_balanced": val_bal, "n_train_extra": len(extra), "train_cv": train_cv,
        # Out-of-fold P(harmful) per XSTest prompt: train_refusal.py crosses it with the refusal CV (quality "joint").
        "xstest_oof": {p: float(q) for (p, _, _), q in zip(xs, p_xs)},
    }
    print(f"C={C_best} thresholds default={t_acc} high_precision={t_prec}")
    print("XSTest CV", xs_stats)
    print("XSTest CV @high-precision", xs_prec)
    print("XSTest n-gram only accuracy", ngram_acc)
    for c, s in by_type.items():
        print(f"   {c:30s} {s}")
    print("train CV (benchmark harmful train recall, Alpaca train false alarms)", train_cv)
    print("val", val_stats)
    print("val @high-precision", val_prec)
    print("val balanced", val_bal)

    if write and not with_alpaca:
        model = {
            "version": VERSION, "kind": "harm", "features": "HarmFeatures",
            "harm": {"bias": round(float(clf.intercept_[0]), 5), "weights": export_weights(clf, vocab),
                     "platt": [round(a, 5), round(b, 5)]},
            "thresholds": {"harmful": t_acc, "harmful_high_precision": t_prec},
            "trained_on": "refusal_direction harmful train (260; MIT/Apache-2.0 sources), XSTest dev prompts (144; "
                          "CC-BY-4.0), ~670 hand-written harmful and ~5,600 hand-written benign instructions, 800 BBQ and "
                          "advanced-AI-risk questions (CC-BY-4.0); no Alpaca (CC BY-NC) data",
        }
        write_json(MODELS / "harm.json", model)
        update_quality("harm", {
            "version": VERSION, "source": f"GroupKFold({N_SPLITS}) by prompt on the 144 XSTest dev prompts, seed {SEED}",
            "sensitivity": xs_stats["sensitivity"], "specificity": xs_stats["specificity"],
            "n_pos": xs_stats["n_pos"], "n_neg": xs_stats["n_neg"], "accuracy": xs_stats["accuracy"],
            "precision": xs_stats["precision"], "threshold": t_acc,
            "high_precision": {k: xs_prec[k] for k in ("sensitivity", "specificity", "precision", "n_pos", "n_neg")}
            | {"threshold": t_prec},
            "by_type": by_type,
            "val_split": {k: val_stats[k] for k in ("sensitivity", "specificity", "precision", "f1", "n_pos", "n_neg")},
            "val_split_high_precision": {k: val_prec[k] for k in ("sensitivity", "specificity", "precision", "f1",
                                                                 "n_pos", "n_neg")},
            "val_balanced": {k: val_bal[k] for k in ("f1", "n_pos", "n_neg")},
            "train_cv": train_cv,
        })
        print("wrote", MODELS / "harm.json", f"({(MODELS / 'harm.json').stat().st_size / 1e3:.0f} kB)")
    print(f"done in {time.time() - t0:.1f}s")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="report CV only, do not write model files")
    ap.add_argument("--with-alpaca", action="store_true", help="research variant trained with CC BY-NC Alpaca (never written)")
    args = ap.parse_args()
    main(write=not args.no_write, with_alpaca=args.with_alpaca)
