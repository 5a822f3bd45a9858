"""`when:` text -> fire times. Table-driven: strings in, data out.

croniter (day_or=True) is the oracle for cron's meaning on ordinary days, with
cronie's day rule: day_or=False when a day field begins with '*' (``*/2``), where
cronie makes a day match both fields. The DST days carry hand-written expectations
(cronie's rules, see supertask/schedules/trigger.py).
"""

from __future__ import annotations

import pickle
import time
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.job import Job
from croniter import CroniterBadDateError, croniter

from supertask import compat
from supertask.errors import ScheduleError
from supertask.schedules.trigger import Schedule, parse_when, resolve_timezone, upcoming

UTC = timezone.utc


def local(zone: str, text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone))


def hm(fires: list[datetime]) -> list[str]:
    return [f.strftime("%H:%M%z") for f in fires]


def day_fires(when: str, zone: str, day: str) -> list[datetime]:
    """Every fire whose local date is ``day``, walking the trigger as APScheduler does."""
    tz, wanted = ZoneInfo(zone), date.fromisoformat(day)
    after = datetime.combine(wanted, datetime.min.time(), tz) - timedelta(hours=3)
    return [f for f in upcoming(parse_when(when, zone), after, 200) if f.date() == wanted]


# -- cron meaning, against croniter as the oracle --------------------------------

# fmt: off
ORACLE_EXPRESSIONS = [
    # plain, steps, ranges, lists
    "* * * * *", "*/5 * * * *", "*/7 * * * *", "5/15 * * * *", "0 * * * *",
    "30 * * * *", "0 */2 * * *", "15 9-17 * * *", "0 8-18/3 * * *", "0,15,30,45 * * * *",
    "10-20/5 6 * * *", "0 0 * * *", "45 23 * * *", "0 12 */3 * *", "0 6 1-7 * *",
    "0 6 1,15 * *", "0 6 31 * *", "0 6 29 * *", "0 6 10 1-6 *", "0 6 1 */2 *",
    "0 6 1 1,7 *", "59 23 31 12 *", "0 0 29 2 *",
    # names, either case
    "0 9 * * mon", "0 9 * * MON-FRI", "0 9 * * sat,sun", "0 9 * jan *", "0 9 1 jan,jul *",
    "0 9 * feb-apr mon", "0 9 * * tue-thu", "0 9 * * fri-mon", "0 9 1 DEC *", "0 22 * nov-feb *",
    # 0 and 7 are Sunday
    "0 0 * * 0", "0 0 * * 7", "0 0 * * 5-7", "0 0 * * 0-7", "0 12 * * 6,7", "0 0 * * */2",
    # day-of-month and day-of-week both restricted: either fires
    "0 0 1 * mon", "0 0 13 * fri", "0 12 1,15 * sat", "0 12 10-12 * sun", "0 0 1-31/10 * 3",
    "30 4 1-7 * mon", "0 0 31 * fri",
    # a day field beginning with '*' is unrestricted to cronie: a day must match both
    "0 0 */10 * 3", "0 0 */2 * mon", "0 0 1 * */2", "0 0 */3 * */2", "0 0 0 */2 * 1-5",
    # L, W and #
    "0 0 L * *", "0 18 L 2 *", "0 9 15W * *", "0 9 1W * *", "0 0 * * 5#3", "0 0 * * mon#1",
    "0 0 * * 1#2,5#4", "0 0 * * L5", "30 17 * * L0",
    # 6 fields: leading seconds
    "30 * * * * *", "*/10 * * * * *", "0 0 * * * *", "15 30 9 * * mon-fri", "0 0 0 1 * *",
    "5,35 */2 * * * *", "0 0 12 L * *", "0 0 0 * * 7",
    # 7 fields: seconds ... year
    "0 0 0 1 1 * 2027-2030", "0 30 9 * * mon 2027", "0 0 0 29 2 * 2028,2032", "*/30 * 9 1 1 * 2027",
    # aliases (oracle spelled out)
    "@hourly", "@daily", "@weekly", "@monthly", "@yearly",
]
# fmt: on
ORACLE_ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata"]
ORACLE_STARTS = ["2026-01-14T10:17:23", "2026-06-30T23:59:00", "2027-08-01T00:00:00"]


def cronie_day_or(expr: str) -> bool:
    """cronie's day rule for croniter: OR unless a day field begins with '*'."""
    fields = expr.split()
    if len(fields) < 5:  # an @alias: no restricted day pair
        return True
    first = 0 if len(fields) == 5 else 1
    return not (fields[first + 2].startswith("*") or fields[first + 4].startswith("*"))


def transition_day(day: date, tz: ZoneInfo) -> bool:
    start = datetime.combine(day, datetime.min.time(), tz)
    return start.utcoffset() != (start + timedelta(hours=23, minutes=59)).utcoffset()


def ordinary(fires: list[datetime], tz: ZoneInfo) -> list[datetime]:
    return [f for f in fires if not transition_day(f.date(), tz)]


@pytest.mark.parametrize("expr", ORACLE_EXPRESSIONS)
def test_cron_matches_croniter_on_ordinary_days(expr):
    assert len(ORACLE_EXPRESSIONS) >= 60
    for zone in ORACLE_ZONES:
        tz = ZoneInfo(zone)
        schedule = parse_when(expr, zone)
        for start_text in ORACLE_STARTS:
            start = datetime.fromisoformat(start_text).replace(tzinfo=tz)
            oracle = croniter(expr, start, day_or=cronie_day_or(expr), second_at_beginning=True)
            expected = []
            while len(expected) < 20:
                try:
                    expected.append(oracle.get_next(datetime))
                except CroniterBadDateError:  # a year field ran out
                    break
            if not expected:
                assert schedule.get_next_fire_time(start, start) is None
                continue
            last = expected[-1].astimezone(UTC)
            got, fire = [], schedule.get_next_fire_time(start, start)  # strictly after, as croniter
            while fire is not None and fire.astimezone(UTC) <= last:
                got.append(fire)
                fire = schedule.get_next_fire_time(fire, start)
            assert ordinary(got, tz) == ordinary(expected, tz), (expr, zone, start_text)
            assert all(f.tzinfo is tz for f in got)


@pytest.mark.parametrize(
    "when, start, expected",
    [
        # Sunday is 0 and 7 (APScheduler's from_crontab fires `0 0 * * 0` on Mondays)
        ("0 0 * * 0", "2026-01-01", ["Sun 01-04 00:00", "Sun 01-11 00:00", "Sun 01-18 00:00"]),
        ("0 0 * * 7", "2026-01-01", ["Sun 01-04 00:00", "Sun 01-11 00:00", "Sun 01-18 00:00"]),
        ("0 0 * * sun", "2026-01-01", ["Sun 01-04 00:00", "Sun 01-11 00:00", "Sun 01-18 00:00"]),
        # both day fields restricted: the 1st of every month OR every Monday
        (
            "0 0 1 * mon",
            "2026-01-20",
            ["Mon 01-26 00:00", "Sun 02-01 00:00", "Mon 02-02 00:00", "Mon 02-09 00:00"],
        ),
        (
            "0 0 13 * fri",
            "2026-02-10",
            [
                "Fri 02-13 00:00",
                "Fri 02-20 00:00",
                "Fri 02-27 00:00",
                "Fri 03-06 00:00",
                "Fri 03-13 00:00",
            ],
        ),
        # a day field beginning with '*' does not restrict (cronie): Mondays on odd dates
        ("0 0 */2 * mon", "2026-01-01", ["Mon 01-05 00:00", "Mon 01-19 00:00", "Mon 02-09 00:00"]),
        ("0 0 1-31/2 * mon", "2026-01-01", ["Sat 01-03 00:00", "Mon 01-05 00:00", "Wed 01-07 00:00"]),
        ("0 0 * * 5#3", "2026-01-01", ["Fri 01-16 00:00", "Fri 02-20 00:00", "Fri 03-20 00:00"]),
        ("0 0 * * 5L", "2026-01-01", ["Fri 01-30 00:00", "Fri 02-27 00:00", "Fri 03-27 00:00"]),
        ("0 0 * * friL", "2026-01-01", ["Fri 01-30 00:00", "Fri 02-27 00:00", "Fri 03-27 00:00"]),
        ("0 0 L * *", "2026-01-01", ["Sat 01-31 00:00", "Sat 02-28 00:00", "Tue 03-31 00:00"]),
        ("0 0 29 2 *", "2026-01-01", ["Tue 02-29 00:00"]),  # 2028
        ("@weekly", "2026-01-01", ["Sun 01-04 00:00", "Sun 01-11 00:00"]),
        ("@midnight", "2026-01-01", ["Fri 01-02 00:00", "Sat 01-03 00:00"]),
        ("@annually", "2026-01-01", ["Fri 01-01 00:00"]),  # 2027
        ("30 0 9 * * *", "2026-01-01", ["Thu 01-01 09:00:30", "Fri 01-02 09:00:30"]),
        ("0 0 0 1 1 * 2030", "2026-01-01", ["Tue 01-01 00:00"]),
    ],
)
def test_cron_classics(when, start, expected):
    fires = upcoming(parse_when(when, "UTC"), local("UTC", start), len(expected))
    shown = [f.strftime("%a %m-%d %H:%M" + (":%S" if f.second else "")) for f in fires]
    assert shown == expected


def test_cron_year_field_ends():
    fires = upcoming(parse_when("0 0 0 1 1 * 2027-2028", "UTC"), local("UTC", "2026-01-01"), 5)
    assert [f.year for f in fires] == [2027, 2028]


# -- DST, as cronie -----------------------------------------------------------------

HOURS_NY_SPRING = [f"{h:02d}:00-0500" for h in (0, 1)] + [f"{h:02d}:00-0400" for h in range(3, 24)]
HOURS_NY_FALL = ["00:00-0400", "01:00-0400"] + [f"{h:02d}:00-0500" for h in range(1, 24)]


@pytest.mark.parametrize(
    "when, zone, day, expected",
    [
        # spring forward, fixed time skipped by the jump: once, right after it
        ("30 2 * * *", "America/New_York", "2026-03-08", ["03:00-0400"]),
        ("0 2 * * *", "America/New_York", "2026-03-08", ["03:00-0400"]),
        ("0,30 2 * * *", "America/New_York", "2026-03-08", ["03:00-0400"]),
        ("0 3 * * *", "America/New_York", "2026-03-08", ["03:00-0400"]),
        ("30 1 * * *", "America/New_York", "2026-03-08", ["01:30-0500"]),
        ("0 30 2 * * *", "America/New_York", "2026-03-08", ["03:00-0400"]),
        ("30 2 * * *", "Europe/Berlin", "2026-03-29", ["03:00+0200"]),
        ("30 2 * * *", "Australia/Sydney", "2026-10-04", ["03:00+1100"]),
        ("0 0 * * *", "America/Santiago", "2026-09-06", ["01:00-0300"]),
        ("30 0 * * *", "America/Santiago", "2026-09-06", ["01:00-0300"]),
        # fall back, fixed time in the repeated hour: once, at its first occurrence
        ("30 1 * * *", "America/New_York", "2026-11-01", ["01:30-0400"]),
        ("0 1 * * *", "America/New_York", "2026-11-01", ["01:00-0400"]),
        ("0,59 1 * * *", "America/New_York", "2026-11-01", ["01:00-0400", "01:59-0400"]),
        ("30 2 * * *", "America/New_York", "2026-11-01", ["02:30-0500"]),
        ("0 30 1 * * *", "America/New_York", "2026-11-01", ["01:30-0400"]),
        ("30 2 * * *", "Europe/Berlin", "2026-10-25", ["02:30+0200"]),
        ("30 2 * * *", "Australia/Sydney", "2026-04-05", ["02:30+1100"]),
        ("30 23 * * *", "America/Santiago", "2026-04-04", ["23:30-0300"]),
        # wildcard hour: elapsed real time, 23 and 25 hourly fires
        ("0 * * * *", "America/New_York", "2026-03-08", HOURS_NY_SPRING),
        ("0 * * * *", "America/New_York", "2026-11-01", HOURS_NY_FALL),
        ("@hourly", "America/New_York", "2026-11-01", HOURS_NY_FALL),
        (
            "30 * * * *",
            "Europe/Berlin",
            "2026-10-25",
            ["00:30+0200", "01:30+0200", "02:30+0200", "02:30+0100"]
            + [f"{h:02d}:30+0100" for h in range(3, 24)],
        ),
        (
            "0 * * * *",
            "America/Santiago",
            "2026-09-06",
            [f"{h:02d}:00-0300" for h in range(1, 24)],
        ),
        ("* 2 * * *", "America/New_York", "2026-03-08", []),  # wildcard minute: skipped
    ],
)
def test_dst_transition_days(when, zone, day, expected):
    assert hm(day_fires(when, zone, day)) == expected


@pytest.mark.parametrize(
    "zone, day, count",
    [
        ("America/New_York", "2026-03-08", 23),
        ("America/New_York", "2026-11-01", 25),
        ("Europe/Berlin", "2026-03-29", 23),
        ("Europe/Berlin", "2026-10-25", 25),
        ("Australia/Sydney", "2026-10-04", 23),
        ("Australia/Sydney", "2026-04-05", 25),
        ("America/Santiago", "2026-09-06", 23),
        ("America/Santiago", "2026-04-04", 25),
    ],
)
def test_wildcard_jobs_follow_real_time(zone, day, count):
    hourly = day_fires("0 * * * *", zone, day)
    assert len(hourly) == count
    quarter = day_fires("*/15 * * * *", zone, day)
    assert len(quarter) == count * 4
    instants = [f.astimezone(UTC) for f in quarter]  # same-zone subtraction is wall-clock
    gaps = {b - a for a, b in zip(instants, instants[1:], strict=False)}
    assert gaps == {timedelta(minutes=15)}


def test_sydney_hourly_fall_back_repeats_two_oclock():
    assert hm(day_fires("0 * * * *", "Australia/Sydney", "2026-04-05"))[:5] == [
        "00:00+1100",
        "01:00+1100",
        "02:00+1100",
        "02:00+1000",
        "03:00+1000",
    ]


def test_fixed_job_after_a_previous_in_the_second_pass_of_the_hour():
    schedule = parse_when("30 1 * * *", "America/New_York")
    second_pass = local("America/New_York", "2026-11-01T01:40").replace(fold=1)
    fire = schedule.get_next_fire_time(second_pass, second_pass)
    assert fire.isoformat() == "2026-11-02T01:30:00-05:00"


# -- the APScheduler contract -------------------------------------------------------


def test_first_fire_is_at_or_after_now():
    schedule = parse_when("*/15 * * * *", "Europe/Berlin")
    on_time = local("Europe/Berlin", "2026-01-10T10:15")
    assert schedule.get_next_fire_time(None, on_time) == on_time
    late = on_time.astimezone(UTC) + timedelta(microseconds=1)
    assert schedule.get_next_fire_time(None, late) == local("Europe/Berlin", "2026-01-10T10:30")


def test_previous_in_the_past_gives_every_missed_fire():
    schedule = parse_when("*/15 * * * *", "UTC")
    now = local("UTC", "2026-01-10T11:05")
    previous = local("UTC", "2026-01-10T10:15")
    assert schedule.get_next_fire_time(previous, now) == local("UTC", "2026-01-10T10:30")
    job = Job.__new__(Job)
    job.next_run_time, job.trigger = local("UTC", "2026-01-10T10:15"), schedule
    runs = compat.due_run_times(job, now)  # what APScheduler does after downtime
    assert hm(runs) == ["10:15+0000", "10:30+0000", "10:45+0000", "11:00+0000"]


@pytest.mark.parametrize(
    "when, first, then",
    [
        ("once", "2026-05-01T12:00:00+02:00", None),
        ("now", "2026-05-01T12:00:00+02:00", None),
        ("@reboot", "2026-05-01T12:00:00+02:00", None),
        ("every 90s", "2026-05-01T12:01:30+02:00", "2026-05-01T12:03:00+02:00"),
        ("2026-12-24T18:00:00+01:00", "2026-12-24T18:00:00+01:00", None),
        ("2026-12-24T18:00", "2026-12-24T18:00:00+01:00", None),
        ("2026-12-24T17:00:00Z", "2026-12-24T18:00:00+01:00", None),
        ("2026-03-29T02:30", "2026-03-29T03:00:00+02:00", None),  # skipped: after the jump
        ("2026-10-25T02:30", "2026-10-25T02:30:00+02:00", None),  # repeated: first
    ],
)
def test_non_cron_kinds(when, first, then):
    schedule = parse_when(when, "Europe/Berlin")
    now = local("Europe/Berlin", "2026-05-01T12:00")
    fire = schedule.get_next_fire_time(None, now)
    assert fire.isoformat() == first
    after = schedule.get_next_fire_time(fire, now)
    assert (after.isoformat() if after else None) == then


def test_interval_counts_real_time_across_dst():
    schedule = parse_when("@every 1h30m", "America/New_York")
    fires = upcoming(schedule, local("America/New_York", "2026-03-08T00:00"), 3)
    assert [f.isoformat() for f in fires] == [
        "2026-03-08T01:30:00-05:00",
        "2026-03-08T04:00:00-04:00",
        "2026-03-08T05:30:00-04:00",
    ]


@pytest.mark.parametrize(
    "when, after, count, expected",
    [
        (
            "0 3 * * *",
            "2026-01-01T03:00",
            2,
            ["2026-01-02T03:00:00+00:00", "2026-01-03T03:00:00+00:00"],
        ),
        ("0 3 * * *", "2026-01-01T02:59", 1, ["2026-01-01T03:00:00+00:00"]),
        (
            "every 30s",
            "2026-01-01T00:00",
            3,
            ["2026-01-01T00:00:30+00:00", "2026-01-01T00:01:00+00:00", "2026-01-01T00:01:30+00:00"],
        ),
        ("2026-12-24T18:00:00Z", "2026-01-01T00:00", 3, ["2026-12-24T18:00:00+00:00"]),
        ("2025-12-24T18:00:00Z", "2026-01-01T00:00", 3, []),
        ("once", "2026-01-01T00:00", 3, ["2026-01-01T00:00:00+00:00"]),
        ("@reboot", "2026-01-01T00:00", 3, ["2026-01-01T00:00:00+00:00"]),
        ("@daily", "2026-01-01T00:00", 0, []),
    ],
)
def test_upcoming(when, after, count, expected):
    fires = upcoming(parse_when(when, "UTC"), local("UTC", after), count)
    assert [f.isoformat() for f in fires] == expected


def test_upcoming_in_the_schedule_zone():
    fires = upcoming(parse_when("0 9 * * *", "Asia/Kolkata"), datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert fires[0].isoformat() == "2026-01-01T09:00:00+05:30"
    assert fires[0].tzinfo == ZoneInfo("Asia/Kolkata")


def test_schedule_pickles_and_compares():
    schedule = parse_when("*/5 * * * *", "Europe/Berlin")
    copy = pickle.loads(pickle.dumps(schedule))
    assert copy == schedule and copy.kind == "cron" and copy.timezone == ZoneInfo("Europe/Berlin")
    now = local("Europe/Berlin", "2026-01-01T00:01")
    assert copy.get_next_fire_time(None, now) == schedule.get_next_fire_time(None, now)
    assert Schedule("*/5 * * * *", ZoneInfo("Europe/Berlin")) == schedule


def test_next_fire_is_cheap():
    schedule = parse_when("0 3 * * mon-fri", "America/New_York")
    fire = schedule.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC))
    started = time.process_time()  # CPU time: other processes on a loaded machine do not count
    for _ in range(200):
        fire = schedule.get_next_fire_time(fire, fire)
    assert (time.process_time() - started) / 200 < 0.001


# -- describe() ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "when, text",
    [
        ("0 3 * * *", "At 03:00 AM"),
        ("@daily", "At 12:00 AM"),
        ("*/15 * * * *", "Every 15 minutes"),
        ("0 0 1 * mon", "At 12:00 AM, on day 1 of the month, or on Monday"),
        ("30 0 3 * * *", "At 03:00:30 AM"),
        ("every 30s", "every 30 seconds"),
        ("every 1m", "every minute"),
        ("@every 1h30m", "every 1 hour 30 minutes"),
        ("every 2d", "every 2 days"),
        ("every 0.5s", "every 0.5 seconds"),
        ("2026-12-24T18:00:00+01:00", "once, at 2026-12-24 18:00 +01:00"),
        ("2026-12-24T18:00:30", "once, at 2026-12-24 18:00:30 +01:00"),
        ("once", "once, when the job is first synced or changed"),
        ("now", "once, when the job is first synced or changed"),
        ("@reboot", "once after each boot, when the scheduler starts"),
        ("@restart", "at each scheduler start"),
    ],
)
def test_describe(when, text):
    assert parse_when(when, "Europe/Berlin").describe(hour24=False) == text


@pytest.mark.parametrize(
    "when, kind",
    [
        ("0 3 * * *", "cron"),
        ("@hourly", "cron"),
        ("every 5m", "interval"),
        ("@EVERY 5M", "interval"),
        ("2026-12-24", "date"),
        ("ONCE", "once"),
        ("Now", "once"),
        ("@reboot", "reboot"),
    ],
)
def test_kinds(when, kind):
    schedule = parse_when(when, "UTC")
    assert (schedule.kind, schedule.when) == (kind, when)


# -- bad input: every message says what to do -----------------------------------------


@pytest.mark.parametrize(
    "when, message",
    [
        (
            "every 5 mins",
            "'every 5 mins' is not a schedule: 'mins' is not a duration unit (use ms, s, m, h, d or w); try 'every 5m'",
        ),
        ("@every 2 hours", "try '@every 2h'"),
        ("every 1 hour 30 minutes", "try 'every 1h30m'"),
        ("every 0s", "the interval is zero"),
        ("every", "'every' needs a duration"),
        ("every day", "try '@daily'"),
        ("every monday", "try '0 0 * * mon'"),
        ("60 * * * *", "'60 * * * *' is not a schedule: minute 60 out of range 0-59"),
        ("61 * * * *", "minute 61 out of range 0-59"),
        ("0 24 * * *", "hour 24 out of range 0-23"),
        ("0 0 32 * *", "day-of-month 32 out of range 1-31"),
        ("0 0 0 * *", "day-of-month 0 out of range 1-31"),
        ("0 0 * 13 *", "month 13 out of range 1-12"),
        (
            "0 0 * * 8",
            "'0 0 * * 8' is not a schedule: day-of-week 8 out of range 0-7 (0 and 7 are Sunday)",
        ),
        ("60 0 0 * * *", "second 60 out of range 0-59"),
        ("0 0 0 1 1 * 2100", "year 2100 out of range 1970-2099"),
        (
            "0 0 * * mnd",
            "day-of-week 'mnd' is neither a number 0-7 nor one of sun mon tue wed thu fri sat; try 'mon'",
        ),
        ("0 0 * janu *", "try 'jan'"),
        ("*/0 * * * *", "minute step '0' in '*/0' must be a whole number of 1 or more"),
        ("0 0 ? ? *", "'?' is only allowed in day-of-month and day-of-week"),
        ("0 0 * * 1#6", "#6 must be 1 to 5"),
        ("H * * * *", "minute does not take 'H'"),
        (
            "* * *",
            "it has 3 fields; cron takes 5 fields (minute hour day-of-month month day-of-week), 6 (second first) or 7 (second first, year last)",
        ),
        ("* * * * * * * *", "it has 8 fields"),
        ("daily", "try '@daily'"),
        (
            "garbage",
            "it is none of cron (5, 6 or 7 fields), an @alias, 'every DURATION', an ISO 8601 date-time, 'once' or 'now'",
        ),
        ("", "it is empty; try '0 3 * * *', '@daily' or 'every 5m'"),
        ("@dayly", "unknown alias '@dayly'"),
        ("@dayly", "try '@daily'"),
        ("0 0 30 2 *", "it never fires: day 30 never occurs in month 2"),
        ("0 0 31 4,6,9,11 *", "it never fires"),
        ("0 0 0 29 2 * 2027", "it never fires"),
        ("0 0 0 1 1 * 1999", "it never fires: no date matches in the year(s) 1999"),
        ("0 0 1 * 5#3", "croniter cannot combine a day-of-month with '#', 'L' or 'W' days"),
        ("2026-02-30T10:00", "not a valid date-time (day is out of range for month)"),
        (
            "2026-12-24 at 6",
            "not an ISO 8601 date-time; try '2026-12-24T18:00:00+01:00' (ISO 8601)",
        ),
    ],
)
def test_bad_when(when, message):
    with pytest.raises(ScheduleError) as caught:
        parse_when(when, "UTC")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError) and caught.value.when == when


def test_dom_dow_or_keeps_a_never_day_of_month_alive():
    fires = upcoming(parse_when("0 0 30 2 mon", "UTC"), local("UTC", "2026-02-01"), 2)
    assert [f.date().isoformat() for f in fires] == ["2026-02-02", "2026-02-09"]


# -- time zones ---------------------------------------------------------------------


def test_resolve_timezone_names():
    assert resolve_timezone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    assert resolve_timezone("UTC") == ZoneInfo("UTC")


@pytest.mark.parametrize(
    "name, message",
    [
        (
            "Europe/Berln",
            "unknown time zone 'Europe/Berln'; use an IANA name such as Europe/Berlin or UTC (did you mean 'Europe/Berlin'?)",
        ),
        ("utc", "(did you mean 'UTC'?)"),
        (
            "Mars/Olympus_Mons",
            "unknown time zone 'Mars/Olympus_Mons'; use an IANA name such as Europe/Berlin or UTC",
        ),
        ("../etc", "unknown time zone '../etc'"),
    ],
)
def test_resolve_timezone_unknown(name, message):
    with pytest.raises(ValueError) as caught:
        resolve_timezone(name)
    assert message in str(caught.value)


def test_resolve_timezone_default_is_the_machine_zone(monkeypatch):
    import tzlocal

    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: "Asia/Kolkata")
    assert resolve_timezone(None) == ZoneInfo("Asia/Kolkata")
    assert parse_when("@daily").timezone == ZoneInfo("Asia/Kolkata")
    monkeypatch.setattr(tzlocal, "get_localzone_name", lambda: None)
    assert resolve_timezone(None) == ZoneInfo("UTC")


def test_timezone_given_as_tzinfo():
    assert parse_when("@daily", UTC).timezone == ZoneInfo("UTC")
    assert parse_when("@daily", ZoneInfo("Europe/Berlin")).timezone == ZoneInfo("Europe/Berlin")
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_when("@daily", "Nowhere/Special")
