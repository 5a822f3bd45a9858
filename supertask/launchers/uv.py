"""``uv:PATH_OR_URL [ARGS]``: ``uv run`` of a script, honouring its PEP 723 inline
dependencies, so each job brings its own dependencies and none reach supertask's."""

from __future__ import annotations

import shlex

from supertask.launchers.base import ArgvLauncher
from supertask.model import RunKind


def uv_binary() -> str:
    """The uv that ships with supertask (the ``uv`` package), else the one on PATH."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except Exception:
        import shutil  # ~1 ms: launcher_for() imports this module for every run

        found = shutil.which("uv")
        if found:
            return found
        raise FileNotFoundError("uv is not installed; `pip install uv` or see https://docs.astral.sh/uv/") from None


class UvScript(ArgvLauncher):
    kind = RunKind.UV

    def argv(self, target: str) -> list[str]:
        parts = shlex.split(target)
        if not parts:
            raise ValueError("uv: needs a script, e.g. uv:jobs/report.py --since yesterday")
        script, args = parts[0], parts[1:]
        mode = [] if "://" in script else ["--script"]
        return [uv_binary(), "run", "--quiet", "--no-project", *mode, script, *args]
