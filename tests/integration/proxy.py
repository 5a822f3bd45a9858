"""A TCP proxy between a scheduler and the real PostgreSQL, for the store-outage tests
(issue 18 point 3): the test cuts the database off for real, no iptables rules needed.

``cut()`` drops everything (what an iptables DROP does to a client: connections are
accepted and bytes taken in, nothing is passed on either way, nothing answers);
``refuse()`` resets every open connection and every new one (a database that went
away); ``drop()`` has the kernel drop every packet to and from the proxy's port (an
iptables DROP on loopback, scoped to that port: needs root and iptables; unlike
``cut()``, nothing is acknowledged, so TCP's own timeouts run as across a real network);
``restore()`` forwards again (what a cut held is passed on)."""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

_RESET = b"\x01\x00\x00\x00\x00\x00\x00\x00"  # SO_LINGER on, 0 s: close() sends a RST


class Proxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` until told otherwise (see the module)."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "open"
        self.pairs: list[tuple[socket.socket, socket.socket]] = []
        self.lock = threading.Lock()
        self.stopped = False
        self.rules: list[list[str]] = []
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._pump, daemon=True).start()

    def via(self, url: str, schema: str | None = None) -> str:
        """``url`` (a PostgreSQL URL) through this proxy, with ``search_path`` set to ``schema``."""
        parts = urlsplit(url)
        auth = parts.netloc.rsplit("@", 1)
        netloc = (auth[0] + "@" if len(auth) == 2 else "") + f"127.0.0.1:{self.port}"
        query = f"options=-csearch_path%3D{schema}" if schema else parts.query
        return urlunsplit((parts.scheme, netloc, parts.path, query, ""))

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.mode == "refuse":
                _reset(client)
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
            try:
                readable, _, _ = select.select(list(ends), [], [], 0.05)
            except (OSError, ValueError):  # a socket closed meanwhile (refuse)
                continue
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
            _reset(client)
            _reset(server)

    def drop(self) -> None:
        for port in ("--dport", "--sport"):
            rule = ["INPUT", "-i", "lo", "-p", "tcp", port, str(self.port), "-j", "DROP"]
            subprocess.run(["iptables", "-I", *rule], check=True, capture_output=True)
            self.rules.append(rule)

    def restore(self) -> None:
        self.mode = "open"
        while self.rules:
            subprocess.run(["iptables", "-D", *self.rules.pop()], capture_output=True)

    def close(self) -> None:
        self.restore()
        self.stopped = True
        self.listener.close()
        self.refuse()


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        sock.close()
    except OSError:
        pass


def schema_of_its_own(database_url: str) -> str:
    """A fresh schema in the test run's database (the tests' PostgreSQL stores are each their own)."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def upstream_of(database_url: str) -> tuple[str, int]:
    parts = urlsplit(database_url)
    return parts.hostname or "127.0.0.1", parts.port or 5432


def can_drop() -> str | None:
    """Why :meth:`Proxy.drop` cannot work here, or None."""
    if os.geteuid() != 0:
        return "dropping packets needs root (iptables)"
    if shutil.which("iptables") is None:
        return "no iptables"
    done = subprocess.run(["iptables", "-S", "INPUT"], capture_output=True, text=True)
    return None if done.returncode == 0 else f"iptables does not work here: {done.stderr.strip()}"
