"""``supertask doctor``: check what supertask needs on this machine and say what to fix.

Each check gives a status (``ok``, ``warn``: works, but something is missing or odd,
``fail``: supertask or some job will not work) with a detail and, when not ok, the
fix. Checks only read: a missing state folder or store is reported (``supertask run``
makes them), never created, and a SQLite store is opened read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from supertask.model import RunKind
from supertask.settings import Settings


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_checks(settings: Settings, timetable: Path | None) -> list[Check]:
    kinds = _timetable_kinds(timetable)
    checks = [_state_folder(settings), _store(settings), _timetable(timetable)]
    if checks[1].status == "ok":
        checks.append(clock_check(settings))
    checks.append(_tool("uv", ["uv", "--version"], needed=RunKind.UV in kinds,
                        fix="install uv (https://docs.astral.sh/uv/): curl -LsSf https://astral.sh/uv/install.sh | sh"))
    checks.append(_containers(needed=RunKind.DOCKER in kinds))
    checks.append(_time_zone())
    return checks


def _state_folder(settings: Settings) -> Check:
    from supertask.statefolder import UnsafeStateFolder, looser_than_private, secure_home

    home = settings.home
    try:
        secure_home(home, create=False)  # ours alone, as `supertask run` requires (it refuses others)
    except UnsafeStateFolder as exc:
        return Check("state folder", "fail", f"{exc.path}: {exc.why}; supertask refuses to use it", exc.fix)
    if not home.exists():
        parent = next((p for p in home.parents if p.exists()), None)
        if parent is None or not os.access(parent, os.W_OK | os.X_OK):
            return Check("state folder", "fail", f"{home} does not exist and {parent} is not writable for "
                         f"{settings.user}", f"create {home} for {settings.user}, or point --home / SUPERTASK_HOME "
                         "elsewhere")
        return Check("state folder", "warn", f"{home} does not exist yet (`supertask run` creates it)",
                     "run `supertask run`, or point --home / SUPERTASK_HOME at the folder a scheduler uses")
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        return Check("state folder", "fail", f"{home}: not a writable folder for {settings.user}",
                     f"make {home} writable for {settings.user}, or point --home / SUPERTASK_HOME elsewhere")
    loose = looser_than_private(home)
    if loose:
        shown = ", ".join(loose[:3]) + (f" and {len(loose) - 3} more" if len(loose) > 3 else "")
        return Check("state folder", "warn", f"others may read what is in {home}: {shown}",
                     f"chmod -R go-rwx {home}")
    return Check("state folder", "ok", f"{home} (private)")


def _store(settings: Settings) -> Check:
    from supertask.store.sql import redact
    from supertask.store.statements import sqlite_file

    url = redact(settings.store_url)
    path = sqlite_file(settings.store_url)
    if path is not None and not Path(path).is_file():  # SQLite would make the file on connecting
        return Check("store", "warn", f"{url}: no store yet (`supertask run` creates it)",
                     "run `supertask run`, or point --store / SUPERTASK_STORE at the store a scheduler uses")
    try:
        from supertask.store.sql import SqlStore

        store = SqlStore.open(settings.store_url, create=False, migrate_old=False)
        try:
            if store.schema_old is not None:
                from supertask.store.statements import SCHEMA_VERSION

                return Check("store", "warn", f"{url}: schema version {store.schema_old}; this supertask brings it "
                             f"to {SCHEMA_VERSION} when it opens it", "run any supertask command on it "
                             "(e.g. `supertask list-namespaces`), or `supertask run`")
            missing = store.schema_missing
            namespaces = [] if missing else store.list_namespaces()
        finally:
            store.close()
    except Exception as exc:
        return Check("store", "fail", f"{url}: {exc}",
                     "check --store / SUPERTASK_STORE (a SQLAlchemy URL), that the database runs and accepts you")
    if missing:
        return Check("store", "warn", f"{url}: reachable, no supertask tables yet (`supertask run` creates them)")
    jobs = sum(int(n.get("jobs") or 0) for n in namespaces)
    return Check("store", "ok", f"{url}: {len(namespaces)} namespace(s), {jobs} job(s)")


def _timetable(path: Path | None) -> Check:
    from supertask.errors import TimetableError
    from supertask.timetable.load import read_timetable

    if path is None:
        return Check("timetable", "warn", "no supertask.yaml or timetable.yaml here",
                     "write one with `supertask init`, or pass --file")
    try:
        tt = read_timetable(path)
    except TimetableError as exc:
        return Check("timetable", "fail", str(exc), f"fix the lines above, then `supertask validate {path}`")
    return Check("timetable", "ok", f"{path}: {len(tt.jobs)} job(s), valid")


def _timetable_kinds(path: Path | None) -> set[RunKind]:
    """The run kinds (uv, docker, ...) a timetable uses, to know which tools matter."""
    from supertask.errors import TimetableError
    from supertask.timetable.load import read_timetable

    if path is None:
        return set()
    try:
        jobs = read_timetable(path).jobs
    except TimetableError:
        return set()
    return {spec.kind for job in jobs for spec in job.run_specs}


def _tool(name: str, argv: list[str], *, needed: bool, fix: str) -> Check:
    path = shutil.which(argv[0])
    if path is None:
        if needed:
            return Check(name, "fail", f"{argv[0]} not found on PATH, and the timetable has {name}: jobs", fix)
        return Check(name, "warn", f"{argv[0]} not found on PATH ({name}: jobs will fail)", fix)
    version = _output(argv)
    return Check(name, "ok", f"{path}: {version}" if version else path)


def _containers(*, needed: bool) -> Check:
    preferred = os.environ.get("SUPERTASK_DOCKER")
    found = [cli for cli in ([preferred] if preferred else []) + ["docker", "podman"] if cli and shutil.which(cli)]
    if not found:
        status = "fail" if needed else "warn"
        return Check("docker/podman", status, "neither docker nor podman on PATH (docker: jobs will fail)",
                     "install podman or docker (see containers/setup-podman.sh), or set SUPERTASK_DOCKER")
    cli = found[0]
    if not preferred and cli == "podman":  # docker: jobs call `docker` unless told otherwise
        version = _output(["podman", "--version"])
        return Check("docker/podman", "fail" if needed else "warn",
                     f"docker is not on PATH, podman is ({shutil.which('podman')}: {version}); docker: jobs run "
                     "`docker` unless told to use podman",
                     "set SUPERTASK_DOCKER=podman where the scheduler runs (e.g. Environment=SUPERTASK_DOCKER=podman "
                     "in its systemd unit, or export it in the shell), or docker_cli: podman in the timetable")
    version = _output([cli, "--version"])
    if _output([cli, "info", "--format", "{{.Host.Arch}}{{.ServerVersion}}"], timeout=10) is None:
        return Check("docker/podman", "fail" if needed else "warn", f"{cli} is installed ({version}) but "
                     f"`{cli} info` fails: no daemon or no permission",
                     f"start the daemon, or add {os.environ.get('USER', 'yourself')} to the docker group, or use podman")
    return Check("docker/podman", "ok", f"{shutil.which(cli)}: {version}")


def _time_zone() -> Check:
    try:
        import tzlocal

        name = tzlocal.get_localzone_name()
    except Exception as exc:
        return Check("time zone", "warn", f"cannot tell the machine's zone ({exc}); UTC is used",
                     "set TZ or /etc/localtime, or give timezone: in the timetable")
    if not name:
        return Check("time zone", "warn", "the machine's zone is unknown; UTC is used",
                     "set TZ or /etc/localtime, or give timezone: in the timetable")
    return Check("time zone", "ok", f"{name} (jobs without timezone: use it)")


def _output(argv: list[str], timeout: float = 5) -> str | None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    return (proc.stdout.strip().splitlines() or [""])[0]


def clock_check(settings: Settings) -> Check:
    """``doctor``: this machine's clock against the database's, and any live host whose
    clock was off by more than :data:`~supertask.cluster.leases.SKEW_LIMIT` at its
    last heartbeat."""
    import time

    from supertask.cluster import leases
    from supertask.store.sql import SqlStore

    try:
        st = SqlStore.open(settings.store_url, create=False, migrate_old=False)
    except Exception as exc:
        return Check("clocks", "warn", f"cannot read the store: {exc}")
    try:
        if st.schema_missing or st.schema_old is not None:
            return Check("clocks", "ok", "no host rows yet")
        before = time.time()
        now = st.clock()
        after = time.time()
        mine = (before + after) / 2 - now.timestamp()
        off = [r for r in st.hosts(within=3600.0) if leases.skewed(r, now)]
    except Exception as exc:
        return Check("clocks", "warn", f"cannot read the store: {exc}")
    finally:
        st.close()
    fix = ("run NTP on every host (e.g. `timedatectl set-ntp true`, chrony or systemd-timesyncd) and on the "
           "database server")
    if abs(mine) > leases.SKEW_LIMIT and st.dialect == "postgresql":
        return Check("clocks", "warn", f"this machine's clock is {mine:+.2f}s off the database's", fix)
    if off:
        shown = ", ".join(f"{r.host} (pid {r.pid}, {leases.skew(r):+.2f}s)" for r in off)
        return Check("clocks", "warn", f"live hosts whose clock is off the database's by more than "
                     f"{leases.SKEW_LIMIT:g}s: {shown}", fix)
    return Check("clocks", "ok", f"this machine's clock is {mine:+.3f}s off the database's"
                 if st.dialect == "postgresql" else "SQLite: one host, one clock")
