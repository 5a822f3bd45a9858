"""The APScheduler executor that decides, at each fire, whether and how a job runs.

APScheduler hands it every fire time a job has due (coalescing and misfire checks
are switched off in the job store so that nothing is dropped silently); this module
owns the rules and records every decision as a run row.
"""

from __future__ import annotations

import functools
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from supertask import compat
from supertask.log import get_logger
from supertask.model import Job, Overlap, Reason, RunKind, RunStatus
from supertask.runs import unwritten
from supertask.runs.context import RunContext
from supertask.runs.lifecycle import Begun
from supertask.runs.runner import execute
from supertask.scheduler import decisions
from supertask.scheduler.coalesce import Coalesced
from supertask.scheduler.jobstore import NamespaceJobStore
from supertask.scheduler.launch import SKIPPED, Fire, clock_ahead, db_now, launch, skip_unqueued
from supertask.settings import default
from supertask.threads import Spawn, Threads

UTC = timezone.utc


@dataclass
class _Waiting:
    """A fire held back by ``overlap: queue``: its row exists with status ``queued``
    (None: the store was away; its row is claimed when it starts)."""

    run_id: int | None
    definition: Job
    fire: datetime
    reason: Reason
    then: list[tuple[datetime, Reason]] | None = None  # catch_up: all's fires after it


class RunExecutor(compat.executor_base()):  # type: ignore[misc]
    def __init__(
        self, ctx: RunContext, jobstore: NamespaceJobStore, max_workers: int = default("max_workers"),
        max_concurrent: int | None = default("max_concurrent"), up_since: datetime | None = None,
        spawn: Spawn | None = None,
    ):
        super().__init__()
        self.ctx = ctx
        #: starts a run's thread when the pool no longer takes work (the supervisor's)
        self.spawn: Spawn = spawn or Threads("run threads").spawn
        self.jobstore = jobstore
        self.max_workers = max_workers
        # when this scheduler came up, before it synced its timetable: fires due before
        # it were missed while it was down (catch-up); ones due later are on schedule
        self._up_since = up_since
        self.started_at = up_since or datetime.now(UTC)
        self._pool: ThreadPoolExecutor | None = None
        # spans of paused firing (supertask pause .. resume), oldest first
        self._pauses: list[decisions.Pause] = []
        self._inflight: Counter[str] = Counter()
        self._waiting: dict[str, _Waiting] = {}
        self._guard = threading.Lock()
        # the fires of the scheduler's round being dispatched (see launch_round)
        self._round: list[Fire] = []
        # the child of each job's followed run in flight, when nothing follows it (no
        # retry, no queued fire): a fire of the job finds it busy only while it runs
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        # when each such child started (by pid): a child started after a fire's time
        # (the scheduler was held up) did not run at that time
        self._born: dict[int, float] = {}
        # how many of each job's runs in flight are such runs: while they are all its
        # runs in flight, only the newest child can still run (each started after the
        # one before had exited)
        self._following: Counter[str] = Counter()
        self._round_thread: int | None = None
        # clear while a round's children are being started: the schedule write-behind
        # waits for it (wait_launched) rather than take turns at the interpreter with them
        self._launched = threading.Event()
        self._launched.set()
        # fires catch_up: latest folded into later ones, since "fires coalesced" was logged
        self._coalesced = Coalesced(ctx, get_logger("supertask.scheduler.service"))
        # the global cap: attempts beyond it wait (in order) for a slot (runner.execute)
        ctx.slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self.log = get_logger("supertask.scheduler.service")
        #: namespace -> whether other schedulers may fire its jobs from the same store (set
        #: by the service): then each claim is checked against what they run
        self.shared: Callable[[str], bool] | None = None
        self.route: Callable[[Job], dict[str, str] | None] | None = None  # labels: a run for workers
        ctx.guard = self.guard_for

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self.started_at = self._up_since or datetime.now(UTC)

    def open(self) -> None:
        """The pool of run threads (the service's supervisor opens it before the scheduler starts)."""
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="supertask-run")

    def shutdown(self, wait: bool = True) -> None:
        """APScheduler's stop: nothing here (the pool's queued work, rows to write among
        it, is let finish by :meth:`close`, which the service's supervisor calls)."""

    def close(self) -> None:
        """Wait for the pool's work (runs, retries given up on at the stop, rows to write)."""
        self._coalesced.report()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        """Act on what :func:`~supertask.scheduler.decisions.due` says the due fires of
        ``job`` become: missed ones one ``skipped`` row, coalesced ones a tally, the
        others runs (the first now, the rest after it, oldest first)."""
        found = self.jobstore.definition(job.id)
        if found is None:
            return
        namespace, definition = found
        decided = decisions.due(run_times, db_now(self.ctx.store), grace=definition.misfire_grace,
                                catch_up=definition.catch_up, up_since=self.started_at, pauses=self._pauses)
        runs, folded = [], []
        for fire in decided:
            if fire.verdict is decisions.Verdict.SKIP:
                self.log.warning("fires missed", job=definition.name, namespace=namespace, missed=fire.count,
                                 first=(fire.first or fire.fire).isoformat(), last=fire.fire.isoformat())
                self._skip(namespace, definition, fire.fire, fire.message or "")
            elif fire.verdict is decisions.Verdict.COALESCE:
                folded.append(fire.fire)
            else:
                runs.append((fire.fire, fire.reason))
        if folded:
            self._coalesced.add(namespace, definition.name, folded)
        if runs:
            (first, reason), *then = runs
            self.submit(namespace, definition, first, reason, then=then)

    def pause(self, paused: bool, now: datetime) -> None:
        """All firing is held from ``now`` (``supertask pause``), or released: fires due
        meanwhile are judged at release as missed while paused (:func:`decisions.due`)."""
        pauses = self._pauses
        if paused and (not pauses or pauses[-1][1] is not None):
            self._pauses = [*pauses[-7:], (now, None)]
        elif not paused and pauses and pauses[-1][1] is None:
            self._pauses = [*pauses[:-1], (pauses[-1][0], now)]

    def submit(
        self, namespace: str, definition: Job, fire: datetime, reason: Reason,
        then: list[tuple[datetime, Reason]] | None = None,
    ) -> bool:
        """Start a run of ``definition`` for ``fire``, as its ``overlap`` policy says;
        the fires in ``then`` (``catch_up: all``) run after it, one by one, oldest first.

        - ``skip`` (default): while a run of the job is in flight, the fire becomes a
          ``skipped`` row and a warning event (and the next of ``then`` is decided in turn).
        - ``queue``: the fire waits (a ``queued`` row) and starts when the run in flight
          ends; at most one waits, a further fire is skipped.
        - ``allow``: runs side by side, at most ``max_concurrent`` (when set); beyond
          that the fire is skipped.
        """
        if self.route is not None and (labels := self.route(definition)) is not None:  # for a worker
            from supertask.workers.route import submit
            return submit(self, namespace, definition, fire, reason, then, labels)
        while True:
            started = self._submit(namespace, definition, fire, reason, then)
            if started is not None:
                return started
            if not then:
                return False
            (fire, reason), *then = then

    def _submit(self, namespace: str, definition: Job, fire: datetime, reason: Reason,
                then: list[tuple[datetime, Reason]] | None) -> bool | None:
        """:meth:`submit` of one fire; None: it was skipped (``then`` is still to decide)."""
        key = f"{namespace}/{definition.name}"
        policy = definition.overlap
        with self._guard:
            busy = self._inflight[key]
            verdict = "run"
            if busy and policy is Overlap.SKIP:
                verdict = "skip"
            elif busy and policy is Overlap.QUEUE:
                verdict = "skip" if key in self._waiting else "queue"
            elif policy is Overlap.ALLOW and definition.max_concurrent and busy >= definition.max_concurrent:
                verdict = "skip"
            after = None
            if (verdict == "skip" and policy is Overlap.SKIP and self._round_thread == threading.get_ident()
                    and busy == self._following[key] and key in self._children and self._roundable(definition)):
                # every run of the job in flight is one the follower carries, each started
                # after the one before it had exited: only the newest child can still run,
                # and whether it does is seen at the fire's start (launch.launch)
                after, verdict = self._children[key], "run"
            if verdict == "run":
                self._inflight[key] += 1
        if after is not None:
            self._round.append((key, namespace, definition, fire, reason, then, after))
            return True
        if verdict != "run" and self._round_thread == threading.get_ident() and fire.timestamp() > time.time():
            # decided ahead of its time (rounds.LEAD): the run in flight may end before
            # it, so the fire is decided again at its time, as it would have been
            return self._start_later(namespace, definition, fire, reason, then)
        if verdict == "skip":
            why = SKIPPED[policy].format(max_concurrent=definition.max_concurrent)
            self._warn_skipped(namespace, definition, fire)
            self._skip(namespace, definition, fire, why)
            return None
        if verdict == "queue":
            try:
                run_id = self.ctx.store.claim_run(
                    namespace=namespace, job=definition.name, scheduled=fire, attempt=1, reason=reason.value,
                    host=self.ctx.settings.host, status=RunStatus.QUEUED, message=decisions.QUEUED)
            except Exception:  # the store is away: the fire waits all the same, claimed as it starts
                run_id = None
            else:
                if run_id is None:
                    return False
            with self._guard:
                taken = bool(self._inflight[key]) and key in self._waiting
                if self._inflight[key] and not taken:
                    self._waiting[key] = _Waiting(run_id, definition, fire, reason, then)
                    self.log.info("run queued", job=definition.name, namespace=namespace, run=run_id)
                    return True
                if not taken:
                    self._inflight[key] += 1  # the run in flight ended meanwhile
            if taken:  # another fire was queued while this one's row was claimed (a slow store)
                self._warn_skipped(namespace, definition, fire)
                skip_unqueued(self, namespace, definition, fire, run_id, SKIPPED[Overlap.QUEUE])
                return None
            return self._start(key, namespace, definition, fire, reason, run_id, then=then)
        return self._start(key, namespace, definition, fire, reason, None, then=then)

    def _start_later(self, namespace: str, definition: Job, fire: datetime, reason: Reason,
                     then: list[tuple[datetime, Reason]] | None, wait: float = 0.0) -> bool:
        def at_its_time() -> None:
            if not self.ctx.shutdown.wait(max(wait, fire.timestamp() - time.time())):
                self.submit(namespace, definition, fire, reason, then=then)

        try:
            assert self._pool is not None
            self._pool.submit(at_its_time)
        except RuntimeError:  # stopping
            return False
        return True

    def submit_retry(self, namespace: str, definition: Job, fire: datetime, attempt: int) -> bool:
        """Start attempt ``attempt`` of the fire at ``fire`` (a lost run's retry)."""
        key = f"{namespace}/{definition.name}"
        with self._guard:
            self._inflight[key] += 1
        return self._start(key, namespace, definition, fire, Reason.RETRY, None, attempt)

    def submit_queued(self, namespace: str, definition: Job, fire: datetime, run_id: int) -> bool:
        """Start the ``queued`` row ``run_id`` (a manual run queued through the store)."""
        key = f"{namespace}/{definition.name}"
        with self._guard:
            self._inflight[key] += 1
        return self._start(key, namespace, definition, fire, Reason.MANUAL, run_id)

    def _start(self, key: str, namespace: str, definition: Job, fire: datetime, reason: Reason,
               run_id: int | None, attempt: int = 1, then: list[tuple[datetime, Reason]] | None = None) -> bool:
        assert self._pool is not None, "executor not started"
        if self._round_thread == threading.get_ident() and run_id is None and attempt == 1 \
                and self._roundable(definition):
            self._round.append((key, namespace, definition, fire, reason, then, None))
            return True
        try:
            self._pool.submit(self._run, namespace, definition, fire, reason, key, run_id, attempt, then)
        except RuntimeError:  # pool shut down: we are stopping
            self._release(key)
            return False
        return True

    def _roundable(self, definition: Job) -> bool:
        """Whether a fire of the job can be started with the round's (a ``run:``
        command: not a container, not steps; no jitter, no global cap)."""
        spec = definition.run_spec
        return (spec is not None and spec.kind is not RunKind.DOCKER
                and not definition.jitter and self.ctx.slots is None)

    def guard_for(self, namespace: str, definition: Job, reason: Reason, attempt: int = 1) -> dict[str, Any] | None:
        """What the claim of a fire of ``definition`` is checked against in the store
        (:mod:`supertask.store.guard`) when other schedulers share it (``shared``): its
        overlap policy and cap, this host's other runs of it, and whether a pause counts.
        None (nothing checked) for a retry's attempt and when the store is this host's alone."""
        if attempt != 1 or reason is Reason.RETRY or self.shared is None or not self.shared(namespace):
            return None
        busy = self._inflight.get(f"{namespace}/{definition.name}", 1) - 1
        return {"overlap": definition.overlap.value, "max": definition.max_concurrent or 0, "busy": max(0, busy),
                "paused": reason is not Reason.MANUAL}

    def wait_launched(self, timeout: float = 60.0) -> bool:
        """Wait until no round's children are being started."""
        return self._launched.wait(timeout)

    def collect_round(self) -> None:
        """From now until :meth:`launch_round`, fires this thread submits that can be
        started in one go (a ``run:`` command, no jitter, no global cap) are kept."""
        self._round_thread = threading.get_ident()

    def launch_round(self) -> float | None:
        """Start the fires of the round: their rows claimed in one transaction, then
        their children started one after another here, then each handed to a pool
        follower that carries it to the end (:mod:`supertask.runs.lifecycle`). A round of
        100 fires costs one commit, not 100 commits contending for the store, and the
        first child starts first (docs/benchmarks.md). Returns when (``time.monotonic()``)
        the round was ready to start its first child, None for an empty round."""
        self._round_thread = None
        if self._coalesced.pending:
            self._coalesced.report(due_only=True)
        fires, self._round = self._round, []
        if not fires:
            return None
        self._launched.clear()
        try:
            return launch(self, fires)
        finally:
            self._launched.set()

    def _submit_run(self, key: str, namespace: str, definition: Job, fire: datetime, reason: Reason,
                    run_id: int | None, then: list[tuple[datetime, Reason]] | None, begun: Begun | None) -> None:
        args = (namespace, definition, fire, reason, key, run_id, 1, then, begun)
        try:
            assert self._pool is not None
            self._pool.submit(self._run, *args)
        except RuntimeError:  # the pool is shutting down: a started child is still followed
            if begun is None:
                self._release(key)
            else:
                self.spawn("supertask-run-late", self._run, *args)

    def _run(self, namespace: str, definition: Job, fire: datetime, reason: Reason, key: str,
             run_id: int | None, attempt: int = 1, then: list[tuple[datetime, Reason]] | None = None,
             begun: Begun | None = None) -> None:
        try:
            early = fire.timestamp() - time.time() + clock_ahead(self.ctx.store)  # decided ahead (rounds.LEAD)
            if early > 0 and self.ctx.shutdown.wait(early):
                return
            if definition.jitter and self.ctx.shutdown.wait(random.uniform(0, definition.jitter)):
                return
            for fire_time, why in [(fire, reason), *(then or [])]:
                if self.ctx.shutdown.is_set() and begun is None:
                    return
                execute(self.ctx, namespace, definition, fire_time, why, attempt=attempt, run_id=run_id, begun=begun)
                run_id, attempt, begun = None, 1, None
        except Exception:
            self.log.exception("run failed inside supertask", job=definition.name, namespace=namespace)
        finally:
            self._release(key)

    def _release(self, key: str) -> None:
        with self._guard:
            self._inflight[key] -= 1
            if self._inflight[key] <= 0:
                del self._inflight[key]
            waiting = self._waiting.pop(key, None)
            if waiting is not None:
                self._inflight[key] += 1
        if waiting is not None:
            ns = key.split("/", 1)[0]
            if self.ctx.shutdown.is_set():
                skip_unqueued(self, ns, waiting.definition, waiting.fire, waiting.run_id, decisions.STOPPED_QUEUED)
                self._release(key)
                return
            self._start(key, ns, waiting.definition, waiting.fire, waiting.reason, waiting.run_id,
                        then=waiting.then)

    def _skip(self, namespace: str, definition: Job, fire: datetime, message: str) -> None:
        """Record a skipped (or missed) fire; written by the pool, so the scheduler
        thread keeps dispatching while the store is busy; kept while it is away and
        written when it is back (runs.unwritten)."""
        self._by_pool(functools.partial(unwritten.claim_or_keep, self.ctx, dict(
            namespace=namespace, job=definition.name, scheduled=fire, attempt=1, reason=Reason.SCHEDULE.value,
            host=self.ctx.settings.host, status=RunStatus.SKIPPED, message=message)))

    def _by_pool(self, write: Callable[[], object]) -> None:
        """A write to the store the pool makes (the caller goes on); here when stopping."""
        try:
            assert self._pool is not None
            self._pool.submit(write)
        except (RuntimeError, AssertionError):
            write()

    def _warn_skipped(self, namespace: str, definition: Job, fire: datetime) -> None:
        self.log.warning("run skipped: previous run still in flight", job=definition.name,
                         namespace=namespace, scheduled=fire.isoformat(), overlap=definition.overlap.value)

    def in_flight(self) -> int:
        return sum(self._inflight.values())  # (a glance: no lock)

    def busy(self, namespace: str, name: str) -> int:
        """Runs of one job in flight: running, or waiting between attempts to retry."""
        with self._guard:
            return self._inflight.get(f"{namespace}/{name}", 0)
