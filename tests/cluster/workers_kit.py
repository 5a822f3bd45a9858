"""What the worker suites share (test_workers.py, test_workers_ops.py, ...): a real
`supertask worker` in the background, started and stopped as a user would."""

from __future__ import annotations

import signal
import subprocess
import uuid

from tests.conftest import SUPERTASK, Cli, Scheduler

#: A heartbeat a second and a 4 s lease: losses and takeovers within seconds.
BEAT = ("--heartbeat", "1s", "--lease", "4s")


class Worker(Scheduler):
    """A `supertask worker ...` in the background (its JSON log lines in a file)."""

    def __init__(self, cli: Cli, args: list[str], env: dict[str, str] | None = None):
        self.cli = cli
        self.log_path = cli.home.parent / f"worker-{uuid.uuid4().hex[:6]}.log"
        cli.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen([*SUPERTASK, "worker", *args], cwd=cli.cwd, env={**cli.env, **(env or {})},
                                     stdout=self._log, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def worker(cli: Cli, name: str, labels: str, *extra: str) -> Worker:
    """A worker started, once it says so (registered; its loops start right after)."""
    w = Worker(cli, ["--name", name, "--labels", labels, *extra])
    w.wait_event("worker started", timeout=60, worker=name)
    return w


def stop_all(*procs: Scheduler) -> None:
    """SIGTERM each one still running and wait for its exit; close the others' logs."""
    for p in procs:
        if p.proc.poll() is None:
            p.stop(signal.SIGTERM, timeout=30)
        else:
            p._log.close()
