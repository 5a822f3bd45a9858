"""Starting on an unchanged timetable without reading it again.

A restart with a big timetable spent most of its time reading the YAML and comparing
each job with the store, only to find nothing changed (100,000 jobs: ~7 s of a 16 s
start; docs/benchmarks.md). After each full sync, a mark is kept in the store's meta
table, keyed by the file's absolute path, host, user and ``--namespace``, holding a
digest of the file's bytes (and of supertask's version) and the namespace's
*generation* (number of jobs and newest job change) just after the sync.

At the next start the file is read as bytes only; the sync is skipped when

- the digest matches (same file, same supertask), and
- the namespace's generation is the recorded one: no job was added, changed or
  removed since, by a live edit (`jobs edit`, `add`, `remove`, `pause`), another
  sync or a one-shot run in that namespace. Otherwise the file is read and synced
  as usual, which is what makes a file sync win over live edits; and
- every ``env_file`` the timetable names is as it was (its size and modification
  time): one gone, or edited, is read again with the timetable, which reports its
  problems (a NUL byte, a line that is not ``KEY=value``).

A timetable that fails to validate is never marked, so an invalid file is always
read (and refused) in full. A restart on an invalid file that was synced well before
serves what that sync left in the store (:func:`last_mark`), rather than nothing. What the skipped sync would have done is nothing: the
same file gives the same jobs, and unchanged jobs keep their schedule state.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from supertask import __version__
from supertask.model import JOB_FORMAT_VERSION, Timetable

if TYPE_CHECKING:
    from supertask.store.base import Store

_PREFIX = "timetable:"


@dataclass(frozen=True)
class Mark:
    namespace: str
    file_namespace: str | None  # the file's own `namespace:` (live reload compares it)
    restart: tuple[str, ...]  # enabled @restart jobs
    reboot: tuple[str, ...]  # enabled @reboot jobs


def key_for(path: Path, host: str, user: str, namespace_override: str | None) -> str:
    ident = f"{os.path.abspath(path)}|{host}|{user}|{namespace_override or ''}"
    return _PREFIX + hashlib.sha256(ident.encode()).hexdigest()[:40]


def digest_of(raw: bytes) -> str:
    head = f"{__version__}|{JOB_FORMAT_VERSION}|{os.environ.get('TZ', '')}|".encode()
    return hashlib.sha256(head + raw).hexdigest()


def valid_mark(store: Store, key: str, raw: bytes) -> Mark | None:
    """The mark of this file when a start may skip reading and syncing it, else None."""
    try:
        text = store.get_meta(key)
        if text is None:
            return None
        data = json.loads(text)
        if data.get("digest") != digest_of(raw):
            return None
        if list(store.generation(data["namespace"])) != data["generation"]:
            return None
    except Exception:  # an old or odd mark: read the file
        return None
    env_files = data.get("env_files", {})
    if not isinstance(env_files, dict) or any(_stamp(p) != (tuple(s) if s else None) for p, s in env_files.items()):
        return None
    return Mark(data["namespace"], data.get("file_namespace"), tuple(data.get("restart", ())),
                tuple(data.get("reboot", ())))


def last_mark(store: Store, key: str) -> Mark | None:
    """The mark of this file's last good sync, whatever the file holds now (a start on a
    broken file serves what that sync left in the store); None when it was never synced
    or its namespace has no jobs left."""
    try:
        text = store.get_meta(key)
        if text is None:
            return None
        data = json.loads(text)
        if not store.generation(data["namespace"])[0]:
            return None
    except Exception:
        return None
    return Mark(data["namespace"], data.get("file_namespace"), tuple(data.get("restart", ())),
                tuple(data.get("reboot", ())))


def record(store: Store, key: str, raw: bytes, namespace: str, timetable: Timetable) -> None:
    """After a full sync of ``timetable`` (read from ``raw``): mark it."""
    from supertask.schedules.trigger import parse_when

    start: dict[str, list[str]] = {"restart": [], "reboot": []}
    for job in timetable.jobs:
        if job.enabled and job.when.strip().startswith("@"):
            kind = parse_when(job.when, job.timezone).kind
            if kind in start:
                start[kind].append(job.name)
    env_files = {path: _stamp(path) for path in sorted({job.env_file for job in timetable.jobs if job.env_file})}
    store.set_meta(key, json.dumps({
        "digest": digest_of(raw), "namespace": namespace, "file_namespace": timetable.namespace,
        "generation": list(store.generation(namespace)), "env_files": env_files, **start,
    }))


def _stamp(path: str) -> tuple[int, int] | None:
    """An env file's (modification time in ns, size), None when it is gone. Not a digest:
    the mark is in the store, and the file holds secrets."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
