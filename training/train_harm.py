"""Train the lexical prompt-harm classifier, report CV on XSTest prompts and on the benchmark-harmful prompts.

Usage: python training/train_harm.py [--with-alpaca] [--no-write] [--holdout-val]

Shipped model (default): harmful = refusal_direction harmful train and val splits (AdvBench, HarmBench, ...;
MIT/Apache) + XSTest dev harmful prompts (CC-BY-4.0); benign = XSTest dev benign prompts + hand-written benign
instructions (training/common.py). The CC BY-NC Alpaca instructions are used only to *measure* false alarms (a
sample of the train split while choosing the recipe, the val split's benign prompts for the final model), unless
--with-alpaca is given, which trains a research-only variant and never writes the bundled model. --holdout-val
runs the same recipe without the val split's harmful prompts and reports the whole val split as held-out data (report
only, never written): how the recipe did on prompts it had not seen before they were folded into training.
"""
from __future__ import annotations

import argparse
import functools
import time

import numpy as np

from common import (DATA, MODELS, SEED, Vocab, balancing_benign_prompts, discrimination_prompts, benign_prompts, benign_prompts_extra, binary_stats, export_weights,
                    everyday_prompts, fit_lr, harm_probe, hh_labelled, harmful_prompts_extra, near_duplicates, weak_evidence_prompts, permissive_benign_prompts, platt,
                    precision_threshold, read_jsonl, refresh_training_keys, sigmoid, update_quality, write_json, written_instructions, written_prompts, written_tasks, xstest_prompts)
from monitor.classify.features import HarmFeatures

VERSION = "harm-lr-2026.11.7"
C_GRID = (0.3, 1.0, 3.0)
# How much one XSTest prompt counts. They are the only hard contrast examples (144 of ~10,000 rows), but at 40x
# (the weight up to 2026.11.4) a word of one harmful XSTest prompt outweighed everything else ("printer", from "a
# weapon with a 3D printer", was the model's strongest harm word) and ordinary harmful requests were missed.
XS_WEIGHTS = (5.0, 10.0, 20.0, 40.0)
XS_FLOOR = 0.90  # XSTest CV accuracy every candidate recipe must keep (issue 3 target 0.80 on unseen XSTest prompts)
# Ratios (benign per harmful prompt) at which the train CV's recall and false-alarm rate are turned into an F1: the
# recipe is chosen at 1:10; 1:1 and the val split's 1:160 are reported.
RATIOS = {"balanced": 1, "one_in_11": 10, "val_ratio": 160}
SELECT_RATIO = "one_in_11"
XS_BAL = 0.5  # weight of an XSTest balancing prompt, relative to an XSTest prompt (two per word)
XS_SLACK = 0.02  # XSTest CV accuracy the default threshold may give up for ordinary-traffic F1 (3 of 144 prompts)
N_SPLITS = 5
# Switches for ablations (train CV): the weak-evidence pairs and the everyday instructions of training/common.py.
WEAK = True
EVERYDAY = True
DISCRIM = True  # denying real groups a right vs nonsense subjects and history (training/common.py)
# The written prompts (training/data/written_prompts.jsonl: 640 harmful requests in varied styles and 640 benign ones on
# the same topics) count WRITTEN_W each. At weight 1 a word model cannot separate such topic-matched pairs and learns
# the style of a request instead: false alarms on ordinary instructions rose tenfold (train CV 0.2% -> 1.8%). Chosen
# among 0, 0.1, 0.2, 0.3 as the largest weight keeping the train-CV F1 at 1:10 within 0.01 of weight 0 (0.950 -> 0.945;
# 0.2: 0.940, 0.3: 0.937); at 0.1 the recall on the harm probe rises from 0.55 to 0.63 (docs/refusal.md).
WRITTEN_W = 0.1
INSTRUCTIONS = True  # the 2,396 written everyday instructions (training/data/written_instructions.jsonl), benign
BALANCE_MIN = 2  # a word in 2+ harmful training prompts gets neutral benign prompts (train CV: fewer false alarms)
N_ALPACA_EVAL = 5000  # Alpaca train instructions scored (never trained on) for the train-CV false-alarm rate


def benchmark_harmful(val_harmful: bool = True) -> list[str]:
    """The refusal_direction harmful prompts trained on: the train split, and the val split's unless told not to."""
    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    splits = ("train", "val") if val_harmful else ("train",)
    return [r["prompt"] for r in rd if r["split"] in splits and r["prompt_label"] == "harmful"]


def load(with_alpaca: bool, val_harmful: bool = True):
    """Training rows ``extra`` (the first ``len(benchmark_harmful(val_harmful))`` are the benchmark harmful prompts,
    which main() folds in the train CV), the XSTest prompts, and the whole refusal_direction val split."""
    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    bench_h = benchmark_harmful(val_harmful)
    val = [(r["prompt"], int(r["prompt_label"] == "harmful")) for r in rd if r["split"] == "val"]
    extra = [(p, 1) for p in bench_h] + [(p, 0) for p in benign_prompts()]
    # More benign instructions (hand-written tasks, risky topics in protective framing, benchmark request frames
    # with ordinary goals), benign BBQ / advanced-AI-risk questions (CC-BY-4.0) and hand-written harmful requests.
    extra += [(p, 0) for p in benign_prompts_extra() + permissive_benign_prompts()]
    extra += [(p, 1) for p in harmful_prompts_extra()]
    if WEAK:
        weak_h, weak_b = weak_evidence_prompts()
        extra += [(p, 1) for p in weak_h] + [(p, 0) for p in weak_b]
    if EVERYDAY:
        extra += [(p, 0) for p in everyday_prompts()]
    if DISCRIM:
        disc_h, disc_b = discrimination_prompts()
        extra += [(p, 1) for p in disc_h] + [(p, 0) for p in disc_b]
    extra += [(p, 0) for p in balancing_benign_prompts([p for p, y in extra if y == 1], min_count=BALANCE_MIN)]
    if WRITTEN_W:
        # After the balancing prompts: at a tenth of a row's weight, their words need no balancing.
        w_h, w_b = written_prompts()
        extra += [(p, 1) for p in w_h] + [(p, 0) for p in w_b]
    if INSTRUCTIONS:
        extra += [(p, 0) for p in written_instructions()]
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


def weights_for(y: np.ndarray, is_xs: np.ndarray, xs_weight: float) -> np.ndarray:
    """XSTest rows count ``xs_weight`` times: they are the only hard contrast examples and are few."""
    return np.where(is_xs, xs_weight, 1.0)


@functools.cache
def _written_set() -> frozenset[str]:
    w_h, w_b = written_prompts()
    return frozenset(w_h + w_b)


def is_written(texts: list[str]) -> np.ndarray:
    """Which texts are written prompts (training/data/written_prompts.jsonl)."""
    return np.array([t in _written_set() for t in texts], bool)


def row_weights(texts: list[str]) -> np.ndarray:
    """Base weight of each training text: WRITTEN_W for a written prompt, else 1 (XSTest weighting comes on top)."""
    return np.where(is_written(texts), WRITTEN_W, 1.0)


def recall_and_false_alarms(p: np.ndarray, y: np.ndarray, t_default: float, t_high: float) -> dict:
    """Recall on the harmful rows (``y``) and false-alarm rate on the others, at the default and high-precision
    thresholds."""
    out = {}
    for name, t in (("", t_default), ("_high_precision", t_high)):
        out[f"recall{name}"] = round(float(np.mean(p[y] >= t)), 4)
        out[f"benign_false_alarm_rate{name}"] = round(float(np.mean(p[~y] >= t)), 4)
    return out


def hh_eval(score, train_texts: list[str], t_default: float, t_high: float) -> dict:
    """Recall and false alarms of a scorer (texts -> P(harmful)) on the hand-labelled HH-RLHF first turns
    (common.hh_labelled; evaluation only): real red-team messages in conversational phrasing. A first turn that is
    also a training text word for word (a short common question) is left out."""
    seen = set(train_texts)
    all_rows = hh_labelled()
    rows = [r for r in all_rows if r["prompt"] not in seen]
    p = np.asarray(score([r["prompt"] for r in rows]))
    y = np.array([r["prompt_label"] == "harmful" for r in rows])
    out = {"n_harmful": int(y.sum()), "n_benign": int((~y).sum()), "n_left_out_training_texts": len(all_rows) - len(rows)}
    out |= recall_and_false_alarms(p, y, t_default, t_high)
    cats = np.array([r["category"] for r in rows])
    out["recall_by_category"] = {c: {"n": int(np.sum(y & (cats == c))), "recall": round(float(np.mean(p[y & (cats == c)] >= t_default)), 3)}
                                 for c in sorted(set(cats[y]))}
    return out


def tasks_eval(score, train_texts: list[str], t_default: float, t_high: float) -> dict:
    """Recall and false alarms of a scorer (texts -> P(harmful)) on the written task-style requests
    (training/data/written_tasks.jsonl; evaluation only): harmful requests in the plain task style of instruction
    traffic across 16 categories, and benign ones on the same topics and vocabulary (protective, educational,
    professional asks), the risky-looking benign traffic whose misreading inflates the under-refusal rate. Rows whose
    word set overlaps a training text's by Jaccard >= 0.6 are left out, as for the probe."""
    all_rows = written_tasks()
    dup = set(near_duplicates([r["prompt"] for r in all_rows], train_texts))
    rows = [r for i, r in enumerate(all_rows) if i not in dup]
    p = np.asarray(score([r["prompt"] for r in rows]))
    y = np.array([r["prompt_label"] == "harmful" for r in rows])
    out = {"n_harmful": int(y.sum()), "n_benign": int((~y).sum()), "n_left_out_near_duplicates": len(dup)}
    out |= recall_and_false_alarms(p, y, t_default, t_high)
    cats = np.array([r["category"] for r in rows])
    out["by_category"] = {c: {"n_harmful": int(np.sum(y & (cats == c))), "recall": round(float(np.mean(p[y & (cats == c)] >= t_default)), 3),
                              "n_benign": int(np.sum(~y & (cats == c))), "benign_false_alarm_rate": round(float(np.mean(p[~y & (cats == c)] >= t_default)), 3)}
                          for c in sorted(set(cats[y].tolist()))}
    return out


def xs_balancing(xs_harmful: list[str]) -> list[str]:
    """Neutral prompts for every everyday word of the weighted XSTest harmful prompts (see balancing_benign_prompts):
    two per word at XS_BAL of an XSTest prompt's weight, so a word is not a harm word because one XSTest prompt used it."""
    return balancing_benign_prompts(xs_harmful, min_count=1)


def fit_recipe(feats: list[dict], y: np.ndarray, is_xs: np.ndarray, xs_harmful: list[str], C: float,
               xs_weight: float, fx: HarmFeatures, cache: dict[str, dict], base_w: np.ndarray | None = None):
    """Fit the recipe: the rows as given (XSTest rows weighted ``xs_weight``), then the balancing prompts of the
    harmful XSTest texts ``xs_harmful`` as benign rows at ``xs_weight * XS_BAL``; returns (vocab, model). ``cache``
    keeps the balancing prompts' features between calls; ``base_w`` the rows' base weights (row_weights; default 1).
    training/train_harm_embed.py refits the same recipe."""
    bal = xs_balancing(xs_harmful)
    for t in bal:
        if t not in cache:
            cache[t] = fx.features(t)
    f_all = list(feats) + [cache[t] for t in bal]
    y_all = np.concatenate([y, np.zeros(len(bal), int)])
    w_rows = weights_for(y, is_xs, xs_weight) * (1.0 if base_w is None else base_w)
    w = np.r_[w_rows, np.full(len(bal), xs_weight * XS_BAL)]
    vocab = Vocab(2).fit(f_all)
    return vocab, fit_lr(vocab.transform(f_all), y_all, C, sample_weight=w)


def probe_recall(score, train_texts: list[str], t_default: float, t_high: float) -> dict:
    """Recall of a scorer (texts -> P(harmful)) on the harm probe (training/data/harm_probe.jsonl: 320 harmful requests
    in 16 categories, written for this project in deliberately varied styles, never trained on). Probe prompts whose
    word set overlaps a training text's by Jaccard >= 0.6 are left out, so the figure is about unseen requests."""
    rows = harm_probe()
    dup = set(near_duplicates([r["prompt"] for r in rows], train_texts))
    rows = [r for i, r in enumerate(rows) if i not in dup]
    p = np.asarray(score([r["prompt"] for r in rows]))
    cats = sorted({r["category"] for r in rows})
    by_cat = {c: round(float(np.mean([q >= t_default for q, r in zip(p, rows) if r["category"] == c])), 3) for c in cats}
    return {"n": len(rows), "n_left_out_near_duplicates": len(dup), "recall": round(float(np.mean(p >= t_default)), 4),
            "recall_high_precision": round(float(np.mean(p >= t_high)), 4), "recall_by_category": by_cat}


def lexicon_without_val_terms() -> dict:
    """The harm lexicon without the entries taken from the val split's misses (``_from_val_misses``): what
    --holdout-val trains with, so the held-out figure owes nothing to having read those prompts."""
    from monitor.classify.features import load_lexicon

    lex = load_lexicon("harm")
    drop = set(lex.get("_from_val_misses", ()))
    return {k: ({c: [w for w in ws if w not in drop] for c, ws in v.items()} if k == "categories" else v)
            for k, v in lex.items()}


def f1_at_ratio(recall: float, false_alarm_rate: float, ratio: float) -> float:
    """F1 that a recall and a false-alarm rate give when there are ``ratio`` benign prompts per harmful one."""
    tp, fp = recall, ratio * false_alarm_rate
    return 2 * tp / (2 * tp + fp + 1 - tp) if tp else 0.0


def main(write: bool = True, with_alpaca: bool = False, holdout_val: bool = False) -> dict:
    from sklearn.model_selection import GroupKFold

    t0 = time.time()
    fx = HarmFeatures(lexicon=lexicon_without_val_terms()) if holdout_val else HarmFeatures()
    write = write and not holdout_val
    extra, xs, val = load(with_alpaca, val_harmful=not holdout_val)
    f_extra = [fx.features(p) for p, _ in extra]
    y_extra = np.array([y for _, y in extra])
    w_extra = row_weights([p for p, _ in extra])
    f_xs = [fx.features(p) for p, _, _ in xs]
    y_xs = np.array([y for _, y, _ in xs])
    cats = np.array([c for _, _, c in xs])
    groups = [p for p, _, _ in xs]
    feat_cache: dict[str, dict] = {}

    def fit(keep_extra: np.ndarray, xs_rows: np.ndarray, C: float, xs_weight: float):
        """The recipe on the kept ``extra`` rows and the given XSTest rows."""
        kept = np.flatnonzero(keep_extra)
        return fit_recipe([f_extra[i] for i in kept] + [f_xs[i] for i in xs_rows],
                          np.concatenate([y_extra[kept], y_xs[xs_rows]]),
                          np.r_[np.zeros(len(kept), bool), np.ones(len(xs_rows), bool)],
                          [xs[i][0] for i in xs_rows if y_xs[i] == 1], C, xs_weight, fx, feat_cache,
                          base_w=np.r_[w_extra[kept], np.ones(len(xs_rows))])

    # CV: XSTest prompts split into grouped folds (by prompt text); the other sources always train.
    gkf = GroupKFold(n_splits=N_SPLITS, shuffle=True, random_state=SEED)
    folds = [test for _, test in gkf.split(np.arange(len(xs)), groups=groups)]
    all_extra = np.ones(len(extra), bool)

    def cv(C, xs_weight):
        m = np.zeros(len(xs))
        for test in folds:
            vocab, clf = fit(all_extra, np.setdiff1d(np.arange(len(xs)), test), C, xs_weight)
            m[test] = clf.decision_function(vocab.transform([f_xs[i] for i in test]))
        return m

    # Train CV: the benchmark harmful prompts (refusal_direction train + val) are split into grouped folds too (fold k
    # holds out 1/5 of them with XSTest fold k), so their out-of-fold recall says how well the recipe finds
    # benchmark-style harmful requests it has not seen; every fold model also scores a fixed sample of Alpaca *train*
    # instructions (never trained on) for the false-alarm rate on ordinary instructions.
    n_rd = len(benchmark_harmful(val_harmful=not holdout_val))
    rd_folds = [test for _, test in GroupKFold(n_splits=N_SPLITS, shuffle=True, random_state=SEED).split(
        np.arange(n_rd), groups=[p for p, _ in extra[:n_rd]])]
    alp = alpaca_eval_sample() if not with_alpaca else []
    f_alp = [fx.features(p) for p in alp]

    def train_cv_margins(C, xs_weight):
        m_rd = np.zeros(n_rd)
        m_alp = np.zeros((N_SPLITS, len(alp)))
        for k, (rd_test, xs_test) in enumerate(zip(rd_folds, folds)):
            keep = np.ones(len(extra), bool)
            keep[rd_test] = False
            vocab, clf = fit(keep, np.setdiff1d(np.arange(len(xs)), xs_test), C, xs_weight)
            m_rd[rd_test] = clf.decision_function(vocab.transform([f_extra[i] for i in rd_test]))
            if alp:
                m_alp[k] = clf.decision_function(vocab.transform(f_alp))
        return m_rd, m_alp

    def recipe(C, xs_weight):
        """Platt scaling and thresholds from the XSTest CV, then the train CV at those thresholds."""
        m_xs = cv(C, xs_weight)
        a, b = platt(m_xs, y_xs)
        p_xs = sigmoid(a * m_xs + b)
        m_rd, m_alp = train_cv_margins(C, xs_weight)
        p_rd, p_alp = sigmoid(a * m_rd + b), sigmoid(a * m_alp + b)
        # Default threshold: among those within XS_SLACK of the best XSTest CV accuracy (144 prompts: a coarse, flat
        # curve), the one with the best train-CV F1 at SELECT_RATIO (299 harmful and 5,000 ordinary prompts). Without
        # the Alpaca sample, the best XSTest accuracy.
        grid = np.round(np.arange(0.2, 0.81, 0.01), 2)
        acc_t = {float(t): float(np.mean((p_xs >= t) == y_xs)) for t in grid}
        top = max(acc_t.values())

        def ordinary_f1(t):
            return f1_at_ratio(float(np.mean(p_rd >= t)), float(np.mean(p_alp >= t)), RATIOS[SELECT_RATIO]) if alp else 0.0

        t_acc = max((t for t in acc_t if acc_t[t] >= top - XS_SLACK),
                    key=lambda t: (round(ordinary_f1(t), 4), acc_t[t], -abs(t - 0.5)))
        t_prec = max(precision_threshold(p_xs, y_xs, 0.95), t_acc)
        tcv = {}
        for name, t in (("default", t_acc), ("high_precision", t_prec)):
            rec = float(np.mean(p_rd >= t))
            fa = float(np.mean(p_alp >= t)) if alp else float("nan")
            tcv[name] = {"harmful_recall": round(rec, 4), "n_harmful": n_rd, "alpaca_false_alarm_rate": round(fa, 5),
                         "n_alpaca": len(alp)} | {f"f1_{r}": round(f1_at_ratio(rec, fa, k), 4) for r, k in RATIOS.items()}
        acc = float(np.mean((p_xs >= t_acc) == y_xs))
        print(f"C={C} xs_weight={xs_weight}: XSTest CV accuracy {acc:.3f}; train CV {tcv}", flush=True)
        return {"C": C, "xs_weight": xs_weight, "a": a, "b": b, "p_xs": p_xs, "t_acc": t_acc, "t_prec": t_prec,
                "train_cv": tcv, "acc": acc}

    res = [recipe(C, xw) for xw in XS_WEIGHTS for C in C_GRID]
    # The recipe (C, XSTest weight): the best train-CV F1 at one harmful prompt in eleven (default threshold) among
    # those keeping XSTest CV accuracy >= XS_FLOOR; without the Alpaca sample (--with-alpaca) the best XSTest accuracy.
    ok = [r for r in res if r["acc"] >= XS_FLOOR] or res
    if alp:
        best = max(ok, key=lambda r: (r["train_cv"]["default"]["f1_" + SELECT_RATIO], r["acc"], -r["C"]))
    else:
        best = max(res, key=lambda r: (r["acc"], -r["C"]))
    C_best, xw_best, a, b, p_xs = best["C"], best["xs_weight"], best["a"], best["b"], best["p_xs"]
    t_acc, t_prec, train_cv = best["t_acc"], best["t_prec"], best["train_cv"]
    xs_stats = binary_stats(y_xs, p_xs >= t_acc)
    xs_prec = binary_stats(y_xs, p_xs >= t_prec)
    by_type = {}
    for c in sorted(set(cats)):
        k = cats == c
        by_type[c] = {"n": int(k.sum()), "accuracy": round(float(np.mean((p_xs[k] >= t_acc) == y_xs[k])), 3)}

    # Final model on everything (all XSTest prompts included). The val split's harmful prompts are training rows, so
    # only its 6,264 benign (Alpaca) prompts are scored: false alarms of the shipped model on unseen instructions.
    vocab, clf = fit(all_extra, np.arange(len(xs)), C_best, xw_best)
    val_benign = [p for p, yy in val if yy == 0]
    def final_score(texts: list[str]) -> np.ndarray:
        """P(harmful) of the final model."""
        return sigmoid(a * clf.decision_function(vocab.transform([fx.features(t) for t in texts])) + b)

    p_vb = final_score(val_benign)
    val_fa = {"n": len(val_benign), "false_alarms": int(np.sum(p_vb >= t_acc)),
              "false_alarms_high_precision": int(np.sum(p_vb >= t_prec)),
              "false_alarm_rate": round(float(np.mean(p_vb >= t_acc)), 5),
              "false_alarm_rate_high_precision": round(float(np.mean(p_vb >= t_prec)), 5)}
    train_texts = [p for p, _ in extra] + [p for p, _, _ in xs]
    probe = probe_recall(final_score, train_texts, t_acc, t_prec)
    hh = hh_eval(final_score, train_texts, t_acc, t_prec)
    tasks = tasks_eval(final_score, train_texts, t_acc, t_prec)
    held_out = {}
    if holdout_val:
        y_val = np.array([yy for _, yy in val])
        p_val = final_score([p for p, _ in val])
        pos, ben = np.flatnonzero(y_val == 1), np.flatnonzero(y_val == 0)
        held_out = {"val": binary_stats(y_val, p_val >= t_acc), "val_high_precision": binary_stats(y_val, p_val >= t_prec)}
        # F1 with 1 and 10 benign prompts drawn per harmful one (10 draws each): balanced, and one in eleven, the
        # ratio the recipe is chosen at.
        for ratio, k in (("balanced", 1), ("one_in_11", 10)):
            subs = [np.r_[pos, np.random.default_rng(SEED + d).choice(ben, k * len(pos), replace=False)] for d in range(10)]
            for name, t in (("", t_acc), ("_high_precision", t_prec)):
                f1s = [binary_stats(y_val[sub], p_val[sub] >= t)["f1"] for sub in subs]
                held_out[f"val_{ratio}{name}_f1_mean_of_10"] = round(float(np.mean(f1s)), 4)
        print("held-out val split (recipe trained without its harmful prompts)", held_out)
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
        "version": VERSION + ("+alpaca(research)" if with_alpaca else ""), "C": C_best, "xs_weight": xw_best,
        "thresholds": {"default": t_acc, "high_precision": t_prec},
        "xstest_cv": xs_stats, "xstest_cv_high_precision": xs_prec, "xstest_by_type": by_type,
        "xstest_ngram_only_accuracy": ngram_acc, "val_benign": val_fa, "n_train_extra": len(extra),
        "train_cv": train_cv, "probe": probe, "hh_eval": hh, "tasks_eval": tasks, **held_out,
        "recipes": [{k: r[k] for k in ("C", "xs_weight", "acc", "t_acc")} | {"f1_" + SELECT_RATIO: r["train_cv"]["default"]["f1_" + SELECT_RATIO]}
                    for r in res],
        # Out-of-fold P(harmful) per XSTest prompt: train_refusal.py crosses it with the refusal CV (quality "joint").
        "xstest_oof": {p: float(q) for (p, _, _), q in zip(xs, p_xs)},
    }
    print(f"C={C_best} xs_weight={xw_best} thresholds default={t_acc} high_precision={t_prec}")
    print("XSTest CV", xs_stats)
    print("XSTest CV @high-precision", xs_prec)
    print("XSTest n-gram only accuracy", ngram_acc)
    for c, s in by_type.items():
        print(f"   {c:30s} {s}")
    print("train CV (benchmark harmful recall, Alpaca train false alarms)", train_cv)
    print("val split benign (Alpaca) false alarms of the final model", val_fa)
    print("harm probe (written, never trained on)", probe)
    print("HH-RLHF first turns, hand-labelled (never trained on)", hh)
    print("written task-style requests (never trained on)", tasks)

    if write and not with_alpaca:
        model = {
            "version": VERSION, "kind": "harm", "features": "HarmFeatures",
            "harm": {"bias": round(float(clf.intercept_[0]), 5), "weights": export_weights(clf, vocab),
                     "platt": [round(a, 5), round(b, 5)]},
            "thresholds": {"harmful": t_acc, "harmful_high_precision": t_prec},
            "recipe": {"C": C_best, "xs_weight": xw_best},
            "trained_on": f"refusal_direction harmful train and val ({n_rd}; MIT/Apache-2.0 sources), XSTest dev prompts "
                          f"(144, weight {xw_best:g}; CC-BY-4.0), ~670 hand-written harmful and ~5,600 hand-written benign "
                          f"instructions, the 1,280 written prompts of training/data (weight {WRITTEN_W:g}) and its 2,396 written everyday "
                          "instructions (benign), 800 BBQ and "
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
            "train_cv": train_cv,
            "val_benign": val_fa,
            "probe": probe,
            "hh_eval": hh,
            "tasks_eval": tasks,
        })
        print("wrote", MODELS / "harm.json", f"({(MODELS / 'harm.json').stat().st_size / 1e3:.0f} kB)")
        refresh_training_keys()
    print(f"done in {time.time() - t0:.1f}s")
    return report


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="report CV only, do not write model files")
    ap.add_argument("--with-alpaca", action="store_true", help="research variant trained with CC BY-NC Alpaca (never written)")
    ap.add_argument("--holdout-val", action="store_true", help="recipe without the val harmful prompts, val reported as held out")
    args = ap.parse_args()
    main(write=not args.no_write, with_alpaca=args.with_alpaca, holdout_val=args.holdout_val)
