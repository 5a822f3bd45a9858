"""``supertask jobs pause|resume|edit|reschedule|add|remove|trigger --ns NS`` with no
scheduler to talk to: the change is made in the store itself, and every scheduler
serving the namespace, on any host, takes it in within seconds
(:mod:`supertask.scheduler.follow`). A trigger queues a manual run that one of them
takes up and runs; with none serving the namespace it waits in the store for one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from supertask.errors import NoScheduler


def needs_namespace(exc: NoScheduler, connect: str | None, namespace: str | None, command: str) -> None:
    """No scheduler answered: fall back to the store, when the command says which
    namespace (and names no scheduler to connect to); else exit 3 saying how."""
    if connect or namespace is None:
        raise NoScheduler(f"{exc}; with no scheduler, `supertask jobs {command} --ns NS ...` changes the store "
                          "(--store URL, else SUPERTASK_STORE, else the state folder's), and every scheduler "
                          "serving NS follows it") from None


def live_or_store(live: Callable[[], Any], stored: Callable[[], Any], connect: str | None,
                  namespace: str | None, command: str) -> Any:
    """``live()`` through the scheduler; with none to talk to, ``stored()`` in the store."""
    try:
        return live()
    except NoScheduler as exc:
        needs_namespace(exc, connect, namespace, command)
    return stored()


def _store(store: str | None, home: str | None, namespace: str | None) -> tuple[Any, str]:
    """The store, and the namespace in it (needs_namespace made sure one was given)."""
    from supertask.cli.app import _known_namespace, _open_store, _settings

    assert namespace is not None
    st = _open_store(_settings(store, home))
    _known_namespace(st, namespace)
    return st, namespace


def audit(st: Any, action: str, namespace: str, job: str, before: Any, after: Any) -> None:
    """The audit row of a change made here in the store: this unix user, from this host."""
    from supertask.control.changes import audit as write
    from supertask.settings import current_user, host_name

    write(st, current_user(), f"cli on {host_name()}", action, namespace, job, before, after)


def pause(store: str | None, home: str | None, namespace: str | None, job: str, paused: bool) -> dict[str, Any]:
    from supertask.scheduler import edits

    st, ns = _store(store, home, namespace)
    was = st.get_job(ns, job).paused
    row = edits.set_paused(st, ns, job, paused).to_json()
    audit(st, "paused" if paused else "resumed", ns, job, {"paused": was}, {"paused": paused})
    return row  # type: ignore[no-any-return]


def edit(store: str | None, home: str | None, namespace: str | None, job: str, assignments: tuple[str, ...]) -> dict[str, Any]:
    from supertask.control.changes import difference, edit_event
    from supertask.control.live import edited, parse_assignments
    from supertask.errors import UsageError
    from supertask.scheduler import edits

    st, ns = _store(store, home, namespace)
    values = parse_assignments(assignments)
    if not values:
        raise UsageError("nothing to change: give --set key=value")
    old = st.get_job(ns, job).job
    new = edited(old, job, values)
    row = edits.put_job(st, ns, new).to_json()
    before, after = difference(old, new)
    audit(st, edit_event(before, after).removeprefix("job "), ns, job, before, after)
    return row  # type: ignore[no-any-return]


def add(store: str | None, home: str | None, namespace: str | None, name: str, when: str, run: str,
        assignments: tuple[str, ...]) -> dict[str, Any]:
    from supertask.control.live import edited, parse_assignments
    from supertask.errors import JobNotFound, UsageError
    from supertask.scheduler import edits

    st, ns = _store(store, home, namespace)
    try:
        st.get_job(ns, name)
    except JobNotFound:
        values = parse_assignments(assignments)
        values.update(when=when, run=run)
        from supertask.control.changes import plain

        new = edited(None, name, values)
        row = edits.put_job(st, ns, new).to_json()
        audit(st, "added", ns, name, None, plain(new))
        return row  # type: ignore[no-any-return]
    raise UsageError(f"job {name!r} exists in namespace {namespace!r}; change it with `supertask jobs edit`")


def trigger(store: str | None, home: str | None, namespace: str | None, job: str, *, wait: bool) -> dict[str, Any]:
    """Queue a manual run of ``job``; with ``wait``, until a scheduler has run it (its row)."""
    st, ns = _store(store, home, namespace)
    run_id = st.queue_run(ns, job, "triggered through the store; waiting for a scheduler serving "
                                          f"{namespace} to take it up")
    audit(st, "triggered", ns, job, None, {"run_id": run_id})
    if not wait:
        return {"namespace": namespace, "job": job, "run_id": run_id, "status": "queued"}
    from supertask.model import RunStatus

    while True:
        record = st.get_run(run_id)
        if RunStatus(record.status).finished:
            return record.to_json()  # type: ignore[no-any-return]
        time.sleep(0.2)




def trigger_in_store(exc: NoScheduler, connect: str | None, store: str | None, home: str | None,
                     namespace: str | None, job: str, *, wait: bool, as_json: bool) -> None:
    """``jobs trigger`` with no scheduler to talk to: a manual run queued in the store."""
    import typer

    from supertask.cli.output import print_json
    from supertask.cli.remote import exit_code_of

    needs_namespace(exc, connect, namespace, "trigger")
    data = trigger(store, home, namespace, job, wait=wait)
    if as_json:
        print_json(data)
    elif not wait:
        typer.echo(f"queued a manual run of {namespace}/{job} in the store: run {data['run_id']}; "
                   f"a scheduler serving {namespace} takes it up")
    else:
        typer.echo(f"run {data['id']} of {namespace}/{job} on {data['host']}: {data['status']}"
                   + (f"\n{data['log_tail']}" if data.get("log_tail") else ""))
    if wait:
        raise typer.Exit(exit_code_of(data))
