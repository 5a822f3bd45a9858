"""The cross-host check of a claim (supertask.store.guard), table by table, on a fake
transaction that answers the two questions it asks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from supertask.store import guard

UTC = timezone.utc
T = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


class Tx:
    """A transaction that answers the two questions facts() asks of a non-PostgreSQL store."""

    def __init__(self, job: tuple[bool] | None, running: list[tuple[str, ...]]):
        self.job, self.running = job, running
        self.asked: list[dict[str, Any]] = []

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self.asked.append(params)
        if "supertask_jobs" in sql:
            return [("j", *self.job)] if self.job is not None else []
        return [("j", host, status) for host, instance, *rest in self.running if instance != params["me"]
                for status in [rest[0] if rest else "running"]]


def claim(overlap: str = "skip", most: int = 0, busy: int = 0, paused: bool = True,
          scheduled: datetime = T) -> dict[str, Any]:
    return {"namespace": "ns", "job": "j", "scheduled": scheduled,
            "guard": {"overlap": overlap, "max": most, "busy": busy, "paused": paused}}


@pytest.mark.parametrize(("job", "running", "kw", "why"), [
    ((False,), [], {}, None),
    (None, [], {}, "the job was removed"),
    ((True,), [], {}, "the job is paused"),
    ((True,), [], {"paused": False}, None),  # a manual trigger of a paused job
    ((False,), [("web1", "me")], {}, None),  # this instance's own run: decided in memory
    ((False,), [("web2", "other")], {}, "previous run still running on web2 (overlap: skip, across hosts)"),
    ((False,), [("web2", "other")], {"overlap": "queue"}, "waiting for the run in flight on web2 (overlap: queue"),
    ((False,), [("web2", "other")], {"overlap": "allow"}, None),
    ((False,), [("web2", "o1")], {"overlap": "allow", "most": 2, "busy": 0}, None),
    ((False,), [("web2", "o1")], {"overlap": "allow", "most": 2, "busy": 1}, "max_concurrent 2 runs were in flight"),
    ((False,), [("web2", "o1"), ("web3", "o2")], {"overlap": "allow", "most": 2}, "(2 on web2, web3; overlap: allow)"),
    ((False,), [("web2", "o1", "queued")], {}, "a run is waiting to start on web2 (overlap: skip"),
    ((False,), [("web2", "o1", "queued"), ("web3", "o2")], {"overlap": "queue"}, "a run is waiting to start on web2"),
    ((False,), [(None, None, "queued")], {}, None),  # a manual run queued through the store: no host's yet
])
def test_what_a_guarded_claim_is_refused_for(job: Any, running: Any, kw: dict[str, Any], why: str | None) -> None:
    c = claim(**kw)
    refused = guard.refusal(c, guard.facts(Tx(job, running), [c], "me"), None)
    if why is None:
        assert refused is None
    else:
        assert refused is not None and why in refused.reason and refused.wait == 0.0
        assert bool(refused.queue) == why.startswith("waiting for")  # queued behind the other host's run


def test_a_fire_not_yet_due_by_the_databases_clock_waits() -> None:
    known = {("ns", "j"): (False, [], [])}
    early = guard.refusal(claim(scheduled=T + timedelta(seconds=3)), known, T)
    assert early is not None and early.wait == pytest.approx(3.0) and "clock is ahead" in early.reason
    assert guard.refusal(claim(scheduled=T + timedelta(seconds=0.4)), known, T) is None  # within the round's lead


def test_job_keys_are_stable_64_bit_and_distinct() -> None:
    key = guard.job_key("ns", "j")
    assert key == guard.job_key("ns", "j") and -(2**63) <= key < 2**63
    assert len({guard.job_key("ns", f"j{i}") for i in range(1000)}) == 1000
