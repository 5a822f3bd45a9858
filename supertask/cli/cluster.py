"""The cluster from the store, without any scheduler's socket: ``supertask hosts``,
``supertask status --store URL`` and ``doctor``'s clock check (docs/cluster.md).

Every age and skew is judged on the database's clock (:mod:`supertask.cluster.leases`)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Annotated, Any

import typer

from supertask.cli.app import HomeOpt, JsonOpt, StoreOpt, WideOpt, _open_store, _settings, app

if TYPE_CHECKING:
    from supertask.store.base import Store

#: ``supertask hosts`` leaves out hosts stopped or lost longer ago than this (seconds), but with --all.
RECENT = 86400.0


@app.command()
def hosts(store: StoreOpt = None, home: HomeOpt = None, as_json: JsonOpt = False, wide: WideOpt = False,
          every: Annotated[bool, typer.Option("--all", help="Also hosts stopped or down for more than a day")] = False,
          ) -> None:
    """List the schedulers sharing the store: host, pid, up or down (a heartbeat within
    its lease), heartbeat age, clock skew against the database, runs in flight, load."""
    st = _open_store(_settings(store, home))
    rows = host_rows(st, within=None if every else RECENT)
    if as_json:
        from supertask.cli.output import print_json

        print_json(rows)
        return
    print_hosts(rows, wide=wide)


def host_rows(st: Store, *, within: float | None) -> list[dict[str, Any]]:
    """Each host's row as plain data, with what is judged from it at the database's now:
    ``up``, ``state`` (up, down, stopped, lost), ``heartbeat_age`` and ``skew`` (seconds),
    and ``runs``: its runs in flight as the runs table has them."""
    from supertask.cluster import leases

    now = st.clock()
    held = Counter(run.instance for run in st.runs_in_flight())
    out = []
    for row in st.hosts(within=within):
        data = row.to_json()
        data["recorded_state"] = data.pop("state")  # what the row says (serving, stopped, lost)
        data.update(state=leases.state_of(row, now), up=leases.is_up(row, now),
                    heartbeat_age=round(leases.silent_for(row, now), 3), skew=round(leases.skew(row), 3),
                    clock_off=leases.skewed(row, now), runs=held.get(row.instance, 0))
        out.append(data)
    return out


def print_hosts(rows: list[dict[str, Any]], *, wide: bool = False) -> None:
    from supertask.cli.output import print_grouped
    from supertask.cluster.leases import SKEW_LIMIT, short
    from supertask.units import format_duration

    table = [(r["host"], short(r["instance"]), r["pid"], r["state"],
              f"{format_duration(max(0.0, r['heartbeat_age']))} ago", f"{r['skew']:+.2f}s" + (" !" if r["clock_off"] else ""),
              r["runs"], "-" if r["load"] is None else f"{r['load']:.2f}", ", ".join(r["namespaces"]))
             for r in rows]
    print_grouped(["host", "instance", "pid", "state", "heartbeat", "skew", "runs", "load", "namespaces"], table,
                  wide=wide, keep=("state", "heartbeat", "skew"), shared=("host",),
                  empty="no hosts: no scheduler has served this store since supertask 0.2 keeps host rows")
    off = [r for r in rows if r["clock_off"]]
    if off:
        typer.echo(f"! clock off by more than {SKEW_LIMIT:g}s from the database's: "
                   + ", ".join(f"{r['host']} ({r['skew']:+.2f}s)" for r in off) + "; see `supertask doctor`")


def cluster_status(st: Store) -> dict[str, Any]:
    """``status --store``: the hosts (as ``hosts --json``), how many are up and down, and
    the runs in flight, in all and per host."""
    from supertask.store.sql import redact
    from supertask.workers.operators import queued_reasons, summary, worker_rows

    rows = host_rows(st, within=RECENT)
    serving = [r for r in rows if r["state"] != "stopped"]
    workers = worker_rows(st, within=RECENT)
    return {"store": redact(st.url), "hosts_up": sum(1 for r in serving if r["up"]),
            "hosts_down": sum(1 for r in serving if not r["up"]),
            "runs_in_flight": len(st.runs_in_flight()), "hosts": rows,
            **summary(workers), "workers": workers, "queued": queued_reasons(st)}


def status_from_store(store: str, home: str | None, *, as_json: bool, wide: bool) -> None:
    """``supertask status --store URL``."""
    cluster = cluster_status(_open_store(_settings(store, home)))
    if as_json:
        from supertask.cli.output import print_json

        print_json(cluster)
    else:
        print_cluster(cluster, wide=wide)


def print_cluster(data: dict[str, Any], *, wide: bool = False) -> None:
    from supertask.workers.operators import print_queued

    typer.echo(f"store {data['store']}: {data['hosts_up']} host(s) up, {data['hosts_down']} down, "
               f"{data['runs_in_flight']} run(s) in flight")
    print_hosts(data["hosts"], wide=wide)
    if data["workers"]:
        from supertask.cli.output import print_workers

        typer.echo(f"{data['workers_up']} worker(s) up, {data['workers_down']} down, "
                   f"{data['free_slots']} of {data['slots']} slot(s) free")
        print_workers(data["workers"], wide=wide)
    print_queued(data["queued"], typer.echo)
