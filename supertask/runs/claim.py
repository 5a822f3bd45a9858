"""A fire's claim when other schedulers share the store: checked against what they run."""

from __future__ import annotations

from supertask.log import get_logger

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from supertask.model import Job, Reason
    from supertask.runs.context import RunContext


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
        if not wait:
            get_logger("supertask.run").warning("run skipped", job=job.name, namespace=claim["namespace"],
                                                scheduled=claim["scheduled"].isoformat(), reason=reason_text)
            return None
        get_logger("supertask.run").warning("fire waits for the database's clock", job=job.name,
                                            namespace=claim["namespace"], wait=round(wait, 3))
        if ctx.shutdown.wait(wait):
            return None
