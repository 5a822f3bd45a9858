"""Durations and sizes as a timetable and the command line write them: ``90s``, ``5m``, ``10MB``."""

from __future__ import annotations

import re

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h|d|w)?\s*$")
_UNIT_SECONDS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: object) -> float:
    """``90``, ``"90s"``, ``"0.5s"``, ``"5m"``, ``"2h"``, ``"1d"`` -> seconds.

    Raises ValueError with the accepted forms in its message.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use e.g. 90, 90s, 5m, 2h or 1d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"{value!r} is negative; a duration is 0 or more, e.g. 30s")
        return float(value)
    m = _DURATION_RE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration; use e.g. 90, 90s, 0.5s, 5m, 2h or 1d")
    return float(m.group(1)) * _UNIT_SECONDS[m.group(2)]


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(value: object) -> int:
    """``1048576``, ``"512k"``, ``"10MB"``, ``"1GiB"`` -> bytes (k, M, G, T are powers of 1024)."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; use e.g. 10MB, 512k or 1GB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative; a size is 0 or more, e.g. 10MB")
        return value
    m = _SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a size; use e.g. 10MB, 512k or 1GB")
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(float(m.group(1)) * 1024**power)


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s".replace(".0s", "s")
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"
