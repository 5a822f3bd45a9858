"""YAML text -> :class:`~supertask.model.Timetable`, every problem located at once.

The YAML is composed into PyYAML's node tree (never constructed wholesale), so each
value keeps its line, mapping keys stay the text the user wrote (YAML 1.1 would read
the key ``on`` as ``True``), and ``when:``/``env:`` values keep their exact text
(``0800`` stays ``"0800"``, an ISO date-time stays a string). Each problem becomes a
:class:`~supertask.errors.Problem` (``file:line: jobs[2].when: ...``); when there is
any, :class:`~supertask.errors.TimetableError` lists them all and no Timetable is made.

Two shapes load: the native one (``namespace``/``defaults``/``jobs``, DESIGN.md) and
the original supertask's (``meta``/``tasks``, see :mod:`supertask.timetable.legacy`).
The located node tree lives in :mod:`supertask.timetable.yamldoc`, the job keys and their
value checks in :mod:`supertask.timetable.fields`.
The only I/O is reading a file in :func:`read_timetable`, looking for a file in
:func:`find_timetable`, and checking that an ``env_file:`` exists.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from supertask.errors import Problem, TimetableError, UsageError
from supertask.model import Job, RunKind, RunSpec, Share, Step, Timetable
from supertask.timetable.checks import check_unique, check_when
from supertask.timetable.fields import (
    INVALID,
    RUN_KINDS,
    check_name,
    convert_fields,
    normalise_run,
)
from supertask.timetable.keys import JOB_ALIASES, JOB_KEYS, TOP_ALIASES, TOP_KEYS
from supertask.timetable.yamldoc import Bad, Doc, describe, join, suggest_key

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


# --- the native shape -------------------------------------------------------------------


def _load_native(doc: Doc, top: dict[str, tuple[Node, Node]]) -> Timetable | None:
    doc.check_keys(top, "", TOP_KEYS, TOP_ALIASES, _top_hint)
    namespace = None
    if "namespace" in top:
        try:
            namespace = check_name(doc, top["namespace"][1], "namespace")
        except Bad as err:
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
    return Timetable(jobs=tuple(jobs), namespace=namespace, share=_share(doc, top))


def _share(doc: Doc, top: dict[str, tuple[Node, Node]]) -> Share:
    """The namespace's ``weight:`` (a number above 0, default 1) and ``max_running:`` (a
    whole number of 1 or more, default none) among the workers."""
    weight, most = 1.0, None
    if "weight" in top:
        node = top["weight"][1]
        value = doc.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1e9:
            doc.problem(node, "weight", f"expected a number above 0 (the namespace's share of the workers, "
                                        f"default 1), got {describe(node)}")
        else:
            weight = float(value)
    if "max_running" in top and not top["max_running"][1].tag.endswith(":null"):
        node = top["max_running"][1]
        value = doc.value(node) if isinstance(node, ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            doc.problem(node, "max_running", f"expected a whole number of 1 or more (the most runs of the "
                                             f"namespace on workers at once), got {describe(node)}")
        else:
            most = value
    return Share(weight, most)


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

    _check_docker_keys(doc, entries, path, merged)

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
    if not complete or len(doc.problems) > before or INVALID in merged.values():
        return name, None
    merged["steps"] = merged.get("steps") or ()
    if "history_keep" in merged:
        merged["history_keep_runs"], merged["history_keep_age"] = merged.pop("history_keep")
    return name, Job(**merged, source_line=item.start_mark.line + 1)


#: Keys only a ``docker:`` run uses; on a job of its own that runs none, they would do nothing.
DOCKER_ONLY_KEYS = ("volumes", "network", "pull", "cpus", "memory", "docker_cli")


def _check_docker_keys(
    doc: Doc, entries: dict[str, tuple[Node, Node]], path: str, merged: Mapping[str, Any]
) -> None:
    """A container setting (``memory:``, ``volumes:`` ...) given on a job that runs no
    ``docker:`` is an error: it would silently not apply. From ``defaults:`` they are
    fine (they reach the docker: jobs among others)."""
    run, steps = merged.get("run"), merged.get("steps")
    specs = [RunSpec.read(run)] if isinstance(run, str) else []
    specs += [step.run_spec for step in (steps if isinstance(steps, tuple) else ()) if isinstance(step, Step)]
    if not specs or any(spec.kind is RunKind.DOCKER for spec in specs):
        return
    kind = specs[0].kind
    for key in DOCKER_ONLY_KEYS:
        if key in entries:
            doc.problem(entries[key][0], join(path, key),
                        f"{key} applies to docker: runs only and this job runs {kind}:; remove it, or run "
                        "the job as docker:IMAGE -- COMMAND")


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
        from supertask.timetable.legacy import load_legacy

        return load_legacy(doc, top)
    return _load_native(doc, top)


def read_timetable(path: str | Path, raw: bytes | None = None) -> Timetable:
    """Read and load a timetable file; problems name the path as given.

    ``Timetable.source`` is the file's absolute path (the default namespace uses it).
    ``raw``: the file's bytes, when the caller has read them already.
    """
    given = str(path)
    try:
        text = raw.decode("utf-8") if raw is not None else Path(path).read_text(encoding="utf-8")
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
        return replace(timetable, source=str(absolute))
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
