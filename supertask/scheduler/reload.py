"""Live reload: the served timetable file is watched (watchfiles) and re-read on
SIGHUP; a good edit is synced at once, a broken one is logged and changes nothing.

One worker thread does every reload, so reloads never overlap: the file watcher
thread and the SIGHUP handler only queue a request. The folder is watched, not the
file, because editors save by writing a new file and renaming it over the old one;
every quiet second the file's stat is compared as well, so a change made before
the inotify watch was in place is not missed.
A reload of the same bytes as the last good timetable changes nothing ("timetable
unchanged"); other bytes are synced, which a file naming the same jobs leaves as it
was (also "timetable unchanged"), but which reverts live edits of the jobs it names,
as a restart does. The scheduler keeps no parsed copy of the file's jobs. A
changed ``namespace:`` is refused: moving jobs to another namespace needs a restart.
"""

from __future__ import annotations

import hashlib
import queue
import signal
import threading
from pathlib import Path
from typing import Any

from supertask.errors import TimetableError
from supertask.log import get_logger

_STOP = "stop"


class TimetableWatcher:
    """A scheduler component (see supertask.scheduler.service.Component)."""

    def __init__(self, path: str | Path, *, watch: bool = True, debounce_ms: int = 200):
        self.path = Path(path).resolve()
        self.watch = watch
        self.debounce_ms = debounce_ms
        self.log = get_logger("supertask.scheduler.reload")
        self._requests: queue.Queue[str] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._service: Any = None
        self._previous_hup: Any = None
        self._seen = _fingerprint(self.path)  # the file as the served timetable was read
        self._served = _digest(self.path)  # its bytes: the same bytes again change nothing
        self.error: dict[str, Any] | None = None  # the last failed (re)load, until a good one (`status`)

    # -- Component ---------------------------------------------------------------------------

    def start(self, service: Any) -> None:
        self._service = service
        if self.error is not None:
            self._served = None  # started on a broken file: the same bytes again are read (and refused) again
        # the supervisor's threads, joined once stop() returns (and here, for a stop on its own)
        self._threads.append(service.supervisor.thread("supertask-reload", self._work))
        if self.watch:
            self._threads.append(service.supervisor.thread("supertask-watch", self._watch))
        if threading.current_thread() is threading.main_thread():
            self._previous_hup = signal.signal(signal.SIGHUP, self._on_hup)
        self.log.info("watching timetable", source=str(self.path), watch=self.watch, sighup=True)

    def stop(self) -> None:
        self._stop.set()
        self._requests.put(_STOP)
        if self._previous_hup is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self._previous_hup)
        for thread in self._threads:
            thread.join(timeout=5)

    # -- requests -------------------------------------------------------------------------------

    def _on_hup(self, _signum: int, _frame: Any) -> None:
        self._requests.put("SIGHUP")

    def _watch(self) -> None:
        import watchfiles

        def ours(_change: Any, changed: str) -> bool:
            return Path(changed).name == self.path.name

        try:
            # each quiet second also compares the file's stat: a change made before the
            # inotify watch was in place (right at start) is not missed
            for changes in watchfiles.watch(
                self.path.parent, watch_filter=ours, debounce=self.debounce_ms, stop_event=self._stop,
                recursive=False, raise_interrupt=False, rust_timeout=1000, yield_on_timeout=True,
            ):
                seen = _fingerprint(self.path)
                if changes or seen != self._seen:
                    self._seen = seen
                    self._requests.put("file changed")
        except Exception:
            self.log.exception("timetable watcher failed; SIGHUP still reloads", source=str(self.path))

    def _work(self) -> None:
        from supertask.scheduler.memory import give_back_memory

        while True:
            trigger = self._requests.get()
            if trigger == _STOP or self._stop.is_set():
                return
            try:
                self.reload(trigger)
            except Exception:  # a bug here must not end reloading
                self.log.exception("timetable reload crashed", source=str(self.path), trigger=trigger)
            give_back_memory()  # what reading the file took, once it is synced (or refused)

    # -- the reload -----------------------------------------------------------------------------

    def reload(self, trigger: str) -> bool:
        """Read, validate and sync the file; True when a new timetable was applied."""
        from supertask.timetable.load import read_timetable

        service = self._service
        if not self.path.exists():
            return self._failed(trigger, [f"{self.path}: no such file; keeping the last good timetable"])
        try:
            raw = self.path.read_bytes()
        except OSError:
            raw = None  # read_timetable reports it
        if raw is not None and hashlib.sha256(raw).hexdigest() == self._served:
            self.log.info("timetable unchanged", source=str(self.path), trigger=trigger)
            return False
        try:
            timetable = read_timetable(self.path, raw)
        except TimetableError as exc:
            return self._failed(trigger, [str(p) for p in exc.problems])
        current = service.timetable
        if current is not None and timetable.namespace != current.namespace:
            return self._failed(trigger, [f"namespace changed from {current.namespace!r} to {timetable.namespace!r}; "
                                          "restart supertask to move to another namespace"])
        report = service.resync(timetable)  # a file that names the same jobs changes nothing
        self.error = None
        self._served = hashlib.sha256(raw).hexdigest() if raw is not None else None
        if not (report.added or report.changed or report.removed):
            self.log.info("timetable unchanged", source=str(self.path), trigger=trigger)
            return False
        self.log.info("timetable reloaded", source=str(self.path), trigger=trigger,
                      added=sorted(report.added), changed=sorted(report.changed), removed=sorted(report.removed))
        return True


    def _failed(self, trigger: str, problems: list[str]) -> bool:
        """Log a failed reload and keep it for ``supertask status`` until a good one."""
        self.log.error("timetable reload failed", source=str(self.path), trigger=trigger, problems=problems,
                       message="the scheduler goes on with the last good timetable")
        self.error = failure(trigger, problems)
        return False


def invalid_at_start(log: Any, namespace: str, source: str | None, problems: Any, components: Any) -> None:
    """A start on a file broken since its last good sync, which is served: said, and kept
    by the file's watcher for ``supertask status``."""
    error = failure("start", problems)
    for component in components:
        if isinstance(component, TimetableWatcher):
            component.error = error
    log.error("timetable invalid at start", namespace=namespace, source=source, problems=error["problems"],
              message="serving the last good timetable from the store; fix the file (`supertask validate FILE`): "
              "it is reloaded when saved, or with SIGHUP")


def failure(trigger: str, problems: Any) -> dict[str, Any]:
    """What ``supertask status`` shows of a failed (re)load: when, what set it off, why."""
    from datetime import datetime, timezone

    return {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "trigger": trigger,
            "problems": [str(p) for p in problems]}


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _fingerprint(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
