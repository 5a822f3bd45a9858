"""A run's log file: time-stamped, stream-tagged lines, capped at ``log_max`` bytes.

When a job prints more than ``log_max``, the file keeps the first half of the budget
as it came (the head) and the last half (the tail, held in memory no larger than
that half and written when the run ends), with one line in between saying how much
was left out. Memory stays bounded however much a job prints.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

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


class RunLog:
    def __init__(self, path: Path, limit: int, tail_lines: int = 20):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8", buffering=1)
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

    def write(self, stream: str, line: str) -> bool:
        """Record one line; False once the head is full (the line went to the tail)."""
        size = _STAMP_LEN + len(stream) + len(line) + 3
        with self._lock:
            self.last_lines.append(line)
            if not self.truncating and self._written + size <= self._head_budget:
                self._file.write(f"{self._clock.stamp()} {stream} {line}\n")
                self._written += size
                return True
            self.truncating = True
            self._tail.append((time.time(), stream, line))
            self._tail_bytes += size
            while self._tail_bytes > self._tail_budget and self._tail:
                _, s, text = self._tail.popleft()
                dropped = _STAMP_LEN + len(s) + len(text) + 3
                self._tail_bytes -= dropped
                self.omitted_lines += 1
                self.omitted_bytes += dropped
            return False

    def note(self, text: str) -> None:
        """A line from supertask itself (stream ``supertask``), never truncated away."""
        self.write("supertask", text)

    def close(self) -> None:
        with self._lock:
            if self.truncating:
                if self.omitted_lines:
                    self._file.write(
                        f"{self._clock.stamp()} supertask ... {self.omitted_lines} lines ({self.omitted_bytes} bytes) "
                        "left out: the log keeps its head and tail within log_max ...\n"
                    )
                clock = _Clock()
                self._file.writelines(f"{clock.stamp(t)} {s} {text}\n" for t, s, text in self._tail)
                self._tail.clear()
            self._file.close()

    @property
    def tail_text(self) -> str:
        return "\n".join(self.last_lines)
