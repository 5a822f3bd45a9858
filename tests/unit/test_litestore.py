"""The one-shot store on stdlib sqlite3 writes exactly what the SQLAlchemy Store reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from supertask.model import Job, RunStatus
from supertask.store import lite as litestore
from supertask.store.sql import SqlStore as Store

UTC = timezone.utc


def test_only_an_existing_sqlite_store_of_this_version(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    assert litestore.open_lite(url) is None  # no file yet: Store creates the schema
    assert litestore.open_lite("memory://") is None
    assert litestore.open_lite("postgresql://x@127.0.0.1/db") is None
    Store.open(url).close()
    lite = litestore.open_lite(url)
    assert lite is not None
    lite.close()
    (tmp_path / "other.db").write_bytes(b"not a database")
    assert litestore.open_lite(f"sqlite:///{tmp_path / 'other.db'}") is None


def test_rows_written_lite_read_back_by_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store.open(url).close()
    lite = litestore.open_lite(url)
    assert lite is not None
    job = Job(name="hello", when="once", run="cmd:echo hi")
    lite.ensure_namespace("ns", source="command line", host="h", user="u")
    lite.ensure_namespace("ns", source="command line", host="h2", user="u")
    lite.sync("ns", [job], lambda _job: 12.5, remove_missing=False)
    lite.sync("ns", [job], lambda _job: 99.0, remove_missing=False)  # unchanged: kept
    scheduled = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
    run_id = lite.claim_run(namespace="ns", job="hello", scheduled=scheduled, attempt=1, reason="manual",
                            host="h", log_dir=tmp_path / "logs")
    assert run_id is not None
    assert lite.claim_run(namespace="ns", job="hello", scheduled=scheduled, attempt=1, reason="manual",
                          host="h") is None  # the fire is taken
    finished = scheduled + timedelta(seconds=2)
    lite.update_run(run_id, status=RunStatus.SUCCEEDED, exit_code=0, finished=finished, log_tail="hi")
    lite.close()

    store = Store.open(url)
    [ns] = store.list_namespaces()
    assert (ns["name"], ns["host"], ns["jobs"]) == ("ns", "h2", 1)
    [stored] = store.list_jobs("ns")
    assert stored.job == job and stored.next_run_time == 12.5 and not stored.paused
    run = store.get_run(run_id)
    assert (run.status, run.exit_code, run.scheduled, run.finished, run.log_tail) == (
        "succeeded", 0, scheduled, finished, "hi")
    assert run.log_path == str(tmp_path / "logs" / "ns" / "hello" / f"{run_id}.log")
    assert run.started is not None and run.started.tzinfo is not None
    lite2 = litestore.open_lite(url)
    assert lite2 is not None and lite2.get_run(run_id) == run


def test_run_updates_from_many_threads_are_each_committed(tmp_path: Path) -> None:
    """Run rows' updates share commits (group commit); each caller's is committed when
    it returns, and a failing statement fails only its own caller."""
    import sqlite3
    import threading

    import pytest

    url = f"sqlite:///{tmp_path / 's.db'}"
    Store.open(url).close()
    lite = litestore.open_lite(url)
    assert lite is not None
    base = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    ids = lite.claim_runs([dict(namespace="ns", job=f"j{i}", scheduled=base, attempt=1, reason="schedule", host="h")
                           for i in range(200)])
    assert None not in ids

    def finish(chunk: list[int | None]) -> None:
        for run_id in chunk:
            lite.update_run(run_id, status=RunStatus.SUCCEEDED, exit_code=run_id % 7)  # type: ignore[arg-type]

    threads = [threading.Thread(target=finish, args=(ids[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with pytest.raises(sqlite3.OperationalError):
        lite._grouped([litestore._Grouped("UPDATE no_such_table SET x = 1", {})])
    lite.update_run(ids[0], message="after a failed one")  # type: ignore[arg-type]
    lite.close()
    store = Store.open(url)
    runs = {r.id: r for r in store.history("ns", limit=500)}
    assert all((runs[i].status, runs[i].exit_code) == ("succeeded", i % 7) for i in ids)  # type: ignore[index,operator]
    assert runs[ids[0]].message == "after a failed one"  # type: ignore[index]
    store.close()


def test_started_is_the_later_of_now_and_the_fire() -> None:
    """One rule for both stores (it was a number comparison in one and a string
    comparison in the other): a fire claimed ahead of its time starts at its time."""
    from supertask.store.statements import started_at

    now = datetime(2026, 12, 5, 10, 0, 0, tzinfo=UTC)
    cases = [
        (now - timedelta(seconds=5), now),  # late: now
        (now, now),
        (now + timedelta(milliseconds=300), now + timedelta(milliseconds=300)),  # claimed early: its time
        # another zone, same instant order: a string comparison of local texts got this wrong
        ((now + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5))), now + timedelta(seconds=1)),
    ]
    for scheduled, want in cases:
        assert started_at(now, scheduled) == want, scheduled


def test_both_stores_write_the_same_claim_rows(tmp_path: Path) -> None:
    """The claim statement is written once: a LiteStore and a SqlStore (SQLAlchemy, here on
    an SQLite URL with a query so that it does not take the sqlite3 path) store equal rows."""
    ahead = datetime.now(UTC) + timedelta(hours=1)
    rows = []
    for kind in ("lite", "sql"):
        path = tmp_path / f"{kind}.db"
        url = f"sqlite:///{path}"
        Store.open(url).close()
        store = litestore.open_lite(url) if kind == "lite" else Store.open(f"{url}?timeout=30")
        assert store is not None
        store.ensure_namespace("ns", source=None, host="h", user="u")
        store.sync("ns", [Job(name="j", when="@daily", run="cmd:true")], lambda _job: 7.0, remove_missing=False)
        [run_id] = store.claim_runs([dict(namespace="ns", job="j", scheduled=ahead, attempt=1, reason="schedule",
                                          host="h", log_dir=tmp_path)])
        assert store.claim_runs([dict(namespace="ns", job="j", scheduled=ahead, attempt=1, reason="schedule",
                                      host="h")]) == [None]
        assert run_id is not None
        run = store.get_run(run_id)
        store.close()
        assert run.started == ahead and run.log_path == str(tmp_path / "ns" / "j" / f"{run_id}.log")
        rows.append(run)
    assert rows[0] == rows[1]


def test_a_runs_end_is_written_only_by_the_instance_holding_it(tmp_path: Path) -> None:
    """Both stores: an end from another instance, or onto a row no longer in flight (lost:
    taken over), changes nothing and is reported; the holder's own end is written."""
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store.open(url)
    lite = litestore.open_lite(url)
    assert lite is not None
    try:
        at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
        for writer in (store, lite):
            writer.instance = "holder"
        ids = [writer.claim_run(namespace="ns", job=f"j{i}", scheduled=at, attempt=1, reason="schedule", host="h")
               for i, writer in enumerate((store, lite, store, lite))]
        assert all(ids) and {store.get_run(i).instance for i in ids} == {"holder"}  # type: ignore[arg-type]
        [flying] = [r for r in store.runs_in_flight(["ns"]) if r.id == ids[0]]
        store.mark_runs_lost([(flying, "its host missed its lease")])
        end = {"status": RunStatus.SUCCEEDED, "exit_code": 0}
        assert store.end_runs([(ids[0], end)]) == [ids[0]]  # lost: refused
        assert lite.end_runs([(ids[1], end)], "another") == [ids[1]]  # not its holder: refused
        assert store.end_runs([(ids[2], end)]) == [] and lite.end_runs([(ids[3], end)]) == []
        assert [store.get_run(i).status for i in ids] == [  # type: ignore[arg-type]
            RunStatus.LOST, RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.SUCCEEDED]
    finally:
        lite.close()
        store.close()
