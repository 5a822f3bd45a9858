"""``cmd:`` (through ``sh -c``) and ``exec:`` (split like a shell, no shell)."""

from __future__ import annotations

import shlex

from supertask.launchers.base import ArgvLauncher
from supertask.model import RunKind


class Shell(ArgvLauncher):
    kind = RunKind.CMD

    def argv(self, target: str) -> list[str]:
        return ["/bin/sh", "-c", target]


class Exec(ArgvLauncher):
    kind = RunKind.EXEC

    def argv(self, target: str) -> list[str]:
        argv = shlex.split(target)
        if not argv:
            raise ValueError("exec: needs a command, e.g. exec:/usr/bin/backup --full")
        return argv
