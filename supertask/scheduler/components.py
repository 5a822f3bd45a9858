"""What runs alongside the scheduler, chosen from the settings (see scheduler.Component)."""

from __future__ import annotations

from supertask.model import Timetable
from supertask.scheduler.service import Component, Service
from supertask.settings import Settings, parse_hostport


def build_components(settings: Settings, timetable: Timetable | None) -> list[Component]:
    components: list[Component] = []
    # control endpoint: always a Unix socket per namespace, TCP too with --listen (docs/control.md)
    components.append(_Control(settings))
    # live changes made by other schedulers, or through the store: supertask.scheduler.follow
    from supertask.scheduler.follow import ChangeFollower

    components.append(ChangeFollower())
    # timetable watcher (--watch; SIGHUP reloads even with --no-watch): supertask.scheduler.reload
    if timetable is not None and timetable.source and _is_timetable_file(timetable.source):
        from supertask.scheduler.reload import TimetableWatcher

        components.append(TimetableWatcher(timetable.source, watch=settings.watch))
    # Prometheus metrics (--metrics): supertask.control.metrics
    if settings.metrics:
        from supertask.control.metrics import Metrics

        components.append(Metrics(settings.metrics))
    # the dashboard and HTTP API (--http): supertask.web, imported only then
    if settings.http:
        parse_hostport(settings.http, "--http")  # a wrong --http stops the start before the store is touched
        from supertask.web.serve import WebComponent

        components.append(WebComponent(settings.http))
    return components


def _is_timetable_file(source: str) -> bool:
    """A served YAML file (not a one-line job's "command line" nor a .py job)."""
    from pathlib import Path

    return not source.endswith(".py") and Path(source).is_file()


class _Control:
    """The control endpoint, imported (rpyc and all) only when the scheduler starts it:
    nothing slows the start-up before the signal handlers are installed."""

    def __init__(self, settings: Settings):
        if settings.listen:
            parse_hostport(settings.listen)  # a wrong --listen stops the start before the store is touched
        self.settings = settings
        self.server: Component | None = None

    def start(self, service: Service) -> None:
        from supertask.control.server import ControlServer

        raise_nofile_limit()

        self.server = ControlServer(self.settings)
        self.server.start(service)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


NOFILE = 65536


def raise_nofile_limit() -> None:
    """The soft descriptor limit up to the hard one (at most 65,536, what ``service
    install`` gives the unit, which the jobs inherit too), as the scheduler starts: each
    run in flight holds three descriptors and each control connection one, and a
    shell's usual 1,024 ran out under a flood of connections."""
    from supertask.log import get_logger

    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = NOFILE if hard == resource.RLIM_INFINITY else min(hard, NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            get_logger("supertask.scheduler.service").debug("descriptor limit raised", soft=soft, now=wanted)
    except (ImportError, OSError, ValueError) as exc:
        get_logger("supertask.scheduler.service").warning("descriptor limit not raised", error=str(exc))
