"""Timetable YAML -> model: strings in, data (or located problems) out."""

from __future__ import annotations

import re
import textwrap
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pytest

from supertask.errors import Problem, ScheduleError, TimetableError, UsageError
from supertask.model import Job, Overlap, Step
from supertask.schedules import trigger as schedules
from supertask.timetable.load import (
    default_namespace,
    find_timetable,
    load_timetable,
    normalise_run,
    read_timetable,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


# --- a stand-in for schedules.parse_when / resolve_timezone (owned elsewhere) -------------

_FIELD = r"[0-9A-Za-z*/,?#-]+"


def fake_parse_when(when: str, timezone=None):
    """Enough of the real grammar to tell good from bad in these tests."""
    if re.fullmatch(rf"{_FIELD}(\s+{_FIELD}){{4,6}}", when):
        return object()
    if when in ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"):
        return object()
    if when in ("once", "now", "@reboot") or re.fullmatch(r"(every|@every) \d+(s|m|h|d)", when):
        return object()
    if m := re.fullmatch(r"every (\d+) ?(sec|secs|min|mins|minutes|hours?)", when):
        raise ScheduleError(
            when, f"unknown unit {m.group(2)!r}", f"'every {m.group(1)}{m.group(2)[0]}'"
        )
    try:
        datetime.fromisoformat(when)
        return object()
    except ValueError:
        raise ScheduleError(
            when, "expected cron, @daily-style, 'every 5m' or a date-time"
        ) from None


def fake_resolve_timezone(name):
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


def _real_schedules() -> bool:
    try:
        schedules.parse_when("@daily", "UTC")
        schedules.resolve_timezone("UTC")
        return True
    except Exception:
        return False


# Examples are checked with the real schedules module once it has landed.
REAL_SCHEDULES_TESTS = {"test_examples_load", "test_invalid_example_reports_every_problem"}


@pytest.fixture(autouse=True)
def fake_schedules(monkeypatch, request):
    if request.function.__name__ in REAL_SCHEDULES_TESTS and _real_schedules():
        return
    monkeypatch.setattr(schedules, "parse_when", fake_parse_when)
    monkeypatch.setattr(schedules, "resolve_timezone", fake_resolve_timezone)


def load(text: str, **kw):
    return load_timetable(textwrap.dedent(text), "timetable.yaml", **kw)


def problems(text: str, **kw) -> list[Problem]:
    with pytest.raises(TimetableError) as info:
        load(text, **kw)
    return list(info.value.problems)


# --- the native shape ---------------------------------------------------------------------


def test_full_job_is_normalised(tmp_path):
    (tmp_path / "app.env").write_text("A=1\n")
    tt = load(
        """
        namespace: backups
        jobs:
          - name: nightly-dump
            when: "0 3 * * *"
            run: "pg_dump app > /var/backups/app.sql"
            description: Dump the app database
            enabled: false
            timeout: 30m
            retries: 2
            retry_delay: 0.5s
            retry_backoff: false
            overlap: queue
            misfire_grace: 5m
            jitter: 10
            timezone: Europe/Berlin
            cwd: srv
            env: {PGHOST: localhost, PORT: 0800, DEBUG: yes, EMPTY: }
            env_file: app.env
        """,
        base_dir=tmp_path,
    )
    assert tt.namespace == "backups"
    assert tt.jobs == (
        Job(
            name="nightly-dump",
            when="0 3 * * *",
            run="cmd:pg_dump app > /var/backups/app.sql",
            description="Dump the app database",
            enabled=False,
            timeout=1800.0,
            retries=2,
            retry_delay=0.5,
            retry_backoff=False,
            overlap=Overlap.QUEUE,
            misfire_grace=300.0,
            jitter=10.0,
            timezone="Europe/Berlin",
            cwd=str(tmp_path / "srv"),
            env={"PGHOST": "localhost", "PORT": "0800", "DEBUG": "yes", "EMPTY": ""},
            env_file=str(tmp_path / "app.env"),
        ),
    )
    assert tt.jobs[0].source_line == 4


def test_minimal_job_gets_model_defaults():
    (job,) = load('jobs:\n  - {name: a, when: "@daily", run: "cmd:true"}\n').jobs
    assert job == Job(name="a", when="@daily", run="cmd:true")
    assert job.timezone is None and job.timeout is None and job.overlap is Overlap.SKIP


def test_timeout_zero_or_null_is_none_and_overrides_a_default():
    tt = load(
        """
        defaults: {timeout: 1h}
        jobs:
          - {name: a, when: "@daily", run: "cmd:true", timeout: 0}
          - {name: b, when: "@daily", run: "cmd:true", timeout: 0s}
          - {name: c, when: "@daily", run: "cmd:true", timeout: null}
          - {name: d, when: "@daily", run: "cmd:true"}
        """
    )
    assert [j.timeout for j in tt.jobs] == [None, None, None, 3600.0]


def test_defaults_apply_and_jobs_override():
    tt = load(
        """
        defaults:
          timezone: Europe/Berlin
          timeout: 1h
          retries: 1
          env: {A: "1", B: "2"}
        jobs:
          - {name: a, when: "@daily", run: "cmd:true"}
          - name: b
            when: "@hourly"
            run: "cmd:false"
            timeout: 5m
            timezone: UTC
            env: {B: three}
        """
    )
    a, b = tt.jobs
    assert (a.timezone, a.timeout, a.retries, dict(a.env)) == (
        "Europe/Berlin",
        3600.0,
        1,
        {"A": "1", "B": "2"},
    )
    assert (b.timezone, b.timeout, b.retries, dict(b.env)) == (
        "UTC",
        300.0,
        1,
        {"A": "1", "B": "three"},
    )


def test_default_run_is_replaced_by_job_steps():
    tt = load(
        """
        defaults: {run: "cmd:echo default", when: "@daily"}
        jobs:
          - name: a
          - name: b
            steps: [{run: "cmd:echo b"}]
        """
    )
    assert [(j.when, j.run, j.steps) for j in tt.jobs] == [
        ("@daily", "cmd:echo default", ()),
        ("@daily", None, (Step(name="step-1", run="cmd:echo b"),)),
    ]


def test_steps():
    (job,) = load(
        """
        jobs:
          - name: deploy
            when: "0 4 * * mon"
            steps:
              - name: build
                run: make build
              - name: test
                run: |
                  python:
                    import sys
                    sys.exit(0)
                continue_on_error: true
              - name: notify
                run: "exec:notify-send failed"
                if: failure
        """
    ).jobs
    assert job.run is None
    assert job.steps == (
        Step(name="build", run="cmd:make build"),
        Step(name="test", run="python:import sys\nsys.exit(0)", continue_on_error=True),
        Step(name="notify", run="exec:notify-send failed", if_="failure"),
    )


def test_yaml_anchors_and_merge_keys_work():
    tt = load(
        """
        jobs:
          - &first {name: a, when: "@daily", run: "cmd:true", timeout: 1m}
          - <<: *first
            name: b
        """
    )
    assert [(j.name, j.timeout) for j in tt.jobs] == [("a", 60.0), ("b", 60.0)]


@pytest.mark.parametrize(
    "given, stored",
    [
        ("echo hi", "cmd:echo hi"),
        ("cmd:echo hi", "cmd:echo hi"),
        ("cmd: echo hi", "cmd:echo hi"),
        ("exec:/bin/ls -l", "exec:/bin/ls -l"),
        ("python:\n    print(1)\n    print(2)\n", "python:print(1)\nprint(2)"),
        ("uv:scripts/report.py --day 1", "uv:scripts/report.py --day 1"),
        ("docker:busybox -- echo hi", "docker:busybox -- echo hi"),
        ("FOO=1 make", "cmd:FOO=1 make"),
        ("echo:x", "cmd:echo:x"),  # 'echo' is not like any kind: a command
        ("https://example.com/hook", "cmd:https://example.com/hook"),
        ("cmd:shell:x", "cmd:shell:x"),  # explicit cmd: always wins
    ],
)
def test_run_kinds(given, stored):
    assert normalise_run(given) == stored


@pytest.mark.parametrize(
    "given, message",
    [
        ("dockr:busybox", "unknown run kind 'dockr'; did you mean 'docker:'?"),
        ("shell:echo hi", "unknown run kind 'shell'; did you mean 'cmd:'?"),
        ("sh:echo hi", "unknown run kind 'sh'; did you mean 'cmd:'?"),
        ("pyhton:print()", "unknown run kind 'pyhton'; did you mean 'python:'?"),
        ("podman:alpine", "unknown run kind 'podman'; did you mean 'docker:'?"),
        ("cmd:", "nothing to run after 'cmd:'"),
        ("  ", "empty command"),
        ("docker:busybox -- sh -c 'echo hi", "cannot split 'docker:busybox -- sh -c 'echo hi' into words "
         "(no closing quotation); check its quotes"),
        ('exec:echo "hi', "(no closing quotation); check its quotes"),
        ("uv:'report.py", "(no closing quotation); check its quotes"),
        ("docker:-- echo hi", "no image before '--'; e.g. docker:busybox -- echo hello"),
    ],
)
def test_bad_run_kinds(given, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        normalise_run(given)


# --- the original supertask's shape ---------------------------------------------------------

LEGACY = """\
meta:
  type: supertask-timetable
  version: 1
  namespace: legacy-ns
tasks:
  - meta:
      id: waiter
      name: Example Python reference
      enabled: true
    on:
      schedule:
        - cron: "*/5 * * * * * *"
    steps:
      - name: Invoke example waiter
        uses: python-entrypoint
        run: "supertask.contrib.testing:example_waiter"
        args: [1]
        kwargs: {jitter: 0.42}
      - name: Invoke notifier
        if: false
        uses: python-entrypoint
        run: "supertask.contrib.notify:slack"
  - meta: {id: cleanup, name: Cleanup, description: Drop temporary tables, enabled: false}
    on:
      schedule: [{cron: "0 3 * * *"}, {cron: "0 15 * * *"}]
    steps:
      - {name: clean, uses: python-file, run: "jobs/cleanup.py:run", args: [x], kwargs: {keep: 2}}
      - {name: report, uses: python-file, run: "/opt/report.py", if: "${{ always() }}"}
"""


def test_legacy_shape(tmp_path):
    tt = load_timetable(LEGACY, "legacy.yaml", base_dir=tmp_path)
    assert tt.namespace == "legacy-ns"
    waiter, clean1, clean2 = tt.jobs
    assert (waiter.name, waiter.when, waiter.description, waiter.enabled) == (
        "waiter",
        "*/5 * * * * * *",
        "Example Python reference",
        True,
    )
    (step,) = waiter.steps  # the `if: false` step is left out
    assert step.name == "Invoke example waiter" and step.run.startswith("python:")
    assert "importlib.import_module('supertask.contrib.testing')" in step.run
    assert [(j.name, j.when, j.enabled) for j in (clean1, clean2)] == [
        ("cleanup-1", "0 3 * * *", False),
        ("cleanup-2", "0 15 * * *", False),
    ]
    assert clean1.description == "Drop temporary tables"
    assert clean1.steps == (
        Step(name="clean", run=f"uv:{tmp_path}/jobs/cleanup.py x --keep=2"),
        Step(name="report", run="uv:/opt/report.py", if_="always"),
    )
    assert waiter.source_line == 6


def test_legacy_entrypoint_code_calls_the_function(tmp_path, monkeypatch, capsys):
    (tmp_path / "mymod.py").write_text("def hello(a, b=0):\n    return a + b\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = LEGACY.replace("supertask.contrib.testing:example_waiter", "mymod:hello").replace(
        "{jitter: 0.42}", "{b: 41}"
    )
    code = load_timetable(text).jobs[0].steps[0].run.removeprefix("python:")
    exec(compile(code, "<step>", "exec"), {})
    assert capsys.readouterr().out == "42\n"


def test_legacy_on_key_is_not_a_boolean():
    # YAML 1.1 reads `on` as True; the loader must keep it as the key "on".
    text = 'tasks:\n  - meta: {id: a}\n    on: {schedule: [{cron: "@daily"}]}\n    steps: [{uses: python-file, run: a.py}]\n'
    assert load_timetable(text).jobs[0].when == "@daily"


def test_legacy_problems():
    text = textwrap.dedent(
        """\
        tasks:
          - meta: {id: "bad id", enabeld: true}
            on: {schedule: [{cron: "every 5 mins"}]}
            steps:
              - {uses: python-entrypoin, run: "x:y"}
              - {uses: python-entrypoint, run: "not an entrypoint"}
          - meta: {name: no id}
            on: {}
            steps: []
        """
    )
    got = problems(text)
    assert [(p.line, p.path) for p in got] == [
        (2, "tasks[0].meta.enabeld"),
        (2, "tasks[0].meta.id"),
        (3, "tasks[0].on.schedule[0].cron"),
        (5, "tasks[0].steps[0]"),
        (6, "tasks[0].steps[1]"),
        (7, "tasks[1].meta.id"),
        (8, "tasks[1].on"),
        (9, "tasks[1].steps"),
    ]
    assert "did you mean 'enabled'?" in got[0].message
    assert "try 'every 5m'" in got[2].message
    assert "python-entrypoint or python-file" in got[3].message
    assert "MODULE:FUNCTION" in got[4].message


# --- problems -------------------------------------------------------------------------------

JOB = '  - name: a\n    when: "@daily"\n    run: "cmd:true"\n'


@pytest.mark.parametrize(
    "text, line, path, message",
    [
        ("jobs: [\n", 2, "", "not valid YAML: column 1:"),
        ("jobs:\n  - name: a\n    when: */5 * * * *\n", 3, "", "must be quoted"),
        ("- 1\n- 2\n", 1, "", "expected a timetable (a mapping of key: value), got a list"),
        ("", 1, "", "empty timetable"),
        ("namespace: x\n", None, "", "no 'jobs:' list"),
        ("jobs: []\n", 1, "jobs", "got an empty list"),
        ("jobs:\n", 1, "jobs", "got nothing"),
        ("job:\n" + JOB, 1, "job", "unknown key 'job'; did you mean 'jobs'?"),
        ("defaults: {retrys: 2}\njobs:\n" + JOB, 1, "defaults.retrys", "did you mean 'retries'?"),
        ("defaults: {name: x}\njobs:\n" + JOB, 1, "defaults.name", "a name cannot be a default"),
        (
            "jobs:\n" + JOB + "    shedule: x\n",
            5,
            "jobs[0].shedule",
            "unknown key 'shedule'; did you mean 'when'?",
        ),
        ("jobs:\n" + JOB + "    command: x\n", 5, "jobs[0].command", "did you mean 'run'?"),
        (
            "jobs:\n" + JOB + "    timeout_seconds: 5\n",
            5,
            "jobs[0].timeout_seconds",
            "did you mean 'timeout'?",
        ),
        ("jobs:\n" + JOB + "    tz: UTC\n", 5, "jobs[0].tz", "did you mean 'timezone'?"),
        (
            "jobs:\n" + JOB + "    zzzzzz: 1\n",
            5,
            "jobs[0].zzzzzz",
            "unknown key 'zzzzzz'; use one of name, when",
        ),
        (
            "jobs:\n" + JOB + "    when: '@hourly'\n",
            5,
            "jobs[0].when",
            "given twice (first on line 3)",
        ),
        ("jobs:\n  - {when: '@daily', run: x}\n", 2, "jobs[0]", "missing 'name'"),
        ("jobs:\n  - {name: a, run: x}\n", 2, "jobs[0]", "missing 'when'"),
        ("jobs:\n  - {name: a, when: '@daily'}\n", 2, "jobs[0]", "missing 'run'"),
        (
            "jobs:\n  - {name: 'a b', when: '@daily', run: x}\n",
            2,
            "jobs[0].name",
            "'a b' is not a valid name: use letters, digits, '_', '.' and '-', not starting with '.', "
            "at most 128 characters, e.g. 'a-b'",
        ),
        ("namespace: a/b\njobs:\n" + JOB, 1, "namespace", "'a/b' is not a valid namespace"),
        # names become paths (logs/NAMESPACE/JOB/): never '.', '..' or hidden
        ("namespace: '..'\njobs:\n" + JOB, 1, "namespace", "'..' is not a valid namespace"),
        ("namespace: .\njobs:\n" + JOB, 1, "namespace", "'.' is not a valid namespace"),
        ("jobs:\n  - {name: '..', when: '@daily', run: x}\n", 2, "jobs[0].name", "'..' is not a valid name"),
        ("jobs:\n  - {name: " + "a" * 129 + ", when: '@daily', run: x}\n", 2, "jobs[0].name",
         "at most 128 characters"),
        # a NUL byte cannot be in an environment: every run would fail
        ("jobs:\n  - {name: a, when: '@daily', run: x, env: {A: \"x\\0y\"}}\n", 2, "jobs[0].env.A",
         "contains a NUL byte"),
        # deep nesting would crash libyaml's composer (SIGSEGV at 25,000 levels)
        ("jobs:\n  - " + "[" * 25000 + "]" * 25000 + "\n", 2, "", "nested deeper than 100 levels"),
        ("jobs:\n" + "".join(" " * i + "- \n" for i in range(2, 300)), 101, "", "nested deeper than 100 levels"),
        (
            "jobs:\n  - {name: a, when: every 5 mins, run: x}\n",
            2,
            "jobs[0].when",
            "'every 5 mins' is not a schedule: unknown unit 'mins'; try 'every 5m'",
        ),
        ("jobs:\n  - {name: a, when: '', run: x}\n", 2, "jobs[0].when", "empty schedule"),
        (
            "jobs:\n  - {name: a, when: [1], run: x}\n",
            2,
            "jobs[0].when",
            "expected a schedule such as",
        ),
        (
            "jobs:\n" + JOB + "    timeout: 5 mins\n",
            5,
            "jobs[0].timeout",
            "'5 mins' is not a duration; use e.g. 90, 90s",
        ),
        ("jobs:\n" + JOB + "    jitter: -3\n", 5, "jobs[0].jitter", "-3 is negative"),
        (
            "jobs:\n" + JOB + "    retry_delay: true\n",
            5,
            "jobs[0].retry_delay",
            "True is not a duration",
        ),
        (
            "jobs:\n" + JOB + "    retries: -1\n",
            5,
            "jobs[0].retries",
            "-1 is negative; retries is the number of extra attempts",
        ),
        ("jobs:\n" + JOB + "    retries: two\n", 5, "jobs[0].retries", "expected a whole number"),
        (
            "jobs:\n" + JOB + "    overlap: skp\n",
            5,
            "jobs[0].overlap",
            "'skp' is not an overlap policy: use skip, queue or allow; did you mean 'skip'?",
        ),
        (
            "jobs:\n" + JOB + "    env: [A=1]\n",
            5,
            "jobs[0].env",
            "expected environment variables (a mapping of key: value), got a list",
        ),
        (
            "jobs:\n" + JOB + "    env: {A: {b: 1}}\n",
            5,
            "jobs[0].env.A",
            "expected a text value, got a mapping",
        ),
        (
            "jobs:\n" + JOB + "    env: {1A: x}\n",
            5,
            "jobs[0].env.1A",
            "'1A' is not a variable name",
        ),
        (
            "jobs:\n" + JOB + "    enabled: maybe\n",
            5,
            "jobs[0].enabled",
            "expected true or false, got the text 'maybe'",
        ),
        (
            "jobs:\n" + JOB + "    enabled: 1\n",
            5,
            "jobs[0].enabled",
            "expected true or false, got 1",
        ),
        (
            "jobs:\n  - {name: a, when: '@daily', run: 'dockr:busybox'}\n",
            2,
            "jobs[0].run",
            "unknown run kind 'dockr'; did you mean 'docker:'? Use one of cmd, exec, python, uv, docker",
        ),
        (
            "jobs:\n" + JOB + "    timezone: Mars/Olympus\n",
            5,
            "jobs[0].timezone",
            "unknown time zone 'Mars/Olympus'",
        ),
        ("jobs:\n" + JOB + "    env_file: missing.env\n", 5, "jobs[0].env_file", "does not exist"),
        (
            "jobs:\n" + JOB + "    steps: [{run: x}]\n",
            5,
            "jobs[0].steps",
            "give either run: or steps:, not both",
        ),
        ("jobs:\n  - {name: a, when: '@daily', steps: []}\n", 2, "jobs[0].steps", "no steps"),
        (
            "jobs:\n  - {name: a, when: '@daily', steps: [{name: s}]}\n",
            2,
            "jobs[0].steps[0]",
            "missing 'run'",
        ),
        (
            "jobs:\n  - {name: a, when: '@daily', steps: [{run: x, if: allways}]}\n",
            2,
            "jobs[0].steps[0].if",
            "did you mean 'always'?",
        ),
        (
            "jobs:\n  - {name: a, when: '@daily', steps: [{run: x, command: y}]}\n",
            2,
            "jobs[0].steps[0].command",
            "did you mean 'run'?",
        ),
        ("jobs:\n  - 5\n", 2, "jobs[0]", "expected a job (a mapping of key: value), got 5"),
        ("jobs:\n" + JOB + JOB, 5, "jobs[1].name", "job name 'a' is used twice (lines 2 and 5"),
        ("tasks: []\n", 1, "tasks", "got an empty list"),
        ("jobs:\n" + JOB + "tasks: []\n", 5, "tasks", "belong to the original supertask's format"),
        (
            "jobs:\n" + JOB + "    memory: 512m\n",
            5,
            "jobs[0].memory",
            "memory applies to docker: runs only and this job runs cmd:; remove it, or run the job as docker:",
        ),
    ],
)
def test_problem(text, line, path, message):
    got = problems(text)
    assert len(got) == 1, got
    (p,) = got
    assert (p.file, p.line, p.path) == ("timetable.yaml", line, path)
    assert message in p.message


BOX = '  - name: a\n    when: "@daily"\n    run: "docker:busybox -- true"\n'


@pytest.mark.parametrize(
    "extra, path, message",
    [
        ("    retry_on: [failed, faild, lots]\n", "jobs[0].retry_on", "'faild', 'lots' cannot retry; use a list of"),
        ("    volumes: ['/a:/b:ro:extra']\n", "jobs[0].volumes", "'/a:/b:ro:extra' is not a volume; use HOST_PATH"),
        ("    volumes: [':/b']\n", "jobs[0].volumes", "':/b' is not a volume"),
        ("    volumes: ['/a:/b:ro,wat']\n", "jobs[0].volumes", "unknown volume option 'wat'; use HOST_PATH"),
        ("    memory: 64\n", "jobs[0].memory", "under Docker's least limit of 6m (a number alone is bytes; "
                                                 "for 64 MiB write 64m)"),
        ("    memory: 512k\n", "jobs[0].memory", "'512k' is under Docker's least limit of 6m"),
    ],
)
def test_container_problem(extra, path, message):
    got = problems("jobs:\n" + BOX + extra)
    assert [(p.line, p.path) for p in got] == [(5, path)], got
    assert message in got[0].message


def test_volume_options_and_memory_limits_that_docker_takes():
    tt = load("jobs:\n" + BOX + "    volumes: ['/a:/b', 'data:/d:ro', './x:/x:rw,Z']\n    memory: 6m\n")
    assert tt.jobs[0].volumes == ("/a:/b", "data:/d:ro", "./x:/x:rw,Z") and tt.jobs[0].memory == "6m"


def test_container_settings_from_defaults_or_on_a_docker_step_are_fine():
    tt = load(
        """
        defaults: {memory: 256m, pull: never}
        jobs:
          - {name: a, when: "@daily", run: "cmd:true"}
          - name: b
            when: "@daily"
            volumes: ["/srv:/srv"]
            steps:
              - {name: prep, run: "cmd:true"}
              - {name: box, run: "docker:busybox -- true"}
        """
    )
    assert [(j.memory, j.volumes) for j in tt.jobs] == [("256m", ()), ("256m", ("/srv:/srv",))]


def test_misspelt_key_is_not_also_reported_missing():
    got = problems("jobs:\n  - {name: a, schedule: '@daily', command: 'cmd:true'}\n")
    assert [(p.path, p.message) for p in got] == [
        ("jobs[0].schedule", "unknown key 'schedule'; did you mean 'when'?"),
        ("jobs[0].command", "unknown key 'command'; did you mean 'run'?"),
    ]


def test_every_problem_is_reported_at_once():
    text = """\
        namespace: ok
        defaults:
          timout: 1h
        jobs:
          - name: backup
            when: every 5 mins
            run: "dockr:busybox"
          - name: report
            when: "@daily"
            run: "cmd:make report"
            retries: -2
            overlap: sometimes
          - name: backup
            when: "@hourly"
            run: "cmd:true"
            timezone: Europe/Berln
        """
    with pytest.raises(TimetableError) as info:
        load(text)
    lines = str(info.value).splitlines()
    assert lines == [
        "7 problems in the timetable:",
        "  timetable.yaml:3: defaults.timout: unknown key 'timout'; did you mean 'timeout'?",
        "  timetable.yaml:6: jobs[0].when: 'every 5 mins' is not a schedule: unknown unit 'mins'; try 'every 5m'",
        "  timetable.yaml:7: jobs[0].run: unknown run kind 'dockr'; did you mean 'docker:'? Use one of cmd, exec,"
        " python, uv, docker (write 'cmd:dockr:busybox' to run this text in a shell)",
        "  timetable.yaml:11: jobs[1].retries: -2 is negative; retries is the number of extra attempts, 0 or more",
        "  timetable.yaml:12: jobs[1].overlap: 'sometimes' is not an overlap policy: use skip, queue or allow",
        "  timetable.yaml:13: jobs[2].name: job name 'backup' is used twice (lines 5 and 13, jobs[0] and"
        " jobs[2]); names must be unique",
        "  timetable.yaml:16: jobs[2].timezone: unknown time zone 'Europe/Berln'; use an IANA name such as"
        " Europe/Berlin",
    ]


# --- files ----------------------------------------------------------------------------------


def test_read_timetable(tmp_path, monkeypatch):
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "app.env").write_text("X=1\n")
    (folder / "t.yaml").write_text(JOB.join(["jobs:\n", "    env_file: app.env\n    cwd: work\n"]))
    monkeypatch.chdir(tmp_path)
    tt = read_timetable("etc/t.yaml")
    assert tt.source == str(folder / "t.yaml")
    assert tt.jobs[0].env_file == str(folder / "app.env")
    assert tt.jobs[0].cwd == str(folder / "work")


def test_read_timetable_problems_name_the_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.yaml").write_text("jobs: []\n")
    with pytest.raises(TimetableError, match=r"t\.yaml:1: jobs:"):
        read_timetable("t.yaml")


@pytest.mark.parametrize(
    "make, message", [(lambda p: None, "no such file"), (Path.mkdir, "is a folder")]
)
def test_read_timetable_unreadable(tmp_path, make, message):
    path = tmp_path / "missing.yaml"
    make(path)
    with pytest.raises(TimetableError) as info:
        read_timetable(path)
    (p,) = info.value.problems
    assert (p.file, p.line) == (str(path), None) and message in p.message


def test_read_timetable_binary(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_bytes(b"\xff\xfe\x00jobs")
    with pytest.raises(TimetableError, match="not UTF-8"):
        read_timetable(path)


@pytest.mark.parametrize(
    "present, found",
    [
        (["supertask.yaml", "timetable.yaml"], "supertask.yaml"),
        (["timetable.yaml"], "timetable.yaml"),
        (["supertask.yaml"], "supertask.yaml"),
    ],
)
def test_find_timetable(tmp_path, present, found):
    for name in present:
        (tmp_path / name).write_text("jobs: []\n")
    assert find_timetable(tmp_path) == tmp_path / found


def test_find_timetable_none(tmp_path, monkeypatch):
    (tmp_path / "supertask.yaml").mkdir()  # a folder is not a timetable
    with pytest.raises(
        UsageError, match=r"no timetable: .*create supertask.yaml \(`supertask init`.*--file"
    ):
        find_timetable(tmp_path)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "timetable.yaml").write_text("")
    assert find_timetable() == tmp_path / "timetable.yaml"


def test_default_namespace():
    ns = default_namespace("/srv/app/supertask.yaml", "web1", "ops")
    assert re.fullmatch(r"supertask-[0-9a-f]{8}", ns)
    assert ns == default_namespace("/srv/app/supertask.yaml", "web1", "ops") == "supertask-f702f624"
    others = {
        default_namespace("/srv/other/supertask.yaml", "web1", "ops"),
        default_namespace("/srv/app/supertask.yaml", "web2", "ops"),
        default_namespace("/srv/app/supertask.yaml", "web1", "root"),
    }
    assert ns not in others and len(others) == 3
    assert default_namespace(None, "web1", "ops").startswith("cli-")
    assert default_namespace("/x/my jobs.yaml", "h", "u").startswith("my-jobs-")


# --- examples -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    sorted(p for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("invalid")),
    ids=lambda p: p.name,
)
def test_examples_load(path):
    tt = read_timetable(path)
    assert tt.jobs and tt.source == str(path)


def test_invalid_example_reports_every_problem():
    with pytest.raises(TimetableError) as info:
        read_timetable(EXAMPLES / "invalid.yaml")
    got = info.value.problems
    assert [(p.line, p.path) for p in got] == [(line, path) for line, path, _ in INVALID_PROBLEMS]
    for problem, (_, _, text) in zip(got, INVALID_PROBLEMS, strict=True):
        assert text in problem.message


INVALID_PROBLEMS = [
    (3, "namespace", "'my backups' is not a valid namespace"),
    (5, "defaults.timout", "did you mean 'timeout'?"),
    (8, "jobs[0].when", "'every 5 mins' is not a schedule"),
    (9, "jobs[0].run", "unknown run kind 'dockr'; did you mean 'docker:'?"),
    (10, "jobs[0].retries", "-1 is negative"),
    (12, "jobs[1].schedule", "unknown key 'schedule'; did you mean 'when'?"),
    (14, "jobs[1].overlap", "'never' is not an overlap policy: use skip, queue or allow"),
    (16, "jobs[1].env.DEBUG", "expected a text value, got a list"),
    (17, "jobs[2].name", "job name 'nightly-dump' is used twice (lines 7 and 17"),
    (20, "jobs[2].timezone", "Europe/Berln"),
    (21, "jobs[2].enabled", "expected true or false, got the text 'maybe'"),
]
