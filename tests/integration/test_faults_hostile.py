"""Hostile input and hostile state folders (issue 18, points 4-11): each case injected for
real against the real CLI, asserting what a user sees (exit codes, files, rows, events)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.conftest import Cli, wait_until


def timetable(cli: Cli, text: str) -> Path:
    path = cli.cwd / "supertask.yaml"
    path.write_text(text)
    return path


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


# -- names become paths (point 6) ----------------------------------------------------------------


@pytest.mark.parametrize("ns", ["../../x/y", "team/backups", "..", ".", ".hidden", "a" * 129])
def test_a_namespace_that_would_leave_its_folder_is_refused(cli: Cli, tmp_path: Path, ns: str) -> None:
    before = files_under(tmp_path)
    one_shot = cli("run", "--ns", ns, "--", "cmd:echo out")
    scheduled = cli("run", "--ns", ns, "--when", "@daily", "--", "cmd:echo out")
    for proc in (one_shot, scheduled):
        assert proc.returncode == 2, proc.stderr
        assert "is not a valid namespace: use letters, digits, '_', '.' and '-', not starting with '.'" in proc.stderr
    assert files_under(tmp_path) == before  # no store, no log, no socket, inside or outside the state folder


def test_a_namespace_or_job_named_dot_dot_in_a_timetable_is_a_timetable_error(cli: Cli) -> None:
    path = timetable(cli, "namespace: '..'\njobs:\n  - {name: '..', when: '@daily', run: 'cmd:true'}\n")
    proc = cli("run", "--file", str(path))
    assert proc.returncode == 2  # run: input error; validate says 1
    assert f"{path}:1: namespace: '..' is not a valid namespace" in proc.stderr
    assert f"{path}:3: jobs[0].name: '..' is not a valid name" in proc.stderr
    assert not cli.home.exists()


# -- a symlinked state folder (point 7) ------------------------------------------------------------


def test_an_orphan_started_through_a_symlinked_home_is_ended_by_a_restart_through_the_real_path(
        cli: Cli, tmp_path: Path) -> None:
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)
    pidfile = tmp_path / "sleeper.pid"
    timetable(cli, f"""
namespace: linked
jobs:
  - {{name: sleeper, when: once, run: "cmd:sleep 300 & echo $! > {pidfile}; wait"}}
""")
    sched = cli.start(env={"SUPERTASK_HOME": str(link)})
    sleeper = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the sleeper"))
    os.kill(sched.proc.pid, signal.SIGKILL)  # the scheduler only: the job's group lives on
    sched.proc.wait(10)
    assert psutil.pid_exists(sleeper)
    sched = cli.start(env={"SUPERTASK_HOME": str(real)})
    try:
        sched.wait_event("run lost", job="sleeper", orphans_ended=1)
    finally:
        assert sched.stop() == 0
    wait_until(lambda: not psutil.pid_exists(sleeper) or psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE,
               what="the orphan to be ended")
    rows = json.loads(cli("history", "--json", env={"SUPERTASK_HOME": str(real)}).stdout)
    assert [r["status"] for r in rows] == ["lost"]


# -- one input must not take the scheduler down (points 8 and 11) --------------------------------------


def test_deep_yaml_is_an_error_at_validate_and_a_reload_keeps_the_last_good(cli: Cli) -> None:
    deep = "jobs:\n  - " + "[" * 25000 + "]" * 25000 + "\n"  # 50 KB; libyaml's composer crashed on it
    (cli.cwd / "deep.yaml").write_text(deep)
    proc = cli("validate", "deep.yaml")
    assert proc.returncode == 1, proc.stderr
    assert "deep.yaml:2: nested deeper than 100 levels of lists and mappings" in proc.stderr
    path = timetable(cli, "namespace: deep\njobs:\n  - {name: kept, when: '@daily', run: 'cmd:true'}\n")
    sched = cli.start("--file", str(path))
    try:
        sched.wait_event("control ready")
        path.write_text(deep)
        sched.proc.send_signal(signal.SIGHUP)
        failed = sched.wait_event("timetable reload failed")
        assert "nested deeper than 100 levels" in failed["problems"][0]
        assert sched.proc.poll() is None
        assert [j["name"] for j in cli.json("list-jobs")] == ["kept"]
    finally:
        assert sched.stop() == 0


def test_a_nul_byte_in_an_env_value_is_an_error_at_validate(cli: Cli) -> None:
    path = timetable(cli, 'jobs:\n  - name: a\n    when: "@daily"\n    run: "cmd:true"\n    env: {A: "x\\0y"}\n')
    proc = cli("validate", str(path))
    assert proc.returncode == 1
    assert f"{path}:5: jobs[0].env.A: contains a NUL byte" in proc.stderr


def test_tracebacks_in_the_json_log_are_json_events(tmp_path: Path) -> None:
    """What the libraries log through the stdlib (with a traceback) and an exception no
    thread caught: each one JSON line, the traceback in its ``exception`` field."""
    code = """
import logging, threading
from supertask.log import configure
configure("json", "info")
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("apscheduler.executors").exception("Job raised an exception")
t = threading.Thread(target=lambda: [][1], name="worker")
t.start(); t.join()
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    lines = proc.stderr.strip().splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    assert [e["event"] for e in events] == ["Job raised an exception", "uncaught exception in a thread"]
    assert "ZeroDivisionError" in events[0]["exception"] and events[0]["logger"] == "apscheduler.executors"
    assert "IndexError" in events[1]["exception"] and events[1]["thread"] == "worker"
