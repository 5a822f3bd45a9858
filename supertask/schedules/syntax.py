"""The text of ``when:``: its kinds and aliases, each cron field checked with a message
that names what is wrong, and ``every DURATION``. What the parts mean in time (fires,
DST) is :mod:`supertask.schedules.trigger`'s."""

from __future__ import annotations

import difflib
import re
from datetime import timedelta

from supertask.errors import ScheduleError

#: Kinds that fire when added and then only when the scheduler (re)starts them:
#: ``@reboot`` after a boot, ``@restart`` at every start (supertask.scheduler.reboot decides).
START_KINDS = ("once", "reboot", "restart")

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()
# (name, low, high, names); names[i] means low + i
_SECOND, _MINUTE, _HOUR = ("second", 0, 59, ()), ("minute", 0, 59, ()), ("hour", 0, 23, ())
_DOM, _MONTH = ("day-of-month", 1, 31, ()), ("month", 1, 12, tuple(_MONTHS))
_DOW, _YEAR = ("day-of-week", 0, 7, tuple(DAYS)), ("year", 1970, 2099, ())
LAYOUTS = {
    5: (_MINUTE, _HOUR, _DOM, _MONTH, _DOW),
    6: (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW),
    7: (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW, _YEAR),
}
FORMS = (
    "cron takes 5 fields (minute hour day-of-month month day-of-week), "
    "6 (second first) or 7 (second first, year last)"
)
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_UNIT_WORDS = {
    **dict.fromkeys(["msec", "msecs", "millis", "millisecond", "milliseconds"], "ms"),
    **dict.fromkeys(["sec", "secs", "second", "seconds"], "s"),
    **dict.fromkeys(["min", "mins", "minute", "minutes"], "m"),
    **dict.fromkeys(["hr", "hrs", "hour", "hours"], "h"),
    **dict.fromkeys(["day", "days"], "d"),
    **dict.fromkeys(["wk", "wks", "week", "weeks"], "w"),
}
EVERY_RE = re.compile(r"^(@?every)\b\s*(.*)$", re.IGNORECASE)
_PART_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
ISO_RE = re.compile(
    r"^\d{4}-\d\d-\d\d(?:[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?(?:Z|[+-]\d\d:?\d\d)?$"
)


def check_field(when: str, spec: tuple, text: str) -> str:
    """Validate one cron field with a precise message; returns croniter's spelling."""
    name, low, high, names = spec
    out = []
    for item in text.split(","):
        if name == "day-of-week" and (m := re.fullmatch(r"(\w+)#(\w+)", item)):
            _value(when, spec, m[1])
            if not (m[2].isdigit() and 1 <= int(m[2]) <= 5):
                raise ScheduleError(when, f"in {item!r}, #{m[2]} must be 1 to 5 (the n-th such day)")
        elif name == "day-of-week" and (m := re.fullmatch(r"l(\w+)|(\w+)l", item)):
            item = "l" + str(_value(when, spec, m[1] or m[2]) % 7)  # croniter says L5
        elif name == "day-of-month" and (m := re.fullmatch(r"l|(\d+)w", item)):
            if m[1]:
                _value(when, spec, m[1])
        else:
            base, _, step = item.partition("/")
            if "/" in item and not (step.isdigit() and int(step) > 0):
                raise ScheduleError(
                    when, f"{name} step {step!r} in {item!r} must be a whole number of 1 or more"
                )
            if base == "?" and name not in ("day-of-month", "day-of-week"):
                raise ScheduleError(
                    when, f"'?' is only allowed in day-of-month and day-of-week, not in {name}"
                )
            if base not in ("*", "?"):
                for part in base.split("-", 1):
                    _value(when, spec, part)
        out.append(item)
    return ",".join(out)


def _value(when: str, spec: tuple, token: str) -> int:
    name, low, high, names = spec
    if token.isdigit():
        value = int(token)
        if not low <= value <= high:
            extra = " (0 and 7 are Sunday)" if name == "day-of-week" else ""
            raise ScheduleError(when, f"{name} {value} out of range {low}-{high}{extra}")
        return value
    if token in names:
        return low + names.index(token)
    if names:
        close = difflib.get_close_matches(token[:3], names, 1, 0.5)
        raise ScheduleError(
            when, f"{name} {token!r} is neither a number {low}-{high} nor one of {' '.join(names)}",
            f"{close[0]!r}" if close else None,
        )
    if token in ("l", "w", "#", "h", "r") or not token:
        raise ScheduleError(
            when, f"{name} does not take {token.upper() or 'an empty value'!r}; only numbers {low}-{high}"
        )
    raise ScheduleError(when, f"{name} {token!r} is not a number {low}-{high}")


def parse_every(when: str, text: str) -> timedelta:
    m = EVERY_RE.match(text)
    assert m is not None
    prefix, rest = m[1].lower(), m[2].strip()
    example = f"'{prefix} 30s', '{prefix} 5m' or '{prefix} 1h30m'"
    parts = list(_PART_RE.finditer(rest))
    if not rest or "".join(p[0] for p in parts) != rest:
        word = rest.lower()
        hint = {
            "second": "'every 1s'",
            "minute": "'every 1m'",
            "hour": "'@hourly'",
            "day": "'@daily'",
            "week": "'@weekly'",
            "month": "'@monthly'",
            "year": "'@yearly'",
        }.get(word)
        if word[:3] in DAYS:
            hint = f"'0 0 * * {word[:3]}'"
        return_reason = f"{rest!r} is not a duration" if rest else "'every' needs a duration"
        raise ScheduleError(when, f"{return_reason}; use e.g. 30s, 5m, 2h, 1d or 1h30m", hint or example)
    seconds, fixed, bad = 0.0, [], None
    for part in parts:
        number, unit = part[1], part[2].lower()
        if unit and unit not in _UNITS:
            bad = bad or unit
            unit = _UNIT_WORDS.get(unit, "?")
        seconds += float(number) * _UNITS.get(unit or "s", 0.0)
        fixed.append(number + unit)
    if bad is not None:
        hint = f"'{prefix} {''.join(fixed)}'" if "?" not in "".join(fixed) else example
        raise ScheduleError(when, f"{bad!r} is not a duration unit (use ms, s, m, h, d or w)", hint)
    if seconds <= 0:
        raise ScheduleError(when, "the interval is zero; it must be longer than that", example)
    return timedelta(seconds=seconds)
