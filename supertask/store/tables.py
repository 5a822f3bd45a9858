"""The tables of a store and the engine behind it (with its timeouts): the schema, in one place.

Persisted data is plain: a job row holds its definition as JSON (``Job.to_dict``,
with ``format``), never a pickled object; the schedule state is ``next_run_time``
(epoch seconds, NULL when the job has nothing left to fire or is paused). Runs are
unique on ``(namespace, job, scheduled, attempt)``: a run row is the claim on a fire.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from supertask.errors import StoreError, StoreUnavailable
from supertask.store.lite import BUSY_TIMEOUT_MS
from supertask.store.statements import SCHEMA_VERSION

UTC = timezone.utc
__all__ = ["SCHEMA_VERSION", "UTC", "audit_table", "hosts_table", "jobs_table", "log_chunks_table", "make_engine",
           "meta_table", "migrate", "namespaces_table", "runs_table", "tokens_table", "workers_table"]

#: libpq's limits on a PostgreSQL connection (psycopg 3 and 2), unless the URL sets its own:
#: a connect (with its authentication) gives up after connect_timeout seconds; an idle
#: connection whose server went away is noticed within keepalives_idle + interval * count
#: seconds; data the server does not acknowledge ends the connection after
#: tcp_user_timeout ms; a statement the server works on longer than statement_timeout ms
#: is cancelled, and a session the server sees idle inside a transaction longer than
#: idle_in_transaction_session_timeout ms (its client cut off mid-transaction) is ended,
#: so its row locks do not hold up the writes kept for the store's return. A network cut then fails operations within seconds instead of leaving
#: them waiting on TCP's own timeouts (minutes: issue 18).
PG_TIMEOUTS: dict[str, Any] = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                               "keepalives_interval": 2, "keepalives_count": 2, "tcp_user_timeout": 10000}
PG_STATEMENT_TIMEOUT_MS = 60000
PG_IDLE_IN_TRANSACTION_MS = 30000
#: Seconds to wait for a free pooled connection (all of them may be stuck on a cut network).
POOL_TIMEOUT = 10



class UTCDateTime(sa.types.TypeDecorator):
    """Aware datetimes in, aware UTC datetimes out, on every backend (SQLite has no zones)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = sa.MetaData()

meta_table = sa.Table(
    "supertask_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

namespaces_table = sa.Table(
    "supertask_namespaces",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("source", sa.Text),
    sa.Column("host", sa.String(255)),
    sa.Column("user", sa.String(255)),
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False, default=0, server_default="0"),  # statements.bump_revision
    # fair share of the workers between namespaces (docs/workers.md)
    sa.Column("weight", sa.Float, nullable=False, default=1.0, server_default="1"),
    sa.Column("max_running", sa.Integer),  # at most this many runs on workers at once; NULL: no limit
)

jobs_table = sa.Table(
    "supertask_jobs",
    metadata,
    sa.Column("namespace", sa.String(200), primary_key=True),
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("format", sa.Integer, nullable=False),
    sa.Column("fingerprint", sa.String(32), nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("next_run_time", sa.Float, index=True),
    sa.Column("updated", UTCDateTime, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False, default=0, server_default="0"),  # of its last change
    sa.Index("supertask_jobs_by_revision", "namespace", "revision"),
)

runs_table = sa.Table(
    "supertask_runs",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("namespace", sa.String(200), nullable=False),
    sa.Column("job", sa.String(200), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False, default=1),
    sa.Column("reason", sa.String(16), nullable=False),
    sa.Column("scheduled", UTCDateTime, nullable=False),
    sa.Column("started", UTCDateTime),
    sa.Column("finished", UTCDateTime),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("exit_code", sa.Integer),
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("log_path", sa.Text),
    sa.Column("log_tail", sa.Text),
    sa.Column("message", sa.Text),
    sa.Column("instance", sa.String(64)),  # the scheduler instance holding the run (supertask_hosts)
    # -- runs for workers (docs/workers.md) --
    sa.Column("labels", sa.Text),  # JSON object the worker must have; NULL: a scheduler host runs it
    sa.Column("worker", sa.String(200)),  # the worker holding the attempt (supertask_workers.name)
    sa.Column("lease_until", UTCDateTime),  # database clock: renewed while it runs; queued: not before
    sa.Column("priority", sa.Integer, nullable=False, default=0, server_default="0"),  # the job's priority:
    sa.UniqueConstraint("namespace", "job", "scheduled", "attempt", name="supertask_runs_one_per_fire"),
    sa.Index("supertask_runs_by_job", "namespace", "job", "id"),
    sa.Index("supertask_runs_by_status", "status"),
    # the dashboard's timeline: how many of a status in a time range (of some namespaces)
    sa.Index("supertask_runs_by_status_time", "status", "scheduled", "namespace"),
    sa.Index("supertask_runs_by_namespace", "namespace", "id"),  # a page of some namespaces' runs
)


hosts_table = sa.Table(
    "supertask_hosts",
    metadata,
    sa.Column("instance", sa.String(64), primary_key=True),  # one per scheduler process start
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("boot", sa.String(64)),  # the machine's boot id
    sa.Column("home", sa.Text),  # the state folder (canonical)
    sa.Column("version", sa.String(32)),
    sa.Column("namespaces", sa.Text, nullable=False),  # JSON list
    sa.Column("state", sa.String(16), nullable=False),  # serving, stopped, lost
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("heartbeat", UTCDateTime, nullable=False),  # the database's clock
    sa.Column("host_clock", UTCDateTime, nullable=False),  # the host's own clock at that heartbeat
    sa.Column("lease", sa.Float, nullable=False),  # seconds without a heartbeat before it counts as down
    sa.Column("load", sa.Float),  # 1-minute load average
    sa.Column("runs", sa.Integer, nullable=False, default=0),  # runs in flight
    sa.Column("message", sa.Text),  # why it is lost (taken over by whom)
)

#: One row per worker process start (supertask worker; docs/workers.md).
workers_table = sa.Table(
    "supertask_workers",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),  # --name, else HOST-PID-RANDOM
    sa.Column("host", sa.String(255)),
    sa.Column("pid", sa.Integer),
    sa.Column("version", sa.String(32)),
    sa.Column("labels", sa.Text, nullable=False),  # JSON object {"gpu": "1"}
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("running", sa.Integer, nullable=False, default=0, server_default="0"),  # attempts in flight
    sa.Column("state", sa.String(16), nullable=False),  # serving, draining, paused, stopped, lost
    sa.Column("wanted", sa.String(16)),  # drain, pause, serve: asked by an operator, cleared once applied
    sa.Column("started", UTCDateTime, nullable=False),
    sa.Column("heartbeat", UTCDateTime, nullable=False),  # the database's clock
    sa.Column("lease", sa.Float, nullable=False),  # seconds without a heartbeat before it counts as down
    sa.Column("telemetry", sa.Text),  # JSON {"cpu", "memory", "disk_read", "disk_write", "load"}
    sa.Column("message", sa.Text),
)

#: A worker's runs' output, shipped as it comes (supertask logs RUN from any host).
log_chunks_table = sa.Table(
    "supertask_log_chunks",
    metadata,
    sa.Column("run_id", sa.Integer, primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

#: API tokens (supertask tokens create): only a SHA-256 of each secret is kept (docs/dashboard.md).
tokens_table = sa.Table(
    "supertask_tokens",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False, unique=True),  # sha256 hex of the secret
    sa.Column("scope", sa.String(16), nullable=False),  # read, run, admin
    sa.Column("namespaces", sa.Text, nullable=False),  # JSON list; ["*"]: every namespace
    sa.Column("created", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255)),
    sa.Column("revoked", UTCDateTime),
    sa.Column("last_used", UTCDateTime),
)

#: One row per change to a job, whoever made it (supertask audit).
audit_table = sa.Table(
    "supertask_audit",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("who", sa.String(255), nullable=False),  # token:NAME or a unix user
    sa.Column("source", sa.String(255)),  # where from: http 10.0.0.1, cli host, sync FILE
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("namespace", sa.String(200)),
    sa.Column("job", sa.String(200)),
    sa.Column("before", sa.Text),  # JSON, env values masked
    sa.Column("after", sa.Text),
    sa.Index("supertask_audit_by_namespace", "namespace", "id"),
)


_SCHEMA_LOCK = 0x5E7A5C  # pg_advisory_xact_lock key for creating the schema


def schema_version(engine: Engine, url: str) -> int | None:
    """The stored schema version; None when the tables are not there yet. A server
    that does not answer is a StoreError at once (no waiting on a wrong URL)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            conn = engine.connect()
            break
        except StoreUnavailable:
            raise
        except SQLAlchemyError as exc:  # SQLite's first PRAGMA may meet a creator's lock
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise StoreError(f"cannot open store {redact(url)}: {short_error(exc)}") from exc
            time.sleep(0.05)
    with conn:
        try:
            row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
        except SQLAlchemyError:
            return None  # no tables yet: create_schema makes them
    return int(row[0]) if row is not None else None


def _under_schema_lock(engine: Engine, work: Callable[[Any], int], failed: Callable[[str], str]) -> int:
    """``work(conn)`` in one transaction holding the schema lock (PostgreSQL: an advisory
    lock; SQLite: its writer lock), tried again for 10 s while another process holds it
    or races it ("table already exists", "locked"); then a StoreError saying ``failed``."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with engine.begin() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SCHEMA_LOCK})
                return work(conn)
        except (SQLAlchemyError, StoreUnavailable) as exc:
            if time.monotonic() > deadline:
                raise StoreError(failed(short_error(exc))) from exc
            time.sleep(0.05)


def _schema_version(conn: Any) -> int | None:
    row = conn.execute(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
    return None if row is None else int(row[0])


def create_schema(engine: Engine, url: str) -> int:
    """Create the tables and record the schema version; safe when several processes
    open a new store at once (a scheduler and a `supertask history`, say): the loser
    finds the tables and the version the winner made."""

    def create(conn: Any) -> int:
        metadata.create_all(conn)
        found = _schema_version(conn)
        if found is not None:
            return found
        conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
        return SCHEMA_VERSION

    return _under_schema_lock(engine, create, lambda error: f"cannot open store {redact(url)}: {error}")


def migrate(engine: Engine, url: str, version: int) -> int:
    """Bring a store of schema ``version`` up to :data:`SCHEMA_VERSION`
    (:data:`~supertask.store.statements.MIGRATIONS`, in one transaction); return the
    version it has now. Several processes opening an old store at once: the later ones
    find it done."""
    from supertask.store.statements import MIGRATIONS

    if version > SCHEMA_VERSION or any(v not in MIGRATIONS for v in range(version, SCHEMA_VERSION)):
        return version  # refused by the caller, with what to do

    def upgrade(conn: Any) -> int:
        now = _schema_version(conn) or version
        if now >= SCHEMA_VERSION:
            return now
        metadata.create_all(conn)
        for step in range(now, SCHEMA_VERSION):
            for statement in MIGRATIONS[step]:
                conn.execute(sa.text(statement))
        conn.execute(meta_table.update().where(meta_table.c.key == "schema_version").values(value=str(SCHEMA_VERSION)))
        return SCHEMA_VERSION

    return _under_schema_lock(engine, upgrade, lambda error: (
        f"cannot bring store {redact(url)} from schema version {version} to {SCHEMA_VERSION}: {error}"))


def normalise_url(url: str) -> str:
    """Accept the URLs people write: ``postgres://`` and ``postgresql://`` use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def make_engine(url: str) -> Engine:
    if url in ("memory://", "memory:"):
        engine = sa.create_engine(
            "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        try:
            sa_url = sa.engine.make_url(normalise_url(url))
        except Exception as exc:
            raise StoreError(
                f"store URL {url!r} is not a database URL: {exc}; use e.g. sqlite:///path/to/supertask.db, "
                "postgresql://user@host/db or memory://"
            ) from exc
        kwargs: dict[str, Any] = {}
        if sa_url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20, pool_timeout=POOL_TIMEOUT)
            if sa_url.get_backend_name() == "postgresql" and sa_url.get_driver_name() in ("psycopg", "psycopg2"):
                kwargs["connect_args"] = pg_connect_args(dict(sa_url.query))
        try:
            engine = sa.create_engine(sa_url, **kwargs)
        except Exception as exc:  # unknown dialect or driver
            raise StoreError(
                f"cannot use store URL {url!r}: {exc}; supported out of the box: sqlite:///FILE, "
                "postgresql://..., memory://"
            ) from exc
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            if url not in ("memory://", "memory:"):
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cur.close()

    return engine


def pg_connect_args(query: dict[str, Any]) -> dict[str, Any]:
    """libpq's timeouts (:data:`PG_TIMEOUTS`, a statement_timeout in ``options``) for a
    URL whose query is ``query``; what the URL sets itself wins."""
    args = {key: value for key, value in PG_TIMEOUTS.items() if key not in query}
    options = query.get("options") or ""
    options = " ".join(options) if isinstance(options, tuple) else options
    if "statement_timeout" not in options:
        options = f"{options} -c statement_timeout={PG_STATEMENT_TIMEOUT_MS}"
    if "idle_in_transaction_session_timeout" not in options:
        options = f"{options} -c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_MS}"
    args["options"] = options.strip()
    return args


def short_error(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return sa.engine.make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:
        return url
