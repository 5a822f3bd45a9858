"""When things go wrong: retries, overlap, catch-up, crashes, big output, retention,
notifications and PID 1 — each with real processes and the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from tests.conftest import Cli, Scheduler, wait_until


def timetable(cli: Cli, text: str) -> None:
    (cli.cwd / "supertask.yaml").write_text(text)


def runs(cli: Cli, *args: str) -> list[dict]:
    return sorted(cli.json("history", "--limit", "1000", *args), key=lambda r: r["id"])


def ts(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def test_retries_each_attempt_its_own_row_and_log_with_backoff(cli: Cli) -> None:
    timetable(cli, """
namespace: retries
jobs:
  - {name: flaky, when: once, retries: 2, retry_delay: 0.3s, run: "cmd:echo attempt $SUPERTASK_RUN_ID; exit 1"}
  - {name: only-timeouts, when: once, retries: 2, retry_on: [timed-out], run: "cmd:exit 1"}
""")
    sched = cli.start()
    try:
        wait_until(lambda: len([r for r in runs(cli) if r["job"] == "flaky"]) == 3
                   and all(r["finished"] for r in runs(cli)), timeout=20, what="three attempts")
    finally:
        assert sched.stop() == 0
    flaky = [r for r in runs(cli) if r["job"] == "flaky"]
    assert [r["attempt"] for r in flaky] == [1, 2, 3]
    assert [r["reason"] for r in flaky] == ["schedule", "retry", "retry"]  # a `once` at start is no catch-up
    assert len({r["scheduled"] for r in flaky}) == 1  # the same fire
    assert len({r["log_path"] for r in flaky}) == 3
    for r in flaky:
        assert Path(r["log_path"]).read_text().split(" ", 2)[2].strip() == f"attempt {r['id']}"
    gaps = [ts(b["started"]) - ts(a["finished"]) for a, b in zip(flaky, flaky[1:], strict=False)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6  # doubled
    assert len([r for r in runs(cli) if r["job"] == "only-timeouts"]) == 1


def test_overlap_queue_holds_one_waiting_run(cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    timetable(cli, f"""
namespace: queue
jobs:
  - name: slow
    when: "* * * * * *"
    overlap: queue
    run: "cmd:while [ ! -e {gate} ]; do sleep 0.05; done"
""")
    sched = cli.start()
    try:
        wait_until(lambda: any(r["status"] == "queued" for r in runs(cli)), what="a queued run")
        wait_until(lambda: any(r["status"] == "skipped" for r in runs(cli)), what="a skipped run")
        queued = next(r for r in runs(cli) if r["status"] == "queued")
        gate.write_text("open")
        wait_until(lambda: next(r for r in runs(cli) if r["id"] == queued["id"])["status"] == "succeeded",
                   what="the queued run to run")
    finally:
        assert sched.stop() == 0
    skipped = [r for r in runs(cli) if r["status"] == "skipped"]
    assert "overlap: queue" in skipped[0]["message"]


def test_overlap_allow_with_max_concurrent(cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    timetable(cli, f"""
namespace: allow
jobs:
  - name: wide
    when: "* * * * * *"
    overlap: allow
    max_concurrent: 2
    run: "cmd:while [ ! -e {gate} ]; do sleep 0.05; done"
""")
    sched = cli.start()
    try:
        wait_until(lambda: any(r["status"] == "skipped" for r in runs(cli)), what="a skipped run")
        running = [r for r in runs(cli) if r["status"] == "running"]
        assert len(running) == 2
        gate.write_text("open")
    finally:
        assert sched.stop() == 0
    assert "max_concurrent 2" in next(r for r in runs(cli) if r["status"] == "skipped")["message"]


def test_global_max_concurrent_caps_the_scheduler(cli: Cli, tmp_path: Path) -> None:
    log = tmp_path / "spans"
    timetable(cli, f"""
namespace: capped
defaults: {{when: "* * * * * *", overlap: allow}}
jobs:
  - {{name: a, run: "cmd:echo start $(date +%s.%N) >> {log}; sleep 0.4; echo end $(date +%s.%N) >> {log}"}}
  - {{name: b, run: "cmd:echo start $(date +%s.%N) >> {log}; sleep 0.4; echo end $(date +%s.%N) >> {log}"}}
""")
    sched = cli.start("--max-concurrent", "1")
    try:
        wait_until(lambda: log.exists() and log.read_text().count("end") >= 4, what="four runs")
    finally:
        assert sched.stop() == 0
    depth, deepest = 0, 0
    events = sorted((float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    for _, kind in events:
        depth += 1 if kind == "start" else -1
        deepest = max(deepest, depth)
    assert deepest == 1


def test_a_job_waiting_for_its_retry_holds_no_max_concurrent_slot(cli: Cli) -> None:
    timetable(cli, """
namespace: backoff
jobs:
  - {name: a-fails, when: once, retries: 1, retry_delay: 30s, run: "cmd:exit 1"}
  - {name: b-quick, when: once, run: "cmd:true"}
""")
    sched = cli.start("--max-concurrent", "1", "--grace", "1s")
    try:
        wait_until(lambda: any(r["job"] == "b-quick" and r["status"] == "succeeded" for r in runs(cli)),
                   timeout=20, what="b-quick to run while a-fails waits 30s for its retry")
    finally:
        assert sched.stop() == 0
    assert [r["attempt"] for r in runs(cli) if r["job"] == "a-fails"] == [1]  # the retry is still waiting


def test_a_stop_cancels_a_pending_retry_at_once(cli: Cli) -> None:
    timetable(cli, """
namespace: stopping
jobs:
  - {name: backs-off, when: once, retries: 3, retry_delay: 1h, run: "cmd:exit 1"}
""")
    sched = cli.start("--grace", "20s")
    sched.wait_event("retry scheduled", job="backs-off")
    t0 = time.monotonic()
    assert sched.stop() == 0
    assert time.monotonic() - t0 < 10  # no run is running: nothing to give the 20 s grace to
    assert [r["attempt"] for r in runs(cli)] == [1]
    assert not any(e["event"].startswith("grace period over") for e in sched.events())


def _set_next_run(cli: Cli, namespace: str, job: str, when: float) -> None:
    with sqlite3.connect(cli.home / "supertask.db") as db:
        db.execute("UPDATE supertask_jobs SET next_run_time=? WHERE namespace=? AND name=?", (when, namespace, job))


def _down_for_three_fires(cli: Cli, job: str, options: str = "") -> Scheduler:
    """A job every 10 s whose scheduler was down for its fires due 25, 15 and 5 s ago:
    the scheduler started again."""
    timetable(cli, f"""
namespace: catchup
jobs:
  - {{name: {job}, when: every 10s, {options}run: "cmd:echo $SUPERTASK_SCHEDULED"}}
""")
    sched = cli.start()
    sched.wait_event("scheduler started")
    assert sched.stop() == 0
    _set_next_run(cli, "catchup", job, time.time() - 25)
    return cli.start()


def test_catch_up_all_runs_each_missed_fire_oldest_first(cli: Cli) -> None:
    sched = _down_for_three_fires(cli, "each", "catch_up: all, ")
    try:
        wait_until(lambda: len([r for r in runs(cli) if r["status"] == "succeeded"]) >= 3, what="three catch-ups")
    finally:
        assert sched.stop() == 0
    done = [r for r in runs(cli) if r["status"] == "succeeded"][:3]
    assert all(r["reason"] == "catch-up" for r in done)
    stamps = [ts(r["scheduled"]) for r in done]
    assert stamps == sorted(stamps) and round(stamps[1] - stamps[0]) == 10


def test_catch_up_latest_runs_the_latest_and_says_what_it_coalesced(cli: Cli) -> None:
    sched = _down_for_three_fires(cli, "latest")
    try:
        event = sched.wait_event("fires coalesced", job="latest")
        wait_until(lambda: [r for r in runs(cli) if r["status"] == "succeeded"], what="the catch-up run")
    finally:
        assert sched.stop() == 0
    assert event["level"] == "warning" and event["fires"] == 2 and event["jobs"] == 1
    assert event["namespace"] == "catchup" and "catch_up: latest" in event["hint"]
    assert ts(event["last"]) - ts(event["first"]) == pytest.approx(10, abs=0.01)
    done = [r for r in runs(cli) if r["reason"] == "catch-up"]
    assert len(done) == 1 and ts(done[0]["scheduled"]) == pytest.approx(ts(event["last"]) + 10, abs=0.01)


def test_kill_9_marks_runs_lost_ends_orphans_and_retries(cli: Cli, tmp_path: Path) -> None:
    marker, pidfile = tmp_path / "marker", tmp_path / "sleeper.pid"
    timetable(cli, f"""
namespace: crash
jobs:
  - name: survivor
    when: once
    retries: 1
    retry_delay: 0.1s
    run: "cmd:if [ -e {marker} ]; then echo second try; else touch {marker}; sleep 300 & echo $! > {pidfile}; wait; fi"
""")
    sched = cli.start()
    wait_until(pidfile.exists, what="the job to start its sleeper")
    sleeper = int(wait_until(lambda: pidfile.read_text().strip(), what="the sleeper pid"))
    os.kill(sched.proc.pid, signal.SIGKILL)  # the scheduler only: its job's group lives on
    sched.proc.wait(10)
    assert psutil.pid_exists(sleeper)
    sched = cli.start()
    try:
        sched.wait_event("run lost", job="survivor")
        wait_until(lambda: len(runs(cli)) == 2 and runs(cli)[1]["status"] == "succeeded", what="the retry")
    finally:
        assert sched.stop() == 0
    first, second = runs(cli)
    assert first["status"] == "lost" and "noticed at" in first["message"]
    assert second["attempt"] == 2 and second["reason"] == "retry" and second["scheduled"] == first["scheduled"]
    assert second["log_tail"] == "second try"
    wait_until(lambda: not psutil.pid_exists(sleeper) or psutil.Process(sleeper).status() == psutil.STATUS_ZOMBIE,
               what="the orphan to be ended")


def test_a_lost_run_without_retries_left_sends_on_failure_and_the_fail_ping(cli: Cli, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    facts, pidfile = tmp_path / "facts", tmp_path / "sleeper.pid"
    timetable(cli, f"""
namespace: lostnote
jobs:
  - name: dies
    when: once
    ping: {base}/lost
    on_failure: ["cmd:echo $SUPERTASK_RUN_ID $SUPERTASK_STATUS $SUPERTASK_LOG_TAIL >> {facts}"]
    run: "cmd:echo working; sleep 300 & echo $! > {pidfile}; wait"
""")
    sched = cli.start()
    log = cli.home / "logs" / "lostnote" / "dies" / "1.log"
    wait_until(lambda: log.exists() and "working" in log.read_text(), what="the job's first line in its log")
    os.kill(sched.proc.pid, signal.SIGKILL)
    sched.proc.wait(10)
    sched = cli.start()
    try:
        wait_until(lambda: facts.exists() and facts.read_text().strip(), what="the on_failure hook")
        wait_until(lambda: any(p == "/lost/fail" for _, p, _ in _Hooks.received), what="the fail ping")
    finally:
        assert sched.stop() == 0
        server.shutdown()
    assert facts.read_text().split() == ["1", "lost", "working"]
    assert [r["status"] for r in runs(cli)] == ["lost"]


def test_orphans_of_several_lost_runs_are_ended_together(cli: Cli, tmp_path: Path) -> None:
    timetable(cli, f"""
namespace: manylost
defaults: {{when: once, kill_grace: 3s, run: "cmd:trap '' TERM; touch {tmp_path}/$SUPERTASK_JOB; sleep 300 & wait"}}
jobs:
  - {{name: one}}
  - {{name: two}}
""")
    sched = cli.start()
    wait_until(lambda: (tmp_path / "one").exists() and (tmp_path / "two").exists(), what="both jobs to start")
    os.kill(sched.proc.pid, signal.SIGKILL)
    sched.proc.wait(10)
    sched = cli.start()
    try:
        wait_until(lambda: len([e for e in sched.events() if e["event"] == "run lost"]) == 2, what="two lost runs")
    finally:
        assert sched.stop() == 0
    stamps = [ts(e["timestamp"]) for e in sched.events() if e["event"] == "run lost"]
    assert max(stamps) - min(stamps) < 1.5  # one grace for both, not one after the other
    assert all(e["orphans_ended"] == 1 for e in sched.events() if e["event"] == "run lost")
    assert not _carrying_namespace("manylost")


def _carrying_namespace(namespace: str) -> list[psutil.Process]:
    """Live processes whose environment names the namespace."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("SUPERTASK_NAMESPACE") == namespace and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            continue
    return found


def test_huge_output_is_capped_head_and_tail(cli: Cli) -> None:
    timetable(cli, """
namespace: loud
jobs:
  - name: firehose
    when: once
    log_max: 64k
    run: "cmd:echo FIRST; yes 'the same line again and again' | head -n 2000000; echo LAST"
""")
    sched = cli.start()
    try:
        event = sched.wait_event("run finished", job="firehose", timeout=60)
        rss = psutil.Process(sched.proc.pid).memory_info().rss
    finally:
        assert sched.stop() == 0
    assert event["status"] == "succeeded"
    run = runs(cli)[0]
    text = Path(run["log_path"]).read_text()
    assert 60_000 < len(text) < 80_000
    assert "FIRST" in text.splitlines()[0] and text.splitlines()[-1].endswith("LAST")
    assert "left out" in text
    assert rss < 200 * 1024 * 1024
    assert any(e["event"].startswith("output over log_max") for e in sched.events())


def test_output_without_newlines_is_split_and_capped(cli: Cli) -> None:
    timetable(cli, r"""
namespace: blob
jobs:
  - name: no-newline
    when: once
    log_max: 256k
    timeout: 60s
    run: "cmd:printf START; head -c 20000000 /dev/zero | tr '\\0' x; printf END"
""")
    sched = cli.start()
    try:
        event = sched.wait_event("run finished", job="no-newline", timeout=60)
    finally:
        assert sched.stop() == 0
    assert event["status"] == "succeeded"
    lines = Path(runs(cli)[0]["log_path"]).read_text().splitlines()
    assert lines[0].split(" ", 2)[2].startswith("STARTxxx") and lines[-1].endswith("xxxEND")
    assert "left out" in "\n".join(lines)
    assert max(len(line) for line in lines) < 65 * 1024  # relayed in pieces of 64 KiB at most


def test_history_keep_and_prune(cli: Cli) -> None:
    timetable(cli, """
namespace: keep
jobs:
  - {name: often, when: "* * * * * *", history_keep: 2, run: "cmd:echo hi"}
""")
    sched = cli.start()
    try:
        sched.wait_event("run finished", job="often")
        wait_until(lambda: max(r["id"] for r in runs(cli)) >= 4, what="four runs")
    finally:
        assert sched.stop() == 0
    kept = runs(cli)
    assert len(kept) <= 3  # the newest two, plus one that may have started meanwhile
    logs = list((cli.home / "logs" / "keep" / "often").glob("*.log"))
    assert len(logs) == len(kept)
    for code in (0, 1, 0):
        cli("run", "--name", "adhoc", "--", f"cmd:exit {code}")
    proc = cli("prune", "--keep", "1")
    assert proc.returncode == 0 and "removed" in proc.stdout
    assert len([r for r in runs(cli, "--all") if r["job"] == "adhoc"]) == 1  # one-liners: not the folder's namespace


class _Hooks(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(("POST", self.path, body))
        self.send_response(500 if self.path == "/flaky" and len(self.received) < 2 else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_notifications_hooks_and_pings(cli: Cli, tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    facts = tmp_path / "facts"
    timetable(cli, f"""
namespace: notify
jobs:
  - name: breaks
    when: once
    retries: 1
    retry_delay: 0.1s
    ping: {base}/ping
    on_retry: ["cmd:echo retry $SUPERTASK_RUN_ID >> {facts}"]
    on_failure:
      - "cmd:echo $SUPERTASK_JOB $SUPERTASK_STATUS $SUPERTASK_EXIT_CODE $SUPERTASK_LOG_TAIL >> {facts}"
      - webhook: {base}/hook
      - "cmd:exit 9"
    run: "cmd:echo broken; exit 4"
  - name: works
    when: once
    on_success: [{{webhook: {base}/flaky}}]
    run: "cmd:true"
""")
    sched = cli.start()
    try:
        wait_until(lambda: facts.exists() and "failed" in facts.read_text(), what="the failure hook")
        wait_until(lambda: any(p == "/hook" for _, p, _ in _Hooks.received), what="the webhook")
        wait_until(lambda: len([p for _, p, _ in _Hooks.received if p == "/flaky"]) >= 1, what="the success hook")
        sched.wait_event("notification failed", kind="cmd")
    finally:
        assert sched.stop() == 0
        server.shutdown()
    lines = facts.read_text().splitlines()
    assert lines[0].startswith("retry ") and lines[1] == "breaks failed 4 broken"
    hook = json.loads(next(b for _, p, b in _Hooks.received if p == "/hook"))
    assert hook["job"] == "breaks" and hook["status"] == "failed" and hook["attempt"] == 2
    assert hook["log_tail"].startswith("broken")
    pings = [p for _, p, _ in _Hooks.received if p.startswith("/ping")]
    assert pings.count("/ping/start") == 2 and pings.count("/ping/fail") == 2
    assert all(r["status"] in ("failed", "succeeded") for r in runs(cli))  # a failing hook fails no run


def test_a_hanging_webhook_neither_delays_runs_nor_makes_the_next_fire_overlap(cli: Cli) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)  # connections are taken, never answered: each try waits its 10 s timeout
    try:
        timetable(cli, f"""
namespace: hanging
jobs:
  - name: every-second
    when: "* * * * * *"
    ping: http://127.0.0.1:{silent.getsockname()[1]}/ping
    on_failure: [{{webhook: "http://127.0.0.1:{silent.getsockname()[1]}/hook"}}]
    run: "cmd:exit 1"
""")
        sched = cli.start("--grace", "0.5s")
        try:
            wait_until(lambda: len([r for r in runs(cli) if r["status"] == "failed"]) >= 4, what="four failed runs")
        finally:
            assert sched.stop() == 0
    finally:
        silent.close()
    assert not [r for r in runs(cli) if r["status"] == "skipped"]  # no fire waited on a notification
    assert any(e["event"] == "notifications still queued after the grace period were not sent" for e in sched.events())


@pytest.mark.skipif(not shutil.which("unshare") or os.geteuid() != 0, reason="needs root and unshare for a PID namespace")
def test_pid_1_reaps_orphans(cli: Cli, tmp_path: Path) -> None:
    timetable(cli, """
namespace: pid1
jobs:
  - {name: orphans, when: once, run: "cmd:(sleep 0.3 &); (sleep 0.3 &); echo spawned"}
""")
    log = tmp_path / "pid1.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", sys.executable, "-m", "supertask", "run"],
            cwd=cli.cwd, env=cli.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_until(lambda: "PID 1" in log.read_text(), what="supertask as PID 1")
        wait_until(lambda: '"run finished"' in log.read_text(), what="the run")
        inner = next(c for c in psutil.Process(proc.pid).children(recursive=True) if "supertask" in " ".join(c.cmdline()))
        assert inner.ppid() == proc.pid

        def leftovers() -> list[psutil.Process]:
            return [c for c in inner.children() if c.name() == "sleep" or c.status() == psutil.STATUS_ZOMBIE]

        # the orphans were re-parented to supertask (PID 1 inside); once they exit,
        # they must not stay zombies
        wait_until(lambda: not leftovers(), timeout=10, what="the orphans to be reaped")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_a_scheduler_that_synced_a_big_timetable_lets_go_of_it(cli: Cli) -> None:
    """The parsed jobs are in the store once synced: the first start (which reads and
    syncs the file) sits at about the size of a restart (which finds it unchanged)."""
    jobs = "".join(f'  - {{name: j{i}, when: "0 0 1 1 *", run: "cmd:true"}}\n' for i in range(20_000))
    timetable(cli, "namespace: big\njobs:\n" + jobs)

    def idle_rss() -> int:
        sched = cli.start("--no-watch")
        try:
            sched.wait_event("scheduler started", timeout=120)
            return psutil.Process(sched.proc.pid).memory_info().rss
        finally:
            assert sched.stop() == 0

    first, restart = idle_rss(), idle_rss()
    # before the fix: 128 MB against 60 (the parsed timetable kept for as long as it ran)
    assert first < restart + 30 * 2**20, (first / 2**20, restart / 2**20)
