"""Loaded (through PYTHONPATH) only into the scheduler that tests/cluster/test_clock_skew.py
runs under libfaketime, never by supertask itself.

libfaketime 0.9.10 (Debian's), with only the wall clock moved (FAKETIME_DONT_FAKE_MONOTONIC),
answers EINVAL to the absolute monotonic ``clock_nanosleep`` that Python's ``time.sleep``
makes (moving the monotonic clock too makes every timed wait of a thread 5 s longer).
Here ``time.sleep`` waits with ``select`` instead, which libfaketime leaves alone."""

import select
import time


def _sleep(seconds: float) -> None:
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        select.select([], [], [], left)


time.sleep = _sleep
