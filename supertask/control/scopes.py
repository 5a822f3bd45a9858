"""What a dashboard token (``supertask tokens create``) may ask of the control endpoint
over TCP: each call's scope, and the namespace it touches, which the token must see.
The endpoint's own token (``--token``, the token file) and Unix-socket peers may ask
anything, as before.

- a job's namespace (``list_jobs``, ``find_run``: read; ``trigger``, ``pause_job``:
  run; ``edit_job``, ``add_job``, ``remove_job``: admin): the one named, else every
  namespace the scheduler serves;
- a run's namespace (``run``, ``read_log``: read; ``kill_run``: run): as the store has it;
- the whole scheduler (``status``: read; ``pause_all``, ``stop``: admin): every
  namespace it serves.

A namespace the token does not see is not found (exit 2), as in the HTTP API.
"""

from __future__ import annotations

from typing import Any

from supertask.errors import RunNotFound, SupertaskError
from supertask.store.access import Scope

#: call -> (scope needed, what names the namespace: "job" (args[0]), "run" (args[0]), "all")
CALLS: dict[str, tuple[Scope, str]] = {
    "list_jobs": (Scope.READ, "job"), "find_run": (Scope.READ, "job"), "trigger": (Scope.RUN, "job"),
    "pause_job": (Scope.RUN, "job"), "edit_job": (Scope.ADMIN, "job"), "add_job": (Scope.ADMIN, "job"),
    "remove_job": (Scope.ADMIN, "job"), "run": (Scope.READ, "run"), "read_log": (Scope.READ, "run"),
    "kill_run": (Scope.RUN, "run"), "status": (Scope.READ, "all"), "pause_all": (Scope.ADMIN, "all"),
    "stop": (Scope.ADMIN, "all"),
}


class NotSeen(SupertaskError, LookupError):
    """A namespace the token does not see: as if it were not there."""

    exit_code = 2


class ScopeTooSmall(SupertaskError, PermissionError):
    exit_code = 2


def check(token: Any, op: str, args: tuple[Any, ...], served: list[str], store: Any) -> None:
    """Raise unless ``token`` may make the call ``op(*args)`` on a scheduler serving ``served``."""
    scope, kind = CALLS.get(op, (Scope.ADMIN, "all"))
    if kind == "run":
        try:
            namespaces = [store.get_run(args[0]).namespace]
        except RunNotFound:
            raise
        if not token.sees(namespaces[0]):
            raise RunNotFound(args[0])
    elif kind == "job" and args and args[0] is not None:
        namespaces = [args[0]]
        if not token.sees(args[0]):
            raise NotSeen(f"no namespace {args[0]!r} that token {token.name!r} sees")
    else:
        namespaces = served
        unseen = [ns for ns in served if not token.sees(ns)]
        if unseen:
            raise NotSeen(f"token {token.name!r} does not see every namespace this scheduler serves "
                          f"({', '.join(unseen)}); name one it sees with --ns")
    if not token.scope.allows(scope):
        raise ScopeTooSmall(f"token {token.name!r} has scope {token.scope.value}; {op} needs {scope.value} or more")
