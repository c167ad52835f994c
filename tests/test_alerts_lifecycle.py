"""The alert lifecycle: durations refused out of range by the function itself; a silence that ends pages again once."""
import datetime as dt

import pytest

from monitor.alerts import lifecycle
from monitor.alerts.lifecycle import MAX_SILENCE_DAYS, AlertError, DurationRangeError, parse_duration
from monitor.errors import MonitorError
from test_alerts_engine import DAY0, THRESH, make_home, outbox, rate_row, run, write


@pytest.mark.parametrize("text, expected", [("90m", dt.timedelta(minutes=90)), ("1.5d", dt.timedelta(hours=36)),
                                            (" 2h ", dt.timedelta(hours=2)), ("3650d", dt.timedelta(days=3650))])
def test_durations_in_range(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text, words", [
    ("99999999d", "99999999d is too long: a silence lasts at most 3,650 days"),
    ("3651d", "at most 3,650 days"),
    ("9" * 400 + "w", "is too long"),  # a float beyond any timedelta: refused, not an OverflowError
    ("0m", "0m is no time at all"),
    ("0.0s", "no time at all"),
])
def test_durations_out_of_range_are_refused_by_the_function_itself(text, words):
    with pytest.raises(DurationRangeError, match=words) as e:
        parse_duration(text)
    assert isinstance(e.value, AlertError) and isinstance(e.value, MonitorError) and e.value.hint
    assert MAX_SILENCE_DAYS == 3650


def test_unreadable_duration_is_still_a_read_error():
    with pytest.raises(AlertError, match="cannot read duration"):
        parse_duration("2 fortnights")


# -- a silence that ends on an incident still going on pages it again, once ----------------------------------
def _silenced_incident(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "log", "type": "log"}])
    write(home, [rate_row(0, 30, 100)])
    t = DAY0 + dt.timedelta(days=1, hours=1)
    run(home, t)  # paged once
    lifecycle.silence(home, 1, "dana", until=t + dt.timedelta(hours=6), now=t)
    return home, t


def test_silence_end_pages_the_latest_window_once(tmp_path):
    home, t = _silenced_incident(tmp_path)
    write(home, [rate_row(1, 50, 100)])  # escalates to critical while silenced: nobody paged yet
    run(home, t + dt.timedelta(hours=2))
    assert [o["kind"] for o in outbox(home)] == ["alert"]
    res = run(home, t + dt.timedelta(hours=7))
    assert res.unsilenced == 2 and res.notifications == 1
    last = outbox(home)[-1]
    assert last["kind"] == "unsilenced" and last["alert_ids"] == "[2]"
    assert last["subject"] == "[SILENCE ENDED CRITICAL] over_refusal_rate, m1, all traffic: too_high"
    assert run(home, t + dt.timedelta(hours=8)).notifications == 0  # the next run does not page it again
    write(home, [rate_row(2, 50, 100)])  # the incident goes on at the paged severity: a continuation
    assert run(home, t + dt.timedelta(days=1)).notifications == 0
    assert len(outbox(home)) == 2


def test_silence_end_after_recovery_pages_nobody(tmp_path):
    home, t = _silenced_incident(tmp_path)
    write(home, [rate_row(1, 10, 100)])  # recovered while silenced: resolved, not unsilenced
    res = run(home, t + dt.timedelta(hours=7))
    assert res.resolved == 1 and res.unsilenced == 0 and len(outbox(home)) == 1


def test_a_silence_end_beyond_the_range_is_refused_too(tmp_path):
    home, t = _silenced_incident(tmp_path)
    with pytest.raises(DurationRangeError, match="silence end 9999-12-31T00:00:00Z is too far"):
        lifecycle.silence(home, 1, "dana", until=dt.datetime(9999, 12, 31), now=t)
    ok = lifecycle.silence(home, 1, "dana", until=t + dt.timedelta(days=MAX_SILENCE_DAYS), now=t)
    assert ok["status"] == "silenced"


# -- an alert whose own window is recomputed below the rule resolves now, not a window later -----------------
def test_a_window_revised_below_the_threshold_resolves_its_alert(tmp_path):
    from monitor.alerts.engine import apply, evaluate_incremental

    for incremental in (False, True):
        home = make_home(tmp_path / str(incremental), [THRESH], [{"name": "log", "type": "log"}])
        write(home, [rate_row(0, 9, 100), rate_row(1, 30, 100)])  # day 1 breaches on its first 100 turns
        t = DAY0 + dt.timedelta(days=1, hours=10)
        full_day = {**rate_row(1, 45, 300), "computed_at": t + dt.timedelta(hours=14, minutes=30)}  # 0.15 in full

        def step(now):
            if incremental:
                alerts, state = evaluate_incremental(home, now)
                return apply(home, alerts, now, remember=state)
            return run(home, now)

        assert step(t).new == 1
        write(home, [full_day])
        res = step(t + dt.timedelta(hours=15))
        assert res.resolved == 1, incremental
        [a] = lifecycle.list_alerts(home)
        assert a["status"] == "resolved" and a["resolved_by"] == "worker"


def test_a_window_going_over_under_over_the_line_is_one_incident_paged_once(tmp_path):
    from monitor.alerts.engine import apply, evaluate_incremental

    for incremental in (False, True):
        home = make_home(tmp_path / str(incremental), [THRESH], [{"name": "log", "type": "log"}])
        write(home, [rate_row(0, 9, 100), rate_row(1, 30, 100)])
        t = DAY0 + dt.timedelta(days=1, hours=10)

        def step(now, k=None, n=None):
            if k is not None:
                write(home, [{**rate_row(1, k, n), "computed_at": now - dt.timedelta(minutes=5)}])
            if incremental:
                alerts, state = evaluate_incremental(home, now)
                return apply(home, alerts, now, remember=state)
            return run(home, now)

        assert step(t).notifications == 1
        late = t + dt.timedelta(hours=15)  # after the first computed_at of day 1 (its window end)
        assert step(late, 45, 300).resolved == 1  # 0.15: fine on more turns
        res = step(late + dt.timedelta(hours=1), 100, 400)  # 0.25: over again
        [a] = lifecycle.list_alerts(home)
        assert a["status"] == "firing" and a["value"] == 0.25 and res.notifications == 0, incremental
        assert len(outbox(home)) == 1
        assert step(late + dt.timedelta(hours=2), 180, 400).notifications == 1  # 0.45: escalates, pages
        assert [o["kind"] for o in outbox(home)] == ["alert", "escalation"]
        # A later window that recovers closes it; its own window changing after that does not reopen it.
        write(home, [rate_row(2, 10, 300)])
        assert step(late + dt.timedelta(days=1)).resolved == 1
        step(late + dt.timedelta(days=1, hours=1), 120, 400)
        [a] = [x for x in lifecycle.list_alerts(home) if x["window_start"].startswith("2026-11-02")]
        assert a["status"] == "resolved" and a["value"] == 0.3, incremental


def test_an_alert_closed_by_a_later_recovery_is_not_reopened_by_its_own_late_data(tmp_path):
    home = make_home(tmp_path, [THRESH], [{"name": "log", "type": "log"}])
    write(home, [rate_row(0, 9, 100), rate_row(1, 30, 100), rate_row(2, 10, 100)])  # day 2 recovers
    t = DAY0 + dt.timedelta(days=3, hours=1)
    run(home, t)
    [a] = lifecycle.list_alerts(home)
    assert a["status"] == "resolved"
    # Day 3 starts a new incident; late data then changes day 1, still breaching: day 2's recovery stands.
    write(home, [rate_row(3, 35, 100), {**rate_row(1, 33, 100), "computed_at": t + dt.timedelta(hours=1)}])
    run(home, t + dt.timedelta(days=1, hours=2))
    by_day = {x["window_start"][:10]: x for x in lifecycle.list_alerts(home)}
    assert by_day["2026-11-02"]["status"] == "resolved" and by_day["2026-11-02"]["value"] == 0.33
    assert by_day["2026-11-04"]["status"] == "firing"
    assert not [r for r in home.state.query("SELECT action FROM audit_log") if r["action"] == "alert.reopen"]
