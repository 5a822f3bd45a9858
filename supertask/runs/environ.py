"""A run's environment: the scheduler's, then ``env_file:``, then ``env:``, then the run's facts."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from supertask.model import Job, sha256_hex


def run_key(store_url: str, namespace: str, run_id: int) -> str:
    """What marks a run's processes machine-wide (``SUPERTASK_RUN_KEY``): the store too,
    so two schedulers on one machine with the same namespace and run ids (two users'
    stores, two test runs) never end each other's processes."""
    return f"{sha256_hex(store_url.encode())[:12]}/{namespace}/{run_id}"


def build_env(namespace: str, job: Job, run_id: int, scheduled: datetime, store_url: str = "") -> dict[str, str]:
    """The child's environment: ours, then ``env_file``, then ``env``, then the run's facts."""
    env = dict(os.environ)
    if job.env_file:
        env.update(read_env_file(Path(job.env_file)))
    env.update({k: str(v) for k, v in job.env.items()})
    env.update(
        SUPERTASK_RUN_ID=str(run_id),
        SUPERTASK_JOB=job.name,
        SUPERTASK_NAMESPACE=namespace,
        SUPERTASK_SCHEDULED=scheduled.isoformat(),
        SUPERTASK_RUN_KEY=run_key(store_url, namespace, run_id),
    )
    return env


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` lines (``export`` allowed, ``#`` comments, quotes as a shell reads
    them); EnvFileError naming the lines that are not (:mod:`supertask.timetable.envfile`)."""
    from supertask.timetable.envfile import described, parse_env_file

    values, problems = parse_env_file(path.read_bytes())
    if problems:
        from supertask.errors import EnvFileError

        raise EnvFileError(f"env_file {described(str(path), problems)}")
    return values
