"""What runs alongside the scheduler, chosen from the settings (see scheduler.Component)."""

from __future__ import annotations

from supertask.model import Timetable
from supertask.scheduler import Component
from supertask.settings import Settings


def build_components(settings: Settings, timetable: Timetable | None) -> list[Component]:
    components: list[Component] = []
    # control endpoint (Unix socket, and TCP with --listen): supertask.control
    # timetable watcher (--watch): supertask.reload
    # Prometheus metrics (--metrics): supertask.metrics
    return components
