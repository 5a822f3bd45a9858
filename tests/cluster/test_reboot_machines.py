"""``@reboot`` once per machine boot across hosts sharing one PostgreSQL store (issue 15
point 5): the boot is keyed by the machine id, not the host name, so two machines named
alike each fire once per boot of their own, and a second state folder on one machine
fires nothing again. The machines are faked with ``SUPERTASK_TEST_MACHINE`` (a folder
whose ``machine-id`` and ``boot_id`` stand for the machine's: tests only); every
scheduler here has this machine's host name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Cli, Scheduler, wait_until

pytestmark = pytest.mark.postgres

BEAT = ("--heartbeat", "1s", "--lease", "4s", "--grace", "1s")


def boot_rows(url: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT id, status FROM supertask_runs WHERE job = 'boot' ORDER BY id").fetchall()


def fake_machine(folder: Path, machine: str, boot: str) -> dict[str, str]:
    folder.mkdir(exist_ok=True)
    (folder / "machine-id").write_text(machine + "\n")
    (folder / "boot_id").write_text(boot + "\n")
    return {"SUPERTASK_TEST_MACHINE": str(folder)}


def test_reboot_fires_once_per_boot_of_each_machine_not_per_host_name(tmp_path: Path, pg_db: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    fired = tmp_path / "fired"
    timetable = work / "supertask.yaml"
    timetable.write_text(f"""
namespace: boots
jobs:
  - name: boot
    when: "@reboot"
    run: "cmd:echo $SUPERTASK_RUN_ID >> {fired}"
""")
    a = fake_machine(tmp_path / "machine-a", "a" * 32, "boot-a1")
    b = fake_machine(tmp_path / "machine-b", "b" * 32, "boot-b1")
    homes = [Cli(tmp_path / f"home{i}", pg_db, work) for i in range(3)]
    running: list[Scheduler] = []

    def start(cli: Cli, machine: dict[str, str], booted: bool) -> Scheduler:
        s = cli.start("--file", str(timetable), *BEAT, env=machine)
        running.append(s)
        event = s.wait_event("start jobs", timeout=60)
        assert event["booted"] is booted and event["host"] == os.uname().nodename, event
        assert event["machine"] == Path(machine["SUPERTASK_TEST_MACHINE"], "machine-id").read_text().strip()
        s.wait_event("scheduler started", timeout=60)
        return s

    def fires(count: int) -> list[str]:
        wait_until(lambda: len(boot_rows(pg_db)) >= count and all(r[1] == "succeeded" for r in boot_rows(pg_db)),
                   60, what=f"{count} @reboot run(s) done")
        return fired.read_text().split()

    try:
        # two machines with the same host name, up at once: each one's boot fires once
        first_a = start(homes[0], a, booted=True)
        assert len(fires(1)) == 1
        first_b = start(homes[1], b, booted=True)
        assert len(fires(2)) == 2
        # machine a, a second state folder on the same boot: nothing fires again
        start(homes[2], a, booted=False)
        # restarts on the same boots (by host name, each took the other's boot for a new one)
        for s in (first_a, first_b):
            s.stop()
        start(homes[0], a, booted=False)
        start(homes[1], b, booted=False)
        for s in running:
            s.stop()
        running.clear()
        # machine a reboots: its next start fires once, machine b's restart nothing
        fake_machine(tmp_path / "machine-a", "a" * 32, "boot-a2")
        start(homes[0], a, booted=True)
        start(homes[1], b, booted=False)
        start(homes[2], a, booted=False)
        assert len(fires(3)) == 3
        for s in running:
            s.stop()
        assert len(boot_rows(pg_db)) == 3 and len(fired.read_text().split()) == 3
    finally:
        for s in running:
            s.stop()
