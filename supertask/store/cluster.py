"""The store's part in a cluster: the hosts table (one row per scheduler instance, its
heartbeat on the database's clock) and the run rows an instance holds, which another
one may declare ``lost`` (:class:`ClusterRows`, a part of
:class:`~supertask.store.sql.SqlStore`).

What is decided from these rows (is a host down, is its clock off, whose runs are
lost) is :mod:`supertask.cluster.leases`: pure functions of the rows and the
database's ``now``. Here only reading and writing, each write conditional where two
hosts may race: a run is declared ``lost`` by ``UPDATE ... WHERE id = :id AND status
IN ('running', 'queued') AND instance = :dead``, so of two survivors exactly one
changes the row (PostgreSQL's row lock makes the second re-check the condition after
the first commits, and find nothing), and only that one retries it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from supertask.model import RunRecord, RunStatus
from supertask.store.tables import hosts_table, runs_table

UTC = timezone.utc
IN_FLIGHT = (RunStatus.RUNNING.value, RunStatus.QUEUED.value)


class HostState:
    """What a host row says of itself (``up``/``down`` is judged from its heartbeat)."""

    SERVING = "serving"
    STOPPED = "stopped"
    LOST = "lost"  # declared dead by another host, which took its runs over


@dataclass(frozen=True)
class HostRow:
    """One scheduler instance, as the hosts table holds it."""

    instance: str
    host: str
    pid: int
    boot: str | None
    home: str | None
    version: str | None
    namespaces: tuple[str, ...]
    state: str
    started: datetime
    heartbeat: datetime  # the database's clock
    host_clock: datetime  # the host's clock at that heartbeat
    lease: float
    load: float | None = None
    runs: int = 0
    message: str | None = None

    @classmethod
    def from_row(cls, row: Any) -> HostRow:
        data = dict(row)
        data["namespaces"] = tuple(json.loads(data["namespaces"] or "[]"))
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["namespaces"] = list(self.namespaces)
        for key in ("started", "heartbeat", "host_clock"):
            data[key] = data[key].isoformat()
        return data


@dataclass(frozen=True)
class InFlight:
    """A run row in flight (``running`` or ``queued``) and who holds it."""

    id: int
    namespace: str
    job: str
    attempt: int
    status: str
    host: str | None
    instance: str | None


class ClusterRows:
    """The hosts table and the runs' holders, on a SqlStore's engine (``self.engine``,
    ``self._write()``, ``self.dialect``)."""

    engine: sa.Engine
    skew: float  # this host's clock minus the database's (seconds; the SqlStore's)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _write(self) -> Any:  # the SqlStore's write transaction
        raise NotImplementedError

    def clock(self) -> datetime:
        """The database's clock (PostgreSQL's ``now()``; SQLite and others: this host's)."""
        if self.dialect != "postgresql":
            return datetime.now(UTC)
        with self.engine.connect() as conn:
            return _aware(conn.execute(sa.text("SELECT now()")).scalar_one())

    def _now(self, conn: sa.Connection) -> datetime:
        if self.dialect != "postgresql":
            return datetime.now(UTC)
        return _aware(conn.execute(sa.text("SELECT now()")).scalar_one())

    def register_host(self, *, instance: str, host: str, pid: int, boot: str | None, home: str | None,
                      version: str | None, namespaces: Sequence[str], lease: float, started: datetime) -> datetime:
        """Add this instance's row (serving, heartbeat now); return the database's now. On
        PostgreSQL it measures this host's clock against the database's first (``skew``,
        which each guarded claim measures again), so the first round is decided on the
        database's clock (:mod:`supertask.scheduler.rounds`)."""
        with self._write() as conn:
            if self.dialect == "postgresql":
                before = time.time()
                db_now = _aware(conn.execute(sa.text("SELECT clock_timestamp()")).scalar_one())
                self.skew = (before + time.time()) / 2 - db_now.timestamp()
            now = self._now(conn)
            conn.execute(hosts_table.insert().values(
                instance=instance, host=host, pid=pid, boot=boot, home=home, version=version,
                namespaces=json.dumps(list(namespaces)), state=HostState.SERVING, started=started, heartbeat=now,
                host_clock=datetime.now(UTC), lease=lease, load=_load(), runs=0))
        return now

    def beat(self, instance: str, *, runs: int, namespaces: Sequence[str], lease: float) -> tuple[datetime, str | None]:
        """The heartbeat: ``heartbeat`` the database's now, ``host_clock`` this host's, the
        load and runs in flight; the row is serving again. Returns the database's now and
        the state the row had (``lost``: another host declared this one dead meanwhile;
        None: there was no row)."""
        with self._write() as conn:
            now = self._now(conn)
            state = conn.execute(sa.select(hosts_table.c.state).where(hosts_table.c.instance == instance)).scalar()
            values: dict[str, Any] = dict(heartbeat=now, host_clock=datetime.now(UTC), load=_load(), runs=runs,
                                          namespaces=json.dumps(list(namespaces)), lease=lease)
            if state != HostState.SERVING:
                values["state"] = HostState.SERVING
            conn.execute(hosts_table.update().where(hosts_table.c.instance == instance).values(**values))
        return now, state

    def stop_host(self, instance: str) -> None:
        """A clean stop: the row says ``stopped`` (its last heartbeat now)."""
        with self._write() as conn:
            conn.execute(hosts_table.update().where(hosts_table.c.instance == instance).values(
                state=HostState.STOPPED, heartbeat=self._now(conn), host_clock=datetime.now(UTC), runs=0))

    def hosts(self, *, instances: Iterable[str] | None = None, within: float | None = None) -> list[HostRow]:
        """Host rows, by host and start: those named, or every one serving or heard from
        within ``within`` seconds (all of them when None)."""
        query = sa.select(hosts_table).order_by(hosts_table.c.host, hosts_table.c.started)
        if instances is not None:
            query = query.where(hosts_table.c.instance.in_(list(instances)))
        with self.engine.connect() as conn:
            if within is not None:
                since = self._now(conn) - timedelta(seconds=within)
                query = query.where(sa.or_(hosts_table.c.state == HostState.SERVING, hosts_table.c.heartbeat >= since))
            return [HostRow.from_row(r) for r in conn.execute(query).mappings()]

    def runs_in_flight(self, namespaces: Iterable[str] | None = None, *, besides: str | None = None) -> list[InFlight]:
        """The runs ``running`` or ``queued`` (in ``namespaces``, or all; but those of the
        instance ``besides``), oldest first; not those for workers (supertask.workers.lost)."""
        cols = [runs_table.c[name] for name in ("id", "namespace", "job", "attempt", "status", "host", "instance")]
        query = sa.select(*cols).where(runs_table.c.status.in_(IN_FLIGHT), runs_table.c.labels.is_(None)
                                       ).order_by(runs_table.c.id)
        if namespaces is not None:
            query = query.where(runs_table.c.namespace.in_(list(namespaces)))
        if besides is not None:
            query = query.where(sa.or_(runs_table.c.instance.is_(None), runs_table.c.instance != besides))
        with self.engine.connect() as conn:
            return [InFlight(**r) for r in conn.execute(query).mappings()]

    def mark_runs_lost(self, runs: Sequence[tuple[InFlight, str]]) -> list[RunRecord]:
        """Each ``(run, message)``: the row becomes ``lost`` with the message, if it is
        still in flight and held by the same instance (one conditional UPDATE each, in
        one transaction). Returns the rows this call changed: of two hosts declaring the
        same run lost, one gets it (and retries it), the other nothing."""
        won: list[int] = []
        with self._write() as conn:
            now = datetime.now(UTC)
            for run, message in runs:
                holder = (runs_table.c.instance == run.instance if run.instance is not None
                          else runs_table.c.instance.is_(None))
                changed = conn.execute(runs_table.update().where(
                    runs_table.c.id == run.id, runs_table.c.status.in_(IN_FLIGHT), holder,
                ).values(status=RunStatus.LOST.value, finished=now, message=message)).rowcount
                if changed:
                    won.append(run.id)
            rows = conn.execute(sa.select(runs_table).where(runs_table.c.id.in_(won))
                                .order_by(runs_table.c.id)).mappings().all() if won else []
        return [RunRecord.from_row(r) for r in rows]

    def mark_host_lost(self, instance: str, message: str) -> bool:
        """The row of a host whose lease ran out says ``lost`` and why (if it was still
        serving: its own next heartbeat, should it come back, makes it serving again)."""
        with self._write() as conn:
            return bool(conn.execute(hosts_table.update().where(
                hosts_table.c.instance == instance, hosts_table.c.state == HostState.SERVING,
            ).values(state=HostState.LOST, message=message)).rowcount)

    def forget_hosts(self, older_than: float) -> int:
        """Delete the rows of hosts stopped or lost more than ``older_than`` seconds ago
        that hold no run in flight; return how many."""
        held = sa.select(runs_table.c.id).where(runs_table.c.instance == hosts_table.c.instance,
                                                runs_table.c.status.in_(IN_FLIGHT)).exists()
        with self._write() as conn:
            since = self._now(conn) - timedelta(seconds=older_than)
            return int(conn.execute(hosts_table.delete().where(
                hosts_table.c.state != HostState.SERVING, hosts_table.c.heartbeat < since, ~held)).rowcount)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _load() -> float | None:
    import os

    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
