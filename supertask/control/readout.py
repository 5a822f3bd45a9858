"""What the live API reads off a run as plain data: its process tree's CPU and memory, its
log's bytes decoded without cutting a UTF-8 sequence in two."""

from __future__ import annotations

from typing import Any


def tree_usage(pid: int | None, now: float) -> dict[str, Any]:
    """CPU (average since the run's process started) and memory of a run's process tree."""
    import psutil

    if pid is None:
        return {"cpu_percent": None, "memory_rss": None, "processes": 0}
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {"cpu_percent": None, "memory_rss": None, "processes": 0}
    cpu = rss = 0.0
    count = 0
    for proc in procs:
        try:
            with proc.oneshot():
                times = proc.cpu_times()
                cpu += (times.user + times.system) / max(0.001, now - proc.create_time())
                rss += proc.memory_info().rss
                count += 1
        except psutil.Error:
            continue
    return {"cpu_percent": round(cpu * 100, 1), "memory_rss": int(rss), "processes": count}


def decode_whole(data: bytes) -> tuple[str, int]:
    """Decode ``data``, leaving a UTF-8 sequence cut at the end for the next read."""
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError as exc:
        if exc.reason == "unexpected end of data" and exc.start >= len(data) - 3:
            return data[: exc.start].decode("utf-8", errors="replace"), exc.start
        return data.decode("utf-8", errors="replace"), len(data)
