"""Which queued runs a worker claims, and in what order: namespaces share the workers by
weight, each within its ``max_running``; within a namespace higher ``priority`` first,
then the oldest; no job beyond its ``max_concurrent`` across all workers and schedulers.

One selection per claim (:data:`PICK`), inside the claim's transaction, on PostgreSQL
(a job never gives a claim more than ``free`` runs, so only the first ``free`` queued
runs of each job are looked at past the first ranking, and only theirs read the job's
definition; the intermediate results are materialized, so a fresh table without
statistics cannot lead the planner into a loop of every run over every job):

- a run fits the worker when every key=value of its ``labels`` is among the worker's
  (``labels <@ worker labels``, JSON); runs without labels stay with the scheduler host;
  a queued row's ``lease_until`` is its "not before" (a retry's delay);
- **limits**: a job runs at most ``max_concurrent`` attempts at once with ``overlap:
  allow`` (no limit when unset), one with ``skip`` or ``queue``, counting the runs
  ``running`` anywhere (workers and schedulers alike); a namespace has at most
  ``max_running`` runs on workers (``supertask_namespaces.max_running``, NULL: no
  limit). A run a limit holds back is passed over, not waited for: the next one that
  fits is taken (work-conserving);
- **fair share** (weighted fair queueing within the claim): the n-th run a namespace
  would get counts ``(its runs on workers + n) / weight``, and the lowest counts are
  taken first (ties: higher priority, then the older run). With A holding 1,000 queued
  runs and B 10, both weight 1 and nothing running, 4 free slots take A, B, A, B; with
  weights 3 and 1, B's first run comes fourth. A namespace alone takes every slot;
- the chosen rows are locked ``FOR UPDATE SKIP LOCKED``: a row another transaction
  holds (a takeover marking it lost) is left, and the claim takes fewer.

Claims take turns: each first takes the transaction-level advisory lock
:data:`CLAIM_LOCK`, so two workers claiming at once do not both count the same free
place under a limit (a claim lasts milliseconds; what it serialises is the counting).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

#: pg_advisory_xact_lock key every claim takes first (``supertask`` + ``claim`` in hex-ish).
CLAIM_LOCK = 0x5E7A5C_C1A1

#: The most runs of one job at once: ``max_concurrent`` with ``overlap: allow`` (NULL: no
#: limit), else one (``skip`` and ``queue``: a run waits for the previous one to end).
#: (``json``, not ``jsonb``: read once, the text is half the work of the binary form.)
_JOB_LIMIT = ("CASE COALESCE(CAST(j.definition AS json) ->> 'overlap', 'skip') WHEN 'allow' "
              "THEN CAST(CAST(j.definition AS json) ->> 'max_concurrent' AS INTEGER) ELSE 1 END")

PICK = f"""
WITH busy AS MATERIALIZED (
    SELECT namespace, job, count(*) AS n, count(worker) AS on_workers
    FROM supertask_runs WHERE status = 'running' GROUP BY namespace, job
), ns_busy AS MATERIALIZED (
    SELECT namespace, sum(on_workers) AS n FROM busy GROUP BY namespace
), ranked AS (
    SELECT r.id, r.namespace, r.job, r.priority,
           row_number() OVER (PARTITION BY r.namespace, r.job ORDER BY r.priority DESC, r.id) AS nth_of_job
    FROM supertask_runs r
    WHERE r.status = 'queued' AND r.labels IS NOT NULL AND r.worker IS NULL
      AND (r.lease_until IS NULL OR r.lease_until <= now())
      AND CAST(r.labels AS jsonb) <@ CAST(:labels AS jsonb)
), fitting AS MATERIALIZED (
    SELECT f.id, f.namespace, f.job, f.priority, f.nth_of_job, {_JOB_LIMIT} AS most
    FROM ranked f LEFT JOIN supertask_jobs j ON j.namespace = f.namespace AND j.name = f.job
    WHERE f.nth_of_job <= :free
), allowed AS (
    SELECT f.id, f.namespace, f.priority,
           row_number() OVER (PARTITION BY f.namespace ORDER BY f.priority DESC, f.id) AS nth
    FROM fitting f
    LEFT JOIN busy b ON b.namespace = f.namespace AND b.job = f.job
    WHERE f.most IS NULL OR COALESCE(b.n, 0) + f.nth_of_job <= f.most
), picked AS (
    SELECT a.id, row_number() OVER (
               ORDER BY (COALESCE(nb.n, 0) + a.nth) / GREATEST(COALESCE(ns.weight, 1), 1e-9), a.priority DESC, a.id
           ) AS turn
    FROM allowed a
    LEFT JOIN ns_busy nb ON nb.namespace = a.namespace
    LEFT JOIN supertask_namespaces ns ON ns.name = a.namespace
    WHERE ns.max_running IS NULL OR COALESCE(nb.n, 0) + a.nth <= ns.max_running
    ORDER BY turn
    LIMIT :free
)
SELECT r.id FROM supertask_runs r JOIN picked p ON p.id = r.id
ORDER BY p.turn
FOR UPDATE OF r SKIP LOCKED
"""


def pick(conn: Any, labels: Mapping[str, str], free: int) -> list[int]:
    """The ids of the queued runs a worker with ``labels`` and ``free`` slots takes, in
    turn order, their rows locked until the transaction of ``conn`` (a SQLAlchemy
    connection to PostgreSQL, or a :class:`~supertask.store.sqltx.SqlTx` on one) ends;
    see the module's docstring."""
    if free <= 0:
        return []
    conn = getattr(conn, "conn", conn)  # a SqlTx: its connection
    conn.execute(_LOCK, {"key": CLAIM_LOCK})
    found = conn.execute(_PICK, {"labels": json.dumps(dict(labels), sort_keys=True), "free": int(free)})
    return [int(row[0]) for row in found]


_LOCK = sa.text("SELECT pg_advisory_xact_lock(:key)")
_PICK = sa.text(PICK)
