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
  ``MAILTO`` where cron mails output (carried over as ``mailto:``, which mails a
  run's failure; reported), ``MAILFROM`` (not carried: the scheduler's
  ``SUPERTASK_MAIL_FROM`` is the sender); every
  other name goes into the job's ``env:`` (``TZ`` too: as in cron, it only sets the
  child's environment);
- a job is five time fields or an ``@`` form, then (``system`` crontabs:
  ``/etc/crontab``, ``/etc/cron.d/*``) a user name, then the command: the rest of
  the line;
- in the command, the first unescaped ``%`` ends the command; the text after it
  is the command's standard input, with each further unescaped ``%`` a newline;
  ``\\%`` is a literal ``%`` (the backslash goes); cron ends a non-empty input
  with a newline when it lacks one.

What becomes of each job in a timetable: :mod:`supertask.timetable.cronimport`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

#: The ``@`` forms cron knows (cronie and vixie); supertask reads each the same way.
CRON_ALIASES = ("@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
#: Variables cron itself reads that are not passed on as the job's environment here.
CRON_ONLY = ("SHELL", "CRON_TZ", "MAILTO", "MAILFROM", "CONTENT_TYPE", "CONTENT_TRANSFER_ENCODING", "RANDOM_DELAY")

_ENV_RE = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([^\s=]+))\s*=\s*(.*?)\s*$""")


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
    # (line, text) of lines that are not imported (each has a note): kept commented out
    skipped: tuple[tuple[int, str], ...] = ()


def parse_crontab(text: str, source: str = "<stdin>", *, system: bool = False) -> Crontab:
    """Read crontab text; ``system`` when the lines have a user column (``/etc/crontab``)."""
    entries: list[CronEntry] = []
    comments: list[tuple[int, str]] = []
    notes: list[Note] = []
    skipped: list[tuple[int, str]] = []
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
            continue
        skipped.append((number, line))
        if comment:
            comments.append((block_line, comment))
    flush_block()
    return Crontab(source, tuple(entries), tuple(comments), tuple(notes), tuple(skipped))


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
