"""Retention: `supertask prune` keeps the newest real runs, counts what it removed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from tests.conftest import Cli

UTC = timezone.utc


def _seed(url: str, logs: Path, pattern: str) -> list[int]:
    """One job's rows, oldest first: R a real run (succeeded, with a log file), S a fire
    skipped for overlap. Returns their ids."""
    from supertask.model import RunStatus
    from supertask.store.sql import open_store

    store = open_store(url)
    start = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
    ids = []
    try:
        store.ensure_namespace("ns", source=None, host="h", user="u")
        for i, kind in enumerate(pattern):
            status = RunStatus.RUNNING if kind == "R" else RunStatus.SKIPPED
            run_id = store.claim_run(namespace="ns", job="tick", scheduled=start + timedelta(seconds=i), attempt=1,
                                     reason="schedule", host="h", status=status,
                                     message=None if kind == "R" else "previous run still running (overlap: skip)",
                                     log_dir=logs if kind == "R" else None)
            assert run_id is not None
            if kind == "R":
                log = logs / "ns" / "tick" / f"{run_id}.log"
                log.parent.mkdir(parents=True, exist_ok=True)
                log.write_text("out\n")
                store.update_run(run_id, status=RunStatus.SUCCEEDED, exit_code=0, finished=start)
            ids.append(run_id)
    finally:
        store.close()
    return ids


def test_keep_counts_real_runs_and_says_what_it_removed(store_cli: Cli, tmp_path: Path) -> None:
    """Nine rows, six of them skipped (issue 14 point 5): `--keep 1` kept one skipped
    row, deleted every real run and said "removed 3 runs" for 8 rows gone."""
    logs = tmp_path / "logs"
    ids = _seed(store_cli.store or "", logs, "RSSRSSRSS")
    proc = store_cli("prune", "--keep", "1")
    assert proc.returncode == 0, proc.stderr
    assert "removed 2 runs and 4 skipped rows" in proc.stdout, proc.stdout
    left = sorted(r["id"] for r in store_cli.json("history", "--limit", "100"))
    assert left == ids[6:]  # the newest real run and the two fires skipped after it
    kept = {r["id"]: r["status"] for r in store_cli.json("history", "--limit", "100")}
    assert kept[ids[6]] == "succeeded"
    assert sorted(p.name for p in logs.rglob("*.log")) == [f"{ids[6]}.log"]  # the removed runs' logs went
    again = store_cli("prune", "--keep", "1", "--json")
    assert json.loads(again.stdout) == {"ns": {"runs": 0, "skipped": 0}}


def test_keep_as_many_as_there_are_keeps_every_run(store_cli: Cli, tmp_path: Path) -> None:
    """Both real runs kept; the skipped fire from before the oldest of them goes."""
    ids = _seed(store_cli.store or "", tmp_path / "logs", "SRSR")
    proc = store_cli("prune", "--keep", "3")
    assert proc.returncode == 0 and "removed 0 runs and 1 skipped row," in proc.stdout, proc.stdout
    assert sorted(r["id"] for r in store_cli.json("history")) == ids[1:]
    proc = store_cli("prune", "--keep", "2")
    assert proc.returncode == 0 and "removed 0 runs," in proc.stdout, proc.stdout
    assert sorted(r["id"] for r in store_cli.json("history")) == ids[1:]
