"""A native timetable job's and step's values -> model values (the keys are :mod:`.keys`).

Each converter takes a :class:`~supertask.timetable.yamldoc.Doc` and a value node and returns the
model's value (durations in seconds, ``run`` with its explicit kind...) or raises
:class:`~supertask.timetable.yamldoc.Bad` with a message that says what to write instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from supertask.model import (
    RETRYABLE,
    CatchUp,
    Overlap,
    RunStatus,
    Step,
    StepIf,
    name_problem,
)
from supertask.schedules import trigger as schedules
from supertask.timetable.containers import cpus, memory, volumes
from supertask.timetable.envfile import NAME_RE as _ENV_NAME_RE
from supertask.timetable.envfile import described, parse_env_file
from supertask.timetable.keys import STEP_ALIASES, STEP_KEYS
from supertask.timetable.labels import labels, priority
from supertask.timetable.runtext import RUN_KINDS, normalise_run  # noqa: F401  (re-exported)
from supertask.timetable.yamldoc import Bad, Doc, describe, join, scalar_list, text
from supertask.units import parse_duration, parse_size


def check_name(doc: Doc, node: Node, what: str = "name") -> str:
    name = text(doc, node, f"a {what}").strip()
    problem = name_problem(name, what)
    if problem:
        raise Bad(problem)
    return name


def _bool(doc: Doc, node: Node) -> bool:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(value, bool):
        raise Bad(f"expected true or false, got {describe(node)}")
    return value


def _duration(doc: Doc, node: Node) -> float:
    if not isinstance(node, ScalarNode):
        raise Bad(f"expected a duration such as 90, 90s, 5m, 2h or 1d, got {describe(node)}")
    try:
        return parse_duration(doc.value(node))
    except ValueError as err:
        raise Bad(str(err)) from None


def _timeout(doc: Doc, node: Node) -> float | None:
    """``null``, and ``0`` as systemd's ``TimeoutSec=0`` means it, are no timeout (a
    zero timeout would end every run the moment it starts)."""
    if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
        return None
    return _duration(doc, node) or None


def _retries(doc: Doc, node: Node) -> int:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise Bad(f"expected a whole number of extra attempts (0, 1, 2...), got {describe(node)}")
    if value < 0:
        raise Bad(f"{value} is negative; retries is the number of extra attempts, 0 or more")
    return value


def _overlap(doc: Doc, node: Node) -> Overlap:
    word = text(doc, node, "skip, queue or allow").strip().lower()
    try:
        return Overlap(word)
    except ValueError:
        close = difflib.get_close_matches(word, [o.value for o in Overlap], n=1, cutoff=0.5)
        guess = f"; did you mean '{close[0]}'?" if close else ""
        raise Bad(f"{word!r} is not an overlap policy: use skip, queue or allow{guess}") from None


def _timezone(doc: Doc, node: Node) -> str:
    name = text(doc, node, "a time zone name such as UTC or Europe/Berlin").strip()
    try:
        schedules.resolve_timezone(name)
    except ValueError as err:
        raise Bad(str(err)) from None
    return name


def _path(doc: Doc, node: Node) -> str:
    raw = text(doc, node, "a path").strip()
    if not raw:
        raise Bad("expected a path, got an empty text")
    path = Path(raw).expanduser()
    if not path.is_absolute() and doc.base_dir is not None:
        path = doc.base_dir / path
    return str(path)


def _env_file(doc: Doc, node: Node) -> str:
    """The file must exist; what it holds is checked as each run will read it (a file this
    user may not read, as a scheduler of another user's might, is left to the runs)."""
    path = _path(doc, node)
    if not Path(path).is_file():
        raise Bad(
            f"env_file {path!r} does not exist; create it or fix the path (relative paths start at the timetable's folder)"
        )
    try:
        raw = Path(path).read_bytes()
    except OSError:
        return path
    problems = parse_env_file(raw)[1]
    if problems:
        raise Bad(f"env_file {described(path, problems)}")
    return path


def _env(doc: Doc, node: Node, path: str) -> dict[str, str] | None:
    entries = doc.entries(node, path, "environment variables")
    if entries is None:
        return None
    env: dict[str, str] = {}
    ok = True
    for key, (key_node, value_node) in entries.items():
        if not _ENV_NAME_RE.match(key):
            doc.problem(
                key_node,
                join(path, key),
                f"{key!r} is not a variable name; use letters, digits and '_', not starting with a digit",
            )
            ok = False
        elif not isinstance(value_node, ScalarNode):
            doc.problem(
                value_node,
                join(path, key),
                f"expected a text value, got {describe(value_node)}; quote it to pass it literally",
            )
            ok = False
        elif "\0" in str(value_node.value):
            doc.problem(value_node, join(path, key), "contains a NUL byte (\\0), which no environment can hold; "
                        "remove it")
            ok = False
        else:
            env[key] = "" if value_node.tag.endswith(":null") else str(value_node.value)
    return env if ok else None


def _run(doc: Doc, node: Node) -> str:
    try:
        return normalise_run(text(doc, node, 'a command such as "cmd:echo hello"'))
    except ValueError as err:
        raise Bad(str(err)) from None


def _steps(doc: Doc, node: Node, path: str) -> tuple[Step, ...] | None:
    if not isinstance(node, SequenceNode):
        doc.problem(
            node,
            path,
            f"expected a list of steps ({{name, run, if, continue_on_error}}), got {describe(node)}",
        )
        return None
    if not node.value:
        doc.problem(node, path, "no steps; give at least one {name, run} or use run: instead")
        return None
    steps, before = [], len(doc.problems)
    for i, item in enumerate(node.value):
        here = join(path, i)
        entries = doc.entries(item, here, "a step")
        if entries is None:
            continue
        doc.check_keys(entries, here, STEP_KEYS, STEP_ALIASES)
        values: dict[str, Any] = {
            "name": f"step-{i + 1}",
            "if": StepIf.SUCCESS,
            "continue_on_error": False,
        }
        convert: dict[str, Callable[[Doc, Node], Any]] = {
            "name": lambda d, n: text(d, n, "a step name").strip(),
            "run": _run,
            "if": _step_if,
            "continue_on_error": _bool,
        }
        for key, fn in convert.items():
            if key in entries:
                try:
                    values[key] = fn(doc, entries[key][1])
                except Bad as err:
                    doc.problem(entries[key][1], join(here, key), str(err))
        if "run" not in entries:
            doc.problem(
                item,
                here,
                "missing 'run'; every step needs run: KIND:TARGET, e.g. run: \"cmd:make backup\"",
            )
        elif "run" in values:
            steps.append(
                Step(
                    name=values["name"],
                    run=values["run"],
                    if_=values["if"],
                    continue_on_error=values["continue_on_error"],
                )
            )
    return tuple(steps) if len(doc.problems) == before else None


def _step_if(doc: Doc, node: Node) -> StepIf:
    word = text(doc, node, "success, failure or always").strip().lower()
    try:
        return StepIf(word)
    except ValueError:
        close = difflib.get_close_matches(word, [c.value for c in StepIf], n=1, cutoff=0.5)
        guess = f"; did you mean '{close[0]}'?" if close else ""
        raise Bad(
            f"{word!r} is not a step condition: use success (the default), failure or always{guess}"
        ) from None


def _retry_on(doc: Doc, node: Node) -> tuple[RunStatus, ...]:
    words = [w.lower() for _, w in scalar_list(doc, node, "a list of run statuses")]
    known = [status.value for status in RETRYABLE]
    bad = [word for word in words if word not in known]
    if bad:
        raise Bad(f"{', '.join(map(repr, bad))} cannot retry; use a list of {', '.join(known)}")
    return tuple(RunStatus(word) for word in words)


def _count(doc: Doc, node: Node) -> int | None:
    if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
        return None
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Bad(f"expected a whole number of 1 or more, got {describe(node)}")
    return value


def _catch_up(doc: Doc, node: Node) -> CatchUp:
    return CatchUp(_choice("latest", "all")(doc, node))


def _choice(*choices: str) -> Callable[[Doc, Node], str]:
    def convert(doc: Doc, node: Node) -> str:
        word = text(doc, node, " or ".join(choices)).strip().lower()
        if word not in choices:
            close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
            guess = f"; did you mean '{close[0]}'?" if close else ""
            raise Bad(f"{word!r} is not one of {', '.join(choices)}{guess}")
        return word

    return convert


def _size(doc: Doc, node: Node) -> int:
    try:
        return parse_size(doc.value(node) if isinstance(node, ScalarNode) else None)
    except ValueError as err:
        raise Bad(str(err)) from None


def _history_keep(doc: Doc, node: Node) -> tuple[int | None, float | None]:
    """``100`` keeps 100 runs; ``30d`` keeps 30 days; ``{runs: 100, age: 30d}`` both."""
    if isinstance(node, ScalarNode):
        value = doc.value(node)
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise Bad("keep at least 1 run, e.g. history_keep: 100 (runs) or 30d (age)")
            return value, None
        return None, _duration(doc, node)
    raise Bad(f"expected a number of runs (100) or an age (30d), got {describe(node)}")


_ACTION_KINDS = ("cmd", "webhook", "apprise")


def _actions(doc: Doc, node: Node) -> tuple[str, ...]:
    """Notification actions: "cmd:...", {webhook: URL}, {apprise: URL} (or "webhook:URL")."""
    items = node.value if isinstance(node, SequenceNode) else [node]
    out = []
    for item in items:
        if isinstance(item, ScalarNode):
            value = str(item.value).strip()
            kind = value.split(":", 1)[0]
            if kind not in _ACTION_KINDS:
                raise Bad(f"{value!r} is not an action; use \"cmd:...\", {{webhook: URL}} or {{apprise: URL}}")
            out.append(value)
            continue
        pairs = getattr(item, "value", None)
        if not isinstance(pairs, list) or len(pairs) != 1:
            raise Bad(f"expected one action per entry: \"cmd:...\", {{webhook: URL}} or {{apprise: URL}}, got {describe(item)}")
        key, value_node = pairs[0]
        kind = str(key.value)
        if kind not in _ACTION_KINDS or not isinstance(value_node, ScalarNode):
            raise Bad(f"{kind!r} is not an action kind; use cmd, webhook or apprise")
        out.append(f"{kind}:{str(value_node.value).strip()}")
    return tuple(out)


def _mailto(doc: Doc, node: Node) -> tuple[str, ...]:
    """Addresses, as cron's MAILTO takes them: "a@example.com, b" or a list; "" mails no one."""
    from supertask.runs.mail import bad_address

    if node.tag.endswith(":null"):
        return ()
    out: list[str] = []
    for _, value in scalar_list(doc, node, "mail addresses"):
        for address in (a for a in re.split(r"[,\s]+", value) if a):
            problem = bad_address(address)
            if problem:
                raise Bad(f"{address!r} is not a mail address ({problem}); use e.g. ops@example.com or root")
            out.append(address)
    return tuple(out)


def _url(doc: Doc, node: Node) -> str:
    value = text(doc, node, "a URL").strip()
    if not re.match(r"^https?://", value):
        raise Bad(f"{value!r} is not an http(s) URL")
    return value


#: Job keys -> converter(doc, node) -> value; ``env``/``steps`` report their own problems.
_CONVERTERS: dict[str, Callable[[Doc, Node], Any]] = {
    "name": check_name,
    "when": lambda doc, node: text(
        doc, node, 'a schedule such as "0 3 * * *" or "every 5m"'
    ).strip(),
    "run": _run,
    "description": lambda doc, node: (
        "" if node.tag.endswith(":null") else text(doc, node, "a description").strip()
    ),
    "enabled": _bool,
    "timeout": _timeout,
    "retries": _retries,
    "retry_delay": _duration,
    "retry_backoff": _bool,
    "overlap": _overlap,
    "misfire_grace": _duration,
    "jitter": _duration,
    "timezone": _timezone,
    "cwd": _path,
    "env_file": _env_file,
    "retry_on": _retry_on,
    "retry_delay_max": _duration,
    "kill_grace": _duration,
    "max_concurrent": _count,
    "catch_up": _catch_up,
    "log_max": _size,
    "history_keep": _history_keep,
    "on_success": _actions,
    "on_failure": _actions,
    "on_retry": _actions,
    "ping": _url,
    "mailto": _mailto,
    "volumes": volumes,
    "network": lambda doc, node: text(doc, node, "a network name").strip(),
    "pull": _choice("never", "missing", "always"),
    "cpus": cpus,
    "memory": memory,
    "docker_cli": lambda doc, node: text(doc, node, "docker or podman").strip(),
    "on": labels,
    "priority": priority,
}
INVALID = object()


def convert_fields(doc: Doc, entries: Mapping[str, tuple[Node, Node]], path: str) -> dict[str, Any]:
    """Each known key's value, converted; ``INVALID`` (with a problem reported) if bad."""
    out: dict[str, Any] = {}
    for key, (_, node) in entries.items():
        here = join(path, key)
        value: Any
        if key == "env":
            value = _env(doc, node, here)
        elif key == "steps":
            value = _steps(doc, node, here)
        elif key in _CONVERTERS:
            try:
                value = _CONVERTERS[key](doc, node)
            except Bad as err:
                doc.problem(node, here, str(err))
                value = INVALID
        else:
            continue
        out[key] = INVALID if value is None and key in ("env", "steps") else value
    return out
