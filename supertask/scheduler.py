"""The running service: sync, start an APScheduler core on our job store, stop cleanly.

Lifecycle, like rq's cron scheduler: SIGINT and SIGTERM turn into a stop request;
on stop no new fire starts, running jobs get ``grace`` seconds to finish, then
their process groups are ended; clean-up sits in ``finally``. A second signal ends
the groups at once.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from supertask.executor import RunExecutor
from supertask.jobstore import NamespaceJobStore
from supertask.log import get_logger
from supertask.model import Job, Timetable
from supertask.runner import RunContext, relay_to_log
from supertask.schedules import Schedule, parse_when
from supertask.settings import Settings
from supertask.store import Store, SyncReport

UTC = timezone.utc


def trigger_for(job: Job) -> Schedule:
    """The one trigger a job fires by (``supertask next`` uses the same)."""
    return parse_when(job.when, job.timezone)


def first_fire(job: Job, now: datetime | None = None) -> float | None:
    """When a job added or changed by a sync fires first (epoch seconds), or None."""
    when = trigger_for(job).get_next_fire_time(None, now or datetime.now(UTC))
    return when.timestamp() if when is not None else None


def sync_timetable(store: Store, namespace: str, timetable: Timetable, settings: Settings) -> SyncReport:
    """Make the namespace match the timetable: jobs added, changed and removed; the
    schedule state of unchanged jobs is kept (a restart neither loses nor doubles a fire)."""
    store.ensure_namespace(namespace, source=timetable.source, host=settings.host, user=settings.user)
    return store.sync(namespace, timetable.jobs, first_fire)


class Component(Protocol):
    """Something that lives as long as the service: the control endpoint, metrics, the
    timetable watcher. Started after the scheduler, stopped before it."""

    def start(self, service: Service) -> None: ...

    def stop(self) -> None: ...


@dataclass
class StopRequest:
    """Set by signals or a live ``stop``; not an error."""

    event: threading.Event
    count: int = 0


class Service:
    """One scheduler process serving some namespaces of one store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        namespaces: Iterable[str],
        *,
        timetable: Timetable | None = None,
        components: Iterable[Component] = (),
    ):
        self.settings = settings
        self.timetable = timetable  # the last good timetable, when serving one
        self.components = list(components)
        self.store = store
        self.namespaces = list(namespaces)
        self.log = get_logger("supertask.scheduler")
        self.ctx = RunContext(store=store, settings=settings, relay=relay_to_log)
        self.jobstore = NamespaceJobStore(store, self.namespaces, trigger_for)
        self.executor = RunExecutor(self.ctx, self.jobstore, settings.max_workers)
        self.stop_request = StopRequest(threading.Event())
        self.started = time.time()
        self._scheduler: Any = None

    def _build(self) -> Any:
        from apscheduler.schedulers.background import BackgroundScheduler

        return BackgroundScheduler(
            jobstores={"default": self.jobstore},
            executors={"default": self.executor},
            timezone=UTC,
        )

    def request_stop(self) -> None:
        self.stop_request.count += 1
        self.stop_request.event.set()
        if self.stop_request.count > 1:  # asked twice: end the runs now
            self._end_runs()

    def install_signal_handlers(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self.log.info("stop requested", signal=signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def serve(self, until: Callable[[], bool] | None = None) -> int:
        """Fire jobs until a stop request (or ``until()`` is true); return the exit code."""
        lost = self.store.mark_lost(self.namespaces, self.settings.host)
        for run in lost:
            self.log.warning("run lost", job=run.job, namespace=run.namespace, run=run.id,
                             message="in flight when the scheduler last stopped")
        self._scheduler = self._build()
        try:
            self._scheduler.start()
            jobs = self.jobstore.get_all_jobs()
            nxt = self.jobstore.get_next_run_time()
            self.log.info("scheduler started", namespaces=self.namespaces, jobs=len(jobs),
                          store=_redacted(self.store.url), next_fire=nxt.isoformat() if nxt else None)
            for component in self.components:
                component.start(self)
            while not self.stop_request.event.wait(0.5):
                if until is not None and until():
                    break
        finally:
            self._shutdown()
        return 0

    def resync(self, timetable: Timetable) -> SyncReport:
        """Sync a (re)loaded timetable into the served namespace and apply it live.

        Jobs the file adds, changes or removes take effect at once; unchanged jobs keep
        their schedule state. The file wins over live edits of the jobs it names.
        """
        namespace = self.namespaces[0]
        report = sync_timetable(self.store, namespace, timetable, self.settings)
        self.timetable = timetable
        self.jobstore.reload(namespace)
        self.wakeup()
        self.log.info("timetable synced", namespace=namespace, source=timetable.source,
                      added=len(report.added), changed=len(report.changed),
                      removed=len(report.removed), unchanged=len(report.unchanged))
        return report

    def wakeup(self) -> None:
        """Make the scheduler look at its jobs again (after a change to the job store)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.wakeup()

    def _shutdown(self) -> None:
        for component in reversed(self.components):
            try:
                component.stop()
            except Exception:
                self.log.exception("component failed to stop", component=type(component).__name__)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)  # no new fires
        deadline = time.monotonic() + self.settings.grace
        if self.executor.in_flight():
            self.log.info("waiting for running jobs", runs=self.executor.in_flight(), grace=self.settings.grace)
        while self.executor.in_flight() and time.monotonic() < deadline and self.stop_request.count < 2:
            time.sleep(0.05)
        self.ctx.shutdown.set()  # pending retries and jitter waits give up
        if self.executor.in_flight():
            self.log.warning("grace period over: ending running jobs", runs=self.executor.in_flight())
            self._end_runs()
        self.executor.shutdown(wait=True)
        self.jobstore.flush()
        self.log.info("scheduler stopped")

    def _end_runs(self) -> None:
        with self.ctx.lock:
            for run in self.ctx.active.values():
                run.kill.set()


def _redacted(url: str) -> str:
    from supertask.store import redact

    return redact(url)
