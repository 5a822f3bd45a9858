"""follow.Follower: one thread carrying many real children to their ends."""

from __future__ import annotations

import os
import threading
import time

import pytest

from supertask.launchers import follow
from supertask.launchers.base import MAX_LINE, Command, Outcome, start_process
from supertask.model import RunStatus

pytestmark = pytest.mark.skipif(not follow.available(), reason="needs pidfds (Linux 5.3+)")


class Seen:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []
        self.outcome: Outcome | None = None
        self.ended = threading.Event()
        self.at: float | None = None

    def line(self, stream: str, text: str) -> None:
        self.lines.append((stream, text))

    def end(self, outcome: Outcome) -> None:
        self.outcome, self.at = outcome, time.monotonic()
        self.ended.set()


def start(follower: follow.Follower, script: str, **options: object) -> Seen:
    seen = Seen()
    proc = start_process(Command(["/bin/sh", "-c", script], dict(os.environ), None))
    assert not isinstance(proc, OSError)
    follower.follow(follow.Followed(proc, seen.line, seen.end, **options))  # type: ignore[arg-type]
    return seen


@pytest.fixture
def follower() -> follow.Follower:
    f = follow.Follower()
    f.start()
    yield f
    assert f.close(timeout=10)


def test_many_children_each_get_their_lines_and_exit_code(follower: follow.Follower) -> None:
    runs = [start(follower, f"echo out {i}; echo err {i} >&2; exit {i % 4}") for i in range(200)]
    for i, seen in enumerate(runs):
        assert seen.ended.wait(10), i
        assert seen.outcome is not None
        expected = RunStatus.SUCCEEDED if i % 4 == 0 else RunStatus.FAILED
        assert (seen.outcome.status, seen.outcome.exit_code) == (expected, i % 4)
        assert sorted(seen.lines) == [("stderr", f"err {i}"), ("stdout", f"out {i}")]
    assert follower.count() == 0


def test_a_line_without_newline_and_an_overlong_line(follower: follow.Follower) -> None:
    seen = start(follower, f"head -c {MAX_LINE + 10} /dev/zero | tr '\\0' x; echo; printf 'no newline'")
    assert seen.ended.wait(10)
    sizes = [len(text) for _, text in seen.lines]
    assert sizes == [MAX_LINE, 10, len("no newline")]


def test_a_background_grandchild_holding_the_pipes_is_left_after_a_second(follower: follow.Follower) -> None:
    t0 = time.monotonic()
    seen = start(follower, "sleep 30 & echo started; exit 5")
    assert seen.ended.wait(10)
    assert seen.outcome is not None and seen.outcome.exit_code == 5
    assert follow.LINGER <= seen.at - t0 < follow.LINGER + 2  # type: ignore[operator]
    assert seen.lines == [("stdout", "started")]


def test_a_timeout_ends_the_process_group(follower: follow.Follower) -> None:
    t0 = time.monotonic()
    seen = start(follower, "sleep 30; echo never", timeout=0.3, deadline=time.monotonic() + 0.3, kill_grace=2.0)
    assert seen.ended.wait(10)
    assert seen.outcome is not None and seen.outcome.status is RunStatus.TIMED_OUT
    assert "timed out after 0.3s" in (seen.outcome.message or "")
    assert seen.at - t0 < 3  # type: ignore[operator]
    assert seen.lines == []


def test_a_stop_request_ends_the_run_as_killed(follower: follow.Follower) -> None:
    stop = threading.Event()
    seen = start(follower, "trap '' TERM; echo up; sleep 30", stop=stop, kill_grace=0.3)
    time.sleep(0.2)
    assert not seen.ended.is_set()
    stop.set()
    assert seen.ended.wait(10)  # TERM ignored: KILL after the grace
    assert seen.outcome is not None and seen.outcome.status is RunStatus.KILLED
    assert seen.lines == [("stdout", "up")]


def test_close_waits_for_the_children_then_refuses_more() -> None:
    f = follow.Follower()
    f.start()
    seen = start(f, "sleep 0.3; echo late")
    assert f.close(timeout=10)
    assert seen.ended.is_set() and seen.lines == [("stdout", "late")]
    with pytest.raises(RuntimeError):
        start(f, "true")


def test_without_a_pidfd_the_child_is_looked_at_until_it_exits(monkeypatch: pytest.MonkeyPatch,
                                                                follower: follow.Follower) -> None:
    def no_fd(pid: int) -> int:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(follow.os, "pidfd_open", no_fd)
    quick = start(follower, "echo bye; exit 2")
    slow = start(follower, "exec >&- 2>&-; sleep 0.4; exit 3")  # its pipes close long before it exits
    timed = start(follower, "exec >&- 2>&-; sleep 30", timeout=0.3, deadline=time.monotonic() + 0.3,
                  kill_grace=1.0)
    for seen, code in ((quick, 2), (slow, 3)):
        assert seen.ended.wait(10)
        assert seen.outcome is not None and seen.outcome.exit_code == code
    assert quick.lines == [("stdout", "bye")]
    assert timed.ended.wait(10)
    assert timed.outcome is not None and timed.outcome.status is RunStatus.TIMED_OUT
