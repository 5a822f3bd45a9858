"""The scheduler's rules as tables: each row is a line of docs/runs.md's tables
(overlap; misfires, downtime and catch-up; retries; steps; how a round starts;
shutdown), with ``now`` passed in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from supertask.model import CatchUp, Job, Overlap, Reason, RunStatus, StepIf
from supertask.scheduler import decisions
from supertask.scheduler.decisions import Decided, Flight, Verdict

UTC = timezone.utc
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
UP = NOW - timedelta(seconds=5)  # this scheduler came up 5 s ago


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


# -- overlap (docs/runs.md "Overlap") -------------------------------------------------------------

OVERLAP = [
    # (policy, flight, max_concurrent, verdict, message contains)
    (Overlap.SKIP, Flight(0), None, Verdict.RUN, None),
    (Overlap.SKIP, Flight(1), None, Verdict.SKIP, "still running (overlap: skip)"),
    (Overlap.QUEUE, Flight(0), None, Verdict.RUN, None),
    (Overlap.QUEUE, Flight(1), None, Verdict.QUEUE, "waiting for the run in flight"),
    (Overlap.QUEUE, Flight(1, queued=True), None, Verdict.SKIP, "another already waiting (overlap: queue)"),
    (Overlap.ALLOW, Flight(7), None, Verdict.RUN, None),
    (Overlap.ALLOW, Flight(1), 2, Verdict.RUN, None),
    (Overlap.ALLOW, Flight(2), 2, Verdict.SKIP, "max_concurrent 2 runs were in flight (overlap: allow)"),
    (Overlap.ALLOW, Flight(3), 2, Verdict.SKIP, "max_concurrent 2"),
]


@pytest.mark.parametrize(("policy", "flight", "cap", "verdict", "message"), OVERLAP)
def test_overlap(policy: Overlap, flight: Flight, cap: int | None, verdict: Verdict, message: str | None) -> None:
    decision = decisions.overlap(policy, flight, NOW, NOW, max_concurrent=cap)
    assert decision.verdict is verdict
    assert (decision.message is None) if message is None else (message in (decision.message or ""))


# -- a fire decided ahead of its time, with the round (docs/runs.md "How a round of fires starts") --

AHEAD = NOW + timedelta(seconds=0.02)
ROUND = [
    # (policy, flight, fire, in_round, verdict)
    (Overlap.SKIP, Flight(1, newest_child=True), AHEAD, True, Verdict.AT_START),
    (Overlap.SKIP, Flight(1, newest_child=True), NOW, True, Verdict.AT_START),  # at its time: look at the child
    (Overlap.SKIP, Flight(1), AHEAD, True, Verdict.LATER),  # a retry or queued fire behind it: decide at its time
    (Overlap.SKIP, Flight(1), NOW, True, Verdict.SKIP),  # not ahead: decided now
    (Overlap.SKIP, Flight(1, newest_child=True), AHEAD, False, Verdict.SKIP),  # not a round's fire
    (Overlap.QUEUE, Flight(1), AHEAD, True, Verdict.LATER),
    (Overlap.QUEUE, Flight(1, newest_child=True), AHEAD, True, Verdict.LATER),  # only skip looks at the child
    (Overlap.ALLOW, Flight(2), AHEAD, True, Verdict.LATER),
    (Overlap.SKIP, Flight(0), AHEAD, True, Verdict.RUN),  # nothing in flight: run (the round waits for its time)
]


@pytest.mark.parametrize(("policy", "flight", "fire", "in_round", "verdict"), ROUND)
def test_overlap_of_a_round_fire(policy: Overlap, flight: Flight, fire: datetime, in_round: bool,
                                 verdict: Verdict) -> None:
    cap = 2 if policy is Overlap.ALLOW else None
    assert decisions.overlap(policy, flight, fire, NOW, max_concurrent=cap, in_round=in_round).verdict is verdict


@pytest.mark.parametrize(("exited", "verdict"), [(True, Verdict.RUN), (False, Verdict.SKIP)])
def test_at_start_skips_only_what_still_runs_at_the_fire_time(exited: bool, verdict: Verdict) -> None:
    decision = decisions.at_start(exited)
    assert decision.verdict is verdict
    if verdict is Verdict.SKIP:
        assert decision.message == decisions.SKIPPED[Overlap.SKIP]


@pytest.mark.parametrize(("stopping", "verdict"), [(False, Verdict.RUN), (True, Verdict.SKIP)])
def test_a_queued_run_becomes_skipped_at_a_stop(stopping: bool, verdict: Verdict) -> None:
    decision = decisions.queued_start(stopping)
    assert decision.verdict is verdict
    assert (decision.message is not None) is stopping


# -- misfires, downtime and catch-up (docs/runs.md "Misfires, downtime and catch-up") --------------

def summary(decided: list[Decided]) -> list[tuple[float, str, str]]:
    return [(round((NOW - d.fire).total_seconds()), d.verdict.value, d.reason.value) for d in decided]


R, S, C = Verdict.RUN.value, Verdict.SKIP.value, Verdict.COALESCE.value
SCHED, CATCH = Reason.SCHEDULE.value, Reason.CATCH_UP.value
DUE = [
    # (fires, seconds ago; grace; catch_up; pauses; expected (seconds ago, verdict, reason))
    ("on time", [0], 60, CatchUp.LATEST, (), [(0, R, SCHED)]),
    ("decided ahead of its time", [-0.02], 60, CatchUp.LATEST, (), [(0, R, SCHED)]),
    ("due at start-up (once, @reboot)", [2], 60, CatchUp.LATEST, (), [(2, R, SCHED)]),
    ("missed in downtime, within grace", [20], 60, CatchUp.LATEST, (), [(20, R, CATCH)]),
    ("exactly grace late still runs", [60], 60, CatchUp.LATEST, (), [(60, R, CATCH)]),
    ("beyond grace: one skipped row", [61], 60, CatchUp.LATEST, (), [(61, S, SCHED)]),
    ("latest runs the latest, coalesces the rest", [30, 20, 10], 60, CatchUp.LATEST, (),
     [(30, C, SCHED), (20, C, SCHED), (10, R, CATCH)]),
    ("all runs each, oldest first", [30, 20, 10], 60, CatchUp.ALL, (),
     [(30, R, CATCH), (20, R, CATCH), (10, R, CATCH)]),
    ("beyond and within grace", [300, 200, 100, 30, 2], 60, CatchUp.LATEST, (),
     [(100, S, SCHED), (30, C, SCHED), (2, R, SCHED)]),
    ("all, after a skipped backlog", [300, 30, 2], 60, CatchUp.ALL, (),
     [(300, S, SCHED), (30, R, CATCH), (2, R, SCHED)]),
    ("behind its fires while running (not down)", [3, 2, 1], 60, CatchUp.LATEST, (),
     [(3, C, SCHED), (2, C, SCHED), (1, R, SCHED)]),
    ("grace 0: any lateness skips", [1], 0, CatchUp.LATEST, (), [(1, S, SCHED)]),
    ("missed while paused, within grace", [3, 2], 60, CatchUp.ALL, ((ago(4), ago(1)),),
     [(3, R, CATCH), (2, R, CATCH)]),
    ("due at the resume itself is on schedule", [1], 60, CatchUp.LATEST, ((ago(4), ago(1)),), [(1, R, SCHED)]),
    ("still paused: due since the pause", [1], 60, CatchUp.LATEST, ((ago(4), None),), [(1, R, CATCH)]),
]


@pytest.mark.parametrize(("fires", "grace", "catch_up", "pauses", "expected"),
                         [row[1:] for row in DUE], ids=[row[0] for row in DUE])
def test_due(fires: list[float], grace: float, catch_up: CatchUp, pauses: tuple[decisions.Pause, ...],
             expected: list[tuple[float, str, str]]) -> None:
    decided = decisions.due([ago(s) for s in fires], NOW, grace=grace, catch_up=catch_up, up_since=UP, pauses=pauses)
    assert summary(decided) == expected


UNDECIDED = [
    # (fires, seconds ago; the store's next run time, seconds ago or None; kept, seconds ago)
    ("the store knows nothing: all kept", [3, 2, 1], None, [3, 2, 1]),
    ("another host decided the first two (thawed, their rows maybe pruned)", [3, 2, 1], 1, [1]),
    ("the store is where this host is", [3, 2, 1], 3, [3, 2, 1]),
    ("the store is further on than all of them", [3, 2, 1], 0, []),
    ("the store is behind this host (a lagging write)", [3, 2, 1], 10, [3, 2, 1]),
]


@pytest.mark.parametrize(("fires", "stored", "kept"), [row[1:] for row in UNDECIDED], ids=[row[0] for row in UNDECIDED])
def test_fires_other_hosts_decided_are_not_decided_again(fires: list[float], stored: float | None,
                                                         kept: list[float]) -> None:
    got = decisions.undecided([ago(s) for s in fires], None if stored is None else ago(stored))
    assert got == [ago(s) for s in kept]


def test_missed_fires_are_one_skipped_row_saying_how_many_and_when() -> None:
    fires = [ago(3 * 3600 + 1800), ago(2 * 3600 + 1800), ago(3600 + 1800), ago(1800)]
    (skipped,) = decisions.due(fires, NOW, grace=30, catch_up=CatchUp.LATEST, up_since=UP)
    assert (skipped.verdict, skipped.fire, skipped.first, skipped.count) == (Verdict.SKIP, fires[-1], fires[0], 4)
    assert skipped.message == (
        f"missed 4 fire(s) ({fires[0].isoformat()} to {fires[-1].isoformat()}) by more than misfire_grace 30s; "
        "the scheduler was not running")


MISSED_BECAUSE = [
    # (seconds ago the fires were due, pauses, the reason the message gives)
    ([600], (), "the scheduler was not running"),
    ([4, 3], ((ago(4.5), ago(0.5)),), "firing was paused (supertask pause)"),
    ([4.2], ((ago(600), ago(600)),), "the scheduler was behind its fires"),
    ([600, 4], ((ago(4.5), ago(0.5)),), "the scheduler was not running, then firing was paused"),
]


@pytest.mark.parametrize(("fires", "pauses", "why"), MISSED_BECAUSE)
def test_missed_fires_say_why_they_were_missed(fires: list[float], pauses: tuple[decisions.Pause, ...],
                                               why: str) -> None:
    (skipped,) = decisions.due([ago(s) for s in fires], NOW, grace=0.1, catch_up=CatchUp.LATEST, up_since=UP,
                               pauses=pauses)
    assert skipped.message is not None and skipped.message.split("; ", 1)[1].startswith(why)
    assert "not running" not in skipped.message or "not running" in why


# -- retries (docs/runs.md "Retries" and "Crashes") ------------------------------------------------

RETRY = [
    # (job, status, attempt, verdict, delay)
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.FAILED, 1, Verdict.RETRY, 30.0),
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.FAILED, 2, Verdict.RETRY, 60.0),
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.FAILED, 3, Verdict.DONE, None),  # N more attempts, no more
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.TIMED_OUT, 1, Verdict.RETRY, 30.0),
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.LOST, 1, Verdict.RETRY, 30.0),
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.KILLED, 1, Verdict.DONE, None),  # not in the default retry_on
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.SUCCEEDED, 1, Verdict.DONE, None),
    (Job("j", "@daily", "cmd:x", retries=2), RunStatus.SKIPPED, 1, Verdict.DONE, None),
    (Job("j", "@daily", "cmd:x", retries=2, retry_on=(RunStatus.TIMED_OUT,)), RunStatus.FAILED, 1, Verdict.DONE, None),
    (Job("j", "@daily", "cmd:x", retries=2, retry_on=(RunStatus.KILLED,)), RunStatus.KILLED, 1, Verdict.RETRY, 30.0),
    (Job("j", "@daily", "cmd:x"), RunStatus.FAILED, 1, Verdict.DONE, None),  # retries: 0
    (Job("j", "@daily", "cmd:x", retries=9, retry_delay=1000), RunStatus.FAILED, 4, Verdict.RETRY, 3600.0),  # cap
    (Job("j", "@daily", "cmd:x", retries=9, retry_delay=10, retry_delay_max=50), RunStatus.FAILED, 4,
     Verdict.RETRY, 50.0),
    (Job("j", "@daily", "cmd:x", retries=9, retry_delay=10, retry_backoff=False), RunStatus.FAILED, 5,
     Verdict.RETRY, 10.0),
]


@pytest.mark.parametrize(("job", "status", "attempt", "verdict", "delay"), RETRY)
def test_retry(job: Job, status: RunStatus, attempt: int, verdict: Verdict, delay: float | None) -> None:
    decision = decisions.retry(job, status, attempt)
    assert (decision.verdict, decision.delay) == (verdict, delay)
    assert decisions.retry_due(job, status, attempt) is (verdict is Verdict.RETRY)


def test_a_stopping_scheduler_retries_nothing() -> None:
    job = Job("j", "@daily", "cmd:x", retries=2)
    assert decisions.retry(job, RunStatus.FAILED, 1, stopping=True).verdict is Verdict.DONE


NEEDS_AFTER = [
    (Job("j", "@daily", "cmd:x"), RunStatus.FAILED, False),
    (Job("j", "@daily", "cmd:x", retries=1), RunStatus.FAILED, True),
    (Job("j", "@daily", "cmd:x", retries=1), RunStatus.SUCCEEDED, False),
    (Job("j", "@daily", "cmd:x", on_success=("cmd:true",)), RunStatus.FAILED, True),
    (Job("j", "@daily", "cmd:x", on_failure=("cmd:true",)), RunStatus.SUCCEEDED, True),
    (Job("j", "@daily", "cmd:x", on_retry=("cmd:true",)), RunStatus.SUCCEEDED, True),
    (Job("j", "@daily", "cmd:x", history_keep_runs=3), RunStatus.SUCCEEDED, True),
    (Job("j", "@daily", "cmd:x", history_keep_age=60.0), RunStatus.SUCCEEDED, True),
]


@pytest.mark.parametrize(("job", "status", "needed"), NEEDS_AFTER)
def test_needs_after(job: Job, status: RunStatus, needed: bool) -> None:
    assert decisions.needs_after(job, status) is needed


# -- steps (docs: a step's if) --------------------------------------------------------------------

@pytest.mark.parametrize(("condition", "failed", "due"), [
    (StepIf.SUCCESS, False, True), (StepIf.SUCCESS, True, False),
    (StepIf.FAILURE, False, False), (StepIf.FAILURE, True, True),
    (StepIf.ALWAYS, False, True), (StepIf.ALWAYS, True, True),
])
def test_step_due(condition: StepIf, failed: bool, due: bool) -> None:
    assert decisions.step_due(condition, failed) is due
