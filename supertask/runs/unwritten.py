"""Run rows the store did not take (it was away, or its disk full): kept, retried with
backoff, spooled to the state folder, written when the store is back.

A run that ended while the store refused its row is not forgotten, nor later marked
``lost``: its end is kept in memory and in ``unwritten-runs.jsonl`` in the state
folder (so a crash or a stop before the store returns loses nothing either), tried
again after 1 s, 2 s, 4 s, then every :data:`MAX_DELAY` seconds, and written the moment
the store takes it. A scheduler replays the file at its start, before it marks the
runs of a crash ``lost``. A run whose fire could not even be claimed (the store was
away at its start) ran all the same, under a provisional id (negative); its row is
claimed and written when the store is back. So are the rows of fires that did not run
(:func:`claim_or_keep`: skipped because the job's run was still running, missed past
``misfire_grace``), so that history shows every fire of an outage.
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

from supertask.log import get_logger
from supertask.model import RunStatus
from supertask.store.statements import Held

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a one-shot run's start-up)
if TYPE_CHECKING:
    from typing import Any

    from supertask.runs.context import RunContext

SPOOL = "unwritten-runs.jsonl"
FIRST_DELAY = 1.0
MAX_DELAY = 5.0


_last = [0]
_ids = threading.Lock()


def provisional_id() -> int:
    """An id for a run whose row could not be claimed: negative, unique on this host."""
    with _ids:
        _last[0] = max(time.time_ns() // 1000, _last[0] + 1)
        return -_last[0]


class Unwritten:
    """The rows waiting for the store: ``{"id": run id or None, "claim": the claim to
    make first (a provisional run) or None, "values": the row's end}``."""

    def __init__(self, store: Any, home: Path | None):
        self.store = store
        self.path = home / SPOOL if home is not None else None
        self._items: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._delay = FIRST_DELAY
        self._due: float | None = None
        self.log = get_logger("supertask.run")

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def keep(self, items: list[dict[str, Any]], error: Exception | None = None) -> None:
        """Keep ``items`` until the store takes them (retried by :meth:`retry`)."""
        with self._lock:
            first = not self._items
            self._items.extend(items)
            if self._due is None:
                self._due = time.monotonic() + (self._delay if error is not None else 0.0)
            self._save()
        if first and error is not None:
            self.log.error("store unavailable: run ends kept until it is back", runs=len(items), error=str(error),
                           retry_in=self._delay, spool=str(self.path) if self.path else None)

    def now(self) -> None:
        """Try what waits at once (the store answers again)."""
        with self._lock:
            if self._items:
                self._due, self._delay = time.monotonic(), FIRST_DELAY

    def due_in(self) -> float | None:
        """Seconds until the next try (0: now), None when nothing waits."""
        with self._lock:
            return None if self._due is None else max(0.0, self._due - time.monotonic())

    def retry(self) -> int:
        """Try to write what waits; return how many rows are still waiting."""
        with self._lock:
            items, self._items = self._items, []
            self._due = None
        left: list[dict[str, Any]] = []
        error: Exception | None = None
        for item in items:
            if error is not None:
                left.append(item)
                continue
            try:
                write(self.store, item)
            except Exception as exc:  # still away: the rest wait too
                error = exc
                left.append(item)
        with self._lock:
            self._items = left + self._items
            if error is None:
                self._delay = FIRST_DELAY
                if self._items:
                    self._due = time.monotonic()
            else:
                self._delay = min(MAX_DELAY, self._delay * 2)
                self._due = time.monotonic() + self._delay
            self._save()
            waiting = len(self._items)
        if items and len(left) < len(items):
            self.log.info("store back: run ends written", runs=len(items) - len(left), waiting=waiting)
        return waiting

    def _save(self) -> None:
        """The spool file: what waits, or none (under the lock; a full disk keeps it in memory only)."""
        if self.path is None:
            return
        try:
            if not self._items:
                self.path.unlink(missing_ok=True)
                return
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.writelines(json.dumps(item, default=_plain) + "\n" for item in self._items)
            os.replace(tmp, self.path)
        except OSError:
            pass


def pending(ctx: RunContext) -> Unwritten:
    """The rows waiting for the store (a one-shot run: its own, spooled at once)."""
    if ctx.unwritten is None:
        kept = ctx.unwritten = Unwritten(ctx.store, ctx.settings.home)
        health = getattr(ctx.store, "health", None)
        if health is not None:  # the store is back: try at once, not at the next backoff step

            def back() -> None:
                kept.now()
                if ctx.finisher is not None:
                    ctx.finisher.wake()

            health.when_back.append(back)
    return ctx.unwritten


def keep(ctx: RunContext, items: list[dict[str, Any]], error: Exception | None = None) -> None:
    """Keep ``items`` (see :class:`Unwritten`) and wake the finisher, which tries them again."""
    pending(ctx).keep(items, error)
    if ctx.finisher is not None:
        ctx.finisher.wake()


def claim_or_keep(ctx: RunContext, claim: dict[str, Any]) -> None:
    """A row no run follows (a fire skipped, or missed): claimed now, else kept with the
    time it was decided, and claimed when the store is back."""
    decided = datetime.now(timezone.utc)
    try:
        ctx.store.claim_run(**claim)
    except Exception as exc:  # the store is away
        keep(ctx, [{"id": None, "claim": claim, "values": {"finished": decided},
                    "owner": getattr(ctx.store, "instance", None)}], exc)


def update_or_keep(ctx: RunContext, rows: list[tuple[int, dict[str, Any]]]) -> None:
    """Rows of claimed fires that did not run after all: written now, else kept."""
    try:
        ctx.store.update_runs(rows)
    except Exception as exc:  # the store is away
        owner = getattr(ctx.store, "instance", None)
        keep(ctx, [{"id": run_id, "claim": None, "values": values, "owner": owner} for run_id, values in rows], exc)


def write(store: Any, item: dict[str, Any]) -> None:
    """Write one waiting row: claim it first when it has no id (taken meanwhile: dropped).
    A run's end (values with a ``status``) is written only while the run is still held by
    the instance that ran it (``owner``): one another host took over meanwhile is refused
    and logged."""
    values = dict(item["values"])
    if isinstance(values.get("status"), str):
        values["status"] = RunStatus(values["status"])
    for key in ("started", "finished"):
        if isinstance(values.get(key), str):
            values[key] = datetime.fromisoformat(values[key])
    run_id, owner = item["id"], item.get("owner")
    if run_id is None and "take_up" in item["claim"]:  # a queued row run while the store was away
        run_id = item["claim"]["take_up"]
        if store.end_runs([(run_id, {"status": RunStatus.RUNNING})], owner or ""):  # still queued and ours
            late_result(store, run_id, values)  # another host took it up meanwhile
            return
    elif run_id is None:
        claim = dict(item["claim"])
        claim.setdefault("instance", owner or "")  # "": none (a one-shot run's), not the replaying scheduler
        claim["scheduled"] = _time(claim["scheduled"])
        claim["log_dir"] = Path(claim["log_dir"]) if claim.get("log_dir") is not None else None
        if isinstance(claim.get("status"), str):
            claim["status"] = RunStatus(claim["status"])
        claim["adopt"] = bool(owner)  # a scheduler's own claim that committed late: its row is this fire's
        got = store.claim_runs([claim])[0]
        if got is None:  # another's row: the fire is theirs
            return
        run_id = got
        if isinstance(got, Held):
            run_id = got.id
            status = claim.get("status", RunStatus.RUNNING)
            if status is not RunStatus.RUNNING:  # a fire that did not run after all: the row says so
                values = {"status": status, "message": claim.get("message"), "started": None,
                          "log_path": None, "finished": datetime.now(timezone.utc), **values}
    if not values:
        return
    if "status" not in values:  # not a run's end (a skipped fire's time, say): written as it is
        store.update_run(run_id, **values)
    elif store.end_runs([(run_id, values)], owner or ""):
        late_result(store, run_id, values)


def late_results(store: Any, ended: list[Any]) -> None:
    """Ends (:class:`~supertask.runs.lifecycle.Ended`) the store refused: their runs were
    declared ``lost`` and taken over by another host while this one was out of touch.
    Logged, and their outcome becomes ``lost`` (what the row says): a retry this host
    would start is the one the other host started already (its claim is refused)."""
    from supertask.launchers.base import Outcome

    for e in ended:
        late_result(store, e.active.run_id, {"status": e.outcome.status, "exit_code": e.outcome.exit_code})
        e.outcome = Outcome(RunStatus.LOST, e.outcome.exit_code, e.outcome.pid, "late result rejected")


def late_result(store: Any, run_id: int, values: dict[str, Any]) -> None:
    """Log one refused end, with what the row says instead."""
    try:
        row = store.get_run(run_id)
        now: dict[str, Any] = {"row_status": row.status, "row_message": row.message}
    except Exception:
        now = {}
    status = values.get("status")
    get_logger("supertask.run").warning(
        "late result rejected", run=run_id, status=getattr(status, "value", status), exit_code=values.get("exit_code"),
        note="another host took this run over after this scheduler missed its lease; the row keeps what it says",
        **now)


def replay(store: Any, home: Path) -> int:
    """At a scheduler's start: write the rows a scheduler before it left unwritten;
    return how many. What the store still refuses stays in the file."""
    path = home / SPOOL
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return 0
    items = [json.loads(line) for line in lines if line.strip()]
    pending = Unwritten(store, home)
    pending._items = items
    left = pending.retry()
    return len(items) - left


def _plain(value: object) -> object:
    if isinstance(value, RunStatus):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot keep {value!r}")


def _time(value: object) -> object:
    return datetime.fromisoformat(value) if isinstance(value, str) else value
