"""Revisions: every change to a namespace's jobs counts one, the rows it changed carry it,
and a scheduler's job store takes in only what is newer than what it holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from supertask.errors import JobNotFound
from supertask.model import Job
from supertask.scheduler import edits
from supertask.scheduler.jobstore import NamespaceJobStore
from supertask.store.sql import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> Any:
    st = SqlStore.open(f"sqlite:///{tmp_path / 's.db'}")
    st.ensure_namespace("ns", source=None, host="h", user="u")
    yield st
    st.close()


def job(name: str, when: str = "every 1h", run: str = "cmd:true") -> Job:
    return Job(name=name, when=when, run=run)


def test_each_change_counts_one_revision_that_its_rows_carry(store: Any) -> None:
    assert store.revisions(["ns", "other"]) == {"ns": 0}
    store.sync("ns", [job("a"), job("b")], lambda _j: 10.0)
    assert store.revisions(["ns"]) == {"ns": 1}
    store.sync("ns", [job("a"), job("b")], lambda _j: 10.0)  # unchanged: no new revision
    assert store.revisions(["ns"]) == {"ns": 1}
    store.set_paused("ns", "a", True, None)
    store.sync("ns", [job("b", run="cmd:echo")], lambda _j: 20.0)  # b changed, a removed
    assert store.revisions(["ns"]) == {"ns": 3}
    changed, count = store.changed_jobs("ns", 1)
    assert [(r.job.name, r.revision) for r in changed] == [("b", 3)] and count == 1
    with pytest.raises(JobNotFound):
        store.set_paused("ns", "gone", True, None)
    with pytest.raises(JobNotFound):
        store.delete_job("ns", "gone")
    assert store.revisions(["ns"]) == {"ns": 3}  # a refused change counts nothing


def test_a_live_edit_keeps_a_paused_job_paused_in_one_transaction(store: Any) -> None:
    store.sync("ns", [job("a")], lambda _j: 10.0)
    edits.set_paused(store, "ns", "a", True)
    row = edits.put_job(store, "ns", job("a", when="every 2h"))
    assert (row.paused, row.next_run_time, row.job.when) == (True, None, "every 2h")
    row = edits.set_paused(store, "ns", "a", False)
    assert not row.paused and row.next_run_time is not None


def test_schedule_state_is_written_only_over_the_revision_held(store: Any) -> None:
    store.sync("ns", [job("a"), job("b")], lambda _j: 10.0)
    store.sync("ns", [job("a", when="every 2h"), job("b")], lambda _j: 50.0)  # a: revision 2
    store.set_next_run_times("ns", [("a", 99.0, 1), ("b", 99.0, 1)])  # a host that held revision 1
    states = {name: (nrt, rev) for name, nrt, _paused, rev in store.job_states("ns")}
    assert states == {"a": (50.0, 2), "b": (99.0, 1)}
    store.set_next_run_times("ns", [("a", 77.0)])  # no revision: written (@reboot, before serving)
    assert store.get_job("ns", "a").next_run_time == 77.0


def test_schedule_state_moves_only_forward_at_a_revision(store: Any) -> None:
    """A host thawed or back from a cut writes what it held: never back over the fires other
    hosts ran (their rows may be pruned; a restart would fire them again)."""
    store.sync("ns", [job("a"), job("b")], lambda _j: 10.0)
    store.set_next_run_times("ns", [("a", 30.0, 1), ("b", 30.0, 1)])  # the live host, further on
    store.set_next_run_times("ns", [("a", 20.0, 1), ("b", None, 1)])  # the thawed host: a behind, b ended
    states = {name: nrt for name, nrt, _paused, _rev in store.job_states("ns")}
    assert states == {"a": 30.0, "b": None}
    store.set_next_run_times("ns", [("a", 31.0, 1)])
    assert store.get_job("ns", "a").next_run_time == 31.0


def test_the_job_store_reads_the_stored_next_run_times(store: Any) -> None:
    store.sync("ns", [job("a"), job("b")], lambda _j: 10.0)
    store.set_next_run_times("ns", [("a", 42.0, 1)])
    js = NamespaceJobStore(store, ["ns"], edits.trigger_for)
    assert js.stored_next_run_times(["ns/a", "ns/b", "ns/gone"]) == {"ns/a": 42.0, "ns/b": 10.0}


def test_the_job_store_takes_in_only_newer_rows_and_removals(store: Any) -> None:
    store.sync("ns", [job("a"), job("b"), job("c")], lambda _j: 10.0)
    js = NamespaceJobStore(store, ["ns"], edits.trigger_for)
    js.reload()
    assert js.revisions == {"ns": 1} and len(js) == 3
    row = edits.set_paused(store, "ns", "a", True)  # revision 2
    js.put(row)  # this host made it: held already
    store.delete_job("ns", "c")  # revision 3, elsewhere
    store.sync("ns", [job("d")], lambda _j: 5.0, remove_missing=False)  # revision 4, elsewhere
    rows, count = store.changed_jobs("ns", js.revisions["ns"])
    assert sorted(r.job.name for r in rows) == ["a", "d"] and count == 3
    changed, removed = js.take_changes("ns", rows, 4, store.job_names("ns"))
    assert (changed, removed) == (["d"], ["c"])
    assert js.revisions == {"ns": 4} and js.ids() == {"ns/a", "ns/b", "ns/d"}
    assert js.next_run_ts("ns/a") is None and js.next_run_ts("ns/d") == 5.0
    # a job changed here after the revision read is not removed by a stale listing
    js.put(store.get_job("ns", "b").__class__(namespace="ns", job=job("e"), paused=False, next_run_time=1.0,
                                               revision=5))
    assert js.take_changes("ns", [], 4, {"a", "b", "d"}) == ([], [])
    js.shutdown()


def test_a_store_of_schema_2_is_brought_up_to_date(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    SqlStore.open(f"sqlite:///{path}").close()
    with sqlite3.connect(path) as conn:  # as version 2 had it
        conn.execute("DROP INDEX supertask_jobs_by_revision")
        conn.execute("ALTER TABLE supertask_jobs DROP COLUMN revision")
        conn.execute("ALTER TABLE supertask_namespaces DROP COLUMN revision")
        for table, column in (("runs", "labels"), ("runs", "worker"), ("runs", "lease_until"), ("runs", "priority"),
                              ("namespaces", "weight"), ("namespaces", "max_running")):  # added by version 5
            conn.execute(f"ALTER TABLE supertask_{table} DROP COLUMN {column}")
        conn.execute("UPDATE supertask_meta SET value = '2' WHERE key = 'schema_version'")
        conn.execute("INSERT INTO supertask_namespaces (name, created, updated) VALUES ('ns', '2026-01-01', '2026-01-01')")
    st = SqlStore.open(f"sqlite:///{path}")
    assert st.revisions(["ns"]) == {"ns": 0}
    st.sync("ns", [job("a")], lambda _j: 1.0)
    assert st.revisions(["ns"]) == {"ns": 1} and st.get_job("ns", "a").revision == 1
    st.close()
