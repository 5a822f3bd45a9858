"""A run's log file: time-stamped, stream-tagged lines, capped at ``log_max`` bytes.

When a job prints more than ``log_max``, the file keeps the first half of the budget
as it came (the head) and the last half (the tail, held in memory no larger than
that half and written when the run ends), with one line in between saying how much
was left out. Memory stays bounded however much a job prints.
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timezone
from pathlib import Path

UTC = timezone.utc


class RunLog:
    def __init__(self, path: Path, limit: int, tail_lines: int = 20):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file = open(path, "a", encoding="utf-8", buffering=1)
        self._head_budget = limit // 2
        self._tail_budget = limit - self._head_budget
        self._written = 0
        self._tail: deque[str] = deque()
        self._tail_bytes = 0
        self.omitted_lines = 0
        self.omitted_bytes = 0
        self.truncating = False
        self.last_lines: deque[str] = deque(maxlen=tail_lines)
        self._lock = threading.Lock()

    def write(self, stream: str, line: str) -> bool:
        """Record one line; False once the head is full (the line went to the tail)."""
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
        text = f"{stamp} {stream} {line}\n"
        size = len(text)
        with self._lock:
            self.last_lines.append(line)
            if not self.truncating and self._written + size <= self._head_budget:
                self._file.write(text)
                self._written += size
                return True
            self.truncating = True
            self._tail.append(text)
            self._tail_bytes += size
            while self._tail_bytes > self._tail_budget and self._tail:
                dropped = self._tail.popleft()
                self._tail_bytes -= len(dropped)
                self.omitted_lines += 1
                self.omitted_bytes += len(dropped)
            return False

    def note(self, text: str) -> None:
        """A line from supertask itself (stream ``supertask``), never truncated away."""
        self.write("supertask", text)

    def close(self) -> None:
        with self._lock:
            if self.truncating:
                stamp = datetime.now(UTC).isoformat(timespec="milliseconds")
                if self.omitted_lines:
                    self._file.write(
                        f"{stamp} supertask ... {self.omitted_lines} lines ({self.omitted_bytes} bytes) "
                        "left out: the log keeps its head and tail within log_max ...\n"
                    )
                self._file.writelines(self._tail)
                self._tail.clear()
            self._file.close()

    @property
    def tail_text(self) -> str:
        return "\n".join(self.last_lines)
