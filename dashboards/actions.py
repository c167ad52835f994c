"""Alert actions from the dashboard: thin calls into the alert lifecycle (`monitor.alerts.lifecycle`).

The dashboard never writes alert rows itself: acknowledging, resolving, silencing, commenting and assigning go
through the lifecycle module, so the worker, the CLI and the dashboard apply the same rules and audit entries, on
one alert or (acknowledge, resolve, silence) on every open alert of its incident.
"""
from __future__ import annotations

import datetime as dt

from monitor.alerts import lifecycle
from monitor.errors import MonitorError
from monitor.home import Home

ACTIONS = ("ack", "resolve", "silence", "comment", "assign")


class ActionError(MonitorError):
    title = "Action refused"


# What each action reaches through an incident: the alerts of these statuses (lifecycle.ack / resolve / silence).
INCIDENT_ACTIONS = {"ack": ("firing", "silenced"), "resolve": lifecycle.OPEN, "silence": lifecycle.OPEN}


def act(home: Home, action: str, alert_id: int, actor: str, *, note: str | None = None,
        until: dt.datetime | None = None, assignee: str | None = None, body: str | None = None,
        incident: bool = False) -> dict:
    """Apply one lifecycle action to an alert as `actor` (a reviewer name is required) and return the alert.

    With `incident`, acknowledge, resolve or silence every open alert of the alert's incident in one transaction,
    each audited under the reviewer's name (as `monitor alerts ack ID --incident --by NAME` does).
    """
    actor = (actor or "").strip()
    if not actor:
        raise ActionError("a reviewer name is required for any action", "enter your name in the sidebar")
    alert_id = int(alert_id)
    if incident and action not in INCIDENT_ACTIONS:
        raise ActionError(f"{action} acts on one alert, not on an incident",
                          "acknowledge, resolve or silence act on a whole incident")
    if action == "ack":
        return lifecycle.ack(home, alert_id, actor, note, incident=incident)
    if action == "resolve":
        return lifecycle.resolve(home, alert_id, actor, note, incident=incident)
    if action == "silence":
        if until is None:
            raise ActionError("silence needs an end time")
        return lifecycle.silence(home, alert_id, actor, until, note, incident=incident)
    if action == "comment":
        return lifecycle.comment(home, alert_id, actor, body or "")
    if action == "assign":
        return lifecycle.assign(home, alert_id, assignee or "", actor)
    raise ActionError(f"unknown alert action {action!r}", f"one of {', '.join(ACTIONS)}")


def incident(home: Home, alert_id: int) -> list[dict]:
    """Every alert of the alert's incident (itself included), oldest first: the scopes one notification listed."""
    return lifecycle.incident(home, int(alert_id))
