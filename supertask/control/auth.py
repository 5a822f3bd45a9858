"""Who may talk to the control endpoint: the token line on TCP, the same user on a Unix socket.

A TCP peer has :data:`AUTH_TIMEOUT` seconds in all (not per read) to send its one
line ``SUPERTASK-TOKEN <token>``; a peer that sends nothing, or a byte now and then,
is cut off when the time is up. How many peers may be at this stage at once is the
server's (:mod:`supertask.control.server`).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from typing import Any

from rpyc.utils.authenticators import AuthenticationError

from supertask.control.endpoint import TOKEN_PREFIX

AUTH_TIMEOUT = 5.0
MAX_TOKEN_LINE = 512


def get_logger(name: str) -> Any:
    from supertask.log import get_logger as _get

    return _get(name)


def read_token_line(sock: socket.socket, timeout: float = AUTH_TIMEOUT) -> bytes:
    """The first line a peer sends, read within ``timeout`` seconds in all; b"" when it
    sends none in time (or hangs up)."""
    deadline = time.monotonic() + timeout
    line = b""
    try:
        while not line.endswith(b"\n") and len(line) < MAX_TOKEN_LINE:
            left = deadline - time.monotonic()
            if left <= 0:
                return b""
            sock.settimeout(left)
            chunk = sock.recv(MAX_TOKEN_LINE - len(line))
            if not chunk:
                break
            line += chunk
    except OSError:
        return b""
    return line


def token_authenticator(token: str, store: Any = None, namespaces: tuple[str, ...] = ()) -> Any:
    """The TCP peer's token line: the endpoint's own token (credentials ``"token"``), or,
    with ``store``, a dashboard token (``supertask tokens create``) that sees one of
    ``namespaces`` (credentials: the :class:`~supertask.store.access.Token`, whose scope
    :mod:`supertask.control.scopes` checks on each call)."""
    expected = token.encode()
    log = get_logger("supertask.control.endpoint")

    def authenticate(sock: socket.socket) -> tuple[socket.socket, Any]:
        line = read_token_line(sock)
        given = line[len(TOKEN_PREFIX):].strip() if line.startswith(TOKEN_PREFIX) else b""
        import hmac

        credentials: Any = None
        if given and hmac.compare_digest(given, expected):
            credentials = "token"
        elif given and store is not None:
            try:
                found = store.token_for(given.decode("utf-8", "replace"))
            except Exception:  # the store is away: only the endpoint's own token is known
                found = None
            if found is not None and any(found.sees(ns) for ns in namespaces):
                credentials = found
        if credentials is None:
            try:
                peer = sock.getpeername()
                sock.sendall(b"DENIED\n")
            except OSError:
                peer = None
            log.warning("control connection refused", peer=str(peer),
                        reason="wrong or missing token" if line else f"no token within {AUTH_TIMEOUT:g}s")
            raise AuthenticationError("wrong or missing token")
        sock.sendall(b"OK\n")
        sock.settimeout(None)
        return sock, credentials

    return authenticate


class UnixUser(str):
    """The credentials of a Unix-socket peer: its user's name (a peer that may also say
    whom it acts for, as the dashboard beside a scheduler does)."""


def same_user(sock: socket.socket) -> tuple[socket.socket, str]:
    """Unix socket peers: the scheduler's own user, or root (SO_PEERCRED)."""
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
    except (OSError, AttributeError):  # no SO_PEERCRED here: the 0600 socket mode is the check
        return sock, UnixUser("unix")
    if uid not in (os.getuid(), 0):
        get_logger("supertask.control.endpoint").warning("control connection refused", uid=uid, reason="another user")
        raise AuthenticationError("another user")
    return sock, UnixUser(_user_name(uid))


def _user_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return f"uid {uid}"
