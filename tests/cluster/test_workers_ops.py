"""Operating workers (issue 16 points 4 and 5): `supertask workers` lists them, `drain`,
`pause` and `resume` one, each audited; namespaces share the workers by weight and
max_running, jobs by max_concurrent. The real CLI in subprocesses on the real PostgreSQL,
a database of each test's own."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.workers_kit import BEAT, Worker, stop_all, worker
from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def cli_for(tmp_path: Path, url: str, name: str = "home") -> Cli:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Cli(tmp_path / name, url, work)


def make_store(url: str) -> None:
    """The store's tables, as `supertask run` or `supertask worker` makes them at its start
    (reading commands such as `workers` make none)."""
    from supertask.store.sql import open_store

    open_store(url, create=True).close()


def fake_worker(url: str, name: str, *, state: str = "serving", age: str = "0 seconds",
                labels: str = "{}") -> None:
    """A worker's row as a worker writes it (for what is judged from the row alone)."""
    rows(url, "INSERT INTO supertask_workers (name, host, pid, version, labels, slots, running, state, started, "
              "heartbeat, lease) VALUES (%s, 'box', 1, '0.2', %s, 2, 0, %s, now() - %s::interval, "
              "now() - %s::interval, 20)", name, labels, state, age, age)


def test_an_unknown_or_ended_worker_is_refused_naming_the_known_ones(tmp_path: Path, pg_db: str) -> None:
    cli = cli_for(tmp_path, pg_db)
    make_store(pg_db)
    assert cli("workers").returncode == 0  # no workers yet
    fake_worker(pg_db, "gpu-1")
    fake_worker(pg_db, "gone", state="stopped", age="1 minute")
    proc = cli("workers", "drain", "gpu-2")
    assert proc.returncode == 2
    assert "no worker named 'gpu-2'" in proc.stderr and "gpu-1" in proc.stderr and "gone" not in proc.stderr
    proc = cli("workers", "pause", "gone")
    assert proc.returncode == 1 and "worker 'gone' is stopped" in proc.stderr
    assert rows(pg_db, "SELECT name, wanted FROM supertask_workers ORDER BY name") == [("gone", None), ("gpu-1", None)]
    assert rows(pg_db, "SELECT count(*) FROM supertask_audit") == [(0,)]


def test_drain_pause_resume_are_asked_in_the_row_and_audited(tmp_path: Path, pg_db: str) -> None:
    cli = cli_for(tmp_path, pg_db)
    make_store(pg_db)
    assert cli("workers").returncode == 0
    fake_worker(pg_db, "w1")
    fake_worker(pg_db, "silent", age="1 minute")
    listed = {r["name"]: r for r in cli.json("workers")}
    assert (listed["w1"]["state"], listed["w1"]["up"]) == ("serving", True)
    assert (listed["silent"]["state"], listed["silent"]["up"], listed["silent"]["recorded_state"]) == (
        "down", False, "serving")
    for command, wanted in (("drain", "drain"), ("pause", "pause"), ("resume", "serve")):
        proc = cli("workers", command, "w1")
        assert proc.returncode == 0, proc.stderr
        assert rows(pg_db, "SELECT wanted FROM supertask_workers WHERE name = 'w1'") == [(wanted,)]
    audit = cli.json("audit")
    assert [r["action"] for r in audit] == ["worker resume", "worker pause", "worker drain"]
    assert audit[0]["after"] == {"worker": "w1", "wanted": "serve"} and audit[0]["source"].startswith("cli on ")
    assert json.loads(cli("workers", "drain", "w1", "--json").stdout)["wanted"] == "drain"


def test_why_a_run_waits_is_in_status_history_and_the_metrics(tmp_path: Path, pg_db: str) -> None:
    import urllib.request

    cli = cli_for(tmp_path, pg_db)
    (cli.cwd / "supertask.yaml").write_text(
        "namespace: gpu\nweight: 2\nmax_running: 3\njobs:\n  - name: train\n    when: '@daily'\n    run: cmd:true\n")
    scheduler = cli.start("--metrics", "127.0.0.1:0", "--heartbeat", "1s", "--lease", "4s")
    try:
        url = scheduler.wait_event("metrics serving", timeout=60)["url"]
        assert rows(pg_db, "SELECT weight, max_running FROM supertask_namespaces WHERE name = 'gpu'") == [(2.0, 3)]
        rows(pg_db, "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, status, labels, message) "
                    "VALUES ('gpu', 'train', 1, 'manual', now(), 'queued', '{\"gpu\": \"1\"}', "
                    "'no live worker has gpu=1')")
        reason = {"namespace": "gpu", "reason": "no live worker has gpu=1", "runs": 1}
        assert cli.json("status")["queued"] == [reason]
        assert "queued 1 run(s): 1 in gpu: no live worker has gpu=1" in cli("status").stdout
        assert cli.json("status", "--store", pg_db)["queued"] == [reason]
        assert [(r["status"], r["message"]) for r in cli.json("history", "--ns", "gpu")] == [
            ("queued", "no live worker has gpu=1")]
        metrics = urllib.request.urlopen(url, timeout=10).read().decode()
        assert 'supertask_runs_queued{namespace="gpu",reason="no live worker has gpu=1"} 1.0' in metrics
    finally:
        scheduler.stop()


# -- with real workers -------------------------------------------------------------------------


def timetable(cli: Cli, name: str, text: str) -> Path:
    path = cli.cwd / name
    path.write_text(text)
    return path


def backlog(url: str, ns: str, job: str, count: int, labels: str = "{}") -> None:
    """``count`` queued runs of the job for workers, as the scheduler queues its fires."""
    rows(url, "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, status, labels) "
              "SELECT %s, %s, 1, 'manual', now() - make_interval(secs => n), 'queued', %s "
              "FROM generate_series(1, %s) AS n", ns, job, labels, count)


def states(url: str, job: str) -> dict[str, int]:
    return dict(rows(url, "SELECT status, count(*) FROM supertask_runs WHERE job = %s GROUP BY status", job))


def beats_after(url: str, name: str, count: int) -> None:
    """Wait until the worker has written ``count`` more heartbeats (each after a claim look)."""
    [(first,)] = rows(url, "SELECT heartbeat FROM supertask_workers WHERE name = %s", name)
    seen = {first}

    def more() -> bool:
        seen.add(rows(url, "SELECT heartbeat FROM supertask_workers WHERE name = %s", name)[0][0])
        return len(seen) > count

    wait_until(more, 30, what=f"{count} heartbeats of {name}")


def test_two_real_workers_are_listed_with_runs_in_flight_and_telemetry(tmp_path: Path, pg_db: str) -> None:
    sched_cli, a_cli, b_cli = (cli_for(tmp_path, pg_db, f"home{i}") for i in range(3))
    gate = tmp_path / "gate"
    timetable(sched_cli, "supertask.yaml", f"""
namespace: ops
jobs:
  - {{name: hold, when: once, on: {{gpu: "1"}}, run: "cmd:while [ ! -f {gate} ]; do sleep 0.1; done"}}
""")
    a = worker(a_cli, "gpu-a", "gpu=1,region=eu", "--slots", "2", *BEAT)
    b = worker(b_cli, "cpu-b", "region=us", "--slots", "3", *BEAT)
    sched = sched_cli.start(*BEAT)
    try:
        wait_until(lambda: states(pg_db, "hold").get("running"), 60, what="hold running")
        listed = wait_until(lambda: [r for r in sched_cli.json("workers") if r["telemetry"]]
                            if len(sched_cli.json("workers")) == 2 else None, 30, what="two workers with telemetry")
        by = {r["name"]: r for r in sched_cli.json("workers")}
        assert set(by) == {"gpu-a", "cpu-b"} and listed
        assert (by["gpu-a"]["labels"], by["gpu-a"]["slots"], by["gpu-a"]["in_flight"]) == (
            {"gpu": "1", "region": "eu"}, 2, 1)
        assert (by["cpu-b"]["labels"], by["cpu-b"]["slots"], by["cpu-b"]["in_flight"]) == ({"region": "us"}, 3, 0)
        for r in by.values():
            assert (r["state"], r["up"]) == ("serving", True) and r["heartbeat_age"] < 4
            assert {"cpu", "memory"} <= set(r["telemetry"])
        text = sched_cli("workers", env={"COLUMNS": "200"}).stdout
        assert "gpu-a" in text and "gpu=1,region=eu" in text and "1/2" in text and "serving" in text
        gate.touch()
        wait_until(lambda: states(pg_db, "hold") == {"succeeded": 1}, 30, what="hold's end")
    finally:
        stop_all(sched, a, b)
    by = {r["name"]: r for r in sched_cli.json("workers")}
    assert {r["state"] for r in by.values()} == {"stopped"} and not any(r["up"] for r in by.values())
    assert sched_cli("workers", "drain", "gpu-a").returncode == 1  # stopped: nothing to drain


def test_drain_finishes_in_flight_takes_no_more_and_pause_resume(tmp_path: Path, pg_db: str) -> None:
    sched_cli, w_cli = cli_for(tmp_path, pg_db, "home0"), cli_for(tmp_path, pg_db, "home1")
    gate, done = tmp_path / "gate", tmp_path / "done"
    timetable(sched_cli, "supertask.yaml", f"""
namespace: ops
jobs:
  - {{name: hold, when: once, on: {{pool: a}}, run: "cmd:while [ ! -f {gate} ]; do sleep 0.1; done"}}
  - {{name: more, when: "@yearly", overlap: allow, on: {{pool: a}}, run: "cmd:echo $SUPERTASK_RUN_ID >> {done}"}}
""")
    w = worker(w_cli, "w1", "pool=a", "--slots", "4", *BEAT)
    sched = sched_cli.start(*BEAT)
    try:
        wait_until(lambda: states(pg_db, "hold").get("running"), 60, what="hold running")
        assert sched_cli("workers", "drain", "w1").returncode == 0
        wait_until(lambda: rows(pg_db, "SELECT state FROM supertask_workers WHERE name = 'w1'") == [("draining",)],
                   20, what="w1 draining")
        backlog(pg_db, "ops", "more", 3)
        beats_after(pg_db, "w1", 3)  # three heartbeats (and many claim looks) later: nothing taken
        assert states(pg_db, "more") == {"queued": 3}
        assert sched_cli.json("workers")[0]["state"] == "draining"
        gate.touch()  # the run in flight finishes on the draining worker
        wait_until(lambda: states(pg_db, "hold") == {"succeeded": 1}, 30, what="hold's end while draining")
        assert rows(pg_db, "SELECT worker FROM supertask_runs WHERE job = 'hold'") == [("w1",)]
        assert sched_cli("workers", "resume", "w1").returncode == 0
        wait_until(lambda: states(pg_db, "more") == {"succeeded": 3}, 30, what="the backlog taken after resume")
        assert sched_cli("workers", "pause", "w1").returncode == 0
        wait_until(lambda: rows(pg_db, "SELECT state FROM supertask_workers WHERE name = 'w1'") == [("paused",)],
                   20, what="w1 paused")
        backlog(pg_db, "ops", "more", 2)
        beats_after(pg_db, "w1", 3)
        assert states(pg_db, "more") == {"succeeded": 3, "queued": 2}
        assert sched_cli("workers", "resume", "w1").returncode == 0
        wait_until(lambda: states(pg_db, "more") == {"succeeded": 5}, 30, what="taken again after resume")
        assert [r["action"] for r in sched_cli.json("audit")][:4] == [
            "worker resume", "worker pause", "worker resume", "worker drain"]
        # SIGTERM drains it as `workers drain` does, then it exits: stopped
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(30) == 0
        assert sched_cli.json("workers")[0]["state"] == "stopped"
    finally:
        stop_all(sched, w)


def claims(url: str, job: str) -> list[list[str]]:
    """The runs of the job workers took, claim by claim (a claim's rows share its ``started``,
    the claim transaction's time; one worker's claims follow one another): their namespaces."""
    out: dict[Any, list[str]] = {}
    for started, ns in rows(url, "SELECT started, namespace FROM supertask_runs WHERE job = %s "
                                 "AND worker IS NOT NULL ORDER BY started, id", job):
        out.setdefault(started, []).append(ns)
    return list(out.values())


def test_fair_share_a_small_namespace_starts_among_the_first_runs(tmp_path: Path, pg_db: str) -> None:
    a_cli, b_cli, w_cli = (cli_for(tmp_path, pg_db, f"home{i}") for i in range(3))
    job = '  - {name: work, when: "@yearly", overlap: allow, on: {pool: fair}, run: "cmd:true"}\n'
    a = a_cli.start("--file", str(timetable(a_cli, "a.yaml", "namespace: big\njobs:\n" + job)), *BEAT)
    b = b_cli.start("--file", str(timetable(b_cli, "b.yaml", "namespace: small\njobs:\n" + job)), *BEAT)
    w: Worker | None = None
    try:
        for s in (a, b):
            s.wait_event("scheduler started", timeout=60)
        backlog(pg_db, "big", "work", 200)
        backlog(pg_db, "small", "work", 10)
        w = worker(w_cli, "w1", "pool=fair", "--slots", "4", *BEAT)  # its first claim sees the whole backlog
        wait_until(lambda: states(pg_db, "work").get("succeeded", 0) >= 40, 90, what="the first 40 runs")
        taken = claims(pg_db, "work")
        assert sorted(taken[0]) == ["big", "big", "small", "small"], taken[:4]  # 4 free slots: A, B, A, B
        first = [ns for claim in taken for ns in claim]
        # the order of the claims (the rows), whatever order the children happened to start in. Then
        # each run that ends frees a slot the worker claims at once: the namespace with fewer runs in
        # flight gets it, so the two take turns as their runs end (in whatever order they end: about
        # every other place, not exactly). A claim in queue order would take big's 200 first.
        assert first[:40].count("small") == 10, taken[:16]
    finally:
        stop_all(a, b, *([w] if w else []))


def concurrency_job(name: str, folder: Path, extra: str = "", hold: str = "sleep 1") -> str:
    """A job whose each run counts the runs of it in flight at its start into ``folder/name.counts``,
    then ``hold``s."""
    flight = folder / name
    return (f'  - {{name: {name}, when: "@yearly", overlap: allow, on: {{pool: x}}{extra}, run: "cmd:'
            f"mkdir -p {flight}; touch {flight}/$SUPERTASK_RUN_ID; ls {flight} | wc -l >> {folder}/{name}.counts; "
            f'{hold}; rm {flight}/$SUPERTASK_RUN_ID"}}\n')


def most_at_once(folder: Path, name: str) -> int:
    return max(int(n) for n in (folder / f"{name}.counts").read_text().split())


class Running:
    """Snapshots of the runs in flight (one statement each: what every claim counts), the
    most seen at once per job and per namespace, and per worker."""

    def __init__(self, url: str):
        self.url, self.jobs, self.namespaces = url, {}, {}  # type: ignore[var-annotated]

    def look(self) -> dict[str, int]:
        now = rows(self.url, "SELECT namespace, job, worker, count(*) FROM supertask_runs WHERE status = 'running' "
                             "GROUP BY namespace, job, worker")
        per_job: dict[str, int] = {}
        per_ns: dict[str, int] = {}
        for ns, job, _worker, n in now:
            per_job[job] = per_job.get(job, 0) + n
            per_ns[ns] = per_ns.get(ns, 0) + n
        for seen, here in ((self.jobs, per_job), (self.namespaces, per_ns)):
            for key, n in here.items():
                seen[key] = max(seen.get(key, 0), n)
        return per_job


def test_max_running_and_max_concurrent_hold_across_two_workers(tmp_path: Path, pg_db: str) -> None:
    capped_cli, free_cli, a_cli, b_cli = (cli_for(tmp_path, pg_db, f"home{i}") for i in range(4))
    folder, gate = tmp_path / "flight", tmp_path / "gate"
    folder.mkdir()
    held = f"while [ ! -f {gate} ]; do sleep 0.1; done; sleep 0.3"  # the limited runs hold their places
    capped = capped_cli.start("--file", str(timetable(capped_cli, "capped.yaml", "namespace: capped\nmax_running: 2\n"
                                                      "jobs:\n" + concurrency_job("ns_capped", folder, hold=held))),
                              *BEAT)
    free = free_cli.start("--file", str(timetable(free_cli, "free.yaml", "namespace: free\njobs:\n"
                                                  + concurrency_job("job_capped", folder, ", max_concurrent: 2", held)
                                                  + concurrency_job("uncapped", folder))), *BEAT)
    workers: list[Scheduler] = []
    seen = Running(pg_db)
    try:
        for s in (capped, free):
            s.wait_event("scheduler started", timeout=60)
        workers += [worker(a_cli, "wa", "pool=x", "--slots", "4", *BEAT),
                    worker(b_cli, "wb", "pool=x", "--slots", "4", *BEAT)]
        for name in ("wa", "wb"):
            beats_after(pg_db, name, 1)  # beating: its claim loop (started before the heartbeat's) is going
        for job, ns in (("ns_capped", "capped"), ("job_capped", "free"), ("uncapped", "free")):
            backlog(pg_db, ns, job, 6, '{"pool": "x"}')  # both workers up: the backlog is theirs to share
        # 8 slots, 4 runs held: the unlimited job's 6 runs go through the free slots of both workers
        wait_until(lambda: seen.look() and states(pg_db, "uncapped") == {"succeeded": 6}, 90,
                   what="uncapped's 6 runs while the limited ones hold")
        # each limited job is at its limit, the rest queued, while the workers have free slots and claim
        # (at least one of the two holds none or part of each limit's runs: the limit is counted across both)
        for name in ("wa", "wb"):
            beats_after(pg_db, name, 2)
        seen.look()
        assert (states(pg_db, "ns_capped"), states(pg_db, "job_capped")) == (
            {"running": 2, "queued": 4}, {"running": 2, "queued": 4})
        # both took runs: one worker holding all four limited runs is full, so the other ran the unlimited ones
        assert rows(pg_db, "SELECT count(DISTINCT worker) FROM supertask_runs WHERE status <> 'queued'") == [(2,)]
        gate.touch()
        for job in ("ns_capped", "job_capped", "uncapped"):
            wait_until(lambda job=job: seen.look() is not None and states(pg_db, job) == {"succeeded": 6}, 90,
                       what=f"{job}'s 6 runs")
        assert seen.namespaces["capped"] == 2 and seen.jobs["job_capped"] == 2, (seen.namespaces, seen.jobs)
        assert most_at_once(folder, "ns_capped") <= 2  # the namespace's max_running, on both workers together
        assert most_at_once(folder, "job_capped") <= 2  # the job's max_concurrent across both workers
        assert most_at_once(folder, "uncapped") >= 3  # no limit: the free slots (work-conserving)
    finally:
        stop_all(capped, free, *workers)
