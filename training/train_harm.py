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
                    fit_lr, harmful_prompts_extra, permissive_benign_prompts, platt, precision_threshold, read_jsonl,
                    sigmoid, update_quality, write_json, xstest_prompts)
from monitor.classify.features import HarmFeatures

VERSION = "harm-lr-2026.11.2"
C_GRID = (0.1, 0.3, 1.0, 3.0)
N_SPLITS = 5


def load(with_alpaca: bool):
    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    train_h = [r["prompt"] for r in rd if r["split"] == "train" and r["prompt_label"] == "harmful"]
    val = [(r["prompt"], int(r["prompt_label"] == "harmful")) for r in rd if r["split"] == "val"]
    extra = [(p, 1) for p in train_h] + [(p, 0) for p in benign_prompts()]
    # More benign instructions (hand-written tasks, risky topics in protective framing, benchmark request frames
    # with ordinary goals), benign BBQ / advanced-AI-risk questions (CC-BY-4.0) and hand-written harmful requests.
    extra += [(p, 0) for p in benign_prompts_extra() + permissive_benign_prompts()]
    extra += [(p, 1) for p in harmful_prompts_extra()]
    extra += [(p, 0) for p in balancing_benign_prompts([p for p, y in extra if y == 1])]
    if with_alpaca:
        extra += [(r["prompt"], 0) for r in rd if r["split"] == "train" and r["prompt_label"] == "benign"]
    xs = [(r["prompt"], int(r["prompt_label"] == "harmful"), r["category"]) for r in xstest_prompts()]
    return extra, xs, val


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

    res = {}
    for C in C_GRID:
        m = cv(C)
        res[C] = m
        acc = np.mean((m > 0) == y_xs)
        print(f"C={C}: XSTest CV accuracy at margin 0: {acc:.3f}")
    C_best = max(C_GRID, key=lambda c: (np.mean((res[c] > 0) == y_xs), -c))
    m_xs = res[C_best]
    a, b = platt(m_xs, y_xs)
    p_xs = sigmoid(a * m_xs + b)
    t_acc = float(max(np.round(np.arange(0.2, 0.81, 0.01), 2), key=lambda t: (np.mean((p_xs >= t) == y_xs), -abs(t - 0.5))))
    t_prec = max(precision_threshold(p_xs, y_xs, 0.95), t_acc)
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
        "val_balanced": val_bal, "n_train_extra": len(extra),
        # Out-of-fold P(harmful) per XSTest prompt: train_refusal.py crosses it with the refusal CV (quality "joint").
        "xstest_oof": {p: float(q) for (p, _, _), q in zip(xs, p_xs)},
    }
    print(f"C={C_best} thresholds default={t_acc} high_precision={t_prec}")
    print("XSTest CV", xs_stats)
    print("XSTest CV @high-precision", xs_prec)
    print("XSTest n-gram only accuracy", ngram_acc)
    for c, s in by_type.items():
        print(f"   {c:30s} {s}")
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
                          "CC-BY-4.0), 300 hand-written harmful and ~3,600 hand-written benign instructions, 800 BBQ and "
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
