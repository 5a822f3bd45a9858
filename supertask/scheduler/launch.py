"""A round of fires started together: their rows claimed in one transaction, their
children started one after another at their fire's time, then each carried to its
end by the follower (:mod:`supertask.runs.lifecycle`).

The scheduler (:mod:`supertask.scheduler.rounds`) decides a round's fires a little
ahead of time; :class:`~supertask.scheduler.executor.RunExecutor` keeps those that can
start with the round (a ``run:`` command, no jitter, no global cap) and hands them to
:func:`launch`. A round of 100 fires costs one commit, not 100 commits contending for
the store, and the first child starts first (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import os
import subprocess
import threading
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from supertask.log import Limited
from supertask.model import Job, Overlap, Reason, RunStatus
from supertask.runs import lifecycle, runner, unwritten
from supertask.runs.lifecycle import prepare
from supertask.runs.runner import execute
from supertask.settings import CLAIM_DEADLINE

if TYPE_CHECKING:
    from supertask.scheduler.executor import RunExecutor

UTC = timezone.utc
#: a store that is away fails every round's claim: said at most once a minute
CLAIMS_FAILED = Limited("supertask.scheduler.service")

#: A fire of a round: (key, namespace, job, fire time, reason, the catch-up fires after
#: it, the child of the job's run in flight that must have exited by the fire's start).
Fire = tuple[str, str, Job, datetime, Reason, list[tuple[datetime, Reason]] | None,
             "subprocess.Popen[bytes] | None"]

SKIPPED = {
    Overlap.SKIP: "the previous run was still running (overlap: skip)",
    Overlap.QUEUE: "a run was in flight and another already waiting (overlap: queue)",
    Overlap.ALLOW: "max_concurrent {max_concurrent} runs were in flight (overlap: allow)",
}


def tracked(definition: Job, then: list[tuple[datetime, Reason]] | None) -> bool:
    """Whether a fire's followed child is what a later fire of the job waits for
    (``RunExecutor._children``): nothing follows its run, no retry, no queued fires."""
    return not then and not definition.retries


def exited(child: subprocess.Popen[bytes]) -> bool:
    """Whether ``child`` has exited, without reaping it (its follower does)."""
    if child.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped meanwhile
        return True


def launch(ex: RunExecutor, fires: list[Fire]) -> float:
    """Start ``fires`` (see :meth:`RunExecutor.launch_round`); returns when the round was
    ready to start its first child (``time.monotonic()``)."""
    settings = ex.ctx.settings
    try:
        ids = claim_within(ex, [
            dict(namespace=ns, job=definition.name, scheduled=fire, attempt=1, reason=reason.value,
                 host=settings.host, log_dir=settings.log_dir, guard=ex.guard_for(ns, definition, reason))
            for _, ns, definition, fire, reason, _, _ in fires
        ])
    except TimeoutError as exc:  # a cut network answers nothing: the fires run from memory, now
        from_memory(ex, fires, str(exc))
        return time.monotonic()
    except Exception as exc:  # the store is away: each fire meets it alone (runs.lifecycle.begin)
        CLAIMS_FAILED.event("claiming the round's fires failed; claiming them one by one", error=str(exc))
        for key, ns, definition, fire, reason, then, after in fires:
            if after is not None and not exited(after):
                ex._release(key)
                ex._warn_skipped(ns, definition, fire)
                ex._skip(ns, definition, fire, SKIPPED[Overlap.SKIP])
                if then:  # catch_up: all's fires after it: each decided in turn
                    ex.submit(ns, definition, then[0][0], then[0][1], then=then[1:])
                continue
            ex._submit_run(key, ns, definition, fire, reason, None, then, None)
        return time.monotonic()
    ready = []
    for (key, ns, definition, fire, reason, then, after), run_id in zip(fires, ids, strict=True):
        if run_id is None:
            ex.log.info("fire already claimed", job=definition.name, namespace=ns, scheduled=fire.isoformat())
            ex._release(key)
            continue
        if not isinstance(run_id, int):  # refused by what other schedulers run (store.guard)
            refused(ex, key, ns, definition, fire, reason, then, run_id)
            continue
        ready.append((key, ns, definition, fire, reason, run_id, then,
                      prepare(ex.ctx, ns, definition, fire, 1, run_id), after))
    prepared = time.monotonic()
    ahead = clock_ahead(ex.ctx.store)
    skipped = []
    for item in ready:
        fire, begun, after = item[3], item[7], item[8]
        early = fire.timestamp() - time.time() + ahead  # the round is decided ahead (rounds.LEAD)
        if early > 0:
            time.sleep(early)
        if after is not None and not exited(after) and ex._born.get(after.pid, 0.0) <= fire.timestamp():
            skipped.append(item)  # the job's run in flight still runs, as it did at the fire's time
            continue
        try:
            begun.start()
        except Exception:  # the pool thread starts it the usual way, and meets what failed
            begun.command, begun.started = None, None
    if skipped:
        skip_claimed(ex, skipped)
        gone = {id(item) for item in skipped}
        ready = [item for item in ready if id(item) not in gone]
    # handed on only now: a thread woken per child would take turns with the starts
    for key, ns, definition, fire, reason, run_id, then, begun, _ in ready:
        if ex.ctx.follower is not None and isinstance(begun.started, subprocess.Popen):
            if tracked(definition, then):
                with ex._guard:
                    ex._children[key] = begun.started
                    ex._born[begun.started.pid] = begun.active.started
                    ex._following[key] += 1
            done = functools.partial(followed, ex, key, ns, definition, fire, then)
            on_exit = functools.partial(child_exited, ex, key, definition, then, begun.started)
            try:
                lifecycle.follow(ex.ctx, ns, definition, fire, reason, begun, done, on_exit)
                continue
            except RuntimeError:  # the follower is stopping: a thread of its own follows it
                pass
        ex._submit_run(key, ns, definition, fire, reason, run_id, then, begun)
    return prepared


def claim_within(ex: RunExecutor, claims: list[dict[str, Any]], deadline: float = CLAIM_DEADLINE) -> list[Any]:
    """The round's claim (:meth:`Store.claim_runs`), waited for at most ``deadline``
    seconds on a store across a network that a scheduler watches (a cut one answers
    nothing until TCP's timeouts, 10-15 s, while the round's fires are due), that no
    other live host shares (those hold their fires: none has a deadline). Past it:
    TimeoutError, and the store is suspect (:meth:`StoreHealth.suspect`) until its probe
    says; the claim left waiting ends as it may, and starts nothing (a row it commits
    late is this instance's, and the fire's kept row takes it over: runs.unwritten.write)."""
    store = ex.ctx.store
    health = getattr(store, "health", None)
    if (health is None or not health.events or not health.up or health.suspected is not None
            or getattr(store, "dialect", "sqlite") == "sqlite"
            or (ex.ctx.hold is not None and any(ex.ctx.hold(ns) for ns in {c["namespace"] for c in claims}))):
        # other live hosts serve the namespace: no deadline, a claim that commits late
        # must not leave a fire this host held and the others found claimed
        return list(store.claim_runs(claims))  # a store away says so at once (StoreHealth.check)
    answer: list[Any] = []
    done = threading.Event()

    def claim() -> None:
        try:
            answer.append(store.claim_runs(claims))
        except BaseException as exc:
            answer.append(exc)
        finally:
            done.set()

    ex.spawn("supertask-claim", claim)
    if not done.wait(deadline):
        error = f"the round's claim had no answer within {deadline:g}s"
        health.suspect(error)
        raise TimeoutError(error)
    if isinstance(answer[0], BaseException):
        raise answer[0]
    return list(answer[0])


def from_memory(ex: RunExecutor, fires: list[Fire], error: str) -> None:
    """A round whose claim had no answer in time: each fire runs from memory at its time,
    under a provisional id, as cron would (or is held, where other hosts share the
    store: :func:`~supertask.runs.lifecycle.hold`); every row is kept and written when
    the store answers (:mod:`supertask.runs.unwritten`). Nothing here asks the store."""
    ctx, settings = ex.ctx, ex.ctx.settings
    owner = getattr(ctx.store, "instance", None)
    CLAIMS_FAILED.event("the round's claim had no answer: its fires run from memory", error=error, fires=len(fires))
    for key, ns, definition, fire, reason, then, after in fires:
        claim: dict[str, Any] = dict(namespace=ns, job=definition.name, scheduled=fire, attempt=1,
                                     reason=reason.value, host=settings.host, log_dir=settings.log_dir)
        skip = after is not None and not exited(after)
        if skip or (ctx.hold is not None and lifecycle.hold(ctx, claim, ctx.hold(ns))):
            ex._release(key)
            if skip:
                ex._warn_skipped(ns, definition, fire)
                unwritten.keep(ctx, [{"id": None, "values": {"finished": datetime.now(UTC)}, "owner": owner,
                                      "claim": {**claim, "status": RunStatus.SKIPPED.value,
                                                "message": SKIPPED[Overlap.SKIP], "log_dir": None}}])
            if then:  # catch_up: all's fires after it: each decided in turn
                ex.submit(ns, definition, then[0][0], then[0][1], then=then[1:])
            continue
        begun = lifecycle.register(ctx, ns, definition, 1, unwritten.provisional_id())
        begun.claim = claim
        ex._submit_run(key, ns, definition, fire, reason, None, then, begun)


def clock_ahead(store: Any) -> float:
    """How far this host's clock is ahead of the database's (seconds, as the store's last
    guarded claim saw it; 0 within 50 ms): a fire starts that much later by this clock,
    so never before its time by the database's."""
    skew = getattr(store, "skew", 0.0)
    return skew if skew > 0.05 else 0.0


def db_now(store: Any) -> datetime:
    """Now by the database's clock, as far as this host knows it (:func:`clock_ahead`)."""
    return datetime.fromtimestamp(time.time() - clock_ahead(store), UTC)


def refused(ex: RunExecutor, key: str, namespace: str, definition: Job, fire: datetime, reason: Reason,
            then: list[tuple[datetime, Reason]] | None, refusal: Any) -> None:
    """A fire the store refused (:mod:`supertask.store.guard`): skipped (its row says
    why); queued behind a run on another host (a pool thread waits for its end, then
    runs it); or, not yet due by the database's clock, decided again once it is."""
    if refusal.queue:
        from supertask.runs.claim import wait_elsewhere

        ex.log.info("run queued", job=definition.name, namespace=namespace, run=refusal.queue, reason=refusal.reason)

        def when_free() -> None:
            if wait_elsewhere(ex.ctx, namespace, definition.name, refusal.queue):
                ex._run(namespace, definition, fire, reason, key, refusal.queue, 1, then)
            else:
                ex._release(key)

        try:
            assert ex._pool is not None
            ex._pool.submit(when_free)
        except RuntimeError:  # stopping: the row is skipped
            wait_elsewhere(ex.ctx, namespace, definition.name, refusal.queue, stopping=True)
            ex._release(key)
        return
    ex._release(key)
    if refusal.wait:
        ex.log.warning("fire waits for the database's clock", job=definition.name, namespace=namespace,
                       scheduled=fire.isoformat(), wait=round(refusal.wait, 3))
        ex._start_later(namespace, definition, fire, reason, then, wait=refusal.wait)
        return
    ex.log.warning("run skipped", job=definition.name, namespace=namespace, scheduled=fire.isoformat(),
                   reason=refusal.reason)


def child_exited(ex: RunExecutor, key: str, definition: Job, then: list[tuple[datetime, Reason]] | None,
                 child: subprocess.Popen[bytes], outcome: runner.Outcome) -> None:
    """A followed run's child has exited (its row is still to be written): when nothing
    follows the run, the job is no longer busy (a fire now is no overlap, however long
    the store takes to write the row down)."""
    if tracked(definition, then):
        with ex._guard:
            ex._born.pop(child.pid, None)
            if ex._children.get(key) is child:
                del ex._children[key]
            ex._following[key] -= 1
            if ex._following[key] <= 0:
                del ex._following[key]
    if not then and not runner.needs_after(definition, outcome):
        ex._release(key)


def followed(ex: RunExecutor, key: str, namespace: str, definition: Job, fire: datetime,
             then: list[tuple[datetime, Reason]] | None, run_id: int, outcome: runner.Outcome) -> None:
    """A followed run is written down: a pool thread carries on with its retries,
    notifications and the fires queued behind it, if it has any."""
    if not then and not runner.needs_after(definition, outcome):
        return  # released when its child exited
    args = (key, namespace, definition, fire, then, run_id, outcome)
    try:
        assert ex._pool is not None
        ex._pool.submit(_carry_on, ex, *args)
    except RuntimeError:  # the pool is shutting down
        ex.spawn("supertask-run-late", _carry_on, ex, *args)


def _carry_on(ex: RunExecutor, key: str, namespace: str, definition: Job, fire: datetime,
              then: list[tuple[datetime, Reason]] | None, run_id: int, outcome: runner.Outcome) -> None:
    try:
        runner.resume(ex.ctx, namespace, definition, fire, 1, (run_id, outcome))
        for fire_time, why in then or []:
            if ex.ctx.shutdown.is_set():
                return
            execute(ex.ctx, namespace, definition, fire_time, why)
    except Exception:
        ex.log.exception("run failed inside supertask", job=definition.name, namespace=namespace)
    finally:
        ex._release(key)


def skip_claimed(ex: RunExecutor, items: list[tuple[Any, ...]]) -> None:
    """Fires claimed with the round whose job's run still ran at their start:
    their rows become ``skipped`` (written by the pool, after the round's starts)."""
    now = datetime.now(UTC)
    rows, later = [], []
    for key, ns, definition, fire, _, run_id, then, _, _ in items:
        with ex.ctx.lock:
            ex.ctx.active.pop(run_id, None)
        ex._release(key)
        ex._warn_skipped(ns, definition, fire)
        rows.append((run_id, dict(status=RunStatus.SKIPPED, started=None, finished=now, log_path=None,
                                  message=SKIPPED[Overlap.SKIP])))
        if then:  # catch_up: all's fires after it: each decided in turn
            later.append((ns, definition, then))
    ex._by_pool(functools.partial(unwritten.update_or_keep, ex.ctx, rows))
    for ns, definition, ((fire, reason), *then) in later:
        ex.submit(ns, definition, fire, reason, then=then)


def skip_unqueued(ex: RunExecutor, namespace: str, definition: Job, fire: datetime, run_id: int | None,
                  message: str) -> None:
    """A fire meant to wait (``overlap: queue``) that will not: its row, claimed as
    ``queued`` or not yet (the store was away), becomes ``skipped`` with ``message``."""
    if run_id is None:
        ex._skip(namespace, definition, fire, message)
    else:
        ex._by_pool(functools.partial(unwritten.update_or_keep, ex.ctx, [(run_id, dict(
            status=RunStatus.SKIPPED, finished=datetime.now(UTC), message=message))]))
