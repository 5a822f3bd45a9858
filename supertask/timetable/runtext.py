"""``run:`` text as a user writes it -> :class:`~supertask.model.RunSpec`, checked without YAML.

Shared by the timetable reader and the one-shot command line (which does not import
YAML: ~25 ms of its start, docs/benchmarks.md).
"""

from __future__ import annotations

import re
import shlex

from supertask.model import RunKind, RunSpec

RUN_KINDS = tuple(kind.value for kind in RunKind)

# Leading words that look like a run kind but are none: an error, not a shell command.
_KIND_LOOKALIKES = {
    "sh": "cmd", "bash": "cmd", "shell": "cmd", "zsh": "cmd", "command": "cmd", "run": "cmd",
    "execute": "exec", "exe": "exec", "py": "python", "python3": "python", "script": "uv",
    "uvx": "uv", "container": "docker", "podman": "docker", "image": "docker", "oci": "docker",
}  # fmt: skip
_KIND_RE = re.compile(r"^([a-z][a-z0-9_-]*):(.*)\Z", re.DOTALL)


def normalise_run(value: str) -> str:
    """``"echo hi"`` -> ``"cmd:echo hi"``: the canonical text of :func:`parse_run`."""
    return str(parse_run(value))


def parse_run(value: str) -> RunSpec:
    """``"echo hi"`` -> (CMD, ``"echo hi"``); a known ``KIND:`` is kept; raises ValueError.

    The rule for text without a known kind: it is a ``cmd:``, unless its leading word
    (``^[a-z][a-z0-9_-]*:``, not followed by ``//``) is close to a kind (difflib, e.g.
    ``dockr``, ``pyhton``) or a common stand-in (``sh``, ``bash``, ``shell``, ``py``,
    ``podman``...). Then it is an error: a typo must not turn into a shell command
    that fails at 3 a.m. Write ``cmd:`` explicitly to run such text in a shell.

    ``exec:``, ``uv:`` and ``docker:`` targets are split as a shell splits them when
    they run, so one that cannot be split (an unclosed quote) is an error here, as is
    a ``docker:`` target without an image.
    """
    m = _KIND_RE.match(value.strip())
    if not m:
        target = value.strip()
        if not target:
            raise ValueError('empty command; write e.g. run: "cmd:echo hello"')
        return RunSpec(RunKind.CMD, target)
    kind, target = m.group(1), m.group(2)
    if kind in RUN_KINDS:
        known = RunKind(kind)
        if known is RunKind.PYTHON:
            import textwrap

            target = textwrap.dedent(target).strip("\n")
        else:
            target = target.strip()
        if not target.strip():
            raise ValueError(f"nothing to run after '{kind}:'; e.g. {_EXAMPLES[known]}")
        if known in (RunKind.EXEC, RunKind.UV, RunKind.DOCKER):
            try:
                words = shlex.split(target)
            except ValueError as err:
                raise ValueError(f"cannot split '{kind}:{target}' into words ({str(err).lower()}); "
                                 "check its quotes") from None
            if known is RunKind.DOCKER and words[:1] == ["--"]:
                raise ValueError(f"no image before '--'; e.g. {_EXAMPLES[known]}")
        return RunSpec(known, target)
    import difflib  # only for text that names no known kind (~1 ms a start)

    guess = _KIND_LOOKALIKES.get(kind) or next(
        iter(difflib.get_close_matches(kind, RUN_KINDS, n=1, cutoff=0.6)), None
    )
    if guess and not target.startswith("//"):
        raise ValueError(
            f"unknown run kind '{kind}'; did you mean '{guess}:'? Use one of {', '.join(RUN_KINDS)}"
            f" (write 'cmd:{value.strip()}' to run this text in a shell)"
        )
    return RunSpec(RunKind.CMD, value.strip())


_EXAMPLES = {
    RunKind.CMD: "cmd:echo hello",
    RunKind.EXEC: "exec:/usr/bin/backup --all",
    RunKind.PYTHON: "python:print('hello')",
    RunKind.UV: "uv:scripts/report.py",
    RunKind.DOCKER: "docker:busybox -- echo hello",
}
