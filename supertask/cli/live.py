"""Live commands: talk to a running scheduler over its control endpoint (supertask.control.endpoint).

Each finds the local scheduler by itself (the control socket in the state folder), or
the one ``--connect`` names; with none to talk to it exits 3 saying how to start one.
"""

from __future__ import annotations

import sys
import time
from typing import Annotated, Any

import typer

from supertask.cli.app import HomeOpt, JsonOpt, NsOpt, StoreOpt, WideOpt, _opt, app
from supertask.cli.remote import client, exit_code_of, follow_log
from supertask.errors import NoScheduler, UsageError

ConnectOpt = Annotated[str | None, _opt("connect", "--connect", metavar="unix:PATH|tcp://HOST:PORT")]
TokenOpt = Annotated[str | None, _opt("token", "--token")]
JobArg = Annotated[str, typer.Argument(metavar="JOB", help="Job name, as `supertask list-jobs` shows it")]
ClusterOpt = Annotated[str | None, typer.Option("--store", metavar="URL", help="The cluster sharing this store instead")]

jobs_app = typer.Typer(help="Change jobs of the running scheduler, live (each change is kept in the store).",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")


def _say(as_json: bool, data: Any, text: str) -> None:
    if as_json:
        from supertask.cli.output import print_json

        print_json(data)
    else:
        typer.echo(text)


def _call(connect: str | None, home: str | None, namespace: str | None, token: str | None,
          name: str, *args: Any) -> Any:
    with client(connect, home, namespace, token) as c:
        return c.call(name, *args)


# -- the scheduler as a whole -------------------------------------------------------------------


@app.command()
def status(connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
           as_json: JsonOpt = False, wide: WideOpt = False, store: ClusterOpt = None) -> None:
    """Show the running scheduler: uptime, jobs, runs in flight, next fires (in each job's
    time zone), host load. With --store URL: every scheduler sharing that store."""
    if store is not None:
        from supertask.cli.cluster import status_from_store

        return status_from_store(store, home, as_json=as_json, wide=wide)
    data = _call(connect, home, namespace, token, "status")
    if as_json:
        from supertask.cli.output import print_json

        print_json(data)
        return
    print_status(data, wide=wide)


def print_status(data: dict[str, Any], *, wide: bool = False) -> None:
    from supertask.cli.output import print_table, short_time, zone_time
    from supertask.units import format_duration

    tel = data["telemetry"]
    state = "stopping" if data["stopping"] else ("paused (no fires)" if data["paused"] else "running")
    jobs = data["jobs"]
    typer.echo(
        f"supertask {data['version']} pid {data['pid']} on {data['host']}: {state}, "
        f"up {format_duration(data['uptime'])}\n"
        f"store {data['store']}{_store_state(data.get('store_health'))}; "
        f"namespaces {', '.join(data['namespaces'])}\n"
        f"jobs {jobs['total']} ({jobs['paused']} paused, {jobs['running']} running)\n"
        f"host cpu {tel['cpu_percent']:.0f}% of {tel['cpu_count']}, load "
        f"{' '.join(f'{x:.2f}' for x in tel['load'])}, memory {tel['memory']['percent']:.0f}%, "
        f"disk {tel['disk']['percent']:.0f}% ({tel['disk']['path']})"
    )
    timetable = data.get("timetable") or {}
    error = timetable.get("last_error")
    if error:
        typer.echo(f"timetable {timetable.get('source')}: the last {'load at start' if error['trigger'] == 'start' else 'reload'} "
                   f"failed at {short_time(error['at'])} ({error['trigger']}); serving the last good one:\n"
                   + "\n".join(f"  {p}" for p in error["problems"]))
    from supertask.workers.operators import print_queued

    print_queued(data.get("queued") or [], typer.echo)
    if data["runs"]:
        print_table("runs in flight", ["run", "namespace", "job", "pid", "started", "elapsed", "cpu %", "memory"],
                    [(r["run_id"], r["namespace"], r["job"], r["pid"], zone_time(r["started"], r.get("timezone")),
                      format_duration(r["elapsed"]), r["cpu_percent"],
                      _bytes(r["memory_rss"])) for r in data["runs"]], wide=wide, keep=("started",))
    if data["next_fires"]:
        print_table("next fires", ["namespace", "job", "next fire"],
                    [(r["namespace"], r["job"], zone_time(r["next_fire"], r.get("timezone")))
                     for r in data["next_fires"]], wide=wide, keep=("next fire",))


def _store_state(health: dict[str, Any] | None) -> str:
    """`` UNREACHABLE since ... (error)`` while the scheduler cannot reach its store."""
    if not health or health.get("up", True):
        return ""
    return f" UNREACHABLE since {health['since']} ({health['error']})"


def _bytes(value: int | None) -> str | None:
    if value is None:
        return None
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f}{unit}" if unit == "B" else f"{size:.1f}{unit}"
        size /= 1024
    return None  # pragma: no cover


@app.command()
def stop(
    wait: Annotated[bool, typer.Option("--wait", help="Return when the scheduler process has ended")] = False,
    grace: Annotated[str | None, typer.Option("--grace", help="How long running jobs may finish (default: "
                                              "the scheduler's --grace), then their process groups end")] = None,
    connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Stop the scheduler gracefully: no new fires, running jobs finish, it exits 0."""
    grace_s = None
    if grace is not None:
        from supertask.units import parse_duration

        try:
            grace_s = parse_duration(grace)
        except ValueError as exc:
            raise UsageError(f"--grace: {exc}") from exc
    with client(connect, home, namespace, token) as c:
        data = c.call("stop", grace_s)
        if wait:
            wait_stopped(c, data["grace"])
            data["stopped"] = True
    _say(as_json, data, f"scheduler (pid {data['pid']}) " + ("stopped" if wait else
         f"stopping: running jobs get {data['grace']:g}s"))


def wait_stopped(c: Any, grace: float) -> None:
    """Until the scheduler's process has ended: once a second, while runs are in flight,
    say on stderr which (job, run, how long it has run) and how much of the grace is gone."""
    from supertask.errors import SupertaskError
    from supertask.units import format_duration

    began = time.monotonic()
    while True:
        try:
            runs = c.call("status")["runs"]
        except SupertaskError as exc:  # the connection closed (the process ended), or status failed
            if not isinstance(exc, NoScheduler):
                c.wait_closed()
            return
        if runs:
            gone = time.monotonic() - began
            items = ", ".join(f"{r['namespace']}/{r['job']} (run {r['run_id']}, running "
                              f"{format_duration(r['elapsed'])})" for r in runs)
            sys.stderr.write(f"waiting for {len(runs)} run{'s' if len(runs) != 1 else ''}: {items}; "
                             f"{format_duration(round(gone))} of the {grace:g}s grace gone\n")
            sys.stderr.flush()
        time.sleep(1)


@app.command()
def pause(connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
          as_json: JsonOpt = False) -> None:
    """Hold all firing (running jobs go on) until `supertask resume`."""
    data = _call(connect, home, namespace, token, "pause_all")
    _say(as_json, data, "firing paused; `supertask resume` releases it")


@app.command()
def resume(connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
           as_json: JsonOpt = False) -> None:
    """Release firing held by `supertask pause`."""
    data = _call(connect, home, namespace, token, "resume_all")
    _say(as_json, data, "firing resumed")


# -- jobs ------------------------------------------------------------------------------------


def _job_line(row: dict[str, Any]) -> str:
    from supertask.cli.output import zone_time

    next_fire = zone_time(row["next_fire"], row.get("timezone")) if row["next_fire"] else "never"
    state = "paused" if row["paused"] else f"next fire {next_fire}"
    return f"{row['namespace']}/{row['name']}: {row['when']}, {state}"


@jobs_app.command("trigger")
def trigger(
    job: JobArg,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the run's output; exit with its exit code")] = False,
    connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Run JOB now (reason manual), whatever its schedule; with no scheduler to talk to
    and --ns NS, a run queued in the store that a scheduler serving NS takes up."""
    try:
        c = client(connect, home, namespace, token)
    except NoScheduler as exc:
        from supertask.cli.storejobs import trigger_in_store

        trigger_in_store(exc, connect, store, home, namespace, job, wait=wait, as_json=as_json)
        return
    with c:
        data = c.call("trigger", namespace, job)
        if not wait:
            _say(as_json, data, f"triggered {data['namespace']}/{job}: run {data['run_id']}")
            return
        run_id = data["run_id"]
        while run_id is None:  # a job with jitter claims its run later
            time.sleep(0.2)
            found = c.call("find_run", data["namespace"], job, data["scheduled"])
            run_id = found["id"] if found else None
        record = follow_log(c, run_id, echo=not as_json)
    if as_json:
        from supertask.cli.output import print_json

        print_json(record)
    raise typer.Exit(exit_code_of(record))


@jobs_app.command("pause")
def pause_job(job: JobArg, connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None,
              token: TokenOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Stop firing JOB (a run in flight goes on) until `jobs resume`, on every scheduler
    serving its namespace; with no scheduler to talk to and --ns NS, in the store."""
    from supertask.cli.storejobs import live_or_store, pause

    row = live_or_store(lambda: _call(connect, home, namespace, token, "pause_job", namespace, job),
                        lambda: pause(store, home, namespace, job, True), connect, namespace, "pause")
    _say(as_json, row, _job_line(row))


@jobs_app.command("resume")
def resume_job(job: JobArg, connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None,
               token: TokenOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Fire JOB again, from its next fire time after now (in the store with no scheduler and --ns NS)."""
    from supertask.cli.storejobs import live_or_store, pause

    row = live_or_store(lambda: _call(connect, home, namespace, token, "resume_job", namespace, job),
                        lambda: pause(store, home, namespace, job, False), connect, namespace, "resume")
    _say(as_json, row, _job_line(row))


@jobs_app.command("remove")
def remove_job(job: JobArg, connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None,
               token: TokenOpt = None, store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Delete JOB from the schedule and the store (a run in flight goes on); with no
    scheduler serving --ns NS, from the store alone."""
    try:
        data = _call(connect, home, namespace, token, "remove_job", namespace, job)
    except NoScheduler as exc:
        if connect or namespace is None:
            raise NoScheduler(f"{exc}; with no scheduler, `supertask jobs remove --ns NS {job}` removes it "
                              "from the store") from None
        from supertask.cli.app import _known_namespace, _open_store, _settings

        st = _open_store(_settings(store, home))
        _known_namespace(st, namespace)
        from supertask.cli.storejobs import audit
        from supertask.control.changes import plain

        before = plain(st.get_job(namespace, job).job)  # JobNotFound (exit 2) names the listing
        st.delete_job(namespace, job)
        audit(st, "removed", namespace, job, before, None)
        data = {"namespace": namespace, "job": job, "scheduler": None}
        _say(as_json, data, f"removed {namespace}/{job} from the store (no scheduler serves {namespace}); "
                            "a timetable that names it adds it again when it is next synced")
        return
    _say(as_json, data, f"removed {data['namespace']}/{job}")


@jobs_app.command("reschedule")
def reschedule(
    job: JobArg,
    when: Annotated[str, typer.Option("--when", help="The new schedule, as `when:` takes it")],
    connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Give JOB a new schedule; it fires next by the new one, counted from now (in the
    store with no scheduler and --ns NS)."""
    from supertask.cli.storejobs import edit, live_or_store

    change = (f"when={when}",)
    row = live_or_store(lambda: _call(connect, home, namespace, token, "edit_job", namespace, job, change),
                        lambda: edit(store, home, namespace, job, change), connect, namespace, "reschedule")
    _say(as_json, row, _job_line(row))


SetOpt = Annotated[list[str] | None, typer.Option("--set", metavar="KEY=VALUE",
                                                  help="A timetable key, e.g. retries=3, timeout=5m, "
                                                  "run='cmd:...', env.NAME=value (repeatable)")]


@jobs_app.command("edit")
def edit(
    job: JobArg, assignments: SetOpt = None,
    connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change timetable keys of JOB (validated as in a timetable); in the store with no
    scheduler and --ns NS."""
    from supertask.cli.storejobs import edit as edit_stored
    from supertask.cli.storejobs import live_or_store

    if not assignments:
        raise UsageError("nothing to change: give --set KEY=VALUE, e.g. --set retries=3")
    change = tuple(assignments)
    row = live_or_store(lambda: _call(connect, home, namespace, token, "edit_job", namespace, job, change),
                        lambda: edit_stored(store, home, namespace, job, change), connect, namespace, "edit")
    _say(as_json, row, _job_line(row))


@jobs_app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The new job's name")],
    command: Annotated[list[str], typer.Argument(metavar="-- KIND:TARGET", help="What it runs, e.g. -- cmd:echo hi")],
    when: Annotated[str, typer.Option("--when", help="Its schedule, as `when:` takes it")] = "",
    assignments: SetOpt = None,
    connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:
    """Add an ad-hoc job to the running scheduler (kept in the store); to the store
    with no scheduler and --ns NS."""
    from supertask.cli.storejobs import add as add_stored
    from supertask.cli.storejobs import live_or_store

    if not when:
        raise UsageError("jobs add needs --when, e.g. --when '@hourly' or --when 'every 5m'")
    first, rest = command[0], command[1:]
    import shlex

    run = first + (" " + shlex.join(rest) if rest else "")
    sets = tuple(assignments or ())
    row = live_or_store(lambda: _call(connect, home, namespace, token, "add_job", namespace, name, when, run, sets),
                        lambda: add_stored(store, home, namespace, name, when, run, sets), connect, namespace, "add")
    _say(as_json, row, _job_line(row))


@jobs_app.command("kill")
def kill(
    run_id: Annotated[int, typer.Argument(metavar="RUN_ID", help="A run in flight, as `supertask status` shows")],
    connect: ConnectOpt = None, home: HomeOpt = None, namespace: NsOpt = None, token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """End a run's process group (TERM, then KILL after the job's kill_grace)."""
    data = _call(connect, home, namespace, token, "kill_run", run_id)
    where = f"on worker {data['worker']}" if data.get("worker") else f"pid {data['pid']}"
    then = "ending at its worker's next heartbeat" if data.get("worker") else "ending"
    _say(as_json, data, f"run {run_id} ({data['namespace']}/{data['job']}, {where}): {then}")
