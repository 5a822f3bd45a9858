"""The APScheduler executor that decides, at each fire, whether and how a job runs.

APScheduler hands it every fire time a job has due (coalescing and misfire checks
are switched off in the job store so that nothing is dropped silently); this module
owns the rules and records every decision as a run row.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

from apscheduler.executors.base import BaseExecutor

from supertask.jobstore import NamespaceJobStore
from supertask.log import get_logger
from supertask.model import Job, Overlap, Reason, RunStatus
from supertask.runner import RunContext, execute

UTC = timezone.utc


class RunExecutor(BaseExecutor):
    def __init__(self, ctx: RunContext, jobstore: NamespaceJobStore, max_workers: int = 256):
        super().__init__()
        self.ctx = ctx
        self.jobstore = jobstore
        self.max_workers = max_workers
        self.started_at = datetime.now(UTC)
        self._pool: ThreadPoolExecutor | None = None
        self._inflight: Counter[str] = Counter()
        self._guard = threading.Lock()
        self.log = get_logger("supertask.scheduler")

    def start(self, scheduler: Any, alias: str) -> None:
        super().start(scheduler, alias)
        self.started_at = datetime.now(UTC)
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="supertask-run")

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)

    def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:  # pragma: no cover
        raise NotImplementedError  # submit_job below replaces BaseExecutor's path

    def submit_job(self, job: Any, run_times: list[datetime]) -> None:
        """Decide what the due fires of ``job`` become.

        Misfires: fires more than ``misfire_grace`` late (the scheduler was down or
        busy) do not run; they become one ``skipped`` run row naming how many were
        missed and when. Of the fires within the grace, only the latest runs (they are
        coalesced), with reason ``catch-up`` when it was due before this scheduler
        started, else ``schedule``.

        Overlap: with ``overlap: skip`` (the default) a fire while the job's previous
        run is still in flight becomes a ``skipped`` row and a warning event.
        """
        found = self.jobstore.definition(job.id)
        if found is None:
            return
        namespace, definition = found
        now = datetime.now(UTC)
        grace = definition.misfire_grace
        late = [t for t in run_times if (now - t).total_seconds() > grace]
        timely = [t for t in run_times if (now - t).total_seconds() <= grace]
        if late:
            first, last = late[0], late[-1]
            span = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
            message = (
                f"missed {len(late)} fire(s) ({span}) by more than misfire_grace "
                f"{grace:g}s; the scheduler was not running or was overloaded"
            )
            self._skip(namespace, definition, last, message)
        if not timely:
            return
        fire = timely[-1]
        reason = Reason.CATCH_UP if fire < self.started_at else Reason.SCHEDULE
        self.submit(namespace, definition, fire, reason)

    def submit(self, namespace: str, definition: Job, fire: datetime, reason: Reason) -> bool:
        """Start a run of ``definition`` for ``fire`` on the pool, honouring overlap."""
        key = f"{namespace}/{definition.name}"
        with self._guard:
            busy = self._inflight[key] > 0
            if not busy or definition.overlap is not Overlap.SKIP:
                self._inflight[key] += 1
        if busy and definition.overlap is Overlap.SKIP:
            self.log.warning("run skipped: previous run still in flight", job=definition.name,
                             namespace=namespace, scheduled=fire.isoformat(), overlap="skip")
            self._skip(namespace, definition, fire, "the previous run was still running (overlap: skip)")
            return False
        assert self._pool is not None, "executor not started"
        try:
            self._pool.submit(self._run, namespace, definition, fire, reason, key)
        except RuntimeError:  # pool shut down: we are stopping
            with self._guard:
                self._inflight[key] -= 1
            return False
        return True

    def _run(self, namespace: str, definition: Job, fire: datetime, reason: Reason, key: str) -> None:
        try:
            if definition.jitter and self.ctx.shutdown.wait(random.uniform(0, definition.jitter)):
                return
            execute(self.ctx, namespace, definition, fire, reason)
        except Exception:
            self.log.exception("run failed inside supertask", job=definition.name, namespace=namespace)
        finally:
            with self._guard:
                self._inflight[key] -= 1
                if self._inflight[key] <= 0:
                    del self._inflight[key]

    def _skip(self, namespace: str, definition: Job, fire: datetime, message: str) -> None:
        self.ctx.store.claim_run(
            namespace=namespace, job=definition.name, scheduled=fire, attempt=1,
            reason=Reason.SCHEDULE.value, host=self.ctx.settings.host,
            status=RunStatus.SKIPPED, message=message,
        )

    def in_flight(self) -> int:
        with self._guard:
            return sum(self._inflight.values())
