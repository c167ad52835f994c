"""Jobs `alerts` (evaluate every rule over the metrics, record alerts, enqueue notifications), `pipeline_health`
(page when turns stop arriving, a job keeps failing or input is quarantined) and `notify`."""
from __future__ import annotations

import importlib.util
import logging

from monitor.jobs import Job, JobContext

log = logging.getLogger("monitor.jobs.alerts")

UPSTREAM = ("refusal_metrics", "value_drift", "disparity")


def _existing(names: tuple[str, ...]) -> tuple[str, ...]:
    # `monitor.jobs.discover()` would import this module again; looking for the module files is enough.
    return tuple(n for n in names if importlib.util.find_spec(f"monitor.jobs.{n}") is not None)


def run_alerts(ctx: JobContext) -> int:
    """Evaluate the effective rules at `ctx.now` (incrementally) and apply the result; returns alert rows written."""
    from monitor.alerts.engine import apply, evaluate_incremental

    # Only series with new metric rows are evaluated again; the result is what a full evaluation would change.
    alerts, state = evaluate_incremental(ctx.home, ctx.now, backfill=ctx.backfill)
    res = apply(ctx.home, alerts, ctx.now, remember=state)
    log.info("alerts: %s evaluation of %d series (rule, series), %d breaching windows, %d new, %d updated, "
             "%d resolved, %d notifications queued", "full" if state["full"] else "incremental",
             state["evaluated"], len(alerts), res.new, res.updated, res.resolved, res.notifications)
    return res.new + res.updated + res.resolved + res.unsilenced


def run_pipeline_health(ctx: JobContext) -> int:
    """Evaluate the pipeline-health rules at `ctx.now` and apply the result; returns alert rows written."""
    from monitor.alerts.pipeline import check

    res = check(ctx.home, ctx.now, backfill=ctx.backfill)
    if res.new or res.updated or res.resolved:
        log.info("pipeline_health: %d new, %d updated, %d resolved, %d notifications queued", res.new, res.updated,
                 res.resolved, res.notifications)
    return res.new + res.updated + res.resolved + res.unsilenced


def run_notify(ctx: JobContext) -> int:
    """Deliver every due outbox row; returns how many messages were sent."""
    from monitor.notify.outbox import deliver_due

    rep = deliver_due(ctx.home, ctx.now)
    if rep.failed or rep.dead:
        log.warning("notify: %d sent, %d failed (will retry), %d dead: %s", rep.sent, rep.failed, rep.dead,
                    "; ".join(rep.errors[:3]))
    return rep.sent


JOBS = [
    Job("alerts", run_alerts, depends_on=_existing(UPSTREAM),
        help="evaluate alert rules over the metrics; record, resolve and queue notifications"),
    # Depends on nothing: it must run, and page, while the metric jobs (and so `alerts`) fail.
    Job("pipeline_health", run_pipeline_health, interval="health_interval_s",
        help="page when no turns arrive, a job keeps failing or input records are quarantined"),
    # After the jobs that queue notifications, but not skipped when they fail: what is queued is still delivered
    # (a pipeline-health alert above all, raised because the metric jobs fail).
    Job("notify", run_notify, after=("alerts", "pipeline_health"), help="deliver due notifications from the outbox",
        interval="notify_interval_s"),
]
