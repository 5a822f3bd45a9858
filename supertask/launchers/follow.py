"""The one loop that carries children to their ends: output relayed line by line,
timeouts and stop requests, the process group ended.

Every child supertask starts is followed here: one epoll set holds every child's
output pipes and a pidfd that becomes readable when the child exits. The scheduler
runs one :class:`Follower` thread for all its children (at a thousand fires a second a
thread per child cost about 30 context switches and 1 ms of CPU per run, and the
children, starved of the CPU, ran into their next fires: docs/benchmarks.md); a
caller without one (a one-shot ``supertask run -- cmd:...``, a run while the
scheduler stops) drives a private follower in its own thread (:meth:`Follower.run`).

Output is handed on line by line, a line over ``MAX_LINE`` bytes in pieces; after the
main child exits, pipes a background grandchild still holds are read for one more
second, then left (the run ends with its main process, as cron's does); a timeout or
a stop request ends the process group (in a thread of its own, as that waits up to
``kill_grace``). Without pidfds (Linux before 5.3, or out of descriptors) a child is
looked at every :data:`POLL` seconds instead.
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

from supertask.launchers.base import (
    Command,
    LineSink,
    Outcome,
    end_group,
    ended,
    relay_chunk,
    run_key_in,
    start_process,
)
from supertask.log import get_logger
from supertask.model import RunStatus
from supertask.threads import Spawn, Threads

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a one-shot run's start-up)
if TYPE_CHECKING:
    from typing import Any

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
    """Follows children to their ends: in a thread of its own once :meth:`start`-ed
    (:meth:`follow`), or in the caller's thread (:meth:`run`, when not started). Its
    threads (its own, and those that end process groups) are started with ``spawn``
    (the scheduler's supervisor's), else owned by a :class:`Threads` of its own."""

    def __init__(self, spawn: Spawn | None = None) -> None:
        self.spawn: Spawn = spawn or Threads("follower").spawn
        self._sel = selectors.DefaultSelector()
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
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Follow children in a thread of its own from now (the scheduler's supervisor)."""
        self._thread = self.spawn("supertask-follow", self._loop)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._closing

    def follow(self, run: Followed) -> None:
        """Follow ``run`` from now; its ``on_end`` is called once it is over. Raises
        RuntimeError when this follower's thread is not running (stopping, or never started)."""
        run.on_line = self._guarded(run.on_line)
        with self._lock:
            if self._closing or self._thread is None:
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
        if self._thread is not None:
            self._thread.join(timeout)
        return True

    def run(self, command: Command, on_line: LineSink, *, timeout: float | None = None, kill_grace: float = 10.0,
            stop: threading.Event | None = None, on_start: Callable[[int], None] | None = None,
            started: subprocess.Popen[bytes] | OSError | None = None) -> Outcome:
        """Run ``command`` (or the child ``started`` for it) to its end, relaying its output;
        honour ``timeout`` (from now) and ``stop``. Followed by this follower's thread when it
        runs, else here, in the caller's thread.

        Status is ``succeeded`` on exit 0, ``failed`` otherwise, ``timed-out`` when the
        timeout ended it, ``killed`` when ``stop`` was set."""
        proc = start_process(command) if started is None else started
        if isinstance(proc, OSError):
            on_line("stderr", f"supertask: cannot start {command.argv[0]!r}: {proc.strerror or proc}")
            return Outcome(RunStatus.FAILED, 127, None, f"cannot start {command.argv[0]!r}: {proc}")
        if on_start is not None:
            on_start(proc.pid)
        result: list[Outcome] = []
        over = threading.Event()

        def on_end(outcome: Outcome) -> None:
            result.append(outcome)
            over.set()

        run = Followed(proc, on_line, on_end, timeout=timeout, deadline=time.monotonic() + timeout if timeout else None,
                       stop=stop, kill_grace=kill_grace, run_key=run_key_in(command.env))
        try:
            self.follow(run)
        except RuntimeError:  # no thread of ours (never started, or stopping): followed here
            here = self if self._thread is None else Follower(self.spawn)
            try:
                here._add(run)
                while not run.done:
                    here._step()
            finally:
                if here is not self:
                    here._release()
            return result[0]
        while not over.wait(1.0):
            if self._thread is None or not self._thread.is_alive():  # a bug ended the thread
                return Outcome(RunStatus.FAILED, None, proc.pid, "supertask lost track of the run's child")
        return result[0]

    def _release(self) -> None:
        self._sel.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:  # already poked
            pass

    # -- the thread -----------------------------------------------------------------------

    def _loop(self) -> None:
        try:
            while True:
                self._step()
                with self._lock:
                    if self._closing and not self._runs and not self._new:
                        return
        except Exception:  # a bug here must not leave runs unfinished unnoticed
            self.log.exception("following the scheduler's children failed")
            raise

    _next_tick = 0.0

    def _step(self) -> None:
        """One wake-up: whatever is ready is read, reaped, timed out or stopped."""
        now = time.monotonic()
        if not self._next_tick:
            self._next_tick = now + TICK
        wait = self._next_tick - now
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
        if now >= self._next_tick:
            self._next_tick = now + TICK
            for run in [r for r in self._runs if r.stop is not None and r.stop.is_set()]:
                self._end(run, RunStatus.KILLED)

    def _take_new(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass
        with self._lock:
            new, self._new = self._new, []
        for run in new:
            self._add(run)

    def _add(self, run: Followed) -> None:
        """Start watching ``run``'s pipes and exit (in the following thread)."""
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
        except (OSError, AttributeError):  # out of descriptors, or no pidfds: looked at every POLL seconds
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
        self.spawn("supertask-end", end_group, run.proc, run.kill_grace, run.run_key)

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
                self._count = max(0, self._count - 1)
                if not self._count:
                    self._idle.notify_all()


def run_process(command: Command, on_line: LineSink, **options: Any) -> Outcome:
    """Run ``command`` to its end in this thread (:meth:`Follower.run` of a follower of its own)."""
    follower = Follower()
    try:
        return follower.run(command, on_line, **options)
    finally:
        follower._release()
