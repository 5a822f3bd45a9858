"""The listings a person reads, on SQLAlchemy: namespaces with their job counts, and the
fields of each job's definition that ``list-jobs`` shows, picked out by the database."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from supertask.store.tables import jobs_table, namespaces_table

#: The keys of a job's definition that ``list-jobs`` shows (:func:`definitions`).
LISTED = ("when", "run", "steps", "description", "enabled", "timezone")


def namespaces(engine: sa.Engine) -> list[dict[str, Any]]:
    """Each namespace's row and its number of jobs, by name."""
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
    with engine.connect() as conn:
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


def definitions(engine: sa.Engine, namespace: str) -> list[tuple[str, dict[str, Any]]]:
    """``(name, the keys of its definition a listing shows)`` of every job of a
    namespace: ``when``, ``run``, ``steps``, ``description``, ``enabled``, ``timezone``
    (``Job.to_dict`` values; a null one left out, as a missing one). SQLite and
    PostgreSQL pick them out with their JSON functions (parsing 1,000 whole
    definitions in Python was half of a live ``list-jobs`` call); other databases, or a
    SQLite without JSON functions, send the definitions and Python parses them."""
    col, dialect = jobs_table.c.definition, engine.dialect.name
    if dialect == "sqlite":  # one JSON array of the values: one parse of each definition
        columns: list[Any] = [sa.func.json_extract(col, *(f"$.{key}" for key in LISTED))]
    elif dialect == "postgresql":
        columns = [sa.cast(col, sa.JSON)[key] for key in LISTED]
    else:
        columns = [col]
    rows = _job_columns(engine, namespace, columns)
    if rows is None:
        dialect, rows = "", _job_columns(engine, namespace, [col]) or []
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


def _job_columns(engine: sa.Engine, namespace: str, columns: list[Any]) -> list[Any] | None:
    """``(name, *columns)`` of each job of a namespace; None when the database has no
    such function (an SQLite built without JSON)."""
    query = sa.select(jobs_table.c.name, *columns).where(jobs_table.c.namespace == namespace)
    try:
        with engine.connect() as conn:
            return list(conn.execute(query).all())
    except sa.exc.OperationalError:
        if columns == [jobs_table.c.definition]:
            raise
        return None
