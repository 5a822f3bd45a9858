"""``python:CODE``: inline Python in a fresh interpreter (supertask's own Python)."""

from __future__ import annotations

import sys


class InlinePython:
    kind = "python"

    def argv(self, target: str) -> list[str]:
        return [sys.executable, "-c", target]
