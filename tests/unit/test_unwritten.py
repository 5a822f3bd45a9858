"""runs.unwritten: run ends the store refused, kept, spooled, written when it is back."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from supertask.model import RunStatus
from supertask.runs import unwritten
from supertask.runs.unwritten import Unwritten, provisional_id, replay

UTC = timezone.utc
END = {"status": RunStatus.SUCCEEDED, "exit_code": 0, "finished": datetime(2026, 12, 5, 20, 0, 1, tzinfo=UTC),
       "started": datetime(2026, 12, 5, 20, 0, tzinfo=UTC), "message": None}
CLAIM = {"namespace": "ns", "job": "j", "scheduled": datetime(2026, 12, 5, 20, 0, tzinfo=UTC), "attempt": 1,
         "reason": "schedule", "host": "h", "log_dir": Path("/logs")}


class Store:
    def __init__(self) -> None:
        self.away = True
        self.rows: dict[int, dict[str, Any]] = {}
        self.claims: list[dict[str, Any]] = []

    def update_run(self, run_id: int, **values: Any) -> None:
        if self.away:
            raise ConnectionRefusedError("connection refused")
        self.rows[run_id] = values

    def end_runs(self, rows: list[tuple[int, dict[str, Any]]], owner: str | None = None) -> list[int]:
        if self.away:
            raise ConnectionRefusedError("connection refused")
        refused = [run_id for run_id, _ in rows if self.rows.get(run_id, {}).get("status") == RunStatus.LOST]
        self.rows.update((run_id, values) for run_id, values in rows if run_id not in refused)
        return refused

    def claim_run(self, **claim: Any) -> int | None:
        if self.away:
            raise ConnectionRefusedError("connection refused")
        self.claims.append(claim)
        return 100 + len(self.claims)

    def claim_runs(self, claims: list[dict[str, Any]]) -> list[int | None]:
        return [self.claim_run(**{k: v for k, v in claim.items() if k != "adopt"}) for claim in claims]


def test_kept_while_away_then_written_with_backoff(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    kept = Unwritten(store, tmp_path)
    kept.keep([{"id": 7, "claim": None, "values": END}, {"id": None, "claim": CLAIM, "values": END}],
              ConnectionRefusedError("refused"))
    assert (tmp_path / unwritten.SPOOL).exists() and len(kept) == 2
    assert 0 < kept.due_in() <= unwritten.FIRST_DELAY  # type: ignore[operator]
    assert kept.retry() == 2  # still away: the delay doubles
    assert kept.due_in() > unwritten.FIRST_DELAY  # type: ignore[operator]
    store.away = False
    assert kept.retry() == 0
    assert store.rows[7] == END and store.rows[101]["status"] is RunStatus.SUCCEEDED
    assert store.claims[0]["scheduled"] == CLAIM["scheduled"]
    assert not (tmp_path / unwritten.SPOOL).exists() and kept.due_in() is None


def test_the_spool_is_replayed_at_the_next_start(tmp_path: Path) -> None:
    store = Store()
    Unwritten(store, tmp_path).keep([{"id": 3, "claim": None, "values": END}], ConnectionRefusedError())
    assert replay(store, tmp_path) == 0  # still away: the file stays
    assert (tmp_path / unwritten.SPOOL).exists()
    store.away = False
    assert replay(store, tmp_path) == 1
    assert store.rows[3]["status"] is RunStatus.SUCCEEDED and store.rows[3]["finished"] == END["finished"]
    assert not (tmp_path / unwritten.SPOOL).exists()
    assert replay(store, tmp_path) == 0  # nothing left


def test_provisional_ids_are_negative_and_unique() -> None:
    ids = [provisional_id() for _ in range(1000)]
    assert all(i < 0 for i in ids) and len(set(ids)) == 1000


def test_a_late_end_is_refused_and_leaves_the_row_as_it_is(tmp_path: Path) -> None:
    store = Store()
    store.away = False
    store.rows[5] = {"status": RunStatus.LOST, "message": "taken over"}
    kept = Unwritten(store, tmp_path)
    kept.keep([{"id": 5, "claim": None, "values": END, "owner": "frozen"}])
    assert kept.retry() == 0  # refused is not kept: it will never be taken
    assert store.rows[5]["status"] is RunStatus.LOST


def test_a_held_fire_becomes_a_skipped_row_with_its_reason(tmp_path: Path) -> None:
    """A fire held while the store was away (other hosts serve the namespace): claimed as
    skipped with the reason when it is back, unless another host claimed it first."""
    from supertask.runs.context import RunContext
    from supertask.runs.lifecycle import hold
    from supertask.settings import Settings

    store = Store()
    ctx = RunContext(store, Settings(home=tmp_path, store_url="sqlite:///x"))  # type: ignore[arg-type]
    assert not hold(ctx, dict(CLAIM), None)  # no other live host: not held
    assert hold(ctx, dict(CLAIM), "missed: the store was unreachable and other hosts serve this namespace (b)")
    assert ctx.unwritten is not None and len(ctx.unwritten) == 1
    store.away = False
    assert ctx.unwritten.retry() == 0
    (claim,) = store.claims
    assert claim["status"] is RunStatus.SKIPPED and "other hosts serve this namespace" in claim["message"]
    assert claim["log_dir"] is None and claim["scheduled"] == CLAIM["scheduled"]


def test_a_skipped_fire_kept_while_away_is_claimed_from_the_spool_with_its_status(tmp_path: Path) -> None:
    """A fire that did not run (skipped, missed) kept while the store was away: its claim
    carries its status and message and no log folder, through the spool file too."""
    from types import SimpleNamespace

    store = Store()
    ctx: Any = SimpleNamespace(store=store, settings=SimpleNamespace(home=tmp_path), unwritten=None, finisher=None)
    claim = {k: v for k, v in CLAIM.items() if k != "log_dir"} | {"status": RunStatus.SKIPPED, "message": "missed 2"}
    unwritten.claim_or_keep(ctx, claim)
    assert len(ctx.unwritten) == 1 and not store.claims
    store.away = False
    assert replay(store, tmp_path) == 1  # as a scheduler's next start finds it
    assert store.claims[0]["status"] is RunStatus.SKIPPED and store.claims[0]["message"] == "missed 2"
    assert store.claims[0].get("log_dir") is None
    assert isinstance(store.rows[101]["finished"], datetime)  # when it was decided, not when written
    unwritten.claim_or_keep(ctx, claim)  # the store is back: claimed at once
    assert len(store.claims) == 2


def _sqlite(tmp_path: Path, instance: str) -> Any:
    from supertask.store.sql import SqlStore

    store = SqlStore.open(f"sqlite:///{tmp_path / 's.db'}")
    store.instance = instance
    return store


def _rows(store: Any) -> list[Any]:
    return [r for r in store.history(limit=50) if r.job == "j"]


def test_a_kept_run_takes_over_the_row_its_own_late_claim_committed(tmp_path: Path) -> None:
    """A round's claim had no answer in time, its fire ran from memory (a provisional run),
    then the claim committed after all: the kept end writes that row (one row, not
    ``running`` forever); a fire held by another instance is left as it is."""
    store = _sqlite(tmp_path, "me")
    late = store.claim_run(**CLAIM)  # the hanging round claim, committed late
    kept = Unwritten(store, tmp_path)
    kept.keep([{"id": None, "claim": dict(CLAIM), "values": END, "owner": "me"}])
    assert kept.retry() == 0
    (row,) = _rows(store)
    assert (row.id, row.status, row.exit_code) == (late, RunStatus.SUCCEEDED, 0)
    kept.keep([{"id": None, "claim": dict(CLAIM), "values": END, "owner": "me"}])  # written twice: still one row
    assert kept.retry() == 0 and len(_rows(store)) == 1

    other = dict(CLAIM, scheduled=datetime(2026, 12, 5, 20, 0, 1, tzinfo=UTC))
    theirs = store.claim_run(**other, instance="them")
    kept.keep([{"id": None, "claim": dict(other), "values": END, "owner": "me"}])
    assert kept.retry() == 0
    assert store.get_run(theirs).status is RunStatus.RUNNING  # theirs: not written over


def test_a_fire_that_did_not_run_turns_its_late_claimed_row_skipped(tmp_path: Path) -> None:
    """A fire skipped or held from memory whose round claim committed late: the row the
    claim made becomes ``skipped`` with the reason, not a run left ``running``."""
    store = _sqlite(tmp_path, "me")
    late = store.claim_run(**CLAIM)
    kept = Unwritten(store, tmp_path)
    claim = {**CLAIM, "status": RunStatus.SKIPPED.value, "message": "held", "log_dir": None}
    kept.keep([{"id": None, "claim": claim, "values": {}, "owner": "me"}])
    assert kept.retry() == 0
    (row,) = _rows(store)
    assert (row.id, row.status, row.message, row.started) == (late, RunStatus.SKIPPED, "held", None)


def test_a_queued_row_taken_up_while_away_is_not_taken_from_another_instance(tmp_path: Path) -> None:
    store = _sqlite(tmp_path, "me")
    mine = store.claim_run(**CLAIM, status=RunStatus.QUEUED)
    theirs = store.claim_run(**dict(CLAIM, job="k"), status=RunStatus.QUEUED, instance="them")
    kept = Unwritten(store, tmp_path)
    kept.keep([{"id": None, "claim": {"take_up": mine}, "values": END, "owner": "me"},
               {"id": None, "claim": {"take_up": theirs}, "values": END, "owner": "me"}])
    assert kept.retry() == 0
    assert store.get_run(mine).status is RunStatus.SUCCEEDED
    assert store.get_run(theirs).status is RunStatus.QUEUED  # another host's: left to it
