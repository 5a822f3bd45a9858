"""timetable.envfile: an env_file's bytes -> variables, and its problems by line, never its values."""

from __future__ import annotations

import pytest

from supertask.timetable.envfile import described, parse_env_file


@pytest.mark.parametrize(("raw", "values"), [
    (b"A=1\nB = two \n", {"A": "1", "B": "two"}),
    (b"# a comment\n\n  export C=3\n", {"C": "3"}),
    (b"D='a b'\nE=\"c d\"\nF=\n", {"D": "a b", "E": "c d", "F": ""}),
    (b"G='unbalanced\n", {"G": "unbalanced"}),
    (b"H=x=y\r\nI=\xc3\xa9\n", {"H": "x=y", "I": "\u00e9"}),
])
def test_key_value_lines(raw: bytes, values: dict[str, str]) -> None:
    assert parse_env_file(raw) == (values, [])


@pytest.mark.parametrize(("raw", "line", "says"), [
    (b"A=1\nSECRET=hunter\0hunter2\n", 2, "contains a NUL byte"),
    (b"PGPASSWORD: hunter2\n", 1, "is not KEY=value"),
    (b"A=1\n\nhunter2\n", 3, "is not KEY=value"),
    (b"1A=hunter2\n", 1, "does not start with a variable name"),
    (b"MY-VAR=hunter2\n", 1, "does not start with a variable name"),
    (b"=hunter2\n", 1, "does not start with a variable name"),
    (b"A=hunter2\xff\n", 1, "is not UTF-8"),
])
def test_lines_no_run_could_use_are_problems_that_never_show_the_value(raw: bytes, line: int, says: str) -> None:
    values, problems = parse_env_file(raw)
    assert [number for number, _ in problems] == [line]
    message = described("/etc/app.env", problems)
    assert f"/etc/app.env:{line}: {says}" in message
    assert "hunter" not in message and "MY-VAR" not in message and "PGPASSWORD" not in message
