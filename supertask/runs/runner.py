"""One run of one job: claim the fire, launch the child, keep its log, record the outcome.

The scheduler never persists this function or its arguments: the job store keeps a
reference (namespace and job name) and the executor looks the current definition up
when it fires, then calls :func:`execute`.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from supertask.launchers import ArgvLauncher, Command, LaunchRequest, Outcome, launcher_for
from supertask.launchers.base import run_key_in, start_process
from supertask.log import get_logger
from supertask.model import Job, Reason, RunStatus
from supertask.runs import notify
from supertask.runs.environ import build_env
from supertask.runs.runlog import RunLog
from supertask.settings import Settings

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:  # the one-shot path records through a LiteStore, without SQLAlchemy

    from supertask.runs.follow import Follower
    from supertask.store.lite import LiteStore
    from supertask.store.sql import Store

UTC = timezone.utc
TAIL_LINES = 20

#: (run, stream, line) -> None: where a run's output goes besides its log file.
Relay = Callable[["ActiveRun", str, str], None]


@dataclass
class ActiveRun:
    """A run in flight, as the scheduler (and the control endpoint) sees it."""

    run_id: int
    namespace: str
    job: str
    attempt: int
    started: float
    pid: int | None = None
    kill: threading.Event = field(default_factory=threading.Event)
    log_path: Path | None = None


@dataclass
class RunContext:
    """Everything a run needs, passed in: no globals."""

    store: Store | LiteStore
    settings: Settings
    relay: Relay | None = None
    relay_capped: bool = True  # relaying stops at log_max (the foreground one-shot relays all)
    shutdown: threading.Event = field(default_factory=threading.Event)
    active: dict[int, ActiveRun] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # called with each finished attempt's facts (metrics and the like)
    observers: list[Callable[[dict[str, object]], None]] = field(default_factory=list)
    # the global cap (--max-concurrent): each attempt holds a slot while it runs
    slots: threading.BoundedSemaphore | None = None
    # where notifications queue up (the scheduler's); None: sent there and then (one-shot)
    outbox: notify.Outbox | None = None
    # fires catch_up: latest folded into a later one, by (namespace, job), under ``lock``
    coalesced: Counter[tuple[str, str]] = field(default_factory=Counter)

    def active_for(self, namespace: str, job: str) -> list[ActiveRun]:
        with self.lock:
            return [r for r in self.active.values() if r.namespace == namespace and r.job == job]


def retry_delay(job: Job, attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: ``retry_delay``, doubled after each
    attempt unless ``retry_backoff: false``, never more than ``retry_delay_max``."""
    delay = job.retry_delay * (2 ** (attempt - 1) if job.retry_backoff else 1)
    return min(delay, job.retry_delay_max)


def execute(
    ctx: RunContext,
    namespace: str,
    job: Job,
    scheduled: datetime,
    reason: Reason = Reason.SCHEDULE,
    attempt: int = 1,
    run_id: int | None = None,
    begun: Begun | None = None,
) -> tuple[int, Outcome] | None:
    """Run ``job`` for the fire at ``scheduled``; retry per its policy. None: fire taken.
    ``begun``: the first attempt, claimed and started by the scheduler (:func:`prepare`).

    Retries: an attempt whose status is in ``retry_on`` (default failed, timed-out,
    lost) is followed, while attempts <= 1 + ``retries``, by another after
    :func:`retry_delay`, as a new run row (its own log) with reason ``retry`` and the
    same scheduled time. ``on_retry`` actions fire when a retry is planned; the last
    attempt fires ``on_success`` or ``on_failure``. A shutdown cancels pending retries.

    With ``--max-concurrent`` (``ctx.slots``) each attempt waits for a slot and holds it
    while it runs, not while it waits for its retry or sends its notifications: a job
    backing off does not hold up the rest of the scheduler. A shutdown while waiting for
    a slot starts nothing (None).
    """
    while True:
        if begun is None and not _take_slot(ctx):
            return None
        try:
            result = _attempt(ctx, namespace, job, scheduled, reason, attempt, run_id, begun)
        finally:
            if ctx.slots is not None and begun is None:
                ctx.slots.release()
        if result is None:
            return None
        if not _after_attempt(ctx, namespace, job, attempt, result) or ctx.shutdown.wait(retry_delay(job, attempt)):
            return result
        attempt, reason, run_id, begun = attempt + 1, Reason.RETRY, None, None


def _after_attempt(ctx: RunContext, namespace: str, job: Job, attempt: int, result: tuple[int, Outcome]) -> bool:
    """The notifications and the retention after an attempt; True: a retry is due."""
    done_id, outcome = result
    retry = _retry_due(job, outcome, attempt)
    notifies = job.on_success or job.on_failure or job.on_retry
    record = ctx.store.get_run(done_id).to_json() if notifies else {}
    if not retry:
        if outcome.status is RunStatus.SUCCEEDED:
            notify.run_actions(job.on_success, record, event="success", outbox=ctx.outbox)
        elif outcome.status is not RunStatus.SKIPPED:
            notify.run_actions(job.on_failure, record, event="failure", outbox=ctx.outbox)
        apply_retention(ctx.store, namespace, job)
        return False
    get_logger("supertask.run").info("retry scheduled", job=job.name, namespace=namespace, run=done_id,
                                     attempt=attempt + 1, delay=retry_delay(job, attempt))
    notify.run_actions(job.on_retry, record, event="retry", outbox=ctx.outbox)
    return True


def _retry_due(job: Job, outcome: Outcome, attempt: int) -> bool:
    return outcome.status.value in job.retry_on and attempt <= job.retries


def needs_after(job: Job, outcome: Outcome, attempt: int = 1) -> bool:
    """Whether anything follows the attempt: a retry, a notification, a retention."""
    return bool(
        _retry_due(job, outcome, attempt)
        or job.on_success or job.on_failure or job.on_retry
        or job.history_keep_runs is not None or job.history_keep_age is not None
    )


def resume(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, attempt: int,
           result: tuple[int, Outcome]) -> None:
    """What :func:`execute` does after an attempt that :func:`follow` carried to its end:
    notifications, retention and, when due, the retries (in this thread)."""
    if _after_attempt(ctx, namespace, job, attempt, result) and not ctx.shutdown.wait(retry_delay(job, attempt)):
        execute(ctx, namespace, job, scheduled, Reason.RETRY, attempt + 1)


def _take_slot(ctx: RunContext) -> bool:
    """Wait for a ``--max-concurrent`` slot (in order); False when the scheduler stops first."""
    if ctx.slots is None:
        return True
    while not ctx.slots.acquire(timeout=0.5):
        if ctx.shutdown.is_set():
            return False
    return True


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

    def start(self) -> None:
        """Start the prepared child, now (the scheduler calls this at the fire's time)."""
        self.clock, self.active.started = time.monotonic(), time.time()
        if self.command is not None:
            self.started = start_process(self.command)
            if isinstance(self.started, subprocess.Popen):
                self.active.pid = self.started.pid


def _register(ctx: RunContext, namespace: str, job: Job, attempt: int, run_id: int) -> Begun:
    """Register the claimed attempt as in flight (``kill``, ``list-runs``, a stop find it)."""
    log_path = ctx.settings.log_dir / namespace / job.name / f"{run_id}.log"
    active = ActiveRun(run_id, namespace, job.name, attempt, time.time(), log_path=log_path)
    with ctx.lock:
        ctx.active[run_id] = active
    return Begun(run_id, active, time.monotonic())


def _announce(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, attempt: int,
              run_id: int) -> None:
    get_logger("supertask.run").info("run started", job=job.name, namespace=namespace, run=run_id,
                                     attempt=attempt, reason=reason.value, scheduled=scheduled.isoformat())
    notify.ping(job.ping, "start", {"job": job.name, "namespace": namespace, "id": run_id, "attempt": attempt},
                ctx.outbox)


def prepare(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, attempt: int, run_id: int) -> Begun:
    """Make attempt ``attempt`` of a fire whose row ``run_id`` is claimed ready to
    start (:meth:`Begun.start`); :func:`execute` with ``begun`` carries it to the end.

    The scheduler prepares a round's fires ahead of their time and starts their
    children one after another in one thread, then hands each to a pool thread: a
    hundred threads each starting their own child at once wait on each other for the
    interpreter lock and every child starts late, where one after another the first
    starts at once (docs/benchmarks.md). Only a ``run:`` of a command (not a
    container, not steps) is started so; anything that goes wrong here is left for
    :func:`execute` to meet and record as usual. The "run started" event, the start
    ping and the log file (creating a file costs as much as starting the child) are
    the pool thread's; the child's output waits in its pipe until then.
    """
    begun = _register(ctx, namespace, job, attempt, run_id)
    if job.run is None:
        return begun
    try:
        begun.env = build_env(namespace, job, run_id, scheduled, ctx.store.url)
        launcher, target = launcher_for(job.run)
        if isinstance(launcher, ArgvLauncher):
            begun.command = Command(launcher.argv(target), begun.env, job.cwd)
    except Exception:  # met again, and recorded, by execute()
        pass
    return begun


def follow(ctx: RunContext, follower: Follower, finisher: Finisher, namespace: str, job: Job,
           scheduled: datetime, reason: Reason, begun: Begun,
           on_done: Callable[[int, Outcome], None]) -> None:
    """Carry the first attempt the round started (``begun.started``, a child) to its end
    without a thread of its own: its output and exit are followed by the scheduler's
    one :class:`~supertask.runs.follow.Follower` thread, its row is written down with others
    by the :class:`Finisher`, then ``on_done(run_id, outcome)`` (in the finisher's
    thread) says what follows: the retries and notifications (:func:`resume`), if any.
    The run looks as one :func:`execute` carries: the same events, row, log and pings.
    The log file is created with the first line: a run that prints nothing has none
    (creating a file costs as much as starting the child). The run's end is the time
    the follower saw its child exit. Raises RuntimeError when the follower is stopping."""
    from supertask.runs.follow import Followed

    active, proc = begun.active, begun.started
    assert isinstance(proc, subprocess.Popen)
    runlog = RunLog(active.log_path, job.log_max, TAIL_LINES, lazy=True)  # type: ignore[arg-type]

    def on_end(outcome: Outcome) -> None:
        with ctx.lock:
            ctx.active.pop(active.run_id, None)
        finisher.put(_Ended(namespace, job, scheduled, reason, active, outcome, runlog, on_done, time.time()))

    _announce(ctx, namespace, job, scheduled, reason, active.attempt, active.run_id)
    follower.follow(Followed(
        proc, _sink(ctx, active, runlog), on_end, timeout=job.timeout,
        deadline=begun.clock + job.timeout if job.timeout else None, stop=active.kill,
        kill_grace=job.kill_grace, run_key=run_key_in(begun.env),
    ))


@dataclass
class _Ended:
    """A followed attempt that has ended, for the :class:`Finisher` to write down."""

    namespace: str
    job: Job
    scheduled: datetime
    reason: Reason
    active: ActiveRun
    outcome: Outcome
    runlog: RunLog
    on_done: Callable[[int, Outcome], None]
    ended: float  # time.time() when its child was seen to exit


class Finisher:
    """Writes down the ends of the runs :func:`follow` carried: every end that is
    waiting, in one transaction, in a thread of its own (so the follower never waits
    for the store), then each run's event, ping, observers and ``on_done``."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self._items: list[_Ended] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="supertask-finish", daemon=True)
        self._thread.start()

    def put(self, ended: _Ended) -> None:
        with self._cond:
            self._items.append(ended)
            self._cond.notify()

    def close(self, timeout: float | None = None) -> None:
        """Write down what is waiting, then stop."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._items and not self._closing:
                    self._cond.wait()
                if not self._items:
                    return
                batch, self._items = self._items, []
            try:
                self._finish(batch)
            except Exception:  # a bug here must not stop the writing down of later runs
                get_logger("supertask.run").exception("writing down the ends of runs failed")

    def _finish(self, batch: list[_Ended]) -> None:
        log = get_logger("supertask.run")
        rows = []
        for e in batch:
            e.outcome = _closed(e.runlog, e.outcome, e.active, e.job)
            rows.append((e.active.run_id, _end_values(e.outcome, e.active, e.runlog, e.ended)))
        try:
            self.ctx.store.update_runs(rows)
        except Exception:  # one by one: a row that cannot be written must not hold up the others
            for run_id, values in rows:
                try:
                    self.ctx.store.update_run(run_id, **values)
                except Exception:
                    log.exception("writing down a run's end failed", run=run_id)
        for e in batch:
            try:
                _report(self.ctx, e.namespace, e.job, e.scheduled, e.reason, e.active.attempt, e.active,
                        e.outcome, e.runlog, e.ended)
            except Exception:
                log.exception("reporting a run's end failed", job=e.job.name, run=e.active.run_id)
            try:
                e.on_done(e.active.run_id, e.outcome)
            except Exception:
                log.exception("what follows a run's end failed", job=e.job.name, run=e.active.run_id)


def _attempt(
    ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, attempt: int,
    run_id: int | None = None, begun: Begun | None = None,
) -> tuple[int, Outcome] | None:
    log = get_logger("supertask.run")
    settings = ctx.settings
    if begun is None:
        if run_id is None:
            run_id = ctx.store.claim_run(
                namespace=namespace, job=job.name, scheduled=scheduled, attempt=attempt,
                reason=reason.value, host=settings.host, log_dir=settings.log_dir,
            )
            if run_id is None:
                log.info("fire already claimed", job=job.name, namespace=namespace,
                         scheduled=scheduled.isoformat())
                return None
        else:  # a queued row taken up now
            ctx.store.update_run(run_id, status=RunStatus.RUNNING, started=datetime.now(UTC),
                                 log_path=str(settings.log_dir / namespace / job.name / f"{run_id}.log"))
        begun = _register(ctx, namespace, job, attempt, run_id)
    _announce(ctx, namespace, job, scheduled, reason, attempt, begun.run_id)
    run_id, active = begun.run_id, begun.active
    outcome = Outcome(RunStatus.FAILED, None, None, "not started")
    runlog = RunLog(active.log_path, job.log_max, TAIL_LINES, lazy=True)  # type: ignore[arg-type]
    try:
        outcome = _run_steps(ctx, namespace, job, scheduled, begun, _sink(ctx, active, runlog))
        if outcome.status is RunStatus.TIMED_OUT and "container" not in (outcome.message or ""):
            outcome.message = f"timed out after {job.timeout:g}s; process group ended"
    except Exception as exc:  # a bug or an unusable state folder must not kill the scheduler
        log.exception("run crashed", job=job.name, run=run_id)
        outcome = Outcome(RunStatus.FAILED, None, active.pid, f"supertask could not run the job: {exc}")
    finally:
        with ctx.lock:
            ctx.active.pop(run_id, None)
        outcome = _closed(runlog, outcome, active, job)
        ctx.store.update_run(run_id, **_end_values(outcome, active, runlog))
    _report(ctx, namespace, job, scheduled, reason, attempt, active, outcome, runlog)
    return run_id, outcome


def _closed(runlog: RunLog, outcome: Outcome, active: ActiveRun, job: Job) -> Outcome:
    """Note how the attempt ended in its log and close the log; a log that could not be
    written fails the run (its child was ended when that was found: :func:`_sink`)."""
    if runlog.error is None:
        try:
            if outcome.message:
                runlog.note(outcome.message)
            runlog.close()
        except OSError as exc:
            runlog.error = exc
        if runlog.error is None:
            return outcome
    get_logger("supertask.run").error("run crashed: its log cannot be written", job=job.name, run=active.run_id,
                                      log=str(runlog.path), error=str(runlog.error))
    failed = Outcome(RunStatus.FAILED, outcome.exit_code, outcome.pid or active.pid,
                     f"supertask could not run the job: cannot write its log {runlog.path}: {runlog.error}")
    runlog.note(failed.message)  # type: ignore[arg-type]  # kept for the row's log_tail
    return failed


def _end_values(outcome: Outcome, active: ActiveRun, runlog: RunLog, ended: float | None = None) -> dict[str, object]:
    """What the run's row gets when the attempt has ended (at ``ended``, else now); a
    run that printed nothing has no log file, and no ``log_path``."""
    finished = datetime.now(UTC) if ended is None else datetime.fromtimestamp(ended, UTC)
    values: dict[str, object] = dict(
        status=outcome.status, exit_code=outcome.exit_code, pid=outcome.pid or active.pid,
        finished=finished, log_tail=runlog.tail_text, message=outcome.message)
    if not runlog.opened:
        values["log_path"] = None
    return values


def _report(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, attempt: int,
            active: ActiveRun, outcome: Outcome, runlog: RunLog, ended: float | None = None) -> None:
    """The "run finished" event, the end ping and the observers, once the row is written."""
    log = get_logger("supertask.run")
    run_id = active.run_id
    duration = (time.time() if ended is None else ended) - active.started
    event = log.info if outcome.status is RunStatus.SUCCEEDED else log.warning
    event("run finished", job=job.name, namespace=namespace, run=run_id, status=outcome.status.value,
          exit_code=outcome.exit_code, duration=round(duration, 3))
    if job.ping:
        facts = {"job": job.name, "namespace": namespace, "id": run_id, "attempt": attempt}
        notify.ping(job.ping, "success" if outcome.status is RunStatus.SUCCEEDED else "fail",
                    {**facts, "log_tail": runlog.tail_text}, ctx.outbox)
    if not ctx.observers:
        return
    observed = {"namespace": namespace, "job": job.name, "run": run_id, "attempt": attempt, "reason": reason.value,
                "status": outcome.status.value, "exit_code": outcome.exit_code,
                "duration": duration, "scheduled": scheduled.timestamp(), "started": active.started}
    for observer in ctx.observers:
        try:
            observer(observed)
        except Exception:  # an observer must not break a run
            log.exception("run observer failed", job=job.name, run=run_id)


def _sink(ctx: RunContext, active: ActiveRun, runlog: RunLog) -> Callable[[str, str], None]:
    """Each output line goes to the log file and, until ``log_max`` is reached, to the relay."""
    state = {"relaying": ctx.relay is not None}

    def on_line(stream: str, line: str) -> None:
        kept = runlog.write(stream, line)
        if runlog.error is not None and not active.kill.is_set():
            active.kill.set()  # a run whose log cannot be kept is ended (and fails: _closed)
        if state["relaying"]:
            if kept or not ctx.relay_capped:
                ctx.relay(active, stream, line)  # type: ignore[misc]
            else:
                state["relaying"] = False
                get_logger("supertask.run").warning(
                    "output over log_max: relaying stops, the log keeps its head and tail",
                    job=active.job, run=active.run_id)

    return on_line


def _run_steps(
    ctx: RunContext, namespace: str, job: Job, scheduled: datetime, begun: Begun,
    sink: Callable[[str, str], None],
) -> Outcome:
    """Run ``job.run``, or its ``steps`` in order within the one run.

    A step runs when its ``if`` holds: ``success`` (every earlier step that counts
    succeeded), ``failure`` (one failed), ``always``. A failed step with
    ``continue_on_error`` does not count as a failure. The run's timeout covers all steps.
    """
    run_id, active = begun.run_id, begun.active
    env = begun.env if begun.env is not None else build_env(namespace, job, run_id, scheduled, ctx.store.url)

    def remaining() -> float | None:
        if job.timeout is None:
            return None
        return max(0.001, job.timeout - (time.monotonic() - begun.clock))

    def on_start(pid: int) -> None:
        active.pid = pid  # the row gets it when the run ends (crash recovery goes by environment)

    def launch(run: str) -> Outcome:
        launcher, target = launcher_for(run)
        started, begun.started = begun.started, None  # a child the round started is the first one
        return launcher.launch(LaunchRequest(
            target=target, job=job, namespace=namespace, run_id=run_id, env=env, on_line=sink,
            timeout=remaining(), kill_grace=job.kill_grace, stop=active.kill, on_start=on_start, started=started,
        ))

    if job.run is not None:
        return launch(job.run)
    failed: Outcome | None = None
    last = Outcome(RunStatus.SUCCEEDED, 0, None)
    for step in job.steps:
        due = {"success": failed is None, "failure": failed is not None, "always": True}.get(step.if_, failed is None)
        if not due:
            sink("supertask", f"step {step.name!r} skipped (if: {step.if_})")
            continue
        sink("supertask", f"step {step.name!r}: {step.run}")
        last = launch(step.run)
        if last.status in (RunStatus.TIMED_OUT, RunStatus.KILLED):
            return last
        if last.status is RunStatus.FAILED and not step.continue_on_error and failed is None:
            failed = Outcome(RunStatus.FAILED, last.exit_code, last.pid, f"step {step.name!r} failed")
    return failed or Outcome(RunStatus.SUCCEEDED, 0, last.pid)


def apply_retention(store: Store | LiteStore, namespace: str, job: Job) -> int:
    """Drop the job's runs beyond ``history_keep`` (count or age) and their log files."""
    if job.history_keep_runs is None and job.history_keep_age is None:
        return 0
    removed = store.prune_runs(namespace, job.name, keep=job.history_keep_runs, max_age=job.history_keep_age)
    for path in removed:
        try:
            os.unlink(path)
        except OSError:
            pass
    return len(removed)


def relay_to_log(active: ActiveRun, stream: str, line: str) -> None:
    """Foreground relay: each output line becomes a log event tagged with job, run and stream."""
    get_logger("supertask.cli.output").info(line, job=active.job, run=active.run_id, stream=stream)


def plain_relay(active: ActiveRun, stream: str, line: str) -> None:
    """One-shot relay: the child's lines go to our stdout and stderr as they are."""
    import sys

    if stream == "supertask":
        return
    out = sys.stdout if stream == "stdout" else sys.stderr
    out.write(line + "\n")
    out.flush()
