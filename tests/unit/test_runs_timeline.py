"""The runs page's timeline: the runs a filter selects, counted by the store in equal
slices of the filter's time range (supertask.store.access.AccessRows.runs_timeline and
supertask.web.data.timeline), on a real SQLite store."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from supertask.store.sql import SqlStore

UTC = timezone.utc
T0 = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> SqlStore:
    path = tmp_path / "s.db"
    st = SqlStore.open(f"sqlite:///{path}")
    rows = []  # (namespace, job, minutes after T0, status)
    for minute in range(60):
        rows.append(("a", "backup", minute, "failed" if minute % 10 == 0 else "succeeded"))
        rows.append(("b", "report_1", minute, "skipped" if minute >= 50 else "succeeded"))
    rows.append(("a", "backup", 120, "running"))  # outside the first hour
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, status) VALUES "
                         "(?, ?, 1, 'schedule', ?, ?)",
                         [(ns, job, (T0 + timedelta(minutes=m)).strftime("%Y-%m-%d %H:%M:%S.%f"), status)
                          for ns, job, m, status in rows])
    return st


def _counts(rows: list[tuple[int, str, int]]) -> dict[tuple[int, str], int]:
    return {(slot, status): n for slot, status, n in rows}


def test_runs_are_counted_by_slice_and_status_over_the_whole_range(store: SqlStore) -> None:
    rows = store.runs_timeline(None, since=T0, until=T0 + timedelta(hours=1), buckets=6)
    assert _counts(rows) == {**{(i, "succeeded"): 19 for i in range(5)}, **{(i, "failed"): 1 for i in range(6)},
                             (5, "succeeded"): 9, (5, "skipped"): 10}
    assert sum(n for _, _, n in rows) == 120  # the run at 02:00 is past until
    wide = store.runs_timeline(None, since=T0, until=T0 + timedelta(hours=3), buckets=3)
    assert _counts(wide)[(2, "running")] == 1 and sum(n for _, _, n in wide) == 121


def test_the_filters_of_the_runs_page_apply(store: SqlStore) -> None:
    hour = {"since": T0, "until": T0 + timedelta(hours=1), "buckets": 2}
    assert sum(n for _, _, n in store.runs_timeline(["a"], **hour)) == 60
    assert sum(n for _, _, n in store.runs_timeline(None, statuses=["failed"], **hour)) == 6
    assert sum(n for _, _, n in store.runs_timeline(None, job="report_1", **hour)) == 60
    assert sum(n for _, _, n in store.runs_timeline(None, search="t_1", **hour)) == 60  # _ is no wildcard
    assert store.runs_timeline(None, search="t%1", **hour) == []
    assert store.runs_timeline([], **hour) == []


def test_the_dashboard_s_timeline_groups_outcomes_and_checks_its_input(store: SqlStore) -> None:
    from supertask.errors import UsageError
    from supertask.web.data import Viewer, timeline

    viewer = Viewer(who="me", source="test")
    strip = timeline(store, viewer, since=T0.isoformat(), until=(T0 + timedelta(hours=1)).isoformat(), buckets=4)
    assert (strip["total"], strip["most"], len(strip["buckets"])) == (120, 30, 4)
    last = strip["buckets"][3]
    assert (last["succeeded"], last["failed"], last["skipped"], last["from"]) == (19, 1, 10, "2026-12-01T00:45:00+00:00")
    for bad in ({"buckets": 0}, {"buckets": 501}, {"since": "2999-01-01"}, {"status": "done"}):
        with pytest.raises(UsageError):
            timeline(store, viewer, **bad)  # type: ignore[arg-type]
