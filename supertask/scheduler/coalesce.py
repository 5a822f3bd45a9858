"""Fires ``catch_up: latest`` folded into a job's next one: counted for the job's
status, and logged as one "fires coalesced" line with the round, then at most once
every :data:`COALESCED_EVERY` seconds with the tally since, so that a scheduler too
busy for its fires says so without a line for each."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from supertask.runs.context import RunContext

#: how often, at most, "fires coalesced" is logged while fires keep being coalesced
COALESCED_EVERY = 60.0


@dataclass
class _Folded:
    """A tally of coalesced fires (see :meth:`Coalesced.add`)."""

    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # fires by (namespace, job)
    first: datetime | None = None
    last: datetime | None = None


class Coalesced:
    """The coalesced fires since "fires coalesced" was last logged."""

    def __init__(self, ctx: RunContext, log: Any):
        self.ctx = ctx
        self.log = log
        self._folded = _Folded()
        self._folded_at = -COALESCED_EVERY

    @property
    def pending(self) -> bool:
        return bool(self._folded.jobs)

    def add(self, namespace: str, name: str, folded: list[datetime]) -> None:
        """Fires folded into the job's next (the scheduler was down, or is behind its
        fires), tallied in the scheduler's thread."""
        with self.ctx.lock:
            self.ctx.coalesced[(namespace, name)] += len(folded)
        tally = self._folded
        tally.jobs[(namespace, name)] += len(folded)
        tally.first = min(tally.first or folded[0], folded[0])
        tally.last = max(tally.last or folded[-1], folded[-1])

    def report(self, due_only: bool = False) -> None:
        if due_only and time.monotonic() - self._folded_at < COALESCED_EVERY:
            return
        tally, self._folded = self._folded, _Folded()
        self._folded_at = time.monotonic()
        if not tally.jobs:
            return
        namespace, name = min(tally.jobs)
        assert tally.first is not None and tally.last is not None
        self.log.warning(
            "fires coalesced", fires=sum(tally.jobs.values()), jobs=len(tally.jobs), job=name, namespace=namespace,
            first=tally.first.isoformat(), last=tally.last.isoformat(),
            hint="catch_up: latest ran only the latest of each job's overdue fires; a scheduler that "
                 "keeps doing this is behind its fires (docs/operations.md)",
        )
