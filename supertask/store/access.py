"""Who may do what, and what was done: API tokens and the audit of changes (a part of
:class:`~supertask.store.sql.SqlStore`, as :class:`AccessRows`).

A token is a secret shown once, when it is made (``supertask tokens create``); the
store keeps its SHA-256 digest, its scope (:class:`Scope`) and the namespaces it sees
(``*``: every one). A secret of 256 random bits needs no slow hash: nobody can guess
one from its digest, and comparing digests takes the same time whatever they hold.

An audit row says when, who (``token:NAME`` or a unix user), from where, what (an
action on a job) and the job's keys before and after, ``env:`` values shown as
``***`` (:mod:`supertask.control.changes` writes them so).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from supertask.errors import UsageError
from supertask.model import RunRecord
from supertask.store.rows import StoredJob
from supertask.store.tables import audit_table, jobs_table, runs_table, tokens_table

UTC = timezone.utc
EVERY = "*"
PREFIX = "st_"
#: a token's ``last_used`` is written when it authenticates and the stored one is older
#: than this many seconds: at most one write a minute per token, not one per request
TOUCH_EVERY = 60.0


class Scope(str, enum.Enum):
    """What a token may do, each including the ones before: read (pages, API reads,
    logs), run (also run now, pause, resume), admin (also edit, add, remove)."""

    READ = "read"
    RUN = "run"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Scope).index(self)

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


@dataclass(frozen=True)
class Token:
    """A token as the store keeps it (never its secret)."""

    name: str
    scope: Scope
    namespaces: tuple[str, ...]
    created: datetime
    created_by: str | None = None
    revoked: datetime | None = None
    last_used: datetime | None = None

    def sees(self, namespace: str) -> bool:
        return EVERY in self.namespaces or namespace in self.namespaces

    def visible(self, namespaces: Iterable[str]) -> list[str]:
        return [ns for ns in namespaces if self.sees(ns)]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "scope": self.scope.value, "namespaces": list(self.namespaces),
                "created": self.created.isoformat(), "created_by": self.created_by,
                "revoked": self.revoked.isoformat() if self.revoked else None,
                "last_used": self.last_used.isoformat() if self.last_used else None}

    @classmethod
    def from_row(cls, row: Any) -> Token:
        return cls(name=row["name"], scope=Scope(row["scope"]), namespaces=tuple(json.loads(row["namespaces"])),
                   created=row["created"], created_by=row["created_by"], revoked=row["revoked"],
                   last_used=row["last_used"])


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scope(text: str) -> Scope:
    try:
        return Scope(text)
    except ValueError:
        raise UsageError(f"--scope {text!r}: use read, run or admin") from None


def like_pattern(part: str) -> str:
    """The LIKE pattern (escape: backslash) of "contains ``part``", its ``%``, ``_`` and
    backslashes taken as they are."""
    return "%" + part.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def name_like(column: Any, part: str) -> Any:
    """``column`` contains ``part``."""
    return column.like(like_pattern(part), escape="\\")


def run_filters(namespaces: Iterable[str] | None, job: str | None, statuses: Sequence[str], search: str | None,
                since: datetime | None, until: datetime | None) -> list[Any]:
    """The conditions on runs of the dashboard's filters (``since``/``until``: the scheduled time)."""
    c = runs_table.c
    found: list[Any] = []
    if search:
        found.append(name_like(c.job, search))
    if since is not None:
        found.append(c.scheduled >= since)
    if until is not None:
        found.append(c.scheduled < until)
    if namespaces is not None:
        found.append(c.namespace.in_(list(namespaces)))
    if job is not None:
        found.append(c.job == job)
    if statuses:
        found.append(c.status.in_(list(statuses)))
    return found


class AccessRows:
    """The tokens and audit tables on a SqlStore's engine (``self.engine``, ``self._write()``)."""

    engine: sa.Engine

    def _write(self) -> Any:  # the SqlStore's write transaction
        raise NotImplementedError

    # -- tokens -----------------------------------------------------------------------------

    def create_token(self, name: str, scope: Scope, namespaces: Sequence[str], by: str | None) -> str:
        """Make a token; return its secret (kept nowhere: shown once). A name in use by a
        token not revoked is refused; a revoked one's name is taken over."""
        if not name or len(name) > 200 or not all(c.isalnum() or c in "_.-@" for c in name):
            raise UsageError(f"token name {name!r}: use letters, digits and _.-@ (at most 200)")
        if not namespaces:
            raise UsageError("a token needs --ns NS (repeatable), or --ns '*' for every namespace")
        secret = PREFIX + secrets.token_urlsafe(32)
        with self._write() as conn:
            row = conn.execute(sa.select(tokens_table.c.revoked).where(tokens_table.c.name == name)).first()
            if row is not None and row[0] is None:
                raise UsageError(f"a token named {name!r} exists; revoke it first (`supertask tokens revoke {name}`) "
                                 "or choose another name")
            if row is not None:
                conn.execute(tokens_table.delete().where(tokens_table.c.name == name))
            conn.execute(tokens_table.insert().values(
                name=name, digest=digest(secret), scope=scope.value, namespaces=json.dumps(sorted(set(namespaces))),
                created=datetime.now(UTC), created_by=by))
        return secret

    def tokens(self, *, revoked: bool = False) -> list[Token]:
        query = sa.select(tokens_table).order_by(tokens_table.c.name)
        if not revoked:
            query = query.where(tokens_table.c.revoked.is_(None))
        with self.engine.connect() as conn:
            return [Token.from_row(r) for r in conn.execute(query).mappings()]

    def revoke_token(self, name: str) -> bool:
        with self._write() as conn:
            return bool(conn.execute(tokens_table.update().where(
                tokens_table.c.name == name, tokens_table.c.revoked.is_(None)).values(revoked=datetime.now(UTC))).rowcount)

    def token_for(self, secret: str) -> Token | None:
        """The live token whose secret this is, else None."""
        if not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        query = sa.select(tokens_table).where(tokens_table.c.digest == digest(secret), tokens_table.c.revoked.is_(None))
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            return None
        token = Token.from_row(row)
        return self._touched(token)

    def _touched(self, token: Token) -> Token:
        """``token`` with its ``last_used`` now, written when the stored one is older than
        :data:`TOUCH_EVERY` (a store that cannot take the write is no reason to refuse)."""
        now = datetime.now(UTC)
        last = token.last_used
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if last is not None and (now - last).total_seconds() < TOUCH_EVERY:
            return token
        try:
            with self._write() as conn:
                conn.execute(tokens_table.update().where(tokens_table.c.name == token.name,
                                                         tokens_table.c.revoked.is_(None))
                             .values(last_used=now))
        except Exception as exc:
            from supertask.log import get_logger

            get_logger("supertask.store").warning("token use not recorded", token=token.name, error=str(exc))
            return token
        return dataclasses.replace(token, last_used=now)

    def has_tokens(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(tokens_table.c.name).where(tokens_table.c.revoked.is_(None)).limit(1)).first() is not None

    # -- audit --------------------------------------------------------------------------------

    def audit(self, *, who: str, source: str | None, action: str, namespace: str | None, job: str | None,
              before: Any = None, after: Any = None) -> None:
        """One audit row (``before``/``after`` as JSON; their ``env`` values already masked)."""
        with self._write() as conn:
            conn.execute(audit_table.insert().values(
                at=datetime.now(UTC), who=who[:255], source=(source or "")[:255] or None, action=action[:32],
                namespace=namespace, job=job, before=None if before is None else json.dumps(before, default=str),
                after=None if after is None else json.dumps(after, default=str)))

    def audit_many(self, rows: Sequence[dict[str, Any]]) -> None:
        """Several :meth:`audit` rows (each its keyword arguments) in one transaction."""
        if not rows:
            return
        now = datetime.now(UTC)
        values = [{"at": now, "who": r["who"][:255], "source": (r.get("source") or "")[:255] or None,
                   "action": r["action"][:32], "namespace": r.get("namespace"), "job": r.get("job"),
                   "before": None if r.get("before") is None else json.dumps(r["before"], default=str),
                   "after": None if r.get("after") is None else json.dumps(r["after"], default=str)} for r in rows]
        with self._write() as conn:
            conn.execute(audit_table.insert(), values)

    def audit_rows(self, namespaces: Iterable[str] | None = None, *, job: str | None = None,
                   before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Audit rows, newest first (those of ``namespaces``, or all)."""
        query = sa.select(audit_table).order_by(audit_table.c.id.desc()).limit(limit)
        if namespaces is not None:
            query = query.where(audit_table.c.namespace.in_(list(namespaces)))
        if job is not None:
            query = query.where(audit_table.c.job == job)
        if before_id is not None:
            query = query.where(audit_table.c.id < before_id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [{"id": r["id"], "at": r["at"].isoformat(), "who": r["who"], "source": r["source"],
                 "action": r["action"], "namespace": r["namespace"], "job": r["job"],
                 "before": json.loads(r["before"]) if r["before"] else None,
                 "after": json.loads(r["after"]) if r["after"] else None} for r in rows]

    # -- jobs and runs, paged (the dashboard's pages) -------------------------------------------

    def jobs_page(self, namespaces: Iterable[str] | None, *, search: str | None = None,
                  after: tuple[str, str] | None = None, limit: int = 200) -> list[StoredJob]:
        """Jobs by namespace and name, from after ``after``; ``search``: a part of the name."""
        c = jobs_table.c
        query = sa.select(jobs_table).order_by(c.namespace, c.name).limit(limit)
        if namespaces is not None:
            query = query.where(c.namespace.in_(list(namespaces)))
        if search:
            query = query.where(name_like(c.name, search))
        if after is not None:
            query = query.where(sa.or_(c.namespace > after[0], sa.and_(c.namespace == after[0], c.name > after[1])))
        with self.engine.connect() as conn:
            return [StoredJob.from_row(r) for r in conn.execute(query).mappings()]

    def last_runs(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], RunRecord]:
        """The newest run of each ``(namespace, job)`` that has one."""
        out: dict[tuple[str, str], RunRecord] = {}
        by_ns: dict[str, list[str]] = {}
        for ns, job in keys:
            by_ns.setdefault(ns, []).append(job)
        with self.engine.connect() as conn:
            for ns, jobs in by_ns.items():
                newest = (sa.select(sa.func.max(runs_table.c.id)).where(runs_table.c.namespace == ns,
                                                                       runs_table.c.job.in_(jobs))
                          .group_by(runs_table.c.job).scalar_subquery())
                for row in conn.execute(sa.select(runs_table).where(runs_table.c.id.in_(newest))).mappings():
                    record = RunRecord.from_row(row)
                    out[(record.namespace, record.job)] = record
        return out


    def due_within(self, namespaces: Iterable[str] | None, until: float, limit: int = 500) -> list[StoredJob]:
        """Jobs whose next fire is before ``until`` (epoch seconds), soonest first."""
        c = jobs_table.c
        query = (sa.select(jobs_table).where(c.next_run_time.is_not(None), c.next_run_time <= until)
                 .order_by(c.next_run_time, c.namespace, c.name).limit(limit))
        if namespaces is not None:
            query = query.where(c.namespace.in_(list(namespaces)))
        with self.engine.connect() as conn:
            return [StoredJob.from_row(r) for r in conn.execute(query).mappings()]

    def runs_page(self, namespaces: Iterable[str] | None, *, job: str | None = None,
                  statuses: Sequence[str] = (), before_id: int | None = None, limit: int = 50,
                  search: str | None = None, since: datetime | None = None,
                  until: datetime | None = None) -> list[RunRecord]:
        """Runs newest first, filtered (``search``: a part of the job's name; ``since`` and
        ``until``: their scheduled time); the next page starts below the last id shown."""
        query = (sa.select(runs_table).order_by(runs_table.c.id.desc()).limit(limit)
                 .where(*run_filters(namespaces, job, statuses, search, since, until)))
        if before_id is not None:
            query = query.where(runs_table.c.id < before_id)
        with self.engine.connect() as conn:
            return [RunRecord.from_row(r) for r in conn.execute(query).mappings()]

    def runs_timeline(self, namespaces: Iterable[str] | None, *, since: datetime, until: datetime,
                      buckets: int, job: str | None = None, statuses: Sequence[str] = (),
                      search: str | None = None) -> list[tuple[int, str, int]]:
        """How many runs of each status were scheduled in each of ``buckets`` equal slices
        of ``[since, until)``, filtered as :meth:`runs_page`: ``(slice, status, count)``
        rows. One statement of a count per status and slice, each a range of the index by
        status, scheduled time and namespace: no per-row arithmetic, so a million runs
        are counted in tens of milliseconds."""
        from supertask.model import RunStatus
        from supertask.store.tables import UTCDateTime

        width = (until - since) / buckets
        edges = {f"t{i}": since + width * i for i in range(buckets)}
        edges[f"t{buckets}"] = until
        params: dict[str, Any] = dict(edges)
        extra = ""
        if namespaces is not None:
            names = list(namespaces) or [""]
            params.update({f"ns{i}": ns for i, ns in enumerate(names)})
            extra += f" AND namespace IN ({', '.join(f':ns{i}' for i in range(len(names)))})"
        if job is not None:
            params["job"] = job
            extra += " AND job = :job"
        if search:
            params["search"] = like_pattern(search)
            extra += " AND job LIKE :search ESCAPE '\\'"
        hint = " INDEXED BY supertask_runs_by_status_time" if self.engine.dialect.name == "sqlite" and not job else ""
        parts = []
        for k, status in enumerate(statuses or [s.value for s in RunStatus]):
            params[f"s{k}"] = status
            parts += [f"SELECT {i} AS slot, {k} AS state, count(*) AS n FROM supertask_runs{hint} WHERE status = :s{k} "
                      f"AND scheduled >= :t{i} AND scheduled < :t{i + 1}{extra}" for i in range(buckets)]
        query = sa.text(" UNION ALL ".join(parts)).bindparams(
            *[sa.bindparam(name, type_=UTCDateTime()) for name in edges])
        with self.engine.connect() as conn:
            rows = conn.execute(query, params).all()
        return [(int(slot), str(params[f"s{state}"]), int(n)) for slot, state, n in rows if n]

    def failures_since(self, namespaces: Iterable[str] | None, since: datetime, limit: int = 50) -> list[RunRecord]:
        failed = ("failed", "timed-out", "killed", "lost")
        query = (sa.select(runs_table).where(runs_table.c.status.in_(failed), runs_table.c.scheduled >= since)
                 .order_by(runs_table.c.id.desc()).limit(limit))
        if namespaces is not None:
            query = query.where(runs_table.c.namespace.in_(list(namespaces)))
        with self.engine.connect() as conn:
            return [RunRecord.from_row(r) for r in conn.execute(query).mappings()]
