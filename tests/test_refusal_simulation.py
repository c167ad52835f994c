"""Seeded simulation: traffic with known over- and under-refusal built from real labelled XSTest replies.

Honest by construction:
1. Classifier predictions are out-of-fold: the bundled classifiers were trained on xstest_dev, so scoring it with
   them would be in-sample. Instead the same recipe (monitor.classify features, training/common.py learner,
   the same extra training sources) is refit in a 5-fold GroupKFold by prompt, and each row is predicted by the
   model that never saw its prompt.
2. Traffic (20,000 turns, 30% harmful requests) is drawn with replacement from the real (prompt, reply) pairs so
   that exactly TRUE_OVER of benign requests are refused and TRUE_UNDER of harmful requests complied with.
3. The error rates are never taken from the traffic's full truth: reviewers label a random sample of the
   traffic (as the review queue's stratified items are), and only those labels feed the correction.
4. The end-to-end test writes the traffic into a real lake and the labels into the state database (plus
   targeted review-queue labels that must be ignored) and runs the refusal_metrics job.

Run as a script to print the tables used in docs/refusal.md: ``python tests/test_refusal_simulation.py``.
"""
from __future__ import annotations

import json
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from monitor.stats import (
    ErrorRates, correct_joint_em, correct_many, correct_many_joint, correct_two_classifiers, joint_error_counts,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "refusal" / "xstest_dev.jsonl"
TRUE_OVER, TRUE_UNDER = 0.12, 0.10
HARMFUL_SHARE = 0.30
N_TURNS = 20_000
N_LABELS = 2000
SEEDS = tuple(range(10))


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
    n_labels: int
    true_over: float  # realised in the traffic (design value +- sampling noise)
    true_under: float
    raw_over: float
    raw_under: float
    kron_over: float  # independence model, sens/spec from the same labels
    kron_under: float
    joint_over: float  # joint correction: EM with the window's own labels, or the matrix from another period
    joint_over_ci: tuple[float, float]
    joint_under: float
    joint_under_ci: tuple[float, float]


def _truth(rows):
    th = np.array([r["prompt_label"] == "harmful" for r in rows])
    tr = np.array([r["refusal_label"] != "compliance" for r in rows])
    return th, tr


def simulate_labels(rows, pred_refused, pred_harmful, seed: int, n_labels: int = N_LABELS,
                    n_turns: int = N_TURNS, same_window: bool = True, draws: int = 400) -> LabelSimResult:
    """Correct one window of traffic with reviewer labels on a random sample of turns.

    same_window=True: the labelled turns are a random sample of this very window (the job then runs the EM of
    `correct_joint_em` on the row). False: they come from another period of the same traffic mix (a separate
    draw), so the window has no labelled turn of its own and the job inverts the matrix (`correct_many_joint`).
    """
    rng = np.random.default_rng(1000 + seed)
    th, tr = _truth(rows)
    pool = np.arange(len(rows))
    tra = _draw(rng, th, tr, pool, n_turns)
    lab = tra[rng.choice(n_turns, n_labels, replace=False)] if same_window else _draw(rng, th, tr, pool, n_labels)
    ph, pr = pred_harmful[tra], pred_refused[tra]
    table = np.array([[(~ph & ~pr).sum(), (~ph & pr).sum()], [(ph & ~pr).sum(), (ph & pr).sum()]])
    harm = ErrorRates(int((pred_harmful[lab] & th[lab]).sum()), int(th[lab].sum()),
                      int((~pred_harmful[lab] & ~th[lab]).sum()), int((~th[lab]).sum()), "labels")
    refusal = ErrorRates(int((pred_refused[lab] & tr[lab]).sum()), int(tr[lab].sum()),
                         int((~pred_refused[lab] & ~tr[lab]).sum()), int((~tr[lab]).sum()), "labels")
    k = correct_many([table], harm, refusal, draws=draws)[0]
    jc = joint_error_counts(th[lab], tr[lab], pred_harmful[lab], pred_refused[lab])
    if same_window:
        j = correct_joint_em(table, jc, np.zeros((4, 4)), draws=draws)
    else:
        j = correct_many_joint([table], jc, draws=draws)[0]
    t_h, t_r = th[tra], tr[tra]
    return LabelSimResult(seed, n_labels, (~t_h & t_r).sum() / (~t_h).sum(), (t_h & ~t_r).sum() / t_h.sum(),
                          table[0, 1] / table[0].sum(), table[1, 0] / table[1].sum(), k.over.value, k.under.value,
                          j.over.value, (j.over.low, j.over.high), j.under.value, (j.under.low, j.under.high))


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
    """2,000 reviewer labels on a random sample of a 20,000-turn window: both corrected rates within 3 points."""
    rows, refused, harmful = predictions
    results = [simulate_labels(rows, refused, harmful, seed) for seed in SEEDS]
    over_err = [abs(r.joint_over - TRUE_OVER) for r in results]
    under_err = [abs(r.joint_under - TRUE_UNDER) for r in results]
    # Measured over 100 seeds (error_table, harm features of harm-lr-2026.11.6): mean 0.6 / 0.8 points, 95th
    # percentile 1.4 / 2.0, worst 2.3 / 2.9 (over / under): ten seeds all within 3 points is the expected outcome,
    # not a lucky draw.
    assert max(over_err) <= 0.03 and max(under_err) <= 0.03, results
    # The raw rates are far off: benign prompts misread as harmful inflate under-refusal most (raw 19.6-21.0% for a
    # true 10% with 2026.11.6's harm features, 24.6% with 2026.11.5's; over-refusal 19-20% for 12%).
    assert all(r.raw_under > 1.8 * TRUE_UNDER and r.raw_over > 1.4 * TRUE_OVER for r in results)
    # 95% intervals: measured coverage over 100 seeds 94% (over) and 95% (under).
    assert sum(r.joint_over_ci[0] <= TRUE_OVER <= r.joint_over_ci[1] for r in results) >= len(results) - 2
    assert sum(r.joint_under_ci[0] <= TRUE_UNDER <= r.joint_under_ci[1] for r in results) >= len(results) - 2
    # The independence model, with sens/spec from the same labels, reads under-refusal too low on average: 6.3-8.9%
    # in five seeds with the harm features of harm-lr-2026.11.6, 8.7-9.2% with 2026.11.4's, 2-5 points low with
    # 2026.11.2's.
    assert np.mean([r.kron_under for r in results]) < TRUE_UNDER - 0.005


def test_matrix_from_another_period_is_honest_but_less_precise(predictions):
    """Labels from another period (none in the window): the matrix inversion is unbiased but noisier, and its
    interval says so."""
    rows, refused, harmful = predictions
    same = [simulate_labels(rows, refused, harmful, seed) for seed in SEEDS]
    other = [simulate_labels(rows, refused, harmful, seed, same_window=False) for seed in SEEDS]
    width = lambda rs: np.median([r.joint_under_ci[1] - r.joint_under_ci[0] for r in rs])  # noqa: E731
    assert width(other) > 1.5 * width(same)
    covered = sum(r.joint_under_ci[0] <= TRUE_UNDER <= r.joint_under_ci[1] for r in other)
    assert covered >= len(other) - 2  # measured 93% over 100 seeds
    assert abs(np.mean([r.joint_under for r in other]) - TRUE_UNDER) < 0.03


def test_prompt_split_calibration_is_honestly_uncertain(predictions):
    """With error rates from only ~36 other prompts per class, the correction is noisy; its interval must say so."""
    rows, refused, harmful = predictions
    results = [simulate(rows, refused, harmful, seed) for seed in SEEDS]
    assert all(r.raw_under > 1.5 * TRUE_UNDER for r in results)
    widths = [r.under_ci[1] - r.under_ci[0] for r in results if r.under == r.under]
    assert widths and np.median(widths) > 0.10


DAY = dt.datetime(2026, 5, 4)


def test_job_end_to_end_corrects_with_the_joint_method(predictions, tmp_path):
    """20,000 simulated turns and 2,000 random-sample labels through the real lake, state and refusal_metrics."""
    from monitor.disparity.simulate import write_scored_turns
    from monitor.home import Home
    from monitor.jobs import JobContext
    from monitor.jobs.refusal_metrics import STATE_KEY, run_refusal_metrics

    rows, refused, harmful = predictions
    th, tr = _truth(rows)
    rng = np.random.default_rng(77)
    tra = _draw(rng, th, tr, np.arange(len(rows)), N_TURNS)
    home = Home.open(tmp_path / "home")
    turns = [{"turn_id": f"t{k:05d}", "ts": DAY + dt.timedelta(seconds=int(rng.integers(86_400))),
              "model_version": "2026-05", "attrs": {"language": "en" if k % 3 else "de"},
              "user_message": rows[i]["prompt"], "assistant_message": rows[i]["response"],
              "refusal": "full_refusal" if refused[i] else "compliance",
              "prompt_harm": "harmful" if harmful[i] else "benign"} for k, i in enumerate(tra)]
    write_scored_turns(home, turns, scored_at=DAY + dt.timedelta(days=1))
    sample = rng.choice(N_TURNS, N_LABELS, replace=False)
    # Targeted labels must not reach the matrix: the queue's uncertain items, here turns whose prompt the harm
    # classifier got wrong (counting them would roughly double the measured false-positive rate).
    wrong = np.setdiff1d(np.flatnonzero(harmful[tra] != th[tra]), sample)[:300]
    with home.state.tx() as con:
        for k in sample:
            r = rows[tra[k]]
            con.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                        (f"t{k:05d}", "ann", "2026-05-06T10:00:00Z", r["refusal_label"], r["prompt_label"]))
            con.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                        (f"t{k:05d}", "stratified", 0.5, "2026-05-05T00:00:00Z"))
        for k in sample[:100]:  # two more reviewers: one agrees, one (later) disagrees; the majority stands
            r = rows[tra[k]]
            wrong_label = "harmful" if r["prompt_label"] == "benign" else "benign"
            con.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                        (f"t{k:05d}", "bo", "2026-05-06T11:00:00Z", r["refusal_label"], r["prompt_label"]))
            con.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                        (f"t{k:05d}", "cy", "2026-05-06T12:00:00Z", r["refusal_label"], wrong_label))
        for k in wrong:
            r = rows[tra[k]]
            con.execute("INSERT INTO labels (turn_id, reviewer, at, refusal_label, prompt_label) VALUES (?,?,?,?,?)",
                        (f"t{k:05d}", "ann", "2026-05-06T10:00:00Z", r["refusal_label"], r["prompt_label"]))
            con.execute("INSERT INTO review_queue (turn_id, reason, priority, added_at) VALUES (?,?,?,?)",
                        (f"t{k:05d}", "uncertain_harm", 0.9, "2026-05-05T00:00:00Z"))

    assert run_refusal_metrics(JobContext(home, DAY + dt.timedelta(days=2)), draws=200) > 0
    from monitor.db import connect

    con = connect(home)
    try:
        got = {r["metric"]: r for r in con.execute(
            "SELECT * FROM metrics WHERE metric IN ('over_refusal_rate', 'under_refusal_rate') AND model IS NULL "
            "AND deployment IS NULL AND segment = '{}'").df().to_dict("records")}
        de = con.execute("SELECT corrected, details FROM metrics WHERE metric = 'under_refusal_rate' "
                         "AND model IS NULL AND deployment IS NULL AND segment = $s",
                         {"s": json.dumps({"language": "de"})}).fetchone()
    finally:
        con.close()
    note = home.state.get(STATE_KEY)["labels"]
    assert (note["random_sample"], note["targeted_excluded"], note["multi_reviewer_turns"]) == (2000, 300, 100)
    for metric, truth in (("over_refusal_rate", TRUE_OVER), ("under_refusal_rate", TRUE_UNDER)):
        row = got[metric]
        corr = json.loads(row["details"])["correction"]
        assert (corr["method"], corr["source"], corr["in_group_labels"]) == ("joint_em", "labels:all_models", 2000)
        assert sum(corr["matrix_n_per_true_cell"]) == 2000 and "random sample" in corr["assumption"]
        assert abs(row["corrected"] - truth) <= 0.03, (metric, row["corrected"], row["value"])
        assert row["corrected_ci_low"] <= truth <= row["corrected_ci_high"]
        assert abs(row["value"] - truth) > 0.05  # the raw rate is far off
    # The job's numbers are exactly the library's on the same counts (majority labels, targeted ones left out).
    ph, pr, t_h, t_r = harmful[tra], refused[tra], th[tra], tr[tra]
    table = np.array([[(~ph & ~pr).sum(), (~ph & pr).sum()], [(ph & ~pr).sum(), (ph & pr).sum()]])
    jc = joint_error_counts(t_h[sample], t_r[sample], ph[sample], pr[sample])
    direct = correct_joint_em(table, jc, np.zeros((4, 4)), draws=200)
    assert got["under_refusal_rate"]["corrected"] == pytest.approx(direct.under.value, abs=1e-9)
    assert got["over_refusal_rate"]["corrected"] == pytest.approx(direct.over.value, abs=1e-9)
    # A segment row uses its own labelled turns in the EM and the rest for the matrix.
    assert json.loads(de[1])["correction"]["in_group_labels"] == int((sample % 3 == 0).sum())
    assert abs(de[0] - TRUE_UNDER) <= 0.05


def error_table(rows, refused, harmful, sizes=(250, 500, 1000, 2000, 4000), seeds=range(100)) -> str:
    """Mean, 95th-percentile and worst absolute error (points) of corrected rates against the design truth."""
    lines = ["| labels | same window (EM): over mean / p95 / worst | under | other period (matrix): over | under |",
             "|---|---|---|---|---|"]
    raw = []
    for n in sizes:
        cells = []
        for same in (True, False):
            rs = [simulate_labels(rows, refused, harmful, s, n_labels=n, same_window=same, draws=20) for s in seeds]
            raw += [(r.raw_over, r.raw_under) for r in rs]
            for attr, truth in (("joint_over", TRUE_OVER), ("joint_under", TRUE_UNDER)):
                e = np.abs(np.array([getattr(r, attr) for r in rs]) - truth) * 100
                cells.append(f"{np.nanmean(e):.1f} / {np.nanquantile(e, 0.95):.1f} / {np.nanmax(e):.1f}")
        lines.append(f"| {n:,} | " + " | ".join(cells) + " |")
    raw_a = np.array(raw)
    lines.append("")
    lines.append(f"Raw rates: over-refusal {raw_a[:, 0].mean():.1%} (truth {TRUE_OVER:.0%}), under-refusal "
                 f"{raw_a[:, 1].mean():.1%} (truth {TRUE_UNDER:.0%}).")
    return "\n".join(lines)


def report(results: list[SimResult], label_results: list[LabelSimResult]) -> str:
    lines = [f"Labels ({N_LABELS:,} reviewer labels on a random sample of a {N_TURNS:,}-turn window):", "",
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
    print(report([simulate(rows, refused, harmful, s, n_turns=6000) for s in SEEDS[:5]],
                 [simulate_labels(rows, refused, harmful, s) for s in SEEDS[:5]]))
    print()
    print(error_table(rows, refused, harmful))
