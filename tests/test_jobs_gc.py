"""The worker freezes what its first run loaded, and still frees frozen cyclic garbage from time to time."""
import gc
import weakref

import monitor.jobs as jobs


class _Node:
    pass


def test_first_run_freezes_and_periodic_runs_free_frozen_cycles(monkeypatch):
    monkeypatch.setattr(jobs, "_RUNS", 0)
    gc.unfreeze()
    try:
        node = _Node()
        node.self = node  # a reference cycle: only the cyclic collector can free it
        alive = weakref.ref(node)
        jobs.freeze_long_lived()
        assert gc.get_freeze_count() > 0
        del node  # now cyclic garbage, but frozen: ordinary collections skip it
        gc.collect()
        assert alive() is not None
        for _ in range(jobs.RECOLLECT_EVERY - 2):
            jobs.freeze_long_lived()
        assert alive() is not None
        jobs.freeze_long_lived()  # the RECOLLECT_EVERY-th run collects everything, frozen objects included
        assert alive() is None
        assert gc.get_freeze_count() > 0  # and freezes again
    finally:
        gc.unfreeze()
