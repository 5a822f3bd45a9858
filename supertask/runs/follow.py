"""One thread that follows the scheduler's children to their ends.

A run started by the scheduler's round (a ``run:`` command) is followed here rather
than by a thread of its own: one epoll set holds every child's output pipes and a
pidfd that becomes readable when the child exits. At a thousand fires a second a
thread per child cost about 30 context switches and 1 ms of CPU per run, and the
children, starved of the CPU, ran into their next fires (docs/benchmarks.md); this
thread reads whatever is ready in one wake-up.

What a run's own thread did, this does too (:func:`supertask.launchers.base.run_process`):
output is handed on line by line, a line over ``MAX_LINE`` bytes in pieces; after the
main child exits, pipes a background grandchild still holds are read for one more
second, then left; a timeout or a stop request ends the process group (in a thread of
its own, as that waits up to ``kill_grace``).
"""

from __future__ import annotations

import heapq
import itertools
import os
import selectors
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from supertask.launchers.base import LineSink, Outcome, end_group, ended, relay_chunk
from supertask.log import get_logger
from supertask.model import RunStatus

#: How often the stop requests (``jobs kill``, a scheduler's second Ctrl-C) are looked at.
TICK = 0.2
#: How long pipes a grandchild holds open are still read after the main child exits.
LINGER = 1.0
#: How often a child without a pidfd is looked at (the scheduler out of descriptors).
POLL = 0.05


def available() -> bool:
    """Whether children can be followed so (Linux 5.3 or later: pidfds)."""
    return hasattr(os, "pidfd_open")


@dataclass(eq=False)
class Followed:
    """A started child, followed until it has exited and its pipes are done."""

    proc: subprocess.Popen[bytes]
    on_line: LineSink
    #: called (in the follower's thread) with how the child ended; must not block
    on_end: Callable[[Outcome], None]
    timeout: float | None = None
    deadline: float | None = None  # time.monotonic() at which the timeout ends it
    stop: threading.Event | None = None
    kill_grace: float = 10.0
    run_key: str | None = None
    code: int | None = None
    ended_by: RunStatus | None = None
    pipes: dict[int, tuple[str, object]] = field(default_factory=dict)  # fd -> (stream, file)
    buffers: dict[str, bytes] = field(default_factory=dict)
    pidfd: int = -1
    linger_until: float | None = None
    done: bool = False


class Follower:
    def __init__(self) -> None:
        self._sel = selectors.EpollSelector()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._new: list[Followed] = []
        self._lock = threading.Lock()
        self._runs: set[Followed] = set()
        self._timers: list[tuple[float, int, Followed]] = []  # (when, n, run): deadlines and lingers
        self._seq = itertools.count()
        self._closing = False
        self._idle = threading.Condition(self._lock)
        self._count = 0
        self.log = get_logger("supertask.run")
        self._thread = threading.Thread(target=self._loop, name="supertask-follow", daemon=True)
        self._thread.start()

    def follow(self, run: Followed) -> None:
        """Follow ``run`` from now; its ``on_end`` is called once it is over."""
        run.on_line = self._guarded(run.on_line)
        with self._lock:
            if self._closing:
                raise RuntimeError("the follower is stopping")
            self._new.append(run)
            self._count += 1
        self._poke()

    def count(self) -> int:
        """Children being followed."""
        with self._lock:
            return self._count

    def close(self, timeout: float | None = None) -> bool:
        """Wait (up to ``timeout``) until every child followed has ended, then stop."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._count:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._idle.wait(left)
            self._closing = True
        self._poke()
        self._thread.join(timeout)
        return True

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # already poked
            pass

    # -- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        next_tick = time.monotonic() + TICK
        try:
            while True:
                now = time.monotonic()
                wait = next_tick - now
                if self._timers:
                    wait = min(wait, self._timers[0][0] - now)
                for key, _ in self._sel.select(max(0.0, wait) if self._runs else None):
                    if key.data is None:
                        self._take_new()
                    else:
                        kind, run = key.data
                        if kind == "exit":
                            self._exited(run)
                        else:
                            self._read(run, key.fd, kind)
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, run = heapq.heappop(self._timers)
                    self._timer(run, now)
                if now >= next_tick:
                    next_tick = now + TICK
                    for run in [r for r in self._runs if r.stop is not None and r.stop.is_set()]:
                        self._end(run, RunStatus.KILLED)
                with self._lock:
                    if self._closing and not self._runs and not self._new:
                        return
        except Exception:  # a bug here must not leave runs unfinished unnoticed
            self.log.exception("following the scheduler's children failed")
            raise

    def _take_new(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            new, self._new = self._new, []
        for run in new:
            self._runs.add(run)
            proc = run.proc
            for stream, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr)):
                if pipe is None:
                    continue
                os.set_blocking(pipe.fileno(), False)
                run.pipes[pipe.fileno()] = (stream, pipe)
                run.buffers[stream] = b""
                self._sel.register(pipe.fileno(), selectors.EVENT_READ, (stream, run))
            try:
                run.pidfd = os.pidfd_open(proc.pid)  # our unreaped child: its pid cannot be reused
                self._sel.register(run.pidfd, selectors.EVENT_READ, ("exit", run))
            except OSError:  # out of descriptors: it is looked at every POLL seconds instead
                run.pidfd = -1
                self._exited(run)
            if run.deadline is not None:
                heapq.heappush(self._timers, (run.deadline, next(self._seq), run))

    def _read(self, run: Followed, fd: int, stream: str) -> None:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close_pipe(run, fd)
            self._maybe_done(run)
            return
        run.buffers[stream] = relay_chunk(run.buffers[stream], chunk, stream, run.on_line)

    def _guarded(self, on_line: LineSink) -> LineSink:
        """``on_line``, whose failure is logged rather than stop the following of all."""
        def guarded(stream: str, line: str) -> None:
            try:
                on_line(stream, line)
            except Exception:
                self.log.exception("handling a line of a run's output failed")

        return guarded

    def _close_pipe(self, run: Followed, fd: int) -> None:
        _, pipe = run.pipes.pop(fd)
        self._sel.unregister(fd)
        pipe.close()  # type: ignore[attr-defined]

    def _exited(self, run: Followed) -> None:
        """Its pidfd is readable (or there is none): reap it, or look again shortly."""
        if run.pidfd >= 0:
            self._sel.unregister(run.pidfd)
            os.close(run.pidfd)
            run.pidfd = -1
        code = run.proc.poll()
        if code is None:  # no pidfd (out of descriptors), or not quite reapable yet
            heapq.heappush(self._timers, (time.monotonic() + POLL, next(self._seq), run))
            return
        run.code = code
        if run.pipes:
            run.linger_until = time.monotonic() + LINGER
            heapq.heappush(self._timers, (run.linger_until, next(self._seq), run))
        self._maybe_done(run)

    def _timer(self, run: Followed, now: float) -> None:
        if run.done:
            return
        if run.code is None and run.pidfd < 0:
            self._exited(run)  # no pidfd: looked at again
            if run.code is None and run.deadline is not None and now >= run.deadline:
                self._end(run, RunStatus.TIMED_OUT)
            return
        if run.code is None and run.deadline is not None and now >= run.deadline:
            self._end(run, RunStatus.TIMED_OUT)
        if run.linger_until is not None and now >= run.linger_until:
            for fd in list(run.pipes):
                self._close_pipe(run, fd)
            self._maybe_done(run)

    def _end(self, run: Followed, why: RunStatus) -> None:
        """A timeout or a stop request: end the process group, in a thread of its own."""
        if run.ended_by is not None or run.code is not None:
            return
        run.ended_by = why
        threading.Thread(target=end_group, args=(run.proc, run.kill_grace, run.run_key),
                         name="supertask-end", daemon=True).start()

    def _maybe_done(self, run: Followed) -> None:
        if run.done or run.pipes or run.code is None:
            return
        run.done = True
        self._runs.discard(run)
        for stream, rest in run.buffers.items():
            if rest:
                run.on_line(stream, rest.decode("utf-8", "replace"))
        from supertask.launchers import reaper

        reaper.release(run.proc.pid)
        outcome = ended(run.code, run.proc.pid, run.ended_by, run.timeout)
        try:
            run.on_end(outcome)
        except Exception:
            self.log.exception("recording a run's end failed")
        finally:
            with self._lock:
                self._count -= 1
                if not self._count:
                    self._idle.notify_all()
