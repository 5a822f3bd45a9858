"""launchers.base._wait_exit: Popen.wait(timeout) woken by the child's exit."""

from __future__ import annotations

import subprocess
import time

import pytest

from supertask.launchers.base import Command, _wait_exit, run_process


def test_wait_exit_times_out_then_returns_the_exit_code() -> None:
    proc = subprocess.Popen(["/bin/sh", "-c", "sleep 0.3; exit 7"])
    with pytest.raises(subprocess.TimeoutExpired):
        _wait_exit(proc, 0.05)
    assert proc.returncode is None
    t0 = time.monotonic()
    assert _wait_exit(proc, 5) == 7
    assert time.monotonic() - t0 < 1  # woken by the exit, not at the timeout
    assert _wait_exit(proc, 0.1) == 7  # reaped already: as Popen.wait


def test_a_child_that_closes_its_output_early_is_waited_for() -> None:
    lines: list[tuple[str, str]] = []
    t0 = time.monotonic()
    outcome = run_process(Command(["/bin/sh", "-c", "echo hi; exec >&- 2>&-; sleep 0.3; exit 3"]),
                          lambda stream, line: lines.append((stream, line)))
    assert (outcome.exit_code, lines) == (3, [("stdout", "hi")])
    assert 0.3 <= time.monotonic() - t0 < 1.5
