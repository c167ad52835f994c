"""The alert lifecycle's own input checks: durations and silence ends are refused out of range, whoever calls."""
import datetime as dt

import pytest

from monitor.alerts.lifecycle import MAX_SILENCE_DAYS, AlertError, DurationRangeError, parse_duration
from monitor.errors import MonitorError


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
