"""`when:` text -> APScheduler 3 triggers with cron's exact meaning.

STUB: the interface only; the real implementation replaces this file.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from apscheduler.triggers.base import BaseTrigger

from supertask.errors import ScheduleError


class Schedule(BaseTrigger):
    kind: str = "cron"

    def __init__(self, when: str, tz: tzinfo):
        self.when, self.timezone = when, tz

    def get_next_fire_time(self, previous_fire_time, now):  # type: ignore[override]
        raise NotImplementedError

    def describe(self) -> str:
        return self.when


def resolve_timezone(name: str | None) -> tzinfo:
    raise NotImplementedError


def parse_when(when: str, timezone: str | tzinfo | None = None) -> Schedule:
    raise ScheduleError(when, "not implemented yet")


def upcoming(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    raise NotImplementedError
