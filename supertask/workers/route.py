"""The scheduler's side: a fire of a job that runs on workers becomes a ``queued`` row.

A job with ``on: {k: v}`` (or every job, under ``supertask run --workers-only``) is not
launched by the scheduler: its fire (scheduled, caught up, triggered) inserts the run's
row with status ``queued``, the labels it needs and the job's ``priority``, and a worker
that has those labels takes it (:mod:`supertask.workers.claim`) once its time has come by
the database's clock (the row's ``lease_until`` is its scheduled time: a round is decided
a little ahead, and no run starts before its time). The row is the fire's
claim as ever (one per job, scheduled time and attempt, whatever the number of hosts).

Overlap holds against what is in flight in the store, under the job's advisory lock (as
a scheduler's guarded claim, :mod:`supertask.store.guard`):

- ``skip``: a run of the job ``running`` or ``queued`` anywhere makes the fire a
  ``skipped`` row saying so;
- ``queue``: the same, but one fire may wait behind a running one (``queued``: workers
  do not take it while a run of the job runs); a further one is ``skipped``;
- ``allow`` with ``max_concurrent: N``: fewer than N in flight, else ``skipped``.

A queued row's ``message`` says why it waits when no live worker has its labels
(``no live worker has gpu=1``), refreshed as workers come and go
(:func:`supertask.workers.lost.refresh_waiting`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from supertask.log import get_logger
from supertask.model import Job, Overlap, Reason, RunStatus
from supertask.workers.labels import dumps, text, waiting_reason

_IN_FLIGHT = sa.text("SELECT status, worker, host FROM supertask_runs WHERE namespace = :namespace AND job = :job "
                     "AND status IN ('running', 'queued')")
_INSERT = sa.text(
    "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, finished, status, labels, priority, "
    "message, lease_until) VALUES (:namespace, :job, :attempt, :reason, :scheduled, :finished, :status, :labels, "
    ":priority, :message, :scheduled) ON CONFLICT ON CONSTRAINT supertask_runs_one_per_fire DO NOTHING RETURNING id")


def needs(job: Job, workers_only: bool) -> dict[str, str] | None:
    """The labels a run of ``job`` needs of a worker; None: a scheduler host runs it."""
    if job.on:
        return dict(job.on)
    return {} if workers_only else None


def overlap_refusal(job: Job, in_flight: list[Mapping[str, Any]]) -> str | None:
    """Why a fire of ``job`` is skipped, given its runs in flight (None: it is queued)."""
    running = [r for r in in_flight if r["status"] == RunStatus.RUNNING.value]
    queued = [r for r in in_flight if r["status"] == RunStatus.QUEUED.value]
    where = ", ".join(sorted({r["worker"] or r["host"] or "?" for r in running}))
    if job.overlap is Overlap.SKIP and running:
        return f"previous run still running on {where} (overlap: skip)"
    if job.overlap in (Overlap.SKIP, Overlap.QUEUE) and queued:
        return f"a run is already waiting for a worker (overlap: {job.overlap.value})"
    if job.overlap is Overlap.ALLOW and job.max_concurrent and len(in_flight) >= job.max_concurrent:
        return f"max_concurrent {job.max_concurrent} runs were in flight (overlap: allow)"
    return None


def queue(store: Any, namespace: str, job: Job, fire: datetime, reason: Reason,
          labels: Mapping[str, str]) -> int | None:
    """Record a fire of ``job`` for workers: its ``queued`` row (or a ``skipped`` one,
    saying why); the row's id, None when the fire had a row already."""
    log = get_logger("supertask.scheduler.service")
    if getattr(store, "dialect", None) != "postgresql":
        run_id = store.claim_run(namespace=namespace, job=job.name, scheduled=fire, attempt=1, reason=reason.value,
                                 host=None, status=RunStatus.SKIPPED,
                                 message=f"this job runs on workers (needs {text(labels)}), and workers need a "
                                         "PostgreSQL store")
        log.error("run not queued: workers need a PostgreSQL store", job=job.name, namespace=namespace)
        return run_id  # type: ignore[no-any-return]
    from supertask.store.guard import job_key
    from supertask.workers.rows import live_labels

    with store.engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": job_key(namespace, job.name)})
        params = {"namespace": namespace, "job": job.name}
        refused = overlap_refusal(job, [dict(r) for r in conn.execute(_IN_FLIGHT, params).mappings()])
        message = refused or waiting_reason(labels, live_labels(conn))
        row = {**params, "attempt": 1, "reason": reason.value, "scheduled": fire, "labels": dumps(labels),
               "priority": job.priority, "message": message,
               "status": (RunStatus.SKIPPED if refused else RunStatus.QUEUED).value,
               "finished": conn.execute(sa.text("SELECT now()")).scalar() if refused else None}
        run_id = conn.execute(_INSERT, row).scalar()
        if run_id is not None and not refused:
            from supertask.workers.wake import announce

            announce(conn, f"{fire.timestamp():.6f}")
    if run_id is None:
        log.info("fire already claimed", job=job.name, namespace=namespace, scheduled=fire.isoformat())
    elif refused:
        log.warning("run skipped", job=job.name, namespace=namespace, scheduled=fire.isoformat(), reason=refused)
    else:
        log.info("run queued for a worker", job=job.name, namespace=namespace, run=run_id, labels=text(labels),
                 priority=job.priority, reason=reason.value, waiting=message)
    return int(run_id) if run_id is not None else None


def submit(ex: Any, namespace: str, job: Job, fire: datetime, reason: Reason,
           then: list[tuple[datetime, Reason]] | None, labels: Mapping[str, str]) -> bool:
    """The executor's :meth:`~supertask.scheduler.executor.RunExecutor.submit` of a job
    that runs on workers: each fire (``then``: the caught-up ones after it) queued by the
    pool, so the scheduler's thread goes on deciding."""
    def write() -> None:
        for fire_time, why in [(fire, reason), *(then or [])]:
            try:
                queue(ex.ctx.store, namespace, job, fire_time, why, labels)
            except Exception as exc:
                get_logger("supertask.scheduler.service").error(
                    "run not queued for a worker", job=job.name, namespace=namespace, scheduled=fire_time.isoformat(),
                    error=str(exc))

    if reason is Reason.MANUAL:  # a trigger: its row is there when the caller asks
        write()
    else:
        ex._by_pool(write)
    return True


def hand_over(store: Any, run_id: int, job: Job, labels: Mapping[str, str]) -> None:
    """A manual run queued through the store (``jobs trigger --store``) that a scheduler
    took up, of a job that runs on workers: the row is left to them."""
    from supertask.workers.rows import live_labels

    with store.engine.begin() as conn:
        message = waiting_reason(labels, live_labels(conn))
        conn.execute(sa.text("UPDATE supertask_runs SET host = NULL, instance = NULL, labels = :labels, "
                             "priority = :priority, message = :message WHERE id = :id AND status = 'queued'"),
                     {"id": run_id, "labels": dumps(labels), "priority": job.priority, "message": message})
        from supertask.workers.wake import announce

        announce(conn)
    get_logger("supertask.scheduler.service").info("run queued for a worker", job=job.name, run=run_id,
                                                   labels=text(labels), reason="manual", waiting=message)


def kill(service: Any, run_id: int) -> dict[str, Any]:
    """``jobs kill RUN`` through a scheduler: its own run ends at once
    (:meth:`~supertask.scheduler.service.Service.kill_run`); a run on a worker is asked
    through its row, and its worker ends it at its next heartbeat (TERM, ``kill_grace``,
    KILL), as ``jobs kill`` ends a scheduler's."""
    from supertask.errors import SupertaskError
    from supertask.workers.rows import ask_kill

    try:
        return service.kill_run(run_id)  # type: ignore[no-any-return]
    except SupertaskError:
        record = service.store.get_run(run_id)
        if record.worker is None or record.status is not RunStatus.RUNNING or not ask_kill(service.store.engine,
                                                                                          run_id):
            raise
    get_logger("supertask.scheduler.service").info("run kill requested", run=run_id, job=record.job,
                                                   namespace=record.namespace, worker=record.worker)
    return {"run_id": run_id, "namespace": record.namespace, "job": record.job, "pid": record.pid,
            "worker": record.worker}
