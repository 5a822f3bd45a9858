"""Workers on other machines (issue 16): a real scheduler and real `supertask worker`
processes on the real PostgreSQL (a database of each test's own), killed, frozen and cut
off. Labels route runs; a run no worker fits waits, saying why; a dead worker's attempts
are lost and retried elsewhere, its late results rejected; a worker cut off from the
store ends its children itself; logs are read from the store on any host."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.workers_kit import BEAT, stop_all, worker
from tests.conftest import SUPERTASK, Cli, wait_until

pytestmark = pytest.mark.postgres

def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def execute(url: str, sql: str, *params: Any) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql, params)


def runs_of(url: str, job: str) -> list[dict[str, Any]]:
    cols = ("id", "attempt", "reason", "status", "worker", "instance", "labels", "priority", "message", "exit_code")
    return [dict(zip(cols, r, strict=True)) for r in rows(
        url, f"SELECT {', '.join(cols)} FROM supertask_runs WHERE job = %s ORDER BY id", job)]


def clis(tmp_path: Path, url: str, count: int) -> list[Cli]:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return [Cli(tmp_path / f"home{i}", url, work) for i in range(count)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_labels_route_runs_queued_reason_and_trigger(tmp_path: Path, pg_db: str) -> None:
    sched_cli, gpu_cli, eu_cli, late_cli = clis(tmp_path, pg_db, 4)
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: routing
jobs:
  - {{name: gpu, when: once, on: {{gpu: "1"}}, priority: 5,
     run: "cmd:echo $SUPERTASK_RUN_ID $SUPERTASK_WORKER > {out}/gpu"}}
  - {{name: eu, when: once, on: {{region: eu}}, run: "cmd:echo $SUPERTASK_WORKER > {out}/eu"}}
  - {{name: plain, when: once, run: "cmd:echo $SUPERTASK_RUN_ID > {out}/plain"}}
  - {{name: big, when: once, on: {{gpu: "2"}}, run: "cmd:echo $SUPERTASK_WORKER > {out}/big"}}
  - {{name: manual, when: "@yearly", on: {{gpu: "1"}}, run: "cmd:echo $SUPERTASK_WORKER >> {out}/manual"}}
""")
    gpu = worker(gpu_cli, "w-gpu", "gpu=1,region=us", *BEAT)
    eu = worker(eu_cli, "w-eu", "region=eu", *BEAT)
    sched = sched_cli.start(*BEAT)
    late = None
    try:
        wait_until(lambda: all((out / n).exists() for n in ("gpu", "eu", "plain")), 60, what="the three runs")
        assert (out / "gpu").read_text().split()[1] == "w-gpu" and (out / "eu").read_text().strip() == "w-eu"
        [g] = runs_of(pg_db, "gpu")
        assert (g["worker"], g["instance"], json.loads(g["labels"]), g["priority"]) == \
            ("w-gpu", "w-gpu", {"gpu": "1"}, 5)
        assert (out / "gpu").read_text().split()[0] == str(g["id"])  # the child has its run id
        wait_until(lambda: runs_of(pg_db, "plain")[0]["status"] == "succeeded", 30, what="plain's row")
        [p] = runs_of(pg_db, "plain")
        assert p["worker"] is None and p["labels"] is None and p["instance"] not in ("w-gpu", "w-eu")
        # nobody has gpu=2: queued, saying so, in history too
        wait_until(lambda: runs_of(pg_db, "big") and runs_of(pg_db, "big")[0]["message"], 30, what="big's row")
        [b] = runs_of(pg_db, "big")
        assert (b["status"], b["message"]) == ("queued", "no live worker has gpu=2")
        hist = {r["job"]: r for r in sched_cli.json("history", "--ns", "routing")}
        assert hist["big"]["status"] == "queued" and hist["big"]["message"] == "no live worker has gpu=2"
        assert hist["big"]["labels"] == {"gpu": "2"}
        # trigger obeys the labels: the run goes to the gpu worker, not the scheduler
        trig = sched_cli("jobs", "trigger", "manual", "--ns", "routing")
        assert trig.returncode == 0, trig.stderr
        wait_until(lambda: (out / "manual").exists(), 30, what="the triggered run")
        assert (out / "manual").read_text().strip() == "w-gpu"
        wait_until(lambda: runs_of(pg_db, "manual")[0]["status"] == "succeeded", 30, what="its end")
        [m] = runs_of(pg_db, "manual")
        assert (m["reason"], m["worker"]) == ("manual", "w-gpu")
        # through the store, with no scheduler to talk to: a scheduler takes it up and leaves it to workers
        elsewhere = Cli(tmp_path / "home-elsewhere", pg_db, tmp_path / "work")
        trig = elsewhere("jobs", "trigger", "manual", "--ns", "routing")
        assert trig.returncode == 0, trig.stderr
        wait_until(lambda: len((out / "manual").read_text().split()) == 2, 30, what="the run triggered in the store")
        assert (out / "manual").read_text().split() == ["w-gpu", "w-gpu"]
        assert [(r["reason"], r["worker"]) for r in runs_of(pg_db, "manual")] == [("manual", "w-gpu")] * 2
        # a worker with gpu=2 comes: the waiting run starts, and its reason is gone
        late = worker(late_cli, "w-big", "gpu=2", *BEAT)
        wait_until(lambda: (out / "big").exists(), 30, what="big run once a worker fits")
        assert (out / "big").read_text().strip() == "w-big"
        wait_until(lambda: runs_of(pg_db, "big")[0]["status"] == "succeeded", 30, what="big's end")
        assert runs_of(pg_db, "big")[0]["message"] is None
        assert gpu.proc.poll() is None and eu.proc.poll() is None
    finally:
        stop_all(sched, gpu, eu, *([late] if late else []))
    assert gpu.proc.returncode == 0  # SIGTERM: drained, then exited
    state = dict(rows(pg_db, "SELECT name, state FROM supertask_workers"))
    assert state == {"w-gpu": "stopped", "w-eu": "stopped", "w-big": "stopped"}


def test_a_killed_worker_s_run_is_lost_within_40s_and_retried_on_the_other(tmp_path: Path, pg_db: str) -> None:
    sched_cli, a_cli, b_cli = clis(tmp_path, pg_db, 3)
    pids = tmp_path / "pids"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: lost
jobs:
  - name: long
    when: once
    on: {{gpu: "1"}}
    retries: 1
    run: "cmd:echo $$ $SUPERTASK_WORKER $SUPERTASK_RUN_ID >> {pids}; exec sleep 600"
""")
    # default heartbeat (5s) and lease (20s): the figure the issue asks for
    first = worker(a_cli, "w-a", "gpu=1")
    sched = sched_cli.start()
    second = None
    children: list[int] = []
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), 60, what="the first attempt's child")
        child, on, run_id = pids.read_text().split()
        children.append(int(child))
        assert on == "w-a"
        second = worker(b_cli, "w-b", "gpu=1")
        os.kill(first.proc.pid, signal.SIGKILL)  # the worker alone: its child runs on, orphaned
        killed = time.monotonic()
        wait_until(lambda: runs_of(pg_db, "long")[0]["status"] == "lost", 40, what="the attempt marked lost")
        took = time.monotonic() - killed
        attempts = runs_of(pg_db, "long")
        assert attempts[0]["id"] == int(run_id) and "worker w-a" in attempts[0]["message"]
        assert "missed its lease" in attempts[0]["message"], attempts[0]["message"]
        wait_until(lambda: len(pids.read_text().split()) >= 6, 30, what="the retry's child")
        retry_child, retry_on, retry_id = pids.read_text().split()[3:6]
        children.append(int(retry_child))
        attempts = runs_of(pg_db, "long")
        assert [(r["attempt"], r["status"], r["worker"]) for r in attempts] == [
            (1, "lost", "w-a"), (2, "running", "w-b")]
        assert retry_on == "w-b" and int(retry_id) == attempts[1]["id"]
        assert json.loads(attempts[1]["labels"]) == {"gpu": "1"} and attempts[1]["reason"] == "retry"
        print(f"kill -9 to lost: {took:.1f}s")
        assert took < 40
        wait_until(lambda: dict(rows(pg_db, "SELECT name, state FROM supertask_workers"))["w-a"] == "lost", 30,
                   what="the worker row lost")
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        first.kill()
        stop_all(sched, *([second] if second else []))


def test_a_frozen_worker_s_late_result_is_rejected(tmp_path: Path, pg_db: str) -> None:
    sched_cli, a_cli, b_cli = clis(tmp_path, pg_db, 3)
    marks = tmp_path / "marks"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: frozen
jobs:
  - name: slow
    when: once
    on: {{gpu: "1"}}
    retries: 1
    run: "cmd:echo $SUPERTASK_WORKER >> {marks}; sleep 6; echo done"
""")
    first = worker(a_cli, "w-a", "gpu=1", *BEAT)
    sched = sched_cli.start(*BEAT)
    second = None
    try:
        wait_until(lambda: marks.exists(), 60, what="the first attempt")
        os.kill(first.proc.pid, signal.SIGSTOP)  # frozen: no heartbeat, its child runs on (6 s)
        second = worker(b_cli, "w-b", "gpu=1", *BEAT)  # started after: a slow start must not outlast the child
        wait_until(lambda: [r["status"] for r in runs_of(pg_db, "slow")][:1] == ["lost"], 30, what="lost")
        wait_until(lambda: "w-b" in marks.read_text(), 30, what="the retry on w-b")
        os.kill(first.proc.pid, signal.SIGCONT)
        rejected = first.wait_event("late result rejected", timeout=30)
        assert rejected["row_status"] == "lost" and rejected["row_worker"] == "w-a"
        wait_until(lambda: runs_of(pg_db, "slow")[1]["status"] == "succeeded", 30, what="the retry's end")
        attempts = runs_of(pg_db, "slow")
        assert [(r["attempt"], r["status"], r["worker"]) for r in attempts] == [
            (1, "lost", "w-a"), (2, "succeeded", "w-b")]
    finally:
        if first.proc.poll() is None:
            os.kill(first.proc.pid, signal.SIGCONT)
        stop_all(sched, first, *([second] if second else []))


def test_a_worker_cut_off_from_the_store_ends_its_child_before_its_lease(tmp_path: Path, pg_db: str) -> None:
    from tests.integration.proxy import Proxy, upstream_of

    proxy = Proxy(upstream_of(pg_db))
    sched_cli, b_cli = clis(tmp_path, pg_db, 2)
    cut_cli = Cli(tmp_path / "home-cut", proxy.via(pg_db), tmp_path / "work")
    pids = tmp_path / "pids"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: fenced
jobs:
  - name: long
    when: once
    on: {{gpu: "1"}}
    retries: 1
    kill_grace: 30s
    run: "cmd:echo $$ $SUPERTASK_WORKER >> {pids}; exec sleep 600"
""")
    cut = worker(cut_cli, "w-cut", "gpu=1", "--heartbeat", "1s", "--lease", "6s")
    sched = sched_cli.start(*BEAT)
    other = None
    children: list[int] = []
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), 60, what="the child")
        child = int(pids.read_text().split()[0])
        children.append(child)
        [run] = runs_of(pg_db, "long")
        lease_until = rows(pg_db, "SELECT lease_until, now() FROM supertask_runs WHERE id = %s", run["id"])[0]
        proxy.cut()
        cut_at = time.monotonic()
        # the lease was at most 6s ahead when read; renewed at most until the cut
        wait_until(lambda: not alive(child), 15, what="the child ended by its own worker")
        ended_after = time.monotonic() - cut_at
        assert ended_after < 6 + 1.5, ended_after  # before its lease (6s from the last renewal) ran out
        assert (lease_until[0] - lease_until[1]).total_seconds() <= 6.5
        cut.wait_event("lease not renewed: ending this worker's runs", timeout=5)
        other = worker(b_cli, "w-b", "gpu=1", *BEAT)
        wait_until(lambda: runs_of(pg_db, "long")[0]["status"] == "lost", 30, what="the attempt lost")
        wait_until(lambda: len(pids.read_text().split()) >= 4, 30, what="the retry on w-b")
        children.append(int(pids.read_text().split()[2]))
        assert pids.read_text().split()[3] == "w-b"
        proxy.restore()
        rejected = cut.wait_event("late result rejected", timeout=40)
        assert rejected["row_status"] == "lost" and rejected["status"] == "killed"
    finally:
        proxy.restore()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        stop_all(sched, cut, *([other] if other else []))
        proxy.close()


def test_logs_follow_a_worker_s_run_from_the_store_within_log_max(tmp_path: Path, pg_db: str) -> None:
    sched_cli, w_cli, reader = clis(tmp_path, pg_db, 3)
    go = tmp_path / "go"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: logs
jobs:
  - name: talk
    when: once
    on: {{gpu: "1"}}
    run: "cmd:echo first; while [ ! -e {go} ]; do sleep 0.1; done; echo second >&2; echo third"
  - name: loud
    when: once
    on: {{gpu: "1"}}
    log_max: 2k
    run: "cmd:for i in $(seq 1 400); do echo line $i; done"
""")
    w = worker(w_cli, "w-gpu", "gpu=1", "--slots", "2", *BEAT)
    sched = sched_cli.start(*BEAT)
    try:
        wait_until(lambda: runs_of(pg_db, "talk") and runs_of(pg_db, "talk")[0]["status"] == "running", 60,
                   what="talk running")
        run_id = runs_of(pg_db, "talk")[0]["id"]
        follow = subprocess.Popen([*SUPERTASK, "logs", str(run_id), "--follow"], cwd=reader.cwd, env=reader.env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: rows(pg_db, "SELECT count(*) FROM supertask_log_chunks WHERE run_id = %s", run_id)[0][0],
                   15, what="the first chunk shipped while the run runs")
        assert runs_of(pg_db, "talk")[0]["status"] == "running"
        go.touch()
        text, err = follow.communicate(timeout=30)
        assert follow.returncode == 0, err
        lines = [line.split(" ", 2)[1:] for line in text.splitlines()]
        assert lines == [["stdout", "first"], ["stderr", "second"], ["stdout", "third"]]
        wait_until(lambda: runs_of(pg_db, "loud") and runs_of(pg_db, "loud")[0]["status"] == "succeeded", 30,
                   what="loud's end")
        loud = reader("logs", str(runs_of(pg_db, "loud")[0]["id"]))
        assert loud.returncode == 0, loud.stderr
        assert len(loud.stdout) <= 2048 + 200 and "left out" in loud.stdout
        assert loud.stdout.splitlines()[0].endswith("line 1") and loud.stdout.splitlines()[-1].endswith("line 400")
        hist = {r["job"]: r for r in reader.json("history", "--ns", "logs")}
        assert hist["loud"]["log_tail"].splitlines()[-1] == "line 400"
    finally:
        stop_all(sched, w)


def test_sqlite_and_bad_options_are_refused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    cli = Cli(tmp_path / "home", f"sqlite:///{tmp_path / 'store.db'}", work)
    for args, says in [((), "needs a PostgreSQL store"), (("--labels", "gpu"), "is not key=value"),
                       (("--labels", "g pu=1"), "is not a key"), (("--slots", "0"), "at least 1 slot"),
                       (("--lease", "1s"), "at least twice --heartbeat")]:
        proc = cli("worker", *args)
        assert proc.returncode == 2 and says in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "store.db").exists()


def test_a_worker_restarted_after_kill_9_takes_its_runs_back_at_once(tmp_path: Path, pg_db: str) -> None:
    sched_cli, w_cli = clis(tmp_path, pg_db, 2)
    pids = tmp_path / "pids"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: restart
jobs:
  - name: long
    when: once
    on: {{gpu: "1"}}
    retries: 1
    run: "cmd:echo $$ $SUPERTASK_RUN_ID >> {pids}; exec sleep 600"
""")
    first = worker(w_cli, "w-1", "gpu=1")  # default lease: 20s
    sched = sched_cli.start()
    again = None
    children: list[int] = []
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), 60, what="the first attempt's child")
        child = int(pids.read_text().split()[0])
        children.append(child)
        first.kill()  # kill -9 of the worker (its process group); the child, in a session of its own, lives on
        assert alive(child)
        restarted = time.monotonic()
        again = worker(w_cli, "w-1", "gpu=1")  # systemd's Restart=: the same name, at once
        wait_until(lambda: runs_of(pg_db, "long")[0]["status"] == "lost", 15, what="the attempt lost at once")
        assert time.monotonic() - restarted < 15  # not after the 20s lease
        assert "restarted" in runs_of(pg_db, "long")[0]["message"]
        wait_until(lambda: not alive(child), 15, what="the orphan ended")
        wait_until(lambda: len(pids.read_text().split()) >= 4, 30, what="the retry")
        children.append(int(pids.read_text().split()[2]))
        assert [(r["attempt"], r["status"], r["worker"]) for r in runs_of(pg_db, "long")] == [
            (1, "lost", "w-1"), (2, "running", "w-1")]
    finally:
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        stop_all(sched, *([again] if again else []))


def test_workers_only_leaves_every_run_to_workers(tmp_path: Path, pg_db: str) -> None:
    sched_cli, w_cli = clis(tmp_path, pg_db, 2)
    out = tmp_path / "out"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: only
jobs:
  - {{name: plain, when: once, run: "cmd:echo $SUPERTASK_WORKER > {out}"}}
""")
    sched = sched_cli.start("--workers-only", *BEAT)
    w = None
    try:
        sched.wait_event("scheduler started", timeout=60)
        wait_until(lambda: runs_of(pg_db, "plain") and runs_of(pg_db, "plain")[0]["message"], 60, what="the row")
        [r] = runs_of(pg_db, "plain")
        assert (r["status"], json.loads(r["labels"]), r["message"]) == (
            "queued", {}, "no live worker (start one: supertask worker --store URL)")
        assert not out.exists()  # the scheduler launched nothing
        w = worker(w_cli, "w-any", "", *BEAT)  # a worker without labels takes runs that need none
        wait_until(lambda: out.exists(), 30, what="the run on the worker")
        assert out.read_text().strip() == "w-any"
    finally:
        stop_all(sched, *([w] if w else []))


def test_old_worker_rows_are_forgotten_unless_they_hold_a_run(pg_db: str) -> None:
    from supertask.store.sql import open_store
    from supertask.workers.lost import forget

    st = open_store(pg_db)
    try:
        for name, state, age in (("old", "stopped", 8), ("recent", "stopped", 1), ("holding", "lost", 8),
                                 ("up", "serving", 8)):
            execute(pg_db, "INSERT INTO supertask_workers (name, labels, slots, state, started, heartbeat, lease) "
                 "VALUES (%s, '{}', 1, %s, now(), now() - make_interval(days => %s), 20)", name, state, age)
        execute(pg_db, "INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, status, worker) "
             "VALUES ('ns', 'j', 1, 'schedule', now(), 'running', 'holding')")
        assert forget(st.engine) == 1
        assert sorted(r[0] for r in rows(pg_db, "SELECT name FROM supertask_workers")) == ["holding", "recent", "up"]
    finally:
        st.close()


def test_jobs_kill_ends_a_run_on_a_worker(tmp_path: Path, pg_db: str) -> None:
    sched_cli, w_cli = clis(tmp_path, pg_db, 2)
    pids = tmp_path / "pids"
    (tmp_path / "work" / "supertask.yaml").write_text(f"""
namespace: kill
jobs:
  - {{name: long, when: once, on: {{gpu: "1"}}, retries: 2, run: "cmd:echo $$ >> {pids}; exec sleep 600"}}
""")
    w = worker(w_cli, "w-gpu", "gpu=1", *BEAT)
    sched = sched_cli.start(*BEAT)
    try:
        wait_until(lambda: pids.exists() and pids.read_text().strip(), 60, what="the child")
        child = int(pids.read_text().split()[0])
        [run] = runs_of(pg_db, "long")
        killed = sched_cli("jobs", "kill", str(run["id"]), "--ns", "kill")
        assert killed.returncode == 0 and "on worker w-gpu" in killed.stdout, killed.stdout + killed.stderr
        wait_until(lambda: not alive(child), 15, what="the child ended")
        wait_until(lambda: runs_of(pg_db, "long")[0]["status"] == "killed", 15, what="the row killed")
        [run] = runs_of(pg_db, "long")  # killed is not retried (retry_on: failed, timed-out, lost)
        assert run["message"].startswith("ended by `supertask jobs kill`"), run["message"]
        assert not any(e.get("event") == "late result rejected" for e in w.events())
    finally:
        stop_all(sched, w)
