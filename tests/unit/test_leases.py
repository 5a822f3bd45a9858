"""cluster.leases: up or down, skew, whose runs are lost, who may take over, what is held."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from supertask.cluster import leases
from supertask.cluster.leases import Me
from supertask.store.cluster import HostRow, InFlight

UTC = timezone.utc
NOW = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)
ME = Me(instance="me000000", host="web1", home="/var/lib/supertask", boot="boot-1", pid=100)


def host(instance: str = "other000", *, silent: float = 1.0, lease: float = 20.0, state: str = "serving",
         host: str = "web2", home: str = "/var/lib/supertask", boot: str = "boot-2", pid: int = 200,
         skew: float = 0.0, namespaces: tuple[str, ...] = ("ns",)) -> HostRow:
    beat = NOW - timedelta(seconds=silent)
    return HostRow(instance=instance, host=host, pid=pid, boot=boot, home=home, version="0.2.0", namespaces=namespaces,
                   state=state, started=beat - timedelta(hours=1), heartbeat=beat,
                   host_clock=beat + timedelta(seconds=skew), lease=lease)


def run(instance: str | None = "other000", host: str | None = "web2") -> InFlight:
    return InFlight(id=1, namespace="ns", job="j", attempt=1, status="running", host=host, instance=instance)


@pytest.mark.parametrize(("row", "up", "state"), [
    (host(silent=1), True, "up"),
    (host(silent=20), True, "up"),  # exactly the lease: still up
    (host(silent=20.5), False, "down"),
    (host(silent=25, state="lost"), False, "lost"),
    (host(silent=1, state="stopped"), False, "stopped"),
    (host(silent=100, lease=120), True, "up"),  # each host's own lease
])
def test_up_and_down(row: HostRow, up: bool, state: str) -> None:
    assert leases.is_up(row, NOW) is up
    assert leases.state_of(row, NOW) == state


@pytest.mark.parametrize(("skew", "silent", "off"), [
    (0.0, 1, False), (0.9, 1, False), (1.5, 1, True), (-1.5, 1, True),
    (5.0, 60, False),  # a dead host's clock is no one's concern
])
def test_skew(skew: float, silent: float, off: bool) -> None:
    row = host(skew=skew, silent=silent)
    assert leases.skew(row) == pytest.approx(skew)
    assert leases.skewed(row, NOW) is off


def alive(pid: int, started: datetime) -> bool:
    return pid in (200, 300)


@pytest.mark.parametrize(("the_run", "holder", "at_start", "by_lease", "says"), [
    # its lease ran out: any host may declare it (once allowed to judge leases)
    (run(), host(silent=30), False, True, "missed its lease: no heartbeat for 30s (lease 20s)"),
    (run(), host(silent=30), True, False, None),  # at a start, leases wait for a lease of our own heartbeats
    (run(), host(silent=5), False, True, None),  # alive elsewhere
    # a second scheduler on the same machine, another folder, alive: never touched
    (run(host="web1"), host(host="web1", home="/other", boot="boot-1", pid=200), True, True, None),
    # the previous scheduler of this folder: pid gone, or the machine rebooted
    (run(host="web1"), host(host="web1", boot="boot-1", pid=999, silent=2), True, False, "is gone"),
    (run(host="web1"), host(host="web1", boot="boot-0", pid=200, silent=2), True, False, "the machine restarted"),
    (run(host="web1"), host(host="web1", boot="boot-1", pid=200, silent=2), True, False, None),  # it lives
    # a run of no known instance (before host rows, a one-shot run): only at a start, only this host's
    (run(instance=None, host="web1"), None, True, False, "before host rows were kept"),
    (run(instance=None, host="web1"), None, False, True, None),
    (run(instance=None, host="web2"), None, True, False, None),
    (run(instance="me000000"), host("me000000", silent=99), False, True, None),  # never our own
])
def test_run_lost(the_run: InFlight, holder: HostRow | None, at_start: bool, by_lease: bool, says: str | None) -> None:
    why = leases.run_lost(the_run, holder, NOW, ME, alive, at_start=at_start, by_lease=by_lease)
    if says is None:
        assert why is None
    else:
        assert why is not None and says in why


@pytest.mark.parametrize(("since", "allowed"), [(None, False), (0, False), (19.9, False), (20, True), (300, True)])
def test_may_take_over_only_after_a_lease_of_its_own_heartbeats(since: float | None, allowed: bool) -> None:
    beating = None if since is None else NOW - timedelta(seconds=since)
    assert leases.may_take_over(beating, NOW, 20.0) is allowed


@pytest.mark.parametrize(("the_run", "holder", "reach"), [
    (run(host="web1"), host(host="web1", boot="boot-1"), True),
    (run(host="web1"), host(host="web1", boot="boot-0"), False),  # another boot: nothing of it is left
    (run(host="web2"), host(), False),  # another machine: nothing is done to it
    (run(instance=None, host="web1"), None, True),
])
def test_only_this_machines_orphans_are_looked_for(the_run: InFlight, holder: HostRow | None, reach: bool) -> None:
    assert leases.reachable(the_run, holder, ME) is reach


def test_fires_held_only_where_other_live_hosts_serve_the_namespace() -> None:
    peers = [host("a", silent=2), host("b", silent=60, namespaces=("other",)), host("c", silent=60),
             host("d", state="stopped"), host("me000000")]
    assert [p.instance for p in leases.peers_serving(peers, "ns", "me000000", NOW)] == ["a"]
    assert leases.peers_serving(peers, "other", "me000000", NOW) == []
    assert leases.peers_serving([], "ns", "me000000", NOW) == []
