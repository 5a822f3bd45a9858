"""Parsed crontabs -> timetable jobs and the timetable's YAML (what ``supertask import-crontab`` prints).

The mapping (cron's reading rules are in :mod:`supertask.timetable.crontab`): ``when:``
takes the five fields as written (supertask's cron *is* cron's, docs/schedules.md); the
command becomes ``cmd:COMMAND`` (``sh -c``, as cron's default ``SHELL=/bin/sh``),
``exec:SHELL -c COMMAND`` for another shell, standard input becomes ``printf '%s'
'INPUT' | { COMMAND ... }``, and a user column other than the user supertask runs as
becomes ``runuser -u USER --`` when that is root. Every line that does not become a
job is kept in place, commented out after ``NOT IMPORTED``, with a note; the notes
come in the crontab's line order. The timetable gets a ``namespace:``
(:func:`supertask.timetable.cronnames.namespace_for`), so moving the file keeps its
jobs' history.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field

from supertask.errors import ScheduleError
from supertask.timetable.cronnames import job_name, unique
from supertask.timetable.crontab import CRON_ONLY, CronEntry, Crontab, Note, split_percent

_SIMPLE_CMD = re.compile(r"^[^;&|#\n(){}`$<>]*$")

@dataclass
class Imported:
    """Timetable jobs (plain dicts in timetable keys) and what the reader should know."""

    jobs: list[dict[str, object]] = field(default_factory=list)
    defaults: dict[str, object] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    # (before job index, text): comments kept in place; index len(jobs) is the end
    comments: list[tuple[int, str]] = field(default_factory=list)
    # (before job index, text): lines not imported, kept commented out
    skipped: list[tuple[int, str]] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    namespace: str | None = None


def import_crontabs(crontabs: Iterable[Crontab], *, run_as: str) -> Imported:
    """Turn parsed crontabs into timetable jobs. ``run_as`` is the user supertask will
    run as: a user column naming someone else is wrapped in ``runuser`` when that is
    root, and reported otherwise."""
    from supertask.schedules.trigger import parse_when

    result = Imported()
    used: set[str] = set()
    for tab in crontabs:
        result.sources.append(tab.source)
        notes = list(tab.notes)
        items: list[tuple[int, int, object]] = [(e.line, 1, e) for e in tab.entries]
        items += [(ln, 0, c) for ln, c in tab.comments] + [(ln, 1, ("skipped", t)) for ln, t in tab.skipped]
        mailto_reported: set[str] = set()
        result.comments.append((len(result.jobs), f"from {tab.source}"))
        for line, _order, item in sorted(items, key=lambda x: x[:2]):
            if isinstance(item, str):
                result.comments.append((len(result.jobs), item))
                continue
            if isinstance(item, tuple):
                result.skipped.append((len(result.jobs), f"{tab.source}:{line}: {item[1]}"))
                continue
            assert isinstance(item, CronEntry)
            entry = item
            env = entry.env_dict()
            timezone = env.get("CRON_TZ")
            try:
                parse_when(entry.when, timezone)
            except (ScheduleError, ValueError) as exc:
                notes.append(Note(entry.source, entry.line, f"not imported: {exc}"))
                result.skipped.append((len(result.jobs), f"{entry.source}:{entry.line}: {entry.when} {entry.command}"))
                continue
            job = _job(entry, env, run_as, used, notes)
            if timezone:
                job["timezone"] = timezone
            mailto = env.get("MAILTO")
            addresses, note = _mailto(mailto) if mailto else ((), "")
            if addresses:
                job["mailto"] = ", ".join(addresses)
            if note and mailto and mailto not in mailto_reported:
                mailto_reported.add(mailto)
                notes.append(Note(entry.source, dict(entry.env_lines).get("MAILTO", entry.line), note))
            result.jobs.append(job)
        result.notes.extend(sorted(notes, key=lambda n: n.line or 0))  # stable: a line's notes keep their order
    _hoist_defaults(result)
    return result


def _mailto(mailto: str) -> tuple[tuple[str, ...], str]:
    """MAILTO's addresses as ``mailto:`` takes them, and the note that says how it differs."""
    from supertask.runs.mail import bad_address

    addresses = tuple(a for a in re.split(r"[,\s]+", mailto) if a)
    bad = [a for a in addresses if bad_address(a)]
    if bad:
        return (), (f"MAILTO={mailto} is not carried over: {bad[0]!r} is not a mail address supertask takes; "
                    "set mailto: in the timetable (e.g. mailto: ops@example.com)")
    return addresses, (f"MAILTO={mailto} carried over as mailto: supertask mails a run that fails (its exit code "
                       "and the last lines of its log) through sendmail, not every run's output as cron does; "
                       "the whole output is in `supertask logs RUN_ID`")


def _job(entry: CronEntry, env: dict[str, str], run_as: str, used: set[str], notes: list[Note]) -> dict[str, object]:
    command, stdin = split_percent(entry.command)
    script = command
    if stdin is not None:
        body = command if _SIMPLE_CMD.match(command) else "{ " + command + "\n}"
        script = f"printf '%s' {shlex.quote(stdin)} | {body}"
    shell = env.get("SHELL", "/bin/sh")
    argv: list[str] | None = None
    if shell not in ("/bin/sh", "sh"):
        argv = [shell, "-c", script]
    user = entry.user
    if user is not None and user != run_as:
        if run_as == "root":
            argv = ["runuser", "-u", user, "--", *(argv or ["/bin/sh", "-c", script])]
            notes.append(Note(entry.source, entry.line, f"runs as {user} through `runuser -u {user} --` (supertask must run as root)"))
        else:
            notes.append(Note(entry.source, entry.line, (
                f"the user column says {user}, but supertask runs as {run_as}: the job will run as {run_as}; "
                f"run supertask as root and import with --user root to keep running it as {user}")))
    run = "exec:" + shlex.join(argv) if argv else "cmd:" + script
    if re.search(r"(^|[\s;&|({])run-parts(\s|$)", command):
        notes.append(Note(entry.source, entry.line, (
            "run-parts line carried over as one job running the whole folder; give each script its own job "
            "to get its own history, timeout and retries")))
    name = unique(job_name(command), used)
    job: dict[str, object] = {"name": name}
    if entry.comment:
        job["description"] = entry.comment
    job["when"] = entry.when
    job["run"] = run
    job_env = {k: v for k, v in env.items() if k not in CRON_ONLY}
    if job_env:
        job["env"] = job_env
    job["_origin"] = f"{entry.source}:{entry.line}: {entry.when}{' ' + entry.user if entry.user else ''} {entry.command}"
    return job


def _env_of(job: dict[str, object]) -> dict[str, str]:
    env = job.get("env")
    return env if isinstance(env, dict) else {}


def _hoist_defaults(result: Imported) -> None:
    """Settings every job shares move to ``defaults:`` (env entries one by one)."""
    jobs = result.jobs
    if len(jobs) < 2:
        return
    envs = [_env_of(job) for job in jobs]
    shared = {k: v for k, v in envs[0].items() if all(e.get(k) == v for e in envs[1:])}
    if shared:
        result.defaults["env"] = shared
        for job in jobs:
            rest = {k: v for k, v in _env_of(job).items() if k not in shared}
            if rest:
                job["env"] = rest
            else:
                job.pop("env", None)
    for key in ("mailto",):
        values = {job.get(key) for job in jobs}
        if len(values) == 1 and None not in values:
            result.defaults[key] = values.pop()
            for job in jobs:
                job.pop(key, None)
    zones = {job.get("timezone") for job in jobs}
    if len(zones) == 1 and None not in zones:
        result.defaults["timezone"] = zones.pop()
        for job in jobs:
            job.pop("timezone", None)


# -- rendering -------------------------------------------------------------------------------


def render_timetable(result: Imported, *, header: str = "") -> str:
    """The timetable YAML: a header with the notes, ``defaults:``, then the jobs with the
    crontab's own comments in place. It loads with :func:`supertask.timetable.load.load_timetable`."""
    out: list[str] = []
    for line in header.splitlines():
        out.append(f"# {line}".rstrip())
    if result.notes:
        out.append("#")
        out.append("# What did not carry over as it was (also printed on stderr):")
        for note in result.notes:
            out.append(_comment(f"- {note}", "#   "))
    out.append("")
    if result.namespace:
        out.append("# The jobs' history is kept under this name: keep it when moving or renaming the file.")
        out.append(f"namespace: {_scalar(result.namespace)}")
        out.append("")
    if result.defaults:
        out.append("defaults:")
        for key, value in result.defaults.items():
            out.extend(_field(key, value, "  "))
    out.append("jobs:")
    if not result.jobs:
        out.append("  []  # the crontab has no jobs")
    extras = sorted([(i, "comment", t) for i, t in result.comments] + [(i, "skipped", t) for i, t in result.skipped],
                    key=lambda x: x[0])
    for index in range(len(result.jobs) + 1):
        for at, kind, text in extras:
            if at != index:
                continue
            out.append("")
            if kind == "skipped":
                out.append(_comment(f"NOT IMPORTED (see the notes above): {text}", "  # "))
            else:
                out.append(_comment(text, "  # "))
        if index == len(result.jobs):
            break
        job = dict(result.jobs[index])
        origin = job.pop("_origin", None)
        out.append("")
        if origin:
            out.append(_comment(f"was: {origin}", "  # "))
        first = True
        for key, value in job.items():
            lines = _field(key, value, "    ")
            if first:
                lines[0] = "  - " + lines[0][4:]
                first = False
            out.extend(lines)
    return "\n".join(out) + "\n"


def _comment(text: str, prefix: str) -> str:
    return "\n".join((prefix + line).rstrip() for line in text.splitlines() or [""])


def _field(key: str, value: object, indent: str) -> list[str]:
    if isinstance(value, dict):
        return [f"{indent}{key}:"] + [f"{indent}  {_scalar(k)}: {_scalar(v)}" for k, v in value.items()]
    return [f"{indent}{key}: {_scalar(value)}"]


def _scalar(value: object) -> str:
    """A YAML scalar that reads back as exactly this string (double quotes when needed)."""
    import json

    text = str(value)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", text) and text.lower() not in (
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "none", "~"
    ):
        return text
    return json.dumps(text, ensure_ascii=False)
