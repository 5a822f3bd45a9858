"""The everyday commands: run, validate, next, list-namespaces, list-jobs, history, logs, prune."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from supertask.cli.app import (
    HomeOpt,
    JsonOpt,
    LogFormatOpt,
    NsOpt,
    StoreOpt,
    WideOpt,
    _known_namespace,
    _open_store,
    _opt,
    _settings,
    _timetable_path,
    app,
    checked_durations,
    checked_logging,
    timetable_namespace,
)
from supertask.errors import UsageError
from supertask.settings import (
    LEASE_LOST,
    LOG_LEVEL,
    ONE_SHOT_LOG_LEVEL,
    cli_default,
    env_name,
)

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
    grace: Annotated[str, _opt("grace", "--grace")] = cli_default("grace"),
    max_workers: Annotated[int, _opt("max_workers", "--max-workers")] = cli_default("max_workers"),
    max_concurrent: Annotated[int | None, _opt("max_concurrent", "--max-concurrent", min=1)] = cli_default("max_concurrent"),
    listen: Annotated[str | None, _opt("listen", "--listen", metavar="HOST:PORT")] = None,
    token: Annotated[str | None, _opt("token", "--token")] = None,
    metrics: Annotated[str | None, _opt("metrics", "--metrics", metavar="HOST:PORT")] = None,
    http: Annotated[str | None, _opt("http", "--http", metavar="HOST:PORT")] = None,
    watch: Annotated[bool, _opt("watch", "--watch/--no-watch")] = cli_default("watch"),
    allow_second: Annotated[bool, _opt("allow_second", "--allow-second")] = cli_default("allow_second"),
    workers_only: Annotated[bool, _opt("workers_only", "--workers-only")] = cli_default("workers_only"),
    heartbeat: Annotated[str, _opt("heartbeat", "--heartbeat")] = cli_default("heartbeat"),
    lease: Annotated[str, _opt("lease", "--lease")] = cli_default("lease"),
    lease_lost: Annotated[str, _opt("lease_lost", "--lease-lost", metavar="keep|end")] = cli_default("lease_lost"),
    log_format: LogFormatOpt = cli_default("log_format"),
    log_level: Annotated[str | None, _opt("log_level", "--log-level")] = cli_default("log_level"),
) -> None:
    """Run the scheduler in the foreground, or one job once.

    `supertask run` syncs the timetable into its namespace and fires its jobs until
    SIGINT or SIGTERM. `supertask run -- cmd:echo hello` runs a command once now and
    exits with its exit code; add `--when @daily` to schedule it instead.
    """
    from supertask.cli import commands
    from supertask.log import configure
    once = (command or (file or "").endswith(".py")) and (when or "once") in ("once", "now")
    # a one-shot run shows its command's output; supertask's own events only when asked
    log_level = log_level or (ONE_SHOT_LOG_LEVEL if once else LOG_LEVEL)
    checked_logging(log_format, log_level)
    if lease_lost not in LEASE_LOST:
        raise UsageError(f"--lease-lost: {lease_lost!r} is not a choice; use keep or end")
    configure(log_format, log_level)
    durations = checked_durations(grace=grace, heartbeat=heartbeat, lease=lease)
    settings = _settings(store, home, max_workers=max_workers, max_concurrent=max_concurrent,
                         listen=listen, token=token, metrics=metrics, http=http, watch=watch, allow_second=allow_second,
                         workers_only=workers_only,
                         log_format=log_format, log_level=log_level, lease_lost=lease_lost, **durations)
    code = commands.run(settings, command=command or [], file=file, when=when, name=name, namespace=namespace)
    raise typer.Exit(code)


# -- timetables ---------------------------------------------------------------------------------


@app.command()
def validate(
    file: Annotated[str | None, typer.Argument(help="Timetable (default ./supertask.yaml, else ./timetable.yaml)")] = None,
) -> None:
    """Check a timetable: exit 0 when valid, 1 with every problem listed when not."""
    from supertask.errors import TimetableError
    from supertask.timetable.load import read_timetable

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
    wide: WideOpt = False,
) -> None:
    """Show each job's next fire times, with a human description of its schedule."""
    from supertask.cli import commands

    rows = commands.next_fires(_timetable_path(file), count=count, after=after)
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    from supertask.cli.output import print_table, zone_time

    print_table(
        None, ["job", "when", "description", "next fires"],
        [(r["job"], r["when"], r["description"], "\n".join(zone_time(f, r["timezone"]) for f in r["fires"]) or "never")
         for r in rows], wide=wide, empty="no jobs", keep=("next fires",),
    )
    for r in rows:
        for warning in r["warnings"]:
            sys.stderr.write(f"warning: {r['job']}: {warning}\n")


# -- the store ----------------------------------------------------------------------------------


@app.command("list-namespaces")
def list_namespaces(store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False,
                    wide: WideOpt = False) -> None:
    """List the namespaces in the store, with where each came from."""
    settings = _settings(store, home)
    rows = _open_store(settings).list_namespaces()
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    from supertask.cli.output import print_namespaces

    print_namespaces(rows, wide=wide)


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
    wide: WideOpt = False,
) -> None:
    """List jobs: live from the running scheduler when one answers, else as the store has them."""
    rows = None
    if live:
        from supertask.cli.remote import live_rows

        rows = live_rows(connect, home, namespace, token)
    if rows is None:
        st = _open_store(_settings(store, home))
        _known_namespace(st, namespace)
        rows = [j.to_json() for j in st.list_jobs(namespace)]
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    from supertask.cli.output import print_jobs

    print_jobs(rows, wide=wide)


@app.command()
def history(
    job: Annotated[str | None, typer.Argument(help="Only this job")] = None,
    namespace: Annotated[str | None, _opt("namespace", "--ns", "--namespace", metavar="NS", help=(
        "Only this namespace; default: the timetable's in this folder (./supertask.yaml, else "
        "./timetable.yaml) when the store has it, else all"))] = None,
    all_namespaces: Annotated[bool, typer.Option("--all", "-a", help="Every namespace, whatever the folder's "
                                                 "timetable")] = False,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed, timed-out, killed and lost runs")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="How many runs, newest first")] = 20,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """List recorded runs, newest first, times in each job's time zone."""
    st = _open_store(_settings(store, home))
    if all_namespaces and namespace:
        raise UsageError("give either --ns or --all, not both")
    _known_namespace(st, namespace)
    if namespace is None and not all_namespaces:
        namespace = timetable_namespace(st)
    runs = st.history(namespace, job, failed=failed, limit=limit)
    if as_json:
        from supertask.cli.output import print_json

        print_json([r.to_json() for r in runs])
        return
    from supertask.cli.output import print_history

    print_history(runs, _job_zones(st, runs), wide=wide)


def _job_zones(st, runs) -> dict[tuple[str, str], str | None]:  # type: ignore[no-untyped-def]
    """Each run's job's time zone, for the jobs the store still has."""
    wanted: dict[str, set[str]] = {}
    for r in runs:
        wanted.setdefault(r.namespace, set()).add(r.job)
    return {(ns, j.job.name): j.job.timezone for ns, names in wanted.items() for j in st.get_jobs(ns, names)}


@app.command()
def logs(
    run_id: Annotated[int, typer.Argument(metavar="RUN_ID", help="A run id, as `supertask history` shows")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends")] = False,
    namespace: Annotated[str | None, _opt("namespace", "--ns", "--namespace", metavar="NS",
                                          help="The run must be in this namespace (else exit 2)")] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    connect: Annotated[str | None, _opt("connect", "--connect", metavar="unix:PATH|tcp://HOST:PORT")] = None,
    token: Annotated[str | None, _opt("token", "--token")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run and its log text as JSON "
                                          "({run, log}; with --follow, once the run has ended)")] = False,
) -> None:
    """Print a run's log: its stdout and stderr, time-stamped and interleaved."""
    if connect:
        from supertask.cli.remote import remote_follow

        raise typer.Exit(remote_follow(connect, home, token, run_id, follow=follow, namespace=namespace,
                                       as_json=as_json))
    from supertask.cli import commands

    settings = _settings(store, home)
    st = _open_store(settings)
    if as_json:
        from supertask.cli.output import print_json

        print_json(commands.log_json(st, run_id, follow=follow, namespace=namespace))
        return
    raise typer.Exit(commands.print_log(st, run_id, follow=follow, namespace=namespace))


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
    from supertask.cli import commands
    from supertask.units import parse_duration

    try:
        age = parse_duration(older_than) if older_than else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from exc
    settings = _settings(store, home)
    removed = commands.prune(_open_store(settings), namespace, keep=keep, max_age=age)
    if as_json:
        from supertask.cli.output import print_json

        print_json(removed)
        return
    typer.echo(_pruned_text(removed, keep))


def _pruned_text(removed: dict[str, dict[str, int]], keep: int | None) -> str:
    """What ``prune`` says: real runs and skipped rows removed, in all and per namespace."""
    def counted(runs: int, skipped: int) -> str:
        text = f"{runs} run{'s' if runs != 1 else ''}"
        return text + (f" and {skipped} skipped row{'s' if skipped != 1 else ''}" if skipped else "")

    runs, skipped = sum(r["runs"] for r in removed.values()), sum(r["skipped"] for r in removed.values())
    lines = [f"removed {counted(runs, skipped)}, with their logs"]
    lines += [f"  {ns}: {counted(r['runs'], r['skipped'])}" for ns, r in removed.items() if r["runs"] or r["skipped"]]
    if keep is not None:
        lines.append(f"kept the newest {keep} run{'s' if keep != 1 else ''} of each job (skipped fires do not count); "
                     "skipped rows before the oldest run kept went too, those since stay")
    return "\n".join(lines)
