"""A schedule's next fires as ``supertask next`` lists them (the trigger called as
APScheduler calls it), and where a daylight-saving change moves, drops or doubles one."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import TYPE_CHECKING

from supertask.schedules.syntax import START_KINDS
from supertask.schedules.zones import ambiguous, exists

if TYPE_CHECKING:
    from supertask.schedules.trigger import Schedule

UTC = dt_timezone.utc
_TICK = timedelta(microseconds=1)


def upcoming(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fires strictly after ``after``, found by calling the trigger
    as APScheduler does (None first, then each previous fire), so what ``supertask
    next`` shows is what fires. ``once``/``now``/``@reboot`` fire when added: [after]."""
    if after.tzinfo is None:
        after = after.replace(tzinfo=schedule.timezone)
    fires: list[datetime] = []
    fire = schedule.get_next_fire_time(None, after)
    if schedule.kind in START_KINDS:
        return [fire][:count] if fire is not None else []
    after_utc = after.astimezone(UTC)  # same-zone comparisons would ignore the DST fold
    while fire is not None and len(fires) < count:
        if fire.astimezone(UTC) > after_utc:
            fires.append(fire)
        fire = schedule.get_next_fire_time(fire, after)
    return fires


def dst_notes(schedule: Schedule, fires: list[datetime]) -> list[str]:
    """Where a daylight-saving change moves, drops or doubles one of ``fires`` (as
    :func:`upcoming` lists them) against the plain wall-clock reading of the cron
    expression; the rules are in the module docstring. Empty for other kinds."""
    if schedule.kind != "cron" or not fires:
        return []
    notes: list[str] = []
    zone = schedule.timezone
    for before, fire in zip([None, *fires], fires, strict=False):
        wall = fire.astimezone(zone).replace(tzinfo=None)
        if not _matches(schedule, wall):
            notes.append(f"{_stamp(fire)}: moved by DST; its wall-clock time does not exist that day "
                         "(clocks go forward), so it fires right after the jump")
        elif ambiguous(zone, wall):
            if schedule._wild:
                notes.append(f"{_stamp(fire)}: in the hour DST repeats (clocks go back); "
                             "this schedule fires in both passes")
            else:
                notes.append(f"{_stamp(fire)}: {wall:%H:%M} happens twice (clocks go back); "
                             "it fires once, at the first")
        if before is not None and schedule._wild:
            wall_before = before.astimezone(zone).replace(tzinfo=None)
            missed = schedule._wall_next(wall_before)
            if missed is not None and missed < wall and not exists(zone, missed):
                notes.append(f"{missed:%Y-%m-%d %H:%M}: skipped; DST jumps over it (clocks go forward)")
    return list(dict.fromkeys(notes))


def _matches(schedule: Schedule, wall: datetime) -> bool:
    found = schedule._wall_next(wall - _TICK)
    return found == wall.replace(microsecond=0) if found is not None else False


def _stamp(fire: datetime) -> str:
    return fire.strftime("%Y-%m-%d %H:%M %Z")
