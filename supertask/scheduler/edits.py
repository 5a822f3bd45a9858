"""A job's schedule and the live changes to one job, as the store holds them: what a
running scheduler applies through its control endpoint (then takes into memory) and
what ``supertask jobs ... --store URL`` applies with no scheduler to talk to. Either
way the change counts a new revision of the namespace, which every scheduler serving it
follows within seconds (:mod:`supertask.scheduler.follow`)."""

from __future__ import annotations

from datetime import datetime, timezone

from supertask.model import Job
from supertask.schedules.trigger import Schedule, parse_when
from supertask.store.base import Store, StoredJob

UTC = timezone.utc


def trigger_for(job: Job) -> Schedule:
    """The one trigger a job fires by (``supertask next`` uses the same)."""
    return parse_when(job.when, job.timezone)


def first_fire(job: Job, now: datetime | None = None) -> float | None:
    """When a job added or changed by a sync fires first (epoch seconds), or None."""
    when = trigger_for(job).get_next_fire_time(None, now or datetime.now(UTC))
    return when.timestamp() if when is not None else None


def put_job(store: Store, namespace: str, job: Job) -> StoredJob:
    """Add or replace one job. Its next fire is computed from now when its definition
    changed; a paused job stays paused (in the same transaction)."""
    store.sync(namespace, [job], first_fire, remove_missing=False, keep_paused=True)
    return store.get_job(namespace, job.name)


def set_paused(store: Store, namespace: str, name: str, paused: bool) -> StoredJob:
    """Pause (no fires; a run in flight goes on) or resume a job. A resumed job fires
    next at its first fire time after now: fires missed while paused do not run."""
    row = store.get_job(namespace, name)
    nxt = None if paused or not row.job.enabled else first_fire(row.job)
    store.set_paused(namespace, name, paused, nxt)
    return store.get_job(namespace, name)

