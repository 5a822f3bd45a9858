"""One small interface (build an argv) and the process helpers all launchers share.

The child runs in its own session and process group, the supercronic way
(:func:`start_process`); it is followed to its end by the one output loop,
:class:`supertask.launchers.follow.Follower`, which hands its stdout and stderr on
line by line tagged with the stream (:func:`relay_chunk`); a timeout or a stop
request ends the whole group (:func:`end_group`: TERM, grace, KILL), descendants
that left the group included (found with psutil before signalling).
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from supertask.compat import SpawnedPopen
from supertask.model import Job, RunKind, RunSpec, RunStatus

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:  # psutil is imported where a process tree is ended (~25 ms a start)
    from typing import Protocol

    import psutil

    from supertask.threads import Spawn
else:
    Protocol = object  # Launcher is an interface for the type checker; at run time a plain class

#: A line longer than this (output without newlines: a ``\r`` progress bar, binary
#: data) is relayed in pieces of this size, as journald splits at ``LineMax``, so a
#: pending line never holds more than this in the scheduler's memory.
MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class Command:
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None


@dataclass
class Outcome:
    status: RunStatus
    exit_code: int | None
    pid: int | None
    message: str | None = None


LineSink = Callable[[str, str], None]  # (stream, line)


def relay_chunk(pending: bytes, chunk: bytes, stream: str, on_line: LineSink) -> bytes:
    """Hand on the whole lines of ``pending + chunk`` (a line over :data:`MAX_LINE`
    bytes in pieces of that size); return what is left of a line still to come."""
    *lines, rest = (pending + chunk).split(b"\n")
    for raw in lines:
        for start in range(0, max(len(raw), 1), MAX_LINE):
            on_line(stream, raw[start:start + MAX_LINE].decode("utf-8", "replace").rstrip("\r"))
    while len(rest) >= MAX_LINE:
        on_line(stream, rest[:MAX_LINE].decode("utf-8", "replace"))
        rest = rest[MAX_LINE:]
    return rest


def ended(code: int | None, pid: int, ended_by: RunStatus | None, timeout: float | None) -> Outcome:
    """How a child's run ended: by its exit code, or by a timeout or a stop request
    (``ended_by``) that ended its process group."""
    if ended_by is RunStatus.TIMED_OUT:
        return Outcome(ended_by, code, pid, f"timed out after {timeout:g}s; process group ended")
    if ended_by is RunStatus.KILLED:
        return Outcome(ended_by, code, pid, "ended on request; process group ended")
    return Outcome(RunStatus.SUCCEEDED if code == 0 else RunStatus.FAILED, code, pid)


class Children(Protocol):
    """Runs a child to its end, relaying its output (:meth:`supertask.launchers.follow.Follower.run`);
    ``spawn`` starts a thread its owner joins (a launcher's helper thread)."""

    spawn: Spawn

    def run(self, command: Command, on_line: LineSink, *, timeout: float | None = None, kill_grace: float = 10.0,
            stop: threading.Event | None = None, on_start: Callable[[int], None] | None = None,
            started: subprocess.Popen[bytes] | OSError | None = None) -> Outcome: ...


@dataclass
class LaunchRequest:
    """Everything a launcher may use to start one child of one run."""

    spec: RunSpec  # what the child runs: the launcher's kind and its target (the text after KIND:)
    job: Job
    namespace: str
    run_id: int
    env: dict[str, str]
    on_line: LineSink
    #: what follows the children to their ends (a :class:`~supertask.launchers.follow.Follower`)
    children: Children
    timeout: float | None = None
    kill_grace: float = 10.0
    stop: threading.Event | None = None
    on_start: Callable[[int], None] | None = None
    #: the child, already started by the scheduler's round (:func:`start_process`),
    #: or why it could not start; None: start it here
    started: subprocess.Popen[bytes] | OSError | None = None


class Launcher(Protocol):
    kind: RunKind

    def launch(self, request: LaunchRequest) -> Outcome:
        """Run the target to the end and say how it ended."""


class ArgvLauncher:
    """A launcher that only needs to say which command line runs the target."""

    def argv(self, target: str) -> list[str]:
        raise NotImplementedError

    def launch(self, request: LaunchRequest) -> Outcome:
        command = Command(self.argv(request.spec.target), request.env, request.job.cwd)
        return request.children.run(
            command, request.on_line, timeout=request.timeout, kill_grace=request.kill_grace,
            stop=request.stop, on_start=request.on_start, started=request.started,
        )


def start_process(command: Command) -> subprocess.Popen[bytes] | OSError:
    """Start ``command`` in a session of its own with its output on pipes (or say why not):
    with ``posix_spawn`` (:class:`~supertask.compat.SpawnedPopen`, faster) for a command
    with a path and no ``cwd`` while no descriptor of ours is inheritable."""
    from supertask.launchers import reaper

    spawned = command.cwd is None and "/" in command.argv[0] and _no_inheritable_fds()
    try:
        return reaper.spawn(
            command.argv,
            stdin=_devnull() if spawned else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=command.cwd,
            env=command.env,
            start_new_session=True,
            close_fds=True,
            popen=SpawnedPopen if spawned else subprocess.Popen,
        )
    except OSError as exc:
        return exc


_null: list[int] = []
_fds_checked = [0.0, False]  # (when, none inheritable)


def _devnull() -> int:
    """One ``/dev/null`` for every child's stdin (not one opened and closed for each)."""
    if not _null:
        _null.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _null[0]


def _no_inheritable_fds() -> bool:
    """Whether none of our descriptors but 0-2 would pass to a child (looked at once a
    second: one handed down to supertask, or opened by a library without close-on-exec,
    sends the children back to Popen's ``close_fds``)."""
    now = time.monotonic()
    if now - _fds_checked[0] > 1.0:
        clean = True
        try:
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                if fd > 2 and fd not in _null:
                    try:
                        if os.get_inheritable(fd):
                            clean = False
                            break
                    except OSError:  # the listing's own descriptor, closed by now
                        continue
        except OSError:  # no /proc
            clean = False
        _fds_checked[:] = [now, clean]
    return bool(_fds_checked[1])


def run_key_in(env: dict[str, str] | None) -> str | None:
    """The run's ``SUPERTASK_RUN_KEY`` in a child's environment, if any."""
    return (env or {}).get("SUPERTASK_RUN_KEY") or None


def end_group(
    proc: subprocess.Popen[bytes], grace: float, run_key: str | None = None
) -> None:
    """TERM the child's process group and every descendant, wait ``grace``, then KILL.

    Descendants are collected with psutil first, so ones that started a session of
    their own are ended too; with ``run_id``, so are processes that left the tree
    altogether (double-forked daemons, re-parented to init) but still carry the run's
    ``SUPERTASK_RUN_KEY`` (store, namespace and run id) in their environment.
    """
    import psutil

    try:
        family = [psutil.Process(proc.pid)] + psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        family = []
    if run_key is not None:
        known = {p.pid for p in family}
        family += [p for p in _carrying(run_key) if p.pid not in known]
    signal_all([proc.pid], family, signal.SIGTERM)
    gone_by = time.monotonic() + grace
    while time.monotonic() < gone_by:
        alive = [p for p in family if is_alive(p)]
        if proc.poll() is not None and not alive and not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    signal_all([proc.pid], family, signal.SIGKILL)


def _carrying(run_key: str) -> list[psutil.Process]:
    """Processes whose environment names the run."""
    import psutil

    me = os.getpid()
    found = []
    for p in psutil.process_iter():
        if p.pid == me:
            continue
        try:
            env = p.environ()
            if env.get("SUPERTASK_RUN_KEY") == run_key:
                found.append(p)
        except (psutil.Error, OSError):
            continue
    return found


def signal_all(pgids: Iterable[int], family: list[psutil.Process], sig: int) -> None:
    """``sig`` to each process group and to each process (gone ones are skipped)."""
    import psutil

    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except OSError:
            pass
    for p in family:
        try:
            p.send_signal(sig)
        except psutil.Error:
            pass


def is_alive(p: psutil.Process) -> bool:
    import psutil

    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False
