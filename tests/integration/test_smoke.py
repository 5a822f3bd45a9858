"""The smoke test ``make test-pythons`` runs on every Python the package claims (3.10 to
3.13), beside the unit tests: a one-shot run, and a real scheduler firing a job whose
child starts through ``posix_spawn`` (a command with a path, no ``cwd:``, no inheritable
descriptor: the path that failed on Python 3.10), with a spy on ``os.posix_spawn`` in the
scheduler process to show that path was taken."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.conftest import Cli, Scheduler, wait_until

#: ``supertask`` as ``python -m supertask`` runs it, with each ``os.posix_spawn`` call's
#: program appended to $SPY_FILE (the scheduler is otherwise untouched)
SPY = """
import os, runpy, sys
real = os.posix_spawn
def spy(path, *args, **kwargs):
    pid = real(path, *args, **kwargs)
    with open(os.environ["SPY_FILE"], "a") as out:
        out.write(f"{path}\\n")
    return pid
os.posix_spawn = spy
sys.argv[0] = "supertask"
runpy.run_module("supertask", run_name="__main__", alter_sys=True)
"""


def test_one_shot_run(cli: Cli) -> None:
    ok = cli("run", "--", "cmd:echo one-shot on $0")
    assert (ok.returncode, ok.stdout) == (0, "one-shot on /bin/sh\n"), ok.stderr
    failed = cli("run", "--", "exec:/bin/sh -c 'exit 4'")
    assert failed.returncode == 4, failed.stderr


def test_scheduler_fires_through_posix_spawn(cli: Cli, tmp_path: Path, monkeypatch) -> None:
    out, spied = tmp_path / "fired", tmp_path / "spawned"
    (cli.cwd / "timetable.yaml").write_text(f"""
jobs:
  - name: tick
    when: every 1s
    run: "exec:/bin/sh -c 'echo fired >> {out}; echo relayed'"
""")
    monkeypatch.setattr(sys.modules["tests.conftest"], "SUPERTASK", [sys.executable, "-c", SPY])
    sched = Scheduler(cli, ["--file", "timetable.yaml", "--no-watch"], {"SPY_FILE": str(spied)})
    try:
        wait_until(lambda: out.exists() and len(out.read_text().splitlines()) >= 2, timeout=45, what="two fires")
        event = sched.wait_event("run finished", timeout=45, job="tick")
        assert event["status"] == "succeeded"
        assert any(e.get("stream") == "stdout" and e["event"] == "relayed" for e in sched.events())
    finally:
        assert sched.stop() == 0
    assert "/bin/sh" in spied.read_text().split(), "the job's child did not start through posix_spawn"
    runs = cli.json("history", "--limit", "10")
    assert runs and all(run["status"] == "succeeded" for run in runs if run["status"] != "skipped")
