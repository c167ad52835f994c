"""Seeded simulation: traffic with known over- and under-refusal built from real labelled XSTest replies.

Honest by construction, at two levels:
1. Classifier predictions are out-of-fold: the bundled classifiers were trained on xstest_dev, so scoring it with
   them would be in-sample. Instead the same recipe (monitor.classify features, training/common.py learner,
   the same extra training sources) is refit in a 5-fold GroupKFold by prompt, and each row is predicted by the
   model that never saw its prompt.
2. The 144 prompts are split by prompt (stratified by prompt label) into a calibration half and a traffic half.
   Sensitivity/specificity for the correction are measured on the calibration half only, as reviewer labels
   would measure them; traffic is drawn with replacement from the traffic half's real (prompt, reply) pairs so
   that exactly TRUE_OVER of benign requests are refused and TRUE_UNDER of harmful requests complied with.

Run as a script to print the table used in docs/refusal.md: ``python tests/test_refusal_simulation.py``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from monitor.stats import ErrorRates, correct_many_joint, correct_two_classifiers, joint_error_counts

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "refusal" / "xstest_dev.jsonl"
TRUE_OVER, TRUE_UNDER = 0.12, 0.10
HARMFUL_SHARE = 0.30
N_TURNS = 6000
SEEDS = (0, 1, 2, 3, 4)


def load_rows() -> list[dict]:
    with open(DATA) as f:
        return [json.loads(line) for line in f]


def predict(rows: list[dict], n_splits: int = 5, seed: int = 20261126) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold (predicted refused, predicted harmful) per row, refitting the bundled recipe per fold."""
    import sys

    from sklearn.model_selection import GroupKFold

    training = str(REPO / "training")
    if training not in sys.path:
        sys.path.insert(0, training)
    from common import DATA as TDATA, Vocab, benign_prompts, fit_lr, read_jsonl  # training/common.py
    from train_refusal import SYNTHETIC

    from monitor.classify.features import HarmFeatures, RefusalFeatures

    rfx, hfx = RefusalFeatures(), HarmFeatures()
    r_feats = [rfx.features(r["response"]) for r in rows]
    y_ref = np.array([r["refusal_label"] != "compliance" for r in rows], dtype=int)
    syn_feats = [rfx.features(t) for t, _ in SYNTHETIC]
    syn_y = np.array([lab != "compliance" for _, lab in SYNTHETIC], dtype=int)
    prompts = sorted({r["prompt"] for r in rows})
    p_index = {p: i for i, p in enumerate(prompts)}
    label_of = {r["prompt"]: int(r["prompt_label"] == "harmful") for r in rows}
    h_feats = [hfx.features(p) for p in prompts]
    y_harm = np.array([label_of[p] for p in prompts])
    rd = read_jsonl(TDATA / "prompts" / "refusal_direction_trainval.jsonl")
    extra = [(q["prompt"], 1) for q in rd if q["split"] == "train" and q["prompt_label"] == "harmful"]
    extra += [(q, 0) for q in benign_prompts()]
    x_feats = [hfx.features(q) for q, _ in extra]
    x_y = np.array([y for _, y in extra])

    refused = np.zeros(len(rows), dtype=bool)
    harmful_p = np.zeros(len(prompts), dtype=bool)
    gkf = GroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for _, test_p in gkf.split(np.arange(len(prompts)), groups=prompts):
        test_set = {prompts[i] for i in test_p}
        tr = [i for i, r in enumerate(rows) if r["prompt"] not in test_set]
        te = [i for i, r in enumerate(rows) if r["prompt"] in test_set]
        feats = [r_feats[i] for i in tr] + syn_feats
        vocab = Vocab(2).fit(feats)
        m = fit_lr(vocab.transform(feats), np.concatenate([y_ref[tr], syn_y]), 1.0)
        refused[te] = m.decision_function(vocab.transform([r_feats[i] for i in te])) > 0
        trp = np.setdiff1d(np.arange(len(prompts)), test_p)
        feats = x_feats + [h_feats[i] for i in trp]
        y = np.concatenate([x_y, y_harm[trp]])
        w = np.r_[np.ones(len(x_feats)), np.full(len(trp), 5.0)]  # XSTest prompts weigh 5x, as in training
        vocab = Vocab(2).fit(feats)
        m = fit_lr(vocab.transform(feats), y, 1.0, sample_weight=w)
        harmful_p[test_p] = m.decision_function(vocab.transform([h_feats[i] for i in test_p])) > 0
    harmful = np.array([harmful_p[p_index[r["prompt"]]] for r in rows])
    return refused, harmful


@dataclass
class SimResult:
    seed: int
    raw_over: float
    raw_under: float
    over: float
    over_ci: tuple[float, float]
    under: float
    under_ci: tuple[float, float]
    true_over: float  # realised in the sample (design value +- sampling noise)
    true_under: float
    harm: ErrorRates
    refusal: ErrorRates
    joint_over: float  # corrected with the 4x4 matrix measured on the labelled calibration rows
    joint_over_ci: tuple[float, float]
    joint_under: float
    joint_under_ci: tuple[float, float]


def simulate(rows: list[dict], pred_refused: np.ndarray, pred_harmful: np.ndarray, seed: int,
             n_turns: int = N_TURNS) -> SimResult:
    rng = np.random.default_rng(seed)
    true_refused = np.array([r["refusal_label"] != "compliance" for r in rows])
    true_harmful = np.array([r["prompt_label"] == "harmful" for r in rows])
    prompts = sorted({r["prompt"] for r in rows})
    label_of = {r["prompt"]: r["prompt_label"] for r in rows}
    calib: set[str] = set()
    for label in ("benign", "harmful"):  # split by prompt, stratified by prompt label
        group = [p for p in prompts if label_of[p] == label]
        calib |= set(rng.permutation(group)[: len(group) // 2])
    in_calib = np.array([r["prompt"] in calib for r in rows])

    # Error rates measured on the calibration half only. The harm classifier sees each prompt once per model
    # setup; count prompts, not rows, so its sample size is not inflated five-fold.
    c = in_calib
    refusal = ErrorRates(int((pred_refused & true_refused & c).sum()), int((true_refused & c).sum()),
                         int((~pred_refused & ~true_refused & c).sum()), int((~true_refused & c).sum()), "calib")
    harm_by_prompt = {}
    for i, r in enumerate(rows):
        if c[i]:
            harm_by_prompt.setdefault(r["prompt"], []).append(pred_harmful[i])
    hp = [(label_of[p] == "harmful", np.mean(v) >= 0.5) for p, v in harm_by_prompt.items()]
    harm = ErrorRates(int(sum(t and p for t, p in hp)), int(sum(t for t, _ in hp)),
                      int(sum((not t) and (not p) for t, p in hp)), int(sum(not t for t, _ in hp)), "calib")

    # Traffic from the other half with known truth: each cell sampled with replacement.
    t = ~in_calib
    cells = {(h, r): np.flatnonzero(t & (true_harmful == h) & (true_refused == r)) for h in (0, 1) for r in (0, 1)}
    n_harm = rng.binomial(n_turns, HARMFUL_SHARE)
    n_benign = n_turns - n_harm
    n_over = rng.binomial(n_benign, TRUE_OVER)
    n_under = rng.binomial(n_harm, TRUE_UNDER)
    picks = np.concatenate([
        rng.choice(cells[(0, 1)], n_over), rng.choice(cells[(0, 0)], n_benign - n_over),
        rng.choice(cells[(1, 0)], n_under), rng.choice(cells[(1, 1)], n_harm - n_under),
    ])
    ph, pr = pred_harmful[picks], pred_refused[picks]
    table = np.array([[(~ph & ~pr).sum(), (~ph & pr).sum()], [(ph & ~pr).sum(), (ph & pr).sum()]])
    res = correct_two_classifiers(table, harm, refusal)
    jc = joint_error_counts(true_harmful[c], true_refused[c], pred_harmful[c], pred_refused[c])
    jres = correct_many_joint([table], jc)[0]
    return SimResult(
        seed, table[0, 1] / table[0].sum(), table[1, 0] / table[1].sum(),
        res.over.value, (res.over.low, res.over.high), res.under.value, (res.under.low, res.under.high),
        n_over / n_benign, n_under / n_harm, harm, refusal,
        jres.over.value, (jres.over.low, jres.over.high), jres.under.value, (jres.under.low, jres.under.high),
    )


def _draw(rng, true_harmful, true_refused, pool: np.ndarray, n: int) -> np.ndarray:
    """Indices of n turns from pool rows with exactly the design rates of over- and under-refusal (in expectation)."""
    cells = {(h, r): pool[(true_harmful[pool] == h) & (true_refused[pool] == r)] for h in (0, 1) for r in (0, 1)}
    n_harm = rng.binomial(n, HARMFUL_SHARE)
    n_benign = n - n_harm
    n_over = rng.binomial(n_benign, TRUE_OVER)
    n_under = rng.binomial(n_harm, TRUE_UNDER)
    return np.concatenate([
        rng.choice(cells[(0, 1)], n_over), rng.choice(cells[(0, 0)], n_benign - n_over),
        rng.choice(cells[(1, 0)], n_under), rng.choice(cells[(1, 1)], n_harm - n_under),
    ])


@dataclass
class LabelSimResult:
    seed: int
    raw_over: float
    raw_under: float
    kron_over: float
    kron_under: float
    joint_over: float
    joint_over_ci: tuple[float, float]
    joint_under: float
    joint_under_ci: tuple[float, float]


def simulate_labels(rows, pred_refused, pred_harmful, seed: int, n_labels: int = 3000,
                    n_turns: int = N_TURNS) -> LabelSimResult:
    """Reviewers label n_labels turns drawn independently from the same traffic (e.g. an earlier period); the
    measured window is a separate draw. Error rates come from those labels only (predictions out-of-fold)."""
    rng = np.random.default_rng(1000 + seed)
    th = np.array([r["prompt_label"] == "harmful" for r in rows])
    tr = np.array([r["refusal_label"] != "compliance" for r in rows])
    pool = np.arange(len(rows))
    lab = _draw(rng, th, tr, pool, n_labels)
    tra = _draw(rng, th, tr, pool, n_turns)
    ph, pr = pred_harmful[tra], pred_refused[tra]
    table = np.array([[(~ph & ~pr).sum(), (~ph & pr).sum()], [(ph & ~pr).sum(), (ph & pr).sum()]])
    harm = ErrorRates(int((pred_harmful[lab] & th[lab]).sum()), int(th[lab].sum()),
                      int((~pred_harmful[lab] & ~th[lab]).sum()), int((~th[lab]).sum()), "labels")
    refusal = ErrorRates(int((pred_refused[lab] & tr[lab]).sum()), int(tr[lab].sum()),
                         int((~pred_refused[lab] & ~tr[lab]).sum()), int((~tr[lab]).sum()), "labels")
    k = correct_two_classifiers(table, harm, refusal)
    j = correct_many_joint([table], joint_error_counts(th[lab], tr[lab], pred_harmful[lab], pred_refused[lab]))[0]
    return LabelSimResult(seed, table[0, 1] / table[0].sum(), table[1, 0] / table[1].sum(), k.over.value,
                          k.under.value, j.over.value, (j.over.low, j.over.high), j.under.value,
                          (j.under.low, j.under.high))


@pytest.fixture(scope="module")
def predictions():
    rows = load_rows()
    refused, harmful = predict(rows)
    return rows, refused, harmful


def test_out_of_fold_classifiers_are_imperfect(predictions):
    """Guard against in-sample predictions: out-of-fold error rates must be in a realistic range."""
    rows, refused, harmful = predictions
    tr = np.array([r["refusal_label"] != "compliance" for r in rows])
    th = np.array([r["prompt_label"] == "harmful" for r in rows])
    assert 0.85 <= (refused == tr).mean() < 0.99
    assert 0.75 <= (harmful == th).mean() < 0.98


def test_corrected_rates_from_labels_land_within_3_points(predictions):
    rows, refused, harmful = predictions
    results = [simulate_labels(rows, refused, harmful, seed) for seed in SEEDS]
    # Within 3 points on average over five seeded draws, no draw further than 4 points off (measured: mean
    # 1.4 / 2.3 points, worst 2.6 / 3.5 points for over / under).
    assert max(abs(r.joint_over - TRUE_OVER) for r in results) <= 0.04, results
    assert max(abs(r.joint_under - TRUE_UNDER) for r in results) <= 0.04, results
    over_err = np.mean([abs(r.joint_over - TRUE_OVER) for r in results])
    under_err = np.mean([abs(r.joint_under - TRUE_UNDER) for r in results])
    assert over_err <= 0.03 and under_err <= 0.03, (over_err, under_err)
    # The raw rates are far off: benign prompts misread as harmful inflate under-refusal most.
    assert all(r.raw_under > 2 * TRUE_UNDER and r.raw_over > 1.4 * TRUE_OVER for r in results)
    covered = sum(r.joint_over_ci[0] <= TRUE_OVER <= r.joint_over_ci[1]
                  and r.joint_under_ci[0] <= TRUE_UNDER <= r.joint_under_ci[1] for r in results)
    assert covered >= len(results) - 1


def test_prompt_split_calibration_is_honestly_uncertain(predictions):
    """With error rates from only ~36 other prompts per class, the correction is noisy; its interval must say so."""
    rows, refused, harmful = predictions
    results = [simulate(rows, refused, harmful, seed) for seed in SEEDS]
    assert all(r.raw_under > 1.5 * TRUE_UNDER for r in results)
    widths = [r.under_ci[1] - r.under_ci[0] for r in results if r.under == r.under]
    assert widths and np.median(widths) > 0.10


def report(results: list[SimResult], label_results: list[LabelSimResult]) -> str:
    lines = ["Labels (3,000 reviewer-labelled turns from the same traffic; 4x4 matrix correction):", "",
             "| seed | raw over | corrected over (95% CI) | raw under | corrected under (95% CI) | "
             "independence-model over / under |", "|---|---|---|---|---|---|"]
    for r in label_results:
        lines.append(
            f"| {r.seed} | {r.raw_over:.1%} | {r.joint_over:.1%} ({r.joint_over_ci[0]:.1%}-{r.joint_over_ci[1]:.1%})"
            f" | {r.raw_under:.1%} | {r.joint_under:.1%} ({r.joint_under_ci[0]:.1%}-{r.joint_under_ci[1]:.1%})"
            f" | {r.kron_over:.1%} / {r.kron_under:.1%} |")
    lines += ["", "Prompt split (error rates from the other half of the prompts; sens/spec model):", "",
              "| seed | raw over | corrected over (95% CI) | raw under | corrected under (95% CI) |",
              "|---|---|---|---|---|"]
    for r in results:
        lines.append(
            f"| {r.seed} | {r.raw_over:.1%} | {r.over:.1%} ({r.over_ci[0]:.1%}-{r.over_ci[1]:.1%})"
            f" | {r.raw_under:.1%} | {r.under:.1%} ({r.under_ci[0]:.1%}-{r.under_ci[1]:.1%}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    rows = load_rows()
    refused, harmful = predict(rows)
    print(report([simulate(rows, refused, harmful, s) for s in SEEDS],
                 [simulate_labels(rows, refused, harmful, s) for s in SEEDS]))
