"""One run lifecycle, one supervisor: every kind of run ends with a true row, a stop included."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path

from tests.conftest import Cli, wait_until


def history(cli: Cli) -> list[dict]:
    return cli.json("history", "--limit", "2000")


def test_runs_ending_right_at_sigterm_all_have_true_final_rows(cli: Cli, tmp_path: Path) -> None:
    """Round fires (plain commands, with retries, outliving their next fire), pool runs
    (steps, jitter) and skipped fires, stopped by SIGTERM while runs end around it:
    every child that ran has its run's row succeeded, no row is left running or queued,
    and every succeeded row had its child run."""
    marks = tmp_path / "marks"
    marks.mkdir()
    touch = f'touch {marks}/$SUPERTASK_RUN_ID'
    jobs = []
    for i in range(12):
        jobs.append(f'  - {{name: round{i}, when: every 1s, run: "cmd:{touch}; sleep 0.{i % 4 + 1}"}}')
    for i in range(4):
        jobs.append(f'  - {{name: retried{i}, when: every 1s, retries: 1, run: "cmd:{touch}; sleep 0.2"}}')
    for i in range(8):  # outlive their next fire: those fires are skipped
        jobs.append(f'  - {{name: slow{i}, when: every 1s, run: "cmd:{touch}; sleep 1.3"}}')
    for i in range(6):
        jobs.append(f'  - {{name: steps{i}, when: every 1s, steps: [{{name: a, run: "cmd:{touch}"}}, '
                    f'{{name: b, run: "cmd:sleep 0.2"}}]}}')
    for i in range(4):
        jobs.append(f'  - {{name: jitter{i}, when: every 1s, jitter: 0.2s, run: "cmd:{touch}; sleep 0.1"}}')
    (cli.cwd / "supertask.yaml").write_text("namespace: atstop\njobs:\n" + "\n".join(jobs) + "\n")
    # few run threads: the pool's queue backs up (skip rows to write wait in it at the stop)
    sched = cli.start("--grace", "20s", "--max-workers", "3")
    sched.wait_event("scheduler started")
    wait_until(lambda: len(list(marks.iterdir())) >= 60, timeout=30, what="three seconds of runs")
    # right after a second's fires started: runs of 0.1 to 0.4 s end around the signal
    wait_until(lambda: time.time() % 1 < 0.15, timeout=3, interval=0.005)
    time.sleep(0.08)
    t0 = time.monotonic()
    assert sched.stop(signal.SIGTERM) == 0, sched.output
    took = time.monotonic() - t0
    rows = history(cli)
    ran = {int(p.name) for p in marks.iterdir()}
    left = [r for r in rows if r["status"] in ("running", "queued")]
    assert not left, left
    by_id = {r["id"]: r for r in rows}
    assert ran <= set(by_id), sorted(ran - set(by_id))
    wrong = [by_id[i] for i in ran if by_id[i]["status"] != "succeeded"]
    assert not wrong, wrong
    invented = [r for r in rows if r["status"] == "succeeded" and r["id"] not in ran]
    assert not invented, invented
    assert all(r["finished"] for r in rows if r["status"] == "succeeded")
    assert any(r["status"] == "skipped" for r in rows)
    events = sched.events()
    assert not [e for e in events if e.get("level") in ("error", "critical")], sched.output
    assert [e for e in events if e.get("event") == "scheduler stopped"]
    # the runs queued for the pool at the stop were let run or given up, not dropped
    # with their count of runs in flight (which held the stop for the whole grace)
    assert not [e for e in events if e.get("event") == "grace period over: ending running jobs"], sched.output
    assert took < 8, took


def _freeze_around_a_fire(pid: int, seconds: float) -> None:
    """SIGSTOP the scheduler just after it claimed the next second's fire (it claims a
    round ~25 ms ahead), before its child starts; SIGCONT ``seconds`` later."""
    wait_until(lambda: 0.985 <= time.time() % 1 < 0.993, timeout=3, interval=0.001)
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(seconds)
    finally:
        os.kill(pid, signal.SIGCONT)


def test_a_frozen_scheduler_shows_lateness_not_a_longer_run(cli: Cli) -> None:
    """Freeze the scheduler 1.5 s around a fire of a 2 ms job every second (real SIGSTOP):
    the row's started is when its child started, took is the child's time, the lateness
    is in history (table and --json) and the metric, and no fire is skipped for overlap."""
    (cli.cwd / "supertask.yaml").write_text(
        'namespace: frozen\njobs:\n  - {name: tick, when: "* * * * * *", run: "cmd:true"}\n')
    sched = cli.start("--metrics", "127.0.0.1:0")
    sched.wait_event("scheduler started")
    serving = sched.wait_event("metrics serving")
    wait_until(lambda: len(history(cli)) >= 2, what="two runs")
    for _ in range(3):
        _freeze_around_a_fire(sched.proc.pid, 1.5)
        time.sleep(1.2)
    wait_until(lambda: history(cli)[0]["status"] == "succeeded", what="the run after the freezes")
    with urllib.request.urlopen(serving["url"], timeout=5) as response:
        metrics = response.read().decode()
    sched.stop()
    rows = history(cli)
    ran = [r for r in rows if r["status"] == "succeeded"]
    assert all(r["duration"] < 0.5 for r in ran), [(r["id"], r["duration"]) for r in ran]
    assert all(r["started"] >= r["scheduled"] for r in ran)
    late = [r for r in ran if r["lateness"] is not None and r["lateness"] >= 1.0]
    assert late, [(r["id"], r["scheduled"], r["started"], r["lateness"]) for r in ran]
    skipped = [r for r in rows if r["status"] == "skipped" and "still running" in (r["message"] or "")]
    assert not skipped, skipped
    table = cli("history", "--limit", "50").stdout
    assert "late" in table.splitlines()[1] or "late" in table, table
    bucket = re.search(r'supertask_fire_lateness_seconds_bucket\{job="tick",le="1.0",namespace="frozen"\} (\S+)',
                       metrics)
    count = re.search(r'supertask_fire_lateness_seconds_count\{job="tick",namespace="frozen"\} (\S+)', metrics)
    assert bucket and count and float(count.group(1)) > float(bucket.group(1)), metrics


def test_a_stop_with_runs_in_flight_joins_every_thread_and_finishes_every_row(cli: Cli, tmp_path: Path) -> None:
    """SIGTERM while runs are in flight, some outliving the grace (their groups are
    ended by threads started during the stop), one ignoring TERM (KILL after its
    kill_grace), one timing out, with the control endpoint, the timetable watcher and
    the store probe running: exit 0, no row left running, and the supervisor reports
    no thread of its own still running and no non-daemon thread at all."""
    marks = tmp_path / "marks"
    marks.mkdir()
    touch = f"touch {marks}/$SUPERTASK_RUN_ID"
    (cli.cwd / "supertask.yaml").write_text(
        "namespace: threads\njobs:\n"
        + "".join(f'  - {{name: long{i}, when: every 1s, run: "cmd:{touch}; sleep 60"}}\n' for i in range(3))
        + f'  - {{name: stubborn, when: every 1s, kill_grace: 1s, run: "cmd:{touch}; trap \'\' TERM; sleep 60"}}\n'
        + f'  - {{name: slowpoke, when: every 1s, timeout: 1s, run: "cmd:{touch}; sleep 60"}}\n'
        + f'  - {{name: quick, when: every 1s, run: "cmd:{touch}"}}\n'
    )
    sched = cli.start("--grace", "1s")
    sched.wait_event("scheduler started")
    wait_until(lambda: cli.json("status")["jobs"]["running"] >= 5, timeout=30, what="the long runs in flight")
    wait_until(lambda: any(r["job"] == "slowpoke" and r["status"] == "timed-out" for r in history(cli)),
               timeout=30, what="a timed-out run")
    assert sched.stop(signal.SIGTERM, timeout=60) == 0, sched.output
    rows = history(cli)
    assert rows and not [r for r in rows if r["status"] in ("running", "queued")], rows
    assert not [r for r in rows if r["status"] == "succeeded" and not r["finished"]]
    ran = {int(p.name) for p in marks.iterdir()}
    by_id = {r["id"]: r for r in rows}
    assert ran <= set(by_id), sorted(ran - set(by_id))
    ended = {r["job"] for r in rows if r["status"] == "killed" and "shutdown" in (r["message"] or "")}
    assert {"long0", "long1", "long2", "stubborn"} <= ended, rows
    events = sched.events()
    stopped = [e for e in events if e.get("event") == "scheduler stopped"]
    assert len(stopped) == 1 and stopped[0]["threads_left"] == [], sched.output
    assert not [e for e in events if e.get("event") == "a thread did not stop in time"], sched.output
    assert not [e for e in events if e.get("level") in ("error", "critical")], sched.output
