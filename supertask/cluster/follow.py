"""Changes to the jobs made elsewhere reach this scheduler: another host's live command
(``jobs pause``, ``edit``, ``remove``...), its timetable sync, a ``jobs remove --store``
with no scheduler at all.

Every write that changes a namespace's jobs (not their schedule state) raises the
namespace's revision, and the rows it changes carry it (:func:`supertask.store.statements.bump`);
on PostgreSQL it also sends a ``NOTIFY`` at its commit. :class:`JobChanges` (a
scheduler component) waits for those notifications on a connection of its own and,
whatever it hears, looks at the served namespaces' revisions every
:data:`POLL` seconds (a notification is lost when its connection is). A revision past
the one it knows: the jobs changed since are taken into the schedule as a live edit
would be, the jobs gone are dropped, and the scheduler looks at its jobs again. Its own
changes come back too and are taken again (the same rows: no change).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from supertask.log import Limited, get_logger

#: Seconds between two looks at the revisions, whatever the notifications say.
POLL = 1.0
#: Seconds before a listening connection that failed is opened again.
RELISTEN = 5.0


class JobChanges:
    """Follow the served namespaces' revisions (see the module's docstring)."""

    def __init__(self, service: Any):
        self.service = service
        self.store = service.store
        self.known: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listener: Any = None
        self._listen_at = 0.0
        self._failed = Limited("supertask.cluster")
        self.log = get_logger("supertask.cluster")

    def start(self, service: Any = None) -> None:
        try:
            self.known = self.store.revisions(self.service.namespaces)
        except Exception as exc:  # followed from the next look on
            self._failed.event("job changes not followed yet", error=str(exc))
        self._thread = self.service.supervisor.thread("supertask-job-changes", self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(POLL + 15)
        self._close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wait()
            if self._stop.is_set():
                return
            try:
                self.look()
            except Exception as exc:
                if self.store.health.up:
                    self._failed.event("following job changes failed", error=str(exc))

    def _wait(self) -> None:
        """Until a notification, or :data:`POLL` seconds."""
        if self._listener is None and time.monotonic() >= self._listen_at:
            self._listen_at = time.monotonic() + RELISTEN
            try:
                self._listener = self.store.listener()
            except Exception:
                self._listener = None
        if self._listener is None:
            self._stop.wait(POLL)
            return
        try:
            for _ in self._listener.notifies(timeout=POLL, stop_after=1):
                pass
        except Exception:  # its connection went: polled meanwhile, listened to again later
            self._close()
            self._stop.wait(POLL)

    def _close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.close()
            except Exception:
                pass

    def look(self) -> None:
        """Take in the changes of every served namespace whose revision moved."""
        for namespace, revision in self.store.revisions(self.service.namespaces).items():
            seen = self.known.get(namespace, 0)
            if revision > seen:
                self.apply(namespace, seen)
                self.known[namespace] = revision

    def apply(self, namespace: str, seen: int) -> None:
        """The jobs of ``namespace`` changed since revision ``seen``: into the schedule."""
        rows, count = self.store.jobs_since(namespace, seen)
        service, jobstore = self.service, self.service.jobstore
        prefix = f"{namespace}/"
        gone: list[str] = []
        with service._editing():
            jobstore.flush()
            for row in rows:
                jobstore.put(row)
            known = {jid for jid in jobstore.ids() if jid.startswith(prefix)}
            if len(known) != count:  # some were removed: which
                names = {name for name, _, _ in self.store.job_states(namespace)}
                gone = sorted(jid[len(prefix):] for jid in known if jid[len(prefix):] not in names)
                for name in gone:
                    jobstore.forget(namespace, name)
        service.wakeup()
        if rows or gone:
            self.log.info("jobs changed in the store", namespace=namespace,
                          changed=sorted(row.job.name for row in rows)[:20], removed=gone[:20],
                          jobs=len(known) - len(gone))
