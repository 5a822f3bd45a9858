"""Settings defined once: every option the command line, the one-shot path, `Settings`
and the executor know takes its default and help from supertask.settings.DEFAULTS,
and every HOST:PORT option is read by one parser."""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path
from typing import Any

import pytest
import typer.main

from supertask import entry, settings
from supertask.cli.main import app
from supertask.errors import UsageError
from supertask.settings import (
    DEFAULTS,
    Settings,
    cli_default,
    default,
    env_name,
    help_for,
    parse_hostport,
)


def _options() -> list[tuple[str, str, Any]]:
    """(command, option, parameter) of every option read from a SUPERTASK_* variable."""
    found = []

    def walk(command: Any, path: str) -> None:
        for param in command.params:
            if getattr(param, "param_type_name", None) == "option" and param.envvar:
                envvars = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
                for option in DEFAULTS:
                    if env_name(option) in envvars:
                        found.append((path, option, param))
        if hasattr(command, "commands"):  # a group (typer vendors its own click)
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return found


OPTIONS = _options()


def test_every_table_option_is_on_the_command_line():
    run = {option: param for command, option, param in OPTIONS if command == "run"}
    assert all(param.help == help_for(option) for option, param in run.items())
    assert {option for _, option, _ in OPTIONS} == set(DEFAULTS)
    assert len(OPTIONS) > len(DEFAULTS)  # --store, --home, --ns... on many commands


@pytest.mark.parametrize("command, option, param", OPTIONS, ids=[f"{c}:{o}" for c, o, _ in OPTIONS])
def test_typer_option_default_comes_from_the_table(command, option, param):
    assert param.default == cli_default(option), f"`supertask {command}` --{option}: default drifted from settings"
    assert param.show_envvar
    assert param.help  # the table's, or what the option means for this command (history --ns)


SETTINGS_FIELDS = {f.name: f for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("option", [o for o in DEFAULTS if o in SETTINGS_FIELDS and o not in ("home", "log_level")])
def test_settings_defaults_come_from_the_table(option):
    assert SETTINGS_FIELDS[option].default == default(option)


@pytest.mark.parametrize(
    "option, cli",
    [("grace", "30s"), ("max_workers", 256), ("watch", True), ("log_format", "auto"), ("max_concurrent", None)],
)
def test_cli_default_is_the_settings_value_as_the_command_line_takes_it(option, cli):
    from supertask.units import parse_duration

    assert cli_default(option) == cli
    if option in settings.DURATIONS:
        assert parse_duration(cli_default(option)) == default(option)


def test_log_level_defaults():
    assert SETTINGS_FIELDS["log_level"].default == settings.LOG_LEVEL
    assert {settings.LOG_LEVEL, settings.ONE_SHOT_LOG_LEVEL} <= set(settings.LOG_LEVELS)
    assert default("log_format") in settings.LOG_FORMATS


def test_the_one_shot_path_builds_the_same_settings_as_typer(monkeypatch, tmp_path: Path):
    built: list[Settings] = []
    from supertask.cli import commands

    monkeypatch.setattr(commands, "run", lambda s, **kw: built.append(s) or 0)
    monkeypatch.delenv("SUPERTASK_LOG_LEVEL", raising=False)
    monkeypatch.delenv("SUPERTASK_LOG_FORMAT", raising=False)
    monkeypatch.setattr("supertask.log.configure", lambda *a, **k: None)
    assert entry._run_once({"home": str(tmp_path)}, ["cmd:true"]) == 0
    with pytest.raises(SystemExit):
        app(["run", "--home", str(tmp_path), "--", "cmd:true"], standalone_mode=True)
    fast, typed = built
    assert fast == typed
    assert fast.log_level == settings.ONE_SHOT_LOG_LEVEL
    assert (fast.grace, fast.max_workers, fast.watch) == (default("grace"), default("max_workers"), default("watch"))


def test_executor_defaults_come_from_the_table():
    from supertask.scheduler.executor import RunExecutor

    params = inspect.signature(RunExecutor.__init__).parameters
    assert params["max_workers"].default == default("max_workers")
    assert params["max_concurrent"].default == default("max_concurrent")


@pytest.mark.parametrize(
    "text, what, expected",
    [
        ("127.0.0.1:7711", "--listen", ("127.0.0.1", 7711)),
        (":7711", "--listen", (settings.DEFAULT_HOST, 7711)),
        (":9100", "--metrics", (settings.DEFAULT_HOST, 9100)),  # loopback, as --listen
        ("0.0.0.0:9100", "--metrics", ("0.0.0.0", 9100)),
        ("[::1]:9100", "--metrics", ("::1", 9100)),
        ("example.org:80/", "--connect", ("example.org", 80)),
        ("host:0", "--metrics", ("host", 0)),
    ],
)
def test_parse_hostport(text, what, expected):
    assert parse_hostport(text, what) == expected


@pytest.mark.parametrize(
    "text, what, message",
    [
        ("7711", "--listen", "--listen '7711': expected HOST:PORT, e.g. 127.0.0.1:7711"),
        ("host:port", "--metrics", "--metrics 'host:port': expected HOST:PORT, e.g. 127.0.0.1:9100"),
        ("host:70000", "--connect", "--connect 'host:70000': expected HOST:PORT, e.g. 127.0.0.1:7711"),
    ],
)
def test_parse_hostport_errors(text, what, message):
    with pytest.raises(UsageError) as caught:
        parse_hostport(text, what)
    assert str(caught.value) == message


def test_metrics_reads_its_address_with_the_one_parser():
    from supertask.control.metrics import Metrics

    assert (Metrics(":0").host, Metrics("[::1]:0").host) == (settings.DEFAULT_HOST, "::1")
    with pytest.raises(UsageError, match="--metrics"):
        Metrics("nope")
