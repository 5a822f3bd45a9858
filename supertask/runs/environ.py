"""A run's environment: the scheduler's, then ``env_file:``, then ``env:``, then the run's facts."""

from __future__ import annotations

import os
import shlex
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
    """``KEY=value`` lines (``export`` allowed, ``#`` comments, quotes as a shell reads them)."""
    values: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep:
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            try:
                parts = shlex.split(value)
                value = parts[0] if parts else ""
            except ValueError:
                value = value.strip("'\"")
        values[key.strip()] = value
    return values
