"""Language detection shared between forked processes: a process killed mid-batch must not hang the job (and with
it every job the worker schedules); the batch is detected in the job's own process instead."""
import multiprocessing
import os
import signal

import pytest

from monitor.disparity import language

PARENT = os.getpid()
REAL_DETECT = language.detect


def detect_or_die(text):
    """`detect`, except in a pool process, which dies the way the OOM killer kills (module level: it is pickled)."""
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return REAL_DETECT(text)


@pytest.mark.timeout(120)  # a hang guard: before the fix, pool.map waited for ever for the killed process's answer
def test_a_detection_process_killed_mid_batch_does_not_hang_the_job(monkeypatch):
    monkeypatch.setattr(language, "detect", detect_or_die)
    monkeypatch.setattr(language, "WORKER_TIMEOUT_S", 3.0)
    texts = ["Where is the nearest train station, please?", "¿Dónde está la estación de tren más cercana?"] * 4
    pool = multiprocessing.get_context("fork").Pool(2)
    try:
        assert language._detect_all(pool, texts, 2) == ["en", "es"] * 4
    finally:
        pool.terminate()


def test_without_a_pool_detection_runs_here():
    assert language._detect_all(None, ["Bonjour, comment allez-vous aujourd'hui ?", "ok"], 1) == ["fr", "unknown"]
