"""Cron in words says what fires: cron's day rule, steps past a field's range, the locale's clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from supertask.schedules.describe import describe_cron, uses_24_hour
from supertask.schedules.trigger import parse_when, upcoming


@pytest.mark.parametrize(("expr", "text"), [
    # a day field beginning with '*' restricts together with the other (cronie)
    ("0 0 */2 * mon", "At 00:00, on days 1, 3, 5, …, 31 of the month, if that day is also Monday"),
    ("0 0 1-31/2 * mon", "At 00:00, on days 1, 3, 5, …, 31 of the month, or on Monday"),
    ("0 0 1,15 * mon", "At 00:00, on day 1 and 15 of the month, or on Monday"),
    ("0 0 1 jan mon-fri", "At 00:00, only in January, on day 1 of the month, or on Monday through Friday"),
    ("0 0 */2 * *", "At 00:00, on days 1, 3, 5, …, 31 of the month"),
    ("0 0 */10 * *", "At 00:00, on days 1, 11, 21 and 31 of the month"),
    ("0 0 */1 * mon", "At 00:00, only on Monday"),
    # a step that leaves one value: that value only
    ("*/1000000 * * * *", "Every hour"),
    ("0 */30 * * *", "At 00:00"),
    ("*/90 * * * * *", "Every minute"),
    ("*/15 * * * *", "Every 15 minutes"),
    ("30 18 * * *", "At 18:30"),
])
def test_words_say_what_fires(expr: str, text: str) -> None:
    assert describe_cron(expr, hour24=True) == text


def test_the_described_days_are_the_fire_days() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert [f"{f:%a %d}" for f in upcoming(parse_when("0 0 */2 * mon", "UTC"), start, 3)] == [
        "Mon 05", "Mon 19", "Mon 09"]
    assert [f"{f:%M}" for f in upcoming(parse_when("*/1000000 * * * *", "UTC"), start, 3)] == ["00", "00", "00"]


@pytest.mark.parametrize(("env", "hour24"), [
    ({"LC_ALL": "", "LC_TIME": "C.UTF-8", "LANG": ""}, True),
    ({"LC_ALL": "", "LC_TIME": "", "LANG": ""}, True),  # C
    ({"LC_ALL": "", "LC_TIME": "en_US.UTF-8", "LANG": "de_DE.UTF-8"}, False),
    ({"LC_ALL": "", "LC_TIME": "de_DE.UTF-8", "LANG": "en_US.UTF-8"}, True),
    ({"LC_ALL": "en_GB.UTF-8", "LC_TIME": "en_US.UTF-8", "LANG": ""}, True),
])
def test_the_clock_follows_lc_time(env: dict[str, str], hour24: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert uses_24_hour() is hour24
    assert parse_when("30 18 * * *", "UTC").describe() == ("At 18:30" if hour24 else "At 06:30 PM")


@pytest.mark.parametrize(("when", "first"), [
    ("every 90s", "12:01:31.000000"),
    ("every 1m", "12:01:01.000000"),
    ("every 0.5s", "12:00:00.750000"),  # a fractional interval keeps its fractions
])
def test_interval_fires_are_whole_seconds(when: str, first: str) -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, 250000, tzinfo=timezone.utc)
    schedule = parse_when(when, "UTC")
    fire = schedule.get_next_fire_time(None, now)
    assert f"{fire:%H:%M:%S.%f}" == first
    assert schedule.get_next_fire_time(fire, fire) - fire == schedule._interval
