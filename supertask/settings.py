"""Settings, defined once: the defaults table feeds the CLI options and `Settings`.

Precedence: command-line flag, then the ``SUPERTASK_<OPTION>`` environment variable
(typer reads it, and ``--help`` shows its name), then the default here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

#: option -> (default, help). The environment variable is ``SUPERTASK_<OPTION>``.
DEFAULTS: dict[str, tuple[object, str]] = {
    "store": (None, "Store URL (any SQLAlchemy URL, or memory://); default: SQLite in the state folder"),
    "home": (None, "State folder; default $XDG_STATE_HOME/supertask or ~/.local/state/supertask"),
    "namespace": (None, "Namespace; default: the timetable's, else derived from host, user and file"),
    "log_format": ("auto", "console, json, or auto (console on a terminal, JSON lines otherwise)"),
    "log_level": (None, "debug, info, warning or error; default info, warning for a one-shot run"),
    "grace": ("30s", "How long running jobs may finish on shutdown before their process groups end"),
    "max_workers": (256, "Threads for runs in flight (an upper bound on --max-concurrent)"),
    "max_concurrent": (None, "Most runs in flight at once across all jobs; default: no limit"),
    "listen": (None, "Also serve the control endpoint on TCP HOST:PORT (needs a token)"),
    "token": (None, "Token for the TCP control endpoint; default: a generated token file"),
    "connect": (None, "Scheduler to talk to: unix:PATH or tcp://HOST:PORT; default: the local one"),
    "metrics": (None, "Serve Prometheus metrics on HOST:PORT"),
    "watch": (True, "Reload the timetable when its file changes"),
}


LOG_FORMATS = ("auto", "console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")


def env_name(option: str) -> str:
    return "SUPERTASK_" + option.upper().replace("-", "_")


def default(option: str) -> object:
    return DEFAULTS[option][0]


def help_for(option: str) -> str:
    return DEFAULTS[option][1]


def state_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state folder: explicit, else $SUPERTASK_HOME, else $XDG_STATE_HOME/supertask,
    else ~/.local/state/supertask."""
    if explicit:
        return Path(explicit).expanduser()
    if os.environ.get("SUPERTASK_HOME"):
        return Path(os.environ["SUPERTASK_HOME"]).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "supertask"


def host_name() -> str:
    """The machine's name, as ``socket.gethostname()`` gives it (on POSIX both are
    uname's node name; importing socket is ~4 ms of a one-shot run)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def current_user() -> str:
    """The login name, as ``getpass.getuser()`` finds it: $LOGNAME, $USER, $LNAME,
    $USERNAME, then the password database; the uid when there is no entry."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        user = os.environ.get(name)
        if user:
            return user
    try:
        import pwd

        return pwd.getpwuid(os.getuid())[0]
    except Exception:  # no passwd entry (containers with odd uids), or no pwd module
        return str(os.getuid())


@dataclass(frozen=True)
class Settings:
    home: Path
    store_url: str
    log_format: str = "auto"
    log_level: str = "info"
    grace: float = 30.0
    max_workers: int = 256
    max_concurrent: int | None = None
    listen: str | None = None
    token: str | None = None
    connect: str | None = None
    metrics: str | None = None
    watch: bool = True
    host: str = host_name()
    user: str = current_user()

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @classmethod
    def build(
        cls, *, home: str | None = None, store: str | None = None, **kw: object
    ) -> Settings:
        folder = state_home(home)
        url = store or os.environ.get("SUPERTASK_STORE") or f"sqlite:///{folder / 'supertask.db'}"
        return cls(home=folder, store_url=url, **kw)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def parse_hostport(text: str, what: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` of the control endpoint (``--listen``, ``--connect tcp://``)."""
    from supertask.errors import UsageError

    host, sep, port = text.rstrip("/").rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:7711")
    return host.strip("[]") or "127.0.0.1", int(port)
