"""A host whose clock is off (issue 15 point 1): "due" is decided with the database's
clock. Two `supertask run` on one PostgreSQL database, one of them under libfaketime
(Debian's ``faketime``; `make test-cluster` installs it where it can) with its clock 5 s
ahead. It is reported (`supertask hosts`, `doctor`), and it neither starts a fire before
its time by the database's clock (this machine's real clock, which its children read
with libfaketime taken out) nor runs a slot the other host ran."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres

UTC = timezone.utc
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
AHEAD = 5.0
#: time.sleep by select() in the faked process (libfaketime's clock_nanosleep fails there)
SHIM = Path(__file__).resolve().parent / "faketime"
BEAT = ("--heartbeat", "1s", "--lease", "4s", "--grace", "1s")


def rows(url: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def ahead_env() -> dict[str, str]:
    """The environment that sets a process's clock AHEAD seconds ahead (libfaketime)."""
    if not LIBFAKETIME.exists():
        pytest.skip(f"libfaketime is not installed ({LIBFAKETIME}; Debian's faketime package, which "
                    "`make test-cluster` installs when it runs as root with apt-get)")
    return {"LD_PRELOAD": str(LIBFAKETIME), "FAKETIME": f"+{AHEAD:g}s", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            "FAKETIME_NO_CACHE": "1", "PYTHONPATH": str(SHIM)}


def test_a_host_whose_clock_is_ahead_is_reported_and_fires_neither_early_nor_twice(
        tmp_path: Path, pg_db: str, ahead_env: dict[str, str]) -> None:
    probe = subprocess.run(["date", "+%s"], env={**os.environ, **ahead_env}, capture_output=True, text=True)
    assert abs(int(probe.stdout) - AHEAD - datetime.now(UTC).timestamp()) < 2, \
        f"libfaketime does not move the clock here: {probe.stdout} {probe.stderr}"
    work, starts = tmp_path / "work", tmp_path / "starts"
    work.mkdir()
    starts.mkdir()
    # each run writes its slot and when it started by the real clock (libfaketime taken out)
    (work / "supertask.yaml").write_text(f"""
namespace: skewed
jobs:
  - name: tick
    when: every 1s
    run: "cmd:echo $SUPERTASK_SCHEDULED $(env -u LD_PRELOAD date +%s.%N) > {starts}/$SUPERTASK_RUN_ID"
  - name: slow
    when: every 1s
    run: "cmd:echo $SUPERTASK_SCHEDULED $(env -u LD_PRELOAD date +%s.%N) > {starts}/$SUPERTASK_RUN_ID; sleep 1.5"
    overlap: skip
""")
    honest, skewed = Cli(tmp_path / "home-a", pg_db, work), Cli(tmp_path / "home-b", pg_db, work)
    running: list[Scheduler] = [honest.start(*BEAT), skewed.start(*BEAT, env=ahead_env)]
    try:
        for s in running:
            s.wait_event("scheduler started", timeout=60)
        listed = wait_until(lambda: [h for h in honest.json_soon("hosts") or () if h["clock_off"]], 30,
                            what="the skewed host reported by `supertask hosts`")
        assert len(listed) == 1 and listed[0]["pid"] == running[1].proc.pid, listed
        assert AHEAD - 0.5 < listed[0]["skew"] < AHEAD + 0.5
        doctor = {c["name"]: c for c in json.loads(honest("doctor", "--json").stdout)}
        assert doctor["clocks"]["status"] == "warn" and f"pid {running[1].proc.pid}" in doctor["clocks"]["detail"]
        # the skewed host's own doctor says its clock is off the database's
        own = {c["name"]: c for c in json.loads(skewed("doctor", "--json", env=ahead_env).stdout)}
        assert own["clocks"]["status"] == "warn", own["clocks"]
        began = datetime.now(UTC)
        wait_until(lambda: len(list(starts.iterdir())) >= 24, 90, what="24 runs started")
    finally:
        codes = [s.stop() for s in running]
    assert codes == [0, 0]
    found = rows(pg_db, "SELECT id, job, scheduled, attempt, status, instance FROM supertask_runs "
                        "WHERE namespace = 'skewed' ORDER BY scheduled")
    by_id = {r[0]: r for r in found}
    instance = rows(pg_db, "SELECT instance FROM supertask_hosts WHERE pid = %s", running[1].proc.pid)[0][0]
    early: list[tuple[str, float]] = []
    on_skewed = 0
    for path in starts.iterdir():
        slot, real = path.read_text().split()
        lead = datetime.fromisoformat(slot).timestamp() - float(real)
        if lead > 0:
            early.append((slot, round(lead, 4)))
        on_skewed += by_id[int(path.name)][5] == instance
    assert not early, f"started before their time by the real clock: {early}"
    # fires not yet due by the database's clock are not taken for overdue ones either
    assert not [e for e in running[1].events() if e.get("event") in ("fires coalesced", "fires missed")]
    assert on_skewed, "the skewed host ran nothing: its fires were not exercised"
    first = Counter((job, when) for _, job, when, attempt, *_ in found if attempt == 1)
    assert not [k for k, n in first.items() if n > 1]
    # every slot since both served has its one row (a run, or a skip for overlap)
    for job in ("tick", "slow"):
        times = sorted(when for j, when in first if j == job and when > began + timedelta(seconds=2))
        gaps = [(a.isoformat(), b.isoformat()) for a, b in zip(times, times[1:], strict=False) if (b - a).total_seconds() != 1]
        assert not gaps, (job, gaps)
    ran = Counter(path.read_text().split()[0] + by_id[int(path.name)][1] for path in starts.iterdir())
    assert not [k for k, n in ran.items() if n > 1]
