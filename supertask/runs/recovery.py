"""After a crash: runs left in flight become ``lost``, their orphans end, retries apply.

When ``supertask run`` starts, the runs that the previous scheduler of its state folder
had ``running`` or ``queued`` (it was killed, or the machine died) are marked ``lost``
with the time it noticed; while it runs, so are the runs of any scheduler sharing its
store whose lease ran out (:func:`take_over`, the rules in
:mod:`supertask.cluster.leases`): never the runs of a scheduler that is alive, be it on
the same machine. Their process groups, if still alive on this machine, are **ended,
not adopted**: a child whose output pipes died with the old scheduler cannot be
supervised or logged, so it gets TERM, its ``kill_grace``, then KILL. A process counts as the run's only when its
environment carries that run's ``SUPERTASK_RUN_KEY`` (store, namespace and run id:
pids get reused, and another store's scheduler may have a run with the same id). A ``docker:``
run's container is stopped and removed by name first, as a timeout would. Then the job's
retry policy applies: ``lost`` is in ``retry_on`` by default, so while attempts are
left a new attempt of the same scheduled fire starts (reason ``retry``). A lost run that
is not retried was the fire's last attempt: its ``on_failure`` actions and its ``ping``
``/fail`` go out (through the scheduler's outbox, off the start-up path), with the last
lines its log file got as the tail. The fire is never run twice under one attempt number: the run row is the claim.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from supertask.errors import JobNotFound
from supertask.launchers.base import is_alive, signal_all
from supertask.launchers.docker import end_lost_container
from supertask.log import get_logger
from supertask.model import Job, RunKind, RunRecord, RunStatus
from supertask.runs import notify
from supertask.runs.unwritten import replay


def mark_lost_runs(service: Any) -> list[tuple[RunRecord, Job | None]]:
    """Before the scheduler fires anything: write the run ends a scheduler before this
    one kept (its store was away), then :func:`take_over` at the start."""
    log = get_logger("supertask.scheduler.service")
    # first the ends a scheduler before this one could not write (its store was away):
    # a run that ended is never marked lost
    replayed = replay(service.store, service.settings.home)
    if replayed:
        log.info("run ends written that the store refused before", runs=replayed)
    # a lease that ran out is judged once this scheduler's own heartbeats have gone on
    # for a lease (after a store outage, every host's heartbeat is old): Heartbeat.tick
    return take_over(service, at_start=True, by_lease=False)


def take_over(service: Any, *, at_start: bool = False, by_lease: bool = True,
              spawn: Callable[[Callable[[], object]], object] | None = None) -> list[tuple[RunRecord, Job | None]]:
    """Mark ``lost`` the runs of the served namespaces whose scheduler instance is gone
    (:func:`supertask.cluster.leases.run_lost`: its lease ran out, or it is this state
    folder's previous instance and its process is gone), one conditional row update
    each, so that of several hosts doing this at once exactly one gets each run; end
    the orphans of those that ran on this machine in this boot; return them with their
    jobs, for :func:`retry_lost_runs`. At a start (``at_start``) runs of unknown
    instances on this host are lost too (crash recovery as before host rows);
    ``by_lease``: whether a lease that ran out counts yet (:func:`leases.may_take_over`).
    With ``spawn`` (the heartbeat's: its own beats must go on), ending the orphans (a
    ``kill_grace`` each) and the retries are left to a thread ``spawn`` starts, and
    nothing is returned."""
    from supertask.cluster import leases

    store, me = service.store, service.me
    runs = store.runs_in_flight(service.namespaces, besides=me.instance)
    if not runs:
        return []
    now = store.clock()
    holders = {h.instance: h for h in store.hosts(instances={r.instance for r in runs if r.instance})}
    by = f"noticed at {now.isoformat(timespec='seconds')} and taken over by host {me.host} " \
         f"(instance {leases.short(me.instance)})"
    decided = []
    for run in runs:
        why = leases.run_lost(run, holders.get(run.instance or ""), now, me, pid_alive, at_start=at_start,
                              by_lease=by_lease)
        if why is not None:
            decided.append((run, f"{why}; {by}"))
    if not decided:
        return []
    dead = {run.instance: why for run, why in decided if run.instance in holders}
    for instance, why in dead.items():
        if leases.expired(holders[instance], now):
            store.mark_host_lost(instance, why)
    won = {record.id: record for record in store.mark_runs_lost(decided)}
    lost: list[tuple[RunRecord, Job | None, bool]] = []
    for run, _why in decided:
        record = won.get(run.id)
        if record is None:  # another host took it first
            continue
        try:
            job: Job | None = store.get_job(run.namespace, run.job).job
        except JobNotFound:
            job = None
        lost.append((record, job, leases.reachable(run, holders.get(run.instance or ""), me)))
    if spawn is None:
        return _end_lost(lost, store.url)
    if lost:
        spawn(lambda: retry_lost_runs(service, _end_lost(lost, store.url)))
    return []


def _end_lost(lost: list[tuple[RunRecord, Job | None, bool]], store_url: str) -> list[tuple[RunRecord, Job | None]]:
    """End what is left on this machine of the lost runs (``(run, job, reachable)``): a
    ``docker:`` run's container, then the orphans of all at once; log each run lost."""
    from supertask.cluster.leases import short

    removed = {run.id: bool(reach and job is not None and _uses_docker(job)
                            and end_lost_container(job, run.namespace, run.id)) for run, job, reach in lost}
    local = [(run, job.kill_grace if job else 10.0) for run, job, reach in lost if reach]
    ended = end_orphans(local, store_url) if local else {}
    log = get_logger("supertask.scheduler.service")
    for run, _job, _reach in lost:
        log.warning("run lost", job=run.job, namespace=run.namespace, run=run.id, attempt=run.attempt,
                    host=run.host, instance=short(run.instance), orphans_ended=ended.get(run.id, 0),
                    container_removed=removed[run.id], message=run.message)
    return [(run, job) for run, job, _ in lost]


def pid_alive(pid: int, started: datetime) -> bool:
    """A process ``pid`` runs that started no later than ``started`` (a second's leeway):
    not the pid reused by a later process."""
    try:
        return psutil.Process(pid).create_time() <= started.timestamp() + 1
    except (psutil.Error, OSError):
        return False


def _uses_docker(job: Job) -> bool:
    return any(spec.kind is RunKind.DOCKER for spec in job.run_specs)


def retry_lost_runs(service: Any, lost: list[tuple[RunRecord, Job | None]]) -> None:
    """Once the executor runs: retry the lost runs whose policy says so; for the
    others, the last attempt failed: send their ``on_failure`` actions and fail pings."""
    log = get_logger("supertask.scheduler.service")
    for run, job in lost:
        if job is None:
            continue
        if RunStatus.LOST in job.retry_on and run.attempt <= job.retries and run.scheduled:
            log.info("retry scheduled", job=run.job, namespace=run.namespace, run=run.id,
                     attempt=run.attempt + 1, delay=0)
            service.executor.submit_retry(run.namespace, job, run.scheduled, run.attempt + 1)
        elif job.on_failure or job.ping or job.mailto:
            record = service.store.get_run(run.id).to_json()
            record["log_tail"] = record.get("log_tail") or _log_tail(record.get("log_path"))
            notify.run_actions(job.on_failure, record, event="failure", outbox=service.ctx.outbox,
                               settings=service.settings, mailto=job.mailto)
            notify.ping(job.ping, "fail", record, service.ctx.outbox)


def _log_tail(path: str | None, lines: int = 20) -> str:
    """The text of the last ``lines`` lines of a run's log file (stamp and stream cut off)."""
    if not path:
        return ""
    try:
        with open(Path(path), "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 16384))
            raw = f.read().decode("utf-8", "replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "\n".join(line.split(" ", 2)[2] if line.count(" ") >= 2 else line for line in raw)


def end_orphans(runs: list[tuple[RunRecord, float]], store_url: str) -> dict[int, int]:
    """End the processes that still carry these runs' keys: TERM to each one and its
    process group, all at once; KILL to what of a run is left after its grace.
    Return, per run id, how many process groups (or processes) there were."""
    from supertask.runs.environ import run_key

    wanted = {run_key(store_url, run.namespace, run.id): (run.id, grace) for run, grace in runs}
    mine: dict[int, list[psutil.Process]] = {}
    for proc in psutil.process_iter():
        try:
            env = proc.environ()
        except (psutil.Error, OSError):
            continue
        found = wanted.get(env.get("SUPERTASK_RUN_KEY", ""))
        if found is not None:
            mine.setdefault(found[0], []).append(proc)
    graces = dict(wanted.values())
    groups: dict[int, set[int]] = {}
    for run_id, procs in mine.items():
        groups[run_id] = set()
        for proc in procs:
            try:
                groups[run_id].add(os.getpgid(proc.pid))
            except OSError:
                pass
        signal_all(groups[run_id], procs, signal.SIGTERM)
    started, pending = time.monotonic(), dict(mine)
    while pending:
        for run_id, procs in list(pending.items()):
            alive = [p for p in procs if is_alive(p)]
            if not alive:
                del pending[run_id]
            elif time.monotonic() - started >= graces[run_id]:
                signal_all(groups[run_id], alive, signal.SIGKILL)
                del pending[run_id]
            else:
                pending[run_id] = alive
        if pending:
            time.sleep(0.05)
    return {run_id: len(groups[run_id]) or len(procs) for run_id, procs in mine.items()}
