"""Frozen data: a timetable and its jobs, runs, and the enums they use.

A :class:`Job` is what one timetable entry says, normalised (durations in seconds,
defaults applied). It turns into plain JSON-able data with :meth:`Job.to_dict` for
the store, and its :meth:`Job.fingerprint` tells whether a definition changed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from enum import Enum

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from typing import Any

#: Bumped whenever the persisted shape of a Job (``Job.to_dict``) changes.
JOB_FORMAT_VERSION = 1

#: Job names and namespaces become folder and file names (logs/NAMESPACE/JOB/, the
#: control socket, boot/NAMESPACE): no '/', no leading '.' (so never '.' or '..'), and
#: short enough for a file name.
NAME_RE = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$")
NAME_RULE = "letters, digits, '_', '.' and '-', not starting with '.', at most 128 characters"


def name_problem(name: str, what: str = "name") -> str | None:
    """Why ``name`` cannot be a job name or namespace (:data:`NAME_RE`), else None."""
    if NAME_RE.match(name):
        return None
    fixed = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:128] or ("my-namespace" if what == "namespace" else "my-job")
    return f"{name!r} is not a valid {what}: use {NAME_RULE}, e.g. {fixed!r}"


class Word(str, Enum):
    """An enum of words: stored, shown, sent as JSON and compared as its value (the
    same on every Python: 3.11 changed what ``format()`` gives for a ``str`` enum)."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return format(str(self.value), spec)


class RunStatus(Word):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed-out"
    KILLED = "killed"
    SKIPPED = "skipped"
    LOST = "lost"

    @property
    def finished(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class Reason(Word):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    RETRY = "retry"
    CATCH_UP = "catch-up"


class StopCause(Word):
    """Who ended a ``killed`` run: ``supertask jobs kill``, or a scheduler stopping
    (its grace ran out, or it was asked to stop twice)."""

    KILL = "kill"
    SHUTDOWN = "shutdown"
    LEASE_LOST = "lease-lost"  # --lease-lost end: its scheduler lost its lease (docs/cluster.md)
    FENCED = "fenced"  # its worker could not renew the attempt's lease (docs/workers.md)

    def says(self, message: str | None) -> str:
        """The run's message with "ended on request" (a launcher's words) made precise."""
        why = _STOPPED_BY[self]
        if message and message.startswith("ended on request"):
            return why + message[len("ended on request"):]
        return f"{why}; {message}" if message else why


_STOPPED_BY = {
    StopCause.KILL: "ended by `supertask jobs kill`",
    StopCause.SHUTDOWN: "ended at shutdown: the scheduler stopped before the run did",
    StopCause.LEASE_LOST: "ended by its scheduler, which lost its lease (--lease-lost end): another host may "
                          "have taken the run over",
    StopCause.FENCED: "ended by its worker, which could not renew the attempt's lease: the attempt counts as lost "
                      "and may be retried elsewhere",
}


class Overlap(Word):
    """``overlap:``: what a fire does while the job's previous run is in flight."""

    SKIP = "skip"
    QUEUE = "queue"
    ALLOW = "allow"


class CatchUp(Word):
    """``catch_up:``: which of a job's overdue fires within ``misfire_grace`` run."""

    LATEST = "latest"
    ALL = "all"


class StepIf(Word):
    """A step's ``if:``: whether it runs after the steps before it."""

    SUCCESS = "success"
    FAILURE = "failure"
    ALWAYS = "always"


class RunKind(Word):
    """A ``run:``'s kind: the launcher that runs its target (docs/timetable.md)."""

    CMD = "cmd"
    EXEC = "exec"
    PYTHON = "python"
    UV = "uv"
    DOCKER = "docker"


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A ``run:`` parsed once: ``"docker:busybox -- echo hi"`` -> (DOCKER, ``"busybox -- echo hi"``).

    What a user writes is parsed by :func:`supertask.timetable.runtext.parse_run` (errors
    that say the fix); the canonical ``KIND:TARGET`` text a Job carries and the store
    keeps is read back by :meth:`read` when the Job is built (``Job.run_spec``)."""

    kind: RunKind
    target: str

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.target}"

    @classmethod
    def read(cls, text: str) -> RunSpec:
        """``KIND:TARGET`` -> RunSpec; text without a known kind runs in a shell (``cmd``)."""
        kind, sep, target = text.partition(":")
        known = _RUN_KINDS.get(kind) if sep else None
        return cls(known, target) if known is not None else cls(RunKind.CMD, text)

    def container(self) -> tuple[str, list[str]]:
        """A ``docker:`` target -> image and command, ``"busybox -- sh -c 'echo hi'"`` ->
        (``"busybox"``, ``["sh", "-c", "echo hi"]``); ValueError if it names no image."""
        import shlex

        words = shlex.split(self.target)
        if not words or words[0] == "--":
            raise ValueError("docker: needs an image, e.g. docker:busybox -- echo hello")
        rest = words[1:]
        return words[0], rest[1:] if rest[:1] == ["--"] else rest


_RUN_KINDS = {kind.value: kind for kind in RunKind}


#: the statuses ``retry_on:`` may name, and its default
RETRYABLE = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST, RunStatus.KILLED)
RETRY_ON = (RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a multi-step job, run in order within one run."""

    name: str
    run: str
    # when the step runs (all before succeeded, the default; one failed; always);
    # the original supertask's `if:` expressions map onto these
    if_: StepIf = StepIf.SUCCESS
    continue_on_error: bool = False
    # `run` parsed (not part of the definition: derived from `run`)
    run_spec: RunSpec = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_spec", RunSpec.read(self.run))


@dataclass(frozen=True, slots=True)
class Job:
    """One timetable entry, normalised. Durations are seconds; ``None`` means none."""

    name: str
    when: str
    run: str | None = None
    steps: tuple[Step, ...] = ()
    description: str = ""
    enabled: bool = True
    timeout: float | None = None
    retries: int = 0
    retry_delay: float = 30.0
    retry_backoff: bool = True
    overlap: Overlap = Overlap.SKIP
    misfire_grace: float = 60.0
    jitter: float = 0.0
    timezone: str | None = None  # IANA name; None: the machine's local zone
    cwd: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    env_file: str | None = None
    # -- when things go wrong (docs/runs.md) --
    retry_on: tuple[RunStatus, ...] = RETRY_ON  # run statuses that retry
    retry_delay_max: float = 3600.0  # the cap of the doubling retry delay
    kill_grace: float = 10.0  # TERM, then this long, then KILL
    max_concurrent: int | None = None  # with overlap: allow; None: no limit
    catch_up: CatchUp = CatchUp.LATEST  # missed fires within misfire_grace
    log_max: int = 10 * 1024 * 1024  # bytes of log kept per run (head and tail)
    history_keep_runs: int | None = None  # keep this many runs of the job
    history_keep_age: float | None = None  # keep runs younger than this (seconds)
    on_success: tuple[str, ...] = ()  # actions: "cmd:...", "webhook:URL", "apprise:URL"
    on_failure: tuple[str, ...] = ()
    on_retry: tuple[str, ...] = ()
    ping: str | None = None  # healthchecks.io-style base URL: /start, (success), /fail
    mailto: tuple[str, ...] = ()  # mailed when a run fails for good (supertask.runs.mail)
    # -- docker: jobs --
    volumes: tuple[str, ...] = ()  # "HOST:CONTAINER[:ro]"
    network: str | None = None
    pull: str = "missing"  # never | missing | always
    cpus: float | None = None
    memory: str | None = None  # as docker takes it: 512m, 1g
    docker_cli: str | None = None  # docker or podman; default $SUPERTASK_DOCKER, else docker
    # -- workers (docs/workers.md) --
    on: Mapping[str, str] = field(default_factory=dict)  # labels a worker must have; {}: the scheduler runs it
    priority: int = 0  # higher first among the runs queued for workers
    # where the entry came from (not part of the definition, not in the fingerprint)
    source_line: int | None = field(default=None, compare=False)
    # `run` parsed (not part of the definition: derived from `run`); None for steps
    run_spec: RunSpec | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_spec", None if self.run is None else RunSpec.read(self.run))

    @property
    def run_specs(self) -> tuple[RunSpec, ...]:
        """What the job runs: its ``run:``, or its steps' in order."""
        return (self.run_spec,) if self.run_spec is not None else tuple(step.run_spec for step in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data, as persisted in the store (with ``JOB_FORMAT_VERSION``).

        Built field by field (``dataclasses.asdict`` deep-copies: it was most of the
        time of syncing 100,000 jobs)."""
        data = {name: getattr(self, name) for name in _PERSISTED}
        data["overlap"] = self.overlap.value
        data["catch_up"] = self.catch_up.value
        data["retry_on"] = [status.value for status in self.retry_on]
        for name, unused in (("mailto", ()), ("on", {}), ("priority", 0)):  # added in 0.2.0: absent when
            if data[name] == unused:  # unused, so no stored job reads as changed
                del data[name]
        data["env"] = dict(self.env)
        if "on" in data:
            data["on"] = dict(self.on)
        data["steps"] = [
            {"name": s.name, "run": s.run, "if_": s.if_.value, "continue_on_error": s.continue_on_error}
            for s in self.steps
        ]
        return data

    def definition(self) -> str:
        """The canonical JSON text of :meth:`to_dict`: what the store keeps."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        kw = {k: v for k, v in data.items() if k in _PERSISTED_SET}
        kw["steps"] = tuple(Step(**{**s, "if_": StepIf(s.get("if_", "success"))}) for s in kw.get("steps") or ())
        kw["overlap"] = Overlap(kw.get("overlap", "skip"))
        kw["catch_up"] = CatchUp(kw.get("catch_up", "latest"))
        if "retry_on" in kw:
            kw["retry_on"] = tuple(RunStatus(status) for status in kw["retry_on"])
        kw["env"] = dict(kw.get("env") or {})
        kw["on"] = dict(kw.get("on") or {})
        for name in _TUPLE_FIELDS:
            if name in kw:
                kw[name] = tuple(kw[name])
        return cls(**kw)

    def fingerprint(self) -> str:
        """A digest of the definition: equal for equal definitions, across processes."""
        return digest(self.definition())


def digest(definition: str) -> str:
    """The fingerprint of a canonical definition text."""
    return sha256_hex(definition.encode())[:16]


def sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, from CPython's built-in SHA-256 where it has
    one: hashlib loads OpenSSL (~3 ms of a one-shot run) for digests of a few bytes."""
    return _sha256(data).hexdigest()


try:  # the module hashlib itself falls back to without OpenSSL (_sha2 from 3.12)
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found]
except ImportError:
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,no-redef]


_PERSISTED = tuple(f.name for f in fields(Job) if f.name not in ("source_line", "run_spec"))
_PERSISTED_SET = frozenset(_PERSISTED)
_TUPLE_FIELDS = tuple(f.name for f in fields(Job) if isinstance(f.default, tuple) and f.name not in ("steps", "retry_on"))


@dataclass(frozen=True)
class Share:
    """A namespace's part of the workers (top-level ``weight:`` and ``max_running:``,
    docs/workers.md): its claims are ordered by runs in flight per unit of weight, and
    it has at most ``max_running`` runs on workers at once (None: no limit)."""

    weight: float = 1.0
    max_running: int | None = None


@dataclass(frozen=True)
class Timetable:
    """A whole timetable file: its namespace (None: derive one) and its jobs."""

    jobs: tuple[Job, ...]
    namespace: str | None = None
    source: str | None = None  # the file's absolute path, when read from a file
    share: Share | None = None  # from a native file: its weight and max_running (None: leave the store's)


@dataclass(frozen=True)
class RunRecord:
    """One execution attempt of a job, as stored in the runs table."""

    id: int
    namespace: str
    job: str
    attempt: int
    reason: Reason
    scheduled: datetime | None
    started: datetime | None
    finished: datetime | None
    status: RunStatus
    exit_code: int | None
    host: str | None
    pid: int | None
    log_path: str | None
    log_tail: str | None
    message: str | None = None
    instance: str | None = None  # the scheduler instance that holds (held) the run: `supertask hosts`
    # -- a run for workers (docs/workers.md) --
    labels: Mapping[str, str] | None = None  # what the run needs of a worker; None: a scheduler host runs it
    worker: str | None = None  # the worker holding the attempt
    lease_until: datetime | None = None  # the database's clock; a queued row's: not before
    priority: int = 0

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> RunRecord:
        """A row of the runs table (a mapping, times already datetimes) -> the run, its
        status and reason as enums (shown and sent as JSON as their words all the same)."""
        data = {**row, "status": RunStatus(row["status"]), "reason": Reason(row["reason"])}
        if isinstance(data.get("labels"), str):
            data["labels"] = json.loads(data["labels"])
        if data.get("priority") is None:
            data.pop("priority", None)
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("scheduled", "started", "finished", "lease_until"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        started, finished = self.started, self.finished
        data["duration"] = (finished - started).total_seconds() if started and finished else None
        data["lateness"] = self.lateness
        return data

    @property
    def lateness(self) -> float | None:
        """How long after its scheduled time the first attempt of a fire started (seconds);
        None for retries (their delay is on purpose) and runs that did not start."""
        if self.started is None or self.scheduled is None or self.attempt != 1:
            return None
        return max(0.0, (self.started - self.scheduled).total_seconds())
