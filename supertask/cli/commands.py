"""The work behind the CLI commands that do more than one call: run, next, logs.

The CLI parses and prints; this module composes timetable, store, scheduler and
runner, and returns exit codes and plain data.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from supertask.errors import ScheduleError, SupertaskError, TimetableError, UsageError
from supertask.log import get_logger
from supertask.model import Job, Reason, RunStatus, Timetable, sha256_hex
from supertask.settings import Settings

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

    from supertask.store.base import RunStore, Store

UTC = timezone.utc


def run(
    settings: Settings,
    *,
    command: list[str],
    file: str | None,
    when: str | None,
    name: str | None,
    namespace: str | None,
) -> int:
    """``supertask run``: a one-liner once, a one-liner or .py on a schedule, or a timetable."""
    from supertask.statefolder import check_namespace, secure_home

    if namespace is not None:
        check_namespace(namespace)
    secure_home(settings.home, create=False)  # ours alone, or exit 2 before anything is read or written
    if command:
        if file:
            raise UsageError("give either --file or a command after --, not both")
        job = _one_liner(_join_command(command), when, name)
        if job.when in ("once", "now"):
            return _run_once(settings, job, namespace)
        return _serve_one(settings, job, namespace, source=None)
    if file and file.endswith(".py"):
        path = Path(file).resolve()
        if not path.is_file():
            raise UsageError(f"--file {file}: no such file")
        job = _one_liner(f"uv:{path}", when, name or re.sub(r"[^A-Za-z0-9_.-]+", "-", path.stem).strip("-.")[:40] or "job")
        if job.when in ("once", "now"):
            return _run_once(settings, job, namespace)
        return _serve_one(settings, job, namespace, source=str(path))
    if when:
        raise UsageError("--when applies to a one-line job (-- KIND:TARGET) or a .py --file, not to a timetable")
    return _serve_timetable(settings, file, namespace)


def _join_command(words: list[str]) -> str:
    first, rest = words[0], words[1:]
    return first + (" " + shlex.join(rest) if rest else "")


def _one_liner(run_text: str, when: str | None, name: str | None) -> Job:
    """The job of a one-line ``run -- KIND:TARGET``: the same ``Job`` a timetable entry
    ``{name, when, run}`` gives, checked without YAML (a one-shot run never needs it)."""
    from supertask.model import NAME_RE, NAME_RULE
    from supertask.timetable.runtext import normalise_run

    when = when or "once"
    if when not in ("once", "now"):  # these two need no parsing, nor the machine's zone (~10 ms)
        from supertask.schedules.trigger import parse_when

        try:
            parse_when(when)
        except ScheduleError as exc:
            raise UsageError(f"--when: {exc}") from exc
    if name is None:
        target = run_text.split(":", 1)[1] if re.match(r"^[a-z]+:", run_text) else run_text
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", target).strip("-.")[:40].strip("-.") or "job"
    elif not NAME_RE.match(name):
        raise UsageError(f"--name {name!r}: a job name is {NAME_RULE}; e.g. --name nightly-dump")
    try:
        run = normalise_run(run_text)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return Job(name=name, when=when, run=run)


def _cli_namespace(settings: Settings, job: Job | None = None) -> str:
    """One-shot runs share one namespace per host and user; a scheduled one-liner gets
    its own, derived from its schedule and command, so restarting it keeps its state."""
    key = f"{settings.host}|{settings.user}"
    if job is not None:
        key += f"|{job.when}|{job.run}"
    return "cli-" + sha256_hex(key.encode())[:8]


def _run_once(settings: Settings, job: Job, namespace: str | None) -> int:
    """Run one job now in the foreground, record it, return its exit code."""
    from supertask.store.lite import open_lite

    store: RunStore | None = open_lite(settings.store_url)  # an existing SQLite store: no SQLAlchemy import
    if store is None:
        from supertask.log import configure_stdlib
        from supertask.store.sql import open_store

        configure_stdlib()  # SQLAlchemy logs through it (the console script's one-shot path skipped it)
        store = open_store(settings.store_url)
    try:
        return _record_once(settings, store, job, namespace)
    finally:
        store.close()  # now, not whenever the interpreter gets to it: SQLite checkpoints its WAL here


def _record_once(settings: Settings, store: RunStore, job: Job, namespace: str | None) -> int:
    from supertask.runs.context import RunContext
    from supertask.runs.runner import execute, plain_relay

    ns = namespace or _cli_namespace(settings)
    store.ensure_namespace(ns, source="command line", host=settings.host, user=settings.user)
    store.sync(ns, [job], lambda _job: None, remove_missing=False)
    ctx = RunContext(store=store, settings=settings, relay=plain_relay, relay_capped=False)
    import signal
    import threading

    def stop(signum: int, _frame: Any) -> None:
        with ctx.lock:
            for active in ctx.active.values():
                active.kill.set()
        ctx.shutdown.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    result = execute(ctx, ns, job, datetime.now(UTC), Reason.MANUAL)
    if result is None:
        return 1
    _run_id, outcome = result
    if outcome.status is RunStatus.SUCCEEDED:
        return 0
    if outcome.exit_code is not None and outcome.exit_code > 0:
        return outcome.exit_code
    if outcome.exit_code is not None and outcome.exit_code < 0:
        return 128 - outcome.exit_code
    return 1


def _serve_one(settings: Settings, job: Job, namespace: str | None, source: str | None) -> int:
    ns = namespace or _cli_namespace(settings, job)
    return _serve(settings, ns, Timetable(jobs=(job,), namespace=ns, source=source or "command line"))


def _serve_timetable(settings: Settings, file: str | None, namespace: str | None) -> int:
    """Serve a timetable file; an unchanged one is not read again (:mod:`supertask.timetable.syncmark`)."""
    from supertask.timetable import syncmark
    from supertask.timetable.load import default_namespace, find_timetable, read_timetable

    path = Path(file) if file else find_timetable()
    key = syncmark.key_for(path, settings.host, settings.user, namespace)
    try:
        raw: bytes | None = path.read_bytes()
    except OSError:
        raw = None  # read_timetable says what is wrong
    store = _existing_store(settings.store_url)
    mark = syncmark.valid_mark(store, key, raw) if store is not None and raw is not None else None
    if mark is not None:
        source = os.path.abspath(path)
        return _serve(settings, mark.namespace, Timetable(jobs=(), namespace=mark.file_namespace, source=source),
                      store=store, mark=mark)
    try:
        timetable = read_timetable(path, raw)  # an invalid file stops here, before the store is changed
    except TimetableError as exc:
        last = syncmark.last_mark(store, key) if store is not None else None
        if last is None:  # a first start: no good timetable to fall back on
            raise
        # a restart on a file broken since its last good sync: serve what that sync left in
        # the store (systemd would otherwise restart us into the same error, with no jobs)
        source = os.path.abspath(path)
        return _serve(settings, last.namespace, Timetable(jobs=(), namespace=last.file_namespace, source=source),
                      store=store, mark=last, broken=exc)
    ns = namespace or timetable.namespace or default_namespace(timetable.source, settings.host, settings.user)
    # handed on, not kept here: _serve lets go of the parsed jobs and the file once they
    # are synced, which it could not while this frame held them (448 -> 103 MB idle at
    # 100,000 jobs)
    parsed: list[Timetable] = [timetable]
    marking: list[tuple[str, bytes] | None] = [(key, raw) if raw is not None else None]
    del timetable, raw
    return _serve(settings, ns, parsed.pop(), store=store, marking=marking.pop())


def _existing_store(url: str) -> Store | None:
    """The store, when it exists already (opened without creating anything), else None."""
    from supertask.errors import StoreError
    from supertask.store.sql import open_store
    from supertask.store.statements import sqlite_file

    path = sqlite_file(url)
    if url.startswith("memory:") or (path is not None and not Path(path).is_file()):
        return None
    try:
        return open_store(url, create=False)
    except StoreError:
        return None  # opened (and reported) again below


def _serve(settings: Settings, namespace: str, timetable: Timetable, *, store: Any = None,
           mark: Any = None, marking: tuple[str, bytes] | None = None, broken: TimetableError | None = None) -> int:
    """Sync ``timetable`` (unless ``mark`` says the store holds it already) and serve
    ``namespace`` until a stop; ``marking``: mark the synced file for the next start;
    ``broken``: the file's problems, when ``mark`` is its last good sync."""
    import signal
    import threading

    from supertask.scheduler.components import build_components
    from supertask.scheduler.lock import take_for
    from supertask.scheduler.memory import give_back_memory
    from supertask.scheduler.reboot import fire_start_jobs
    from supertask.scheduler.service import Service, sync_timetable
    from supertask.store.sql import open_store
    from supertask.timetable import syncmark

    log = get_logger("supertask.scheduler.service")
    held = take_for(settings, namespace, log)  # one scheduler per namespace and state folder (exit 2)
    # from here on SIGINT/SIGTERM mean "stop", even before the service is up
    early_stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda _signum, _frame: early_stop.set())
    up_since = datetime.now(UTC)  # fires due before this were missed while we were down
    # made (and their options checked: a bad --metrics) before the store is touched
    components = build_components(settings, timetable)
    if store is None or store.schema_missing:
        store = open_store(settings.store_url)
    if mark is not None:
        store.ensure_namespace(namespace, source=timetable.source, host=settings.host, user=settings.user)
        fire_start_jobs(settings, store, namespace, log, restart=mark.restart, reboot=mark.reboot)
        if broken is not None:
            from supertask.scheduler.reload import invalid_at_start

            invalid_at_start(log, namespace, timetable.source, broken.problems, components)
        else:
            log.info("timetable synced", namespace=namespace, source=timetable.source, unchanged="all",
                     note="the file and the namespace are as at the last sync: not read again")
    else:
        report = sync_timetable(store, namespace, timetable, settings)
        if marking is not None:
            syncmark.record(store, marking[0], marking[1], namespace, timetable)
        fire_start_jobs(settings, store, namespace, log, jobs=timetable.jobs)
        log.info("timetable synced", namespace=namespace, source=timetable.source, added=len(report.added),
                 changed=len(report.changed), removed=len(report.removed), unchanged=len(report.unchanged))
        # the jobs live in the store now: the parsed ones (and the file) would hold on to
        # hundreds of MB at 100,000 jobs for as long as the scheduler runs
        timetable = Timetable(jobs=(), namespace=timetable.namespace, source=timetable.source)
        del report, marking
        give_back_memory()
    service = Service(settings, store, [namespace], timetable=timetable, components=components, stop_event=early_stop,
                      up_since=up_since)
    service.install_signal_handlers()
    try:
        return service.serve()
    finally:
        held.release()


# -- next ---------------------------------------------------------------------------------------


def next_fires(path: Path, *, count: int, after: str | None) -> list[dict[str, Any]]:
    """Each job's next ``count`` fire times after ``after`` (default now), described,
    with warnings: a schedule that never fires again, fires that DST moves."""
    from supertask.schedules.trigger import START_KINDS, dst_notes, parse_when, upcoming
    from supertask.settings import Settings
    from supertask.timetable.load import default_namespace, read_timetable

    timetable = read_timetable(path)
    start = _parse_after(after)
    settings = Settings.build()
    ns = timetable.namespace or default_namespace(timetable.source, settings.host, settings.user)
    rows = []
    for job in timetable.jobs:
        schedule = parse_when(job.when, job.timezone)
        fires = upcoming(schedule, start.astimezone(schedule.timezone), count) if job.enabled else []
        warnings = dst_notes(schedule, fires)
        if job.enabled and not fires and schedule.kind not in START_KINDS:
            warnings.insert(0, f"never fires after {start.isoformat(timespec='minutes')}"
                            + ("; its time is past" if schedule.kind == "date" else ""))
        rows.append({
            "namespace": ns,
            "job": job.name,
            "when": job.when,
            "timezone": str(schedule.timezone),
            "description": schedule.describe() + ("" if job.enabled else " (disabled)"),
            "fires": [f.isoformat() for f in fires],
            "warnings": warnings,
        })
    return rows


def _parse_after(after: str | None) -> datetime:
    if not after:
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(after)
    except ValueError:
        raise UsageError(f"--after {after!r} is not an ISO 8601 time; use e.g. 2026-03-08T00:00:00-05:00") from None
    return value if value.tzinfo else value.astimezone()


# -- logs ---------------------------------------------------------------------------------------


def print_log(store: Store, run_id: int, *, follow: bool, namespace: str | None = None,
              write: Any = None) -> int:
    """Print a run's log file (to ``write``, else stdout); with ``follow``, keep printing
    until the run ends. With ``namespace``, a run of another namespace is not found."""
    out = write or _write_out
    record = store.get_run(run_id)
    if namespace is not None and record.namespace != namespace:
        from supertask.errors import RunNotFound

        raise RunNotFound(run_id)
    if record.worker is not None and not record.log_path:  # shipped into the store (docs/workers.md)
        from supertask.workers.chunks import print_chunks
        return print_chunks(store, record, follow=follow, out=out)
    if not record.log_path:
        if record.status in (RunStatus.SKIPPED, RunStatus.LOST):
            if write is None:
                out(f"run {run_id} has no log: it was {record.status} ({record.message})\n")
            return 0
        if record.status.finished:  # the run printed nothing: no file was made
            return 0
        raise SupertaskError(f"run {run_id} has no log file recorded")
    path = Path(record.log_path)
    while not path.exists():  # a running run's log appears with its first line
        if record.status.finished:
            raise SupertaskError(f"the log of run {run_id} ({path}) is gone; it was kept on host {record.host}")
        if not follow:
            return 0
        time.sleep(0.2)
        record = store.get_run(run_id)
        if record.log_path is None:  # it ended without printing anything
            return 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        while True:
            chunk = fh.read()
            if chunk:
                out(chunk)
            if not follow:
                return 0
            if store.get_run(run_id).status.finished:
                rest = fh.read()
                if rest:
                    out(rest)
                return 0
            time.sleep(0.2)


def _write_out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def log_json(store: Any, run_id: int, *, follow: bool, namespace: str | None = None) -> dict[str, Any]:
    """``logs --json``: the run (as ``history --json`` has it) and its log text (all of it,
    once the run has ended, with ``follow``)."""
    parts: list[str] = []
    print_log(store, run_id, follow=follow, namespace=namespace, write=parts.append)
    return {"run": store.get_run(run_id).to_json(), "log": "".join(parts)}


# -- prune --------------------------------------------------------------------------------------


def prune(store: Store, namespace: str | None, *, keep: int | None,
          max_age: float | None) -> dict[str, dict[str, int]]:
    """Apply retention: ``keep``/``max_age`` for every job when given, else each job's
    own ``history_keep``. Returns per namespace the real runs and the skipped rows
    removed (their log files go too)."""
    from supertask.runs.runner import apply_retention
    from supertask.store.statements import Pruned

    names = [namespace] if namespace else [n["name"] for n in store.list_namespaces()]
    removed: dict[str, dict[str, int]] = {}
    for ns in names:
        pruned = Pruned()
        if keep is not None or max_age is not None:
            pruned = apply_retention(store, ns, None, keep=keep, max_age=max_age) or pruned
        else:
            for stored in store.list_jobs(ns):
                pruned += apply_retention(store, ns, stored.job) or Pruned()
        removed[ns] = {"runs": pruned.runs, "skipped": pruned.skipped}
    return removed
