"""Shared test fixtures: the real CLI in a subprocess, real stores, waiting with deadlines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUPERTASK = [sys.executable, "-m", "supertask"]
PG_ADMIN_URL = os.environ.get("SUPERTASK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Cli:
    """Runs `supertask ...` as a user would, with its own state folder and store."""

    def __init__(self, home: Path, store: str | None, cwd: Path):
        self.home, self.store, self.cwd = home, store, cwd
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERTASK_")}
        self.env.update(SUPERTASK_HOME=str(home), SUPERTASK_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
        if store:
            self.env["SUPERTASK_STORE"] = store

    def __call__(self, *args: str, timeout: float = 60, input: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*SUPERTASK, *args], cwd=self.cwd, env={**self.env, **(env or {})}, text=True,
            capture_output=True, timeout=timeout, input=input,
        )

    def json(self, *args: str) -> Any:
        proc = self(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def json_soon(self, *args: str) -> Any:
        """``json``, but None while the store has no tables yet: a scheduler that has just
        started makes them, and a reading command makes none (it exits 2 saying so)."""
        proc = self(*args, "--json")
        if proc.returncode == 2 and "no supertask store at" in proc.stderr:
            return None
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    def start(self, *args: str, env: dict[str, str] | None = None) -> Scheduler:
        return Scheduler(self, list(args), env or {})


class Scheduler:
    """A `supertask run ...` in the background; its stderr (JSON log lines) in a file."""

    def __init__(self, cli: Cli, args: list[str], env: dict[str, str]):
        self.cli = cli
        self.log_path = cli.home.parent / f"scheduler-{uuid.uuid4().hex[:6]}.log"
        cli.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [*SUPERTASK, "run", *args], cwd=cli.cwd, env={**cli.env, **env},
            stdout=self._log, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        if not cli.store and not {"SUPERTASK_STORE", "SUPERTASK_HOME"} & set(env) and \
                not any(a.startswith(("--store", "--home")) for a in args):
            # the reading commands a test polls with exit 2 until the default store exists
            db = cli.home / "supertask.db"
            wait_until(lambda: db.exists() or self.proc.poll() is not None, 60, what=f"{db} made")

    def events(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log_path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def wait_event(self, event: str, timeout: float = 20, **match: Any) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            if self.proc.poll() is not None and not any(e.get("event") == event for e in self.events()):
                raise AssertionError(f"scheduler exited {self.proc.returncode}:\n{self.log_path.read_text()}")
            for e in self.events():
                if e.get("event") == event and all(e.get(k) == v for k, v in match.items()):
                    return e
            return None

        return wait_until(found, timeout, what=f"event {event!r} {match}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()

    @property
    def output(self) -> str:
        return self.log_path.read_text()


@contextlib.contextmanager
def own_pg_database(prefix: str) -> Iterator[str]:
    """A PostgreSQL database of the caller's own (``PREFIX_PID_RANDOM``), dropped at the end;
    the test skips, saying why, where psycopg or the server is missing."""
    try:
        import psycopg
    except ImportError:
        pytest.skip("psycopg is not installed")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test run's own, dropped at the end."""
    with own_pg_database("supertask_test") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on a fresh SQLite file and on PostgreSQL (own schema per test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    db_url = request.getfixturevalue("pg_database")
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{db_url}?options=-csearch_path%3D{schema}"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    work = tmp_path / "work"
    work.mkdir()
    return Cli(tmp_path / "home", None, work)


@pytest.fixture
def store_cli(tmp_path: Path, store_url: str) -> Cli:
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return Cli(tmp_path / "home", store_url, work)
