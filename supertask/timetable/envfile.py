"""An ``env_file:``'s bytes -> its variables, and what is wrong with it, line by line.

The file is ``KEY=value`` lines: ``export KEY=value`` too, blank lines and ``#``
comments skipped, a value in quotes read as a shell reads it (``'a b'``, ``"a b"``).
The same reading serves ``validate`` (and every sync and reload), which reports the
file's problems as timetable problems, and each run, which reads the file afresh and
fails with the same words when it went wrong since. What is wrong is a line, never a
value: the file holds secrets, and no message shows any part of a line.

- a NUL byte (``\\0``): no environment can hold one (every run would fail);
- text that is not UTF-8;
- a line that is not ``KEY=value`` (``PGPASSWORD: x``, a bare word), or whose name is
  not a variable name (the rule of ``env:`` keys: letters, digits and ``_``, not starting
  with a digit); read silently, it would drop the variable.
"""

from __future__ import annotations

import re
import shlex

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_env_file(raw: bytes) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """The variables of ``raw`` and its problems as ``(line number, what is wrong and the fix)``."""
    values: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    for number, data in enumerate(raw.splitlines(), 1):
        if b"\0" in data:
            problems.append((number, "contains a NUL byte (\\0), which no environment can hold; remove it"))
            continue
        try:
            line = data.decode("utf-8").strip()
        except UnicodeDecodeError:
            problems.append((number, "is not UTF-8 text; save the file as UTF-8"))
            continue
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep:
            problems.append((number, "is not KEY=value; write it as NAME=value (or start it with # to comment it out)"))
            continue
        if not NAME_RE.match(key):
            problems.append((number, "does not start with a variable name; use letters, digits and '_', "
                                     "not starting with a digit, then '='"))
            continue
        value = value.strip()
        if value[:1] in ("'", '"'):
            try:
                parts = shlex.split(value)
                value = parts[0] if parts else ""
            except ValueError:
                value = value.strip("'\"")
        values[key] = value
    return values, problems


def described(path: str, problems: list[tuple[int, str]]) -> str:
    """``problems`` of the env file at ``path`` in one message (values never shown)."""
    return "; ".join(f"{path}:{number}: {message}" for number, message in problems) + " (values are not shown)"
