"""A store on the stdlib ``sqlite3``: run rows on a SQLite file, without SQLAlchemy.

``supertask run -- cmd:true`` must cost little more than the command itself
(docs/benchmarks.md). Importing SQLAlchemy alone takes ~200 ms, longer than the rest
of the run, so when the store is an existing SQLite file with this schema version,
the one-shot path records its run through this class instead of
:class:`~supertask.store.sql.SqlStore`, and a scheduler's ``SqlStore`` on SQLite writes
its run rows (the firing path) through it. It runs the statements of
:mod:`supertask.store.statements`, the same text the ``SqlStore`` runs, storing values
the way SQLAlchemy's SQLite dialect does (naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text,
booleans as 0/1), so a later ``history`` or a scheduler cannot tell the two apart. It is
a :class:`~supertask.store.base.RunStore`: a new store, another schema version or any
other database goes through ``SqlStore``.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from supertask.model import RunRecord, RunStatus
from supertask.store import statements
from supertask.store.health import StoreHealth
from supertask.store.statements import (
    GET_RUN,
    RUN_COLUMNS,
    SCHEMA_VERSION,
    TIME_COLUMNS,
    sqlite_file,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from supertask.model import Job, Share
    from supertask.store.statements import Pruned, SyncReport

UTC = timezone.utc
#: Milliseconds a writer waits for another process's write to end (SQLite's busy timeout).
BUSY_TIMEOUT_MS = 30000


def open_lite(url: str) -> LiteStore | None:
    """A LiteStore for ``sqlite:///FILE`` when FILE holds this schema version, else None."""
    path = sqlite_file(url)
    if path is None or not Path(path).is_file():
        return None
    try:
        store = LiteStore(url, path)
        row = store._conn.execute("SELECT value FROM supertask_meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.Error:
        return None
    if row is None or row[0] != str(SCHEMA_VERSION):
        store.close()
        return None
    return store


def stamp(value: datetime) -> str:
    """A time as SQLAlchemy's SQLite dialect stores it: naive UTC text."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


class _Tx:
    """A :mod:`~supertask.store.statements` transaction on one ``sqlite3`` connection."""

    stamp = staticmethod(stamp)

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def run(self, sql: str, params: dict[str, Any]) -> int:
        return self.conn.execute(sql, params).rowcount

    def run_many(self, sql: str, params: list[dict[str, Any]]) -> None:
        self.conn.executemany(sql, params)

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def insert(self, sql: str, params: dict[str, Any], key: str) -> int | None:
        try:  # a failed statement leaves SQLite's transaction as it was
            return int(self.conn.execute(sql, params).lastrowid or 0)
        except sqlite3.IntegrityError:
            return None

    def insert_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        keys = list(rows[0])
        self.conn.executemany(f"INSERT INTO {table} ({', '.join(keys)}) VALUES ({', '.join(':' + k for k in keys)})",
                              rows)


@dataclass(eq=False)
class _Grouped:
    sql: str
    params: dict[str, Any]
    done: bool = False
    error: Exception | None = None
    changed: int = 0  # rows the statement changed


class LiteStore:
    """A :class:`~supertask.store.base.RunStore` on one ``sqlite3`` connection."""

    dialect = "sqlite"

    def __init__(self, url: str, path: str, lock: threading.Lock | None = None, health: StoreHealth | None = None):
        self.url = url
        self._conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                     check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._lock = lock or threading.Lock()  # a SqlStore shares its own: one writer per process
        self._queue: list[_Grouped] = []  # statements waiting for a group commit (_grouped)
        self._queue_lock = threading.Lock()
        self.health = health or StoreHealth(url)  # a SqlStore shares its own
        self.instance: str | None = None  # the scheduler instance claiming (SqlStore.instance)

    def close(self) -> None:
        self._conn.close()

    def ping(self) -> None:
        with self._lock:
            self._conn.execute("SELECT 1 FROM supertask_meta LIMIT 1").fetchall()

    def _write(self, statements: Callable[[_Tx], Any]) -> Any:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self.health.failed(exc)
                raise
            try:
                result = statements(_Tx(self._conn))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        self.health.ok()
        return result

    def ensure_namespace(self, name: str, *, source: str | None, host: str, user: str,
                         share: Share | None = None) -> None:
        self._write(lambda tx: statements.ensure_namespace(tx, name, source=source, host=host, user=user, share=share))

    def sync(self, namespace: str, jobs: Sequence[Job], first_fire: Callable[[Job], float | None], *,
             remove_missing: bool = True, keep_paused: bool = False) -> SyncReport:
        """Make the namespace hold ``jobs`` (:func:`supertask.store.statements.sync_jobs`)."""
        return self._write(lambda tx: statements.sync_jobs(tx, namespace, jobs, first_fire,  # type: ignore[no-any-return]
                                                           remove_missing=remove_missing, keep_paused=keep_paused))

    def claim_run(
        self, *, namespace: str, job: str, scheduled: datetime, attempt: int, reason: str, host: str,
        status: RunStatus = RunStatus.RUNNING, message: str | None = None, log_dir: Any = None,
        instance: str | None = None, guard: dict[str, Any] | None = None,
    ) -> Any:
        """The row that claims one fire; None when it was taken (:func:`statements.claim_runs`)."""
        return self.claim_runs([statements.claim_of(
            namespace=namespace, job=job, scheduled=scheduled, attempt=attempt, reason=reason, host=host,
            status=status, message=message, log_dir=log_dir, instance=instance, guard=guard)])[0]

    def claim_runs(self, claims: Sequence[dict[str, Any]]) -> list[Any]:
        """:meth:`claim_run` of each of ``claims``, all in one transaction."""
        return list(self._write(lambda tx: statements.claim_runs(tx, claims, self.instance)))

    def update_run(self, run_id: int, **values: Any) -> None:
        self.update_runs([(run_id, values)])

    def update_runs(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """:meth:`update_run` of each ``(run_id, values)``, in a shared commit (:meth:`_grouped`)."""
        items = [_Grouped(*statements.run_update(run_id, values, stamp)) for run_id, values in rows if values]
        if items:
            self._grouped(items)

    def end_runs(self, rows: Sequence[tuple[int, dict[str, Any]]], owner: str | None = None) -> list[int]:
        """How attempts ended, each written only while its row is ``running`` and held by
        ``owner`` (default: :attr:`instance`); the ids refused (:meth:`SqlStore.end_runs`)."""
        owner = self.instance if owner is None else owner
        items = [(run_id, _Grouped(*statements.run_update(run_id, values, stamp, owner, end=True)))
                 for run_id, values in rows]
        if items:
            self._grouped([item for _, item in items])
        return [run_id for run_id, item in items if not item.changed]

    def _grouped(self, items: list[_Grouped]) -> None:
        """Run statements in a transaction shared with the statements other threads
        are waiting to run (group commit): whichever thread takes the write lock commits
        everything queued by then, and each caller returns once its statements are
        committed. At a few hundred runs ending a second, one commit each kept the runs
        queueing for the lock (py-spy: nine tenths of their time; docs/benchmarks.md)."""
        with self._queue_lock:
            self._queue.extend(items)
        with self._lock:
            if all(item.done for item in items):
                return self._result(items)
            with self._queue_lock:
                batch, self._queue = self._queue, []
            taken = {id(each) for each in batch}  # some may have been taken by a group that was interrupted
            batch.extend(item for item in items if not item.done and id(item) not in taken)
            try:
                self._transaction(batch)
            except Exception:  # each on its own, so one bad statement fails only its caller
                for each in batch:
                    try:
                        self._transaction([each])
                    except Exception as exc:
                        each.error = exc
            for each in batch:
                each.done = True
        return self._result(items)

    def _transaction(self, batch: list[_Grouped]) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for each in batch:
                each.changed = self._conn.execute(each.sql, each.params).rowcount
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    @staticmethod
    def _result(items: list[_Grouped]) -> None:
        for item in items:
            if item.error is not None:
                raise item.error

    def get_run(self, run_id: int) -> RunRecord:
        with self._lock:
            row = self._conn.execute(GET_RUN, {"id": run_id}).fetchone()
        if row is None:
            from supertask.errors import RunNotFound

            raise RunNotFound(run_id)
        data = dict(zip(RUN_COLUMNS, row, strict=True))
        for key in TIME_COLUMNS:
            data[key] = _parse(data[key])
        return RunRecord.from_row(data)

    def prune_runs(self, namespace: str, job: str | None, *, keep: int | None = None,
                   max_age: float | None = None) -> Pruned:
        """:func:`supertask.store.statements.prune_runs` in one transaction."""
        return self._write(lambda tx: statements.prune_runs(tx, namespace, job,  # type: ignore[no-any-return]
                                                            keep=keep, max_age=max_age))
