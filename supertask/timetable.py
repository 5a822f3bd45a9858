"""YAML text -> :class:`~supertask.model.Timetable`, every problem located at once.

The YAML is composed into PyYAML's node tree (never constructed wholesale), so each
value keeps its line, mapping keys stay the text the user wrote (YAML 1.1 would read
the key ``on`` as ``True``), and ``when:``/``env:`` values keep their exact text
(``0800`` stays ``"0800"``, an ISO date-time stays a string). Each problem becomes a
:class:`~supertask.errors.Problem` (``file:line: jobs[2].when: ...``); when there is
any, :class:`~supertask.errors.TimetableError` lists them all and no Timetable is made.

Two shapes load: the native one (``namespace``/``defaults``/``jobs``, DESIGN.md) and
the original supertask's (``meta``/``tasks``, see :mod:`supertask.timetable_legacy`).
The only I/O is reading a file in :func:`read_timetable`, looking for a file in
:func:`find_timetable`, and checking that an ``env_file:`` exists.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from supertask import schedules
from supertask.errors import Problem, ScheduleError, TimetableError, UsageError
from supertask.model import NAME_RE, Job, Overlap, Step, Timetable, parse_duration

__all__ = [
    "RUN_KINDS",
    "TIMETABLE_NAMES",
    "default_namespace",
    "find_timetable",
    "load_timetable",
    "normalise_run",
    "read_timetable",
]

#: File names looked for, in order, when no ``--file`` is given.
TIMETABLE_NAMES = ("supertask.yaml", "timetable.yaml")

RUN_KINDS = ("cmd", "exec", "python", "uv", "docker")

TOP_KEYS = ("namespace", "defaults", "jobs")
JOB_KEYS = (
    "name", "when", "run", "steps", "description", "enabled", "timeout", "retries",
    "retry_delay", "retry_backoff", "overlap", "misfire_grace", "jitter", "timezone",
    "cwd", "env", "env_file",
)  # fmt: skip
STEP_KEYS = ("name", "run", "if", "continue_on_error")
STEP_IFS = ("success", "failure", "always")

# Words people write for a key, from cron, systemd, APScheduler, Dagu, CI files.
TOP_ALIASES = {"job": "jobs", "default": "defaults", "ns": "namespace", "name": "namespace"}
JOB_ALIASES = {
    "schedule": "when", "cron": "when", "at": "when", "every": "when", "trigger": "when",
    "interval": "when", "on": "when", "calendar": "when", "oncalendar": "when",
    "command": "run", "cmd": "run", "exec": "run", "script": "run", "shell": "run",
    "uses": "run", "action": "run",
    "timeout_seconds": "timeout", "timeout_sec": "timeout", "max_runtime": "timeout",
    "time_limit": "timeout", "timeout_s": "timeout",
    "retry": "retries", "max_retries": "retries", "attempts": "retries", "retry_count": "retries",
    "retry_interval": "retry_delay", "retry_wait": "retry_delay", "backoff": "retry_backoff",
    "concurrency": "overlap", "max_instances": "overlap", "concurrent": "overlap",
    "misfire_grace_time": "misfire_grace", "grace": "misfire_grace", "grace_time": "misfire_grace",
    "tz": "timezone", "time_zone": "timezone",
    "workdir": "cwd", "working_dir": "cwd", "working_directory": "cwd", "dir": "cwd",
    "directory": "cwd", "environment": "env", "envfile": "env_file", "dotenv": "env_file",
    "environment_file": "env_file", "disabled": "enabled", "active": "enabled", "enable": "enabled",
    "id": "name", "title": "name", "desc": "description", "comment": "description",
    "step": "steps", "tasks": "steps",
}  # fmt: skip
STEP_ALIASES = {
    "command": "run", "cmd": "run", "script": "run", "uses": "run", "when": "if",
    "condition": "if", "continue-on-error": "continue_on_error", "ignore_errors": "continue_on_error",
    "allow_failure": "continue_on_error", "ignore_failure": "continue_on_error",
}  # fmt: skip

# Leading words that look like a run kind but are none: an error, not a shell command.
_KIND_LOOKALIKES = {
    "sh": "cmd", "bash": "cmd", "shell": "cmd", "zsh": "cmd", "command": "cmd", "run": "cmd",
    "execute": "exec", "exe": "exec", "py": "python", "python3": "python", "script": "uv",
    "uvx": "uv", "container": "docker", "podman": "docker", "image": "docker", "oci": "docker",
}  # fmt: skip
_KIND_RE = re.compile(r"^([a-z][a-z0-9_-]*):(.*)\Z", re.DOTALL)
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Bad(Exception):
    """One problem with one value; its text is the Problem's message."""


class Doc:
    """One YAML document being checked: its node tree and the problems found so far."""

    def __init__(self, text: str, source: str, base_dir: Path | None):
        self.source, self.base_dir = source, base_dir
        self.problems: list[Problem] = []
        self._loader = yaml.SafeLoader(text)

    def root(self) -> Node | None:
        try:
            return self._loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line = mark.line + 1 if mark else None
            column = f"column {mark.column + 1}: " if mark else ""
            reason = ": ".join(str(x) for x in (err.context, err.problem) if x)
            hint = _yaml_hint(reason)
            self.problem(line, "", f"not valid YAML: {column}{reason}{hint}")
        except yaml.YAMLError as err:
            self.problem(None, "", f"not valid YAML: {err}")
        return None

    def problem(self, where: Node | int | None, path: str, message: str) -> None:
        line = where.start_mark.line + 1 if isinstance(where, Node) else where
        problem = Problem(self.source, line, path, message)
        if problem not in self.problems:
            self.problems.append(problem)

    def value(self, node: Node) -> Any:
        """The Python value of a scalar or a whole subtree (YAML 1.1 rules)."""
        return self._loader.construct_object(node, deep=True)

    def entries(self, node: Node, path: str, what: str) -> dict[str, tuple[Node, Node]] | None:
        """A mapping's ``key text -> (key node, value node)``; duplicate keys are problems."""
        if not isinstance(node, MappingNode):
            self.problem(
                node, path, f"expected {what} (a mapping of key: value), got {describe(node)}"
            )
            return None
        seen: dict[str, Node] = {}
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    first = seen[key_node.value].start_mark.line + 1
                    self.problem(
                        key_node,
                        join(path, key_node.value),
                        f"key '{key_node.value}' given twice (first on line {first}); keep one",
                    )
                seen.setdefault(key_node.value, key_node)
        try:  # YAML merge keys (`<<: *common`): merged entries first, the mapping's own win
            self._loader.flatten_mapping(node)
        except yaml.MarkedYAMLError as err:
            self.problem(
                err.problem_mark.line + 1 if err.problem_mark else node, path, str(err.problem)
            )
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.problem(key_node, path, f"a key must be plain text, got {describe(key_node)}")
                continue
            key = key_node.value
            out[key] = (key_node, value_node)
        return out

    def check_keys(
        self, entries: Mapping[str, tuple[Node, Node]], path: str, allowed: Iterable[str],
        aliases: Mapping[str, str], extra_hint: Callable[[str], str | None] = lambda key: None,
    ) -> None:  # fmt: skip
        """Unknown keys are problems (a typo must not silently disable a setting)."""
        allowed = tuple(allowed)
        for key, (key_node, _) in entries.items():
            if key in allowed:
                continue
            message = f"unknown key '{key}'"
            guess = suggest_key(key, allowed, aliases)
            hint = extra_hint(key)
            if hint:
                message += f"; {hint}"
            elif guess:
                message += f"; did you mean '{guess}'?"
            else:
                message += f"; use one of {', '.join(allowed)}"
            self.problem(key_node, join(path, key), message)

    def dispose(self) -> None:
        self._loader.dispose()


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def describe(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if node.tag.endswith(":null"):
        return "nothing"
    if node.tag.endswith(":str"):
        return f"the text {node.value!r}"
    return str(node.value)


def suggest_key(key: str, allowed: Iterable[str], aliases: Mapping[str, str]) -> str | None:
    """The key meant by a typo or by another tool's word for it, if any is close."""
    allowed = tuple(allowed)
    folded = key.strip().lower().replace("-", "_").replace(" ", "_")
    if folded in allowed:
        return folded
    candidates = {k: k for k in allowed} | {a: k for a, k in aliases.items() if k in allowed}
    if folded in candidates:
        return candidates[folded]
    close = difflib.get_close_matches(folded, list(candidates), n=1, cutoff=0.7)
    return candidates[close[0]] if close else None


def _yaml_hint(reason: str) -> str:
    if "alias" in reason or "anchor" in reason:
        return "; a value starting with '*' or '&' must be quoted, e.g. when: \"*/5 * * * *\""
    if "mapping values are not allowed" in reason:
        return "; quote a value that contains ': ', e.g. run: \"cmd:echo a: b\""
    if "found character '\\t'" in reason:
        return "; indent with spaces, not tabs"
    return ""


# --- values -----------------------------------------------------------------------------


def text(doc: Doc, node: Node, what: str = "text") -> str:
    """A scalar's exact text (``0800`` stays ``"0800"``); lists and mappings are problems."""
    if not isinstance(node, ScalarNode) or node.tag.endswith(":null"):
        raise _Bad(f"expected {what}, got {describe(node)}")
    return str(node.value)


def check_name(doc: Doc, node: Node, what: str = "name") -> str:
    name = text(doc, node, f"a {what}").strip()
    if not NAME_RE.match(name):
        fixed = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "my-job"
        raise _Bad(
            f"{name!r} is not a valid {what}: use letters, digits, '_', '.' and '-' only, e.g. {fixed!r}"
        )
    return name


def _bool(doc: Doc, node: Node) -> bool:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {describe(node)}")
    return value


def _duration(doc: Doc, node: Node) -> float:
    if not isinstance(node, ScalarNode):
        raise _Bad(f"expected a duration such as 90, 90s, 5m, 2h or 1d, got {describe(node)}")
    try:
        return parse_duration(doc.value(node))
    except ValueError as err:
        raise _Bad(str(err)) from None


def _optional_duration(doc: Doc, node: Node) -> float | None:
    if isinstance(node, ScalarNode) and node.tag.endswith(":null"):
        return None
    return _duration(doc, node)


def _retries(doc: Doc, node: Node) -> int:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"expected a whole number of extra attempts (0, 1, 2...), got {describe(node)}")
    if value < 0:
        raise _Bad(f"{value} is negative; retries is the number of extra attempts, 0 or more")
    return value


def _overlap(doc: Doc, node: Node) -> Overlap:
    word = text(doc, node, "skip, queue or allow").strip().lower()
    try:
        return Overlap(word)
    except ValueError:
        close = difflib.get_close_matches(word, [o.value for o in Overlap], n=1, cutoff=0.5)
        guess = f"; did you mean '{close[0]}'?" if close else ""
        raise _Bad(f"{word!r} is not an overlap policy: use skip, queue or allow{guess}") from None


def _timezone(doc: Doc, node: Node) -> str:
    name = text(doc, node, "a time zone name such as UTC or Europe/Berlin").strip()
    try:
        schedules.resolve_timezone(name)
    except ValueError as err:
        raise _Bad(str(err)) from None
    return name


def _path(doc: Doc, node: Node) -> str:
    raw = text(doc, node, "a path").strip()
    if not raw:
        raise _Bad("expected a path, got an empty text")
    path = Path(raw).expanduser()
    if not path.is_absolute() and doc.base_dir is not None:
        path = doc.base_dir / path
    return str(path)


def _env_file(doc: Doc, node: Node) -> str:
    path = _path(doc, node)
    if not Path(path).is_file():
        raise _Bad(
            f"env_file {path!r} does not exist; create it or fix the path (relative paths start at the timetable's folder)"
        )
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
        else:
            env[key] = "" if value_node.tag.endswith(":null") else str(value_node.value)
    return env if ok else None


def normalise_run(value: str) -> str:
    """``"echo hi"`` -> ``"cmd:echo hi"``; a known ``KIND:`` is kept; raises ValueError.

    The rule for text without a known kind: it is a ``cmd:``, unless its leading word
    (``^[a-z][a-z0-9_-]*:``, not followed by ``//``) is close to a kind (difflib, e.g.
    ``dockr``, ``pyhton``) or a common stand-in (``sh``, ``bash``, ``shell``, ``py``,
    ``podman``...). Then it is an error: a typo must not turn into a shell command
    that fails at 3 a.m. Write ``cmd:`` explicitly to run such text in a shell.
    """
    m = _KIND_RE.match(value.strip())
    if not m:
        target = value.strip()
        if not target:
            raise ValueError('empty command; write e.g. run: "cmd:echo hello"')
        return f"cmd:{target}"
    kind, target = m.group(1), m.group(2)
    if kind in RUN_KINDS:
        target = textwrap.dedent(target).strip("\n") if kind == "python" else target.strip()
        if not target.strip():
            raise ValueError(f"nothing to run after '{kind}:'; e.g. {_EXAMPLES[kind]}")
        return f"{kind}:{target}"
    guess = _KIND_LOOKALIKES.get(kind) or next(
        iter(difflib.get_close_matches(kind, RUN_KINDS, n=1, cutoff=0.6)), None
    )
    if guess and not target.startswith("//"):
        raise ValueError(
            f"unknown run kind '{kind}'; did you mean '{guess}:'? Use one of {', '.join(RUN_KINDS)}"
            f" (write 'cmd:{value.strip()}' to run this text in a shell)"
        )
    return f"cmd:{value.strip()}"


_EXAMPLES = {
    "cmd": "cmd:echo hello",
    "exec": "exec:/usr/bin/backup --all",
    "python": "python:print('hello')",
    "uv": "uv:scripts/report.py",
    "docker": "docker:busybox -- echo hello",
}


def _run(doc: Doc, node: Node) -> str:
    try:
        return normalise_run(text(doc, node, 'a command such as "cmd:echo hello"'))
    except ValueError as err:
        raise _Bad(str(err)) from None


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
        values = {"name": f"step-{i + 1}", "if": "success", "continue_on_error": False}
        convert = {
            "name": lambda d, n: text(d, n, "a step name").strip(),
            "run": _run,
            "if": _step_if,
            "continue_on_error": _bool,
        }
        for key, fn in convert.items():
            if key in entries:
                try:
                    values[key] = fn(doc, entries[key][1])
                except _Bad as err:
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


def _step_if(doc: Doc, node: Node) -> str:
    word = text(doc, node, "success, failure or always").strip().lower()
    if word not in STEP_IFS:
        close = difflib.get_close_matches(word, STEP_IFS, n=1, cutoff=0.5)
        guess = f"; did you mean '{close[0]}'?" if close else ""
        raise _Bad(
            f"{word!r} is not a step condition: use success (the default), failure or always{guess}"
        )
    return word


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
    "timeout": _optional_duration,
    "retries": _retries,
    "retry_delay": _duration,
    "retry_backoff": _bool,
    "overlap": _overlap,
    "misfire_grace": _duration,
    "jitter": _duration,
    "timezone": _timezone,
    "cwd": _path,
    "env_file": _env_file,
}
_INVALID = object()


def convert_fields(doc: Doc, entries: Mapping[str, tuple[Node, Node]], path: str) -> dict[str, Any]:
    """Each known key's value, converted; ``_INVALID`` (with a problem reported) if bad."""
    out: dict[str, Any] = {}
    for key, (_, node) in entries.items():
        here = join(path, key)
        if key == "env":
            value = _env(doc, node, here)
        elif key == "steps":
            value = _steps(doc, node, here)
        elif key in _CONVERTERS:
            try:
                value = _CONVERTERS[key](doc, node)
            except _Bad as err:
                doc.problem(node, here, str(err))
                value = _INVALID
        else:
            continue
        out[key] = _INVALID if value is None and key in ("env", "steps") else value
    return out


def check_when(doc: Doc, when: str, timezone: str | None, node: Node, path: str) -> None:
    """``when:`` must parse as a schedule in its job's time zone (schedules owns the syntax)."""
    if not when:
        doc.problem(node, path, 'empty schedule; e.g. when: "0 3 * * *", "@daily" or "every 5m"')
        return
    try:
        schedules.parse_when(when, timezone)
    except ScheduleError as err:
        doc.problem(node, path, str(err))


def check_unique(doc: Doc, named: Iterable[tuple[str, int | None, str]]) -> None:
    """Job names are unique within a timetable; each repeat names both lines."""
    first: dict[str, tuple[int | None, str]] = {}
    for name, line, path in named:
        if name in first:
            line0, path0 = first[name]
            doc.problem(
                line,
                path,
                f"job name {name!r} is used twice (lines {line0} and {line}, {path0} and {path.removesuffix('.name')}); names must be unique",
            )
        else:
            first[name] = (line, path.removesuffix(".name"))


# --- the native shape -------------------------------------------------------------------


def _load_native(doc: Doc, top: dict[str, tuple[Node, Node]]) -> Timetable | None:
    doc.check_keys(top, "", TOP_KEYS, TOP_ALIASES, _top_hint)
    namespace = None
    if "namespace" in top:
        try:
            namespace = check_name(doc, top["namespace"][1], "namespace")
        except _Bad as err:
            doc.problem(top["namespace"][1], "namespace", str(err))

    defaults: dict[str, Any] = {}
    default_nodes: dict[str, tuple[Node, Node]] = {}
    if "defaults" in top and not top["defaults"][1].tag.endswith(":null"):
        default_nodes = doc.entries(top["defaults"][1], "defaults", "job defaults") or {}
        doc.check_keys(default_nodes, "defaults", JOB_KEYS, JOB_ALIASES)
        if "name" in default_nodes:
            doc.problem(
                default_nodes["name"][0],
                "defaults.name",
                "a name cannot be a default; names must be unique, give each job its own",
            )
        defaults = convert_fields(
            doc, {k: v for k, v in default_nodes.items() if k != "name"}, "defaults"
        )

    if "jobs" not in top:
        if any(suggest_key(k, TOP_KEYS, TOP_ALIASES) == "jobs" for k in top):
            return None  # reported as "unknown key 'job'; did you mean 'jobs'?"
        doc.problem(
            None, "", "no 'jobs:' list; add jobs: with at least one {name, when, run} entry"
        )
        return None
    jobs_node = top["jobs"][1]
    if not isinstance(jobs_node, SequenceNode) or not jobs_node.value:
        got = "an empty list" if isinstance(jobs_node, SequenceNode) else describe(jobs_node)
        doc.problem(
            jobs_node, "jobs", f"expected a list of jobs ('- name: ...' entries), got {got}"
        )
        return None

    jobs, named = [], []
    for i, item in enumerate(jobs_node.value):
        path = join("jobs", i)
        entries = doc.entries(item, path, "a job")
        if entries is None:
            continue
        doc.check_keys(entries, path, JOB_KEYS, JOB_ALIASES)
        name, job = _job(doc, item, entries, path, defaults, default_nodes)
        if name is not None:  # invalid jobs too: a duplicate is worth knowing about
            named.append((name, entries["name"][0].start_mark.line + 1, join(path, "name")))
        if job is not None:
            jobs.append(job)
    check_unique(doc, named)
    return Timetable(jobs=tuple(jobs), namespace=namespace)


def _top_hint(key: str) -> str | None:
    if key in ("tasks", "meta"):
        return "'tasks:'/'meta:' belong to the original supertask's format; use either it or 'jobs:', not both"
    return None


def _job(
    doc: Doc, item: Node, entries: dict[str, tuple[Node, Node]], path: str,
    defaults: Mapping[str, Any], default_nodes: Mapping[str, tuple[Node, Node]],
) -> tuple[str | None, Job | None]:  # fmt: skip
    """The job's name (if valid) and the Job (None when it has any problem)."""
    before = len(doc.problems)
    own = convert_fields(doc, entries, path)
    merged = dict(defaults)
    if "run" in own or "steps" in own:  # a job's own run/steps replace any default of either
        merged.pop("run", None)
        merged.pop("steps", None)
    merged.update(own)
    if isinstance(defaults.get("env"), dict) and isinstance(own.get("env"), dict):
        merged["env"] = {**defaults["env"], **own["env"]}

    # a misspelt key was reported already ("did you mean 'when'?"); do not say it twice
    meant = {suggest_key(k, JOB_KEYS, JOB_ALIASES) for k in entries if k not in JOB_KEYS}
    for key, example in (("name", "name: nightly-dump"), ("when", 'when: "0 3 * * *"')):
        if key not in merged and key not in meant:
            doc.problem(item, path, f"missing '{key}'; e.g. {example}")
    if "run" not in merged and "steps" not in merged and not meant & {"run", "steps"}:
        doc.problem(item, path, "missing 'run'; e.g. run: \"cmd:echo hello\" (or give steps:)")
    elif "run" in own and "steps" in own:
        doc.problem(
            entries["steps"][0], join(path, "steps"), "give either run: or steps:, not both"
        )

    if isinstance(merged.get("when"), str):
        where, wpath = (
            (entries["when"][1], join(path, "when"))
            if "when" in entries
            else (default_nodes["when"][1], "defaults.when")
        )
        timezone = merged.get("timezone")
        check_when(
            doc, merged["when"], timezone if isinstance(timezone, str) else None, where, wpath
        )

    name = own.get("name") if isinstance(own.get("name"), str) else None
    complete = "name" in merged and "when" in merged and ("run" in merged or "steps" in merged)
    if not complete or len(doc.problems) > before or _INVALID in merged.values():
        return name, None
    merged["steps"] = merged.get("steps") or ()
    return name, Job(**merged, source_line=item.start_mark.line + 1)


# --- public -----------------------------------------------------------------------------


def load_timetable(
    text: str, source: str = "<string>", *, base_dir: Path | None = None
) -> Timetable:
    """Parse timetable YAML text (either shape) into a Timetable.

    Raises TimetableError listing every problem; relative ``cwd``/``env_file`` paths
    resolve against ``base_dir`` (the timetable's folder), or stay as written when
    it is None (``env_file`` is then checked against the current directory).
    """
    doc = Doc(text, source, base_dir)
    try:
        timetable = _load(doc)
    finally:
        doc.dispose()
    if doc.problems or timetable is None:
        problems = sorted(doc.problems, key=lambda p: p.line or 0)  # stable: same line keeps order
        raise TimetableError(problems or [Problem(source, None, "", "no jobs")])
    return timetable


def _load(doc: Doc) -> Timetable | None:
    root = doc.root()
    if doc.problems:
        return None
    if root is None or (isinstance(root, ScalarNode) and root.tag.endswith(":null")):
        doc.problem(
            1, "", "empty timetable; expected a mapping with 'jobs:' (see docs/timetable.md)"
        )
        return None
    top = doc.entries(root, "", "a timetable")
    if top is None:
        return None
    if "tasks" in top and "jobs" not in top:
        from supertask.timetable_legacy import load_legacy

        return load_legacy(doc, top)
    return _load_native(doc, top)


def read_timetable(path: str | Path) -> Timetable:
    """Read and load a timetable file; problems name the path as given.

    ``Timetable.source`` is the file's absolute path (the default namespace uses it).
    """
    given = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        reason = "no such file; create it (`supertask init`) or pass another --file"
    except IsADirectoryError:
        reason = "is a folder, not a timetable file"
    except PermissionError:
        reason = "cannot be read: permission denied"
    except UnicodeDecodeError as err:
        reason = f"is not UTF-8 text ({err.reason} at byte {err.start})"
    except OSError as err:
        reason = f"cannot be read: {err.strerror or err}"
    else:
        absolute = Path(os.path.abspath(path))
        timetable = load_timetable(text, given, base_dir=absolute.parent)
        return Timetable(jobs=timetable.jobs, namespace=timetable.namespace, source=str(absolute))
    raise TimetableError([Problem(given, None, "", reason)])


def find_timetable(cwd: Path | None = None) -> Path:
    """``./supertask.yaml``, else ``./timetable.yaml``; raises UsageError when neither exists."""
    folder = Path.cwd() if cwd is None else Path(cwd)
    for name in TIMETABLE_NAMES:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise UsageError(
        f"no timetable: neither {' nor '.join(TIMETABLE_NAMES)} in {folder}; "
        "create supertask.yaml (`supertask init` writes a starter) or pass --file"
    )


def default_namespace(source: str | None, host: str, user: str) -> str:
    """A readable, stable namespace for a timetable without ``namespace:``.

    ``{file stem}-{8 hex digits of sha256(host|user|absolute path)}``, so the same
    file run by the same user on the same host always lands in the same namespace,
    and two checkouts of one file do not collide. ``source`` None (jobs given on the
    command line) gives ``cli-...``.
    """
    path = os.path.abspath(source) if source else ""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(source).stem).strip("-.") if source else "cli"
    digest = hashlib.sha256(f"{host}|{user}|{path}".encode()).hexdigest()[:8]
    return f"{stem or 'timetable'}-{digest}"
