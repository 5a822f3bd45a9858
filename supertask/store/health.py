"""Whether the store answers: its health as its last operations and probes saw it.

Every store has a :class:`StoreHealth` (``store.health``). An operation that meets an
unreachable database (refused, reset, timed out) marks it down; one that succeeds marks
it up. A network cut where nothing answers leaves operations waiting rather than
failing, so a scheduler also runs a :class:`HealthWatch`: a probe (``store.ping()``)
every second that must answer within :data:`PROBE_DEADLINE` seconds.

Events (logger ``supertask.store``, once a :class:`HealthWatch` runs: a command that
meets an unreachable store reports its error itself): ``store unreachable`` (error) once when it goes,
``store still unreachable`` at most once a :data:`REPEAT` seconds while it stays away
(:class:`supertask.log.Limited`, with how many failures it left out),
``store reachable again`` (warning, with how long it was away) when it is back.
``supertask status``, ``supertask doctor`` and the ``supertask_store_up`` metric read
:meth:`StoreHealth.snapshot`. Callers that must not wait on a store that is away (a
scheduler recording runs) check :attr:`StoreHealth.up` or catch
:class:`~supertask.errors.StoreUnavailable`.

No SQLAlchemy and no ``typing`` here: the one-shot path loads it.
"""

from __future__ import annotations

import threading
import time

from supertask.log import Limited, get_logger
from supertask.threads import Spawn, Threads

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: Seconds a probe may take before the store counts as unreachable.
PROBE_DEADLINE = 2.0
#: Seconds between probes.
PROBE_INTERVAL = 1.0
#: Seconds between two ``store still unreachable`` events.
REPEAT = 60.0
#: Seconds after the store answers again during which only the probe marks it away again:
#: a statement or a connect begun during the outage may fail late (its timeouts), which
#: says nothing about the store now.
SETTLE = 15.0


class StoreHealth:
    """Up or down, since when, and the last error; thread-safe. ``url`` is shown in
    events (its password already hidden)."""

    def __init__(self, url: str, *, repeat: float = REPEAT):
        self.url = url
        self.repeat = repeat
        self.up = True
        self.events = False  # log the changes (a scheduler's HealthWatch turns it on)
        self.error: str | None = None
        self.since: float | None = None  # epoch seconds when it went away
        #: epoch seconds since an operation waited past its deadline (a round's claim on a cut
        #: network: :data:`supertask.settings.CLAIM_DEADLINE`), until a probe begun after it
        #: answers (cleared) or fails (down); None: no suspicion
        self.suspected: float | None = None
        self.checked: float | None = None  # epoch seconds of the last operation or probe seen
        self._still = Limited("supertask.store", repeat)  # "store still unreachable"
        self._lock = threading.Lock()
        self._back: float | None = None  # time.monotonic() when it last answered again
        self.when_back: list[Callable[[], None]] = []  # called when it answers again (kept rows written)

    def check(self) -> None:
        """While a watched store is away (a scheduler's probe found it so), raise
        :class:`~supertask.errors.StoreUnavailable` at once: the scheduler's writes of run
        rows are kept for later rather than each waiting out a cut network's timeouts,
        which would hold the fires behind them. The probe finds it back."""
        if (not self.up or self.suspected is not None) and self.events:
            from supertask.errors import StoreUnavailable

            raise StoreUnavailable(self.url, self.error or "no answer (the probe is asked)")

    def suspect(self, error: str) -> None:
        """An operation had no answer within its deadline: until the probe says (it answers,
        or it fails and the store is down), :meth:`check` raises as for a store that is away,
        so the scheduler's writes are kept rather than each waiting out a cut network."""
        if self.up and self.suspected is None:
            self.suspected, self.error = time.time(), error
            if self.events:
                _log().warning("store slow to answer: fires run from memory", store=self.url, error=error)

    def ok(self, probe_begun: float | None = None) -> None:
        """An operation or a probe was answered (a probe's: ``probe_begun``, when it began;
        one begun after a suspicion ends it)."""
        self.checked = time.time()
        suspected = self.suspected
        if suspected is not None and probe_begun is not None and probe_begun >= suspected and self.up:
            self.suspected, self.error = None, None
            self._back_hooks()
            return
        if self.up:
            return
        with self._lock:
            if self.up:
                return
            down_for = time.time() - (self.since or time.time())
            self.up, self.error, self.since, self.suspected = True, None, None, None
            self._back = time.monotonic()
        if self.events:
            _log().warning("store reachable again", store=self.url, down_for=round(down_for, 1))
        self._back_hooks()

    def _back_hooks(self) -> None:
        for call in list(self.when_back):
            try:
                call()
            except Exception:
                _log().exception("a store-back hook failed")

    def failed(self, error: BaseException | str, *, probe: bool = False) -> None:
        """An operation or a probe could not reach the store (an operation's failure
        within :data:`SETTLE` seconds of its return is left to the probe to confirm)."""
        text = error if isinstance(error, str) else _short(error)
        now = time.time()
        self.checked = now
        if not probe and self.up and self._back is not None and time.monotonic() - self._back < SETTLE:
            return
        with self._lock:
            first = self.up
            self.up, self.error, self.suspected = False, text, None
            if first:
                self.since = now
            since = self.since or now
        if not self.events:
            return
        if first:
            self._still.said()
            _log().error("store unreachable", store=self.url, error=text,
                         note="runs are recorded when it is back; status and doctor show it")
        else:
            self._still.event("store still unreachable", store=self.url, error=text, down_for=round(now - since, 1))

    def snapshot(self) -> dict[str, Any]:
        """Plain data for status, doctor and metrics."""
        since = self.since
        return {"up": self.up, "error": self.error,
                "since": _iso(since) if since is not None else None,
                "down_for": round(time.time() - since, 1) if since is not None else None}


class HealthWatch:
    """A daemon thread probing ``store.ping()`` every :data:`PROBE_INTERVAL` seconds; a
    probe with no answer within :data:`PROBE_DEADLINE` marks the store down (the probe
    itself is left to finish or fail on its own: the store's timeouts end it; at a stop the
    supervisor waits for it up to its ``JOIN_TIMEOUT``, then names it in ``threads_left``)."""

    def __init__(self, store: Any, *, interval: float = PROBE_INTERVAL, deadline: float = PROBE_DEADLINE,
                 spawn: Spawn | None = None):
        self.store, self.interval, self.deadline = store, interval, deadline
        self.spawn: Spawn = spawn or Threads("store health").spawn  # the scheduler's supervisor's
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, _service: Any = None) -> None:
        """Start probing (a scheduler component: the service starts and stops it)."""
        self.store.health.events = True
        self._thread = self.spawn("supertask-store-health", self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 1)

    def _loop(self) -> None:
        health: StoreHealth = self.store.health
        probe: threading.Thread | None = None
        result: list[BaseException | None] = []
        begun = 0.0
        while not self._stop.wait(self.interval):
            if probe is None or not probe.is_alive():
                result, begun = [], time.time()
                probe = self.spawn("supertask-store-probe", self._probe, result)
            probe.join(self.deadline)
            if probe.is_alive():
                health.failed(f"no answer within {self.deadline:g}s", probe=True)
            elif result and result[0] is not None:
                health.failed(result[0], probe=True)
            else:
                health.ok(begun)

    def _probe(self, result: list[BaseException | None]) -> None:
        try:
            self.store.ping()
            result.append(None)
        except Exception as exc:
            result.append(exc)


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _iso(ts: float) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="seconds")


def _log() -> Any:
    return get_logger("supertask.store")
