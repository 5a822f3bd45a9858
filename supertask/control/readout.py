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


#: how much of a run's log one read returns
LOG_CHUNK = 64 * 1024


def log_chunk(record: Any, offset: int, *, tail_when_away: bool = False) -> dict[str, Any]:
    """Up to :data:`LOG_CHUNK` bytes of a run's log from byte ``offset``; ``finished``
    once the run ended and everything was read. Only the log file the store records for
    the run is read. With ``tail_when_away``, a finished run whose file is not on this
    host gives the tail its row keeps (``tail_only``)."""
    import os
    from pathlib import Path

    finished = record.status.finished
    data, size = b"", 0
    if record.log_path and Path(record.log_path).is_file():
        with open(record.log_path, "rb") as fh:
            fh.seek(max(0, offset))
            data = fh.read(LOG_CHUNK)
            size = os.fstat(fh.fileno()).st_size
    elif tail_when_away and finished and record.log_tail and offset == 0:
        text = record.log_tail if record.log_tail.endswith("\n") else record.log_tail + "\n"
        return {"data": text, "offset": 0, "finished": True, "status": str(record.status),
                "exit_code": record.exit_code, "tail_only": True}
    elif not finished:
        return {"data": "", "offset": offset, "finished": False, "status": str(record.status), "exit_code": None}
    text, used = decode_whole(data)
    new_offset = max(0, offset) + used
    return {"data": text, "offset": new_offset, "finished": finished and new_offset >= size,
            "status": str(record.status), "exit_code": record.exit_code}
