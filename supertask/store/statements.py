"""Every write the stores make, written once, and the rules those writes carry.

Two implementations run them (:mod:`supertask.store.base` names their interface):
:class:`~supertask.store.sql.SqlStore` on SQLAlchemy (PostgreSQL, any other SQLAlchemy
URL, and SQLite for what is not a run row) and :class:`~supertask.store.lite.LiteStore`
on the stdlib ``sqlite3`` (a one-shot run, and the run rows of a scheduler on a SQLite
file: importing SQLAlchemy alone costs more than a whole one-shot ``supertask run``,
docs/benchmarks.md). Both hand these functions a *transaction* that runs plain SQL text
with ``:name`` parameters; how a backend runs it is its own affair:

- ``tx.run(sql, params) -> int`` (rows changed), ``tx.run_many(sql, [params, ...])``,
  ``tx.rows(sql, params) -> list[tuple]``;
- ``tx.insert(sql, params, key) -> int | None``: the new row's ``key`` column (its id;
  for a table without one, anything but None) or None when the row's unique key was
  taken; the transaction goes on, as after ``INSERT ... ON CONFLICT DO NOTHING``;
- ``tx.insert_rows(table, rows)``: many rows at once (SQLAlchemy batches them);
- ``tx.stamp(datetime)``: a time as the backend stores it (SQLite: naive UTC text
  ``YYYY-MM-DD HH:MM:SS.ffffff``, exactly what SQLAlchemy's SQLite dialect writes).

This module imports neither SQLAlchemy nor ``typing``: the one-shot path loads it.
"""

from __future__ import annotations

from collections import namedtuple
from datetime import datetime, timezone
from pathlib import Path

from supertask.model import JOB_FORMAT_VERSION, RunStatus, digest

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (~2 ms of a one-shot run)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any

    from supertask.model import Job, Share

UTC = timezone.utc

#: Bumped when the tables change. A store of an older version is brought up to this one
#: by :data:`MIGRATIONS` when it is opened; a newer one is refused.
SCHEMA_VERSION = 6

#: version -> the statements that take a store from it to the next version (new tables
#: are made by ``metadata.create_all`` before them: :func:`supertask.store.tables.migrate`).
#: 1 -> 2: the hosts table (made), and the scheduler instance that holds each run.
#: 2 -> 3: the revisions of namespaces and jobs (live changes reach every host: :func:`bump_revision`).
#: 3 -> 4: the tokens and audit tables (made; supertask.store.access).
#: 4 -> 5: workers (docs/workers.md): the workers and log chunks tables (made), what a run
#: needs of a worker and who holds it, the namespaces' fair share.
#: 5 -> 6: runs by (status, scheduled, namespace) and (namespace, id): the dashboard's timeline and pages.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: ("ALTER TABLE supertask_runs ADD COLUMN instance VARCHAR(64)",),
    2: ("ALTER TABLE supertask_namespaces ADD COLUMN revision BIGINT NOT NULL DEFAULT 0",
        "ALTER TABLE supertask_jobs ADD COLUMN revision BIGINT NOT NULL DEFAULT 0",
        "CREATE INDEX supertask_jobs_by_revision ON supertask_jobs (namespace, revision)"),
    3: (),
    4: ("ALTER TABLE supertask_runs ADD COLUMN labels TEXT",
        "ALTER TABLE supertask_runs ADD COLUMN worker VARCHAR(200)",
        "ALTER TABLE supertask_runs ADD COLUMN lease_until TIMESTAMP WITH TIME ZONE",
        "ALTER TABLE supertask_runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE supertask_namespaces ADD COLUMN weight FLOAT NOT NULL DEFAULT 1",
        "ALTER TABLE supertask_namespaces ADD COLUMN max_running INTEGER"),
    5: ("CREATE INDEX IF NOT EXISTS supertask_runs_by_status_time ON supertask_runs (status, scheduled, namespace)",
        "CREATE INDEX IF NOT EXISTS supertask_runs_by_namespace ON supertask_runs (namespace, id)"),
}
#: The PostgreSQL channel every change to a namespace's jobs is announced on (its name as payload).
CHANNEL = "supertask_jobs"

RUN_COLUMNS = ("id", "namespace", "job", "attempt", "reason", "scheduled", "started", "finished", "status",
               "exit_code", "host", "pid", "log_path", "log_tail", "message", "instance")
TIME_COLUMNS = ("scheduled", "started", "finished")


def sqlite_file(url: str) -> str | None:
    """FILE of a plain ``sqlite:///FILE`` URL (no query, not in memory), else None."""
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):]
    return None if "?" in path or not path or path == ":memory:" else path


class SyncReport(namedtuple("SyncReport", "added changed removed unchanged before",
                            defaults=((), (), (), (), None))):
    """The job names a sync added, changed, removed and left unchanged (tuples); ``before``: the
    stored definitions (JSON) of those changed and removed, by name, when at most :data:`BEFORE_KEPT`
    of each. A named tuple: this module is on the one-shot path (a dataclass costs ~1 ms)."""

    __slots__ = ()


class Pruned(namedtuple("Pruned", "runs skipped log_paths", defaults=(0, 0, ()))):
    """What a prune removed: ``runs`` real runs and ``skipped`` skipped rows, and the
    log files those had (for the caller to delete)."""

    __slots__ = ()

    def __add__(self, other: Pruned) -> Pruned:  # type: ignore[override]
        return Pruned(self.runs + other.runs, self.skipped + other.skipped, self.log_paths + other.log_paths)


# -- namespaces -----------------------------------------------------------------------------

_NS_UPDATE = ('UPDATE supertask_namespaces SET source = :source, host = :host, "user" = :user, updated = :now '
              "WHERE name = :name")
_NS_SHARE = "UPDATE supertask_namespaces SET weight = :weight, max_running = :max_running WHERE name = :name"
_NS_INSERT = ('INSERT INTO supertask_namespaces (name, source, host, "user", created, updated) '
              "VALUES (:name, :source, :host, :user, :now, :now)")


def ensure_namespace(tx: Any, name: str, *, source: str | None, host: str, user: str,
                     share: Share | None = None) -> None:
    """Create the namespace's row, or update its origin, and (``share``: from a timetable
    file) its weight and max_running among the workers. Another process adding it at the
    same moment is fine (its insert wins, ours is dropped)."""
    params = {"name": name, "source": source, "host": host, "user": user, "now": tx.stamp(datetime.now(UTC))}
    if not tx.run(_NS_UPDATE, params):
        tx.insert(_NS_INSERT, params, "name")
    if share is not None:
        tx.run(_NS_SHARE, {"name": name, "weight": share.weight, "max_running": share.max_running})


# -- jobs -------------------------------------------------------------------------------------

_JOB_FINGERPRINTS = "SELECT name, fingerprint FROM supertask_jobs WHERE namespace = :namespace"
_JOB_FINGERPRINT = "SELECT name, fingerprint FROM supertask_jobs WHERE namespace = :namespace AND name = :name"
_JOB_UPDATE = ("UPDATE supertask_jobs SET definition = :definition, format = :format, fingerprint = :fingerprint, "
               "paused = :paused, next_run_time = :next_run_time, updated = :updated, revision = :revision "
               "WHERE namespace = :namespace AND name = :name")
_JOB_DEFINITION = "SELECT name, definition FROM supertask_jobs WHERE namespace = :namespace AND name = :name"
#: a sync keeps the definitions it replaces or removes (``SyncReport.before``) when it
#: changes or removes at most this many jobs of a kind (the audit then writes a row each)
BEFORE_KEPT = 50
_JOB_PAUSED = "SELECT name FROM supertask_jobs WHERE namespace = :namespace AND paused = TRUE"
_JOB_DELETE = "DELETE FROM supertask_jobs WHERE namespace = :namespace AND name = :name"


_NS_BUMP = "UPDATE supertask_namespaces SET revision = revision + 1 WHERE name = :namespace"
_NS_REVISION = "SELECT revision FROM supertask_namespaces WHERE name = :namespace"
_NS_FIRST = ('INSERT INTO supertask_namespaces (name, host, "user", created, updated, revision) '
             "VALUES (:namespace, '', '', :now, :now, 1)")
_JOB_PAUSE = ("UPDATE supertask_jobs SET paused = :paused, next_run_time = :next_run_time, updated = :updated, "
              "revision = :revision WHERE namespace = :namespace AND name = :name")


def bump_revision(tx: Any, namespace: str) -> int:
    """Count one more change to the namespace's jobs and return its new revision, which
    the job rows changed in this transaction carry (every scheduler serving the
    namespace polls these revisions and reloads the jobs whose revision is newer than
    its own: :mod:`supertask.scheduler.follow`). On PostgreSQL the change is announced on
    :data:`CHANNEL` at commit. The namespace's row is locked until the commit, so
    revisions are committed in order; every job write takes it before its job rows."""
    if not tx.run(_NS_BUMP, {"namespace": namespace}):
        tx.insert(_NS_FIRST, {"namespace": namespace, "now": tx.stamp(datetime.now(UTC))}, "name")
    revision = int(tx.rows(_NS_REVISION, {"namespace": namespace})[0][0])
    if getattr(tx, "dialect", None) == "postgresql":
        tx.rows("SELECT pg_notify(:channel, :namespace)", {"channel": CHANNEL, "namespace": namespace})
    return revision


def set_paused(tx: Any, namespace: str, name: str, paused: bool, next_run_time: float | None) -> bool:
    """Pause or resume one job (its next run time as given); False when there is none."""
    revision = bump_revision(tx, namespace)
    return bool(tx.run(_JOB_PAUSE, {"namespace": namespace, "name": name, "paused": paused,
                                    "next_run_time": next_run_time, "updated": tx.stamp(datetime.now(UTC)),
                                    "revision": revision}))


def delete_job(tx: Any, namespace: str, name: str) -> bool:
    """Delete one job; False when there is none."""
    bump_revision(tx, namespace)
    return bool(tx.run(_JOB_DELETE, {"namespace": namespace, "name": name}))


def sync_jobs(tx: Any, namespace: str, jobs: Sequence[Job], first_fire: Callable[[Job], float | None], *,
              remove_missing: bool, keep_paused: bool = False) -> SyncReport:
    """Make the namespace hold ``jobs`` (and no others, with ``remove_missing``).

    Added and changed jobs get ``next_run_time = first_fire(job)`` (None when disabled);
    unchanged ones (same fingerprint) keep their schedule state, so a restart neither
    loses nor doubles a fire. A changed job is resumed (the file wins), but with
    ``keep_paused`` (a live edit) a paused one stays paused, in the same transaction."""
    now = tx.stamp(datetime.now(UTC))
    wanted = {job.name: job for job in jobs}
    if remove_missing or len(wanted) > 50:
        existing = dict(tx.rows(_JOB_FINGERPRINTS, {"namespace": namespace}))
    else:  # a one-liner or a live edit: look at its own rows only
        existing = {}
        for name in wanted:
            existing.update(tx.rows(_JOB_FINGERPRINT, {"namespace": namespace, "name": name}))
    added, changed, unchanged, inserts, updates = [], [], [], [], []
    for name, job in wanted.items():
        text = job.definition()
        fingerprint = digest(text)
        if existing.get(name) == fingerprint:
            unchanged.append(name)
            continue
        row = {"namespace": namespace, "name": name, "definition": text, "format": JOB_FORMAT_VERSION,
               "fingerprint": fingerprint, "paused": False,
               "next_run_time": first_fire(job) if job.enabled else None, "updated": now}
        if name in existing:
            changed.append(name)
            updates.append(row)
        else:
            added.append(name)
            inserts.append(row)
    removed = sorted(set(existing) - set(wanted)) if remove_missing else []
    if not (inserts or updates or removed):
        return SyncReport((), (), (), tuple(unchanged))
    before = {}
    for names in (changed, removed):
        if len(names) <= BEFORE_KEPT:
            for name in names:
                before.update(tx.rows(_JOB_DEFINITION, {"namespace": namespace, "name": name}))
    revision = bump_revision(tx, namespace)
    held = {r[0] for r in tx.rows(_JOB_PAUSED, {"namespace": namespace})} if keep_paused and updates else set()
    for row in updates:
        row["revision"] = revision
        if row["name"] in held:
            row.update(paused=True, next_run_time=None)
        tx.run(_JOB_UPDATE, row)
    for row in inserts:
        row["revision"] = revision
    for chunk in _chunks(inserts, 5000):
        tx.insert_rows("supertask_jobs", chunk)
    if removed:
        tx.run_many(_JOB_DELETE, [{"namespace": namespace, "name": name} for name in removed])
    return SyncReport(tuple(added), tuple(changed), tuple(removed), tuple(unchanged), before)


# -- runs -------------------------------------------------------------------------------------

_RUN_INSERT = ("INSERT INTO supertask_runs (namespace, job, attempt, reason, scheduled, started, finished, "
               "status, host, message, instance) VALUES (:namespace, :job, :attempt, :reason, :scheduled, :started, "
               ":finished, :status, :host, :message, :instance)")
_RUN_LOG_PATH = "UPDATE supertask_runs SET log_path = :log_path WHERE id = :id"
GET_RUN = f"SELECT {', '.join(RUN_COLUMNS)} FROM supertask_runs WHERE id = :id"


def started_at(now: datetime, scheduled: datetime) -> datetime:
    """When a claimed run is recorded as started: now, or the fire's own time when that
    is still to come (the scheduler claims a round's fires a little ahead of time, and
    their children start on time)."""
    return scheduled if scheduled > now else now


def claim_of(**fields: Any) -> dict[str, Any]:
    """One claim of :func:`claim_runs` from ``claim_run``'s keyword arguments (an
    ``instance`` or ``guard`` of None left out: the store's own instance, no guard)."""
    return {key: value for key, value in fields.items() if value is not None or key not in ("instance", "guard")}


def claim_runs(tx: Any, claims: Sequence[dict[str, Any]], instance: str | None = None) -> list[Any]:
    """Insert the run row that claims each fire (``claims``: :meth:`Store.claim_run`'s
    keyword arguments); a fire already claimed gets None, the others their run ids.
    ``(namespace, job, scheduled, attempt)`` is unique: of two schedulers racing for one
    fire exactly one insert wins. With ``log_dir``, the row's ``log_path``
    (``log_dir/NAMESPACE/JOB/ID.log``) is set in the same transaction. The row names the
    scheduler instance that holds it: the claim's ``instance``, else ``instance``.

    A claim with ``adopt`` (a kept row written once the store is back: runs.unwritten)
    whose fire has a row already gets :class:`Held` (that row's id) when the row is still
    in flight and held by the same instance (its own claim, which had no answer in time
    and committed late), else None.

    A claim with a ``guard`` (several schedulers share the store) is checked against what
    the store holds first (:mod:`supertask.store.guard`): refused, it gets a
    :class:`~supertask.store.guard.Refusal` instead of an id, and a ``skipped`` row saying
    why (none when it is refused for the database's clock)."""
    now = datetime.now(UTC)
    ids: list[Any] = []
    guarded = [claim for claim in claims if claim.get("guard")]
    if guarded:  # several schedulers share the store: what the others run counts too
        from supertask.store import guard

        tx.db_now = guard.lock(tx, guarded)
        known = guard.facts(tx, guarded, instance)
    for claim in claims:
        status = claim.get("status", RunStatus.RUNNING)
        scheduled = claim["scheduled"]
        refused = guard.refusal(claim, known, tx.db_now) if claim.get("guard") else None
        if refused is not None:
            if refused.wait:  # not due yet by the database's clock: nothing recorded
                ids.append(refused)
                continue
            status = RunStatus.QUEUED if refused.queue else RunStatus.SKIPPED
            claim = {**claim, "message": refused.reason, "log_dir": None}
        run_id = tx.insert(_RUN_INSERT, {
            "namespace": claim["namespace"], "job": claim["job"], "attempt": claim["attempt"],
            "reason": claim["reason"], "scheduled": tx.stamp(scheduled),
            "started": tx.stamp(started_at(now, scheduled)) if status is RunStatus.RUNNING else None,
            "finished": tx.stamp(now) if status.finished else None, "status": status.value,
            "host": claim["host"], "message": claim.get("message"),
            "instance": claim.get("instance", instance) or None}, "id")
        if run_id is None and claim.get("adopt"):  # this holder's own claim, committed late: that row
            held = tx.rows(_RUN_HELD, {"namespace": claim["namespace"], "job": claim["job"],
                                       "scheduled": tx.stamp(scheduled), "attempt": claim["attempt"],
                                       "owner": claim.get("instance", instance) or ""})
            ids.append(Held(int(held[0][0])) if held else None)
            continue
        if run_id is not None and claim.get("log_dir") is not None:
            path = Path(claim["log_dir"]) / claim["namespace"] / claim["job"] / f"{run_id}.log"
            tx.run(_RUN_LOG_PATH, {"log_path": str(path), "id": run_id})
        ids.append(run_id if refused is None or run_id is None else
                   refused._replace(queue=run_id) if refused.queue else refused)
    return ids


_RUN_HELD = (f"SELECT id FROM supertask_runs WHERE namespace = :namespace AND job = :job AND scheduled = :scheduled "
             f"AND attempt = :attempt AND status IN ('{RunStatus.RUNNING.value}', '{RunStatus.QUEUED.value}') "
             "AND COALESCE(instance, '') = :owner")


class Held(namedtuple("Held", "id")):
    """A fire's row that its holder's own claim made (:func:`claim_runs` with ``adopt``)."""

    __slots__ = ()


#: what makes a run's end the end of *this* attempt as its scheduler instance holds it (a
#: queued row taken up while the store was away is still ``queued`` when its end comes)
_END_GUARD = (f" AND status IN ('{RunStatus.RUNNING.value}', '{RunStatus.QUEUED.value}') "
              "AND COALESCE(instance, '') = :owner")


def run_update(run_id: int, values: dict[str, Any], stamp: Callable[[datetime], Any],
               owner: str | None = None, *, end: bool = False) -> tuple[str, dict[str, Any]]:
    """The statement that sets ``values`` (column: value) on one run row. An ``end`` (how
    the attempt ended) is written only while the row is still in flight and held by
    ``owner`` (the scheduler instance that ran it; None: none, a one-shot run): a run
    another host took over (marked ``lost`` when this one missed its lease) is not
    written over by a late end; it changes no row (``tx.run`` gives 0)."""
    params: dict[str, Any] = {"id": run_id}
    for key, value in values.items():
        if key not in RUN_COLUMNS or key == "id":
            raise ValueError(f"no run column {key!r}")
        if isinstance(value, RunStatus):
            value = value.value
        elif isinstance(value, datetime):
            value = stamp(value)
        params[key] = value
    sql = f"UPDATE supertask_runs SET {', '.join(f'{key} = :{key}' for key in values)} WHERE id = :id"
    if end:
        params["owner"] = owner or ""
        sql += _END_GUARD
    return sql, params


# -- retention --------------------------------------------------------------------------------

_FINISHED = tuple(s.value for s in RunStatus if s.finished)
_REAL = tuple(s for s in _FINISHED if s != RunStatus.SKIPPED.value)


def _quoted(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


_PRUNE_JOBS = f"SELECT DISTINCT job FROM supertask_runs WHERE namespace = :namespace AND status IN ({_quoted(_FINISHED)})"
_PRUNE_OLDEST = (f"SELECT MIN(id) FROM (SELECT id FROM supertask_runs WHERE namespace = :namespace AND job = :job "
                 f"AND status IN ({_quoted(_REAL)}) ORDER BY id DESC LIMIT :keep) AS kept")
_PRUNE_WHERE = (f"namespace = :namespace AND job = :job AND status IN ({_quoted(_FINISHED)}) "
                "AND (id < :oldest OR scheduled < :before)")
_PRUNE_SELECT = f"SELECT status, log_path FROM supertask_runs WHERE {_PRUNE_WHERE}"
_PRUNE_DELETE = f"DELETE FROM supertask_runs WHERE {_PRUNE_WHERE}"
_PRUNE_CHUNKS = f"DELETE FROM supertask_log_chunks WHERE run_id IN (SELECT id FROM supertask_runs WHERE {_PRUNE_WHERE})"


def prune_runs(tx: Any, namespace: str, job: str | None, *, keep: int | None, max_age: float | None) -> Pruned:
    """Delete a job's finished runs (every job's, when ``job`` is None) beyond the
    ``keep`` newest *real* runs and those scheduled more than ``max_age`` seconds ago.

    Real runs are those that ran (any finished status but ``skipped``). Skipped rows
    (a fire dropped for overlap or downtime) older than the oldest real run kept go
    with the runs before it; newer ones stay: they tell what happened since. Running
    and queued runs are never touched."""
    jobs = [job] if job is not None else [r[0] for r in tx.rows(_PRUNE_JOBS, {"namespace": namespace})]
    before = tx.stamp(datetime.fromtimestamp(datetime.now(UTC).timestamp() - max_age, UTC)) if max_age is not None \
        else tx.stamp(datetime(1, 1, 1, tzinfo=UTC))
    pruned = Pruned()
    for name in jobs:
        oldest = 0  # the oldest real run kept: rows before it go
        if keep == 0:  # nothing kept: every finished row goes
            oldest = 2**62
        elif keep is not None:
            found = tx.rows(_PRUNE_OLDEST, {"namespace": namespace, "job": name, "keep": keep})
            oldest = int(found[0][0]) if found and found[0][0] is not None else 0
        params = {"namespace": namespace, "job": name, "oldest": oldest, "before": before}
        rows = tx.rows(_PRUNE_SELECT, params)
        if not rows:
            continue
        tx.run(_PRUNE_CHUNKS, params)  # a worker's run's log (supertask.workers.chunks)
        tx.run(_PRUNE_DELETE, params)
        skipped = sum(1 for status, _ in rows if status == RunStatus.SKIPPED.value)
        pruned += Pruned(len(rows) - skipped, skipped, tuple(path for _, path in rows if path))
    return pruned


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]
