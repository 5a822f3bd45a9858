"""A scheduler's host row and its heartbeat, and the takeover of dead hosts' runs.

:class:`Heartbeat` is a part of the service (its supervisor starts it first and stops it
last, so the row says ``serving`` for as long as a run of this scheduler may still end):

- at the start, before anything fires, :meth:`Heartbeat.register` adds the instance's
  row to the hosts table (host, pid, boot id, state folder, version, namespaces, lease);
- every ``--heartbeat`` seconds, a thread writes the heartbeat (the database's clock,
  this host's clock, the load, the runs in flight), reads the other hosts' rows, and,
  once the scheduler fires, takes over the runs of the served namespaces whose
  scheduler missed its lease (:func:`supertask.runs.recovery.take_over`) and retries
  them by their jobs' policies (:func:`supertask.runs.recovery.retry_lost_runs`), the
  orphans' ending and the retries in a thread of their own (the beats go on);
- a clean stop marks the row ``stopped``;
- when it cannot write its heartbeat for longer than its lease (cut off from the
  store), or finds it was declared dead (it was frozen), it logs ``lease lost`` and,
  with ``--lease-lost end``, ends its runs in flight (default ``keep``).

While the store is away it remembers who was up at its last heartbeat: the fires of a
namespace other live hosts serve are held (:meth:`Heartbeat.hold`), not run from memory.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from supertask import __version__
from supertask.cluster import leases
from supertask.log import Limited, get_logger
from supertask.store.cluster import HostRow, HostState

UTC = timezone.utc
#: Host rows stopped or lost longer ago than this (seconds) are deleted (when they hold no run).
FORGET_AFTER = 7 * 86400.0
#: How often (seconds) the rows to forget are looked for.
FORGET_EVERY = 3600.0


def new_instance() -> str:
    """A scheduler instance's id: unique per process start."""
    return uuid.uuid4().hex


def me_for(settings: Any, instance: str) -> leases.Me:
    from supertask.scheduler.reboot import boot_id

    return leases.Me(instance=instance, host=settings.host, home=str(settings.home), boot=boot_id(),
                     pid=os.getpid())


class Heartbeat:
    """The host row of one scheduler instance (see the module's docstring)."""

    def __init__(self, service: Any):
        self.service = service
        self.store = service.store
        self.me: leases.Me = service.me
        self.interval = service.settings.heartbeat
        self.lease = service.settings.lease
        self.started = datetime.fromtimestamp(service.started, UTC)
        #: the hosts table at the last heartbeat, and the database's clock then
        self.peers: list[HostRow] = []
        self.seen: datetime | None = None
        self.taking_over = False  # set once the scheduler fires (its executor can retry)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._registered = False
        self._beating_since: datetime | None = None  # the first heartbeat of the current unbroken series
        self._forgot = 0.0
        self._last_ok = time.monotonic()  # when a heartbeat was last written (this host's clock)
        self._fenced = False  # the lease was lost and acted on (--lease-lost), until the next heartbeat
        self._failed = Limited("supertask.cluster")
        self.log = get_logger("supertask.cluster")

    def register(self) -> None:
        """Add this instance's row (before anything is fired); a store that refuses is
        tried again at each heartbeat."""
        try:
            self.seen = self.store.register_host(
                instance=self.me.instance, host=self.me.host, pid=self.me.pid, boot=self.me.boot, home=self.me.home,
                version=__version__, namespaces=self.service.namespaces, lease=self.lease, started=self.started)
        except Exception as exc:
            if self.store.health.up:
                self._failed.event("host row not written", error=str(exc))
            return
        self._registered = True
        self.log.info("host registered", instance=self.me.instance, host=self.me.host, pid=self.me.pid,
                      heartbeat=self.interval, lease=self.lease)

    def start(self) -> None:
        if not self._registered:
            self.register()
        self._thread = self.service.supervisor.thread("supertask-heartbeat", self._loop)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:  # a heartbeat under way must not follow the stop's row
            self._thread.join(self.interval + 30)
        try:
            self.store.stop_host(self.me.instance)
        except Exception as exc:
            self.log.warning("host row not marked stopped", error=str(exc))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:  # a bug here must not end the heartbeat
                self.log.exception("heartbeat failed")

    def tick(self) -> None:
        """One heartbeat, then the takeover of dead hosts' runs."""
        if not self._registered:
            self.register()
            if not self._registered:
                return
        try:
            now, state = self.store.beat(self.me.instance, runs=len(self.service.ctx.active),
                                         namespaces=self.service.namespaces, lease=self.lease)
            peers = self.store.hosts(within=self.lease * 3)
        except Exception as exc:
            if self.store.health.up:  # else the store's own events say it (store unreachable)
                self._failed.event("heartbeat not written", error=str(exc))
            self._beating_since = None
            silent = time.monotonic() - self._last_ok
            if silent > self.lease:
                self._lease_lost(f"no heartbeat written for {silent:.0f}s (lease {self.lease:g}s)")
            return
        self._last_ok = time.monotonic()
        if state is None:
            self._registered = False  # the row was deleted: added again at the next beat
        elif state == HostState.LOST:
            self.log.error("this scheduler was declared dead", instance=self.me.instance,
                           note="it missed its lease; another host took its runs in flight over and their ends "
                                "from here are rejected; serving again")
            self._lease_lost("declared dead by another host")
        self._fenced = False
        if self._beating_since is None or self.seen is None or (now - self.seen).total_seconds() > self.lease:
            self._beating_since = now  # a new unbroken series of heartbeats (after a gap: frozen, cut off)
        self.peers, self.seen = peers, now
        if self.taking_over and not self.service.stop_request.event.is_set():
            self._take_over(leases.may_take_over(self._beating_since, now, self.lease))
            if self.store.dialect == "postgresql":  # workers' lost attempts, queued runs' reasons
                from supertask.workers.lost import look, notifier

                outbox = self.service.ctx.outbox  # a lost attempt not retried: its job's notifications
                after = notifier(outbox, self.service.store, self.service.settings) if outbox else None
                look(self.store.engine, f"host {self.me.host} (instance {leases.short(self.me.instance)})", after)
        if time.monotonic() - self._forgot > FORGET_EVERY:
            self._forgot = time.monotonic()
            self.store.forget_hosts(FORGET_AFTER)

    def _lease_lost(self, why: str) -> None:
        """This scheduler has gone longer than its lease without a heartbeat (or was declared
        dead): the other hosts may take its runs in flight over. ``--lease-lost end`` ends
        them (as ``jobs kill`` would), so that a run does not go on here while its retry
        runs elsewhere; ``keep`` (the default) lets them run on, their ends refused if
        they were taken over. Once per loss."""
        if self._fenced:
            return
        self._fenced = True
        from supertask.model import StopCause

        with self.service.ctx.lock:
            active = list(self.service.ctx.active.values())
        end = self.service.settings.lease_lost == "end"
        self.log.warning("lease lost", instance=self.me.instance, reason=why, runs=len(active),
                         action="ending them" if end else "keeping them (--lease-lost keep)")
        if end:
            for run in active:
                run.end(StopCause.LEASE_LOST)

    def _take_over(self, by_lease: bool) -> None:
        from supertask.runs.recovery import take_over

        take_over(self.service, by_lease=by_lease, spawn=self._spawn)

    def _spawn(self, work: Any) -> None:
        """Ending a takeover's orphans (a kill_grace each) and retrying them, in a thread
        of its own: the heartbeat goes on meanwhile, so this host's own lease holds."""
        self.service.supervisor.thread("supertask-takeover", work)

    def hold(self, namespace: str) -> str | None:
        """While the store is away: why this namespace's fires are held (other hosts were
        up serving it at the last heartbeat), or None (fire from memory, as cron would)."""
        if self.seen is None:
            return None
        peers = leases.peers_serving(self.peers, namespace, self.me.instance, self.seen)
        if not peers:
            return None
        names = ", ".join(sorted({p.host for p in peers}))
        return (f"missed: the store was unreachable and other hosts serve this namespace ({names}); "
                "held rather than run twice")
