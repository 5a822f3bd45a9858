"""What an operator meets (issue 14): one scheduler per state folder, hooks that find
supertask, mail on failure, @reboot per host, live changes in the log, a broken file
at a restart — each with the real CLI and real schedulers."""

from __future__ import annotations

import os
import signal

from tests.conftest import Cli, wait_until


def timetable(cli: Cli, text: str) -> None:
    (cli.cwd / "supertask.yaml").write_text(text)


TICKING = """
namespace: {ns}
jobs:
  - {{name: tick, when: "every 1s", run: "cmd:echo tick"}}
"""


def test_a_second_scheduler_for_a_namespace_is_refused_naming_the_first(cli: Cli) -> None:
    timetable(cli, TICKING.format(ns="one-only"))
    first = cli.start()
    try:
        first.wait_event("scheduler started")
        second = cli("run", timeout=30)
        assert second.returncode == 2, second.stderr
        assert f"another scheduler (pid {first.proc.pid})" in second.stderr and "--allow-second" in second.stderr
        assert cli("status", "--json").returncode == 0  # the one that runs is the one status sees
        # on purpose: it starts, says so, and names the first
        shared = cli.start("--allow-second")
        try:
            shared.wait_event("second scheduler by request", first_pid=first.proc.pid)
            shared.wait_event("scheduler started")
        finally:
            assert shared.stop() == 0
    finally:
        first.kill()  # kill -9: the kernel lets go of its lock
    again = cli.start()
    try:
        again.wait_event("scheduler started")
    finally:
        assert again.stop(signal.SIGTERM) == 0
    assert not os.path.exists(cli.home / "control" / "one-only.sock")


def test_a_scheduler_of_another_namespace_in_the_same_folder_starts(cli: Cli, tmp_path: object) -> None:
    timetable(cli, TICKING.format(ns="first-ns"))
    first = cli.start()
    try:
        first.wait_event("scheduler started")
        (cli.cwd / "other.yaml").write_text(TICKING.format(ns="second-ns"))
        other = cli.start("--file", "other.yaml")
        try:
            other.wait_event("scheduler started")
            wait_until(lambda: (cli.home / "control" / "second-ns.sock").exists(), what="its own socket")
        finally:
            assert other.stop() == 0
    finally:
        assert first.stop() == 0


def test_every_live_change_writes_one_event_naming_who_and_what(cli: Cli) -> None:
    import getpass
    import json

    timetable(cli, """
namespace: audited
jobs:
  - {name: nightly, when: "0 3 * * *", timezone: UTC, run: "cmd:echo dump", env: {PGPASSWORD: hunter2}}
""")
    sched = cli.start("--listen", "127.0.0.1:0")
    try:
        ready = sched.wait_event("control ready")
        me = getpass.getuser()
        for args in (("pause", "nightly"), ("resume", "nightly"), ("reschedule", "nightly", "--when", "0 4 * * *"),
                     ("edit", "nightly", "--set", "retries=2", "--set", "env.PGPASSWORD=s3cret"),
                     ("add", "hourly", "--when", "@hourly", "--", "cmd:echo hi")):
            proc = cli("jobs", *args)
            assert proc.returncode == 0, proc.stderr
        proc = cli("jobs", "remove", "hourly", "--connect", ready["tcp"])
        assert proc.returncode == 0, proc.stderr
        paused = sched.wait_event("job paused", job="nightly")
        resumed = sched.wait_event("job resumed", job="nightly")
        moved = sched.wait_event("job rescheduled", job="nightly")
        edited = sched.wait_event("job edited", job="nightly")
        added = sched.wait_event("job added", job="hourly")
        removed = sched.wait_event("job removed", job="hourly")
    finally:
        assert sched.stop() == 0
    assert paused["by"] == resumed["by"] == moved["by"] == edited["by"] == added["by"] == me
    assert removed["by"] == "token"  # over TCP the peer is whoever holds the token
    assert (paused["before"], paused["after"]) == ({"paused": False}, {"paused": True})
    assert (resumed["before"], resumed["after"]) == ({"paused": True}, {"paused": False})
    assert (moved["before"], moved["after"]) == ({"when": "0 3 * * *"}, {"when": "0 4 * * *"})
    assert "T04:00:00" in moved["next_fire"] and "T03:00:00" in moved["next_fire_before"]
    assert edited["before"] == {"env": {"PGPASSWORD": "***"}, "retries": 0}
    assert edited["after"] == {"env": {"PGPASSWORD": "***"}, "retries": 2}
    assert added["before"] is None and added["after"]["when"] == "@hourly" and added["after"]["run"] == "cmd:echo hi"
    assert removed["before"]["when"] == "@hourly" and removed["after"] is None
    assert "hunter2" not in sched.output and "s3cret" not in sched.output
    assert sum(1 for e in sched.events() if e.get("event", "").startswith("job ")) == 6, json.dumps(sched.events())
