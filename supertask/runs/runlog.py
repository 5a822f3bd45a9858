"""A run's log file: time-stamped, stream-tagged lines, capped at ``log_max`` bytes.

When a job prints more than ``log_max``, the file keeps the first half of the budget
as it came (the head) and the last half (the tail, held in memory no larger than
that half and written when the run ends), with one line in between saying how much
was left out. Memory stays bounded however much a job prints.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

from supertask import statefolder

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a one-shot run's start-up)
if TYPE_CHECKING:
    from typing import TextIO

UTC = timezone.utc
_STAMP_LEN = len("2026-01-01T00:00:00.000+00:00")


class _Clock:
    """ISO time stamps with milliseconds, formatted at most once per millisecond."""

    def __init__(self) -> None:
        self._ms = -1
        self._text = ""

    def stamp(self, now: float | None = None) -> str:
        now = time.time() if now is None else now
        ms = int(now * 1000)
        if ms != self._ms:
            self._ms = ms
            self._text = datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
        return self._text


def _open(path: Path) -> TextIO:
    """The log file (``HOME/logs/NAMESPACE/JOB/ID.log``), created 0600 and never through
    a symlink (:mod:`supertask.statefolder`); its folders are made (0700) and checked
    the first time this process writes in them (a ``mkdir`` for every run, when the
    folder is there already, cost a tenth of the scheduler's time at a thousand runs a
    second)."""
    if str(path.parent) not in statefolder._checked:
        try:
            statefolder.private_dir(path.parent, path.parents[3])
        except statefolder.UnsafeStateFolder as exc:  # this run's log is not kept; the run goes on
            raise PermissionError(13, str(exc)) from None
    return os.fdopen(statefolder.open_private(path), "a", encoding="utf-8", buffering=1)


class Capped:
    """The caps of ``log_max`` that a run's log keeps wherever it goes (a file here, the
    store's chunks for a worker's run: :mod:`supertask.workers.chunks`): the head as it
    comes, then a tail no larger than the other half, and the last lines for the run's
    row. Subclasses hold :attr:`_lock` around :meth:`_admit` and :meth:`_ending`."""

    def __init__(self, limit: int, tail_lines: int = 20):
        self._head_budget = limit // 2
        self._tail_budget = limit - self._head_budget
        self._written = 0
        self._tail: deque[tuple[float, str, str]] = deque()  # formatted when written out
        self._clock = _Clock()
        self._tail_bytes = 0
        self.omitted_lines = 0
        self.omitted_bytes = 0
        self.truncating = False
        self.last_lines: deque[str] = deque(maxlen=tail_lines)
        self._lock = threading.Lock()

    def _admit(self, stream: str, line: str) -> str | None:
        """One line as the head keeps it (stamped), or None: it went to the tail."""
        size = _STAMP_LEN + len(stream) + len(line) + 3
        self.last_lines.append(line)
        if not self.truncating and self._written + size <= self._head_budget:
            self._written += size
            return f"{self._clock.stamp()} {stream} {line}\n"
        self.truncating = True
        self._tail.append((time.time(), stream, line))
        self._tail_bytes += size
        while self._tail_bytes > self._tail_budget and self._tail:
            _, s, text = self._tail.popleft()
            dropped = _STAMP_LEN + len(s) + len(text) + 3
            self._tail_bytes -= dropped
            self.omitted_lines += 1
            self.omitted_bytes += dropped
        return None

    def _ending(self) -> list[str]:
        """What follows the head when the run ends: how much was left out, then the tail."""
        out = []
        if self.omitted_lines:
            out.append(f"{self._clock.stamp()} supertask ... {self.omitted_lines} lines ({self.omitted_bytes} bytes) "
                       "left out: the log keeps its head and tail within log_max ...\n")
        clock = _Clock()
        out.extend(f"{clock.stamp(t)} {s} {text}\n" for t, s, text in self._tail)
        self._tail.clear()
        return out

    @property
    def tail_text(self) -> str:
        return "\n".join(self.last_lines)


class RunLog(Capped):
    """``lazy``: the file is created with the first line (a run that prints nothing has
    none: creating a file cost as much as starting the child). When it cannot be
    created or written (a full disk), :attr:`error` says why, the file is left as it
    is and the lines are only kept for :attr:`tail_text`: the run goes on without it."""

    def __init__(self, path: Path, limit: int, tail_lines: int = 20, *, lazy: bool = False):
        super().__init__(limit, tail_lines)
        self.path = path
        self.error: OSError | None = None
        self._file: TextIO | None = None if lazy else _open(path)
        self.opened = self._file is not None  # whether the file exists (a lazy one: was written)

    def write(self, stream: str, line: str) -> bool:
        """Record one line; False once the head is full (the line went to the tail)."""
        with self._lock:
            text = self._admit(stream, line)
            if text is None:
                return False
            if self._file is not None or self._opened():
                try:
                    self._file.write(text)  # type: ignore[union-attr]
                except (OSError, ValueError) as exc:  # a full disk: the log is dropped, the run goes on
                    self._drop(exc)
            return True

    def note(self, text: str) -> None:
        """A line from supertask itself (stream ``supertask``), never truncated away."""
        self.write("supertask", text)

    def _drop(self, exc: Exception) -> None:
        """Stop writing the file (what it holds stays); :attr:`error` says why."""
        self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
        file, self._file = self._file, None
        self._tail.clear()
        try:
            if file is not None:
                file.close()
        except (OSError, ValueError):
            pass

    def _opened(self) -> bool:
        if self.error is None:
            try:
                self._file = _open(self.path)
                self.opened = True
            except OSError as exc:
                self.error = exc
        return self._file is not None

    def close(self) -> None:
        """Write out the tail and close the file (a lazy log never written has none)."""
        with self._lock:
            if self._file is None and not (self.truncating and self._opened()):
                return
            assert self._file is not None
            try:
                if self.truncating:
                    self._file.writelines(self._ending())
                self._file.close()
                self._file = None
            except (OSError, ValueError) as exc:
                self._drop(exc)
