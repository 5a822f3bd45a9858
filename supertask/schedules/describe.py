"""Cron expressions in words: what fires, in the reader's clock (12 or 24 hours, as LC_TIME has it).

cron-descriptor writes the words; this module gives it an expression that says what
cron does and fills in the day rule it gets wrong:

- A step that leaves one value fires on that value only: ``*/1000000`` in the minute
  field is minute 0 (hourly), not "every 1000000 minutes"; ``*/90`` seconds is second 0.
- The days: with both day fields restricted, cron fires on a day that matches either
  (``0 0 1 * mon``: the 1st, or a Monday), unless one of them begins with ``*``, which
  then restricts together with the other (``0 0 */2 * mon``: Mondays that fall on an
  odd date), as cronie does (supertask.schedules.trigger). cron-descriptor says "every
  2 days, or on Monday" for both; here the day part is written out.
- A stepped day of month (``*/2``) is the days it names ("on days 1, 3, 5, …, 31 of the
  month"), not "every 2 days": the 31st and the next 1st are both fire days.
"""

from __future__ import annotations

import os
import re

#: (field name, lowest, highest) by cron field count: seconds and years where given.
_FIELDS = {
    5: ("minute", "hour", "dom", "month", "dow"),
    6: ("second", "minute", "hour", "dom", "month", "dow"),
    7: ("second", "minute", "hour", "dom", "month", "dow", "year"),
}
_RANGE = {"second": (0, 59), "minute": (0, 59), "hour": (0, 23), "dom": (1, 31), "month": (1, 12), "dow": (0, 6)}
_STEP = re.compile(r"^(\*|\d+)(?:-(\d+))?/(\d+)$")
#: Territories whose usual clock is 12 hours, for a locale named in LC_TIME/LANG but not installed.
_TWELVE_HOUR = {"US", "CA", "AU", "NZ", "PH", "IN", "PK", "BD", "EG", "SA", "MY"}


def describe_cron(expr: str, *, hour24: bool | None = None) -> str:
    """``expr`` (5, 6 or 7 fields, croniter's spelling) in words; ``hour24`` None: as the
    locale's LC_TIME writes times (:func:`uses_24_hour`)."""
    from cron_descriptor import ExpressionDescriptor, Options

    options = Options()
    options.use_24hour_time_format = uses_24_hour() if hour24 is None else hour24

    def words(fields: list[str]) -> str:
        return str(ExpressionDescriptor(" ".join(fields), options).get_description())

    names = _FIELDS.get(len(expr.split()))
    if names is None:
        return words(expr.split())
    fields = [_one_value(name, text) for name, text in zip(names, expr.split(), strict=True)]
    at = names.index("dom")
    dom, dow = fields[at], fields[at + 2]
    dom_set, dow_set = dom not in ("*", "?"), dow not in ("*", "?")
    if not (dom_set and dow_set) and not (dom_set and _STEP.match(dom)):
        return words(fields)
    base = words([*fields[:at], "*", fields[at + 1], "*", *fields[at + 3:]])
    days = _dom_words(dom, words, fields, at)
    if dow_set:
        weekday = _phrase(words([*fields[:at], "*", "*", dow, *fields[at + 3:]]), base)
        weekday = re.sub(r"^(only )?on ", "", weekday)
        if dom.startswith("*") or dow.startswith("*"):  # cronie: both must match
            days = f"{days}, if that day is also {weekday}"
        else:
            days = f"{days}, or on {weekday}"
    return f"{base}, {days}"


def _one_value(name: str, text: str) -> str:
    """A stepped item that names one value only, as that value (``*/1000000`` -> ``0``)."""
    if name not in _RANGE:
        return text
    low, high = _RANGE[name]
    items = []
    for item in text.split(","):
        m = _STEP.match(item)
        if item == "*/1":
            item = "*"
        elif m is not None:
            start = low if m[1] == "*" else int(m[1])
            end = high if m[1] == "*" or m[2] is None else int(m[2])
            if start + int(m[3]) > end:
                item = str(start)
        items.append(item)
    return ",".join(items)


def _dom_words(dom: str, words, fields: list[str], at: int) -> str:  # type: ignore[no-untyped-def]
    m = _STEP.match(dom)
    if m is None:  # "on day 1 and 15 of the month", "on the last day of the month"
        return _phrase(words([*fields[:at], dom, "*", "*", *fields[at + 3:]]),
                       words([*fields[:at], "*", "*", "*", *fields[at + 3:]]))
    start = 1 if m[1] == "*" else int(m[1])
    end = 31 if m[1] == "*" or m[2] is None else int(m[2])
    days = list(range(start, end + 1, int(m[3])))
    if len(days) == 1:
        return f"on day {days[0]} of the month"
    if len(days) <= 4:
        return f"on days {', '.join(map(str, days[:-1]))} and {days[-1]} of the month"
    return f"on days {days[0]}, {days[1]}, {days[2]}, …, {days[-1]} of the month"


def _phrase(full: str, base: str) -> str:
    """What ``full`` says beyond ``base`` (cron-descriptor joins its parts with ", ")."""
    if full.startswith(base + ", "):
        return full[len(base) + 2:]
    return full.split(", ", 1)[-1]


def uses_24_hour() -> bool:
    """Whether the locale's LC_TIME writes the time of day on a 24-hour clock (its
    ``T_FMT`` has no ``%p``/``%r``/``%I``); the C and POSIX locales do. A locale that is
    named but not installed is judged by its territory (``en_US`` 12 hours)."""
    import locale

    name = os.environ.get("LC_ALL") or os.environ.get("LC_TIME") or os.environ.get("LANG") or ""
    try:
        before = locale.setlocale(locale.LC_TIME)
        try:
            locale.setlocale(locale.LC_TIME, "")
            fmt = locale.nl_langinfo(locale.T_FMT)
        finally:
            locale.setlocale(locale.LC_TIME, before)
    except (locale.Error, AttributeError, ValueError):
        m = re.match(r"^[a-z]{2,3}_([A-Z]{2})", name)
        return not (m and m[1] in _TWELVE_HOUR)
    return not any(code in fmt for code in ("%p", "%r", "%I", "%l"))
