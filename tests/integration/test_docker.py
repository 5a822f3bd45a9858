"""docker: jobs for real: podman (set up by ../shared/containers/setup-podman.sh), the CLI
in a subprocess, a locally built busybox image (no registry here), and the store's runs."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from supertask.launchers.docker import container_name, parse_target
from tests.conftest import Cli, wait_until

pytestmark = pytest.mark.containers

SETUP = Path(__file__).resolve().parents[3] / "shared" / "containers" / "setup-podman.sh"
IMAGE = "localhost/busybox"


@pytest.fixture(scope="session")
def podman_env() -> Iterator[dict[str, str]]:
    """The variables setup-podman.sh exports (CONTAINERS_CONF, ...) plus SUPERTASK_DOCKER=podman."""
    if not SETUP.exists():
        pytest.skip(f"containers: {SETUP} is missing (the shared/ folder beside the clone)")
    proc = subprocess.run(
        ["bash", "-c", 'source "$0" >&2 || exit $?; env -0', str(SETUP)],
        capture_output=True, timeout=900,
    )
    if proc.returncode != 0:
        pytest.skip(f"containers: podman cannot be set up here: {proc.stderr.decode(errors='replace').strip()[-500:]}")
    exported = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
    env = {k: v for k, v in exported.items() if os.environ.get(k) != v and not k.startswith("BASH")}
    env.pop("_", None)
    env.pop("SHLVL", None)
    env["SUPERTASK_DOCKER"] = "podman"
    yield env


def podman(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60)


def exists(env: dict[str, str], name: str) -> bool:
    return podman(env, "container", "exists", name).returncode == 0


@pytest.fixture
def dcli(cli: Cli, podman_env: dict[str, str]) -> Cli:
    cli.env.update(podman_env)
    return cli


def timetable(cli: Cli, jobs: str) -> str:
    """Writes supertask.yaml with a namespace of its own (container names stay unique)."""
    ns = f"dk-{uuid.uuid4().hex[:8]}"
    (cli.cwd / "supertask.yaml").write_text(f"namespace: {ns}\ndefaults: {{pull: never}}\njobs:\n{jobs}")
    return ns


def run_once(cli: Cli, job: str, env: dict[str, str] | None = None) -> dict:
    """`supertask run` until ``job`` finished; its run row."""
    sched = cli.start(env=env)
    try:
        sched.wait_event("run finished", timeout=40, job=job)
    finally:
        assert sched.stop() == 0, sched.output
    return next(r for r in cli.json("history", "--limit", "50") if r["job"] == job)


def log_of(cli: Cli, run: dict) -> str:
    proc = cli("logs", str(run["id"]))
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_target_and_name() -> None:
    assert parse_target("busybox") == ("busybox", [])
    assert parse_target("busybox -- sh -c 'echo hi; exit 3'") == ("busybox", ["sh", "-c", "echo hi; exit 3"])
    assert container_name("cli-1a2b", "my job/x", 7) == "supertask-cli-1a2b-my_job_x-7"


def test_one_liner_relays_output_and_the_container_exit_code(dcli: Cli, podman_env: dict[str, str]) -> None:
    proc = dcli("run", "--", f"docker:{IMAGE} -- sh -c 'echo hi; echo oops >&2; exit 3'")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "hi\n"
    assert "oops" in proc.stderr
    ok = dcli("run", "--", f"docker:{IMAGE} -- echo", "two words")
    assert (ok.returncode, ok.stdout) == (0, "two words\n")

    runs = dcli.json("history", "--limit", "2")  # newest first
    assert [(r["status"], r["exit_code"]) for r in runs] == [("succeeded", 0), ("failed", 3)]
    logged = [line.split(" ", 2)[1:] for line in log_of(dcli, runs[1]).splitlines()]
    assert ["stdout", "hi"] in logged and ["stderr", "oops"] in logged
    for run in runs:
        assert not exists(podman_env, container_name(run["namespace"], run["job"], run["id"]))


def test_job_env_reaches_the_container_and_the_host_env_does_not(dcli: Cli) -> None:
    timetable(dcli, f"""
  - name: show-env
    when: once
    env: {{GREETING: hello world, TOKEN: s3cret}}
    run: "docker:{IMAGE} -- env"
""")
    run = run_once(dcli, "show-env", env={"HOST_ONLY": "leaked"})
    assert run["status"] == "succeeded", log_of(dcli, run)
    seen = dict(line.split(" ", 2)[2].split("=", 1) for line in log_of(dcli, run).splitlines() if " stdout " in line)
    assert seen["GREETING"] == "hello world" and seen["TOKEN"] == "s3cret"
    assert seen["SUPERTASK_RUN_ID"] == str(run["id"]) and seen["SUPERTASK_JOB"] == "show-env"
    assert seen["SUPERTASK_NAMESPACE"] == run["namespace"] and seen["SUPERTASK_SCHEDULED"] == run["scheduled"]
    assert "HOST_ONLY" not in seen and "SUPERTASK_HOME" not in seen and "CONTAINERS_CONF" not in seen


def test_volumes_write_host_files(dcli: Cli, tmp_path: Path) -> None:
    (tmp_path / "abs").mkdir()
    (dcli.cwd / "rel").mkdir()
    timetable(dcli, f"""
  - name: writer
    when: once
    volumes: ["{tmp_path / 'abs'}:/abs", "./rel:/rel"]
    run: "docker:{IMAGE} -- sh -c 'echo $SUPERTASK_JOB > /abs/out; echo relative > /rel/out'"
""")
    run = run_once(dcli, "writer")
    assert run["status"] == "succeeded", log_of(dcli, run)
    assert (tmp_path / "abs" / "out").read_text() == "writer\n"
    assert (dcli.cwd / "rel" / "out").read_text() == "relative\n"


def test_timeout_stops_the_container_by_name(dcli: Cli, podman_env: dict[str, str]) -> None:
    ns = timetable(dcli, f"""
  - name: slow
    when: once
    timeout: 1.5s
    kill_grace: 1s
    cpus: 0.5
    memory: 64m
    run: "docker:{IMAGE} -- sleep 300"
""")
    sched = dcli.start()
    try:
        started = sched.wait_event("run started", job="slow")
        name = container_name(ns, "slow", started["run"])
        wait_until(lambda: exists(podman_env, name), what=f"container {name}")
        t0 = time.monotonic()
        finished = sched.wait_event("run finished", job="slow")
        took = time.monotonic() - t0
    finally:
        assert sched.stop() == 0
    assert finished["status"] == "timed-out"
    assert took < 10, took  # sleep ignores TERM as pid 1: --init and stop --time 1 end it
    assert not exists(podman_env, name)
    assert podman(podman_env, "ps", "-a", "--filter", f"name={name}", "--format", "{{.Names}}").stdout.strip() == ""
    run = dcli.json("history", "--limit", "1")[0]
    assert run["status"] == "timed-out"
    assert f"stopping container {name}" in log_of(dcli, run)


def test_shutdown_stops_a_running_container(dcli: Cli, podman_env: dict[str, str]) -> None:
    ns = timetable(dcli, f"""
  - {{name: stuck, when: once, kill_grace: 1s, run: "docker:{IMAGE} -- sleep 300"}}
""")
    sched = dcli.start("--grace", "0.5s")
    started = sched.wait_event("run started", job="stuck")
    name = container_name(ns, "stuck", started["run"])
    wait_until(lambda: exists(podman_env, name), what=f"container {name}")
    t0 = time.monotonic()
    assert sched.stop() == 0
    assert time.monotonic() - t0 < 15
    assert dcli.json("history", "--limit", "1")[0]["status"] == "killed"
    assert not exists(podman_env, name)


@pytest.mark.parametrize("pull", ["never", "missing"])
def test_a_missing_image_is_a_failed_run_with_the_reason_in_its_log(dcli: Cli, pull: str) -> None:
    timetable(dcli, f"""
  - {{name: no-image, when: once, pull: {pull}, run: "docker:localhost/no-such-image-{uuid.uuid4().hex[:6]} -- true"}}
""")
    run = run_once(dcli, "no-image")
    assert run["status"] == "failed"
    log = log_of(dcli, run)
    reason = "image not known" if pull == "never" else "cannot pull"
    assert reason in log and reason in run["message"], log


def test_an_engine_that_is_down_or_missing_is_a_failed_run(dcli: Cli, tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    timetable(dcli, f"""
  - {{name: no-cli, when: once, docker_cli: /nonexistent/docker, run: "docker:{IMAGE} -- true"}}
  - {{name: no-engine, when: once, pull: missing, docker_cli: "podman --remote --url unix://{dead}", run: "docker:{IMAGE} -- true"}}
""")
    sched = dcli.start()
    try:
        for job in ("no-cli", "no-engine"):
            sched.wait_event("run finished", timeout=40, job=job)
    finally:
        assert sched.stop() == 0
    runs = {r["job"]: r for r in dcli.json("history")}
    assert runs["no-cli"]["status"] == "failed" and runs["no-engine"]["status"] == "failed"
    assert "'/nonexistent/docker' is not installed" in log_of(dcli, runs["no-cli"])
    log = log_of(dcli, runs["no-engine"])
    assert "cannot reach the container engine" in log and str(dead) in log, log
    assert "is the container engine running?" in runs["no-engine"]["message"]
