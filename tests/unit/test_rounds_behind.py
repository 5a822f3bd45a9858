"""scheduler.rounds: which rounds ask the shared store for its next run times before
deciding a job's fires (pruning history never lets a slot fire again, docs/cluster.md)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from supertask.scheduler.rounds import LEAD, RoundScheduler

UTC = timezone.utc
NOW = datetime(2026, 12, 6, 3, 0, 0, 500000, tzinfo=UTC)  # the database's clock, as this host knows it


class Store:
    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def stored_next_run_times(self, ids: list[str]) -> dict[str, float | None]:
        self.asked.append(list(ids))
        return {jid: NOW.timestamp() + 0.5 for jid in ids}


def rounds(shared: bool, health: Any = None) -> RoundScheduler:
    scheduler = RoundScheduler.__new__(RoundScheduler)  # no APScheduler machinery: only the rule
    scheduler._lead = LEAD
    scheduler._rounds = SimpleNamespace(shared=lambda ns: shared, ctx=SimpleNamespace(store=SimpleNamespace(health=health)))
    return scheduler


BEHIND = [
    # (seconds the job's first due fire is past the database's now; asked: the store is read first)
    (-LEAD, False),  # decided ahead of its fire, on time: no host can have run it yet
    (-0.001, False),
    (0.05, True),  # woke late: another host may have run it, and `prune --keep 0` removed its row
    (0.5, True),  # less than a second behind (before: decided from memory, and ran again)
    (1.5, True),
    (600, True),  # frozen, cut off
]


@pytest.mark.parametrize(("past", "asked"), BEHIND)
def test_a_round_asks_the_shared_store_once_a_fire_is_past(past: float, asked: bool) -> None:
    store = Store()
    job = SimpleNamespace(id="ns/beat", next_run_time=NOW - timedelta(seconds=past))
    got = rounds(shared=True)._stored_next(store, [job], NOW + timedelta(seconds=LEAD))
    assert (store.asked == [["ns/beat"]]) is asked
    assert bool(got) is asked


def test_a_store_no_other_scheduler_shares_is_not_asked() -> None:
    store = Store()
    job = SimpleNamespace(id="ns/beat", next_run_time=NOW - timedelta(seconds=5))
    assert rounds(shared=False)._stored_next(store, [job], NOW + timedelta(seconds=LEAD)) == {}
    assert store.asked == []


def test_a_store_away_or_suspected_is_not_waited_on() -> None:
    store = Store()
    job = SimpleNamespace(id="ns/beat", next_run_time=NOW - timedelta(seconds=5))
    for health in (SimpleNamespace(up=False, suspected=None), SimpleNamespace(up=True, suspected=1.0)):
        assert rounds(shared=True, health=health)._stored_next(store, [job], NOW + timedelta(seconds=LEAD)) == {}
    assert store.asked == []
