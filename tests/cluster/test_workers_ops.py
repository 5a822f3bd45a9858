"""Operating workers (issue 16 points 4 and 5): `supertask workers` lists them, `drain`,
`pause` and `resume` one, each audited; namespaces share the workers by weight and
max_running, jobs by max_concurrent. The real CLI in subprocesses on the real PostgreSQL,
a database of each test's own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli

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


def fake_worker(url: str, name: str, *, state: str = "serving", age: str = "0 seconds",
                labels: str = "{}") -> None:
    """A worker's row as a worker writes it (for what is judged from the row alone)."""
    rows(url, "INSERT INTO supertask_workers (name, host, pid, version, labels, slots, running, state, started, "
              "heartbeat, lease) VALUES (%s, 'box', 1, '0.2', %s, 2, 0, %s, now() - %s::interval, "
              "now() - %s::interval, 20)", name, labels, state, age, age)


def test_an_unknown_or_ended_worker_is_refused_naming_the_known_ones(tmp_path: Path, pg_db: str) -> None:
    cli = cli_for(tmp_path, pg_db)
    assert cli("workers").returncode == 0  # makes the schema: no workers yet
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
