"""The original supertask's timetable shape (``meta:``/``tasks:``) -> native Jobs.

The original (pyveci/supertask) reads::

    meta: {namespace: ..., type: supertask-timetable, version: 1}
    tasks:
      - meta: {id: lKPzlamA, name: ..., description: ..., enabled: true}
        on: {schedule: [{cron: "*/5 * * * * * *"}]}
        steps:
          - {name: ..., uses: python-entrypoint, run: "pkg.mod:func", args: [], kwargs: {}}
          - {name: ..., uses: python-file, run: "jobs/cleanup.py", if: false}

Mapping (also in docs/timetable.md): one Job per ``on.schedule`` entry, named
``meta.id`` (``meta.id-1``, ``-2``... when a task has several crons); ``description``
is ``meta.description``, else ``meta.name``; ``enabled`` is ``meta.enabled``. Steps:

- ``python-entrypoint`` ``module:function`` -> a ``python:`` step that imports the
  module and calls ``function(*args, **kwargs)``, printing a result that is not None;
- ``python-file`` ``PATH`` (``PATH:run`` too) -> a ``uv:PATH ARGS`` step: the file
  runs as a script, so PEP 723 dependencies are honoured; ``args`` become its
  command-line arguments, ``kwargs`` ``--key=value`` options (the original imported
  the file and called its ``run(**kwargs)``; a script's ``__main__`` block must read
  them);
- ``if: true`` (default) -> runs when the steps before succeeded; ``if: false`` ->
  the step is left out, as the original skipped it; ``always()``/``failure()``/
  ``success()`` (GitHub-style, ``${{ }}`` optional) -> ``if_`` always/failure/success.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

from yaml.nodes import Node, ScalarNode, SequenceNode

from supertask.model import Job, Step, StepIf, Timetable, name_problem
from supertask.timetable.checks import check_unique, check_when
from supertask.timetable.yamldoc import Bad, Doc, describe, join, text

TOP_KEYS = ("meta", "tasks")
TASK_KEYS = ("meta", "on", "steps")
TASK_META_KEYS = ("id", "name", "description", "enabled")
STEP_KEYS = ("name", "uses", "run", "args", "kwargs", "if")
USES = ("python-entrypoint", "python-file")

_ENTRYPOINT_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_IF_WORDS = {"success": StepIf.SUCCESS, "failure": StepIf.FAILURE, "always": StepIf.ALWAYS, "true": StepIf.SUCCESS}


def load_legacy(doc: Doc, top: dict[str, tuple[Node, Node]]) -> Timetable | None:
    doc.check_keys(top, "", TOP_KEYS, {"task": "tasks", "jobs": "tasks"})
    namespace = None
    if "meta" in top:
        meta = doc.entries(top["meta"][1], "meta", "timetable metadata") or {}
        if "namespace" in meta:
            try:
                namespace = text(doc, meta["namespace"][1], "a namespace").strip()
                problem = name_problem(namespace, "namespace")
                if problem:
                    raise Bad(problem)
            except Bad as err:
                doc.problem(meta["namespace"][1], "meta.namespace", str(err))
    tasks = top["tasks"][1]
    if not isinstance(tasks, SequenceNode) or not tasks.value:
        got = "an empty list" if isinstance(tasks, SequenceNode) else describe(tasks)
        doc.problem(tasks, "tasks", f"expected a list of tasks ('- meta: ...' entries), got {got}")
        return None
    jobs: list[Job] = []
    named: list[tuple[str, int | None, str]] = []
    for i, item in enumerate(tasks.value):
        for job, line in _task(doc, item, join("tasks", i)):
            jobs.append(job)
            named.append((job.name, line, join(join("tasks", i), "meta.id")))
    check_unique(doc, named)
    return Timetable(jobs=tuple(jobs), namespace=namespace)


def _task(doc: Doc, item: Node, path: str) -> list[tuple[Job, int | None]]:
    entries = doc.entries(item, path, "a task")
    if entries is None:
        return []
    before = len(doc.problems)
    doc.check_keys(entries, path, TASK_KEYS, {"schedule": "on", "when": "on", "jobs": "steps"})
    for key in TASK_KEYS:
        if key not in entries:
            doc.problem(
                item,
                path,
                f"missing '{key}'; a task has meta: {{id, name}}, on: {{schedule: [{{cron: ...}}]}} and steps:",
            )

    name, description, enabled, id_line = None, "", True, None
    if "meta" in entries:
        meta = doc.entries(entries["meta"][1], join(path, "meta"), "task metadata") or {}
        doc.check_keys(
            meta, join(path, "meta"), TASK_META_KEYS, {"title": "name", "desc": "description"}
        )
        try:
            if "id" not in meta:
                raise Bad("missing 'id'; it becomes the job's name, e.g. id: nightly-cleanup")
            id_line = meta["id"][0].start_mark.line + 1
            name = text(doc, meta["id"][1], "an id").strip()
            problem = name_problem(name, "job name")
            if problem:
                raise Bad(problem)
        except Bad as err:
            doc.problem(
                meta["id"][1] if "id" in meta else entries["meta"][1],
                join(path, "meta.id"),
                str(err),
            )
        for key in ("description", "name"):
            if key in meta and not description and isinstance(meta[key][1], ScalarNode):
                description = "" if meta[key][1].tag.endswith(":null") else str(meta[key][1].value)
        if "enabled" in meta:
            value = (
                doc.value(meta["enabled"][1])
                if isinstance(meta["enabled"][1], ScalarNode)
                else None
            )
            if isinstance(value, bool):
                enabled = value
            else:
                doc.problem(
                    meta["enabled"][1],
                    join(path, "meta.enabled"),
                    f"expected true or false, got {describe(meta['enabled'][1])}",
                )

    crons = _crons(doc, entries["on"][1], join(path, "on")) if "on" in entries else []
    steps = _steps(doc, entries["steps"][1], join(path, "steps")) if "steps" in entries else ()
    if len(doc.problems) > before or name is None:
        return []
    out = []
    for n, when in enumerate(crons, start=1):
        job_name = f"{name}-{n}" if len(crons) > 1 else name
        out.append((Job(name=job_name, when=when, steps=steps, description=description,
                        enabled=enabled, source_line=item.start_mark.line + 1), id_line))  # fmt: skip
    return out


def _crons(doc: Doc, node: Node, path: str) -> list[str]:
    on = doc.entries(node, path, "triggers (on: {schedule: [{cron: ...}]})")
    if on is None:
        return []
    doc.check_keys(on, path, ("schedule",), {"cron": "schedule", "schedules": "schedule"})
    if "schedule" not in on:
        doc.problem(node, path, "missing 'schedule'; e.g. on: {schedule: [{cron: \"0 3 * * *\"}]}")
        return []
    seq, spath = on["schedule"][1], join(path, "schedule")
    if not isinstance(seq, SequenceNode) or not seq.value:
        got = "an empty list" if isinstance(seq, SequenceNode) else describe(seq)
        doc.problem(seq, spath, f"expected a list of {{cron: ...}} entries, got {got}")
        return []
    out = []
    for i, item in enumerate(seq.value):
        here = join(spath, i)
        entries = doc.entries(item, here, "a schedule entry ({cron: ...})")
        if entries is None:
            continue
        doc.check_keys(entries, here, ("cron",), {"schedule": "cron", "when": "cron"})
        if "cron" not in entries:
            doc.problem(item, here, "missing 'cron'; e.g. - cron: \"0 3 * * *\"")
            continue
        try:
            when = text(doc, entries["cron"][1], "a cron expression").strip()
        except Bad as err:
            doc.problem(entries["cron"][1], join(here, "cron"), str(err))
            continue
        check_when(doc, when, None, entries["cron"][1], join(here, "cron"))
        out.append(when)
    return out


def _steps(doc: Doc, node: Node, path: str) -> tuple[Step, ...]:
    if not isinstance(node, SequenceNode) or not node.value:
        got = "an empty list" if isinstance(node, SequenceNode) else describe(node)
        doc.problem(node, path, f"expected a list of steps ({{name, uses, run}}), got {got}")
        return ()
    steps, skipped = [], 0
    for i, item in enumerate(node.value):
        here = join(path, i)
        entries = doc.entries(item, here, "a step")
        if entries is None:
            continue
        doc.check_keys(
            entries, here, STEP_KEYS, {"with": "kwargs", "command": "run", "use": "uses"}
        )
        try:
            step = _step(doc, entries, i)
        except Bad as err:
            doc.problem(item, here, str(err))
            continue
        if step is None:
            skipped += 1
        else:
            steps.append(step)
    if skipped and not steps and skipped == len(node.value):
        doc.problem(
            node,
            path,
            "every step has if: false, so the task does nothing; set meta.enabled: false instead",
        )
    return tuple(steps)


def _located(doc: Doc, entries: dict, key: str, what: str) -> str:
    try:
        return text(doc, entries[key][1], what).strip()
    except Bad as err:
        raise Bad(f"{key}: {err}") from None


def _step(doc: Doc, entries: dict[str, tuple[Node, Node]], i: int) -> Step | None:
    for key in ("uses", "run"):
        if key not in entries:
            raise Bad(
                f"missing '{key}'; e.g. uses: python-entrypoint, run: \"mypackage.jobs:cleanup\""
            )
    uses = _located(doc, entries, "uses", "python-entrypoint or python-file")
    run = _located(doc, entries, "run", "an entrypoint or a file")
    name = _located(doc, entries, "name", "a step name") if "name" in entries else f"step-{i + 1}"
    args = _plain(doc, entries, "args", list, [])
    kwargs = _plain(doc, entries, "kwargs", dict, {})
    if_ = _if(doc, entries["if"][1]) if "if" in entries else StepIf.SUCCESS
    if uses == "python-entrypoint":
        if not _ENTRYPOINT_RE.match(run):
            raise Bad(
                f'run: {run!r} is not an entrypoint; write MODULE:FUNCTION, e.g. "mypackage.jobs:cleanup"'
            )
        code = _entrypoint_code(run, args, kwargs)
        command = f"python:{code}"
    elif uses == "python-file":
        file = run.rsplit(":", 1)[0] if re.search(r"\.py:[A-Za-z_]\w*$", run) else run
        if (
            doc.base_dir is not None
            and "://" not in file
            and not Path(file).expanduser().is_absolute()
        ):
            file = str(doc.base_dir / file)
        words = [file, *(_arg(a) for a in args), *(f"--{k}={_arg(v)}" for k, v in kwargs.items())]
        command = "uv:" + shlex.join(words)
    else:
        raise Bad(
            f"uses: {uses!r} is not known; use python-entrypoint or python-file (or write the job in the native jobs: format with run: KIND:TARGET)"
        )
    return None if if_ is None else Step(name=name, run=command, if_=if_)


def _plain(doc: Doc, entries: dict, key: str, kind: type, default: Any) -> Any:
    if key not in entries or (
        isinstance(entries[key][1], ScalarNode) and entries[key][1].tag.endswith(":null")
    ):
        return default
    value = doc.value(entries[key][1])
    if not isinstance(value, kind):
        raise Bad(
            f"{key}: expected {'a list' if kind is list else 'a mapping'}, got {describe(entries[key][1])}"
        )
    return value


def _if(doc: Doc, node: Node) -> StepIf | None:
    value = doc.value(node) if isinstance(node, ScalarNode) else None
    if value is False:
        return None
    if value is True:
        return StepIf.SUCCESS
    word = (
        str(value).strip().removeprefix("${{").removesuffix("}}").strip().removesuffix("()").lower()
    )
    if isinstance(value, str) and word in _IF_WORDS:
        return _IF_WORDS[word]
    raise Bad(
        f"if: {describe(node)} is not understood; use true, false, always(), failure() or success()"
    )


def _arg(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _entrypoint_code(ref: str, args: list, kwargs: dict) -> str:
    module, attr = ref.split(":", 1)
    return "\n".join([
        "import importlib, json",
        f"target = importlib.import_module({module!r})",
        f"for name in {attr!r}.split('.'):",
        "    target = getattr(target, name)",
        f"result = target(*json.loads({json.dumps(args, default=str)!r}), **json.loads({json.dumps(kwargs, default=str)!r}))",
        "if result is not None:",
        "    print(result)",
    ])  # fmt: skip
