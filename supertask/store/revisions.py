"""The store's part in live changes reaching every scheduler (:class:`LiveRows`, a part
of :class:`~supertask.store.sql.SqlStore`).

Every change to a namespace's jobs (a sync, a live edit, a pause, a removal, a trigger
through the store) counts one more revision of the namespace, and the job rows it
changes carry that revision (:func:`supertask.store.statements.bump_revision`). A
scheduler polls :meth:`LiveRows.revisions` (one primary-key lookup) and reads back only
what is newer than what it holds (:meth:`LiveRows.changed_jobs`); the schedule state
its fires write (``next_run_time``) is not a change, and is written only over the
revision the scheduler holds, so a host that has not seen an edit yet cannot write the
old schedule's next fire over the new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from supertask.model import Reason, RunRecord, RunStatus
from supertask.store import statements
from supertask.store.rows import StoredJob
from supertask.store.sqltx import SqlTx
from supertask.store.tables import jobs_table, namespaces_table, runs_table

UTC = timezone.utc


class LiveRows:
    """Revisions, changed jobs and runs queued through the store, on a SqlStore's
    engine (``self.engine``, ``self._write()``)."""

    engine: sa.Engine

    def _write(self) -> Any:  # the SqlStore's write transaction
        raise NotImplementedError

    def job_states(self, namespace: str) -> list[tuple[str, float | None, bool, int]]:
        """``(name, next_run_time, paused, revision)`` of every job of a namespace: what a
        scheduler needs at start, without reading (or parsing) the definitions."""
        cols = jobs_table.c
        query = sa.select(cols.name, cols.next_run_time, cols.paused, cols.revision).where(cols.namespace == namespace)
        with self.engine.connect() as conn:
            return [(r[0], r[1], bool(r[2]), int(r[3])) for r in conn.execute(query)]

    def set_next_run_times(self, namespace: str, updates: Iterable[tuple[Any, ...]]) -> None:
        """Persist schedule state for many jobs in one transaction: each ``(name, ts)``,
        or ``(name, ts, revision)``, written only while the job is at that revision (a
        job changed meanwhile by another host keeps the next fire that change gave it)
        and, at that revision, only forward: a host that was frozen or cut off writing
        what it held before never moves the next fire back over fires other hosts ran
        (whose rows retention may have pruned since: a restart would fire them again)."""
        plain: list[dict[str, Any]] = []
        held: list[dict[str, Any]] = []
        ended: list[dict[str, Any]] = []
        for name, ts, *revision in updates:
            values = {"ns": namespace, "n": name, "t": ts}
            if not revision:
                plain.append(values)
            else:
                (held if ts is not None else ended).append({**values, "r": revision[0]})
        if not plain and not held and not ended:
            return
        cols = jobs_table.c
        stmt = jobs_table.update().where(cols.namespace == sa.bindparam("ns"), cols.name == sa.bindparam("n")) \
            .values(next_run_time=sa.bindparam("t"))
        at_revision = stmt.where(cols.revision == sa.bindparam("r"))
        with self._write() as conn:
            if plain:
                conn.execute(stmt, plain)
            if held:
                conn.execute(at_revision.where(sa.or_(cols.next_run_time.is_(None),
                                                      cols.next_run_time < sa.bindparam("t"))), held)
            if ended:  # a one-off fired: no next fire
                conn.execute(at_revision, ended)

    def revisions(self, namespaces: Iterable[str]) -> dict[str, int]:
        """The revision of each namespace that has a row (a forgotten one is missing)."""
        query = sa.select(namespaces_table.c.name, namespaces_table.c.revision).where(
            namespaces_table.c.name.in_(list(namespaces)))
        with self.engine.connect() as conn:
            return {name: int(revision) for name, revision in conn.execute(query)}

    def changed_jobs(self, namespace: str, since: int) -> tuple[list[StoredJob], int]:
        """The jobs of a namespace changed after revision ``since`` (one indexed query),
        and how many jobs it has (fewer than the caller holds plus the new ones: some were
        removed, :meth:`job_names` tells which), read in one transaction."""
        cols = jobs_table.c
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(sa.select(jobs_table).where(cols.namespace == namespace, cols.revision > since)
                                ).mappings().all()
            count = conn.execute(sa.select(sa.func.count()).where(cols.namespace == namespace)).scalar_one()
        return [StoredJob.from_row(r) for r in rows], int(count)

    def job_names(self, namespace: str) -> set[str]:
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(jobs_table.c.name).where(jobs_table.c.namespace == namespace))}

    def queue_run(self, namespace: str, job: str, message: str) -> int:
        """A ``queued`` manual run of ``job`` that no host holds yet: the next scheduler
        serving the namespace to see it takes it up (:meth:`take_queued`) and runs it.
        Counts as a change of the namespace, so they see it at once."""
        def work(tx: SqlTx) -> int:
            statements.bump_revision(tx, namespace)
            found = tx.rows("SELECT name FROM supertask_jobs WHERE namespace = :namespace AND name = :name",
                            {"namespace": namespace, "name": job})
            if not found:
                from supertask.errors import JobNotFound

                raise JobNotFound(namespace, job)
            return statements.claim_runs(tx, [dict(  # type: ignore[return-value]
                namespace=namespace, job=job, scheduled=datetime.now(UTC), attempt=1, reason=Reason.MANUAL.value,
                host=None, status=RunStatus.QUEUED, message=message)])[0]

        with self._write() as conn:
            return work(SqlTx(conn))

    def take_queued(self, namespaces: Sequence[str], host: str) -> list[RunRecord]:
        """Take up the runs queued through the store in ``namespaces`` that no host holds
        yet: each becomes this host's (of several hosts asking at once, one gets each)."""
        cols = runs_table.c
        waiting = sa.and_(cols.status == RunStatus.QUEUED.value, cols.host.is_(None), cols.labels.is_(None),
                          cols.namespace.in_(list(namespaces)))
        taken = []
        with self._write() as conn:
            for row in conn.execute(sa.select(runs_table).where(waiting).order_by(cols.id)).mappings().all():
                held = dict(host=host, instance=getattr(self, "instance", None))
                if conn.execute(runs_table.update().where(cols.id == row["id"], waiting).values(**held)).rowcount:
                    taken.append(RunRecord.from_row({**row, **held}))
        return taken
