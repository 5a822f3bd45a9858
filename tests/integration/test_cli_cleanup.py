"""Clearing up without a scheduler (forget, jobs remove --ns), stopping with --wait, doctor
that changes nothing, and `make run` that keeps its state in the project folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.conftest import ROOT, Cli


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def one_shot(cli: Cli, *args: str) -> None:
    proc = cli("run", *args)
    assert proc.returncode == 0, proc.stderr


def namespaces(cli: Cli) -> list[str]:
    return [r["name"] for r in cli.json("list-namespaces")]


def test_make_run_keeps_its_state_in_the_project_folder() -> None:
    proc = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if " run --file timetable.yaml" in line)
    assert line.startswith(f"SUPERTASK_HOME={ROOT}/state "), line
    assert "/state/" in (ROOT / ".gitignore").read_text()


def test_forget_removes_a_stale_namespace_its_runs_and_logs_without_a_scheduler(cli: Cli) -> None:
    one_shot(cli, "--ns", "stale", "--", "cmd:echo left behind")
    one_shot(cli, "--ns", "kept", "--", "cmd:echo still here")
    (run,) = cli.json("history", "--ns", "stale")
    log = Path(run["log_path"])
    assert log.is_file()
    asked = cli("forget", "stale")  # stdin is no terminal: nothing to confirm on
    assert asked.returncode == 2 and "--yes" in asked.stderr
    assert namespaces(cli) == ["kept", "stale"] or sorted(namespaces(cli)) == ["kept", "stale"]
    proc = cli("forget", "stale", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"namespace": "stale", "jobs": 1, "runs": 1, "logs": 1}
    assert namespaces(cli) == ["kept"] and not log.exists()
    assert [r["namespace"] for r in cli.json("history", "--all")] == ["kept"]
    again = cli("forget", "stale", "--yes")
    assert again.returncode == 2 and "no namespace 'stale'" in again.stderr


def test_forget_refuses_a_namespace_a_scheduler_serves(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", "namespace: busy\njobs:\n  - {name: a, when: '@daily', run: 'cmd:true'}\n")
    sched = cli.start()
    try:
        sched.wait_event("control ready")
        proc = cli("forget", "busy", "--yes")
        assert proc.returncode == 2 and f"pid {sched.proc.pid}" in proc.stderr, proc.stderr
        assert "busy" in namespaces(cli)
    finally:
        assert sched.stop() == 0


def test_jobs_remove_with_ns_works_on_the_store_when_no_scheduler_serves_it(cli: Cli) -> None:
    one_shot(cli, "--ns", "old", "--name", "gone", "--", "cmd:true")
    one_shot(cli, "--ns", "old", "--name", "stays", "--", "cmd:true")
    plain = cli("jobs", "remove", "gone")
    assert plain.returncode == 3 and "jobs remove --ns NS gone" in plain.stderr
    proc = cli("jobs", "remove", "--ns", "old", "gone")
    assert proc.returncode == 0 and "from the store" in proc.stdout, proc.stderr
    assert [j["name"] for j in cli.json("list-jobs", "--ns", "old")] == ["stays"]
    missing = cli("jobs", "remove", "--ns", "old", "gone")
    assert missing.returncode == 2 and "no job 'gone'" in missing.stderr


def test_stop_wait_says_what_it_waits_for(cli: Cli) -> None:
    write(cli.cwd / "supertask.yaml", "namespace: slow\njobs:\n  - {name: nap, when: '@daily', run: 'cmd:sleep 3'}\n")
    sched = cli.start()
    try:
        sched.wait_event("control ready")
        run_id = cli.json("jobs", "trigger", "nap")["run_id"]
        sched.wait_event("run started", job="nap")
        proc = cli("stop", "--wait", "--grace", "20s")
        assert proc.returncode == 0, proc.stderr
        assert f"waiting for 1 run: slow/nap (run {run_id}, running " in proc.stderr
        assert "of the 20s grace gone" in proc.stderr and "stopped" in proc.stdout
    finally:
        sched.stop()
    assert sched.proc.returncode == 0


def test_doctor_creates_nothing_and_says_how_to_use_podman(cli: Cli, tmp_path: Path) -> None:
    home = tmp_path / "no-such-home"
    tools = tmp_path / "bin"
    tools.mkdir()
    write(tools / "podman", "#!/bin/sh\necho 'podman version 5.0.0'\n").chmod(0o755)
    proc = cli("doctor", "--json", env={"SUPERTASK_HOME": str(home), "PATH": str(tools)})
    assert not home.exists()  # no state folder, no store
    assert proc.returncode == 2 and "no store in the state folder" in proc.stderr
    checks = {c["name"]: c for c in json.loads(proc.stdout)}
    assert checks["state folder"]["status"] == "warn" and "does not exist yet" in checks["state folder"]["detail"]
    assert checks["store"]["status"] == "warn" and "no store yet" in checks["store"]["detail"]
    assert "SUPERTASK_DOCKER=podman" in checks["docker/podman"]["fix"]
    assert checks["docker/podman"]["status"] == "warn"
