"""The one owner of a scheduler's threads and components.

A service is a stack of parts (the notification outbox, the finisher that writes
runs' ends, the follower of their children, the pool of run threads, the schedule
state's write-behind, the APScheduler core, then the control endpoint, the timetable
watcher, metrics, the PID 1 reaper). The supervisor starts them in the order they
were added and stops them in reverse, each stop waiting until its part is done and
its threads joined: what a part still has queued (rows to write, notifications) is
handed down to parts that are still running, so a stop drops no queued write.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from supertask.log import get_logger

#: How long a stop waits for each thread of a part once the part was told to stop.
JOIN_TIMEOUT = 10.0


@dataclass
class Part:
    name: str
    start: Callable[[], object]
    stop: Callable[[], object]
    threads: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    def __init__(self) -> None:
        self._parts: list[Part] = []
        self._running: list[Part] = []
        self._current: Part | None = None
        self._lock = threading.Lock()
        self.log = get_logger("supertask.scheduler.supervisor")

    def add(self, name: str, start: Callable[[], object] = lambda: None,
            stop: Callable[[], object] = lambda: None) -> None:
        """A part, started after the ones added before it and stopped before them."""
        self._parts.append(Part(name, start, stop))

    def thread(self, name: str, target: Callable[[], object]) -> threading.Thread:
        """Start a thread owned by the part being started (joined when that part stops;
        outside a start: by the last part started)."""
        thread = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            owner = self._current or (self._running[-1] if self._running else None)
            if owner is not None:
                owner.threads.append(thread)
        thread.start()
        return thread

    def start(self) -> None:
        """Start every part in order; if one fails, stop those started, then raise."""
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
        """Stop the parts in reverse order, each joined before the next is stopped."""
        while self._running:
            part = self._running.pop()
            try:
                part.stop()
            except Exception:
                self.log.exception("stopping a part failed", part=part.name)
            for thread in part.threads:
                if thread is not threading.current_thread():
                    thread.join(JOIN_TIMEOUT)
                    if thread.is_alive():
                        self.log.warning("a thread did not stop in time", part=part.name, thread=thread.name)
