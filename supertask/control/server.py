"""The control endpoint's server: the narrow RPyC service, and the listeners that serve it.

The service: never classic mode, no public attributes, no pickling. Each ``exposed_``
call checks that its arguments are plain values (exact str/int/float/bool/None, or a
tuple of str), calls :class:`supertask.control.live.LiveControl` and returns one JSON text:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ..., "exit_code": n}``.
Nothing else is reachable: the service holds the facade in a private attribute, which
RPyC refuses, and its class holds only the exposed methods.

The listeners hold against a flood (docs/control.md):

- at most :data:`MAX_UNAUTHENTICATED` connections at once may be waiting to
  authenticate (each has :data:`supertask.control.auth.AUTH_TIMEOUT` seconds in all);
  a connection past that is closed at once, and a ``control connections refused``
  warning (at most one every 10 s, with the count) says so;
- running out of descriptors (EMFILE) no longer ends the listener, as it did in
  rpyc's accept loop: it logs ``control listener out of descriptors`` (at most every
  10 s), waits a moment and accepts again;
- every peer's frames go through :class:`supertask.control.channel.BoundedChannel`.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rpyc

from supertask import compat
from supertask.control.auth import same_user, token_authenticator
from supertask.control.channel import BoundedChannel
from supertask.control.endpoint import PROTOCOL, control_dir, load_or_make_token, socket_path
from supertask.errors import SupertaskError, UsageError
from supertask.settings import parse_hostport

if TYPE_CHECKING:
    from supertask.control.live import LiveControl
    from supertask.scheduler.service import Service
    from supertask.settings import Settings

MAX_UNAUTHENTICATED = 64
_PLAIN = (str, int, float, bool, type(None))
_OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_quiet = logging.getLogger("supertask.control.endpoint.rpyc")
_quiet.setLevel(logging.CRITICAL + 1)  # rpyc logs every rejected peer; we log our own events
_quiet.propagate = False
_peer = threading.local()  # the peer of the connection a control thread serves


def get_logger(name: str) -> Any:
    from supertask.log import get_logger as _get

    return _get(name)


def _check_args(args: tuple[Any, ...]) -> None:
    for arg in args:
        if type(arg) in _PLAIN:
            continue
        if type(arg) is tuple and all(type(a) is str for a in arg):
            continue
        raise UsageError("control calls take plain values only (str, int, float, bool, None, tuple of str)")


class ControlService(rpyc.Service):
    """Named calls over :class:`LiveControl`; each returns one JSON text."""

    def __init__(self, api: LiveControl):
        self._api = api

    def on_connect(self, conn: Any) -> None:
        # who is on the other end, as the authenticator found it (a live change names them);
        # a connection's calls are served on the thread that accepted it
        credentials = compat.credentials(conn)
        _peer.token = credentials if hasattr(credentials, "scope") else None  # a dashboard token
        _peer.who = f"token:{credentials.name}" if _peer.token is not None else (credentials or "unknown")
        from supertask.control.auth import UnixUser

        _peer.local = isinstance(credentials, UnixUser)

    def _call(self, op: str, *args: Any, change: bool = False) -> str:
        try:
            _check_args(args)
            if getattr(_peer, "token", None) is not None:
                from supertask.control.scopes import check

                check(_peer.token, op, args, list(self._api.service.namespaces), self._api.service.store)
            if change:
                result = getattr(self._api, op)(*args, by=getattr(_peer, "who", "unknown"))
            else:
                result = getattr(self._api, op)(*args)
            return json.dumps({"ok": True, "result": result}, default=str)
        except SupertaskError as exc:
            return json.dumps({"ok": False, "error": str(exc), "exit_code": exc.exit_code})
        except Exception as exc:
            get_logger("supertask.control.endpoint").exception("control call failed", call=op)
            return json.dumps({"ok": False, "exit_code": 1,
                               "error": f"the scheduler failed on {op}: {type(exc).__name__}; see its log"})

    def exposed_ping(self) -> str:
        return json.dumps({"ok": True, "result": {"namespaces": self._api.service.namespaces, "pid": os.getpid()}})

    def exposed_status(self) -> str:
        return self._call("status")

    def exposed_list_jobs(self, namespace: str | None = None) -> str:
        return self._call("list_jobs", namespace)

    def exposed_trigger(self, namespace: str | None, job: str) -> str:
        return self._call("trigger", namespace, job, change=True)

    def exposed_pause_job(self, namespace: str | None, job: str) -> str:
        return self._call("pause_job", namespace, job, True, change=True)

    def exposed_resume_job(self, namespace: str | None, job: str) -> str:
        return self._call("pause_job", namespace, job, False, change=True)

    def exposed_remove_job(self, namespace: str | None, job: str) -> str:
        return self._call("remove_job", namespace, job, change=True)

    def exposed_edit_job(self, namespace: str | None, job: str, assignments: tuple[str, ...]) -> str:
        return self._call("edit_job", namespace, job, assignments, change=True)

    def exposed_add_job(self, namespace: str | None, job: str, when: str, run: str,
                        assignments: tuple[str, ...] = ()) -> str:
        return self._call("add_job", namespace, job, when, run, assignments, change=True)

    def exposed_kill_run(self, run_id: int, for_who: str | None = None, source: str | None = None) -> str:
        """End a run; a Unix-socket peer (the dashboard beside the scheduler) may name whom
        it acts for and from where, for the audit row."""
        if (for_who is not None or source is not None) and not getattr(_peer, "local", False):
            return json.dumps({"ok": False, "exit_code": 2,
                               "error": "only a peer on the scheduler's Unix socket may say whom it acts for"})
        return self._call("kill_run", run_id, for_who, source, change=True)

    def exposed_run(self, run_id: int) -> str:
        return self._call("run", run_id)

    def exposed_find_run(self, namespace: str, job: str, scheduled: str) -> str:
        return self._call("find_run", namespace, job, scheduled)

    def exposed_read_log(self, run_id: int, offset: int) -> str:
        return self._call("read_log", run_id, offset)

    def exposed_pause_all(self) -> str:
        return self._call("pause_all", True, change=True)

    def exposed_resume_all(self) -> str:
        return self._call("pause_all", False, change=True)

    def exposed_stop(self, grace: float | None = None) -> str:
        return self._call("stop", grace, change=True)


class _Every:
    """A warning at most every ``seconds``, with how often it happened meanwhile."""

    def __init__(self, seconds: float = 10.0):
        self.seconds, self.last, self.count = seconds, -float("inf"), 0
        self.lock = threading.Lock()

    def due(self) -> int:
        """How many times it happened since the last warning, when one is due now; else 0."""
        with self.lock:
            self.count += 1
            now = time.monotonic()
            if now - self.last < self.seconds:
                return 0
            self.last, count, self.count = now, self.count, 0
            return count


class _Server(compat.server_base()):  # type: ignore[misc]
    """A threaded RPyC server that caps the peers waiting to authenticate, outlives
    running out of descriptors, reads frames within bounds, and, when the scheduler is
    stopping, closes its listener but leaves open connections to end with the process
    (so `stop --wait` sees the exit). rpyc's private steps are compat's hooks."""

    def __init__(self, *args: Any, authenticator: Any, **kwargs: Any):
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._refused, self._starved = _Every(), _Every()
        self.log = get_logger("supertask.control.server")

        def counted(sock: socket.socket) -> tuple[socket.socket, str]:
            try:
                return authenticator(sock)  # type: ignore[no-any-return]
            finally:
                with self._pending_lock:
                    self._pending -= 1

        super().__init__(*args, authenticator=counted, **kwargs)

    def accept_failed(self) -> None:
        # rpyc ends the listener on any accept error but EINTR/EAGAIN; the listener is
        # fine, this process is out of descriptors (or memory) for the moment
        count = self._starved.due()
        if count:
            self.log.warning("control listener out of descriptors", times=count,
                             limit=_nofile_limit(), message="new connections wait until some close")
        time.sleep(0.05)

    def hand_off(self, sock: socket.socket) -> None:
        with self._pending_lock:
            full = self._pending >= MAX_UNAUTHENTICATED
            if not full:
                self._pending += 1
        if full:
            self.drop(sock)
            count = self._refused.due()
            if count:
                self.log.warning("control connections refused", times=count, waiting=MAX_UNAUTHENTICATED,
                                 reason="too many connections waiting to authenticate")
            return
        try:
            self.serve_in_thread(sock)
        except Exception:  # no thread to serve it (out of memory or threads)
            with self._pending_lock:
                self._pending -= 1
            self.drop(sock)

    def channel(self, stream: Any) -> BoundedChannel:
        return BoundedChannel(stream)


def _nofile_limit() -> int | None:
    try:
        import resource

        return int(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    except (ImportError, OSError, ValueError):
        return None


class ControlServer:
    """The control endpoint as a scheduler component (see scheduler.Component)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.servers: list[_Server] = []
        self.paths: list[Path] = []
        self.service: Service | None = None
        self.log = get_logger("supertask.control.endpoint")

    def start(self, service: Service) -> None:
        import psutil

        from supertask.control.live import LiveControl

        psutil.cpu_percent(interval=None)  # the first sample: status reports use since-last
        self.service = service
        endpoints: dict[str, Any] = {}
        api = LiveControl(service, endpoints)
        rpyc_service = ControlService(api)
        home = self.settings.home
        from supertask import statefolder

        statefolder.private_dir(control_dir(home), home)
        for namespace in service.namespaces:
            path = socket_path(home, namespace)
            if path.exists() or path.is_symlink():
                if _answers(path):
                    self.log.warning("control socket in use: another scheduler serves this namespace here",
                                     socket=str(path), namespace=namespace)
                    continue
                path.unlink()
            server = _Server(rpyc_service, socket_path=str(path), authenticator=same_user,
                             protocol_config=dict(PROTOCOL), logger=_quiet)
            os.chmod(path, 0o600)
            self.paths.append(path)
            self._serve(server)
            endpoints.setdefault("unix", []).append(str(path))
        token_file = None
        if self.settings.listen:
            host, port = parse_hostport(self.settings.listen)
            token = self.settings.token
            if not token:
                token, token_file = load_or_make_token(home)
            server = _Server(rpyc_service, hostname=host, port=port, authenticator=token_authenticator(
                token, service.store, tuple(service.namespaces)),
                             protocol_config=dict(PROTOCOL), logger=_quiet)
            self._serve(server)
            endpoints["tcp"] = f"tcp://{server.host}:{server.port}"
        self.log.info("control ready", unix=endpoints.get("unix", []), tcp=endpoints.get("tcp"),
                      token_file=str(token_file) if token_file else None)

    def _serve(self, server: _Server) -> None:
        compat.listen_now(server)
        assert self.service is not None
        self.service.supervisor.thread("supertask-control", server.start)  # joined once stop() closes it
        self.servers.append(server)

    def stop(self) -> None:
        stopping = self.service is not None and self.service.stop_request.event.is_set()
        for server in self.servers:
            server.keep_clients = stopping
            server.close()
        for path in self.paths:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        self.servers, self.paths = [], []


def _answers(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(str(path))
        return True
    except OSError:
        return False
    finally:
        sock.close()
