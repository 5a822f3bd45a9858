"""Which launcher a ``run:`` text names."""

from __future__ import annotations

from supertask.launchers.base import Launcher


def launcher_for(run: str) -> tuple[Launcher, str]:
    """``"cmd:echo hi"`` -> (the cmd launcher, ``"echo hi"``). No known prefix: ``cmd``."""
    from supertask.launchers import docker, python, shell, uv

    table: dict[str, Launcher] = {
        "cmd": shell.Shell(),
        "exec": shell.Exec(),
        "python": python.InlinePython(),
        "uv": uv.UvScript(),
        "docker": docker.DockerRun(),
    }
    kind, sep, target = run.partition(":")
    if sep and kind in table:
        return table[kind], target
    return table["cmd"], run
