"""Dead workers' attempts become ``lost`` and are retried, exactly once; queued rows say
why they wait.

Every worker (at each heartbeat) and every scheduler on PostgreSQL (at each of its own)
looks for attempts whose lease ran out: ``running`` rows held by a worker whose
``lease_until`` (renewed at each of that worker's heartbeats) has passed by the
database's clock. A worker killed with ``kill -9`` stops renewing; its attempts pass
their lease at most ``--lease`` after its last heartbeat, and the next look (a
heartbeat of another process, every few seconds) finds them: with the default 20 s
lease and 5 s heartbeats, within 25 s.

Each is declared lost by one conditional ``UPDATE ... SET status = 'lost' WHERE id = :id
AND status = 'running' AND worker = :dead AND lease_until < now()``, in a transaction
holding the job's advisory lock (:func:`supertask.store.guard.job_key`), so of several
processes doing this at once exactly one changes the row, and only that one queues the
retry (a new ``queued`` attempt with the same labels, when the job's ``retries`` and
``retry_on`` allow it; ``lost`` retries by default). When it is not retried, that
process also sends the job's ``on_failure`` actions, ``mailto`` and fail ``ping``, as a
scheduler does for a run of its own lost (:func:`send`, queued on the process's
notification :class:`~supertask.runs.notify.Outbox`: a slow hook never delays a
heartbeat). The worker's row, silent past its lease, says ``lost``. Nothing is done to another machine: a worker that was only cut off
has ended its children itself (:mod:`supertask.workers.worker`, self-fencing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from supertask.log import get_logger
from supertask.model import Job, Reason, RunStatus
from supertask.workers.labels import waiting_reason

_EXPIRED = sa.text(
    "SELECT r.id, r.namespace, r.job, r.worker, EXTRACT(EPOCH FROM now() - r.lease_until) AS over, "
    "w.host, w.pid, w.lease, EXTRACT(EPOCH FROM now() - w.heartbeat) AS silent FROM supertask_runs r "
    "LEFT JOIN supertask_workers w ON w.name = r.worker "
    "WHERE r.status = 'running' AND r.worker IS NOT NULL AND r.lease_until < now() ORDER BY r.id")
_LOSE = sa.text(
    "UPDATE supertask_runs SET status = 'lost', finished = now(), message = :message WHERE id = :id "
    "AND status = 'running' AND worker = :worker AND (lease_until < now() OR :restarted) "
    "RETURNING namespace, job, scheduled, attempt, labels, priority")
_LEFT = sa.text("SELECT id, namespace, job, worker, host, pid FROM supertask_runs WHERE status = 'running' "
                "AND worker = :worker ORDER BY id")
_DEAD_WORKERS = sa.text(
    "UPDATE supertask_workers SET state = 'lost', message = :message || ' (lease ' || lease || 's); noticed by ' "
    "|| :by WHERE state NOT IN ('stopped', 'lost') AND heartbeat < now() - make_interval(secs => lease) "
    "RETURNING name")
_JOB = sa.text("SELECT definition FROM supertask_jobs WHERE namespace = :namespace AND name = :job")

#: ``after(run_id, job)``: called for each attempt a call declared lost and did not retry
#: (its job has notifications to send); see :func:`notifier`.
After = Callable[[int, Job], None]


def why(row: Any, by: str) -> str:
    """The lost attempt's message: which worker, how long silent, who noticed."""
    if row["silent"] is None:
        return f"worker {row['worker']} is gone from the store and its attempt's lease ran out; noticed by {by}"
    return (f"worker {row['worker']} (host {row['host']}, pid {row['pid']}) missed its lease: no heartbeat for "
            f"{float(row['silent']):.0f}s (lease {float(row['lease']):g}s), the attempt's lease ran out "
            f"{float(row['over']):.0f}s ago; noticed by {by}")


def reap(engine: sa.Engine, by: str, after: After | None = None) -> list[int]:
    """Declare lost the attempts whose lease ran out and queue their retries (see the
    module's docstring); the ids this call changed. ``after``: see :data:`After`."""
    log = get_logger("supertask.worker")
    with engine.begin() as conn:
        for (name,) in conn.execute(_DEAD_WORKERS, {"message": "missed its lease", "by": by}):
            log.warning("worker lost", worker=name, noticed_by=by)
        expired = [dict(r) for r in conn.execute(_EXPIRED).mappings()]
    return [row["id"] for row in expired if _lose(engine, row, why(row, by), after=after)]


def _lose(engine: sa.Engine, row: dict[str, Any], message: str, restarted: bool = False,
          after: After | None = None) -> bool:
    """Declare one attempt lost and queue its retry when its job allows (else ``after``
    it, when its job has notifications); whether this call did."""
    from supertask.store.guard import job_key
    from supertask.workers.rows import queue_retry

    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": job_key(row["namespace"], row["job"])})
        lost = conn.execute(_LOSE, {"id": row["id"], "worker": row["worker"], "message": message,
                                    "restarted": restarted}).mappings().first()
        if lost is None:  # another process took it first
            return False
        definition = conn.execute(_JOB, {"namespace": row["namespace"], "job": row["job"]}).scalar()
        job = Job.from_dict(json.loads(definition)) if definition is not None else None
        retry = job is not None and RunStatus.LOST in job.retry_on and lost["attempt"] <= job.retries
        retried = queue_retry(conn, dict(lost), 0.0, None) if retry else None
    get_logger("supertask.worker").warning("run lost", job=row["job"], namespace=row["namespace"], run=row["id"],
                                           worker=row["worker"], message=message, retry=retried)
    if not retry and job is not None and after is not None and (job.on_failure or job.ping or job.mailto):
        try:
            after(row["id"], job)
        except Exception as exc:  # a notification must not undo the loss
            get_logger("supertask.worker").warning("lost run's notifications not queued", run=row["id"],
                                                   error=str(exc))
    return True


def notifier(outbox: Any, store: Any, settings: Any) -> After:
    """The ``after`` of a process with a notification ``outbox`` (a worker's, a
    scheduler's): each lost attempt not retried is :func:`send`-ed on the outbox's thread."""
    return lambda run_id, job: outbox.put(send, store, settings, run_id, job)


def send(store: Any, settings: Any, run_id: int, job: Job) -> None:
    """A lost attempt not retried: its job's ``on_failure`` actions, ``mailto`` and fail
    ``ping``, with the run as ``history`` shows it and the tail of the output it shipped."""
    from supertask.runs import notify

    record = store.get_run(run_id).to_json()
    record["log_tail"] = record.get("log_tail") or _shipped_tail(store.engine, run_id)
    notify.run_actions(job.on_failure, record, event="failure", settings=settings, mailto=job.mailto)
    notify.ping(job.ping, "fail", record)


def _shipped_tail(engine: sa.Engine, run_id: int, lines: int = 20) -> str:
    """The last ``lines`` lines of the output a worker shipped for the run (stamp and stream cut off)."""
    from supertask.workers.rows import chunks

    try:
        raw = "".join(data for _seq, data in chunks(engine, run_id)).splitlines()[-lines:]
    except Exception:
        return ""
    return "\n".join(line.split(" ", 2)[2] if line.count(" ") >= 2 else line for line in raw)


def take_back(engine: sa.Engine, name: str, host: str, store_url: str, after: After | None = None) -> list[int]:
    """At a worker's start: the attempts a previous process of the same ``name`` left
    ``running`` (it was killed; its row was not live, or this one could not have
    registered) are lost now, without waiting for their leases, and retried; their
    orphans on this machine (found by ``SUPERTASK_RUN_KEY``) are ended, as a scheduler's
    restart ends its predecessor's."""
    from supertask.model import RunRecord
    from supertask.runs.recovery import end_orphans

    with engine.connect() as conn:
        left = [dict(r) for r in conn.execute(_LEFT, {"worker": name}).mappings()]
    message = f"worker {name} restarted while this attempt was running: its previous process is gone"
    won = [row for row in left if _lose(engine, row, message, restarted=True, after=after)]
    local = [(RunRecord(id=r["id"], namespace=r["namespace"], job=r["job"], attempt=0, reason=Reason.RETRY,
                        scheduled=None, started=None, finished=None, status=RunStatus.LOST, exit_code=None,
                        host=r["host"], pid=r["pid"], log_path=None, log_tail=None), 10.0)
             for r in won if r["host"] == host]
    if local:
        end_orphans(local, store_url)
    return [r["id"] for r in won]


def refresh_waiting(engine: sa.Engine) -> int:
    """Set each queued run's ``message`` to why it waits (``no live worker has gpu=1``),
    or clear it once a live worker has its labels; how many rows changed."""
    from supertask.workers.rows import live_labels

    changed = 0
    with engine.begin() as conn:
        live = live_labels(conn)
        kinds = [r[0] for r in conn.execute(sa.text(
            "SELECT DISTINCT labels FROM supertask_runs WHERE status = 'queued' AND labels IS NOT NULL"))]
        for labels in kinds:
            reason = waiting_reason(json.loads(labels), live)
            changed += conn.execute(sa.text(
                "UPDATE supertask_runs SET message = :reason WHERE status = 'queued' AND labels = :labels "
                "AND (message IS NULL OR message LIKE 'no live worker%') AND message IS DISTINCT FROM :reason"),
                {"reason": reason, "labels": labels}).rowcount
    return changed


#: Worker rows stopped or lost longer ago than this (seconds) are deleted (when they hold no run).
FORGET_AFTER = 7 * 86400.0
#: How often (seconds) a process looks for worker rows to forget.
FORGET_EVERY = 3600.0
_forgot = [0.0]
_FORGET = sa.text(
    "DELETE FROM supertask_workers w WHERE state IN ('stopped', 'lost') "
    "AND heartbeat < now() - make_interval(secs => :after) AND NOT EXISTS (SELECT 1 FROM supertask_runs r "
    "WHERE r.status = 'running' AND r.worker = w.name)")


def forget(engine: sa.Engine, after: float = FORGET_AFTER) -> int:
    """Delete the rows of workers stopped or lost more than ``after`` seconds ago that hold
    no run (a worker named ``HOST-PID`` leaves one row per start)."""
    with engine.begin() as conn:
        return int(conn.execute(_FORGET, {"after": after}).rowcount)


def look(engine: sa.Engine, by: str, after: After | None = None) -> None:
    """One look: lost attempts (``after``: see :data:`After`), then the queued rows'
    reasons, and once an hour the worker rows to forget (never raising)."""
    import time

    try:
        reap(engine, by, after)
        refresh_waiting(engine)
        if time.monotonic() - _forgot[0] > FORGET_EVERY:
            _forgot[0] = time.monotonic()
            forget(engine)
    except Exception as exc:
        get_logger("supertask.worker").info("looking for lost worker runs failed", error=str(exc))
