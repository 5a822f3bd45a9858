"""A one-shot run's store on the stdlib ``sqlite3``: the same tables, the few calls it makes.

``supertask run -- cmd:true`` must cost little more than the command itself
(docs/benchmarks.md). Importing SQLAlchemy alone takes ~200 ms, longer than the rest
of the run, so when the store is an existing SQLite file with this schema version,
the one-shot path records its run through this class instead of :class:`~supertask.store.sql.Store`,
and a scheduler's ``Store`` on SQLite writes its run rows (the firing path) through it.
It writes exactly what ``Store`` writes (the tables are :mod:`supertask.store.tables`; the
values are stored the way SQLAlchemy's SQLite dialect stores them: naive UTC
``YYYY-MM-DD HH:MM:SS.ffffff`` text, booleans as 0/1), so a later ``history`` or a
scheduler cannot tell the two apart. A new store, another schema version or any other
database goes through ``Store``. Calls it does not have (retention) open a ``Store``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from supertask.model import JOB_FORMAT_VERSION, Job, RunRecord, RunStatus, digest

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

UTC = timezone.utc
SCHEMA_VERSION = 1  # supertask.store.tables.SCHEMA_VERSION; a unit test keeps the two equal
_RUN_COLUMNS = ("id", "namespace", "job", "attempt", "reason", "scheduled", "started", "finished", "status",
                "exit_code", "host", "pid", "log_path", "log_tail", "message")


def sqlite_file(url: str) -> str | None:
    """FILE of a plain ``sqlite:///FILE`` URL (no query, not in memory), else None."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return None if "?" in path or not path or path == ":memory:" else path


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


def _stamp(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def _started(now: str | None, scheduled: datetime) -> str | None:
    """``now``, or the fire's time when that is still to come."""
    at = _stamp(scheduled)
    return at if at is not None and now is not None and at > now else now


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else None


@dataclass(eq=False)
class _Grouped:
    sql: str
    params: tuple[Any, ...]
    done: bool = False
    error: Exception | None = None


class LiteStore:
    """The subset of :class:`~supertask.store.sql.Store` that a one-shot run uses."""

    def __init__(self, url: str, path: str, lock: threading.Lock | None = None):
        self.url = url
        self._conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._lock = lock or threading.Lock()  # a Store shares its own: one writer per process
        self._queue: list[_Grouped] = []  # statements waiting for a group commit (_grouped)
        self._queue_lock = threading.Lock()

    dialect = "sqlite"

    def close(self) -> None:
        self._conn.close()

    def _write(self, statements: Callable[[sqlite3.Connection], Any]) -> Any:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                result = statements(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return result

    def ensure_namespace(self, name: str, *, source: str | None, host: str, user: str) -> None:
        now = _stamp(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> None:
            cur = conn.execute('UPDATE supertask_namespaces SET source = ?, host = ?, "user" = ?, updated = ? '
                               "WHERE name = ?", (source, host, user, now, name))
            if not cur.rowcount:
                conn.execute('INSERT INTO supertask_namespaces (name, source, host, "user", created, updated) '
                             "VALUES (?, ?, ?, ?, ?, ?)", (name, source, host, user, now, now))

        self._write(write)

    def sync(self, namespace: str, jobs: Sequence[Job], first_fire: Any, *, remove_missing: bool = True) -> None:
        """Add or change ``jobs`` in the namespace (a one-shot run never removes any)."""
        if remove_missing:
            raise NotImplementedError("a one-shot run keeps the namespace's other jobs")
        now = _stamp(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> None:
            for job in jobs:
                text = job.definition()
                fp = digest(text)
                row = conn.execute("SELECT fingerprint FROM supertask_jobs WHERE namespace = ? AND name = ?",
                                   (namespace, job.name)).fetchone()
                if row is not None and row[0] == fp:
                    continue
                values = (text, JOB_FORMAT_VERSION, fp, 0, first_fire(job) if job.enabled else None, now)
                if row is None:
                    conn.execute("INSERT INTO supertask_jobs (definition, format, fingerprint, paused, next_run_time, "
                                 "updated, namespace, name) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                 (*values, namespace, job.name))
                else:
                    conn.execute("UPDATE supertask_jobs SET definition = ?, format = ?, fingerprint = ?, paused = ?, "
                                 "next_run_time = ?, updated = ? WHERE namespace = ? AND name = ?",
                                 (*values, namespace, job.name))

        self._write(write)

    def claim_run(
        self, *, namespace: str, job: str, scheduled: datetime, attempt: int, reason: str, host: str,
        status: RunStatus = RunStatus.RUNNING, message: str | None = None, log_dir: Any = None,
    ) -> int | None:
        """As :meth:`Store.claim_run`: the row that claims one fire; None when it was taken."""
        return self.claim_runs([dict(namespace=namespace, job=job, scheduled=scheduled, attempt=attempt,
                                     reason=reason, host=host, status=status, message=message,
                                     log_dir=log_dir)])[0]

    def claim_runs(self, claims: Sequence[dict[str, Any]]) -> list[int | None]:
        """:meth:`claim_run` of each of ``claims`` (its keyword arguments), all in one
        transaction: a fire already claimed gets None, the rest their run ids. A fire
        claimed ahead of its time (the scheduler decides a round early) is recorded as
        started at its time, when its child starts."""
        now = _stamp(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> list[int | None]:
            ids: list[int | None] = []
            for claim in claims:
                status = claim.get("status", RunStatus.RUNNING)
                try:  # a failed statement leaves SQLite's transaction as it was
                    cur = conn.execute(
                        "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, started, finished, "
                        "status, host, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (claim["namespace"], claim["job"], claim["attempt"], claim["reason"],
                         _stamp(claim["scheduled"]), _started(now, claim["scheduled"]) if status is RunStatus.RUNNING else None,
                         now if status.finished else None, status.value, claim["host"], claim.get("message")))
                except sqlite3.IntegrityError:
                    ids.append(None)
                    continue
                run_id = int(cur.lastrowid or 0)
                if claim.get("log_dir") is not None:
                    conn.execute("UPDATE supertask_runs SET log_path = ? WHERE id = ?",
                                 (str(Path(claim["log_dir"]) / claim["namespace"] / claim["job"] / f"{run_id}.log"),
                                  run_id))
                ids.append(run_id)
            return ids

        return list(self._write(write))

    def update_run(self, run_id: int, **values: Any) -> None:
        self.update_runs([(run_id, values)])

    def update_runs(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """:meth:`update_run` of each ``(run_id, values)``, all in one transaction."""
        items = [self._update(run_id, values) for run_id, values in rows if values]
        if items:
            self._grouped(items)

    @staticmethod
    def _update(run_id: int, values: dict[str, Any]) -> _Grouped:
        params = []
        for key, value in values.items():
            if key not in _RUN_COLUMNS or key == "id":
                raise ValueError(f"no run column {key!r}")
            if isinstance(value, RunStatus):
                value = value.value
            elif isinstance(value, datetime):
                value = _stamp(value)
            params.append(value)
        sets = ", ".join(f"{key} = ?" for key in values)
        return _Grouped(f"UPDATE supertask_runs SET {sets} WHERE id = ?", (*params, run_id))

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
                self._conn.execute(each.sql, each.params)
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
            row = self._conn.execute(f"SELECT {', '.join(_RUN_COLUMNS)} FROM supertask_runs WHERE id = ?",
                                     (run_id,)).fetchone()
        if row is None:
            from supertask.errors import RunNotFound

            raise RunNotFound(run_id)
        data = dict(zip(_RUN_COLUMNS, row, strict=True))
        for key in ("scheduled", "started", "finished"):
            data[key] = _parse(data[key])
        return RunRecord(**data)

    def prune_runs(self, namespace: str, job: str | None, *, keep: int | None = None,
                   max_age: float | None = None) -> list[str]:
        from supertask.store.sql import Store

        store = Store.open(self.url)
        try:
            return store.prune_runs(namespace, job, keep=keep, max_age=max_age)
        finally:
            store.close()
