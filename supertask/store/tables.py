"""The tables of a store and the engine behind it: the schema, in one place.

Persisted data is plain: a job row holds its definition as JSON (``Job.to_dict``,
with ``format``), never a pickled object; the schedule state is ``next_run_time``
(epoch seconds, NULL when the job has nothing left to fire or is paused). Runs are
unique on ``(namespace, job, scheduled, attempt)``: a run row is the claim on a fire.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from supertask.errors import StoreError

UTC = timezone.utc

#: Bumped when the tables change; a store with another version is refused.
SCHEMA_VERSION = 1



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
    sa.UniqueConstraint("namespace", "job", "scheduled", "attempt", name="supertask_runs_one_per_fire"),
    sa.Index("supertask_runs_by_job", "namespace", "job", "id"),
    sa.Index("supertask_runs_by_status", "status"),
)


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
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=20)
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
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    return engine


def short_error(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    try:
        return sa.engine.make_url(normalise_url(url)).render_as_string(hide_password=True)
    except Exception:
        return url
