"""The store's health (one event when it goes, rate-limited while away, one when back)
and the PostgreSQL engine's timeouts."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from supertask.store.health import StoreHealth
from supertask.store.tables import (
    PG_IDLE_IN_TRANSACTION_MS,
    PG_STATEMENT_TIMEOUT_MS,
    PG_TIMEOUTS,
    pg_connect_args,
)


@pytest.mark.parametrize(
    ("steps", "events", "up"),
    [
        ("ok ok", [], True),
        ("fail", ["store unreachable"], False),
        ("fail fail fail", ["store unreachable"], False),  # rate-limited while it stays away
        ("fail fail ok", ["store unreachable", "store reachable again"], True),
        ("fail ok wait fail ok", ["store unreachable", "store reachable again"] * 2, True),  # past SETTLE
        ("ok fail wait fail", ["store unreachable", "store still unreachable"], False),  # after REPEAT
    ],
)
def test_health_events(steps: str, events: list[str], up: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    import supertask.store.health as health_module

    clock = [1000.0]
    monkeypatch.setattr(health_module.time, "monotonic", lambda: clock[0])
    health = StoreHealth("postgresql://u@db/x", repeat=60)
    health.events = True
    with capture_logs() as logs:
        for step in steps.split():
            if step == "wait":
                clock[0] += 61
            elif step == "ok":
                health.ok()
            else:
                health.failed("connection refused")
    assert [e["event"] for e in logs] == events
    assert health.up is up
    snap = health.snapshot()
    assert snap["up"] is up and (snap["error"] == "connection refused") is (not up) and bool(snap["since"]) is (not up)


def test_health_is_quiet_unless_a_watch_runs() -> None:
    health = StoreHealth("sqlite:///x.db")
    with capture_logs() as logs:
        health.failed("disk I/O error")
        health.ok()
    assert logs == [] and health.up


_IDLE = f"-c idle_in_transaction_session_timeout={PG_IDLE_IN_TRANSACTION_MS}"
_BOTH = f"-c statement_timeout={PG_STATEMENT_TIMEOUT_MS} {_IDLE}"


@pytest.mark.parametrize(
    ("query", "want"),
    [
        ({}, {**PG_TIMEOUTS, "options": _BOTH}),
        ({"options": "-csearch_path=s"}, {**PG_TIMEOUTS, "options": f"-csearch_path=s {_BOTH}"}),
        ({"connect_timeout": "30"}, {**{k: v for k, v in PG_TIMEOUTS.items() if k != "connect_timeout"},
                                     "options": _BOTH}),
        ({"options": "-c statement_timeout=0"}, {**PG_TIMEOUTS, "options": f"-c statement_timeout=0 {_IDLE}"}),
        ({"options": "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"},  # the URL's own win
         {**PG_TIMEOUTS, "options": "-c statement_timeout=0 -c idle_in_transaction_session_timeout=0"}),
    ],
)
def test_postgresql_timeouts_unless_the_url_sets_them(query: dict[str, str], want: dict[str, object]) -> None:
    assert pg_connect_args(query) == want


def test_a_late_failure_just_after_the_store_is_back_is_left_to_the_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A statement begun during the outage that fails after the store answered again
    does not mark it away again; the probe does, and after SETTLE any operation does."""
    import supertask.store.health as health_module

    clock = [1000.0]
    monkeypatch.setattr(health_module.time, "monotonic", lambda: clock[0])
    health = StoreHealth("postgresql://u@db/x")
    health.events = True
    with capture_logs() as logs:
        health.failed("connection refused")
        health.ok()
        health.failed("connection timeout expired")  # begun during the outage
        assert health.up
        health.failed("no answer within 2s", probe=True)
        assert not health.up
        health.ok()
        clock[0] += health_module.SETTLE + 1
        health.failed("connection refused")
    assert not health.up
    assert [e["event"] for e in logs] == ["store unreachable", "store reachable again"] * 2 + ["store unreachable"]


def test_a_suspect_store_is_away_for_writes_until_a_later_probe_says() -> None:
    """A round's claim past its deadline makes the store suspect: writes fail at once (no
    event yet); a probe begun before the suspicion says nothing, one begun after ends it
    (and the kept rows are written), a failed probe makes it down."""
    import time

    from supertask.errors import StoreUnavailable

    health = StoreHealth("postgresql://u@db/x")
    health.events = True
    back: list[bool] = []
    health.when_back.append(lambda: back.append(True))
    before = time.time() - 1
    with capture_logs() as logs:
        health.suspect("no answer within 1.5s")
        with pytest.raises(StoreUnavailable):
            health.check()
        health.ok()  # an operation's answer (begun before, maybe): still suspect
        health.ok(before)
        with pytest.raises(StoreUnavailable):
            health.check()
        health.ok(time.time())
        health.check()
        assert back == [True] and health.up
        health.suspect("no answer within 1.5s")
        health.failed("no answer within 2s", probe=True)
        assert not health.up and health.suspected is None
    assert [e["event"] for e in logs] == ["store slow to answer: fires run from memory"] * 2 + ["store unreachable"]
