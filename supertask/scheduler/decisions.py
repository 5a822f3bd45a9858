"""What becomes of a fire, as pure functions of plain facts and ``now``.

Each rule (misfire and catch-up, overlap, retry, a step's ``if``) takes the facts it
needs as values, ``now`` among them when time matters, and returns a verdict; the
code that acts on it (writes a row, starts a child, waits) lives elsewhere:
:mod:`supertask.scheduler.executor` and :mod:`supertask.runs.runner`. Nothing here
reads the clock or touches the store, so tests/unit/test_decisions.py holds each rule
as a table, one row per line of docs/runs.md's tables. Each function's docstring
states its edge semantics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from supertask.model import CatchUp, Job, Overlap, Reason, RunStatus, StepIf, Word


class Verdict(Word):
    """What a rule says becomes of a fire (or of an attempt, for :func:`retry`)."""

    RUN = "run"  # start it (now, or at its time when decided ahead)
    SKIP = "skip"  # record a ``skipped`` run with the message, start nothing
    QUEUE = "queue"  # record a ``queued`` run; it starts when the run in flight ends
    COALESCE = "coalesce"  # folded into a later fire of the job: no row, tallied
    AT_START = "at-start"  # run, unless the job's newest child still runs at the fire's start
    LATER = "later"  # decided ahead of its time and not a run: decide again at its time
    RETRY = "retry"  # another attempt of the same fire, after ``delay``
    DONE = "done"  # no further attempt: this one was the last


@dataclass(frozen=True)
class Decision:
    """A verdict with what acting on it needs: why (``message``, for a row), how long
    to wait (``delay``, for a retry)."""

    verdict: Verdict
    message: str | None = None
    delay: float | None = None


@dataclass(frozen=True)
class Decided:
    """One fire (or, for missed fires, the last of them) and what becomes of it."""

    fire: datetime
    verdict: Verdict
    reason: Reason = Reason.SCHEDULE
    message: str | None = None
    first: datetime | None = None  # missed fires: the first of them (``fire`` is the last)
    count: int = 1  # how many fires this stands for (missed fires: all of them)


@dataclass(frozen=True)
class Flight:
    """What of one job is in flight when one of its fires is decided."""

    running: int = 0  # runs in flight: running, or waiting between attempts to retry
    queued: bool = False  # a fire already waits behind them (``overlap: queue``)
    #: every run in flight is a child the round's follower carries, each started after
    #: the one before it had exited, and this fire can start with the round: only the
    #: newest child can still run, and whether it does is seen at the fire's start
    newest_child: bool = False


#: a paused span of all firing (``supertask pause`` .. ``resume``); None: not resumed yet
Pause = tuple[datetime, "datetime | None"]

SKIPPED = {
    Overlap.SKIP: "the previous run was still running (overlap: skip)",
    Overlap.QUEUE: "a run was in flight and another already waiting (overlap: queue)",
    Overlap.ALLOW: "max_concurrent {max_concurrent} runs were in flight (overlap: allow)",
}
QUEUED = "waiting for the run in flight (overlap: queue)"
STOPPED_QUEUED = "the scheduler stopped before this queued run could start"

_DOWN = "the scheduler was not running"
_PAUSED = "firing was paused (supertask pause)"
_BEHIND = "the scheduler was behind its fires (overloaded, or the machine was asleep)"


def _paused(fire: datetime, pauses: Sequence[Pause], now: datetime) -> bool:
    return any(start <= fire < (end or now) for start, end in pauses)


def due(fires: Sequence[datetime], now: datetime, *, grace: float, catch_up: CatchUp, up_since: datetime,
        pauses: Sequence[Pause] = ()) -> list[Decided]:
    """What becomes of a job's due fires (oldest first), found due together at ``now``.

    - **Misfire:** a fire more than ``grace`` seconds late (``now - fire > grace``;
      exactly ``grace`` late still runs) does not run. All such fires together become
      **one** ``SKIP`` at the last of them, whose message says how many were missed,
      between which times and why: the scheduler was not running (due before
      ``up_since``, when this scheduler came up), firing was paused (due inside one
      of ``pauses``, ``supertask pause`` to ``resume``), else it was behind its fires.
    - **Catch-up**, of the fires within the grace: ``catch_up: latest`` runs only the
      latest (the others are ``COALESCE``: folded into it, no row); ``all`` runs each,
      oldest first.
    - **Reason** of a fire that runs: ``catch-up`` when it came due while the scheduler
      was down (strictly before ``up_since``) or while firing was paused (``start <=
      fire < end``); else ``schedule``. So a ``once``, ``@restart`` or ``@reboot`` job
      firing at start-up, or a fire due while the timetable was being synced (both
      after ``up_since``), is on schedule.

    A fire not yet due (decided a little ahead of its time) counts as on time.
    """
    late = [t for t in fires if (now - t).total_seconds() > grace]
    timely = [t for t in fires if (now - t).total_seconds() <= grace]
    out: list[Decided] = []
    if late:
        first, last = late[0], late[-1]
        span = first.isoformat() if first == last else f"{first.isoformat()} to {last.isoformat()}"
        why = []
        if any(t < up_since for t in late):
            why.append(_DOWN)
        if any(t >= up_since and _paused(t, pauses, now) for t in late):
            why.append(_PAUSED)
        if any(t >= up_since and not _paused(t, pauses, now) for t in late):
            why.append(_BEHIND)
        message = f"missed {len(late)} fire(s) ({span}) by more than misfire_grace {grace:g}s; {', then '.join(why)}"
        out.append(Decided(last, Verdict.SKIP, message=message, first=first, count=len(late)))
    if not timely:
        return out
    running = timely if catch_up is CatchUp.ALL else timely[-1:]
    out.extend(Decided(t, Verdict.COALESCE) for t in timely[:len(timely) - len(running)])
    for t in running:
        missed = t < up_since or _paused(t, pauses, now)
        out.append(Decided(t, Verdict.RUN, Reason.CATCH_UP if missed else Reason.SCHEDULE))
    return out


#: Seconds behind its first due fire past which a round asks the store what other hosts
#: decided: none. A round decided on time decides its fires ahead of them (rounds.LEAD), when
#: no host can have run them yet; once a fire's time has passed, another host may have run
#: it and retention (``prune --keep 0``: at once) removed its row, the claim's only guard.
LATE = 0.0


def undecided(fires: Sequence[datetime], stored_next: datetime | None) -> list[datetime]:
    """Which of a job's due fires (oldest first, as this host's memory has them) are still
    to be decided, given the job's next run time in a store other schedulers share.

    Every scheduler writes the next run time after deciding a job's fires (forward only:
    :meth:`~supertask.store.revisions.LiveRows.set_next_run_times`), so a fire before the
    stored one was decided by a host: run, skipped, folded into a catch-up, or held. Its
    run row is the usual guard against a second run, but retention may have pruned it,
    so a host whose memory is behind (it was frozen, cut off, overloaded) must not decide
    those fires again: they are dropped here (GoodJob #767). A fire at or after the stored
    time, or any fire when the store has none (a paused or finished job, or no store to
    ask), is kept: its claim decides it as usual.
    """
    if stored_next is None:
        return list(fires)
    return [t for t in fires if t >= stored_next]


def overlap(policy: Overlap, flight: Flight, fire: datetime, now: datetime, *,
            max_concurrent: int | None = None, in_round: bool = False) -> Decision:
    """Whether a fire at ``fire`` runs beside the job's runs in flight (``flight``).

    - ``skip`` (default): while any run of the job is in flight, ``SKIP``.
    - ``queue``: while a run is in flight, ``QUEUE`` (it starts when that run ends);
      at most one waits: with one already queued, ``SKIP``.
    - ``allow``: ``RUN`` side by side; with ``max_concurrent`` N, ``SKIP`` once N are
      in flight (N-1 in flight still runs).

    A run in flight is one running or waiting between its attempts to retry; a
    ``queued`` fire is not in flight. Then, for a fire of the scheduler's round
    (``in_round``), decided ahead of its time (rounds.LEAD), what is in flight now
    may have ended by its time, so a fire that would not run is decided again then:
    ``AT_START`` when ``skip`` would skip and ``flight.newest_child`` (the round looks
    at that child when it starts the fire), else ``LATER`` while ``fire > now``.
    """
    running = flight.running
    if running and policy is Overlap.SKIP:
        verdict = Verdict.SKIP
    elif running and policy is Overlap.QUEUE:
        verdict = Verdict.SKIP if flight.queued else Verdict.QUEUE
    elif policy is Overlap.ALLOW and max_concurrent and running >= max_concurrent:
        verdict = Verdict.SKIP
    else:
        return Decision(Verdict.RUN)
    if in_round and verdict is Verdict.SKIP and policy is Overlap.SKIP and flight.newest_child:
        return Decision(Verdict.AT_START, SKIPPED[policy])
    if in_round and fire > now:
        return Decision(Verdict.LATER)
    if verdict is Verdict.QUEUE:
        return Decision(verdict, QUEUED)
    return Decision(verdict, SKIPPED[policy].format(max_concurrent=max_concurrent))


def at_start(child_exited: bool) -> Decision:
    """An ``AT_START`` fire at its time: ``RUN`` if the job's newest child has exited
    (its row may still be being written), else ``SKIP`` as ``overlap: skip`` says."""
    return Decision(Verdict.RUN) if child_exited else Decision(Verdict.SKIP, SKIPPED[Overlap.SKIP])


def queued_start(stopping: bool) -> Decision:
    """A ``queued`` fire whose run in flight ended: ``RUN``, or ``SKIP`` when the
    scheduler is stopping (a stop starts nothing new)."""
    return Decision(Verdict.SKIP, STOPPED_QUEUED) if stopping else Decision(Verdict.RUN)


def retry_due(job: Job, status: RunStatus, attempt: int) -> bool:
    """Whether attempt ``attempt`` (1 the first) that ended ``status`` gets another:
    ``status`` is in ``retry_on`` and ``attempt <= retries`` (``retries: 2`` allows
    attempts 2 and 3). ``succeeded`` and ``skipped`` never retry."""
    return status in job.retry_on and attempt <= job.retries


def retry_delay(job: Job, attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: ``retry_delay``, doubled after each
    attempt (``retry_delay × 2^(attempt−1)``) unless ``retry_backoff: false``, never
    more than ``retry_delay_max``."""
    delay = job.retry_delay * (2 ** (attempt - 1) if job.retry_backoff else 1)
    return min(delay, job.retry_delay_max)


def retry(job: Job, status: RunStatus, attempt: int, stopping: bool = False) -> Decision:
    """After attempt ``attempt`` ended ``status``: ``RETRY`` after ``delay``
    (:func:`retry_due`, :func:`retry_delay`), else ``DONE``. A stopping scheduler
    retries nothing (pending retries are cancelled)."""
    if stopping or not retry_due(job, status, attempt):
        return Decision(Verdict.DONE)
    return Decision(Verdict.RETRY, delay=retry_delay(job, attempt))


def needs_after(job: Job, status: RunStatus, attempt: int = 1) -> bool:
    """Whether anything follows the attempt: a retry, a notification, a retention."""
    return bool(
        retry_due(job, status, attempt)
        or job.on_success or job.on_failure or job.on_retry
        or job.history_keep_runs is not None or job.history_keep_age is not None
    )


def step_due(condition: StepIf, failed: bool) -> bool:
    """Whether a step runs: ``success`` (the default) when no earlier step that counts
    has failed, ``failure`` when one has, ``always`` either way. A failed step with
    ``continue_on_error`` does not count (the caller does not set ``failed``)."""
    if condition is StepIf.ALWAYS:
        return True
    return failed if condition is StepIf.FAILURE else not failed
