"""The claim: a worker takes queued runs it fits, with ``SELECT ... FOR UPDATE SKIP LOCKED``
(the way procrastinate, GoodJob and Solid Queue workers take jobs).

:func:`take` is the one place the choice is made: which of the ``queued`` rows for
workers (``labels`` not NULL) whose labels this worker has (JSON containment:
``labels <@ mine``) and whose time has come (``lease_until``, a queued row's "not
before": a retry's delay) it takes, and in which order. Rows another worker is taking
at the same moment are skipped, not waited for: two workers never take one row, and
neither waits on the other. The choice and its order (fair share between namespaces by
weight, ``max_running``, ``priority``, a job's ``max_concurrent``) are
:func:`supertask.workers.fairshare.pick`'s, called by :func:`select`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa

#: the columns a taken run is handed to the worker with
TAKEN = ("id", "namespace", "job", "attempt", "reason", "scheduled", "labels", "priority")

_TAKE = sa.text(
    "UPDATE supertask_runs SET status = 'running', worker = :worker, instance = :worker, host = :host, "
    "started = now(), lease_until = now() + make_interval(secs => :lease), message = NULL, pid = NULL "
    "WHERE id = ANY(:ids) AND status = 'queued' "
    f"RETURNING {', '.join(TAKEN)}")


def select(conn: Any, worker: str, labels: Mapping[str, str], free: int) -> list[int]:
    """The ids of the queued runs this worker takes now (at most ``free``), locked:
    the choice and its order, :func:`supertask.workers.fairshare.pick`."""
    from supertask.workers.fairshare import pick

    return pick(conn, labels, free)


def take(conn: Any, worker: str, labels: Mapping[str, str], free: int, *, lease: float,
         host: str) -> list[dict[str, Any]]:
    """Take up to ``free`` queued runs for ``worker`` (in the caller's transaction, on
    PostgreSQL): each becomes ``running``, held by the worker (``worker`` and
    ``instance``), ``started`` and ``lease_until`` (now plus ``lease`` seconds) on the
    database's clock. Returns the rows taken (:data:`TAKEN`), in the order chosen."""
    if free <= 0:
        return []
    ids = select(conn, worker, labels, free)
    if not ids:
        return []
    rows = {r["id"]: dict(r) for r in conn.execute(_TAKE, {"ids": ids, "worker": worker, "host": host,
                                                           "lease": float(lease)}).mappings()}
    return [rows[i] for i in ids if i in rows]
