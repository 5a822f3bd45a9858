"""The control endpoint: a narrow RPyC service and its client (the only importer of rpyc).

Where it listens (docs/control.md):

- always, a Unix socket per served namespace: ``$SUPERTASK_HOME/control/<namespace>.sock``
  (a long namespace gives ``ns-<sha256 prefix>.sock``), in a folder of mode 0700, the
  socket of mode 0600; a peer must run as the same user (or root), checked with
  ``SO_PEERCRED``;
- with ``--listen HOST:PORT``, TCP. Before any RPyC byte the peer sends one line
  ``SUPERTASK-TOKEN <token>``; a wrong or missing token gets ``DENIED`` and the socket
  is closed, so an unauthenticated peer never reaches the service. The token is
  ``--token``/``SUPERTASK_TOKEN``, else the file ``$SUPERTASK_HOME/control/token``
  (generated with mode 0600 on first use, its path logged).

The service: never classic mode, no public attributes, no pickling. Each ``exposed_``
call checks that its arguments are plain values (exact str/int/float/bool/None, or a
tuple of str), calls :class:`supertask.control.live.LiveControl` and returns one JSON text:
``{"ok": true, "result": ...}`` or ``{"ok": false, "error": ..., "exit_code": n}``.
Nothing else is reachable: the service holds the facade in a private attribute, which
RPyC refuses, and its class holds only the exposed methods.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.authenticators import AuthenticationError
from rpyc.utils.factory import connect_stream
from rpyc.utils.server import ThreadedServer

from supertask import compat
from supertask.errors import NoScheduler, SupertaskError, UsageError
from supertask.settings import parse_hostport

if TYPE_CHECKING:
    from supertask.control.live import LiveControl
    from supertask.scheduler.service import Service
    from supertask.settings import Settings

#: The RPyC protocol settings of both ends: nothing but exposed names, no pickles.
PROTOCOL = {
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "include_local_traceback": False,
    "include_local_version": False,
    "log_exceptions": False,
    "sync_request_timeout": 60,
}
TOKEN_PREFIX = b"SUPERTASK-TOKEN "
AUTH_TIMEOUT = 5.0
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes
_PLAIN = (str, int, float, bool, type(None))
_quiet = logging.getLogger("supertask.control.endpoint.rpyc")
_quiet.setLevel(logging.CRITICAL + 1)  # rpyc logs every rejected peer; we log our own events
_quiet.propagate = False
_peer = threading.local()  # the peer of the connection a control thread serves


def get_logger(name: str) -> Any:
    from supertask.log import get_logger as _get

    return _get(name)


def control_dir(home: Path) -> Path:
    return Path(home) / "control"


def socket_path(home: Path, namespace: str) -> Path:
    from supertask.model import name_problem

    problem = name_problem(namespace, "namespace")
    if problem:  # a namespace becomes a file name here: never one outside control/
        raise UsageError(f"--ns {problem}")
    path = control_dir(home) / f"{namespace}.sock"
    if len(str(path)) > MAX_SOCKET_PATH:
        import hashlib  # here: with hmac and secrets, ~3 ms of a client's start (OpenSSL's hashes)

        path = control_dir(home) / f"ns-{hashlib.sha256(namespace.encode()).hexdigest()[:16]}.sock"
    return path


def token_path(home: Path) -> Path:
    return control_dir(home) / "token"


def load_or_make_token(home: Path) -> tuple[str, Path]:
    """The token in ``control/token``: made (0600) when missing; one that is there is
    used only when it is a file of ours with no other name (never through a symlink)."""
    from supertask import statefolder

    path = token_path(home)
    statefolder.private_dir(path.parent, home)
    try:
        fd = statefolder.open_private(path, os.O_RDWR)
    except OSError as exc:
        raise UsageError(f"refusing the token file {path}: {exc.strerror}; remove it (a new one is made), "
                         "or give --token / SUPERTASK_TOKEN") from exc
    with os.fdopen(fd, "r+") as fh:
        os.fchmod(fh.fileno(), 0o600)
        token = fh.read().strip()
        if not token:
            import secrets

            token = secrets.token_urlsafe(32)
            fh.write(token + "\n")
    return token, path


# -- the server -------------------------------------------------------------------------------


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
        _peer.who = conn._config.get("credentials") or "unknown"

    def _call(self, op: str, *args: Any, change: bool = False) -> str:
        try:
            _check_args(args)
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
        return self._call("trigger", namespace, job)

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

    def exposed_kill_run(self, run_id: int) -> str:
        return self._call("kill_run", run_id)

    def exposed_run(self, run_id: int) -> str:
        return self._call("run", run_id)

    def exposed_find_run(self, namespace: str, job: str, scheduled: str) -> str:
        return self._call("find_run", namespace, job, scheduled)

    def exposed_read_log(self, run_id: int, offset: int) -> str:
        return self._call("read_log", run_id, offset)

    def exposed_pause_all(self) -> str:
        return self._call("pause_all", True)

    def exposed_resume_all(self) -> str:
        return self._call("pause_all", False)

    def exposed_stop(self, grace: float | None = None) -> str:
        return self._call("stop", grace)


class _Server(ThreadedServer):
    """A threaded RPyC server that, when the scheduler is stopping, closes its listener
    but leaves open connections to end with the process (so `stop --wait` sees the exit)."""

    keep_clients = False

    def close(self) -> None:
        if self.keep_clients:
            compat.forget_clients(self)
        super().close()


def _token_authenticator(token: str) -> Any:
    expected = token.encode()
    log = get_logger("supertask.control.endpoint")

    def authenticate(sock: socket.socket) -> tuple[socket.socket, str]:
        sock.settimeout(AUTH_TIMEOUT)
        line = b""
        try:
            while not line.endswith(b"\n") and len(line) < 512:
                chunk = sock.recv(512 - len(line))
                if not chunk:
                    break
                line += chunk
        except OSError:
            line = b""
        given = line[len(TOKEN_PREFIX):].strip() if line.startswith(TOKEN_PREFIX) else b""
        import hmac

        if not given or not hmac.compare_digest(given, expected):
            try:
                peer = sock.getpeername()
                sock.sendall(b"DENIED\n")
            except OSError:
                peer = None
            log.warning("control connection refused", peer=str(peer), reason="wrong or missing token")
            raise AuthenticationError("wrong or missing token")
        sock.sendall(b"OK\n")
        sock.settimeout(None)
        return sock, "token"

    return authenticate


def _same_user(sock: socket.socket) -> tuple[socket.socket, str]:
    """Unix socket peers: the scheduler's own user, or root (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
    except (OSError, AttributeError):  # no SO_PEERCRED here: the 0600 socket mode is the check
        return sock, "unix"
    if uid not in (os.getuid(), 0):
        get_logger("supertask.control.endpoint").warning("control connection refused", uid=uid, reason="another user")
        raise AuthenticationError("another user")
    return sock, _user_name(uid)


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"


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
            server = _Server(rpyc_service, socket_path=str(path), authenticator=_same_user,
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
            server = _Server(rpyc_service, hostname=host, port=port, authenticator=_token_authenticator(token),
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


# -- the client -------------------------------------------------------------------------------


class RemoteError(SupertaskError):
    """An error the scheduler reported for a call; carries its exit code."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


def _how_to_start(where: str) -> str:
    return (f"no running scheduler {where}; start one with `supertask run` (it serves a control socket in "
            "$SUPERTASK_HOME/control/), or name one with --connect unix:PATH or --connect tcp://HOST:PORT")


class ControlClient:
    """A connection to one scheduler's control endpoint; calls return plain data."""

    def __init__(self, conn: Any, address: str):
        self.conn = conn
        self.address = address

    def call(self, name: str, *args: Any) -> Any:
        try:
            text = getattr(self.conn.root, name)(*args)
        except (EOFError, OSError) as exc:
            raise NoScheduler(f"the scheduler at {self.address} closed the connection ({exc or 'EOF'})") from exc
        data = json.loads(text)
        if not data.get("ok"):
            raise RemoteError(data.get("error") or "the scheduler refused the call", int(data.get("exit_code", 1)))
        return data["result"]

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Block until the scheduler closes the connection (its process ended); True if it did."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while deadline is None or time.monotonic() < deadline:
                self.conn.serve(0.5)
        except (EOFError, OSError):
            return True
        return False

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_unix(path: Path) -> ControlClient:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(5.0)
        sock.connect(str(path))
        sock.settimeout(None)
        conn = connect_stream(SocketStream(sock), rpyc.VoidService, dict(PROTOCOL))
    except (OSError, EOFError) as exc:
        sock.close()
        raise NoScheduler(_how_to_start(f"answers on {path} ({exc})")) from exc
    return ControlClient(conn, f"unix:{path}")


def open_tcp(host: str, port: int, token: str | None) -> ControlClient:
    address = f"tcp://{host}:{port}"
    if not token:
        raise UsageError(f"{address} needs a token: set SUPERTASK_TOKEN or --token (the scheduler logged "
                         "where its token file is)")
    try:
        sock = socket.create_connection((host, port), timeout=5.0)
    except OSError as exc:
        raise NoScheduler(_how_to_start(f"answers on {address} ({exc})")) from exc
    try:
        sock.sendall(TOKEN_PREFIX + token.strip().encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n") and len(reply) < 64:
            chunk = sock.recv(64)
            if not chunk:
                break
            reply += chunk
        if reply.strip() != b"OK":
            sock.close()
            raise UsageError(f"the scheduler at {address} refused the token; use the one in its token file "
                             "(SUPERTASK_TOKEN or --token)")
        sock.settimeout(None)
        conn = connect_stream(SocketStream(sock), rpyc.VoidService, dict(PROTOCOL))
    except (OSError, EOFError) as exc:
        sock.close()
        raise NoScheduler(_how_to_start(f"answers on {address} ({exc})")) from exc
    return ControlClient(conn, address)


def local_sockets(home: Path) -> list[Path]:
    folder = control_dir(home)
    return sorted(folder.glob("*.sock")) if folder.is_dir() else []


def connect(target: str | None, *, home: Path, namespace: str | None = None, token: str | None = None) -> ControlClient:
    """Connect to ``target`` (``unix:PATH`` or ``tcp://HOST:PORT``), else find the local
    scheduler: the socket of ``namespace``, or the only live socket in the state folder.
    Raises NoScheduler (exit 3) when none answers, UsageError when several do."""
    if target:
        if target.startswith("unix:"):
            return open_unix(Path(target[len("unix:"):]))
        if target.startswith("tcp://") or target.startswith("tcp:"):
            host, port = parse_hostport(target.split(":", 1)[1].lstrip("/"), "--connect")
            if not token and token_path(home).is_file():
                token = token_path(home).read_text().strip()
            return open_tcp(host, port, token)
        raise UsageError(f"--connect {target!r}: expected unix:PATH or tcp://HOST:PORT")
    if namespace is not None:
        path = socket_path(home, namespace)
        if not path.exists():
            raise NoScheduler(_how_to_start(f"for namespace {namespace!r} in {control_dir(home)}"))
        return open_unix(path)
    live: list[ControlClient] = []
    for path in local_sockets(home):
        try:
            live.append(open_unix(path))
        except NoScheduler:
            continue
    if not live:
        raise NoScheduler(_how_to_start(f"in {control_dir(home)}"))
    if len(live) > 1:
        names = []
        for client in live:
            try:
                names += client.call("ping")["namespaces"]
            except SupertaskError:
                pass
            client.close()
        raise UsageError(f"several schedulers run here ({', '.join(sorted(names))}); pick one with --ns")
    return live[0]
