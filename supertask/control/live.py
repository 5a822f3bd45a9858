"""What a second ``supertask`` may ask of a running scheduler, as plain data.

:class:`LiveControl` is the facade the control endpoint (:mod:`supertask.control.endpoint`)
serves: every method takes str/int/float/bool/None (or a tuple of str) and returns
JSON-able lists and dicts, so nothing that crosses the wire is a reference to a
scheduler object. Job changes are validated by the timetable loader, exactly as a
timetable entry would be, and applied through :class:`supertask.scheduler.service.Service`
(store first, then memory). A later ``supertask run --file`` sync wins over live
edits for the jobs its file names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from supertask import __version__
from supertask.control.readout import log_chunk, tree_usage
from supertask.errors import JobNotFound, RunNotFound, SupertaskError, TimetableError, UsageError
from supertask.model import Job
from supertask.workers.route import kill as kill_anywhere

if TYPE_CHECKING:
    from supertask.scheduler.service import Service

UTC = timezone.utc
#: Keys whose value is taken as written (never parsed as YAML).
TEXT_KEYS = {"when", "run", "description", "cwd", "env_file", "timezone", "network", "memory",
             "docker_cli", "ping", "pull", "catch_up", "overlap"}
#: Timetable keys that set other Job fields than their own name.
FIELDS_OF = {"history_keep": ("history_keep_runs", "history_keep_age"), "run": ("run", "steps"),
             "steps": ("steps", "run")}


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else None


def _run_text_of(definition: dict[str, Any]) -> str | list[str]:
    """What ``list-jobs`` shows as ``run`` for a stored definition (``Job.to_dict``):
    its ``run``, else the ``run`` of each step."""
    return definition.get("run") or [step.get("run") for step in definition.get("steps") or []]


def parse_assignments(assignments: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``key=value`` texts -> timetable entries. Values are YAML (``retries=3``,
    ``env={A: b}``, ``enabled=false``) except for text keys such as ``run`` and ``when``;
    ``env.NAME=value`` sets one variable and keeps the others."""
    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set {item!r}: expected key=value, e.g. --set retries=3 or --set env.DEBUG=1")
        if key.startswith("env."):
            out.setdefault("env.", {})[key[4:]] = raw
            continue
        if key == "name":
            raise UsageError("--set name=...: a job cannot be renamed live; add the new one and remove the old")
        if key in TEXT_KEYS:
            out[key] = raw
            continue
        import yaml

        from supertask.timetable.yamldoc import MAX_DEPTH, deeper_than

        if deeper_than(raw, MAX_DEPTH) is not None:
            raise UsageError(f"--set {key}=...: nested deeper than {MAX_DEPTH} levels; give a plain value")
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            out[key] = raw
    return out


def edited(job: Job | None, name: str, values: dict[str, Any]) -> Job:
    """``job`` (None: a new job) with timetable entries ``values`` applied, validated by
    the timetable loader as one entry of a file would be (TimetableError, exit 2)."""
    from supertask.timetable.load import load_timetable

    values = dict(values)
    env_items = values.pop("env.", None)
    entry: dict[str, Any] = {"name": name}
    if job is not None:
        entry["when"] = job.when
        if job.timezone:
            entry["timezone"] = job.timezone
        if "run" not in values and "steps" not in values:
            if job.run is not None:
                entry["run"] = job.run
            else:
                entry["steps"] = [{"name": s.name, "run": s.run} for s in job.steps]
        if env_items is not None:
            values["env"] = {**job.env, **(values.get("env") or {}), **env_items}
    elif env_items is not None:
        values["env"] = {**(values.get("env") or {}), **env_items}
    entry.update(values)
    try:
        loaded = load_timetable(json.dumps({"jobs": [entry]}, default=str), "--set").jobs[0]
    except TimetableError as exc:  # said as the command's keys, not as a line of a file
        what = "; ".join(f"{p.path.removeprefix('jobs[0].') or 'job'}: {p.message}" for p in exc.problems)
        raise UsageError(f"job {name!r} not {'added' if job is None else 'changed'}: {what}") from None
    if job is None:
        return loaded
    changes: dict[str, Any] = {}
    for key in values:
        for fname in FIELDS_OF.get(key, (key,)):
            changes[fname] = getattr(loaded, fname)
    return dataclasses.replace(job, **changes)


class LiveControl:
    """The operations of the control endpoint over one :class:`Service`."""

    def __init__(self, service: Service, endpoints: dict[str, Any] | None = None):
        self.service = service
        self.endpoints = endpoints if endpoints is not None else {}
        self._paused: set[tuple[str, str]] | None = None
        self._paused_at = 0  # service.changes when _paused was read

    # -- reading ------------------------------------------------------------------------------

    def _paused_jobs(self) -> set[tuple[str, str]]:
        """Paused jobs (read from the store once, then kept up to date by live changes)."""
        if self._paused is None or self._paused_at != self.service.changes:
            self._paused_at = self.service.changes
            self._paused = {
                (row.namespace, row.job.name)
                for ns in self.service.namespaces
                for row in self.service.store.list_jobs(ns)
                if row.paused
            }
        return self._paused

    def _running(self) -> dict[tuple[str, str], list[int]]:
        ctx = self.service.ctx
        with ctx.lock:
            active = list(ctx.active.values())
        out: dict[tuple[str, str], list[int]] = {}
        for run in active:
            out.setdefault((run.namespace, run.job), []).append(run.run_id)
        return out

    def _jobs_in_memory(self) -> list[dict[str, Any]]:
        """What status shows of the jobs while the store is unreachable: the schedule the
        scheduler holds (no definitions, no paused flag: those are in the store)."""
        jobstore, running = self.service.jobstore, self._running()
        rows = []
        for jid in jobstore.ids():
            ns, _, name = jid.partition("/")
            ts = jobstore.next_run_ts(jid)
            rows.append({"namespace": ns, "name": name, "paused": False, "running": running.get((ns, name), []),
                         "timezone": None,
                         "next_fire": None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()})
        return rows

    def list_jobs(self, namespace: str | None = None) -> list[dict[str, Any]]:
        """Every served job as the scheduler holds it: next fire, paused, runs in flight.
        Definitions come from the store (one query per namespace, read as plain dicts:
        the scheduler keeps only the definitions of jobs that fired), the schedule state
        from memory."""
        if namespace is not None:
            self.service.served(namespace)
        paused, running = self._paused_jobs(), self._running()
        jobstore = self.service.jobstore
        known = jobstore.ids()
        rows = []
        fire_times: dict[float, str] = {}  # 1,000 jobs often share a few next fire times
        for ns in [namespace] if namespace is not None else self.service.namespaces:
            for name, job in self.service.store.definitions(ns):
                jid = f"{ns}/{name}"
                if jid not in known:
                    continue
                ts = jobstore.next_run_ts(jid)
                key = (ns, name)
                rows.append({
                    "namespace": ns, "name": name, "when": job.get("when"), "run": _run_text_of(job),
                    "description": job.get("description", ""), "enabled": job.get("enabled", True),
                    "paused": key in paused and ts is None, "timezone": job.get("timezone"),
                    "next_fire": None if ts is None else fire_times.get(ts) or fire_times.setdefault(ts, datetime.fromtimestamp(ts, UTC).isoformat()),
                    "running": running.get(key, []),
                })
        rows.sort(key=lambda r: (r["namespace"], r["name"]))
        return rows

    def status(self) -> dict[str, Any]:
        import psutil

        service = self.service
        now = time.time()
        health = service.store.health.snapshot()
        jobs = self.list_jobs() if health["up"] else self._jobs_in_memory()
        with service.ctx.lock:
            active = list(service.ctx.active.values())
        zones = {(r["namespace"], r["name"]): r["timezone"] for r in jobs}  # the job's zone: how status shows times
        runs = []
        for run in sorted(active, key=lambda r: r.run_id):
            runs.append({
                "run_id": run.run_id, "namespace": run.namespace, "job": run.job, "attempt": run.attempt,
                "timezone": zones.get((run.namespace, run.job)),
                "pid": run.pid, "started": _iso(run.started), "elapsed": round(now - run.started, 3),
                **tree_usage(run.pid, now),
            })
        upcoming = sorted((r for r in jobs if r["next_fire"]), key=lambda r: r["next_fire"])[:10]
        mem = psutil.virtual_memory()
        disk = psutil.disk_usage(str(service.settings.home if service.settings.home.exists() else "/"))
        from supertask.store.sql import redact

        queued = _queued(service) if health["up"] else []
        return {
            "version": __version__, "pid": os.getpid(), "host": service.settings.host,
            "instance": service.instance, "started": _iso(service.started), "uptime": round(now - service.started, 3),
            "store": redact(service.store.url), "store_health": health, "namespaces": list(service.namespaces),
            "paused": service.paused, "stopping": service.stop_request.event.is_set(),
            "endpoints": self.endpoints,
            "timetable": {"source": service.timetable.source if service.timetable else None,
                          "last_error": _timetable_error(service)},
            "jobs": {"total": len(jobs), "paused": sum(r["paused"] for r in jobs),
                     "running": sum(bool(r["running"]) for r in jobs)},
            "runs": runs, "queued": queued,
            "next_fires": [{"namespace": r["namespace"], "job": r["name"], "next_fire": r["next_fire"],
                            "timezone": r["timezone"]} for r in upcoming],
            "telemetry": {
                "cpu_percent": psutil.cpu_percent(interval=None), "cpu_count": psutil.cpu_count(),
                "load": list(os.getloadavg()),
                "memory": {"total": mem.total, "used": mem.total - mem.available, "percent": mem.percent},
                "disk": {"path": str(service.settings.home), "total": disk.total, "used": disk.used,
                         "free": disk.free, "percent": disk.percent},
            },
        }

    def run(self, run_id: int) -> dict[str, Any]:
        return self.service.store.get_run(run_id).to_json()

    def find_run(self, namespace: str, job: str, scheduled: str) -> dict[str, Any] | None:
        """The first attempt of the run of ``job`` fired at ``scheduled`` (ISO), if claimed yet."""
        for record in self.service.store.history(namespace, job, limit=50):
            if record.scheduled is not None and record.scheduled.isoformat() == scheduled and record.attempt == 1:
                return record.to_json()
        return None

    def read_log(self, run_id: int, offset: int) -> dict[str, Any]:
        """Up to 64 KiB of a run's log from byte ``offset``; ``finished`` once the run ended
        and everything was read. Only the log file the store records for the run is read."""
        return log_chunk(self.service.store.get_run(run_id), offset)

    # -- changing -------------------------------------------------------------------------------

    def _job(self, namespace: str, name: str) -> Job:
        found = self.service.jobstore.definition(f"{namespace}/{name}")
        if found is None:
            raise JobNotFound(namespace, name)
        return found[1]

    def _row(self, namespace: str, name: str) -> dict[str, Any]:
        for row in self.list_jobs(namespace):
            if row["name"] == name:
                return row
        raise JobNotFound(namespace, name)

    def trigger(self, namespace: str | None, name: str, by: str = "unknown") -> dict[str, Any]:
        from supertask.control.changes import audit

        ns = self.service.served(namespace)
        fire = self.service.trigger(ns, name)
        audit(self.service.store, by, f"control on {self.service.settings.host}", "triggered", ns, name, None,
              {"scheduled": fire.isoformat()})
        deadline = time.monotonic() + 2.0
        found = None
        while found is None and time.monotonic() < deadline:
            found = self.find_run(ns, name, fire.isoformat())
            if found is None:
                time.sleep(0.01)
        return {"namespace": ns, "job": name, "scheduled": fire.isoformat(),
                "run_id": found["id"] if found else None}

    def _changed(self, event: str, ns: str, name: str, by: str, before: Any, after: Any, **extra: Any) -> None:
        """The one event of a live change (supertask.control.changes)."""
        from supertask.control.changes import audit
        from supertask.log import get_logger

        get_logger("supertask.control.live").info(event, by=by, namespace=ns, job=name, before=before,
                                                   after=after, **extra)
        audit(self.service.store, by, f"control on {self.service.settings.host}", event.removeprefix("job "),
              ns, name, before, after)

    def pause_job(self, namespace: str | None, name: str, paused: bool, by: str = "unknown") -> dict[str, Any]:
        ns = self.service.served(namespace)
        was = self.service.store.get_job(ns, name).paused
        self.service.set_job_paused(ns, name, paused)
        (self._paused_jobs().add if paused else self._paused_jobs().discard)((ns, name))
        row = self._row(ns, name)
        self._changed("job paused" if paused else "job resumed", ns, name, by, {"paused": was},
                      {"paused": paused}, next_fire=row["next_fire"])
        return row

    def remove_job(self, namespace: str | None, name: str, by: str = "unknown") -> dict[str, Any]:
        from supertask.control.changes import plain

        ns = self.service.served(namespace)
        try:
            before: Any = plain(self.service.store.get_job(ns, name).job)
        except JobNotFound:
            before = None  # remove_job says so
        self.service.remove_job(ns, name)
        self._paused_jobs().discard((ns, name))
        self._changed("job removed", ns, name, by, before, None)
        return {"namespace": ns, "name": name, "removed": True}

    def edit_job(self, namespace: str | None, name: str, assignments: tuple[str, ...],
                 by: str = "unknown") -> dict[str, Any]:
        from supertask.control.changes import difference, edit_event

        ns = self.service.served(namespace)
        values = parse_assignments(assignments)
        if not values:
            raise UsageError("nothing to change: give --set key=value")
        job = self._job(ns, name)
        next_before = self.service.jobstore.next_run_ts(f"{ns}/{name}")
        new = edited(job, name, values)
        self.service.put_job(ns, new)
        row = self._row(ns, name)
        before, after = difference(job, new)
        self._changed(edit_event(before, after), ns, name, by, before, after,
                      next_fire_before=_iso(next_before), next_fire=row["next_fire"])
        return row

    def add_job(self, namespace: str | None, name: str, when: str, run: str,
                assignments: tuple[str, ...], by: str = "unknown") -> dict[str, Any]:
        from supertask.control.changes import plain

        ns = self.service.served(namespace)
        if self.service.jobstore.definition(f"{ns}/{name}") is not None:
            raise UsageError(f"job {name!r} exists in namespace {ns!r}; change it with `supertask jobs edit`")
        values = parse_assignments(assignments)
        values.update(when=when, run=run)
        job = edited(None, name, values)
        self.service.put_job(ns, job)
        row = self._row(ns, name)
        self._changed("job added", ns, name, by, None, plain(job), next_fire=row["next_fire"])
        return row

    def kill_run(self, run_id: int, for_who: str | None = None, source: str | None = None,
                 by: str = "unknown") -> dict[str, Any]:
        """End a run in flight; ``for_who`` and ``source``: whom a local peer acts for (the
        dashboard beside this scheduler names its viewer), for the audit row."""
        result = kill_anywhere(self.service, run_id)  # a worker's run too (supertask.workers.route)
        self._audited("killed", result["namespace"], result["job"], for_who or by, {"run_id": run_id,
                      "status": "running"}, None, source)
        return result

    def pause_all(self, paused: bool, by: str = "unknown") -> dict[str, Any]:
        was = self.service.paused
        self.service.pause_all(paused)
        self._audited("paused all" if paused else "resumed all", None, None, by, {"paused": was},
                      {"paused": paused, "namespaces": list(self.service.namespaces)})
        return {"paused": self.service.paused}

    def stop(self, grace: float | None, by: str = "unknown") -> dict[str, Any]:
        self._audited("stopped", None, None, by, None, {"grace": grace if grace is not None
                                                         else self.service.settings.grace, "pid": os.getpid(),
                                                         "namespaces": list(self.service.namespaces)})
        self.service.stop(grace)
        return {"stopping": True, "pid": os.getpid(), "grace": self.service.settings.grace}

    def _audited(self, action: str, ns: str | None, name: str | None, by: str, before: Any, after: Any,
                 source: str | None = None) -> None:
        """The audit row of a change that is not a job's (a whole scheduler's: its
        namespace when it serves one) or that a local peer made for someone."""
        from supertask.control.changes import audit

        served = self.service.namespaces
        audit(self.service.store, by, source or f"control on {self.service.settings.host}", action,
              ns if ns is not None else (served[0] if len(served) == 1 else None), name, before, after)


def _timetable_error(service: Any) -> dict[str, Any] | None:
    """The last failed (re)load of the served file, as its watcher keeps it."""
    from supertask.scheduler.reload import TimetableWatcher

    return next((c.error for c in service.components if isinstance(c, TimetableWatcher)), None)


__all__ = ["LiveControl", "RunNotFound", "SupertaskError", "edited", "parse_assignments"]


def _queued(service: Any) -> list[dict[str, Any]]:
    """The served namespaces' queued runs by why they wait (docs/workers.md); [] when the store cannot say."""
    from supertask.workers.operators import queued_reasons

    try:
        return queued_reasons(service.store, service.namespaces)
    except Exception:
        return []
