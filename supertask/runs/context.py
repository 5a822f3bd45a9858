"""What every run is handed: the store, the settings, the follower and finisher, the
runs in flight. No globals: the scheduler makes one :class:`RunContext`, a one-shot
``supertask run -- cmd:...`` its own."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from supertask.model import StopCause
from supertask.runs import notify
from supertask.settings import Settings

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:  # the one-shot path records through a LiteStore, without SQLAlchemy
    from supertask.launchers.follow import Follower
    from supertask.runs.lifecycle import Finisher
    from supertask.runs.unwritten import Unwritten
    from supertask.store.base import RunStore

#: How many of a run's last output lines its row keeps (``log_tail``).
TAIL_LINES = 20

#: (run, stream, line) -> None: where a run's output goes besides its log file.
Relay = Callable[["ActiveRun", str, str], None]


@dataclass
class ActiveRun:
    """A run in flight, as the scheduler (and the control endpoint) sees it."""

    run_id: int
    namespace: str
    job: str
    attempt: int
    started: float  # time.time() when its (first) child started
    pid: int | None = None
    kill: threading.Event = field(default_factory=threading.Event)
    log_path: Path | None = None
    stopped_by: StopCause | None = None  # who set ``kill``: jobs kill, or a shutdown

    def end(self, cause: StopCause) -> None:
        """Ask the run to end (its process group: TERM, then KILL), saying who asks."""
        self.stopped_by = self.stopped_by or cause
        self.kill.set()


@dataclass
class RunContext:
    """Everything a run needs, passed in: no globals."""

    store: RunStore
    settings: Settings
    relay: Relay | None = None
    relay_capped: bool = True  # relaying stops at log_max (the foreground one-shot relays all)
    shutdown: threading.Event = field(default_factory=threading.Event)
    active: dict[int, ActiveRun] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # called with each finished attempt's facts (metrics and the like)
    observers: list[Callable[[dict[str, object]], None]] = field(default_factory=list)
    # the global cap (--max-concurrent): each attempt holds a slot while it runs
    slots: threading.BoundedSemaphore | None = None
    # where notifications queue up (the scheduler's); None: sent there and then (one-shot)
    outbox: notify.Outbox | None = None
    # fires catch_up: latest folded into a later one, by (namespace, job), under ``lock``
    coalesced: Counter[tuple[str, str]] = field(default_factory=Counter)
    # follows every child to its end (the scheduler's runs in its own thread; None: a
    # follower of the run's own, in the run's thread: lifecycle.children)
    follower: Follower | None = None
    # writes the ends of runs down in batches, in its own thread (None: each run's own)
    finisher: Finisher | None = None
    # run rows the store did not take yet (runs.unwritten.pending makes it when first needed)
    unwritten: Unwritten | None = None
    # namespace -> why its fires are held while the store is away (other hosts serve it),
    # or None: fire from memory (supertask.cluster.heartbeat.Heartbeat.hold)
    hold: Callable[[str], str | None] | None = None
    # (namespace, job, reason, attempt) -> what the claim of that fire is checked against in
    # the store when other schedulers share it (supertask.store.guard), or None: nothing
    guard: Callable[..., dict[str, object] | None] | None = None

    def active_for(self, namespace: str, job: str) -> list[ActiveRun]:
        with self.lock:
            return [r for r in self.active.values() if r.namespace == namespace and r.job == job]
