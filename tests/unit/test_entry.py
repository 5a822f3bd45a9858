"""The console script's one-shot path: which command lines skip typer."""

from __future__ import annotations

import re

import pytest

from supertask.entry import one_shot_args


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["run", "--", "cmd:echo", "hi"], ({}, ["cmd:echo", "hi"])),
        (["run", "--name", "n", "--ns=x", "--", "cmd:true"], ({"name": "n", "namespace": "x"}, ["cmd:true"])),
        (["run", "--when", "once", "--log-level", "info", "--", "exec:true"],
         ({"when": "once", "log_level": "info"}, ["exec:true"])),
        (["run", "--", "cmd:true", "--name", "x"], ({}, ["cmd:true", "--name", "x"])),  # after --: the command's
    ],
)
def test_one_shot_command_lines(argv: list[str], expected: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SUPERTASK_NAMESPACE", "SUPERTASK_LOG_FORMAT", "SUPERTASK_LOG_LEVEL", "SUPERTASK_WHEN",
                 "SUPERTASK_FILE", "SUPERTASK_GRACE"):
        monkeypatch.delenv(name, raising=False)
    assert one_shot_args(argv) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["run"],  # a timetable
        ["run", "--"],  # nothing after --: typer decides
        ["run", "--file", "t.yaml", "--", "cmd:true"],  # not a one-shot option
        ["run", "--when", "@daily", "--", "cmd:true"],  # scheduled: stays in the foreground
        ["run", "--log-level", "loud", "--", "cmd:true"],  # typer reports the bad value
        ["run", "--name", "--", "cmd:true"],  # --name without a value
        ["run", "--name", "a", "--name", "b", "--", "cmd:true"],
        ["history", "--", "x"],
        ["run", "--help", "--", "cmd:true"],
    ],
)
def test_everything_else_goes_through_typer(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPERTASK_WHEN", raising=False)
    assert one_shot_args(argv) is None


def test_scheduler_settings_in_the_environment_go_through_typer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERTASK_GRACE", "bogus")  # typer checks it, as for any run
    assert one_shot_args(["run", "--", "cmd:true"]) is None
    monkeypatch.delenv("SUPERTASK_GRACE")
    monkeypatch.setenv("SUPERTASK_WHEN", "@hourly")
    assert one_shot_args(["run", "--", "cmd:true"]) is None


@pytest.mark.parametrize("run", ["cmd:echo hi", "echo plain", "exec:printf %s-%s a b", "python:print(1)",
                                 "uv:job.py --since 1h", "docker:busybox -- echo hi", "http://x.example/y"])
@pytest.mark.parametrize("when", [None, "@daily", "every 5m"])
def test_a_one_liner_is_the_job_its_timetable_entry_would_be(run: str, when: str | None) -> None:
    """commands._one_liner skips YAML; the job (and so its stored definition) is the same."""
    import json

    from supertask.cli.commands import _one_liner
    from supertask.timetable.load import load_timetable

    entry = {"name": "n", "when": when or "once", "run": run}
    expected = load_timetable(json.dumps({"jobs": [entry]}), "<test>").jobs[0]
    job = _one_liner(run, when, "n")
    assert job == expected and job.definition() == expected.definition()


@pytest.mark.parametrize(("run", "name", "says"), [
    ("dockr:busybox", "n", "did you mean 'docker:'"),
    ("exec:echo 'open", "n", "check its quotes"),
    ("cmd:true", "bad name!", "--name 'bad name!'"),
    ("cmd:", "n", "nothing to run after 'cmd:'"),
])
def test_bad_one_liners_are_usage_errors(run: str, name: str, says: str) -> None:
    from supertask.cli.commands import _one_liner
    from supertask.errors import UsageError

    with pytest.raises(UsageError, match=re.escape(says)):
        _one_liner(run, None, name)


def test_host_and_user_are_what_socket_and_getpass_say(monkeypatch: pytest.MonkeyPatch) -> None:
    """settings.host_name / current_user stand in for socket.gethostname() and
    getpass.getuser() (the one-shot path imports neither)."""
    import getpass
    import socket

    from supertask.settings import current_user, host_name

    assert host_name() == socket.gethostname()
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)
    assert current_user() == getpass.getuser()  # from the password database
    monkeypatch.setenv("USER", "u1")
    monkeypatch.setenv("LNAME", "u2")
    assert current_user() == getpass.getuser() == "u1"
    monkeypatch.setenv("LOGNAME", "u0")
    assert current_user() == getpass.getuser() == "u0"


@pytest.mark.parametrize("data", [b"", b"abc", b"host|user", bytes(range(256)) * 100])
def test_sha256_hex_is_hashlibs(data: bytes) -> None:
    import hashlib

    from supertask.model import sha256_hex

    assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


# -- supertask --help without typer ---------------------------------------------------------------


def test_the_help_snapshot_is_what_typer_prints() -> None:
    """supertask.cli.helptext.TOP is printed for `supertask --help`; it must be typer's text."""
    from supertask.cli.helptext import TOP, typer_help

    code, out, err = typer_help()
    assert (code, err) == (0, "")
    assert out == TOP, "supertask --help changed: run `make help-snapshot` and commit supertask/cli/helptext.py"
    assert typer_help(columns=200)[1] == TOP  # click caps help at 80 columns: any wider terminal is the same


@pytest.mark.parametrize(("argv0", "env", "expected"), [
    ("/usr/bin/supertask", {}, True),
    ("/usr/bin/supertask", {"COLUMNS": "80"}, True),
    ("/usr/bin/supertask", {"COLUMNS": "250"}, True),
    ("/usr/bin/supertask", {"COLUMNS": "79"}, False),  # click wraps narrower
    ("/usr/bin/supertask", {"COLUMNS": "x"}, True),  # not a number: the pipe's 80, as shutil reads it
    ("/usr/bin/st", {}, False),  # typer names the program after argv[0]
    ("/usr/bin/supertask", {"_SUPERTASK_COMPLETE": "bash_complete"}, False),  # shell completion
])
def test_help_is_the_snapshot_only_where_typer_prints_it(argv0: str, env: dict[str, str], expected: bool,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from supertask.entry import _help_is_the_snapshot

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("_SUPERTASK_COMPLETE", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "argv", [argv0, "--help"])
    monkeypatch.setattr(sys.modules["__main__"], "__package__", None, raising=False)
    monkeypatch.setattr(sys, "__stdout__", None)  # no terminal: shutil's fallback of 80 columns
    assert _help_is_the_snapshot() is expected


def test_python_dash_m_is_another_program_name(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from supertask.entry import _help_is_the_snapshot

    monkeypatch.setattr(sys, "argv", ["/x/supertask/__main__.py", "--help"])
    monkeypatch.setattr(sys.modules["__main__"], "__package__", "supertask", raising=False)
    assert _help_is_the_snapshot() is False
