"""Serving the dashboard with uvicorn: alone (``supertask web``, in the foreground) or
beside a scheduler (``supertask run --http``: :class:`WebComponent`, its server in a
thread the supervisor starts and joins).

An address other than loopback is refused (exit 2, saying why) while the store has no
token: without one, anyone who reaches the port could pause and run jobs.
"""

from __future__ import annotations

import ipaddress
import threading
from typing import Any

from supertask.errors import UsageError
from supertask.log import get_logger
from supertask.settings import parse_hostport
from supertask.store.base import Store

log = get_logger("supertask.web")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_address(text: str, store: Store) -> tuple[str, int]:
    """``--http HOST:PORT`` -> (host, port); not loopback only once a token exists."""
    host, port = parse_hostport(text, "--http")
    if not is_loopback(host) and not store.has_tokens():
        raise UsageError(f"--http {text}: not a loopback address, and the store has no token: anyone who reaches "
                         "it could run and pause jobs. Create one first (`supertask tokens create NAME --ns NS "
                         "--scope read`), then every request needs a token; or serve on 127.0.0.1")
    return host, port


def _server(store: Store, host: str, port: int, user: str, service: Any = None) -> Any:
    import uvicorn

    from supertask.web.app import build_app

    config = uvicorn.Config(build_app(store, user=user, service=service), host=host, port=port, log_config=None, access_log=False,
                            lifespan="off", timeout_graceful_shutdown=2, server_header=False)
    return uvicorn.Server(config)


def _announce(server: Any, host: str, port: int) -> None:
    bound = port
    for s in getattr(server, "servers", []):
        for sock in s.sockets:
            bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    log.info("dashboard serving", address=f"{host}:{bound}", url=f"http://{shown}:{bound}/",
             api=f"http://{shown}:{bound}/api/v1/openapi.json")


def serve(store: Store, address: str, user: str) -> None:
    """``supertask web``: serve until SIGINT or SIGTERM (uvicorn's own handlers)."""
    host, port = check_address(address, store)
    server = _server(store, host, port, user)
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets)
        if server.started:
            _announce(server, host, port)

    server.startup = startup
    try:
        server.run()
    except SystemExit:  # uvicorn's way of saying it could not bind
        pass
    if not server.started:
        raise UsageError(f"--http {address}: cannot listen there (in use, or not an address of this machine)")


class WebComponent:
    """The dashboard beside a scheduler, on the scheduler's own store."""

    def __init__(self, address: str):
        self.address = address
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, service: Any) -> None:
        host, port = check_address(self.address, service.store)
        self._server = _server(service.store, host, port, service.settings.user, service)
        server = self._server
        self._thread = service.supervisor.thread("supertask-web", server.run)
        import time

        deadline = time.monotonic() + 10
        while not server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not server.started:
            raise UsageError(f"--http {self.address}: cannot listen there (in use, or not an address of this machine)")
        _announce(server, host, port)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
