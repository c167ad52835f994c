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
