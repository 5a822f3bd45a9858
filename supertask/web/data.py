"""What the dashboard shows, as plain data: the JSON of ``/api/v1/...`` and what the
pages render. Each listing has the shape of the CLI's ``--json`` for the same thing
(``list-jobs``, ``history``, ``hosts``, ``list-namespaces``, ``logs``), with keys added
for the page (a schedule in words, the next fires, the last outcome), never renamed.

Every function takes a :class:`Viewer`: the namespaces its token sees (all without
tokens). A job or run of a namespace it does not see is not found (404), as if absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from supertask.errors import JobNotFound, RunNotFound, UsageError
from supertask.model import RunStatus
from supertask.store.access import EVERY, Scope, Token
from supertask.store.base import Store

UTC = timezone.utc
MAX_PAGE = 500
MAX_JOBS = 1000
STATUSES = tuple(s.value for s in RunStatus)


@dataclass(frozen=True)
class Viewer:
    """Who is asking: a token, or (no token in the store) the server's own user."""

    who: str
    source: str
    token: Token | None = None

    def sees(self, namespace: str) -> bool:
        return self.token is None or self.token.sees(namespace)

    def may(self, scope: Scope) -> bool:
        return self.token is None or self.token.scope.allows(scope)

    def scope(self, known: list[str]) -> list[str] | None:
        """The namespaces a query keeps to: None (every one) without a token or with a
        token for ``*``, else those of ``known`` it sees."""
        return None if self.token is None or EVERY in self.token.namespaces else known

    def namespaces(self, st: Store) -> list[str]:
        return [r["name"] for r in st.list_namespaces() if self.sees(r["name"])]


def namespaces(st: Store, viewer: Viewer) -> list[dict[str, Any]]:
    return [r for r in st.list_namespaces() if viewer.sees(r["name"])]


def _check_ns(viewer: Viewer, namespace: str | None, known: list[str]) -> None:
    if namespace is not None and namespace not in known:
        raise LookupError(f"no namespace {namespace!r}" + ("" if viewer.token is None else " this token sees"))


def describe(when: str, zone: str | None) -> tuple[str, list[str]]:
    """A schedule in words and its next three fires (ISO, in the job's zone)."""
    from supertask.schedules.trigger import parse_when, upcoming

    try:
        schedule = parse_when(when, zone)
        fires = upcoming(schedule, datetime.now(schedule.timezone), 3)
        return schedule.describe(), [f.isoformat() for f in fires]
    except Exception as exc:  # a definition this version cannot read: shown, not fatal
        return f"({exc})", []


def jobs(st: Store, viewer: Viewer, namespace: str | None = None, *, search: str | None = None,
         after: str | None = None, limit: int = MAX_JOBS) -> list[dict[str, Any]]:
    """``list-jobs --json`` rows of the namespaces seen (or one), by namespace and name,
    each with ``schedule`` (in words), ``fires`` (the next three, in the job's zone) and
    ``last`` (its newest run); a page of ``limit`` from after ``after`` (``NS/NAME``)."""
    known = viewer.namespaces(st)
    _check_ns(viewer, namespace, known)
    if not 1 <= limit <= MAX_JOBS:
        raise UsageError(f"limit {limit}: between 1 and {MAX_JOBS}")
    start = None
    if after:
        ns, sep, name = after.partition("/")
        if not sep:
            raise UsageError(f"after={after!r}: expected NAMESPACE/JOB, the last one of the page before")
        start = (ns, name)
    scope = [namespace] if namespace else viewer.scope(known)
    page = st.jobs_page(scope, search=search, after=start, limit=limit)
    last = st.last_runs([(s.namespace, s.job.name) for s in page])
    rows: list[dict[str, Any]] = []
    for stored in page:
        row = stored.to_json()
        row["schedule"], row["fires"] = describe(stored.job.when, stored.job.timezone)
        run = last.get((stored.namespace, stored.job.name))
        row["last"] = None if run is None else {"id": run.id, "status": str(run.status), "exit_code": run.exit_code,
                                                 "started": run.started.isoformat() if run.started else None}
        rows.append(row)
    return rows


def job(st: Store, viewer: Viewer, namespace: str, name: str) -> dict[str, Any]:
    if not viewer.sees(namespace):
        raise JobNotFound(namespace, name)
    stored = st.get_job(namespace, name)
    row = stored.to_json()
    row["schedule"], row["fires"] = describe(stored.job.when, stored.job.timezone)
    row["runs"] = [r.to_json() for r in st.history(namespace, name, limit=20)]
    return row


def moment(name: str, text: str | None) -> datetime | None:
    """A ``since``/``until`` filter: ISO 8601 (UTC when it names no zone), or an age
    back from now (``24h``, ``7d``)."""
    if not text:
        return None
    from supertask.units import parse_duration

    try:
        value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(text))
    except ValueError:
        raise UsageError(f"{name}={text!r}: give an ISO time (2026-12-05T10:00) or an age (24h, 7d)") from None


def upcoming(st: Store, viewer: Viewer, hours: float = 24) -> list[dict[str, Any]]:
    """The fires of the next ``hours`` (at most 24 * 7), soonest first: namespace, job,
    at (ISO in the job's zone), the schedule in words (at most 500 jobs, 50 fires each)."""
    from supertask.schedules.trigger import parse_when
    from supertask.schedules.trigger import upcoming as fires_after

    if not 0 < hours <= 24 * 7:
        raise UsageError(f"hours={hours:g}: between 0 and {24 * 7}")
    known = viewer.namespaces(st)
    now = datetime.now(UTC)
    end = now + timedelta(hours=hours)
    rows: list[dict[str, Any]] = []
    for stored in st.due_within(viewer.scope(known), end.timestamp()):
        job = stored.job
        try:
            schedule = parse_when(job.when, job.timezone)
            fires = [f for f in fires_after(schedule, now.astimezone(schedule.timezone), 50) if f <= end]
            words = schedule.describe()
        except Exception:
            continue
        rows += [{"namespace": stored.namespace, "job": job.name, "at": f.isoformat(), "timezone": job.timezone,
                  "when": job.when, "schedule": words} for f in fires]
    rows.sort(key=lambda r: (datetime.fromisoformat(str(r["at"])), str(r["namespace"]), str(r["job"])))
    return rows


def _run_scope(st: Store, viewer: Viewer, namespace: str | None, status: str | None) -> tuple[Any, list[str]]:
    """The namespaces (None: every one) and statuses a runs filter names, checked."""
    known = viewer.namespaces(st)
    _check_ns(viewer, namespace, known)
    statuses = [s for s in (status or "").split(",") if s]
    wrong = [s for s in statuses if s not in STATUSES]
    if wrong:
        raise UsageError(f"status {', '.join(wrong)!r}: use {', '.join(STATUSES)} (comma-separated)")
    return ([namespace] if namespace else viewer.scope(known)), statuses


def runs(st: Store, viewer: Viewer, *, namespace: str | None = None, job: str | None = None,
         status: str | None = None, before: int | None = None, limit: int = 50, search: str | None = None,
         since: str | None = None, until: str | None = None) -> list[dict[str, Any]]:
    """``history --json`` rows, newest first, filtered; ``before``: the next page's start."""
    scope, statuses = _run_scope(st, viewer, namespace, status)
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit {limit}: between 1 and {MAX_PAGE}")
    start, end = span(since, until)
    return [r.to_json() for r in st.runs_page(scope, job=job, statuses=statuses, before_id=before, limit=limit,
                                              search=search, since=start, until=end)]


#: the outcomes a timeline's slice counts, each a colour: the statuses of each
OUTCOMES = {"succeeded": ("succeeded",), "failed": ("failed", "timed-out", "killed", "lost"),
            "running": ("running", "queued"), "skipped": ("skipped",)}
TIMELINE_HOURS = 24
MAX_BUCKETS = 500


def timeline(st: Store, viewer: Viewer, *, namespace: str | None = None, job: str | None = None,
             status: str | None = None, search: str | None = None, since: str | None = None,
             until: str | None = None, buckets: int = 60) -> dict[str, Any]:
    """The runs a filter selects over its whole time range, counted by the store in
    ``buckets`` equal slices of their scheduled time, by outcome: ``{from, to, total,
    most, buckets: [{from, to, total, succeeded, failed, running, skipped}]}``. Without
    ``since`` the range is the :data:`TIMELINE_HOURS` before ``until`` (or now)."""
    scope, statuses = _run_scope(st, viewer, namespace, status)
    if not 1 <= buckets <= MAX_BUCKETS:
        raise UsageError(f"buckets {buckets}: between 1 and {MAX_BUCKETS}")
    start, end = span(since, until)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=TIMELINE_HOURS)
    if start >= end:
        raise UsageError(f"since={since!r} is not before now: nothing could match")
    width = (end - start) / buckets
    slices: list[dict[str, Any]] = [{"from": (start + width * i).isoformat(), "to": (start + width * (i + 1)).isoformat(), "total": 0,
               **{k: 0 for k in OUTCOMES}} for i in range(buckets)]
    outcome = {s: k for k, group in OUTCOMES.items() for s in group}
    for n, state, count in st.runs_timeline(scope, since=start, until=end, buckets=buckets, job=job,
                                            statuses=statuses, search=search):
        slices[n][outcome.get(state, "skipped")] += count
        slices[n]["total"] += count
    return {"from": start.isoformat(), "to": end.isoformat(), "total": sum(b["total"] for b in slices),
            "most": max(b["total"] for b in slices), "buckets": slices}


def span(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """The ``since`` and ``until`` filters as times; one that ends before it starts is bad input."""
    start, end = moment("since", since), moment("until", until)
    if start is not None and end is not None and start >= end:
        raise UsageError(f"since={since!r} is not before until={until!r}: nothing could match")
    return start, end


def _run(st: Store, viewer: Viewer, run_id: int) -> Any:
    record = st.get_run(run_id)
    if not viewer.sees(record.namespace):
        raise RunNotFound(run_id)
    return record


def run(st: Store, viewer: Viewer, run_id: int) -> dict[str, Any]:
    """A run (as ``history --json``) and every attempt of its fire."""
    record = _run(st, viewer, run_id)
    attempts = [r.to_json() for r in st.history(record.namespace, record.job, limit=200)
                if r.scheduled == record.scheduled]
    return {"run": record.to_json(), "attempts": sorted(attempts, key=lambda r: r["attempt"])}


def read_log(st: Store, viewer: Viewer, run_id: int, offset: int = 0) -> dict[str, Any]:
    """Up to 64 KiB of a run's log from byte ``offset`` (the shape the control endpoint's
    ``read_log`` has); ``finished`` once the run ended and all of it was read."""
    from supertask.control.readout import log_chunk

    return log_chunk(_run(st, viewer, run_id), offset, tail_when_away=True)


def overview(st: Store, viewer: Viewer) -> dict[str, Any]:
    """Runs in flight (with elapsed seconds), failures in the last 24 h, the hosts."""
    from supertask.cli.cluster import RECENT, host_rows

    known = viewer.namespaces(st)
    scope = viewer.scope(known)
    now = datetime.now(UTC)
    flying = st.runs_page(scope, statuses=(RunStatus.RUNNING.value, RunStatus.QUEUED.value), limit=MAX_PAGE)
    in_flight = []
    for r in flying:
        row = r.to_json()
        row["elapsed"] = round((now - r.started).total_seconds(), 1) if r.started else None
        in_flight.append(row)
    failures = [r.to_json() for r in st.failures_since(scope, now - timedelta(hours=24))]
    hosts = [h for h in host_rows(st, within=RECENT)
             if viewer.token is None or any(viewer.sees(ns) for ns in h["namespaces"])]
    return {"namespaces": known, "in_flight": in_flight, "failures_24h": failures, "hosts": hosts,
            "jobs": sum(1 for ns in known for _ in st.job_names(ns))}


def audit(st: Store, viewer: Viewer, *, namespace: str | None = None, job: str | None = None,
          before: int | None = None, limit: int = 50) -> list[dict[str, Any]]:
    known = viewer.namespaces(st)
    _check_ns(viewer, namespace, known)
    if not 1 <= limit <= MAX_PAGE:
        raise UsageError(f"limit {limit}: between 1 and {MAX_PAGE}")
    # a token sees the rows of its namespaces only, never those of no namespace (tokens made, revoked)
    scope = [namespace] if namespace else (known if viewer.token is not None else None)
    return st.audit_rows(scope, job=job, before_id=before, limit=limit)
