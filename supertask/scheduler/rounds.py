"""The scheduler's rounds: APScheduler's ``BackgroundScheduler`` with its round of due
jobs decided a little ahead of time.

APScheduler wakes when the next job is due, then decides each due job's fire
(``submit_job``) and reckons its next one. Here it wakes :data:`LEAD` seconds before:
the round is decided and its runs' rows claimed in one transaction while nothing is
due yet, and the executor starts each child at its fire time
(:meth:`~supertask.scheduler.executor.RunExecutor.launch_round`). What a fire waits for after
its time is then only the start of its child: at one fire a second that is the claim
commit less (~0.5 ms of 3–4), at a hundred a second the whole decision of the round
(docs/benchmarks.md). No fire starts before its time: the executor waits for it.

"Due" is by the database's clock: on a host whose clock is ahead of it (the store
measures by how much, :func:`~supertask.scheduler.launch.clock_ahead`), the round's
horizon and its wake-up are moved back by as much, so such a host neither decides
fires early nor takes fires not yet due by the database for overdue ones (which
``catch_up: latest`` would fold into one).

A round that finds a job's first due fire already past (:data:`~supertask.scheduler.decisions.LATE`:
this scheduler woke late, was frozen, cut off, overloaded) on a store other schedulers
share first asks the store for the jobs' next run times: the fires other hosts decided
meanwhile are not decided again (:func:`~supertask.scheduler.decisions.undecided`), even
a fire half a second past that another host ran and whose row was pruned at once. A round
decided on time (ahead of its fires) asks nothing.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.base import STATE_PAUSED, TIMEOUT_MAX

from supertask import compat
from supertask.log import get_logger
from supertask.scheduler.decisions import LATE, undecided
from supertask.scheduler.launch import clock_ahead

if TYPE_CHECKING:
    from supertask.scheduler.executor import RunExecutor

UTC = timezone.utc
#: How far ahead of its fires a round is decided and claimed, at least; a round
#: that took longer to get ready (a thousand fires) makes the next ones start earlier.
LEAD = 0.025
MAX_LEAD = 0.5
#: After a failing job store, how soon the round is tried again.
RETRY_INTERVAL = 10.0


class RoundScheduler(compat.scheduler_base()):  # type: ignore[misc]
    """One job store, one executor (:class:`~supertask.scheduler.executor.RunExecutor`):
    each wake-up decides the fires due within :data:`LEAD`, then starts them."""

    def __init__(self, executor: RunExecutor, **options: Any):
        super().__init__(**options)
        self._rounds = executor
        self._lead = LEAD

    def process_round(self) -> float | None:
        if self.state == STATE_PAUSED:
            return None
        woke = time.monotonic()
        host_ahead = clock_ahead(self._rounds.ctx.store)  # due by the database's clock, not this host's
        horizon = datetime.now(UTC) + timedelta(seconds=self._lead - host_ahead)
        wake: datetime | None = None
        self._rounds.collect_round()
        try:
            with compat.jobstores_lock(self):
                for alias, jobstore in compat.jobstores(self).items():
                    try:
                        due = jobstore.get_due_jobs(horizon)
                    except Exception as exc:
                        compat.scheduler_logger(self).warning("Error getting due jobs from job store %r: %s", alias, exc)
                        retry = horizon + timedelta(seconds=RETRY_INTERVAL)
                        wake = retry if wake is None else min(wake, retry)
                        continue
                    decided = self._stored_next(jobstore, due, horizon)
                    for job in due:
                        self._decide(job, alias, jobstore, horizon, decided)
                    ahead = jobstore.get_next_run_time()
                    if ahead is not None and (wake is None or ahead < wake):
                        wake = ahead
        finally:
            ready = self._rounds.launch_round()
        if ready is not None:  # how long this round took to get ready for its first start
            self._lead = min(MAX_LEAD, max(LEAD, 1.5 * (ready - woke), 0.9 * self._lead))
        if self.state == STATE_PAUSED or wake is None:
            return None
        return min(max(wake.timestamp() + host_ahead - self._lead - time.time(), 0.0), TIMEOUT_MAX)

    def _stored_next(self, jobstore: Any, due: list[Any], horizon: datetime) -> dict[str, float | None]:
        """The store's next run times of the due jobs whose first fire is more than LATE
        behind (already past) by the database's clock, in namespaces other schedulers share
        (none to ask: empty)."""
        shared = self._rounds.shared
        behind = [job.id for job in due if shared is not None and job.next_run_time is not None
                  and (horizon - job.next_run_time).total_seconds() > LATE + self._lead
                  and shared(job.id.partition("/")[0])]
        health = getattr(self._rounds.ctx.store, "health", None)
        if not behind or (health is not None and (not health.up or health.suspected is not None)):
            return {}  # a store away or slow to answer (a cut network) is not waited on here
        try:
            return dict(jobstore.stored_next_run_times(behind))
        except Exception as exc:  # the store is away: decided from memory, each claim guards its fire
            get_logger("supertask.scheduler.rounds").debug("next run times not read", error=str(exc))
            return {}

    def _decide(self, job: Any, alias: str, jobstore: Any, horizon: datetime,
                decided: dict[str, float | None]) -> None:
        run_times = compat.due_run_times(job, horizon)
        if not run_times:
            return
        stored_ts = decided.get(job.id)
        if stored_ts is not None:
            stored = datetime.fromtimestamp(stored_ts, UTC)
            kept = undecided(run_times, stored)
            if len(kept) < len(run_times):
                namespace, _, name = job.id.partition("/")
                get_logger("supertask.scheduler.rounds").info(
                    "fires decided by another host", job=name, namespace=namespace, fires=len(run_times) - len(kept),
                    first=run_times[0].isoformat(), last=run_times[len(run_times) - len(kept) - 1].isoformat())
            if not kept:  # taken up from the store's next fire, in the next round
                compat.set_next_run_time(job, stored)
                jobstore.update_job(job)
                return
            run_times = kept
        try:
            self._rounds.submit_job(job, run_times)
        except BaseException:
            compat.scheduler_logger(self).exception("Error submitting job %r to the executor", job.id)
        following = job.trigger.get_next_fire_time(run_times[-1], horizon)
        if following:
            compat.set_next_run_time(job, following)
            jobstore.update_job(job)
        else:
            self.remove_job(job.id, alias)
