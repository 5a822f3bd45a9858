"""Memory a scheduler lets go of, handed back to the system."""

from __future__ import annotations


def give_back_memory() -> None:
    """Collect what a sync let go of (the parsed timetable: hundreds of MB at 100,000
    jobs) and hand the freed heap back to the system (glibc's ``malloc_trim``;
    elsewhere the collection alone): a scheduler that synced a big file sits at the
    size of one that found it unchanged (docs/benchmarks.md)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
