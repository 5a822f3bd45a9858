"""What a person at a terminal sees from the CLI: exit codes, JSON, tables, times and words."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import Cli


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def one_shot(cli: Cli, *args: str) -> None:
    proc = cli("run", *args)
    assert proc.returncode == 0, proc.stderr


def test_logs_takes_json_and_ns(cli: Cli) -> None:
    one_shot(cli, "--ns", "alpha", "--", "cmd:echo hello from alpha")
    (run,) = cli.json("history", "--all")
    proc = cli("logs", str(run["id"]), "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["run"]["id"] == run["id"] and data["run"]["status"] == "succeeded"
    assert "hello from alpha" in data["log"]
    assert "hello from alpha" in cli("logs", str(run["id"]), "--ns", "alpha").stdout
    other = cli("logs", str(run["id"]), "--ns", "beta")
    assert other.returncode == 2 and f"no run {run['id']}" in other.stderr


def test_history_shows_the_folders_timetable_namespace_unless_asked_for_all(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", "namespace: mine\njobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n")
    one_shot(cli, "--ns", "mine", "--name", "a", "--", "cmd:echo mine")
    one_shot(cli, "--ns", "theirs", "--name", "b", "--", "cmd:echo theirs")
    assert [r["namespace"] for r in cli.json("history")] == ["mine"]
    assert sorted(r["namespace"] for r in cli.json("history", "--all")) == ["mine", "theirs"]
    assert [r["namespace"] for r in cli.json("history", "--ns", "theirs")] == ["theirs"]
    (cli.cwd / "supertask.yaml").unlink()  # no timetable here: every namespace
    assert len(cli.json("history")) == 2


def test_a_tab_in_the_indentation_is_named_with_the_c_loader(cli: Cli) -> None:
    for text in ("jobs:\n\t- name: a\n", "jobs:\n  - name: a\n\twhen: '@daily'\n"):
        path = write(cli.cwd / "tabs.yaml", text)
        proc = cli("validate", str(path))
        assert proc.returncode == 1 and "indent with spaces, not tabs" in proc.stderr, proc.stderr


def test_next_says_what_fires(cli: Cli) -> None:
    path = write(cli.cwd / "t.yaml", """
jobs:
  - {name: odd-mondays, when: "0 0 */2 * mon", run: "cmd:true"}
  - {name: huge-step, when: "*/1000000 * * * *", run: "cmd:true"}
  - {name: evening, when: "30 18 * * *", run: "cmd:true"}
  - {name: interval, when: "every 90s", run: "cmd:true"}
""")
    rows = {r["job"]: r for r in cli.json("next", str(path), "-n", "2", "--after", "2026-01-01T00:00:00+00:00")}
    assert rows["odd-mondays"]["description"] == (
        "At 00:00, on days 1, 3, 5, …, 31 of the month, if that day is also Monday")
    assert [f[:10] for f in rows["odd-mondays"]["fires"]] == ["2026-01-05", "2026-01-19"]
    assert rows["huge-step"]["description"] == "Every hour"
    assert [f[11:19] for f in rows["huge-step"]["fires"]] == ["01:00:00", "02:00:00"]
    assert rows["evening"]["description"] == "At 18:30"
    us = cli("next", str(path), "--json", env={"LC_ALL": "", "LC_TIME": "en_US.UTF-8"})
    assert {r["job"]: r for r in json.loads(us.stdout)}["evening"]["description"] == "At 06:30 PM"
    now = {r["job"]: r for r in cli.json("next", str(path), "-n", "2")}
    assert all("." not in fire for fire in now["interval"]["fires"]), now["interval"]  # whole seconds


def test_live_tables_show_times_in_the_jobs_zone_fit_80_columns_and_kill_of_an_unknown_run_exits_2(
        cli: Cli) -> None:
    long_run = "cmd:" + " && ".join(f"echo step {i} of a long imported crontab line" for i in range(8))
    write(cli.cwd / "supertask.yaml", f"""
namespace: zones
jobs:
  - {{name: new-york, when: "0 6 * * *", timezone: America/New_York, run: "cmd:true"}}
  - {{name: long, when: "0 6 * * *", timezone: UTC, run: "{long_run}"}}
  - {{name: quick, when: "@daily", run: "cmd:echo quick"}}
""")
    sched = cli.start()
    try:
        sched.wait_event("control ready")
        env = {"COLUMNS": "80"}
        listing = cli("list-jobs", env=env)
        assert listing.returncode == 0, listing.stderr
        lines = listing.stdout.splitlines()
        assert lines[0] == "namespace zones"
        assert all(len(line) <= 80 for line in lines), listing.stdout
        row = next(line for line in lines if "new-york" in line)
        assert "06:00 EST" in row and "11:00" not in row  # the job's zone, not UTC
        assert len([line for line in lines if "long" in line or "step" in line]) == 1  # one line, cut with …
        assert "…" in next(line for line in lines if " long " in line)
        whole = cli("list-jobs", "--wide", env=env).stdout
        assert long_run in whole
        status = cli("status", env=env)
        assert status.returncode == 0 and "06:00 EST" in status.stdout, status.stdout
        assert all(len(line) <= 80 for line in status.stdout.splitlines()[4:]), status.stdout
        kill = cli("jobs", "kill", "99999")
        assert kill.returncode == 2 and "no run 99999" in kill.stderr, kill.stderr
        trigger = cli("jobs", "trigger", "new-york", "--wait")
        assert trigger.returncode == 0, trigger.stderr
        history = cli("history", env=env)
        assert history.returncode == 0, history.stderr
        lines = history.stdout.splitlines()
        assert lines[0].startswith("namespace zones, host ") and lines[0].endswith("times in America/New_York")
        assert all(len(line) <= 80 for line in lines) and len(lines) == 6, history.stdout  # caption, 4 rules, 1 run
        assert "started" in lines[2] and "succeeded" in lines[4]
    finally:
        assert sched.stop() == 0


def test_empty_listings_say_so(cli: Cli) -> None:
    one_shot(cli, "--ns", "empty", "--", "cmd:true")
    assert cli("history", "--failed").stdout == "no runs\n"
    assert cli("history", "--failed", "--json").stdout == "[]\n"
