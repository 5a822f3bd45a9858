"""Operator commands: import-crontab, init, doctor, service install."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from supertask.cli.app import HomeOpt, JsonOpt, StoreOpt, _settings, app, missing_store
from supertask.errors import UsageError

service_app = typer.Typer(help="Run supertask as a systemd service.", no_args_is_help=True)
app.add_typer(service_app, name="service")


# -- import-crontab ------------------------------------------------------------------------------


@app.command("import-crontab")
def import_crontab(
    files: Annotated[list[str] | None, typer.Argument(
        metavar="[FILE|-]...", help="Crontab files, - for stdin; default: your crontab (crontab -l), "
                                   "or with --system /etc/crontab and /etc/cron.d/*")] = None,
    system: Annotated[bool, typer.Option(
        "--system", help="System crontabs: a user column after the schedule (/etc/crontab, /etc/cron.d/*)")] = False,
    user: Annotated[str | None, typer.Option(
        "--user", metavar="NAME", help="The user supertask will run as (default: you); with --system, other "
                                       "users' jobs get `runuser -u USER --` when this is root")] = None,
) -> None:
    """Turn a crontab into a timetable on stdout; what does not carry over goes to stderr.

    Every job keeps its schedule exactly (supertask's cron is cron's). Example:
    `supertask import-crontab --system > supertask.yaml && supertask validate`.
    """
    from supertask.settings import current_user, host_name
    from supertask.timetable.cronimport import import_crontabs, render_timetable
    from supertask.timetable.cronnames import namespace_for
    from supertask.timetable.crontab import parse_crontab
    from supertask.timetable.load import load_timetable

    sources = _crontab_sources(files or [], system)
    tabs = [parse_crontab(text, source, system=system) for source, text in sources]
    result = import_crontabs(tabs, run_as=user or current_user())
    result.namespace = namespace_for([s for s, _ in sources], host=host_name(), user=current_user(),
                                     system=system)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"Imported from {', '.join(s for s, _ in sources)} by `supertask import-crontab` on {stamp}.\n"
              "Each job keeps its cron schedule exactly; `supertask next` shows the coming fires.\n"
              "See docs/coming-from-cron.md for what differs from cron.")
    for note in result.notes:
        sys.stderr.write(f"note: {note}\n")
    if not result.jobs:
        raise UsageError(f"no jobs to import in {', '.join(s for s, _ in sources)}")
    text = render_timetable(result, header=header)
    load_timetable(text, "<import-crontab output>")  # a bug here must not hand out a broken timetable
    sys.stdout.write(text)
    jobs = len(result.jobs)
    sys.stderr.write(f"imported {jobs} job{'s' if jobs != 1 else ''} from {len(sources)} crontab"
                     f"{'s' if len(sources) != 1 else ''}, {len(result.notes)} note{'s' if len(result.notes) != 1 else ''}\n")


def _crontab_sources(files: list[str], system: bool) -> list[tuple[str, str]]:
    if not files:
        if system:
            paths = [Path("/etc/crontab")]
            folder = Path("/etc/cron.d")
            if folder.is_dir():  # cron skips names with dots and editor backups
                paths += sorted(p for p in folder.iterdir() if p.is_file() and _cron_d_name(p.name))
            return [(str(p), _read(p)) for p in paths if p.exists()]
        try:
            proc = subprocess.run(["crontab", "-l"], capture_output=True, text=True, timeout=30)
        except OSError as exc:
            raise UsageError(f"no FILE given and `crontab -l` cannot run ({exc.strerror}); pass a crontab file or -") from exc
        if proc.returncode != 0:
            raise UsageError(f"`crontab -l` failed: {proc.stderr.strip() or proc.returncode}; pass a crontab file or -")
        return [("crontab -l", proc.stdout)]
    out = []
    for name in files:
        if name == "-":
            out.append(("<stdin>", sys.stdin.read()))
        else:
            out.append((name, _read(Path(name))))
    return out


def _cron_d_name(name: str) -> bool:
    import re

    return re.fullmatch(r"[A-Za-z0-9_-]+", name) is not None


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"{path}: {exc.strerror or exc}") from exc


# -- forget --------------------------------------------------------------------------------------


@app.command()
def forget(
    namespace: Annotated[str, typer.Argument(metavar="NS", help="A namespace, as `supertask list-namespaces` "
                                             "shows it")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove a namespace no scheduler serves any more: its jobs, its runs and their logs,
    from the store (no scheduler needed; one serving NS here is refused)."""
    from supertask.cli.app import _known_namespace, _open_store
    from supertask.cli.forget import forget_namespace, refuse_if_served

    settings = _settings(store, home)
    st = _open_store(settings)
    _known_namespace(st, namespace)
    refuse_if_served(settings.home, namespace, "remove its jobs with `supertask jobs remove`")
    row = next(r for r in st.list_namespaces() if r["name"] == namespace)
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError(f"forget {namespace} deletes its {row['jobs']} job(s), its runs and their logs; "
                             "pass --yes to do it without a terminal to confirm on")
        typer.confirm(f"Forget namespace {namespace} ({row['jobs']} job(s), from {row['source']}) "
                      "with all its runs and their logs?", abort=True)
    data = forget_namespace(st, namespace)
    if as_json:
        from supertask.cli.output import print_json

        print_json(data)
        return
    typer.echo(f"forgot namespace {namespace}: {data['jobs']} job(s), {data['runs']} run(s), {data['logs']} log file(s)")


# -- init ----------------------------------------------------------------------------------------

STARTER = """\
# supertask timetable: each job says when it runs and what it runs.
# Check it with `supertask validate`, see the coming fires with `supertask next`,
# run it with `supertask run` (docs/timetable.md has every key).

# namespace: my-server        # optional; default: derived from host, user and this file's path

defaults:                     # applied to every job below; a job's own keys win
  timeout: 1h                 # end a run (its whole process group) after this long
  # timezone: Europe/Berlin   # default: the machine's zone, as cron
  # retries: 2                # extra attempts after a failure
  # retry_delay: 30s          # doubles on each attempt
  # overlap: skip             # skip | queue | allow, while the previous run still runs
  # mailto: root              # mail a failed run (exit code, log tail) through sendmail, as cron's MAILTO
  # on_failure: ["cmd:supertask logs $SUPERTASK_RUN_ID | mail -s \\"$SUPERTASK_JOB failed\\" root"]

jobs:
  - name: hello
    description: Say hello every five minutes (cron syntax, exactly as cron reads it)
    when: "*/5 * * * *"
    run: "cmd:echo hello from $SUPERTASK_JOB, run $SUPERTASK_RUN_ID"

  - name: nightly-cleanup
    description: Delete week-old files from /tmp/myapp
    when: "@daily"            # @hourly @daily @weekly @monthly @yearly @reboot @restart
    run: "cmd:find /tmp/myapp -type f -mtime +7 -delete 2>/dev/null || true"
    enabled: false            # flip to true when it suits you

  # - name: report
  #   when: "every 30m"       # an interval of real time
  #   run: "uv:report.py"     # a PEP 723 script with its own dependencies, through uv
  #
  # - name: container-job
  #   when: "0 3 * * mon-fri"
  #   run: "docker:alpine:3 -- echo from a container"
"""


@app.command()
def init(
    file: Annotated[Path, typer.Argument(help="Where to write it")] = Path("supertask.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Write a commented starter timetable (supertask.yaml)."""
    if file.exists() and not force:
        raise UsageError(f"{file} exists; pass --force to overwrite it, or name another file")
    file.write_text(STARTER, encoding="utf-8")
    typer.echo(f"wrote {file}: check it with `supertask validate {file}`, run it with `supertask run --file {file}`")


# -- doctor --------------------------------------------------------------------------------------


@app.command()
def doctor(
    file: Annotated[str | None, typer.Option("--file", "-f", help="Timetable to check (default ./supertask.yaml, else ./timetable.yaml)")] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the store, the state folder, uv, docker/podman, the time zone and the timetable;
    say what to fix. Exit 1 when a check fails."""
    from supertask.cli.doctor import run_checks
    from supertask.timetable.load import TIMETABLE_NAMES

    path = Path(file) if file else next((Path(n) for n in TIMETABLE_NAMES if Path(n).is_file()), None)
    settings = _settings(store, home)
    checks = run_checks(settings, path)
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        from supertask.cli.output import print_json

        print_json([c.to_json() for c in checks])
    else:
        for check in checks:
            mark = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}[check.status]
            typer.echo(f"{mark} {check.name}: {check.detail}")
            if check.fix:
                typer.echo(f"     fix: {check.fix}")
        typer.echo("some checks failed" if failed else "all good" if all(c.status == "ok" for c in checks)
                   else "usable; see the warnings")
    if failed:
        raise typer.Exit(1)
    missing = missing_store(settings)
    if missing is not None:  # as the reading commands say it: the folder looked in, where a service's is
        typer.echo(f"supertask: {missing}", err=True)
        raise typer.Exit(2)


# -- service -------------------------------------------------------------------------------------


@service_app.command("install")
def service_install(
    file: Annotated[str | None, typer.Option("--file", "-f", help="Timetable (default ./supertask.yaml, else ./timetable.yaml)")] = None,
    user_unit: Annotated[bool, typer.Option("--user", help="A user unit (systemctl --user) instead of a system one")] = False,
    print_only: Annotated[bool, typer.Option("--print", help="Print the unit instead of writing it")] = False,
    name: Annotated[str, typer.Option("--name", help="Unit name")] = "supertask",
    run_as: Annotated[str | None, typer.Option("--run-as", metavar="USER", help="User= of a system unit")] = None,
    metrics: Annotated[str | None, typer.Option("--metrics", metavar="HOST:PORT", help="Serve Prometheus metrics")] = None,
    grace: Annotated[str, typer.Option("--grace", help="How long running jobs may finish on stop")] = "30s",
    store: StoreOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a unit (and its environment file) that exists")] = False,
) -> None:
    """Write a systemd unit that runs `supertask run --file FILE` (restart on failure,
    state in systemd's StateDirectory, SIGHUP reloads), or print it with --print. A store
    URL with a password goes to a 0600 environment file beside it, not into the unit."""
    from supertask.cli.systemd import (
        UnitOptions,
        env_file_path,
        next_steps,
        render_env_file,
        render_unit,
        store_has_secret,
        unit_path,
    )
    from supertask.errors import TimetableError
    from supertask.timetable.load import find_timetable, read_timetable
    from supertask.units import parse_duration

    path = (Path(file) if file else find_timetable()).resolve()
    try:
        read_timetable(path)
    except TimetableError as exc:
        raise UsageError(f"the timetable has problems; fix them first:\n{exc}") from exc
    try:
        grace_s = parse_duration(grace)
    except ValueError as exc:
        raise UsageError(f"--grace: {exc}") from exc
    options = UnitOptions(timetable=path, user_unit=user_unit, name=name, store=store, run_as=run_as,
                          grace=grace_s, metrics=metrics)
    text = render_unit(options)
    secret = store_has_secret(store)
    env_file = env_file_path(options)
    if print_only:
        sys.stdout.write(text)
        if secret:
            typer.echo(f"note: the store URL has a password, so the unit reads it from {env_file}: write "
                       "SUPERTASK_STORE=<the URL> there (mode 0600)", err=True)
        return
    target = unit_path(options)
    for path in [target, *([env_file] if secret else [])]:
        if path.exists() and not force:
            raise UsageError(f"{path} exists; pass --force to replace it (or --print the new one to compare)")
    try:
        if secret:
            _write_private(env_file, render_env_file(options))
        _make_dirs(target.parent)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o644)
            fh.write(text)
    except OSError as exc:
        hint = "run it as root, or pass --user for a user unit" if not user_unit else "check the folder"
        raise UsageError(f"cannot write {exc.filename or target}: {exc.strerror or exc}; {hint} (or --print it)") from exc
    if secret:
        typer.echo(f"wrote {env_file} (mode 0600: the store URL and its password)")
    typer.echo(f"wrote {target}; now run:")
    for step in next_steps(options):
        typer.echo(f"  {step}")


def _write_private(path: Path, text: str) -> None:
    """``text`` to ``path`` with mode 0600 whatever the umask, never through a symlink."""
    _make_dirs(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o600)
        fh.write(text)


def _make_dirs(folder: Path) -> None:
    """``mkdir -p -m 0755``: every folder made 0755 whatever the umask (``Path.mkdir``
    gives the parents it makes the umask's mode)."""
    missing = [p for p in [folder, *folder.parents] if not p.exists()]
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o755)
            os.chmod(path, 0o755)
        except FileExistsError:
            pass
