"""Every slot once while hosts fail (issue 15 point 1): three `supertask run` processes,
each with its own state folder, serve one timetable of 1-second jobs from one PostgreSQL
database of the test's own. During the run one host is killed with SIGKILL and started
again, one is frozen with SIGSTOP for longer than its lease, and one is cut off from the
database (the proxy of tests/integration/proxy.py holds its traffic, as an iptables DROP
would). Afterwards the rows must say: every (job, scheduled) slot of the window has
exactly one first attempt, nothing is left running or queued, and neither ``overlap:
skip`` nor ``max_concurrent`` was exceeded across hosts (from the runs' start and end).
The figures it measures are in docs/cluster.md ("What is guaranteed, and what is not")."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres

LEASE = 4.0
BEAT = ("--heartbeat", "1s", "--lease", f"{LEASE:g}s", "--grace", "1s")
JOBS = ("tick", "short", "skipper", "par", "flaky")


def timetable(marks: Path) -> str:
    return f"""
namespace: chaos
jobs:
  - {{name: tick, when: every 1s, run: "cmd:true"}}
  - {{name: short, when: every 1s, run: "cmd:sleep 0.3"}}
  - name: skipper
    when: every 1s
    run: "cmd:sleep 2.5"
    overlap: skip
  - name: par
    when: every 1s
    run: "cmd:sleep 2.5"
    overlap: allow
    max_concurrent: 2
  - name: flaky        # the first attempt of each fire fails, its retry succeeds
    when: every 1s
    run: "cmd:f={marks}/$(echo $SUPERTASK_SCHEDULED | tr -dc 0-9); [ -e $f ] || {{ touch $f; exit 1; }}"
    retries: 2
    retry_delay: 0.2s
"""


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def db_now(url: str) -> datetime:
    return rows(url, "SELECT now()")[0][0]


def instance_of(url: str, pid: int) -> str:
    return wait_until(lambda: rows(url, "SELECT instance FROM supertask_hosts WHERE pid = %s", pid), 60,
                      what=f"the host row of pid {pid}")[0][0]


def silent(url: str, instance: str) -> float:
    """Seconds since the instance's last heartbeat, by the database's clock."""
    return rows(url, "SELECT extract(epoch FROM now() - heartbeat) FROM supertask_hosts WHERE instance = %s",
                instance)[0][0]


def in_flight(url: str, instance: str) -> int:
    return rows(url, "SELECT count(*) FROM supertask_runs WHERE instance = %s AND status IN ('running', 'queued')",
                instance)[0][0]


def all_up(url: str, instances: Iterable[str]) -> bool:
    return all(silent(url, i) < 2.5 for i in instances)


def slots_after(url: str, moment: datetime, seconds: float) -> None:
    """Wait until tick has a fire scheduled ``seconds`` after ``moment``: the time has passed
    on the schedulers' side too."""
    later = moment + timedelta(seconds=seconds)
    wait_until(lambda: rows(url, "SELECT 1 FROM supertask_runs WHERE job = 'tick' AND scheduled > %s", later),
               60, what=f"tick fired {seconds}s after {moment}")


def busy(url: str, instance: str) -> None:
    """Wait until the instance has a run in flight: the fault that follows leaves one to take over."""
    wait_until(lambda: in_flight(url, instance) > 0, 60, interval=0.02, what=f"a run in flight on {instance[:8]}")


def down_and_taken_over(url: str, instance: str) -> bool:
    return silent(url, instance) > LEASE + 1.5 and in_flight(url, instance) == 0


def most_at_once(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals that hold one moment at once (an end sorts before a start at the
    same moment)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = here = 0
    for _, step in edges:
        here += step
        most = max(most, here)
    return most


def test_every_slot_once_while_hosts_are_killed_frozen_and_cut_off(tmp_path: Path, pg_db: str) -> None:
    from tests.integration.proxy import Proxy

    proxy = Proxy(("127.0.0.1", 5432))
    via_proxy = pg_db.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    work, marks = tmp_path / "work", tmp_path / "marks"
    work.mkdir()
    marks.mkdir()
    (work / "supertask.yaml").write_text(timetable(marks))
    clis = [Cli(tmp_path / "home0", pg_db, work), Cli(tmp_path / "home1", pg_db, work),
            Cli(tmp_path / "home2", via_proxy, work)]
    schedulers: list[Scheduler] = [cli.start(*BEAT) for cli in clis]
    try:
        for s in schedulers:
            s.wait_event("scheduler started", timeout=60)
        instances = [instance_of(pg_db, s.proc.pid) for s in schedulers]
        victims = list(instances)  # the instances each fault hits
        wait_until(lambda: all_up(pg_db, instances), 30, what="3 hosts up")
        start = db_now(pg_db) + timedelta(seconds=2)  # the window's first slot
        slots_after(pg_db, start, 5)

        # 1. kill -9 of host 0's scheduler (its children live on), then a start in its folder
        busy(pg_db, instances[0])
        os.kill(schedulers[0].proc.pid, signal.SIGKILL)
        schedulers[0].proc.wait(10)
        wait_until(lambda: down_and_taken_over(pg_db, instances[0]), 60, what="host 0 down, its runs taken over")
        schedulers[0] = clis[0].start(*BEAT)
        schedulers[0].wait_event("scheduler started", timeout=60)
        instances[0] = instance_of(pg_db, schedulers[0].proc.pid)
        wait_until(lambda: all_up(pg_db, instances), 30, what="3 hosts up after the restart")
        slots_after(pg_db, db_now(pg_db), 3)

        # 2. host 1 frozen for longer than its lease, then thawed
        busy(pg_db, instances[1])
        os.kill(schedulers[1].proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: down_and_taken_over(pg_db, instances[1]), 60, what="host 1 down, its runs taken over")
        finally:
            os.kill(schedulers[1].proc.pid, signal.SIGCONT)
        wait_until(lambda: all_up(pg_db, instances), 30, what="3 hosts up after the thaw")
        slots_after(pg_db, db_now(pg_db), 3)

        # 3. host 2 cut off from the database (its packets held, nothing answers)
        busy(pg_db, instances[2])
        proxy.cut()
        try:
            wait_until(lambda: down_and_taken_over(pg_db, instances[2]), 60, what="host 2 down, its runs taken over")
            slots_after(pg_db, db_now(pg_db), 2)
        finally:
            proxy.restore()
        wait_until(lambda: all_up(pg_db, instances), 60, what="3 hosts up after the cut")
        slots_after(pg_db, db_now(pg_db), 4)
        end = db_now(pg_db)  # the window's last slot
        slots_after(pg_db, end, 2)
    finally:
        codes = [s.stop() for s in schedulers]
        proxy.close()
    assert codes == [0, 0, 0], [s.output[-3000:] for s in schedulers]
    # the faults were real: runs in flight taken over from each, the thawed host's ends
    # refused, the cut-off host holding its fires
    found = rows(pg_db, "SELECT job, scheduled, attempt, status, started, finished, instance FROM supertask_runs "
                        "WHERE namespace = 'chaos' ORDER BY job, scheduled, attempt")
    assert set(victims) <= {r[6] for r in found if r[3] == "lost"}, victims
    assert any(e.get("event") == "late result rejected" for e in schedulers[1].events())
    assert any(e.get("event") == "fire held: store unreachable" for e in schedulers[2].events())
    assert not [r for r in found if r[3] in ("running", "queued")], "runs left in flight"
    first = Counter((job, when) for job, when, attempt, *_ in found if attempt == 1)
    slots = [start.replace(microsecond=0) + timedelta(seconds=s) for s in range(1, int((end - start).total_seconds()))]
    missing = {job: [t.isoformat() for t in slots if first[(job, t)] == 0] for job in JOBS}
    doubled = {k: n for k, n in first.items() if n > 1}
    summary = (f"{len(slots) * len(JOBS)} slots ({len(slots)} s x {len(JOBS)} jobs), "
               f"missing {sum(map(len, missing.values()))}, doubled {len(doubled)}; rows by status "
               f"{dict(Counter(r[3] for r in found if r[1] in set(slots)))}, "
               f"retries {sum(1 for r in found if r[2] > 1 and r[1] in set(slots))}")
    print(summary)
    assert not any(missing.values()), (summary, missing)
    assert not doubled, (summary, doubled)

    def ran(job: str, one_at_a_time_per_host: bool = False) -> list[tuple[datetime, datetime]]:
        """The job's runs as their rows say: from start to end. A ``lost`` row ends when
        another host marked it lost; a run row is claimed with the round, before its
        start, so a host killed while its round's next fire of an ``overlap: skip`` job
        waited for its run in flight to end (to skip or start it) leaves two rows in
        flight that never ran at once: a host runs one such run at a time
        (``one_at_a_time_per_host``), so each of its rows ends at the latest where its
        next one starts."""
        mine = sorted((r for r in found if r[0] == job and r[3] != "skipped" and r[4] and r[5]),
                      key=lambda r: (r[6] or "", r[4]))
        out = []
        for i, r in enumerate(mine):
            end = r[5]
            after = mine[i + 1] if i + 1 < len(mine) else None
            if one_at_a_time_per_host and r[3] == "lost" and after is not None and after[6] == r[6]:
                end = min(end, after[4])
            out.append((r[4], end))
        return out

    def shown(job: str) -> str:
        return "\n".join(f"{r[1]:%H:%M:%S} a{r[2]} {r[3]:9} {r[4] and f'{r[4]:%H:%M:%S.%f}'} "
                         f"{r[5] and f'{r[5]:%H:%M:%S.%f}'} {(r[6] or '-')[:8]}" for r in found if r[0] == job)

    assert most_at_once(ran("skipper", one_at_a_time_per_host=True)) == 1, shown("skipper")
    assert most_at_once(ran("par")) <= 2, shown("par")
    # each first attempt of flaky that failed (or was lost) has its retry, and the fire ended well
    by_fire: dict[datetime, list[str]] = {}
    for job, when, _attempt, status, *_ in found:
        if job == "flaky" and when in set(slots):
            by_fire.setdefault(when, []).append(status)
    unfinished = {t.isoformat(): s for t, s in by_fire.items() if s[-1] not in ("succeeded", "skipped")}
    assert not unfinished, unfinished
