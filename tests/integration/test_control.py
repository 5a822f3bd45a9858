"""Live control end to end: `supertask run` in a subprocess, every live command from a
second process over the real Unix socket and over TCP with a token."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from tests.conftest import SUPERTASK, Cli, Scheduler, wait_until

TOKEN = "test-token-0123456789"


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def started(cli: Cli, *args: str, env: dict[str, str] | None = None) -> Scheduler:
    sched = cli.start(*args, env=env)
    sched.wait_event("control ready")
    return sched


@pytest.fixture
def sched(cli: Cli, tmp_path: Path) -> Iterator[Scheduler]:
    write(cli.cwd / "supertask.yaml", f"""
namespace: live
jobs:
  - {{name: hourly, when: every 1h, run: "cmd:echo hourly"}}
  - {{name: fails, when: "@daily", run: "cmd:echo about to fail; exit 4"}}
  - {{name: sleeper, when: "@daily", run: "cmd:sleep 60"}}
  - {{name: lines, when: "@daily", run: "cmd:for i in 1 2 3 4; do echo line $i; sleep 0.4; done"}}
  - {{name: slowlines, when: "@daily", run: "cmd:for i in 1 2 3 4; do echo line $i; sleep 2; done"}}
  - {{name: marker, when: "@daily", run: "cmd:echo $WHO >> {tmp_path / 'marker'}"}}
""")
    sched = started(cli, "--listen", "127.0.0.1:0", "--grace", "2s", env={"SUPERTASK_TOKEN": TOKEN})
    try:
        yield sched
    finally:
        if sched.proc.poll() is None:
            sched.stop()
        else:
            sched._log.close()


def tcp_of(sched: Scheduler) -> str:
    return sched.wait_event("control ready")["tcp"]


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def jobs_by_name(cli: Cli, *args: str) -> dict[str, dict]:
    return {j["name"]: j for j in cli.json("list-jobs", *args)}


# -- finding the scheduler --------------------------------------------------------------------


def test_without_a_scheduler_live_commands_exit_3_and_say_how_to_start_one(cli: Cli) -> None:
    for args in (["status"], ["jobs", "trigger", "x"], ["stop"], ["pause"], ["jobs", "kill", "1"],
                 ["status", "--connect", "tcp://127.0.0.1:1"], ["status", "--connect", f"unix:{cli.home}/x.sock"]):
        proc = cli(*args, env={"SUPERTASK_TOKEN": TOKEN})
        assert proc.returncode == 3, (args, proc.stderr)
        assert "supertask run" in proc.stderr
    # list-jobs falls back to the store's view: there is none in this state folder yet
    proc = cli("list-jobs", "--json")
    assert proc.returncode == 2 and f"no store in the state folder {cli.home}" in proc.stderr


def test_socket_is_found_by_itself_and_named_by_connect(cli: Cli, sched: Scheduler) -> None:
    socket = cli.home / "control" / "live.sock"
    assert socket.exists()
    assert (os.stat(socket).st_mode & 0o777) == 0o600
    assert cli.json("status")["namespaces"] == ["live"]
    assert cli.json("status", "--connect", f"unix:{socket}")["namespaces"] == ["live"]
    assert cli.json("status", "--ns", "live")["pid"] == sched.proc.pid
    assert cli("status", "--ns", "other").returncode == 3


# -- status and list-jobs ----------------------------------------------------------------------


def test_status_shows_runs_in_flight_with_their_process_tree_and_host_telemetry(cli: Cli, sched: Scheduler) -> None:
    run_id = cli.json("jobs", "trigger", "sleeper")["run_id"]
    run = wait_until(lambda: [r for r in cli.json("status")["runs"] if r["pid"]], what="a run with a pid")[0]
    status = cli.json("status")
    assert status["version"] and status["uptime"] > 0 and status["pid"] == sched.proc.pid
    assert status["store"].startswith("sqlite:///") and status["namespaces"] == ["live"]
    assert status["jobs"] == {"total": 6, "paused": 0, "running": 1}
    assert run["run_id"] == run_id and run["job"] == "sleeper" and psutil.pid_exists(run["pid"])
    assert run["elapsed"] >= 0 and run["started"].endswith("+00:00")
    assert run["memory_rss"] > 0 and run["processes"] >= 1 and run["cpu_percent"] is not None
    # soonest first: the hourly job leads except in the hour before midnight (UTC), when the @daily ones do
    fires = status["next_fires"]
    assert "hourly" in [f["job"] for f in fires] and [f["next_fire"] for f in fires] == sorted(f["next_fire"] for f in fires)
    tel = status["telemetry"]
    assert 0 <= tel["cpu_percent"] <= 100 and len(tel["load"]) == 3
    assert tel["memory"]["total"] > 0 and tel["disk"]["total"] > 0
    human = ok(cli("status")).stdout
    assert "runs in flight" in human and "sleeper" in human and "next fires" in human


def test_list_jobs_is_live_while_a_scheduler_runs_and_the_store_view_otherwise(cli: Cli, sched: Scheduler) -> None:
    run_id = cli.json("jobs", "trigger", "sleeper")["run_id"]
    live = jobs_by_name(cli)
    assert live["sleeper"]["running"] == [run_id]
    assert live["hourly"]["next_fire"] and live["hourly"]["paused"] is False
    stored = jobs_by_name(cli, "--no-live")
    assert "running" not in stored["hourly"]
    assert {k: v for k, v in live["hourly"].items() if k != "running"} == stored["hourly"]
    assert "running: " + str(run_id) in ok(cli("list-jobs")).stdout
    # `list-jobs --json` is answered without typer (supertask.entry); typer's path gives the same
    assert cli.json("list-jobs") == cli.json("list-jobs", "--live") == cli.json("list-jobs", "--ns", "live")
    assert sched.stop() == 0
    assert "running" not in jobs_by_name(cli)["hourly"]


def test_the_live_list_jobs_table_is_the_one_typer_and_rich_print(cli: Cli, sched: Scheduler) -> None:
    """`list-jobs` is answered without typer (supertask.entry) and its table printed without
    rich where rich would only pad cells (supertask.cli.output.plain_table): the same bytes."""
    from supertask.cli.output import zone_time
    from tests.unit.test_output import JOBS, rich_table

    fast = ok(cli("list-jobs", "--wide"))
    assert fast.stdout == ok(cli("list-jobs", "--live", "--wide")).stdout == ok(
        cli("list-jobs", "--ns", "live", "--wide")).stdout
    rows = cli.json("list-jobs")
    assert rows and all(r["next_fire"] and not r["running"] for r in rows)
    cells = [[r["name"], r["when"], r["run"], "yes", zone_time(r["next_fire"], r["timezone"])] for r in rows]
    expected = "namespace live\n" + rich_table(JOBS[1:], cells, width=max(80, sum(
        max(len(c) for c in col) for col in zip(JOBS[1:], *cells, strict=False)) + 3 * 5 + 1))
    assert fast.stdout == expected and fast.stderr == ""


# -- jobs ------------------------------------------------------------------------------------------


def test_trigger_runs_now_with_reason_manual_and_wait_exits_with_its_code(cli: Cli, sched: Scheduler) -> None:
    proc = cli("jobs", "trigger", "fails", "--wait")
    assert proc.returncode == 4, proc.stderr
    assert "about to fail" in proc.stdout
    run = cli.json("history", "fails")[0]
    assert (run["reason"], run["status"], run["exit_code"]) == ("manual", "failed", 4)
    assert ok(cli("jobs", "trigger", "hourly", "--wait")).stdout.strip().endswith("stdout hourly")
    assert cli("jobs", "trigger", "nosuch").returncode == 2  # an unknown job is an input error


def test_trigger_of_a_running_overlap_skip_job_is_refused(cli: Cli, sched: Scheduler) -> None:
    cli.json("jobs", "trigger", "sleeper")
    proc = cli("jobs", "trigger", "sleeper")
    assert proc.returncode == 1 and "overlap: skip" in proc.stderr


def test_trigger_while_a_retry_waits_is_refused_and_records_nothing(cli: Cli, sched: Scheduler) -> None:
    ok(cli("jobs", "add", "retrying", "--when", "@daily", "--set", "retries=1", "--set", "retry_delay=1m",
           "--", "cmd:exit 1"))
    cli.json("jobs", "trigger", "retrying")
    sched.wait_event("retry scheduled", job="retrying")  # the first attempt failed; the retry waits a minute
    proc = cli("jobs", "trigger", "retrying")
    assert proc.returncode == 1 and "retry" in proc.stderr and "overlap: skip" in proc.stderr, proc.stderr
    assert [r["status"] for r in cli.json("history", "retrying")] == ["failed"]


def test_pause_resume_remove_persist_in_the_store(cli: Cli, sched: Scheduler) -> None:
    row = cli.json("jobs", "pause", "hourly")
    assert row["paused"] is True and row["next_fire"] is None
    assert jobs_by_name(cli, "--no-live")["hourly"]["paused"] is True
    assert jobs_by_name(cli)["hourly"]["paused"] is True
    row = cli.json("jobs", "resume", "hourly")
    assert row["paused"] is False and row["next_fire"]
    assert jobs_by_name(cli, "--no-live")["hourly"]["next_fire"] == row["next_fire"]
    assert cli.json("jobs", "remove", "marker")["removed"] is True
    assert "marker" not in jobs_by_name(cli) and "marker" not in jobs_by_name(cli, "--no-live")
    gone = cli("jobs", "remove", "marker")
    assert gone.returncode == 2 and "list-jobs" in gone.stderr
    for args in (("pause", "marker"), ("resume", "marker"), ("reschedule", "marker", "--when", "@daily"),
                 ("edit", "marker", "--set", "retries=1")):
        assert cli("jobs", *args).returncode == 2, args
    assert "marker" not in jobs_by_name(cli, "--no-live")


def test_reschedule_edit_and_add_take_effect_at_once_and_persist(cli: Cli, sched: Scheduler, tmp_path: Path) -> None:
    row = cli.json("jobs", "reschedule", "hourly", "--when", "every 2h")
    assert row["when"] == "every 2h"
    assert jobs_by_name(cli, "--no-live")["hourly"]["when"] == "every 2h"
    bad_when = cli("jobs", "reschedule", "hourly", "--when", "every 5 mins")
    assert bad_when.returncode == 2 and "job 'hourly' not changed: when: " in bad_when.stderr
    assert "every 5m" in bad_when.stderr and "timetable" not in bad_when.stderr

    ok(cli("jobs", "edit", "marker", "--set", "env.WHO=edited", "--set", "retries=2", "--set", "timeout=30s"))
    ok(cli("jobs", "trigger", "marker", "--wait"))
    assert (tmp_path / "marker").read_text() == "edited\n"
    bad = cli("jobs", "edit", "marker", "--set", "retries=lots")
    assert bad.returncode == 2 and "retries" in bad.stderr
    assert cli("jobs", "edit", "marker", "--set", "nosuchkey=1").returncode == 2

    out = tmp_path / "adhoc"
    row = json.loads(ok(cli("jobs", "add", "adhoc", "--when", "* * * * * *", "--set", "env.X=ad hoc", "--json",
                            "--", f"cmd:echo $X >> {out}")).stdout)
    assert row["name"] == "adhoc" and row["next_fire"]
    wait_until(lambda: out.exists() and out.read_text().startswith("ad hoc\n"), what="the ad-hoc job's fire")
    assert cli("jobs", "add", "adhoc", "--when", "@daily", "--", "cmd:true").returncode == 2
    ok(cli("jobs", "remove", "adhoc"))
    assert sched.stop() == 0
    stored = jobs_by_name(cli)
    assert stored["hourly"]["when"] == "every 2h" and "adhoc" not in stored


def test_a_later_file_sync_wins_over_live_edits(cli: Cli, sched: Scheduler) -> None:
    ok(cli("jobs", "reschedule", "hourly", "--when", "every 3h"))
    ok(cli("jobs", "add", "extra", "--when", "@daily", "--", "cmd:true"))
    assert sched.stop() == 0
    again = started(cli)
    try:
        rows = jobs_by_name(cli)
        assert rows["hourly"]["when"] == "every 1h"
        assert "extra" not in rows  # the file names the namespace's jobs
    finally:
        assert again.stop() == 0


def test_kill_ends_the_run_process_group(cli: Cli, sched: Scheduler) -> None:
    run_id = cli.json("jobs", "trigger", "sleeper")["run_id"]
    pid = wait_until(lambda: [r["pid"] for r in cli.json("status")["runs"] if r["run_id"] == run_id and r["pid"]],
                     what="the run's pid")[0]
    assert cli.json("jobs", "kill", str(run_id))["pid"] == pid
    wait_until(lambda: cli.json("history", "sleeper")[0]["status"] == "killed", what="the run killed")
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE,
               what="the child gone")
    assert cli("jobs", "kill", str(run_id)).returncode == 1


def test_logs_follow_streams_a_running_job_over_the_endpoint(cli: Cli, sched: Scheduler) -> None:
    run_id = cli.json("jobs", "trigger", "slowlines")["run_id"]
    proc = subprocess.Popen([*SUPERTASK, "logs", str(run_id), "--follow", "--connect", tcp_of(sched)],
                            cwd=cli.cwd, env={**cli.env, "SUPERTASK_TOKEN": TOKEN}, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.readline()
    first_seen = time.time()
    assert first.rstrip().endswith("stdout line 1")
    rest = proc.stdout.read()
    assert proc.wait(20) == 0
    run = cli.json("history", "slowlines")[0]
    assert run["status"] == "succeeded"
    assert first_seen < datetime.fromisoformat(run["finished"]).timestamp()  # streamed while it ran
    assert [line.split(" ", 2)[2] for line in rest.splitlines()] == ["line 2", "line 3", "line 4"]


def test_pause_and_resume_hold_and_release_all_firing(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "ticks"
    write(cli.cwd / "supertask.yaml", f'jobs:\n  - {{name: tick, when: "* * * * * *", run: "cmd:echo x >> {out}"}}\n')
    sched = started(cli)
    try:
        wait_until(out.exists, what="a first tick")
        assert cli.json("pause") == {"paused": True}
        assert cli.json("status")["paused"] is True
        time.sleep(1.2)  # a fire in flight when pausing may still land
        held = out.read_text()
        time.sleep(2.0)  # nothing is expected here: checking that nothing fires takes time
        assert out.read_text() == held
        assert cli.json("resume") == {"paused": False}
        wait_until(lambda: out.read_text() != held, what="a tick after resume")
    finally:
        assert sched.stop() == 0


# -- stop ------------------------------------------------------------------------------------------


def test_stop_lets_running_jobs_finish_and_exits_0(cli: Cli, sched: Scheduler) -> None:
    run_id = cli.json("jobs", "trigger", "lines")["run_id"]
    proc = ok(cli("stop", "--wait"))
    assert "stopped" in proc.stdout
    assert sched.proc.wait(5) == 0
    run = cli.json("history", "lines")[0]
    assert (run["id"], run["status"]) == (run_id, "succeeded")
    assert not (cli.home / "control" / "live.sock").exists()
    assert cli("status").returncode == 3


def test_stop_grace_ends_process_groups_after_it(cli: Cli, sched: Scheduler) -> None:
    run_id = cli.json("jobs", "trigger", "sleeper")["run_id"]
    pid = wait_until(lambda: [r["pid"] for r in cli.json("status")["runs"] if r["pid"]], what="the pid")[0]
    began = time.monotonic()
    data = json.loads(ok(cli("stop", "--wait", "--grace", "1s", "--json")).stdout)
    assert data["stopped"] is True and data["grace"] == 1.0
    assert time.monotonic() - began < 20
    assert sched.proc.wait(5) == 0
    run = cli.json("history", "sleeper")[0]
    assert run["id"] == run_id and run["status"] == "killed"
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# -- over TCP --------------------------------------------------------------------------------------


def test_every_command_works_over_tcp_with_the_token(cli: Cli, sched: Scheduler, tmp_path: Path) -> None:
    tcp = tcp_of(sched)
    env = {"SUPERTASK_TOKEN": TOKEN, "SUPERTASK_CONNECT": tcp}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return ok(cli(*args, env=env))

    # the control dir holds no socket the client could fall back to
    assert json.loads(run("status", "--json").stdout)["endpoints"]["tcp"] == tcp
    assert {j["name"] for j in json.loads(run("list-jobs", "--json").stdout)} >= {"hourly", "sleeper"}
    assert json.loads(run("jobs", "pause", "hourly", "--json").stdout)["paused"] is True
    assert json.loads(run("jobs", "resume", "hourly", "--json").stdout)["paused"] is False
    assert json.loads(run("jobs", "reschedule", "hourly", "--when", "every 4h", "--json").stdout)["when"] == "every 4h"
    run("jobs", "edit", "marker", "--set", "env.WHO=tcp")
    assert cli("jobs", "trigger", "fails", "--wait", env=env).returncode == 4
    run("jobs", "trigger", "marker", "--wait")
    assert (tmp_path / "marker").read_text() == "tcp\n"
    run("jobs", "add", "viatcp", "--when", "@daily", "--", "cmd:true")
    run("jobs", "remove", "viatcp")
    run_id = json.loads(run("jobs", "trigger", "sleeper", "--json").stdout)["run_id"]
    wait_until(lambda: any(r["pid"] for r in json.loads(run("status", "--json").stdout)["runs"]), what="pid")
    run("jobs", "kill", str(run_id))
    run("pause")
    run("resume")
    run("stop", "--wait")
    assert sched.proc.wait(5) == 0


def test_tcp_without_a_token_uses_the_generated_token_file(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", "jobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n")
    sched = started(cli, "--listen", "127.0.0.1:0")
    try:
        ready = sched.wait_event("control ready")
        token_file = Path(ready["token_file"])
        assert token_file == cli.home / "control" / "token"
        assert (os.stat(token_file).st_mode & 0o777) == 0o600
        # the local client reads the token file; another one passes it
        assert cli.json("status", "--connect", ready["tcp"])["namespaces"]
        other_home = {"SUPERTASK_HOME": str(cli.home.parent / "elsewhere")}
        assert cli("status", "--connect", ready["tcp"], env=other_home).returncode == 2
        assert cli("status", "--connect", ready["tcp"], env={**other_home, "SUPERTASK_TOKEN": "nope"}).returncode == 2
        token = token_file.read_text().strip()
        assert cli("status", "--connect", ready["tcp"], env={**other_home, "SUPERTASK_TOKEN": token}).returncode == 0
    finally:
        assert sched.stop() == 0


# -- concurrency -----------------------------------------------------------------------------------


def test_two_clients_editing_at_once_leave_a_consistent_store(cli: Cli, sched: Scheduler) -> None:
    from supertask.control.client import connect

    errors: list[BaseException] = []

    def editor(tag: str) -> None:
        try:
            with connect(None, home=cli.home) as client:
                for i in range(15):
                    client.call("edit_job", None, "hourly", (f"description={tag}-{i}", f"retries={i % 3}"))
                    client.call("add_job", None, f"{tag}-{i}", f"every {i + 1}h", "cmd:true", ())
                    client.call("pause_job", None, "sleeper")
                    client.call("resume_job", None, "sleeper")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=editor, args=(tag,)) for tag in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    live = cli.json("list-jobs")
    assert sched.stop() == 0
    stored = cli.json("list-jobs")
    assert [{k: v for k, v in r.items() if k != "running"} for r in live] == stored
    names = {r["name"] for r in stored}
    assert {f"{t}-{i}" for t in "ab" for i in range(15)} <= names
    hourly = {r["name"]: r for r in stored}["hourly"]
    assert hourly["description"] in {f"{t}-14" for t in "ab"}
    assert {r["name"]: r for r in stored}["sleeper"]["paused"] is False


def test_live_commands_answer_promptly_while_hundreds_of_jobs_fire(cli: Cli) -> None:
    jobs = "\n".join(f'  - {{name: j{i:03d}, when: "* * * * * *", run: "cmd:true"}}' for i in range(300))
    write(cli.cwd / "supertask.yaml", f"namespace: busy\njobs:\n{jobs}\n")
    sched = started(cli)
    try:
        from supertask.control.client import connect

        sched.wait_event("run finished")
        with connect(None, home=cli.home) as client:
            times = []
            for _ in range(7):
                began = time.perf_counter()
                rows = client.call("list_jobs", None)
                times.append(time.perf_counter() - began)
                assert len(rows) == 300
            began = time.perf_counter()
            client.call("status")
            status_time = time.perf_counter() - began
        assert statistics.median(times) < 0.5, times
        assert status_time < 2.0
        began = time.perf_counter()
        ok(cli("jobs", "pause", "j000"))
        assert time.perf_counter() - began < 5.0
    finally:
        sched.proc.send_signal(signal.SIGTERM)
        assert sched.proc.wait(60) == 0
