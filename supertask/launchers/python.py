"""``python:CODE``: inline Python in a fresh interpreter (supertask's own Python)."""

from __future__ import annotations

import sys

from supertask.launchers.base import ArgvLauncher


class InlinePython(ArgvLauncher):
    kind = "python"

    def argv(self, target: str) -> list[str]:
        return [sys.executable, "-c", target]
