"""A scheduler's runs and jobs read over its control endpoint: a run's log followed as
it grows, ``list-jobs`` rows, the exit code a followed run gives the command."""

from __future__ import annotations

import sys
import time
from typing import Any

from supertask.errors import UsageError


def client(connect: str | None, home: str | None, namespace: str | None, token: str | None) -> Any:
    """A connection to the scheduler (NoScheduler, exit 3, when none answers)."""
    from supertask.control.client import connect as open_connection
    from supertask.settings import state_home

    return open_connection(connect, home=state_home(home), namespace=namespace, token=token)


def follow_log(c: Any, run_id: int, *, echo: bool = True, follow: bool = True) -> dict[str, Any]:
    """Print a run's log (as it grows until the run ends, with ``follow``); return the run."""
    offset = 0
    while True:
        chunk = c.call("read_log", run_id, offset)
        if chunk["data"] and echo:
            sys.stdout.write(chunk["data"])
            sys.stdout.flush()
        offset = chunk["offset"]
        if chunk["finished"] or (not follow and not chunk["data"]):
            return c.call("run", run_id)
        if not chunk["data"]:
            time.sleep(0.1)


def exit_code_of(record: dict[str, Any]) -> int:
    from supertask.model import RunStatus

    if record["status"] == RunStatus.SUCCEEDED:
        return 0
    code = record.get("exit_code")
    if code is not None and code > 0:
        return int(code)
    if code is not None and code < 0:
        return 128 - int(code)
    return 1


def live_rows(connect: str | None, home: str | None, namespace: str | None, token: str | None) -> list[Any] | None:
    """``list-jobs`` rows from the running scheduler, or None when none answers (or, with
    no --connect, when several run and no --ns picks one)."""
    from supertask.errors import NoScheduler

    try:
        c = client(connect, home, namespace, token)
    except NoScheduler:
        if connect:
            raise
        return None
    except UsageError:
        if connect:
            raise
        return None
    with c:
        return c.call("list_jobs", namespace)


def remote_follow(connect: str, home: str | None, token: str | None, run_id: int, *, follow: bool,
                  namespace: str | None = None, as_json: bool = False) -> int:
    """``logs RUN_ID [--follow] [--ns NS] [--json]`` through a scheduler's endpoint (its host keeps the file)."""
    from supertask.errors import RunNotFound

    with client(connect, home, namespace, token) as c:
        if namespace is not None and c.call("run", run_id)["namespace"] != namespace:
            raise RunNotFound(run_id)
        if not as_json:
            follow_log(c, run_id, follow=follow)
            return 0
        parts: list[str] = []
        offset = 0
        while True:  # as follow_log, the text kept
            chunk = c.call("read_log", run_id, offset)
            parts.append(chunk["data"])
            offset = chunk["offset"]
            if chunk["finished"] or (not follow and not chunk["data"]):
                break
            if not chunk["data"]:
                time.sleep(0.1)
        record = c.call("run", run_id)
    from supertask.cli.output import print_json

    print_json({"run": record, "log": "".join(parts)})
    return 0

