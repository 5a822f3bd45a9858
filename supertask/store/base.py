"""The store's interface: what the rest of supertask may ask of a store, as Protocols.

Two implementations:

- :class:`~supertask.store.sql.SqlStore` (SQLAlchemy): every :class:`Store` call, on
  PostgreSQL, SQLite or any SQLAlchemy URL. On a SQLite file it writes its run rows
  through a :class:`~supertask.store.lite.LiteStore` (the firing path's speed).
- :class:`~supertask.store.lite.LiteStore` (stdlib ``sqlite3``): the :class:`RunStore`
  calls only, on an existing SQLite file, so a one-shot ``supertask run -- cmd:true``
  never imports SQLAlchemy.

Both run the statements of :mod:`supertask.store.statements`, written once.
:func:`supertask.store.sql.open_store` opens a full store; a run's lifecycle
(:mod:`supertask.runs`) needs only a :class:`RunStore`.

This module is for type annotations: the modules a one-shot run loads import it only
under ``TYPE_CHECKING`` (``typing`` itself is ~2 ms of such a run).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

from supertask.model import Job, RunRecord, RunStatus, Share
from supertask.store.access import Scope, Token
from supertask.store.cluster import HostRow, InFlight
from supertask.store.health import HealthWatch, StoreHealth
from supertask.store.rows import StoredJob
from supertask.store.statements import Pruned, SyncReport

__all__ = ["HealthWatch", "HostRow", "InFlight", "Pruned", "RunStore", "Store", "StoredJob", "SyncReport"]


class RunStore(Protocol):
    """What a run's lifecycle needs: its namespace and job, the run row, retention."""

    url: str
    health: StoreHealth
    #: the scheduler instance this process is (its host row): its claims name it, and
    #: its runs' ends are written only while it still holds them. None: a one-shot run.
    instance: str | None

    @property
    def dialect(self) -> str: ...

    def close(self) -> None: ...

    def ping(self) -> None:
        """Ask the database a trivial question (the health probe); raises when it cannot."""

    def ensure_namespace(self, name: str, *, source: str | None, host: str, user: str,
                         share: Share | None = None) -> None: ...

    def sync(self, namespace: str, jobs: Sequence[Job], first_fire: Callable[[Job], float | None], *,
             remove_missing: bool = True, keep_paused: bool = False) -> SyncReport:
        """Make the namespace hold ``jobs`` in one transaction (:func:`statements.sync_jobs`)."""

    def claim_run(self, *, namespace: str, job: str, scheduled: datetime, attempt: int, reason: str, host: str,
                  status: RunStatus = RunStatus.RUNNING, message: str | None = None,
                  log_dir: Any = None, instance: str | None = None, guard: dict[str, Any] | None = None) -> Any:
        """Insert the row that claims one fire; None when it was claimed already. It names
        ``instance`` as its holder (default: :attr:`instance`). With ``guard``, checked
        against what other schedulers run first (:mod:`supertask.store.guard`): refused,
        a :class:`~supertask.store.guard.Refusal`."""

    def claim_runs(self, claims: Sequence[dict[str, Any]]) -> list[Any]:
        """:meth:`claim_run` of each of ``claims`` (its keyword arguments), in one transaction."""

    def update_run(self, run_id: int, **values: Any) -> None: ...

    def update_runs(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """:meth:`update_run` of each ``(run_id, values)``, in one transaction."""

    def end_runs(self, rows: Sequence[tuple[int, dict[str, Any]]], owner: str | None = None) -> list[int]:
        """How attempts ended (each ``(run_id, values)``), in one transaction, each written
        only while its row is ``running`` and held by ``owner`` (default :attr:`instance`);
        return the ids refused (another host took the run over: :func:`statements.run_update`)."""

    def get_run(self, run_id: int) -> RunRecord: ...

    def prune_runs(self, namespace: str, job: str | None, *, keep: int | None = None,
                   max_age: float | None = None) -> Pruned:
        """Retention (:func:`statements.prune_runs`): what was removed."""


class Store(RunStore, Protocol):
    """Everything else: listings, schedule state, live changes, history, meta values."""

    schema_missing: bool

    def list_namespaces(self) -> list[dict[str, Any]]: ...

    def list_jobs(self, namespace: str | None = None) -> list[StoredJob]: ...

    def get_job(self, namespace: str, name: str) -> StoredJob:
        """One job; JobNotFound when it is not there."""

    def get_jobs(self, namespace: str, names: Iterable[str]) -> list[StoredJob]: ...

    def job_states(self, namespace: str) -> list[tuple[str, float | None, bool, int]]: ...

    def definitions(self, namespace: str) -> list[tuple[str, dict[str, Any]]]: ...

    def set_next_run_times(self, namespace: str, updates: Iterable[tuple[Any, ...]]) -> None:
        """Each ``(name, ts)`` or ``(name, ts, revision)`` (written only at that revision)."""

    def set_paused(self, namespace: str, name: str, paused: bool, next_run_time: float | None) -> None: ...

    def delete_job(self, namespace: str, name: str) -> None: ...

    def generation(self, namespace: str) -> tuple[int, str | None]: ...

    # -- live changes reaching every scheduler (supertask.store.revisions) -----------------

    def revisions(self, namespaces: Iterable[str]) -> dict[str, int]: ...

    def changed_jobs(self, namespace: str, since: int) -> tuple[list[StoredJob], int]: ...

    def job_names(self, namespace: str) -> set[str]: ...

    def queue_run(self, namespace: str, job: str, message: str) -> int: ...

    def take_queued(self, namespaces: Sequence[str], host: str) -> list[RunRecord]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def history(self, namespace: str | None = None, job: str | None = None, *, failed: bool = False,
                limit: int = 20) -> list[RunRecord]: ...

    # -- the cluster (supertask.store.cluster; the decisions: supertask.cluster.leases) --------

    def clock(self) -> datetime:
        """The database's clock (PostgreSQL's ``now()``; elsewhere this host's)."""

    def register_host(self, *, instance: str, host: str, pid: int, boot: str | None, home: str | None,
                      version: str | None, namespaces: Sequence[str], lease: float, started: datetime) -> datetime: ...

    def beat(self, instance: str, *, runs: int, namespaces: Sequence[str],
             lease: float) -> tuple[datetime, str | None]: ...

    def stop_host(self, instance: str) -> None: ...

    def hosts(self, *, instances: Iterable[str] | None = None, within: float | None = None) -> list[HostRow]: ...

    def runs_in_flight(self, namespaces: Iterable[str] | None = None, *,
                       besides: str | None = None) -> list[InFlight]: ...

    def mark_runs_lost(self, runs: Sequence[tuple[InFlight, str]]) -> list[RunRecord]:
        """Each run ``lost`` with its message, if still in flight and held by the same
        instance; the rows this call changed (of two hosts racing, one gets each)."""

    def mark_host_lost(self, instance: str, message: str) -> bool: ...

    def forget_hosts(self, older_than: float) -> int: ...

    # -- tokens, the audit, the dashboard's runs (supertask.store.access) ---------------------

    def create_token(self, name: str, scope: Scope, namespaces: Sequence[str], by: str | None) -> str: ...

    def tokens(self, *, revoked: bool = False) -> list[Token]: ...

    def revoke_token(self, name: str) -> bool: ...

    def token_for(self, secret: str) -> Token | None: ...

    def has_tokens(self) -> bool: ...

    def audit(self, *, who: str, source: str | None, action: str, namespace: str | None, job: str | None,
              before: Any = None, after: Any = None) -> None: ...

    def audit_many(self, rows: Sequence[dict[str, Any]]) -> None: ...

    def audit_rows(self, namespaces: Iterable[str] | None = None, *, job: str | None = None,
                   before_id: int | None = None, limit: int = 50) -> list[dict[str, Any]]: ...

    def jobs_page(self, namespaces: Iterable[str] | None, *, search: str | None = None,
                  after: tuple[str, str] | None = None, limit: int = 200) -> list[StoredJob]: ...

    def last_runs(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], RunRecord]: ...

    def due_within(self, namespaces: Iterable[str] | None, until: float, limit: int = 500) -> list[StoredJob]: ...

    def runs_page(self, namespaces: Iterable[str] | None, *, job: str | None = None,
                  statuses: Sequence[str] = (), before_id: int | None = None, limit: int = 50,
                  search: str | None = None, since: datetime | None = None,
                  until: datetime | None = None) -> list[RunRecord]: ...

    def runs_timeline(self, namespaces: Iterable[str] | None, *, since: datetime, until: datetime,
                      buckets: int, job: str | None = None, statuses: Sequence[str] = (),
                      search: str | None = None) -> list[tuple[int, str, int]]: ...

    def failures_since(self, namespaces: Iterable[str] | None, since: datetime, limit: int = 50) -> list[RunRecord]: ...
