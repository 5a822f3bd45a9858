"""Removing what no scheduler serves any more, straight from the store: ``supertask forget NS``
(a namespace, its jobs, its runs and their log files) and ``jobs remove --ns NS JOB`` with no
scheduler running. A namespace a scheduler on this host serves is refused: stop it first,
or remove jobs live."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from supertask.errors import UsageError


def served_by(home: Path, namespace: str) -> int | None:
    """The pid of the scheduler on this host that serves ``namespace``, if one answers."""
    from supertask.control.client import connect
    from supertask.errors import SupertaskError

    try:
        with connect(None, home=home, namespace=namespace) as client:
            return int(client.call("ping").get("pid") or 0) or -1
    except SupertaskError:
        return None


def refuse_if_served(home: Path, namespace: str, what: str) -> None:
    pid = served_by(home, namespace)
    if pid is not None:
        who = f"the scheduler (pid {pid})" if pid > 0 else "a running scheduler"
        raise UsageError(f"namespace {namespace!r} is served by {who}: {what} live, or stop it first "
                         "(`supertask stop --ns " + namespace + "`)")


def forget_namespace(store: Any, namespace: str) -> dict[str, Any]:
    """Delete a namespace, its jobs and its runs in one transaction, then the runs' log
    files; return what went."""
    import sqlalchemy as sa

    from supertask.store.tables import jobs_table, log_chunks_table, namespaces_table, runs_table

    with store.engine.begin() as conn:
        paths = [p for (p,) in conn.execute(sa.select(runs_table.c.log_path).where(
            runs_table.c.namespace == namespace, runs_table.c.log_path.is_not(None)))]
        conn.execute(log_chunks_table.delete().where(log_chunks_table.c.run_id.in_(
            sa.select(runs_table.c.id).where(runs_table.c.namespace == namespace))))  # workers' logs
        runs = conn.execute(runs_table.delete().where(runs_table.c.namespace == namespace)).rowcount
        jobs = conn.execute(jobs_table.delete().where(jobs_table.c.namespace == namespace)).rowcount
        conn.execute(namespaces_table.delete().where(namespaces_table.c.name == namespace))
    logs = 0
    for path in paths:
        try:
            os.unlink(path)
            logs += 1
        except OSError:
            pass
    return {"namespace": namespace, "jobs": jobs, "runs": runs, "logs": logs}
