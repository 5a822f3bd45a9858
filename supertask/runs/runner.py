"""What follows from one run of one job: its attempts, their retries, notifications and
retention, and the thread that waits for them.

The scheduler never persists this function or its arguments: the job store keeps a
reference (namespace and job name) and the executor looks the current definition up
when it fires, then calls :func:`execute` (or, for a round's fire, carries its first
attempt with :func:`supertask.runs.lifecycle.follow` and hands the rest to
:func:`resume`). Every attempt begins, is followed and ends in
:mod:`supertask.runs.lifecycle`; what follows an attempt hangs off its end
(:func:`after_attempt`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from datetime import datetime

from supertask.launchers.base import LaunchRequest, Outcome
from supertask.launchers.registry import launcher_for
from supertask.log import get_logger
from supertask.model import Job, Reason, RunSpec, RunStatus, StepIf
from supertask.runs import lifecycle, notify
from supertask.runs.context import TAIL_LINES, ActiveRun, RunContext
from supertask.runs.environ import build_env
from supertask.runs.lifecycle import Begun
from supertask.runs.runlog import RunLog

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:  # the one-shot path records through a LiteStore, without SQLAlchemy
    from supertask.store.base import RunStore
    from supertask.store.statements import Pruned

__all__ = ["ActiveRun", "RunContext", "execute", "resume", "needs_after", "retry_delay", "apply_retention"]


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
    notifies = job.on_success or job.on_failure or job.on_retry or job.mailto
    record = _record(ctx, done_id, namespace, job, outcome) if notifies else {}
    if not retry:
        if outcome.status is RunStatus.SUCCEEDED:
            notify.run_actions(job.on_success, record, event="success", outbox=ctx.outbox, settings=ctx.settings)
        elif outcome.status is not RunStatus.SKIPPED:
            notify.run_actions(job.on_failure, record, event="failure", outbox=ctx.outbox, settings=ctx.settings,
                               mailto=job.mailto)
        try:
            apply_retention(ctx.store, namespace, job)
        except Exception as exc:  # the store is away: the next run's end prunes
            get_logger("supertask.run").warning("history retention skipped", job=job.name, error=str(exc))
        return False
    get_logger("supertask.run").info("retry scheduled", job=job.name, namespace=namespace, run=done_id,
                                     attempt=attempt + 1, delay=retry_delay(job, attempt))
    notify.run_actions(job.on_retry, record, event="retry", outbox=ctx.outbox, settings=ctx.settings)
    return True


def _record(ctx: RunContext, run_id: int, namespace: str, job: Job, outcome: Outcome) -> dict[str, object]:
    """The run's row for its notifications; what is known of it while the store is away."""
    try:
        return ctx.store.get_run(run_id).to_json()
    except Exception:
        return {"id": run_id, "namespace": namespace, "job": job.name, "status": outcome.status.value,
                "exit_code": outcome.exit_code, "message": outcome.message}


def _retry_due(job: Job, outcome: Outcome, attempt: int) -> bool:
    return outcome.status.value in job.retry_on and attempt <= job.retries


def needs_after(job: Job, outcome: Outcome, attempt: int = 1) -> bool:
    """Whether anything follows the attempt: a retry, a notification, a retention."""
    return bool(
        _retry_due(job, outcome, attempt)
        or job.on_success or job.on_failure or job.on_retry or job.mailto
        or job.history_keep_runs is not None or job.history_keep_age is not None
    )


def resume(ctx: RunContext, namespace: str, job: Job, scheduled: datetime, attempt: int,
           result: tuple[int, Outcome]) -> None:
    """What :func:`execute` does after an attempt that :func:`lifecycle.follow` carried to its end:
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


def _attempt(
    ctx: RunContext, namespace: str, job: Job, scheduled: datetime, reason: Reason, attempt: int,
    run_id: int | None = None, begun: Begun | None = None,
) -> tuple[int, Outcome] | None:
    """One attempt in this thread: begun (unless the round began it), followed, ended
    (:mod:`supertask.runs.lifecycle`); returns once its row is written."""
    if begun is None:
        begun = lifecycle.begin(ctx, namespace, job, scheduled, reason, attempt, run_id)
        if begun is None:
            return None
    lifecycle.announce(ctx, namespace, job, scheduled, reason, attempt, begun.run_id)
    active = begun.active
    outcome = Outcome(RunStatus.FAILED, None, None, "not started")
    runlog = RunLog(active.log_path, job.log_max, TAIL_LINES, lazy=True)  # type: ignore[arg-type]
    try:
        outcome = _run_steps(ctx, namespace, job, scheduled, begun, lifecycle.sink(ctx, active, runlog))
        if outcome.status is RunStatus.TIMED_OUT and "container" not in (outcome.message or ""):
            outcome.message = f"timed out after {job.timeout:g}s; process group ended"
    except Exception as exc:  # a bug or an unusable state folder must not kill the scheduler
        get_logger("supertask.run").exception("run crashed", job=job.name, run=begun.run_id)
        outcome = Outcome(RunStatus.FAILED, None, active.pid, f"supertask could not run the job: {exc}")
    finally:
        done = threading.Event()
        result: list[tuple[int, Outcome]] = []

        def on_done(run_id: int, final: Outcome) -> None:
            result.append((run_id, final))
            done.set()

        lifecycle.end(ctx, lifecycle.Ended(namespace, job, scheduled, reason, active, outcome, runlog, on_done,
                                           time.time(), begun.claim))
        done.wait()
    return result[0]


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
        if active.pid is None:  # the run's first child: the run started now
            active.started = time.time()
        active.pid = pid  # the row gets it when the run ends (crash recovery goes by environment)

    def launch(spec: RunSpec) -> Outcome:
        started, begun.started = begun.started, None  # a child the round started is the first one
        return launcher_for(spec.kind).launch(LaunchRequest(
            spec=spec, job=job, namespace=namespace, run_id=run_id, env=env, on_line=sink,
            children=lifecycle.children(ctx), timeout=remaining(), kill_grace=job.kill_grace, stop=active.kill,
            on_start=on_start, started=started,
        ))

    if job.run_spec is not None:
        return launch(job.run_spec)
    failed: Outcome | None = None
    last = Outcome(RunStatus.SUCCEEDED, 0, None)
    for step in job.steps:
        due = {StepIf.SUCCESS: failed is None, StepIf.FAILURE: failed is not None,
               StepIf.ALWAYS: True}.get(step.if_, failed is None)
        if not due:
            sink("supertask", f"step {step.name!r} skipped (if: {step.if_})")
            continue
        sink("supertask", f"step {step.name!r}: {step.run}")
        last = launch(step.run_spec)
        if last.status in (RunStatus.TIMED_OUT, RunStatus.KILLED):
            return last
        if last.status is RunStatus.FAILED and not step.continue_on_error and failed is None:
            failed = Outcome(RunStatus.FAILED, last.exit_code, last.pid, f"step {step.name!r} failed")
    return failed or Outcome(RunStatus.SUCCEEDED, 0, last.pid)


def apply_retention(store: RunStore, namespace: str, job: Job | None, *, keep: int | None = None,
                    max_age: float | None = None) -> Pruned | None:
    """Drop the job's runs beyond ``history_keep`` (count or age; ``keep``/``max_age``
    instead when given, for every job when ``job`` is None) and their log files."""
    if keep is None and max_age is None:
        if job is None or (job.history_keep_runs is None and job.history_keep_age is None):
            return None
        keep, max_age = job.history_keep_runs, job.history_keep_age
    pruned = store.prune_runs(namespace, job.name if job is not None else None, keep=keep, max_age=max_age)
    for path in pruned.log_paths:
        try:
            os.unlink(path)
        except OSError:
            pass
    return pruned


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
