"""A job as a store holds it (:class:`StoredJob`): its definition and schedule state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from supertask.model import Job

UTC = timezone.utc


@dataclass(frozen=True)
class StoredJob:
    """A job as the store holds it: its definition and its schedule state."""

    namespace: str
    job: Job
    paused: bool
    next_run_time: float | None
    updated: datetime | None = None
    #: the namespace's revision when the job last changed (statements.bump_revision)
    revision: int = 0

    @classmethod
    def from_row(cls, row: Any) -> StoredJob:
        """A row of the jobs table (a mapping) -> the job it holds."""
        return cls(namespace=row["namespace"], job=Job.from_dict(json.loads(row["definition"])),
                   paused=bool(row["paused"]), next_run_time=row["next_run_time"], updated=row["updated"],
                   revision=int(row.get("revision") or 0))

    def to_json(self) -> dict[str, Any]:
        nrt = self.next_run_time
        return {
            "namespace": self.namespace,
            "name": self.job.name,
            "when": self.job.when,
            "run": self.job.run if self.job.run else [s.run for s in self.job.steps],
            "description": self.job.description,
            "enabled": self.job.enabled,
            "paused": self.paused,
            "timezone": self.job.timezone,
            "next_fire": datetime.fromtimestamp(nrt, UTC).isoformat() if nrt is not None else None,
        }
