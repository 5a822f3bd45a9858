"""What `supertask workers` judges from a worker's row at the database's now: rows in,
plain data out (supertask.workers.operators)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from supertask.workers.operators import judged, summary

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def row(state: str = "serving", age: float = 1.0, lease: float = 20.0, **kw: Any) -> dict[str, Any]:
    return {"name": "w1", "host": "box", "pid": 7, "version": "0.2", "slots": 4, "running": 1, "wanted": None,
            "lease": lease, "message": None, "labels": '{"gpu": "1"}', "telemetry": '{"cpu": 12.5}',
            "state": state, "started": NOW - timedelta(hours=1), "heartbeat": NOW - timedelta(seconds=age), **kw}


@pytest.mark.parametrize(("given", "state", "up"), [
    (row(), "serving", True),
    (row(age=20.0), "serving", True),  # a heartbeat exactly one lease old is still within it
    (row(age=20.5), "down", False),
    (row(state="draining", age=3), "draining", True),
    (row(state="paused", age=30), "down", False),
    (row(state="stopped", age=2), "stopped", False),
    (row(state="lost", age=300), "lost", False),
    (row(age=-0.2), "serving", True),  # a heartbeat a moment "ahead" of now reads as 0 s old
])
def test_state_and_up(given: dict[str, Any], state: str, up: bool) -> None:
    out = judged(given, NOW, 2)
    assert (out["state"], out["up"], out["recorded_state"]) == (state, up, given["state"])
    assert out["heartbeat_age"] >= 0 and out["in_flight"] == 2
    assert out["labels"] == {"gpu": "1"} and out["telemetry"] == {"cpu": 12.5}


def test_unreadable_or_missing_json_is_empty() -> None:
    out = judged(row(labels="not json", telemetry=None), NOW, 0)
    assert (out["labels"], out["telemetry"]) == ({}, {})


def test_summary_counts_free_slots_of_serving_workers_that_are_up() -> None:
    rows = [judged(row(name="a"), NOW, 1), judged(row(name="b", state="draining"), NOW, 2),
            judged(row(name="c", age=60), NOW, 0), judged(row(name="d", state="stopped"), NOW, 0)]
    assert summary(rows) == {"workers_up": 2, "workers_down": 1, "slots": 8, "free_slots": 3}
