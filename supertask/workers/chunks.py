"""A worker's runs' output, shipped into the store as it comes (``supertask_log_chunks``),
and read back by ``supertask logs RUN [--follow]`` on any host.

Each line is written as a run's log file has it (``STAMP STREAM LINE``), and the caps
of docs/runs.md hold as for a log file: the first half of ``log_max`` is shipped as it
comes (the head); past it, lines are held in memory no larger than the other half (the
tail) and shipped when the run ends, after one line saying how much was left out.
A worker ships every attempt's new lines about twice a second, in one transaction;
chunks that do not reach the store are sent again (each ``(run, seq)`` is written once)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from supertask.runs.runlog import Capped

#: the most text one chunk row holds
CHUNK = 64 * 1024


class Shipment(Capped):
    """One attempt's output on its way to the store."""

    def __init__(self, run_id: int, limit: int, tail_lines: int = 20):
        super().__init__(limit, tail_lines)
        self.run_id = run_id
        self._pending: list[str] = []
        self._unsent: list[tuple[int, str]] = []  # (seq, data), in order
        self._seq = 0

    def line(self, stream: str, line: str) -> None:
        """One line of output (``stream``: stdout, stderr, supertask)."""
        with self._lock:
            text = self._admit(stream, line)
            if text is not None:
                self._pending.append(text)

    def close(self) -> None:
        """The run ended: the tail (and what was left out) goes with the last chunk."""
        with self._lock:
            self._pending.extend(self._ending())

    def take(self) -> list[tuple[int, int, str]]:
        """The chunks to send now, ``(run_id, seq, data)``: those not yet acknowledged
        and the new lines, cut at :data:`CHUNK` characters."""
        with self._lock:
            data, self._pending = "".join(self._pending), []
            for start in range(0, len(data), CHUNK):
                self._unsent.append((self._seq, data[start:start + CHUNK]))
                self._seq += 1
            return [(self.run_id, seq, text) for seq, text in self._unsent]

    def sent(self, upto: int) -> None:
        """The store has every chunk up to seq ``upto``."""
        with self._lock:
            self._unsent = [(seq, text) for seq, text in self._unsent if seq > upto]


def ship(engine: Any, shipments: list[Shipment]) -> bool:
    """Send every shipment's chunks in one transaction; False when the store refused."""
    from supertask.workers.rows import append_chunks

    batches = [(s, s.take()) for s in shipments]
    rows = [row for _, chunk in batches for row in chunk]
    if not rows:
        return True
    try:
        append_chunks(engine, rows)
    except Exception:
        return False
    for shipment, chunk in batches:
        if chunk:
            shipment.sent(chunk[-1][1])
    return True


def print_chunks(store: Any, record: Any, *, follow: bool, out: Callable[[str], None]) -> int:
    """Print a worker's run's log from the store's chunks; with ``follow``, until it ends."""
    from supertask.workers.rows import chunks

    after = -1
    while True:
        for seq, data in chunks(store.engine, record.id, after):
            out(data)
            after = seq
        if record.status.finished or not follow:
            return 0
        time.sleep(0.25)
        record = store.get_run(record.id)
