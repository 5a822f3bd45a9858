"""A job's ``run:`` parsed once (supertask.model.RunSpec): every kind, bad kinds, docker
targets, the launcher of each kind, and stored definitions that do not change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from supertask.launchers.registry import launcher_for
from supertask.model import Job, RunKind, RunSpec, Step
from supertask.timetable.load import load_timetable
from supertask.timetable.runtext import parse_run

# -- what a user writes -> RunSpec (timetable run:, one-shot `run -- TEXT`) ------------------

PARSED = [
    ("echo hi", RunKind.CMD, "echo hi"),
    ("  cmd: echo hi ", RunKind.CMD, "echo hi"),
    ("cmd:shell:x", RunKind.CMD, "shell:x"),  # explicit cmd: always wins
    ("echo:x", RunKind.CMD, "echo:x"),  # 'echo' is like no kind: a command
    ("https://example.com/hook", RunKind.CMD, "https://example.com/hook"),
    ("FOO=1 make", RunKind.CMD, "FOO=1 make"),
    ("exec:/bin/ls -l", RunKind.EXEC, "/bin/ls -l"),
    ("python:\n    print(1)\n    print(2)\n", RunKind.PYTHON, "print(1)\nprint(2)"),
    ("uv:scripts/report.py --day 1", RunKind.UV, "scripts/report.py --day 1"),
    ("docker:busybox -- echo hi", RunKind.DOCKER, "busybox -- echo hi"),
]


@pytest.mark.parametrize(("given", "kind", "target"), PARSED)
def test_parse_every_kind(given: str, kind: RunKind, target: str) -> None:
    spec = parse_run(given)
    assert (spec.kind, spec.target) == (kind, target)
    assert spec.kind is kind  # the enum itself, not its word
    assert RunSpec.read(str(spec)) == spec  # the canonical text a Job carries reads back the same
    assert Job(name="j", when="once", run=str(spec)).run_spec == spec


@pytest.mark.parametrize(("given", "message"), [
    ("dockr:busybox", "unknown run kind 'dockr'; did you mean 'docker:'? Use one of cmd, exec, python, uv, docker"),
    ("shell:echo hi", "unknown run kind 'shell'; did you mean 'cmd:'?"),
    ("pyhton:print()", "unknown run kind 'pyhton'; did you mean 'python:'?"),
    ("podman:alpine", "unknown run kind 'podman'; did you mean 'docker:'?"),
    ("uv:", "nothing to run after 'uv:'; e.g. uv:scripts/report.py"),
    ("  ", "empty command"),
    ('exec:echo "hi', "(no closing quotation); check its quotes"),
    ("docker:-- echo hi", "no image before '--'; e.g. docker:busybox -- echo hello"),
])
def test_parse_bad_kinds(given: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_run(given)


# -- the canonical text a Job carries (and the store keeps) -> RunSpec ------------------------

@pytest.mark.parametrize(("text", "kind", "target"), [
    ("cmd:echo hi", RunKind.CMD, "echo hi"),
    ("exec:/bin/true", RunKind.EXEC, "/bin/true"),
    ("python:import sys\nprint(sys.version)", RunKind.PYTHON, "import sys\nprint(sys.version)"),
    ("uv:report.py", RunKind.UV, "report.py"),
    ("docker:busybox -- sh -c 'a:b'", RunKind.DOCKER, "busybox -- sh -c 'a:b'"),
    ("cmd:echo a:b", RunKind.CMD, "echo a:b"),
    ("echo hi", RunKind.CMD, "echo hi"),  # no kind: a shell command (as the launcher table always did)
    ("dockr:busybox", RunKind.CMD, "dockr:busybox"),
])
def test_read_stored_text(text: str, kind: RunKind, target: str) -> None:
    assert RunSpec.read(text) == RunSpec(kind, target)


@pytest.mark.parametrize(("target", "image", "command"), [
    ("busybox", "busybox", []),
    ("busybox echo hi", "busybox", ["echo", "hi"]),
    ("busybox -- sh -c 'echo hi; exit 3'", "busybox", ["sh", "-c", "echo hi; exit 3"]),
    ("localhost/busybox:1.36 -- -- x", "localhost/busybox:1.36", ["--", "x"]),
])
def test_docker_target(target: str, image: str, command: list[str]) -> None:
    assert RunSpec(RunKind.DOCKER, target).container() == (image, command)


@pytest.mark.parametrize("target", ["", "-- echo hi"])
def test_docker_target_without_an_image(target: str) -> None:
    with pytest.raises(ValueError, match="docker: needs an image, e.g. docker:busybox -- echo hello"):
        RunSpec(RunKind.DOCKER, target).container()


@pytest.mark.parametrize("kind", list(RunKind))
def test_each_kind_has_its_launcher(kind: RunKind) -> None:
    assert launcher_for(kind).kind is kind


def test_jobs_and_steps_carry_their_run_parsed() -> None:
    job = Job(name="j", when="once", steps=(Step("a", "exec:/bin/true"), Step("b", "docker:alpine -- echo")))
    assert job.run_spec is None
    assert job.run_specs == (RunSpec(RunKind.EXEC, "/bin/true"), RunSpec(RunKind.DOCKER, "alpine -- echo"))
    one = Job(name="j", when="once", run="uv:x.py")
    assert one.run_specs == (RunSpec(RunKind.UV, "x.py"),)
    assert "run_spec" not in one.to_dict() and "run_spec" not in one.definition()
    assert "run_spec" not in repr(one)


# -- stored definitions do not change (computed on main before RunSpec, issue 13) -----------

SAMPLE = """\
namespace: sample
defaults:
  timeout: 10m
  retries: 2
jobs:
  - name: hello
    when: every 5m
    run: echo hello
  - name: inline
    when: "0 3 * * *"
    run: |
      python:
        import sys
        print(sys.version)
    overlap: queue
    catch_up: all
    retry_on: [failed, killed]
  - name: report
    when: "@hourly"
    run: uv:scripts/report.py --day 1
    env: {A: "1"}
  - name: box
    when: "@daily"
    run: docker:busybox -- sh -c 'echo hi'
    volumes: ["./data:/data:ro"]
    memory: 512m
    pull: never
  - name: steps
    when: every 1h
    steps:
      - name: one
        run: exec:/bin/true
      - name: two
        run: cmd:false
        continue_on_error: true
      - name: three
        if: failure
        run: echo oops
      - name: four
        if: always
        run: docker:alpine -- echo bye
    mailto: ops@example.com
"""

FINGERPRINTS = {
    "hello": "9a7fad3acb6e238b",
    "inline": "4ef3164267f67d75",
    "report": "00d3145baeae0350",
    "box": "dc2ebdbd7bebc3fe",
    "steps": "92e598d92a6cd6f1",
}

STEPS_DEFINITION = (
    '{"catch_up":"latest","cpus":null,"cwd":null,"description":"","docker_cli":null,"enabled":true,"env":{},'
    '"env_file":null,"history_keep_age":null,"history_keep_runs":null,"jitter":0.0,"kill_grace":10.0,'
    '"log_max":10485760,"mailto":["ops@example.com"],"max_concurrent":null,"memory":null,"misfire_grace":60.0,'
    '"name":"steps","network":null,"on_failure":[],"on_retry":[],"on_success":[],"overlap":"skip","ping":null,'
    '"pull":"missing","retries":2,"retry_backoff":true,"retry_delay":30.0,"retry_delay_max":3600.0,'
    '"retry_on":["failed","timed-out","lost"],"run":null,"steps":[{"continue_on_error":false,"if_":"success",'
    '"name":"one","run":"exec:/bin/true"},{"continue_on_error":true,"if_":"success","name":"two",'
    '"run":"cmd:false"},{"continue_on_error":false,"if_":"failure","name":"three","run":"cmd:echo oops"},'
    '{"continue_on_error":false,"if_":"always","name":"four","run":"docker:alpine -- echo bye"}],'
    '"timeout":600.0,"timezone":null,"volumes":[],"when":"every 1h"}'
)


def test_fingerprints_of_a_stored_timetable_are_unchanged() -> None:
    jobs = load_timetable(SAMPLE, "sample.yaml", base_dir=Path("/srv/app")).jobs
    assert {job.name: job.fingerprint() for job in jobs} == FINGERPRINTS
    assert jobs[-1].definition() == STEPS_DEFINITION
    for job in jobs:  # read back from the store: the same job, the same fingerprint
        stored = Job.from_dict(json.loads(job.definition()))
        assert stored == job and stored.fingerprint() == job.fingerprint()
        assert stored.run_specs == job.run_specs
