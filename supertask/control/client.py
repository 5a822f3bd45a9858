"""The control endpoint's client: connect to a scheduler and make calls that return plain data."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import rpyc
from rpyc.core.stream import SocketStream
from rpyc.utils.factory import connect_stream

from supertask.control.endpoint import (
    PROTOCOL,
    TOKEN_PREFIX,
    control_dir,
    local_sockets,
    socket_path,
    token_path,
)
from supertask.errors import NoScheduler, SupertaskError, UsageError
from supertask.settings import parse_hostport


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
