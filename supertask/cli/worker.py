"""``supertask worker``: a process that takes queued runs from a PostgreSQL store and runs
them (docs/workers.md; the worker itself is :mod:`supertask.workers.worker`)."""

from __future__ import annotations

from typing import Annotated

import typer

from supertask.cli.app import (
    HomeOpt,
    LogFormatOpt,
    StoreOpt,
    _opt,
    _settings,
    app,
    checked_durations,
    checked_logging,
)
from supertask.errors import UsageError
from supertask.settings import cli_default

#: a worker's name: what ``supertask workers`` shows and runs' ``worker`` column holds
NAME_LIMIT = 64


@app.command()
def worker(
    labels: Annotated[str, typer.Option("--labels", envvar="SUPERTASK_LABELS", show_envvar=True, metavar="K=V,...",
                                        help="What this worker has: it takes the runs whose job's on: asks for "
                                             "labels it has (every key=value must match), e.g. gpu=1,region=eu")] = "",
    slots: Annotated[int, typer.Option("--slots", envvar="SUPERTASK_SLOTS", show_envvar=True,
                                       help="Most runs in flight at once on this worker")] = 1,
    name: Annotated[str | None, typer.Option("--name", envvar="SUPERTASK_WORKER_NAME", show_envvar=True,
                                             help="This worker's name in the store; default HOST-PID")] = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    heartbeat: Annotated[str, typer.Option("--heartbeat", envvar="SUPERTASK_HEARTBEAT", show_envvar=True,
                                           help="How often the worker writes its row and renews its runs' "
                                                "leases")] = cli_default("heartbeat"),
    lease: Annotated[str, typer.Option("--lease", envvar="SUPERTASK_LEASE", show_envvar=True,
                                       help="How long the worker may go without a heartbeat before its runs count "
                                            "as lost and are retried elsewhere (at least twice --heartbeat); it "
                                            "ends them itself halfway through")] = cli_default("lease"),
    log_format: LogFormatOpt = cli_default("log_format"),
    log_level: Annotated[str | None, _opt("log_level", "--log-level")] = cli_default("log_level"),
) -> None:
    """Take runs from a PostgreSQL store and run them: those whose job's on: asks for
    labels this worker has (and every run of a `supertask run --workers-only`).

    Runs until SIGTERM or SIGINT, which drain it: it takes no more runs and exits once
    those in flight have ended (a second signal ends them).
    """
    import os

    from supertask.log import configure
    from supertask.settings import LOG_LEVEL
    from supertask.workers.labels import LabelError, parse

    try:
        wanted = parse(labels)
    except LabelError as exc:
        raise UsageError(f"--labels: {exc}") from exc
    if slots < 1:
        raise UsageError(f"--slots {slots}: a worker needs at least 1 slot; e.g. --slots 4")
    durations = checked_durations(heartbeat=heartbeat, lease=lease)
    log_level = log_level or LOG_LEVEL
    checked_logging(log_format, log_level)
    settings = _settings(store, home)
    worker_name = name or f"{settings.host}-{os.getpid()}"
    from supertask.model import name_problem

    problem = name_problem(worker_name, "worker name")
    if problem or len(worker_name) > NAME_LIMIT:
        raise UsageError(f"--name: {problem or f'{worker_name!r} is longer than {NAME_LIMIT} characters'}")
    url = settings.store_url
    if not url.startswith(("postgresql", "postgres:")):
        from supertask.store.tables import redact

        raise UsageError(f"a worker needs a PostgreSQL store shared with the schedulers (--store "
                         f"postgresql://HOST/DB or SUPERTASK_STORE), not {redact(url)}: SQLite stays on one "
                         "machine, where `supertask run` runs every job itself")
    configure(log_format, log_level)
    from supertask.store.sql import open_store
    from supertask.workers.worker import Worker, WorkerOptions

    st = open_store(url)
    options = WorkerOptions(name=worker_name, labels=wanted, slots=slots, host=settings.host, **durations)
    try:
        code = Worker(options, st, settings).run()
    finally:
        st.close()
    raise typer.Exit(code)
