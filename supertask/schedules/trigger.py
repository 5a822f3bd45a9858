"""`when:` text -> APScheduler 3 triggers with cron's exact meaning.

One class, :class:`Schedule`, is the trigger for every form of ``when:`` (cron,
``@alias``, ``every DURATION``, an ISO date-time, ``once``/``now``, ``@reboot``, ``@restart``).
Cron maths is croniter's, driven on *wall-clock* time (croniter run in UTC, which
has no DST); this module owns only how wall-clock matches become instants, which
is where cron's DST rules live, and cronie's day rule: when day-of-month and
day-of-week are both restricted a day matching either fires, but a day field that
*begins with* ``*`` (``*/2`` too) counts as unrestricted, so then a day must match
both (``0 0 */2 * mon``: Mondays that fall on an odd date; croniter alone would
read it as either). docs/schedules.md is the user-facing account. The text itself is
read by :mod:`~supertask.schedules.syntax`, zones and their offset changes are
:mod:`~supertask.schedules.zones`', the next fires as ``supertask next`` lists them :mod:`~supertask.schedules.fires`';
callers import what they need of them from here.

DST, as cronie (vixie cron) does it. A cron schedule is a *wildcard* schedule when
its minute or hour field begins with ``*``, else a *fixed-time* schedule:

- wildcard: fires at every instant whose local wall-clock time matches, so it
  follows elapsed real time (an hourly job fires 23 times on a spring-forward day
  and 25 times on a fall-back day; times skipped by a jump never fire);
- fixed-time: a wall-clock time skipped by a spring-forward jump fires once, right
  after the jump (several skipped times collapse into that one fire); a time that
  occurs twice in a fall-back hour fires once, at its first occurrence.
"""

from __future__ import annotations

import copy
import difflib
import functools
import re
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from croniter import croniter

from supertask.errors import ScheduleError
from supertask.schedules.fires import dst_notes, upcoming
from supertask.schedules.syntax import (
    ALIASES,
    EVERY_RE,
    FORMS,
    ISO_RE,
    LAYOUTS,
    START_KINDS,
    check_field,
    parse_every,
)
from supertask.schedules.zones import (
    UTC,
    as_zone,
    first_change,
    first_instant,
    offset,
    resolve_timezone,
)

# what callers import from here: the `when:` kinds and aliases, zones, what `next` shows
__all__ = ["ALIASES", "START_KINDS", "Schedule", "dst_notes", "parse_when", "register_with_apscheduler",
           "resolve_timezone", "upcoming"]

_TICK = timedelta(microseconds=1)
_STATE_VERSION = 1


#: Cron fires computed lately, shared by all schedules: ``(when, zone, after) -> next``.
#: A round asks each due job for its next fire two or three times, and jobs often
#: share an expression (100 jobs ``* * * * * *``: one computation, not 300).
_NEXT: dict[tuple[str, tzinfo, datetime], datetime | None] = {}
_NEXT_SIZE = 4096
_UNKNOWN: Any = object()


class Schedule:
    """An APScheduler 3 trigger for one ``when:`` text in one time zone.

    It is registered as a (virtual) ``BaseTrigger`` subclass by
    :func:`register_with_apscheduler`, which the modules that drive APScheduler call:
    importing APScheduler costs a one-shot run or ``next`` ~60 ms they do not need, and
    croniter is imported only by cron schedules for the same reason.

    ``get_next_fire_time(None, now)`` gives the first fire at or after ``now``;
    ``get_next_fire_time(previous, now)`` the first fire strictly after
    ``previous``, even when that is before ``now`` (APScheduler enumerates missed
    fires that way, as its own CronTrigger does). Results are aware datetimes in
    :attr:`timezone`. ``once``/``now`` and ``@reboot`` fire at ``now`` when added
    and never again; a date-time fires once (at its time, even if past, as
    APScheduler's DateTrigger); an interval fires at ``now + interval`` and then
    every interval of real time after the previous fire.
    """

    kind: str = "cron"

    def __init__(self, when: str, tz: str | tzinfo | None = None):
        self.when = when
        self.timezone = tz if isinstance(tz, ZoneInfo) else as_zone(tz)
        self._cron: croniter | None = None
        self._wild = False
        self._interval = timedelta(0)
        self._run_date: datetime | None = None
        self._shown_date: datetime | None = None
        self._parse(when.strip())

    # -- parsing ---------------------------------------------------------------

    def _fail(self, reason: str, hint: str | None = None) -> ScheduleError:
        return ScheduleError(self.when, reason, hint)

    def _parse(self, text: str) -> None:
        low = text.lower()
        if not text:
            raise self._fail("it is empty", "'0 3 * * *', '@daily' or 'every 5m'")
        if low in ("once", "now"):
            self.kind = "once"
        elif low in ("@reboot", "@restart"):
            self.kind = low[1:]
        elif EVERY_RE.match(text):
            self.kind = "interval"
            self._interval = parse_every(self.when, text)
        elif low in ALIASES:
            self._parse_cron(ALIASES[low])
        elif low.startswith("@"):
            close = difflib.get_close_matches(low, [*ALIASES, "@reboot", "@restart", "@every"], 1, 0.6)
            raise self._fail(
                f"unknown alias {text.split()[0]!r}; the aliases are "
                + " ".join([*ALIASES, "@reboot", "@restart", "@every DURATION"]),
                f"{close[0]!r}" if close else None,
            )
        elif re.match(r"^\d{4}-", text):
            self.kind = "date"
            self._parse_date(text)
        else:
            self._parse_cron(text)

    def _parse_date(self, text: str) -> None:
        example = "'2026-12-24T18:00:00+01:00' (ISO 8601)"
        if not ISO_RE.match(text):
            raise self._fail("not an ISO 8601 date-time", example)
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError as exc:
            raise self._fail(f"not a valid date-time ({exc})", example) from None
        if parsed.tzinfo is None:  # wall-clock time in the job's zone, cron's DST rules
            self._run_date = self._first_instant(parsed).astimezone(self.timezone)
            self._shown_date = self._run_date
        else:
            self._run_date, self._shown_date = parsed.astimezone(self.timezone), parsed

    def _parse_cron(self, text: str) -> None:
        fields = text.lower().split()
        layout = LAYOUTS.get(len(fields))
        if layout is None:
            hint = f"'@{fields[0]}'" if len(fields) == 1 and f"@{fields[0]}" in ALIASES else None
            if len(fields) == 2 and fields[0] == "every":
                hint = "'every 5m'"
            reason = f"it has {len(fields)} field{'s' if len(fields) != 1 else ''}; {FORMS}"
            if len(fields) == 1:
                reason = (
                    "it is none of cron (5, 6 or 7 fields), an @alias, 'every DURATION', "
                    "an ISO 8601 date-time, 'once' or 'now'"
                )
            raise self._fail(reason, hint)
        fields = [
            check_field(self.when, spec, field) for spec, field in zip(layout, fields, strict=True)
        ]
        first = len(fields) - 5 if len(fields) < 7 else 1  # index of the minute field
        self._wild = fields[first].startswith("*") or fields[first + 1].startswith("*")
        expr = " ".join(fields)
        dom, dow = fields[first + 2], fields[first + 4]
        from croniter import CroniterBadCronError, croniter

        # cronie's day rule: a day field that begins with '*' (``*/2`` too) leaves the
        # other one alone (both must match); croniter would take ``*/2`` as restricted
        day_or = not (dom.startswith("*") or dow.startswith("*"))
        try:
            if dow in ("*", "?"):  # croniter's strict check ignores the dom/dow OR rule
                croniter.expand(expr, second_at_beginning=True, strict=True)
            self._cron = croniter(
                expr, datetime(2000, 1, 1, tzinfo=UTC), day_or=day_or, second_at_beginning=True
            )
        except CroniterBadCronError as exc:
            if "can never occur" in str(exc):
                raise self._fail(
                    f"it never fires: day {dom} never occurs in month {fields[first + 3]}"
                ) from None
            raise self._fail(f"cron rejects it ({exc})", "'0 3 * * *'") from None
        if self._wall_next(datetime.now(UTC).replace(tzinfo=None)) is None:
            if len(fields) == 7:
                raise self._fail(
                    f"it never fires: no date matches in the year(s) {fields[6]} from now on"
                )
            if dom not in ("*", "?") and dow not in ("*", "?") and re.search(r"[#lw]", dom + dow):
                raise self._fail(
                    "croniter cannot combine a day-of-month with '#', 'L' or 'W' days",
                    "two jobs, one per day rule",
                )
            raise self._fail("it never fires: no date matches it")

    # -- computing fires -------------------------------------------------------

    def get_next_fire_time(  # type: ignore[override]
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        if now.tzinfo is None:
            now = now.replace(tzinfo=self.timezone)
        if self.kind in START_KINDS:
            return now.astimezone(self.timezone) if previous_fire_time is None else None
        if self.kind == "date":
            return self._run_date if previous_fire_time is None else None
        if self.kind == "interval":
            if previous_fire_time is None:  # whole seconds from the first fire on, for a whole-second interval
                first = now.astimezone(UTC) + self._interval
                if first.microsecond and not self._interval.microseconds:
                    first = first.replace(microsecond=0) + timedelta(seconds=1)
                return first.astimezone(self.timezone)
            return (previous_fire_time.astimezone(UTC) + self._interval).astimezone(self.timezone)
        if previous_fire_time is None:
            after = now.astimezone(UTC) - _TICK  # at or after now
        else:
            after = previous_fire_time.astimezone(UTC)
        key = (self.when, self.timezone, after)
        found = _NEXT.get(key, _UNKNOWN)
        if found is _UNKNOWN:
            found = self._next_wild(after) if self._wild else self._next_fixed(after)
            if len(_NEXT) >= _NEXT_SIZE:
                _NEXT.clear()
            _NEXT[key] = found
        return found.astimezone(self.timezone) if found is not None else None

    def _wall_next(self, wall: datetime) -> datetime | None:
        """The first wall-clock time strictly after ``wall`` (naive) that cron matches."""
        from croniter import CroniterBadDateError  # imported already: self._cron is a croniter

        cron = copy.copy(self._cron)  # croniter keeps a cursor; a copy keeps threads apart
        try:
            found = cron.get_next(datetime, start_time=wall.replace(tzinfo=UTC))  # type: ignore[union-attr]
        except CroniterBadDateError:
            return None
        return found.replace(tzinfo=None)

    def _next_fixed(self, after: datetime) -> datetime | None:
        """Fixed-time rule: each matching wall time at its first instant; a skipped one
        right after the jump. That map only ever moves forward, so walk wall times."""
        wall = after.astimezone(self.timezone).replace(tzinfo=None)
        while (wall := self._wall_next(wall)) is not None:  # type: ignore[assignment]
            instant = self._first_instant(wall)
            if instant > after:  # else: `after` lies in the second pass of a repeated hour
                return instant
        return None

    def _next_wild(self, after: datetime) -> datetime | None:
        """Wildcard rule: the first instant after ``after`` whose local wall time
        matches. Between two offset changes wall time is UTC plus a constant."""
        cursor, inclusive = after, False
        while True:
            shift = offset(self.timezone, cursor)
            wall = (cursor + shift).replace(tzinfo=None) - (_TICK if inclusive else timedelta(0))
            found = self._wall_next(wall)
            if found is None:
                return None
            instant = (found - shift).replace(tzinfo=UTC)
            change = first_change(self.timezone, cursor, instant)
            if change is None:
                return instant
            cursor, inclusive = change, True  # no match before the change; go on past it

    def _first_instant(self, wall: datetime) -> datetime:
        return first_instant(self.timezone, wall)

    # -- presentation and persistence -------------------------------------------

    def describe(self, *, hour24: bool | None = None) -> str:
        """What fires, in words; times on a 24-hour clock when ``hour24`` (None: as the
        locale's LC_TIME has it; supertask.schedules.describe)."""
        if self.kind == "once":
            return "once, when the job is first synced or changed"
        if self.kind == "reboot":
            return "once after each boot, when the scheduler starts"
        if self.kind == "restart":
            return "at each scheduler start"
        if self.kind == "interval":
            return _describe_interval(self._interval)
        if self.kind == "date":
            shown = self._shown_date
            assert shown is not None
            text = shown.strftime("%Y-%m-%d %H:%M" + (":%S" if shown.second else ""))
            return f"once, at {text} {_format_offset(shown.utcoffset())}"
        from supertask.schedules.describe import (
            describe_cron,  # cron-descriptor only when describing
        )

        expr = ALIASES.get(self.when.strip().lower(), " ".join(self.when.split()))
        try:
            return describe_cron(expr, hour24=hour24)
        except Exception:  # cron-descriptor lags croniter on a few forms; fall back
            return expr

    def __getstate__(self) -> dict[str, object]:
        return {"version": _STATE_VERSION, "when": self.when, "timezone": self.timezone}

    def __setstate__(self, state: dict[str, object]) -> None:
        if state.get("version") != _STATE_VERSION:
            raise ValueError(f"schedule state version {state.get('version')!r} is not supported")
        self.__init__(state["when"], state["timezone"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schedule):
            return NotImplemented
        return (self.when, str(self.timezone)) == (other.when, str(other.timezone))

    def __hash__(self) -> int:
        return hash((self.when, str(self.timezone)))

    def __repr__(self) -> str:
        return f"<Schedule {self.kind} {self.when!r} in {self.timezone}>"

    __str__ = __repr__


def register_with_apscheduler() -> None:
    """Make :class:`Schedule` an APScheduler trigger: a virtual ``BaseTrigger`` subclass
    (``BaseTrigger`` is an ABC whose only concrete method, ``_apply_jitter``, APScheduler
    never calls; jitter is the executor's). Idempotent."""
    from apscheduler.triggers.base import BaseTrigger

    BaseTrigger.register(Schedule)


def parse_when(when: str, timezone: str | tzinfo | None = None) -> Schedule:
    """Read one ``when:`` text; raises ScheduleError saying what would be accepted.

    A Schedule holds no per-job state (each call works on a copy of its croniter), so
    jobs that share a ``when:`` and zone share one: 10,000 jobs with one schedule parse
    it once, and hold it once.
    """
    if timezone is None:  # the machine's zone, as of now (it is part of the cache key)
        timezone = resolve_timezone(None)
    return _parse_when_cached(when, timezone)


@functools.lru_cache(maxsize=4096)
def _parse_when_cached(when: str, timezone: str | tzinfo | None) -> Schedule:
    return Schedule(when, timezone)


def _describe_interval(interval: timedelta) -> str:
    seconds = interval.total_seconds()
    parts: list[tuple[float, str]] = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count, seconds = int(seconds // size), seconds % size
            parts.append((count, unit))
    if seconds:
        parts.append((round(seconds, 3), "second"))
    if len(parts) == 1 and parts[0][0] == 1:
        return f"every {parts[0][1]}"
    return "every " + " ".join(f"{n:g} {unit}{'' if n == 1 else 's'}" for n, unit in parts)


def _format_offset(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta(0)).total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
