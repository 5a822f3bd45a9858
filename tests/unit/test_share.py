"""A timetable's top-level ``weight:`` and ``max_running:`` (the namespace's share of the
workers, docs/workers.md): strings in, a Share or located problems out."""

from __future__ import annotations

import textwrap

import pytest

from supertask.errors import TimetableError
from supertask.model import Share
from supertask.timetable.load import load_timetable

JOBS = "jobs:\n  - name: a\n    when: '@daily'\n    run: cmd:true\n"


def load(top: str) -> Share | None:
    return load_timetable(textwrap.dedent(top) + JOBS, "t.yaml").share


@pytest.mark.parametrize(("top", "share"), [
    ("", Share(1.0, None)),
    ("weight: 3\n", Share(3.0, None)),
    ("weight: 0.5\nmax_running: 4\n", Share(0.5, 4)),
    ("max_running: 1\n", Share(1.0, 1)),
    ("max_running: null\n", Share(1.0, None)),
])
def test_share(top: str, share: Share) -> None:
    assert load(top) == share


@pytest.mark.parametrize(("top", "line", "message"), [
    ("weight: 0\n", 1, "weight: expected a number above 0"),
    ("weight: -2\n", 1, "weight: expected a number above 0"),
    ("weight: lots\n", 1, "weight: expected a number above 0 (the namespace's share of the workers, default 1), "
                          "got the text 'lots'"),
    ("weight: true\n", 1, "weight: expected a number above 0"),
    ("namespace: x\nmax_running: 0\n", 2, "max_running: expected a whole number of 1 or more"),
    ("max_running: 2.5\n", 1, "max_running: expected a whole number of 1 or more"),
    ("max_running: [1]\n", 1, "max_running: expected a whole number of 1 or more"),
    ("share: 2\n", 1, "share: unknown key 'share'; did you mean 'weight'?"),
    ("max_concurrent: 2\n", 1, "max_concurrent: unknown key 'max_concurrent'; did you mean 'max_running'?"),
])
def test_share_problems(top: str, line: int, message: str) -> None:
    with pytest.raises(TimetableError) as caught:
        load(top)
    problems = [(p.line, f"{p.path}: {p.message}" if p.path else p.message) for p in caught.value.problems]
    assert any(at == line and text.startswith(message) for at, text in problems), problems
