"""The running service: sync, start an APScheduler core on our job store, stop cleanly.

Lifecycle, like rq's cron scheduler: SIGINT and SIGTERM turn into a stop request; on stop no new
fire starts, running jobs get ``grace`` seconds to finish, then their process groups are ended;
clean-up sits in ``finally``. A second signal ends the groups at once. Every thread and component
is started, stopped and joined by one :class:`~supertask.scheduler.supervisor.Supervisor` (a
part's threads by the spawner it hands that part), in the order :meth:`Service.serve` gives.
"""

from __future__ import annotations

import functools
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

from supertask import compat
from supertask.cluster.heartbeat import Heartbeat, me_for, new_instance
from supertask.errors import JobNotFound, SupertaskError, UsageError
from supertask.log import get_logger
from supertask.model import Job, Overlap, Reason, StopCause, Timetable
from supertask.runs import notify
from supertask.runs.context import RunContext
from supertask.runs.runner import relay_to_log
from supertask.scheduler import edits
from supertask.scheduler.edits import first_fire, trigger_for
from supertask.scheduler.executor import RunExecutor
from supertask.scheduler.jobstore import NamespaceJobStore, job_id
from supertask.scheduler.supervisor import Supervisor
from supertask.settings import Settings
from supertask.store.base import HealthWatch, Store, StoredJob, SyncReport
from supertask.workers.route import needs as route_needs

UTC = timezone.utc
#: After the grace period, how long a stop waits for the ended runs' rows at most.
ENDING = 60.0


def sync_timetable(store: Store, namespace: str, timetable: Timetable, settings: Settings) -> SyncReport:
    """Make the namespace match the timetable: jobs added, changed and removed; the
    schedule state of unchanged jobs is kept (a restart neither loses nor doubles a fire)."""
    store.ensure_namespace(namespace, source=timetable.source, host=settings.host, user=settings.user, share=timetable.share)
    now = datetime.now(UTC)
    firsts: dict[tuple[str, str | None], float | None] = {}

    def first(job: Job) -> float | None:  # jobs that share a schedule share their first fire
        key = (job.when, job.timezone)
        if key not in firsts:
            firsts[key] = first_fire(job, now)
        return firsts[key]

    report = store.sync(namespace, timetable.jobs, first)
    if report.added or report.changed or report.removed:
        from supertask.control.changes import sync_audit

        try:
            store.audit_many(sync_audit(namespace, {j.name: j for j in timetable.jobs}, report, settings.user,
                                        f"sync {timetable.source or 'command line'} on {settings.host}"))
        except Exception as exc:  # the sync stands; its audit rows are reported missing
            get_logger("supertask.scheduler.service").warning("audit rows not written", namespace=namespace,
                                                              error=str(exc))
    return report


def _without_jobs(timetable: Timetable | None) -> Timetable | None:
    return None if timetable is None else Timetable(jobs=(), namespace=timetable.namespace, source=timetable.source)


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
        stop_event: threading.Event | None = None,
        up_since: datetime | None = None,
    ):
        self.settings = settings
        self.supervisor = sup = Supervisor()  # starts, stops and joins every part and thread
        # the last good timetable's namespace and source, when serving one: its jobs live
        # in the store (holding 100,000 parsed jobs here doubled the scheduler's memory)
        self.timetable = _without_jobs(timetable)
        self.components = [HealthWatch(store, spawn=sup.spawner("HealthWatch")), *components]  # the probe first
        self.store = store
        self.namespaces = list(namespaces)
        self.log = get_logger("supertask.scheduler.service")
        self.ctx = RunContext(store, settings, relay_to_log, outbox=notify.Outbox(sup.spawner("notifications")))
        self.jobstore = NamespaceJobStore(store, self.namespaces, trigger_for, sup.spawner("schedule state"))
        self.executor = RunExecutor(self.ctx, self.jobstore, settings.max_workers, settings.max_concurrent,
                                    up_since=up_since, spawn=sup.spawner("run threads"))
        self.jobstore.quiet = self.executor.wait_launched
        # a stop asked for before the service existed (a signal during start-up) holds
        self.stop_request = StopRequest(stop_event or threading.Event())
        self.started = time.time()
        self._scheduler: Any = None
        self.edit_lock = threading.RLock()
        self.changes = 0  # how many times jobs were changed elsewhere (what the live listing caches goes stale)
        # who this scheduler is in the store (its host row; its claims name it) and its heartbeat
        self.instance = store.instance = new_instance()
        self.me = me_for(settings, self.instance)
        self.heartbeat = Heartbeat(self)
        self.ctx.hold = self.heartbeat.hold
        self.executor.shared = self.shared
        self.executor.route = lambda job: route_needs(job, settings.workers_only)  # supertask.workers.route

    def _build(self) -> Any:
        from supertask.scheduler.rounds import RoundScheduler

        return RoundScheduler(
            self.executor,
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
        from supertask.launchers.follow import Follower
        from supertask.runs.lifecycle import Finisher
        from supertask.runs.recovery import mark_lost_runs, retry_lost_runs

        lost = mark_lost_runs(self)  # before anything fires: only dead runs are in flight
        self.heartbeat.register()  # after (ending orphans may take a while, with no heartbeat yet)
        self._scheduler = self._build()
        ctx, sup = self.ctx, self.supervisor
        finisher, follower = Finisher(ctx, sup.spawner("finisher")), Follower(sup.spawner("follower"))

        def started() -> None:
            retry_lost_runs(self, lost)
            self.heartbeat.taking_over = True
            nxt = self.jobstore.get_next_run_time()
            self.log.info("scheduler started", namespaces=self.namespaces, jobs=len(self.jobstore),
                          store=_redacted(self.store.url), next_fire=nxt.isoformat() if nxt else None)

        # started in this order, stopped in reverse: each part's queued work goes to parts still running
        sup.add("heartbeat", self.heartbeat.start, self.heartbeat.stop)  # serving until the last run's end
        sup.add("notifications", stop=self._close_outbox)
        sup.add("finisher", functools.partial(_attach, ctx, "finisher", finisher), finisher.close)
        sup.add("follower", functools.partial(_attach, ctx, "follower", follower),
                lambda: follower.close(timeout=self.settings.grace + 60))
        sup.add("run threads", self.executor.open, self.executor.close)
        sup.add("schedule state", stop=self.jobstore.flush)
        sup.add("scheduler", self._scheduler.start, self._stop_firing)
        sup.add("lost runs", started)
        for component in self.components:
            sup.add(type(component).__name__, functools.partial(component.start, self), component.stop)
        if os.getpid() == 1:  # PID 1 in a container: orphans are ours to reap
            self._add_reaper()
        try:
            sup.start()
            while not self.stop_request.event.wait(0.5):
                if until is not None and until():
                    break
        finally:
            sup.stop()
            self.log.info("scheduler stopped", threads_left=sup.left)
        return 0

    def _add_reaper(self) -> None:
        from supertask.launchers import reaper

        stop = threading.Event()  # the reaper's thread is the supervisor's, joined at the stop
        self.supervisor.add("reaper", lambda: reaper.start_if_pid1(stop, self.supervisor.spawner("reaper")), stop.set)

    def resync(self, timetable: Timetable) -> SyncReport:
        """Sync a (re)loaded timetable into the served namespace and apply it live.

        Jobs the file adds, changes or removes take effect at once; unchanged jobs keep
        their schedule state. The file wins over live edits of the jobs it names.
        """
        namespace = self.namespaces[0]
        report = sync_timetable(self.store, namespace, timetable, self.settings)
        self.timetable = _without_jobs(timetable)
        self.jobstore.reload(namespace)
        self.wakeup()
        self.log.info("timetable synced", namespace=namespace, source=timetable.source,
                      added=len(report.added), changed=len(report.changed),
                      removed=len(report.removed), unchanged=len(report.unchanged))
        return report

    def shared(self, namespace: str) -> bool:
        """Whether other schedulers may fire the namespace's jobs from this store: always
        on PostgreSQL (one may start at any moment), elsewhere while another is up serving it."""
        if self.store.dialect == "postgresql":
            return True
        from supertask.cluster.leases import peers_serving

        beat = self.heartbeat
        return beat.seen is not None and bool(peers_serving(beat.peers, namespace, self.instance, beat.seen))

    def changed_elsewhere(self) -> None:
        """Jobs were changed by another scheduler or through the store (scheduler.follow)."""
        self.changes += 1

    def wakeup(self) -> None:
        """Make the scheduler look at its jobs again (after a change to the job store)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.wakeup()

    # -- live control (supertask.control.live calls these; each change goes to the store first,
    # then into memory, then the scheduler is woken) ------------------------------------------

    def editing(self) -> Any:
        """Serialise a live change with other changes and with APScheduler's processing
        of due jobs (which holds its job-store lock from finding a job due to updating it)."""
        return _Both(self.edit_lock, compat.jobstores_lock(self._scheduler))

    def served(self, namespace: str | None) -> str:
        """The namespace a live command means: the one given (if served), else the only one."""
        if namespace is None:
            if len(self.namespaces) == 1:
                return self.namespaces[0]
            raise UsageError(f"this scheduler serves {', '.join(self.namespaces)}; pick one with --ns")
        if namespace not in self.namespaces:
            raise UsageError(f"this scheduler serves {', '.join(self.namespaces)}, not {namespace!r}")
        return namespace

    def put_job(self, namespace: str, job: Job) -> StoredJob:
        """Add or replace one job live (:func:`edits.put_job`)."""
        with self.editing():
            self.jobstore.flush()
            row = edits.put_job(self.store, namespace, job)
            self.jobstore.put(row)
        self.wakeup()
        return row

    def set_job_paused(self, namespace: str, name: str, paused: bool) -> StoredJob:
        """Pause or resume a job live (:func:`edits.set_paused`)."""
        with self.editing():
            self.jobstore.flush()
            row = edits.set_paused(self.store, namespace, name, paused)
            self.jobstore.put(row)
        self.wakeup()
        return row

    def remove_job(self, namespace: str, name: str) -> None:
        """Delete a job from the store and the schedule; a run in flight goes on."""
        with self.editing():
            self.jobstore.flush()
            self.store.delete_job(namespace, name)
            self.jobstore.forget(namespace, name)
        self.wakeup()

    def trigger(self, namespace: str, name: str) -> datetime:
        """Run a job now with reason ``manual``, whatever its schedule (paused or disabled
        too); return the fire time that names the run. With ``overlap: skip`` a job whose
        previous run is still in flight is refused (nothing recorded), as a fire would be."""
        found = self.jobstore.definition(job_id(namespace, name))
        if found is None:
            raise JobNotFound(namespace, name)
        definition = found[1]
        if self.stop_request.event.is_set():
            raise SupertaskError("the scheduler is stopping; it starts no new runs")
        busy = self.ctx.active_for(namespace, name)
        if busy and definition.overlap is Overlap.SKIP:
            raise SupertaskError(f"job {name!r} is running (run {busy[0].run_id}) and has overlap: skip; "
                                 "wait for it, kill it (`supertask jobs kill RUN_ID`) or set overlap: allow")
        if self.executor.busy(namespace, name) and definition.overlap is Overlap.SKIP:
            # between attempts no process runs, but the fire is still in flight: a fire
            # now would only be recorded as skipped
            raise SupertaskError(f"job {name!r} is waiting to retry a failed run and has overlap: skip; "
                                 "wait for the retry (`supertask history` shows it) or set overlap: allow")
        fire = datetime.now(UTC)
        if not self.executor.submit(namespace, definition, fire, Reason.MANUAL):
            raise SupertaskError(f"job {name!r} was not started: it is running, or the scheduler is stopping")
        self.log.info("run triggered", job=name, namespace=namespace, scheduled=fire.isoformat())
        return fire

    def kill_run(self, run_id: int) -> dict[str, Any]:
        """End a run in flight: its process group gets TERM, then KILL after ``kill_grace``."""
        with self.ctx.lock:
            run = self.ctx.active.get(run_id)
            if run is not None:
                run.end(StopCause.KILL)
        if run is None:
            status = self.store.get_run(run_id).status  # RunNotFound (exit 2) for an id the store does not have
            raise SupertaskError(f"run {run_id} is not running in this scheduler (it is {status}); "
                                 "`supertask status` lists the runs in flight")
        self.log.info("run kill requested", run=run_id, job=run.job, namespace=run.namespace, pid=run.pid)
        return {"run_id": run_id, "namespace": run.namespace, "job": run.job, "pid": run.pid}

    @property
    def paused(self) -> bool:
        from apscheduler.schedulers.base import STATE_PAUSED

        return self._scheduler is not None and self._scheduler.state == STATE_PAUSED

    def pause_all(self, paused: bool) -> None:
        """Hold (or release) all firing; fires held are judged at release (``RunExecutor.pause``)."""
        if self._scheduler is None or not self._scheduler.running:
            raise SupertaskError("the scheduler is not running")
        self.executor.pause(paused, datetime.now(UTC))
        if paused:
            self._scheduler.pause()
        else:
            self._scheduler.resume()
        self.log.info("firing paused" if paused else "firing resumed")

    def stop(self, grace: float | None = None) -> None:
        """A graceful stop, as SIGTERM: no new fires, runs get ``grace`` seconds, exit 0."""
        if grace is not None:
            self.settings = self.settings.with_(grace=grace)
        if not self.stop_request.event.is_set():
            self.log.info("stop requested", by="control", grace=self.settings.grace)
            self.request_stop()

    def _stop_firing(self) -> None:
        """No new fires, nor new attempts (pending retries, jitter and slot waits give up
        now); the runs in flight get the grace period, then their process groups are ended."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        self.ctx.shutdown.set()
        deadline = time.monotonic() + self.settings.grace
        if self.executor.in_flight():
            self.log.info("waiting for running jobs", runs=self.executor.in_flight(), grace=self.settings.grace)
        while self.executor.in_flight() and time.monotonic() < deadline and self.stop_request.count < 2:
            time.sleep(0.05)
        if self.executor.in_flight():
            self.log.warning("grace period over: ending running jobs", runs=self.executor.in_flight())
            self._end_runs()
            # their ends are written down before the parts below them stop
            ended_by = time.monotonic() + ENDING
            while self.executor.in_flight() and time.monotonic() < ended_by:
                time.sleep(0.05)

    def _close_outbox(self) -> None:
        if self.ctx.outbox is not None and not self.ctx.outbox.close(timeout=self.settings.grace):
            self.log.warning("notifications still queued after the grace period were not sent")

    def _end_runs(self) -> None:
        with self.ctx.lock:
            for run in self.ctx.active.values():
                run.end(StopCause.SHUTDOWN)


class _Both:
    """Hold two locks (the second may be None) as one context manager."""

    def __init__(self, first: Any, second: Any):
        self.locks = [lock for lock in (first, second) if lock is not None]

    def __enter__(self) -> None:
        for lock in self.locks:
            lock.acquire()

    def __exit__(self, *exc: Any) -> None:
        for lock in reversed(self.locks):
            lock.release()


def _attach(ctx: RunContext, name: str, part: Any) -> None:
    """Start a run part (the finisher, the follower) and hand it to the runs."""
    part.start()
    setattr(ctx, name, part)


def _redacted(url: str) -> str:
    from supertask.store.sql import redact
    return redact(url)
