"""``docker:IMAGE [-- COMMAND ARGS]``: a container run and removed per execution.

STUB: the real launcher replaces this file.
"""

from __future__ import annotations

from supertask.launchers.base import LaunchRequest, Outcome
from supertask.model import RunStatus


class DockerRun:
    kind = "docker"

    def launch(self, request: LaunchRequest) -> Outcome:
        request.on_line("stderr", "supertask: docker: jobs are not supported yet")
        return Outcome(RunStatus.FAILED, None, None, "docker: jobs are not supported yet")
