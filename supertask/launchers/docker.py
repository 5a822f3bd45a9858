"""``docker:IMAGE [-- COMMAND ARGS]``: a container created, run and removed per execution.

One run is five CLI calls, never ``run --rm``: through podman's Docker API ``docker
run --rm`` reports exit code 0 whatever the container returned (podman issue 18889),
and a killed CLI leaves its container running. So:

1. ``image inspect`` and ``pull`` as ``pull:`` says (``never`` | ``missing`` | ``always``);
2. ``create --name NAME --init --pull=never ...`` with the job's settings;
3. ``start --attach NAME``, relayed line by line through :meth:`~supertask.launchers.follow.Follower.run`;
4. ``wait NAME``: the exit code of the container, not of the CLI;
5. ``rm -f NAME``, always (``finally``).

A timeout, a stop request or (at the next start) a crash of the scheduler ends the container by name (``stop --time GRACE NAME``:
TERM to its init, then KILL after ``kill_grace``); the attached CLI then ends by
itself. ``--init`` makes a main process that ignores TERM (a plain ``sleep``) stop.

Only the job's own variables reach the container (``env``, ``env_file`` and the
``SUPERTASK_*`` facts of the run), never the host's. They are passed as ``-e KEY``
with the value in the CLI's environment, so values never show on a command line.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import threading
import time
from pathlib import Path

from supertask.launchers import reaper
from supertask.launchers.base import Command, LaunchRequest, Outcome
from supertask.model import Job, RunKind, RunStatus

#: The run's facts that reach a container besides the job's own ``env``.
RUN_VARS = ("SUPERTASK_RUN_ID", "SUPERTASK_JOB", "SUPERTASK_NAMESPACE", "SUPERTASK_SCHEDULED")
PULL_POLICIES = ("never", "missing", "always")
#: How long a management call (create, wait, stop, rm) may take before the engine counts as hung.
ENGINE_TIMEOUT = 60.0
_NAME_BAD = re.compile(r"[^a-zA-Z0-9_.-]")


class DockerError(Exception):
    """A step before or around the container failed; the message says which and why."""


def container_name(namespace: str, job: str, run_id: int) -> str:
    """``supertask-NAMESPACE-JOB-RUN``, within docker's ``[a-zA-Z0-9][a-zA-Z0-9_.-]*``."""
    return _NAME_BAD.sub("_", f"supertask-{namespace}-{job}-{run_id}")


def cli_for(request: LaunchRequest) -> list[str]:
    """``docker_cli:``, else ``$SUPERTASK_DOCKER``, else ``docker``; split like a shell."""
    text = request.job.docker_cli or request.env.get("SUPERTASK_DOCKER") or os.environ.get("SUPERTASK_DOCKER")
    return shlex.split(text or "docker") or ["docker"]


def container_env_keys(request: LaunchRequest) -> list[str]:
    """The names passed with ``-e``: ``env_file``'s, ``env``'s and the run's facts."""
    keys: list[str] = []
    if request.job.env_file:
        from supertask.runs.environ import read_env_file

        try:
            keys += read_env_file(Path(request.job.env_file))
        except OSError:
            pass  # the runner read it a moment ago; what it read is in request.env
    keys += [str(k) for k in request.job.env]
    keys += RUN_VARS
    return [k for k in dict.fromkeys(keys) if k in request.env]


def create_args(request: LaunchRequest, name: str, image: str, command: list[str]) -> list[str]:
    """The arguments after ``CLI create``: name, labels, init, env names, limits, image, command."""
    job = request.job
    args = ["create", "--name", name, "--init", "--pull=never",
            "--label", f"supertask.namespace={request.namespace}",
            "--label", f"supertask.job={job.name}", "--label", f"supertask.run={request.run_id}"]
    for key in container_env_keys(request):
        args += ["-e", key]
    for volume in job.volumes:
        args += ["-v", _volume(volume, job.cwd)]
    if job.network:
        args += ["--network", job.network]
    if job.cpus is not None:
        args += ["--cpus", f"{job.cpus:g}"]
    if job.memory:
        args += ["--memory", job.memory]
    return [*args, image, *command]


def _volume(spec: str, cwd: str | None) -> str:
    """A host path given as ``./data`` or ``~/data`` becomes absolute; a named volume stays."""
    host, sep, rest = spec.partition(":")
    if sep and (host.startswith(".") or host.startswith("~")):
        host = str((Path(cwd or os.getcwd()) / Path(host).expanduser()).resolve())
    return f"{host}{sep}{rest}"


class DockerRun:
    kind = RunKind.DOCKER

    def launch(self, request: LaunchRequest) -> Outcome:
        started = time.monotonic()
        deadline = started + request.timeout if request.timeout else None
        cli = cli_for(request)
        name = container_name(request.namespace, request.job.name, request.run_id)
        created = False
        try:
            try:
                image, command = request.spec.container()
            except ValueError as exc:
                raise DockerError(str(exc)) from None
            if request.job.pull not in PULL_POLICIES:
                raise DockerError(f"pull: {request.job.pull!r} is not one of never, missing, always")
            early = self._pull(cli, image, request, deadline) or _ended_early(request, deadline)
            if early is not None:
                return early
            self._call(cli, create_args(request, name, image, command), request, "create the container")
            created = True
            return self._attach(cli, name, request, deadline)
        except DockerError as exc:
            request.on_line("stderr", f"supertask: {exc}")
            return Outcome(RunStatus.FAILED, None, None, str(exc))
        finally:
            if created:
                try:
                    self._call(cli, ["rm", "-f", name], request, f"remove container {name}")
                except DockerError as exc:
                    request.on_line("stderr", f"supertask: {exc}")

    def _pull(self, cli: list[str], image: str, request: LaunchRequest, deadline: float | None) -> Outcome | None:
        """Pull per ``pull:``; an Outcome when the pull was timed out or stopped, else None."""
        policy = request.job.pull
        if policy == "never":
            return None
        if policy == "missing":
            probe = self._run(cli, ["image", "inspect", "--format", "{{.Id}}", image], request)
            if probe.returncode == 0:
                return None
            said = _last_line(probe.stderr)
            if _engine_down(said):
                raise DockerError(f"docker: cannot reach the container engine: {said}{_hint(said)}")
        request.on_line("stderr", f"supertask: pulling {image}")
        remaining = None if deadline is None else max(0.001, deadline - time.monotonic())
        outcome = request.children.run(
            Command([*cli, "pull", image], request.env, request.job.cwd), request.on_line,
            timeout=remaining, kill_grace=min(request.kill_grace, 5.0), stop=request.stop,
        )
        if outcome.status is RunStatus.SUCCEEDED:
            return None
        if outcome.status is RunStatus.FAILED:
            raise DockerError(f"docker: cannot pull {image} ({_cli_name(cli)} exit {outcome.exit_code}); "
                              "check the image name, the registry and that the engine runs")
        outcome.message = f"pull of {image} ended: {outcome.status.value}"
        return outcome

    def _attach(self, cli: list[str], name: str, request: LaunchRequest, deadline: float | None) -> Outcome:
        """``start --attach`` relayed; a timeout or stop ends the container by name."""
        done, end_cli = threading.Event(), threading.Event()
        ended_by: list[RunStatus] = []
        grace = max(0, math.ceil(request.kill_grace))

        def watch() -> None:
            while not done.is_set():
                if request.stop is not None and request.stop.is_set():
                    ended_by.append(RunStatus.KILLED)
                elif deadline is not None and time.monotonic() >= deadline:
                    ended_by.append(RunStatus.TIMED_OUT)
                else:
                    wait = 0.1 if deadline is None else min(0.1, max(0.0, deadline - time.monotonic()))
                    done.wait(wait)
                    continue
                why = "timed out" if ended_by[0] is RunStatus.TIMED_OUT else "stop requested"
                request.on_line("stderr", f"supertask: {why}: stopping container {name} (grace {grace}s)")
                try:
                    self._call(cli, ["stop", "--time", str(grace), name], request, f"stop container {name}",
                               timeout=grace + ENGINE_TIMEOUT)
                except DockerError as exc:
                    request.on_line("stderr", f"supertask: {exc}")
                if not done.wait(5.0):
                    end_cli.set()  # the CLI outlived its container: end its process group
                return

        watcher = request.children.spawn(f"stop-{name}", watch)  # the follower's owner joins it too
        try:
            attached = request.children.run(
                Command([*cli, "start", "--attach", name], request.env, request.job.cwd), request.on_line,
                kill_grace=2.0, stop=end_cli, on_start=request.on_start,
            )
        finally:
            done.set()
            watcher.join()
        code = self._exit_code(cli, name, request)
        if code is None or (code == 0 and attached.exit_code not in (0, None)):
            code = attached.exit_code  # the container never ran: the CLI said why on stderr
        if ended_by:
            status = ended_by[0]
            message = (f"timed out after {_timeout(request):g}s; container {name} stopped"
                       if status is RunStatus.TIMED_OUT else f"ended on request; container {name} stopped")
            return Outcome(status, code, attached.pid, message)
        if code == 0:
            return Outcome(RunStatus.SUCCEEDED, 0, attached.pid)
        return Outcome(RunStatus.FAILED, code, attached.pid, f"container {name} exited with {code}")

    def _exit_code(self, cli: list[str], name: str, request: LaunchRequest) -> int | None:
        """The container's own exit code (``wait``, else ``inspect``); None if neither says."""
        for args in (["wait", name], ["inspect", "--format", "{{.State.ExitCode}}", name]):
            try:
                proc = self._run(cli, args, request)
            except DockerError:
                continue
            words = proc.stdout.split()
            if proc.returncode == 0 and words and words[-1].lstrip("-").isdigit():
                return int(words[-1])
        return None

    def _call(self, cli: list[str], args: list[str], request: LaunchRequest, what: str,
              timeout: float = ENGINE_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run a management command; DockerError with the CLI's own words if it fails."""
        proc = self._run(cli, args, request, timeout)
        if proc.returncode != 0:
            said = _last_line(proc.stderr) or f"exit {proc.returncode}"
            raise DockerError(f"docker: cannot {what}: {said}{_hint(said)}")
        return proc

    def _run(self, cli: list[str], args: list[str], request: LaunchRequest,
             timeout: float = ENGINE_TIMEOUT) -> subprocess.CompletedProcess[str]:
        try:
            return reaper.run(
                [*cli, *args], env=request.env, cwd=request.job.cwd, stdin=subprocess.DEVNULL,
                text=True, timeout=timeout,
                start_new_session=True,  # a Ctrl-C meant for supertask must not cut `rm -f` short
            )
        except FileNotFoundError as exc:
            raise DockerError(
                f"docker: the container CLI {cli[0]!r} is not installed ({exc.strerror}); install "
                "docker or podman, or name one with docker_cli: or SUPERTASK_DOCKER") from exc
        except OSError as exc:
            raise DockerError(f"docker: cannot run {cli[0]!r}: {exc}") from exc
        except subprocess.TimeoutExpired as exc:
            raise DockerError(f"docker: `{_cli_name(cli)} {args[0]}` did not answer within "
                              f"{timeout:g}s; is the container engine hung?") from exc


def end_lost_container(job: Job, namespace: str, run_id: int) -> bool:
    """After a crash: stop (``kill_grace``) and remove a lost run's container by name.

    Its CLI died with the old scheduler, so nothing else would ever ``rm`` it. True
    when the engine had such a container; an engine that is down or a container that
    is gone already is not an error here.
    """
    text = job.docker_cli or job.env.get("SUPERTASK_DOCKER") or os.environ.get("SUPERTASK_DOCKER")
    cli = shlex.split(str(text or "docker")) or ["docker"]
    name = container_name(namespace, job.name, run_id)
    grace = max(0, math.ceil(job.kill_grace))
    try:
        stop = reaper.run([*cli, "stop", "--time", str(grace), name], stdin=subprocess.DEVNULL, text=True,
                          timeout=grace + ENGINE_TIMEOUT, start_new_session=True)
        removed = reaper.run([*cli, "rm", "-f", name], stdin=subprocess.DEVNULL, text=True,
                             timeout=ENGINE_TIMEOUT, start_new_session=True)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return stop.returncode == 0 or (removed.returncode == 0 and name in removed.stdout)


def _ended_early(request: LaunchRequest, deadline: float | None) -> Outcome | None:
    """An Outcome if the run was stopped or ran out of time before its container existed."""
    if request.stop is not None and request.stop.is_set():
        return Outcome(RunStatus.KILLED, None, None, "ended on request before the container started")
    if deadline is not None and time.monotonic() >= deadline:
        return Outcome(RunStatus.TIMED_OUT, None, None, f"timed out after {_timeout(request):g}s before the container started")
    return None


def _timeout(request: LaunchRequest) -> float:
    """The job's ``timeout`` as the user wrote it (``request.timeout`` is what was left of it)."""
    return request.job.timeout or request.timeout or 0.0


def _cli_name(cli: list[str]) -> str:
    return Path(cli[0]).name


def _last_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[-1:])


def _engine_down(said: str) -> bool:
    low = said.lower()
    return "cannot connect" in low or "unable to connect" in low or "connection refused" in low or (
        "no such file" in low and "sock" in low)


def _hint(said: str) -> str:
    low = said.lower()
    if _engine_down(said):
        return " (is the container engine running? docker_cli: / SUPERTASK_DOCKER pick the CLI)"
    if "image not known" in low or "no such image" in low or "image not found" in low:
        return " (the image is not on this host; pull it, or set pull: missing)"
    if "already in use" in low:
        return " (a container of that name exists; remove it with `rm -f`)"
    return ""
