"""The command line: parse, build settings, call in, print. Nothing else lives here.

Heavy modules (apscheduler, sqlalchemy, rich) are imported inside the commands so
that ``--help`` and quick commands start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from supertask import __version__
from supertask.errors import SupertaskError, UsageError
from supertask.settings import LOG_FORMATS, LOG_LEVELS, env_name, help_for

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
    return typer.Option(*names, envvar=env_name(option), show_envvar=True,  # type: ignore[call-overload]
                        help=help_for(option), **kw)


StoreOpt = Annotated[str | None, _opt("store", "--store", metavar="URL")]
HomeOpt = Annotated[str | None, _opt("home", "--home", metavar="DIR")]
NsOpt = Annotated[str | None, _opt("namespace", "--ns", "--namespace", metavar="NS")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]
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


def _open_store(settings):  # type: ignore[no-untyped-def]
    """The store a reading command looks at. A SQLite file named with ``--store`` (or
    ``SUPERTASK_STORE``) that does not exist is a typo to report, not a new, empty store
    to leave behind; the default one in the state folder is made as usual."""
    from supertask.litestore import sqlite_file
    from supertask.store import Store

    path = sqlite_file(settings.store_url)
    if path is not None and not Path(path).exists() and Path(path) != settings.home / "supertask.db":
        from supertask.errors import StoreError

        raise StoreError(f"no store at {path}: the file does not exist; check --store (or SUPERTASK_STORE), "
                         "or create it with `supertask run --store sqlite:///PATH ...`")
    return Store.open(settings.store_url)


def _known_namespace(st, namespace: str | None) -> None:  # type: ignore[no-untyped-def]
    """A --ns the store does not have is a typo to report, not an empty listing."""
    if namespace is None:
        return
    names = [r["name"] for r in st.list_namespaces()]
    if namespace not in names:
        known = f"it has {', '.join(names[:10])}{', ...' if len(names) > 10 else ''}" if names else "it has none yet"
        raise UsageError(f"--ns: no namespace {namespace!r} in the store ({known}); "
                         "`supertask list-namespaces` lists them")


def _timetable_path(file: str | None) -> Path:
    from supertask.timetable import find_timetable

    return Path(file) if file else find_timetable()


# -- run -------------------------------------------------------------------------------------------


@app.command(context_settings={"allow_interspersed_args": False})
def run(
    command: Annotated[
        list[str] | None, typer.Argument(metavar="[-- KIND:TARGET ...]", help="A one-line job, e.g. -- cmd:echo hello")
    ] = None,
    file: Annotated[
        str | None, typer.Option("--file", "-f", envvar=env_name("file"), show_envvar=True,
                                    help="Timetable (default ./supertask.yaml, else ./timetable.yaml), or a .py file run through uv")
    ] = None,
    when: Annotated[
        str | None, typer.Option("--when", envvar=env_name("when"), show_envvar=True,
                                    help="Schedule of a one-line job or .py file (default: once, now)")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Job name of a one-line job")] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    namespace: NsOpt = None,
    grace: Annotated[str, _opt("grace", "--grace")] = "30s",
    max_workers: Annotated[int, _opt("max_workers", "--max-workers")] = 256,
    max_concurrent: Annotated[int | None, _opt("max_concurrent", "--max-concurrent", min=1)] = None,
    listen: Annotated[str | None, _opt("listen", "--listen", metavar="HOST:PORT")] = None,
    token: Annotated[str | None, _opt("token", "--token")] = None,
    metrics: Annotated[str | None, _opt("metrics", "--metrics", metavar="HOST:PORT")] = None,
    watch: Annotated[bool, _opt("watch", "--watch/--no-watch")] = True,
    log_format: LogFormatOpt = "auto",
    log_level: Annotated[str | None, _opt("log_level", "--log-level")] = None,
) -> None:
    """Run the scheduler in the foreground, or one job once.

    `supertask run` syncs the timetable into its namespace and fires its jobs until
    SIGINT or SIGTERM. `supertask run -- cmd:echo hello` runs a command once now and
    exits with its exit code; add `--when @daily` to schedule it instead.
    """
    from supertask import commands
    from supertask.log import configure
    from supertask.model import parse_duration

    once = (command or (file or "").endswith(".py")) and (when or "once") in ("once", "now")
    # a one-shot run shows its command's output; supertask's own events only when asked
    log_level = log_level or ("warning" if once else "info")
    if log_format not in LOG_FORMATS:
        raise UsageError(f"--log-format: {log_format!r} is not a log format; use {', '.join(LOG_FORMATS)}")
    if log_level.lower() not in LOG_LEVELS:
        raise UsageError(f"--log-level: {log_level!r} is not a log level; use {', '.join(LOG_LEVELS)}")
    configure(log_format, log_level)
    try:
        grace_s = parse_duration(grace)
    except ValueError as exc:
        raise UsageError(f"--grace: {exc}") from exc
    settings = _settings(store, home, grace=grace_s, max_workers=max_workers, max_concurrent=max_concurrent,
                         listen=listen, token=token, metrics=metrics, watch=watch,
                         log_format=log_format, log_level=log_level)
    code = commands.run(settings, command=command or [], file=file, when=when, name=name, namespace=namespace)
    raise typer.Exit(code)


# -- timetables ---------------------------------------------------------------------------------


@app.command()
def validate(
    file: Annotated[str | None, typer.Argument(help="Timetable (default ./supertask.yaml, else ./timetable.yaml)")] = None,
) -> None:
    """Check a timetable: exit 0 when valid, 1 with every problem listed when not."""
    from supertask.errors import TimetableError
    from supertask.timetable import read_timetable

    path = _timetable_path(file)
    try:
        tt = read_timetable(path)
    except TimetableError as exc:
        sys.stderr.write(str(exc) + "\n")
        raise typer.Exit(1) from None
    typer.echo(f"{path}: ok, {len(tt.jobs)} job{'s' if len(tt.jobs) != 1 else ''}")


@app.command("next")
def next_(
    file: Annotated[str | None, typer.Argument(help="Timetable (default ./supertask.yaml, else ./timetable.yaml)")] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, help="Fire times per job")] = 5,
    after: Annotated[str | None, typer.Option("--after", metavar="ISO", help="Start from this time (ISO 8601; default now)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each job's next fire times, with a human description of its schedule."""
    from supertask import commands

    rows = commands.next_fires(_timetable_path(file), count=count, after=after)
    if as_json:
        from supertask.output import print_json

        print_json(rows)
        return
    from supertask.output import print_table

    print_table(
        None, ["job", "when", "description", "next fires"],
        [(r["job"], r["when"], r["description"], "\n".join(r["fires"]) or "never") for r in rows],
    )
    for r in rows:
        for warning in r["warnings"]:
            sys.stderr.write(f"warning: {r['job']}: {warning}\n")


# -- the store ----------------------------------------------------------------------------------


@app.command("list-namespaces")
def list_namespaces(store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """List the namespaces in the store, with where each came from."""
    settings = _settings(store, home)
    rows = _open_store(settings).list_namespaces()
    if as_json:
        from supertask.output import print_json

        print_json(rows)
        return
    from supertask.output import print_table, short_time

    print_table(None, ["namespace", "jobs", "source", "host", "user", "created", "updated"],
                [(r["name"], r["jobs"], r["source"], r["host"], r["user"], short_time(r["created"]),
                  short_time(r["updated"])) for r in rows])


@app.command("list-jobs")
def list_jobs(
    namespace: NsOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    connect: Annotated[str | None, _opt("connect", "--connect", metavar="unix:PATH|tcp://HOST:PORT")] = None,
    token: Annotated[str | None, _opt("token", "--token")] = None,
    live: Annotated[bool, typer.Option("--live/--no-live", help="Ask the running scheduler (next fire, paused, "
                                       "running) when one answers; --no-live reads the store")] = True,
    as_json: JsonOpt = False,
) -> None:
    """List jobs: live from the running scheduler when one answers, else as the store has them."""
    rows = None
    if live:
        from supertask.cli_live import live_rows

        rows = live_rows(connect, home, namespace, token)
    if rows is None:
        st = _open_store(_settings(store, home))
        _known_namespace(st, namespace)
        rows = [j.to_json() for j in st.list_jobs(namespace)]
    if as_json:
        from supertask.output import print_json

        print_json(rows)
        return
    from supertask.output import print_jobs

    print_jobs(rows)


@app.command()
def history(
    job: Annotated[str | None, typer.Argument(help="Only this job")] = None,
    namespace: NsOpt = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed, timed-out, killed and lost runs")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first")] = 20,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """List recorded runs, newest first."""
    st = _open_store(_settings(store, home))
    _known_namespace(st, namespace)
    runs = st.history(namespace, job, failed=failed, limit=limit)
    if as_json:
        from supertask.output import print_json

        print_json([r.to_json() for r in runs])
        return
    from supertask.model import format_duration
    from supertask.output import print_table, short_time

    rows = []
    for r in runs:
        d = r.to_json()
        rows.append((r.id, r.namespace, r.job, r.attempt, r.reason, short_time(d["scheduled"]), r.status,
                     r.exit_code, format_duration(d["duration"]), r.message))
    print_table(None, ["run", "namespace", "job", "try", "reason", "scheduled", "status", "exit", "took", "note"], rows)


@app.command()
def logs(
    run_id: Annotated[int, typer.Argument(metavar="RUN_ID", help="A run id, as `supertask history` shows")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends")] = False,
    store: StoreOpt = None,
    home: HomeOpt = None,
    connect: Annotated[str | None, _opt("connect", "--connect", metavar="unix:PATH|tcp://HOST:PORT")] = None,
    token: Annotated[str | None, _opt("token", "--token")] = None,
) -> None:
    """Print a run's log: its stdout and stderr, time-stamped and interleaved."""
    if connect:
        from supertask.cli_live import remote_follow

        raise typer.Exit(remote_follow(connect, home, token, run_id, follow=follow))
    from supertask import commands

    settings = _settings(store, home)
    raise typer.Exit(commands.print_log(_open_store(settings), run_id, follow=follow))


@app.command()
def prune(
    namespace: NsOpt = None,
    keep: Annotated[int | None, typer.Option("--keep", min=0, help="Keep this many runs per job (overrides history_keep)")] = None,
    older_than: Annotated[str | None, typer.Option("--older-than", metavar="AGE", help="Drop runs older than AGE, e.g. 30d (overrides history_keep)")] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Apply run retention now: each job's history_keep, or --keep / --older-than for all."""
    from supertask import commands
    from supertask.model import parse_duration

    try:
        age = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from exc
    settings = _settings(store, home)
    removed = commands.prune(_open_store(settings), namespace, keep=keep, max_age=age)
    if as_json:
        from supertask.output import print_json

        print_json(removed)
        return
    total = sum(removed.values())
    typer.echo(f"removed {total} run{'s' if total != 1 else ''} and their logs"
               + "".join(f"\n  {ns}: {n}" for ns, n in removed.items() if n))


# Commands that live in their own modules register themselves on `app` when imported.
from supertask import cli_admin, cli_live  # noqa: E402,F401


def _only_the_command_asked_for(argv: list[str]) -> None:
    """Keep on ``app`` only the command that ``argv`` names, when it names one.

    typer turns every registered function into a click command on each start
    (``inspect.signature`` and ``get_type_hints`` of every parameter: ~40 ms of a
    one-shot ``supertask run -- cmd:true``, docs/benchmarks.md). ``supertask --help``,
    an unknown command and shell completion still see them all."""
    if not argv or argv[0].startswith("-"):
        return
    from typer.main import get_command_name

    commands = [c for c in app.registered_commands
                if (c.name or get_command_name(c.callback.__name__ if c.callback else "")) == argv[0]]
    groups = [g for g in app.registered_groups if g.name == argv[0]]
    if commands or groups:
        app.registered_commands, app.registered_groups = commands, groups


def main() -> None:
    """Console-script entry point: map supertask errors to messages and exit codes."""
    _only_the_command_asked_for(sys.argv[1:])
    try:
        app()
    except SupertaskError as exc:
        from supertask.output import error

        error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
