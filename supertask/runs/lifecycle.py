"""One run's lifecycle, the same for every attempt of every run: begin, follow, end.

- **begin**: the fire's row is claimed (:func:`begin`; a round claims its fires in one
  transaction and :func:`prepare`-s them), the attempt registered as in flight
  (``jobs kill``, ``status``, a stop find it) and announced ("run started", the start ping);
- **follow**: its children are carried to their ends by the one output loop,
  :class:`~supertask.launchers.follow.Follower` (the scheduler's thread, or the run's
  own thread where there is none), each line to the run's log and relay (:func:`sink`);
- **end**: the row is written with how it ended (:func:`end`: by the scheduler's
  :class:`Finisher`, many ends in one transaction, or there and then), then the
  "run finished" event, the end ping and the observers, then the run's ``on_done``:
  what follows it (retries, notifications, retention: :mod:`supertask.runs.runner`).

A round's fires (a ``run:`` command, docs/runs.md "How a round of fires starts"),
pool threads' runs (containers, steps, jitter, ``--max-concurrent``, retries,
triggers) and a one-shot ``supertask run -- cmd:...`` differ only in which thread
begins them and waits for their ends.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from supertask.launchers.base import ArgvLauncher, Command, Outcome, run_key_in, start_process
from supertask.launchers.follow import Followed, Follower
from supertask.launchers.registry import launcher_for
from supertask.log import Limited, get_logger
from supertask.model import Job, Reason, RunStatus
from supertask.runs import notify
from supertask.runs.context import TAIL_LINES, ActiveRun, RunContext
from supertask.runs.endrow import closed, end_values
from supertask.runs.environ import build_env
from supertask.runs.runlog import RunLog
from supertask.threads import Spawn, Threads

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a one-shot run's start-up)
if TYPE_CHECKING:
    from typing import Any

    from supertask.runs.unwritten import Unwritten

UTC = timezone.utc
#: At a stop, how long run ends the store refuses are still tried before they are left to the spool.
CLOSE_RETRY = 5.0


@dataclass
class Begun:
    """An attempt whose row is claimed: what :func:`prepare` made ready (its
    environment and, for a plain command, the command line), then its started child."""

    run_id: int
    active: ActiveRun
    clock: float  # time.monotonic() at the start: the timeout counts from here
    env: dict[str, str] | None = None
    command: Command | None = None
    started: subprocess.Popen[bytes] | OSError | None = None
    #: the claim still to make (the store was away at the start: a provisional run; a
    #: queued row it could not take up: ``{"take_up": run_id}``)
    claim: dict[str, Any] | None = None

    def start(self) -> None:
        """Start the prepared child, now (the scheduler calls this at the fire's time)."""
        self.clock, self.active.started = time.monotonic(), time.time()
        if self.command is not None:
            self.started = start_process(self.command)
            if isinstance(self.started, subprocess.Popen):
                self.active.pid = self.started.pid


def register(ctx: RunContext, namespace: str, job: Job, attempt: int, run_id: int) -> Begun:
    """Register the claimed attempt as in flight (``kill``, ``list-runs``, a stop find it)."""
    log_path = ctx.settings.log_dir / namespace / job.name / f"{run_id}.log"
    active = ActiveRun(run_id, namespace, job.name, attempt, time.time(), log_path=log_path)
    with ctx.lock:
        ctx.active[run_id] = active
    return Begun(run_id, active, time.monotonic())


def begin(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, attempt: int,
          run_id: int | None = None) -> Begun | None:
    """Claim the fire's row for this attempt (or take up the ``queued`` row ``run_id``)
    and register it; None when another scheduler claimed the fire first."""
    settings = ctx.settings
    if run_id is None:
        claim: dict[str, Any] = dict(namespace=namespace, job=job.name, scheduled=scheduled, attempt=attempt,
                                        reason=reason.value, host=settings.host, log_dir=settings.log_dir)
        try:
            if ctx.guard is None:
                run_id = ctx.store.claim_run(**claim)
            else:  # other schedulers may share the store
                from supertask.runs.claim import claim_guarded

                run_id = claim_guarded(ctx, claim, job, reason)
        except Exception as exc:  # the store is away: the run goes on, its row is claimed when it is back
            if ctx.hold is not None and hold(ctx, claim, ctx.hold(namespace)):
                return None
            STORE_ERRORS.event("store unavailable: fire runs unrecorded until it is back", job=job.name,
                               namespace=namespace, scheduled=scheduled.isoformat(), error=str(exc))
            from supertask.runs.unwritten import provisional_id  # only when the store is away

            begun = register(ctx, namespace, job, attempt, provisional_id())
            begun.claim = claim
            return begun
        if run_id is None:
            get_logger("supertask.run").info("fire already claimed", job=job.name, namespace=namespace,
                                             scheduled=scheduled.isoformat())
            return None
    else:  # a queued row taken up now (the store away: it runs all the same, its end takes it up then)
        try:
            ctx.store.update_run(run_id, status=RunStatus.RUNNING, started=datetime.now(UTC),
                                 log_path=str(settings.log_dir / namespace / job.name / f"{run_id}.log"))
        except Exception as exc:
            STORE_ERRORS.event("store unavailable: fire runs unrecorded until it is back", job=job.name,
                               namespace=namespace, scheduled=scheduled.isoformat(), error=str(exc))
            begun = register(ctx, namespace, job, attempt, run_id)
            begun.claim = {"take_up": run_id}  # runs.unwritten.write
            return begun
    return register(ctx, namespace, job, attempt, run_id)


def hold(ctx: RunContext, claim: dict[str, Any], why: str | None) -> bool:
    """A fire the store could not take while other hosts serve the namespace: not run
    from memory (they may run it), but recorded as ``skipped`` with ``why`` when the
    store is back, unless one of them claimed it (:mod:`supertask.runs.unwritten`)."""
    if why is None:
        return False
    get_logger("supertask.run").warning("fire held: store unreachable", job=claim["job"], namespace=claim["namespace"],
                                        scheduled=claim["scheduled"].isoformat(), reason=why)
    unwritten(ctx).keep([{"id": None, "values": {}, "owner": getattr(ctx.store, "instance", None),
                          "claim": {**claim, "status": RunStatus.SKIPPED.value, "message": why, "log_dir": None}}])
    return True


def prepare(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, attempt: int, run_id: int) -> Begun:
    """Make attempt ``attempt`` of a fire whose row ``run_id`` is claimed ready to
    start (:meth:`Begun.start`).

    The scheduler prepares a round's fires ahead of their time and starts their
    children one after another in one thread, then hands them to the follower: a
    hundred threads each starting their own child at once wait on each other for the
    interpreter lock and every child starts late, where one after another the first
    starts at once (docs/benchmarks.md). Only a ``run:`` of a command (not a
    container, not steps) is started so; anything that goes wrong here is left for
    the run's thread to meet and record as usual. The "run started" event, the start
    ping and the log file (creating a file costs as much as starting the child) come
    after the round's starts; the child's output waits in its pipe until then.
    """
    begun = register(ctx, namespace, job, attempt, run_id)
    if job.run_spec is None:
        return begun
    try:
        begun.env = build_env(namespace, job, run_id, scheduled, ctx.store.url)
        launcher = launcher_for(job.run_spec.kind)
        if isinstance(launcher, ArgvLauncher):
            begun.command = Command(launcher.argv(job.run_spec.target), begun.env, job.cwd)
    except Exception:  # met again, and recorded, by the run's thread (runner.execute)
        pass
    return begun


def announce(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, attempt: int,
             run_id: int) -> None:
    get_logger("supertask.run").info("run started", job=job.name, namespace=namespace, run=run_id,
                                     attempt=attempt, reason=reason.value, scheduled=scheduled.isoformat())
    notify.ping(job.ping, "start", {"job": job.name, "namespace": namespace, "id": run_id, "attempt": attempt},
                ctx.outbox)


def children(ctx: RunContext) -> Follower:
    """What follows the run's children: the scheduler's follower, else one of the run's own."""
    if ctx.follower is None:
        ctx.follower = Follower()  # never started: each run() is followed in its caller's thread
    return ctx.follower


def follow(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, begun: Begun,
           on_done: Callable[[int, Outcome], None], on_exit: Callable[[Outcome], None] | None = None) -> None:
    """Carry the attempt the round started (``begun.started``, a child) to its end
    without a thread of its own: the scheduler's follower follows its output and exit,
    then :func:`end` writes it down and calls ``on_done(run_id, outcome)`` (in the
    finisher's thread). ``on_exit(outcome)`` is called (in the follower's thread; it
    must not block) as soon as its child is over, before its row is written. The log
    file is created with the first line: a run that prints nothing has none. Raises
    RuntimeError when the follower is stopping."""
    active, proc = begun.active, begun.started
    assert isinstance(proc, subprocess.Popen) and ctx.follower is not None
    runlog = RunLog(active.log_path, job.log_max, TAIL_LINES, lazy=True)  # type: ignore[arg-type]

    def on_end(outcome: Outcome) -> None:
        if on_exit is not None:
            try:
                on_exit(outcome)
            except Exception:
                get_logger("supertask.run").exception("a run's exit hook failed", job=job.name, run=active.run_id)
        end(ctx, Ended(namespace, job, scheduled, reason, active, outcome, runlog, on_done, time.time()))

    announce(ctx, namespace, job, scheduled, reason, active.attempt, active.run_id)
    ctx.follower.follow(Followed(
        proc, sink(ctx, active, runlog), on_end, timeout=job.timeout,
        deadline=begun.clock + job.timeout if job.timeout else None, stop=active.kill,
        kill_grace=job.kill_grace, run_key=run_key_in(begun.env),
    ))


@dataclass
class Ended:
    """An attempt that has ended, to be written down (:func:`end`)."""

    namespace: str
    job: Job
    scheduled: datetime
    reason: Reason
    active: ActiveRun
    outcome: Outcome
    runlog: RunLog
    on_done: Callable[[int, Outcome], None]
    ended: float  # time.time() when its child was seen to exit
    claim: dict[str, Any] | None = None  # a provisional run's claim (Begun.claim)


def end(ctx: RunContext, ended: Ended) -> None:
    """The attempt is over: no longer in flight; its row written (by the scheduler's
    finisher, with other ends, or here), reported, then its ``on_done``."""
    with ctx.lock:
        ctx.active.pop(ended.active.run_id, None)
    if ctx.finisher is None or not ctx.finisher.put(ended):
        finish(ctx, [ended])


class Finisher:
    """Writes down the ends of runs: every end that is waiting, in one transaction, in
    a thread of its own (so the follower never waits for the store), then each run's
    event, ping, observers and ``on_done``."""

    def __init__(self, ctx: RunContext, spawn: Spawn | None = None):
        self.ctx = ctx
        self.spawn: Spawn = spawn or Threads("finisher").spawn  # the scheduler's supervisor's
        self._items: list[Ended] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = self.spawn("supertask-finish", self._loop)

    def put(self, ended: Ended) -> bool:
        """Queue ``ended``; False when this finisher does not run (the caller writes it)."""
        with self._cond:
            if self._closing or self._thread is None:
                return False
            self._items.append(ended)
            self._cond.notify()
        return True

    def wake(self) -> None:
        """Look again at what waits (rows kept while the store is away: runs.unwritten)."""
        with self._cond:
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Write down what is waiting, then stop (what the store still refuses stays
        in the state folder's spool, for the next start: runs.unwritten)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
        pending, until = self.ctx.unwritten, time.monotonic() + CLOSE_RETRY
        while pending is not None and len(pending) and pending.retry() and time.monotonic() < until:
            time.sleep(0.5)
        if pending is not None and len(pending):
            get_logger("supertask.run").warning("run ends the store refused are left for the next start",
                                                runs=len(pending), spool=str(pending.path))

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing and not self._retry_due():
                    pending = self.ctx.unwritten
                    self._cond.wait(None if pending is None else pending.due_in())
                batch, self._items = self._items, []
            if self._retry_due():
                try:
                    self.ctx.unwritten.retry()  # type: ignore[union-attr]
                except Exception:
                    get_logger("supertask.run").exception("writing down kept run ends failed")
            if not batch:
                if self._closing:
                    return
                continue
            try:
                finish(self.ctx, batch)
            except Exception:  # a bug here must not stop the writing down of later runs
                get_logger("supertask.run").exception("writing down the ends of runs failed")

    def _retry_due(self) -> bool:
        pending = self.ctx.unwritten
        due = None if pending is None else pending.due_in()
        return due is not None and due <= 0


def finish(ctx: RunContext, batch: list[Ended]) -> None:
    """Write the rows of ``batch`` (one transaction; one by one if that fails), then
    report each and call its ``on_done``."""
    log = get_logger("supertask.run")
    rows = []
    for e in batch:
        try:
            e.outcome = closed(e.runlog, e.outcome, e.active, e.job)
        except Exception:  # a bug: the row is written all the same
            log.exception("closing a run's log failed", job=e.job.name, run=e.active.run_id)
        rows.append((e.active.run_id, end_values(e.outcome, e.active, e.runlog, e.ended)))
    owner = getattr(ctx.store, "instance", None)  # whose runs these are (a late end is refused)
    provisional = [{"id": None, "claim": e.claim, "values": values, "owner": owner}
                   for e, (_, values) in zip(batch, rows, strict=True) if e.claim is not None]
    rows = [row for e, row in zip(batch, rows, strict=True) if e.claim is None]
    try:
        refused = ctx.store.end_runs(rows) if rows else []
    except Exception as exc:  # kept, written when the store is back (runs.unwritten)
        unwritten(ctx).keep([{"id": i, "claim": None, "values": v, "owner": owner} for i, v in rows], exc)
        if provisional:
            unwritten(ctx).keep(provisional)
    else:
        if provisional:
            unwritten(ctx).keep(provisional)
        if rows and ctx.unwritten is not None and len(ctx.unwritten):
            ctx.unwritten.retry()  # the store takes rows again: the kept ones now, not at their next try
        if refused:  # another host took these runs over: this end is not theirs
            from supertask.runs.unwritten import late_results

            late_results(ctx.store, [e for e in batch if e.active.run_id in refused])
    for e in batch:
        try:
            report(ctx, e)
        except Exception:
            log.exception("reporting a run's end failed", job=e.job.name, run=e.active.run_id)
        try:
            e.on_done(e.active.run_id, e.outcome)
        except Exception:
            log.exception("what follows a run's end failed", job=e.job.name, run=e.active.run_id)


def unwritten(ctx: RunContext) -> Unwritten:
    """The rows waiting for the store (a one-shot run: its own, spooled at once)."""
    from supertask.runs.unwritten import pending  # only when the store refused a row

    return pending(ctx)


STORE_ERRORS = Limited("supertask.run")  # a store that is away: said at most once a minute


def report(ctx: RunContext, e: Ended) -> None:
    """The "run finished" event, the end ping and the observers, once the row is written."""
    log = get_logger("supertask.run")
    job, active, outcome = e.job, e.active, e.outcome
    run_id = active.run_id
    duration = e.ended - active.started
    event = log.info if outcome.status is RunStatus.SUCCEEDED else log.warning
    event("run finished", job=job.name, namespace=e.namespace, run=run_id, status=outcome.status.value,
          exit_code=outcome.exit_code, duration=round(duration, 3))
    if job.ping:
        facts = {"job": job.name, "namespace": e.namespace, "id": run_id, "attempt": active.attempt}
        notify.ping(job.ping, "success" if outcome.status is RunStatus.SUCCEEDED else "fail",
                    {**facts, "log_tail": e.runlog.tail_text}, ctx.outbox)
    if not ctx.observers:
        return
    observed = {"namespace": e.namespace, "job": job.name, "run": run_id, "attempt": active.attempt,
                "reason": e.reason.value, "status": outcome.status.value, "exit_code": outcome.exit_code,
                "duration": duration, "scheduled": e.scheduled.timestamp(), "started": active.started}
    for observer in ctx.observers:
        try:
            observer(observed)
        except Exception:  # an observer must not break a run
            log.exception("run observer failed", job=job.name, run=run_id)


def sink(ctx: RunContext, active: ActiveRun, runlog: RunLog) -> Callable[[str, str], None]:
    """Each output line goes to the log file and, until ``log_max`` is reached, to the relay."""
    state = {"relaying": ctx.relay is not None}

    def on_line(stream: str, line: str) -> None:
        kept = runlog.write(stream, line)
        if state["relaying"]:
            if kept or not ctx.relay_capped:
                ctx.relay(active, stream, line)  # type: ignore[misc]
            else:
                state["relaying"] = False
                get_logger("supertask.run").warning(
                    "output over log_max: relaying stops, the log keeps its head and tail",
                    job=active.job, run=active.run_id)

    return on_line
