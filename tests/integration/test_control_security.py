"""The control endpoint under attack: a raw rpyc client (and raw sockets) against the
real Unix socket and TCP port of a `supertask run` subprocess."""

from __future__ import annotations

import functools
import json
import os
import socket
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import rpyc
from rpyc.core import consts
from rpyc.core.netref import BaseNetref

from tests.conftest import Cli, Scheduler

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def sched(cli: Cli) -> Iterator[Scheduler]:
    (cli.cwd / "supertask.yaml").write_text(
        "namespace: sec\njobs:\n  - {name: a, when: '@daily', run: 'cmd:echo a'}\n"
    )
    sched = cli.start("--listen", "127.0.0.1:0", env={"SUPERTASK_TOKEN": TOKEN})
    sched.wait_event("control ready")
    try:
        yield sched
    finally:
        assert sched.stop() == 0


def unix_path(cli: Cli) -> str:
    return str(cli.home / "control" / "sec.sock")


def tcp_address(sched: Scheduler) -> tuple[str, int]:
    host, port = sched.wait_event("control ready")["tcp"][len("tcp://"):].rsplit(":", 1)
    return host, int(port)


def raw_unix(cli: Cli) -> rpyc.Connection:
    """A plain rpyc client with rpyc's default configuration, as an attacker would use."""
    return rpyc.utils.factory.unix_connect(unix_path(cli))


def still_serving(cli: Cli, sched: Scheduler) -> None:
    assert sched.proc.poll() is None
    status = cli.json("status")
    assert status["namespaces"] == ["sec"]


def test_socket_folder_and_token_file_modes(cli: Cli, sched: Scheduler) -> None:
    assert stat.S_IMODE(os.stat(unix_path(cli)).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cli.home / "control").st_mode) == 0o700
    other = Cli(cli.home.parent / "home2", None, cli.cwd)
    (cli.cwd / "two.yaml").write_text("namespace: two\njobs:\n  - {name: b, when: '@daily', run: 'cmd:true'}\n")
    second = other.start("--file", "two.yaml", "--listen", "127.0.0.1:0")
    try:
        token_file = Path(second.wait_event("control ready")["token_file"])
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    finally:
        assert second.stop() == 0


def test_tcp_refuses_a_connection_without_the_token(cli: Cli, sched: Scheduler) -> None:
    host, port = tcp_address(sched)
    # a plain rpyc client (no token line): its handshake is not a token, so it is refused
    with pytest.raises((EOFError, ConnectionError, OSError)):
        conn = rpyc.connect(host, port)
        conn.root.status()
    # a wrong token gets DENIED and a closed socket
    for line in (b"SUPERTASK-TOKEN wrong\n", b"\n", b"GET / HTTP/1.0\r\n\r\n", os.urandom(300) + b"\n"):
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(line)
            assert sock.recv(64) == b"DENIED\n"
            assert sock.recv(64) == b""
    # the right token, then rpyc: served
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"SUPERTASK-TOKEN " + TOKEN.encode() + b"\n")
        assert sock.recv(64) == b"OK\n"
        conn = rpyc.utils.factory.connect_stream(rpyc.core.stream.SocketStream(sock))
        assert json.loads(conn.root.ping())["ok"] is True
        conn.close()
    events = [e for e in sched.events() if e.get("event") == "control connection refused"]
    assert events and all(e["reason"] == "wrong or missing token" for e in events)
    still_serving(cli, sched)


ATTACKS = {
    "root._conn": lambda c: c.root._conn,
    "root._api": lambda c: c.root._api,
    "root._call": lambda c: c.root._call,
    "root.__class__": lambda c: c.root.__class__,
    "root.__class__.__init__.__globals__": lambda c: c.root.__class__.__init__.__globals__,
    "root.__dict__": lambda c: c.root.__dict__,
    "root.status.__func__": lambda c: c.root.status.__func__,
    "root.status.__self__": lambda c: c.root.status.__self__,
    "root.status.__globals__": lambda c: c.root.status.__globals__,
    "getattr chain": lambda c: functools.reduce(getattr, ["__class__", "__mro__", "__getitem__"], c.root)(1),
    "root.exposed_status.__closure__": lambda c: c.root.exposed_status.__closure__,
    "root.__reduce_ex__": lambda c: c.root.__reduce_ex__(2),
    "conn.modules": lambda c: c.modules.os.system("true"),
    "conn.eval": lambda c: c.eval("1 + 1"),
    "conn.builtins": lambda c: c.builtins.open("/etc/passwd"),
    "raw getattr _api": lambda c: c.sync_request(consts.HANDLE_GETATTR, c.root, "_api"),
    "raw getattr __class__": lambda c: c.sync_request(consts.HANDLE_GETATTR, c.root, "__class__"),
    "raw setattr": lambda c: c.sync_request(consts.HANDLE_SETATTR, c.root, "exposed_status", None),
    "raw delattr": lambda c: c.sync_request(consts.HANDLE_DELATTR, c.root, "exposed_status"),
    "raw pickle": lambda c: c.sync_request(consts.HANDLE_PICKLE, c.root, 2),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_no_call_reaches_outside_the_service(cli: Cli, sched: Scheduler, attack: str) -> None:
    conn = raw_unix(cli)
    try:
        try:
            value = ATTACKS[attack](conn)
        except Exception:  # noqa: BLE001 - refused, as it should be
            pass
        else:
            # rpyc may answer some names from a class of the client's own (when the client
            # imported the same module): fine, as long as nothing comes from the scheduler
            assert not issubclass(type(value), BaseNetref), f"{attack} reached {type(value)}"
    finally:
        conn.close()
    still_serving(cli, sched)


def test_calls_take_and_return_plain_data(cli: Cli, sched: Scheduler) -> None:
    conn = raw_unix(cli)
    try:
        for call in (conn.root.ping, conn.root.status, conn.root.list_jobs):
            result = call()
            assert type(result) is str  # a value, not a netref
            assert json.loads(result)["ok"] is True
        # arguments that are references to client objects are refused before any use
        touched: list[str] = []

        class Sneaky(str):
            def __eq__(self, other: object) -> bool:
                touched.append("eq")
                return False

            __hash__ = str.__hash__

        for arg in ({"a": 1}, ["a"], Sneaky("sec"), object()):
            reply = json.loads(conn.root.list_jobs(arg))
            assert reply["ok"] is False and "plain values only" in reply["error"]
        reply = json.loads(conn.root.edit_job(None, "a", ["description=x"]))
        assert reply["ok"] is False
        assert not touched
    finally:
        conn.close()
    still_serving(cli, sched)


def test_garbage_and_mid_call_disconnects_do_not_disturb_the_scheduler(cli: Cli, sched: Scheduler) -> None:
    path = unix_path(cli)
    for payload in (os.urandom(4096), b"\x00" * 100, b"\xff" * 70000, b"SUPERTASK-TOKEN x\n"):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(payload)
    # a half-sent frame, then gone
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(b"\x00\x00\x10\x00")
    # disconnect while calls are in flight
    for _ in range(5):
        conn = raw_unix(cli)
        async_status = rpyc.async_(conn.root.status)
        async_status()
        threading.Thread(target=conn.close).start()
    # garbage after a good token on TCP
    host, port = tcp_address(sched)
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"SUPERTASK-TOKEN " + TOKEN.encode() + b"\n")
        assert sock.recv(64) == b"OK\n"
        sock.sendall(os.urandom(2048))
    # a peer that connects and says nothing does not hold others up
    idle = socket.create_connection((host, port), timeout=10)
    try:
        still_serving(cli, sched)
        proc = cli("jobs", "trigger", "a", "--wait")
        assert proc.returncode == 0 and "stdout a" in proc.stdout
    finally:
        idle.close()
    still_serving(cli, sched)
