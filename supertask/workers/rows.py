"""The workers' rows in the store (PostgreSQL only): a worker's own row and heartbeat,
its attempts' leases and ends, their log chunks, and the ``queued`` rows the scheduler
leaves to workers. Plain SQL on a :class:`~supertask.store.sql.SqlStore`'s engine; every
write two processes may race on is conditional, and times are the database's clock."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa

from supertask.model import RunStatus

UTC = timezone.utc


class WorkerState:
    """What a worker row says of itself (``up``/``down`` is judged from its heartbeat)."""

    SERVING = "serving"
    DRAINING = "draining"
    PAUSED = "paused"
    STOPPED = "stopped"
    LOST = "lost"  # its lease ran out and its attempts were declared lost


#: what an operator may ask of a worker (``wanted``)
WANTED = ("drain", "pause", "serve")

_LIVE = ("SELECT name, host, pid, labels, slots, running, state, wanted, heartbeat, lease, "
         "EXTRACT(EPOCH FROM now() - heartbeat) AS silent FROM supertask_workers "
         "WHERE state NOT IN ('stopped', 'lost') AND heartbeat >= now() - make_interval(secs => lease)")


def register(engine: sa.Engine, *, name: str, host: str, pid: int, version: str, labels: Mapping[str, str],
             slots: int, lease: float) -> str | None:
    """Add this worker's row (serving, heartbeat now). A row of that name that is live
    is another worker: returns what to say (nothing is written); a dead one is replaced
    (one of this machine whose process is gone counts as dead at once: a restart)."""
    from supertask.runs.recovery import pid_alive

    with engine.begin() as conn:
        old = conn.execute(sa.text(
            "SELECT host, pid, state, started, heartbeat >= now() - make_interval(secs => lease) AS live "
            "FROM supertask_workers WHERE name = :name FOR UPDATE"), {"name": name}).mappings().first()
        gone = old is not None and old["host"] == host and not pid_alive(old["pid"], old["started"])
        if old is not None and old["live"] and not gone and old["state"] not in (WorkerState.STOPPED,
                                                                                 WorkerState.LOST):
            return (f"a worker named {name!r} is up (host {old['host']}, pid {old['pid']}); "
                    "give this one another --name, or stop that one first")
        conn.execute(sa.text("DELETE FROM supertask_workers WHERE name = :name"), {"name": name})
        conn.execute(sa.text(
            "INSERT INTO supertask_workers (name, host, pid, version, labels, slots, running, state, started, "
            "heartbeat, lease) VALUES (:name, :host, :pid, :version, :labels, :slots, 0, 'serving', now(), "
            "now(), :lease)"), {"name": name, "host": host, "pid": pid, "version": version,
                                "labels": json.dumps(dict(labels), sort_keys=True), "slots": slots, "lease": lease})
    return None


def beat(engine: sa.Engine, name: str, *, state: str, running: int, telemetry: Mapping[str, Any],
         held: Sequence[int], lease: float) -> tuple[str | None, str | None, set[int]]:
    """One heartbeat, in one transaction: the row's heartbeat, state, runs in flight and
    telemetry; each attempt ``held`` has its lease renewed (``lease_until`` = now plus
    ``lease``) while it is still this worker's and ``running``. Returns the state the row
    had (``lost``: declared dead meanwhile; None: no row), what an operator wants of it
    (``wanted``, cleared here: the caller applies it) and the attempts renewed."""
    with engine.begin() as conn:
        row = conn.execute(sa.text("SELECT state, wanted FROM supertask_workers WHERE name = :name FOR UPDATE"),
                           {"name": name}).first()
        conn.execute(sa.text(
            "UPDATE supertask_workers SET heartbeat = now(), state = :state, running = :running, "
            "telemetry = :telemetry, wanted = NULL, lease = :lease WHERE name = :name"),
            {"name": name, "state": state, "running": running, "telemetry": json.dumps(dict(telemetry)),
             "lease": lease})
        renewed = renew(conn, name, held, lease)
    return (row[0], row[1], renewed) if row is not None else (None, None, renewed)


def set_state(engine: sa.Engine, name: str, state: str) -> None:
    """Record the state a worker took on (an operator's drain, pause or resume) at once."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE supertask_workers SET state = :state WHERE name = :name AND state <> 'lost'"),
                     {"name": name, "state": state})


#: a running attempt's ``message`` while ``jobs kill`` asks its worker to end it
KILL_ASKED = "kill requested (supertask jobs kill): its worker ends it at its next heartbeat"


def renew(conn: Any, name: str, held: Sequence[int], lease: float) -> set[int]:
    """Renew the leases of the attempts ``held`` that are still this worker's; their ids
    (negative: ``jobs kill`` asks for that attempt's end)."""
    if not held:
        return set()
    return {int(r[0]) * (-1 if r[1] == KILL_ASKED else 1) for r in conn.execute(sa.text(
        "UPDATE supertask_runs SET lease_until = now() + make_interval(secs => :lease) "
        "WHERE id = ANY(:ids) AND worker = :name AND status = 'running' RETURNING id, message"),
        {"ids": list(held), "name": name, "lease": lease})}


def ask_kill(engine: sa.Engine, run_id: int) -> bool:
    """``jobs kill`` of a run on a worker: its row asks the worker (:data:`KILL_ASKED`)."""
    with engine.begin() as conn:
        return bool(conn.execute(sa.text(
            "UPDATE supertask_runs SET message = :asked WHERE id = :id AND status = 'running' "
            "AND worker IS NOT NULL"), {"id": run_id, "asked": KILL_ASKED}).rowcount)


def stop(engine: sa.Engine, name: str) -> None:
    """A clean stop: the row says ``stopped`` (its last heartbeat now)."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE supertask_workers SET state = 'stopped', heartbeat = now(), running = 0 "
                             "WHERE name = :name"), {"name": name})


def end(engine: sa.Engine, name: str, run_id: int, values: Mapping[str, Any],
        retry: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """Write how an attempt ended, only while its row is ``running`` and held by this
    worker; with ``retry`` (its delay, in seconds), the fire's next attempt is queued in
    the same transaction (same labels and priority; not before the delay). Returns None
    when written, else the row as it is now (a late write: the attempt was declared lost)."""
    params = {**values, "id": run_id, "name": name}
    sets = ", ".join(f"{key} = :{key}" for key in values)
    with engine.begin() as conn:
        done = conn.execute(sa.text(
            f"UPDATE supertask_runs SET {sets}, finished = now() WHERE id = :id AND worker = :name "
            "AND status = 'running' RETURNING namespace, job, scheduled, attempt, labels, priority"), params).first()
        if done is None:
            row = conn.execute(sa.text("SELECT status, worker, message FROM supertask_runs WHERE id = :id"),
                               {"id": run_id}).mappings().first()
            return dict(row) if row is not None else {"status": "gone"}
        if retry is not None:
            queue_retry(conn, dict(done._mapping), retry["delay"], retry.get("message"))
    return None


def queue_retry(conn: Any, run: Mapping[str, Any], delay: float, message: str | None) -> int | None:
    """The fire's next attempt as a ``queued`` row for workers (same labels and priority),
    not taken before ``delay`` seconds (its ``lease_until``); None when it is there already."""
    from supertask.workers.wake import announce

    announce(conn, f"EXTRACT(EPOCH FROM now()) + {float(delay)}")
    return conn.execute(sa.text(
        "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, status, labels, priority, "
        "lease_until, message) VALUES (:namespace, :job, :attempt, 'retry', :scheduled, 'queued', :labels, "
        ":priority, now() + make_interval(secs => :delay), :message) "
        "ON CONFLICT ON CONSTRAINT supertask_runs_one_per_fire DO NOTHING RETURNING id"),
        {**run, "attempt": run["attempt"] + 1, "delay": delay, "message": message}).scalar()


def live_labels(conn: Any) -> list[dict[str, str]]:
    """The labels of the live workers that take runs (serving, heartbeat within lease)."""
    return [json.loads(r["labels"]) for r in conn.execute(sa.text(_LIVE)).mappings()
            if r["state"] == WorkerState.SERVING and r["wanted"] not in ("drain", "pause")]


def live_workers(engine: sa.Engine) -> list[dict[str, Any]]:
    """The live workers' rows (any state but stopped and lost, heartbeat within lease)."""
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.text(_LIVE)).mappings()]


def append_chunks(engine: sa.Engine, rows: Iterable[tuple[int, int, str]]) -> None:
    """Log chunks ``(run_id, seq, data)``, in one transaction (a chunk there already is kept)."""
    params = [{"run_id": r, "seq": s, "data": d} for r, s, d in rows]
    if not params:
        return
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO supertask_log_chunks (run_id, seq, at, data) VALUES "
                             "(:run_id, :seq, now(), :data) ON CONFLICT DO NOTHING"), params)


def chunks(engine: sa.Engine, run_id: int, after: int = -1) -> list[tuple[int, str]]:
    """A run's log chunks after ``seq`` ``after``, in order: ``(seq, data)``."""
    with engine.connect() as conn:
        return [(int(s), d) for s, d in conn.execute(sa.text(
            "SELECT seq, data FROM supertask_log_chunks WHERE run_id = :id AND seq > :after ORDER BY seq"),
            {"id": run_id, "after": after})]


def now(engine: sa.Engine) -> datetime:
    with engine.connect() as conn:
        value = conn.execute(sa.text("SELECT now()")).scalar_one()
    return value if value.tzinfo else value.replace(tzinfo=UTC)


FINISHED = tuple(s.value for s in RunStatus if s.finished)
