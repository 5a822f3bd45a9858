"""``supertask workers``: the workers sharing the store, and an operator's ``drain``,
``pause`` and ``resume`` of one (docs/workers.md). From the store alone, as ``supertask
hosts`` is for the schedulers (:mod:`supertask.cli.cluster`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from supertask.cli.app import HomeOpt, JsonOpt, StoreOpt, WideOpt, _open_store, _settings, app

if TYPE_CHECKING:
    from supertask.workers.operators import Wanted

workers_app = typer.Typer(help="The workers sharing the store: list them (the default), drain, pause or resume one.",
                          invoke_without_command=True)
app.add_typer(workers_app, name="workers")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The worker's name, as `supertask workers` lists it")]


@workers_app.callback()
def workers(ctx: typer.Context, store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False,
            wide: WideOpt = False,
            every: Annotated[bool, typer.Option("--all", help="Also workers stopped or lost more than a day ago")] = False,
            ) -> None:
    """List the workers: host, labels, slots, runs in flight, state, heartbeat age, up or
    down (a heartbeat within its lease), and their host's CPU, memory and disk I/O."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (store, home, as_json)
        return
    from supertask.workers.operators import RECENT, worker_rows

    st = _open_store(_settings(store, home))
    rows = worker_rows(st, within=None if every else RECENT)
    dialect = getattr(st, "dialect", "postgresql")
    if not rows and not as_json and dialect != "postgresql":
        typer.echo(f"no workers: workers need a PostgreSQL store, and {dialect} is not one (docs/workers.md)")
        return
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    from supertask.cli.output import print_workers

    print_workers(rows, wide=wide)


def _ask(ctx: typer.Context, name: str, wanted: Wanted, store: str | None, home: str | None, as_json: bool) -> None:
    from supertask.settings import current_user, host_name
    from supertask.workers.operators import ask

    given = ctx.obj or (None, None, False)
    settings = _settings(store or given[0], home or given[1])
    row = ask(_open_store(settings), name, wanted, who=current_user(), source=f"cli on {host_name()}")
    if as_json or given[2]:
        from supertask.cli.output import print_json

        print_json(row)
        return
    verb = {"drain": "drains: it finishes its runs in flight and takes no more",
            "pause": "pauses: it takes no more runs until `supertask workers resume`; its runs in flight go on",
            "serve": "resumes taking runs"}[wanted.value]
    typer.echo(f"worker {name} (was {row['recorded_state']}) {verb} at its next heartbeat")


@workers_app.command("drain")
def drain(ctx: typer.Context, name: NameArg, store: StoreOpt = None, home: HomeOpt = None,
          as_json: JsonOpt = False) -> None:
    """Let the worker finish its runs in flight and take no more (as a SIGTERM to it does,
    but it stays up, draining, until it is stopped or resumed)."""
    from supertask.workers.operators import Wanted

    _ask(ctx, name, Wanted.DRAIN, store, home, as_json)


@workers_app.command("pause")
def pause(ctx: typer.Context, name: NameArg, store: StoreOpt = None, home: HomeOpt = None,
          as_json: JsonOpt = False) -> None:
    """Stop the worker taking runs for now; its runs in flight go on."""
    from supertask.workers.operators import Wanted

    _ask(ctx, name, Wanted.PAUSE, store, home, as_json)


@workers_app.command("resume")
def resume(ctx: typer.Context, name: NameArg, store: StoreOpt = None, home: HomeOpt = None,
           as_json: JsonOpt = False) -> None:
    """Let a paused or draining worker take runs again."""
    from supertask.workers.operators import Wanted

    _ask(ctx, name, Wanted.SERVE, store, home, as_json)
