"""The cross-host half of a fire's decision, taken in the transaction that claims it.

Each scheduler decides ``overlap``, ``max_concurrent``, pause and removal from what it
holds in memory (:class:`~supertask.scheduler.executor.RunExecutor`); several schedulers
sharing a store also need what the others run. A claim that carries a ``guard``
(``{"overlap": "skip"|"queue"|"allow", "max": N or 0, "busy": this host's runs of the job
in flight besides this one, "paused": whether a paused job is refused}``) is checked, in
the claim's own transaction, against the store:

- on PostgreSQL, ``pg_advisory_xact_lock`` on each guarded job's key first (all of a
  claim's keys, in key order: no two claims wait on each other), so two hosts deciding
  a fire of the same job take turns; SQLite's writes are serialised anyway;
- the job's row must be there and, for a scheduled fire, not paused: a host whose copy
  is stale (the job paused or removed elsewhere a moment ago) fires nothing;
- ``overlap: skip``: no run of the job ``running`` (nor ``queued``) on another scheduler
  instance; ``queue``: the same, but a fire that meets one ``running`` waits as a
  ``queued`` row of this host (at most one waits, across hosts) until it ends; ``allow``
  with ``max_concurrent``: fewer than N running on all hosts;
- on PostgreSQL, the fire is due by the database's clock: a fire more than
  :data:`EARLY` seconds ahead of the database's ``clock_timestamp()`` is refused for
  now (this host's clock is ahead: :class:`Refusal` says how long to wait).

A fire refused for a policy becomes a ``skipped`` row saying why (``previous run still
running on HOST``); one refused for the clock records nothing. A claim without a guard
(a one-shot run, a retry, a single-host SQLite store) costs nothing of this.

This module imports neither SQLAlchemy nor ``typing`` (the claim's path loads it).
"""

from __future__ import annotations

import hashlib
import time
from collections import namedtuple
from datetime import datetime, timezone

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

UTC = timezone.utc
#: Seconds a fire may be claimed ahead of its time by the database's clock: the round's
#: largest lead (scheduler.rounds.MAX_LEAD) and a second of clock difference.
EARLY = 1.5

_JOBS = "SELECT name, paused FROM supertask_jobs WHERE namespace = :namespace AND name = ANY(:names)"
_RUNS = ("SELECT job, host, status FROM supertask_runs WHERE status IN ('running', 'queued') "
         "AND namespace = :namespace AND job = ANY(:names) AND COALESCE(instance, '') <> :me")
_JOB = "SELECT name, paused FROM supertask_jobs WHERE namespace = :namespace AND name = :job"
_RUNNING = ("SELECT job, host, status FROM supertask_runs WHERE status IN ('running', 'queued') "
            "AND namespace = :namespace AND job = :job AND COALESCE(instance, '') <> :me")


class Refusal(namedtuple("Refusal", "reason wait queue", defaults=(0.0, None))):
    """A guarded claim refused: why, and (refused for the clock) how many seconds until
    the fire is due by the database's clock (0: refused for good, a ``skipped`` row).
    ``queue``: an ``overlap: queue`` fire that waits for a run on another host (true;
    once recorded, the id of its ``queued`` row)."""

    __slots__ = ()


def job_key(namespace: str, job: str) -> int:
    """The advisory lock key of a job: 64 bits of a hash of its namespace and name."""
    digest = hashlib.blake2b(f"{namespace}/{job}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock(tx: Any, claims: Sequence[dict[str, Any]]) -> datetime | None:
    """Take the guarded claims' job locks (PostgreSQL), in key order; return the
    database's clock after them (None elsewhere), and set ``tx.skew``: this host's clock
    minus the database's, read around that one query."""
    if getattr(tx, "dialect", None) != "postgresql":
        return None
    keys = sorted({job_key(c["namespace"], c["job"]) for c in claims})
    tx.rows("SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(CAST(:keys AS BIGINT[])) AS k "
            "ORDER BY 1) AS taken", {"keys": keys})
    before = time.time()
    now = tx.rows("SELECT clock_timestamp()", {})[0][0]
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    tx.skew = (before + time.time()) / 2 - now.timestamp()  # this host's clock minus the database's
    return now


def facts(tx: Any, claims: Sequence[dict[str, Any]], instance: str | None) -> dict[tuple[str, str], Any]:
    """What the store holds of the guarded claims' jobs: ``(namespace, job) -> (paused or
    None when the job is gone, the hosts of its runs running on other instances)``. On
    PostgreSQL two queries per namespace, whatever the number of claims."""
    out: dict[tuple[str, str], Any] = {}
    by_ns: dict[str, set[str]] = {}
    for claim in claims:
        by_ns.setdefault(claim["namespace"], set()).add(claim["job"])
    for namespace, jobs in by_ns.items():
        if getattr(tx, "dialect", None) == "postgresql":
            params = {"namespace": namespace, "names": sorted(jobs), "me": instance or ""}
            found, running = tx.rows(_JOBS, params), tx.rows(_RUNS, params)
        else:
            found, running = [], []
            for job in sorted(jobs):
                params = {"namespace": namespace, "job": job, "me": instance or ""}
                found += tx.rows(_JOB, params)
                running += tx.rows(_RUNNING, params)
        paused = {name: bool(flag) for name, flag in found}
        for job in jobs:
            out[(namespace, job)] = (paused.get(job), sorted(host or "?" for name, host, status in running
                                                             if name == job and status == "running"),
                                     sorted(host for name, host, status in running
                                            if name == job and status == "queued" and host))
    return out


def refusal(claim: dict[str, Any], known: dict[tuple[str, str], Any], db_now: datetime | None) -> Refusal | None:
    """Why the guarded ``claim`` may not start now (None: it may), from what the store
    holds (:func:`facts`) and the database's clock; see the module's docstring."""
    guard = claim["guard"]
    if db_now is not None:
        ahead = (claim["scheduled"] - db_now).total_seconds()
        if ahead > EARLY:
            return Refusal(f"due in {ahead:.3f}s by the database's clock (this host's clock is ahead)", ahead)
    paused, others, waiting = known[(claim["namespace"], claim["job"])]
    if paused is None:
        return Refusal("the job was removed (by another scheduler or through the store)")
    if guard.get("paused") and paused:
        return Refusal("the job is paused (by another scheduler or through the store)")
    policy, most = guard.get("overlap"), guard.get("max") or 0
    if policy in ("skip", "queue") and waiting:  # a fire queued on another host starts next
        return Refusal(f"a run is waiting to start on {', '.join(sorted(set(waiting)))} "
                       f"(overlap: {policy}, across hosts)")
    if not others or (policy == "allow" and not most):
        return None
    hosts = ", ".join(sorted(set(others)))
    if policy == "queue":
        return Refusal(f"waiting for the run in flight on {hosts} (overlap: queue, across hosts)", queue=True)
    if policy == "skip":
        return Refusal(f"previous run still running on {hosts} (overlap: skip, across hosts)")
    if len(others) + guard.get("busy", 0) >= most:
        return Refusal(f"max_concurrent {most} runs were in flight across hosts ({len(others)} on {hosts}; "
                       "overlap: allow)")
    return None
