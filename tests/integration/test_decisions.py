"""What the history says about a decision, as a user reads it: the reason of a run
that fires at a `resume` and the message of fires missed while paused. The real CLI
and a real scheduler."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

from tests.conftest import Cli, wait_until


def history(cli: Cli, job: str) -> list[dict]:
    return cli.json("history", job, "--limit", "100")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_fires_held_by_pause_run_as_catch_up_at_resume_and_missed_ones_say_paused(cli: Cli) -> None:
    (cli.cwd / "supertask.yaml").write_text("""
namespace: held
jobs:
  - {name: kept, when: "* * * * * *", catch_up: all, run: "cmd:true"}
  - {name: strict, when: "* * * * * *", misfire_grace: 0.5s, run: "cmd:true"}
""")
    sched = cli.start()
    try:
        sched.wait_event("control ready")
        wait_until(lambda: history(cli, "kept"), what="a first fire")
        assert cli.json("pause") == {"paused": True}
        paused = time.time()
        wait_until(lambda: time.time() > paused + 3, what="three fires held")
        assert cli.json("resume") == {"paused": False}
        resumed = time.time()
        wait_until(lambda: [r for r in history(cli, "strict") if r["status"] == "skipped"
                            and ts(r["scheduled"]) > paused], what="the held fires of strict, skipped")
        wait_until(lambda: len([r for r in history(cli, "kept") if r["reason"] == "catch-up"]) >= 3,
                   what="the held fires of kept, caught up")
    finally:
        assert sched.stop() == 0
    held = [r for r in history(cli, "kept") if paused + 1 < ts(r["scheduled"]) < resumed - 1]
    assert held and {r["reason"] for r in held} == {"catch-up"}, held
    assert all(r["status"] == "succeeded" for r in held)
    (missed,) = [r for r in history(cli, "strict") if r["status"] == "skipped" and ts(r["scheduled"]) > paused]
    assert "firing was paused (supertask pause)" in missed["message"], missed
    assert "not running" not in missed["message"]


def test_a_run_ended_at_shutdown_says_so_and_differs_from_jobs_kill(cli: Cli, tmp_path: Path) -> None:
    (cli.cwd / "supertask.yaml").write_text("""
namespace: ended
jobs:
  - {name: killed, when: once, run: "cmd:sleep 300"}
  - {name: stopped, when: once, run: "cmd:sleep 300"}
""")
    sched = cli.start("--grace", "0.5s")
    try:
        sched.wait_event("control ready")
        running = wait_until(lambda: {r["job"]: r["run_id"] for r in cli.json("status")["runs"]
                                      if r["pid"]} if len(cli.json("status")["runs"]) == 2 else None,
                             what="both runs to start")
        proc = cli("jobs", "kill", str(running["killed"]))
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: history(cli, "killed")[0]["status"] == "killed", what="the kill")
    finally:
        assert sched.stop() == 0
    (killed,), (stopped,) = history(cli, "killed"), history(cli, "stopped")
    assert killed["status"] == stopped["status"] == "killed"
    assert killed["message"].startswith("ended by `supertask jobs kill`"), killed
    assert stopped["message"].startswith("ended at shutdown: the scheduler stopped"), stopped
    assert "on request" not in killed["message"] + stopped["message"]
    assert stopped["log_tail"].endswith(stopped["message"])
