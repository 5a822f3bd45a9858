"""A PostgreSQL store that goes away: the scheduler says so within seconds, status and
metrics show it, and firing is back within 2 s of the store (issue 18 point 3).

The cut is real: the scheduler reaches PostgreSQL through a TCP proxy on 127.0.0.1 that
the test makes drop everything it gets (a blackhole: what an iptables DROP does to a
client, without root rules) or refuse connections."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import Cli, wait_until

pytestmark = pytest.mark.postgres


class Proxy:
    """Forwards 127.0.0.1:PORT to PostgreSQL. ``cut()``: take in bytes and connections but
    pass nothing on, either way; ``refuse()``: reset every connection, accept none;
    ``restore()``: forward again (what was held is passed on)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "open"
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._pump, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                client.close()
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.pairs.append((client, server))

    def _pump(self) -> None:
        while not self.stopped:
            if self.mode != "open":
                time.sleep(0.02)
                continue
            with self.lock:
                ends = {s: peer for a, b in self.pairs for s, peer in ((a, b), (b, a))}
            if not ends:
                time.sleep(0.02)
                continue
            readable, _, _ = select.select(list(ends), [], [], 0.05)
            for sock in readable:
                if self.mode != "open":
                    break
                try:
                    data = sock.recv(65536)
                    if data:
                        ends[sock].sendall(data)
                        continue
                except OSError:
                    pass
                self._drop(sock, ends[sock])

    def _drop(self, a: socket.socket, b: socket.socket) -> None:
        with self.lock:
            self.pairs = [p for p in self.pairs if a not in p]
        for s in (a, b):
            try:
                s.close()
            except OSError:
                pass

    def cut(self) -> None:
        self.mode = "cut"

    def refuse(self) -> None:
        self.mode = "refuse"
        with self.lock:
            pairs, self.pairs = self.pairs, []
        for client, server in pairs:
            for s in (client, server):
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    s.close()
                except OSError:
                    pass

    def restore(self) -> None:
        self.mode = "open"

    def close(self) -> None:
        self.stopped = True
        self.listener.close()
        self.refuse()


@pytest.fixture
def proxied(store_url: str, tmp_path: Path) -> tuple[Cli, Proxy]:
    if not store_url.startswith("postgresql"):
        pytest.skip("about PostgreSQL")
    proxy = Proxy(("127.0.0.1", 5432))
    url = store_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != store_url
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    try:
        yield Cli(tmp_path / "home", url, work), proxy
    finally:
        proxy.close()


def _fires(path: Path) -> list[float]:
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def _metric(url: str, name: str) -> float | None:
    for line in urllib.request.urlopen(url, timeout=5).read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


@pytest.mark.parametrize("fault", ["cut", "refuse"])
def test_a_store_that_goes_away_is_reported_and_firing_comes_back(proxied: tuple[Cli, Proxy], tmp_path: Path,
                                                                  fault: str) -> None:
    cli, proxy = proxied
    fires = tmp_path / "fires"
    (cli.cwd / "supertask.yaml").write_text(f"""
namespace: outage
jobs:
  - {{name: tick, when: "every 1s", run: "cmd:date +%s.%N >> {fires}"}}
""")
    sched = cli.start("--metrics", "127.0.0.1:0", "--grace", "2s")
    try:
        metrics = sched.wait_event("metrics serving")["url"]
        wait_until(lambda: len(_fires(fires)) >= 2, 30, what="two fires")
        assert _metric(metrics, "supertask_store_up") == 1.0

        getattr(proxy, fault)()
        cut = time.time()
        event = sched.wait_event("store unreachable", timeout=10)
        assert time.time() - cut <= 5.0, f"'store unreachable' came {time.time() - cut:.1f}s after the cut"
        assert event["level"] == "error" and event["error"]
        assert _metric(metrics, "supertask_store_up") == 0.0
        status = cli("status", "--json", timeout=20)
        assert status.returncode == 0, status.stderr
        health = json.loads(status.stdout)["store_health"]
        assert health["up"] is False and health["since"] and health["error"]
        text = cli("status", timeout=20).stdout
        assert "UNREACHABLE since" in text
        doctor = cli("doctor", timeout=30)
        assert doctor.returncode == 1 and "FAIL store" in doctor.stdout and "unreachable" in doctor.stdout

        time.sleep(3)  # a few seconds away (fixed: the outage itself is what is tested)
        proxy.restore()
        back = time.time()
        sched.wait_event("store reachable again", timeout=10)
        wait_until(lambda: any(t >= back for t in _fires(fires)), 10, what="a fire after the store came back")
        first = min(t for t in _fires(fires) if t >= back)
        assert first - back <= 2.0, f"firing came back {first - back:.1f}s after the store"
        assert _metric(metrics, "supertask_store_up") == 1.0
        assert len([e for e in sched.events() if e.get("event") == "store unreachable"]) == 1
    finally:
        proxy.restore()
        sched.stop()
