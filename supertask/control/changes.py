"""What a live change did, said as one log event: who, which job, before and after.

Every change made through the control endpoint (``jobs pause``, ``resume``, ``edit``,
``reschedule``, ``add``, ``remove``) is logged by the scheduler as one event
(``job paused``, ``job resumed``, ``job edited``, ``job rescheduled``, ``job added``,
``job removed``) with

- ``by``: who asked: the Unix user of the peer on the control socket (``SO_PEERCRED``),
  or ``token`` for a TCP peer that gave the control token;
- ``namespace`` and ``job``;
- ``before`` and ``after``: the keys that changed, each with its old and new value (a
  new job: what it sets besides the defaults; a removed one: what it had).

Values of ``env:`` never appear: a variable is named, its value shown as ``***``.
"""

from __future__ import annotations

from typing import Any

from supertask.model import Job

HIDDEN = "***"
#: the keys whose change alone is a reschedule
SCHEDULE_KEYS = frozenset({"when", "timezone"})


def _shown(key: str, value: Any) -> Any:
    if key == "env" and isinstance(value, dict):
        return {name: HIDDEN for name in sorted(value)}
    return value


def plain(job: Job) -> dict[str, Any]:
    """What ``job`` sets besides the defaults (its name, schedule and run always)."""
    data = job.to_dict()
    base = Job(name=job.name, when=job.when).to_dict()
    out = {key: _shown(key, value) for key, value in data.items()
           if key in ("name", "when") or value != base.get(key)}
    return out


def difference(before: Job, after: Job) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keys whose value differs, as ``(before, after)`` (env values hidden; an env
    change names the variables added, removed or given another value)."""
    old, new = before.to_dict(), after.to_dict()
    was: dict[str, Any] = {}
    now: dict[str, Any] = {}
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if key == "env":
            a, b = a or {}, b or {}
            names = sorted(n for n in set(a) | set(b) if a.get(n) != b.get(n))
            was[key] = {n: HIDDEN for n in names if n in a}
            now[key] = {n: HIDDEN for n in names if n in b}
            continue
        was[key], now[key] = a, b
    return was, now


def edit_event(before: dict[str, Any], after: dict[str, Any]) -> str:
    """``job rescheduled`` when only the schedule changed, else ``job edited``."""
    changed = set(before) | set(after)
    return "job rescheduled" if changed and changed <= SCHEDULE_KEYS else "job edited"


#: a sync that adds, changes or removes more jobs than this writes one audit row for each
#: kind (how many, the first names) instead of one per job (the store keeps the
#: definitions a sync replaces up to the same count: statements.BEFORE_KEPT)
SYNC_ROWS = 50


def sync_audit(namespace: str, jobs: dict[str, Job], report: Any, who: str, source: str) -> list[dict[str, Any]]:
    """The audit rows of a timetable sync (``report``: a SyncReport): one per job added
    (what it sets), changed (the keys that differ, before and after) or removed (what it
    set); or one per kind for big syncs."""
    rows: list[dict[str, Any]] = []
    stored = report.before or {}
    for kind, names in (("added", report.added), ("changed", report.changed), ("removed", report.removed)):
        base = {"who": who, "source": source, "action": f"sync: {kind}", "namespace": namespace}
        if len(names) > SYNC_ROWS:
            rows.append({**base, "job": None, "after": {"jobs": len(names), "first": sorted(names)[:20]}})
            continue
        for name in names:
            job, old = jobs.get(name), _stored_job(stored.get(name))
            before, after = None, plain(job) if job is not None and kind != "removed" else None
            if kind == "changed" and job is not None and old is not None:
                before, after = difference(old, job)
            elif kind == "removed" and old is not None:
                before = plain(old)
            rows.append({**base, "job": name, "before": before, "after": after})
    return rows


def _stored_job(text: str | None) -> Job | None:
    """A job from its stored definition; None when there is none or this version cannot read it."""
    if text is None:
        return None
    import json

    try:
        return Job.from_dict(json.loads(text))
    except Exception:
        return None


def audit(store: Any, who: str, source: str, action: str, namespace: str | None, job: str | None,
          before: Any, after: Any) -> None:
    """One audit row of a change; a store that cannot take it is logged, not raised (the
    change itself has been made). A store known to be away is not waited on (a write
    into a cut network would hold the reply for its timeouts): the row is logged instead."""
    from supertask.log import get_logger

    health = getattr(store, "health", None)
    try:
        if health is not None and not getattr(health, "up", True):
            raise ConnectionError("the store is away")
        store.audit(who=who, source=source, action=action, namespace=namespace, job=job, before=before, after=after)
    except Exception as exc:
        get_logger("supertask.control.live").warning("audit row not written", action=action, by=who, source=source,
                                                     namespace=namespace, job=job, before=before, after=after,
                                                     error=str(exc))
