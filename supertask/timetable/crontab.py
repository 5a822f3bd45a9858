"""Crontab text -> timetable YAML, with everything that does not carry over reported.

Parsed from text, not from paths (supercronic's ``ParseCrontab(io.Reader)``): the
CLI reads the files, tests feed strings. Cron's rules, as vixie cron and cronie
read a crontab (crontab(5)):

- a line whose first non-blank character is ``#`` is a comment; a comment block
  right above a job (no blank line between) becomes its ``description:``; other
  comments are kept as YAML comments in place;
- ``NAME = value`` (optional blanks, optional matching quotes round the value) sets
  an environment variable for the jobs *below* it in the same file. ``SHELL`` picks
  the shell that runs the command, ``CRON_TZ`` the time zone of the schedules,
  ``MAILTO``/``MAILFROM`` where cron mails output (not carried: reported); every
  other name goes into the job's ``env:`` (``TZ`` too: as in cron, it only sets the
  child's environment);
- a job is five time fields or an ``@`` form, then (``system`` crontabs:
  ``/etc/crontab``, ``/etc/cron.d/*``) a user name, then the command: the rest of
  the line;
- in the command, the first unescaped ``%`` ends the command; the text after it
  is the command's standard input, with each further unescaped ``%`` a newline;
  ``\\%`` is a literal ``%`` (the backslash goes); cron ends a non-empty input
  with a newline when it lacks one.

Mapping: ``when:`` takes the five fields as written (supertask's cron *is* cron's,
docs/schedules.md); the command becomes ``cmd:COMMAND`` (``sh -c``, as cron's
default ``SHELL=/bin/sh``), ``exec:SHELL -c COMMAND`` for another shell, standard
input becomes ``printf '%s' 'INPUT' | { COMMAND ... }``, and a user column other
than the user supertask runs as becomes ``runuser -u USER --`` when that is root.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import PurePosixPath

from supertask.errors import ScheduleError

#: The ``@`` forms cron knows (cronie and vixie); supertask reads each the same way.
CRON_ALIASES = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: Variables cron itself reads that are not passed on as the job's environment here.
CRON_ONLY = ("SHELL", "CRON_TZ", "MAILTO", "MAILFROM", "CONTENT_TYPE", "CONTENT_TRANSFER_ENCODING", "RANDOM_DELAY")

_ENV_RE = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([^\s=]+))\s*=\s*(.*?)\s*$""")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
_SIMPLE_CMD = re.compile(r"^[^;&|#\n(){}`$<>]*$")
# words that open or join shell commands, or say nothing about what a job does
_FILLER = {
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "case", "esac", "!", "{", "}",
    "(", ")", "[", "]", "[[", "]]", "test", "cd", "command", "exec", "nice", "ionice", "true", "false",
    "sleep", "time", "env", "sh", "bash", "-c", "nohup", "timeout", "flock", "chronic", "sudo", "su",
}


@dataclass(frozen=True)
class Note:
    """Something that did not carry over as it was, or needs a look."""

    source: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.message}" if self.line else f"{self.source}: {self.message}"


@dataclass(frozen=True)
class CronEntry:
    """One job line of a crontab, as cron reads it."""

    source: str
    line: int
    when: str  # the five fields joined by single blanks, or an @ form
    command: str  # the command text, ``%`` still in it
    user: str | None = None  # the user column of a system crontab
    env: tuple[tuple[str, str], ...] = ()  # variables in effect at this line, in order
    comment: str = ""  # the comment block right above it
    env_lines: tuple[tuple[str, int], ...] = ()  # the line that set each of env

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)


@dataclass(frozen=True)
class Crontab:
    """A parsed crontab: its jobs, comments not attached to a job, and notes."""

    source: str
    entries: tuple[CronEntry, ...]
    # (line, text) of comment blocks not attached to a job: kept as YAML comments
    comments: tuple[tuple[int, str], ...] = ()
    notes: tuple[Note, ...] = ()


def parse_crontab(text: str, source: str = "<stdin>", *, system: bool = False) -> Crontab:
    """Read crontab text; ``system`` when the lines have a user column (``/etc/crontab``)."""
    entries: list[CronEntry] = []
    comments: list[tuple[int, str]] = []
    notes: list[Note] = []
    env: dict[str, str] = {}
    env_lines: dict[str, int] = {}
    block: list[str] = []
    block_line = 0

    def flush_block() -> None:
        if block:
            comments.append((block_line, "\n".join(block)))
            block.clear()

    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            flush_block()
            continue
        if line.startswith("#"):
            if not block:
                block_line = number
            block.append(line[1:].strip() if line[1:2] in (" ", "\t", "") else line[1:])
            continue
        env_match = _ENV_RE.match(line) if not line.startswith(("@", "*")) and not line[:1].isdigit() else None
        if env_match:
            name = env_match[1] if env_match[1] is not None else env_match[2] if env_match[2] is not None else env_match[3]
            env[name] = _unquote(env_match[4])
            env_lines[name] = number
            flush_block()
            continue
        # a ruler or ASCII-art block (Debian's "Example of job definition") is no description
        comment = "" if any(b and not re.search(r"[A-Za-z0-9]", b) for b in block) else "\n".join(block)
        if not comment:
            flush_block()
        block.clear()
        entry = _entry(line, number, source, system, env, comment, notes)
        if entry is not None:
            entries.append(replace(entry, env_lines=tuple(env_lines.items())))
        elif comment:
            comments.append((block_line, comment))
    flush_block()
    return Crontab(source, tuple(entries), tuple(comments), tuple(notes))


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _entry(
    line: str, number: int, source: str, system: bool, env: dict[str, str], comment: str, notes: list[Note]
) -> CronEntry | None:
    if line.startswith("@"):
        alias, *rest = line.split(None, 1)
        when = alias.lower()
        if when not in CRON_ALIASES:
            notes.append(Note(source, number, f"not imported: unknown @ form {alias!r} (cron knows {' '.join(CRON_ALIASES)}): {line}"))
            return None
        words = rest or [""]
    else:
        words = line.split(None, 5)
        if len(words) < 6:
            notes.append(Note(source, number, f"not imported: not a job, an environment line or a comment: {line}"))
            return None
        when, words = " ".join(words[:5]), [words[5]]
    user = None
    rest_text = words[0]
    if system:
        parts = rest_text.split(None, 1)
        if len(parts) < 2:
            notes.append(Note(source, number, f"not imported: no user and command after the schedule: {line}"))
            return None
        user, rest_text = parts
    if not rest_text.strip():
        notes.append(Note(source, number, f"not imported: no command after the schedule: {line}"))
        return None
    return CronEntry(source, number, when, rest_text, user, tuple(env.items()), comment)


_UNESCAPED_PERCENT = re.compile(r"(?<!\\)%")


def split_percent(command: str) -> tuple[str, str | None]:
    """Cron's ``%`` rule: (command, standard input or None). The first unescaped ``%``
    ends the command, the others in the rest become newlines; ``\\%`` is a literal
    ``%``; other backslashes stay as they are. A non-empty input that does not end
    in a newline gets one, as cron writes it (so ``read`` sees its last line)."""
    parts = [part.replace("\\%", "%") for part in _UNESCAPED_PERCENT.split(command)]
    if len(parts) == 1:
        return parts[0], None
    stdin = "\n".join(parts[1:])
    return parts[0], stdin + "\n" if stdin and not stdin.endswith("\n") else stdin


# -- to timetable jobs -------------------------------------------------------------------------


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


def import_crontabs(crontabs: Iterable[Crontab], *, run_as: str) -> Imported:
    """Turn parsed crontabs into timetable jobs. ``run_as`` is the user supertask will
    run as: a user column naming someone else is wrapped in ``runuser`` when that is
    root, and reported otherwise."""
    from supertask.schedules.trigger import parse_when

    result = Imported()
    used: set[str] = set()
    for tab in crontabs:
        result.sources.append(tab.source)
        result.notes.extend(tab.notes)
        items: list[tuple[int, object]] = [(e.line, e) for e in tab.entries] + [(ln, c) for ln, c in tab.comments]
        mailto_reported: set[str] = set()
        result.comments.append((len(result.jobs), f"from {tab.source}"))
        for _line, item in sorted(items, key=lambda x: x[0]):
            if isinstance(item, str):
                result.comments.append((len(result.jobs), item))
                continue
            assert isinstance(item, CronEntry)
            entry = item
            env = entry.env_dict()
            timezone = env.get("CRON_TZ")
            try:
                parse_when(entry.when, timezone)
            except (ScheduleError, ValueError) as exc:
                result.notes.append(Note(entry.source, entry.line, f"not imported: {exc}"))
                result.skipped.append((len(result.jobs), f"{entry.source}:{entry.line}: {entry.when} {entry.command}"))
                continue
            job = _job(entry, env, run_as, used, result.notes)
            if timezone:
                job["timezone"] = timezone
            mailto = env.get("MAILTO")
            if mailto and mailto not in mailto_reported:
                mailto_reported.add(mailto)
                result.notes.append(Note(entry.source, dict(entry.env_lines).get("MAILTO", entry.line), (
                    f"MAILTO={mailto} is not carried over: supertask keeps each run's output in its log "
                    "(`supertask logs RUN_ID`) instead of mailing it; to be told of failures add e.g. "
                    f"on_failure: [\"cmd:supertask logs $SUPERTASK_RUN_ID | mail -s 'cron job failed' {mailto}\"]")))
            result.jobs.append(job)
    _hoist_defaults(result)
    return result


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
    name = _unique(job_name(command), used)
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
    zones = {job.get("timezone") for job in jobs}
    if len(zones) == 1 and None not in zones:
        result.defaults["timezone"] = zones.pop()
        for job in jobs:
            job.pop("timezone", None)


def job_name(command: str) -> str:
    """A readable job name from a command: the program that does the work, and its
    first plain argument (``certbot -q renew`` -> ``certbot-renew``; ``cd / && run-parts
    /etc/cron.daily`` -> ``cron.daily``)."""
    segments = re.split(r"&&|\|\||(?<![<>])&(?!>)|[;|\n]|\$\(|`|\)", command)
    best: list[str] = []
    fallback = ""
    for segment in segments:
        words = _words(segment)
        while words and (words[0] in _FILLER or re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0])):
            words = words[1:]
        if not words or words[0].startswith("-"):
            continue
        program = PurePosixPath(words[0]).name
        fallback = fallback or program
        if program == "run-parts":
            folders = [w for w in words[1:] if not w.startswith("-")]
            best = [PurePosixPath(folders[0]).name] if folders else [program]
            continue
        if program in ("date", "echo", "printf", "[", "test") or program in _FILLER:
            continue
        if re.fullmatch(r"(python|perl|ruby|node|php|bash|sh|uv|deno)[0-9.]*", program):
            scripts = [w for w in words[1:] if not w.startswith("-")]
            if scripts and program != "perl" or scripts and "-e" not in words:
                best = [PurePosixPath(scripts[0]).stem or program]
            continue
        args = [w for w in words[1:] if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", w)]
        best = [program, *args[:1]]
    name = _NAME_CHARS.sub("-", "-".join(best or [fallback])).strip("-.")[:40].strip("-.")
    return name or "job"


def _words(segment: str) -> list[str]:
    try:
        words = shlex.split(segment, comments=True)
    except ValueError:
        words = segment.split()
    out, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if re.fullmatch(r"\d*[<>]{1,2}&?|&>>?", word):
            skip = True
            continue
        if re.match(r"^\d*[<>]", word) or word.startswith("&>"):
            continue
        out.append(word)
    return out


def _unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


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
