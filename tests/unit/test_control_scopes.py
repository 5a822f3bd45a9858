"""What a dashboard token may ask of the TCP control endpoint (supertask.control.scopes)."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from supertask.control.scopes import NotSeen, ScopeTooSmall, check
from supertask.errors import RunNotFound
from supertask.store.access import Scope, Token


def token(scope: str, *namespaces: str) -> Token:
    return Token(name="t", scope=Scope(scope), namespaces=namespaces, created=datetime.now(timezone.utc))


class Runs:
    def get_run(self, run_id: int) -> SimpleNamespace:
        if run_id == 404:
            raise RunNotFound(run_id)
        return SimpleNamespace(namespace="a" if run_id == 1 else "b")


@pytest.mark.parametrize(("tok", "op", "args", "served", "error"), [
    (token("read", "a"), "list_jobs", ("a",), ["a"], None),
    (token("read", "a"), "list_jobs", (None,), ["a"], None),
    (token("read", "a"), "list_jobs", (None,), ["a", "b"], NotSeen),
    (token("read", "a"), "list_jobs", ("b",), ["a", "b"], NotSeen),
    (token("read", "a"), "trigger", ("a", "job"), ["a"], ScopeTooSmall),
    (token("run", "a"), "trigger", ("a", "job"), ["a"], None),
    (token("run", "a"), "pause_job", ("a", "job", True), ["a"], None),
    (token("run", "a"), "edit_job", ("a", "job", ("when=@daily",)), ["a"], ScopeTooSmall),
    (token("admin", "a"), "edit_job", ("a", "job", ("when=@daily",)), ["a"], None),
    (token("admin", "*"), "remove_job", ("b", "job"), ["a", "b"], None),
    (token("read", "a"), "read_log", (1, 0), ["a", "b"], None),
    (token("read", "a"), "read_log", (2, 0), ["a", "b"], RunNotFound),
    (token("read", "a"), "run", (404,), ["a"], RunNotFound),
    (token("read", "a"), "kill_run", (1,), ["a"], ScopeTooSmall),
    (token("run", "a"), "kill_run", (1,), ["a"], None),
    (token("read", "a"), "status", (), ["a"], None),
    (token("run", "a"), "stop", (None,), ["a"], ScopeTooSmall),
    (token("admin", "a"), "stop", (None,), ["a", "b"], NotSeen),
    (token("admin", "*"), "stop", (None,), ["a", "b"], None),
    (token("admin", "*"), "a_call_not_in_the_table", (), ["a"], None),
    (token("run", "*"), "a_call_not_in_the_table", (), ["a"], ScopeTooSmall),
])
def test_each_call_needs_its_scope_and_namespaces(tok: Token, op: str, args: tuple, served: list[str],
                                                  error: type[Exception] | None) -> None:
    if error is None:
        check(tok, op, args, served, Runs())
    else:
        with pytest.raises(error):
            check(tok, op, args, served, Runs())
