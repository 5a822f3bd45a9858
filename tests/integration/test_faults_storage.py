"""Storage faults injected for real: a full disk under logs/ (a 2 MB tmpfs), a
PostgreSQL that refuses connections (a proxy that stops forwarding). Jobs keep
firing, every run ends with a true row, nothing is marked lost that ended."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_until
from tests.integration.figures import record, tick_job, tick_rows, ticks, unfinished
from tests.integration.proxy import Proxy, schema_of_its_own, upstream_of


def history(cli: Cli) -> list[dict]:
    return cli.json("history", "--limit", "2000")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs (skipped where mounting is not permitted)."""
    where = tmp_path / "small"
    where.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a 2 MB tmpfs is not permitted here (needs root): {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_logs_disk_drops_logs_not_runs_and_recovers(cli: Cli, small_disk: Path, tmp_path: Path) -> None:
    """logs/ on a 2 MB tmpfs, a job printing 300 KB a run and one printing nothing,
    both every second: after the disk fills, every run still ends with a true row
    (the chatty ones say their log was not kept), the quiet job keeps firing, the
    error event is rate-limited, and logs are kept again once space returns."""
    cli.home.mkdir(parents=True)
    (cli.home / "logs").symlink_to(small_disk)
    marks = tmp_path / "marks"
    (cli.cwd / "supertask.yaml").write_text("""
namespace: full
jobs:
  - {name: chatty, when: "* * * * * *", run: "cmd:head -c 300000 /dev/zero | tr '\\\\0' x | fold -w 100"}
""" + tick_job(marks, "quiet"))
    sched = cli.start()
    sched.wait_event("scheduler started")
    dropped = wait_until(lambda: [r for r in history(cli) if "log not kept" in (r["message"] or "")],
                         timeout=30, what="the disk to fill")
    full_at, full_since = dropped[-1]["id"], time.time()
    wait_until(lambda: len([r for r in history(cli) if r["id"] > full_at and r["job"] == "quiet"]) >= 4,
               timeout=20, what="the quiet job to keep firing on the full disk")
    for path in small_disk.rglob("*.log"):  # space returns
        path.unlink()
    freed_at, t0, freed = max(r["id"] for r in history(cli)), time.monotonic(), time.time()
    wait_until(lambda: [r for r in history(cli) if r["id"] > freed_at + 2 and r["job"] == "chatty"
                        and r["status"] == "succeeded" and r["log_path"]], timeout=20, what="logs kept again")
    recovered = time.monotonic() - t0
    assert sched.stop() == 0
    rows = history(cli)
    # a busy machine may make a chatty run outlive its next fire (really running: skipped)
    wrong = [r for r in rows if r["status"] != "succeeded" and not (
        r["job"] == "chatty" and r["status"] == "skipped" and "still running" in r["message"])]
    assert not wrong, [(r["job"], r["status"], r["exit_code"], r["message"]) for r in wrong]
    quiet = sorted(r["scheduled"] for r in rows if r["job"] == "quiet")
    assert len(quiet) >= 8
    full = [r for r in rows if full_at <= r["id"] <= freed_at]
    quiet_ran = ticks(marks, full_since, freed)
    assert tick_rows(rows, full_since - 1, freed + 1, "quiet") >= quiet_ran  # each quiet run has its row
    record("logs/ disk full (2 MB tmpfs; a job printing 300 KB a run, a quiet one, every second)",
           fires=len(full), fires_run=len(full), fires_recorded=len(full), unfinished=unfinished(rows),
           recover_s=recovered,
           note=f"{len([r for r in full if 'log not kept' in (r['message'] or '')])} rows without their log; "
                f"the quiet job ran {quiet_ran} times while the disk was full; recover: logs kept again "
                "after space returned (the next run of the 300 KB job)")
    errors = [e for e in sched.events() if e.get("level") in ("error", "critical")]
    assert [e["event"] for e in errors] in (["run log not kept"], ["run log not kept"] * 2), errors  # rate-limited


def test_a_full_state_folder_keeps_firing_and_records_the_runs_when_space_returns(small_disk: Path,
                                                                                 tmp_path: Path) -> None:
    """The whole state folder (SQLite store and logs) on a 2 MB tmpfs that a job fills:
    the quiet job keeps firing, and once space returns every run that ran has its row."""
    work = tmp_path / "work"
    work.mkdir()
    cli = Cli(small_disk, None, work)
    marks = tmp_path / "marks"
    marks.mkdir()
    flag = tmp_path / "fill"
    flag.touch()
    (work / "supertask.yaml").write_text(f"""
namespace: fullhome
jobs:
  - {{name: chatty, when: "*/2 * * * * *",
      run: "cmd:test -e {flag} && head -c 400000 /dev/zero | tr '\\\\0' x | fold -w 100"}}
  - {{name: quiet, when: "* * * * * *", run: "cmd:touch {marks}/$(date +%s%N)"}}
""")
    sched = cli.start()
    sched.wait_event("scheduler started")
    wait_until(lambda: sched.events() and [e for e in sched.events() if e.get("level") == "error"], timeout=30,
               what="the disk to fill")
    before = len(list(marks.iterdir()))
    wait_until(lambda: len(list(marks.iterdir())) >= before + 4, timeout=20, what="the quiet job to keep firing")
    flag.unlink()  # the chatty job stops filling it
    time.sleep(0.5)
    for path in small_disk.rglob("*.log"):  # space returns
        path.unlink()
    freed = time.time()
    back = wait_until(lambda: [e for e in sched.events() if e["event"] == "store back: run ends written"],
                      timeout=30, what="the kept run ends to be written")[0]
    recovered = datetime.fromisoformat(back["timestamp"].replace("Z", "+00:00")).timestamp() - freed
    wait_until(lambda: len([r for r in history(cli) if r["job"] == "quiet" and r["status"] == "succeeded"])
               >= len(list(marks.iterdir())) - 1, timeout=20, what="every quiet run recorded")
    assert sched.stop() == 0
    for path in small_disk.rglob("*.log"):
        path.unlink()
    rows = history(cli)
    quiet = [r for r in rows if r["job"] == "quiet"]
    ran = len(list(marks.iterdir()))
    record("state folder full (SQLite store and logs on a 2 MB tmpfs; a quiet job every second)",
           fires=ran, fires_run=ran, fires_recorded=len([r for r in quiet if r["status"] == "succeeded"]),
           unfinished=unfinished(rows), recover_s=recovered,
           note="recover: the kept rows written after space returned")
    assert not [r for r in rows if r["status"] in ("running", "queued")]
    assert len([r for r in quiet if r["status"] == "succeeded"]) == ran


# -- a store that refuses connections ----------------------------------------------------------


@pytest.mark.postgres
def test_a_store_refusing_connections_keeps_runs_and_records_them_after(tmp_path: Path, pg_database: str) -> None:
    """PostgreSQL refuses connections for 8 s, twice (the second time the scheduler is
    stopped during it and started again after): the job kept firing, every run that
    ran has its true row once the store is back, none is left running or marked lost."""
    proxy = Proxy(upstream_of(pg_database))
    url = proxy.via(pg_database, schema_of_its_own(pg_database))
    work = tmp_path / "work"
    work.mkdir()
    cli = Cli(tmp_path / "home", url, work)
    marks = tmp_path / "marks"
    marks.mkdir()
    (work / "supertask.yaml").write_text(f"""
namespace: outage
jobs:
  - {{name: tick, when: "* * * * * *", run: "cmd:touch {marks}/$(date +%s%N); exit 0"}}
""")
    try:
        sched = cli.start()
        sched.wait_event("scheduler started", timeout=30)
        wait_until(lambda: len(list(marks.iterdir())) >= 2, what="runs before the outage")
        proxy.refuse()
        before = len(list(marks.iterdir()))
        time.sleep(8)
        during = len(list(marks.iterdir())) - before
        proxy.restore()
        t0, restored = time.monotonic(), time.time()
        assert during >= 5, "the job did not keep firing while the store was away"
        wait_until(lambda: len(history(cli)) >= before + during, timeout=30,
                   what="the runs of the outage to be recorded")
        back = [e for e in sched.events() if e["event"] == "store back: run ends written"]
        recovered = (datetime.fromisoformat(back[0]["timestamp"].replace("Z", "+00:00")).timestamp() - restored
                     if back else time.monotonic() - t0)
        errors = [e for e in sched.events() if e.get("level") == "error"]
        said = Counter(e["event"] for e in errors)  # rate-limited: each said once (a minute), not once a fire
        assert max(said.values()) <= 2 and sum(said.values()) <= 8, said
        proxy.refuse()  # again, and stopped during it: the ends wait in the state folder
        time.sleep(3)
        assert sched.stop() == 0, sched.output
        proxy.restore()
        sched = cli.start()
        sched.wait_event("scheduler started", timeout=30)
        assert sched.stop() == 0, sched.output
        rows = history(cli)
        ran = len(list(marks.iterdir()))
        statuses = [r["status"] for r in rows]
        record("database refusing connections, 8 s, then a stop during a second outage and a restart after it",
               fires=ran, fires_run=ran, fires_recorded=statuses.count("succeeded"),
               unfinished=len([s for s in statuses if s in ("running", "queued")]), recover_s=recovered,
               note=f"{during} fires ran during the first outage; {statuses.count('lost')} marked lost; recover: "
                    "the outage's rows written after the store came back")
        assert statuses.count("succeeded") == ran, (ran, statuses)
        assert not [s for s in statuses if s in ("running", "lost", "queued")], statuses
    finally:
        proxy.close()
