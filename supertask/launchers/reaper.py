"""Zombie reaping when supertask runs as PID 1 (in a container), like supercronic's.

As PID 1, every orphan in the container becomes our child: a job's background
process that outlives it would stay a zombie for ever unless we wait for it. The
reaper thread waits for zombie children that supertask did not start itself; the
ones it did start (:func:`spawn`) are waited for by their own code, so their exit
codes stay theirs.
"""

from __future__ import annotations

import os
import subprocess
import threading

from supertask.log import get_logger

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

    from supertask.threads import Spawn

_lock = threading.Lock()
_ours: set[int] = set()
_active = False  # the lock only matters once the reaper runs (PID 1)


def spawn(*args: Any, popen: Any = subprocess.Popen, **kwargs: Any) -> subprocess.Popen[Any]:
    """``subprocess.Popen`` (or ``popen``, a subclass) whose child the reaper leaves to its caller."""
    if not _active:
        return popen(*args, **kwargs)
    with _lock:
        proc = popen(*args, **kwargs)
        _ours.add(proc.pid)
    return proc


def run(argv: list[str], *, timeout: float | None = None, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run`` with output captured, for a child the reaper leaves alone."""
    proc = spawn(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    finally:
        release(proc.pid)
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def release(pid: int) -> None:
    if not _active:
        return
    with _lock:
        _ours.discard(pid)


def reap_once() -> list[int]:
    """Wait for zombie children not started through :func:`spawn`; return their pids."""
    import psutil

    reaped: list[int] = []
    with _lock:
        try:
            children = psutil.Process().children()
        except psutil.Error:
            return reaped
        for child in children:
            if child.pid in _ours:
                continue
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    continue
                pid, _ = os.waitpid(child.pid, os.WNOHANG)
            except (psutil.Error, ChildProcessError, OSError):
                continue
            if pid:
                reaped.append(pid)
    return reaped


def start_if_pid1(stop: threading.Event, spawn: Spawn, interval: float = 1.0,
                  force: bool = False) -> threading.Thread | None:
    """Start the reaper thread with ``spawn`` (the scheduler's supervisor's, which joins
    it once ``stop`` is set) when this process is PID 1 (or ``force``)."""
    global _active
    if os.getpid() != 1 and not force:
        return None
    _active = True
    log = get_logger("supertask.launchers.reaper")

    def loop() -> None:
        while not stop.wait(interval):
            for pid in reap_once():
                log.debug("reaped orphan", pid=pid)

    started = spawn("supertask-reaper", loop)
    log.info("running as PID 1: reaping orphaned children")
    return started
