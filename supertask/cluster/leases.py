"""Leases, as pure functions of the hosts table's rows and the database's ``now``.

A scheduler instance writes its heartbeat every ``--heartbeat`` seconds with the
database's clock (:meth:`~supertask.store.cluster.ClusterRows.beat`). It is **up** while
its last heartbeat is at most its ``lease`` old by that same clock, and it has not
stopped; **down** otherwise. Only the database's clock is compared with the database's
clock, so a host whose own clock is off can neither keep a dead host up nor declare a
live one down; its **skew** (its clock at the heartbeat minus the database's) is
reported by ``supertask hosts`` and ``supertask doctor`` beyond :data:`SKEW_LIMIT`.

The runs an instance holds are **lost** (:func:`run_lost`) when:

- its lease ran out: no heartbeat for longer than its lease (it was killed, frozen,
  cut off, or its machine died). Any scheduler serving the run's namespace may declare
  it, once its own heartbeats have gone on for a lease (:func:`may_take_over`);
- it is a previous instance of the same state folder on the same host (a restart), and
  its machine booted since, or its process is gone (pid not alive, or reused by a
  process started after it). Only the next scheduler of that folder can see this;
- it is unknown (a run from before hosts were recorded, or of a one-shot run) and the
  run's host is this one: at a start only, as crash recovery always did.

A live instance on the same host, in another state folder, is never one of these: a
second scheduler starting on the same machine leaves the first one's runs alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from supertask.store.cluster import HostRow, HostState, InFlight

#: Seconds a host's clock may be off from the database's before it is reported.
SKEW_LIMIT = 1.0


@dataclass(frozen=True)
class Me:
    """The instance deciding: who it is and where it runs."""

    instance: str
    host: str
    home: str
    boot: str
    pid: int


def short(instance: str | None) -> str:
    """An instance id as tables and messages show it (its first 8 characters)."""
    return (instance or "-")[:8]


def silent_for(row: HostRow, now: datetime) -> float:
    """Seconds since the host's last heartbeat, by the database's clock."""
    return (now - row.heartbeat).total_seconds()


def is_up(row: HostRow, now: datetime) -> bool:
    """A host is up while it serves and its last heartbeat is within its lease."""
    return row.state != HostState.STOPPED and silent_for(row, now) <= row.lease


def state_of(row: HostRow, now: datetime) -> str:
    """What ``supertask hosts`` says of a host: up, down (its lease ran out), stopped
    (a clean stop) or lost (down, and its runs were taken over)."""
    if row.state == HostState.STOPPED:
        return "stopped"
    if is_up(row, now):
        return "up"
    return "lost" if row.state == HostState.LOST else "down"


def skew(row: HostRow) -> float:
    """How far the host's clock was ahead of the database's at its last heartbeat (seconds;
    negative: behind). The write's own latency is in it: tenths of a millisecond nearby."""
    return (row.host_clock - row.heartbeat).total_seconds()


def skewed(row: HostRow, now: datetime, limit: float = SKEW_LIMIT) -> bool:
    """A live host whose clock is off by more than ``limit`` seconds."""
    return is_up(row, now) and abs(skew(row)) > limit


def expired(row: HostRow, now: datetime) -> str | None:
    """Why a host counts as dead to every other host: its lease ran out (None: it has not)."""
    silent = silent_for(row, now)
    if silent <= row.lease:
        return None
    return (f"host {row.host} (instance {short(row.instance)}, pid {row.pid}) missed its lease: no heartbeat "
            f"for {silent:.0f}s (lease {row.lease:g}s)")


def may_take_over(beating_since: datetime | None, now: datetime, lease: float) -> bool:
    """Whether this host may declare others dead by their leases: only once its own
    heartbeats have gone on unbroken for a whole lease (``beating_since``: the first of
    them, by the database's clock). After a store outage every host's heartbeat is old,
    and a host that was frozen finds everyone's old; by waiting one lease of its own,
    each live host has had time to beat again (the lease is at least two heartbeats)."""
    return beating_since is not None and (now - beating_since).total_seconds() >= lease


def run_lost(run: InFlight, holder: HostRow | None, now: datetime, me: Me,
             pid_alive: Callable[[int, datetime], bool], *, at_start: bool, by_lease: bool = True) -> str | None:
    """Why ``run`` (held by ``holder``, its instance's row; None: no such row) is lost,
    as seen by ``me`` at ``now`` (the database's clock); None: it is not, leave it.
    ``pid_alive(pid, started)``: a process with that pid runs, started no later than
    ``started`` (so not a reuse of the pid). ``by_lease``: a lease that ran out counts
    (:func:`may_take_over`). The rules: this module's docstring."""
    if run.instance == me.instance:
        return None
    if holder is None:
        if at_start and run.host == me.host:
            return "the scheduler stopped while this run was in flight (a run from before host rows were kept)"
        return None
    why = expired(holder, now) if by_lease else None
    if why is not None:
        return why
    if holder.host == me.host and holder.home == me.home:
        if holder.boot != me.boot:
            return (f"the scheduler before this one in {me.home} (instance {short(holder.instance)}, pid "
                    f"{holder.pid}) stopped with it: the machine restarted since")
        if not pid_alive(holder.pid, holder.started):
            return (f"the scheduler before this one in {me.home} (instance {short(holder.instance)}, pid "
                    f"{holder.pid}) is gone")
    return None


def reachable(run: InFlight, holder: HostRow | None, me: Me) -> bool:
    """Whether a lost run's processes could be on this machine (same host, same boot):
    only those are looked for and ended; nothing is done to another machine."""
    if run.host != me.host:
        return False
    return holder is None or holder.boot == me.boot


def peers_serving(peers: Iterable[HostRow], namespace: str, me: str, now: datetime) -> list[HostRow]:
    """The other hosts that were up at ``now`` (the database's clock at the last
    heartbeat this host wrote) serving ``namespace``: while the store is away, they may
    be firing it, so this host holds its fires instead of running them from memory."""
    return [p for p in peers if p.instance != me and namespace in p.namespaces and is_up(p, now)]
