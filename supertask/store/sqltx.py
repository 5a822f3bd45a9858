"""SQLAlchemy transactions: the write transaction of a :class:`~supertask.store.sql.SqlStore`
and :class:`SqlTx`, which runs the statements of :mod:`supertask.store.statements` (the
same text a :class:`~supertask.store.lite.LiteStore` runs on ``sqlite3``)."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from supertask.store.tables import UTCDateTime, metadata


class WriteTx:
    """A write transaction (a context manager giving its connection). SQLite allows one
    writer: ``lock`` (a SQLite store's) serialises ours in-process."""

    def __init__(self, engine: sa.Engine, lock: threading.Lock | None):
        self.engine, self.lock = engine, lock
        self.ctx: Any = None

    def __enter__(self) -> sa.Connection:
        if self.lock is not None:
            self.lock.acquire()
        try:
            self.ctx = self.engine.begin()
            return self.ctx.__enter__()  # type: ignore[no-any-return]
        except BaseException:
            if self.lock is not None:
                self.lock.release()
            raise

    def __exit__(self, *exc: Any) -> None:
        try:
            self.ctx.__exit__(*exc)
        finally:
            if self.lock is not None:
                self.lock.release()


class SqlTx:
    """A :mod:`~supertask.store.statements` transaction on a SQLAlchemy connection: the
    statements' text, with its times bound as :class:`~supertask.store.tables.UTCDateTime`."""

    def __init__(self, conn: sa.Connection):
        self.conn = conn
        self.dialect = conn.dialect.name

    @staticmethod
    def stamp(value: datetime) -> datetime:
        return value

    def _text(self, sql: str, params: dict[str, Any]) -> Any:
        times = [key for key, value in params.items() if isinstance(value, datetime)]
        if self.dialect not in ("sqlite", "postgresql"):  # the statements quote "user" the standard way
            sql = sql.replace('"user"', self.conn.dialect.identifier_preparer.quote_identifier("user"))
        return _text(sql, tuple(times))

    def run(self, sql: str, params: dict[str, Any]) -> int:
        return int(self.conn.execute(self._text(sql, params), params).rowcount)

    def run_many(self, sql: str, params: list[dict[str, Any]]) -> None:
        self.conn.execute(self._text(sql, params[0]), params)

    def rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.conn.execute(self._text(sql, params), params)]

    def insert(self, sql: str, params: dict[str, Any], key: str) -> Any:
        if self.dialect == "postgresql":  # a failed statement would abort PostgreSQL's whole transaction
            found = self.conn.execute(self._text(f"{sql} ON CONFLICT DO NOTHING RETURNING {key}", params),
                                      params).first()
            return None if found is None else found[0]
        try:
            with self.conn.begin_nested():
                return int(self.conn.execute(self._text(sql, params), params).lastrowid)
        except IntegrityError:
            return None

    def insert_rows(self, table: str, rows: Sequence[dict[str, Any]]) -> None:
        self.conn.execute(metadata.tables[table].insert(), list(rows))


_TEXTS: dict[tuple[str, tuple[str, ...]], Any] = {}


def _text(sql: str, times: tuple[str, ...]) -> Any:
    """``sa.text(sql)`` with ``times`` bound as UTC datetimes (cached: one per statement)."""
    key = (sql, times)
    found = _TEXTS.get(key)
    if found is None:
        found = sa.text(sql).bindparams(*(sa.bindparam(name, type_=UTCDateTime) for name in times))
        _TEXTS[key] = found
    return found


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
