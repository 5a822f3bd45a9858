"""A live change's audit row while the store is away: not waited on (a cut network would
hold the control reply for its timeouts), logged instead; a store that refuses is logged too."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from supertask.control.changes import audit


class Store:
    def __init__(self, up: bool, fails: bool = False):
        self.health = SimpleNamespace(up=up)
        self.fails = fails
        self.rows: list[dict[str, Any]] = []

    def audit(self, **row: Any) -> None:
        if self.fails:
            raise OSError("connection reset")
        self.rows.append(row)


def test_a_row_is_written_while_the_store_is_up() -> None:
    st = Store(up=True)
    audit(st, "alice", "control on h", "paused all", "ns", None, {"paused": False}, {"paused": True})
    assert st.rows == [{"who": "alice", "source": "control on h", "action": "paused all", "namespace": "ns",
                        "job": None, "before": {"paused": False}, "after": {"paused": True}}]


def test_a_store_known_away_is_not_waited_on_and_a_failing_one_does_not_raise() -> None:
    away = Store(up=False)
    audit(away, "alice", "control on h", "stopped", "ns", None, None, {"grace": 5})
    assert away.rows == []
    audit(Store(up=True, fails=True), "alice", "control on h", "stopped", "ns", None, None, {"grace": 5})
