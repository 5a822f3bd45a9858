"""The APScheduler 3 job store over supertask's tables.

APScheduler's own SQLAlchemy store pickles each job and writes one transaction per
fire. This one persists a reference, never an object: a job row is the definition
as JSON plus ``next_run_time``; the APScheduler ``Job`` is rebuilt from it, with the
trigger made from ``when:`` by :mod:`supertask.schedules.trigger` (the same trigger
``supertask next`` shows). The jobs of the served namespaces are held in memory,
ordered by next run time, so finding due jobs costs a bisect. Schedule changes from
fires are written behind in one transaction per scheduler wake-up (APScheduler asks
``get_next_run_time`` once at the end of each round), by a flusher thread that waits
``FLUSH_DELAY`` first so the runs just started claim their fires before it takes the
store; a crash in that window cannot double a fire, since the run row claims it
(see ``store``).
"""

from __future__ import annotations

import bisect
import gc
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Any

from apscheduler.job import Job as ApsJob
from apscheduler.jobstores.base import BaseJobStore, ConflictingIdError, JobLookupError

from supertask import compat
from supertask.log import Limited
from supertask.model import Job
from supertask.schedules.trigger import register_with_apscheduler
from supertask.store.base import Store, StoredJob
from supertask.threads import Spawn, Threads

register_with_apscheduler()  # our Schedule is the trigger of every job this store holds

UTC = timezone.utc
#: How long schedule-state writes wait after a round (the runs' claims go first).
FLUSH_DELAY = 0.05
#: What APScheduler records as the job's callable: a reference, resolved on import.
FUNC_REF = "supertask.runs.runner:execute"


def job_id(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def to_ts(dt: datetime | None) -> float | None:
    return dt.timestamp() if dt is not None else None


def from_ts(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class NamespaceJobStore(BaseJobStore):
    """Serves the jobs of some namespaces of a :class:`Store` to one APScheduler.

    Held per job in memory: its id and next run time (and its place in the order).
    Its definition (a :class:`Job`) and APScheduler ``Job`` are built the first time
    the job is due or asked for, then kept: a store of 100,000 jobs that fire once a
    year starts without parsing 100,000 definitions (docs/benchmarks.md), and the
    jobs that do fire pay once.
    """

    def __init__(self, store: Store, namespaces: Iterable[str], trigger_for: Callable[[Job], Any],
                 spawn: Spawn | None = None):
        super().__init__()
        self.spawn: Spawn = spawn or Threads("schedule state").spawn  # the flusher's (the supervisor's)
        self.store = store
        self.namespaces = list(namespaces)
        self.trigger_for = trigger_for
        self._known: set[str] = set()  # every served job's id
        self._jobs: dict[str, ApsJob] = {}  # built on demand
        self._defs: dict[str, tuple[str, Job]] = {}  # read on demand
        self._order: list[tuple[float, str]] = []  # (next run ts, id), sorted
        self._next: dict[str, float] = {}
        self._rev: dict[str, int] = {}  # each job's revision as this scheduler holds it
        #: each namespace's revision this scheduler has taken in (store.revisions)
        self.revisions: dict[str, int] = {}
        self._pending: dict[str, tuple[float | None, int | None]] = {}  # next run time, over revision
        self._lock = threading.RLock()
        #: blocks while the scheduler is starting a round's children (the executor's):
        #: the write-behind waits for it rather than take turns with those starts
        self.quiet: Callable[[], object] = lambda: None

    # -- loading ------------------------------------------------------------------------------

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self.reload()
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._flush_failed = Limited("supertask.scheduler.jobstore")  # an outage: one event a minute
        self._flusher = self.spawn("supertask-flush", self._flush_loop)

    def _flush_loop(self) -> None:
        while not self._stopping.is_set():
            self._dirty.wait(1.0)
            if not self._dirty.is_set() or self._stopping.wait(FLUSH_DELAY):
                continue
            self.quiet()
            self._dirty.clear()
            try:
                self.flush()
            except Exception as exc:  # the store is away: keep the changes, try again next round
                self._flush_failed.event("writing schedule state failed; will retry", error=str(exc))

    def reload(self, namespace: str | None = None) -> None:
        """(Re)read the served namespaces, or one of them, from the store: ids and
        next run times only; definitions are read again when next needed."""
        targets = [namespace] if namespace else self.namespaces
        revisions = self.store.revisions(targets)  # first: a change committed meanwhile is followed again
        states = [(ns, state) for ns in targets for state in self.store.job_states(ns)]
        prefixes = tuple(f"{ns}/" for ns in targets)
        with self._lock:
            self.flush()
            for jid in [j for j in self._known if j.startswith(prefixes)]:
                self._known.discard(jid)
                self._jobs.pop(jid, None)
                self._defs.pop(jid, None)
                self._next.pop(jid, None)
                self._rev.pop(jid, None)
            for ns in targets:
                self.revisions[ns] = revisions.get(ns, 0)
            for ns, (name, nrt, paused, revision) in states:
                jid = job_id(ns, name)
                self._known.add(jid)
                self._rev[jid] = revision
                if nrt is not None and not paused:
                    self._next[jid] = nrt
            # one sort, not an insort per job (that is quadratic: minutes at 100,000 jobs)
            self._order = sorted((ts, jid) for jid, ts in self._next.items())
        # the jobs live as long as the service: keep the cyclic collector from walking
        # them on every full collection (pauses that grow with the number of jobs)
        gc.collect()
        gc.freeze()

    def __len__(self) -> int:
        return len(self._known)

    def definition(self, jid: str) -> tuple[str, Job] | None:
        """``(namespace, Job)`` of a served job, read from the store the first time."""
        found = self._defs.get(jid)
        if found is not None or jid not in self._known:
            return found
        self._read_definitions([jid])
        return self._defs.get(jid)

    def _read_definitions(self, jids: Iterable[str]) -> None:
        by_ns: dict[str, list[str]] = {}
        for jid in jids:
            ns, _, name = jid.partition("/")
            by_ns.setdefault(ns, []).append(name)
        for ns, names in by_ns.items():
            rows = self.store.get_jobs(ns, names)
            with self._lock:
                for row in rows:
                    jid = job_id(ns, row.job.name)
                    if jid in self._known:
                        self._defs.setdefault(jid, (ns, row.job))

    def next_run_ts(self, jid: str) -> float | None:
        return self._next.get(jid)

    def stored_next_run_times(self, jids: Iterable[str]) -> dict[str, float | None]:
        """The next run time the store holds for each of ``jids`` (what any scheduler
        sharing it wrote last; :func:`supertask.scheduler.decisions.undecided`): one
        query per namespace."""
        by_ns: dict[str, set[str]] = {}
        for jid in jids:
            ns, _, name = jid.partition("/")
            by_ns.setdefault(ns, set()).add(name)
        out: dict[str, float | None] = {}
        for ns, names in by_ns.items():
            for name, nrt, _paused, _revision in self.store.job_states(ns):
                if name in names:
                    out[job_id(ns, name)] = nrt
        return out

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._known)

    def put(self, row: StoredJob) -> None:
        """Take a job row that changed in the store (a live edit) into memory."""
        jid = job_id(row.namespace, row.job.name)
        with self._lock:
            self._forget(jid)
            self._known.add(jid)
            self._defs[jid] = (row.namespace, row.job)
            self._rev[jid] = row.revision
            if row.next_run_time is not None and not row.paused:
                self._index(jid, row.next_run_time)

    def _aps(self, jid: str) -> ApsJob | None:
        """The APScheduler ``Job`` of a served job, built on first use."""
        job = self._jobs.get(jid)
        if job is not None:
            return job
        found = self.definition(jid)
        if found is None:
            return None
        namespace, definition = found
        job = compat.make_job(
            self,
            id=jid,
            func=FUNC_REF,
            trigger=self.trigger_for(definition),
            executor="default",
            args=(namespace, definition.name),
            kwargs={},
            name=definition.name,
            misfire_grace_time=None,  # decided by our executor, which records skips
            coalesce=False,  # ditto: it sees every missed fire and coalesces itself
            max_instances=1 << 30,  # overlap is decided by our executor too
            next_run_time=from_ts(self._next.get(jid)),
        )
        self._jobs[jid] = job
        return job

    def _forget(self, jid: str) -> None:
        self._unindex(jid)
        self._rev.pop(jid, None)
        self._known.discard(jid)
        self._jobs.pop(jid, None)
        self._defs.pop(jid, None)

    def _index(self, jid: str, ts: float) -> None:
        self._unindex(jid)
        bisect.insort(self._order, (ts, jid))
        self._next[jid] = ts

    def _unindex(self, jid: str) -> None:
        ts = self._next.pop(jid, None)
        if ts is not None:
            i = bisect.bisect_left(self._order, (ts, jid))
            if i < len(self._order) and self._order[i] == (ts, jid):
                del self._order[i]

    # -- the BaseJobStore interface -----------------------------------------------------------

    def lookup_job(self, job_id: str) -> ApsJob | None:
        with self._lock:
            return self._aps(job_id)

    def get_due_jobs(self, now: datetime) -> list[ApsJob]:
        with self._lock:
            end = bisect.bisect_right(self._order, (now.timestamp(), "\uffff"))
            due = [jid for _, jid in self._order[:end]]
            unread = [jid for jid in due if jid not in self._defs]
            if unread:  # one query for the due jobs never read yet, not one each
                self._read_definitions(unread)
            jobs = [self._aps(jid) for jid in due]
            return [job for job in jobs if job is not None]

    def get_next_run_time(self) -> datetime | None:
        with self._lock:
            if self._pending:
                dirty = getattr(self, "_dirty", None)
                if dirty is not None:
                    dirty.set()
                else:  # not started: write now
                    self.flush()
            return from_ts(self._order[0][0]) if self._order else None

    def get_all_jobs(self) -> list[ApsJob]:
        """Every job, built (costly with many jobs: listings use :meth:`ids` instead)."""
        with self._lock:
            ids = [jid for _, jid in self._order] + sorted(j for j in self._known if j not in self._next)
            unread = [jid for jid in ids if jid not in self._defs]
            if unread:
                self._read_definitions(unread)
            jobs = [self._aps(jid) for jid in ids]
            return [job for job in jobs if job is not None]

    def add_job(self, job: ApsJob) -> None:
        with self._lock:
            if job.id in self._known:
                raise ConflictingIdError(job.id)
            raise NotImplementedError("add jobs through the store, then put() them here")

    def update_job(self, job: ApsJob) -> None:
        with self._lock:
            if job.id not in self._known:
                raise JobLookupError(job.id)
            self._jobs[job.id] = job
            ts = to_ts(job.next_run_time)
            if ts is None:
                self._unindex(job.id)
            else:
                self._index(job.id, ts)
            self._pending[job.id] = (ts, self._rev.get(job.id))

    def remove_job(self, job_id: str) -> None:
        """APScheduler calls this when a trigger is exhausted (a one-off fired): the
        definition stays in the store with no next run time, so a later sync of an
        unchanged ``once`` job does not fire it again."""
        with self._lock:
            if job_id not in self._known:
                raise JobLookupError(job_id)
            self._unindex(job_id)
            job = self._jobs.get(job_id)
            if job is not None:
                job.next_run_time = None
            self._pending[job_id] = (None, self._rev.get(job_id))

    def remove_all_jobs(self) -> None:
        with self._lock:
            for jid in list(self._known):
                self._forget(jid)

    def shutdown(self) -> None:
        stopping = getattr(self, "_stopping", None)
        if stopping is not None:
            stopping.set()
            self._dirty.set()
            self._flusher.join(5)
        self.flush()

    def take_changes(self, namespace: str, rows: Iterable[StoredJob], revision: int,
                     names: set[str] | None = None) -> tuple[list[str], list[str]]:
        """Take in what another scheduler (or ``--store``) changed in a namespace up to
        ``revision``: each row newer than the job held, and, with ``names`` (the jobs the
        namespace has), the removal of those held but gone (unless changed here after
        ``revision``). Returns the names changed and removed."""
        changed, removed = [], []
        with self._lock:
            for row in rows:
                jid = job_id(namespace, row.job.name)
                if jid not in self._known or row.revision > self._rev.get(jid, -1):
                    self.put(row)
                    changed.append(row.job.name)
            if names is not None:
                prefix = f"{namespace}/"
                for jid in [j for j in self._known if j.startswith(prefix)]:
                    if jid[len(prefix):] not in names and self._rev.get(jid, 0) <= revision:
                        self._forget(jid)
                        self._pending.pop(jid, None)
                        removed.append(jid[len(prefix):])
            self.revisions[namespace] = max(self.revisions.get(namespace, 0), revision)
        return changed, removed

    def count(self, namespace: str) -> int:
        """How many jobs of ``namespace`` are held."""
        prefix = f"{namespace}/"
        with self._lock:
            return sum(1 for jid in self._known if jid.startswith(prefix))

    def forget(self, namespace: str, name: str) -> None:
        """Drop a job from memory (deleted from the store by a live command)."""
        with self._lock:
            self._forget(job_id(namespace, name))
            self._pending.pop(job_id(namespace, name), None)

    # -- write-behind -------------------------------------------------------------------------

    def flush(self) -> None:
        """Persist pending next run times, one transaction per namespace."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        by_ns: dict[str, list[tuple[Any, ...]]] = {}
        for jid, (ts, revision) in pending.items():
            ns, _, name = jid.partition("/")
            by_ns.setdefault(ns, []).append((name, ts) if revision is None else (name, ts, revision))
        try:
            for ns, updates in by_ns.items():
                self.store.set_next_run_times(ns, updates)
        except Exception:
            with self._lock:  # keep what was not written, unless a newer value came since
                for jid, value in pending.items():
                    self._pending.setdefault(jid, value)
            raise
