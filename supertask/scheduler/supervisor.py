"""The one owner of a scheduler's threads and components.

A service is a stack of parts (the notification outbox, the finisher that writes
runs' ends, the follower of their children, the pool of run threads, the schedule
state's write-behind, the APScheduler core, then the control endpoint, the timetable
watcher, metrics, the PID 1 reaper). The supervisor starts them in the order they
were added and stops them in reverse, each stop waiting until its part is done and
its threads joined: what a part still has queued (rows to write, notifications) is
handed down to parts that are still running, so a stop drops no queued write.

Every thread of supertask's own is started through the supervisor: a part gets a
:data:`~supertask.threads.Spawn` of its own (:meth:`Supervisor.spawner`), or starts one
while it is being started (:meth:`Supervisor.thread`); short-lived threads count too
(ending a run's process group, stopping a container at its timeout, a run carried on
while the pool shuts down, a store probe). A part's threads are joined, newest first,
once the part has stopped. :mod:`supertask.threads` is the only module that makes a
``threading.Thread``.

The exceptions, threads that dependencies start and own, each ended by the part that
owns the object: APScheduler's scheduler thread (the ``scheduler`` part: ``shutdown``),
the run pool's workers (``run threads``: a ``ThreadPoolExecutor``, shut down with
``wait=True``), prometheus_client's HTTP server (``Metrics``), and rpyc's thread per
control connection (``_Control``: it ends with its connection; on a stop the
connections are left to end with the process, so ``stop --wait`` sees the exit).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from supertask.log import get_logger
from supertask.threads import Spawn, Threads

#: How long a stop waits for the threads of each part once the part was told to stop.
JOIN_TIMEOUT = 10.0


@dataclass
class Part:
    name: str
    start: Callable[[], object]
    stop: Callable[[], object]
    threads: Threads


class Supervisor:
    def __init__(self) -> None:
        self._parts: list[Part] = []
        self._running: list[Part] = []
        self._current: Part | None = None
        self._threads: dict[str, Threads] = {}  # by part name, made when first asked for
        self._lock = threading.Lock()
        #: the threads still running once :meth:`stop` returned (their names): its own
        #: that did not stop in time, and any non-daemon thread (what would keep the process up)
        self.left: list[str] = []
        self._before: set[threading.Thread] = set()  # non-daemon threads not ours: there before the start
        self.log = get_logger("supertask.scheduler.supervisor")

    def add(self, name: str, start: Callable[[], object] = lambda: None,
            stop: Callable[[], object] = lambda: None) -> None:
        """A part, started after the ones added before it and stopped before them."""
        self._parts.append(Part(name, start, stop, self._threads_of(name)))

    def _threads_of(self, name: str) -> Threads:
        with self._lock:
            if name not in self._threads:
                self._threads[name] = Threads(name)
            return self._threads[name]

    def spawner(self, part: str) -> Spawn:
        """What the part named ``part`` starts its threads with (it may be added later):
        they are joined once that part has stopped."""
        return self._threads_of(part).spawn

    def thread(self, name: str, target: Callable[[], object]) -> threading.Thread:
        """Start a thread owned by the part being started (joined when that part stops;
        outside a start: by the last part started)."""
        with self._lock:
            owner = self._current or (self._running[-1] if self._running else None)
        threads = owner.threads if owner is not None else self._threads_of("supervisor")
        return threads.spawn(name, target)

    def start(self) -> None:
        """Start every part in order; if one fails, stop those started, then raise."""
        if not self._running:
            self._before = {t for t in threading.enumerate() if not t.daemon}
        for part in self._parts[len(self._running):]:
            self._current = part
            try:
                part.start()
            except BaseException:
                self._current = None
                self.stop()
                raise
            self._current = None
            self._running.append(part)

    @property
    def running(self) -> list[str]:
        return [part.name for part in self._running]

    def stop(self) -> None:
        """Stop the parts in reverse order, each joined before the next is stopped; then
        join what was started late (by a part already stopped, or by no part)."""
        stuck: list[threading.Thread] = []
        while self._running:
            part = self._running.pop()
            try:
                part.stop()
            except Exception:
                self.log.exception("stopping a part failed", part=part.name)
            stuck += self._join(part.threads, stuck)
        with self._lock:
            late = list(self._threads.values())
        for threads in reversed(late):
            stuck += self._join(threads, stuck)
        self.left = [t.name for t in stuck if t.is_alive()] + [  # and any that would keep the process up
            t.name for t in threading.enumerate()
            if not t.daemon and t is not threading.main_thread() and t not in self._before]

    def _join(self, threads: Threads, stuck: list[threading.Thread]) -> list[threading.Thread]:
        left = threads.join(JOIN_TIMEOUT, skip=stuck)
        for thread in left:
            self.log.warning("a thread did not stop in time", part=threads.owner, thread=thread.name)
        return left
