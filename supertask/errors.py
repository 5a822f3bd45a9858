"""The error hierarchy: one base class, a few children, messages that say what to do.

Each child also subclasses the stdlib type it resembles, so callers that only know
``ValueError`` or ``LookupError`` still catch it. Each carries the CLI exit code it
maps to (DESIGN.md: 1 a job or check failed, 2 usage or input error, 3 no scheduler).
Control-flow signals (a stop request) are not errors and live elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class SupertaskError(Exception):
    """Base of every error supertask raises on purpose."""

    exit_code = 1


class UsageError(SupertaskError, ValueError):
    """A wrong command-line argument or option value."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a timetable, located as precisely as the YAML allows."""

    file: str
    line: int | None
    path: str  # e.g. "jobs[2].when"
    message: str  # what is wrong and, where it can, the fix

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class TimetableError(SupertaskError, ValueError):
    """A timetable with one or more problems; every problem is reported at once."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]):
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the timetable"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems))


class ScheduleError(SupertaskError, ValueError):
    """A ``when:`` text that is not a schedule; the message suggests a fix."""

    exit_code = 2

    def __init__(self, when: str, reason: str, hint: str | None = None):
        self.when, self.reason, self.hint = when, reason, hint
        text = f"{when!r} is not a schedule: {reason}"
        super().__init__(text + (f"; try {hint}" if hint else ""))


class EnvFileError(SupertaskError, ValueError):
    """An ``env_file:`` no run can use (a NUL byte, a line that is not ``KEY=value``):
    its path and lines, never its values (:mod:`supertask.timetable.envfile`)."""

    def __init__(self, message: str):
        super().__init__(message)


class StoreError(SupertaskError, RuntimeError):
    """The store cannot be opened or used (bad URL, unreachable server, old schema)."""

    exit_code = 2


class StoreUnavailable(StoreError, ConnectionError):
    """The store did not answer (refused, reset, timed out): a fault that passes, not a
    wrong URL. ``store.health`` (:mod:`supertask.store.health`) says since when; callers
    that can wait for it (a scheduler recording runs) keep what they meant to write and
    try again when ``store.health.up`` is true again."""

    exit_code = 2

    def __init__(self, url: str, error: str):
        self.url, self.error = url, error
        super().__init__(f"store {url} is unreachable: {error}; check that the database runs and the network "
                         "to it is up (`supertask doctor` checks it)")


class JobNotFound(SupertaskError, LookupError):
    """A job name the namespace does not have: an input error, like a wrong option."""

    exit_code = 2

    def __init__(self, namespace: str, name: str):
        self.namespace, self.name = namespace, name
        super().__init__(
            f"no job {name!r} in namespace {namespace!r}; `supertask list-jobs --ns {namespace}` lists them"
        )


class RunNotFound(SupertaskError, LookupError):
    """A run id the store does not have: an input error, like a wrong option."""

    exit_code = 2

    def __init__(self, run_id: object):
        self.run_id = run_id
        super().__init__(f"no run {run_id!r}; `supertask history` lists runs and their ids")


class NoScheduler(SupertaskError, ConnectionError):
    """No running scheduler answers on the control endpoint."""

    exit_code = 3
