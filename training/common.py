"""Shared helpers for the classifier training scripts: data loading, vectorising, grouped CV, export."""
from __future__ import annotations

import gzip
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import sparse

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data"
MODELS = REPO / "monitor" / "classify" / "models"
SEED = 20261126


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSON-lines file (optionally .gz) into a list of dicts."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def xstest_rows() -> list[dict]:
    """The 720 labelled XSTest dev responses."""
    return read_jsonl(DATA / "refusal" / "xstest_dev.jsonl")


def xstest_prompts() -> list[dict]:
    """The 144 XSTest dev prompts with benign/harmful labels."""
    return read_jsonl(DATA / "refusal" / "xstest_dev_prompts.jsonl")


def hh_first_turns() -> list[tuple[str, str, str]]:
    """(first human turn, chosen first reply, rejected first reply) from HH-RLHF harmless-base test (MIT)."""
    out = []
    for row in read_jsonl(DATA / "conversations" / "hh_rlhf_harmless_base" / "test.jsonl.gz"):
        def first(tr: str) -> tuple[str, str]:
            parts = tr.split("\n\nAssistant:")
            human = parts[0].replace("\n\nHuman:", "").strip()
            reply = parts[1].split("\n\nHuman:")[0].strip() if len(parts) > 1 else ""
            return human, reply
        h, c = first(row["chosen"])
        _, r = first(row["rejected"])
        out.append((h, c, r))
    return out


class Vocab:
    """Maps feature names to columns, keeping n-grams seen in at least ``min_df`` training texts."""

    def __init__(self, min_df: int = 2):
        self.min_df = min_df
        self.index: dict[str, int] = {}

    def fit(self, feats: list[dict]) -> "Vocab":
        df: dict[str, int] = {}
        for f in feats:
            for k in f:
                df[k] = df.get(k, 0) + 1
        keep = sorted(k for k, n in df.items() if n >= self.min_df or k.startswith(("d:", "c:")))
        self.index = {k: i for i, k in enumerate(keep)}
        return self

    def transform(self, feats: list[dict]) -> sparse.csr_matrix:
        rows, cols, vals = [], [], []
        for i, f in enumerate(feats):
            for k, v in f.items():
                j = self.index.get(k)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
                    vals.append(v)
        return sparse.csr_matrix((vals, (rows, cols)), shape=(len(feats), len(self.index)), dtype=np.float64)


def fit_lr(X, y, C: float, sample_weight=None):
    """L2 logistic regression with fixed settings (liblinear is deterministic)."""
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, solver="liblinear", max_iter=2000, class_weight="balanced", random_state=SEED)
    clf.fit(X, y, sample_weight=sample_weight)
    return clf


def platt(margins: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit Platt scaling p = sigmoid(a*m + b) on out-of-fold margins."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, solver="lbfgs", max_iter=1000)
    lr.fit(margins.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def export_weights(clf, vocab: Vocab, tol: float = 1e-4) -> dict[str, float]:
    """Non-negligible weights keyed by feature name, rounded to keep the JSON small."""
    w = clf.coef_[0]
    names = list(vocab.index)
    return {names[j]: round(float(w[j]), 5) for j in np.flatnonzero(np.abs(w) > tol)}


def binary_stats(y_true, y_pred) -> dict:
    """Sensitivity, specificity, precision, F1 and counts of a binary prediction."""
    y_true = np.asarray(y_true, bool)
    y_pred = np.asarray(y_pred, bool)
    tp = int(np.sum(y_true & y_pred))
    fn = int(np.sum(y_true & ~y_pred))
    fp = int(np.sum(~y_true & y_pred))
    tn = int(np.sum(~y_true & ~y_pred))
    sens = tp / (tp + fn) if tp + fn else math.nan
    spec = tn / (tn + fp) if tn + fp else math.nan
    prec = tp / (tp + fp) if tp + fp else math.nan
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return {
        "sensitivity": round(sens, 4), "specificity": round(spec, 4), "precision": round(prec, 4),
        "f1": round(f1, 4), "accuracy": round((tp + tn) / max(len(y_true), 1), 4),
        "n_pos": tp + fn, "n_neg": tn + fp, "tp": tp, "fn": fn, "fp": fp, "tn": tn,
    }


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """Probability threshold that maximises F1 on (out-of-fold) predictions."""
    best, best_t = -1.0, 0.5
    for t in np.round(np.arange(0.05, 0.96, 0.01), 2):
        f1 = binary_stats(y, p >= t)["f1"]
        if f1 > best + 1e-9:
            best, best_t = f1, float(t)
    return best_t


def precision_threshold(p: np.ndarray, y: np.ndarray, target: float) -> float:
    """Lowest threshold whose out-of-fold precision reaches ``target`` (keeps the most recall)."""
    for t in np.round(np.arange(0.05, 0.99, 0.01), 2):
        s = binary_stats(y, p >= t)
        if s["tp"] and s["precision"] >= target:
            return float(t)
    return 0.99


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def update_quality(section: str, value: dict) -> None:
    """Replace one classifier's section in the bundled quality.json, keeping the other's."""
    path = MODELS / "quality.json"
    q = json.loads(path.read_text()) if path.exists() else {}
    q[section] = value
    write_json(path, q)
