"""supertask as a systemd service: the unit text and where it goes.

The unit runs ``supertask run --file FILE`` in the foreground (``Type=simple``):
systemd restarts it when it fails (``Restart=on-failure``, 5 s apart, at most 10
times in 5 minutes), stops it with SIGTERM to supertask alone (``KillMode=mixed``),
which lets running jobs finish for ``--grace`` and then ends their process groups;
systemd's own SIGKILL of what is left comes only after ``TimeoutStopSec``, longer
than the grace. The state folder is systemd's (``StateDirectory=supertask``:
``/var/lib/supertask`` for a system unit, ``~/.local/state/supertask`` for a user
unit, the same folder supertask uses by default), so ``supertask history`` run by
the same user finds the same store.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from supertask import __version__


@dataclass(frozen=True)
class UnitOptions:
    timetable: Path  # absolute
    user_unit: bool = False  # a `systemctl --user` unit
    name: str = "supertask"
    store: str | None = None
    run_as: str | None = None  # User= of a system unit
    grace: float = 30.0
    metrics: str | None = None
    executable: tuple[str, ...] = ()  # how to start supertask; default: this one


def supertask_command() -> tuple[str, ...]:
    """The command that starts this supertask: the console script next to this
    Python when there is one, else ``python -m supertask``."""
    script = Path(sys.executable).parent / "supertask"
    if script.is_file():
        return (str(script),)
    found = shutil.which("supertask")
    return (found,) if found else (sys.executable, "-m", "supertask")


def unit_path(options: UnitOptions, home: Path | None = None) -> Path:
    if options.user_unit:
        return (home or Path.home()) / ".config" / "systemd" / "user" / f"{options.name}.service"
    return Path("/etc/systemd/system") / f"{options.name}.service"


def store_has_secret(url: str | None) -> bool:
    """Whether a store URL carries a password (``postgresql://u:pw@host/db`` or a
    ``password=`` query): then it goes to a 0600 environment file, not the 0644 unit."""
    if not url:
        return False
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        return parts.password is not None or "password=" in parts.query.lower()
    except ValueError:
        return True  # cannot tell: keep it out of the unit


def env_file_path(options: UnitOptions, home: Path | None = None) -> Path:
    """Where the unit's secrets go (mode 0600): ``/etc/supertask/NAME.env``, or
    ``~/.config/supertask/NAME.env`` for a user unit."""
    if options.user_unit:
        return (home or Path.home()) / ".config" / "supertask" / f"{options.name}.env"
    return Path("/etc/supertask") / f"{options.name}.env"


def render_env_file(options: UnitOptions) -> str:
    """The environment file's text (``SUPERTASK_STORE=...``; systemd reads it as root)."""
    return (f"# Written by supertask {__version__} for {options.name}.service: secrets, mode 0600\n"
            f"SUPERTASK_STORE={_systemd_quote(options.store or '')}\n")


def render_unit(options: UnitOptions) -> str:
    """The unit file text. A store URL with a password is not in it: the unit names
    :func:`env_file_path` (``EnvironmentFile=``), which holds it."""
    command = [*(options.executable or supertask_command()), "run", "--file", str(options.timetable)]
    if options.metrics:
        command += ["--metrics", options.metrics]
    env = ["SUPERTASK_HOME=%S/supertask", "SUPERTASK_LOG_FORMAT=json", f"SUPERTASK_GRACE={options.grace:g}s"]
    secret = store_has_secret(options.store)
    if options.store and not secret:
        env.append(f"SUPERTASK_STORE={options.store}")
    lines = [
        f"# Written by supertask {__version__}: `supertask service install{' --user' if options.user_unit else ''}`",
        "[Unit]",
        f"Description=supertask scheduler for {options.timetable}",
        "Documentation=https://github.com/supertask/supertask/blob/main/docs/operations.md",
        "After=network-online.target time-sync.target",
        "Wants=network-online.target",
        "StartLimitIntervalSec=300",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "Type=simple",
        "ExecStart=" + " ".join(_systemd_quote(word.replace("%", "%%")) for word in command),
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"WorkingDirectory={options.timetable.parent}",
        *(f"Environment={_systemd_quote(item)}" for item in env),
        *([f"EnvironmentFile={env_file_path(options)}"] if secret else []),
        "StateDirectory=supertask",
        "StateDirectoryMode=0700",
        "Restart=on-failure",
        "RestartSec=5s",
        "KillMode=mixed",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={int(options.grace) + 30}s",
        # three descriptors a run in flight: systemd's soft 1,024 would allow about 300
        "LimitNOFILE=65536",
    ]
    if options.run_as and not options.user_unit:
        lines.append(f"User={options.run_as}")
    lines += ["", "[Install]", f"WantedBy={'default.target' if options.user_unit else 'multi-user.target'}", ""]
    return "\n".join(lines)


def next_steps(options: UnitOptions) -> list[str]:
    ctl = "systemctl --user" if options.user_unit else "systemctl"
    steps = [f"{ctl} daemon-reload", f"{ctl} enable --now {options.name}", f"{ctl} status {options.name}",
             f"journalctl {'--user ' if options.user_unit else ''}-u {options.name} -f"]
    if options.user_unit:
        steps.append("loginctl enable-linger $USER   # keep it running when you log out")
    return steps


def _systemd_quote(word: str) -> str:
    """systemd's command-line quoting is close to the shell's for plain words."""
    if word and all(c.isalnum() or c in "/._-:=%,@+" for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"' if "'" in word else shlex.quote(word)
