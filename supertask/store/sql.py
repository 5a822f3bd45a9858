"""The store on SQLAlchemy: :class:`SqlStore`, every call of the
:class:`~supertask.store.base.Store` Protocol on PostgreSQL, SQLite or any SQLAlchemy URL
(the tables are in :mod:`supertask.store.tables`, the writes both stores share in
:mod:`supertask.store.statements`).

Sharing one PostgreSQL store between hosts (DESIGN.md, last section) rests on the
runs table: a run row is the claim on one fire. ``(namespace, job, scheduled,
attempt)`` is unique, so when two schedulers race for the same fire, exactly one
insert wins and only its host launches the child (:func:`statements.claim_runs`).

A database that does not answer (refused, reset, the timeouts of
:data:`~supertask.store.tables.PG_TIMEOUTS`) raises
:class:`~supertask.errors.StoreUnavailable` and marks ``store.health`` down
(:mod:`supertask.store.health`); the next statement answered marks it up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from supertask.errors import JobNotFound, RunNotFound, StoreError, StoreUnavailable
from supertask.log import Limited
from supertask.model import Job, RunRecord, RunStatus, Share
from supertask.store import listing, statements
from supertask.store.access import AccessRows
from supertask.store.cluster import ClusterRows
from supertask.store.health import StoreHealth
from supertask.store.lite import LiteStore
from supertask.store.revisions import LiveRows
from supertask.store.rows import StoredJob
from supertask.store.sqltx import SqlTx, WriteTx, chunks
from supertask.store.statements import SCHEMA_VERSION, Pruned, SyncReport, sqlite_file
from supertask.store.tables import (
    create_schema,
    jobs_table,
    make_engine,
    meta_table,
    migrate,
    redact,
    runs_table,
    schema_version,
    short_error,
)

__all__ = ["SqlStore", "StoredJob", "SyncReport", "open_store", "redact"]



def open_store(url: str, *, create: bool = True) -> SqlStore:
    """Open (and by default create) the store at ``url``: :meth:`SqlStore.open`."""
    return SqlStore.open(url, create=create)


CLOCK_OFF = Limited("supertask.store")


def _missing(namespace: str, name: str) -> bool:
    """Inside a write: the job is not there (its transaction is rolled back)."""
    raise JobNotFound(namespace, name)


class SqlStore(ClusterRows, LiveRows, AccessRows):
    """One store (a database) holding any number of namespaces."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sqlite_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self.schema_missing = False  # opened with create=False where no tables are yet
        self.schema_old: int | None = None  # opened with migrate_old=False: the older version found
        self._fast: Any = None  # SQLite file: run rows through stdlib sqlite3 (see _runs)
        self.health = StoreHealth(redact(url))
        #: the scheduler instance this process is (supertask_hosts): its claims name it,
        #: its runs' ends are written only while it still holds them. None: a one-shot run.
        self.instance: str | None = None
        #: this host's clock minus the database's, as the last guarded claim saw it (seconds)
        self.skew = 0.0
        sa.event.listen(self.engine, "handle_error", self._on_error)
        sa.event.listen(self.engine, "after_cursor_execute", lambda *_args: self.health.ok())

    # -- set-up ---------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = True, migrate_old: bool = True) -> SqlStore:
        """Open (and by default create) the store; bring an older schema up to this one
        (unless ``migrate_old`` is false: ``schema_old`` says so), refuse a newer one."""
        path = sqlite_file(url)
        if path is not None and create:
            from supertask import statefolder

            if not Path(path).parent.is_dir():  # made 0700, each folder on the way checked
                statefolder.secure_home(Path(path).parent)
            if not os.path.lexists(path):  # made 0600: SQLite gives its journals the same mode
                statefolder.private_file(path)
        store = cls(url)
        version = schema_version(store.engine, url)
        if version is None and create:
            version = create_schema(store.engine, url)
        store.schema_missing = version is None
        if version is not None and version < SCHEMA_VERSION:
            if not migrate_old:
                store.schema_old = version
                return store
            version = migrate(store.engine, url, version)
        if version is not None and version != SCHEMA_VERSION:
            raise StoreError(
                f"store {redact(url)} has schema version {version}, this supertask needs {SCHEMA_VERSION}; "
                "use a supertask release that matches, or a new store"
            )
        return store

    def close(self) -> None:
        if self._fast:
            self._fast.close()
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))

    def _on_error(self, ctx: Any) -> BaseException | None:
        """A database that does not answer: StoreUnavailable, and the store's health down.
        (SQLite's OperationalErrors are about the file or the statement, not a network.)"""
        if self.dialect == "sqlite" or ctx.is_pre_ping:
            return None
        if not isinstance(ctx.sqlalchemy_exception, (sa.exc.OperationalError, sa.exc.InterfaceError)):
            return None
        error = short_error(ctx.original_exception)
        self.health.failed(error)
        return StoreUnavailable(redact(self.url), error)

    def _write(self) -> Any:
        """A write transaction. SQLite allows one writer: serialise ours in-process."""
        return WriteTx(self.engine, self._sqlite_lock)

    def _tx(self, work: Callable[[SqlTx], Any]) -> Any:
        """``work`` over a :mod:`~supertask.store.statements` transaction."""
        with self._write() as conn:
            return work(SqlTx(conn))

    # -- namespaces -------------------------------------------------------------------------

    def ensure_namespace(self, name: str, *, source: str | None, host: str, user: str,
                         share: Share | None = None) -> None:
        self._tx(lambda tx: statements.ensure_namespace(tx, name, source=source, host=host, user=user, share=share))

    def list_namespaces(self) -> list[dict[str, Any]]:
        """Each namespace's row and its number of jobs, by name."""
        return listing.namespaces(self.engine)

    # -- jobs ---------------------------------------------------------------------------------

    def sync(self, namespace: str, jobs: Sequence[Job], first_fire: Callable[[Job], float | None], *,
             remove_missing: bool = True, keep_paused: bool = False) -> SyncReport:
        """Make the namespace hold exactly ``jobs``, in one transaction
        (:func:`supertask.store.statements.sync_jobs`). Another process adding the same
        job meanwhile (two one-liners meeting a new store) is met by syncing again
        against what it wrote."""
        for attempt in range(3):
            try:
                return self._tx(lambda tx: statements.sync_jobs(  # type: ignore[no-any-return]
                    tx, namespace, jobs, first_fire, remove_missing=remove_missing, keep_paused=keep_paused))
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def list_jobs(self, namespace: str | None = None) -> list[StoredJob]:
        query = sa.select(jobs_table).order_by(jobs_table.c.namespace, jobs_table.c.name)
        if namespace is not None:
            query = query.where(jobs_table.c.namespace == namespace)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [StoredJob.from_row(r) for r in rows]

    def get_jobs(self, namespace: str, names: Iterable[str]) -> list[StoredJob]:
        """The named jobs of a namespace that exist (in no particular order)."""
        out: list[StoredJob] = []
        with self.engine.connect() as conn:
            for chunk in chunks(sorted(set(names)), 500):
                rows = conn.execute(
                    sa.select(jobs_table).where(jobs_table.c.namespace == namespace, jobs_table.c.name.in_(chunk))
                ).mappings().all()
                out += [StoredJob.from_row(r) for r in rows]
        return out

    def definitions(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        """The listed keys of each job's definition (:func:`supertask.store.listing.definitions`)."""
        return listing.definitions(self.engine, namespace)

    def get_job(self, namespace: str, name: str) -> StoredJob:
        with self.engine.connect() as conn:
            row = (
                conn.execute(
                    sa.select(jobs_table).where(
                        jobs_table.c.namespace == namespace, jobs_table.c.name == name
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            raise JobNotFound(namespace, name)
        return StoredJob.from_row(row)

    def set_paused(self, namespace: str, name: str, paused: bool, next_run_time: float | None) -> None:
        if not self._tx(lambda tx: statements.set_paused(tx, namespace, name, paused, next_run_time)
                        or _missing(namespace, name)):
            raise JobNotFound(namespace, name)

    def delete_job(self, namespace: str, name: str) -> None:
        self._tx(lambda tx: statements.delete_job(tx, namespace, name) or _missing(namespace, name))

    def generation(self, namespace: str) -> tuple[int, str | None]:
        """``(number of jobs, newest job change)`` of a namespace: any job added, changed
        or deleted changes it (schedule state written after fires does not)."""
        query = sa.select(sa.func.count(), sa.func.max(jobs_table.c.updated)).where(
            jobs_table.c.namespace == namespace)
        with self.engine.connect() as conn:
            count, newest = conn.execute(query).one()
        if newest is None:
            return int(count), None
        return int(count), newest.isoformat() if isinstance(newest, datetime) else str(newest)

    # -- meta: small named values -----------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == key)).scalar()

    def set_meta(self, key: str, value: str) -> None:
        with self._write() as conn:
            update = meta_table.update().where(meta_table.c.key == key).values(value=value)
            if conn.execute(update).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(meta_table.insert().values(key=key, value=value))
            except sa.exc.IntegrityError:  # another process (a second host starting) inserted it first
                conn.execute(update)

    def swap_meta(self, key: str, value: str) -> bool:
        """Set ``key`` to ``value``; True when it was missing or held another value. Of
        several processes setting the same value at once, exactly one gets True."""
        with self._write() as conn:
            changed = conn.execute(meta_table.update().where(meta_table.c.key == key, meta_table.c.value != value)
                                   .values(value=value)).rowcount
            if changed:
                return True
            if conn.execute(sa.select(meta_table.c.key).where(meta_table.c.key == key)).first() is not None:
                return False
            try:
                with conn.begin_nested():
                    conn.execute(meta_table.insert().values(key=key, value=value))
            except sa.exc.IntegrityError:  # another process inserted it first
                return False
            return True

    # -- runs ---------------------------------------------------------------------------------

    def _runs(self) -> Any:
        """Where run rows are written: on a SQLite file, a stdlib ``sqlite3`` connection
        (:class:`~supertask.store.lite.LiteStore`, same rows) under this store's write lock.
        SQLAlchemy's per-statement work made each run's two commits the longest hold of
        that lock: at 200 fires a second, half of the runs' time was spent queueing for
        it (py-spy; docs/benchmarks.md). Other databases: None (SQLAlchemy)."""
        if self._fast is None and self._sqlite_lock is not None:
            with self._sqlite_lock:  # one connection, whichever thread asks first
                if self._fast is None:
                    path = sqlite_file(self.url)
                    self._fast = LiteStore(self.url, path, lock=self._sqlite_lock) if path else False
        return self._fast or None

    def claim_run(self, *, namespace: str, job: str, scheduled: datetime, attempt: int, reason: str, host: str,
                  status: RunStatus = RunStatus.RUNNING, message: str | None = None, log_dir: Any = None,
                  instance: str | None = None, guard: dict[str, Any] | None = None) -> Any:
        """Insert the run row that claims one fire. None: that fire was already claimed.

        With ``log_dir``, the row's ``log_path`` (``log_dir/NAMESPACE/JOB/ID.log``) is set
        in the same transaction. ``instance``: who holds it (default: :attr:`instance`).
        """
        return self.claim_runs([statements.claim_of(
            namespace=namespace, job=job, scheduled=scheduled, attempt=attempt, reason=reason, host=host,
            status=status, message=message, log_dir=log_dir, instance=instance, guard=guard)])[0]

    def claim_runs(self, claims: Sequence[dict[str, Any]]) -> list[Any]:
        """:meth:`claim_run` for each of ``claims`` (its keyword arguments), all in one
        transaction (:func:`supertask.store.statements.claim_runs`)."""
        self.health.check()
        fast = self._runs()
        if fast is not None:
            fast.instance = self.instance
            return list(fast.claim_runs(claims))
        with self._write() as conn:
            tx = SqlTx(conn)
            ids = statements.claim_runs(tx, claims, self.instance)
        skew = getattr(tx, "skew", None)
        if skew is not None:  # a guarded claim read the database's clock (store.guard)
            self.skew = skew
            if abs(self.skew) > 1.0:
                CLOCK_OFF.event("this host's clock is off the database's", skew=round(self.skew, 3),
                                message="fires start by the database's clock; fix this host's time (NTP)")
        return ids

    def update_run(self, run_id: int, **values: Any) -> None:
        self.update_runs([(run_id, values)])

    def update_runs(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """:meth:`update_run` of each ``(run_id, values)``, all in one transaction (the
        ends of a round's runs: one commit, not one each)."""
        self.health.check()
        fast = self._runs()
        if fast is not None:
            fast.update_runs(rows)
            return
        with self._write() as conn:
            tx = SqlTx(conn)
            for run_id, values in rows:
                if values:
                    tx.run(*statements.run_update(run_id, values, tx.stamp))

    def end_runs(self, rows: Sequence[tuple[int, dict[str, Any]]], owner: str | None = None) -> list[int]:
        """Write how attempts ended (each ``(run_id, values)``), in one transaction, each
        only while its row is ``running`` and held by ``owner`` (default: this process's
        instance; :func:`statements.run_update`); return the ids whose end was refused
        (another host took the run over)."""
        self.health.check()
        owner = self.instance if owner is None else owner
        fast = self._runs()
        if fast is not None:
            return list(fast.end_runs(rows, owner))
        refused = []
        with self._write() as conn:
            tx = SqlTx(conn)
            for run_id, values in rows:
                if not tx.run(*statements.run_update(run_id, values, tx.stamp, owner, end=True)):
                    refused.append(run_id)
        return refused

    def get_run(self, run_id: int) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).mappings().first()
        if row is None:
            raise RunNotFound(run_id)
        return RunRecord.from_row(row)

    def history(
        self,
        namespace: str | None = None,
        job: str | None = None,
        *,
        failed: bool = False,
        limit: int = 20,
    ) -> list[RunRecord]:
        """The newest runs first."""
        query = sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
        if namespace is not None:
            query = query.where(runs_table.c.namespace == namespace)
        if job is not None:
            query = query.where(runs_table.c.job == job)
        if failed:
            query = query.where(
                runs_table.c.status.in_(
                    [s.value for s in (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.KILLED, RunStatus.LOST)]
                )
            )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [RunRecord.from_row(r) for r in rows]

    def prune_runs(self, namespace: str, job: str | None, *, keep: int | None = None,
                   max_age: float | None = None) -> Pruned:
        """Retention in one transaction: :func:`supertask.store.statements.prune_runs`."""
        return self._tx(lambda tx: statements.prune_runs(  # type: ignore[no-any-return]
            tx, namespace, job, keep=keep, max_age=max_age))
