"""What the dashboard and the API change: run now, pause, resume. Each goes through the
store as ``supertask jobs ... --ns NS`` does with no scheduler to talk to
(:mod:`supertask.scheduler.edits`, ``queue_run``): every scheduler serving the
namespace, on any host, follows it within about a second. Each writes an audit row."""

from __future__ import annotations

from typing import Any

from supertask.errors import JobNotFound
from supertask.store.access import Scope
from supertask.store.base import Store
from supertask.web.data import Viewer


class Forbidden(Exception):
    """The viewer's token sees the job but its scope does not allow the action (403)."""


def _allowed(viewer: Viewer, namespace: str, name: str, scope: Scope) -> None:
    if not viewer.sees(namespace):
        raise JobNotFound(namespace, name)
    if not viewer.may(scope):
        assert viewer.token is not None
        raise Forbidden(f"token {viewer.token.name!r} has scope {viewer.token.scope.value}; "
                        f"this needs {scope.value} or more")


def trigger(st: Store, viewer: Viewer, namespace: str, name: str) -> dict[str, Any]:
    """A manual run queued in the store; a scheduler serving the namespace takes it up."""
    _allowed(viewer, namespace, name, Scope.RUN)
    run_id = st.queue_run(namespace, name, f"triggered by {viewer.who} ({viewer.source}); waiting for a "
                                           f"scheduler serving {namespace} to take it up")
    st.audit(who=viewer.who, source=viewer.source, action="triggered", namespace=namespace, job=name,
             before=None, after={"run_id": run_id})
    return {"namespace": namespace, "job": name, "run_id": run_id, "status": "queued"}


def set_paused(st: Store, viewer: Viewer, namespace: str, name: str, paused: bool) -> dict[str, Any]:
    from supertask.scheduler import edits

    _allowed(viewer, namespace, name, Scope.RUN)
    was = st.get_job(namespace, name).paused
    row = edits.set_paused(st, namespace, name, paused).to_json()
    st.audit(who=viewer.who, source=viewer.source, action="paused" if paused else "resumed", namespace=namespace,
             job=name, before={"paused": was}, after={"paused": paused})
    return row  # type: ignore[no-any-return]


def edit(st: Store, viewer: Viewer, namespace: str, name: str, values: Any) -> dict[str, Any]:
    """Change timetable keys of a job (``{"when": "0 4 * * *", "retries": "3"}``, each
    value as ``jobs edit --set KEY=VALUE`` takes it), validated as a timetable entry."""
    from supertask.control.changes import difference, edit_event
    from supertask.control.live import edited, parse_assignments
    from supertask.errors import UsageError
    from supertask.scheduler import edits

    _allowed(viewer, namespace, name, Scope.ADMIN)
    if not isinstance(values, dict) or not values or not all(isinstance(k, str) for k in values):
        raise UsageError('expected {"set": {"KEY": "VALUE", ...}}, e.g. {"set": {"when": "0 4 * * *"}}')
    assignments = tuple(f"{key}={'' if value is None else value}" for key, value in values.items())
    old = st.get_job(namespace, name).job
    new = edited(old, name, parse_assignments(assignments))
    row = edits.put_job(st, namespace, new).to_json()
    before, after = difference(old, new)
    st.audit(who=viewer.who, source=viewer.source, action=edit_event(before, after).removeprefix("job "),
             namespace=namespace, job=name, before=before, after=after)
    return row  # type: ignore[no-any-return]


class Conflict(Exception):
    """The action cannot be done here (409): a run this server's scheduler does not run."""


#: what a job's action button or API call may ask for
ACTIONS = ("trigger", "pause", "resume", "edit")


def perform(st: Store, viewer: Viewer, namespace: str, name: str, action: str, values: Any = None) -> dict[str, Any]:
    """One of :data:`ACTIONS` on a job (``values``: what ``edit`` sets), for the pages
    and the API alike; LookupError for another word."""
    if action == "trigger":
        return trigger(st, viewer, namespace, name)
    if action in ("pause", "resume"):
        return set_paused(st, viewer, namespace, name, action == "pause")
    if action == "edit":
        return edit(st, viewer, namespace, name, values)
    raise LookupError(f"no action {action!r}: use {', '.join(ACTIONS)}")


class SchedulerLink:
    """The scheduler beside a dashboard served by ``run --http`` (the dashboard's own
    process), reached through its control socket: it ends the runs it runs."""

    def __init__(self, path: str):
        self.path = path

    def kill_run(self, run_id: int, who: str, source: str) -> dict[str, Any]:
        """End a run of that scheduler; it writes the audit row, naming ``who`` and ``source``."""
        from pathlib import Path

        from supertask.control.client import open_unix

        with open_unix(Path(self.path)) as client:
            return client.call("kill_run", run_id, who, source)  # type: ignore[no-any-return]


def kill(st: Store, viewer: Viewer, service: SchedulerLink | None, run_id: int) -> dict[str, Any]:
    """End a run in flight (TERM, then KILL after its kill_grace), when the scheduler
    beside this server (``run --http``) runs it; ``supertask web`` alone runs nothing.
    The scheduler writes the one audit row (who: the viewer, from: this server)."""
    from supertask.errors import RunNotFound, SupertaskError

    record = st.get_run(run_id)
    if not viewer.sees(record.namespace):
        raise RunNotFound(run_id)
    _allowed(viewer, record.namespace, record.job, Scope.RUN)
    if service is None:
        raise Conflict(f"run {run_id} runs on {record.host or 'another host'}: this dashboard serves no scheduler; "
                       f"end it there (`supertask jobs kill {run_id}`) or through a dashboard served by "
                       "`supertask run --http` on that host")
    try:
        return service.kill_run(run_id, viewer.who, viewer.source)
    except SupertaskError as exc:
        raise Conflict(str(exc)) from None
