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

from supertask.model import Job, RunRecord, RunStatus
from supertask.store.health import HealthWatch, StoreHealth
from supertask.store.rows import StoredJob
from supertask.store.statements import Pruned, SyncReport

__all__ = ["HealthWatch", "Pruned", "RunStore", "Store", "StoredJob", "SyncReport"]


class RunStore(Protocol):
    """What a run's lifecycle needs: its namespace and job, the run row, retention."""

    url: str
    health: StoreHealth

    @property
    def dialect(self) -> str: ...

    def close(self) -> None: ...

    def ping(self) -> None:
        """Ask the database a trivial question (the health probe); raises when it cannot."""

    def ensure_namespace(self, name: str, *, source: str | None, host: str, user: str) -> None: ...

    def sync(self, namespace: str, jobs: Sequence[Job], first_fire: Callable[[Job], float | None], *,
             remove_missing: bool = True) -> SyncReport:
        """Make the namespace hold ``jobs`` in one transaction (:func:`statements.sync_jobs`)."""

    def claim_run(self, *, namespace: str, job: str, scheduled: datetime, attempt: int, reason: str, host: str,
                  status: RunStatus = RunStatus.RUNNING, message: str | None = None,
                  log_dir: Any = None) -> int | None:
        """Insert the row that claims one fire; None when it was claimed already."""

    def claim_runs(self, claims: Sequence[dict[str, Any]]) -> list[int | None]:
        """:meth:`claim_run` of each of ``claims`` (its keyword arguments), in one transaction."""

    def update_run(self, run_id: int, **values: Any) -> None: ...

    def update_runs(self, rows: Sequence[tuple[int, dict[str, Any]]]) -> None:
        """:meth:`update_run` of each ``(run_id, values)``, in one transaction."""

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

    def job_states(self, namespace: str) -> list[tuple[str, float | None, bool]]: ...

    def definitions(self, namespace: str) -> list[tuple[str, dict[str, Any]]]: ...

    def set_next_run_times(self, namespace: str, updates: Iterable[tuple[str, float | None]]) -> None: ...

    def set_paused(self, namespace: str, name: str, paused: bool, next_run_time: float | None) -> None: ...

    def delete_job(self, namespace: str, name: str) -> None: ...

    def generation(self, namespace: str) -> tuple[int, str | None]: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def history(self, namespace: str | None = None, job: str | None = None, *, failed: bool = False,
                limit: int = 20) -> list[RunRecord]: ...

    def mark_lost(self, namespaces: Iterable[str], host: str) -> list[RunRecord]: ...
