"""``supertask web`` (the dashboard alone, for a whole store), ``supertask tokens
create|list|revoke`` and ``supertask audit`` (docs/dashboard.md).

Only ``web`` imports the web stack (:mod:`supertask.web`), and only when it runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from supertask.cli.app import (
    HomeOpt,
    JsonOpt,
    LogFormatOpt,
    StoreOpt,
    WideOpt,
    _open_store,
    _opt,
    _settings,
    app,
)
from supertask.errors import UsageError
from supertask.settings import cli_default

tokens_app = typer.Typer(help="Tokens for the dashboard, the HTTP API and the TCP control endpoint.",
                         no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")

WEB_ADDRESS = "127.0.0.1:8080"
HttpOpt = Annotated[str | None, _opt("http", "--http", metavar="HOST:PORT",
                                     help=f"Serve on HOST:PORT (default {WEB_ADDRESS}); another address than "
                                     "loopback only once the store has a token")]


@app.command()
def web(
    http: HttpOpt = None,
    store: StoreOpt = None,
    home: HomeOpt = None,
    log_format: LogFormatOpt = cli_default("log_format"),
    fd: Annotated[int | None, typer.Option("--fd", hidden=True, help="(run --http) serve on this listening socket")] = None,
    scheduler: Annotated[str | None, typer.Option("--scheduler", hidden=True,
                                                  help="(run --http) the scheduler's control socket")] = None,
    parent: Annotated[int | None, typer.Option("--parent", hidden=True,
                                               help="(run --http) end when this process is gone")] = None,
) -> None:
    """Serve the dashboard and the HTTP API (/api/v1, OpenAPI at /api/v1/openapi.json) for
    every namespace of the store. Loopback only until a token exists (`supertask tokens create`)."""
    from supertask.web.serve import web_stack_missing

    missing = web_stack_missing()
    if missing:
        raise UsageError(missing)
    from supertask.log import configure

    configure(log_format, "info")
    settings = _settings(store, home)
    from supertask.web.serve import serve

    serve(_open_store(settings, create=True), http or WEB_ADDRESS, settings.user, fd=fd, scheduler=scheduler, parent=parent)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who or what holds it, e.g. alice or ci")],
    namespaces: Annotated[list[str], typer.Option("--ns", metavar="NS", help="A namespace it sees (repeatable); "
                                                  "'*': every namespace")],
    scope: Annotated[str, typer.Option("--scope", metavar="read|run|admin",
                                       help="read: look; run: also run now, pause, resume; admin: everything")] = "read",
    store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False,
) -> None:
    """Make a token and print it, once: only its hash is kept. From then on every HTTP
    request to the dashboard needs a token."""
    from supertask.store.access import parse_scope

    st = _open_store(_settings(store, home), create=True)
    settings = _settings(store, home)
    chosen = parse_scope(scope)
    known = {r["name"] for r in st.list_namespaces()}
    unknown = [ns for ns in namespaces if ns != "*" and ns not in known]
    if unknown:
        raise UsageError(f"--ns {', '.join(unknown)}: not in the store (it has {', '.join(sorted(known)) or 'none'}); "
                         "`supertask list-namespaces` lists them")
    secret = st.create_token(name, chosen, namespaces, settings.user)
    st.audit(who=settings.user, source=f"cli {settings.host}", action="token created", namespace=None, job=None,
             after={"token": name, "scope": chosen.value, "namespaces": sorted(set(namespaces))})
    if as_json:
        from supertask.cli.output import print_json

        print_json({"name": name, "scope": chosen.value, "namespaces": sorted(set(namespaces)), "token": secret})
        return
    typer.echo(secret)
    import sys

    sys.stderr.write(f"token {name!r} ({chosen.value}, namespaces {', '.join(sorted(set(namespaces)))}): shown "
                     "this once, keep it safe; send it as `Authorization: Bearer TOKEN` or log in with it\n")


@tokens_app.command("list")
def tokens_list(store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False, wide: WideOpt = False,
                every: Annotated[bool, typer.Option("--all", help="Also revoked tokens")] = False) -> None:
    """List the tokens (never their secrets): name, scope, namespaces, made when and by whom, last used
    (to the minute: it is written at most once a minute)."""
    rows = [t.to_json() for t in _open_store(_settings(store, home)).tokens(revoked=every)]
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    from supertask.cli.output import print_table, short_time

    print_table(None, ["token", "scope", "namespaces", "created", "by", "last used", "revoked"],
                [(r["name"], r["scope"], ", ".join(r["namespaces"]), short_time(r["created"]), r["created_by"],
                  short_time(r["last_used"]) if r["last_used"] else "never",
                  short_time(r["revoked"]) if r["revoked"] else "") for r in rows],
                wide=wide, empty="no tokens: the dashboard serves loopback only, to anyone who reaches it")


@tokens_app.command("revoke")
def tokens_revoke(name: Annotated[str, typer.Argument(metavar="NAME")], store: StoreOpt = None,
                  home: HomeOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke a token: requests with it are refused from then on (within a second)."""
    settings = _settings(store, home)
    st = _open_store(settings)
    if not st.revoke_token(name):
        names = [t.name for t in st.tokens()]
        raise UsageError(f"no live token named {name!r} (there are: {', '.join(names) or 'none'})")
    st.audit(who=settings.user, source=f"cli {settings.host}", action="token revoked", namespace=None, job=None,
             before={"token": name})
    if as_json:
        from supertask.cli.output import print_json

        print_json({"name": name, "revoked": True})
        return
    typer.echo(f"revoked token {name}")


@app.command()
def audit(
    namespace: Annotated[str | None, _opt("namespace", "--ns", "--namespace", metavar="NS",
                                          help="Only this namespace")] = None,
    job: Annotated[str | None, typer.Option("--job", help="Only this job")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=10000, help="How many rows, newest first")] = 50,
    store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False, wide: WideOpt = False,
) -> None:
    """Every change, newest first: when, who (a token or a unix user), from where, what,
    the job's keys before and after (env values as ***)."""
    st = _open_store(_settings(store, home))
    rows = st.audit_rows([namespace] if namespace else None, job=job, limit=limit)
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    from supertask.cli.output import print_grouped, zone_time

    print_grouped(["id", "when", "who", "from", "what", "job", "change"],
                  [(r["id"], zone_time(r["at"], None), r["who"], r["source"], r["action"],
                    f"{r['namespace']}/{r['job']}" if r["job"] else (r["namespace"] or ""),
                    _change(r["before"], r["after"])) for r in rows],
                  wide=wide, empty="no changes recorded", keep=("when", "what", "job"), shared=("who", "from"))


def _change(before: Any, after: Any) -> str:
    if before is None and after is None:
        return ""
    if before is None:
        return _short(after)
    return f"{_short(before)} -> {_short(after)}"


def _short(value: Any) -> str:
    import json

    return "" if value is None else json.dumps(value, sort_keys=True, default=str)
