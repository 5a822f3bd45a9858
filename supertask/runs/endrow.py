"""What an attempt's row gets when it ends: its log closed (or said to be lost: a full
disk), and the row's values (:func:`end_values`)."""

from __future__ import annotations

from datetime import datetime, timezone

from supertask.launchers.base import Outcome
from supertask.log import Limited
from supertask.model import Job, RunStatus
from supertask.runs.context import ActiveRun
from supertask.runs.runlog import RunLog

UTC = timezone.utc


def closed(runlog: RunLog, outcome: Outcome, active: ActiveRun, job: Job) -> Outcome:
    """Note how the attempt ended in its log and close the log. A log that could not be
    written (a full disk) was dropped for the run, which went on: its row says so."""
    if outcome.status is RunStatus.KILLED and active.stopped_by is not None:
        outcome.message = active.stopped_by.says(outcome.message)
    if runlog.error is None:
        if outcome.message:
            runlog.note(outcome.message)
        runlog.close()
    if runlog.error is None:
        return outcome
    dropped = f"log not kept: cannot write {runlog.path}: {runlog.error.strerror or runlog.error}"
    LOG_ERRORS.event("run log not kept", job=job.name, run=active.run_id, log=str(runlog.path),
                     error=str(runlog.error))
    return Outcome(outcome.status, outcome.exit_code, outcome.pid or active.pid,
                   f"{outcome.message}; {dropped}" if outcome.message else dropped)


#: the scheduler's one limit for "run log not kept"
LOG_ERRORS = Limited("supertask.run")


def end_values(outcome: Outcome, active: ActiveRun, runlog: RunLog, ended: float) -> dict[str, object]:
    """What the run's row gets when the attempt has ended (at ``ended``): ``started`` is
    when its first child started (the row was claimed with the fire's time, maybe ahead
    of it: a scheduler held up between the claim and the start shows as lateness, not
    as a longer run); a run that printed nothing has no log file, and no ``log_path``."""
    values: dict[str, object] = dict(
        status=outcome.status, exit_code=outcome.exit_code, pid=outcome.pid or active.pid,
        started=datetime.fromtimestamp(min(active.started, ended), UTC),
        finished=datetime.fromtimestamp(ended, UTC), log_tail=runlog.tail_text, message=outcome.message)
    # named again: a provisional run's row (runs.unwritten) or a queued one the store was away to take up
    values["log_path"] = str(runlog.path) if runlog.opened else None
    return values
