"""What a live change event says (supertask.control.changes): before/after, secrets hidden."""

from __future__ import annotations

import dataclasses

import pytest

from supertask.control.changes import difference, edit_event, plain
from supertask.model import Job

BASE = Job(name="j", when="0 3 * * *", run="cmd:true", env={"A": "secret-a", "B": "b"})


@pytest.mark.parametrize(("changes", "before", "after", "event"), [
    ({"when": "0 4 * * *"}, {"when": "0 3 * * *"}, {"when": "0 4 * * *"}, "job rescheduled"),
    ({"when": "0 4 * * *", "timezone": "UTC"}, {"timezone": None, "when": "0 3 * * *"},
     {"timezone": "UTC", "when": "0 4 * * *"}, "job rescheduled"),
    ({"retries": 3}, {"retries": 0}, {"retries": 3}, "job edited"),
    ({"env": {"A": "other", "B": "b", "C": "new"}}, {"env": {"A": "***"}}, {"env": {"A": "***", "C": "***"}},
     "job edited"),
    ({"env": {"B": "b"}}, {"env": {"A": "***"}}, {"env": {}}, "job edited"),
    ({}, {}, {}, "job edited"),
])
def test_difference_and_event(changes: dict, before: dict, after: dict, event: str) -> None:
    was, now = difference(BASE, dataclasses.replace(BASE, **changes))
    assert (was, now) == (before, after)
    assert edit_event(was, now) == event


def test_plain_names_what_a_job_sets_and_hides_env_values() -> None:
    assert plain(dataclasses.replace(BASE, retries=2)) == {
        "name": "j", "when": "0 3 * * *", "run": "cmd:true", "retries": 2, "env": {"A": "***", "B": "***"}}
