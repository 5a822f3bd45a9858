"""A worker wakes when a run is queued for workers: ``LISTEN`` on :data:`CHANNEL`, on a
PostgreSQL connection of its own (reopened when it breaks), each notification carrying
when the run is due (epoch seconds). The claim loop's poll stays the fallback for a
notification lost, or a connection that cannot be had."""

from __future__ import annotations

import time
from typing import Any

#: The channel a queued run for workers is announced on (payload: when it is due, epoch seconds).
CHANNEL = "supertask_runs"
#: Seconds between two attempts to (re)open the listening connection.
RELISTEN = 10.0


def announce(conn: Any, due: str = "") -> None:
    """Tell the listening workers a run is queued (at the commit of ``conn``'s transaction);
    ``due``: SQL giving when it may start (epoch seconds), or now."""
    import sqlalchemy as sa

    conn.execute(sa.text(f"SELECT pg_notify('{CHANNEL}', CAST({due or 'EXTRACT(EPOCH FROM now())'} AS TEXT))"))


class Wakeup:
    """Waits for a queued run's announcement (see the module's docstring)."""

    def __init__(self, engine: Any):
        self.engine = engine
        self.conn: Any = None
        self._tried = -RELISTEN

    def _open(self) -> Any:
        if time.monotonic() - self._tried < RELISTEN:
            return None
        self._tried = time.monotonic()
        try:
            pooled = self.engine.raw_connection()
            conn = pooled.driver_connection
            pooled.detach()  # ours: never handed back to the pool
            if not hasattr(conn, "notifies"):  # not psycopg 3: polling alone
                pooled.close()
                return None
            conn.rollback()
            conn.autocommit = True
            conn.execute(f"LISTEN {CHANNEL}")
            return conn
        except Exception:
            return None

    def wait(self, timeout: float) -> float | None:
        """Wait up to ``timeout`` seconds for an announcement: when the earliest run
        announced is due (epoch seconds), None when none came."""
        if self.conn is None:
            self.conn = self._open()
        if self.conn is None:
            time.sleep(timeout)
            return None
        due: list[float] = []
        try:
            for note in self.conn.notifies(timeout=timeout, stop_after=1):
                try:
                    due.append(float(note.payload))
                except ValueError:
                    due.append(time.time())
        except Exception:  # the connection broke: polling until it is open again
            self.close()
        return min(due) if due else None

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass
