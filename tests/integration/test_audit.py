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

        (cli.cwd / "supertask.yaml").write_text(TIMETABLE.split("  - {name: other")[0])
        wait_until(lambda: cli.json("audit")[0]["action"] == "sync: removed", 60, what="the sync's audit row")
        assert cli.json("audit")[0]["job"] == "other"
    finally:
        assert sched.stop() == 0, sched.output
    assert cli("jobs", "resume", "--ns", "alpha", "hello").returncode == 0  # no scheduler: the store
    last = cli.json("audit", "--ns", "alpha", "--job", "hello")[0]
    assert (last["action"], last["source"].split(" on ")[0], last["after"]) == ("resumed", "cli", {"paused": False})
    text = json.dumps(cli.json("audit"))
    assert "hunter2" not in text and "swordfish" not in text
    table = cli("audit")
    assert table.returncode == 0 and "sync: removed" in table.stdout
