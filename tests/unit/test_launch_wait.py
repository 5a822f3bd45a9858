"""launchers.follow.run_process: a child followed to its end in the caller's thread."""

from __future__ import annotations

import time

from supertask.launchers.base import Command
from supertask.launchers.follow import run_process


def test_a_child_that_closes_its_output_early_is_waited_for() -> None:
    lines: list[tuple[str, str]] = []
    t0 = time.monotonic()
    outcome = run_process(Command(["/bin/sh", "-c", "echo hi; exec >&- 2>&-; sleep 0.3; exit 3"]),
                          lambda stream, line: lines.append((stream, line)))
    assert (outcome.exit_code, lines) == (3, [("stdout", "hi")])
    assert 0.3 <= time.monotonic() - t0 < 1.5


def test_a_quick_child_is_seen_to_exit_at_once() -> None:
    t0 = time.monotonic()
    outcome = run_process(Command(["/bin/true"]), lambda stream, line: None)
    assert outcome.exit_code == 0
    assert time.monotonic() - t0 < 0.2  # woken by its exit (a pidfd), not by a poll
