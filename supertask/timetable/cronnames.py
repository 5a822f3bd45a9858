"""Names for what import-crontab writes: a job's name from its command, the timetable's namespace.

A job's name should say what it does, as a person would call it: the program that does
the work and its first plain argument (``certbot -q renew`` -> ``certbot-renew``), a
script's name without its extension (``/usr/local/bin/backup-home.sh`` ->
``backup-home``), the folder run-parts runs (``cron.daily``), and for programs that only
move data about (tar, rsync, cp, ...) what they write: ``tar czf
/backup/home-$(date +%F).tgz /home`` -> ``backup-home``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import PurePosixPath

_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.-]+")
# words that open or join shell commands, or say nothing about what a job does
_FILLER = {
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "case", "esac", "!", "{", "}",
    "(", ")", "[", "]", "[[", "]]", "test", "cd", "command", "exec", "nice", "ionice", "true", "false",
    "sleep", "time", "env", "sh", "bash", "-c", "nohup", "timeout", "flock", "chronic", "sudo", "su",
}
#: Programs that copy or pack data: what they write (their last path; tar's archive) names the job.
_MOVERS = {"tar", "rsync", "cp", "scp", "mv", "zip", "7z", "rclone", "borg", "restic", "dd", "gzip", "xz", "bzip2",
           "zstd", "duplicity"}
#: Folders that say nothing about a path's content.
_PLAIN_DIRS = {"", "/", "var", "usr", "local", "opt", "srv", "mnt", "media", "tmp", "lib", "bin", "sbin", "data",
               "share", "run", "root", "etc", "~", "..", "."}
_SCRIPT_SUFFIX = re.compile(r"\.(sh|bash|py|pl|rb|php|js)$")
_PACK_SUFFIX = re.compile(r"(\.(tar|tgz|gz|bz2|xz|zst|zip|7z|sql|dump|bak|log|txt|json|csv))+$")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_EXPANSION = re.compile(r"\$\([^)]*\)|`[^`]*`|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")


def job_name(command: str) -> str:
    """A readable job name from a command (see the module's docstring)."""
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
        if not _WORD.fullmatch(program):
            continue  # ".tgz /home": the tail of a $(...) in a word, not a command
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
        if program in _MOVERS:
            best = _written(program, words[1:], command) or [program]
            continue
        args = [w for w in words[1:] if _WORD.fullmatch(w)]
        best = [_SCRIPT_SUFFIX.sub("", program), *args[:1]]
    name = _NAME_CHARS.sub("-", "-".join(best or [fallback])).strip("-.")[:40].strip("-.")
    return name or "job"


def _written(program: str, args: list[str], command: str) -> list[str]:
    """The meaningful words of the path a copying/packing program writes: tar's archive
    (``-f`` or the word after a ``c..f`` bundle), a dump's ``>`` target, else the last path."""
    paths = [a for a in args if "/" in a]
    target = None
    if program == "tar":
        for i, arg in enumerate(args[:-1]):
            if arg == "-f" or (re.fullmatch(r"-?[A-Za-z]*f", arg) and not arg.startswith("--")):
                target = args[i + 1]
                break
    if target in (None, "-") and (m := re.search(r">>?\s*(\S+)", _EXPANSION.sub("", command))) is not None:
        target = m[1]
    if target in (None, "-") and paths:
        target = paths[-1]
    return path_words(target) if target else []


def path_words(path: str) -> list[str]:
    """``/backup/home-$(date +%F).tgz`` -> ``["backup", "home"]``: the last two telling parts,
    without expansions, dates or archive suffixes."""
    text = _EXPANSION.sub("", path)
    parts = []
    names = text.rstrip("/").split("/")
    for i, part in enumerate(names):
        part = _PACK_SUFFIX.sub("", _SCRIPT_SUFFIX.sub("", part))
        part = re.sub(r"[-_.]*\d[\d_.-]*$", "", part).strip("-_.")  # a date or a counter at the end
        if (i == len(names) - 1 or part.lower() not in _PLAIN_DIRS) and _WORD.match(part):
            parts.append(part)
    return parts[-2:]


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


def unique(name: str, used: set[str]) -> str:
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{name}-{n}"
    used.add(candidate)
    return candidate


def namespace_for(sources: list[str], *, host: str, user: str, system: bool) -> str:
    """The ``namespace:`` an imported timetable gets, so that moving or renaming the file
    keeps its jobs' history: the host and whose crontab it was (``web1-alice-crontab``,
    ``web1-system-crontab``), or the one /etc/cron.d file (``web1-certbot-crontab``)."""
    names = [PurePosixPath(s).name for s in sources if s not in ("crontab -l", "<stdin>")]
    if system and len(sources) == 1 and names and names[0] != "crontab":
        owner = names[0]
    else:
        owner = "system" if system else user
    short_host = host.split(".")[0]
    return _NAME_CHARS.sub("-", f"{short_host}-{owner}-crontab").strip("-.")
