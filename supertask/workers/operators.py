"""What an operator sees of the workers and asks of them (``supertask workers``,
docs/workers.md): their rows judged on the database's clock, and ``drain``, ``pause``
and ``resume`` written as the row's ``wanted``, which the worker applies at its next
heartbeat and clears. Every such request is an audit row (who, from where, before, after).

A worker is ``up`` while its last heartbeat is within its lease, as a scheduler host is
(:mod:`supertask.cluster.leases`); ``state`` is what the row says (``serving``,
``draining``, ``paused``, ``stopped``, ``lost``), or ``down`` for one that missed its lease
and was not yet declared lost.
"""

from __future__ import annotations

import enum
import json
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from supertask.errors import SupertaskError, UsageError
from supertask.store.tables import runs_table, workers_table

#: ``supertask workers`` leaves out workers stopped or lost longer ago than this (seconds), but with --all.
RECENT = 86400.0
#: Rows recorded as ended; all the others are live (or down, by their heartbeat).
ENDED = ("stopped", "lost")


class Wanted(str, enum.Enum):
    """What an operator asks of a worker (the row's ``wanted``)."""

    DRAIN = "drain"  # finish the runs in flight, take no more (then stay, draining)
    PAUSE = "pause"  # take no more runs for now; the runs in flight go on
    SERVE = "serve"  # resume taking runs (after a pause or a drain)


#: The word for each request in the audit and on the terminal.
ACTIONS = {Wanted.DRAIN: "worker drain", Wanted.PAUSE: "worker pause", Wanted.SERVE: "worker resume"}


class WorkerGone(SupertaskError, LookupError):
    """The worker named has stopped or was declared lost: there is nothing to ask of it."""

    exit_code = 1


def worker_rows(st: Any, *, within: float | None = None) -> list[dict[str, Any]]:
    """Each worker's row as plain data (by host, then name), with what is judged from it at
    the database's now: ``up``, ``state``, ``heartbeat_age`` (seconds) and ``in_flight``: its
    attempts ``running`` as the runs table has them. ``within``: leave out workers stopped
    or lost longer ago than that many seconds."""
    now = st.clock()
    query = sa.select(workers_table).order_by(workers_table.c.host, workers_table.c.name)
    if within is not None:
        query = query.where(sa.or_(workers_table.c.state.notin_(ENDED),
                                   workers_table.c.heartbeat >= now - timedelta(seconds=within)))
    held_query = (sa.select(runs_table.c.worker, sa.func.count()).where(
        runs_table.c.status == "running", runs_table.c.worker.is_not(None)).group_by(runs_table.c.worker))
    with st.engine.connect() as conn:
        rows = conn.execute(query).mappings().all()
        held = Counter({name: count for name, count in conn.execute(held_query)})
    return [judged(dict(row), now, held.get(row["name"], 0)) for row in rows]


def judged(row: dict[str, Any], now: datetime, in_flight: int) -> dict[str, Any]:
    """One worker row as ``workers --json`` gives it (see :func:`worker_rows`)."""
    heartbeat = row["heartbeat"]
    age = max(0.0, (now - heartbeat).total_seconds())
    recorded = row["state"]
    up = recorded not in ENDED and age <= float(row["lease"])
    state = recorded if recorded in ENDED or up else "down"
    out = {key: row.get(key) for key in ("name", "host", "pid", "version", "slots", "running", "wanted", "lease",
                                         "message")}
    out.update(labels=_json(row.get("labels")) or {}, telemetry=_json(row.get("telemetry")) or {},
               recorded_state=recorded, state=state, up=up, in_flight=in_flight, heartbeat_age=round(age, 3),
               started=row["started"].isoformat() if row.get("started") else None, heartbeat=heartbeat.isoformat())
    return out


def ask(st: Any, name: str, wanted: Wanted, *, who: str, source: str) -> dict[str, Any]:
    """Set the worker's ``wanted`` (one conditional UPDATE) and write the audit row;
    return its row as :func:`judged` gives it. An unknown name is a UsageError listing
    the known ones; a stopped or lost worker is refused (:class:`WorkerGone`)."""
    c = workers_table.c
    with st.engine.begin() as conn:
        row = conn.execute(sa.select(workers_table).where(c.name == name).with_for_update()).mappings().first()
        if row is None:
            known = [r[0] for r in conn.execute(sa.select(c.name).where(c.state.notin_(ENDED)).order_by(c.name))]
            listed = f"workers: {', '.join(known[:20])}{', ...' if len(known) > 20 else ''}" if known else \
                "no live workers"
            raise UsageError(f"no worker named {name!r} in the store ({listed}); `supertask workers` lists them")
        if row["state"] in ENDED:
            raise WorkerGone(f"worker {name!r} is {row['state']}: nothing to {wanted.value.replace('serve', 'resume')}; "
                             "`supertask workers` lists the live ones")
        conn.execute(workers_table.update().where(c.name == name).values(wanted=wanted.value))
    st.audit(who=who, source=source, action=ACTIONS[wanted], namespace=None, job=None,
             before={"worker": name, "state": row["state"], "wanted": row["wanted"]},
             after={"worker": name, "wanted": wanted.value})
    after = dict(row)
    after["wanted"] = wanted.value
    return judged(after, st.clock(), 0)


def queued_reasons(st: Any, namespaces: Any = None) -> list[dict[str, Any]]:
    """The runs ``queued`` (of ``namespaces``, or all), counted by namespace and why they
    wait (the row's message, ``no live worker has gpu=1``; empty: waiting their turn or
    their time), most first: what ``status`` and the metrics show."""
    c = runs_table.c
    reason = sa.func.coalesce(c.message, "")
    query = (sa.select(c.namespace, reason.label("reason"), sa.func.count().label("runs"))
             .where(c.status == "queued").group_by(c.namespace, reason))
    if namespaces is not None:
        query = query.where(c.namespace.in_(list(namespaces)))
    with st.engine.connect() as conn:
        found = [{"namespace": ns, "reason": why, "runs": int(n)} for ns, why, n in conn.execute(query)]
    return sorted(found, key=lambda r: (-r["runs"], r["namespace"], r["reason"]))


def print_queued(queued: list[dict[str, Any]], echo: Any) -> None:
    """One line for the queued runs and why they wait (nothing when none is queued)."""
    if not queued:
        return
    total = sum(r["runs"] for r in queued)
    parts = [f"{r['runs']} in {r['namespace']}: {r['reason'] or 'waiting their turn or their time'}" for r in queued]
    echo(f"queued {total} run(s): " + "; ".join(parts[:10]) + ("; ..." if len(parts) > 10 else ""))


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``status --store``'s part on workers: how many are up and down, their slots, the
    free ones (slots of serving workers that are up, less their runs in flight)."""
    live = [r for r in rows if r["state"] not in ENDED]
    up = [r for r in live if r["up"]]
    return {"workers_up": len(up), "workers_down": len(live) - len(up),
            "slots": sum(r["slots"] for r in up),
            "free_slots": sum(max(0, r["slots"] - r["in_flight"]) for r in up if r["recorded_state"] == "serving")}


def _json(text: Any) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None
