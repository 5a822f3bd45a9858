"""The control endpoint: where it listens, its protocol settings and its token file.

The server is :mod:`supertask.control.server` (with :mod:`supertask.control.auth`, who
may talk, and :mod:`supertask.control.channel`, how much they may send), the client
:mod:`supertask.control.client`; they alone import rpyc.

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

The service itself, and what it lets a peer reach, is described in
:mod:`supertask.control.server`.
"""

from __future__ import annotations

import os
from pathlib import Path

from supertask.errors import UsageError

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
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes


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


def local_sockets(home: Path) -> list[Path]:
    folder = control_dir(home)
    return sorted(folder.glob("*.sock")) if folder.is_dir() else []
