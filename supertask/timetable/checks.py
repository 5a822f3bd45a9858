"""Checks that both timetable shapes (native and legacy) make of their jobs."""

from __future__ import annotations

from collections.abc import Iterable

from yaml.nodes import Node

from supertask.errors import ScheduleError
from supertask.schedules import trigger as schedules
from supertask.timetable.yamldoc import Doc


def check_when(doc: Doc, when: str, timezone: str | None, node: Node, path: str) -> None:
    """``when:`` must parse as a schedule in its job's time zone (schedules owns the syntax)."""
    if not when:
        doc.problem(node, path, 'empty schedule; e.g. when: "0 3 * * *", "@daily" or "every 5m"')
        return
    try:
        schedules.parse_when(when, timezone)
    except ScheduleError as err:
        doc.problem(node, path, str(err))


def check_unique(doc: Doc, named: Iterable[tuple[str, int | None, str]]) -> None:
    """Job names are unique within a timetable; each repeat names both lines."""
    first: dict[str, tuple[int | None, str]] = {}
    for name, line, path in named:
        if name in first:
            line0, path0 = first[name]
            doc.problem(
                line,
                path,
                f"job name {name!r} is used twice (lines {line0} and {line}, {path0} and {path.removesuffix('.name')}); names must be unique",
            )
        else:
            first[name] = (line, path.removesuffix(".name"))
