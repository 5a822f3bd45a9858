"""Where every thread of supertask's own is started: :class:`Threads`.

A :class:`Threads` starts named daemon threads for one owner and joins them, newest
first, when the owner stops. In a scheduler the owner is its supervisor
(:mod:`supertask.scheduler.supervisor`), which holds one per part (the follower, the
finisher, the run threads...) and hands each part a :data:`Spawn` of its own, so a
part's threads, short-lived ones too (ending a process group, stopping a container),
are joined when that part has stopped, in the reverse order of the parts' start. A
part made outside a scheduler (a one-shot ``supertask run -- cmd:...``, a test) makes
a :class:`Threads` of its own. Threads that dependencies start are owned by the objects
the parts start and stop (see the supervisor's docstring).

No other module makes a ``threading.Thread``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a one-shot run loads this)
if TYPE_CHECKING:
    from typing import Any

#: ``spawn(name, target, *args)``: start ``target(*args)`` in a daemon thread named
#: ``name``, owned (and joined at the stop) by whoever handed out the function.
Spawn = Callable[..., threading.Thread]


class Threads:
    """The threads of one owner: started by :meth:`spawn`, joined by :meth:`join`."""

    def __init__(self, owner: str):
        self.owner = owner
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def spawn(self, name: str, target: Callable[..., object], *args: Any) -> threading.Thread:
        """Start ``target(*args)`` in a daemon thread named ``name``; threads that have
        ended are forgotten as new ones start."""
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
            thread.start()  # under the lock: a thread in the list has been started
        return thread

    def alive(self) -> list[threading.Thread]:
        """The threads still running (but the caller's own)."""
        with self._lock:
            return [t for t in self._threads if t.is_alive() and t is not threading.current_thread()]

    def join(self, timeout: float | None = None, skip: Collection[threading.Thread] = ()) -> list[threading.Thread]:
        """Join the threads (but those in ``skip``), newest first, within ``timeout``
        seconds in all; return those still running."""
        deadline = None if timeout is None else time.monotonic() + timeout
        waited = [t for t in self.alive() if t not in skip]
        for thread in reversed(waited):
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return [t for t in waited if t.is_alive()]
