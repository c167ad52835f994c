"""Job `score`: classify every turn not yet scored by the current classifier versions and append to `scores`.

Incremental: only turn files committed since the last run are read (a watermark per classifier identity, see
monitor/incremental.py), and among them a turn is pending while no `scores` row carries the loaded classifiers'
versions and backend (sql/jobs/score_pending.sql), so a new classifier version re-scores everything once and view
`latest_scores` then prefers the newest rows. Batches are classified in one forked process per CPU (lexical
backend, more than one batch pending) and committed in order, batch by batch, so an interrupted run keeps
what it finished. A turn whose non-empty text got no label (for example an LLM judge out of its daily budget)
is left pending for the next run; a turn with nothing to classify gets a row with null labels so it is not
retried forever.

Language gate: the bundled models read only English, and on other languages they guess (a Spanish refusal scores
as compliance, a Hindi request for a bomb as benign). A reply or prompt with positive evidence of another language
(monitor/textlang.py; for a reply, unless its opening sentence is English: "Here is the translation: ..." is read
from that opening) that an English-only model labelled gets null labels instead, like an empty text: it is left
out of every rate's n, and the metric rows count it as `unscored` (sql/metrics/refusal_rates.sql). The gate's
version is part of the scoring identity (`backend` is written as e.g. `lexical+lang3`), so turns scored before it
existed are scored once more.
"""
from __future__ import annotations

import importlib.util
import logging
import multiprocessing
import os
import signal
from collections import deque

import numpy as np
import pyarrow as pa

from monitor.classify.base import english_only_guesses
from monitor.db import scoped_connect
from monitor.errors import ClassifierError
from monitor.incremental import Delta
from monitor.jobs import Job, JobContext
from monitor.resources import load_sql
from monitor.schema import SCORES
from monitor.state import utcnow
from monitor.textlang import not_english, reply_not_english

log = logging.getLogger("monitor.jobs.score")

BATCH_ROWS = 20_000
# A batch a scoring process has not answered in this long (it was killed, e.g. by the OOM killer, and the pool lost
# its task: waiting longer would wait for ever) is scored here instead.
WORKER_TIMEOUT_S = 300.0
MIN_PARALLEL = 4_000  # below this, forking the workers costs more than it saves
WATERMARK_KEY = "score.turns_watermark"
LANGUAGE_GATE = "lang3"  # version of the language gate; bump when monitor/textlang.py decides differently
# (lang2: a reply with an English opening sentence is scored, reply_not_english; lang3: a short reply with no
# English words but a sign of another language, answering a prompt in another language, is gated; a reply in
# another language to an English request for one, a bare translation, is scored)


def load_configured_classifiers(home):
    """The classifiers named in the home's `[classifiers]` config."""
    try:
        from monitor.classify import configured_options, load_classifiers
    except ImportError as e:  # the classifier package is part of the install; this is a broken checkout
        raise ClassifierError(f"cannot import monitor.classify: {e}", "reinstall alignment-monitor") from e
    cfg = home.config.classifiers
    return load_classifiers(backend=cfg.backend, options=configured_options(cfg))


def _as_list(x, n: int) -> list:
    if x is None:
        return [None] * n
    return list(x)


def _scores(values, n: int) -> list:
    if values is None:
        return [None] * n
    arr = np.asarray(values, dtype=float)
    # tolist() and one isfinite over the array: np.isfinite per element cost 14 ms per 10k scores.
    out = arr.tolist()
    for i in np.flatnonzero(~np.isfinite(arr)).tolist():
        out[i] = None
    return out


def score_batch(clf, rows: list[tuple], scored_at, backend: str) -> pa.Table:
    """Classify one batch of (turn_id, user_message, assistant_message, date) rows into `scores` rows."""
    turn_ids = [r[0] for r in rows]
    prompts = [r[1] or "" for r in rows]
    responses = [r[2] or "" for r in rows]
    n = len(rows)
    ref = clf.score_refusal(responses, prompts=prompts)
    harm = clf.score_harm(prompts)
    r_labels, r_scores = _as_list(ref.labels, n), _scores(ref.scores, n)
    h_labels, h_scores = _as_list(harm.labels, n), _scores(harm.scores, n)
    h_cats = _as_list(getattr(harm, "categories", None), n)
    english_only = getattr(clf, "english_only", True)
    # Each prompt's language once: the harm gate reads it, and so does the reply gate (a short reply answering a
    # prompt in another language, or a translation an English prompt asked for, textlang.reply_not_english).
    foreign = [not_english(p) for p in prompts]
    idx = list(range(n))
    gated_r = _gate(idx, r_labels, ref, english_only,
                    lambda i: reply_not_english(responses[i], prompts[i], prompt_foreign=foreign[i]))
    gated_h = _gate(idx, h_labels, harm, english_only, foreign.__getitem__)
    for i in gated_r:
        r_labels[i] = r_scores[i] = None
    for i in gated_h:
        h_labels[i] = h_scores[i] = h_cats[i] = None
    keep = [
        i for i in range(n)
        if not (responses[i].strip() and r_labels[i] is None and i not in gated_r)
        and not (prompts[i].strip() and h_labels[i] is None and i not in gated_h)
    ]
    cols = {
        "turn_id": [turn_ids[i] for i in keep],
        "refusal": [r_labels[i] for i in keep],
        "refusal_score": [r_scores[i] for i in keep],
        "prompt_harm": [h_labels[i] for i in keep],
        "prompt_harm_score": [h_scores[i] for i in keep],
        "prompt_harm_category": [h_cats[i] for i in keep],
        "refusal_version": [clf.refusal_version] * len(keep),
        "harm_version": [clf.harm_version] * len(keep),
        "backend": [backend] * len(keep),
        "scored_at": [scored_at] * len(keep),
        "date": [rows[i][3] for i in keep],
    }
    return pa.table(cols, schema=SCORES.schema)


def _gate(items: list, labels: list, result, english_only: bool, foreign=not_english) -> set[int]:
    """Rows an English-only model labelled although `foreign(item)` (a text, or a row index for a callable that
    reads more than one column; see the module docstring)."""
    return english_only_guesses(items, result, english_only, foreign, labels)


def scoring_backend(clf, configured: str) -> str:
    """The `backend` written to `scores` and matched by score_pending.sql: the backend and the language gate."""
    return f"{getattr(clf, 'backend', None) or configured}+{LANGUAGE_GATE}"


_CLF = None  # the classifiers of a forked scoring worker (inherited from the parent, never pickled)


def _init_worker(clf) -> None:
    global _CLF
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the parent stops the pool itself
    _CLF = clf


def _score_in_worker(args: tuple) -> pa.Table:
    rows, backend = args
    return score_batch(_CLF, rows, utcnow(), backend)


def score_in_order(cur, batch_rows: int, pool, n_workers: int, local, remote, commit) -> None:
    """Fetch `cur` in batches, score each with `local(rows)` or, given a pool, `remote` in a worker (the argument
    tuple is `remote(rows)`'s first element, the function its second), and commit the results in fetch order."""
    inflight: deque = deque()
    while True:
        rows = cur.fetchmany(batch_rows)
        if not rows:
            break
        if pool is None:
            commit(local(rows), len(rows))
            continue
        args, fn = remote(rows)
        inflight.append((pool.apply_async(fn, args), rows))
        if len(inflight) > n_workers:  # keep every worker busy, commit in order
            res, rows = inflight.popleft()
            commit(_answer(res, rows, local), len(rows))
    while inflight:
        res, rows = inflight.popleft()
        commit(_answer(res, rows, local), len(rows))


def _answer(res, rows: list[tuple], local) -> pa.Table:
    """A scoring process's result for `rows`, or `local(rows)` if none came within WORKER_TIMEOUT_S."""
    try:
        return res.get(timeout=WORKER_TIMEOUT_S)
    except multiprocessing.TimeoutError:
        log.warning("a scoring process gave no answer in %.0f s (killed?); scoring its %d turns here",
                    WORKER_TIMEOUT_S, len(rows))
        return local(rows)


def worker_count(home, backend: str, pending: int, min_parallel: int = MIN_PARALLEL) -> int:
    """Scoring processes for this run: one per CPU for the lexical backend when at least `min_parallel` turns are new."""
    # A remote judge is bound by its budget, not the CPU; the embedding backend's torch already uses every core.
    if backend not in ("lexical",) or pending < min_parallel:
        return 0
    n = home.config.classifiers.workers or (os.cpu_count() or 1)
    return n if n > 1 else 0


def run_score(ctx: JobContext, clf=None, batch_rows: int = BATCH_ROWS, min_parallel: int = MIN_PARALLEL) -> int:
    """Score every pending turn in batches; returns the number of score rows written."""
    home = ctx.home
    clf = clf or load_configured_classifiers(home)
    name = getattr(clf, "backend", None) or home.config.classifiers.backend
    backend = scoring_backend(clf, name)
    q = load_sql("jobs/score_pending.sql")
    identity = f"{clf.refusal_version}|{clf.harm_version}|{backend}"
    delta = Delta.open(home, WATERMARK_KEY, identity)
    dates = delta.dates("turns")
    if dates is None:
        return 0
    pending = sum(e["rows"] for e in delta.entries("turns"))  # an upper bound: some may be scored already
    n_workers = worker_count(home, name, pending, min_parallel)
    if n_workers:  # every worker gets a share even of a small run (10k new turns: two batches of 5k)
        batch_rows = max(1, min(batch_rows, -(-pending // n_workers)))
    # Fork before DuckDB starts its threads; workers inherit the loaded classifiers.
    pool = multiprocessing.get_context("fork").Pool(n_workers, _init_worker, (clf,)) if n_workers else None
    # Views over the new turns' dates only: the pending query is bounded by them, so history costs nothing.
    con = scoped_connect(home, delta.manifest, dates)
    written = skipped = 0

    # No other run of this job commits meanwhile (`run_job` holds the job's lock), so the pending turns read above
    # stay pending until this run scores them.
    def commit(table: pa.Table, n_rows: int) -> None:
        nonlocal written, skipped
        skipped += n_rows - table.num_rows
        written += home.lake.append("scores", table)
        log.info("scored %d turns (%d so far)", table.num_rows, written)

    try:
        delta.view(con, "turns")
        cur = con.execute(q.sql, {"refusal_version": clf.refusal_version, "harm_version": clf.harm_version,
                                  "backend": backend, "date_min": dates[0], "date_max": dates[1]})
        # scored_at is processing time, not ctx.now: latest_scores and the metrics watermark order by it,
        # and a replayed clock must not make a re-score look older than the score it replaces.
        score_in_order(cur, batch_rows, pool, n_workers, lambda rows: score_batch(clf, rows, utcnow(), backend),
                       lambda rows: (((rows, backend),), _score_in_worker), commit)
    finally:
        con.close()
        if pool is not None:
            pool.terminate()
    if skipped:
        # The watermark stays put, so the next run reads these turns again (the scored ones are skipped there).
        log.warning("%d turns got no label (classifier budget or error); they stay pending", skipped)
    else:
        delta.save(WATERMARK_KEY, identity)
    return written


def _depends() -> tuple[str, ...]:
    # Ingestion lives in another module; depend on it only where it exists so `jobs run` works in any checkout.
    return ("ingest_inbox",) if importlib.util.find_spec("monitor.jobs.ingest_inbox") else ()


JOBS = [Job("score", run_score, depends_on=_depends(),
            help="Classify new turns (refusal, prompt harm) with the configured classifiers.")]
