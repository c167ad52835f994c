"""correct_joint_em_many computed over forked processes gives bit-identical results to one process, group by group.

Groups: the realistic, near-singular and edge-case label sets of tests/test_refusal_em_refinement.py and
tests/test_refusal_em_batch.py (no traffic, nothing predicted harmful, a true cell without labels: NaN rows), tiny
and large tables, and whole runs whose draws stop at `iters`. A child that fails, dies or hangs raises in the parent.
"""
import multiprocessing
import os
import time

import numpy as np
import pytest

import monitor.stats as stats
from monitor.errors import JobError
from monitor.stats import correct_joint_em, correct_joint_em_many
from tests.test_refusal_em_batch import _cases
from tests.test_refusal_em_refinement import SETS

DRAWS = 60


def _groups():
    groups = [g for name in sorted(SETS) for g in SETS[name]] + _cases()
    groups.append((np.zeros(4), np.zeros((4, 4)), np.zeros((4, 4))))  # nothing at all
    lo = SETS["segment"][0][2]
    groups.append((np.array([1.0, 0, 0, 1]), np.array([[1.0, 0, 0, 0]] + [[0] * 4] * 3), lo))  # two turns
    groups.append((np.array([3e6, 4e5, 2e5, 1e5]), np.diag([40.0, 9, 5, 3]), lo))  # millions of turns
    return [tuple(np.asarray(x, float) for x in g) for g in groups]


GROUPS = _groups()


def _args(groups):
    return [g[0] for g in groups], [g[1] for g in groups], [g[2] for g in groups]


def _fields(res):
    """Every number of every result, in order: (over, under) x (value, low, high), then the joint table."""
    return np.array([[getattr(getattr(r, w), f) for w in ("over", "under") for f in ("value", "low", "high")]
                     + list(np.ravel(r.joint)) for r in res])


def _identical(a, b) -> bool:
    fa, fb = _fields(a), _fields(b)
    # Exact equality, NaN where NaN; the float bits too, so that -0.0 against 0.0 would be caught.
    return fa.shape == fb.shape and np.array_equal(fa, fb, equal_nan=True) and \
        np.array_equal(np.signbit(fa), np.signbit(fb))


@pytest.fixture
def pids(tmp_path, monkeypatch):
    """The (pid, groups) of every share computed, whatever process computed it; forking from 4 groups up."""
    log = tmp_path / "shares"
    em_groups = stats._em_groups

    def spy(*a, **k):
        with open(log, "a") as f:
            f.write(f"{os.getpid()} {len(a[3])}\n")
        return em_groups(*a, **k)

    monkeypatch.setattr(stats, "_em_groups", spy)
    monkeypatch.setattr(stats, "EM_MIN_PARALLEL", 4)
    return lambda: [tuple(map(int, line.split())) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.mark.parametrize("iters", [2000, 4])  # 4: nearly every draw, and some points, stop at `iters`
def test_forked_shares_give_the_single_process_results(iters, pids):
    one = correct_joint_em_many(*_args(GROUPS), draws=DRAWS, iters=iters, workers=1)
    assert [p for p, _ in pids()] == [os.getpid()]  # one share, here
    usable = pids()[0][1]
    assert 0 < usable < len(GROUPS) - 3  # NaN rows are among the groups
    two = correct_joint_em_many(*_args(GROUPS), draws=DRAWS, iters=iters, workers=2)
    shares = pids()[1:]
    assert len(shares) == 2 and {p for p, _ in shares} != {os.getpid()}  # one share was computed in a child
    assert sum(n for _, n in shares) == usable
    assert _identical(two, one)
    three = correct_joint_em_many(*_args(GROUPS), draws=DRAWS, iters=iters, workers=3)
    assert len(pids()) == 6 and _identical(three, one)
    f = _fields(one)
    assert np.isnan(f).all(axis=1).sum() >= 3 and np.isfinite(f).all(axis=1).sum() >= len(GROUPS) // 2


def test_forked_results_equal_each_group_computed_alone(pids):
    groups = SETS["busy_day"] + SETS["edges"] + SETS["bench"] + GROUPS[-3:]
    alone = [correct_joint_em(t, lg, lo, draws=DRAWS) for t, lg, lo in groups]
    both = correct_joint_em_many(*_args(groups), draws=DRAWS, workers=2)
    assert len({p for p, _ in pids()} - {os.getpid()}) == 1  # one share of the batched call ran in a child
    assert _identical(both, alone)


def test_the_comparison_catches_shares_joined_in_another_order(pids, monkeypatch):
    # The test can fail: the child's share joined after the parent's instead of before is a different list.
    one = correct_joint_em_many(*_args(GROUPS), draws=DRAWS, workers=1)
    forked = stats._in_forked_children
    monkeypatch.setattr(stats, "_in_forked_children", lambda fn, shares: forked(fn, shares)[::-1])
    swapped = correct_joint_em_many(*_args(GROUPS), draws=DRAWS, workers=2)
    assert not _identical(swapped, one)
    # ... although it holds the same numbers.
    assert np.array_equal(np.sort(_fields(swapped), axis=0), np.sort(_fields(one), axis=0), equal_nan=True)


def test_few_groups_stay_in_process(pids):
    correct_joint_em_many(*_args(GROUPS[:3]), draws=DRAWS, workers=2)
    assert {p for p, _ in pids()} == {os.getpid()}
    assert stats._em_worker_count(2, stats.EM_MIN_PARALLEL - 1) == 1
    assert stats._em_worker_count(2, 10_000) == 2
    assert stats._em_worker_count(1, 10_000) == 1


def _in_daemon(_):
    return stats._em_worker_count(2, 10_000), _fields(correct_joint_em_many(*_args(GROUPS[:12]), draws=DRAWS,
                                                                            workers=2))


def test_a_daemonic_process_does_not_fork():
    # Pool workers are daemonic and may not have children: there the groups are computed in the worker itself.
    with multiprocessing.get_context("fork").Pool(1) as pool:
        count, fields = pool.apply(_in_daemon, (0,))
    assert count == 1
    want = _fields(correct_joint_em_many(*_args(GROUPS[:12]), draws=DRAWS, workers=1))
    assert np.array_equal(fields, want, equal_nan=True)


def _fail_in_child(how):
    parent = os.getpid()
    em_groups = stats._em_groups

    def fn(*a, **k):
        if os.getpid() != parent:
            if how == "raise":
                raise ValueError("boom in the child")
            if how == "die":
                os._exit(3)
            time.sleep(60)
        return em_groups(*a, **k)
    return fn


@pytest.mark.parametrize("how,message", [("raise", "boom in the child"), ("die", "exit code 3"),
                                         ("hang", "sent no result")])
def test_a_failing_child_raises_in_the_parent(how, message, monkeypatch):
    monkeypatch.setattr(stats, "_em_groups", _fail_in_child(how))
    monkeypatch.setattr(stats, "EM_MIN_PARALLEL", 4)
    monkeypatch.setattr(stats, "EM_CHILD_TIMEOUT", 1.0)
    start = time.perf_counter()
    with pytest.raises(JobError, match=message):
        correct_joint_em_many(*_args(GROUPS[:12]), draws=DRAWS, workers=2)
    assert time.perf_counter() - start < 30  # no hang
    assert not multiprocessing.active_children()  # the child is gone, killed if it hung


def test_a_failure_in_the_parent_share_ends_the_child(monkeypatch):
    parent = os.getpid()
    em_groups = stats._em_groups

    def fn(*a, **k):
        if os.getpid() == parent:
            raise ValueError("boom in the parent")
        time.sleep(60)  # the child would still be running
        return em_groups(*a, **k)

    monkeypatch.setattr(stats, "_em_groups", fn)
    monkeypatch.setattr(stats, "EM_MIN_PARALLEL", 4)
    start = time.perf_counter()
    with pytest.raises(ValueError, match="boom in the parent"):
        correct_joint_em_many(*_args(GROUPS[:12]), draws=DRAWS, workers=2)
    assert time.perf_counter() - start < 30
    assert not multiprocessing.active_children()


def test_a_shutdown_signal_to_the_process_group_does_not_end_the_child(pids, monkeypatch):
    # SIGTERM/SIGINT sent to every process of the worker (systemd's stop): the child still delivers its share, so the
    # running job can finish as the worker's graceful shutdown expects.
    import signal

    parent = os.getpid()
    em_groups = stats._em_groups

    def fn(*a, **k):
        if os.getpid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        return em_groups(*a, **k)

    monkeypatch.setattr(stats, "_em_groups", fn)
    groups = GROUPS[:12]
    assert _identical(correct_joint_em_many(*_args(groups), draws=DRAWS, workers=2),
                      correct_joint_em_many(*_args(groups), draws=DRAWS, workers=1))
    assert len({p for p, _ in pids()}) == 2
