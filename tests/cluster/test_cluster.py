"""Several schedulers on one PostgreSQL store (issue 15 points 2, 3 and 5): host rows
with heartbeats, `supertask hosts`, the takeover of a dead host's runs exactly once,
late results rejected, a second scheduler on the same machine leaving the first one's
runs alone. Real processes, each with its own state folder; a database of each test's own."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres

BEAT = ("--heartbeat", "1s", "--lease", "4s", "--grace", "1s")


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def runs_of(url: str, job: str) -> list[dict[str, Any]]:
    cols = ("id", "attempt", "reason", "status", "instance", "message")
    return [dict(zip(cols, r, strict=True)) for r in rows(
        url, f"SELECT {', '.join(cols)} FROM supertask_runs WHERE job = %s ORDER BY id", job)]


def hosts(tmp_path: Path, url: str, count: int) -> list[Cli]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return [Cli(tmp_path / f"home{i}", url, work) for i in range(count)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def beats(url: str) -> dict[str, Any]:
    return dict(rows(url, "SELECT instance, heartbeat FROM supertask_hosts"))


def test_three_hosts_a_killed_hosts_run_is_taken_over_once(tmp_path: Path, pg_db: str) -> None:
    pidfile = tmp_path / "long.pid"
    rebooted = tmp_path / "rebooted"
    timetable = tmp_path / "work" / "supertask.yaml"
    clis = hosts(tmp_path, pg_db, 3)
    timetable.write_text(f"""
namespace: shared
jobs:
  - name: long
    when: once
    run: "cmd:echo $$ > {pidfile}; trap '' TERM; exec sleep 600"
    retries: 1
    kill_grace: 8s  # longer than a lease: the survivor's heartbeat goes on while it ends the orphan
  - name: boot
    when: "@reboot"
    run: "cmd:echo $SUPERTASK_RUN_ID >> {rebooted}"
""")
    first = clis[0].start("--file", str(timetable), *BEAT)
    others: list[Scheduler] = []
    try:
        first.wait_event("run started", job="long", timeout=60)
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, what="the long run's pid")
        child = int(pidfile.read_text())
        run = runs_of(pg_db, "long")[0]
        # two more schedulers on this machine (same host name), each with its own state folder
        others += [cli.start("--file", str(timetable), *BEAT) for cli in clis[1:]]
        for s in others:
            s.wait_event("scheduler started", timeout=60)
        listed = wait_until(lambda: (h := clis[1].json_soon("hosts")) and sum(x["up"] for x in h) == 3 and h, 60,
                            what="3 hosts up in `supertask hosts --json`")
        assert {x["pid"] for x in listed} == {first.proc.pid, *(s.proc.pid for s in others)}
        assert all(x["state"] == "up" and x["namespaces"] == ["shared"] for x in listed)
        assert {x["instance"] for x in listed if x["runs"] == 1} == {run["instance"]}
        # neither newcomer took the first one's run for lost, nor ended its child
        seen = beats(pg_db)
        wait_until(lambda: all(b > seen[i] for i, b in beats(pg_db).items() if i != run["instance"]), 30,
                   what="the newcomers' next heartbeats")
        assert [r["status"] for r in runs_of(pg_db, "long")] == ["running"] and alive(child)
        # @reboot: once for this machine's boot, not once per state folder
        assert len(rebooted.read_text().split()) == 1

        os.kill(first.proc.pid, signal.SIGKILL)  # the scheduler only: its child lives on
        first.proc.wait(10)
        taken = wait_until(lambda: [r for r in runs_of(pg_db, "long") if r["attempt"] == 2], 90,
                           what="the retry of the lost run on a surviving host")
        lost = runs_of(pg_db, "long")[0]
        assert lost["status"] == "lost"
        assert "missed its lease" in lost["message"] and run["instance"][:8] in lost["message"]
        assert f"host {os.uname().nodename}" in lost["message"] and "taken over by host" in lost["message"]
        survivors = {x["instance"] for x in listed} - {run["instance"]}
        assert taken[0]["reason"] == "retry" and taken[0]["instance"] in survivors
        # the orphan on this machine was ended by the survivor that took the run
        wait_until(lambda: not alive(child), 30, what="the dead host's child ended")
        events = [e for s in others for e in s.events() if e.get("event") == "run lost"]
        assert len(events) == 1 and events[0]["orphans_ended"] == 1, events
        # exactly one retry, after both survivors looked again, twice
        for _ in range(2):
            seen = beats(pg_db)
            wait_until(lambda seen=seen: all(beats(pg_db)[i] > seen[i] for i in survivors), 30,
                       what="the survivors' next heartbeats")
        assert [(r["attempt"], r["status"]) for r in runs_of(pg_db, "long")] == [(1, "lost"), (2, "running")]
        listed = clis[1].json("hosts")
        dead = next(x for x in listed if x["instance"] == run["instance"])
        assert dead["state"] == "lost" and not dead["up"] and dead["heartbeat_age"] > 4
        assert sum(x["up"] for x in listed) == 2
        assert not [e for s in others for e in s.events() if e.get("event") == "lease lost"]
        cluster = clis[2].json("status", "--store", pg_db)
        assert (cluster["hosts_up"], cluster["hosts_down"], cluster["runs_in_flight"]) == (2, 1, 1)
    finally:
        for s in [first, *others]:
            s.stop()
    assert all(x["state"] == "stopped" for x in clis[0].json("hosts")
               if x["instance"] != run["instance"])


def test_a_host_frozen_past_its_lease_has_its_late_result_rejected(tmp_path: Path, pg_db: str) -> None:
    timetable = tmp_path / "work" / "supertask.yaml"
    clis = hosts(tmp_path, pg_db, 2)
    go = tmp_path / "go"
    timetable.write_text(f"""
namespace: frozen
jobs:
  - name: slow
    when: once
    run: "cmd:while [ ! -e {go} ]; do sleep 0.1; done; echo done"
    retries: 1
""")
    first = clis[0].start("--file", str(timetable), *BEAT)
    second = None
    try:
        first.wait_event("run started", job="slow", timeout=60)
        owner = runs_of(pg_db, "slow")[0]["instance"]
        second = clis[1].start("--file", str(timetable), *BEAT)
        second.wait_event("scheduler started", timeout=60)
        os.kill(first.proc.pid, signal.SIGSTOP)
        try:
            wait_until(lambda: len(runs_of(pg_db, "slow")) == 2, 60, what="the frozen host's run taken over")
            assert runs_of(pg_db, "slow")[0]["status"] == "lost"
            go.write_text("")  # the retry ends; so would the frozen host's child, were it still alive
            wait_until(lambda: runs_of(pg_db, "slow")[1]["status"] == "succeeded", 60, what="the retry's end")
        finally:
            os.kill(first.proc.pid, signal.SIGCONT)
        rejected = first.wait_event("late result rejected", timeout=60)
        assert rejected["row_status"] == "lost"
        first.wait_event("this scheduler was declared dead", timeout=60)
        assert "keeping them" in first.wait_event("lease lost", timeout=30)["action"]  # --lease-lost keep
        (lost, retry) = runs_of(pg_db, "slow")
        assert (lost["status"], lost["instance"]) == ("lost", owner) and "missed its lease" in lost["message"]
        assert retry["status"] == "succeeded" and retry["instance"] != owner
        assert len(runs_of(pg_db, "slow")) == 2  # the thawed host's own retry found the attempt claimed
        # back in touch, it is up again
        wait_until(lambda: sum(x["up"] for x in clis[1].json_soon("hosts") or ()) == 2, 60, what="both hosts up")
    finally:
        for s in (first, second):
            if s is not None:
                s.stop()


def test_a_restart_in_the_same_folder_takes_its_own_lost_run_at_once(tmp_path: Path, pg_db: str) -> None:
    """The previous scheduler of a state folder, gone: its runs are lost at the next start
    (no lease to wait for), and retried."""
    timetable = tmp_path / "work" / "supertask.yaml"
    (cli,) = hosts(tmp_path, pg_db, 1)
    timetable.write_text("""
namespace: restart
jobs:
  - name: long
    when: once
    run: "cmd:exec sleep 600"
    retries: 1
""")
    first = cli.start("--file", str(timetable), "--heartbeat", "5s", "--lease", "60s", "--grace", "1s")
    first.wait_event("run started", job="long", timeout=60)
    first.kill()
    again: Scheduler = cli.start("--file", str(timetable), "--heartbeat", "5s", "--lease", "60s", "--grace", "1s")
    try:
        lost = again.wait_event("run lost", timeout=60)
        assert lost["orphans_ended"] == 1 and "is gone" in lost["message"]
        wait_until(lambda: [r["status"] for r in runs_of(pg_db, "long")] == ["lost", "running"], 60,
                   what="the lost run retried")
    finally:
        again.stop()


def test_a_host_cut_off_from_a_shared_store_holds_its_fires(tmp_path: Path, pg_db: str) -> None:
    """Issue 18 point 3, last clause: while the store is away, a host whose namespace
    another live host serves holds its fires (the other one runs them), and records them
    as missed when the store is back unless they ran; alone, it fires from memory."""
    from tests.integration.proxy import Proxy

    proxy = Proxy(("127.0.0.1", 5432))
    url = pg_db.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != pg_db
    work = tmp_path / "work"
    work.mkdir()
    cut_off, direct = Cli(tmp_path / "home-a", url, work), Cli(tmp_path / "home-b", pg_db, work)
    (work / "supertask.yaml").write_text(f"""
namespace: held
jobs:
  - name: tick
    when: "every 1s"
    run: "cmd:echo $SUPERTASK_SCHEDULED >> {tmp_path}/fires-$MARK"
""")
    a = cut_off.start(*BEAT, env={"MARK": "a"})
    b = direct.start(*BEAT, env={"MARK": "b"})

    def fired(mark: str) -> list[str]:
        path = tmp_path / f"fires-{mark}"
        return path.read_text().split() if path.exists() else []

    try:
        wait_until(lambda: sum(x["up"] for x in direct.json_soon("hosts") or ()) == 2, 60, what="both hosts up")
        a.wait_event("run started", timeout=60)  # the two share the fires
        seen = beats(pg_db)
        wait_until(lambda seen=seen: all(b > seen[i] for i, b in beats(pg_db).items()), 30, what="a heartbeat each")
        proxy.refuse()
        # held for longer than the lease (4 s): a run of the cut-off host whose end could not be
        # written holds the other host's fires back (overlap: skip) until it is taken over
        held = wait_until(lambda: len([e for e in a.events() if e["event"] == "fire held: store unreachable"]) >= 7
                          and [e for e in a.events() if e["event"] == "fire held: store unreachable"], 60,
                          what="the cut-off host holding fires")
        ran_meanwhile = set(fired("a"))
        proxy.restore()
        a.wait_event("store reachable again", timeout=60)
        assert "other hosts serve this namespace" in held[0]["reason"] and "store unreachable" in held[0]["event"]
        times = {e["scheduled"] for e in held}
        assert not times & ran_meanwhile  # the cut-off host ran none of them

        def rows_of_held() -> dict[str, str]:
            found = rows(pg_db, "SELECT scheduled, status FROM supertask_runs WHERE job = 'tick'")
            return {when.isoformat(): status for when, status in found if when.isoformat() in times}

        # each has its one row: the other host's run (or its skip: the cut-off host's last run
        # was still in flight as far as the store knew), else the cut-off host's "missed"
        wait_until(lambda: len(rows_of_held()) == len(times), 30, what="a row for each held fire")
        assert set(rows_of_held().values()) <= {"succeeded", "skipped"}
        assert times & set(fired("b"))  # the other host ran them, as far as overlap let it
        assert not rows(pg_db, "SELECT scheduled FROM supertask_runs GROUP BY job, scheduled, attempt "
                                "HAVING count(*) > 1")
        # alone (the other one stopped cleanly), a cut-off host fires from memory, as cron would
        assert b.stop() == 0
        seen = beats(pg_db)
        wait_until(lambda seen=seen: all(v > seen[i] for i, v in beats(pg_db).items() if i != b_instance(direct)),
                   30, what="a heartbeat after the other host stopped")
        before = len(fired("a"))
        proxy.refuse()
        wait_until(lambda: len(fired("a")) >= before + 3, 60, what="fires from memory while the store is away")
        proxy.restore()
        a.wait_event("store reachable again", timeout=60)
    finally:
        for s in (a, b):
            s.stop()
        proxy.close()


def b_instance(cli: Cli) -> str:
    return next(x["instance"] for x in cli.json("hosts") if x["home"] == str(cli.home.resolve()))


def test_lease_lost_end_ends_the_runs_of_a_host_cut_off_from_its_store(tmp_path: Path, pg_db: str) -> None:
    """--lease-lost end: a scheduler that cannot write its heartbeat for longer than its
    lease ends its runs in flight (the other hosts may be retrying them); the row says why."""
    from tests.integration.proxy import Proxy

    proxy = Proxy(("127.0.0.1", 5432))
    url = pg_db.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    work = tmp_path / "work"
    work.mkdir()
    cli = Cli(tmp_path / "home", url, work)
    pidfile = tmp_path / "pid"
    (work / "supertask.yaml").write_text(f"""
namespace: fenced
jobs:
  - {{name: long, when: once, run: "cmd:echo $$ > {pidfile}; exec sleep 600"}}
""")
    sched = cli.start("--heartbeat", "1s", "--lease", "3s", "--lease-lost", "end", "--grace", "1s")
    try:
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), 60, what="the run's child")
        child = int(pidfile.read_text())
        proxy.refuse()
        lost = sched.wait_event("lease lost", timeout=60)
        assert lost["action"] == "ending them" and lost["runs"] == 1 and "no heartbeat written" in lost["reason"]
        wait_until(lambda: not alive(child), 30, what="the run ended")
        proxy.restore()
        wait_until(lambda: [r["status"] for r in runs_of(pg_db, "long")] == ["killed"], 60, what="the row written")
        assert "lost its lease" in runs_of(pg_db, "long")[0]["message"]
    finally:
        sched.stop()
        proxy.close()


def test_a_live_host_whose_clock_is_off_is_reported(tmp_path: Path, pg_db: str) -> None:
    """`hosts` marks, and `doctor` warns about, a live host whose clock was more than a
    second off the database's at its heartbeat (its row as such a host writes it)."""
    (cli,) = hosts(tmp_path, pg_db, 1)
    assert cli("run", "--ns", "clock", "--", "cmd:true").returncode == 0  # the store, its tables
    rows(pg_db, "INSERT INTO supertask_hosts (instance, host, pid, boot, home, version, namespaces, state, started, "
                 "heartbeat, host_clock, lease, load, runs) VALUES ('skewed0000', 'far', 4242, 'b', '/x', '0.2.0', "
                 "'[\"clock\"]', 'serving', now(), now(), now() + interval '3 seconds', 3600, 0.5, 0) RETURNING 1")
    (far,) = cli.json("hosts")
    assert far["up"] and far["clock_off"] and 2.5 < far["skew"] < 3.5
    shown = cli("hosts", env={"COLUMNS": "80"})
    assert "+3.00s !" in shown.stdout and "clock off by more than 1s" in shown.stdout, shown.stdout
    doctor = {c["name"]: c for c in json.loads(cli("doctor", "--json").stdout)}
    assert doctor["clocks"]["status"] == "warn" and "far (pid 4242, +3.00s)" in doctor["clocks"]["detail"]
