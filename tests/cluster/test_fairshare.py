"""The claim's order and limits (supertask.workers.fairshare, issue 16 point 4) on real
PostgreSQL rows: namespaces share the workers by weight, each within its max_running;
higher priority first within a namespace; a job's max_concurrent holds across workers
and schedulers. Each case claims as a worker would, in a transaction of its own, and
marks what it took ``running`` (held by that worker) as the claim does."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa

from supertask.model import Job, Overlap, Share
from supertask.store.sql import SqlStore, open_store
from supertask.store.sqltx import SqlTx
from supertask.workers.fairshare import pick

pytestmark = pytest.mark.postgres
UTC = timezone.utc


@pytest.fixture
def store(pg_db: str) -> Iterator[SqlStore]:
    st = open_store(pg_db)
    yield st
    st.engine.dispose()


def namespace(st: SqlStore, name: str, jobs: list[Job], share: Share | None = None) -> None:
    st.ensure_namespace(name, source=None, host="h", user="u", share=share or Share())
    st.sync(name, jobs, lambda _job: None)


def queue(st: SqlStore, ns: str, job: str, count: int, *, labels: dict[str, str] | None = None,
          priority: int = 0, status: str = "queued", worker: str | None = None) -> None:
    """``count`` runs of the job (a scheduled time each), as the scheduler queues them for workers."""
    with st.engine.begin() as conn:
        tx = SqlTx(conn)
        start = tx.rows("SELECT count(*) FROM supertask_runs", {})[0][0]
        rows = [{"namespace": ns, "job": job, "attempt": 1, "reason": "schedule",
                 "scheduled": datetime.fromtimestamp(1_800_000_000 + start + i, UTC), "status": status,
                 "labels": json.dumps(labels or {}), "priority": priority, "worker": worker} for i in range(count)]
        tx.insert_rows("supertask_runs", rows)


def claim(st: SqlStore, worker: str, free: int, labels: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """One claim: what ``pick`` chose, marked running and held by ``worker``; (namespace, job) each."""
    with st.engine.begin() as conn:
        ids = pick(conn, labels or {}, free)
        tx = SqlTx(conn)
        if not ids:
            return []
        tx.run("UPDATE supertask_runs SET status = 'running', worker = :w, instance = :w WHERE id = ANY(:ids)",
               {"w": worker, "ids": ids})
        found = dict((i, (n, j)) for i, n, j in tx.rows(
            "SELECT id, namespace, job FROM supertask_runs WHERE id = ANY(:ids)", {"ids": ids}))
    return [found[i] for i in ids]


def finish(st: SqlStore, worker: str) -> None:
    with st.engine.begin() as conn:
        SqlTx(conn).run("UPDATE supertask_runs SET status = 'succeeded' WHERE worker = :w AND status = 'running'",
                        {"w": worker})


def job(name: str, **kw: Any) -> Job:
    return Job(name=name, when="@daily", run="cmd:true", **kw)


def test_a_small_namespace_starts_within_the_first_claims_beside_a_big_one(store: SqlStore) -> None:
    namespace(store, "a", [job("bulk", overlap=Overlap.ALLOW)])
    namespace(store, "b", [job("few", overlap=Overlap.ALLOW)])
    queue(store, "a", "bulk", 1000)
    queue(store, "b", "few", 10)
    first = claim(store, "w1", 4)
    assert Counter(ns for ns, _ in first) == {"a": 2, "b": 2}
    # claims one slot at a time, as slots free up: the two keep taking turns
    finish(store, "w1")
    turns = [claim(store, "w1", 1)[0][0] for _ in range(6)]
    assert Counter(turns) == {"a": 3, "b": 3}, turns


def test_work_conserving_a_namespace_alone_takes_every_slot(store: SqlStore) -> None:
    namespace(store, "a", [job("bulk", overlap=Overlap.ALLOW)])
    namespace(store, "b", [job("few", overlap=Overlap.ALLOW)])
    queue(store, "a", "bulk", 1000)
    assert [ns for ns, _ in claim(store, "w1", 4)] == ["a"] * 4
    queue(store, "b", "few", 1)  # B's one run takes the next free slot, then A all of them again
    assert [ns for ns, _ in claim(store, "w2", 4)] == ["b", "a", "a", "a"]


def test_weights_share_the_slots_in_proportion(store: SqlStore) -> None:
    namespace(store, "a", [job("bulk", overlap=Overlap.ALLOW)], Share(weight=3))
    namespace(store, "b", [job("bulk", overlap=Overlap.ALLOW)], Share(weight=1))
    queue(store, "a", "bulk", 100)
    queue(store, "b", "bulk", 100)
    assert Counter(ns for ns, _ in claim(store, "w1", 8)) == {"a": 6, "b": 2}


def test_max_running_caps_a_namespace_on_all_workers_and_the_rest_go_to_others(store: SqlStore) -> None:
    namespace(store, "a", [job("bulk", overlap=Overlap.ALLOW)], Share(max_running=3))
    namespace(store, "b", [job("bulk", overlap=Overlap.ALLOW)])
    queue(store, "a", "bulk", 50)
    assert len(claim(store, "w1", 2)) == 2
    assert len(claim(store, "w2", 4)) == 1  # a third on the second worker, and no more
    queue(store, "b", "bulk", 5)
    assert [ns for ns, _ in claim(store, "w2", 4)] == ["b"] * 4
    finish(store, "w1")
    assert [ns for ns, _ in claim(store, "w1", 4)] == ["a", "a", "b"]


def test_priority_first_within_a_namespace(store: SqlStore) -> None:
    namespace(store, "a", [job("low", overlap=Overlap.ALLOW), job("high", overlap=Overlap.ALLOW)])
    queue(store, "a", "low", 5)
    queue(store, "a", "high", 2, priority=10)
    assert [j for _, j in claim(store, "w1", 3)] == ["high", "high", "low"]


def test_max_concurrent_holds_across_workers_and_the_scheduler_host(store: SqlStore) -> None:
    namespace(store, "a", [job("capped", overlap=Overlap.ALLOW, max_concurrent=3), job("one"), job("free",
                                                                                                  overlap=Overlap.ALLOW)])
    queue(store, "a", "capped", 1, status="running")  # run by a scheduler host itself
    queue(store, "a", "capped", 10)
    queue(store, "a", "one", 3)  # overlap: skip (the default): one at a time
    assert Counter(j for _, j in claim(store, "w1", 1)) == {"capped": 1}
    assert Counter(j for _, j in claim(store, "w2", 10)) == {"capped": 1, "one": 1}
    queue(store, "a", "free", 3)
    assert Counter(j for _, j in claim(store, "w2", 10)) == {"free": 3}
    finish(store, "w1")
    assert Counter(j for _, j in claim(store, "w1", 10)) == {"capped": 1}


def test_only_runs_whose_labels_the_worker_has(store: SqlStore) -> None:
    namespace(store, "a", [job("gpu", overlap=Overlap.ALLOW), job("any", overlap=Overlap.ALLOW)])
    queue(store, "a", "gpu", 2, labels={"gpu": "1"})
    queue(store, "a", "any", 1)
    assert [j for _, j in claim(store, "cpu-only", 4, {"region": "eu"})] == ["any"]
    assert [j for _, j in claim(store, "gpu-box", 4, {"gpu": "1", "region": "eu"})] == ["gpu", "gpu"]


def test_two_claims_at_once_take_turns_and_the_second_sees_the_first_s_runs(store: SqlStore) -> None:
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import TimeoutError as StillWaiting

    namespace(store, "a", [job("bulk", overlap=Overlap.ALLOW)], Share(max_running=2))
    queue(store, "a", "bulk", 10)
    with store.engine.connect() as first, ThreadPoolExecutor(1) as pool:
        first.begin()
        ids = pick(first, {}, 4)
        assert len(ids) == 2
        first.execute(sa.text("UPDATE supertask_runs SET status = 'running', worker = 'w1' WHERE id = ANY(:ids)"),
                      {"ids": ids})
        second = pool.submit(claim, store, "w2", 4)  # waits for the first claim's transaction
        with pytest.raises(StillWaiting):
            second.result(timeout=0.5)
        first.commit()
        assert second.result(timeout=10) == []  # the namespace's 2 places are taken
