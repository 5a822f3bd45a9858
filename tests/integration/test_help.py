"""`supertask --help` from the console script: printed without typer, byte for byte what
typer prints (supertask.entry, supertask.cli.helptext), and through typer where it differs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from supertask.cli.helptext import TOP

SCRIPT = Path(sys.executable).with_name("supertask")  # the console script: supertask.entry:main
TYPER = [sys.executable, "-c", "import sys; sys.argv[0] = 'supertask'; from supertask.cli.main import main; main()"]


def run(cmd: list[str], columns: str | None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    if columns is not None:
        env["COLUMNS"] = columns
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize("columns", [None, "80", "200", "60"])
@pytest.mark.parametrize("args", [["--help"], ["-h"], []])
def test_help_is_what_typer_prints(args: list[str], columns: str | None) -> None:
    if not SCRIPT.exists():
        pytest.skip(f"no console script at {SCRIPT} (run `make setup`)")
    got = run([str(SCRIPT), *args], columns)
    assert got == run([*TYPER, *args], columns)
    code, out, err = got
    if columns != "60":  # a pipe is 80 columns; click caps help at 80
        assert (code, out, err) == ((0, TOP, "") if args else (2, "", TOP))
    else:
        assert TOP not in (out, err)  # narrower: typer wraps it, and prints it
