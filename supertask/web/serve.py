"""Serving the dashboard with uvicorn: alone (``supertask web``, in the foreground) or
beside a scheduler (``supertask run --http``: :class:`WebComponent`).

Beside a scheduler the dashboard runs in a process of its own, a child ``supertask web``
on the scheduler's store: rendering pages never holds the scheduler's interpreter lock,
so fire lateness does not move while people look (docs/benchmarks.md). The scheduler
binds the address itself (a wrong or busy one stops its start, exit 2) and hands the
listening socket to the child, which serves on it until the scheduler stops; a child
that exits on its own is reported (``dashboard exited``) and started again on the same
socket. The child runs at a lower CPU priority (nice +10: on a machine whose cores are
all busy, the fires come first), ends a run (the run page's button) through the
scheduler's control socket, and ends itself when the scheduler is gone.

An address other than loopback is refused (exit 2, saying why) while the store has no
token: without one, anyone who reaches the port could pause and run jobs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

from supertask.errors import UsageError
from supertask.log import get_logger
from supertask.settings import parse_hostport
from supertask.store.base import Store

log = get_logger("supertask.web")
#: how long the child has to end after TERM before it is killed
CHILD_STOP = 5.0
#: the longest wait before a child that exited is started again
RESTART_MAX = 30.0
#: how much nicer than its scheduler the dashboard beside it runs: where the cores are
#: all busy, the scheduler's fires get the CPU before page rendering does
CHILD_NICE = 10


def check_address(text: str, store: Store) -> tuple[str, int]:
    """``--http HOST:PORT`` -> (host, port); not loopback only once a token exists."""
    from supertask.web.auth import is_loopback

    host, port = parse_hostport(text, "--http")
    if not is_loopback(host) and not store.has_tokens():
        raise UsageError(f"--http {text}: not a loopback address, and the store has no token: anyone who reaches "
                         "it could run and pause jobs. Create one first (`supertask tokens create NAME --ns NS "
                         "--scope read`), then every request needs a token; or serve on 127.0.0.1")
    return host, port


def _server(store: Store, user: str, service: Any = None, parent: int | None = None) -> Any:
    import uvicorn

    from supertask.web.app import build_app

    class Server(uvicorn.Server):  # type: ignore[misc]
        async def on_tick(self, counter: int) -> bool:
            if parent is not None and counter % 10 == 0 and os.getppid() != parent:
                log.warning("dashboard ending", reason="its scheduler is gone", scheduler_pid=parent)
                return True
            return await super().on_tick(counter)  # type: ignore[no-any-return]

    config = uvicorn.Config(build_app(store, user=user, service=service), log_config=None, access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2, server_header=False)
    return Server(config)


def _announce(host: str, port: int, **extra: Any) -> None:
    shown = f"[{host}]" if ":" in host else host
    log.info("dashboard serving", address=f"{host}:{port}", url=f"http://{shown}:{port}/",
             api=f"http://{shown}:{port}/api/v1/openapi.json", **extra)


def _listen(address: str, host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=2048, reuse_port=False)
    except (OSError, OverflowError) as exc:
        raise UsageError(f"--http {address}: cannot listen there ({exc.strerror if isinstance(exc, OSError) else exc}: "
                         "in use, or not an address of this machine)") from None
    return sock


def serve(store: Store, address: str, user: str, *, fd: int | None = None, scheduler: str | None = None,
          parent: int | None = None) -> None:
    """``supertask web``: serve until SIGINT or SIGTERM (uvicorn's own handlers). With
    ``fd`` (a scheduler's child): on that listening socket, ending runs through the
    control socket ``scheduler``, and ending itself once process ``parent`` is gone."""
    if fd is not None:
        sock = socket.socket(fileno=fd)
    if parent is not None:  # beside a scheduler: on a busy machine the fires come first
        try:
            os.nice(CHILD_NICE)
        except OSError:
            pass
    else:
        host, port = check_address(address, store)
        sock = _listen(address, host, port)
    from supertask.web.actions import SchedulerLink

    server = _server(store, user, SchedulerLink(scheduler) if scheduler else None, parent)
    if fd is None:
        bound = sock.getsockname()
        _announce(bound[0], bound[1])
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


def web_stack_missing() -> str | None:
    """What to say when the web extra is not installed, else None."""
    import importlib.util

    for name in ("starlette", "uvicorn", "jinja2"):
        if importlib.util.find_spec(name) is None:
            return f"the dashboard needs the web extra ({name} is missing): pip install 'supertask[web]'"
    return None


class WebComponent:
    """The dashboard beside a scheduler: a child ``supertask web`` on the scheduler's
    store and on the socket the scheduler listens on, started and stopped with it."""

    def __init__(self, address: str):
        self.address = address
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._args: list[str] = []
        self._env: dict[str, str] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, service: Any) -> None:
        missing = web_stack_missing()
        if missing:
            raise UsageError(missing)
        settings = service.settings
        host, port = check_address(self.address, service.store)
        self._sock = _listen(self.address, host, port)
        from supertask.control.endpoint import socket_path

        fd = self._sock.fileno()
        self._args = [sys.executable, "-m", "supertask", "web", "--home", str(settings.home), "--log-format",
                      settings.log_format, "--fd", str(fd),
                      "--scheduler", str(socket_path(settings.home, service.namespaces[0])),
                      "--parent", str(os.getpid())]
        # the store's URL in the environment, not the command line: it may hold a password,
        # and any user can read another's command line
        self._env = {**os.environ, "SUPERTASK_STORE": settings.store_url}
        self._spawn()
        assert self._proc is not None
        _announce(host, self._sock.getsockname()[1], pid=self._proc.pid)
        self._thread = service.supervisor.thread("supertask-web", self._watch)

    def _spawn(self) -> None:
        assert self._sock is not None
        with self._lock:
            if self._stopping.is_set():
                return
            # a session of its own: a terminal's Ctrl-C reaches the scheduler, which stops it
            self._proc = subprocess.Popen(self._args, pass_fds=(self._sock.fileno(),), stdin=subprocess.DEVNULL,
                                          env=self._env, start_new_session=True)

    def _watch(self) -> None:
        """Report a child that exited while the scheduler runs, and start another."""
        wait = 1.0
        while not self._stopping.is_set():
            proc, began = self._proc, time.monotonic()
            assert proc is not None
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - began > 60:
                wait = 1.0
            log.error("dashboard exited", pid=proc.pid, exit_code=code, restart_in=wait)
            if self._stopping.wait(wait):
                return
            wait = min(wait * 2, RESTART_MAX)
            self._spawn()
            if self._proc is not None and self._proc is not proc:
                log.info("dashboard restarted", pid=self._proc.pid)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(CHILD_STOP)
            except subprocess.TimeoutExpired:
                log.warning("dashboard killed", pid=proc.pid, reason=f"not ended {CHILD_STOP:g}s after TERM")
                proc.kill()
                proc.wait(CHILD_STOP)
        if self._thread is not None:
            self._thread.join(CHILD_STOP)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
