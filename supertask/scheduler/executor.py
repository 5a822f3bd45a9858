"""The APScheduler executor that decides, at each fire, whether and how a job runs.

APScheduler hands it every fire time a job has due (coalescing and misfire checks
are switched off in the job store so that nothing is dropped silently); this module
owns the rules and records every decision as a run row.
"""

from __future__ import annotations

import functools
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from supertask import compat
from supertask.log import Limited, get_logger
from supertask.model import Job, Overlap, Reason, RunStatus
from supertask.runs import lifecycle, runner
from supertask.runs.context import RunContext
from supertask.runs.lifecycle import Begun, prepare
from supertask.runs.runner import execute
from supertask.scheduler import decisions
from supertask.scheduler.jobstore import NamespaceJobStore
from supertask.settings import default

UTC = timezone.utc
#: how often, at most, "fires coalesced" is logged while fires keep being coalesced
COALESCED_EVERY = 60.0
#: a store that is away fails every round's claim: said at most once a minute
CLAIMS_FAILED = Limited("supertask.scheduler.service")


#: A fire of a round: (key, namespace, job, fire time, reason, the catch-up fires after
#: it, the child of the job's run in flight that must have exited by the fire's start).
_Fire = tuple[str, str, Job, datetime, Reason, list[tuple[datetime, Reason]] | None,
              "subprocess.Popen[bytes] | None"]


SKIPPED = {
    Overlap.SKIP: "the previous run was still running (overlap: skip)",
    Overlap.QUEUE: "a run was in flight and another already waiting (overlap: queue)",
    Overlap.ALLOW: "max_concurrent {max_concurrent} runs were in flight (overlap: allow)",
}


def _tracked(definition: Job, then: list[tuple[datetime, Reason]] | None) -> bool:
    """Whether a fire's followed child is what a later fire of the job waits for
    (``RunExecutor._children``): nothing follows its run, no retry, no queued fires."""
    return not then and not definition.retries


def _exited(child: subprocess.Popen[bytes]) -> bool:
    """Whether ``child`` has exited, without reaping it (its follower does)."""
    if child.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped meanwhile
        return True


@dataclass
class _Folded:
    """A tally of coalesced fires (see :meth:`RunExecutor._coalesced`)."""

    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # fires by (namespace, job)
    first: datetime | None = None
    last: datetime | None = None


@dataclass
class _Waiting:
    """A fire held back by ``overlap: queue``: its row exists with status ``queued``."""

    run_id: int
    definition: Job
    fire: datetime
    reason: Reason


class RunExecutor(compat.executor_base()):  # type: ignore[misc]
    def __init__(
        self, ctx: RunContext, jobstore: NamespaceJobStore, max_workers: int = default("max_workers"),
        max_concurrent: int | None = default("max_concurrent"), up_since: datetime | None = None,
    ):
        super().__init__()
        self.ctx = ctx
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
        self._round: list[_Fire] = []
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
        self._folded = _Folded()
        self._folded_at = -COALESCED_EVERY
        # the global cap: attempts beyond it wait (in order) for a slot (runner.execute)
        ctx.slots = threading.BoundedSemaphore(max_concurrent) if max_concurrent else None
        self.log = get_logger("supertask.scheduler.service")

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
        self._report_coalesced()
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
        decided = decisions.due(run_times, datetime.now(UTC), grace=definition.misfire_grace,
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
            self._coalesced(namespace, definition, folded)
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
          ``skipped`` row and a warning event.
        - ``queue``: the fire waits (a ``queued`` row) and starts when the run in flight
          ends; at most one waits, a further fire is skipped.
        - ``allow``: runs side by side, at most ``max_concurrent`` (when set); beyond
          that the fire is skipped.
        """
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
                # and whether it does is seen at the fire's start (_launch)
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
            return False
        if verdict == "queue":
            run_id = self.ctx.store.claim_run(
                namespace=namespace, job=definition.name, scheduled=fire, attempt=1, reason=reason.value,
                host=self.ctx.settings.host, status=RunStatus.QUEUED,
                message="waiting for the run in flight (overlap: queue)",
            )
            if run_id is None:
                return False
            with self._guard:
                if self._inflight[key]:
                    self._waiting[key] = _Waiting(run_id, definition, fire, reason)
                    self.log.info("run queued", job=definition.name, namespace=namespace, run=run_id)
                    return True
                self._inflight[key] += 1  # the run in flight ended meanwhile
            return self._start(key, namespace, definition, fire, reason, run_id)
        return self._start(key, namespace, definition, fire, reason, None, then=then)

    def _start_later(self, namespace: str, definition: Job, fire: datetime, reason: Reason,
                     then: list[tuple[datetime, Reason]] | None) -> bool:
        def at_its_time() -> None:
            if not self.ctx.shutdown.wait(max(0.0, fire.timestamp() - time.time())):
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
        return (definition.run is not None and not definition.run.startswith("docker:")
                and not definition.jitter and self.ctx.slots is None)

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
        if self._folded.jobs:
            self._report_coalesced(due_only=True)
        fires, self._round = self._round, []
        if not fires:
            return None
        self._launched.clear()
        try:
            return self._launch(fires)
        finally:
            self._launched.set()

    def _launch(self, fires: list[_Fire]) -> float:
        settings = self.ctx.settings
        try:
            ids = self.ctx.store.claim_runs([
                dict(namespace=ns, job=definition.name, scheduled=fire, attempt=1, reason=reason.value,
                     host=settings.host, log_dir=settings.log_dir)
                for _, ns, definition, fire, reason, _, _ in fires
            ])
        except Exception as exc:  # the store is away: each fire meets it alone (runs.lifecycle.begin)
            CLAIMS_FAILED.event("claiming the round's fires failed; claiming them one by one", error=str(exc))
            for key, ns, definition, fire, reason, then, after in fires:
                if after is not None and not _exited(after):
                    self._release(key)
                    self._skip(ns, definition, fire, SKIPPED[Overlap.SKIP])
                    continue
                self._submit_run(key, ns, definition, fire, reason, None, then, None)
            return time.monotonic()
        ready = []
        for (key, ns, definition, fire, reason, then, after), run_id in zip(fires, ids, strict=True):
            if run_id is None:
                self.log.info("fire already claimed", job=definition.name, namespace=ns, scheduled=fire.isoformat())
                self._release(key)
                continue
            ready.append((key, ns, definition, fire, reason, run_id, then,
                          prepare(self.ctx, ns, definition, fire, 1, run_id), after))
        prepared = time.monotonic()
        skipped = []
        for item in ready:
            fire, begun, after = item[3], item[7], item[8]
            early = fire.timestamp() - time.time()  # the round is decided ahead (rounds.LEAD)
            if early > 0:
                time.sleep(early)
            if after is not None and not _exited(after) and self._born.get(after.pid, 0.0) <= fire.timestamp():
                skipped.append(item)  # the job's run in flight still runs, as it did at the fire's time
                continue
            try:
                begun.start()
            except Exception:  # the pool thread starts it the usual way, and meets what failed
                begun.command, begun.started = None, None
        if skipped:
            self._skip_claimed(skipped)
            gone = {id(item) for item in skipped}
            ready = [item for item in ready if id(item) not in gone]
        # handed on only now: a thread woken per child would take turns with the starts
        for key, ns, definition, fire, reason, run_id, then, begun, _ in ready:
            if self.ctx.follower is not None and isinstance(begun.started, subprocess.Popen):
                if _tracked(definition, then):
                    with self._guard:
                        self._children[key] = begun.started
                        self._born[begun.started.pid] = begun.active.started
                        self._following[key] += 1
                done = functools.partial(self._followed, key, ns, definition, fire, then)
                exited = functools.partial(self._child_exited, key, definition, then, begun.started)
                try:
                    lifecycle.follow(self.ctx, ns, definition, fire, reason, begun, done, exited)
                    continue
                except RuntimeError:  # the follower is stopping: a thread of its own follows it
                    pass
            self._submit_run(key, ns, definition, fire, reason, run_id, then, begun)
        return prepared

    def _child_exited(self, key: str, definition: Job, then: list[tuple[datetime, Reason]] | None,
                      child: subprocess.Popen[bytes], outcome: runner.Outcome) -> None:
        """A followed run's child has exited (its row is still to be written): when nothing
        follows the run, the job is no longer busy (a fire now is no overlap, however long
        the store takes to write the row down)."""
        if _tracked(definition, then):
            with self._guard:
                self._born.pop(child.pid, None)
                if self._children.get(key) is child:
                    del self._children[key]
                self._following[key] -= 1
                if self._following[key] <= 0:
                    del self._following[key]
        if not then and not runner.needs_after(definition, outcome):
            self._release(key)

    def _followed(self, key: str, namespace: str, definition: Job, fire: datetime,
                  then: list[tuple[datetime, Reason]] | None, run_id: int, outcome: runner.Outcome) -> None:
        """A followed run is written down: a pool thread carries on with its retries,
        notifications and the fires queued behind it, if it has any."""
        if not then and not runner.needs_after(definition, outcome):
            return  # released when its child exited
        args = (key, namespace, definition, fire, then, run_id, outcome)
        try:
            assert self._pool is not None
            self._pool.submit(self._carry_on, *args)
        except RuntimeError:  # the pool is shutting down
            threading.Thread(target=self._carry_on, args=args, daemon=True).start()

    def _carry_on(self, key: str, namespace: str, definition: Job, fire: datetime,
                  then: list[tuple[datetime, Reason]] | None, run_id: int, outcome: runner.Outcome) -> None:
        try:
            runner.resume(self.ctx, namespace, definition, fire, 1, (run_id, outcome))
            for fire_time, why in then or []:
                if self.ctx.shutdown.is_set():
                    return
                execute(self.ctx, namespace, definition, fire_time, why)
        except Exception:
            self.log.exception("run failed inside supertask", job=definition.name, namespace=namespace)
        finally:
            self._release(key)

    def _skip_claimed(self, items: list[tuple[Any, ...]]) -> None:
        """Fires claimed with the round whose job's run still ran at their start:
        their rows become ``skipped`` (written by the pool, after the round's starts)."""
        now = datetime.now(UTC)
        rows = []
        for key, ns, definition, fire, _, run_id, _, _, _ in items:
            with self.ctx.lock:
                self.ctx.active.pop(run_id, None)
            self._release(key)
            self._warn_skipped(ns, definition, fire)
            rows.append((run_id, dict(status=RunStatus.SKIPPED, started=None, finished=now, log_path=None,
                                      message=SKIPPED[Overlap.SKIP])))
        self._by_pool(functools.partial(self.ctx.store.update_runs, rows))

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
                threading.Thread(target=self._run, args=args, daemon=True).start()

    def _run(self, namespace: str, definition: Job, fire: datetime, reason: Reason, key: str,
             run_id: int | None, attempt: int = 1, then: list[tuple[datetime, Reason]] | None = None,
             begun: Begun | None = None) -> None:
        try:
            early = fire.timestamp() - time.time()  # decided ahead of its time (rounds.LEAD)
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
                self.ctx.store.update_run(waiting.run_id, status=RunStatus.SKIPPED,
                                          message="the scheduler stopped before this queued run could start")
                self._release(key)
                return
            self._start(key, ns, waiting.definition, waiting.fire, waiting.reason, waiting.run_id)

    def _skip(self, namespace: str, definition: Job, fire: datetime, message: str) -> None:
        """Record a skipped fire; written by the pool, so the scheduler thread keeps
        dispatching while the store is busy."""
        self._by_pool(functools.partial(
            self.ctx.store.claim_run, namespace=namespace, job=definition.name, scheduled=fire,
            attempt=1, reason=Reason.SCHEDULE.value, host=self.ctx.settings.host,
            status=RunStatus.SKIPPED, message=message,
        ))

    def _by_pool(self, write: Callable[[], object]) -> None:
        """A write to the store the pool makes (the caller goes on); here when stopping."""
        try:
            assert self._pool is not None
            self._pool.submit(write)
        except (RuntimeError, AssertionError):
            write()

    def _coalesced(self, namespace: str, definition: Job, folded: list[datetime]) -> None:
        """Fires ``catch_up: latest`` folded into the job's next (the scheduler was down,
        or is behind its fires), tallied in the scheduler's thread: "fires coalesced" is
        logged with the round, then at most once every :data:`COALESCED_EVERY` seconds
        with the tally since, so that a scheduler too busy for its fires says so without
        a line for each."""
        with self.ctx.lock:
            self.ctx.coalesced[(namespace, definition.name)] += len(folded)
        tally = self._folded
        tally.jobs[(namespace, definition.name)] += len(folded)
        tally.first = min(tally.first or folded[0], folded[0])
        tally.last = max(tally.last or folded[-1], folded[-1])

    def _report_coalesced(self, due_only: bool = False) -> None:
        if due_only and time.monotonic() - self._folded_at < COALESCED_EVERY:
            return
        tally, self._folded = self._folded, _Folded()
        self._folded_at = time.monotonic()
        if not tally.jobs:
            return
        namespace, name = min(tally.jobs)
        assert tally.first is not None and tally.last is not None
        self.log.warning(
            "fires coalesced", fires=sum(tally.jobs.values()), jobs=len(tally.jobs), job=name, namespace=namespace,
            first=tally.first.isoformat(), last=tally.last.isoformat(),
            hint="catch_up: latest ran only the latest of each job's overdue fires; a scheduler that "
                 "keeps doing this is behind its fires (docs/operations.md)",
        )

    def _warn_skipped(self, namespace: str, definition: Job, fire: datetime) -> None:
        self.log.warning("run skipped: previous run still in flight", job=definition.name,
                         namespace=namespace, scheduled=fire.isoformat(), overlap=definition.overlap.value)

    def in_flight(self) -> int:
        with self._guard:
            return sum(self._inflight.values())

    def busy(self, namespace: str, name: str) -> int:
        """Runs of one job in flight: running, or waiting between attempts to retry."""
        with self._guard:
            return self._inflight.get(f"{namespace}/{name}", 0)
