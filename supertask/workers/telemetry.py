"""What a worker's heartbeat says of its machine: CPU, memory, disk I/O, load (psutil)."""

from __future__ import annotations

import os
import time
from typing import Any


class Telemetry:
    """Host figures since the previous reading (disk I/O as bytes a second)."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        psutil.cpu_percent(None)  # the first reading starts the interval
        self._disk = self._io()
        self._at = time.monotonic()

    def _io(self) -> tuple[int, int] | None:
        try:
            io = self._psutil.disk_io_counters()
        except Exception:
            return None
        return (io.read_bytes, io.write_bytes) if io is not None else None

    def read(self) -> dict[str, Any]:
        now, disk = time.monotonic(), self._io()
        span = max(1e-3, now - self._at)
        out: dict[str, Any] = {"cpu": self._psutil.cpu_percent(None),
                               "memory": self._psutil.virtual_memory().percent}
        if disk is not None and self._disk is not None:
            out["disk_read"] = round((disk[0] - self._disk[0]) / span)
            out["disk_write"] = round((disk[1] - self._disk[1]) / span)
        try:
            out["load"] = round(os.getloadavg()[0], 2)
        except OSError:
            pass
        self._disk, self._at = disk, now
        return out
