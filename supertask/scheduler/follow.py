"""Live changes made elsewhere reach this scheduler: :class:`ChangeFollower`.

Several schedulers may serve one namespace from one store (docs/cluster.md). Each holds
its jobs in memory (:class:`~supertask.scheduler.jobstore.NamespaceJobStore`); a job
paused, edited, added or removed through another one's control endpoint, by a timetable
synced on another host, or by ``supertask jobs ... --store URL`` with no scheduler at
all, is a new revision of the namespace in the store
(:func:`supertask.store.statements.bump_revision`). This component asks the store for
its namespaces' revisions every :data:`POLL` seconds (one primary-key lookup) and, when
one moved, reads the jobs changed since the revision it holds and takes them into
memory (their schedule, pause and removal); on PostgreSQL it also ``LISTEN``\\ s on
:data:`~supertask.store.statements.CHANNEL`, on a connection of its own that it
reconnects, so a change is followed at once, the poll being the fallback for a lost
notification. A change is in effect on every host within about a second; runs queued
through the store (``jobs trigger --store``) are taken up the same way. What one host
holds of ``supertask pause`` (all firing) stays its own.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from supertask.log import Limited, get_logger

#: Seconds between two looks at the namespaces' revisions.
POLL = 1.0
#: Seconds between two attempts to (re)open the PostgreSQL listening connection.
RELISTEN = 10.0
_FAILED = Limited("supertask.scheduler.follow")


class ChangeFollower:
    """A scheduler component (see supertask.scheduler.service.Component)."""

    def __init__(self, interval: float = POLL):
        self.interval = interval
        self.log = get_logger("supertask.scheduler.follow")
        self._stop = threading.Event()
        self._service: Any = None
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._queued_seen = False

    def start(self, service: Any) -> None:
        self._service = service
        if service.store.dialect == "postgresql":
            self._listener = Listener(service.store)
        self._thread = service.supervisor.thread("supertask-follow", self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.poll()
                except Exception as exc:  # the store is away: the next look tries again
                    if self._service.store.health.up:  # else the store's own events say it (store unreachable)
                        _FAILED.event("following changes in the store failed; will retry", error=str(exc))
                if self._listener is not None:
                    self._listener.wait(self.interval, self._stop)
                else:
                    self._stop.wait(self.interval)
        finally:
            if self._listener is not None:
                self._listener.close()

    def poll(self) -> None:
        """Take in what changed in the served namespaces since this scheduler last looked."""
        service = self._service
        store, jobstore = service.store, service.jobstore
        revisions = store.revisions(service.namespaces)
        moved = [ns for ns in service.namespaces if revisions.get(ns, 0) != jobstore.revisions.get(ns, 0)]
        for ns in moved:
            self.follow(ns, revisions.get(ns, 0))
        if moved or not self._queued_seen:
            self._queued_seen = True
            for record in store.take_queued(moved or service.namespaces, service.settings.host):
                run_queued(service, record)

    def follow(self, namespace: str, revision: int) -> None:
        service = self._service
        store, jobstore = service.store, service.jobstore
        with service.edit_lock:  # not interleaved with a live change made here
            since = jobstore.revisions.get(namespace, 0)
            rows, count = store.changed_jobs(namespace, since if revision >= since else -1)
            names = None
            held = {f"{namespace}/{row.job.name}" for row in rows} | {
                jid for jid in jobstore.ids() if jid.startswith(f"{namespace}/")}
            if count != len(held):
                names = store.job_names(namespace)
            with service.editing():
                changed, removed = jobstore.take_changes(namespace, rows, revision, names)
        service.changed_elsewhere()
        if changed or removed:
            service.wakeup()
            self.log.info("jobs changed in the store", namespace=namespace, revision=revision,
                          changed=sorted(changed), removed=sorted(removed))


def run_queued(service: Any, record: Any) -> None:
    """Start a manual run queued through the store (``jobs trigger --store``) that this
    scheduler took up; one it cannot start becomes ``skipped``, saying why."""
    from datetime import datetime, timezone

    from supertask.model import Overlap, RunStatus

    found = service.jobstore.definition(f"{record.namespace}/{record.job}")
    labels = service.executor.route(found[1]) if found is not None and service.executor.route else None
    if labels is not None:  # a job that runs on workers: the row is left to them
        from supertask.workers.route import hand_over

        hand_over(service.store, record.id, found[1], labels)
        return
    why = None
    if found is None:
        why = "the job is no longer in the store"
    elif service.stop_request.event.is_set():
        why = "the scheduler that took it up was stopping"
    elif found[1].overlap is Overlap.SKIP and service.executor.busy(record.namespace, record.job):
        why = "the previous run was still running (overlap: skip)"
    if why is None and service.executor.submit_queued(record.namespace, found[1], record.scheduled, record.id):
        service.log.info("run triggered", job=record.job, namespace=record.namespace, run=record.id, by="store")
        return
    why = why or "the scheduler that took it up was stopping"
    service.store.update_run(record.id, status=RunStatus.SKIPPED, finished=datetime.now(timezone.utc), message=why)
    service.log.warning("queued run skipped", job=record.job, namespace=record.namespace, run=record.id, reason=why)


class Listener:
    """``LISTEN`` on the store's channel, on a PostgreSQL connection of its own (outside
    the pool), reopened when it breaks; :meth:`wait` returns on a notification or after
    ``timeout`` seconds."""

    def __init__(self, store: Any):
        self.store = store
        self.conn: Any = None
        self._tried = -RELISTEN

    def _open(self) -> Any:
        from supertask.store.statements import CHANNEL

        if time.monotonic() - self._tried < RELISTEN:
            return None
        self._tried = time.monotonic()
        from supertask.store.listen import listen

        try:
            return listen(self.store.engine, CHANNEL)
        except Exception as exc:
            if self.store.health.up:  # else the store's own events say it
                _FAILED.event("listening for changes in the store failed; polling meanwhile", error=str(exc))
            return None

    def wait(self, timeout: float, stop: threading.Event) -> None:
        if self.conn is None:
            self.conn = self._open()
        if self.conn is None:
            stop.wait(timeout)
            return
        began = time.monotonic()
        try:
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                break
        except Exception as exc:  # the connection broke (the store went away: its own events say so)
            get_logger("supertask.scheduler.follow").info("listening for changes interrupted; polling meanwhile",
                                                          error=str(exc))
            self.close()
            stop.wait(max(0.0, timeout - (time.monotonic() - began)))

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
