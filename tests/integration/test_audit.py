"""Every change writes an audit row (issue 17 point 5): through the control socket (the
live CLI), through the store with no scheduler, and a sync of the timetable file;
`supertask audit --json` shows who, from where, what, before and after, env values masked."""

from __future__ import annotations

import getpass
import json

from tests.conftest import Cli, wait_until

TIMETABLE = """\
namespace: alpha
jobs:
  - {name: hello, when: "@daily", run: "cmd:echo hi", env: {SECRET: hunter2}}
  - {name: other, when: "@hourly", run: "cmd:true"}
"""


def test_changes_from_the_live_cli_the_store_and_a_sync_are_audited(cli: Cli) -> None:
    (cli.cwd / "supertask.yaml").write_text(TIMETABLE)
    sched = cli.start("--grace", "2s")
    try:
        sched.wait_event("scheduler started", timeout=60)
        rows = cli.json("audit")
        assert sorted((r["action"], r["job"]) for r in rows) == [("sync: added", "hello"), ("sync: added", "other")]
        added = next(r for r in rows if r["job"] == "hello")
        assert added["after"]["env"] == {"SECRET": "***"} and added["who"] == getpass.getuser()
        assert added["source"].startswith(f"sync {cli.cwd / 'supertask.yaml'}")

        assert cli("jobs", "pause", "hello").returncode == 0
        assert cli("jobs", "edit", "hello", "--set", "env.SECRET=swordfish").returncode == 0
        assert cli("jobs", "trigger", "other").returncode == 0
        rows = cli.json("audit")
        assert [(r["action"], r["job"]) for r in rows[:3]] == [("triggered", "other"), ("edited", "hello"),
                                                               ("paused", "hello")]
        assert all(r["source"].startswith("control on ") and r["who"] == getpass.getuser() for r in rows[:3])
        assert rows[1]["before"] == {"env": {"SECRET": "***"}} and rows[1]["after"] == {"env": {"SECRET": "***"}}
        assert rows[2]["before"] == {"paused": False} and rows[2]["after"] == {"paused": True}

        # a reload: one job changed (its before and after), one removed (what it had)
        (cli.cwd / "supertask.yaml").write_text(TIMETABLE.split("  - {name: other")[0].replace("@daily", "@weekly"))
        wait_until(lambda: cli.json("audit")[0]["action"].startswith("sync: "), 60, what="the sync's audit rows")
        synced = {r["action"]: r for r in cli.json("audit")[:2]}
        assert set(synced) == {"sync: changed", "sync: removed"}
        changed, removed = synced["sync: changed"], synced["sync: removed"]
        assert changed["job"] == "hello"  # the file's env value replaces the live edit's: named, masked
        assert changed["before"] == {"when": "@daily", "env": {"SECRET": "***"}}
        assert changed["after"] == {"when": "@weekly", "env": {"SECRET": "***"}}
        assert (removed["job"], removed["before"]["when"], removed["after"]) == ("other", "@hourly", None)
    finally:
        assert sched.stop() == 0, sched.output
    assert cli("jobs", "resume", "--ns", "alpha", "hello").returncode == 0  # no scheduler: the store
    last = cli.json("audit", "--ns", "alpha", "--job", "hello")[0]
    assert (last["action"], last["source"].split(" on ")[0], last["after"]) == ("resumed", "cli", {"paused": False})
    text = json.dumps(cli.json("audit"))
    assert "hunter2" not in text and "swordfish" not in text
    table = cli("audit")
    assert table.returncode == 0 and "sync: removed" in table.stdout


LONG = """\
namespace: alpha
jobs:
  - {name: long, when: "@yearly", run: "cmd:echo started; sleep 120"}
"""


def test_every_live_cli_change_writes_exactly_one_row_naming_who_and_where(cli: Cli) -> None:
    """Each change through the control socket, the whole scheduler's (pause, resume,
    stop) and a run's end (kill) too: exactly one row, with the unix user and the host;
    a restart whose file changed a job: the job's before and after."""
    (cli.cwd / "supertask.yaml").write_text(LONG)
    sched = cli.start("--grace", "2s")
    me = getpass.getuser()
    try:
        sched.wait_event("control ready", timeout=60)
        seen = len(cli.json("audit"))

        def one_row(*args: str) -> dict:
            nonlocal seen
            done = cli(*args)
            assert done.returncode == 0, (args, done.stderr)
            rows = wait_until(lambda: (r := cli.json("audit", "--limit", "1000")) and len(r) > seen and r, 30,
                              what=f"the audit row of {args}")
            assert len(rows) == seen + 1, (args, rows[: len(rows) - seen])
            seen = len(rows)
            assert rows[0]["who"] == me and rows[0]["source"].startswith("control on "), rows[0]
            return rows[0]

        run_id = one_row("jobs", "trigger", "long")["after"]
        run_id = wait_until(lambda: (h := cli.json("history", "--ns", "alpha")) and h[0]["status"] == "running"
                            and h[0]["id"], 60, what="the run in flight")
        assert run_id
        killed = one_row("jobs", "kill", str(run_id))
        assert (killed["action"], killed["job"], killed["before"]) == ("killed", "long",
                                                                       {"run_id": run_id, "status": "running"})
        assert one_row("jobs", "pause", "long")["action"] == "paused"
        assert one_row("jobs", "resume", "long")["action"] == "resumed"
        assert one_row("jobs", "reschedule", "long", "--when", "@monthly")["action"] == "rescheduled"
        assert one_row("jobs", "edit", "long", "--set", "retries=2")["after"] == {"retries": 2}
        assert one_row("jobs", "add", "extra", "--when", "@daily", "--", "cmd:true")["action"] == "added"
        assert one_row("jobs", "remove", "extra")["action"] == "removed"
        paused = one_row("pause")
        assert (paused["action"], paused["namespace"], paused["after"]["paused"]) == ("paused all", "alpha", True)
        assert one_row("resume")["action"] == "resumed all"
        stopped = one_row("stop")
        assert (stopped["action"], stopped["after"]["pid"]) == ("stopped", sched.proc.pid)
    finally:
        assert sched.stop() == 0, sched.output

    # a start whose file changed a job: the sync's row has the job's keys before and after
    (cli.cwd / "supertask.yaml").write_text(LONG.replace("@yearly", "@daily"))
    sched = cli.start("--grace", "2s")
    try:
        sched.wait_event("scheduler started", timeout=60)
        row = cli.json("audit")[0]
        assert (row["action"], row["job"], row["who"]) == ("sync: changed", "long", me)
        # the live reschedule and edit stood until this start: the file's keys replace them
        assert row["before"] == {"when": "@monthly", "retries": 2} and row["after"] == {"when": "@daily", "retries": 0}
    finally:
        assert sched.stop() == 0, sched.output


def test_every_change_in_the_store_with_no_scheduler_writes_exactly_one_row(cli: Cli) -> None:
    """`jobs ... --ns NS` with no scheduler to talk to changes the store: one row each, from `cli on HOST`."""
    assert cli("run", "--ns", "alpha", "--name", "hello", "--", "cmd:true").returncode == 0
    me, seen = getpass.getuser(), len(cli.json("audit"))
    for args, action in ((("pause", "hello"), "paused"), (("resume", "hello"), "resumed"),
                         (("reschedule", "hello", "--when", "@monthly"), "rescheduled"),
                         (("edit", "hello", "--set", "retries=2"), "edited"),
                         (("add", "extra", "--when", "@daily", "--", "cmd:true"), "added"),
                         (("trigger", "extra"), "triggered"), (("remove", "extra"), "removed")):
        done = cli("jobs", args[0], "--ns", "alpha", *args[1:])
        assert done.returncode == 0, (args, done.stderr)
        rows = cli.json("audit", "--limit", "1000")
        assert len(rows) == seen + 1, (args, rows[: len(rows) - seen])
        seen = len(rows)
        assert (rows[0]["action"], rows[0]["who"], rows[0]["namespace"]) == (action, me, "alpha"), rows[0]
        assert rows[0]["source"].startswith("cli on "), rows[0]
