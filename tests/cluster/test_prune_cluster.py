"""Pruning history never lets a slot fire again (issue 15 point 1; GoodJob #767): the run
row that claims a fire is the guard against a second host running it, and retention
deletes those rows. Two `supertask run` on one PostgreSQL database fire a job that
catches every missed fire up (``catch_up: all`` within an hour) and keeps one run of
history, while its rows are pruned whole (`supertask prune --keep 0`) as hosts come back
from a freeze, a kill -9 and a clean stop of both. Each fire appends its slot to a file:
no slot may be there twice, and none of the window may be missing (``overlap: allow``,
so that no fire is skipped for a run in flight)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres

BEAT = ("--heartbeat", "1s", "--lease", "3s", "--grace", "1s")


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def db_now(url: str) -> datetime:
    return rows(url, "SELECT now()")[0][0]


def test_pruned_slots_do_not_fire_again_after_a_freeze_a_kill_or_a_restart(tmp_path: Path, pg_db: str) -> None:
    work, fires = tmp_path / "work", tmp_path / "fires"
    work.mkdir()
    (work / "supertask.yaml").write_text(f"""
namespace: pruned
jobs:
  - name: beat
    when: every 1s
    run: "cmd:echo $SUPERTASK_SCHEDULED >> {fires}"
    catch_up: all
    misfire_grace: 1h
    overlap: allow  # a frozen host's run, still `running` in its row, holds no fire back
    history_keep: 1
""")
    a, b = Cli(tmp_path / "home-a", pg_db, work), Cli(tmp_path / "home-b", pg_db, work)

    def fired() -> list[datetime]:
        return [datetime.fromisoformat(t) for t in fires.read_text().split()] if fires.exists() else []

    def after(seconds: float) -> None:
        """Wait until a fire scheduled ``seconds`` from now (the database's clock) has run."""
        later = db_now(pg_db) + timedelta(seconds=seconds)
        wait_until(lambda: any(t > later for t in fired()), 60, what=f"a fire after {later}")

    def silent(pid: int) -> float:
        return rows(pg_db, "SELECT extract(epoch FROM now() - heartbeat) FROM supertask_hosts WHERE pid = %s",
                    pid)[0][0]

    def between_rounds() -> None:
        """Wait until the database's clock is a quarter to half a second past a slot: the
        rounds decide (and claim) their fires up to half a second ahead (rounds.MAX_LEAD)."""
        wait_until(lambda: 0.25 <= db_now(pg_db).microsecond / 1e6 <= 0.45, 5, interval=0.01, what="between rounds")

    def prune() -> None:
        done = a("prune", "--keep", "0", "--ns", "pruned", "--store", pg_db)
        assert done.returncode == 0, done.stderr

    running: list[Scheduler] = [a.start(*BEAT), b.start(*BEAT)]
    try:
        for s in running:
            s.wait_event("scheduler started", timeout=60)
        after(3)
        first = min(fired())
        # frozen past its lease while the other fires on, its history pruned, then thawed:
        # it must not catch up the fires the other host ran. Frozen between two rounds, as
        # docs/cluster.md says: a host stopped after deciding a round and before claiming
        # it claims that round's fires when it resumes, whatever happened meanwhile
        frozen = running[1].proc.pid
        between_rounds()
        os.kill(frozen, signal.SIGSTOP)
        try:
            wait_until(lambda: silent(frozen) > 4, 30, what="the frozen host past its lease")
            prune()
        finally:
            os.kill(frozen, signal.SIGCONT)
        wait_until(lambda: silent(frozen) < 2, 30, what="the thawed host beating again")
        after(3)
        # killed with SIGKILL, history pruned, started again in its folder
        os.kill(running[1].proc.pid, signal.SIGKILL)
        running[1].proc.wait(10)
        prune()
        running[1] = b.start(*BEAT)
        running[1].wait_event("scheduler started", timeout=60)
        after(3)
        # both stopped cleanly, history pruned, one started again: it catches up only the
        # fires due while none ran
        assert [s.stop() for s in running] == [0, 0]
        stopped = db_now(pg_db)
        prune()
        wait_until(lambda: db_now(pg_db) > stopped + timedelta(seconds=3), 10, what="3 s with no scheduler")
        running = [a.start(*BEAT)]
        running[0].wait_event("scheduler started", timeout=60)
        after(2)
    finally:
        codes = [s.stop() for s in running]
    assert codes == [0]
    seen = Counter(fired())
    twice = sorted(t.isoformat() for t, n in seen.items() if n > 1)
    last = max(seen)
    window = [first + timedelta(seconds=i) for i in range(int((last - first).total_seconds()) + 1)]
    missing = [t.isoformat() for t in window if t not in seen]
    assert not twice, f"{len(twice)} of {len(window)} slots ran twice: {twice}"
    assert not missing, f"{len(missing)} of {len(window)} slots never ran: {missing}"


def test_a_host_a_moment_behind_does_not_run_a_slot_whose_row_was_pruned(tmp_path: Path, pg_db: str) -> None:
    """A host less than a second behind its fires (starved, or stopped briefly) decides a
    fire after another host ran it and retention removed its row: it must not run it
    again. Each time: host b is stopped just before slot T, host a runs T, T's row is
    pruned (the code `supertask prune --keep 0` runs, in this process: the command's
    start-up takes longer than the moment this needs), and b resumes within the second,
    so that b decides T about half a second late with no row of T left to refuse it."""
    from supertask.cli.commands import prune
    from supertask.store.sql import open_store

    work, fires = tmp_path / "work", tmp_path / "fires"
    work.mkdir()
    (work / "supertask.yaml").write_text(f"""
namespace: pruned
jobs:
  - name: beat
    when: every 1s
    run: "cmd:echo $SUPERTASK_SCHEDULED >> {fires}"
    catch_up: all
    misfire_grace: 1h
    overlap: allow
""")
    a, b = Cli(tmp_path / "home-a", pg_db, work), Cli(tmp_path / "home-b", pg_db, work)

    def fired() -> list[datetime]:
        return [datetime.fromisoformat(t) for t in fires.read_text().split()] if fires.exists() else []

    store = open_store(pg_db, create=False)

    def a_moment_behind(pid: int, slot: datetime) -> None:
        wait_until(lambda: db_now(pg_db) >= slot - timedelta(seconds=0.2), 5, interval=0.01, what="just before")
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(lambda: slot in fired(), 5, interval=0.01, what=f"host a running {slot}")
            wait_until(lambda: prune(store, "pruned", keep=0, max_age=None) and not rows(
                pg_db, "SELECT id FROM supertask_runs WHERE scheduled = %s", slot), 5, interval=0.01,
                what=f"the row of {slot} pruned")
            wait_until(lambda: db_now(pg_db) >= slot + timedelta(seconds=0.5), 5, interval=0.01,
                       what="half a second behind")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(lambda: any(t > slot + timedelta(seconds=2) for t in fired()), 30, what="two more fires")

    running = [a.start(*BEAT), b.start(*BEAT)]
    try:
        for s in running:
            s.wait_event("scheduler started", timeout=60)
        wait_until(lambda: len(fired()) >= 2, 30, what="two fires")
        for _ in range(4):
            a_moment_behind(running[1].proc.pid, db_now(pg_db).replace(microsecond=0) + timedelta(seconds=2))
    finally:
        codes = [s.stop() for s in running]
        store.close()
        dropped = [e for e in running[1].events() if e.get("event") == "fires decided by another host"]
    assert codes == [0, 0]
    seen = Counter(fired())
    twice = sorted(t.isoformat() for t, n in seen.items() if n > 1)
    assert not twice, f"{len(twice)} slots ran twice: {twice}"
    window = [min(seen) + timedelta(seconds=i) for i in range(int((max(seen) - min(seen)).total_seconds()) + 1)]
    assert not [t for t in window if t not in seen], "a slot never ran"
    assert dropped, "host b was never behind a fire host a ran (it decided each before it was stopped)"
