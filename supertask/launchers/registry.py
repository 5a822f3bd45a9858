"""Which launcher runs a ``run:`` of each kind."""

from __future__ import annotations

from supertask.launchers.base import Launcher
from supertask.model import RunKind


def launcher_for(kind: RunKind) -> Launcher:
    """The launcher of a ``run:`` kind (``job.run_spec.kind``); it runs ``run_spec.target``."""
    from supertask.launchers import docker, python, shell, uv

    table: dict[RunKind, Launcher] = {
        RunKind.CMD: shell.Shell(),
        RunKind.EXEC: shell.Exec(),
        RunKind.PYTHON: python.InlinePython(),
        RunKind.UV: uv.UvScript(),
        RunKind.DOCKER: docker.DockerRun(),
    }
    return table[kind]
