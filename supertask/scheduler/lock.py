"""One scheduler per namespace and state folder: a lock file the kernel lets go of.

Two ``supertask run`` serving the same namespace from the same state folder would
both fire its jobs, yet only the first answers on the control socket: ``stop`` ends
that one, and ``status`` then says "no running scheduler" while the second goes on
firing. So a scheduler takes an exclusive ``flock`` on
``$SUPERTASK_HOME/locks/<namespace>.lock`` (a long or odd name gives
``ns-<sha256 prefix>.lock``) before it touches the store, writes its pid into it and
holds it until it exits. A second one is refused (exit 2, naming the first one's
pid) unless started with ``--allow-second`` (``SUPERTASK_ALLOW_SECOND=1``), which
serves on purpose beside the first, without a control socket of its own.

The lock is the kernel's: a scheduler that crashed or was killed (``kill -9``) holds
nothing, and the next start takes the lock at once. The descriptor is not inherited
by job children (Python opens files close-on-exec), so a job that outlives its
scheduler does not keep the lock.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from supertask.errors import UsageError

LOCK_FOLDER = "locks"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


def lock_path(home: Path, namespace: str) -> Path:
    """The lock file of ``namespace`` in the state folder ``home``."""
    if _PLAIN_NAME.fullmatch(namespace):
        name = namespace
    else:
        from supertask.model import sha256_hex

        name = "ns-" + sha256_hex(namespace.encode())[:16]
    return Path(home) / LOCK_FOLDER / f"{name}.lock"


class SchedulerLock:
    """The held lock of one namespace: its open descriptor, kept for the process's life."""

    def __init__(self, path: Path, fd: int | None):
        self.path = path
        self.fd = fd

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor drops the flock
            self.fd = None


def holder(path: Path) -> int | None:
    """The pid written into a lock file, when there is one."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def take(home: Path, namespace: str, *, allow_second: bool = False) -> SchedulerLock:
    """Lock ``namespace`` for this process, or raise UsageError (exit 2) naming the
    scheduler that holds it. With ``allow_second``, a held lock is left to its holder
    and the returned lock holds nothing."""
    import fcntl

    path = lock_path(home, namespace)
    from supertask import statefolder

    statefolder.private_dir(path.parent, home)  # home and locks/ made 0700 and checked
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot open the scheduler lock {path}: {exc.strerror or exc}; "
                         "check the state folder (--home / SUPERTASK_HOME)") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        if allow_second:
            return SchedulerLock(path, None)
        pid = holder(path)
        who = f"pid {pid}" if pid else "another process"
        raise UsageError(
            f"another scheduler ({who}) already serves namespace {namespace!r} from the state folder {home}; "
            f"stop it first (`supertask stop --wait`, or `kill {pid or 'PID'}`), or pass --allow-second "
            "(SUPERTASK_ALLOW_SECOND=1) to run a second scheduler beside it on purpose"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return SchedulerLock(path, fd)


def take_for(settings: Any, namespace: str, log: Any) -> SchedulerLock:
    """:func:`take` for a scheduler about to serve ``namespace``; a second one started on
    purpose (``--allow-second``) says so."""
    held = take(settings.home, namespace, allow_second=settings.allow_second)
    if not held.held:
        log.warning("second scheduler by request", namespace=namespace, first_pid=holder(held.path),
                    lock=str(held.path), note="this one has no control socket: `supertask stop` stops the first")
    return held
