"""`monitor serve`: the one long-running process that owns bulk writes (schedule + HTTP ingestion)."""
from __future__ import annotations

import logging
import signal
import threading

from monitor.home import Home

log = logging.getLogger("monitor.worker")


def check_alerting(home: Home) -> None:
    """Refuse a configuration `monitor config check` refuses (invalid alert rules, channels, LLM judge options)
    now, and warn when no channel would page anyone."""
    from monitor.config import CONFIG_NAME
    from monitor.config_check import check_config

    # The same checks every later run makes (monitor/worker/config_guard.py): a file they refuse at start would
    # otherwise run, and page config_invalid from the first run about the configuration in use. Rules and channels
    # are otherwise read only by the alerts and notify jobs: a typo in one would leave the worker running for days
    # with alerting failing in a log nobody reads.
    path = home.config_file or home.root / CONFIG_NAME
    checked = check_config(path, home.root)
    for w in checked.warnings:
        if not w.startswith("no notification channel"):  # said below, with the file's name
            log.warning("%s", w.replace("in this shell", "for the worker"))
    channels = set(checked.channels)
    if not channels:
        log.warning("no notification channels ([[notify.channels]] in %s): alerts are recorded, nobody is paged", path)
    # Messages queued for a channel the config no longer has wait for it, then go dead: say so while it can help.
    for r in home.state.query("SELECT channel, count(*) AS n FROM notify_outbox WHERE status IN ('pending', 'held') "
                              "GROUP BY channel ORDER BY channel"):
        if r["channel"] not in channels:
            log.warning("%d notification(s) queued for channel %r, which is not configured: held until the retry "
                        "horizon, then dead; fix its name or `monitor alerts reroute --from %s --to NAME --by YOU`",
                        r["n"], r["channel"], r["channel"])


def serve(home: Home, host: str | None = None, port: int | None = None, ready: threading.Event | None = None) -> None:
    """Run the scheduler and the HTTP server until SIGTERM/SIGINT, then stop both without losing accepted data."""
    from monitor.worker.scheduler import build_scheduler
    from monitor.worker.server import make_server, recover_spool

    from monitor.worker import config_guard

    check_alerting(home)
    config_guard.remember(home)  # the configuration later runs fall back on if an edit breaks the file
    recovered = recover_spool(home)
    if recovered:
        log.info("re-ingested %d request bodies left in the spool by an earlier run", recovered)
    server = make_server(home, host, port)
    sched = build_scheduler(home)
    stop = threading.Event()

    def on_signal(signum, frame):
        log.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sched.start()
    server.scheduler = sched  # /readyz reports whether it runs
    t = threading.Thread(target=server.serve_forever, name="http", daemon=True)
    t.start()
    h, p = server.server_address[:2]
    log.info("worker listening on http://%s:%s (home %s)", h, p, home.root)
    print(f"monitor worker: http://{h}:{p}  home={home.root}", flush=True)
    if ready:
        ready.set()
    # A timed wait, not stop.wait(): the kernel may deliver SIGTERM to any thread (scheduler, HTTP), and Python runs
    # the handler only when the main thread next executes bytecode; blocked in an untimed wait it never would.
    while not stop.wait(0.5):
        pass
    server.shutdown()       # stop accepting; in-flight requests finish (block_on_close)
    server.server_close()
    sched.shutdown(wait=True)  # let a running job finish its commit
    log.info("worker stopped")
