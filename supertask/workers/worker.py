"""``supertask worker``: one process that takes queued runs it fits and runs them.

Its threads (one :class:`~supertask.threads.Threads`): the **claim loop** (this one:
while it serves and has free slots, :func:`~supertask.workers.claim.take`, again when a
run is announced, when one of its attempts ends and frees a slot (:mod:`.wake`), and
every :data:`POLL` seconds),
the **heartbeat** (every ``--heartbeat``: its row with labels, slots, runs in flight and
telemetry; its attempts' leases renewed in the same transaction; what an operator
``wanted`` applied; dead workers' attempts looked for: :mod:`.lost`), the **shipper**
(the attempts' new output into the store, twice a second: :mod:`.chunks`), the
**watchdog** (touches no database: self-fencing, below), the follower of the children
and one thread per attempt (:mod:`.attempt`).

**Self-fencing.** An attempt's lease (``lease_until``) is renewed at each heartbeat. A
worker that has not renewed its leases for :func:`fence_after` seconds (cut off from the
store, the database away) ends its children itself, TERM then KILL within the job's
``kill_grace`` (capped at half the lease for runs on workers), so none runs on past its
lease while another worker runs its retry. An attempt a heartbeat finds is no longer
this worker's (declared lost meanwhile) is ended at once. Their ends, written when the
store answers again, are rejected where the attempt was declared lost.

**Wanted.** ``drain`` takes no more runs (``draining``) and lets those in flight finish;
``pause`` takes no more (``paused``); ``serve`` takes runs again. SIGTERM or SIGINT:
drain, then exit once the runs in flight have ended; a second one ends them (TERM,
``kill_grace``, KILL) and exits.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from supertask import __version__
from supertask.launchers.follow import Follower
from supertask.log import get_logger
from supertask.model import RunStatus, StopCause
from supertask.threads import Threads
from supertask.workers import attempt, chunks, lost, rows
from supertask.workers.attempt import Attempt
from supertask.workers.claim import take
from supertask.workers.labels import text
from supertask.workers.rows import WorkerState

#: Seconds between two looks for queued runs while the worker has free slots.
POLL = 0.25
#: Seconds between two shipments of output.
SHIP_EVERY = 0.5


@dataclass(frozen=True)
class WorkerOptions:
    name: str
    labels: dict[str, str]
    slots: int
    lease: float
    heartbeat: float
    host: str


def fence_after(lease: float, heartbeat: float) -> float:
    """How long a worker may go without renewing its leases before it ends its children:
    half the lease (its children's ``kill_grace`` is capped at the other half), at least
    one heartbeat and a half."""
    return max(lease / 2, 1.5 * heartbeat)


class Worker:
    """One worker process (see the module's docstring)."""

    def __init__(self, options: WorkerOptions, store: Any, settings: Any):
        self.options, self.store, self.settings = options, store, settings
        self.name, self.lease, self.heartbeat = options.name, options.lease, options.heartbeat
        self.threads = Threads(f"worker {options.name}")
        self.follower = Follower(self.threads.spawn)
        self.attempts: dict[int, Attempt] = {}
        self.lock = threading.Lock()
        self.state = WorkerState.SERVING
        self.exiting = threading.Event()  # SIGTERM: drain, then exit
        self.stopped = threading.Event()  # the loops end
        self.signals = 0
        self.renewed = time.monotonic()  # when the leases were last renewed (this host's clock)
        self.fenced = False
        self.log = get_logger("supertask.worker")
        from supertask.workers.wake import Wakeup

        self.wake = Wakeup(store.engine)  # the claim loop waits on it; an attempt's end pokes it
        from supertask.runs.notify import Outbox

        self.outbox = Outbox(self.threads.spawn)  # the notifications of attempts this worker declares lost
        self.after_lost = lost.notifier(self.outbox, store, settings)

    # -- the process ------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until told to stop; the exit code."""
        problem = rows.register(self.store.engine, name=self.name, host=self.options.host, pid=_pid(),
                                version=__version__, labels=self.options.labels, slots=self.options.slots,
                                lease=self.lease)
        if problem is not None:
            from supertask.errors import UsageError

            raise UsageError(problem)
        self.log.info("worker started", worker=self.name, labels=text(self.options.labels), slots=self.options.slots,
                      lease=self.lease, heartbeat=self.heartbeat, host=self.options.host)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._signal)
        self.follower.start()
        from supertask.workers.telemetry import Telemetry

        self.telemetry = Telemetry()
        taken = lost.take_back(self.store.engine, self.name, self.options.host, self.store.url, self.after_lost)
        if taken:
            self.log.warning("runs of this worker's previous process lost", worker=self.name, runs=taken)
        lost.look(self.store.engine, f"worker {self.name}", self.after_lost)
        for name, loop in (("supertask-worker-beat", self._beat_loop), ("supertask-worker-ship", self._ship_loop),
                           ("supertask-worker-watchdog", self._watchdog)):
            self.threads.spawn(name, loop)
        try:
            self._claim_loop()
        finally:
            self.stopped.set()
            self.follower.close(30)
            self.outbox.close(15)
            self.threads.join(self.heartbeat + 15)
            try:
                rows.stop(self.store.engine, self.name)
            except Exception as exc:
                self.log.warning("worker row not marked stopped", error=str(exc))
            self.log.info("worker stopped", worker=self.name)
        return 0

    def _signal(self, signum: int, _frame: Any) -> None:
        self.signals += 1
        if self.signals == 1:
            self.log.info("worker draining", worker=self.name, signal=signal.Signals(signum).name,
                          runs=len(self.attempts), note="takes no more runs; exits once those in flight have ended")
            self.exiting.set()
            return
        self.log.warning("worker stopping now", worker=self.name, runs=len(self.attempts))
        for att in self._in_flight():
            att.active.end(StopCause.SHUTDOWN)

    def _in_flight(self) -> list[Attempt]:
        with self.lock:
            return [a for a in self.attempts.values() if not a.done]

    @property
    def recorded_state(self) -> str:
        return WorkerState.DRAINING if self.exiting.is_set() else self.state

    # -- claims -------------------------------------------------------------------------------

    def _claim_loop(self) -> None:
        """Claim while there are free slots; between claims, wait for a run to be announced
        (:mod:`.wake`; when it is due, if that is a moment ahead), an attempt of this worker
        to end (a slot freed: :meth:`freed`), or :data:`POLL` seconds."""
        wake, due = self.wake, None
        try:
            while True:
                if self.exiting.is_set():
                    if not self._in_flight():
                        return
                elif self.state == WorkerState.SERVING and not self.fenced:
                    free = self.options.slots - len(self._in_flight())
                    if free > 0:
                        try:
                            if self._claim(free):
                                continue  # more may be waiting
                        except Exception as exc:
                            self.log.info("claim failed", worker=self.name, error=str(exc))
                if due is not None and due > time.time():  # announced, due a moment from now
                    time.sleep(min(POLL, due - time.time()))
                    due = None
                    continue
                due = wake.wait(POLL)
        finally:
            wake.close(pipe=True)

    def freed(self) -> None:
        """An attempt has ended (its row written, ``done``): its slot is free, claim now."""
        self.wake.poke()

    def _claim(self, free: int) -> int:
        with self.store.engine.begin() as conn:
            taken = take(conn, self.name, self.options.labels, free, lease=self.lease, host=self.options.host)
        for row in taken:
            self._start(row)
        return len(taken)

    def _start(self, row: dict[str, Any]) -> None:
        try:
            job = self.store.get_job(row["namespace"], row["job"]).job
        except Exception:
            self.log.warning("run skipped: its job is gone", job=row["job"], namespace=row["namespace"], run=row["id"])
            rows.end(self.store.engine, self.name, row["id"], {"status": RunStatus.SKIPPED.value,
                                                               "message": "the job is no longer in the store"})
            return
        job = dataclasses.replace(job, kill_grace=min(job.kill_grace, self.lease / 2))
        att = Attempt.of(row, job)
        with self.lock:
            self.attempts[att.run_id] = att
        self.threads.spawn(f"supertask-worker-run-{att.run_id}", self._run, att)

    def _run(self, att: Attempt) -> None:
        try:
            attempt.run(self, att)
        finally:
            ended_here, att.done = not att.done, True
            with self.lock:
                self.attempts.pop(att.run_id, None)
            if ended_here:  # else attempt.finish said so as soon as the end was written
                self.freed()

    # -- heartbeat, leases, fencing ----------------------------------------------------------

    def _beat_loop(self) -> None:
        while not self.stopped.wait(self.heartbeat):
            try:
                self.beat()
            except Exception as exc:
                self.log.warning("heartbeat not written", worker=self.name, error=str(exc),
                                 silent=round(time.monotonic() - self.renewed, 1))

    def beat(self) -> None:
        """One heartbeat: the row, the leases, what was wanted; then the lost runs."""
        held = [a.run_id for a in self._in_flight() if a.lost is None]
        since = time.monotonic()
        before, wanted, renewed = rows.beat(self.store.engine, self.name, state=self.recorded_state,
                                            running=len(self._in_flight()), telemetry=self.telemetry.read(),
                                            held=held, lease=self.lease)
        self.renewed = since
        if self.fenced:
            self.log.info("leases renewed again", worker=self.name)
            self.fenced = False
        if before == WorkerState.LOST:
            self.log.error("this worker was declared dead", worker=self.name,
                           note="it missed its lease; its attempts were declared lost and their results are rejected")
        for run_id in {-i for i in renewed if i < 0}:  # jobs kill
            with self.lock:
                att = self.attempts.get(run_id)
            if att is not None and not att.done and att.active.stopped_by is None:
                self.log.info("run kill requested", worker=self.name, run=run_id, job=att.job.name)
                att.active.end(StopCause.KILL)
        renewed = {abs(i) for i in renewed}
        for run_id in set(held) - renewed:
            with self.lock:
                att = self.attempts.get(run_id)
            if att is not None and not att.done:
                self.log.warning("attempt lost: ending it", worker=self.name, run=run_id, job=att.job.name)
                att.fence("the attempt was declared lost while it ran")
        if self._apply(wanted):  # the row says so now, not a heartbeat later
            rows.set_state(self.store.engine, self.name, self.recorded_state)
        lost.look(self.store.engine, f"worker {self.name}", self.after_lost)

    def _apply(self, wanted: str | None) -> bool:
        """Take on the state an operator wants; True when it changed."""
        states = {"drain": WorkerState.DRAINING, "pause": WorkerState.PAUSED, "serve": WorkerState.SERVING}
        if wanted not in states or states[wanted] == self.state:
            return False
        self.state = states[wanted]
        self.log.info("worker state changed", worker=self.name, state=self.state, wanted=wanted)
        self.wake.poke()  # resumed: claim at once
        return True

    def _watchdog(self) -> None:
        """Self-fencing (the module's docstring); touches no database."""
        limit = fence_after(self.lease, self.heartbeat)
        while not self.stopped.wait(0.2):
            silent = time.monotonic() - self.renewed
            if silent <= limit or self.fenced:
                continue
            self.fenced = True
            victims = [a for a in self._in_flight() if a.lost is None]
            self.log.error("lease not renewed: ending this worker's runs", worker=self.name, silent=round(silent, 1),
                           lease=self.lease, runs=[a.run_id for a in victims])
            for att in victims:
                att.fence(f"its worker {self.name} could not renew the lease for {silent:.0f}s (lease {self.lease:g}s)")

    # -- output -------------------------------------------------------------------------------

    def _ship_loop(self) -> None:
        while not self.stopped.wait(SHIP_EVERY):
            self.ship([a.shipment for a in self._in_flight()])

    def ship(self, shipments: list[chunks.Shipment]) -> bool:
        return chunks.ship(self.store.engine, shipments)


def _pid() -> int:
    import os

    return os.getpid()

