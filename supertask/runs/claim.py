"""A fire's claim when other schedulers share the store: checked against what they run."""

from __future__ import annotations

from datetime import datetime, timezone

from supertask.log import get_logger

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from supertask.model import Job, Reason
    from supertask.runs.context import RunContext


#: Seconds between two looks at whether a run on another host still runs (overlap: queue).
POLL_QUEUED = 0.25


def wait_elsewhere(ctx: RunContext, namespace: str, job: str, run_id: int, *, stopping: bool = False) -> bool:
    """Wait until no run of ``job`` is ``running`` on another scheduler instance, for
    the ``queued`` row ``run_id`` (``overlap: queue`` across hosts): True, it may start;
    False at a stop (the row is then ``skipped``, saying so)."""
    from supertask.model import RunStatus

    instance = getattr(ctx.store, "instance", None)
    while not stopping and not ctx.shutdown.wait(POLL_QUEUED):
        try:
            rows = ctx.store.runs_in_flight([namespace], besides=instance)  # type: ignore[attr-defined]
        except Exception:  # the store is away: look again
            continue
        if not any(r.job == job and r.status == RunStatus.RUNNING.value for r in rows):
            return True
    ctx.store.update_run(run_id, status=RunStatus.SKIPPED, finished=datetime.now(timezone.utc),
                         message="the scheduler stopped before this queued run could start")
    return False


def claim_guarded(ctx: RunContext, claim: dict[str, Any], job: Job, reason: Reason) -> int | None:
    """The claim, checked against what other schedulers sharing the store run when they
    do (``ctx.guard``: :mod:`supertask.store.guard`): None when refused (a ``skipped``
    row says why) or claimed already; a fire not yet due by the database's clock waits."""
    guard = ctx.guard(claim["namespace"], job, reason, claim["attempt"]) if ctx.guard is not None else None
    if not guard:
        return ctx.store.claim_run(**claim)  # type: ignore[no-any-return]
    while True:
        run_id = ctx.store.claim_run(**claim, guard=guard)
        reason_text, wait = getattr(run_id, "reason", None), getattr(run_id, "wait", 0.0)
        if reason_text is None:
            return run_id  # type: ignore[no-any-return]
        if getattr(run_id, "queue", None):  # overlap: queue behind a run on another host
            return _queued(ctx, claim, job, run_id.queue)  # type: ignore[union-attr]
        if not wait:
            get_logger("supertask.run").warning("run skipped", job=job.name, namespace=claim["namespace"],
                                                scheduled=claim["scheduled"].isoformat(), reason=reason_text)
            return None
        get_logger("supertask.run").warning("fire waits for the database's clock", job=job.name,
                                            namespace=claim["namespace"], wait=round(wait, 3))
        if ctx.shutdown.wait(wait):
            return None


def _queued(ctx: RunContext, claim: dict[str, Any], job: Job, run_id: int) -> int | None:
    """Wait for the run on another host to end, then take the ``queued`` row up."""
    from supertask.model import RunStatus

    get_logger("supertask.run").info("run queued", job=job.name, namespace=claim["namespace"], run=run_id)
    if not wait_elsewhere(ctx, claim["namespace"], job.name, run_id):
        return None
    log_path = ctx.settings.log_dir / claim["namespace"] / job.name / f"{run_id}.log"
    ctx.store.update_run(run_id, status=RunStatus.RUNNING, started=datetime.now(timezone.utc), log_path=str(log_path))
    return run_id
