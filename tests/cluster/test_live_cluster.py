"""Live changes and policies across several schedulers on one PostgreSQL store (issue 15
points 1 and 4): a job paused, edited, rescheduled, removed or triggered through one host,
a timetable, or the store alone is followed by every host within seconds. Real
`supertask run` processes, each with its own state folder; a database of each test's own."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Scheduler, wait_until

UTC = timezone.utc
#: how long a change may take to reach every host (the promise is 2 s; the rows are
#: judged by their scheduled times, so a loaded machine does not make this flaky)
REACH = timedelta(seconds=2)


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    if url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(url[len("sqlite:///"):], detect_types=sqlite3.PARSE_DECLTYPES) as conn:
            got = conn.execute(sql.replace("%s", "?"), params).fetchall()
        return [tuple(_aware(v) for v in row) for row in got]
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def _aware(value: Any) -> Any:
    """SQLite's times (naive UTC text) as aware datetimes, as PostgreSQL gives them."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == " ":
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


@pytest.fixture(params=[pytest.param("postgres", marks=pytest.mark.postgres), "sqlite"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One store two schedulers share: a PostgreSQL database, or one SQLite file (one machine)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return str(request.getfixturevalue("pg_db"))


def runs(url: str, job: str) -> list[dict[str, Any]]:
    cols = ("id", "reason", "status", "scheduled", "started", "finished", "host", "message")
    return [dict(zip(cols, r, strict=True)) for r in rows(
        url, f"SELECT {', '.join(cols)} FROM supertask_runs WHERE job = %s ORDER BY scheduled", job)]


def followed(scheduler: Scheduler, job: str, key: str = "changed") -> None:
    """Wait until ``scheduler`` logged taking in a change of ``job`` made elsewhere."""
    wait_until(lambda: any(e.get("event") == "jobs changed in the store" and job in e.get(key, [])
                           for e in scheduler.events()), 30, what=f"{job} {key} on {scheduler.log_path.name}")


def now() -> datetime:
    return datetime.now(UTC)


def homes(tmp_path: Path, url: str, count: int) -> list[Cli]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return [Cli(tmp_path / f"home{i}", url, work) for i in range(count)]


def serve(clis: list[Cli], text: str, tmp_path: Path, *, own_files: bool = False) -> list[Scheduler]:
    """Start a scheduler per Cli on the timetable ``text`` (one file, or a copy each)."""
    started = []
    for i, cli in enumerate(clis):
        path = tmp_path / (f"tt{i}.yaml" if own_files else "tt.yaml")
        path.write_text(text)
        started.append(cli.start("--file", str(path), "--grace", "1s", "--heartbeat", "1s", "--lease", "4s"))
    for s in started:
        s.wait_event("scheduler started", timeout=60)
    return started


def until_later(url: str, job: str, moment: datetime, what: str) -> None:
    """Wait until ``job`` (a 1-second job that keeps firing) has a run scheduled after
    ``moment``: the time has passed on the schedulers' side too."""
    wait_until(lambda: any(r["scheduled"] > moment for r in runs(url, job)), 60, what=what)


TICKING = """
namespace: shared
jobs:
  - name: tick
    when: every 1s
    run: "cmd:true"
  - name: clock
    when: every 1s
    run: "cmd:true"
"""


def test_a_pause_through_one_host_holds_on_every_host(tmp_path: Path, shared_store: str) -> None:
    pg_db = shared_store
    a, b = clis = homes(tmp_path, pg_db, 2)
    schedulers = serve(clis, TICKING, tmp_path)
    try:
        wait_until(lambda: len(runs(pg_db, "tick")) >= 4, 60, what="tick firing")
        paused = a("jobs", "pause", "tick")  # through A's socket: B only learns it from the store
        assert paused.returncode == 0, paused.stderr
        at = now()
        until_later(pg_db, "clock", at + REACH + timedelta(seconds=4), "4 s more of clock's fires")
        late = [r for r in runs(pg_db, "tick") if r["scheduled"] > at + REACH]
        assert late == [], late
        followed(schedulers[1], "tick")
        assert [(bool(p), n) for p, n in rows(pg_db, "SELECT paused, next_run_time FROM supertask_jobs "
                                               "WHERE name = 'tick'")] == [(True, None)]
        # resumed through B: both fire it again
        assert b("jobs", "resume", "tick").returncode == 0
        again = now()
        wait_until(lambda: [r for r in runs(pg_db, "tick") if r["scheduled"] > again], 30, what="tick again")
    finally:
        for s in schedulers:
            s.stop()


@pytest.mark.postgres
def test_a_job_removed_by_one_hosts_timetable_stops_on_every_host(tmp_path: Path, pg_db: str) -> None:
    clis = homes(tmp_path, pg_db, 2)
    schedulers = serve(clis, TICKING, tmp_path, own_files=True)  # each host its own copy of the file
    try:
        wait_until(lambda: len(runs(pg_db, "tick")) >= 4, 60, what="tick firing")
        (tmp_path / "tt0.yaml").write_text(TICKING.replace("  - name: tick\n    when: every 1s\n    run: \"cmd:true\"\n", ""))
        schedulers[0].wait_event("timetable reloaded", timeout=30, removed=["tick"])
        at = now()
        until_later(pg_db, "clock", at + REACH + timedelta(seconds=4), "4 s more of clock's fires")
        late = [r for r in runs(pg_db, "tick") if r["scheduled"] > at + REACH]
        assert late == [], late
        followed(schedulers[1], "tick", "removed")
    finally:
        for s in schedulers:
            s.stop()


@pytest.mark.postgres
def test_edits_through_the_store_alone_reach_every_host(tmp_path: Path, pg_db: str) -> None:
    clis = homes(tmp_path, pg_db, 2)
    schedulers = serve(clis, TICKING, tmp_path)
    outside = Cli(tmp_path / "nohome", None, tmp_path / "work")  # no scheduler's socket here
    marker = tmp_path / "marker"
    try:
        wait_until(lambda: len(runs(pg_db, "clock")) >= 4, 60, what="clock firing")
        edit = outside("jobs", "edit", "clock", "--ns", "shared", "--store", pg_db,
                       "--set", f"run=cmd:echo $SUPERTASK_RUN_ID >> {marker}")
        assert edit.returncode == 0, edit.stderr
        moved = outside("jobs", "reschedule", "tick", "--ns", "shared", "--store", pg_db, "--when", "@yearly")
        assert moved.returncode == 0, moved.stderr
        at = now()
        for s in schedulers:
            followed(s, "tick")
        until_later(pg_db, "clock", at + REACH + timedelta(seconds=4), "4 s more of clock's fires")
        assert [r for r in runs(pg_db, "tick") if r["scheduled"] > at + REACH] == []
        after = [r for r in runs(pg_db, "clock") if r["scheduled"] > at + REACH and r["status"] == "succeeded"]
        assert len(after) >= 3
        written = set(marker.read_text().split())
        assert {str(r["id"]) for r in after} <= written  # every host ran the new command

        # a trigger through the store: queued, taken up by one host, run once
        done = outside("jobs", "trigger", "tick", "--ns", "shared", "--store", pg_db, "--wait", "--json",
                       timeout=90)
        assert done.returncode == 0, done.stderr + done.stdout
        manual = [r for r in runs(pg_db, "tick") if r["reason"] == "manual"]
        assert [(r["status"], bool(r["host"])) for r in manual] == [("succeeded", True)]
        # a job added through the store fires on the hosts; removed, it stops
        added = outside("jobs", "add", "extra", "--ns", "shared", "--store", pg_db, "--when", "every 1s",
                        "--", "cmd:true")
        assert added.returncode == 0, added.stderr
        wait_until(lambda: len(runs(pg_db, "extra")) >= 2, 30, what="the added job firing")
        gone = outside("jobs", "remove", "extra", "--ns", "shared", "--store", pg_db)
        assert gone.returncode == 0, gone.stderr
        at = now()
        until_later(pg_db, "clock", at + REACH + timedelta(seconds=3), "3 s more of clock's fires")
        assert [r for r in runs(pg_db, "extra") if r["scheduled"] > at + REACH] == []
        # with no --ns there is nothing to change: exit 3, saying how
        bare = outside("jobs", "pause", "tick", "--store", pg_db)
        assert bare.returncode == 3 and "--ns NS" in bare.stderr
    finally:
        for s in schedulers:
            s.stop()


def overlapping(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals that hold one moment at once."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    most = here = 0
    for _, step in edges:  # an end sorts before a start at the same moment
        here += step
        most = max(most, here)
    return most


def ran(url: str, job: str) -> list[tuple[datetime, datetime]]:
    return [(r["started"], r["finished"]) for r in runs(url, job)
            if r["status"] not in ("skipped", "queued") and r["started"] and r["finished"]]


def test_overlap_skip_holds_across_hosts(tmp_path: Path, shared_store: str) -> None:
    url = shared_store  # on SQLite: two schedulers on one file, each knowing the other from the hosts table
    clis = homes(tmp_path, url, 2)
    schedulers = serve(clis, """
namespace: shared
jobs:
  - name: slow
    when: every 1s
    run: "cmd:sleep 2.5"
    overlap: skip
""", tmp_path)
    both = now() + timedelta(seconds=3)  # each has seen the other's heartbeat (1 s) by then
    try:
        wait_until(lambda: len([r for r in ran(url, "slow") if r[0] > both]) >= 4, 90,
                   what="4 runs of slow ended")
    finally:
        for s in schedulers:
            s.stop()
    assert overlapping([r for r in ran(url, "slow") if r[0] > both]) == 1, runs(url, "slow")
    reasons = [r["message"] for r in runs(url, "slow") if r["status"] == "skipped"]
    assert any("previous run still running on " in m and "across hosts" in m for m in reasons), reasons


@pytest.mark.postgres
def test_overlap_queue_waits_for_a_run_on_another_host(tmp_path: Path, pg_db: str) -> None:
    clis = homes(tmp_path, pg_db, 2)
    schedulers = serve(clis, """
namespace: shared
jobs:
  - name: line
    when: every 1s
    run: "cmd:sleep 1.5"
    overlap: queue
""", tmp_path)

    def waited_elsewhere() -> list[dict[str, Any]]:
        return [e for s in schedulers for e in s.events()
                if e.get("event") == "run queued" and "across hosts" in e.get("reason", "")]

    try:
        wait_until(lambda: len(waited_elsewhere()) >= 2, 90, what="2 fires queued behind a run on the other host")
        queued = {e["run"] for e in waited_elsewhere()}
        wait_until(lambda: len([r for r in runs(pg_db, "line") if r["id"] in queued and r["status"] == "succeeded"])
                   >= 2, 60, what="those queued runs run")
    finally:
        for s in schedulers:
            s.stop()
    assert overlapping(ran(pg_db, "line")) == 1, runs(pg_db, "line")
    waited = [r for r in runs(pg_db, "line") if r["id"] in queued and r["status"] == "succeeded"]
    assert all(r["started"] - r["scheduled"] > timedelta(seconds=0.2) for r in waited), waited  # started late


@pytest.mark.postgres
def test_max_concurrent_holds_across_three_hosts(tmp_path: Path, pg_db: str) -> None:
    clis = homes(tmp_path, pg_db, 3)
    schedulers = serve(clis, """
namespace: shared
jobs:
  - name: par
    when: every 1s
    run: "cmd:sleep 3.5"
    overlap: allow
    max_concurrent: 2
""", tmp_path)
    seen = []
    try:
        def enough() -> bool:
            seen.append(rows(pg_db, "SELECT count(*) FROM supertask_runs WHERE job = 'par' AND status = 'running'")[0][0])
            return len(ran(pg_db, "par")) >= 6

        wait_until(enough, 120, interval=0.1, what="6 runs of par ended")
    finally:
        for s in schedulers:
            s.stop()
    assert max(seen) <= 2, seen
    assert overlapping(ran(pg_db, "par")) <= 2, runs(pg_db, "par")
    reasons = [r["message"] for r in runs(pg_db, "par") if r["status"] == "skipped"]
    assert any("max_concurrent 2" in m for m in reasons), reasons


@pytest.mark.postgres
def test_the_listener_wakes_at_a_change_and_reopens_when_its_connection_is_cut(
        pg_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    from supertask.model import Job
    from supertask.scheduler import follow
    from supertask.store.sql import SqlStore

    monkeypatch.setattr(follow, "RELISTEN", 0.1)
    writer, reader = SqlStore.open(pg_db), SqlStore.open(pg_db)
    writer.ensure_namespace("ns", source=None, host="h", user="u")
    writer.sync("ns", [Job(name="j", when="every 1h", run="cmd:true")], lambda _job: 1.0)
    listener, stop = follow.Listener(reader), threading.Event()

    def woken_by(change: Any) -> float:
        timer = threading.Timer(0.3, change)
        began = time.monotonic()
        timer.start()
        listener.wait(30, stop)
        timer.join()
        return time.monotonic() - began

    try:
        listener.wait(0.01, stop)
        assert listener.conn is not None
        assert woken_by(lambda: writer.set_paused("ns", "j", True, None)) < 20  # not the 30 s timeout
        pid = listener.conn.info.backend_pid
        rows(pg_db, "SELECT pg_terminate_backend(%s)", pid)
        wait_until(lambda: listener.wait(0.2, stop) or (listener.conn is not None
                                                        and listener.conn.info.backend_pid != pid), 30,
                   what="the listening connection reopened")
        assert woken_by(lambda: writer.set_paused("ns", "j", False, 5.0)) < 20
    finally:
        listener.close()
        writer.close()
        reader.close()
