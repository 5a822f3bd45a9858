"""``python:CODE``: inline Python in a fresh interpreter (supertask's own Python)."""

from __future__ import annotations

import sys

from supertask.launchers.base import ArgvLauncher
from supertask.model import RunKind


class InlinePython(ArgvLauncher):
    kind = RunKind.PYTHON

    def argv(self, target: str) -> list[str]:
        return [sys.executable, "-c", target]
