"""Settings, defined once: the defaults table feeds the CLI options (typer), the fast
one-shot path (``supertask/entry.py``) and `Settings`.

Precedence: command-line flag, then the ``SUPERTASK_<OPTION>`` environment variable
(typer reads it, and ``--help`` shows its name), then the default here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (the fast paths load this)
if TYPE_CHECKING:
    from typing import Any

#: option -> (default, help). The environment variable is ``SUPERTASK_<OPTION>``. The
#: default is the value `Settings` holds (seconds for a duration); :func:`cli_default`
#: gives it as the command line takes it. ``None``: none, or decided as the help says.
DEFAULTS: dict[str, tuple[Any, str]] = {
    "store": (None, "Store URL (any SQLAlchemy URL, or memory://); default: SQLite in the state folder"),
    "home": (None, "State folder; default $XDG_STATE_HOME/supertask or ~/.local/state/supertask"),
    "namespace": (None, "Namespace; default: the timetable's, else derived from host, user and file"),
    "log_format": ("auto", "console, json, or auto (console on a terminal, JSON lines otherwise)"),
    "log_level": (None, "debug, info, warning or error; default info, warning for a one-shot run"),
    "grace": (30.0, "How long running jobs may finish on shutdown before their process groups end"),
    "max_workers": (256, "Threads for runs in flight (an upper bound on --max-concurrent)"),
    "max_concurrent": (None, "Most runs in flight at once across all jobs; default: no limit"),
    "listen": (None, "Also serve the control endpoint on TCP HOST:PORT (needs a token)"),
    "token": (None, "Token for the TCP control endpoint; default: a generated token file"),
    "connect": (None, "Scheduler to talk to: unix:PATH or tcp://HOST:PORT; default: the local one"),
    "metrics": (None, "Serve Prometheus metrics on HOST:PORT"),
    "http": (None, "Serve the dashboard and HTTP API on HOST:PORT (loopback unless the store has tokens)"),
    "watch": (True, "Reload the timetable when its file changes"),
    "heartbeat": (5.0, "How often this scheduler writes its host row (heartbeat), for `supertask hosts` "
                       "and the other hosts sharing the store"),
    "lease": (20.0, "How long a host may miss heartbeats before it counts as down and the other hosts "
                    "sharing the store take its runs in flight over (at least twice --heartbeat)"),
    "lease_lost": ("keep", "What a scheduler does with its runs in flight once it has gone without a heartbeat "
                           "for longer than its lease (cut off, frozen): keep them running, or end them (the "
                           "other hosts take them over)"),
    "workers_only": (False, "Leave every run to workers (`supertask worker`), jobs without on: too; this "
                            "scheduler decides when, and launches nothing itself (PostgreSQL store)"),
    "allow_second": (False, "Serve a namespace that another scheduler already serves from this state folder "
                            "(refused by default: exit 2)"),
}
#: Seconds a scheduler's round waits for the store to claim its fires. Past it (a cut
#: network answers nothing until TCP's timeouts, 10-15 s), the round's fires start from
#: memory at their time and their rows are written when the store answers
#: (docs/operations.md "What happens when…"); the store is suspect until the probe says.
CLAIM_DEADLINE = 1.5
#: the options whose value is a duration (``30s``, ``2m``; seconds in `Settings`)
DURATIONS = ("grace", "heartbeat", "lease")
#: ``--log-level``'s default: for a scheduler, and for a one-shot run (which shows its
#: command's output, and supertask's own events only when asked)
LOG_LEVEL = "info"
ONE_SHOT_LOG_LEVEL = "warning"
#: the host of a ``HOST:PORT`` given as ``:PORT`` (``--listen``, ``--metrics``, ``--connect``)
DEFAULT_HOST = "127.0.0.1"

LOG_FORMATS = ("auto", "console", "json")
LEASE_LOST = ("keep", "end")
LOG_LEVELS = ("debug", "info", "warning", "error")


def env_name(option: str) -> str:
    return "SUPERTASK_" + option.upper().replace("-", "_")


def default(option: str) -> Any:
    """An option's default, as `Settings` holds it."""
    return DEFAULTS[option][0]


def cli_default(option: str) -> Any:
    """An option's default as the command line takes it (and ``--help`` shows it):
    ``30s`` for a duration of 30 seconds."""
    value = default(option)
    return f"{value:g}s" if option in DURATIONS and value is not None else value


def help_for(option: str) -> str:
    return DEFAULTS[option][1]


def state_home(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state folder: explicit, else $SUPERTASK_HOME, else $XDG_STATE_HOME/supertask,
    else ~/.local/state/supertask; canonical (symlinks resolved), so one folder reached
    by two paths gives one store URL and one run key (an orphan of ``--home /link`` is
    found again by a restart with ``--home /real``)."""
    if explicit:
        folder = Path(explicit).expanduser()
    elif os.environ.get("SUPERTASK_HOME"):
        folder = Path(os.environ["SUPERTASK_HOME"]).expanduser()
    else:
        xdg = os.environ.get("XDG_STATE_HOME")
        folder = (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state") / "supertask"
    return Path(os.path.realpath(folder))


def canonical_store_url(url: str) -> str:
    """``sqlite:///FILE`` with FILE's symlinks resolved (the run key derives from the URL);
    any other URL as given."""
    prefix = "sqlite:///"
    path = url[len(prefix):] if url.startswith(prefix) else ""
    if not path or "?" in path or path == ":memory:":
        return url
    return prefix + os.path.realpath(os.path.expanduser(path))


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
    log_format: str = default("log_format")
    log_level: str = LOG_LEVEL
    grace: float = default("grace")
    max_workers: int = default("max_workers")
    max_concurrent: int | None = default("max_concurrent")
    listen: str | None = default("listen")
    token: str | None = default("token")
    connect: str | None = default("connect")
    metrics: str | None = default("metrics")
    http: str | None = default("http")
    watch: bool = default("watch")
    allow_second: bool = default("allow_second")
    workers_only: bool = default("workers_only")
    heartbeat: float = default("heartbeat")
    lease: float = default("lease")
    lease_lost: str = default("lease_lost")
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
        url = canonical_store_url(store or os.environ.get("SUPERTASK_STORE") or f"sqlite:///{folder / 'supertask.db'}")
        return cls(home=folder, store_url=url, **kw)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


#: a port to show in the error for each option that takes HOST:PORT
_EXAMPLE_PORTS = {"--metrics": 9100, "--http": 8080}


def parse_hostport(text: str, what: str = "--listen") -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port), the one parser of every address option
    (``--listen``, ``--connect tcp://``, ``--metrics``): ``[::1]:9100`` gives ``::1``;
    ``:9100`` gives :data:`DEFAULT_HOST` (loopback: all interfaces only when asked,
    with ``0.0.0.0:9100``)."""
    from supertask.errors import UsageError

    host, sep, port = text.rstrip("/").rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what} {text!r}: expected HOST:PORT, e.g. {DEFAULT_HOST}:{_EXAMPLE_PORTS.get(what, 7711)}")
    return host.strip("[]") or DEFAULT_HOST, int(port)
