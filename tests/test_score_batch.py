"""Score job: converting classifier scores to nullable floats keeps every finite value and nulls the rest."""
import math

import numpy as np

from monitor.jobs.score import _scores


def _scores_per_element(values, n):
    # The conversion as it was (one np.isfinite per element), kept to compare against.
    if values is None:
        return [None] * n
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def test_scores_match_the_per_element_conversion():
    rng = np.random.default_rng(1)
    arr = rng.random(2000)
    arr[::7] = np.nan
    arr[3], arr[5], arr[8], arr[13] = np.inf, -np.inf, -0.0, 5e-324
    cases = [arr, list(arr), [0.25, None, float("nan"), 1.0], [], np.array([np.nan]), None]
    for values in cases:
        n = 3 if values is None else len(values)
        got, want = _scores(values, n), _scores_per_element(values, n)
        assert got == want
        assert [type(x) for x in got] == [type(x) for x in want]
        assert [math.copysign(1, x) for x in got if x is not None] == [math.copysign(1, x) for x in want if x is not None]


def test_a_run_overlapping_another_never_scores_a_turn_twice(tmp_path):
    # The worker's scheduled run and an operator's `monitor jobs run` at once: the second run is started while the
    # first is scoring its first batch (both would read the same pending turns). The job's lock makes the second
    # wait; it then finds nothing pending, instead of appending a second score row per turn.
    import datetime as dt
    import itertools
    import threading

    import duckdb
    import orjson

    import monitor.jobs.score as score_mod
    from monitor.demo import records
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.jobs import Job, run_job

    path = tmp_path / "r.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in itertools.islice(records(), 300)))
    home = Home.open(tmp_path / "home")
    ingest_paths(home, [path])
    now = dt.datetime(2026, 11, 20)
    clf = score_mod.load_configured_classifiers(home)
    results, others = [], []

    class StartsAnother:
        """The first run's classifiers: on its first batch, another run of the job is started beside it."""

        def __getattr__(self, name):
            return getattr(clf, name)

        def score_refusal(self, *a, **kw):
            if not others:
                others.append(threading.Thread(target=lambda: results.append(run_job(home, job, now))))
                others[0].start()
                others[0].join(1.0)  # without the lock it runs (and scores everything) now
            return clf.score_refusal(*a, **kw)

    job = Job("score", lambda ctx: score_mod.run_score(ctx, clf=clf, batch_rows=100))
    first = run_job(home, Job("score", lambda ctx: score_mod.run_score(ctx, clf=StartsAnother(), batch_rows=100)),
                    now)
    others[0].join(60)
    assert (first.status, first.rows) == ("ok", 300) and [(r.status, r.rows) for r in results] == [("ok", 0)]
    files = [str(p) for p in home.lake.files("scores")]
    n, distinct = duckdb.connect().execute("SELECT count(*), count(DISTINCT turn_id) FROM read_parquet($f)",
                                           {"f": files}).fetchall()[0]
    assert (n, distinct) == (300, 300)


def test_a_scoring_process_killed_mid_batch_does_not_hang_the_run(tmp_path, monkeypatch):
    # The OOM killer (or a stray kill) takes out one scoring process while it holds a batch: the pool loses that
    # task, and waiting for its answer waited for ever (the worker's scheduled jobs with it). After the timeout the
    # batch is scored in this process; every turn gets exactly one score row.
    import datetime as dt
    import itertools
    import os
    import signal
    import threading

    import duckdb
    import orjson

    import monitor.jobs.score as score_mod
    from monitor.demo import records
    from monitor.home import Home
    from monitor.ingest import ingest_paths
    from monitor.jobs import JobContext
    from monitor.jobs.score import load_configured_classifiers, run_score

    path = tmp_path / "r.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in itertools.islice(records(), 400)))
    root = tmp_path / "home"
    root.mkdir()
    (root / "monitor.toml").write_text("[classifiers]\nworkers = 2\n")
    home = Home.open(root)
    ingest_paths(home, [path])
    clf = load_configured_classifiers(home)
    parent, marker = os.getpid(), tmp_path / "killed"

    class DiesOnce:
        """In a scoring process, the first batch kills that process (SIGKILL: no answer, no exception)."""

        def __getattr__(self, name):
            return getattr(clf, name)

        def score_refusal(self, *a, **kw):
            if os.getpid() != parent and not marker.exists():
                marker.touch()
                os.kill(os.getpid(), signal.SIGKILL)
            return clf.score_refusal(*a, **kw)

    monkeypatch.setattr(score_mod, "WORKER_TIMEOUT_S", 3.0, raising=False)
    result = []
    t = threading.Thread(target=lambda: result.append(
        run_score(JobContext(home, dt.datetime(2026, 11, 20)), clf=DiesOnce(), batch_rows=100, min_parallel=100)),
        daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the score run hangs on the killed process's batch"
    assert marker.exists() and result == [400]
    files = [str(p) for p in home.lake.files("scores")]
    n, distinct = duckdb.connect().execute("SELECT count(*), count(DISTINCT turn_id) FROM read_parquet($f)",
                                           {"f": files}).fetchall()[0]
    assert (n, distinct) == (400, 400)
