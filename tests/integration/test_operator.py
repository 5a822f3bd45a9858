"""What an operator meets (issue 14): one scheduler per state folder, hooks that find
supertask, mail on failure, @reboot per host, live changes in the log, a broken file
at a restart — each with the real CLI and real schedulers."""

from __future__ import annotations

import os
import signal

from tests.conftest import Cli, wait_until


def timetable(cli: Cli, text: str) -> None:
    (cli.cwd / "supertask.yaml").write_text(text)


TICKING = """
namespace: {ns}
jobs:
  - {{name: tick, when: "every 1s", run: "cmd:echo tick"}}
"""


def test_a_second_scheduler_for_a_namespace_is_refused_naming_the_first(cli: Cli) -> None:
    timetable(cli, TICKING.format(ns="one-only"))
    first = cli.start()
    try:
        first.wait_event("scheduler started")
        second = cli("run", timeout=30)
        assert second.returncode == 2, second.stderr
        assert f"another scheduler (pid {first.proc.pid})" in second.stderr and "--allow-second" in second.stderr
        assert cli("status", "--json").returncode == 0  # the one that runs is the one status sees
        # on purpose: it starts, says so, and names the first
        shared = cli.start("--allow-second")
        try:
            shared.wait_event("second scheduler by request", first_pid=first.proc.pid)
            shared.wait_event("scheduler started")
        finally:
            assert shared.stop() == 0
    finally:
        first.kill()  # kill -9: the kernel lets go of its lock
    again = cli.start()
    try:
        again.wait_event("scheduler started")
    finally:
        assert again.stop(signal.SIGTERM) == 0
    assert not os.path.exists(cli.home / "control" / "one-only.sock")


def test_a_scheduler_of_another_namespace_in_the_same_folder_starts(cli: Cli, tmp_path: object) -> None:
    timetable(cli, TICKING.format(ns="first-ns"))
    first = cli.start()
    try:
        first.wait_event("scheduler started")
        (cli.cwd / "other.yaml").write_text(TICKING.format(ns="second-ns"))
        other = cli.start("--file", "other.yaml")
        try:
            other.wait_event("scheduler started")
            wait_until(lambda: (cli.home / "control" / "second-ns.sock").exists(), what="its own socket")
        finally:
            assert other.stop() == 0
    finally:
        assert first.stop() == 0
