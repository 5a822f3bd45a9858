"""One attempt a worker took: launched with the scheduler's launchers, its output shipped
into the store, its end written only while the worker still holds it.

The child is started, followed, timed out and ended exactly as a scheduler's (the
launchers of :mod:`supertask.launchers`, the steps and timeouts of
:mod:`supertask.runs.runner`); its environment carries ``SUPERTASK_RUN_ID`` (a lost
attempt is retried, so a job that must not act twice can key on it). Its end is one
conditional ``UPDATE ... WHERE id = :id AND worker = :me AND status = 'running'``
(:func:`supertask.workers.rows.end`): an attempt declared lost meanwhile (its worker
missed its lease) keeps its ``lost`` row, and the late result is logged and dropped.
A retry its policy asks for is queued for workers in the same transaction, not before
its ``retry_delay``; its notifications and retention follow the end, as a scheduler's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from supertask.launchers.base import Outcome
from supertask.log import get_logger
from supertask.model import Job, Reason, RunStatus, StopCause
from supertask.runs import notify
from supertask.runs.context import ActiveRun, RunContext
from supertask.runs.environ import build_env
from supertask.runs.lifecycle import Begun
from supertask.workers import rows
from supertask.workers.chunks import Shipment


@dataclass
class Attempt:
    """A run this worker holds: its row's facts, its job, its output, how it is doing."""

    run_id: int
    namespace: str
    job: Job
    attempt: int
    reason: Reason
    scheduled: datetime
    active: ActiveRun
    shipment: Shipment
    lost: str | None = None  # why it is no longer this worker's (declared lost, or fenced)
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, row: dict[str, Any], job: Job) -> Attempt:
        active = ActiveRun(row["id"], row["namespace"], job.name, row["attempt"], time.time())
        return cls(row["id"], row["namespace"], job, row["attempt"], Reason(row["reason"]), row["scheduled"],
                   active, Shipment(row["id"], job.log_max))

    def fence(self, why: str) -> None:
        """End the child: the attempt is no longer (or soon no longer) this worker's."""
        if self.lost is None:
            self.lost = why
        self.active.end(StopCause.FENCED)


def run(worker: Any, att: Attempt) -> None:
    """Run the attempt to its end and write it down (in the attempt's own thread)."""
    from supertask.runs.runner import _run_steps

    log = get_logger("supertask.worker")
    job, run_id = att.job, att.run_id
    log.info("run started", job=job.name, namespace=att.namespace, run=run_id, attempt=att.attempt,
             reason=att.reason.value, scheduled=att.scheduled.isoformat(), worker=worker.name)
    record = {"job": job.name, "namespace": att.namespace, "id": run_id, "attempt": att.attempt}
    notify.ping(job.ping, "start", record)
    ctx = RunContext(worker.store, worker.settings, follower=worker.follower)
    outcome = Outcome(RunStatus.FAILED, None, None, "not started")
    try:
        env = build_env(att.namespace, job, run_id, att.scheduled, worker.store.url)
        env["SUPERTASK_WORKER"] = worker.name
        begun = Begun(run_id, att.active, time.monotonic(), env=env)
        outcome = _run_steps(ctx, att.namespace, job, att.scheduled, begun, att.shipment.line)
        if outcome.status is RunStatus.TIMED_OUT and "container" not in (outcome.message or ""):
            outcome.message = f"timed out after {job.timeout:g}s; process group ended"
    except Exception as exc:  # a bug or an unusable env_file must not end the worker
        log.exception("run crashed", job=job.name, run=run_id)
        outcome = Outcome(RunStatus.FAILED, None, att.active.pid, f"supertask could not run the job: {exc}")
    if att.active.stopped_by is not None and outcome.status is RunStatus.KILLED:
        outcome.message = att.active.stopped_by.says(outcome.message)
        if att.lost:
            outcome.message += f" ({att.lost})"
    att.shipment.close()
    finish(worker, att, outcome)


def finish(worker: Any, att: Attempt, outcome: Outcome) -> None:
    """Ship the last of the output, then write the end (tried again while the store is
    away, until the attempt's lease has surely passed: then it is another's to decide)."""
    from supertask.runs.runner import apply_retention, retry_delay

    log = get_logger("supertask.worker")
    job = att.job
    retry = None
    if outcome.status.value in job.retry_on and att.attempt <= job.retries:
        retry = {"delay": retry_delay(job, att.attempt)}
    values = {"status": outcome.status.value, "exit_code": outcome.exit_code, "pid": outcome.pid or att.active.pid,
              "log_tail": att.shipment.tail_text, "message": outcome.message}
    give_up = time.monotonic() + worker.lease + worker.heartbeat
    refused: dict[str, Any] | None = None
    while True:
        shipped = worker.ship([att.shipment])
        try:
            if not shipped:
                raise RuntimeError("the log chunks were not written")
            refused = rows.end(worker.store.engine, worker.name, att.run_id, values, retry)
            break
        except Exception as exc:
            if time.monotonic() > give_up:
                log.error("run end not written: the store was away longer than the attempt's lease", job=job.name,
                          run=att.run_id, status=outcome.status.value, error=str(exc))
                att.done = True
                worker.freed()
                return
            time.sleep(1.0)
    att.done = True
    worker.freed()  # the slot is free: the claim loop takes the next run now, not at its next poll
    if refused is not None:
        log.warning("late result rejected", job=job.name, namespace=att.namespace, run=att.run_id,
                    status=outcome.status.value, exit_code=outcome.exit_code, row_status=refused.get("status"),
                    row_worker=refused.get("worker"), row_message=refused.get("message"))
        return
    log.info("run finished", job=job.name, namespace=att.namespace, run=att.run_id, status=outcome.status.value,
             exit_code=outcome.exit_code, duration=round(time.time() - att.active.started, 3), worker=worker.name)
    if retry is not None:
        log.info("retry queued for a worker", job=job.name, namespace=att.namespace, run=att.run_id,
                 attempt=att.attempt + 1, delay=retry["delay"])
        return
    _after(worker, att, outcome, apply_retention)


def _after(worker: Any, att: Attempt, outcome: Outcome, apply_retention: Any) -> None:
    """The last attempt's notifications and the job's retention (never raising)."""
    job = att.job
    try:
        if job.on_success or job.on_failure or job.mailto or job.ping:
            record = worker.store.get_run(att.run_id).to_json()
            if outcome.status is RunStatus.SUCCEEDED:
                notify.run_actions(job.on_success, record, event="success", settings=worker.settings)
                notify.ping(job.ping, "success", record)
            else:
                notify.run_actions(job.on_failure, record, event="failure", settings=worker.settings,
                                   mailto=job.mailto)
                notify.ping(job.ping, "fail", record)
        apply_retention(worker.store, att.namespace, job)
    except Exception as exc:
        get_logger("supertask.worker").warning("after the run: notifications or retention failed", job=job.name,
                                               run=att.run_id, error=str(exc))
