"""Time zones and their daylight-saving changes, as the cron rules of
:mod:`supertask.schedules.trigger` use them: which zone a name means, where a zone's
UTC offset changes, and which wall-clock times a change skips or repeats."""

from __future__ import annotations

import difflib
from datetime import datetime, timedelta, tzinfo
from datetime import timezone as dt_timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

UTC = dt_timezone.utc
_WEEK = timedelta(days=7)  # no zone changes its UTC offset twice within a week


def resolve_timezone(name: str | None) -> ZoneInfo:
    """An IANA zone name -> ZoneInfo; ``None`` -> the machine's zone (cron uses local
    time), UTC when it cannot be told. An unknown name raises ValueError."""
    if name is None:
        try:
            import tzlocal

            return ZoneInfo(tzlocal.get_localzone_name() or "UTC")
        except Exception:
            return ZoneInfo("UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        pass
    message = f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC"
    zones = {zone.lower(): zone for zone in available_timezones()}
    close = difflib.get_close_matches(str(name).lower(), list(zones), 1, 0.7)
    if close:
        message += f" (did you mean {zones[close[0]]!r}?)"
    raise ValueError(message)


def as_zone(tz: str | tzinfo | None) -> tzinfo:
    if tz is None or isinstance(tz, str):
        return resolve_timezone(tz)
    if tz is UTC:
        return ZoneInfo("UTC")
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)  # zoneinfo, pytz
    return ZoneInfo(name) if isinstance(name, str) else tz  # else a fixed offset


def offset(tz: tzinfo, instant: datetime) -> timedelta:
    return instant.astimezone(tz).utcoffset() or timedelta(0)


def transition(tz: tzinfo, low: datetime, high: datetime) -> datetime:
    """The first whole second in (low, high] whose offset differs from low's; the
    caller knows that offset changes there once. Binary search: ~20 steps a week."""
    before = offset(tz, low)
    lo, hi = int(low.timestamp()), -int(-high.timestamp() // 1)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset(tz, datetime.fromtimestamp(mid, UTC)) == before:
            lo = mid
        else:
            hi = mid
    return datetime.fromtimestamp(hi, UTC)


def first_change(tz: tzinfo, start: datetime, end: datetime) -> datetime | None:
    """The first instant in (start, end] where the zone's UTC offset changes, if any."""
    before = offset(tz, start)
    low = start
    while low < end:
        high = min(low + _WEEK, end)
        if offset(tz, high) != before:
            return transition(tz, low, high)
        low = high
    return None


def first_instant(zone: tzinfo, wall: datetime) -> datetime:
    """The UTC instant of a naive wall time: its first occurrence when the time is
    repeated, the end of the gap when a spring-forward jump skipped it."""
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if first.astimezone(zone).replace(tzinfo=None) == wall:
        return first
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return transition(zone, min(first, other), max(first, other))


def exists(zone: tzinfo, wall: datetime) -> bool:
    return wall.replace(tzinfo=zone).astimezone(UTC).astimezone(zone).replace(tzinfo=None) == wall


def ambiguous(zone: tzinfo, wall: datetime) -> bool:
    return wall.replace(tzinfo=zone, fold=0).utcoffset() != wall.replace(tzinfo=zone, fold=1).utcoffset() and exists(zone, wall)
