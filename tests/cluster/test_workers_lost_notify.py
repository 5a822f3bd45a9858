"""A worker's attempt that is lost and not retried sends its job's on_failure actions, as a
scheduler's own lost run does, from whichever process declares it lost (a scheduler or
another worker), once. The real CLI in subprocesses on the real PostgreSQL, a database of
each test's own; the worker killed with kill -9."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.workers_kit import BEAT, stop_all, worker
from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("noticed_by", ["scheduler", "worker"])
def test_a_lost_worker_run_not_retried_sends_on_failure(tmp_path: Path, pg_db: str, noticed_by: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    sched_cli, a_cli, b_cli = (Cli(tmp_path / f"home{i}", pg_db, work) for i in range(3))
    pids, notes = tmp_path / "pids", tmp_path / "notes"
    (work / "supertask.yaml").write_text(f"""
namespace: lostnote
jobs:
  - name: long
    when: "@yearly"
    on: {{gpu: "1"}}
    retries: 0
    on_failure: ["cmd:echo $SUPERTASK_RUN_ID $SUPERTASK_STATUS >> {notes}"]
    run: "cmd:echo $$ >> {pids}; exec sleep 600"
""")
    sched: Scheduler = sched_cli.start(*BEAT)
    first = other = None
    child = None
    try:
        sched.wait_event("scheduler started", timeout=60)
        if noticed_by == "worker":  # another worker, that fits no run of this job, notices
            other = worker(b_cli, "w-other", "cpu=1", *BEAT)
        first = worker(a_cli, "w-a", "gpu=1", *BEAT)
        trig = sched_cli("jobs", "trigger", "long", "--ns", "lostnote")
        assert trig.returncode == 0, trig.stderr
        wait_until(lambda: pids.exists() and pids.read_text().strip(), 60, what="the attempt's child")
        child = int(pids.read_text().split()[0])
        [(run_id,)] = rows(pg_db, "SELECT id FROM supertask_runs WHERE job = 'long'")
        if noticed_by == "worker":
            stop_all(sched)  # no scheduler left to notice
        first.kill()  # kill -9 of the worker; its child (a session of its own) runs on
        wait_until(lambda: notes.exists() and notes.read_text().strip(), 40, what="on_failure of the lost run")
        assert notes.read_text().split() == [str(run_id), "lost"]
        [(status, message)] = rows(pg_db, "SELECT status, message FROM supertask_runs WHERE job = 'long'")
        assert status == "lost" and "worker w-a" in message and "missed its lease" in message
        assert ("noticed by worker w-other" if noticed_by == "worker" else "noticed by host") in message, message
        noticer = other if noticed_by == "worker" else sched
        assert noticer is not None
        sent = noticer.wait_event("notification sent", timeout=10, run=run_id)
        assert (sent["on"], sent["kind"], sent["job"]) == ("failure", "cmd", "long")
        # once: three more heartbeats (each a look for lost attempts) send nothing more, and nothing was retried
        table, name = (("supertask_workers", "w-other") if noticed_by == "worker" else
                       ("supertask_hosts", rows(pg_db, "SELECT host FROM supertask_hosts")[0][0]))
        key = "name" if noticed_by == "worker" else "host"
        seen: set[Any] = set()
        wait_until(lambda: seen.add(rows(pg_db, f"SELECT max(heartbeat) FROM {table} WHERE {key} = %s", name)[0][0])
                   or len(seen) > 3, 30, what="three more heartbeats of the one that noticed")
        assert notes.read_text().split() == [str(run_id), "lost"]
        assert rows(pg_db, "SELECT count(*) FROM supertask_runs WHERE job = 'long'") == [(1,)]
        assert len([e for e in noticer.events() if e.get("event") == "notification sent"]) == 1
    finally:
        if child is not None and alive(child):
            os.kill(child, signal.SIGKILL)
        if first is not None:
            first.kill()
        stop_all(*(p for p in (sched, other) if p is not None))
