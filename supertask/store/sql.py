"""The store: the one class that reads and writes namespaces, jobs and runs
(the tables themselves are in :mod:`supertask.store.tables`).

Persisted data is plain: a job row holds its definition as JSON (``Job.to_dict``,
with ``format``), never a pickled object; the schedule state is ``next_run_time``
(epoch seconds, NULL when the job has nothing left to fire or is paused).

Sharing one PostgreSQL store between hosts (DESIGN.md, last section) rests on the
runs table: a run row is the claim on one fire. ``(namespace, job, scheduled,
attempt)`` is unique, so when two schedulers race for the same fire, exactly one
insert wins and only its host launches the child (:meth:`Store.claim_run`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from supertask.errors import JobNotFound, RunNotFound, StoreError
from supertask.model import JOB_FORMAT_VERSION, Job, RunRecord, RunStatus, digest
from supertask.store.lite import LiteStore, sqlite_file
from supertask.store.tables import (  # noqa: F401  (re-exported: the schema's names)
    SCHEMA_VERSION,
    UTC,
    jobs_table,
    make_engine,
    meta_table,
    metadata,
    namespaces_table,
    normalise_url,
    redact,
    runs_table,
    short_error,
)

_SCHEMA_LOCK = 0x5E7A5C  # pg_advisory_xact_lock key for creating the schema


@dataclass(frozen=True)
class SyncReport:
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredJob:
    namespace: str
    job: Job
    paused: bool
    next_run_time: float | None
    updated: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        nrt = self.next_run_time
        return {
            "namespace": self.namespace,
            "name": self.job.name,
            "when": self.job.when,
            "run": self.job.run if self.job.run else [s.run for s in self.job.steps],
            "description": self.job.description,
            "enabled": self.job.enabled,
            "paused": self.paused,
            "timezone": self.job.timezone,
            "next_fire": datetime.fromtimestamp(nrt, UTC).isoformat() if nrt is not None else None,
        }


#: The keys of a job's definition that ``list-jobs`` shows (:meth:`Store.definitions`).
LISTED = ("when", "run", "steps", "description", "enabled", "timezone")


class Store:
    """One store (a database) holding any number of namespaces."""

    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sqlite_lock = threading.Lock() if self.engine.dialect.name == "sqlite" else None
        self.schema_missing = False  # opened with create=False where no tables are yet
        self._fast: Any = None  # SQLite file: run rows through stdlib sqlite3 (see _runs)

    # -- set-up ---------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> Store:
        """Open (and by default create) the store; refuse one with another schema version."""
        path = sqlite_file(url)
        if path is not None and create:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        store = cls(url)
        version = store._schema_version()
        if version is None and create:
            version = store._create_schema()
        store.schema_missing = version is None
        if version is not None and version != SCHEMA_VERSION:
            raise StoreError(
                f"store {redact(url)} has schema version {version}, this supertask needs {SCHEMA_VERSION}; "
                "use a supertask release that matches, or a new store"
            )
        return store

    def _schema_version(self) -> int | None:
        """The stored schema version; None when the tables are not there yet. A server
        that does not answer is a StoreError at once (no waiting on a wrong URL)."""
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = self.engine.connect()
                break
            except SQLAlchemyError as exc:  # SQLite's first PRAGMA may meet a creator's lock
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError(f"cannot open store {redact(self.url)}: {short_error(exc)}") from exc
                time.sleep(0.05)
        with conn:
            try:
                row = conn.execute(
                    sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
                ).first()
            except SQLAlchemyError:
                return None  # no tables yet: Store.open creates them
        return int(row[0]) if row is not None else None

    def _create_schema(self) -> int:
        """Create the tables and record the schema version; safe when several processes
        open a new store at once (a scheduler and a `supertask history`, say). PostgreSQL
        serialises them with an advisory lock; SQLite's loser sees "table already exists"
        or "locked" and tries again, then finds the tables the winner made."""
        deadline = time.monotonic() + 10
        while True:
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                    metadata.create_all(conn)
                    row = conn.execute(
                        sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")
                    ).first()
                    if row is not None:
                        return int(row[0])
                    conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
                    return SCHEMA_VERSION
            except SQLAlchemyError as exc:
                if time.monotonic() > deadline:
                    raise StoreError(f"cannot open store {redact(self.url)}: {short_error(exc)}") from exc
                time.sleep(0.05)

    def close(self) -> None:
        if self._fast:
            self._fast.close()
        self.engine.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _write(self) -> Any:
        """A write transaction. SQLite allows one writer: serialise ours in-process."""
        return _WriteTx(self)

    # -- namespaces -------------------------------------------------------------------------

    def ensure_namespace(self, name: str, *, source: str | None, host: str, user: str) -> None:
        now = datetime.now(UTC)
        with self._write() as conn:
            updated = conn.execute(
                namespaces_table.update()
                .where(namespaces_table.c.name == name)
                .values(source=source, host=host, user=user, updated=now)
            ).rowcount
            if not updated:
                try:
                    with conn.begin_nested():  # another process may be adding it at the same moment
                        conn.execute(
                            namespaces_table.insert().values(
                                name=name, source=source, host=host, user=user, created=now, updated=now
                            )
                        )
                except sa.exc.IntegrityError:  # it did: the namespace is there
                    pass

    def list_namespaces(self) -> list[dict[str, Any]]:
        counts = (
            sa.select(jobs_table.c.namespace, sa.func.count().label("jobs"))
            .group_by(jobs_table.c.namespace)
            .subquery()
        )
        query = (
            sa.select(namespaces_table, sa.func.coalesce(counts.c.jobs, 0).label("jobs"))
            .outerjoin(counts, counts.c.namespace == namespaces_table.c.name)
            .order_by(namespaces_table.c.name)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [
            {
                "name": r["name"],
                "source": r["source"],
                "host": r["host"],
                "user": r["user"],
                "jobs": r["jobs"],
                "created": r["created"].isoformat(),
                "updated": r["updated"].isoformat(),
            }
            for r in rows
        ]

    # -- jobs ---------------------------------------------------------------------------------

    def sync(
        self,
        namespace: str,
        jobs: Sequence[Job],
        first_fire: Any,
        *,
        remove_missing: bool = True,
    ) -> SyncReport:
        """Make the namespace hold exactly ``jobs``, in one transaction.

        Added and changed jobs get ``next_run_time = first_fire(job)`` (epoch seconds or
        None); unchanged jobs keep their schedule state, so a restart neither loses nor
        doubles a fire. Disabled jobs are stored with no next run time. Another process
        adding the same job meanwhile (two one-liners meeting a new store) is met by
        syncing again against what it wrote.
        """
        for attempt in range(3):
            try:
                return self._sync(namespace, jobs, first_fire, remove_missing=remove_missing)
            except sa.exc.IntegrityError:
                if attempt == 2:
                    raise
                time.sleep(0.01)
        raise AssertionError("unreachable")

    def _sync(self, namespace: str, jobs: Sequence[Job], first_fire: Any, *, remove_missing: bool) -> SyncReport:
        added, changed, unchanged = [], [], []
        now = datetime.now(UTC)
        wanted = {job.name: job for job in jobs}
        with self._write() as conn:
            existing = {
                r.name: r.fingerprint
                for r in conn.execute(
                    sa.select(jobs_table.c.name, jobs_table.c.fingerprint).where(
                        jobs_table.c.namespace == namespace
                    )
                )
            }
            inserts = []
            for name, job in wanted.items():
                text = job.definition()
                fp = digest(text)
                if existing.get(name) == fp:
                    unchanged.append(name)
                    continue
                row = {
                    "namespace": namespace,
                    "name": name,
                    "definition": text,
                    "format": JOB_FORMAT_VERSION,
                    "fingerprint": fp,
                    "paused": False,
                    "next_run_time": first_fire(job) if job.enabled else None,
                    "updated": now,
                }
                if name in existing:
                    changed.append(name)
                    conn.execute(
                        jobs_table.update()
                        .where(jobs_table.c.namespace == namespace, jobs_table.c.name == name)
                        .values(**row)
                    )
                else:
                    added.append(name)
                    inserts.append(row)
            if inserts:
                for chunk in _chunks(inserts, 5000):
                    conn.execute(jobs_table.insert(), chunk)
            removed = sorted(set(existing) - set(wanted)) if remove_missing else []
            for chunk in _chunks(removed, 500):
                conn.execute(
                    jobs_table.delete().where(
                        jobs_table.c.namespace == namespace, jobs_table.c.name.in_(chunk)
                    )
                )
        return SyncReport(tuple(added), tuple(changed), tuple(removed), tuple(unchanged))

    def list_jobs(self, namespace: str | None = None) -> list[StoredJob]:
        query = sa.select(jobs_table).order_by(jobs_table.c.namespace, jobs_table.c.name)
        if namespace is not None:
            query = query.where(jobs_table.c.namespace == namespace)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_stored_job(r) for r in rows]

    def get_jobs(self, namespace: str, names: Iterable[str]) -> list[StoredJob]:
        """The named jobs of a namespace that exist (in no particular order)."""
        out: list[StoredJob] = []
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(names)), 500):
                rows = conn.execute(
                    sa.select(jobs_table).where(jobs_table.c.namespace == namespace, jobs_table.c.name.in_(chunk))
                ).mappings().all()
                out += [_stored_job(r) for r in rows]
        return out

    def job_states(self, namespace: str) -> list[tuple[str, float | None, bool]]:
        """``(name, next_run_time, paused)`` of every job of a namespace: what a scheduler
        needs at start, without reading (or parsing) the definitions."""
        query = sa.select(jobs_table.c.name, jobs_table.c.next_run_time, jobs_table.c.paused).where(
            jobs_table.c.namespace == namespace)
        with self.engine.connect() as conn:
            return [(r[0], r[1], bool(r[2])) for r in conn.execute(query)]

    def definitions(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        """``(name, the keys of its definition a listing shows)`` of every job of a
        namespace: ``when``, ``run``, ``steps``, ``description``, ``enabled``, ``timezone``
        (``Job.to_dict`` values; a null one left out, as a missing one). SQLite and
        PostgreSQL pick them out with their JSON functions (parsing 1,000 whole
        definitions in Python was half of a live ``list-jobs`` call); other databases, or a
        SQLite without JSON functions, send the definitions and Python parses them."""
        col, dialect = jobs_table.c.definition, self.engine.dialect.name
        if dialect == "sqlite":  # one JSON array of the values: one parse of each definition
            columns: list[Any] = [sa.func.json_extract(col, *(f"$.{key}" for key in LISTED))]
        elif dialect == "postgresql":
            columns = [sa.cast(col, sa.JSON)[key] for key in LISTED]
        else:
            columns = [col]
        rows = self._job_columns(namespace, columns)
        if rows is None:
            dialect, rows = "", self._job_columns(namespace, [col]) or []
        out: list[tuple[str, dict[str, Any]]] = []
        for name, *values in rows:
            if dialect == "sqlite":
                fields = dict(zip(LISTED, json.loads(values[0]), strict=True))
            elif dialect == "postgresql":
                fields = dict(zip(LISTED, values, strict=True))
            else:
                fields = json.loads(values[0])
            out.append((name, {key: fields[key] for key in LISTED if fields.get(key) is not None}))
        return out

    def _job_columns(self, namespace: str, columns: list[Any]) -> list[Any] | None:
        """``(name, *columns)`` of each job of a namespace; None when the database has no
        such function (an SQLite built without JSON)."""
        query = sa.select(jobs_table.c.name, *columns).where(jobs_table.c.namespace == namespace)
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query).all())
        except sa.exc.OperationalError:
            if columns == [jobs_table.c.definition]:
                raise
            return None

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
        return _stored_job(row)

    def set_next_run_times(self, namespace: str, updates: Iterable[tuple[str, float | None]]) -> None:
        """Persist schedule state for many jobs in one transaction."""
        params = [{"ns": namespace, "n": name, "t": ts} for name, ts in updates]
        if not params:
            return
        stmt = (
            jobs_table.update()
            .where(jobs_table.c.namespace == sa.bindparam("ns"), jobs_table.c.name == sa.bindparam("n"))
            .values(next_run_time=sa.bindparam("t"))
        )
        with self._write() as conn:
            conn.execute(stmt, params)

    def set_paused(self, namespace: str, name: str, paused: bool, next_run_time: float | None) -> None:
        with self._write() as conn:
            count = conn.execute(
                jobs_table.update()
                .where(jobs_table.c.namespace == namespace, jobs_table.c.name == name)
                .values(paused=paused, next_run_time=next_run_time, updated=datetime.now(UTC))
            ).rowcount
        if not count:
            raise JobNotFound(namespace, name)

    def delete_job(self, namespace: str, name: str) -> None:
        with self._write() as conn:
            count = conn.execute(
                jobs_table.delete().where(jobs_table.c.namespace == namespace, jobs_table.c.name == name)
            ).rowcount
        if not count:
            raise JobNotFound(namespace, name)

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
            if not conn.execute(meta_table.update().where(meta_table.c.key == key).values(value=value)).rowcount:
                conn.execute(meta_table.insert().values(key=key, value=value))

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
            except IntegrityError:  # another process inserted it first
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

    def claim_run(
        self,
        *,
        namespace: str,
        job: str,
        scheduled: datetime,
        attempt: int,
        reason: str,
        host: str,
        status: RunStatus = RunStatus.RUNNING,
        message: str | None = None,
        log_dir: Any = None,
    ) -> int | None:
        """Insert the run row that claims one fire. None: that fire was already claimed.

        With ``log_dir``, the row's ``log_path`` (``log_dir/NAMESPACE/JOB/ID.log``) is set
        in the same transaction.
        """
        return self.claim_runs([dict(namespace=namespace, job=job, scheduled=scheduled, attempt=attempt,
                                     reason=reason, host=host, status=status, message=message,
                                     log_dir=log_dir)])[0]

    def claim_runs(self, claims: Sequence[dict[str, Any]]) -> list[int | None]:
        """:meth:`claim_run` for each of ``claims`` (its keyword arguments), all in one
        transaction (the scheduler claims a round's fires at once); None for a fire
        already claimed. A fire claimed ahead of its time is recorded as started at
        its time, when its child starts."""
        fast = self._runs()
        if fast is not None:
            return list(fast.claim_runs(claims))
        now = datetime.now(UTC)
        postgres = self.engine.dialect.name == "postgresql"
        ids: list[int | None] = []
        with self._write() as conn:
            for claim in claims:
                status = claim.get("status", RunStatus.RUNNING)
                values = dict(
                    namespace=claim["namespace"], job=claim["job"], scheduled=claim["scheduled"],
                    attempt=claim["attempt"], reason=claim["reason"], status=status.value, host=claim["host"],
                    message=claim.get("message"),
                    started=max(now, claim["scheduled"]) if status is RunStatus.RUNNING else None,
                    finished=now if status.finished else None,
                )
                run_id = self._insert_run(conn, values, postgres)
                if run_id is not None and claim.get("log_dir") is not None:
                    conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(
                        log_path=str(Path(claim["log_dir"]) / claim["namespace"] / claim["job"] / f"{run_id}.log")))
                ids.append(run_id)
        return ids

    @staticmethod
    def _insert_run(conn: sa.Connection, values: dict[str, Any], postgres: bool) -> int | None:
        """Insert one run row within the transaction; None when its fire is taken."""
        if postgres:  # a failed statement would abort PostgreSQL's whole transaction
            from sqlalchemy.dialects.postgresql import insert

            found = conn.execute(
                insert(runs_table).values(**values).on_conflict_do_nothing().returning(runs_table.c.id)).first()
            return None if found is None else int(found[0])
        try:
            with conn.begin_nested():
                key = conn.execute(runs_table.insert().values(**values)).inserted_primary_key
                return int(key[0])  # type: ignore[index]
        except IntegrityError:
            return None

    def update_run(self, run_id: int, **values: Any) -> None:
        self.update_runs([(run_id, values)])

    def update_runs(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """:meth:`update_run` of each ``(run_id, values)``, all in one transaction (the
        ends of a round's runs: one commit, not one each)."""
        fast = self._runs()
        if fast is not None:
            fast.update_runs(rows)
            return
        with self._write() as conn:
            for run_id, values in rows:
                if isinstance(values.get("status"), RunStatus):
                    values = {**values, "status": values["status"].value}
                conn.execute(runs_table.update().where(runs_table.c.id == run_id).values(**values))

    def get_run(self, run_id: int) -> RunRecord:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).mappings().first()
        if row is None:
            raise RunNotFound(run_id)
        return RunRecord(**row)

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
        return [RunRecord(**r) for r in rows]

    def prune_runs(
        self, namespace: str, job: str | None, *, keep: int | None = None, max_age: float | None = None
    ) -> list[str]:
        """Delete finished runs beyond the newest ``keep`` or older than ``max_age``
        seconds (of one job, or of every job when ``job`` is None); return their log paths."""
        finished = [s.value for s in RunStatus if s.finished]
        base = sa.and_(runs_table.c.namespace == namespace, runs_table.c.status.in_(finished))
        if job is not None:
            base = sa.and_(base, runs_table.c.job == job)
        conds = []
        if max_age is not None:
            cutoff = datetime.fromtimestamp(datetime.now(UTC).timestamp() - max_age, UTC)
            conds.append(runs_table.c.scheduled < cutoff)
        with self._write() as conn:
            if keep is not None:
                jobs = [job] if job is not None else [
                    r[0] for r in conn.execute(sa.select(runs_table.c.job).where(base).distinct())
                ]
                for name in jobs:
                    newest = conn.execute(
                        sa.select(runs_table.c.id)
                        .where(base, runs_table.c.job == name)
                        .order_by(runs_table.c.id.desc())
                        .offset(keep)
                        .limit(1)
                    ).scalar()
                    if newest is not None:
                        conds.append(sa.and_(runs_table.c.job == name, runs_table.c.id <= newest))
            if not conds:
                return []
            where = sa.and_(base, sa.or_(*conds))
            paths = [r[0] for r in conn.execute(sa.select(runs_table.c.log_path).where(where)) if r[0]]
            conn.execute(runs_table.delete().where(where))
        return paths

    def mark_lost(self, namespaces: Iterable[str], host: str) -> list[RunRecord]:
        """Runs this host left running or queued when it died become ``lost``."""
        names = list(namespaces)
        cond = sa.and_(
            runs_table.c.namespace.in_(names),
            runs_table.c.host == host,
            runs_table.c.status.in_([RunStatus.RUNNING.value, RunStatus.QUEUED.value]),
        )
        now = datetime.now(UTC)
        with self._write() as conn:
            rows = conn.execute(sa.select(runs_table).where(cond)).mappings().all()
            if rows:
                conn.execute(
                    runs_table.update()
                    .where(runs_table.c.id.in_([r["id"] for r in rows]))
                    .values(
                        status=RunStatus.LOST.value,
                        finished=now,
                        message="the scheduler stopped while this run was in flight; noticed at "
                        + now.isoformat(),
                    )
                )
        return [RunRecord(**r) for r in rows]


class _WriteTx:
    def __init__(self, store: Store):
        self.store = store
        self.ctx: Any = None

    def __enter__(self) -> sa.Connection:
        if self.store._sqlite_lock is not None:
            self.store._sqlite_lock.acquire()
        try:
            self.ctx = self.store.engine.begin()
            return self.ctx.__enter__()
        except BaseException:
            if self.store._sqlite_lock is not None:
                self.store._sqlite_lock.release()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            self.ctx.__exit__(*exc)
        finally:
            if self.store._sqlite_lock is not None:
                self.store._sqlite_lock.release()


def _stored_job(row: Any) -> StoredJob:
    return StoredJob(
        namespace=row["namespace"],
        job=Job.from_dict(json.loads(row["definition"])),
        paused=bool(row["paused"]),
        next_run_time=row["next_run_time"],
        updated=row["updated"],
    )


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
