"""The typer app and what every command shares: its options (each with its SUPERTASK_* variable),
settings, the store and the timetable path. Commands live in core, admin and live.

Heavy modules (apscheduler, sqlalchemy, rich) are imported inside the commands so
that ``--help`` and quick commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from supertask import __version__
from supertask.errors import UsageError
from supertask.settings import LOG_FORMATS, LOG_LEVELS, env_name, help_for

if TYPE_CHECKING:
    from supertask.settings import Settings
    from supertask.store.base import Store

app = typer.Typer(
    name="supertask",
    help="A cron replacement: YAML timetables, exact cron semantics, audited runs, live control.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help renderer imports rich, markdown-it and pygments
    # (~200 ms, more than the rest of `--help`); see docs/benchmarks.md.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _opt(option: str, *names: str, **kw: Any) -> Any:
    """An option with its SUPERTASK_* variable and help text from the settings table."""
    # in Annotated[...] the first positional is the first flag, not a default
    kw.setdefault("help", help_for(option))
    return typer.Option(*names, envvar=env_name(option), show_envvar=True, **kw)  # type: ignore[call-overload]


StoreOpt = Annotated[str | None, _opt("store", "--store", metavar="URL")]
HomeOpt = Annotated[str | None, _opt("home", "--home", metavar="DIR")]
NsOpt = Annotated[str | None, _opt("namespace", "--ns", "--namespace", metavar="NS")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
WideOpt = Annotated[bool, typer.Option("--wide", "-w", help="Every cell whole, however wide the table "
                                       "(default: cut with … to the terminal's width, COLUMNS, else 80)")]
LogFormatOpt = Annotated[str, _opt("log_format", "--log-format")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"supertask {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    pass


def _settings(store: str | None, home: str | None, **kw: object):  # type: ignore[no-untyped-def]
    from supertask.settings import Settings

    return Settings.build(home=home, store=store, **kw)


def _open_store(settings: Settings, *, create: bool = False) -> Store:
    """The store a command looks at. A SQLite file that does not exist, or a database
    with no supertask tables, is a wrong URL or a typo to report (exit 2), not a new,
    empty store to leave behind; only ``create`` (a dashboard, a token) makes the tables."""
    from supertask.errors import StoreError
    from supertask.store.sql import open_store

    missing = missing_store(settings)
    if missing is not None:
        raise StoreError(missing)
    url = settings.store_url
    st = open_store(url, create=create or url in ("memory://", "memory:"))  # a memory store starts empty
    if st.schema_missing:
        from supertask.store.tables import redact

        st.close()
        raise StoreError(f"no supertask store at {redact(url)}: the database has no supertask tables; "
                         "check --store (or SUPERTASK_STORE), or create them with `supertask run --store URL ...`")
    return st


def missing_store(settings: Settings) -> str | None:
    """What to say when the settings' store is a SQLite file that does not exist, else None."""
    from supertask.store.statements import sqlite_file

    path = sqlite_file(settings.store_url)
    if path is None or Path(path).exists():
        return None
    if Path(path) != settings.home / "supertask.db":
        return (f"no store at {path}: the file does not exist; check --store (or SUPERTASK_STORE), "
                "or create it with `supertask run --store sqlite:///PATH ...`")
    return (f"no store in the state folder {settings.home} (no {path}): nothing has run with this folder yet. "
            "The state folder is --home, else SUPERTASK_HOME, else $XDG_STATE_HOME/supertask, else "
            "~/.local/state/supertask; a service installed with `supertask service install` keeps its store in "
            "/var/lib/supertask (a system unit) or ~/.local/state/supertask (a user unit): pass --home DIR, "
            "or --store URL for another store")


def _known_namespace(st: Store, namespace: str | None) -> None:
    """A --ns the store does not have is a typo to report, not an empty listing."""
    if namespace is None:
        return
    names = [r["name"] for r in st.list_namespaces()]
    if namespace not in names:
        known = f"it has {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}" if names else "it has none yet"
        raise UsageError(f"--ns: no namespace {namespace!r} in the store ({known}); "
                         "`supertask list-namespaces` lists them")


def _timetable_path(file: str | None) -> Path:
    from supertask.timetable.load import find_timetable

    return Path(file) if file else find_timetable()


def timetable_namespace(store: Any) -> str | None:
    """The namespace of the timetable in this folder (./supertask.yaml, else
    ./timetable.yaml) when the store has it: what a reading command without --ns shows."""
    from supertask.errors import TimetableError
    from supertask.settings import current_user, host_name
    from supertask.timetable.load import TIMETABLE_NAMES, default_namespace, read_timetable

    path = next((Path(n) for n in TIMETABLE_NAMES if Path(n).is_file()), None)
    if path is None:
        return None
    try:
        timetable = read_timetable(path)
    except TimetableError:
        return None
    ns = timetable.namespace or default_namespace(timetable.source, host_name(), current_user())
    return ns if ns in {r["name"] for r in store.list_namespaces()} else None


def checked_durations(**options: str) -> dict[str, float]:
    """Each ``--OPTION`` duration parsed (a UsageError names the option and the fix); with
    ``heartbeat`` and ``lease``, the lease at least twice the heartbeat."""
    from supertask.units import parse_duration

    out = {}
    for option, text in options.items():
        try:
            out[option] = parse_duration(text)
        except ValueError as exc:
            raise UsageError(f"--{option}: {exc}") from exc
    if "lease" in out and (out["heartbeat"] <= 0 or out["lease"] < 2 * out["heartbeat"]):
        raise UsageError(f"--lease {options['lease']} must be at least twice --heartbeat {options['heartbeat']} (and "
                         "the heartbeat more than 0): one missed heartbeat must not count as down; e.g. --heartbeat 5s "
                         "--lease 20s")
    return out


def checked_logging(log_format: str, log_level: str) -> None:
    """--log-format and --log-level, each a known word (a UsageError lists them)."""
    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format: {log_format!r} is not a log format; use {', '.join(LOG_FORMATS)}")
    if log_level.lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level: {log_level!r} is not a log level; use {', '.join(LOG_LEVELS)}")
