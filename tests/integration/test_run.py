"""The run loop end to end: the real CLI, real /bin/sh children, real SQLite files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil

from tests.conftest import ROOT, Cli, wait_until


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def history(cli: Cli, *args: str) -> list[dict]:
    return cli.json("history", "--limit", "500", *args)


# -- one-liners ------------------------------------------------------------------------------


def test_one_liner_prints_and_exits_with_the_command_code(cli: Cli) -> None:
    ok = cli("run", "--", "cmd:echo hello")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "hello\n"
    failed = cli("run", "--", "cmd:echo oops >&2; exit 3")
    assert failed.returncode == 3
    assert "oops" in failed.stderr

    runs = history(cli)
    assert [r["status"] for r in runs] == ["failed", "succeeded"]
    newest = runs[0]
    for key in ("id", "namespace", "job", "attempt", "reason", "scheduled", "started", "finished", "status", "exit_code"):
        assert key in newest
    assert newest["exit_code"] == 3 and newest["reason"] == "manual" and newest["attempt"] == 1
    assert newest["log_tail"] == "oops"

    log = cli("logs", str(runs[1]["id"]))
    assert log.returncode == 0
    stamp, stream, text = log.stdout.strip().split(" ", 2)
    assert stream == "stdout" and text == "hello" and stamp.startswith("20")
    unknown = cli("logs", "999999")
    assert unknown.returncode == 2 and "supertask history" in unknown.stderr  # an input error


def test_one_liner_words_after_double_dash_and_exec_python(cli: Cli) -> None:
    assert cli("run", "--", "cmd:echo", "two words").stdout == "two words\n"
    assert cli("run", "--", "exec:printf %s-%s a b").stdout == "a-b\n"  # a last partial line is a line
    proc = cli("run", "--", "python:import sys; print(sys.version_info[0]); sys.exit(4)")
    assert (proc.returncode, proc.stdout) == (4, "3\n")


def test_bad_when_and_bad_arguments_exit_2(cli: Cli) -> None:
    proc = cli("run", "--when", "every 5 mins", "--", "cmd:true")
    assert proc.returncode == 2
    assert "every 5m" in proc.stderr
    assert cli("history", "--limit", "0").returncode == 2


def test_log_format_and_level_are_checked_before_anything_runs(cli: Cli) -> None:
    console = cli("run", "--log-format", "console", "--log-level", "info", "--", "cmd:echo hi")
    assert console.returncode == 0 and "run finished" in console.stderr and not console.stderr.startswith("{")
    as_json = cli("run", "--log-format", "json", "--log-level", "INFO", "--", "cmd:echo hi")
    assert json.loads(as_json.stderr.splitlines()[-1])["event"] == "run finished"
    bad_format = cli("run", "--log-format", "xml", "--", "cmd:echo never")
    assert bad_format.returncode == 2 and "console, json" in bad_format.stderr
    bad_level = cli("run", "--", "cmd:echo never", env={"SUPERTASK_LOG_LEVEL": "loud"})
    assert bad_level.returncode == 2 and "debug, info, warning, error" in bad_level.stderr
    assert "never" not in bad_format.stdout + bad_level.stdout
    assert len(history(cli)) == 2


def test_child_environment_cwd_env_file(cli: Cli, tmp_path: Path) -> None:
    envfile = write(tmp_path / "app.env", "# comment\nexport FROM_FILE='file value'\nSHARED=file\n")
    (tmp_path / "jobdir").mkdir()
    out = tmp_path / "env.json"
    write(cli.cwd / "supertask.yaml", f"""
namespace: envtest
jobs:
  - name: show-env
    when: once
    cwd: {tmp_path / 'jobdir'}
    env_file: {envfile}
    env: {{SHARED: job, NUMBER: 5}}
    run: >-
      python:import json, os; json.dump({{k: os.environ.get(k) for k in
      ['SUPERTASK_RUN_ID', 'SUPERTASK_JOB', 'SUPERTASK_NAMESPACE', 'SUPERTASK_SCHEDULED',
      'FROM_FILE', 'SHARED', 'NUMBER']}} | {{'cwd': os.getcwd()}}, open('{out}', 'w'))
""")
    sched = cli.start()
    try:
        wait_until(out.exists, what="the job's output file")
        sched.wait_event("run finished", job="show-env")
    finally:
        assert sched.stop() == 0
    env = json.loads(out.read_text())
    run = history(cli)[0]
    assert env["SUPERTASK_RUN_ID"] == str(run["id"])
    assert env["SUPERTASK_JOB"] == "show-env" and env["SUPERTASK_NAMESPACE"] == "envtest"
    assert env["SUPERTASK_SCHEDULED"] == run["scheduled"]
    assert (env["FROM_FILE"], env["SHARED"], env["NUMBER"]) == ("file value", "job", "5")
    assert env["cwd"] == str(tmp_path / "jobdir")
    # `once` fires when first synced, not on every restart
    sched = cli.start()
    sched.wait_event("scheduler started")
    assert sched.stop() == 0
    assert len(history(cli)) == 1


# -- the scheduler ---------------------------------------------------------------------------


def test_fires_on_time_relays_output_and_stops_cleanly(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ticks"
    write(cli.cwd / "timetable.yaml", f"""
jobs:
  - name: tick
    when: "* * * * * *"
    run: "cmd:date +%s.%N >> {out}; echo tick $SUPERTASK_RUN_ID"
""")
    sched = cli.start("--file", "timetable.yaml")
    try:
        wait_until(lambda: len(lines(out)) >= 3, what="three ticks")
        event = sched.wait_event("run finished", job="tick")
        assert event["status"] == "succeeded"
        relayed = [e for e in sched.events() if e.get("stream") == "stdout"]
        assert relayed and relayed[0]["job"] == "tick" and relayed[0]["event"].startswith("tick ")
        assert "run" in relayed[0]
    finally:
        assert sched.stop() == 0
    runs = [r for r in history(cli) if r["status"] == "succeeded"]
    assert len(runs) >= 3
    for run in runs:
        assert run["reason"] == "schedule"
        scheduled = run["scheduled"]
        assert scheduled.endswith("+00:00")
    # each fire started within its second
    fired = sorted(float(x) for x in lines(out))
    scheduled = sorted(_ts(r["scheduled"]) for r in runs)
    assert all(0 <= f - s < 1.0 for f, s in zip(fired, scheduled, strict=False))
    assert len(set(r["scheduled"] for r in history(cli))) == len(history(cli))


def _ts(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def test_invalid_timetable_exits_2_and_leaves_the_store_as_it_was(cli: Cli) -> None:
    write(cli.cwd / "other.yaml", "namespace: other\njobs:\n  - {name: b, shedule: '@daily', run: 'cmd:true'}\n")
    proc = cli("run", "--file", "other.yaml")  # a first start: nothing good to fall back on
    assert proc.returncode == 2
    assert "other.yaml:3" in proc.stderr and "shedule" in proc.stderr
    assert not (cli.home / "supertask.db").exists()  # no store was made
    assert cli("list-namespaces").returncode == 2  # ... and reading commands say so
    write(cli.cwd / "supertask.yaml", "namespace: keep\njobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n")
    sched = cli.start()
    sched.wait_event("scheduler started")
    assert sched.stop() == 0
    before = cli.json("list-jobs")
    write(cli.cwd / "supertask.yaml", "namespace: keep\njobs:\n  - {name: b, shedule: '@daily', run: 'cmd:true'}\n")
    sched = cli.start()  # a restart on a broken file: the last good jobs, the store as it was
    try:
        invalid = sched.wait_event("timetable invalid at start")
        assert "supertask.yaml:3" in invalid["problems"][0] and "shedule" in invalid["problems"][0]
        sched.wait_event("scheduler started")
        assert cli.json("list-jobs", "--no-live") == before
    finally:
        assert sched.stop() == 0


def test_restart_keeps_unchanged_schedules_and_syncs_changes(cli: Cli) -> None:
    path = cli.cwd / "supertask.yaml"
    write(path, """
namespace: sync
jobs:
  - {name: hourly, when: every 1h, run: "cmd:true"}
  - {name: gone, when: "@daily", run: "cmd:true"}
  - {name: edited, when: every 2h, run: "cmd:true"}
""")
    sched = cli.start()
    sched.wait_event("scheduler started")
    assert sched.stop() == 0
    first = {j["name"]: j for j in cli.json("list-jobs", "--ns", "sync")}
    assert set(first) == {"hourly", "gone", "edited"}
    # a changed job's next fire is counted from the restart: let the clock pass the first start's second
    first_start = _ts(first["edited"]["next_fire"]) - 2 * 3600
    wait_until(lambda: time.time() >= first_start + 1.05, 5, what="the next second")
    write(path, """
namespace: sync
jobs:
  - {name: hourly, when: every 1h, run: "cmd:true"}
  - {name: edited, when: every 2h, run: "cmd:echo changed"}
  - {name: fresh, when: "@daily", run: "cmd:true"}
""")
    sched = cli.start()
    synced = sched.wait_event("timetable synced")
    assert (synced["added"], synced["changed"], synced["removed"], synced["unchanged"]) == (1, 1, 1, 1)
    assert sched.stop() == 0
    second = {j["name"]: j for j in cli.json("list-jobs", "--ns", "sync")}
    assert set(second) == {"hourly", "edited", "fresh"}
    assert second["hourly"]["next_fire"] == first["hourly"]["next_fire"]  # kept, not recomputed
    assert second["edited"]["next_fire"] != first["edited"]["next_fire"]  # changed: from now
    assert second["edited"]["run"] == "cmd:echo changed"


def _set_next_run(home: Path, namespace: str, job: str, ts: float) -> None:
    with sqlite3.connect(home / "supertask.db") as db:
        db.execute("UPDATE supertask_jobs SET next_run_time=? WHERE namespace=? AND name=?", (ts, namespace, job))


def test_missed_fires_catch_up_within_grace_else_skipped(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", """
namespace: downtime
jobs:
  - {name: recent, when: every 1h, run: "cmd:echo caught up"}
  - {name: stale, when: every 1h, misfire_grace: 30s, run: "cmd:echo never"}
""")
    sched = cli.start()
    sched.wait_event("scheduler started")
    assert sched.stop() == 0
    now = time.time()
    _set_next_run(cli.home, "downtime", "recent", now - 20)  # missed 20 s ago, grace 60 s
    _set_next_run(cli.home, "downtime", "stale", now - 3 * 3600 - 1800)  # missed 4 fires, grace 30 s
    sched = cli.start()
    try:
        sched.wait_event("run finished", job="recent")
        runs = wait_until(lambda: len(history(cli)) >= 2 and history(cli), what="two runs")
    finally:
        assert sched.stop() == 0
    by_job = {r["job"]: r for r in runs}
    assert by_job["recent"]["reason"] == "catch-up" and by_job["recent"]["status"] == "succeeded"
    assert by_job["stale"]["status"] == "skipped"
    assert "missed 4 fire(s)" in by_job["stale"]["message"]
    assert len(runs) == 2, runs  # one catch-up, one skipped row: nothing doubled
    stale = {j["name"]: j for j in cli.json("list-jobs")}["stale"]
    assert _ts(stale["next_fire"]) > time.time()


def test_restart_neither_loses_nor_doubles_a_fire(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "fires"
    write(cli.cwd / "supertask.yaml", f"""
namespace: every-second
jobs:
  - {{name: s, when: "* * * * * *", run: "cmd:echo $SUPERTASK_SCHEDULED >> {out}"}}
""")
    for _ in range(2):
        sched = cli.start()
        n = len(lines(out))
        wait_until(lambda n=n: len(lines(out)) >= n + 2, what="two more fires")
        assert sched.stop() == 0
    fired = lines(out)
    assert len(fired) == len(set(fired))
    runs = history(cli)
    assert len({r["scheduled"] for r in runs}) == len(runs)


def test_timeout_ends_the_whole_process_group(cli: Cli, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    write(cli.cwd / "supertask.yaml", f"""
namespace: timeouts
jobs:
  - name: slow
    when: once
    timeout: 0.5s
    run: "cmd:sleep 300 & echo $! > {pidfile}; (setsid sh -c 'echo $$ > {pidfile}.daemon; exec sleep 300' &); sleep 300"
""")
    sched = cli.start()
    try:
        event = sched.wait_event("run finished", job="slow")
    finally:
        assert sched.stop() == 0
    assert event["status"] == "timed-out"
    grandchild = int(pidfile.read_text())
    daemon = int(Path(f"{pidfile}.daemon").read_text())  # left the group and the tree (setsid)
    for pid in (grandchild, daemon):
        wait_until(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
                   what=f"process {pid} to end")
    run = history(cli)[0]
    assert run["status"] == "timed-out" and "timed out after 0.5s" in run["message"]


def test_overlap_skip_records_a_skipped_run(cli: Cli, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    write(cli.cwd / "supertask.yaml", f"""
namespace: overlap
jobs:
  - name: long
    when: "* * * * * *"
    run: "cmd:while [ ! -e {gate} ]; do sleep 0.05; done"
""")
    sched = cli.start()
    try:
        event = sched.wait_event("run skipped: previous run still in flight", job="long")
        gate.write_text("go")
        sched.wait_event("run finished", job="long")
    finally:
        assert sched.stop() == 0
    assert event["level"] == "warning"
    statuses = [r["status"] for r in history(cli)]
    assert "skipped" in statuses and "succeeded" in statuses


def test_shutdown_waits_for_running_jobs_then_ends_them(cli: Cli, tmp_path: Path) -> None:
    started = tmp_path / "started"
    write(cli.cwd / "supertask.yaml", f"""
namespace: shutdown
jobs:
  - {{name: quick, when: once, run: "cmd:touch {started}; sleep 0.5; echo finished"}}
""")
    sched = cli.start()
    wait_until(started.exists, what="the job to start")
    assert sched.stop(signal.SIGINT) == 0
    assert history(cli)[0]["status"] == "succeeded"  # waited for it

    write(cli.cwd / "supertask.yaml", f"""
namespace: shutdown
jobs:
  - {{name: stuck, when: once, run: "cmd:touch {started}.2; sleep 300"}}
""")
    sched = cli.start("--grace", "0.5s")
    wait_until(lambda: Path(f"{started}.2").exists(), what="the stuck job to start")
    t0 = time.monotonic()
    assert sched.stop() == 0
    assert time.monotonic() - t0 < 15
    run = [r for r in history(cli) if r["job"] == "stuck"][0]
    assert run["status"] == "killed"


def test_steps_run_in_order_with_if_and_continue_on_error(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "steps"
    write(cli.cwd / "supertask.yaml", f"""
namespace: steps
jobs:
  - name: pipeline
    when: once
    steps:
      - {{name: one, run: "cmd:echo one >> {out}"}}
      - {{name: flaky, run: "cmd:exit 1", continue_on_error: true}}
      - {{name: two, run: "cmd:echo two >> {out}; exit 5"}}
      - {{name: skipped, run: "cmd:echo nope >> {out}"}}
      - {{name: cleanup, run: "cmd:echo cleanup >> {out}", if: always}}
""")
    sched = cli.start()
    try:
        event = sched.wait_event("run finished", job="pipeline")
    finally:
        assert sched.stop() == 0
    assert lines(out) == ["one", "two", "cleanup"]
    assert event["status"] == "failed" and event["exit_code"] == 5


def test_python_file_through_uv_with_its_own_dependencies(cli: Cli, tmp_path: Path) -> None:
    script = write(tmp_path / "job.py", """# /// script
# dependencies = ["tabulate"]
# ///
import tabulate
print(tabulate.tabulate([["uv", 1]]).splitlines()[1].split()[0])
""")
    proc = cli("run", "--file", str(script), timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "uv"
    assert cli("run", "--", "python:import tabulate").returncode == 1  # not in supertask's own env


def test_uv_example_brings_its_own_dependency_from_any_folder(cli: Cli) -> None:
    example = ROOT / "examples" / "uv.yaml"
    assert cli("validate", str(example)).returncode == 0
    sched = cli.start("--file", str(example), "--no-watch")  # cli.cwd is a temporary folder
    try:
        sched.wait_event("control ready")
        proc = cli("jobs", "trigger", "weather-report", "--wait", timeout=300)
    finally:
        assert sched.stop() == 0
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "weather-report" in proc.stdout and "--city Berlin" in proc.stdout
    assert "tabulate" in (ROOT / "examples" / "scripts" / "weather_report.py").read_text()
    assert cli("run", "--", "python:import tabulate").returncode == 1  # not in supertask's own env


def test_when_daily_one_liner_stays_in_the_foreground(cli: Cli) -> None:
    sched = cli.start("--when", "@daily", "--", "cmd:echo daily")
    started = sched.wait_event("scheduler started")
    assert started["jobs"] == 1 and started["next_fire"]
    assert sched.proc.poll() is None
    jobs = cli.json("list-jobs")
    assert jobs[0]["when"] == "@daily" and jobs[0]["run"] == "cmd:echo daily"
    assert sched.stop() == 0


def test_tables_show_times_in_the_jobs_zone_with_its_name(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", """
namespace: zones
jobs:
  - {name: berlin, when: "0 3 * * *", timezone: Europe/Berlin, run: "cmd:true"}
""")
    sched = cli.start("--no-watch")
    try:
        sched.wait_event("scheduler started")
    finally:
        assert sched.stop() == 0
    fire = cli.json("list-jobs")[0]["next_fire"]  # 03:00 in Berlin, as UTC
    assert fire[10:] in ("T02:00:00+00:00", "T01:00:00+00:00"), fire
    table = cli("list-jobs", "--no-live").stdout
    # the job's own wall time and zone, not UTC, nor a bare 03:00 that reads as local time
    assert f"{fire[5:10]} 03:00 CET" in table, table


def test_log_file_keeps_interleaved_stamped_streams(cli: Cli) -> None:
    proc = cli("run", "--", "cmd:echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2")
    assert proc.returncode == 0
    run = history(cli)[0]
    text = Path(run["log_path"]).read_text().splitlines()
    assert [line.split(" ", 2)[1:] for line in text] == [["stdout", "out1"], ["stderr", "err1"], ["stdout", "out2"]]
    assert os.stat(run["log_path"]).st_size > 0


def test_one_liner_on_an_existing_store_imports_no_sqlalchemy_nor_typer(cli: Cli) -> None:
    """The one-shot path's start-up (docs/benchmarks.md): with a SQLite store in place,
    it records the run through the stdlib sqlite3 and leaves the heavy modules alone."""
    assert cli("run", "--", "cmd:true").returncode == 0  # creates the store
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "supertask", "run", "--", "cmd:echo fast"],
                          cwd=cli.cwd, env=cli.env, capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "fast\n")
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time")}
    assert not {"sqlalchemy", "apscheduler", "rich", "croniter", "psutil", "typer", "yaml"} & imported
    # nor the stdlib modules it does without: the machine's zone for `once`, OpenSSL for a
    # few digests, logging, socket for the host name
    assert not {"zoneinfo", "tzlocal", "hashlib", "logging", "socket", "getpass", "difflib", "shutil", "typing"} & imported
    assert [r["log_tail"] for r in history(cli)] == ["fast", ""]
    assert not (cli.home / "supertask.db-wal").exists()  # the store was closed: its WAL checkpointed


def test_an_unchanged_timetable_is_not_read_again_at_a_restart(cli: Cli) -> None:
    """supertask.timetable.syncmark: the same file and an untouched namespace skip the sync; any
    change to either (or a missing env_file) reads and syncs the file in full."""
    env_file = cli.cwd / "app.env"
    env_file.write_text("A=1\n")
    path = cli.cwd / "supertask.yaml"
    path.write_text("namespace: marks\njobs:\n  - {name: a, when: every 1h, run: 'cmd:true', env_file: app.env}\n")

    def synced() -> dict:
        sched = cli.start()
        try:
            event = sched.wait_event("timetable synced")
            sched.wait_event("scheduler started")
        finally:
            assert sched.stop() == 0
        return event

    first = synced()
    assert first["added"] == 1
    nxt = cli.json("list-jobs")[0]["next_fire"]
    assert synced()["unchanged"] == "all"
    assert cli.json("list-jobs")[0]["next_fire"] == nxt  # schedule state kept
    path.write_text(path.read_text() + "  - {name: b, when: every 2h, run: 'cmd:true'}\n")
    assert synced()["added"] == 1
    assert synced()["unchanged"] == "all"
    # a one-shot run in the namespace adds a job: the next start syncs, and the file wins
    assert cli("run", "--ns", "marks", "--name", "stray", "--", "cmd:true").returncode == 0
    assert synced()["removed"] == 1
    env_file.unlink()  # the file is read again (and found broken: the last good sync is served)
    sched = cli.start("--no-watch")
    try:
        invalid = sched.wait_event("timetable invalid at start")
    finally:
        assert sched.stop() == 0
    assert "env_file" in invalid["problems"][0] and "does not exist" in invalid["problems"][0]


def test_a_timeout_ends_only_its_own_runs_not_another_stores(cli: Cli, tmp_path: Path) -> None:
    """Two schedulers on one machine, different stores, the same namespace and run ids:
    one's timeout must not end the other's run (SUPERTASK_RUN_KEY names the store)."""
    other = Cli(tmp_path / "home-b", None, tmp_path / "work-b")
    other.cwd.mkdir()
    for c, timeout in ((cli, "timeout: 1s"), (other, "timeout: 1h")):
        (c.cwd / "supertask.yaml").write_text(
            f"namespace: same\njobs:\n  - {{name: long, when: once, run: 'cmd:sleep 60', {timeout}}}\n")
    b = other.start("--grace", "1s")
    try:
        b.wait_event("run started", job="long")
        pid = wait_until(lambda: [r["pid"] for r in other.json("status")["runs"] if r["pid"]], what="b's pid")[0]
        a = cli.start()
        try:
            a.wait_event("run finished", job="long", timeout=30)
        finally:
            assert a.stop() == 0
        assert history(cli)[0]["status"] == "timed-out"
        [run_b] = history(other)
        assert (run_b["id"], run_b["status"]) == (1, "running")
        assert psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    finally:
        assert b.stop() == 0


def test_a_run_whose_log_cannot_be_written_goes_on_without_it(cli: Cli) -> None:
    (cli.home / "logs").mkdir(parents=True)
    (cli.home / "logs" / "nolog").write_text("a file where the namespace's log folder would be")
    write(cli.cwd / "supertask.yaml", """
namespace: nolog
jobs:
  - {name: chatty, when: once, run: "cmd:echo hello; sleep 0.2; exit 3"}
  - {name: quiet, when: once, run: "cmd:true"}
""")
    sched = cli.start()
    try:
        wait_until(lambda: len([r for r in history(cli) if r["status"] != "running"]) == 2, timeout=30,
                   what="both runs to end")
    finally:
        assert sched.stop() == 0
    runs = {r["job"]: r for r in history(cli)}
    chatty = runs["chatty"]
    assert (chatty["status"], chatty["exit_code"], chatty["log_path"]) == ("failed", 3, None)  # its own exit
    assert chatty["message"].startswith("log not kept: cannot write ")
    assert chatty["log_tail"] == "hello"
    assert (runs["quiet"]["status"], runs["quiet"]["log_path"]) == ("succeeded", None)  # nothing to write
    assert "run log not kept" in sched.output
