"""docker: jobs for real: podman (installed and set up by tests/containers/podman.sh), the CLI
in a subprocess, a locally built busybox image (no registry here), and the store's runs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from supertask.launchers.docker import container_name
from supertask.model import RunKind, RunSpec
from tests.conftest import Cli, wait_until

pytestmark = pytest.mark.containers

SETUP = Path(__file__).resolve().parents[1] / "containers" / "podman.sh"
IMAGE = "localhost/busybox"


def source_setup() -> dict[str, str]:
    """The variables tests/containers/podman.sh exports (CONTAINERS_CONF, ...); skips,
    with its reason, where podman cannot be installed or run."""
    proc = subprocess.run(
        ["bash", "-c", 'source "$0" >&2 || exit $?; env -0', str(SETUP)],
        capture_output=True, timeout=900,
    )
    if proc.returncode != 0:
        pytest.skip(f"containers: podman cannot be set up here: {proc.stderr.decode(errors='replace').strip()[-500:]}")
    exported = dict(item.split("=", 1) for item in proc.stdout.decode().split("\0") if "=" in item)
    skip = {"_", "SHLVL", "PWD", "OLDPWD"}
    return {k: v for k, v in exported.items() if os.environ.get(k) != v and k not in skip and not k.startswith("BASH")}


@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    """podman set up on the shared default folder, picked with SUPERTASK_DOCKER=podman."""
    return {**source_setup(), "SUPERTASK_DOCKER": "podman"}


@pytest.fixture(scope="module")
def docker_api_env(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The docker CLI talking to podman's Docker API: a service of this module's own on the
    shared storage (a second storage would share /run/libpod and its locks with the first)."""
    if shutil.which("docker") is None:
        pytest.skip("containers: no docker CLI on PATH")
    folder = tmp_path_factory.mktemp("podman-api")
    socket = folder / "podman.sock"
    env = {**os.environ, **podman_env}
    with open(folder / "service.log", "wb") as log:
        service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            wait_until(socket.exists, timeout=20, what="podman's API socket")
        except AssertionError:
            pytest.skip(f"containers: podman's API service did not start: {(folder / 'service.log').read_text()[-500:]}")
        yield {**podman_env, "DOCKER_HOST": f"unix://{socket}", "SUPERTASK_DOCKER": "docker"}
    finally:
        service.terminate()
        try:
            service.wait(10)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(10)


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
    assert RunSpec(RunKind.DOCKER, "busybox").container() == ("busybox", [])
    assert RunSpec(RunKind.DOCKER, "busybox -- sh -c 'echo hi; exit 3'").container() == (
        "busybox", ["sh", "-c", "echo hi; exit 3"])
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


def test_job_env_and_volumes_reach_the_container_and_the_host_env_does_not(dcli: Cli, tmp_path: Path) -> None:
    (tmp_path / "abs").mkdir()
    (dcli.cwd / "rel").mkdir()
    timetable(dcli, f"""
  - name: show-env
    when: once
    env: {{GREETING: hello world, TOKEN: s3cret}}
    volumes: ["{tmp_path / 'abs'}:/abs", "./rel:/rel:rw"]
    run: "docker:{IMAGE} -- sh -c 'env > /abs/env; echo relative > /rel/out; echo done'"
""")
    run = run_once(dcli, "show-env", env={"HOST_ONLY": "leaked"})
    assert run["status"] == "succeeded", log_of(dcli, run)
    log = log_of(dcli, run)
    assert [line.split(" ", 2)[2] for line in log.splitlines() if " stdout " in line] == ["done"], log
    seen = dict(line.split("=", 1) for line in (tmp_path / "abs" / "env").read_text().splitlines())
    assert seen.get("GREETING"), (seen, log)
    assert seen["GREETING"] == "hello world" and seen["TOKEN"] == "s3cret"
    assert seen["SUPERTASK_RUN_ID"] == str(run["id"]) and seen["SUPERTASK_JOB"] == "show-env"
    assert seen["SUPERTASK_NAMESPACE"] == run["namespace"] and seen["SUPERTASK_SCHEDULED"] == run["scheduled"]
    assert "HOST_ONLY" not in seen and "SUPERTASK_HOME" not in seen and "CONTAINERS_CONF" not in seen
    assert (dcli.cwd / "rel" / "out").read_text() == "relative\n"  # ./rel is the job's cwd's


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
    assert run["message"] == f"timed out after 1.5s; container {name} stopped"  # the job's timeout, as written
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


def test_kill_9_of_the_scheduler_then_a_restart_removes_the_lost_runs_container(dcli: Cli, podman_env: dict[str, str]) -> None:
    ns = timetable(dcli, f"""
  - {{name: orphaned, when: once, kill_grace: 1s, run: "docker:{IMAGE} -- sleep 300"}}
""")
    sched = dcli.start()
    started = sched.wait_event("run started", job="orphaned")
    name = container_name(ns, "orphaned", started["run"])
    wait_until(lambda: podman(podman_env, "ps", "--filter", f"name={name}", "--format", "{{.Names}}").stdout.strip(),
               what=f"container {name} running")
    os.kill(sched.proc.pid, signal.SIGKILL)
    sched.proc.wait(10)
    sched = dcli.start()
    try:
        lost = sched.wait_event("run lost", job="orphaned", timeout=40)
    finally:
        assert sched.stop() == 0
    assert lost["container_removed"] is True
    assert not exists(podman_env, name)
    assert dcli.json("history", "--limit", "1")[0]["status"] == "lost"


def test_missing_image_missing_cli_and_engine_down_are_failed_runs_with_the_reason(dcli: Cli, tmp_path: Path) -> None:
    dead = tmp_path / "dead.sock"
    nothing = f"localhost/no-such-image-{uuid.uuid4().hex[:6]}"
    timetable(dcli, f"""
  - {{name: image-never, when: once, run: "docker:{nothing} -- true"}}
  - {{name: image-missing, when: once, pull: missing, run: "docker:{nothing} -- true"}}
  - {{name: no-cli, when: once, docker_cli: /nonexistent/docker, run: "docker:{IMAGE} -- true"}}
  - {{name: no-engine, when: once, pull: missing, docker_cli: "podman --remote --url unix://{dead}", run: "docker:{IMAGE} -- true"}}
""")
    jobs = ("image-never", "image-missing", "no-cli", "no-engine")
    sched = dcli.start()
    try:
        for job in jobs:
            sched.wait_event("run finished", timeout=40, job=job)
    finally:
        assert sched.stop() == 0
    runs = {r["job"]: r for r in dcli.json("history")}
    expected = {
        "image-never": "image not known",
        "image-missing": f"cannot pull {nothing}",
        "no-cli": "'/nonexistent/docker' is not installed",
        "no-engine": "cannot reach the container engine",
    }
    for job, reason in expected.items():
        tail = runs[job]["log_tail"]  # the last lines of the run's log, kept with the run
        assert runs[job]["status"] == "failed", tail
        assert "supertask: docker: " in tail and reason in tail, tail
        assert reason in runs[job]["message"]
    log = log_of(dcli, runs["no-engine"])
    assert " stderr supertask: docker: cannot reach the container engine" in log and str(dead) in log, log
    assert "is the container engine running?" in runs["no-engine"]["message"]


def test_docker_cli_through_podmans_api_keeps_the_exit_code(cli: Cli, docker_api_env: dict[str, str]) -> None:
    """`docker run --rm` through podman's API says 0 here (podman issue 18889); supertask must not."""
    cli.env.update(docker_api_env)
    proc = cli("run", "--", f"docker:{IMAGE} -- sh -c 'echo run=$SUPERTASK_RUN_ID; exit 3'")
    run = cli.json("history", "--limit", "1")[0]
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == f"run={run['id']}\n"
    assert (run["status"], run["exit_code"]) == ("failed", 3)
    name = container_name(run["namespace"], run["job"], run["id"])
    gone = subprocess.run(["docker", "container", "inspect", name], env={**os.environ, **docker_api_env},
                          capture_output=True, timeout=30)
    assert gone.returncode != 0
